package dns

import (
	"hash/maphash"
	"strings"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

// shardBits sets the number of shards of an answer table (1<<shardBits): a change copies
// only the shards of the names it touches, so more shards make small changes cheaper and
// each table a little bigger (a pointer per shard).
const shardBits = 9

const numShards = 1 << shardBits

// table answers queries from one record set. It is never changed once published, so any
// number of queries read it without locks while the next one is made; the server swaps
// tables atomically. Names are spread over shards by hash; the next table shares every
// shard (and every name's answers) that did not change.
type table struct {
	seed   maphash.Seed
	shards [numShards]map[string]*rrset
	zones  []zone
}

// zone is a zone answered with authority.
type zone struct {
	apex string
	// negative is the SOA put in the authority section of NXDOMAIN and NODATA answers,
	// its TTL the negative-caching time (RFC 2308).
	negative mdns.RR
}

// shardOf returns the shard name is kept in.
func shardOf(seed maphash.Seed, name string) int {
	return int(maphash.String(seed, name) & (numShards - 1))
}

// lookup returns the answers of name (lowercase, fully qualified); nil when it does not
// exist.
func (t *table) lookup(name string) *rrset {
	return t.shards[shardOf(t.seed, name)][name]
}

// rrset holds the answers of one name; a name with no records of its own exists as the
// parent of others (an empty non-terminal: NODATA, not NXDOMAIN).
type rrset struct {
	// all are the records by type in the order of rrsetTypes; ends[i] is where type i's
	// end.
	all  []mdns.RR
	ends [len(rrsetTypes)]uint32
	// srvExtra and nsExtra are the addresses of the SRV and NS targets, for the
	// additional section.
	srvExtra, nsExtra []mdns.RR
	// wire is the records in wire format, made when the name is first asked for over
	// UDP (see answerWire).
	wire atomic.Pointer[rrsetWire]
}

// rrsetTypes are the types a name has records of, in the order ANY answers them.
var rrsetTypes = [...]uint16{mdns.TypeSOA, mdns.TypeNS, mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypePTR}

// records returns the records of qtype, one of rrsetTypes.
func (set *rrset) records(qtype uint16) []mdns.RR {
	start, end := set.span(qtype)
	return set.all[start:end:end]
}

// span returns where the records of qtype are in all; empty when qtype is not one of
// rrsetTypes.
func (set *rrset) span(qtype uint16) (start, end uint32) {
	for i, t := range rrsetTypes {
		if t == qtype {
			return start, set.ends[i]
		}
		start = set.ends[i]
	}
	return 0, 0
}

// addrs returns the A and AAAA records (next to each other in all: after SOA and NS).
func (set *rrset) addrs() []mdns.RR {
	return set.all[set.ends[1]:set.ends[3]:set.ends[3]]
}

// lookup returns the records of name for qtype and those for the additional section.
func (set *rrset) lookup(qtype uint16) (answer, extra []mdns.RR) {
	switch qtype {
	case mdns.TypeSRV:
		return set.records(qtype), set.srvExtra
	case mdns.TypeNS:
		return set.records(qtype), set.nsExtra
	case mdns.TypeANY:
		return set.all, nil
	}
	return set.records(qtype), nil
}

// inZone reports whether name is apex or below it (both lowercase and fully qualified).
func inZone(name, apex string) bool {
	return name == apex || len(name) > len(apex) && strings.HasSuffix(name, apex) && name[len(name)-len(apex)-1] == '.'
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
