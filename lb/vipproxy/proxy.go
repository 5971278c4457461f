// Package vipproxy balances the cluster's named VIPs on the node it runs on, in process,
// as DC/OS's L4 load balancer did with IPVS on every agent: it puts each VIP address of a
// vip.Table on the node (a dummy interface of its own, see Dummy) and proxies every
// connection to a VIP's TCP ports to one of the port's backends, round robin, going on to
// the next when one refuses. It listens on a port of the VIP's address it picks, and
// nftables DNAT rules send the VIP port's connections there, so that the VIP port stays
// free for a process listening on all the node's addresses (see Config.NATTable). It
// follows a changing table (Update, Run) without touching the connections it carries,
// and counts each VIP port's connections and bytes for Prometheus (Config.Registerer).
package vipproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll/atoll/lb/vip"
)

// Config configures a Proxy.
type Config struct {
	// Logger receives the proxy's logs.
	Logger *slog.Logger
	// Addresses puts the VIP addresses on the node; the proxy closes it on Close.
	Addresses Addresses
	// DialTimeout bounds one connection attempt to a backend.
	DialTimeout time.Duration
	// EjectFor is how long a backend that failed a connection attempt is tried only after
	// the others.
	EjectFor time.Duration
	// NATTable is the nftables table (family ip, made and deleted by the proxy) whose DNAT
	// rules send each IPv4 VIP port's connections to the port of the VIP's address the
	// proxy listens on. Empty, or when the table cannot be made (no root, a kernel
	// without nf_tables), the proxy listens on the VIP ports themselves, which clashes
	// with any process listening on the same port on all the node's addresses.
	NATTable string
	// Registerer receives the proxy's metrics (connections, bytes and backend dial
	// failures per VIP port); nil registers none.
	Registerer prometheus.Registerer
}

// DefaultConfig is the production preset, without Addresses (NewDummy's, as root).
func DefaultConfig() Config {
	return Config{
		Logger: slog.Default(),
		// Backends are in the cluster: one that does not answer a SYN in a second is as
		// good as down, and the next is tried.
		DialTimeout: time.Second,
		// As the lb role's: a few health-check intervals.
		EjectFor: 5 * time.Second,
		// Named as the interface, as the node does with its own, so that one table goes
		// with one set of VIP addresses.
		NATTable: DefaultInterface,
	}
}

// Validate reports a config the Proxy cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.Logger == nil {
		errs = append(errs, errors.New("vip proxy: Logger is nil"))
	}
	if c.Addresses == nil {
		errs = append(errs, errors.New("vip proxy: Addresses is nil"))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("vip proxy: DialTimeout %v is not positive", c.DialTimeout))
	}
	if c.EjectFor < 0 {
		errs = append(errs, fmt.Errorf("vip proxy: EjectFor %v is negative", c.EjectFor))
	}
	if err := validTableName(c.NATTable); err != nil {
		errs = append(errs, fmt.Errorf("vip proxy: NATTable: %w", err))
	}
	return errors.Join(errs...)
}

// validTableName checks an nftables table name; empty is fine (no table).
func validTableName(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("nftables table name %q is longer than 64 characters", name)
	}
	for _, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("nftables table name %q: only ASCII letters, digits, \"_\" and \"-\" are allowed", name)
		}
	}
	return nil
}

// Proxy balances the TCP ports of the VIPs of its latest table. Its methods are safe for
// concurrent use.
type Proxy struct {
	cfg Config
	log *slog.Logger

	// nat is nil when the proxy listens on the VIP ports themselves.
	nat *natTable

	// mu serializes Update and Close, and guards listeners, addrs and redirects.
	mu        sync.Mutex
	listeners map[netip.AddrPort]*listener
	// addrs counts the listeners on each VIP address the proxy put on the node.
	addrs map[netip.Addr]int
	// redirects is what nat's rules redirect, as last set: each VIP port to the port
	// listened on.
	redirects map[netip.AddrPort]uint16
	closed    bool

	// connMu guards conns, the connections being proxied (both ends).
	connMu sync.Mutex
	conns  map[net.Conn]struct{}
	// serving counts the goroutines accepting and proxying.
	serving sync.WaitGroup
}

// listener is one VIP port being balanced.
type listener struct {
	addr netip.AddrPort
	// port is the port of addr's address listened on: addr's own, or one the proxy picked
	// and nat redirects addr to.
	port uint16
	ln   net.Listener
	svc  atomic.Pointer[service]
	// stats are its counters, which the metrics read.
	stats *vipStats
}

// service is a VIP port's backends, as of one table.
type service struct {
	backends []*backend
	next     atomic.Uint64
}

type backend struct {
	addr netip.AddrPort
	// downUntil is when, in Unix nanoseconds, a backend that failed is tried first again.
	downUntil atomic.Int64
}

// New checks cfg and makes a Proxy with no VIPs, and its empty nftables table. When the
// table cannot be made, it logs why and the proxy listens on the VIP ports themselves.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger.With("component", "vip-proxy"),
		listeners: map[netip.AddrPort]*listener{}, addrs: map[netip.Addr]int{}, conns: map[net.Conn]struct{}{}}
	if err := newMetrics(p, cfg.Registerer); err != nil {
		return nil, err
	}
	if cfg.NATTable != "" {
		nat, err := openNAT(cfg.NATTable)
		if err != nil {
			p.log.Warn("listening on the VIP ports themselves: a process listening on the port of a VIP on all addresses clashes with it", "err", err)
		} else {
			p.nat = nat
		}
	}
	return p, nil
}

// Update balances the TCP services of t from now on: it listens for the ports that are
// new (putting their addresses on the node first), stops listening for those gone (taking
// an address off once none of its ports is left), gives every other port its new
// backends, and makes the nftables table redirect the ports listened for. Connections
// being proxied are left alone. A port that cannot be listened for is reported in the
// error, and the others are balanced all the same; the next Update tries it again, as it
// does a table that could not be set.
func (p *Proxy) Update(t *vip.Table) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("vip proxy: closed")
	}
	want := map[netip.AddrPort][]netip.AddrPort{}
	for _, s := range t.Services {
		if s.Protocol == vip.TCP {
			want[s.Addr] = s.Backends
		}
	}
	var errs []error
	for addr, l := range p.listeners {
		if _, keep := want[addr]; !keep {
			errs = append(errs, p.stopLocked(l))
		}
	}
	for _, addr := range slices.SortedFunc(maps.Keys(want), netip.AddrPort.Compare) {
		backends := want[addr]
		if l := p.listeners[addr]; l != nil {
			if !sameBackends(l.svc.Load(), backends) {
				l.svc.Store(newService(backends))
			}
			continue
		}
		if err := p.startLocked(addr, backends); err != nil {
			errs = append(errs, err)
		}
	}
	if p.nat != nil {
		redirects := map[netip.AddrPort]uint16{}
		for addr, l := range p.listeners {
			if l.port != addr.Port() {
				redirects[addr] = l.port
			}
		}
		if !maps.Equal(redirects, p.redirects) {
			if err := p.nat.set(redirects); err != nil {
				errs = append(errs, err)
			} else {
				p.redirects = redirects
			}
		}
	}
	return errors.Join(errs...)
}

// Addrs returns the VIP ports being balanced, sorted.
func (p *Proxy) Addrs() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.SortedFunc(maps.Keys(p.listeners), netip.AddrPort.Compare)
}

func sameBackends(s *service, addrs []netip.AddrPort) bool {
	return slices.EqualFunc(s.backends, addrs, func(b *backend, a netip.AddrPort) bool { return b.addr == a })
}

func newService(addrs []netip.AddrPort) *service {
	s := &service{}
	for _, a := range addrs {
		s.backends = append(s.backends, &backend{addr: a})
	}
	return s
}

// startLocked puts the address of a VIP port on the node if it is not there yet, and
// listens on the port, or, with nat, on a port of the address the kernel picks (IPv4
// only: the table is family ip).
func (p *Proxy) startLocked(addr netip.AddrPort, backends []netip.AddrPort) error {
	ip := addr.Addr()
	if p.addrs[ip] == 0 {
		if err := p.cfg.Addresses.Add(ip); err != nil {
			return fmt.Errorf("VIP %s: %w", addr, err)
		}
	}
	listen := addr
	if p.nat != nil && ip.Is4() {
		listen = netip.AddrPortFrom(ip, 0)
	}
	ln, err := net.Listen("tcp", listen.String())
	if err != nil {
		if p.addrs[ip] == 0 {
			err = errors.Join(err, p.cfg.Addresses.Remove(ip))
		}
		return fmt.Errorf("VIP %s: %w", addr, err)
	}
	p.addrs[ip]++
	l := &listener{addr: addr, port: ln.Addr().(*net.TCPAddr).AddrPort().Port(), ln: ln, stats: &vipStats{}}
	l.svc.Store(newService(backends))
	p.listeners[addr] = l
	p.serving.Go(func() { p.accept(l) })
	p.log.Debug("balancing VIP", "vip", addr, "port", l.port, "backends", backends)
	return nil
}

// stopLocked stops listening on a VIP port, and takes its address off the node when no
// other port of it is left.
func (p *Proxy) stopLocked(l *listener) error {
	delete(p.listeners, l.addr)
	err := l.ln.Close()
	ip := l.addr.Addr()
	if p.addrs[ip]--; p.addrs[ip] == 0 {
		delete(p.addrs, ip)
		err = errors.Join(err, p.cfg.Addresses.Remove(ip))
	}
	p.log.Debug("VIP gone", "vip", l.addr)
	if err != nil {
		return fmt.Errorf("VIP %s: %w", l.addr, err)
	}
	return nil
}

// Run follows the tables tables gives (the current one and a channel closed when there
// is a newer one, as dns.Server.VIPs) until ctx ends, then closes the proxy and returns
// what Close returns. Update's errors, the tables' problems and their VIP ports that are
// not TCP are logged, each once while it lasts.
func (p *Proxy) Run(ctx context.Context, tables func() (*vip.Table, <-chan struct{})) error {
	var lastProblems []string
	var lastErr string
	for {
		t, next := tables()
		if t != nil {
			problems := slices.Clone(t.Problems)
			for _, svc := range t.Services {
				if svc.Protocol != vip.TCP {
					problems = append(problems, fmt.Sprintf("VIP %s/%s: only TCP is balanced", svc.Addr, svc.Protocol))
				}
			}
			for _, problem := range problems {
				if !slices.Contains(lastProblems, problem) {
					p.log.Warn("VIP not balanced as labelled", "why", problem)
				}
			}
			lastProblems = problems
			if err := p.Update(t); err != nil {
				if err.Error() != lastErr {
					p.log.Warn("VIPs balanced in part", "err", err)
				}
				lastErr = err.Error()
			} else {
				lastErr = ""
			}
		}
		select {
		case <-ctx.Done():
			return p.Close()
		case <-next:
		}
	}
}

// Close deletes the nftables table, stops listening, takes the VIP addresses off the
// node, ends the connections being proxied and waits until every goroutine is done.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var errs []error
	if p.nat != nil {
		errs = append(errs, p.nat.close())
	}
	for _, l := range p.listeners {
		if err := l.ln.Close(); err != nil {
			errs = append(errs, fmt.Errorf("VIP %s: %w", l.addr, err))
		}
	}
	p.listeners = nil
	p.addrs = nil
	errs = append(errs, p.cfg.Addresses.Close())
	p.mu.Unlock()
	p.connMu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.connMu.Unlock()
	p.serving.Wait()
	return errors.Join(errs...)
}

// accept takes a VIP port's connections until its listener is closed.
func (p *Proxy) accept(l *listener) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like: let it pass rather than spin.
			p.log.Warn("accept", "vip", l.addr, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !p.track(c) {
			c.Close()
			return
		}
		l.stats.accepted.Add(1)
		svc := l.svc.Load()
		p.serving.Go(func() {
			defer p.untrack(c)
			p.proxy(c, l, svc)
		})
	}
}

// track notes a connection being proxied; false once the proxy is closing.
func (p *Proxy) track(c net.Conn) bool {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.connMu.Lock()
	delete(p.conns, c)
	p.connMu.Unlock()
	c.Close()
}

// proxy connects a client of a VIP port to a backend and copies both ways until both
// sides are done; with no backend that takes the connection, the client's is closed.
func (p *Proxy) proxy(client net.Conn, l *listener, svc *service) {
	upstream := p.dial(l, svc)
	if upstream == nil {
		l.stats.failed.Add(1)
		return
	}
	if !p.track(upstream) {
		upstream.Close()
		return
	}
	defer p.untrack(upstream)
	l.stats.active.Add(1)
	defer l.stats.active.Add(-1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, _ := io.Copy(upstream, client)
		l.stats.bytesIn.Add(uint64(n))
		closeWrite(upstream)
	}()
	n, _ := io.Copy(client, upstream)
	l.stats.bytesOut.Add(uint64(n))
	closeWrite(client)
	// The backend is done; a client that never finishes sending is not waited for
	// forever.
	_ = client.SetReadDeadline(time.Now().Add(halfClosedTimeout))
	<-done
}

// halfClosedTimeout is how long a client may go on sending after its backend closed its
// side.
const halfClosedTimeout = time.Minute

// dial connects to the service's backends in round-robin order, those that failed
// lately last, until one answers; nil when none does.
func (p *Proxy) dial(l *listener, svc *service) net.Conn {
	addr := l.addr
	n := len(svc.backends)
	if n == 0 {
		p.log.Debug("VIP has no backend", "vip", addr)
		return nil
	}
	start := int(svc.next.Add(1)-1) % n
	order := make([]*backend, 0, n)
	var down []*backend
	now := time.Now().UnixNano()
	for i := range n {
		b := svc.backends[(start+i)%n]
		if b.downUntil.Load() > now {
			down = append(down, b)
			continue
		}
		order = append(order, b)
	}
	for _, b := range append(order, down...) {
		c, err := net.DialTimeout("tcp", b.addr.String(), p.cfg.DialTimeout)
		if err == nil {
			b.downUntil.Store(0)
			return c
		}
		l.stats.dialFailed(b.addr)
		if b.downUntil.Swap(time.Now().Add(p.cfg.EjectFor).UnixNano()) < now {
			p.log.Info("VIP backend failed; tried last for a while", "vip", addr, "backend", b.addr, "for", p.cfg.EjectFor, "err", err)
		}
	}
	p.log.Debug("no VIP backend took the connection", "vip", addr, "backends", n)
	return nil
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.Close()
}
