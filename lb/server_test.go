package lb

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// testWriter sends logs to t.Log until the test ends.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestServer starts a Server on loopback with random ports and its registry.
func newTestServer(t testing.TB, opts ...func(*Config)) (*Server, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.HTTPSAddr = "127.0.0.1:0"
	cfg.AppIDAddr = "127.0.0.1:0"
	cfg.BindAddr = "127.0.0.1"
	cfg.EjectFor = time.Minute
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	for _, o := range opts {
		o(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, reg
}

// httpBackend is an HTTP server answering "<name> <path> <X-Forwarded-For>".
func httpBackend(t testing.TB, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %s", name, r.URL.Path, r.Header.Get("X-Forwarded-For"), body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// tcpBackend is a TCP server that writes "<name>\n" and then echoes.
func tcpBackend(t testing.TB, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", name)
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String()
}

// freePort finds a loopback port nobody listens on.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// deadAddr is a loopback address that refuses connections until the test ends: a socket
// bound to it and not listening holds the port, so no listener opened meanwhile (the
// test's own backends included) can be given it.
func deadAddr(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
}

func backendsOf(addrs ...string) []Backend {
	out := make([]Backend, len(addrs))
	for i, a := range addrs {
		out[i] = Backend{Addr: a, App: "/app", TaskID: "task-" + strconv.Itoa(i)}
	}
	return out
}

func svcDef(name string, port int, mode string, addrs ...string) Service {
	return Service{Name: name, AppID: "/" + name, Port: port, Mode: mode, Balance: BalanceRoundRobin, Backends: backendsOf(addrs...)}
}

func swap(t testing.TB, s *Server, services ...Service) {
	t.Helper()
	if err := s.Swap(&Table{Group: "external", Services: services, Problems: []Problem{}}); err != nil {
		t.Fatal(err)
	}
}

// get sends a request and returns the status and body.
func get(t testing.TB, client *http.Client, url string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// TestRouting: requests reach the service their virtual host and path, service port or
// X-Marathon-App-Id name, with X-Forwarded-For; TCP service ports proxy bytes both ways.
func TestRouting(t *testing.T) {
	s, _ := newTestServer(t)
	api, site, direct, tcp := httpBackend(t, "api"), httpBackend(t, "site"), httpBackend(t, "direct"), tcpBackend(t, "tcp")
	directPort, tcpPort := freePort(t), freePort(t)
	apiSvc := svcDef("api", freePort(t), ModeHTTP, api)
	apiSvc.VHosts, apiSvc.Path = []string{"a.example"}, "/api"
	siteSvc := svcDef("site", freePort(t), ModeHTTP, site)
	siteSvc.VHosts = []string{"a.example", "b.example"}
	swap(t, s, apiSvc, siteSvc, svcDef("direct", directPort, ModeHTTP, direct), svcDef("tcp", tcpPort, ModeTCP, tcp))

	vhost := "http://" + s.HTTPAddr().String()
	appID := "http://" + s.AppIDAddr().String()
	for _, tc := range []struct {
		url    string
		header map[string]string
		code   int
		body   string
	}{
		{vhost + "/api/v1", map[string]string{"Host": "a.example"}, 200, "api /api/v1 127.0.0.1 "},
		{vhost + "/apis", map[string]string{"Host": "A.Example:80"}, 200, "api /apis 127.0.0.1 "},
		{vhost + "/", map[string]string{"Host": "a.example"}, 200, "site / 127.0.0.1 "},
		{vhost + "/api", map[string]string{"Host": "b.example"}, 200, "site /api 127.0.0.1 "},
		{vhost + "/", map[string]string{"Host": "c.example"}, 503, "503 Service Unavailable: no service routes this request\n"},
		{vhost + "/x", map[string]string{"Host": "b.example", "X-Forwarded-For": "192.0.2.1"}, 200, "site /x 192.0.2.1, 127.0.0.1 "},
		{fmt.Sprintf("http://127.0.0.1:%d/d", directPort), nil, 200, "direct /d 127.0.0.1 "},
		{appID + "/by-id", map[string]string{AppIDHeader: "/direct"}, 200, "direct /by-id 127.0.0.1 "},
		{appID + "/by-id", map[string]string{AppIDHeader: "/site"}, 200, "site /by-id 127.0.0.1 "},
		{appID + "/", map[string]string{AppIDHeader: "/tcp"}, 503, "503 Service Unavailable: no service routes this request\n"},
	} {
		code, body, _ := get(t, http.DefaultClient, tc.url, tc.header)
		if code != tc.code || body != tc.body {
			t.Errorf("GET %s %v = %d %q, want %d %q", tc.url, tc.header, code, body, tc.code, tc.body)
		}
	}

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "hello\n")
	for _, want := range []string{"tcp\n", "hello\n"} {
		if line, err := r.ReadString('\n'); line != want || err != nil {
			t.Errorf("read %q %v, want %q", line, err, want)
		}
	}
}

// TestBalance: round robin spreads requests evenly, source pins a client to one backend,
// least connections takes the backend with the fewest in flight.
func TestBalance(t *testing.T) {
	s, _ := newTestServer(t)
	names := []string{"b0", "b1", "b2"}
	addrs := make([]string, len(names))
	for i, n := range names {
		addrs[i] = httpBackend(t, n)
	}
	rrPort, srcPort := freePort(t), freePort(t)
	src := svcDef("src", srcPort, ModeHTTP, addrs...)
	src.Balance = BalanceSource
	swap(t, s, svcDef("rr", rrPort, ModeHTTP, addrs...), src)

	count := func(port int) map[string]int {
		got := map[string]int{}
		for range 30 {
			_, body, _ := get(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", port), nil)
			got[strings.Fields(body)[0]]++
		}
		return got
	}
	if got := count(rrPort); got["b0"] != 10 || got["b1"] != 10 || got["b2"] != 10 {
		t.Errorf("round robin spread %v, want 10 each", got)
	}
	if got := count(srcPort); len(got) != 1 {
		t.Errorf("source spread one client over %v, want one backend", got)
	}

	lc := compile(&Table{Services: []Service{{Name: "lc", Port: 1, Mode: ModeTCP, Balance: BalanceLeastConn, Backends: backendsOf("x:1", "x:2", "x:3")}}}, "", nil)
	svc := lc.services[0]
	svc.backends[0].active.Store(5)
	svc.backends[1].active.Store(2)
	svc.backends[2].active.Store(7)
	if b := svc.pick("c", "", nil); b.addr != "x:2" {
		t.Errorf("leastconn picked %s, want x:2", b.addr)
	}
	if b := svc.pick("c", "", []*backend{svc.backends[1]}); b.addr != "x:1" {
		t.Errorf("leastconn without x:2 picked %s, want x:1", b.addr)
	}
}

// TestSticky: a response sets the sticky cookie, and requests carrying it stay on that
// backend where round robin would move them.
func TestSticky(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	def := svcDef("sticky", port, ModeHTTP, httpBackend(t, "b0"), httpBackend(t, "b1"))
	def.Sticky = true
	swap(t, s, def)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	_, body, header := get(t, http.DefaultClient, url, nil)
	first := strings.Fields(body)[0]
	cookie := header.Get("Set-Cookie")
	value, ok := strings.CutPrefix(strings.Split(cookie, ";")[0], stickyCookie+"=")
	if !ok || value == "" {
		t.Fatalf("Set-Cookie %q", cookie)
	}
	for range 10 {
		_, body, header := get(t, http.DefaultClient, url, map[string]string{"Cookie": stickyCookie + "=" + value})
		if got := strings.Fields(body)[0]; got != first {
			t.Fatalf("pinned request went to %s, want %s", got, first)
		}
		if sc := header.Get("Set-Cookie"); sc != "" {
			t.Errorf("pinned request got Set-Cookie %q", sc)
		}
	}
	_, body, _ = get(t, http.DefaultClient, url, map[string]string{"Cookie": stickyCookie + "=unknown"})
	if body == "" {
		t.Error("a stale cookie got no answer")
	}
}

// TestAuth: basic authentication with marathon-lb's realm:user:hash; the hash is openssl's.
func TestAuth(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	def := svcDef("private", port, ModeHTTP, httpBackend(t, "private"))
	def.Auth = &Auth{Realm: "shop", User: "alice", PasswordHash: aliceHash}
	swap(t, s, def)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	for _, tc := range []struct {
		user, password string
		code           int
	}{{"", "", 401}, {"alice", "wrong", 401}, {"bob", "secret", 401}, {"alice", "secret", 200}, {"alice", "secret", 200}} {
		req, _ := http.NewRequest("GET", url, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s:%s = %d, want %d", tc.user, tc.password, resp.StatusCode, tc.code)
		}
		if tc.code == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="shop"` {
			t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// TestEjection: a backend refusing connections is ejected, its requests retried on another
// one (none fails), and it is tried again once its ejection is over.
func TestEjection(t *testing.T) {
	s, _ := newTestServer(t, func(c *Config) { c.EjectFor = 300 * time.Millisecond })
	httpPort, tcpPort := freePort(t), freePort(t)
	dead := deadAddr(t)
	swap(t, s, svcDef("web", httpPort, ModeHTTP, dead, httpBackend(t, "live")), svcDef("raw", tcpPort, ModeTCP, dead, tcpBackend(t, "live")))
	failures := func(svc int) uint64 {
		for _, b := range s.routes.Load().services[svc].backends {
			if b.addr == dead {
				return b.failures.Load()
			}
		}
		t.Fatal("dead backend not in the table")
		return 0
	}
	for range 10 {
		code, body, _ := get(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", httpPort), nil)
		if code != 200 || !strings.HasPrefix(body, "live ") {
			t.Fatalf("request = %d %q, want the live backend", code, body)
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort))
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if line != "live\n" || err != nil {
			t.Fatalf("TCP read %q %v", line, err)
		}
	}
	if f := failures(0) + failures(1); f != 2 {
		t.Errorf("dead backend failed %d times during its ejection, want 2 (once per service)", f)
	}
	deadline := time.Now().Add(30 * time.Second)
	for failures(0) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the ejected backend was never retried")
		}
		time.Sleep(50 * time.Millisecond)
		get(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/", httpPort), nil)
	}
}

// TestSwapDrains: a long-lived TCP connection keeps working after its backend and even its
// service port left the table, and clients see no failed request across many swaps under
// load that move backends in and out.
func TestSwapDrains(t *testing.T) {
	s, _ := newTestServer(t)
	tcpPort, httpPort := freePort(t), freePort(t)
	swap(t, s, svcDef("raw", tcpPort, ModeTCP, tcpBackend(t, "old")))
	long, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tcpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	reader := bufio.NewReader(long)
	if line, _ := reader.ReadString('\n'); line != "old\n" {
		t.Fatalf("greeting %q", line)
	}

	backends := []string{httpBackend(t, "h0"), httpBackend(t, "h1"), httpBackend(t, "h2")}
	tables := [][]Service{
		{svcDef("web", httpPort, ModeHTTP, backends[0], backends[1])},
		{svcDef("web", httpPort, ModeHTTP, backends[2]), svcDef("raw", tcpPort, ModeTCP, tcpBackend(t, "new"))},
		{svcDef("web", httpPort, ModeHTTP, backends[1], backends[2])},
	}
	swap(t, s, tables[0]...)
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", httpPort))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	const swaps = 200
	for i := range swaps {
		swap(t, s, tables[i%len(tables)]...)
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("%d requests failed and %d succeeded across %d swaps, want 0 failed", failed.Load(), ok.Load(), swaps)
	}
	// The long connection's service port was closed and reopened many times meanwhile.
	fmt.Fprintf(long, "still here\n")
	if line, err := reader.ReadString('\n'); line != "still here\n" || err != nil {
		t.Errorf("long-lived connection read %q %v after the swaps", line, err)
	}
}

// TestConfigValidate: every field the server cannot run with is reported, and the
// presets are valid.
func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{DefaultConfig(), DevConfig()} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("preset: %v", err)
		}
	}
	cfg := Config{EjectFor: -1, QueueTimeout: -1, MaxIdlePerBackend: -1, MaxRequestsPerBackendConn: -3, HeaderTimeout: -1, Loops: -2}
	want := "lb: Logger is nil\nlb: DialTimeout 0s is not positive\nlb: EjectFor -1ns is negative\nlb: Attempts 0 is less than 1\n" +
		"lb: QueueTimeout -1ns is negative\nlb: Loops -2 is negative\nlb: MaxIdlePerBackend -1 is negative\nlb: MaxRequestsPerBackendConn -3 is negative\nlb: IdleTimeout 0s is not positive\n" +
		"lb: HeaderTimeout -1ns is not positive\nlb: ClientTimeout 0s is not positive\nlb: ServerTimeout 0s is not positive"
	if err := cfg.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v, want %q", err, want)
	}
}
