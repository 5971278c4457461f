package dns

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestUDPConcurrentQueries: 8 clients with up to 16 queries each in flight, 2,000 in
// all, against a server reading two sockets in batches; every query gets exactly one
// reply, with its id, its question as sent (letter case included) and its answer. The
// names alternate between the fast path (an agent's A record) and the general one
// (NXDOMAIN), so batches mix both.
func TestUDPConcurrentQueries(t *testing.T) {
	const agents, clients, perClient, window = 200, 8, 250, 16
	s := serveCluster(t, bigCluster(agents), nil, func(c *Config) { c.UDPSockets = 2 })
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			if err := queryWindow(s, c, perClient, window, agents); err != nil {
				t.Errorf("client %d: %v", c, err)
			}
		})
	}
	wg.Wait()
}

// queryWindow sends n queries from one socket, window at a time, and checks each reply.
func queryWindow(s *Server, client, n, window, agents int) error {
	conn, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		return err
	}
	defer conn.Close()
	type sent struct {
		name   string
		answer string // "" for NXDOMAIN
	}
	outstanding := map[uint16]sent{}
	buf := make([]byte, 4096)
	next := 0
	for answered := 0; answered < n; answered++ {
		for next < n && len(outstanding) < window {
			agent := (client*n + next) % agents
			q := sent{name: fmt.Sprintf("node-%d.agent.mesos.", agent),
				answer: fmt.Sprintf("node-%d.agent.mesos.\t60\tIN\tA\t10.1.%d.%d", agent, agent/250, agent%250+1)}
			switch next % 4 {
			case 1:
				q.name = strings.ToUpper(q.name[:1]) + q.name[1:]
			case 2:
				q.name, q.answer = fmt.Sprintf("Nope-%d-%d.mesos.", client, next), ""
			}
			req := new(mdns.Msg)
			req.SetQuestion(q.name, mdns.TypeA)
			req.Id = uint16(next)
			if next%3 == 0 {
				req.SetEdns0(1232, false)
			}
			raw, err := req.Pack()
			if err != nil {
				return err
			}
			if _, err := conn.Write(raw); err != nil {
				return err
			}
			outstanding[req.Id] = q
			next++
		}
		if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			return err
		}
		m, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("%d of %d answered: %w", answered, n, err)
		}
		resp := new(mdns.Msg)
		if err := resp.Unpack(buf[:m]); err != nil {
			return err
		}
		q, ok := outstanding[resp.Id]
		if !ok {
			return fmt.Errorf("reply with id %d, which no query in flight has", resp.Id)
		}
		delete(outstanding, resp.Id)
		if len(resp.Question) != 1 || resp.Question[0].Name != q.name {
			return fmt.Errorf("id %d: question %v, want %s", resp.Id, resp.Question, q.name)
		}
		want, wantRcode := []string{q.answer}, mdns.RcodeSuccess
		if q.answer == "" {
			want, wantRcode = []string{}, mdns.RcodeNameError
		}
		if got := rrStrings(resp.Answer); resp.Rcode != wantRcode || !slices.Equal(got, want) {
			return fmt.Errorf("id %d %s: rcode %s answer %q, want %s %q", resp.Id, q.name, mdns.RcodeToString[resp.Rcode], got,
				mdns.RcodeToString[wantRcode], want)
		}
	}
	return nil
}

// generalAnswer is the answer of the general path (what a UDP query that the fast path
// does not take gets) to the query raw.
func generalAnswer(t testing.TB, s *Server, raw []byte) []byte {
	t.Helper()
	req := new(mdns.Msg)
	if err := req.Unpack(raw); err != nil {
		t.Fatalf("query the fast path took does not unpack: %v", err)
	}
	w := &recorder{}
	s.ServeDNS(w, req)
	if len(w.writes) != 1 {
		t.Fatalf("general path: %d replies, want 1", len(w.writes))
	}
	return w.writes[0]
}

// sameAnswer fails unless the fast path's answer is the general path's: the same bytes
// up to the end of the question, the same length, the same message but for the order
// of the answer records.
func sameAnswer(t testing.TB, fast, general []byte, questionEnd int) {
	t.Helper()
	canonical := func(b []byte) string {
		m := new(mdns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatalf("answer does not unpack: %v", err)
		}
		slices.SortFunc(m.Answer, func(x, y mdns.RR) int { return strings.Compare(x.String(), y.String()) })
		return m.String()
	}
	if len(fast) != len(general) || !bytes.Equal(fast[:questionEnd], general[:questionEnd]) {
		t.Fatalf("fast path answer (%d bytes):\n% x\ngeneral (%d bytes):\n% x", len(fast), fast, len(general), general)
	}
	if f, g := canonical(fast), canonical(general); f != g {
		t.Fatalf("fast path answer:\n%s\ngeneral:\n%s", f, g)
	}
}

// TestAnswerWire: the fast path answers exactly as the general path does, for every
// name of the fixture and of a large app, many types, with and without EDNS0, in any
// letter case and with the header bits a client may set; and it leaves to the general
// path what it must.
func TestAnswerWire(t *testing.T) {
	f := loadFixture(t, "cluster.json")
	for _, tc := range []struct {
		name      string
		cluster   *Cluster
		upstreams bool
	}{
		{"fixture", NewCluster(f.Masters, &f.GetState), false},
		{"fixture with upstreams", NewCluster(f.Masters, &f.GetState), true},
		{"app of 20 tasks", bigCluster(20), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := []func(*Config){}
			if tc.upstreams {
				opts = append(opts, func(c *Config) { c.Upstreams = []string{deadUpstream(t)} })
			}
			s := serveCluster(t, tc.cluster, f.VIPs, opts...)
			names := map[string]bool{}
			for _, rr := range s.Records().RRs {
				names[rr.Header().Name] = true
			}
			var scratch wireScratch
			taken := 0
			for _, name := range slices.Sorted(maps.Keys(names)) {
				for i, qtype := range []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeSRV, mdns.TypeNS, mdns.TypeSOA, mdns.TypePTR, mdns.TypeANY, mdns.TypeTXT} {
					for j, edns := range []uint16{0, 100, 512, 1232, 4096} {
						req := new(mdns.Msg)
						qname := name
						if (i+j)%2 == 1 {
							qname = strings.ToUpper(name)
						}
						req.SetQuestion(qname, qtype)
						req.Id = uint16(i*7 + j)
						req.RecursionDesired = j%2 == 0
						req.CheckingDisabled = i%3 == 0
						if edns > 0 {
							req.SetEdns0(edns, j%2 == 1)
						}
						raw, err := req.Pack()
						if err != nil {
							t.Fatal(err)
						}
						fast, ok := s.answerWire(raw, nil, &scratch)
						if !ok {
							continue
						}
						taken++
						q, _ := parsePlainQuery(raw, &scratch)
						sameAnswer(t, fast, generalAnswer(t, s, raw), q.end)
					}
				}
			}
			if taken < len(names) {
				t.Errorf("the fast path took %d queries of %d names, want at least one per name", taken, len(names))
			}
		})
	}
}

// TestAnswerWireDeclines: queries the fast path must leave to the general path.
func TestAnswerWireDeclines(t *testing.T) {
	s := serveCluster(t, bigCluster(20), nil)
	pack := func(name string, qtype uint16, mutate func(*mdns.Msg)) []byte {
		m := new(mdns.Msg)
		m.SetQuestion(name, qtype)
		mutate(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	none := func(*mdns.Msg) {}
	edns := func(m *mdns.Msg) { m.SetEdns0(1232, false) }
	name := "node-3.agent.mesos."
	tests := []struct {
		name string
		raw  []byte
		want bool
	}{
		{"plain", pack(name, mdns.TypeA, none), true},
		{"EDNS0", pack(name, mdns.TypeA, edns), true},
		{"20 records fit 1232", pack("big.marathon.mesos.", mdns.TypeA, edns), true},
		{"20 records do not fit 512", pack("big.marathon.mesos.", mdns.TypeA, none), false},
		{"NXDOMAIN", pack("nope.mesos.", mdns.TypeA, none), false},
		{"NODATA", pack(name, mdns.TypeAAAA, none), false},
		{"out of zone", pack("example.org.", mdns.TypeA, none), false},
		{"class CHAOS", pack(name, mdns.TypeA, func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS }), false},
		{"class ANY", pack(name, mdns.TypeA, func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassANY }), false},
		{"EDNS version 1", pack(name, mdns.TypeA, func(m *mdns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), false},
		{"EDNS option", pack(name, mdns.TypeA, func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_NSID{Code: mdns.EDNS0NSID})
		}), false},
		{"response", pack(name, mdns.TypeA, func(m *mdns.Msg) { m.Response = true }), false},
		{"NOTIFY", pack(name, mdns.TypeA, func(m *mdns.Msg) { m.Opcode = mdns.OpcodeNotify }), false},
		{"two questions", pack(name, mdns.TypeA, func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) }), false},
		{"an answer record", pack(name, mdns.TypeA, func(m *mdns.Msg) {
			m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
		}), false},
		{"escaped name", pack(`node\0463.agent.mesos.`, mdns.TypeA, none), false},
		{"trailing byte", append(pack(name, mdns.TypeA, none), 0), false},
		{"cut", pack(name, mdns.TypeA, none)[:20], false},
		{"compressed name", func() []byte {
			b := pack(name, mdns.TypeA, none)
			// A question name pointing at itself: never followed.
			return append(b[:headerSize], 0xc0, headerSize, 0, 1, 0, 1)
		}(), false},
	}
	var scratch wireScratch
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fast, ok := s.answerWire(tt.raw, nil, &scratch)
			if ok != tt.want {
				t.Fatalf("taken %v, want %v", ok, tt.want)
			}
			if ok {
				q, _ := parsePlainQuery(tt.raw, &scratch)
				sameAnswer(t, fast, generalAnswer(t, s, tt.raw), q.end)
			}
		})
	}
}

// TestAnswerWireAllocs: an answer from the fast path allocates nothing (once the name's
// records are in wire format).
func TestAnswerWireAllocs(t *testing.T) {
	s := serveCluster(t, bigCluster(5), nil)
	for _, name := range []string{"node-3.agent.mesos.", "big.marathon.mesos.", "_big._tcp.marathon.mesos."} {
		req := new(mdns.Msg)
		req.SetQuestion(name, mdns.TypeA)
		if name[0] == '_' {
			req.Question[0].Qtype = mdns.TypeSRV
		}
		req.SetEdns0(4096, false)
		raw, err := req.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var scratch wireScratch
		buf := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(100, func() {
			if _, ok := s.answerWire(raw, buf, &scratch); !ok {
				t.Fatalf("%s: not taken by the fast path", name)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per answer, want 0", name, allocs)
		}
	}
}

// FuzzAnswerWire: whatever the fast path answers, the general path answers the same.
func FuzzAnswerWire(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
		edns  uint16
	}{
		{"web-grp.marathon.mesos.", mdns.TypeA, 0},
		{"WEB-GRP.marathon.mesos.", mdns.TypeA, 1232},
		{"_web-grp._tcp.marathon.mesos.", mdns.TypeSRV, 4096},
		{"mesos.", mdns.TypeNS, 0},
		{"mesos.", mdns.TypeANY, 512},
		{"master.mesos.", mdns.TypeA, 100},
		{"nope.mesos.", mdns.TypeA, 0},
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
		f.Add(b)
	}
	s := serveFixture(f, discardLogs)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var scratch wireScratch
		fast, ok := s.answerWire(raw, nil, &scratch)
		if !ok {
			return
		}
		q, _ := parsePlainQuery(raw, &scratch)
		sameAnswer(t, fast, generalAnswer(t, s, raw), q.end)
	})
}

// TestReplySource: a server listening on every address answers from the address each
// query was sent to (the clients' sockets are connected to it, so they take no other),
// over IPv4 and IPv6, from the answer table and from an upstream.
func TestReplySource(t *testing.T) {
	up := fakeUpstream(t)
	s := serveFixture(t, func(c *Config) {
		c.Listen = "[::]:0"
		c.UDPSockets = 2
		c.Upstreams = []string{up}
	})
	port := s.Addr().Port()
	for _, addr := range []string{"127.0.0.2", "127.0.0.1", "::1"} {
		for _, name := range []string{"leader.mesos.", "www.example.org."} {
			t.Run(addr+" "+name, func(t *testing.T) {
				to := netip.AddrPortFrom(netip.MustParseAddr(addr), port)
				conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
				if err != nil {
					if addr == "::1" {
						t.Skipf("no IPv6 loopback: %v", err)
					}
					t.Fatal(err)
				}
				defer conn.Close()
				c := &mdns.Client{Timeout: 5 * time.Second}
				resp, _, err := c.ExchangeWithConn(&mdns.Msg{MsgHdr: mdns.MsgHdr{Id: 77, RecursionDesired: true},
					Question: []mdns.Question{{Name: name, Qtype: mdns.TypeA, Qclass: mdns.ClassINET}}}, &mdns.Conn{Conn: conn})
				if err != nil {
					t.Fatalf("no answer from %s: %v", to, err)
				}
				if len(resp.Answer) != 1 || resp.Rcode != mdns.RcodeSuccess {
					t.Fatalf("rcode %s, %d answers; want 1", mdns.RcodeToString[resp.Rcode], len(resp.Answer))
				}
			})
		}
	}
}

// TestSpreadAtRandom: with the BPF program on the port, the datagrams of a single client
// (one address and port, which the kernel's hash alone puts on one socket) reach every
// socket. The chance that 200 random picks miss one of 2 sockets is 2^-199.
func TestSpreadAtRandom(t *testing.T) {
	const sockets, datagrams = 2, 200
	udp, tcp, err := bindPort("127.0.0.1", "0", sockets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tcp.Close()
		for _, c := range udp {
			c.Close()
		}
	})
	if err := spreadAtRandom(udp); err != nil {
		t.Fatalf("spreadAtRandom: %v", err)
	}
	client, err := net.DialUDP("udp", nil, udp[0].LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for i := range datagrams {
		if _, err := client.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	counts := make([]int, sockets)
	buf := make([]byte, 16)
	for i, c := range udp {
		for {
			if err := c.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.ReadFrom(buf); err != nil {
				break
			}
			counts[i]++
		}
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != datagrams || slices.Contains(counts, 0) {
		t.Fatalf("datagrams per socket %v, want all %d spread over every socket", counts, datagrams)
	}
}
