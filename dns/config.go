package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll/atoll/lb/vip"
)

// Config configures a Server.
type Config struct {
	// Domain is the cluster domain the server answers for with authority ("mesos" gives
	// web.marathon.mesos). Names outside it, and outside l4lb.thisdcos.directory, are
	// forwarded to Upstreams.
	Domain string
	// TTL is the time to live of every record, in seconds.
	TTL uint32
	// Listen is the host:port the server answers on, over UDP and TCP. Port 0 picks a free
	// port that is the same for both.
	Listen string
	// UDPSockets is how many UDP sockets share the port (SO_REUSEPORT), so the kernel
	// spreads queries over that many goroutines, each reading and answering its socket's
	// queries in batches. The kernel hands each query to one of them at random, so a few
	// busy clients keep them all busy too.
	UDPSockets int
	// UDPSize is the largest UDP answer the server sends (and advertises in EDNS0); a
	// client asking for more gets this, one asking for less (or without EDNS0, 512) gets
	// what it asked for, with TC set when the answer is longer.
	UDPSize uint16
	// Upstreams are the resolvers (host:port, or a bare IP for port 53) that out-of-domain
	// queries are forwarded to, tried in order. Empty: the nameservers of ResolvConf.
	Upstreams []string
	// ResolvConf is read for upstreams when Upstreams is empty; "" reads none, and then
	// out-of-domain queries are refused.
	ResolvConf string
	// UpstreamTimeout bounds one exchange with one upstream.
	UpstreamTimeout time.Duration
	// NSAddr is the address given for ns1.<Domain>, the name server in the SOA and NS
	// records; "" gives the name no address.
	NSAddr string
	// VIPRange is the IPv4 prefix the named VIPs of the tasks' VIP_<n> port labels get
	// their addresses from; every node of a cluster must have the same, since each
	// computes the addresses on its own (see vip.Allocate).
	VIPRange string
	// Masters returns the API URLs (http://host:port) of the masters to subscribe to; it
	// is called before every connection attempt, so gossip can keep it current. nil runs
	// the server without cluster records (only SetVIPs and the zone's own records).
	Masters func() []string
	// HTTPClient, when set, makes the calls to the masters (a secure node's: the
	// cluster's CA and the node's certificate, for https masters); nil uses Go's default.
	HTTPClient *http.Client
	// Token, when set, is the API token sent with every call to the masters.
	Token string
	// ReconnectBackoff is the first wait after the event stream failed; it doubles up to
	// ReconnectBackoffMax while no master answers.
	ReconnectBackoff    time.Duration
	ReconnectBackoffMax time.Duration
	// MasterRefresh is how often the masters and their leader are read while subscribed;
	// a leader change that does not break the stream shows in leader.<Domain> within it.
	MasterRefresh time.Duration
	// Version is reported by the HTTP API's /v1/version.
	Version string
	// Registerer receives the server's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger receives the server's logs.
	Logger *slog.Logger
}

// defaultUDPSize fits any path's MTU without IP fragmentation (DNS flag day 2020);
// bigger answers go over TCP.
const defaultUDPSize = 1232

// DefaultConfig is the production preset.
func DefaultConfig() Config {
	return Config{
		// Mesos-DNS's domain, so existing names (web.marathon.mesos) keep resolving.
		Domain: "mesos",
		// Mesos-DNS's TTL: long enough for clients to cache, and since records follow the
		// event stream, the only staleness a client sees.
		TTL: 60,
		// The standard DNS port, on every interface of the node.
		Listen: "0.0.0.0:53",
		// One reading socket per core: a single socket tops out on one core.
		UDPSockets: runtime.GOMAXPROCS(0),
		UDPSize:    defaultUDPSize,
		ResolvConf: "/etc/resolv.conf",
		// Mesos-DNS's timeout: a slow upstream rather than a lost packet.
		UpstreamTimeout: 5 * time.Second,
		VIPRange:        vip.DefaultRange,
		// Fast enough to hide a brief leader election, slow enough not to hammer masters
		// that are down.
		ReconnectBackoff:    100 * time.Millisecond,
		ReconnectBackoffMax: 5 * time.Second,
		// Leader changes almost always break the stream; this only catches the rest.
		MasterRefresh: 10 * time.Second,
		Logger:        slog.New(slog.DiscardHandler),
	}
}

// DevConfig is the preset of `atoll up`: loopback, an unprivileged port, quick retries.
func DevConfig() Config {
	c := DefaultConfig()
	c.Listen = "127.0.0.1:8053"
	c.NSAddr = "127.0.0.1"
	c.UDPSockets = 1
	c.ReconnectBackoff = 50 * time.Millisecond
	c.ReconnectBackoffMax = time.Second
	c.MasterRefresh = 2 * time.Second
	return c
}

// Validate reports the first setting that cannot work, naming it.
func (c *Config) Validate() error {
	if _, ok := mdns.IsDomainName(c.Domain); !ok || c.Domain == "" || strings.HasPrefix(c.Domain, ".") {
		return fmt.Errorf("dns domain %q: not a domain name", c.Domain)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("dns listen %q: want host:port: %w", c.Listen, err)
	}
	if c.UDPSockets < 1 {
		return fmt.Errorf("dns udp sockets %d: want at least 1", c.UDPSockets)
	}
	if c.UDPSize < mdns.MinMsgSize {
		return fmt.Errorf("dns udp size %d: want at least %d", c.UDPSize, mdns.MinMsgSize)
	}
	for _, u := range c.Upstreams {
		if _, err := upstreamAddr(u); err != nil {
			return err
		}
	}
	if c.UpstreamTimeout <= 0 {
		return fmt.Errorf("dns upstream timeout %v: want more than 0", c.UpstreamTimeout)
	}
	if c.NSAddr != "" {
		if _, err := netip.ParseAddr(c.NSAddr); err != nil {
			return fmt.Errorf("dns ns address %q: %w", c.NSAddr, err)
		}
	}
	if _, err := vip.ParseRange(c.VIPRange); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	if c.ReconnectBackoff <= 0 || c.ReconnectBackoffMax < c.ReconnectBackoff {
		return fmt.Errorf("dns reconnect backoff %v..%v: want 0 < first <= max", c.ReconnectBackoff, c.ReconnectBackoffMax)
	}
	if c.MasterRefresh <= 0 {
		return fmt.Errorf("dns master refresh %v: want more than 0", c.MasterRefresh)
	}
	if c.Logger == nil {
		return errors.New("dns: no logger")
	}
	return nil
}

// upstreamAddr normalizes an upstream to host:port (port 53 when none is given).
func upstreamAddr(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("dns upstream %q: want host:port or an IP: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("dns upstream %q: bad port", s)
	}
	if host == "" {
		return "", fmt.Errorf("dns upstream %q: no host", s)
	}
	return net.JoinHostPort(host, port), nil
}

// upstreams returns the resolvers to forward to: the configured ones, else those of
// resolv.conf, without any that is this server itself (which would loop).
func (c *Config) upstreams(self netip.AddrPort) ([]string, error) {
	list := c.Upstreams
	if len(list) == 0 && c.ResolvConf != "" {
		rc, err := mdns.ClientConfigFromFile(c.ResolvConf)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dns upstreams from %s: %w", c.ResolvConf, err)
		}
		for _, s := range rc.Servers {
			list = append(list, net.JoinHostPort(s, rc.Port))
		}
	}
	var out []string
	for _, u := range list {
		addr, err := upstreamAddr(u)
		if err != nil {
			return nil, err
		}
		if isSelf(addr, self) {
			c.Logger.Warn("not forwarding to this server itself", "upstream", addr)
			continue
		}
		out = append(out, addr)
	}
	return out, nil
}

// isSelf reports whether upstream addr is the server listening on self: the same port on
// the same address, or on any local address when self listens on all of them.
func isSelf(addr string, self netip.AddrPort) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Port() != self.Port() {
		return false
	}
	ip, own := ap.Addr().Unmap(), self.Addr().Unmap()
	if ip == own {
		return true
	}
	if !own.IsUnspecified() {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if local, ok := netip.AddrFromSlice(n.IP); ok && local.Unmap() == ip {
				return true
			}
		}
	}
	return false
}
