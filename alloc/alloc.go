// Package alloc owns resources and their algebra (scalars, port ranges, sets, roles) and the
// DRF allocator that decides which framework is offered which agent's free resources, with
// offer filters, suppression and minimum allocatable sizes.
package alloc

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config configures an Allocator.
type Config struct {
	// MinAllocatable lists the smallest offers worth making: an agent's free resources are
	// offered only when they hold at least one of these (scalars by amount, ranges and sets
	// by how many values). Empty offers any non-empty free resources.
	MinAllocatable []Resources
	// Weights scales fair shares by role: a role of weight 2 is entitled to twice the
	// resources of a role of weight 1. Unlisted roles weigh 1. Weights must be positive.
	Weights map[string]float64
	// Seed seeds the random order in which each cycle visits agents.
	Seed int64
	// Now is the clock Recover reads to date a filter's expiry; nil means time.Now.
	// Allocate compares expiries with the time it is given.
	Now func() time.Time
	// Logger receives warnings about inconsistent input, such as used resources that an
	// agent does not have free; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the settings Mesos uses by default.
func DefaultConfig() Config {
	return Config{
		// Mesos's min_allocatable_resources "cpus:0.01|mem:32": anything smaller cannot run
		// a task but would cost every framework an offer round trip.
		MinAllocatable: []Resources{{cpus: 10}, {mem: 32_000}},
		// A different order on every start, like Mesos's unseeded shuffle, so no agent is
		// always offered first after a failover.
		Seed: time.Now().UnixNano(),
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	for role, w := range c.Weights {
		if err := validWeight(role, w); err != nil {
			return err
		}
	}
	return nil
}

func validWeight(role string, w float64) error {
	if role == "" {
		return fmt.Errorf("weight %v names no role", w)
	}
	if !(w > 0) || math.IsInf(w, 0) {
		return fmt.Errorf("weight of role %q is %v, want a positive finite number", role, w)
	}
	return nil
}

// Allocation offers all free resources of one agent to one framework for one role. They
// count as the framework's until the master hands back what it does not use with Recover.
type Allocation struct {
	FrameworkID, AgentID, Role string
	Resources                  Resources
}

// Allocator decides which framework is offered which agent's free resources, following
// Mesos's hierarchical DRF allocator: each cycle visits the active agents in random order
// and gives each one's free resources to the first eligible framework, choosing the role
// with the lowest weighted dominant share first and, within it, the framework with the
// lowest dominant share in that role. Offered resources count as allocated until
// recovered. It never hands out a resource twice: an agent's free resources and its
// allocations always add up to its total. All methods are safe for concurrent use.
type Allocator struct {
	mu       sync.Mutex
	minAlloc []Resources
	now      func() time.Time
	log      *slog.Logger
	rng      *rand.Rand
	weights  map[string]float64

	agents     map[string]*agent
	agentOrder []*agent // every agent; agent.index is its position
	frameworks map[string]*framework
	roles      map[string]*role
	roleOrder  []*role // roles with an offerable client, in DRF order
	total      quantities
	// stale says shares changed outside Allocate (or the cluster total did): they are
	// recomputed and re-sorted before the next cycle.
	stale bool
	// pool holds the agents that may have something to offer: an agent leaves it when a
	// cycle finds it inactive or without allocatable free resources, and comes back when
	// it is activated or resources are freed on it, so a cycle over a busy cluster only
	// looks at agents that changed.
	pool      []*agent
	scratch   []*agent // candidates of a cycle, kept to reuse its memory
	freeSlots []int    // client slots to reuse
	nextSlot  int
}

type agent struct {
	id, hostname string
	total, free  Resources
	active       bool
	removed      bool
	pooled       bool // in Allocator.pool
	index        int
	filters      map[*client]filterSet // stored inline, so one agent's filters sit together
	blocks       blockCache
}

type framework struct {
	id string
	// registered is false for a framework known only from resources its tasks use (after a
	// master failover, before it subscribes again); it is dropped when those are recovered.
	registered bool
	active     bool
	roles      []string
	clients    map[string]*client // by role
}

// client is one framework in one role: the unit the DRF order sorts within a role.
type client struct {
	fw          *framework
	role        *role
	subscribed  bool // the role is one of the framework's roles
	suppressed  bool
	listed      bool // in role.clients
	gone        bool // dropped from its framework and role
	held        map[*agent]Resources
	alloc       quantities
	share       float64 // as sorted in role.clients
	filterCount int     // agents holding filters of this client
	slot        int     // small number, unique among clients, indexing blockCache
}

func (c *client) ready() bool { return c.subscribed && !c.suppressed && c.fw.active }

type role struct {
	name    string
	weight  float64
	alloc   quantities
	share   float64   // weighted, as sorted in Allocator.roleOrder
	clients []*client // ready clients in DRF order
	members int       // clients, ready or not
	listed  bool      // in Allocator.roleOrder
}

func compareClients(a, b *client) int {
	if c := cmp.Compare(a.share, b.share); c != 0 {
		return c
	}
	return strings.Compare(a.fw.id, b.fw.id)
}

func compareRoles(a, b *role) int {
	if c := cmp.Compare(a.share, b.share); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// New returns an empty allocator. Invalid weights (see Config.Validate) are logged and
// ignored.
func New(cfg Config) *Allocator {
	a := &Allocator{
		minAlloc:   slices.Clone(cfg.MinAllocatable),
		now:        cfg.Now,
		log:        cfg.Logger,
		rng:        rand.New(rand.NewPCG(uint64(cfg.Seed), 0)),
		weights:    map[string]float64{},
		agents:     map[string]*agent{},
		frameworks: map[string]*framework{},
		roles:      map[string]*role{},
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	for role, w := range cfg.Weights {
		if err := validWeight(role, w); err != nil {
			a.log.Warn("ignoring role weight", "err", err)
			continue
		}
		a.weights[role] = w
	}
	return a
}

// AddAgent adds an agent, active, with its total resources and those its tasks already use,
// by framework id. Used resources are charged to the framework's first role, or to "*"
// when the framework is not known yet; use AddUsed to name the role. Adding an agent id
// again replaces the agent and forgets its allocations.
func (a *Allocator) AddAgent(agentID, hostname string, total Resources, used map[string]Resources) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.agents[agentID]; old != nil {
		a.removeAgent(old)
	}
	ag := &agent{id: agentID, hostname: hostname, total: total, free: total, active: true, index: len(a.agentOrder)}
	a.agents[agentID] = ag
	a.agentOrder = append(a.agentOrder, ag)
	a.toPool(ag)
	a.total.add(total)
	a.stale = true
	for _, frameworkID := range slices.Sorted(maps.Keys(used)) {
		fw := a.frameworkOrPlaceholder(frameworkID)
		role := "*"
		if len(fw.roles) > 0 {
			role = fw.roles[0]
		}
		a.addUsed(fw, ag, role, used[frameworkID])
	}
}

// RemoveAgent forgets an agent, its allocations and the filters on it.
func (a *Allocator) RemoveAgent(agentID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ag := a.agents[agentID]; ag != nil {
		a.removeAgent(ag)
	}
}

func (a *Allocator) removeAgent(ag *agent) {
	for c := range ag.filters {
		c.filterCount--
	}
	for _, fw := range a.frameworks {
		for _, c := range fw.clients {
			if held, ok := c.held[ag]; ok {
				delete(c.held, ag)
				c.alloc.sub(held)
				c.role.alloc.sub(held)
				a.sync(c)
			}
		}
	}
	last := a.agentOrder[len(a.agentOrder)-1]
	a.agentOrder[ag.index], last.index = last, ag.index
	a.agentOrder[len(a.agentOrder)-1] = nil
	a.agentOrder = a.agentOrder[:len(a.agentOrder)-1]
	delete(a.agents, ag.id)
	ag.removed = true
	a.total.sub(ag.total)
	a.stale = true
}

// SetAgentActive starts or stops offering an agent's resources (a deactivated or
// disconnected agent keeps its allocations).
func (a *Allocator) SetAgentActive(agentID string, active bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ag := a.agents[agentID]; ag != nil {
		ag.active = active
		a.toPool(ag)
	}
}

// toPool puts ag in the pool of agents the next cycle looks at.
func (a *Allocator) toPool(ag *agent) {
	if !ag.pooled {
		ag.pooled = true
		a.pool = append(a.pool, ag)
	}
}

// AddFramework adds a framework subscribed to roles (none or "" mean "*"), with
// suppressedRoles not offered anything until revived. Adding it again (a resubscription)
// updates its roles, suppressed roles and activity and keeps its allocations and filters.
func (a *Allocator) AddFramework(frameworkID string, roles []string, suppressedRoles []string, active bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fw := a.frameworkOrPlaceholder(frameworkID)
	fw.registered = true
	fw.active = active
	a.setRoles(fw, roles)
	suppressed := normalizeRoles(suppressedRoles)
	for _, c := range fw.clients {
		if c.subscribed {
			c.suppressed = slices.Contains(suppressed, c.role.name)
		}
		a.sync(c)
	}
}

// RemoveFramework frees everything allocated to a framework and forgets it.
func (a *Allocator) RemoveFramework(frameworkID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fw := a.frameworks[frameworkID]
	if fw == nil {
		return
	}
	for _, c := range fw.clients {
		for ag, held := range c.held {
			a.release(c, ag, held, Resources{})
		}
		c.subscribed = false
		a.sync(c)
	}
	delete(a.frameworks, frameworkID)
}

// SetFrameworkActive starts or stops offering to a framework (a disconnected framework
// keeps its allocations until its failover timeout).
func (a *Allocator) SetFrameworkActive(frameworkID string, active bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fw := a.frameworks[frameworkID]
	if fw == nil {
		return
	}
	fw.active = active
	for _, c := range fw.clients {
		a.sync(c)
	}
}

// UpdateFrameworkRoles replaces a framework's roles (none mean "*"). Roles it leaves are no
// longer offered anything, but their allocations stay charged to them until recovered; new
// roles start unsuppressed.
func (a *Allocator) UpdateFrameworkRoles(frameworkID string, roles []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fw := a.frameworks[frameworkID]
	if fw == nil {
		return
	}
	a.setRoles(fw, roles)
	for _, c := range fw.clients {
		a.sync(c)
	}
}

// setRoles subscribes fw to roles and unsubscribes it from the others; the caller syncs
// fw's clients.
func (a *Allocator) setRoles(fw *framework, roles []string) {
	if len(roles) == 0 {
		roles = []string{"*"}
	}
	fw.roles = normalizeRoles(roles)
	for _, name := range fw.roles {
		a.client(fw, name).subscribed = true
	}
	for name, c := range fw.clients {
		if c.subscribed && !slices.Contains(fw.roles, name) {
			c.subscribed = false
			c.suppressed = false
			a.clearFilters(c)
		}
	}
}

// normalizeRoles turns "" into "*" and drops duplicates, keeping the order.
func normalizeRoles(roles []string) []string {
	out := make([]string, 0, len(roles))
	for _, r := range roles {
		r = roleName(r)
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func roleName(r string) string {
	if r == "" {
		return "*"
	}
	return r
}

// AddUsed charges resources used by existing tasks (found when an agent re-registers or
// the master recovers) to a framework's role on an agent. The framework need not be known
// yet. Resources the agent does not have free are logged and ignored, so nothing is ever
// counted twice.
func (a *Allocator) AddUsed(frameworkID, agentID, role string, r Resources) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ag := a.agents[agentID]
	if ag == nil {
		a.log.Warn("ignoring used resources on an unknown agent", "agent", agentID, "framework", frameworkID, "resources", r.String())
		return
	}
	a.addUsed(a.frameworkOrPlaceholder(frameworkID), ag, roleName(role), r)
}

func (a *Allocator) addUsed(fw *framework, ag *agent, roleName string, r Resources) {
	take := r.Subtract(r.Subtract(ag.free))
	if !take.Equal(r) {
		a.log.Warn("ignoring used resources the agent does not have free",
			"agent", ag.id, "hostname", ag.hostname, "framework", fw.id, "role", roleName,
			"excess", r.Subtract(take).String(), "free", ag.free.String())
	}
	c := a.client(fw, roleName)
	if !take.IsEmpty() {
		ag.free = ag.free.Subtract(take)
		a.hold(c, ag, take)
		a.stale = true
	}
	a.sync(c)
}

// Recover hands back resources allocated to a framework's role on an agent: an offer
// declined, rescinded or partly used, or the resources of a finished task. Only what the
// role holds there is recovered; unknown frameworks, agents and roles are ignored. With
// refuse > 0 the role is not offered the agent's free resources again for that long while
// they are a subset of the recovered ones (a decline filter), unless revived.
func (a *Allocator) Recover(frameworkID, agentID, role string, r Resources, refuse time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fw, ag := a.frameworks[frameworkID], a.agents[agentID]
	if fw == nil || ag == nil {
		return
	}
	c := fw.clients[roleName(role)]
	if c == nil {
		return
	}
	held := c.held[ag]
	kept := held.Subtract(r)
	back := held.Subtract(kept)
	if back.IsEmpty() {
		return
	}
	a.release(c, ag, back, kept)
	if refuse > 0 && c.subscribed {
		a.addFilter(ag, c, offerFilter{resources: back, expires: a.now().Add(refuse).UnixNano()})
	}
	a.sync(c)
}

// Revive clears a framework's filters and suppression for roles (all its roles when
// empty).
func (a *Allocator) Revive(frameworkID string, roles []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.subscribedClients(frameworkID, roles) {
		a.clearFilters(c)
		c.suppressed = false
		a.sync(c)
	}
}

// Suppress stops offers to a framework for roles (all its roles when empty) until Revive.
func (a *Allocator) Suppress(frameworkID string, roles []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.subscribedClients(frameworkID, roles) {
		c.suppressed = true
		a.sync(c)
	}
}

func (a *Allocator) subscribedClients(frameworkID string, roles []string) []*client {
	fw := a.frameworks[frameworkID]
	if fw == nil {
		return nil
	}
	if len(roles) == 0 {
		roles = fw.roles
	}
	var out []*client
	for _, name := range normalizeRoles(roles) {
		if c := fw.clients[name]; c != nil && c.subscribed {
			out = append(out, c)
		}
	}
	return out
}

// SetWeight sets a role's weight; an invalid weight (see Config.Validate) is logged and
// ignored.
func (a *Allocator) SetWeight(role string, w float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := validWeight(role, w); err != nil {
		a.log.Warn("ignoring role weight", "err", err)
		return
	}
	a.weights[role] = w
	if r := a.roles[role]; r != nil {
		r.weight = w
		a.stale = true
	}
}

// Allocate runs one allocation cycle at time now (which expires filters) and returns the
// offers to make, at most one per agent.
func (a *Allocator) Allocate(now time.Time) []Allocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.roleOrder) == 0 {
		return nil
	}
	if a.stale {
		a.refresh()
	}
	candidates := a.scratch[:0]
	for _, ag := range a.pool {
		ag.pooled = false
		if !ag.removed && ag.active && a.allocatable(ag.free) {
			candidates = append(candidates, ag)
		}
	}
	clear(a.pool)
	a.pool = a.pool[:0]
	a.rng.Shuffle(len(candidates), func(i, j int) {
		candidates[i], candidates[j] = candidates[j], candidates[i]
	})
	out := make([]Allocation, 0, len(candidates))
	nowNano := now.UnixNano()
	for _, ag := range candidates {
		c := a.pick(ag, nowNano)
		if c == nil {
			a.toPool(ag) // filtered for everyone now, maybe not next time
			continue
		}
		offered := ag.free
		ag.free = Resources{}
		a.hold(c, ag, offered)
		r := c.role
		move(r.clients, c, compareClients, func() { c.share = c.alloc.dominantShare(&a.total) })
		move(a.roleOrder, r, compareRoles, func() { r.share = r.alloc.dominantShare(&a.total) / r.weight })
		out = append(out, Allocation{FrameworkID: c.fw.id, AgentID: ag.id, Role: r.name, Resources: offered})
	}
	clear(candidates)
	a.scratch = candidates[:0]
	return out
}

func (a *Allocator) allocatable(free Resources) bool {
	if free.IsEmpty() {
		return false
	}
	if len(a.minAlloc) == 0 {
		return true
	}
	for _, m := range a.minAlloc {
		if free.hasQuantities(m) {
			return true
		}
	}
	return false
}

// pick returns the first client in DRF order that no filter keeps from ag, or nil.
func (a *Allocator) pick(ag *agent, now int64) *client {
	if len(ag.filters) > 0 {
		ag.blocks.prepare(ag.free, now)
	}
	for _, r := range a.roleOrder {
		for _, c := range r.clients {
			if c.filterCount == 0 || !a.filtered(ag, c, now) {
				return c
			}
		}
	}
	return nil
}

// refresh recomputes every share against the current cluster total and re-sorts.
func (a *Allocator) refresh() {
	for _, r := range a.roleOrder {
		for _, c := range r.clients {
			c.share = c.alloc.dominantShare(&a.total)
		}
		slices.SortFunc(r.clients, compareClients)
		r.share = r.alloc.dominantShare(&a.total) / r.weight
	}
	slices.SortFunc(a.roleOrder, compareRoles)
	a.stale = false
}

// hold charges res on ag to c; the caller has taken res out of ag.free.
func (a *Allocator) hold(c *client, ag *agent, res Resources) {
	c.held[ag] = c.held[ag].Add(res)
	c.alloc.add(res)
	c.role.alloc.add(res)
}

// release returns back, part of what c holds on ag, to ag's free resources; kept is
// what c still holds there.
func (a *Allocator) release(c *client, ag *agent, back, kept Resources) {
	if kept.IsEmpty() {
		delete(c.held, ag)
	} else {
		c.held[ag] = kept
	}
	c.alloc.sub(back)
	c.role.alloc.sub(back)
	ag.free = ag.free.Add(back)
	a.toPool(ag)
	a.stale = true
}

func (a *Allocator) frameworkOrPlaceholder(id string) *framework {
	fw := a.frameworks[id]
	if fw == nil {
		fw = &framework{id: id, clients: map[string]*client{}}
		a.frameworks[id] = fw
	}
	return fw
}

// client returns fw's client for a role, creating it (and the role) unsubscribed; the
// caller syncs it.
func (a *Allocator) client(fw *framework, name string) *client {
	if c := fw.clients[name]; c != nil {
		return c
	}
	r := a.roles[name]
	if r == nil {
		r = &role{name: name, weight: 1}
		if w, ok := a.weights[name]; ok {
			r.weight = w
		}
		a.roles[name] = r
	}
	r.members++
	c := &client{fw: fw, role: r, held: map[*agent]Resources{}, slot: a.nextSlot}
	if n := len(a.freeSlots); n > 0 {
		c.slot = a.freeSlots[n-1]
		a.freeSlots = a.freeSlots[:n-1]
	} else {
		a.nextSlot++
	}
	fw.clients[name] = c
	return c
}

// sync brings c's place in its role's DRF order, and its role's place among the roles, in
// line with c's state, and drops c (and then its role and placeholder framework) once it
// is neither subscribed nor holding anything.
func (a *Allocator) sync(c *client) {
	if c.gone {
		return
	}
	r := c.role
	if ready := c.ready(); ready != c.listed {
		if ready {
			c.share = c.alloc.dominantShare(&a.total)
			r.clients = insertSorted(r.clients, c, compareClients)
		} else {
			r.clients = removeSorted(r.clients, c, compareClients)
		}
		c.listed = ready
	}
	if listed := len(r.clients) > 0; listed != r.listed {
		if listed {
			r.share = r.alloc.dominantShare(&a.total) / r.weight
			a.roleOrder = insertSorted(a.roleOrder, r, compareRoles)
		} else {
			a.roleOrder = removeSorted(a.roleOrder, r, compareRoles)
		}
		r.listed = listed
	}
	if c.subscribed || len(c.held) > 0 {
		return
	}
	c.gone = true
	a.clearFilters(c)
	a.freeSlots = append(a.freeSlots, c.slot)
	delete(c.fw.clients, r.name)
	if !c.fw.registered && len(c.fw.clients) == 0 {
		delete(a.frameworks, c.fw.id)
	}
	r.members--
	if r.members == 0 {
		delete(a.roles, r.name)
	}
}

// Free returns an agent's resources that nobody holds (empty for an unknown agent).
func (a *Allocator) Free(agentID string) Resources {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ag := a.agents[agentID]; ag != nil {
		return ag.free
	}
	return Resources{}
}

// Allocated returns what a framework holds, offered or used, by agent id (nil for an
// unknown framework).
func (a *Allocator) Allocated(frameworkID string) map[string]Resources {
	a.mu.Lock()
	defer a.mu.Unlock()
	fw := a.frameworks[frameworkID]
	if fw == nil {
		return nil
	}
	out := map[string]Resources{}
	for _, c := range fw.clients {
		for ag, held := range c.held {
			out[ag.id] = out[ag.id].Add(held)
		}
	}
	return out
}

// Shares returns each framework's dominant share of the cluster over all its roles,
// unweighted: the largest fraction of any scalar resource it holds.
func (a *Allocator) Shares() map[string]float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]float64, len(a.frameworks))
	for id, fw := range a.frameworks {
		var q quantities
		for _, c := range fw.clients {
			for _, held := range c.held {
				q.add(held)
			}
		}
		out[id] = q.dominantShare(&a.total)
	}
	return out
}

// Sorted lists below are ordered by a compare function over keys that change only through
// move, so binary search finds elements by their current key.

func insertSorted[T any](list []T, x T, compare func(a, b T) int) []T {
	i, _ := slices.BinarySearchFunc(list, x, compare)
	return slices.Insert(list, i, x)
}

func removeSorted[T comparable](list []T, x T, compare func(a, b T) int) []T {
	i := indexSorted(list, x, compare)
	if i < 0 {
		return list
	}
	return slices.Delete(list, i, i+1)
}

func indexSorted[T comparable](list []T, x T, compare func(a, b T) int) int {
	if i, found := slices.BinarySearchFunc(list, x, compare); found && list[i] == x {
		return i
	}
	return slices.Index(list, x)
}

// move lets update change x's key and shifts x to its new place in list.
func move[T comparable](list []T, x T, compare func(a, b T) int, update func()) {
	i := indexSorted(list, x, compare)
	update()
	if i < 0 {
		return
	}
	switch {
	case i+1 < len(list) && compare(list[i+1], x) < 0:
		n, _ := slices.BinarySearchFunc(list[i+1:], x, compare)
		copy(list[i:i+n], list[i+1:i+1+n])
		list[i+n] = x
	case i > 0 && compare(x, list[i-1]) < 0:
		j, _ := slices.BinarySearchFunc(list[:i], x, compare)
		copy(list[j+1:i+1], list[j:i])
		list[j] = x
	}
}
