package lb

import (
	"crypto/sha256"
	"crypto/tls"
	"hash/fnv"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// routes is a Table compiled for the proxy: services by listener, virtual host and app id,
// with the backends' live state and the virtual hosts' certificates. Like the Table it
// never changes once built.
type routes struct {
	table    *Table
	services []*service
	byListen map[string]*service // bind host:port → service
	byName   map[string]*service
	vhosts   map[string][]*service         // virtual host → services, in routing order
	appIDs   map[string]*service           // app id → its first HTTP service
	certs    map[string][]*tls.Certificate // virtual host → its certificates
	// certProblems are the certificates that did not load.
	certProblems []Problem
}

// service is a Service with what the proxy needs at hand.
type service struct {
	def      *Service
	backends []*backend
	byCookie map[string]*backend
	allowed  []netip.Prefix
	auth     *shaCrypt
	// authOK caches credentials that verified (their SHA-256), so that a client's every
	// request does not cost thousands of hash rounds.
	authOK sync.Map
	rr     atomic.Uint64
	stats  *serviceStats
}

// backend is a task's address with its state, which outlives tables: a backend in one
// table and the next is the same *backend, so its counters, connections and ejection carry
// over.
type backend struct {
	addr    string
	service string
	// dialAddr is addr when its host is an IP address; host and port otherwise, when
	// the TCP path resolves host before each connect.
	dialAddr netip.AddrPort
	host     string
	port     uint16
	// cookie is the sticky cookie's value for it; setCookie the Set-Cookie value that
	// pins a client to it.
	cookie, setCookie string
	// pool holds its idle keep-alive HTTP connections.
	pool connPool
	// active counts open connections (TCP) or requests in flight (HTTP).
	active       atomic.Int64
	ejectedUntil atomic.Int64 // unix nanoseconds
	sessions     atomic.Uint64
	failures     atomic.Uint64
	bytesIn      atomic.Uint64 // from clients
	bytesOut     atomic.Uint64 // to clients
	responses    [6]atomic.Uint64
}

// serviceStats are a service's counters, kept across tables like backends'.
type serviceStats struct {
	sessions  atomic.Uint64
	denied    atomic.Uint64
	failures  atomic.Uint64
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	responses [6]atomic.Uint64
	active    atomic.Int64
	// observed are the service's request metrics, looked up once (metrics.observe).
	observed atomic.Pointer[serviceMetrics]
}

func (b *backend) ejected(now int64) bool { return b.ejectedUntil.Load() > now }

// stickyCookie is the cookie marathon-lb's HAProxy set for HAPROXY_{n}_STICKY.
const stickyCookie = "mesosphere_server_id"

// compile builds routes for t, reusing the backend and service state in old.
func compile(t *Table, defaultBind string, old *routes) *routes {
	oldBackends := map[string]*backend{}
	oldStats := map[string]*serviceStats{}
	if old != nil {
		for _, svc := range old.services {
			oldStats[svc.def.Name] = svc.stats
			for _, b := range svc.backends {
				oldBackends[svc.def.Name+" "+b.addr] = b
			}
		}
	}
	r := &routes{table: t, byListen: map[string]*service{}, byName: map[string]*service{}, vhosts: map[string][]*service{}, appIDs: map[string]*service{},
		certs: map[string][]*tls.Certificate{}}
	for i := range t.Services {
		def := &t.Services[i]
		svc := &service{def: def, byCookie: map[string]*backend{}, stats: oldStats[def.Name]}
		if svc.stats == nil {
			svc.stats = &serviceStats{}
		}
		for _, n := range def.AllowedNets {
			if p, err := netip.ParsePrefix(n); err == nil {
				svc.allowed = append(svc.allowed, p)
			}
		}
		if def.Auth != nil {
			if c, err := parseShaCrypt(def.Auth.PasswordHash); err == nil {
				svc.auth = &c
			}
		}
		for _, bd := range def.Backends {
			b := oldBackends[def.Name+" "+bd.Addr]
			if b == nil {
				sum := sha256.Sum256([]byte(def.Name + " " + bd.Addr))
				cookie := strconv.FormatUint(uint64(sum[0])<<40|uint64(sum[1])<<32|uint64(sum[2])<<24|uint64(sum[3])<<16|uint64(sum[4])<<8|uint64(sum[5]), 36)
				b = &backend{addr: bd.Addr, service: def.Name, cookie: cookie,
					setCookie: (&http.Cookie{Name: stickyCookie, Value: cookie, Path: "/", HttpOnly: true}).String()}
				b.dialAddr, b.host, b.port = splitBackendAddr(bd.Addr)
			}
			if !slices.Contains(svc.backends, b) {
				svc.backends = append(svc.backends, b)
				svc.byCookie[b.cookie] = b
			}
		}
		r.services = append(r.services, svc)
		r.byName[def.Name] = svc
		bind := def.BindAddr
		if bind == "" {
			bind = defaultBind
		}
		r.byListen[net.JoinHostPort(bind, strconv.Itoa(def.Port))] = svc
		if def.Mode != ModeHTTP {
			continue
		}
		for _, h := range def.VHosts {
			r.vhosts[h] = append(r.vhosts[h], svc)
		}
		if _, ok := r.appIDs[def.AppID]; !ok {
			r.appIDs[def.AppID] = svc
		}
	}
	for _, list := range r.vhosts {
		// Higher weight first, then the longer path (more specific), then by name.
		slices.SortStableFunc(list, func(a, b *service) int {
			if a.def.Weight != b.def.Weight {
				return b.def.Weight - a.def.Weight
			}
			if len(a.def.Path) != len(b.def.Path) {
				return len(b.def.Path) - len(a.def.Path)
			}
			return strings.Compare(a.def.Name, b.def.Name)
		})
	}
	r.loadCerts()
	return r
}

// splitBackendAddr parses a backend's host:port: an IP address's as ap, else its host
// name and port (all zero when addr is not host:port).
func splitBackendAddr(addr string) (ap netip.AddrPort, host string, port uint16) {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), "", 0
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil || h == "" {
		return netip.AddrPort{}, "", 0
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return netip.AddrPort{}, "", 0
	}
	return netip.AddrPort{}, h, uint16(n)
}

// vhost finds the service for a request's path and host on the virtual host port, the
// host as appendHostKey makes it.
func (r *routes) vhost(host, path []byte) *service {
	for _, svc := range r.vhosts[string(host)] {
		if p := svc.def.Path; p == "" || len(path) >= len(p) && string(path[:len(p)]) == p {
			return svc
		}
	}
	return nil
}

// allows tells whether a client address may use the service.
func (svc *service) allows(addr netip.Addr) bool {
	if len(svc.allowed) == 0 {
		return true
	}
	for _, p := range svc.allowed {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// checkAuth verifies basic credentials against the service's password hash.
func (svc *service) checkAuth(user, password string, ok bool) bool {
	if svc.auth == nil {
		return true
	}
	if !ok || user != svc.def.Auth.User {
		return false
	}
	key := sha256.Sum256([]byte(user + "\x00" + password))
	if _, hit := svc.authOK.Load(key); hit {
		return true
	}
	if !svc.auth.verify(password) {
		return false
	}
	svc.authOK.Store(key, struct{}{})
	return true
}

// pick chooses a backend for a new connection or request: the sticky one when the cookie
// names a live one, else by the service's balance algorithm, skipping ejected backends and
// those already tried. When every untried backend is ejected it takes one anyway: a guess
// beats a certain failure.
func (svc *service) pick(client string, cookie string, tried []*backend) *backend {
	n := len(svc.backends)
	if n == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if cookie != "" {
		if b := svc.byCookie[cookie]; b != nil && !b.ejected(now) && !slices.Contains(tried, b) {
			return b
		}
	}
	var start int
	switch svc.def.Balance {
	case BalanceSource:
		h := fnv.New32a()
		h.Write([]byte(client))
		start = int(h.Sum32() % uint32(n))
	case BalanceLeastConn:
		var best *backend
		for i := range n {
			b := svc.backends[(int(svc.rr.Load())+i)%n]
			if b.ejected(now) || slices.Contains(tried, b) {
				continue
			}
			if best == nil || b.active.Load() < best.active.Load() {
				best = b
			}
		}
		if best != nil {
			svc.rr.Add(1)
			return best
		}
	default:
		start = int(svc.rr.Add(1) % uint64(n))
	}
	var fallback *backend
	for i := range n {
		b := svc.backends[(start+i)%n]
		if slices.Contains(tried, b) {
			continue
		}
		if !b.ejected(now) {
			return b
		}
		if fallback == nil {
			fallback = b
		}
	}
	return fallback
}
