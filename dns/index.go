package dns

import (
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/lb/vip"
)

// recordIndex keeps the answer table current change by change. It holds the units every
// record comes from (see unit) and, for every name, its records with how many units add
// each (a record two tasks share stays while either has it), how many names below it
// have records (it exists as their parent while any does), and which names' SRV and NS
// records point at it (their additional sections hold its addresses).
//
// Remaking a unit adds its new records before it takes away its old ones, so a record in
// both stays as it was, and marks the names whose answers changed; publish remakes only
// those names' answers and copies only the table shards they are in. A change costs what
// the names it touches cost, whatever the size of the cluster. The set it publishes is
// always the one BuildRecords makes of the same state.
//
// It is not safe for concurrent use; the tables it publishes are.
type recordIndex struct {
	domain string
	ttl    uint32
	nsAddr netip.Addr
	// apexes are the zones' apexes, sorted (as table.zones is).
	apexes []string
	// vipSet keeps the tasks' VIPs, task by task; vipTable is its latest table, and
	// static the VIPs set by hand.
	vipSet   *vip.Set
	vipTable *vip.Table
	static   []VIP

	// The records of each unit, to take away when it is remade (a unit is kept as its
	// records, not its additions: see dataOf).
	zone       []mdns.RR
	masters    []mdns.RR
	vips       []mdns.RR
	agents     map[string][]mdns.RR
	frameworks map[string][]mdns.RR
	tasks      map[taskKey]*taskEntry
	// tasksOnAgent and tasksOfFramework find the tasks to remake when an agent or a
	// framework changes; they hold every task of the cluster, published or not.
	tasksOnAgent     map[string]map[taskKey]struct{}
	tasksOfFramework map[string]map[taskKey]struct{}

	names map[string]*nameState
	// dirty are the names whose answers changed since the last publish.
	dirty map[string]struct{}
	// whole is set until the first publish: every name is new, so none is marked dirty
	// and the first table is made of all of them.
	whole bool
	// count is the number of distinct records.
	count int
	// visits numbers targetAddrs calls.
	visits uint64
	// skipped are the names that the units made since the last takeSkipped could not make.
	skipped []string
	// seed hashes names to table shards and records' data to nameState.index.
	seed   maphash.Seed
	served *table
}

// taskEntry is a task's records and the agent they were made with.
type taskEntry struct {
	agentID string
	rrs     []mdns.RR
}

// nameState is what the index knows of one name.
type nameState struct {
	records []nameRecord
	// index finds records by a hash of their data once there are more than linearDedup.
	index map[uint64]int32
	// scan is set when two records' data had the same hash: their name is scanned.
	scan bool
	// below counts the names under this one, up to its zone's apex, that have records.
	below int
	// referrers are the names whose SRV or NS records have this one as their target.
	referrers []referrer
	// visit is the targetAddrs call that last took this name's addresses.
	visit uint64
}

// nameRecord is one record of a name and the number of units that add it.
type nameRecord struct {
	rr    mdns.RR
	units int32
	// target is the state of an SRV or NS record's target, kept while the record is.
	target *nameState
}

type referrer struct {
	name    string
	records int
}

// linearDedup is how many records a name holds before they are found through a map
// rather than by a scan.
const linearDedup = 32

// newRecordIndex indexes the records of c, its VIPs with addresses from vipRange, and
// the VIPs set by hand; its first publish gives their table.
func newRecordIndex(c *Cluster, vips []VIP, domain string, ttl uint32, nsAddr netip.Addr, vipRange netip.Prefix) *recordIndex {
	ix := &recordIndex{
		domain: domain, ttl: ttl, nsAddr: nsAddr,
		vipSet: vip.NewSet(vipRange), static: vips,
		agents: make(map[string][]mdns.RR, len(c.agents)), frameworks: make(map[string][]mdns.RR, len(c.frameworks)),
		tasks:        make(map[taskKey]*taskEntry, len(c.tasks)),
		tasksOnAgent: map[string]map[taskKey]struct{}{}, tasksOfFramework: map[string]map[taskKey]struct{}{},
		// A task has about two names of its own (its canonical names) and an agent two
		// (its hostname and PTR); the shared ones are few next to them.
		names: make(map[string]*nameState, 2*len(c.tasks)+2*len(c.agents)),
		dirty: map[string]struct{}{},
		whole: true,
		seed:  maphash.MakeSeed(),
	}
	ix.served = &table{seed: ix.seed}
	for _, apex := range zoneApexes(domain) {
		if len(apex) <= maxName && !slices.Contains(ix.apexes, apex) {
			ix.apexes = append(ix.apexes, apex)
		}
	}
	slices.Sort(ix.apexes)
	all := changes{masters: true, agents: map[string]struct{}{}, frameworks: map[string]struct{}{}, tasks: map[taskKey]struct{}{}}
	for id := range c.agents {
		all.agents[id] = struct{}{}
	}
	for id := range c.frameworks {
		all.frameworks[id] = struct{}{}
	}
	for k := range c.tasks {
		all.tasks[k] = struct{}{}
	}
	ix.update(c, all)
	return ix
}

// update remakes the units that ch says changed in c, and those made from them: an
// agent's tasks and the frameworks named by an agent's hostname, a framework's tasks.
func (ix *recordIndex) update(c *Cluster, ch changes) {
	if ch.masters {
		ix.masters = ix.replace(ix.masters, mastersUnit(c.masters, ix.domain))
	}
	remake := map[taskKey]struct{}{}
	for id := range ch.agents {
		var u *unit
		if a, ok := c.agents[id]; ok {
			u = agentUnit(a, ix.domain)
		}
		setOrDelete(ix.agents, id, ix.replace(ix.agents[id], u))
		for k := range ix.tasksOnAgent[id] {
			remake[k] = struct{}{}
		}
	}
	var byHost map[string]netip.Addr
	remakeFramework := func(id string) {
		var u *unit
		if f, ok := c.frameworks[id]; ok {
			if byHost == nil {
				byHost = c.hostAddrs()
			}
			u = frameworkUnit(f, byHost, ix.domain)
		}
		setOrDelete(ix.frameworks, id, ix.replace(ix.frameworks[id], u))
	}
	for id := range ch.frameworks {
		remakeFramework(id)
		for k := range ix.tasksOfFramework[id] {
			remake[k] = struct{}{}
		}
	}
	if len(ch.agents) > 0 {
		// Only a framework named by a hostname depends on the agents.
		for id, f := range c.frameworks {
			if _, done := ch.frameworks[id]; !done && f.Hostname != "" && !isAddr(f.Hostname) {
				remakeFramework(id)
			}
		}
	}
	for k := range ch.tasks {
		ix.remakeTask(c, k)
		delete(remake, k)
	}
	for k := range remake {
		ix.remakeTask(c, k)
	}
	if ix.vipSet.Changed() {
		ix.vipTable = ix.vipSet.Table()
		ix.vips = ix.replace(ix.vips, vipsUnit(ix.static, ix.vipTable))
	}
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// setOrDelete sets m[k] to rrs, or deletes it when there are none.
func setOrDelete(m map[string][]mdns.RR, k string, rrs []mdns.RR) {
	if len(rrs) == 0 {
		delete(m, k)
		return
	}
	m[k] = rrs
}

// remakeTask remakes the unit of the task at key, which may have ended.
func (ix *recordIndex) remakeTask(c *Cluster, key taskKey) {
	old := ix.tasks[key]
	var u *taskUnit
	if t := c.tasks[key]; t != nil {
		u = newTaskUnit(c, t, ix.domain)
	}
	var oldRRs []mdns.RR
	if old != nil {
		oldRRs = old.rrs
		if u == nil || u.agentID != old.agentID {
			unlink(ix.tasksOnAgent, old.agentID, key)
		}
	}
	if u == nil {
		if old != nil {
			unlink(ix.tasksOfFramework, key.frameworkID, key)
			delete(ix.tasks, key)
		}
		ix.replace(oldRRs, nil)
		ix.vipSet.Remove(key.vipID())
		return
	}
	ix.vipSet.Put(key.vipID(), vipTask(c, c.tasks[key]))
	link(ix.tasksOnAgent, u.agentID, key)
	link(ix.tasksOfFramework, key.frameworkID, key)
	ix.tasks[key] = &taskEntry{agentID: u.agentID, rrs: ix.replace(oldRRs, &u.unit)}
}

func link(m map[string]map[taskKey]struct{}, id string, key taskKey) {
	m[id] = markKey(m[id], key)
}

func unlink(m map[string]map[taskKey]struct{}, id string, key taskKey) {
	delete(m[id], key)
	if len(m[id]) == 0 {
		delete(m, id)
	}
}

// setVIPs replaces the VIPs set by hand.
func (ix *recordIndex) setVIPs(vips []VIP) {
	ix.static = vips
	ix.vips = ix.replace(ix.vips, vipsUnit(vips, ix.vipTable))
}

// replace swaps the records old of a unit for those of its remade unit next (nil: it is
// gone), and returns the new records.
func (ix *recordIndex) replace(old []mdns.RR, next *unit) []mdns.RR {
	var rrs []mdns.RR
	if next != nil {
		rrs = make([]mdns.RR, len(next.adds))
		for i, a := range next.adds {
			rrs[i] = ix.addRecord(a.name, a.data)
		}
		ix.skipped = append(ix.skipped, next.skipped...)
	}
	for _, rr := range old {
		ix.removeRecord(rr.Header().Name, dataOf(rr))
	}
	return rrs
}

// dataOf is the data a record was made with (by newRR).
func dataOf(rr mdns.RR) rrData {
	d := rrData{rrtype: rr.Header().Rrtype}
	switch rr := rr.(type) {
	case *mdns.A:
		d.addr, _ = netip.AddrFromSlice(rr.A)
	case *mdns.AAAA:
		d.addr, _ = netip.AddrFromSlice(rr.AAAA)
	case *mdns.SRV:
		d.target, d.port = rr.Target, rr.Port
	case *mdns.PTR:
		d.target = rr.Ptr
	case *mdns.NS:
		d.target = rr.Ns
	case *mdns.SOA:
		d.target, d.serial = rr.Ns, rr.Serial
	}
	return d
}

// takeSkipped returns the names that units made since the last call could not make.
func (ix *recordIndex) takeSkipped() []string {
	s := ix.skipped
	ix.skipped = nil
	return s
}

func (ix *recordIndex) state(name string) *nameState {
	st := ix.names[name]
	if st == nil {
		st = &nameState{}
		ix.names[name] = st
	}
	return st
}

// forget drops the state of a name that nothing needs any more.
func (ix *recordIndex) forget(name string) {
	if st := ix.names[name]; st != nil && len(st.records) == 0 && st.below == 0 && len(st.referrers) == 0 {
		delete(ix.names, name)
	}
}

// addRecord counts one more unit adding the record of name with data, and returns the
// record.
func (ix *recordIndex) addRecord(name string, data rrData) mdns.RR {
	st := ix.state(name)
	if i := st.find(ix.seed, data); i >= 0 {
		st.records[i].units++
		return st.records[i].rr
	}
	r := nameRecord{rr: newRR(name, data, ix.ttl), units: 1}
	if hasTarget(data.rrtype) {
		r.target = ix.refer(data.target, name, +1)
	}
	st.insert(ix.seed, data, r)
	ix.count++
	ix.touched(name, st, data.rrtype, +1)
	return r.rr
}

func (ix *recordIndex) removeRecord(name string, data rrData) {
	st := ix.names[name]
	if st == nil {
		return
	}
	i := st.find(ix.seed, data)
	if i < 0 {
		return
	}
	if st.records[i].units--; st.records[i].units > 0 {
		return
	}
	st.removeAt(ix.seed, i, data)
	ix.count--
	ix.touched(name, st, data.rrtype, -1)
	if hasTarget(data.rrtype) {
		ix.refer(data.target, name, -1)
	}
	ix.forget(name)
}

// hasTarget reports whether records of rrtype name a target whose addresses go in the
// additional section.
func hasTarget(rrtype uint16) bool { return rrtype == mdns.TypeSRV || rrtype == mdns.TypeNS }

// touched marks what changes when name gains (delta +1) or loses (-1) a record of
// rrtype: its answers, the additional sections of the names pointing at its addresses,
// and its parents when it has records no more or again.
func (ix *recordIndex) touched(name string, st *nameState, rrtype uint16, delta int) {
	if !ix.whole {
		ix.dirty[name] = struct{}{}
	}
	if !ix.whole && (rrtype == mdns.TypeA || rrtype == mdns.TypeAAAA) {
		for _, r := range st.referrers {
			ix.dirty[r.name] = struct{}{}
		}
	}
	if delta > 0 && len(st.records) == 1 || delta < 0 && len(st.records) == 0 {
		ix.parents(name, delta)
	}
}

// refer counts a record of name from that has target as its target (delta +1), or one
// less (-1), and returns the target's state.
func (ix *recordIndex) refer(target, from string, delta int) *nameState {
	st := ix.state(target)
	i := slices.IndexFunc(st.referrers, func(r referrer) bool { return r.name == from })
	switch {
	case i < 0 && delta > 0:
		st.referrers = append(st.referrers, referrer{name: from, records: 1})
	case i >= 0:
		if st.referrers[i].records += delta; st.referrers[i].records == 0 {
			last := len(st.referrers) - 1
			st.referrers[i] = st.referrers[last]
			st.referrers = st.referrers[:last]
		}
	}
	if delta < 0 {
		ix.forget(target)
	}
	return st
}

// parents counts name, which got its first record (delta +1) or lost its last (-1), in
// the names between it and the apex of the outermost zone it is in: they exist while a
// name under them has records.
func (ix *recordIndex) parents(name string, delta int) {
	apex := ""
	for _, a := range ix.apexes {
		if inZone(name, a) && (apex == "" || len(a) < len(apex)) {
			apex = a
		}
	}
	if apex == "" {
		return
	}
	for name != apex {
		_, name, _ = strings.Cut(name, ".")
		if name == apex {
			return
		}
		st := ix.state(name)
		st.below += delta
		if !ix.whole && len(st.records) == 0 && (delta > 0 && st.below == 1 || delta < 0 && st.below == 0) {
			ix.dirty[name] = struct{}{}
		}
		if delta < 0 {
			ix.forget(name)
		}
	}
}

// hashData hashes a record's data for nameState.index.
func hashData(seed maphash.Seed, data rrData) uint64 { return maphash.Comparable(seed, data) }

// find returns the position of the record with data, -1 when there is none.
func (st *nameState) find(seed maphash.Seed, data rrData) int {
	if st.index != nil {
		if i, ok := st.index[hashData(seed, data)]; ok && dataOf(st.records[i].rr) == data {
			return int(i)
		}
		return -1
	}
	for i := range st.records {
		if dataOf(st.records[i].rr) == data {
			return i
		}
	}
	return -1
}

func (st *nameState) insert(seed maphash.Seed, data rrData, r nameRecord) {
	st.records = append(st.records, r)
	switch {
	case st.index != nil:
		h := hashData(seed, data)
		if _, taken := st.index[h]; taken {
			st.index, st.scan = nil, true
			return
		}
		st.index[h] = int32(len(st.records) - 1)
	case !st.scan && len(st.records) > linearDedup:
		st.index = make(map[uint64]int32, len(st.records))
		for i, r := range st.records {
			h := hashData(seed, dataOf(r.rr))
			if _, taken := st.index[h]; taken {
				st.index, st.scan = nil, true
				return
			}
			st.index[h] = int32(i)
		}
	}
}

// removeAt removes the record at i, whose data is data, moving the last one into its
// place.
func (st *nameState) removeAt(seed maphash.Seed, i int, data rrData) {
	last := len(st.records) - 1
	if st.index != nil {
		delete(st.index, hashData(seed, data))
		if i != last {
			st.index[hashData(seed, dataOf(st.records[last].rr))] = int32(i)
		}
	}
	st.records[i] = st.records[last]
	st.records[last] = nameRecord{}
	st.records = st.records[:last]
}

// changed reports whether any name's answers changed since the last publish.
func (ix *recordIndex) changed() bool { return ix.whole || len(ix.dirty) > 0 }

// publish gives the zone the SOA serial and returns the table with the changes since the
// last publish: the names that changed get new answers, the shards holding them are
// copied, everything else is shared with the previous table.
func (ix *recordIndex) publish(serial uint32) *table {
	ix.zone = ix.replace(ix.zone, zoneUnit(ix.domain, serial, ix.nsAddr))
	prev := ix.served
	next := &table{seed: prev.seed, shards: prev.shards}
	if ix.whole {
		ix.whole = false
		for name, st := range ix.names {
			if len(st.records) > 0 || st.below > 0 {
				i := shardOf(next.seed, name)
				if next.shards[i] == nil {
					next.shards[i] = make(map[string]*rrset, 2*len(ix.names)/numShards)
				}
				next.shards[i][name] = ix.answers(st)
			}
		}
	}
	var copied [numShards]bool
	for name := range ix.dirty {
		i := shardOf(next.seed, name)
		if !copied[i] {
			copied[i] = true
			if next.shards[i] = maps.Clone(prev.shards[i]); next.shards[i] == nil {
				next.shards[i] = map[string]*rrset{}
			}
		}
		if st := ix.names[name]; st != nil && (len(st.records) > 0 || st.below > 0) {
			next.shards[i][name] = ix.answers(st)
		} else {
			delete(next.shards[i], name)
		}
	}
	clear(ix.dirty)
	for _, apex := range ix.apexes {
		if st := ix.names[apex]; st != nil {
			for _, r := range st.records {
				if soa, ok := r.rr.(*mdns.SOA); ok {
					negative := *soa
					negative.Hdr.Ttl = min(negative.Hdr.Ttl, negative.Minttl)
					next.zones = append(next.zones, zone{apex: apex, negative: &negative})
				}
			}
		}
	}
	ix.served = next
	return next
}

// answers makes the answers of a name: its records by type, and the addresses of its
// SRV and NS targets.
func (ix *recordIndex) answers(st *nameState) *rrset {
	set := &rrset{}
	var counts [len(rrsetTypes)]uint32
	for _, r := range st.records {
		counts[typeIndex(r.rr.Header().Rrtype)]++
	}
	var starts [len(rrsetTypes)]uint32
	end := uint32(0)
	for i, n := range counts {
		starts[i] = end
		end += n
		set.ends[i] = end
	}
	set.all = make([]mdns.RR, end)
	for _, r := range st.records {
		i := typeIndex(r.rr.Header().Rrtype)
		set.all[starts[i]] = r.rr
		starts[i]++
	}
	if counts[typeIndex(mdns.TypeSRV)] > 0 {
		set.srvExtra = ix.targetAddrs(st, mdns.TypeSRV)
	}
	if counts[typeIndex(mdns.TypeNS)] > 0 {
		set.nsExtra = ix.targetAddrs(st, mdns.TypeNS)
	}
	return set
}

// typeIndex is the position of rrtype in rrsetTypes.
func typeIndex(rrtype uint16) int {
	for i, t := range rrsetTypes {
		if t == rrtype {
			return i
		}
	}
	return len(rrsetTypes) - 1
}

// targetAddrs returns the A and AAAA records of the targets of st's records of rrtype
// (SRV or NS), each target once.
func (ix *recordIndex) targetAddrs(st *nameState, rrtype uint16) []mdns.RR {
	ix.visits++
	var extra []mdns.RR
	for _, r := range st.records {
		target := r.target
		if r.rr.Header().Rrtype != rrtype || target.visit == ix.visits {
			continue
		}
		target.visit = ix.visits
		for _, addrType := range [...]uint16{mdns.TypeA, mdns.TypeAAAA} {
			for _, tr := range target.records {
				if tr.rr.Header().Rrtype == addrType {
					extra = append(extra, tr.rr)
				}
			}
		}
	}
	return extra
}
