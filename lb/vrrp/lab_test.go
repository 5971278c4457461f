package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/atoll/atoll/isolate/network/nettest"
)

// requireRoot skips a test that needs root, or fails it under CI, where it must run.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root to build network namespaces, and CI=true")
	}
	t.Skip("needs root to build network namespaces")
}

// lab is a link of network namespaces: each host has eth0 on one bridge, which lives in
// a namespace of its own, so nothing of the lab touches the root namespace. Addresses
// come from a /27 of 198.18.0.0/24 locked with nettest.Subnet; the lab's virtual
// addresses are the same offsets in 198.18.1.0/24, so concurrent labs never share one.
type lab struct {
	t      testing.TB
	subnet netip.Prefix
	prefix string // of every namespace name
	bridge string // namespace of the bridge
	hosts  []*labHost
}

// labHost is one namespace on the lab's link.
type labHost struct {
	lab  *lab
	name string
	ns   string
	addr netip.Addr
}

// newLab builds a lab with the named hosts; t.Cleanup deletes every namespace, and
// with them their links.
func newLab(t testing.TB, names ...string) *lab {
	t.Helper()
	requireRoot(t)
	subnet := nettest.Subnet(t)
	slot := int(subnet.Addr().As4()[3]) / 32
	l := &lab{t: t, subnet: subnet, prefix: fmt.Sprintf("atoll-vrrp%d-", slot)}
	// The slot is ours; namespaces with its prefix were left by a test process that died.
	l.removeStale()
	t.Cleanup(l.removeStale)
	l.bridge = l.prefix + "br"
	l.ip("netns", "add", l.bridge)
	l.ip("-n", l.bridge, "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.bridge, "link", "set", "br0", "up")
	for i, name := range names {
		h := &labHost{lab: l, name: name, ns: l.prefix + name, addr: l.addr(11 + i)}
		port := fmt.Sprintf("p%d", i)
		l.ip("netns", "add", h.ns)
		l.ip("link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", port, "netns", l.bridge)
		l.ip("-n", l.bridge, "link", "set", port, "master", "br0", "up")
		l.ip("-n", h.ns, "addr", "add", netip.PrefixFrom(h.addr, 27).String(), "dev", "eth0")
		l.ip("-n", h.ns, "link", "set", "eth0", "up")
		l.ip("-n", h.ns, "link", "set", "lo", "up")
		// Clients reach the virtual addresses on the link, by ARP.
		l.ip("-n", h.ns, "route", "add", l.vipNet().String(), "dev", "eth0")
		l.hosts = append(l.hosts, h)
	}
	return l
}

// addr is the address at offset in the lab's /27.
func (l *lab) addr(offset int) netip.Addr {
	a := l.subnet.Addr().As4()
	a[3] += byte(offset)
	return netip.AddrFrom4(a)
}

// vip is the lab's virtual address number i (0–9), a /32 in 198.18.1.0/24.
func (l *lab) vip(i int) netip.Prefix {
	a := l.subnet.Addr().As4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, a[3] + 1 + byte(i)}), 32)
}

// vipNet is the part of 198.18.1.0/24 the lab's virtual addresses come from.
func (l *lab) vipNet() netip.Prefix {
	a := l.subnet.Addr().As4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, a[3]}), 27)
}

func (l *lab) host(name string) *labHost {
	for _, h := range l.hosts {
		if h.name == name {
			return h
		}
	}
	l.t.Fatalf("lab has no host %s", name)
	return nil
}

func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (l *lab) removeStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		l.t.Errorf("ip netns list: %v", err)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(name, l.prefix) {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				l.t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		}
	}
}

// do runs f on a thread in h's namespace; sockets f opens stay in it.
func (h *labHost) do(f func()) {
	h.lab.t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread never goes back to the root namespace: the runtime ends it when
		// this goroutine returns still locked.
		ns, err := netns.GetFromName(h.ns)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- nil
		f()
	}()
	if err := <-errc; err != nil {
		h.lab.t.Fatalf("enter %s: %v", h.ns, err)
	}
}

// run runs a router with cfg in h's namespace until the test ends or stop is called;
// stop returns Run's error.
func (h *labHost) run(cfg Config) (r *Router, stop func() error) {
	t := h.lab.t
	t.Helper()
	cfg.Interface = "eth0"
	cfg.Logger = testLogger(t).With("host", h.name)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h.do(func() { done <- r.Run(ctx) })
	var result error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("router on %s did not stop", h.name)
			}
		}
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("router on %s: %v", h.name, err)
		}
	})
	return r, stop
}

// addrs lists h's IPv4 addresses on eth0.
func (h *labHost) addrs() []netip.Prefix {
	t := h.lab.t
	t.Helper()
	ns, err := netns.GetFromName(h.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	link, err := nh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	list, err := nh.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out
}

// hasVIP reports whether vip is on h's eth0.
func (h *labHost) hasVIP(vip netip.Prefix) bool {
	for _, p := range h.addrs() {
		if p == vip {
			return true
		}
	}
	return false
}

// mac is h's eth0 hardware address.
func (h *labHost) mac() net.HardwareAddr {
	var mac net.HardwareAddr
	var err error
	done := make(chan struct{})
	h.do(func() {
		defer close(done)
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName("eth0"); err == nil {
			mac = ifi.HardwareAddr
		}
	})
	<-done
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return mac
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
