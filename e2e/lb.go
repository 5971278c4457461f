package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Virtual addresses: a cluster's VIPs are the offsets 1 … MaxVIPs of its slot's /27 in
// 198.18.1.0/24 (slot base B: 198.18.1.B+1 …), as lb/vrrp's test labs take theirs from
// the /27 they lock with the same slot locks, so no two clusters or labs alive at once
// share a VIP.
const MaxVIPs = 10

// LB ports StartLB gives every load balancer (each host has its own namespace).
const (
	LBHTTPPort  = 8080
	LBAppIDPort = 9091
	LBAdminPort = 9090
)

// VIP returns the cluster's virtual address number i, 0 ≤ i < MaxVIPs.
func (c *Cluster) VIP(i int) netip.Addr {
	c.t.Helper()
	if i < 0 || i >= MaxVIPs {
		c.t.Fatalf("e2e: VIP(%d): want 0 ≤ i < %d", i, MaxVIPs)
	}
	return netip.AddrFrom4([4]byte{198, 18, 1, byte(c.slot*slotSize + 1 + i)})
}

// StartLB adds a host and runs a load balancer on it, joined to every master:
//
//	atoll lb --name NAME --bind 0.0.0.0 --advertise IP --join MASTER-IPS --data-dir DIR
//	  --lb-http-port LBHTTPPort --lb-app-id-port LBAppIDPort --lb-admin-port LBAdminPort
//	  --dns-port -1
//
// plus args (--vip, --priority, …). It binds every address, so that it also serves on
// the VIPs VRRP adds to its interface. It needs StartMasters first and returns at once.
func (c *Cluster) StartLB(name string, args ...string) *Host {
	c.t.Helper()
	masters := c.Masters()
	if len(masters) == 0 {
		c.t.Fatalf("e2e: StartLB(%s): StartMasters first", name)
	}
	ips := make([]string, len(masters))
	for i, m := range masters {
		ips[i] = m.IP()
	}
	h := c.AddHost(name)
	base := []string{"lb", "--name", name, "--bind", "0.0.0.0", "--advertise", h.IP(), "--join", strings.Join(ips, ","),
		"--data-dir", h.DataDir(), "--lb-http-port", strconv.Itoa(LBHTTPPort), "--lb-app-id-port", strconv.Itoa(LBAppIDPort),
		"--lb-admin-port", strconv.Itoa(LBAdminPort), "--dns-port", "-1"}
	h.Start(slices.Concat(base, args)...)
	return h
}

// RouteVIPs routes the cluster's VIPs (its slot's /27 of 198.18.1.0/24) on the host's
// link, eth0, so that it reaches whichever host holds one by ARP, as a client on the load
// balancers' LAN does.
func (h *Host) RouteVIPs() error {
	return run("ip", "-n", h.netns, "route", "add", h.c.vipNet().String(), "dev", "eth0")
}

// vipNet is the part of 198.18.1.0/24 the cluster's VIPs come from.
func (c *Cluster) vipNet() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(c.slot * slotSize)}), slotPrefixLen)
}

// Addrs lists the IPv4 addresses with prefix length on the host's interface ifname.
func (h *Host) Addrs(ifname string) ([]netip.Prefix, error) {
	out, err := output("ip", "-n", h.netns, "-4", "-o", "addr", "show", "dev", ifname)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Prefix
	for line := range strings.Lines(out) {
		fields := strings.Fields(line)
		i := slices.Index(fields, "inet")
		if i < 0 || i+1 >= len(fields) {
			continue
		}
		p, err := netip.ParsePrefix(fields[i+1])
		if err != nil {
			return nil, fmt.Errorf("addresses of %s on %s: %q: %w", ifname, h.name, line, err)
		}
		addrs = append(addrs, p)
	}
	return addrs, nil
}

// Dialer makes TCP connections from inside a host's network namespace, for clients in
// the test process (an http.Transport's DialContext). Each dial enters the namespace on
// its locked thread, makes and connects the socket there, and returns the thread to the
// namespace it came from: a socket stays in the namespace it was made in, whichever
// goroutine uses it afterwards. No thread stays in the host's namespace, which Close
// would then count among its processes (and kill, for the main thread).
type Dialer struct {
	netns string
}

// Dialer returns a dialer in the host's namespace.
func (h *Host) Dialer() *Dialer { return &Dialer{netns: filepath.Join(netnsDir, h.netns)} }

// DialContext connects to addr (an IP and port) over TCP from the host's namespace.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, fmt.Errorf("dial %s %s: only tcp", network, addr)
	}
	target, err := os.Open(d.netns)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer home.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("dial %s: enter %s: %w", addr, d.netns, err)
	}
	var dialer net.Dialer
	conn, dialErr := dialer.DialContext(ctx, "tcp", addr)
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, so the runtime ends it with its goroutine rather
		// than run other goroutines in the wrong namespace.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("dial %s: return from %s: %w", addr, d.netns, err)
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}
