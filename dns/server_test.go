package dns

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
)

// serveCluster starts a test server answering for c and vips.
func serveCluster(t testing.TB, c *Cluster, vips []VIP, opts ...func(*Config)) *Server {
	t.Helper()
	opts = append([]func(*Config){func(cfg *Config) { cfg.NSAddr = "10.0.0.53" }}, opts...)
	s := TestServer(t, opts...)
	s.mu.Lock()
	s.cluster = c
	s.vips = vips
	s.refreshLocked()
	s.mu.Unlock()
	return s
}

func serveFixture(t testing.TB, opts ...func(*Config)) *Server {
	t.Helper()
	f := loadFixture(t, "cluster.json")
	return serveCluster(t, NewCluster(f.Masters, &f.GetState), f.VIPs, opts...)
}

// query sends one question over network ("udp" or "tcp"); bufsize > 0 adds EDNS0.
func query(t testing.TB, s *Server, network, name string, qtype uint16, bufsize uint16) *mdns.Msg {
	t.Helper()
	req := new(mdns.Msg)
	req.SetQuestion(name, qtype)
	if bufsize > 0 {
		req.SetEdns0(bufsize, false)
	}
	return exchange(t, s, network, req)
}

func exchange(t testing.TB, s *Server, network string, req *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: mdns.MaxMsgSize}
	resp, _, err := c.Exchange(req, s.Addr().String())
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, req.Question[0].Name, mdns.TypeToString[req.Question[0].Qtype], err)
	}
	return resp
}

// rrStrings renders records sorted, leaving out OPT.
func rrStrings(rrs []mdns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		if rr.Header().Rrtype != mdns.TypeOPT {
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestQueries(t *testing.T) {
	s := serveFixture(t)
	soa := "mesos.\t60\tIN\tSOA\tns1.mesos. root.ns1.mesos. %d 60 600 86400 60"
	soaSerial := serialOf(s)
	negative := []string{fmt.Sprintf(soa, soaSerial)}
	none := []string{}
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		qclass uint16
		net    string
		rcode  int
		aa     bool
		answer []string
		ns     []string
		extra  []string
	}{
		{name: "task A", qname: "web-grp.marathon.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"web-grp.marathon.mesos.\t60\tIN\tA\t10.0.1.1"}, ns: none, extra: none},
		{name: "case-insensitive", qname: "WEB-GRP.Marathon.MESOS.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"web-grp.marathon.mesos.\t60\tIN\tA\t10.0.1.1"}, ns: none, extra: none},
		{name: "slave form", qname: "api-grp.marathon.slave.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"api-grp.marathon.slave.mesos.\t60\tIN\tA\t10.0.1.2"}, ns: none, extra: none},
		{name: "container address", qname: "api-grp.marathon.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"api-grp.marathon.mesos.\t60\tIN\tA\t172.17.0.5"}, ns: none, extra: none},
		{name: "canonical", qname: "db-f3ink-s3.marathon.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"db-f3ink-s3.marathon.mesos.\t60\tIN\tA\t10.0.1.1"}, ns: none, extra: none},
		{name: "SRV with targets' addresses", qname: "_web-grp._tcp.marathon.mesos.", qtype: mdns.TypeSRV, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{
				"_web-grp._tcp.marathon.mesos.\t60\tIN\tSRV\t0 1 31000 web-grp-hrimy-s3.marathon.slave.mesos.",
				"_web-grp._tcp.marathon.mesos.\t60\tIN\tSRV\t0 1 31001 web-grp-hrimy-s3.marathon.slave.mesos.",
			}, ns: none, extra: []string{"web-grp-hrimy-s3.marathon.slave.mesos.\t60\tIN\tA\t10.0.1.1"}},
		{name: "named discovery port", qname: "_http._api-svc._tcp.marathon.mesos.", qtype: mdns.TypeSRV, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"_http._api-svc._tcp.marathon.mesos.\t60\tIN\tSRV\t0 1 8080 api-svc-u6mcj-s0.marathon.mesos."}, ns: none,
			extra: []string{"api-svc-u6mcj-s0.marathon.mesos.\t60\tIN\tA\t172.17.0.5"}},
		{name: "IPv6 container", qname: "executor-1.spark-cluster-1.mesos.", qtype: mdns.TypeAAAA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"executor-1.spark-cluster-1.mesos.\t60\tIN\tAAAA\tfd00::5"}, ns: none, extra: none},
		{name: "PTR of a container", qname: "5.0.17.172.in-addr.arpa.", qtype: mdns.TypePTR, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"5.0.17.172.in-addr.arpa.\t60\tIN\tPTR\tapi-grp-u6mcj-s0.marathon.mesos."}, ns: none, extra: none},
		{name: "PTR of an agent", qname: "1.1.0.10.in-addr.arpa.", qtype: mdns.TypePTR, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"1.1.0.10.in-addr.arpa.\t60\tIN\tPTR\tagent-1-example-com.agent.mesos."}, ns: none, extra: none},
		{name: "PTR of an unknown address, no upstream", qname: "9.9.9.10.in-addr.arpa.", qtype: mdns.TypePTR, rcode: mdns.RcodeRefused,
			answer: none, ns: none, extra: none},
		{name: "leader", qname: "leader.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"leader.mesos.\t60\tIN\tA\t10.0.0.1"}, ns: none, extra: none},
		{name: "leader SRV", qname: "_leader._tcp.mesos.", qtype: mdns.TypeSRV, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"_leader._tcp.mesos.\t60\tIN\tSRV\t0 1 5050 leader.mesos."}, ns: none,
			extra: []string{"leader.mesos.\t60\tIN\tA\t10.0.0.1"}},
		{name: "masters", qname: "master.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"master.mesos.\t60\tIN\tA\t10.0.0.1", "master.mesos.\t60\tIN\tA\t10.0.0.2", "master.mesos.\t60\tIN\tA\t10.0.0.3"}, ns: none, extra: none},
		{name: "masterN", qname: "master2.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"master2.mesos.\t60\tIN\tA\t10.0.0.3"}, ns: none, extra: none},
		{name: "agents", qname: "agent.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"agent.mesos.\t60\tIN\tA\t10.0.1.1", "agent.mesos.\t60\tIN\tA\t10.0.1.2"}, ns: none, extra: none},
		{name: "slaves", qname: "slave.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"slave.mesos.\t60\tIN\tA\t10.0.1.1", "slave.mesos.\t60\tIN\tA\t10.0.1.2"}, ns: none, extra: none},
		{name: "SOA", qname: "mesos.", qtype: mdns.TypeSOA, rcode: mdns.RcodeSuccess, aa: true,
			answer: negative, ns: none, extra: none},
		{name: "NS", qname: "mesos.", qtype: mdns.TypeNS, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"mesos.\t60\tIN\tNS\tns1.mesos."}, ns: none, extra: []string{"ns1.mesos.\t60\tIN\tA\t10.0.0.53"}},
		{name: "VIP of a task's label", qname: "grpapi.marathon.l4lb.thisdcos.directory.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"grpapi.marathon.l4lb.thisdcos.directory.\t60\tIN\tA\t198.18.1.241"}, ns: none, extra: none},
		{name: "VIP of an unhealthy task's label", qname: "cache.marathon.l4lb.thisdcos.directory.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"cache.marathon.l4lb.thisdcos.directory.\t60\tIN\tA\t198.18.1.200"}, ns: none, extra: none},
		{name: "VIP PTR", qname: "241.1.18.198.in-addr.arpa.", qtype: mdns.TypePTR, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"241.1.18.198.in-addr.arpa.\t60\tIN\tPTR\tgrpapi.marathon.l4lb.thisdcos.directory."}, ns: none, extra: none},
		{name: "VIP set by hand", qname: "grpstatic.marathon.l4lb.thisdcos.directory.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"grpstatic.marathon.l4lb.thisdcos.directory.\t60\tIN\tA\t198.18.1.250"}, ns: none, extra: none},
		{name: "unknown VIP", qname: "nope.marathon.l4lb.thisdcos.directory.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true,
			answer: none, ns: []string{fmt.Sprintf("l4lb.thisdcos.directory.\t60\tIN\tSOA\tns1.mesos. root.ns1.mesos. %d 60 600 86400 60", soaSerial)}, extra: none},
		{name: "NXDOMAIN", qname: "nope.marathon.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true,
			answer: none, ns: negative, extra: none},
		{name: "unhealthy task", qname: "cache.marathon.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true,
			answer: none, ns: negative, extra: none},
		{name: "staging task", qname: "starting.marathon.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeNameError, aa: true,
			answer: none, ns: negative, extra: none},
		{name: "AAAA of an IPv4 task: NODATA", qname: "web-grp.marathon.mesos.", qtype: mdns.TypeAAAA, rcode: mdns.RcodeSuccess, aa: true,
			answer: none, ns: negative, extra: none},
		{name: "TXT: NODATA", qname: "web-grp.marathon.mesos.", qtype: mdns.TypeTXT, rcode: mdns.RcodeSuccess, aa: true,
			answer: none, ns: negative, extra: none},
		{name: "empty non-terminal", qname: "_tcp.marathon.mesos.", qtype: mdns.TypeA, rcode: mdns.RcodeSuccess, aa: true,
			answer: none, ns: negative, extra: none},
		{name: "ANY", qname: "web-grp.marathon.mesos.", qtype: mdns.TypeANY, rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"web-grp.marathon.mesos.\t60\tIN\tA\t10.0.1.1"}, ns: none, extra: none},
		{name: "out of domain, no upstream", qname: "example.org.", qtype: mdns.TypeA, rcode: mdns.RcodeRefused,
			answer: none, ns: none, extra: none},
		{name: "CHAOS class", qname: "version.bind.", qtype: mdns.TypeTXT, qclass: mdns.ClassCHAOS, rcode: mdns.RcodeRefused,
			answer: none, ns: none, extra: none},
		{name: "zone transfer", qname: "mesos.", qtype: mdns.TypeAXFR, net: "tcp", rcode: mdns.RcodeRefused, aa: true,
			answer: none, ns: none, extra: none},
		{name: "over TCP", qname: "web-grp.marathon.mesos.", qtype: mdns.TypeA, net: "tcp", rcode: mdns.RcodeSuccess, aa: true,
			answer: []string{"web-grp.marathon.mesos.\t60\tIN\tA\t10.0.1.1"}, ns: none, extra: none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := new(mdns.Msg)
			req.SetQuestion(tt.qname, tt.qtype)
			if tt.qclass != 0 {
				req.Question[0].Qclass = tt.qclass
			}
			network := tt.net
			if network == "" {
				network = "udp"
			}
			resp := exchange(t, s, network, req)
			if resp.Rcode != tt.rcode || resp.Authoritative != tt.aa || resp.Id != req.Id || !resp.Response {
				t.Errorf("rcode %s aa %v id %d, want %s aa %v id %d", mdns.RcodeToString[resp.Rcode], resp.Authoritative, resp.Id,
					mdns.RcodeToString[tt.rcode], tt.aa, req.Id)
			}
			if resp.Truncated {
				t.Errorf("TC set")
			}
			for _, section := range []struct {
				name      string
				got, want []string
			}{{"answer", rrStrings(resp.Answer), tt.answer}, {"authority", rrStrings(resp.Ns), tt.ns}, {"additional", rrStrings(resp.Extra), tt.extra}} {
				if !slices.Equal(section.got, section.want) {
					t.Errorf("%s:\n%s\nwant:\n%s", section.name, strings.Join(section.got, "\n"), strings.Join(section.want, "\n"))
				}
			}
		})
	}
}

// serialOf returns the SOA serial s serves.
func serialOf(s *Server) uint32 {
	for _, rr := range s.Records().RRs {
		if soa, ok := rr.(*mdns.SOA); ok {
			return soa.Serial
		}
	}
	return 0
}

// bigCluster has n tasks of one app "big" on n agents 10.1.x.y.
func bigCluster(n int) *Cluster {
	st := &api.GetState{GetAgents: &api.GetAgents{}, GetFrameworks: &api.GetFrameworks{
		Frameworks: []api.FrameworkState{{FrameworkInfo: api.FrameworkInfo{Name: "marathon", ID: &api.FrameworkID{Value: "fw"}}}}},
		GetTasks: &api.GetTasks{}}
	for i := range n {
		agentID := fmt.Sprintf("agent-%d-S%d", i, i)
		ip := netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(i%250 + 1)})
		st.GetAgents.Agents = append(st.GetAgents.Agents, api.AgentState{
			AgentInfo: api.AgentInfo{Hostname: fmt.Sprintf("node-%d", i), ID: &api.AgentID{Value: agentID}},
			PID:       "slave(1)@" + netip.AddrPortFrom(ip, 5051).String()})
		st.GetTasks.Tasks = append(st.GetTasks.Tasks, api.Task{
			Name: "big", TaskID: api.TaskID{Value: fmt.Sprintf("big.%d", i)}, FrameworkID: api.FrameworkID{Value: "fw"},
			AgentID: api.AgentID{Value: agentID}, State: api.TaskRunning,
			Resources: []api.Resource{{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31000}}}}}})
	}
	return NewCluster(nil, st)
}

// TestTruncation: an answer longer than the client takes over UDP sets TC and fits; over
// TCP it is complete; EDNS0 sizes are respected up to the server's own limit.
func TestTruncation(t *testing.T) {
	const n = 200
	s := serveCluster(t, bigCluster(n), nil)
	tests := []struct {
		name    string
		network string
		qtype   uint16
		bufsize uint16
		limit   int // the largest answer allowed
		tc      bool
	}{
		{"UDP without EDNS0", "udp", mdns.TypeA, 0, 512, true},
		{"UDP EDNS0 1024", "udp", mdns.TypeA, 1024, 1024, true},
		{"UDP EDNS0 above the server's limit", "udp", mdns.TypeA, 65000, 1232, true},
		{"UDP EDNS0 below 512 counts as 512", "udp", mdns.TypeA, 100, 512, true},
		{"TCP", "tcp", mdns.TypeA, 0, mdns.MaxMsgSize, false},
		{"TCP SRV", "tcp", mdns.TypeSRV, 0, mdns.MaxMsgSize, false},
		{"UDP SRV", "udp", mdns.TypeSRV, 1232, 1232, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "big.marathon.mesos."
			if tt.qtype == mdns.TypeSRV {
				name = "_big._tcp.marathon.mesos."
			}
			resp := query(t, s, tt.network, name, tt.qtype, tt.bufsize)
			resp.Compress = true // as the server sent it
			packed, err := resp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if resp.Truncated != tt.tc || len(packed) > tt.limit || resp.Rcode != mdns.RcodeSuccess {
				t.Errorf("TC %v, %d bytes, rcode %d; want TC %v, at most %d bytes, NOERROR", resp.Truncated, len(packed), resp.Rcode, tt.tc, tt.limit)
			}
			if !tt.tc && len(resp.Answer) != n {
				t.Errorf("%d answers, want all %d", len(resp.Answer), n)
			}
			if tt.tc && (len(resp.Answer) == 0 || len(resp.Answer) >= n) {
				t.Errorf("%d answers in a truncated reply, want some but not all", len(resp.Answer))
			}
			if opt := resp.IsEdns0(); (opt != nil) != (tt.bufsize > 0) || opt != nil && opt.UDPSize() != 1232 {
				t.Errorf("OPT %v; want one advertising 1232 exactly when the query had one", opt)
			}
		})
	}
}

// TestShuffled: answers come in different orders.
func TestShuffled(t *testing.T) {
	s := serveCluster(t, bigCluster(20), nil)
	first := strings.Join(rrStringsUnsorted(query(t, s, "tcp", "big.marathon.mesos.", mdns.TypeA, 0).Answer), "\n")
	for range 20 {
		if strings.Join(rrStringsUnsorted(query(t, s, "tcp", "big.marathon.mesos.", mdns.TypeA, 0).Answer), "\n") != first {
			return
		}
	}
	t.Fatal("20 answers of 20 records all came in the same order")
}

func rrStringsUnsorted(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

// TestEDNS: the reply carries an OPT exactly when the query did, echoes DO, and a query of
// an unknown EDNS version gets BADVERS.
func TestEDNS(t *testing.T) {
	s := serveFixture(t)
	req := new(mdns.Msg)
	req.SetQuestion("leader.mesos.", mdns.TypeA)
	req.SetEdns0(4096, true)
	resp := exchange(t, s, "udp", req)
	opt := resp.IsEdns0()
	if opt == nil || !opt.Do() || opt.UDPSize() != 1232 || opt.Version() != 0 || len(resp.Answer) != 1 {
		t.Fatalf("reply OPT %v, %d answers; want DO, size 1232, version 0, 1 answer", opt, len(resp.Answer))
	}
	req.IsEdns0().SetVersion(1)
	resp = exchange(t, s, "udp", req)
	if resp.Rcode != mdns.RcodeBadVers || resp.IsEdns0() == nil || len(resp.Answer) != 0 {
		t.Fatalf("version 1: rcode %s, OPT %v; want BADVERS with an OPT", mdns.RcodeToString[resp.Rcode], resp.IsEdns0())
	}
}

// TestMalformedOverUDP: what the server does with messages it cannot take.
func TestMalformedOverUDP(t *testing.T) {
	s := serveFixture(t)
	valid := func(mutate func(*mdns.Msg)) []byte {
		m := new(mdns.Msg)
		m.SetQuestion("leader.mesos.", mdns.TypeA)
		m.Id = 4242
		mutate(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name  string
		raw   []byte
		rcode int // -1: no reply
	}{
		{"two questions", valid(func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) }), mdns.RcodeFormatError},
		{"no question", valid(func(m *mdns.Msg) { m.Question = nil }), mdns.RcodeFormatError},
		{"NOTIFY", valid(func(m *mdns.Msg) { m.Opcode = mdns.OpcodeNotify }), mdns.RcodeNotImplemented},
		{"UPDATE", valid(func(m *mdns.Msg) { m.Opcode = mdns.OpcodeUpdate }), mdns.RcodeNotImplemented},
		{"cut question", valid(func(*mdns.Msg) {})[:20], mdns.RcodeFormatError},
		{"a response", valid(func(m *mdns.Msg) { m.Response = true }), -1},
		{"shorter than a header", []byte{1, 2, 3}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("udp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tt.raw); err != nil {
				t.Fatal(err)
			}
			wait := 5 * time.Second
			if tt.rcode < 0 {
				wait = 300 * time.Millisecond
			}
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			buf := make([]byte, 4096)
			n, err := conn.Read(buf)
			if tt.rcode < 0 {
				if err == nil {
					t.Fatalf("got a %d-byte reply, want none", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			resp := new(mdns.Msg)
			if err := resp.Unpack(buf[:n]); err != nil {
				t.Fatal(err)
			}
			if resp.Rcode != tt.rcode || resp.Id != 4242 {
				t.Fatalf("rcode %s id %d, want %s id 4242", mdns.RcodeToString[resp.Rcode], resp.Id, mdns.RcodeToString[tt.rcode])
			}
		})
	}
	// The server still answers.
	if resp := query(t, s, "udp", "leader.mesos.", mdns.TypeA, 0); len(resp.Answer) != 1 {
		t.Fatalf("after malformed queries: %d answers", len(resp.Answer))
	}
}

// fakeUpstream is a resolver on loopback that answers every A query with 192.0.2.1 and
// counts queries.
func fakeUpstream(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		resp := new(mdns.Msg)
		resp.SetReply(req)
		resp.RecursionAvailable = true
		q := req.Question[0]
		switch {
		case q.Name == "big.example.org.":
			for i := range 100 {
				resp.Answer = append(resp.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 30},
					A: net.IPv4(192, 0, 2, byte(i+1))})
			}
			if _, tcp := w.LocalAddr().(*net.TCPAddr); !tcp {
				resp.Truncate(512)
			}
		case q.Qtype == mdns.TypeA:
			resp.Answer = append(resp.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 30},
				A: net.IPv4(192, 0, 2, 1)})
		default:
			resp.Rcode = mdns.RcodeNameError
		}
		_ = w.WriteMsg(resp)
	})
	udp := &mdns.Server{PacketConn: pc, Handler: handler}
	tcp := &mdns.Server{Listener: ln, Handler: handler}
	for _, srv := range []*mdns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return addr
}

// deadUpstream is a loopback UDP address nobody answers on.
func deadUpstream(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// TestForwarding: names outside the cluster go to the upstreams in order, over the
// client's transport, and fail with SERVFAIL when none answers.
func TestForwarding(t *testing.T) {
	up := fakeUpstream(t)
	dead := deadUpstream(t)
	s := serveFixture(t, func(c *Config) {
		c.Upstreams = []string{dead, up}
		c.UpstreamTimeout = 300 * time.Millisecond
	})
	for _, network := range []string{"udp", "tcp"} {
		resp := query(t, s, network, "www.example.org.", mdns.TypeA, 0)
		if got := rrStrings(resp.Answer); resp.Rcode != mdns.RcodeSuccess || !resp.RecursionAvailable || resp.Authoritative ||
			!slices.Equal(got, []string{"www.example.org.\t30\tIN\tA\t192.0.2.1"}) {
			t.Errorf("%s: rcode %d RA %v AA %v answers %q; want the upstream's answer", network, resp.Rcode, resp.RecursionAvailable, resp.Authoritative, got)
		}
	}
	if resp := query(t, s, "udp", "9.9.9.10.in-addr.arpa.", mdns.TypePTR, 0); resp.Rcode != mdns.RcodeNameError {
		t.Errorf("PTR of an address outside the cluster: rcode %s, want the upstream's NXDOMAIN", mdns.RcodeToString[resp.Rcode])
	}
	if resp := query(t, s, "udp", "web-grp.marathon.mesos.", mdns.TypeA, 0); !resp.RecursionAvailable || !resp.Authoritative {
		t.Errorf("in-domain answer: RA %v AA %v, want both", resp.RecursionAvailable, resp.Authoritative)
	}
	udp := query(t, s, "udp", "big.example.org.", mdns.TypeA, 0)
	tcp := query(t, s, "tcp", "big.example.org.", mdns.TypeA, 0)
	if !udp.Truncated || tcp.Truncated || len(tcp.Answer) != 100 {
		t.Errorf("big upstream answer: UDP TC %v, TCP TC %v with %d answers; want TC over UDP, all 100 over TCP", udp.Truncated, tcp.Truncated, len(tcp.Answer))
	}

	failing := serveFixture(t, func(c *Config) {
		c.Upstreams = []string{dead}
		c.UpstreamTimeout = 200 * time.Millisecond
	})
	if resp := query(t, failing, "udp", "www.example.org.", mdns.TypeA, 0); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("dead upstream: rcode %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
}

// TestSetVIPs: the LB's VIPs appear and disappear with their PTR records.
func TestSetVIPs(t *testing.T) {
	s := TestServer(t)
	if resp := query(t, s, "udp", "web.marathon.l4lb.thisdcos.directory.", mdns.TypeA, 0); resp.Rcode != mdns.RcodeNameError {
		t.Fatalf("before: rcode %s, want NXDOMAIN", mdns.RcodeToString[resp.Rcode])
	}
	s.SetVIPs([]VIP{{Name: "/web", IP: netip.MustParseAddr("11.0.0.9")}})
	if got := rrStrings(query(t, s, "udp", "web.marathon.l4lb.thisdcos.directory.", mdns.TypeA, 0).Answer); !slices.Equal(got,
		[]string{"web.marathon.l4lb.thisdcos.directory.\t60\tIN\tA\t11.0.0.9"}) {
		t.Fatalf("A: %q", got)
	}
	if got := rrStrings(query(t, s, "udp", "9.0.0.11.in-addr.arpa.", mdns.TypePTR, 0).Answer); !slices.Equal(got,
		[]string{"9.0.0.11.in-addr.arpa.\t60\tIN\tPTR\tweb.marathon.l4lb.thisdcos.directory."}) {
		t.Fatalf("PTR: %q", got)
	}
	s.SetVIPs(nil)
	if resp := query(t, s, "udp", "web.marathon.l4lb.thisdcos.directory.", mdns.TypeA, 0); resp.Rcode != mdns.RcodeNameError {
		t.Fatalf("after removal: rcode %s, want NXDOMAIN", mdns.RcodeToString[resp.Rcode])
	}
}

// TestPortInUse: a second server on a port in use fails instead of sharing it.
func TestPortInUse(t *testing.T) {
	s := TestServer(t)
	cfg := DevConfig()
	cfg.Listen = s.Addr().String()
	cfg.ResolvConf = ""
	if second, err := New(cfg); err == nil {
		second.Close()
		t.Fatalf("second server on %s started", cfg.Listen)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" when valid
	}{
		{"default", func(*Config) {}, ""},
		{"bad domain", func(c *Config) { c.Domain = "a..b" }, `dns domain "a..b": not a domain name`},
		{"empty domain", func(c *Config) { c.Domain = "" }, `dns domain "": not a domain name`},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, `dns listen "127.0.0.1": want host:port`},
		{"no sockets", func(c *Config) { c.UDPSockets = 0 }, "dns udp sockets 0: want at least 1"},
		{"small udp size", func(c *Config) { c.UDPSize = 100 }, "dns udp size 100: want at least 512"},
		{"bad upstream", func(c *Config) { c.Upstreams = []string{"nohost"} }, `dns upstream "nohost": want host:port or an IP`},
		{"bad upstream port", func(c *Config) { c.Upstreams = []string{"1.2.3.4:99999"} }, `dns upstream "1.2.3.4:99999": bad port`},
		{"upstream IP", func(c *Config) { c.Upstreams = []string{"1.2.3.4", "[::1]:5353"} }, ""},
		{"no timeout", func(c *Config) { c.UpstreamTimeout = 0 }, "dns upstream timeout 0s: want more than 0"},
		{"bad ns address", func(c *Config) { c.NSAddr = "ns1" }, `dns ns address "ns1"`},
		{"backoff", func(c *Config) { c.ReconnectBackoffMax = time.Millisecond }, "dns reconnect backoff 100ms..1ms: want 0 < first <= max"},
		{"refresh", func(c *Config) { c.MasterRefresh = 0 }, "dns master refresh 0s: want more than 0"},
		{"no logger", func(c *Config) { c.Logger = nil }, "dns: no logger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want %q…", err, tt.want)
			}
		})
	}
}

// TestUpstreamsFromResolvConf: without configured upstreams the nameservers of
// resolv.conf are used, except this server itself.
func TestUpstreamsFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("search example.org\nnameserver 127.0.0.1\nnameserver 192.0.2.53\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		self string
		want []string
	}{
		{"other port", "127.0.0.1:8053", []string{"127.0.0.1:53", "192.0.2.53:53"}},
		{"self on loopback", "127.0.0.1:53", []string{"192.0.2.53:53"}},
		{"self on all addresses", "0.0.0.0:53", []string{"192.0.2.53:53"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ResolvConf = path
			got, err := cfg.upstreams(netip.MustParseAddrPort(tt.self))
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("upstreams = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	cfg := DefaultConfig()
	cfg.ResolvConf = filepath.Join(t.TempDir(), "missing")
	if got, err := cfg.upstreams(netip.MustParseAddrPort("127.0.0.1:53")); err != nil || got != nil {
		t.Fatalf("missing resolv.conf: %q, %v; want none", got, err)
	}
}
