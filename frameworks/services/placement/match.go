package placement

import (
	"cmp"
	"hash/fnv"
	"math"
	"slices"
	"strings"

	"github.com/atoll/atoll/api"
)

// Resource names Marathon apps take.
const (
	resCPUs  = "cpus"
	resMem   = "mem"
	resDisk  = "disk"
	resGPUs  = "gpus"
	resPorts = "ports"
)

// The scalars an instance needs, in the order they are checked and claimed.
var (
	scalarNames   = [...]string{resCPUs, resMem, resDisk, resGPUs}
	scalarReasons = [...]Reason{InsufficientCpus, InsufficientMemory, InsufficientDisk, InsufficientGpus}
)

const numScalars = len(scalarNames)

// maxScalar bounds scalar amounts (in units, not thousandths) so that sums of thousandths
// cannot overflow int64; it is far beyond any real machine.
const maxScalar = 1e15

// Host ports outside this range in an offer are ignored: they are not real ports.
const (
	minPort = 1
	maxPort = 65535
)

// Match decides whether offer can host one more instance of an app needing req, given the
// instances already placed. On success it returns the resources and host ports to launch
// the instance with, and Matched; otherwise the reason the offer does not fit. Resources and
// ports are chosen as the Planner documentation describes. Judging one offer takes time
// linear in the number of placed instances; a Planner judges a series of offers faster.
func Match(offer *api.Offer, req *Requirements, placed []Placed) (Claim, Reason) {
	return newPlanner(req, placed, offer).Match(offer)
}

// MatchMany packs up to maxInstances instances (at least one) into offer, as Marathon does with
// max_instances_per_offer: each instance takes its resources from what the previous ones
// left and is judged by the constraints with the previous ones counted as placed. It returns
// Matched and the claims when at least one instance fits, otherwise the reason the first
// did not.
func MatchMany(offer *api.Offer, req *Requirements, placed []Placed, maxInstances int) ([]Claim, Reason) {
	return newPlanner(req, placed, offer).MatchMany(offer, maxInstances)
}

// Planner places instances of one app on a series of offers. It tallies the placed
// instances by each constraint's field value once, when made, and adds every instance it
// places, so judging an offer takes time independent of the number of instances. A Planner
// is not safe for concurrent use.
//
// Every claim a Planner returns counts as placed for the offers it judges later: the caller
// is expected to launch it. When a launch does not happen, make a new Planner from the
// instances that do run.
//
// Scalars are counted in thousandths, as Mesos keeps them. Resources are taken from those
// reserved for the app's role first, then from those of other accepted roles, then from
// unreserved ones, each group in the offer's order.
//
// Host ports for "any port" are chosen by rotation rather than lowest-first, so that a port
// just freed by a stopped instance is not handed straight to its replacement (load
// balancers and clients may still be sending to it): within each ports resource the first
// pick is the free port at a position derived from a hash of the offer ID, and each next
// pick is the next free port above the previous one, wrapping around. Equal offers therefore
// get equal ports, and successive offers spread over the range.
type Planner struct {
	role         string
	accepted     []string
	need         [numScalars]int64 // thousandths
	ports        []Port
	requirePorts bool
	// networks and drivers are the named networks and volume drivers the agent must have.
	networks, drivers []string
	tallies           []tally
	values            []agentValue // the current offer's value for each tally
}

// agentValue is an agent's value for a constraint's field; ok is false when it has none.
type agentValue struct {
	value string
	ok    bool
}

// NewPlanner returns a Planner for an app needing req whose instances run as placed. A nil
// req needs nothing. Constraints that do not validate (see ParseConstraint) never hold.
func NewPlanner(req *Requirements, placed []Placed) *Planner {
	return newPlanner(req, placed, nil)
}

// newPlanner makes a Planner; given an offer, it makes one only fit to judge that offer,
// whose UNIQUE and MAX_PER tallies count only the offer's value instead of every value.
func newPlanner(req *Requirements, placed []Placed, offer *api.Offer) *Planner {
	if req == nil {
		req = &Requirements{}
	}
	p := &Planner{
		role:         cmp.Or(req.Role, "*"),
		ports:        slices.Clone(req.Ports),
		requirePorts: req.RequirePorts,
		networks:     slices.Clone(req.Networks),
		drivers:      slices.Clone(req.VolumeDrivers),
	}
	for _, role := range req.AcceptedRoles {
		p.accepted = append(p.accepted, cmp.Or(role, "*"))
	}
	if len(p.accepted) == 0 {
		p.accepted = []string{p.role, "*"}
	}
	for i, amount := range [numScalars]float64{req.CPUs, req.MemMB, req.DiskMB, req.GPUs} {
		p.need[i] = toMilli(amount)
	}
	p.tallies = make([]tally, len(req.Constraints))
	p.values = make([]agentValue, len(req.Constraints))
	for i, c := range req.Constraints {
		t := newTally(c)
		if offer != nil && (c.Operator == Unique || c.Operator == MaxPer) {
			v, ok := t.fieldValue(offer.Hostname, offer.Attributes)
			t.focus = &groupKey{value: v, missing: !ok}
		}
		p.tallies[i] = t
	}
	for _, pl := range placed {
		for i := range p.tallies {
			t := &p.tallies[i]
			if t.broken {
				continue
			}
			t.add(t.fieldValue(pl.Hostname, pl.Attributes))
		}
	}
	return p
}

// Match is MatchMany for one instance.
func (p *Planner) Match(offer *api.Offer) (Claim, Reason) {
	claims, reason := p.MatchMany(offer, 1)
	if reason != Matched {
		return Claim{}, reason
	}
	return claims[0], Matched
}

// MatchMany packs up to maxInstances instances (at least one) into offer; see the function
// MatchMany. The instances it places count as placed from then on.
func (p *Planner) MatchMany(offer *api.Offer, maxInstances int) ([]Claim, Reason) {
	if offer == nil {
		offer = &api.Offer{}
	}
	pl, usable := p.newPool(offer)
	if !usable {
		return nil, UnfulfilledRole
	}
	if reason := agentHas(offer.Attributes, p.networks, p.drivers); reason != Matched {
		return nil, reason
	}
	for i := range p.tallies {
		v, ok := p.tallies[i].fieldValue(offer.Hostname, offer.Attributes)
		p.values[i] = agentValue{value: v, ok: ok}
	}
	var claims []Claim
	for len(claims) < max(maxInstances, 1) {
		claim, reason := p.fit(&pl)
		if reason != Matched {
			if len(claims) == 0 {
				return nil, reason
			}
			break
		}
		claims = append(claims, claim)
		for i := range p.tallies {
			p.tallies[i].add(p.values[i].value, p.values[i].ok)
		}
	}
	return claims, Matched
}

// fit judges one more instance on the pool's offer and, when it fits, takes its resources
// from the pool.
func (p *Planner) fit(pl *pool) (Claim, Reason) {
	for i := range p.tallies {
		if !p.tallies[i].holds(p.values[i].value, p.values[i].ok) {
			return Claim{}, UnfulfilledConstraint
		}
	}
	for s, need := range p.need {
		if need > 0 && !pl.hasScalar(s, need) {
			return Claim{}, scalarReasons[s]
		}
	}
	hostPorts, sources, ok := p.choosePorts(pl)
	if !ok {
		return Claim{}, InsufficientPorts
	}
	var out claimBuilder
	for s, need := range p.need {
		for i := range pl.scalars[s] {
			if need == 0 {
				break
			}
			src := &pl.scalars[s][i]
			take := min(src.left, need)
			if take == 0 {
				continue
			}
			src.left -= take
			need -= take
			out.addScalar(&pl.offer.Resources[src.res], take)
		}
	}
	for i, port := range hostPorts {
		out.addPort(&pl.offer.Resources[sources[i]], port)
	}
	return Claim{Resources: out.resources(), HostPorts: hostPorts}, Matched
}

// choosePorts picks a host port for each of the app's ports, taking them from the pool only
// when all can be had. Required ports go first so that a rotating pick cannot take them.
// It returns the ports in the app's order and, for each, the offer resource it came from.
func (p *Planner) choosePorts(pl *pool) ([]uint32, []int, bool) {
	if len(p.ports) == 0 {
		return nil, nil, true
	}
	trial := make([]portSource, len(pl.ports))
	for i, src := range pl.ports {
		trial[i] = portSource{res: src.res, free: slices.Clone(src.free), cursor: src.cursor}
	}
	hostPorts := make([]uint32, len(p.ports))
	sources := make([]int, len(p.ports))
	fixed := func(port Port) bool { return p.requirePorts && port.Port != 0 }
	for i, port := range p.ports {
		if !fixed(port) {
			continue
		}
		found := false
		for j := range trial {
			if trial[j].takePort(uint64(port.Port)) {
				hostPorts[i], sources[i], found = port.Port, trial[j].res, true
				withdraw(trial, uint64(port.Port))
				break
			}
		}
		if !found {
			return nil, nil, false
		}
	}
	for i, port := range p.ports {
		if fixed(port) {
			continue
		}
		found := false
		for j := range trial {
			if next, ok := trial[j].takeNext(); ok {
				hostPorts[i], sources[i], found = uint32(next), trial[j].res, true
				withdraw(trial, next)
				break
			}
		}
		if !found {
			return nil, nil, false
		}
	}
	pl.ports = trial
	return hostPorts, sources, true
}

// withdraw removes a port taken from one ports resource from all others: a host port is
// one per agent, however a malformed offer lists it.
func withdraw(sources []portSource, port uint64) {
	for i := range sources {
		sources[i].takePort(port)
	}
}

// pool is what an offer has left for the app: its usable resources, in the order they are
// taken.
type pool struct {
	offer   *api.Offer
	scalars [numScalars][]scalarSource
	ports   []portSource
}

// scalarSource is what is left of one scalar resource of the offer.
type scalarSource struct {
	res  int   // index in offer.Resources
	left int64 // thousandths
}

// portSource is what is left of one ports resource of the offer.
type portSource struct {
	res    int              // index in offer.Resources
	free   []api.ValueRange // sorted, disjoint, not adjacent, within minPort..maxPort
	cursor uint64           // where the next rotating pick starts looking
}

// newPool collects the offer's resources the app may use; usable is false when there are
// none at all, whatever their names (Marathon's UnfulfilledRole).
func (p *Planner) newPool(offer *api.Offer) (pl pool, usable bool) {
	pl.offer = offer
	type ranked struct{ res, rank int }
	var order []ranked
	for i := range offer.Resources {
		if rank, ok := p.rank(offer, &offer.Resources[i]); ok {
			order = append(order, ranked{i, rank})
		}
	}
	slices.SortStableFunc(order, func(a, b ranked) int { return cmp.Compare(a.rank, b.rank) })
	seed := portSeed(offer.ID.Value)
	for _, o := range order {
		r := &offer.Resources[o.res]
		if s := slices.Index(scalarNames[:], r.Name); s >= 0 {
			if r.Type == api.Scalar && r.Scalar != nil {
				if left := toMilli(r.Scalar.Value); left > 0 {
					pl.scalars[s] = append(pl.scalars[s], scalarSource{res: o.res, left: left})
				}
			}
			continue
		}
		if r.Name == resPorts && r.Type == api.Ranges && r.Ranges != nil {
			if free := portRanges(r.Ranges.Range); len(free) > 0 {
				pl.ports = append(pl.ports, portSource{res: o.res, free: free, cursor: nthPort(free, seed)})
			}
		}
	}
	return pl, len(order) > 0
}

// rank says whether the app may use r and, if so, how early: its own role's reservations
// first (0), then other accepted roles' (1), then unreserved resources (2).
func (p *Planner) rank(offer *api.Offer, r *api.Resource) (int, bool) {
	role := cmp.Or(r.Role, "*")
	if !slices.Contains(p.accepted, role) {
		return 0, false
	}
	allocated := ""
	switch {
	case r.AllocationInfo != nil:
		allocated = r.AllocationInfo.Role
	case offer.AllocationInfo != nil:
		allocated = offer.AllocationInfo.Role
	}
	if allocated != "" && allocated != p.role {
		return 0, false
	}
	switch role {
	case p.role:
		return 0, true
	case "*":
		return 2, true
	}
	return 1, true
}

// hasScalar reports whether the pool holds need thousandths of scalar s.
func (pl *pool) hasScalar(s int, need int64) bool {
	var sum int64 // never overflows: each term and need are at most maxScalar*1000
	for _, src := range pl.scalars[s] {
		if sum += src.left; sum >= need {
			return true
		}
	}
	return false
}

// takePort removes port from the free ranges, reporting whether it was free.
func (src *portSource) takePort(port uint64) bool {
	i, found := slices.BinarySearchFunc(src.free, port, func(r api.ValueRange, port uint64) int {
		switch {
		case r.End < port:
			return -1
		case r.Begin > port:
			return 1
		}
		return 0
	})
	if !found {
		return false
	}
	r := src.free[i]
	switch {
	case r.Begin == port && r.End == port:
		src.free = slices.Delete(src.free, i, i+1)
	case r.Begin == port:
		src.free[i].Begin++
	case r.End == port:
		src.free[i].End--
	default:
		src.free[i].End = port - 1
		src.free = slices.Insert(src.free, i+1, api.ValueRange{Begin: port + 1, End: r.End})
	}
	return true
}

// takeNext takes the first free port at or above the cursor, wrapping around to the lowest,
// and moves the cursor past it.
func (src *portSource) takeNext() (uint64, bool) {
	if len(src.free) == 0 {
		return 0, false
	}
	i, _ := slices.BinarySearchFunc(src.free, src.cursor, func(r api.ValueRange, port uint64) int {
		return cmp.Compare(r.End, port)
	})
	port := src.free[0].Begin
	if i < len(src.free) {
		port = max(src.cursor, src.free[i].Begin)
	}
	src.takePort(port)
	src.cursor = port + 1
	return port, true
}

// portRanges returns the valid ports of offered ranges: clipped to minPort..maxPort,
// sorted, merged; ranges that begin after they end are dropped.
func portRanges(offered []api.ValueRange) []api.ValueRange {
	var out []api.ValueRange
	for _, r := range offered {
		r.Begin, r.End = max(r.Begin, minPort), min(r.End, maxPort)
		if r.Begin <= r.End {
			out = append(out, r)
		}
	}
	return mergeRanges(out)
}

// mergeRanges sorts ranges in place and merges those that overlap or touch.
func mergeRanges(ranges []api.ValueRange) []api.ValueRange {
	slices.SortFunc(ranges, func(a, b api.ValueRange) int { return cmp.Compare(a.Begin, b.Begin) })
	out := ranges[:0]
	for _, r := range ranges {
		if n := len(out); n > 0 && r.Begin <= out[n-1].End+1 {
			out[n-1].End = max(out[n-1].End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// portSeed hashes an offer ID to where rotating port picks start. Offer IDs usually differ
// only in a trailing counter, which FNV-1a alone spreads over few low bits, so the hash is
// finished with MurmurHash3's 64-bit mixing step to make every bit depend on every input bit.
func portSeed(offerID string) uint64 {
	hash := fnv.New64a()
	hash.Write([]byte(offerID))
	h := hash.Sum64()
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// nthPort returns the free port at position seed modulo the number of free ports.
func nthPort(free []api.ValueRange, seed uint64) uint64 {
	var count uint64
	for _, r := range free {
		count += r.End - r.Begin + 1
	}
	n := seed % count
	for _, r := range free {
		if size := r.End - r.Begin + 1; n >= size {
			n -= size
			continue
		}
		return r.Begin + n
	}
	return free[0].Begin
}

// toMilli converts an amount to thousandths, as Mesos rounds it; amounts that are not
// positive numbers count as zero and huge ones as maxScalar.
func toMilli(v float64) int64 {
	if !(v > 0) {
		return 0
	}
	return int64(math.Round(min(v, maxScalar) * 1000))
}

// claimBuilder gathers what one instance takes, one entry per resource name, reservation
// role and allocation role.
type claimBuilder struct {
	scalars []scalarPart
	ports   []portPart
}

type scalarPart struct {
	from  *api.Resource // the first offered resource it was carved from
	milli int64
}

type portPart struct {
	from  *api.Resource
	ports []api.ValueRange
}

// sameKind reports whether resources carved from a and b belong in one entry.
func sameKind(a, b *api.Resource) bool {
	return a.Name == b.Name && a.Role == b.Role && allocationRole(a) == allocationRole(b)
}

func allocationRole(r *api.Resource) string {
	if r.AllocationInfo == nil {
		return ""
	}
	return r.AllocationInfo.Role
}

func (b *claimBuilder) addScalar(from *api.Resource, milli int64) {
	for i := range b.scalars {
		if sameKind(b.scalars[i].from, from) {
			b.scalars[i].milli += milli
			return
		}
	}
	b.scalars = append(b.scalars, scalarPart{from: from, milli: milli})
}

func (b *claimBuilder) addPort(from *api.Resource, port uint32) {
	r := api.ValueRange{Begin: uint64(port), End: uint64(port)}
	for i := range b.ports {
		if sameKind(b.ports[i].from, from) {
			b.ports[i].ports = append(b.ports[i].ports, r)
			return
		}
	}
	b.ports = append(b.ports, portPart{from: from, ports: []api.ValueRange{r}})
}

// resources returns the claim in wire form: scalars in the order cpus, mem, disk, gpus
// (the order they were added), then ports.
func (b *claimBuilder) resources() []api.Resource {
	out := make([]api.Resource, 0, len(b.scalars)+len(b.ports))
	for _, s := range b.scalars {
		out = append(out, api.Resource{
			Name:           s.from.Name,
			Type:           api.Scalar,
			Scalar:         &api.ValueScalar{Value: float64(s.milli) / 1000},
			Role:           s.from.Role,
			AllocationInfo: cloneAllocation(s.from.AllocationInfo),
		})
	}
	for _, p := range b.ports {
		out = append(out, api.Resource{
			Name:           resPorts,
			Type:           api.Ranges,
			Ranges:         &api.ValueRanges{Range: mergeRanges(p.ports)},
			Role:           p.from.Role,
			AllocationInfo: cloneAllocation(p.from.AllocationInfo),
		})
	}
	return out
}

func cloneAllocation(a *api.AllocationInfo) *api.AllocationInfo {
	if a == nil {
		return nil
	}
	c := *a
	return &c
}

// agentHas says whether the agent of an offer with these attributes has the named
// networks and the volume drivers.
func agentHas(attributes []api.Attribute, networks, drivers []string) Reason {
	if len(networks) == 0 && len(drivers) == 0 {
		return Matched
	}
	has, hasDrivers := attributeList(attributes, api.AttributeNetworks), attributeList(attributes, api.AttributeVolumeDrivers)
	for _, n := range networks {
		if !slices.Contains(has, n) {
			return UnavailableNetwork
		}
	}
	for _, d := range drivers {
		if d != api.LocalVolumeDriver && !slices.Contains(hasDrivers, d) {
			return UnavailableVolumeDriver
		}
	}
	return Matched
}

// attributeList is the comma-separated names of the TEXT attribute name.
func attributeList(attributes []api.Attribute, name string) []string {
	for _, a := range attributes {
		if a.Name == name && a.Text != nil {
			return strings.Split(a.Text.Value, ",")
		}
	}
	return nil
}
