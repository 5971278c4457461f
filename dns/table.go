package dns

import (
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// table answers queries from one record set. It is built once and never changed, so any
// number of queries read it while the next one is built; the server swaps tables
// atomically.
type table struct {
	names   map[string]*rrset
	zones   []zone
	records *Records
}

// zone is a zone answered with authority.
type zone struct {
	apex string
	// negative is the SOA put in the authority section of NXDOMAIN and NODATA answers,
	// its TTL the negative-caching time (RFC 2308).
	negative mdns.RR
}

// rrset holds the records of one name by type; a name with none of its own exists as the
// parent of others (an empty non-terminal: NODATA, not NXDOMAIN).
type rrset struct {
	a, aaaa, srv, ptr, soa, ns []mdns.RR
	// srvExtra and nsExtra are the addresses of the SRV and NS targets, for the
	// additional section.
	srvExtra, nsExtra []mdns.RR

	// entries, then index once there are more than linearDedup, find duplicates while
	// the set is built; newTable drops them.
	entries []setEntry
	index   map[rrData]mdns.RR
}

type setEntry struct {
	data rrData
	rr   mdns.RR
}

// find returns the record with data, nil when there is none.
func (set *rrset) find(data rrData) mdns.RR {
	if set.index != nil {
		return set.index[data]
	}
	for _, e := range set.entries {
		if e.data == data {
			return e.rr
		}
	}
	return nil
}

func (set *rrset) insert(data rrData, rr mdns.RR) {
	switch data.rrtype {
	case mdns.TypeA:
		set.a = append(set.a, rr)
	case mdns.TypeAAAA:
		set.aaaa = append(set.aaaa, rr)
	case mdns.TypeSRV:
		set.srv = append(set.srv, rr)
	case mdns.TypePTR:
		set.ptr = append(set.ptr, rr)
	case mdns.TypeSOA:
		set.soa = append(set.soa, rr)
	case mdns.TypeNS:
		set.ns = append(set.ns, rr)
	}
	if set.index != nil {
		set.index[data] = rr
		return
	}
	set.entries = append(set.entries, setEntry{data, rr})
	if len(set.entries) > linearDedup {
		set.index = make(map[rrData]mdns.RR, 2*len(set.entries))
		for _, e := range set.entries {
			set.index[e.data] = e.rr
		}
		set.entries = nil
	}
}

func newTable(recs *Records) *table {
	t := &table{names: recs.names, records: recs}
	for _, set := range t.names {
		set.entries, set.index = nil, nil
		for _, rr := range set.soa {
			soa := *rr.(*mdns.SOA)
			soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
			t.zones = append(t.zones, zone{apex: soa.Hdr.Name, negative: &soa})
		}
	}
	// Map order must not decide which zone a name is matched against first.
	slices.SortFunc(t.zones, func(x, y zone) int { return strings.Compare(x.apex, y.apex) })
	// Parents added while ranging may or may not be visited; theirs are added already.
	for name := range t.names {
		for _, z := range t.zones {
			t.addParents(name, z.apex)
		}
	}
	for _, set := range t.names {
		set.srvExtra, set.nsExtra = nil, nil
		for _, rr := range set.srv {
			set.srvExtra = t.appendAddrs(set.srvExtra, rr.(*mdns.SRV).Target)
		}
		for _, rr := range set.ns {
			set.nsExtra = t.appendAddrs(set.nsExtra, rr.(*mdns.NS).Ns)
		}
	}
	return t
}

// addParents makes every name between name and the zone apex exist, when name is in the
// zone.
func (t *table) addParents(name, apex string) {
	if name == apex || !inZone(name, apex) {
		return
	}
	for {
		_, name, _ = strings.Cut(name, ".")
		if name == apex || t.names[name] != nil {
			return
		}
		t.names[name] = &rrset{}
	}
}

// inZone reports whether name is apex or below it (both lowercase and fully qualified).
func inZone(name, apex string) bool {
	return name == apex || len(name) > len(apex) && strings.HasSuffix(name, apex) && name[len(name)-len(apex)-1] == '.'
}

// appendAddrs appends target's address records to extra, each once.
func (t *table) appendAddrs(extra []mdns.RR, target string) []mdns.RR {
	set := t.names[target]
	if set == nil {
		return extra
	}
	for _, rr := range slices.Concat(set.a, set.aaaa) {
		if !containsRR(extra, rr) {
			extra = append(extra, rr)
		}
	}
	return extra
}

func containsRR(rrs []mdns.RR, rr mdns.RR) bool {
	for _, have := range rrs {
		if have == rr {
			return true
		}
	}
	return false
}

// zoneOf returns the zone name (lowercase, fully qualified) is in, nil when none.
func (t *table) zoneOf(name string) *zone {
	for i := range t.zones {
		if inZone(name, t.zones[i].apex) {
			return &t.zones[i]
		}
	}
	return nil
}

// lookup returns the records of name for qtype and those for the additional section.
func (set *rrset) lookup(qtype uint16) (answer, extra []mdns.RR) {
	switch qtype {
	case mdns.TypeA:
		return set.a, nil
	case mdns.TypeAAAA:
		return set.aaaa, nil
	case mdns.TypeSRV:
		return set.srv, set.srvExtra
	case mdns.TypePTR:
		return set.ptr, nil
	case mdns.TypeSOA:
		return set.soa, nil
	case mdns.TypeNS:
		return set.ns, set.nsExtra
	case mdns.TypeANY:
		var all []mdns.RR
		for _, rrs := range [][]mdns.RR{set.soa, set.ns, set.a, set.aaaa, set.srv, set.ptr} {
			all = append(all, rrs...)
		}
		return all, nil
	}
	return nil, nil
}
