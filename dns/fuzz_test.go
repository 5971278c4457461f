package dns

import (
	"encoding/binary"
	"log/slog"
	"net"
	"testing"

	mdns "github.com/miekg/dns"
)

// recorder is an mdns.ResponseWriter that keeps what the handler writes.
type recorder struct {
	tcp    bool
	writes [][]byte
}

// The recorder's addresses, made once so benchmarks count only the server's allocations.
var (
	recorderTCP    = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	recorderUDP    = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	recorderRemote = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 4242}
)

func (r *recorder) LocalAddr() net.Addr {
	if r.tcp {
		return recorderTCP
	}
	return recorderUDP
}

func (r *recorder) RemoteAddr() net.Addr { return recorderRemote }

func (r *recorder) WriteMsg(m *mdns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = r.Write(b)
	return err
}

func (r *recorder) Write(b []byte) (int, error) {
	r.writes = append(r.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

var _ mdns.ResponseWriter = (*recorder)(nil)

// FuzzServeDNS feeds arbitrary messages to the query handler the way the miekg/dns server
// does (what fails to unpack or is rejected by its accept function gets FORMERR there,
// tested in TestMalformedOverUDP). The handler must write exactly one reply that unpacks,
// answers the query's id, fits UDP limits and has a fitting rcode; it must never panic.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  uint16
	}{
		{"web-grp.marathon.mesos.", mdns.TypeA, 0},
		{"_web-grp._tcp.marathon.mesos.", mdns.TypeSRV, 4096},
		{"5.0.17.172.in-addr.arpa.", mdns.TypePTR, 0},
		{"mesos.", mdns.TypeSOA, 1232},
		{"mesos.", mdns.TypeANY, 512},
		{"nope.mesos.", mdns.TypeA, 0},
		{"example.org.", mdns.TypeA, 0},
		{".", mdns.TypeNS, 0},
	} {
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		if q.edns > 0 {
			m.SetEdns0(q.edns, true)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}, false)
	// Not f.Log: the server logs from its own goroutines, and F may not log once Fuzz runs.
	s := serveFixture(f, func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) })
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		if len(raw) < 12 {
			return
		}
		hdr := mdns.Header{Id: binary.BigEndian.Uint16(raw), Bits: binary.BigEndian.Uint16(raw[2:]),
			Qdcount: binary.BigEndian.Uint16(raw[4:]), Ancount: binary.BigEndian.Uint16(raw[6:]),
			Nscount: binary.BigEndian.Uint16(raw[8:]), Arcount: binary.BigEndian.Uint16(raw[10:])}
		if mdns.DefaultMsgAcceptFunc(hdr) != mdns.MsgAccept {
			return
		}
		req := new(mdns.Msg)
		if err := req.Unpack(raw); err != nil {
			return
		}
		w := &recorder{tcp: tcp}
		s.ServeDNS(w, req)
		if len(w.writes) != 1 {
			t.Fatalf("%d replies, want 1", len(w.writes))
		}
		reply := w.writes[0]
		if !tcp && len(reply) > s.udpSize(req) {
			t.Fatalf("%d-byte UDP reply, client takes %d", len(reply), s.udpSize(req))
		}
		resp := new(mdns.Msg)
		if err := resp.Unpack(reply); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("reply id %d response %v, want id %d", resp.Id, resp.Response, req.Id)
		}
		switch resp.Rcode {
		case mdns.RcodeSuccess, mdns.RcodeNameError, mdns.RcodeRefused, mdns.RcodeFormatError, mdns.RcodeNotImplemented, mdns.RcodeBadVers:
		default:
			t.Fatalf("rcode %s", mdns.RcodeToString[resp.Rcode])
		}
		if (resp.IsEdns0() != nil) != (req.IsEdns0() != nil) {
			t.Fatalf("reply OPT %v for query OPT %v", resp.IsEdns0(), req.IsEdns0())
		}
	})
}
