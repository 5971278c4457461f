package vipproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll/atoll/lb/vip"
)

// waitTimeout bounds every wait in these tests: generous for a loaded machine.
const waitTimeout = 10 * time.Second

// testLogger logs through t.Log until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// newProxy makes a proxy with addrs that listens on the VIP ports themselves (no
// nftables table), closed when the test ends.
func newProxy(t testing.TB, addrs Addresses) *Proxy {
	t.Helper()
	return startProxy(t, addrs, "")
}

// startProxy makes a proxy with addrs and the nftables table natTable, closed when the
// test ends.
func startProxy(t testing.TB, addrs Addresses, natTable string) *Proxy {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.Addresses = addrs
	cfg.DialTimeout = 2 * time.Second
	cfg.NATTable = natTable
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// echoServer is a TCP server on loopback that greets every connection with its name and a
// newline, then echoes what it reads.
func echoServer(t testing.TB, name string) netip.AddrPort {
	t.Helper()
	return echoServerOn(t, name, "127.0.0.1:0")
}

// echoServerOn is an echoServer listening on addr.
func echoServerOn(t testing.TB, name, addr string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// refusing is a loopback port nothing listens on.
func refusing(t testing.TB) netip.AddrPort {
	t.Helper()
	return freePort(t, "127.0.0.1")
}

// freePort is a TCP port of ip nothing listens on now.
func freePort(t testing.TB, ip string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// conn is a client connection through a VIP.
type conn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// dial connects to a VIP and reads the greeting of the backend it reached.
func dial(t testing.TB, addr netip.AddrPort) (*conn, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	cc := &conn{t: t, c: c, r: bufio.NewReader(c)}
	name, err := cc.r.ReadString('\n')
	if err != nil {
		t.Fatalf("greeting through %s: %q, %v", addr, name, err)
	}
	return cc, strings.TrimSuffix(name, "\n")
}

// echo checks that the connection still carries data both ways.
func (c *conn) echo(msg string) {
	c.t.Helper()
	_ = c.c.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c.c, msg+"\n"); err != nil {
		c.t.Fatalf("write %q: %v", msg, err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || got != msg+"\n" {
		c.t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

func table(services ...vip.Service) *vip.Table { return &vip.Table{Services: services} }

func tcpService(addr netip.AddrPort, backends ...netip.AddrPort) vip.Service {
	return vip.Service{Name: "web.marathon", Addr: addr, Protocol: vip.TCP, Backends: backends}
}

// TestRoundRobin: connections to a VIP port go to its backends in turn.
func TestRoundRobin(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	backends := []netip.AddrPort{a, b}
	slices.SortFunc(backends, netip.AddrPort.Compare)
	names := map[netip.AddrPort]string{a: "a", b: "b"}
	p := newProxy(t, Local{})
	addr := freePort(t, "127.0.0.201")
	if err := p.Update(table(tcpService(addr, backends...))); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 5 {
		_, name := dial(t, addr)
		got = append(got, name)
	}
	first, second := names[backends[0]], names[backends[1]]
	if want := []string{first, second, first, second, first}; !slices.Equal(got, want) {
		t.Errorf("backends reached %v, want %v", got, want)
	}
}

// TestSkipsRefusingBackend: a backend that refuses is skipped for the next one, so every
// connection reaches the one that answers.
func TestSkipsRefusingBackend(t *testing.T) {
	dead, live := refusing(t), echoServer(t, "live")
	p := newProxy(t, Local{})
	addr := freePort(t, "127.0.0.202")
	if err := p.Update(table(tcpService(addr, dead, live))); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, name := dial(t, addr); name != "live" {
			t.Fatalf("connection %d reached %q, want live", i, name)
		}
	}
}

// TestNoBackend: a VIP port without backends takes connections and closes them.
func TestNoBackend(t *testing.T) {
	p := newProxy(t, Local{})
	addr := freePort(t, "127.0.0.203")
	if err := p.Update(table(tcpService(addr), tcpService(freePort(t, "127.0.0.203"), refusing(t)))); err != nil {
		t.Fatal(err)
	}
	for _, a := range p.Addrs() {
		c, err := net.DialTimeout("tcp", a.String(), waitTimeout)
		if err != nil {
			t.Fatalf("dial %s: %v", a, err)
		}
		_ = c.SetDeadline(time.Now().Add(waitTimeout))
		n, err := c.Read(make([]byte, 1))
		c.Close()
		if n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("read through %s: %d, %v; want EOF", a, n, err)
		}
	}
}

// TestFollowsTable: a new table changes where new connections go, and stops the VIP
// ports it no longer has, while the connections already made keep working; UDP services
// are not listened on.
func TestFollowsTable(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	p := newProxy(t, Local{})
	addr := freePort(t, "127.0.0.204")
	other := freePort(t, "127.0.0.204")
	udp := vip.Service{Addr: freePort(t, "127.0.0.204"), Protocol: vip.UDP, Backends: []netip.AddrPort{a}}
	if err := p.Update(table(tcpService(addr, a), tcpService(other, a), udp)); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Addrs(), slices.SortedFunc(slices.Values([]netip.AddrPort{addr, other}), netip.AddrPort.Compare); !slices.Equal(got, want) {
		t.Fatalf("listening on %v, want %v", got, want)
	}
	first, name := dial(t, addr)
	if name != "a" {
		t.Fatalf("first connection reached %q, want a", name)
	}
	first.echo("one")

	if err := p.Update(table(tcpService(addr, b), tcpService(other, a))); err != nil {
		t.Fatal(err)
	}
	if _, name := dial(t, addr); name != "b" {
		t.Fatalf("after the table changed, a new connection reached %q, want b", name)
	}
	first.echo("two")

	if err := p.Update(table(tcpService(other, a))); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr.String(), waitTimeout); err == nil {
		c.Close()
		t.Fatalf("%s still takes connections after its VIP went", addr)
	}
	first.echo("three")
	if got := p.Addrs(); !slices.Equal(got, []netip.AddrPort{other}) {
		t.Fatalf("listening on %v, want %v", got, other)
	}
}

// TestUpdateError: a VIP port that cannot be listened on (its address is not the node's)
// is reported, and the table's other ports are balanced all the same.
func TestUpdateError(t *testing.T) {
	live := echoServer(t, "live")
	p := newProxy(t, Local{})
	good := freePort(t, "127.0.0.205")
	bad := netip.MustParseAddrPort("198.18.1.250:80")
	err := p.Update(table(tcpService(good, live), tcpService(bad, live)))
	if !errors.Is(err, syscall.EADDRNOTAVAIL) || !strings.Contains(err.Error(), "VIP 198.18.1.250:80: ") {
		t.Fatalf("Update = %v, want EADDRNOTAVAIL for VIP 198.18.1.250:80", err)
	}
	if _, name := dial(t, good); name != "live" {
		t.Fatalf("reached %q, want live", name)
	}
}

// TestRun: Run follows the tables it is given as they come, and closes the proxy when its
// context ends.
func TestRun(t *testing.T) {
	a, b := echoServer(t, "a"), echoServer(t, "b")
	p := newProxy(t, Local{})
	addr := freePort(t, "127.0.0.206")
	var mu sync.Mutex
	current, next := table(tcpService(addr, a)), make(chan struct{})
	tables := func() (*vip.Table, <-chan struct{}) {
		mu.Lock()
		defer mu.Unlock()
		return current, next
	}
	publish := func(t *vip.Table) {
		mu.Lock()
		defer mu.Unlock()
		current = t
		close(next)
		next = make(chan struct{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, tables) }()
	waitReach(t, addr, "a")
	publish(table(tcpService(addr, b)))
	waitReach(t, addr, "b")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after its context ended")
	}
	if c, err := net.DialTimeout("tcp", addr.String(), waitTimeout); err == nil {
		c.Close()
		t.Fatalf("%s takes connections after Run returned", addr)
	}
	if err := p.Update(table()); err == nil {
		t.Error("Update after Run returned: no error")
	}
}

// waitReach waits until a connection to addr reaches the backend called name.
func waitReach(t testing.TB, addr netip.AddrPort, name string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr.String(), waitTimeout)
		got := ""
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(waitTimeout))
			got, err = bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
		if got == name+"\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s reaches %q (%v), want %s", addr, got, err, name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Logger, cfg.DialTimeout, cfg.EjectFor, cfg.NATTable = nil, 0, -1, "atoll vip"
	want := "vip proxy: Logger is nil\nvip proxy: Addresses is nil\nvip proxy: DialTimeout 0s is not positive\nvip proxy: EjectFor -1ns is negative\n" +
		`vip proxy: NATTable: nftables table name "atoll vip": only ASCII letters, digits, "_" and "-" are allowed`
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
	for _, table := range []string{"", "atoll-vip0", strings.Repeat("a", 64)} {
		cfg := DefaultConfig()
		cfg.Addresses, cfg.NATTable = Local{}, table
		if err := cfg.Validate(); err != nil {
			t.Errorf("NATTable %q: Validate = %v", table, err)
		}
	}
	cfg = DefaultConfig()
	cfg.Addresses, cfg.NATTable = Local{}, strings.Repeat("a", 65)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "longer than 64 characters") {
		t.Errorf("NATTable of 65 characters: Validate = %v", err)
	}
}

// gathered is the registry's metrics as "name{label="value",...} value" lines, sorted.
func gathered(t testing.TB, reg *prometheus.Registry) []string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			value := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			lines = append(lines, fmt.Sprintf("%s{%s} %g", f.GetName(), strings.Join(labels, ","), value))
		}
	}
	slices.Sort(lines)
	return lines
}

// waitMetrics waits until the registry's metrics are want.
func waitMetrics(t testing.TB, reg *prometheus.Registry, want []string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(waitTimeout)
	for {
		got := gathered(t, reg)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMetrics: each VIP port counts the connections it accepted, those being proxied,
// those no backend took, the bytes each way and the failed attempts on each backend.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Logger, cfg.Addresses, cfg.NATTable, cfg.Registerer = testLogger(t), Local{}, "", reg
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	live, dead, deadToo := echoServer(t, "live"), refusing(t), refusing(t)
	a, b := freePort(t, "127.0.0.209"), freePort(t, "127.0.0.209")
	if err := p.Update(table(tcpService(a, dead, live), tcpService(b, deadToo))); err != nil {
		t.Fatal(err)
	}
	metrics := func(vip netip.AddrPort, accepted, active, failed, in, out int, dialFailures map[netip.AddrPort]int) []string {
		lines := []string{
			fmt.Sprintf(`atoll_vip_connections_accepted_total{vip="%s"} %d`, vip, accepted),
			fmt.Sprintf(`atoll_vip_connections_active{vip="%s"} %d`, vip, active),
			fmt.Sprintf(`atoll_vip_connections_failed_total{vip="%s"} %d`, vip, failed),
			fmt.Sprintf(`atoll_vip_bytes_total{direction="in",vip="%s"} %d`, vip, in),
			fmt.Sprintf(`atoll_vip_bytes_total{direction="out",vip="%s"} %d`, vip, out),
		}
		for backend, n := range dialFailures {
			lines = append(lines, fmt.Sprintf(`atoll_vip_backend_dial_failures_total{backend="%s",vip="%s"} %d`, backend, vip, n))
		}
		return lines
	}

	// The first connection tries the refusing backend first (round robin from the
	// first), the second goes to the live one.
	first, _ := dial(t, a)
	first.echo("one")
	waitMetrics(t, reg, append(metrics(a, 1, 1, 0, 0, 0, map[netip.AddrPort]int{dead: 1}), metrics(b, 0, 0, 0, 0, 0, nil)...))
	second, _ := dial(t, a)
	second.echo("two")
	first.c.Close()
	second.c.Close()
	c, err := net.DialTimeout("tcp", b.String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitMetrics(t, reg, append(metrics(a, 2, 0, 0, len("one\ntwo\n"), len("live\none\nlive\ntwo\n"), map[netip.AddrPort]int{dead: 1}),
		metrics(b, 1, 0, 1, 0, 0, map[netip.AddrPort]int{deadToo: 1})...))

	// Another proxy cannot register the same metrics.
	if _, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "vip proxy: register metrics: ") {
		t.Errorf("second New with the same registry: %v", err)
	}
}
