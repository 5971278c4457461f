package dns

import (
	"encoding/binary"
	"math/rand/v2"
	"unsafe"

	mdns "github.com/miekg/dns"
)

// The UDP fast path: the common query — one question in class IN for a name of the
// answer table that has records of its type, with or without a plain EDNS0 OPT —
// is answered straight from the query's bytes and the name's records in wire format,
// without unpacking the query or packing the answer record by record. The answer is the
// one the general path (ServeDNS) packs, byte for byte but for the order of the shuffled
// records: every other query, and an answer that does not fit, takes the general path.

// rrsetWire is an rrset's records in wire format, each packed on its own and
// uncompressed, as the general path packs an answer that fits.
type rrsetWire struct {
	// all are the records of rrset.all one after the other; record i ends at ends[i].
	all  []byte
	ends []uint32
	// srvExtra and nsExtra are rrset.srvExtra and nsExtra, packed.
	srvExtra, nsExtra []byte
}

// wireOf returns set's records in wire format, packing them on first use; nil when
// they cannot be packed.
func (set *rrset) wireOf() *rrsetWire {
	if w := set.wire.Load(); w != nil {
		return w
	}
	all, ok := packRRs(set.all)
	srvExtra, srvOK := packRRs(set.srvExtra)
	nsExtra, nsOK := packRRs(set.nsExtra)
	if !ok || !srvOK || !nsOK {
		return nil
	}
	w := &rrsetWire{all: all, ends: make([]uint32, len(set.all)), srvExtra: srvExtra, nsExtra: nsExtra}
	end := 0
	for i, rr := range set.all {
		end += mdns.Len(rr)
		w.ends[i] = uint32(end)
	}
	if end != len(all) {
		return nil
	}
	// Queries racing here pack the same bytes; any of them may stay.
	set.wire.Store(w)
	return w
}

// packRRs packs rrs one after the other, uncompressed, as a message's section (Msg.Pack
// leaves the records as they are, unlike PackRR, which writes their Rdlength).
func packRRs(rrs []mdns.RR) ([]byte, bool) {
	if len(rrs) == 0 {
		return nil, true
	}
	m := mdns.Msg{Answer: rrs}
	packed, err := m.Pack()
	if err != nil || len(packed) < headerSize {
		return nil, false
	}
	return packed[headerSize:], true
}

// wireScratch is what answerWire works in, reused query after query by one goroutine.
type wireScratch struct {
	name  []byte
	order []uint32
}

// Header bits (RFC 1035 4.1.1).
const (
	bitQR = 1 << 15
	bitAA = 1 << 10
	bitRD = 1 << 8
	bitRA = 1 << 7
	bitCD = 1 << 4
	// opcodeMask covers the opcode.
	opcodeMask = 0xf << 11
)

// optLen is the length of the answer's OPT record: root name, type, class, TTL, empty
// RDATA.
const optLen = 11

// answerWire appends to buf the answer to the UDP query raw when the fast path takes it
// (see above); false sends the query down the general path.
func (s *Server) answerWire(raw, buf []byte, scratch *wireScratch) ([]byte, bool) {
	q, ok := parsePlainQuery(raw, scratch)
	if !ok {
		return nil, false
	}
	t := s.table.Load()
	// A view of the scratch name for the lookups, which keep no reference to it.
	name := unsafe.String(unsafe.SliceData(scratch.name), len(scratch.name))
	set := t.lookup(name)
	if set == nil || t.zoneOf(name) == nil {
		return nil, false
	}
	start, end := uint32(0), uint32(len(set.all))
	if q.qtype != mdns.TypeANY {
		start, end = set.span(q.qtype)
	}
	if start == end {
		return nil, false
	}
	w := set.wireOf()
	if w == nil {
		return nil, false
	}
	var extra []byte
	extraCount := 0
	switch q.qtype {
	case mdns.TypeSRV:
		extra, extraCount = w.srvExtra, len(set.srvExtra)
	case mdns.TypeNS:
		extra, extraCount = w.nsExtra, len(set.nsExtra)
	}
	answerStart := uint32(0)
	if start > 0 {
		answerStart = w.ends[start-1]
	}
	size := mdns.MinMsgSize
	if q.edns {
		size = int(min(max(q.udpSize, mdns.MinMsgSize), s.cfg.UDPSize))
		extraCount++
	}
	length := q.end + int(w.ends[end-1]-answerStart) + len(extra)
	if q.edns {
		length += optLen
	}
	if length > size {
		return nil, false
	}

	bits := uint16(bitQR|bitAA) | q.bits&(bitRD|bitCD)
	if len(s.upstreams) > 0 {
		bits |= bitRA
	}
	buf = binary.BigEndian.AppendUint16(buf, q.id)
	buf = binary.BigEndian.AppendUint16(buf, bits)
	buf = binary.BigEndian.AppendUint16(buf, 1)
	buf = binary.BigEndian.AppendUint16(buf, uint16(end-start))
	buf = binary.BigEndian.AppendUint16(buf, 0)
	buf = binary.BigEndian.AppendUint16(buf, uint16(extraCount))
	buf = append(buf, raw[headerSize:q.end]...)
	order := scratch.order[:0]
	for i := start; i < end; i++ {
		order = append(order, i)
	}
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	scratch.order = order
	for _, i := range order {
		from := uint32(0)
		if i > 0 {
			from = w.ends[i-1]
		}
		buf = append(buf, w.all[from:w.ends[i]]...)
	}
	buf = append(buf, extra...)
	if q.edns {
		var ttl uint32
		if q.do {
			ttl = 1 << 15
		}
		buf = append(buf, 0)
		buf = binary.BigEndian.AppendUint16(buf, mdns.TypeOPT)
		buf = binary.BigEndian.AppendUint16(buf, s.cfg.UDPSize)
		buf = binary.BigEndian.AppendUint32(buf, ttl)
		buf = binary.BigEndian.AppendUint16(buf, 0)
	}
	s.metrics.queries[outAnswer].Inc()
	return buf, true
}

// plainQuery is a query the fast path takes.
type plainQuery struct {
	id, bits uint16
	qtype    uint16
	// end is where the question ends (and the OPT record, if any, starts).
	end int
	// edns is set when the query has an OPT record (version 0, no options), with the
	// client's UDP size and DO bit.
	edns    bool
	udpSize uint16
	do      bool
}

// parsePlainQuery reads raw when it is a query the fast path takes, putting its name in
// lowercase presentation format ("web.marathon.mesos.") in scratch.name: a query
// (opcode QUERY) of one question in class IN and nothing else but an OPT record of
// EDNS version 0 without options, whose name is uncompressed and made only of letters,
// digits, '-' and '_' (so the general path's unpacking and packing of the question
// gives back its bytes). Anything else, valid or not, is left to the general path.
func parsePlainQuery(raw []byte, scratch *wireScratch) (plainQuery, bool) {
	var q plainQuery
	if len(raw) < headerSize {
		return q, false
	}
	q.id = binary.BigEndian.Uint16(raw)
	q.bits = binary.BigEndian.Uint16(raw[2:])
	qdcount, ancount := binary.BigEndian.Uint16(raw[4:]), binary.BigEndian.Uint16(raw[6:])
	nscount, arcount := binary.BigEndian.Uint16(raw[8:]), binary.BigEndian.Uint16(raw[10:])
	if q.bits&(bitQR|opcodeMask) != 0 || qdcount != 1 || ancount != 0 || nscount != 0 || arcount > 1 {
		return q, false
	}
	name := scratch.name[:0]
	off := headerSize
	for {
		if off >= len(raw) {
			return q, false
		}
		n := int(raw[off])
		off++
		if n == 0 {
			break
		}
		if n > 63 || off+n > len(raw) {
			return q, false
		}
		for _, c := range raw[off : off+n] {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				return q, false
			}
			name = append(name, c)
		}
		name = append(name, '.')
		off += n
	}
	scratch.name = name
	// The wire name (labels and the root) is off-headerSize bytes long; at most 255.
	if len(name) == 0 || off-headerSize > 255 || off+4 > len(raw) {
		return q, false
	}
	q.qtype = binary.BigEndian.Uint16(raw[off:])
	if binary.BigEndian.Uint16(raw[off+2:]) != mdns.ClassINET {
		return q, false
	}
	off += 4
	q.end = off
	if arcount == 1 {
		// Root name, type OPT, class (UDP size), TTL (extended rcode, version, flags),
		// RDLENGTH 0.
		if off+optLen != len(raw) || raw[off] != 0 || binary.BigEndian.Uint16(raw[off+1:]) != mdns.TypeOPT ||
			raw[off+6] != 0 || binary.BigEndian.Uint16(raw[off+9:]) != 0 {
			return q, false
		}
		q.edns = true
		q.udpSize = binary.BigEndian.Uint16(raw[off+3:])
		q.do = raw[off+7]&0x80 != 0
		off += optLen
	}
	return q, off == len(raw)
}
