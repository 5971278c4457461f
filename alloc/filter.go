package alloc

import (
	"math"
	"slices"
)

// offerFilter keeps a framework's role from being offered an agent's free resources while
// they are a subset of resources it declined, until expires (Unix nanoseconds).
type offerFilter struct {
	resources Resources
	expires   int64
}

func (f offerFilter) blocks(free Resources, now int64) bool {
	return now < f.expires && f.resources.Contains(free)
}

// filterSet holds one client's filters on one agent: the first inline, as there is rarely
// more than one.
type filterSet struct {
	first offerFilter
	more  []offerFilter
}

func (s filterSet) all() []offerFilter { return append([]offerFilter{s.first}, s.more...) }

func newFilterSet(filters []offerFilter) filterSet {
	return filterSet{first: filters[0], more: slices.Clip(filters[1:])}
}

// add returns s with f added and the filters f makes redundant (no larger and expiring no
// later) dropped.
func (s filterSet) add(f offerFilter) filterSet {
	filters := s.all()
	for _, g := range filters {
		if g.expires >= f.expires && g.resources.Contains(f.resources) {
			return s
		}
	}
	filters = slices.DeleteFunc(filters, func(g offerFilter) bool {
		return f.expires >= g.expires && f.resources.Contains(g.resources)
	})
	return newFilterSet(append(filters, f))
}

// blockCache remembers, for one agent, whether each client's filters cover the agent's
// free resources. Clients that declined an agent keep the lowest shares and so come first
// every time it is visited; the cache turns their filter lookups into bit tests. Its
// answers hold while the free resources are the same, until the earliest expiry of a
// filter that blocks; adding or removing a client's filters forgets its answer.
type blockCache struct {
	free    Resources
	until   int64
	known   []uint64 // by client slot
	blocked []uint64 // by client slot
}

// prepare drops the answers unless they hold for free resources at time now.
func (b *blockCache) prepare(free Resources, now int64) {
	if now < b.until && b.free.Equal(free) {
		return
	}
	clear(b.known)
	clear(b.blocked)
	b.free, b.until = free, math.MaxInt64
}

func (b *blockCache) lookup(slot int) (blocked, known bool) {
	word, bit := slot/64, uint64(1)<<(slot%64)
	if word >= len(b.known) || b.known[word]&bit == 0 {
		return false, false
	}
	return b.blocked[word]&bit != 0, true
}

// store records an answer; a block rests on filters that expire at until.
func (b *blockCache) store(slot int, blocked bool, until int64) {
	word, bit := slot/64, uint64(1)<<(slot%64)
	if word >= len(b.known) {
		b.known = append(b.known, make([]uint64, word+1-len(b.known))...)
		b.blocked = append(b.blocked, make([]uint64, word+1-len(b.blocked))...)
	}
	b.known[word] |= bit
	if blocked {
		b.blocked[word] |= bit
		b.until = min(b.until, until)
	}
}

func (b *blockCache) forget(slot int) {
	if word, bit := slot/64, uint64(1)<<(slot%64); word < len(b.known) {
		b.known[word] &^= bit
		b.blocked[word] &^= bit
	}
}

// addFilter records a filter of c on ag.
func (a *Allocator) addFilter(ag *agent, c *client, f offerFilter) {
	if ag.filters == nil {
		ag.filters = map[*client]filterSet{}
	}
	if set, ok := ag.filters[c]; ok {
		ag.filters[c] = set.add(f)
	} else {
		ag.filters[c] = filterSet{first: f}
		c.filterCount++
	}
	ag.blocks.forget(c.slot)
}

// filtered reports whether a filter of c covers ag's free resources at time now; the
// caller has prepared ag.blocks for them.
func (a *Allocator) filtered(ag *agent, c *client, now int64) bool {
	if blocked, known := ag.blocks.lookup(c.slot); known {
		return blocked
	}
	blocked, until := a.checkFilters(ag, c, now)
	ag.blocks.store(c.slot, blocked, until)
	return blocked
}

// checkFilters looks at c's filters on ag, dropping expired ones, and reports whether
// they cover ag's free resources and until when.
func (a *Allocator) checkFilters(ag *agent, c *client, now int64) (blocked bool, until int64) {
	set, ok := ag.filters[c]
	if !ok {
		return false, 0
	}
	if set.first.blocks(ag.free, now) && len(set.more) == 0 {
		return true, set.first.expires
	}
	filters := set.all()
	live := slices.DeleteFunc(slices.Clone(filters), func(f offerFilter) bool { return f.expires <= now })
	switch {
	case len(live) == 0:
		delete(ag.filters, c)
		c.filterCount--
	case len(live) < len(filters):
		ag.filters[c] = newFilterSet(live)
	}
	for _, f := range live {
		if f.blocks(ag.free, now) {
			blocked, until = true, max(until, f.expires)
		}
	}
	return blocked, until
}

// clearFilters drops all of c's filters.
func (a *Allocator) clearFilters(c *client) {
	if c.filterCount == 0 {
		return
	}
	for _, ag := range a.agentOrder {
		if _, ok := ag.filters[c]; ok {
			delete(ag.filters, c)
			ag.blocks.forget(c.slot)
		}
	}
	c.filterCount = 0
}
