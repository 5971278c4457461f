package alloc

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/atoll/atoll/api"
)

// Names of the resources with a fixed type that every agent offers.
const (
	CPUs  = "cpus"
	Mem   = "mem"
	Disk  = "disk"
	GPUs  = "gpus"
	Ports = "ports"
)

// maxScalar is the largest scalar value accepted. It keeps milli-unit arithmetic far from
// int64 overflow (sums saturate at maxMilli) while exceeding any real machine: 10^12 MB of
// memory is an exabyte.
const (
	maxScalar = 1e12
	maxMilli  = int64(maxScalar * 1000)
)

// Resources is a set of unreserved (role "*") resources: scalars such as cpus, mem, disk and
// gpus, port ranges, and custom scalars, ranges and sets. It is a value: every operation
// returns a new Resources and never modifies its operands, so copies may share memory.
//
// Scalars are kept in integer thousandths, as Mesos rounds them to three decimals, so sums
// and differences never drift. Empty entries (zero scalars, empty ranges or sets) are
// dropped: cpus:0 equals no cpus at all.
type Resources struct {
	cpus, mem, disk, gpus int64            // thousandths
	ports                 []api.ValueRange // sorted, disjoint and not adjacent
	extra                 []extra          // sorted by name, then type; never empty entries
}

// extra is a resource other than the fixed ones.
type extra struct {
	name   string
	kind   api.ValueType
	scalar int64            // thousandths, for api.Scalar
	ranges []api.ValueRange // for api.Ranges, normalized like Resources.ports
	set    []string         // for api.Set, sorted without duplicates
}

func (e extra) isEmpty() bool {
	switch e.kind {
	case api.Scalar:
		return e.scalar == 0
	case api.Ranges:
		return len(e.ranges) == 0
	default:
		return len(e.set) == 0
	}
}

func compareExtra(a, b extra) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	return strings.Compare(string(a.kind), string(b.kind))
}

// fixedKind returns the type a well-known resource must have, or "" for custom names.
func fixedKind(name string) api.ValueType {
	switch name {
	case CPUs, Mem, Disk, GPUs:
		return api.Scalar
	case Ports:
		return api.Ranges
	}
	return ""
}

// FromProto converts and validates resources from the wire. Resources of the same name and
// type are summed. It rejects, naming the resource: empty or malformed names, unknown types
// or a type that does not match the name (cpus must be SCALAR, ports RANGES), a missing or
// extra value, negative, NaN, infinite or too large scalars, ranges with begin > end, empty
// set items, the same name with different types, and reserved resources (a role other than
// "*"), which Atoll does not support yet. allocation_info is ignored: the caller knows the
// role it allocated to.
func FromProto(rs []api.Resource) (Resources, error) {
	var b builder
	for i, pr := range rs {
		if err := b.add(pr); err != nil {
			return Resources{}, fmt.Errorf("resource %d (%q): %w", i, pr.Name, err)
		}
	}
	return b.out, nil
}

// builder sums validated resources, remembering each name's type so that a name cannot
// come with two types even when one of its values is empty.
type builder struct {
	out   Resources
	kinds map[string]api.ValueType
}

func (b *builder) add(pr api.Resource) error {
	one, err := fromProtoOne(pr)
	if err != nil {
		return err
	}
	if kind, seen := b.kinds[pr.Name]; seen && kind != pr.Type {
		return fmt.Errorf("%s is %s here but %s before", pr.Name, pr.Type, kind)
	}
	if b.kinds == nil {
		b.kinds = map[string]api.ValueType{}
	}
	b.kinds[pr.Name] = pr.Type
	if name, ok := b.out.sumExceeds(one); ok {
		return fmt.Errorf("total %s exceeds %g", name, maxScalar)
	}
	b.out = b.out.Add(one)
	return nil
}

// fromProtoOne converts one resource; the caller adds the context of where it came from.
func fromProtoOne(pr api.Resource) (Resources, error) {
	if err := validName(pr.Name); err != nil {
		return Resources{}, err
	}
	if pr.Role != "" && pr.Role != "*" {
		return Resources{}, fmt.Errorf("reserved for role %q: reservations are not supported, only unreserved (role \"*\") resources", pr.Role)
	}
	if want := fixedKind(pr.Name); want != "" && pr.Type != want {
		return Resources{}, fmt.Errorf("type is %q, %s must be %s", pr.Type, pr.Name, want)
	}
	var r Resources
	switch pr.Type {
	case api.Scalar:
		if pr.Scalar == nil || pr.Ranges != nil || pr.Set != nil {
			return Resources{}, fmt.Errorf("a SCALAR resource needs \"scalar\" and nothing else")
		}
		milli, err := toMilli(pr.Scalar.Value)
		if err != nil {
			return Resources{}, err
		}
		r.setScalar(pr.Name, milli)
	case api.Ranges:
		if pr.Ranges == nil || pr.Scalar != nil || pr.Set != nil {
			return Resources{}, fmt.Errorf("a RANGES resource needs \"ranges\" and nothing else")
		}
		for _, rg := range pr.Ranges.Range {
			if rg.Begin > rg.End {
				return Resources{}, fmt.Errorf("range [%d-%d] begins after it ends", rg.Begin, rg.End)
			}
		}
		r.setRanges(pr.Name, normalizeRanges(pr.Ranges.Range))
	case api.Set:
		if pr.Set == nil || pr.Scalar != nil || pr.Ranges != nil {
			return Resources{}, fmt.Errorf("a SET resource needs \"set\" and nothing else")
		}
		for _, item := range pr.Set.Item {
			if err := validToken(item); err != nil {
				return Resources{}, fmt.Errorf("set item %q: %w", item, err)
			}
		}
		r.extra = appendExtra(nil, extra{name: pr.Name, kind: api.Set, set: normalizeSet(pr.Set.Item)})
	default:
		return Resources{}, fmt.Errorf("unknown type %q, want SCALAR, RANGES or SET", pr.Type)
	}
	return r, nil
}

// sumExceeds names a scalar that r + o would push past maxScalar.
func (r Resources) sumExceeds(o Resources) (string, bool) {
	for _, fixed := range [...]struct {
		name string
		a, b int64
	}{{CPUs, r.cpus, o.cpus}, {Mem, r.mem, o.mem}, {Disk, r.disk, o.disk}, {GPUs, r.gpus, o.gpus}} {
		if fixed.a+fixed.b > maxMilli {
			return fixed.name, true
		}
	}
	for _, e := range o.extra {
		i, found := slices.BinarySearchFunc(r.extra, e, compareExtra)
		if found && e.kind == api.Scalar && r.extra[i].scalar+e.scalar > maxMilli {
			return e.name, true
		}
	}
	return "", false
}

// validName accepts names that print and parse back unchanged in the agent flag syntax.
func validName(name string) error {
	if name == "" {
		return fmt.Errorf("empty name")
	}
	return validToken(name)
}

func validToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(":;,()[]{}", c) {
			return fmt.Errorf("contains %q: names and set items may not contain spaces, control characters or any of :;,()[]{}", c)
		}
	}
	return nil
}

// toMilli converts a scalar to thousandths, rounding to three decimals as Mesos does.
func toMilli(v float64) (int64, error) {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("scalar %v is not a finite number", v)
	case v < 0:
		return 0, fmt.Errorf("scalar %v is negative", v)
	case v > maxScalar:
		return 0, fmt.Errorf("scalar %v exceeds %g", v, maxScalar)
	}
	return int64(math.Round(v * 1000)), nil
}

func (r *Resources) setScalar(name string, milli int64) {
	switch name {
	case CPUs:
		r.cpus = milli
	case Mem:
		r.mem = milli
	case Disk:
		r.disk = milli
	case GPUs:
		r.gpus = milli
	default:
		r.extra = appendExtra(nil, extra{name: name, kind: api.Scalar, scalar: milli})
	}
}

func (r *Resources) setRanges(name string, ranges []api.ValueRange) {
	if name == Ports {
		r.ports = ranges
		return
	}
	r.extra = appendExtra(nil, extra{name: name, kind: api.Ranges, ranges: ranges})
}

// appendExtra appends e unless it is empty.
func appendExtra(dst []extra, e extra) []extra {
	if e.isEmpty() {
		return dst
	}
	return append(dst, e)
}

// Proto returns the resources in wire form, unreserved (role "*"): cpus, mem, disk, gpus,
// ports, then the custom resources by name. It never returns nil, so JSON shows [].
func (r Resources) Proto() []api.Resource {
	out := make([]api.Resource, 0, 5+len(r.extra))
	scalar := func(name string, milli int64) {
		if milli != 0 {
			out = append(out, api.Resource{Name: name, Type: api.Scalar, Role: "*",
				Scalar: &api.ValueScalar{Value: fromMilli(milli)}})
		}
	}
	scalar(CPUs, r.cpus)
	scalar(Mem, r.mem)
	scalar(Disk, r.disk)
	scalar(GPUs, r.gpus)
	if len(r.ports) > 0 {
		out = append(out, api.Resource{Name: Ports, Type: api.Ranges, Role: "*",
			Ranges: &api.ValueRanges{Range: slices.Clone(r.ports)}})
	}
	for _, e := range r.extra {
		pr := api.Resource{Name: e.name, Type: e.kind, Role: "*"}
		switch e.kind {
		case api.Scalar:
			pr.Scalar = &api.ValueScalar{Value: fromMilli(e.scalar)}
		case api.Ranges:
			pr.Ranges = &api.ValueRanges{Range: slices.Clone(e.ranges)}
		default:
			pr.Set = &api.ValueSet{Item: slices.Clone(e.set)}
		}
		out = append(out, pr)
	}
	return out
}

func fromMilli(milli int64) float64 { return float64(milli) / 1000 }

// IsEmpty reports whether r holds nothing.
func (r Resources) IsEmpty() bool {
	return r.cpus == 0 && r.mem == 0 && r.disk == 0 && r.gpus == 0 && len(r.ports) == 0 && len(r.extra) == 0
}

// Equal reports whether r and o hold exactly the same resources.
func (r Resources) Equal(o Resources) bool {
	return r.cpus == o.cpus && r.mem == o.mem && r.disk == o.disk && r.gpus == o.gpus &&
		slices.Equal(r.ports, o.ports) &&
		slices.EqualFunc(r.extra, o.extra, func(a, b extra) bool {
			return a.name == b.name && a.kind == b.kind && a.scalar == b.scalar &&
				slices.Equal(a.ranges, b.ranges) && slices.Equal(a.set, b.set)
		})
}

// Scalar returns the amount of the scalar resource name (0 when absent).
func (r Resources) Scalar(name string) float64 {
	switch name {
	case CPUs:
		return fromMilli(r.cpus)
	case Mem:
		return fromMilli(r.mem)
	case Disk:
		return fromMilli(r.disk)
	case GPUs:
		return fromMilli(r.gpus)
	}
	for _, e := range r.extra {
		if e.name == name && e.kind == api.Scalar {
			return fromMilli(e.scalar)
		}
	}
	return 0
}

// Ports returns the port ranges, sorted and disjoint (a copy the caller may modify).
func (r Resources) Ports() []api.ValueRange { return slices.Clone(r.ports) }

// Add returns r + o: scalars summed (saturating at 10^12), ranges and sets united.
// A custom name with different types in r and o keeps one entry per type.
func (r Resources) Add(o Resources) Resources {
	if o.IsEmpty() {
		return r
	}
	if r.IsEmpty() {
		return o
	}
	return Resources{
		cpus:  addMilli(r.cpus, o.cpus),
		mem:   addMilli(r.mem, o.mem),
		disk:  addMilli(r.disk, o.disk),
		gpus:  addMilli(r.gpus, o.gpus),
		ports: addRanges(r.ports, o.ports),
		extra: addExtras(r.extra, o.extra),
	}
}

func addMilli(a, b int64) int64 { return min(a+b, maxMilli) }

func addExtras(a, b []extra) []extra {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]extra, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && compareExtra(a[i], b[j]) < 0):
			out = append(out, a[i])
			i++
		case i == len(a) || compareExtra(a[i], b[j]) > 0:
			out = append(out, b[j])
			j++
		default:
			sum := a[i]
			switch sum.kind {
			case api.Scalar:
				sum.scalar = addMilli(sum.scalar, b[j].scalar)
			case api.Ranges:
				sum.ranges = addRanges(sum.ranges, b[j].ranges)
			default:
				sum.set = unionSet(sum.set, b[j].set)
			}
			out = append(out, sum)
			i++
			j++
		}
	}
	return out
}

// Subtract returns r - o. Like Mesos it never goes below empty: subtracting more of a scalar
// than r has leaves none, and ranges and set items of o that r lacks are ignored.
func (r Resources) Subtract(o Resources) Resources {
	if o.IsEmpty() || r.IsEmpty() {
		return r
	}
	out := Resources{
		cpus:  max(r.cpus-o.cpus, 0),
		mem:   max(r.mem-o.mem, 0),
		disk:  max(r.disk-o.disk, 0),
		gpus:  max(r.gpus-o.gpus, 0),
		ports: subtractRanges(r.ports, o.ports),
	}
	if len(o.extra) == 0 {
		out.extra = r.extra
		return out
	}
	for _, e := range r.extra {
		i, found := slices.BinarySearchFunc(o.extra, e, compareExtra)
		if !found {
			out.extra = append(out.extra, e)
			continue
		}
		switch sub := o.extra[i]; e.kind {
		case api.Scalar:
			e.scalar = max(e.scalar-sub.scalar, 0)
		case api.Ranges:
			e.ranges = subtractRanges(e.ranges, sub.ranges)
		default:
			e.set = subtractSet(e.set, sub.set)
		}
		out.extra = appendExtra(out.extra, e)
	}
	return out
}

// Contains reports whether r holds all of o: at least as much of every scalar, every port
// and range value, every set item.
func (r Resources) Contains(o Resources) bool {
	if r.cpus < o.cpus || r.mem < o.mem || r.disk < o.disk || r.gpus < o.gpus ||
		!containsRanges(r.ports, o.ports) {
		return false
	}
	for _, e := range o.extra {
		i, found := slices.BinarySearchFunc(r.extra, e, compareExtra)
		if !found {
			return false
		}
		have := r.extra[i]
		switch e.kind {
		case api.Scalar:
			if have.scalar < e.scalar {
				return false
			}
		case api.Ranges:
			if !containsRanges(have.ranges, e.ranges) {
				return false
			}
		default:
			if !containsSet(have.set, e.set) {
				return false
			}
		}
	}
	return true
}

// hasQuantities reports whether r holds at least the amounts in o, comparing scalars by
// value and ranges and sets by how many values they hold, not which (Mesos's
// ResourceQuantities, as min_allocatable_resources uses them).
func (r Resources) hasQuantities(o Resources) bool {
	if r.cpus < o.cpus || r.mem < o.mem || r.disk < o.disk || r.gpus < o.gpus ||
		countRanges(r.ports) < countRanges(o.ports) {
		return false
	}
	for _, e := range o.extra {
		i, found := slices.BinarySearchFunc(r.extra, e, compareExtra)
		if !found {
			return false
		}
		have := r.extra[i]
		if have.scalar < e.scalar || countRanges(have.ranges) < countRanges(e.ranges) || len(have.set) < len(e.set) {
			return false
		}
	}
	return true
}
