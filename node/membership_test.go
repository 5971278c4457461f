package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// waitTimeout bounds every wait for gossip to converge; generous because a loaded 2-core
// machine running -race stretches memberlist's probe rounds.
const waitTimeout = 20 * time.Second

// testLog keeps a test's log lines and forwards them to t.Log until the test ends, so
// gossip goroutines winding down after the test cannot log into a finished test.
type testLog struct {
	mu    sync.Mutex
	tb    testing.TB
	done  bool
	lines []string
}

// newTestLog must be called before any node starts, so that its cleanup runs after theirs.
func newTestLog(tb testing.TB) *testLog {
	tb.Helper()
	l := &testLog{tb: tb}
	tb.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

func (l *testLog) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if !l.done {
		l.tb.Log(line)
	}
	return len(p), nil
}

// find returns the first line containing every one of parts.
func (l *testLog) find(parts ...string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if containsAll(line, parts) {
			return line, true
		}
	}
	return "", false
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// startNode starts a Dev membership on 127.0.0.1 with a free port and shuts it down when
// the test ends.
func startNode(tb testing.TB, logs *testLog, name string, tags map[string]string, edit func(*MembershipConfig)) *Membership {
	tb.Helper()
	cfg := DefaultMembershipConfig()
	cfg.Name = name
	cfg.BindAddr = "127.0.0.1"
	cfg.Port = 0
	cfg.Dev = true
	cfg.Tags = tags
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil)).With("node", name)
	if edit != nil {
		edit(&cfg)
	}
	m, err := NewMembership(cfg)
	if err != nil {
		tb.Fatalf("NewMembership(%s): %v", name, err)
	}
	tb.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			tb.Errorf("Shutdown(%s): %v", name, err)
		}
	})
	return m
}

func joining(addr string) func(*MembershipConfig) {
	return func(c *MembershipConfig) { c.Join = []string{addr} }
}

// eventually polls check until it returns nil or waitTimeout passes.
func eventually(tb testing.TB, what string, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still not true after %v: %v", what, waitTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeGossipPort returns a port that is currently free on 127.0.0.1 for both TCP and UDP,
// below the kernel's ephemeral range: tests restart nodes on the same port, and a port in
// that range could meanwhile become some outgoing connection's local port.
func freeGossipPort(tb testing.TB) int {
	tb.Helper()
	lowest := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lowest = n
			}
		}
	}
	// The 4,000 ports just below it; cli's tests take the 4,000 below those.
	const span = 4000
	for range 100 {
		port := lowest - span + rand.IntN(span)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	tb.Fatalf("no port in [%d, %d) free for both TCP and UDP", lowest-span, lowest)
	return 0
}

// eventRecorder keeps every event a Subscribe callback receives.
type eventRecorder struct {
	mu     sync.Mutex
	events []MemberEvent
}

func record(tb testing.TB, m *Membership) *eventRecorder {
	tb.Helper()
	r := &eventRecorder{}
	tb.Cleanup(m.Subscribe(func(e MemberEvent) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	}))
	return r
}

// types lists the event types received for the member called name, in order.
func (r *eventRecorder) types(name string) []MemberEventType {
	r.mu.Lock()
	defer r.mu.Unlock()
	var types []MemberEventType
	for _, e := range r.events {
		if e.Member.Name == name {
			types = append(types, e.Type)
		}
	}
	return types
}

func (r *eventRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// memberOf describes what others should see of m: its address, the status and tags.
func memberOf(tb testing.TB, name string, m *Membership, status string, tags map[string]string) api.Member {
	tb.Helper()
	host, port, err := net.SplitHostPort(m.Addr())
	if err != nil {
		tb.Fatalf("Addr() = %q: %v", m.Addr(), err)
	}
	p, _ := strconv.Atoi(port)
	return api.Member{Name: name, Addr: host, Port: p, Status: status, Tags: tags}
}

func membersEqual(m *Membership, want []api.Member) error {
	if got := m.Members(); !reflect.DeepEqual(got, want) {
		return fmt.Errorf("Members() = %+v, want %+v", got, want)
	}
	return nil
}

func statusOf(m *Membership, name string) string {
	for _, member := range m.Members() {
		if member.Name == name {
			return member.Status
		}
	}
	return "absent"
}

func names(members []api.Member) []string {
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = m.Name
	}
	return out
}

func TestJoinAddr(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "10.0.0.1", want: "10.0.0.1:7946"},
		{in: "10.0.0.1:7000", want: "10.0.0.1:7000"},
		{in: "[::1]:7000", want: "[::1]:7000"},
		{in: "::1", want: "[::1]:7946"},
		{in: "[::1]", want: "[::1]:7946"},
		{in: "fe80::1%eth0", want: "[fe80::1%eth0]:7946"},
		{in: "node-1.example.com", want: "node-1.example.com:7946"},
		{in: "node-1.example.com:8000", want: "node-1.example.com:8000"},
		{in: "host:bad", err: `"host:bad": port "bad" is not a number in 1-65535`},
		{in: "host:0", err: `"host:0": port "0" is not a number in 1-65535`},
		{in: "host:65536", err: `"host:65536": port "65536" is not a number in 1-65535`},
		{in: "host:+80", err: `"host:+80": port "+80" is not a number in 1-65535`},
		{in: "host:", err: `"host:": port "" is not a number in 1-65535`},
		{in: ":7946", err: `":7946": empty host`},
		{in: "", err: "empty address"},
		{in: "[host]:80", err: `"[host]:80": brackets hold no IPv6 address`},
		{in: "[10.0.0.1]", err: `"[10.0.0.1]": brackets hold no IPv6 address`},
		{in: "a b", err: `"a b": host may hold only letters, digits, '-', '_' and '.'`},
		{in: "fe80::1%a]b", err: `"fe80::1%a]b": IPv6 zone "a]b" may hold only letters, digits, '-', '_' and '.'`},
		{in: "1:2:3", err: `"1:2:3": address 1:2:3: too many colons in address`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := joinAddr(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("joinAddr(%q) = %q, %v; want error %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("joinAddr(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzJoinAddr(f *testing.F) {
	for _, seed := range []string{"10.0.0.1", "[::1]:7000", "host:bad", "::1", "[fe80::1%eth0]:1", "a.b:65535", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := joinAddr(in)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(out)
		if err != nil {
			t.Fatalf("joinAddr(%q) = %q, which does not split: %v", in, out, err)
		}
		if host == "" {
			t.Fatalf("joinAddr(%q) = %q: empty host", in, out)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			t.Fatalf("joinAddr(%q) = %q: bad port", in, out)
		}
		again, err := joinAddr(out)
		if err != nil || again != out {
			t.Fatalf("joinAddr(%q) = %q, but joinAddr(%q) = %q, %v", in, out, out, again, err)
		}
	})
}

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1", slog.LevelDebug, "memberlist: Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Suspect b has failed", slog.LevelDebug, "memberlist: Suspect b has failed"},
		{"[INFO] serf: EventMemberJoin: a 127.0.0.1", slog.LevelInfo, "serf: EventMemberJoin: a 127.0.0.1"},
		{"[WARN] serf: Shutdown without a Leave", slog.LevelWarn, "serf: Shutdown without a Leave"},
		{"[ERR] memberlist: Conflicting address for a", slog.LevelError, "memberlist: Conflicting address for a"},
		{"[ERROR] x", slog.LevelError, "x"},
		{"[TRACE] y", slog.LevelDebug, "y"},
		{"[NOTICE] z", slog.LevelInfo, "[NOTICE] z"},
		{"no level", slog.LevelInfo, "no level"},
		{"[WARN", slog.LevelInfo, "[WARN"},
		{"", slog.LevelInfo, ""},
	}
	for _, tt := range tests {
		level, msg := parseLogLine(tt.line)
		if level != tt.level || msg != tt.msg {
			t.Errorf("parseLogLine(%q) = %v, %q; want %v, %q", tt.line, level, msg, tt.level, tt.msg)
		}
	}
}

func FuzzParseLogLine(f *testing.F) {
	for _, seed := range []string{"[DEBUG] a", "[INFO] memberlist: b", "[ERR]", "[x] y", "plain", "[", "]"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		level, msg := parseLogLine(line)
		if !slices.Contains([]slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}, level) {
			t.Fatalf("parseLogLine(%q): level %v", line, level)
		}
		if !strings.Contains(line, msg) {
			t.Fatalf("parseLogLine(%q): message %q is not part of the line", line, msg)
		}
		if !strings.HasPrefix(line, "[") && msg != line {
			t.Fatalf("parseLogLine(%q): message %q, want the whole line", line, msg)
		}
	})
}

func TestMembershipConfigValidate(t *testing.T) {
	valid := func() MembershipConfig {
		c := DefaultMembershipConfig()
		c.Name = "node-1.dc"
		return c
	}
	tests := []struct {
		name string
		edit func(*MembershipConfig)
		err  string
	}{
		{"default", func(*MembershipConfig) {}, ""},
		{"empty name", func(c *MembershipConfig) { c.Name = "" }, "name: empty"},
		{"bad name", func(c *MembershipConfig) { c.Name = "a_b" }, `name: "a_b": only letters, digits, '-' and '.' allowed`},
		{"long name", func(c *MembershipConfig) { c.Name = strings.Repeat("a", 129) }, "name: 129 bytes, at most 128 allowed"},
		{"bind host", func(c *MembershipConfig) { c.BindAddr = "localhost" }, `bind-addr: "localhost" is not an IP address`},
		{"advertise any", func(c *MembershipConfig) { c.AdvertiseAddr = "0.0.0.0" }, `advertise-addr: "0.0.0.0" is not a reachable IP address`},
		{"advertise ip", func(c *MembershipConfig) { c.AdvertiseAddr = "10.0.0.2" }, ""},
		{"port", func(c *MembershipConfig) { c.Port = 70000 }, "gossip-port: 70000 is not a port"},
		{"join", func(c *MembershipConfig) { c.Join = []string{"10.0.0.1", "host:bad"} }, `join[1]: "host:bad": port "bad" is not a number in 1-65535`},
		{"logger", func(c *MembershipConfig) { c.Logger = nil }, "logger: nil"},
		{"reconnect", func(c *MembershipConfig) { c.ReconnectTimeout = -time.Second }, "reconnect-timeout: -1s, want >= 0"},
		{"gossip key", func(c *MembershipConfig) { c.GossipKey = make([]byte, 32) }, ""},
		{"short gossip key", func(c *MembershipConfig) { c.GossipKey = make([]byte, 31) }, "gossip key: 31 bytes, want 16, 24 or 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			err := c.Validate()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.err {
				t.Fatalf("Validate() = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestHasRole(t *testing.T) {
	tests := []struct {
		roles string
		role  string
		want  bool
	}{
		{"master", RoleMaster, true},
		{"master,agent", RoleAgent, true},
		{" agent , master ", RoleMaster, true},
		{"masters", RoleMaster, false},
		{"agent,lb", RoleMaster, false},
		{"", RoleMaster, false},
	}
	for _, tt := range tests {
		m := api.Member{Tags: map[string]string{TagRole: tt.roles}}
		if got := HasRole(m, tt.role); got != tt.want {
			t.Errorf("HasRole(role=%q, %q) = %v, want %v", tt.roles, tt.role, got, tt.want)
		}
	}
}

// TestMembershipCluster joins three nodes through one seed and checks what each sees:
// members with their tags, the masters, and tag changes.
func TestMembershipCluster(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	tagsA := map[string]string{TagRole: "master,agent", TagAPI: "http://127.0.0.1:5050", TagRaft: "127.0.0.1:5052", TagID: "id-a"}
	tagsB := map[string]string{TagRole: "master", TagAPI: "http://127.0.0.1:6050", TagRaft: "127.0.0.1:6052", TagID: "id-b"}
	tagsC := map[string]string{TagRole: "agent", TagAgentHTTP: "127.0.0.1:7051", TagID: "id-c"}
	a := startNode(t, logs, "a", tagsA, nil)
	b := startNode(t, logs, "b", tagsB, joining(a.Addr()))
	c := startNode(t, logs, "c", tagsC, joining(a.Addr()))
	nodes := []*Membership{a, b, c}
	nodeNames := []string{"a", "b", "c"}

	want := []api.Member{
		memberOf(t, "a", a, "alive", tagsA),
		memberOf(t, "b", b, "alive", tagsB),
		memberOf(t, "c", c, "alive", tagsC),
	}
	for i, m := range nodes {
		eventually(t, nodeNames[i]+" sees all three", func() error { return membersEqual(m, want) })
	}
	for i, m := range nodes {
		if got, want := m.MasterAPIs(), []string{"http://127.0.0.1:5050", "http://127.0.0.1:6050"}; !slices.Equal(got, want) {
			t.Errorf("%s: MasterAPIs() = %q, want %q", nodeNames[i], got, want)
		}
		if got := names(m.Masters()); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("%s: Masters() = %q, want [a b]", nodeNames[i], got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, m := range nodes {
		if err := m.WaitJoined(ctx); err != nil {
			t.Errorf("WaitJoined() = %v", err)
		}
	}
	if _, ok := logs.find("level=INFO", `msg="serf: EventMemberJoin: b 127.0.0.1"`, "node=a"); !ok {
		t.Error("serf's join log line did not reach slog at info")
	}

	newTagsC := map[string]string{TagRole: "agent,lb", TagAgentHTTP: "127.0.0.1:7061", TagID: "id-c"}
	if err := c.SetTags(newTagsC); err != nil {
		t.Fatalf("SetTags: %v", err)
	}
	newTagsB := map[string]string{TagRole: "agent", TagAPI: "http://127.0.0.1:6050", TagID: "id-b"}
	if err := b.SetTags(newTagsB); err != nil {
		t.Fatalf("SetTags: %v", err)
	}
	want = []api.Member{
		memberOf(t, "a", a, "alive", tagsA),
		memberOf(t, "b", b, "alive", newTagsB),
		memberOf(t, "c", c, "alive", newTagsC),
	}
	for _, m := range nodes {
		eventually(t, "new tags seen", func() error { return membersEqual(m, want) })
		if got, want := m.MasterAPIs(), []string{"http://127.0.0.1:5050"}; !slices.Equal(got, want) {
			t.Errorf("MasterAPIs() after b dropped the master role = %q, want %q", got, want)
		}
	}
}

// TestMembershipGossipKey: nodes with the cluster's gossip key join each other; a node
// with another key, or none, cannot join them, and neither side ever lists the other.
func TestMembershipGossipKey(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	key := func(b byte) func(*MembershipConfig) {
		return func(c *MembershipConfig) { c.GossipKey = bytes.Repeat([]byte{b}, 32) }
	}
	tags := map[string]string{TagRole: RoleAgent}
	a := startNode(t, logs, "a", tags, key(1))
	b := startNode(t, logs, "b", tags, func(c *MembershipConfig) { key(1)(c); joining(a.Addr())(c) })
	want := []api.Member{memberOf(t, "a", a, "alive", tags), memberOf(t, "b", b, "alive", tags)}
	for _, m := range []*Membership{a, b} {
		eventually(t, "a and b see each other", func() error { return membersEqual(m, want) })
	}

	wrongKey := startNode(t, logs, "c", tags, func(c *MembershipConfig) { key(2)(c); joining(a.Addr())(c) })
	noKey := startNode(t, logs, "d", tags, joining(a.Addr()))
	// A join that cannot succeed retries until it is told to stop; the first attempts
	// take well under these seconds on loopback.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, outsider := range []*Membership{wrongKey, noKey} {
		err := outsider.WaitJoined(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s joined a cluster with another gossip key: WaitJoined() = %v", outsider.name, err)
		}
		if got := names(outsider.Members()); !slices.Equal(got, []string{outsider.name}) {
			t.Fatalf("%s lists %q, want only itself", outsider.name, got)
		}
	}
	if _, ok := logs.find("node=c", "No installed keys could decrypt the message"); !ok {
		t.Error("the node with the wrong key logged no decryption failure")
	}
	for _, m := range []*Membership{a, b} {
		if err := membersEqual(m, want); err != nil {
			t.Fatalf("after the outsiders tried: %v", err)
		}
	}
}

// TestMembershipFailedMember stops a node without leaving: the others see it failed, and
// the one with a short reconnect timeout reaps it.
func TestMembershipFailedMember(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	a := startNode(t, logs, "a", nil, func(c *MembershipConfig) { c.ReconnectTimeout = 2 * time.Second })
	eventsA := record(t, a)
	b := startNode(t, logs, "b", nil, joining(a.Addr()))
	c := startNode(t, logs, "c", nil, joining(a.Addr()))
	for _, m := range []*Membership{a, b} {
		eventually(t, "c joined", func() error {
			if s := statusOf(m, "c"); s != "alive" {
				return fmt.Errorf("c is %s", s)
			}
			return nil
		})
	}

	if err := c.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	eventually(t, "b sees c failed", func() error {
		if s := statusOf(b, "c"); s != "failed" {
			return fmt.Errorf("c is %s", s)
		}
		return nil
	})
	eventually(t, "a reaps c", func() error {
		// Serf forgets c before the reap event reaches the subscribers.
		if got, want := eventsA.types("c"), []MemberEventType{MemberJoin, MemberFailed, MemberReap}; !slices.Equal(got, want) {
			return fmt.Errorf("a's events for c = %q, want %q", got, want)
		}
		return nil
	})
	if s := statusOf(a, "c"); s != "absent" {
		t.Errorf("a still lists c as %s after reaping it", s)
	}
}

// TestMembershipLeave leaves gracefully: the other node sees "left", not "failed".
func TestMembershipLeave(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	a := startNode(t, logs, "a", nil, nil)
	eventsA := record(t, a)
	b := startNode(t, logs, "b", nil, joining(a.Addr()))
	eventually(t, "b joined", func() error {
		if s := statusOf(a, "b"); s != "alive" {
			return fmt.Errorf("b is %s", s)
		}
		return nil
	})
	if err := b.Leave(); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := b.Shutdown(); err != nil {
		t.Errorf("Shutdown after Leave: %v", err)
	}
	eventually(t, "a sees b left", func() error {
		if s := statusOf(a, "b"); s != "left" {
			return fmt.Errorf("b is %s", s)
		}
		return nil
	})
	if got, want := eventsA.types("b"), []MemberEventType{MemberJoin, MemberLeave}; !slices.Equal(got, want) {
		t.Errorf("a's events for b = %q, want %q", got, want)
	}
}

// TestMembershipJoinRetry starts the joiner before its seed: it logs why it waits and joins
// once the seed is up.
func TestMembershipJoinRetry(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	seedPort := freeGossipPort(t)
	seedAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(seedPort))
	joiner := startNode(t, logs, "joiner", nil, joining(seedAddr))
	eventually(t, "joiner logs a failed attempt", func() error {
		if _, ok := logs.find(`msg="waiting to join"`, "Failed to join "+seedAddr, "connection refused", "retry_in=1s"); !ok {
			return errors.New("no such log line")
		}
		return nil
	})
	if line, _ := logs.find(`msg="waiting to join"`); strings.Contains(line, `\n`) {
		t.Errorf("join failure spans lines: %s", line)
	}

	seed := startNode(t, logs, "seed", nil, func(c *MembershipConfig) { c.Port = seedPort })
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := joiner.WaitJoined(ctx); err != nil {
		t.Fatalf("WaitJoined() = %v", err)
	}
	for _, m := range []*Membership{seed, joiner} {
		eventually(t, "both alive", func() error {
			if got := m.Members(); len(got) != 2 || got[0].Status != "alive" || got[1].Status != "alive" {
				return fmt.Errorf("Members() = %+v", got)
			}
			return nil
		})
	}
	if got := names(seed.Members()); !slices.Equal(got, []string{"joiner", "seed"}) {
		t.Errorf("seed's members = %q, want [joiner seed]", got)
	}
}

func TestWaitForMasters(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	master := map[string]string{TagRole: RoleMaster}
	a := startNode(t, logs, "a", master, nil)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := a.WaitForMasters(cancelled, 2); !errors.Is(err, context.Canceled) || got != nil {
		t.Fatalf("WaitForMasters(cancelled) = %v, %v; want nil, context.Canceled", got, err)
	}
	if _, ok := logs.find(`msg="waiting for 2 masters, have 1 (a)"`); !ok {
		t.Error("no progress line")
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if got, err := a.WaitForMasters(ctx, 1); err != nil || !slices.Equal(names(got), []string{"a"}) {
		t.Fatalf("WaitForMasters(1) = %v, %v; want [a]", got, err)
	}
	type result struct {
		masters []api.Member
		err     error
	}
	done := make(chan result, 1)
	go func() {
		masters, err := a.WaitForMasters(ctx, 2)
		done <- result{masters, err}
	}()
	startNode(t, logs, "agent", map[string]string{TagRole: RoleAgent}, joining(a.Addr()))
	select {
	case r := <-done:
		t.Fatalf("WaitForMasters(2) returned %v, %v with one master", r.masters, r.err)
	default:
	}
	startNode(t, logs, "b", master, joining(a.Addr()))
	r := <-done
	if r.err != nil || !slices.Equal(names(r.masters), []string{"a", "b"}) {
		t.Fatalf("WaitForMasters(2) = %v, %v; want [a b]", names(r.masters), r.err)
	}
}

// TestMembershipNameConflict starts a second node under a taken name: its join fails for
// good with ErrNameConflict and the first node's view is untouched.
func TestMembershipNameConflict(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	first := startNode(t, logs, "dup", nil, nil)
	second := startNode(t, logs, "dup", nil, joining(first.Addr()))

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := second.WaitJoined(ctx)
	if !errors.Is(err, ErrNameConflict) {
		t.Fatalf("WaitJoined() = %v, want ErrNameConflict", err)
	}
	if want := fmt.Sprintf("join %s: node name already in use: %q is held by %s", first.Addr(), "dup", first.Addr()); err.Error() != want {
		t.Errorf("WaitJoined() = %q, want %q", err, want)
	}
	if _, err := second.WaitForMasters(ctx, 1); !errors.Is(err, ErrNameConflict) {
		t.Errorf("WaitForMasters() = %v, want ErrNameConflict", err)
	}
	if err := membersEqual(first, []api.Member{memberOf(t, "dup", first, "alive", map[string]string{})}); err != nil {
		t.Error(err)
	}
}

// TestMembershipSnapshotRejoin restarts a node on its old address with no join list: the
// snapshot brings it back into the cluster.
func TestMembershipSnapshotRejoin(t *testing.T) {
	t.Parallel()
	logs := newTestLog(t)
	a := startNode(t, logs, "a", nil, nil)
	port := freeGossipPort(t)
	snapshot := filepath.Join(t.TempDir(), "serf", "snapshot")
	withSnapshot := func(c *MembershipConfig) { c.Port, c.SnapshotPath = port, snapshot }
	b := startNode(t, logs, "b", nil, func(c *MembershipConfig) { withSnapshot(c); c.Join = []string{a.Addr()} })
	eventually(t, "b joined", func() error {
		if s := statusOf(a, "b"); s != "alive" {
			return fmt.Errorf("b is %s", s)
		}
		return nil
	})
	if err := b.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	restarted := startNode(t, logs, "b", nil, withSnapshot)
	eventually(t, "restarted b rejoins a through its snapshot", func() error {
		if _, ok := logs.find("serf: Re-joined to previously known node: a: "+a.Addr(), "node=b"); !ok {
			return errors.New("no rejoin logged")
		}
		if s := statusOf(restarted, "a"); s != "alive" {
			return fmt.Errorf("a is %s", s)
		}
		return nil
	})
}

// TestMembershipSubscribeAndShutdown checks that a cancelled subscription gets nothing, a
// live one gets joins, and that Shutdown leaves no goroutine behind. It does not run in
// parallel so that the goroutine count is its own.
func TestMembershipSubscribeAndShutdown(t *testing.T) {
	logs := newTestLog(t)
	baseline := runtime.NumGoroutine()
	a := startNode(t, logs, "a", nil, nil)

	// Counting only b's events keeps a's own join, dispatched whenever, out of the count.
	var cancelledCalls atomic.Int32
	stop := a.Subscribe(func(e MemberEvent) {
		if e.Member.Name == "b" {
			cancelledCalls.Add(1)
		}
	})
	stop()
	stop() // cancelling twice is harmless
	live := record(t, a)

	b := startNode(t, logs, "b", nil, joining(a.Addr()))
	eventually(t, "live subscriber sees b", func() error {
		if got := live.types("b"); !slices.Equal(got, []MemberEventType{MemberJoin}) {
			return fmt.Errorf("events for b = %q", got)
		}
		return nil
	})
	if n := cancelledCalls.Load(); n != 0 {
		t.Errorf("cancelled subscriber called %d times", n)
	}

	for _, m := range []*Membership{b, a} {
		if err := m.Shutdown(); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	calls := live.count()
	late := a.Subscribe(func(MemberEvent) { t.Error("callback after Shutdown") })
	late()
	if got := live.count(); got != calls {
		t.Errorf("events after Shutdown: %d, want %d", got, calls)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := a.WaitForMasters(ctx, 1); !errors.Is(err, ErrShutdown) {
		t.Errorf("WaitForMasters after Shutdown = %v, want ErrShutdown", err)
	}
	eventually(t, "goroutines back to the baseline", func() error {
		if n := runtime.NumGoroutine(); n > baseline {
			return fmt.Errorf("%d goroutines, %d before", n, baseline)
		}
		return nil
	})
}
