package vipproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// requireRoot skips a test that needs root, or fails it under CI, where it must run.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root to create a dummy interface, and CI=true")
	}
	t.Skip("needs root to create a dummy interface")
}

// linkAddrs returns the IPv4 addresses of the interface name; ok is false when there is
// no such interface.
func linkAddrs(t testing.TB, name string) (addrs []netip.Prefix, ok bool) {
	t.Helper()
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	list, err := netlink.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		bits, _ := a.Mask.Size()
		addrs = append(addrs, netip.PrefixFrom(ip, bits))
	}
	slices.SortFunc(addrs, func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr()) })
	return addrs, true
}

// nftTableExists tells whether the nftables table name (family ip) exists.
func nftTableExists(t testing.TB, name string) bool {
	t.Helper()
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(tables, func(table *nftables.Table) bool { return table.Name == name })
}

// TestDummyInterface (root): the proxy puts a VIP's address on a dummy interface of its
// own, a connection to the VIP reaches the backend through it even though another server
// listens on the VIP's port on all addresses (which still gets its own connections), a
// connection made survives the table changing, the address goes when the VIP does, an
// interface left behind is taken over without its old addresses, and Close deletes the
// interface and the nftables table.
func TestDummyInterface(t *testing.T) {
	requireRoot(t)
	name := fmt.Sprintf("atvip%d", os.Getpid()%100000)
	live := echoServer(t, "live")
	// A task with host networking, or the lb role, on the VIP's port on all addresses.
	wildcard := echoServerOn(t, "wildcard", "0.0.0.0:0")
	d, err := NewDummy(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if link, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(link)
		}
		if conn, err := nftables.New(); err == nil {
			conn.DelTable(&nftables.Table{Name: name, Family: nftables.TableFamilyIPv4})
			_ = conn.Flush()
		}
	})
	if d.Name() != name {
		t.Fatalf("interface %q, want %q", d.Name(), name)
	}
	p := startProxy(t, d, name)
	if !nftTableExists(t, name) {
		t.Fatalf("no nftables table %s after New", name)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("198.18.1.201"), wildcard.Port())
	other := netip.MustParseAddrPort("198.18.1.202:8080")
	if err := p.Update(table(tcpService(addr, live), tcpService(other, live))); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("198.18.1.201/32"), netip.MustParsePrefix("198.18.1.202/32")}
	if got, ok := linkAddrs(t, name); !ok || !slices.Equal(got, want) {
		t.Fatalf("%s has %v (exists %v), want %v", name, got, ok, want)
	}
	c, greeting := dial(t, addr)
	if greeting != "live" {
		t.Fatalf("reached %q through %s, want live", greeting, addr)
	}
	c.echo("through the dummy interface")
	loopback := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), wildcard.Port())
	if _, greeting := dial(t, loopback); greeting != "wildcard" {
		t.Fatalf("reached %q through %s, want wildcard", greeting, loopback)
	}

	if err := p.Update(table(tcpService(addr, live))); err != nil {
		t.Fatal(err)
	}
	if got, _ := linkAddrs(t, name); !slices.Equal(got, want[:1]) {
		t.Fatalf("after %s went, %s has %v, want %v", other, name, got, want[:1])
	}
	c.echo("after the table changed")

	// A node that died left its interface: the next one takes it over, emptied.
	again, err := NewDummy(name)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := linkAddrs(t, name); !ok || len(got) != 0 {
		t.Fatalf("taken over, %s has %v (exists %v), want no address", name, got, ok)
	}
	if err := again.Add(addr.Addr()); err != nil {
		t.Fatal(err)
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got, ok := linkAddrs(t, name); ok {
		t.Fatalf("after Close, %s still exists with %v", name, got)
	}
	if nftTableExists(t, name) {
		t.Fatalf("after Close, the nftables table %s still exists", name)
	}
	if err := again.Close(); err != nil {
		t.Fatalf("closing an interface already deleted: %v", err)
	}
	// No connection is tried now: without the address, it would leave the machine.
	if got := p.Addrs(); len(got) != 0 {
		t.Fatalf("after Close, listening on %v", got)
	}
}
