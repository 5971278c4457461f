package lb

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dialTCP connects to a local port of the proxy.
func dialTCP(t testing.TB, port int) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn)
}

// scriptBackend is a TCP server running act on each connection (then closing it); the
// connections still open when the test ends are closed.
func scriptBackend(t testing.TB, act func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
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
			open[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				act(c.(*net.TCPConn))
			})
		}
	})
	return ln.Addr().String()
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTCPHalfClose: each side's end of sending reaches the other while the other
// direction goes on, and the byte counters have exactly what went each way.
func TestTCPHalfClose(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	backend := scriptBackend(t, func(c *net.TCPConn) {
		got, err := io.ReadAll(c)
		if err != nil {
			return
		}
		// The client's end arrived: answer after it, then end too.
		fmt.Fprintf(c, "got %d bytes: %s", len(got), got)
	})
	swap(t, s, svcDef("raw", port, ModeTCP, backend))
	c := dialTCP(t, port)
	if _, err := c.Write([]byte("ping pong")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(c)
	if string(reply) != "got 9 bytes: ping pong" || err != nil {
		t.Fatalf("reply %q %v", reply, err)
	}
	svc := s.routes.Load().byName["raw"]
	waitFor(t, "the session to close", func() bool { return svc.stats.active.Load() == 0 })
	if in, out, n := svc.stats.bytesIn.Load(), svc.stats.bytesOut.Load(), svc.stats.sessions.Load(); in != 9 || out != 22 || n != 1 {
		t.Errorf("bytes in %d, out %d, sessions %d; want 9, 22, 1", in, out, n)
	}
	if b := svc.backends[0]; b.bytesIn.Load() != 9 || b.bytesOut.Load() != 22 || b.sessions.Load() != 1 || b.active.Load() != 0 {
		t.Errorf("backend bytes in %d, out %d, sessions %d, active %d; want 9, 22, 1, 0", b.bytesIn.Load(), b.bytesOut.Load(), b.sessions.Load(), b.active.Load())
	}
}

// TestTCPDrainTimeout: the backend's end reaches the client as a half-close, after
// which what the client sends still reaches the backend; a client that does not end its
// side is cut off after the idle timeout, which the backend sees as the client's end.
func TestTCPDrainTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	s, _ := newTestServer(t, func(c *Config) { c.IdleTimeout = idle })
	port := freePort(t)
	type result struct {
		got     string
		elapsed time.Duration
	}
	received := make(chan result, 1)
	backend := scriptBackend(t, func(c *net.TCPConn) {
		start := time.Now()
		fmt.Fprint(c, "bye")
		_ = c.CloseWrite()
		got, _ := io.ReadAll(c)
		received <- result{string(got), time.Since(start)}
	})
	swap(t, s, svcDef("raw", port, ModeTCP, backend))
	c := dialTCP(t, port)
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q %v, want bye and the end", got, err)
	}
	if _, err := c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	r := <-received
	if r.got != "late" || r.elapsed < idle || r.elapsed > 10*time.Second {
		t.Errorf("backend received %q, its end after %v; want %q after the idle timeout %v", r.got, r.elapsed, "late", idle)
	}
	svc := s.routes.Load().byName["raw"]
	waitFor(t, "the session to close", func() bool { return svc.stats.active.Load() == 0 })
}

// hangingBackend is a loopback address whose SYNs are never answered: a listener with
// a full accept queue.
func hangingBackend(t testing.TB) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
	// Fill the queue; the connects after these get no answer.
	for range 2 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// TestTCPConnectTimeout: a backend that does not answer is given up after the dial
// timeout and ejected, and the next one is tried; with none left the client is closed
// and the failure counted.
func TestTCPConnectTimeout(t *testing.T) {
	const dial = 200 * time.Millisecond
	s, _ := newTestServer(t, func(c *Config) { c.DialTimeout = dial; c.Attempts = 2 })
	onlyPort, twoPort := freePort(t), freePort(t)
	hanging := hangingBackend(t)
	two := svcDef("two", twoPort, ModeTCP, hanging, tcpBackend(t, "live"))
	swap(t, s, svcDef("only", onlyPort, ModeTCP, hanging), two)

	c := dialTCP(t, onlyPort)
	start := time.Now()
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read = %d %v, want EOF", n, err)
	}
	if elapsed := time.Since(start); elapsed < dial {
		t.Errorf("closed after %v, before the dial timeout %v", elapsed, dial)
	}
	only := s.routes.Load().byName["only"]
	if f, b := only.stats.failures.Load(), only.backends[0].failures.Load(); f != 1 || b != 1 {
		t.Errorf("failures: service %d, backend %d; want 1, 1", f, b)
	}
	if !only.backends[0].ejected(time.Now().UnixNano()) {
		t.Error("the backend that did not answer is not ejected")
	}

	// The live backend answers, whichever is picked first.
	for range 2 {
		c := dialTCP(t, twoPort)
		if line, err := bufio.NewReader(c).ReadString('\n'); line != "live\n" || err != nil {
			t.Fatalf("read %q %v, want the live backend", line, err)
		}
		c.Close()
	}
	if f := s.routes.Load().byName["two"].stats.failures.Load(); f != 0 {
		t.Errorf("service failures %d, want 0", f)
	}
}

// TestTCPRefusedRetry: a backend refusing connections is ejected and the connection goes
// to the next; with every backend refusing, the client is closed and the failure counted.
func TestTCPRefusedRetry(t *testing.T) {
	s, _ := newTestServer(t)
	port, deadPort := freePort(t), freePort(t)
	dead := deadAddr(t)
	swap(t, s, svcDef("raw", port, ModeTCP, dead, tcpBackend(t, "live")), svcDef("dead", deadPort, ModeTCP, dead, deadAddr(t)))
	for range 4 {
		c := dialTCP(t, port)
		if line, err := bufio.NewReader(c).ReadString('\n'); line != "live\n" || err != nil {
			t.Fatalf("read %q %v", line, err)
		}
		c.Close()
	}
	c := dialTCP(t, deadPort)
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("read = %d %v, want EOF", n, err)
	}
	rt := s.routes.Load()
	if f := rt.byName["raw"].backends[0].failures.Load(); f != 1 {
		t.Errorf("refusing backend failed %d times, want 1 (ejected after the first)", f)
	}
	if f, sessions := rt.byName["dead"].stats.failures.Load(), rt.byName["dead"].stats.sessions.Load(); f != 1 || sessions != 1 {
		t.Errorf("all-refusing service: failures %d, sessions %d; want 1, 1", f, sessions)
	}
}

// TestTCPBalanceAndAccess: round robin spreads connections evenly, source pins a client
// to one backend, and a client outside a service's allowed networks is closed.
func TestTCPBalanceAndAccess(t *testing.T) {
	s, _ := newTestServer(t)
	addrs := []string{tcpBackend(t, "b0"), tcpBackend(t, "b1"), tcpBackend(t, "b2")}
	rrPort, srcPort, allowPort, denyPort := freePort(t), freePort(t), freePort(t), freePort(t)
	src := svcDef("src", srcPort, ModeTCP, addrs...)
	src.Balance = BalanceSource
	allow := svcDef("allow", allowPort, ModeTCP, addrs[0])
	allow.AllowedNets = []string{"127.0.0.0/8"}
	deny := svcDef("deny", denyPort, ModeTCP, addrs[0])
	deny.AllowedNets = []string{"192.0.2.0/24"}
	swap(t, s, svcDef("rr", rrPort, ModeTCP, addrs...), src, allow, deny)
	greeting := func(port int) string {
		c := dialTCP(t, port)
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	count := func(port int) map[string]int {
		got := map[string]int{}
		for range 30 {
			got[greeting(port)]++
		}
		return got
	}
	if got := count(rrPort); got["b0\n"] != 10 || got["b1\n"] != 10 || got["b2\n"] != 10 {
		t.Errorf("round robin spread %v, want 10 each", got)
	}
	if got := count(srcPort); len(got) != 1 {
		t.Errorf("source spread one client over %v, want one backend", got)
	}
	if line := greeting(allowPort); line != "b0\n" {
		t.Errorf("allowed client read %q", line)
	}
	if line := greeting(denyPort); line != "" {
		t.Errorf("denied client read %q, want nothing", line)
	}
	if d := s.routes.Load().byName["deny"].stats.denied.Load(); d != 1 {
		t.Errorf("denied %d, want 1", d)
	}
}

// TestTCPBulk: megabytes both ways at once, more than the sockets buffer, arrive whole
// and in order.
func TestTCPBulk(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	backend := scriptBackend(t, func(c *net.TCPConn) {
		_, _ = io.Copy(c, c)
		_ = c.CloseWrite()
	})
	swap(t, s, svcDef("raw", port, ModeTCP, backend))
	const size = 8 << 20
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c := dialTCP(t, port)
		errc := make(chan error, 1)
		go func() {
			// Written in odd sizes, so that reads and writes never line up.
			for off := 0; off < size; {
				n := min(size-off, 12345)
				if _, err := c.Write(data[off : off+n]); err != nil {
					errc <- err
					return
				}
				off += n
			}
			errc <- c.CloseWrite()
		}()
		h := sha256.New()
		n, err := io.Copy(h, c)
		if err != nil || n != size {
			t.Fatalf("echoed %d bytes, %v; want %d", n, err, size)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatal("echo differs from what was sent")
		}
	}
	svc := s.routes.Load().byName["raw"]
	waitFor(t, "the sessions to close", func() bool { return svc.stats.active.Load() == 0 })
	if in, out := svc.stats.bytesIn.Load(), svc.stats.bytesOut.Load(); in != 2*size || out != 2*size {
		t.Errorf("bytes in %d, out %d; want %d each", in, out, 2*size)
	}
}

// TestTCPHostNameBackend: a backend named by host name is resolved and connected to.
func TestTCPHostNameBackend(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	_, backendPort, _ := net.SplitHostPort(tcpBackend(t, "named"))
	swap(t, s, svcDef("raw", port, ModeTCP, "localhost:"+backendPort))
	c := dialTCP(t, port)
	if line, err := bufio.NewReader(c).ReadString('\n'); line != "named\n" || err != nil {
		t.Fatalf("read %q %v", line, err)
	}
}

// TestTCPModeSwap: a service port whose service turns from TCP to HTTP (and back) stays
// bound and serves the new mode, while a connection made before goes on.
func TestTCPModeSwap(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	tcp, web := tcpBackend(t, "tcp"), httpBackend(t, "web")
	swap(t, s, svcDef("svc", port, ModeTCP, tcp))
	long := dialTCP(t, port)
	r := bufio.NewReader(long)
	if line, _ := r.ReadString('\n'); line != "tcp\n" {
		t.Fatalf("greeting %q", line)
	}
	swap(t, s, svcDef("svc", port, ModeHTTP, web))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if code, body, _ := get(t, client, fmt.Sprintf("http://127.0.0.1:%d/x", port), nil); code != 200 || body != "web /x 127.0.0.1 " {
		t.Errorf("HTTP mode: %d %q", code, body)
	}
	swap(t, s, svcDef("svc", port, ModeTCP, tcp))
	c := dialTCP(t, port)
	if line, _ := bufio.NewReader(c).ReadString('\n'); line != "tcp\n" {
		t.Errorf("TCP mode again: %q", line)
	}
	fmt.Fprint(long, "still here\n")
	if line, err := r.ReadString('\n'); line != "still here\n" || err != nil {
		t.Errorf("connection made before the swaps read %q %v", line, err)
	}
}

// TestTCPCloseEndsSessions: closing the server closes the connections it carries, open
// or still connecting to a backend, and frees the service port.
func TestTCPCloseEndsSessions(t *testing.T) {
	s, _ := newTestServer(t, func(c *Config) { c.DialTimeout = time.Minute })
	port, hangPort := freePort(t), freePort(t)
	swap(t, s, svcDef("raw", port, ModeTCP, tcpBackend(t, "b")), svcDef("hang", hangPort, ModeTCP, hangingBackend(t)))
	c := dialTCP(t, port)
	r := bufio.NewReader(c)
	if line, _ := r.ReadString('\n'); line != "b\n" {
		t.Fatalf("greeting %q", line)
	}
	connecting := dialTCP(t, hangPort)
	if _, err := connecting.Write([]byte("waiting")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); line != "" || err == nil {
		t.Errorf("read %q %v after Close, want the connection ended", line, err)
	}
	if n, err := connecting.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("connecting client read %d %v after Close, want the connection ended", n, err)
	}
	for _, p := range []int{port, hangPort} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("service port still bound after Close: %v", err)
		}
		ln.Close()
	}
}

// TestListenerOptions: connections accepted from a service port's socket inherit its
// options: no Nagle delay and keep-alive probes after 15 s, as net's connections have.
func TestListenerOptions(t *testing.T) {
	port := freePort(t)
	ln, err := listenTCP(t.Context(), "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer rawClose(ln.fd)
	dialTCP(t, port)
	var fd int
	waitFor(t, "a connection to accept", func() bool {
		var errno syscall.Errno
		fd, _, errno = rawAccept(ln.fd, unix.SOCK_CLOEXEC)
		return errno == 0
	})
	defer rawClose(fd)
	for _, o := range []struct {
		name       string
		level, opt int
		want       int
	}{
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, clientKeepAlive},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, clientKeepAlive},
	} {
		if v, err := unix.GetsockoptInt(fd, o.level, o.opt); v != o.want || err != nil {
			t.Errorf("%s = %d %v, want %d", o.name, v, err, o.want)
		}
	}
}

// TestListenTCPAddresses: a service port binds the address its key names, every address
// for an empty host, and a name's address.
func TestListenTCPAddresses(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "", "localhost", "::1"} {
		port := freePort(t)
		key := net.JoinHostPort(host, strconv.Itoa(port))
		ln, err := listenTCP(t.Context(), key)
		if err != nil {
			if host == "::1" {
				t.Logf("no IPv6 loopback: %v", err)
				continue
			}
			t.Fatalf("listen %s: %v", key, err)
		}
		target := "127.0.0.1"
		if host == "::1" {
			target = "::1"
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(target, strconv.Itoa(port)), 10*time.Second)
		if err != nil {
			t.Errorf("dial %s bound as %q: %v", target, key, err)
		} else {
			c.Close()
		}
		rawClose(ln.fd)
	}
	if _, err := listenTCP(t.Context(), "127.0.0.1:http-ish"); err == nil {
		t.Error("a port that is not a number was accepted")
	}
}

// FuzzSplitBackendAddr: a backend address parses to an IP address and port that print
// back to the same address, or a host name and port that join back to it, or nothing.
func FuzzSplitBackendAddr(f *testing.F) {
	for _, seed := range []string{"10.0.0.1:80", "[::1]:8080", "[fe80::1%eth0]:1", "agent-1.example:31000", "host", ":80", "x:99999", "[::ffff:1.2.3.4]:5"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		ap, host, port := splitBackendAddr(addr)
		switch {
		case ap.IsValid():
			if host != "" || port != 0 {
				t.Fatalf("%q: both %v and %q %d", addr, ap, host, port)
			}
			want, err := netip.ParseAddrPort(addr)
			if err != nil || want.Port() != ap.Port() || want.Addr().Unmap() != ap.Addr() || ap.Addr().Is4In6() {
				t.Fatalf("%q parsed to %v, want %v", addr, ap, want)
			}
		case host != "":
			h, p, err := net.SplitHostPort(addr)
			if err != nil || h != host || p == "" || strconv.Itoa(int(port)) != trimZeros(p) {
				t.Fatalf("%q split to %q %d, want %q %q", addr, host, port, h, p)
			}
		default:
			if port != 0 {
				t.Fatalf("%q: port %d without a host", addr, port)
			}
		}
	})
}

// trimZeros drops a number's leading zeros ("0" stays).
func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}

// FuzzSockaddr: an address written as a socket address reads back the same.
func FuzzSockaddr(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, uint16(80))
	f.Add([]byte(net.ParseIP("2001:db8::1").To16()), uint16(443))
	f.Add([]byte(net.ParseIP("::ffff:10.1.2.3").To16()), uint16(1))
	f.Fuzz(func(t *testing.T, raw []byte, port uint16) {
		ip, ok := netip.AddrFromSlice(raw)
		if !ok {
			return
		}
		var sa unix.RawSockaddrAny
		size := fillSockaddr(&sa, netip.AddrPortFrom(ip, port))
		wantSize := uint32(unix.SizeofSockaddrInet6)
		if ip.Is4() {
			wantSize = unix.SizeofSockaddrInet4
		}
		if size != wantSize {
			t.Fatalf("%v: size %d, want %d", ip, size, wantSize)
		}
		if got := sockaddrIP(&sa); got != ip.Unmap() {
			t.Fatalf("%v read back as %v", ip, got)
		}
		var gotPort uint16
		if ip.Is4() {
			gotPort = (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa)).Port
		} else {
			gotPort = (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa)).Port
		}
		if gotPort>>8|gotPort<<8 != port {
			t.Fatalf("port %d written as %d in network order", port, gotPort)
		}
	})
}

// TestSwapBusyPort: a service port something else listens on is reported by Swap and
// left out, and the other services are served.
func TestSwapBusyPort(t *testing.T) {
	s, _ := newTestServer(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort, port := busy.Addr().(*net.TCPAddr).Port, freePort(t)
	err = s.Swap(&Table{Services: []Service{svcDef("taken", busyPort, ModeTCP, tcpBackend(t, "x")), svcDef("free", port, ModeTCP, tcpBackend(t, "free"))}, Problems: []Problem{}})
	want := fmt.Sprintf("lb: listen on 127.0.0.1:%d for taken: bind: address already in use", busyPort)
	if err == nil || err.Error() != want {
		t.Errorf("Swap = %v, want %q", err, want)
	}
	c := dialTCP(t, port)
	if line, err := bufio.NewReader(c).ReadString('\n'); line != "free\n" || err != nil {
		t.Errorf("read %q %v", line, err)
	}
}

// TestLoopsShareConnections: a burst of connections is spread over the loops (before,
// the loop that woke first took all of them: all 64 of wrk's), and each loop's count
// follows its connections as they close and as the HTTP path hands them over.
func TestLoopsShareConnections(t *testing.T) {
	s, _ := newTestServer(t, func(c *Config) { c.Loops = 3 })
	httpPort, tcpPort := freePort(t), freePort(t)
	swap(t, s, svcDef("web", httpPort, ModeHTTP, httpBackend(t, "w")), svcDef("raw", tcpPort, ModeTCP, tcpBackend(t, "r")))
	counts := func() (sum, least, most int32) {
		least = 1 << 30
		for _, l := range s.tcp.loops {
			n := l.conns.Load()
			sum, least, most = sum+n, min(least, n), max(most, n)
		}
		return sum, least, most
	}
	settle := func(what string, want int32) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%s: %d connections counted", what, want), func() bool { sum, _, _ := counts(); return sum == want })
	}
	spread := func(what string) {
		t.Helper()
		if sum, least, most := counts(); most-least > 2 {
			t.Errorf("%s: %d connections spread %d to %d over %d loops, want at most 2 apart", what, sum, least, most, len(s.tcp.loops))
		}
	}

	// Thirty HTTP connections at once, all connected before any is accepted.
	web := make([]*rawConn, 30)
	for i := range web {
		web[i] = dialRaw(t, httpPort)
	}
	settle("HTTP burst", 30)
	spread("HTTP burst")
	for i, rc := range web {
		rc.send(fmt.Sprintf("GET /%d HTTP/1.1\r\nHost: a\r\n\r\n", i))
		if resp, body := rc.response("GET"); resp.StatusCode != http.StatusOK || body != fmt.Sprintf("w /%d 127.0.0.1 ", i) {
			t.Fatalf("connection %d: %d %q", i, resp.StatusCode, body)
		}
	}
	for _, rc := range web[:10] {
		rc.c.Close()
	}
	settle("10 HTTP connections closed", 20)

	// TCP sessions count too, and a connection the HTTP path hands over leaves its loop.
	raw := make([]*net.TCPConn, 12)
	for i := range raw {
		raw[i] = dialTCP(t, tcpPort)
	}
	for i, c := range raw {
		if line, _ := bufio.NewReader(c).ReadString('\n'); line != "r\n" {
			t.Fatalf("session %d read %q", i, line)
		}
	}
	settle("12 TCP sessions", 32)
	spread("TCP sessions")
	old := dialRaw(t, httpPort)
	old.send("GET /old HTTP/1.0\r\nHost: a\r\n\r\n")
	if resp, body := old.response("GET"); resp.StatusCode != http.StatusOK || body != "w /old 127.0.0.1 " {
		t.Fatalf("HTTP/1.0: %d %q", resp.StatusCode, body)
	}
	if n := s.handovers.Load(); n != 1 {
		t.Fatalf("handovers = %d, want 1", n)
	}
	settle("an HTTP/1.0 connection handed over", 32)
	for _, c := range raw {
		c.Close()
	}
	for _, rc := range web[10:] {
		rc.c.Close()
	}
	settle("every connection closed", 0)
}

// TestBusyLoopsWaitInKernel: loops serving traffic wait in epoll_wait(2) themselves,
// never more of them than leaves one of the runtime's processors free (here 2
// processors, 4 loops: one at a time), the goroutine path is served meanwhile, and once
// the traffic stops every loop goes back to the runtime's poller.
func TestBusyLoopsWaitInKernel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	s, _ := newTestServer(t, func(c *Config) { c.Loops = 4 })
	if got := s.tcp.maxKernelWaiters; got != 1 {
		t.Fatalf("maxKernelWaiters = %d with 2 processors, want 1", got)
	}
	port := freePort(t)
	swap(t, s, svcDef("web", port, ModeHTTP, httpBackend(t, "w")))

	stop := make(chan struct{})
	var clients sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		c := dialTCP(t, port)
		clients.Go(func() {
			br := bufio.NewReader(c)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/%d-%d", i, n)
				if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", path); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK || string(body) != "w "+path+" 127.0.0.1 " || err != nil {
					errs <- fmt.Errorf("client %d: %d %q %v", i, resp.StatusCode, body, err)
					return
				}
			}
		})
	}
	most := int32(0)
	waitFor(t, "a busy loop waiting in the kernel", func() bool {
		n := s.tcp.kernelWaiters.Load()
		most = max(most, n)
		return n == 1
	})
	// The goroutine path (HTTP/1.0 is handed over) while the loops are busy.
	for i := range 5 {
		old := dialRaw(t, port)
		old.send(fmt.Sprintf("GET /old%d HTTP/1.0\r\nHost: a\r\n\r\n", i))
		if resp, body := old.response("GET"); resp.StatusCode != http.StatusOK || body != fmt.Sprintf("w /old%d 127.0.0.1 ", i) {
			t.Fatalf("HTTP/1.0 %d: %d %q", i, resp.StatusCode, body)
		}
		most = max(most, s.tcp.kernelWaiters.Load())
	}
	for range 200 {
		most = max(most, s.tcp.kernelWaiters.Load())
		time.Sleep(time.Millisecond)
	}
	close(stop)
	clients.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if most > 1 {
		t.Errorf("%d loops waited in the kernel at once, want at most 1", most)
	}
	waitFor(t, "idle loops back in the runtime's poller", func() bool { return s.tcp.kernelWaiters.Load() == 0 })
}

// TestIdleLoopAnsweredBesideBusyOne: while one loop is busy (waiting in the kernel), a
// connection on the other, idle, loop is still answered each time it sends, not when the
// busy loop's traffic stops. The clients and the backend run in a process of their own
// (this test binary again, as idleLoopClient): goroutines of theirs in this process would
// go through the scheduler and its poller all the time and hide the stall.
func TestIdleLoopAnsweredBesideBusyOne(t *testing.T) {
	if os.Getenv("LB_IDLE_LOOP_CLIENT") != "" {
		idleLoopClient(t)
		return
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	s, _ := newTestServer(t, func(c *Config) { c.Loops = 2 })
	port := freePort(t)
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestIdleLoopAnsweredBesideBusyOne$", "-test.v")
		cmd.Env = append(os.Environ(), "LB_IDLE_LOOP_CLIENT=1")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := bufio.NewReader(stdout)
		var backend string
		for backend == "" {
			line, err := out.ReadString('\n')
			if err != nil {
				_ = cmd.Wait()
				t.Fatalf("round %d: no backend address from the clients: %v\n%s", round, err, stderr.Bytes())
			}
			if addr, ok := strings.CutPrefix(strings.TrimSpace(line), "backend "); ok {
				backend = addr
			}
		}
		swap(t, s, svcDef("web", port, ModeHTTP, backend))
		fmt.Fprintf(stdin, "%d\n", port)
		rest, _ := io.ReadAll(out)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("round %d: clients: %v\n%s%s", round, err, rest, stderr.Bytes())
		}
	}
}

// idleLoopClient serves a backend (its address printed as "backend ADDR"), reads the
// proxy's port from stdin, then keeps one connection to the proxy busy and sends
// requests on a second one (placed on the other loop) with pauses between them long
// enough for that loop to park; each must be answered within a second.
func idleLoopClient(t *testing.T) {
	fmt.Printf("backend %s\n", httpBackend(t, "w"))
	var port int
	if _, err := fmt.Scanln(&port); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	// One request on each, then a pause: both loops park, and which thread waits in
	// the runtime's poller is up to the runtime.
	for _, c := range []net.Conn{busy, idle} {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		time.Sleep(20 * time.Millisecond)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		br := bufio.NewReader(busy)
		_ = busy.SetDeadline(time.Now().Add(30 * time.Second))
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := io.WriteString(busy, "GET /busy HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
				done <- err
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	// The busy loop settles into waiting in the kernel.
	time.Sleep(50 * time.Millisecond)
	br := bufio.NewReader(idle)
	for i := range 40 {
		time.Sleep(5 * time.Millisecond)
		_ = idle.SetDeadline(time.Now().Add(time.Second))
		if _, err := fmt.Fprintf(idle, "GET /idle%d HTTP/1.1\r\nHost: a\r\n\r\n", i); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: no answer within a second: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("w /idle%d 127.0.0.1 ", i); string(body) != want || err != nil {
			t.Fatalf("request %d: %q %v, want %q", i, body, err, want)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("busy client: %v", err)
	}
}
