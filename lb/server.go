package lb

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server is the proxy: it listens on the service ports of its current table (TCP or HTTP
// as each service's mode says), on the virtual host ports (plain and TLS) and on the app
// id port. Swap
// replaces the table atomically: listeners of ports still in use stay open, connections
// already made keep their backend, and a backend gone from the table only loses new work.
type Server struct {
	cfg       Config
	log       *slog.Logger
	routes    atomic.Pointer[routes]
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	http      *http.Server
	https     *http.Server
	httpConns *connQueue
	metrics   *metrics
	// defaultCert is served to TLS clients whose SNI has no certificate of its own.
	defaultCert *tls.Certificate
	// httpsPort is appended to the host of redirects to https (":8443"), "" for 443.
	httpsPort string

	mu        sync.Mutex // guards the fields below
	listeners map[string]net.Listener
	fixed     map[string]net.Listener // the virtual host and app id listeners by kind
	tcpConns  map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// Listener kinds for HTTP connections that are not a service port's.
const (
	vhostListener    = "vhost"
	vhostTLSListener = "vhost-tls"
	appIDListener    = "app-id"
)

// AppIDHeader routes requests on the app id port (marathon-lb's 9091).
const AppIDHeader = "X-Marathon-App-Id"

// listenerKey is the context key of the listener an HTTP connection came from.
type listenerKey struct{}

// taggedConn is an accepted connection handed to the HTTP server, naming its listener.
type taggedConn struct {
	net.Conn
	listener string
}

// NewServer starts a Server with an empty table: it listens on cfg.HTTPAddr,
// cfg.HTTPSAddr and cfg.AppIDAddr; service ports follow from Swap.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "lb"),
		listeners: map[string]net.Listener{},
		fixed:     map[string]net.Listener{},
		tcpConns:  map[net.Conn]struct{}{},
		httpConns: newConnQueue(),
	}
	if cfg.HTTPSAddr != "" {
		if err := s.setDefaultCert(); err != nil {
			return nil, err
		}
	}
	s.routes.Store(compile(&Table{Services: []Service{}, Problems: []Problem{}}, cfg.BindAddr, nil))
	m, err := newMetrics(s, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.transport = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   cfg.MaxIdlePerBackend,
		IdleConnTimeout:       cfg.IdleTimeout,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	s.proxy = &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      roundTripper{s},
		BufferPool:     bufferPool{},
		ModifyResponse: s.modifyResponse,
		ErrorHandler:   s.proxyError,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.http = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*taggedConn); ok {
				return context.WithValue(ctx, listenerKey{}, tc.listener)
			}
			return ctx
		},
	}
	s.https = &http.Server{
		Handler:           s.http.Handler,
		ReadHeaderTimeout: s.http.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          s.http.ErrorLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, listenerKey{}, vhostTLSListener)
		},
	}
	s.wg.Go(func() { _ = s.http.Serve(s.httpConns) })
	for _, l := range []struct{ addr, kind string }{{cfg.HTTPAddr, vhostListener}, {cfg.HTTPSAddr, vhostTLSListener}, {cfg.AppIDAddr, appIDListener}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("lb: listen on %s: %w", l.addr, err)
		}
		s.fixed[l.kind] = ln
		if l.kind == vhostTLSListener {
			if port := ln.Addr().(*net.TCPAddr).Port; port != 443 {
				s.httpsPort = ":" + strconv.Itoa(port)
			}
			tlsLn := tls.NewListener(ln, s.tlsConfig())
			s.wg.Go(func() { _ = s.https.Serve(tlsLn) })
			continue
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
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("lb: server closed")
	}
	old := s.routes.Load()
	next := compile(t, s.cfg.BindAddr, old)
	var errs []error
	for key := range next.byListen {
		if _, ok := s.listeners[key]; ok {
			continue
		}
		ln, err := net.Listen("tcp", key)
		if err != nil {
			errs = append(errs, fmt.Errorf("lb: listen on %s for %s: %w", key, next.byListen[key].def.Name, err))
			continue
		}
		s.listeners[key] = ln
		s.wg.Go(func() { s.acceptService(ln, key) })
	}
	s.routes.Store(next)
	for _, p := range next.certProblems {
		if !slices.Contains(old.certProblems, p) {
			s.log.Warn("label not honoured", "app", p.App, "label", p.Label, "why", p.Why)
		}
	}
	for key, ln := range s.listeners {
		if _, ok := next.byListen[key]; !ok {
			ln.Close()
			delete(s.listeners, key)
		}
	}
	if removedBackends(old, next) {
		// Idle keep-alive connections to backends gone from the table would otherwise wait
		// for their idle timeout; those in use finish their requests first.
		s.transport.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

func removedBackends(old, next *routes) bool {
	kept := map[*backend]bool{}
	for _, svc := range next.services {
		for _, b := range svc.backends {
			kept[b] = true
		}
	}
	for _, svc := range old.services {
		for _, b := range svc.backends {
			if !kept[b] {
				return true
			}
		}
	}
	return false
}

// Close stops every listener and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for key, ln := range s.listeners {
		ln.Close()
		delete(s.listeners, key)
	}
	for kind, ln := range s.fixed {
		// The HTTPS server owns its listener and closes it below.
		if kind != vhostTLSListener {
			ln.Close()
		}
	}
	for c := range s.tcpConns {
		c.Close()
	}
	s.mu.Unlock()
	s.httpConns.Close()
	err := errors.Join(s.http.Close(), s.https.Close())
	s.transport.CloseIdleConnections()
	s.wg.Wait()
	return err
}

// acceptService accepts on a service port; each connection goes by the service the port
// has in the table current at that moment.
func (s *Server) acceptService(ln net.Listener, key string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if isTemporary(err) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		svc := s.routes.Load().byListen[key]
		switch {
		case svc == nil:
			c.Close()
		case svc.def.Mode == ModeHTTP:
			s.httpConns.put(&taggedConn{Conn: c, listener: key})
		case !svc.allows(c.RemoteAddr()):
			svc.stats.denied.Add(1)
			c.Close()
		default:
			if !s.trackTCP(c) {
				return
			}
			s.wg.Go(func() {
				defer s.untrackTCP(c)
				s.proxyTCP(c, svc)
			})
		}
	}
}

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
		s.httpConns.put(&taggedConn{Conn: c, listener: kind})
	}
}

func isTemporary(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE)
}

func (s *Server) trackTCP(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.tcpConns[c] = struct{}{}
	return true
}

func (s *Server) untrackTCP(c net.Conn) {
	s.mu.Lock()
	delete(s.tcpConns, c)
	s.mu.Unlock()
	c.Close()
}

// proxyTCP connects a client to a backend and copies both ways (splice(2) between the two
// TCP sockets) until both sides are done.
func (s *Server) proxyTCP(client net.Conn, svc *service) {
	var tried []*backend
	var upstream net.Conn
	var chosen *backend
	host := clientHost(client.RemoteAddr())
	for range s.cfg.Attempts {
		b := svc.pick(host, "", tried)
		if b == nil {
			break
		}
		tried = append(tried, b)
		c, err := net.DialTimeout("tcp", b.addr, s.cfg.DialTimeout)
		if err != nil {
			s.eject(b, err)
			continue
		}
		upstream, chosen = c, b
		break
	}
	svc.stats.sessions.Add(1)
	if upstream == nil {
		svc.stats.failures.Add(1)
		return
	}
	defer upstream.Close()
	chosen.sessions.Add(1)
	chosen.active.Add(1)
	svc.stats.active.Add(1)
	defer chosen.active.Add(-1)
	defer svc.stats.active.Add(-1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, _ := io.Copy(upstream, client)
		chosen.bytesIn.Add(uint64(n))
		svc.stats.bytesIn.Add(uint64(n))
		closeWrite(upstream)
	}()
	n, _ := io.Copy(client, upstream)
	chosen.bytesOut.Add(uint64(n))
	svc.stats.bytesOut.Add(uint64(n))
	closeWrite(client)
	// The backend is done; the client gets the idle timeout to finish sending.
	_ = client.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
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

func clientHost(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, _ := net.SplitHostPort(a.String())
	return host
}

// connQueue is a net.Listener fed by the accept loops, so that one http.Server serves the
// HTTP connections of every port.
type connQueue struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{conns: make(chan net.Conn, 128), done: make(chan struct{})}
}

func (q *connQueue) put(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{} }

// bufferPool lends the reverse proxy its copy buffers (httputil.ReverseProxy would
// allocate 32 KiB per request).
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }
