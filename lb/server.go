package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Server is the proxy: it listens on the service ports of its current table (TCP or HTTP
// as each service's mode says), on the virtual host ports (plain and TLS) and on the app
// id port. Swap replaces the table atomically: listeners of ports still in use stay open,
// connections already made keep their backend, and a backend gone from the table only
// loses new work. Service ports and the cleartext virtual host and app id ports are
// listened on by the engine's event loops (tcpproxy.go), which proxy TCP services'
// connections and the usual HTTP requests themselves (httploop.go); TLS connections and
// the HTTP requests the loops hand over are served by the goroutine HTTP/1.1 path
// (http.go). TLS is terminated first, and clients offering HTTP/2 are served HTTP/1.1
// (ALPN).
type Server struct {
	cfg     Config
	log     *slog.Logger
	routes  atomic.Pointer[routes]
	dialer  *net.Dialer
	tlsConf *tls.Config
	metrics *metrics
	// defaultCert is served to TLS clients whose SNI has no certificate of its own.
	defaultCert *tls.Certificate
	// httpsPort is appended to the host of redirects to https (":8443"), "" for 443.
	httpsPort string
	closed    atomic.Bool
	// handovers counts the connections the loops' HTTP path handed to the goroutine
	// path.
	handovers atomic.Uint64

	// tcp serves the service ports (tcpproxy.go).
	tcp *tcpEngine

	mu        sync.Mutex // guards the fields below
	listeners map[string]*rawListener
	fixed     map[string]net.Listener // the virtual host and app id listeners by kind
	// conns are the HTTP path's connections open, clients' and backends' (the TCP
	// engine closes its own).
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// Listener kinds for HTTP connections that are not a service port's.
const (
	vhostListener    = "vhost"
	vhostTLSListener = "vhost-tls"
	appIDListener    = "app-id"
)

// AppIDHeader routes requests on the app id port (marathon-lb's 9091).
const AppIDHeader = "X-Marathon-App-Id"

// NewServer starts a Server with an empty table: it listens on cfg.HTTPAddr,
// cfg.HTTPSAddr and cfg.AppIDAddr; service ports follow from Swap.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "lb"),
		listeners: map[string]*rawListener{},
		fixed:     map[string]net.Listener{},
		conns:     map[net.Conn]struct{}{},
		dialer:    &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
	}
	if cfg.HTTPSAddr != "" {
		if err := s.setDefaultCert(); err != nil {
			return nil, err
		}
	}
	s.tlsConf = s.tlsConfig()
	loops := cfg.Loops
	if loops == 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	tcp, err := newTCPEngine(s, loops)
	if err != nil {
		return nil, err
	}
	s.tcp = tcp
	s.routes.Store(compile(&Table{Services: []Service{}, Problems: []Problem{}}, cfg.BindAddr, nil))
	m, err := newMetrics(s, cfg.Registerer)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.metrics = m
	for _, l := range []struct{ addr, kind string }{{cfg.HTTPAddr, vhostListener}, {cfg.HTTPSAddr, vhostTLSListener}, {cfg.AppIDAddr, appIDListener}} {
		if l.addr == "" {
			continue
		}
		if l.kind != vhostTLSListener {
			// Cleartext HTTP is served by the event loops, as service ports are.
			ln, err := s.listenOnLoops(l.addr, l.kind)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("lb: listen on %s: %w", l.addr, err)
			}
			s.fixed[l.kind] = ln
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("lb: listen on %s: %w", l.addr, err)
		}
		s.fixed[l.kind] = ln
		if port := ln.Addr().(*net.TCPAddr).Port; port != 443 {
			s.httpsPort = ":" + strconv.Itoa(port)
		}
		s.wg.Go(func() { s.acceptHTTP(ln, l.kind) })
	}
	return s, nil
}

// setDefaultCert loads cfg.DefaultCert, or makes a self-signed certificate without one.
func (s *Server) setDefaultCert() error {
	if s.cfg.DefaultCert != "" {
		cert, err := loadPEMCert(s.cfg.DefaultCert)
		if err != nil {
			return fmt.Errorf("lb: default certificate: %w", err)
		}
		s.defaultCert = cert
		return nil
	}
	cert, err := selfSignedCert()
	if err != nil {
		return fmt.Errorf("lb: self-signed default certificate: %w", err)
	}
	s.defaultCert = cert
	s.log.Info("no default certificate configured: serving a self-signed one generated at start", "subject", cert.Leaf.Subject.CommonName, "https", s.cfg.HTTPSAddr)
	return nil
}

// HTTPAddr is the virtual host listener's address (nil without one).
func (s *Server) HTTPAddr() net.Addr { return s.fixedAddr(vhostListener) }

// HTTPSAddr is the TLS virtual host listener's address (nil without one).
func (s *Server) HTTPSAddr() net.Addr { return s.fixedAddr(vhostTLSListener) }

// AppIDAddr is the app id listener's address (nil without one).
func (s *Server) AppIDAddr() net.Addr { return s.fixedAddr(appIDListener) }

func (s *Server) fixedAddr(kind string) net.Addr {
	if ln, ok := s.fixed[kind]; ok {
		return ln.Addr()
	}
	return nil
}

// Problems are the table's problems and those of the certificates it names.
func (s *Server) Problems() []Problem {
	rt := s.routes.Load()
	out := append(slices.Clip(rt.table.Problems), rt.certProblems...)
	if out == nil {
		out = []Problem{}
	}
	return out
}

// Table is the table being served.
func (s *Server) Table() *Table { return s.routes.Load().table }

// Swap serves t from now on. Ports t no longer has are closed (their connections go on);
// new ports are opened. A port that cannot be bound is left out and reported in the error,
// while everything else is served.
func (s *Server) Swap(t *Table) error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return errClosed
	}
	old := s.routes.Load()
	next := compile(t, s.cfg.BindAddr, old)
	var errs []error
	for key := range next.byListen {
		if _, ok := s.listeners[key]; ok {
			continue
		}
		ln, err := listenTCP(context.Background(), key)
		if err != nil {
			errs = append(errs, fmt.Errorf("lb: listen on %s for %s: %w", key, next.byListen[key].def.Name, err))
			continue
		}
		s.listeners[key] = ln
		s.tcp.add(ln)
	}
	s.routes.Store(next)
	for _, p := range next.certProblems {
		if !slices.Contains(old.certProblems, p) {
			s.log.Warn("label not honoured", "app", p.App, "label", p.Label, "why", p.Why)
		}
	}
	for key, ln := range s.listeners {
		if _, ok := next.byListen[key]; !ok {
			s.tcp.remove(ln)
			delete(s.listeners, key)
		}
	}
	s.mu.Unlock()
	// Keep-alive connections to backends gone from the table would otherwise wait for
	// their idle timeout; those in use finish their requests first.
	for _, b := range removedBackends(old, next) {
		s.closePool(b, true)
	}
	return errors.Join(errs...)
}

// removedBackends are the backends of old that next does not have.
func removedBackends(old, next *routes) []*backend {
	kept := map[*backend]bool{}
	for _, svc := range next.services {
		for _, b := range svc.backends {
			kept[b] = true
		}
	}
	var gone []*backend
	for _, svc := range old.services {
		for _, b := range svc.backends {
			if !kept[b] {
				gone = append(gone, b)
			}
		}
	}
	return gone
}

// isClosed tells whether Close was called.
func (s *Server) isClosed() bool { return s.closed.Load() }

// Close stops every listener and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	for key, ln := range s.listeners {
		s.tcp.remove(ln)
		delete(s.listeners, key)
	}
	// Before the loops stop: the last of them to let go of a port closes its socket,
	// whose number another socket may have by the time a later Close would shut it down.
	for _, ln := range s.fixed {
		ln.Close()
	}
	s.tcp.stop()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	for _, svc := range s.routes.Load().services {
		for _, b := range svc.backends {
			s.closePool(b, true)
		}
	}
	s.wg.Wait()
	return nil
}

// loopListener is a virtual host or app id port the event loops accept on, as a
// net.Listener for its address and Close (it has no Accept).
type loopListener struct {
	s    *Server
	ln   *rawListener
	addr net.Addr
}

// listenOnLoops listens on addr for kind's connections, which the loops accept.
func (s *Server) listenOnLoops(addr, kind string) (*loopListener, error) {
	ln, err := listenTCP(context.Background(), addr)
	if err != nil {
		return nil, err
	}
	sa, err := unix.Getsockname(ln.fd)
	if err != nil {
		rawClose(ln.fd)
		return nil, os.NewSyscallError("getsockname", err)
	}
	ln.kind = kind
	ll := &loopListener{s: s, ln: ln}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		ll.addr = &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrInet6:
		ll.addr = &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	}
	s.tcp.add(ln)
	return ll, nil
}

func (l *loopListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l *loopListener) Addr() net.Addr            { return l.addr }

// Close stops the port listening; its connections go on.
func (l *loopListener) Close() error {
	l.s.tcp.remove(l.ln)
	return nil
}

// acceptHTTP accepts on the virtual host (plain or TLS) or app id port.
func (s *Server) acceptHTTP(ln net.Listener, kind string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if isTemporary(err) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		if !s.track(c) {
			return
		}
		s.wg.Go(func() { s.serveHTTPConn(c, kind, kind == vhostTLSListener) })
	}
}

func isTemporary(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE)
}

// track notes an open connection, which Close closes; false (and c closed) once the
// server is closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// untrack closes a tracked connection.
func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// closeWrite ends the sending side of a connection (TCP's FIN, TLS's close_notify), or
// closes one that cannot half-close.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	c.Close()
}

// eject keeps new work off a backend that refused a connection, for EjectFor.
func (s *Server) eject(b *backend, err error) {
	b.failures.Add(1)
	if b.ejectedUntil.Swap(time.Now().Add(s.cfg.EjectFor).UnixNano()) < time.Now().UnixNano() {
		s.log.Info("backend ejected", "service", b.service, "backend", b.addr, "for", s.cfg.EjectFor, "err", err)
	}
}

// finish counts a finished request.
func (s *Server) finish(svc *service, code int, start time.Time) {
	svc.stats.responses[codeClass(code)].Add(1)
	s.metrics.observe(svc, code, time.Since(start))
}

// codeClass maps a status to HAProxy's hrsp_1xx..hrsp_5xx (index 1-5) or other (0).
func codeClass(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code / 100
}
