package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func attach(t testing.TB, b *Bridge, id string, mappings ...PortMapping) *Endpoint {
	t.Helper()
	ep, err := b.Attach(context.Background(), id, mappings)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestAttach: two tasks on one bridge get their namespaces, addresses and routes, reach
// the gateway and each other, and their mapped ports are reached from the host (through
// 127.0.0.1 and the gateway address, TCP and UDP) and from the other task (hairpin).
func TestAttach(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(t)
	b := openBridge(t, cfg)
	gateway := cfg.Subnet.Addr().Next()
	webPort, dnsPort := freePort(t), freePort(t)
	web := attach(t, b, "web", PortMapping{HostPort: webPort, ContainerPort: 80, Protocol: TCP}, PortMapping{HostPort: dnsPort, ContainerPort: 53, Protocol: UDP})
	client := attach(t, b, "client")

	base := cfg.Subnet.Addr().As4()
	wantWeb := &Endpoint{
		ContainerID:  "web",
		NetNSPath:    filepath.Join(cfg.StateDir, "netns", "web"),
		Interface:    "eth0",
		HostVeth:     b.hostVeth("web"),
		IP:           netip.AddrFrom4([4]byte{base[0], base[1], base[2], base[3] + 2}),
		Subnet:       cfg.Subnet,
		Gateway:      gateway,
		PortMappings: []PortMapping{{HostPort: webPort, ContainerPort: 80, Protocol: TCP}, {HostPort: dnsPort, ContainerPort: 53, Protocol: UDP}},
	}
	if !reflect.DeepEqual(web, wantWeb) {
		t.Fatalf("endpoint = %+v, want %+v", web, wantWeb)
	}
	if client.IP != web.IP.Next() {
		t.Fatalf("second task's address = %s, want %s", client.IP, web.IP.Next())
	}
	if got, err := b.Endpoint("web"); err != nil || !reflect.DeepEqual(got, wantWeb) {
		t.Fatalf("Endpoint(web) = %+v, %v; want %+v", got, err, wantWeb)
	}
	if gateway != b.Gateway() {
		t.Fatalf("Gateway() = %s, want %s", b.Gateway(), gateway)
	}

	// The task's view: eth0 with its address, lo up, a default route via the gateway.
	addrs := inNS(t, web.NetNSPath, "ip", "-o", "-4", "addr", "show")
	for _, want := range []string{"lo    inet 127.0.0.1/8", fmt.Sprintf("eth0    inet %s/27", web.IP)} {
		if !strings.Contains(addrs, want) {
			t.Errorf("task addresses lack %q:\n%s", want, addrs)
		}
	}
	if routes, want := inNS(t, web.NetNSPath, "ip", "-4", "route", "show", "default"), fmt.Sprintf("default via %s dev eth0 \n", gateway); routes != want {
		t.Errorf("task default route = %q, want %q", routes, want)
	}
	if master := run(t, "ip", "-o", "link", "show", "dev", web.HostVeth); !strings.Contains(master, "master "+cfg.Bridge+" ") || !strings.Contains(master, "state UP") {
		t.Errorf("host veth is not up on the bridge: %s", master)
	}

	for _, p := range []struct {
		from string
		to   netip.Addr
	}{{web.NetNSPath, gateway}, {client.NetNSPath, gateway}, {client.NetNSPath, web.IP}, {web.NetNSPath, client.IP}} {
		if err := ping(p.from, p.to); err != nil {
			t.Errorf("ping %s from %s: %v", p.to, filepath.Base(p.from), err)
		}
	}

	listenTCP(t, web.NetNSPath, ":80", "web")
	listenUDP(t, web.NetNSPath, ":53", "web-udp")
	hostSide := listenTCP(t, "", netip.AddrPortFrom(gateway, 0).String(), "host")

	tcp := []struct {
		name, from, to, want string
	}{
		{"task to task", client.NetNSPath, hostPort(web.IP, 80), "web: hello"},
		{"task to host on the gateway", web.NetNSPath, hostSide.Addr().String(), "host: hello"},
		{"host to mapped port on 127.0.0.1", "", hostPort(netip.MustParseAddr("127.0.0.1"), webPort), "web: hello"},
		{"host to mapped port on the gateway", "", hostPort(gateway, webPort), "web: hello"},
		{"task to mapped port on the gateway (hairpin)", client.NetNSPath, hostPort(gateway, webPort), "web: hello"},
		{"task to its own mapped port (hairpin)", web.NetNSPath, hostPort(gateway, webPort), "web: hello"},
	}
	for _, c := range tcp {
		got, err := dialTCP(c.from, c.to, "hello")
		if err != nil || got != c.want {
			t.Errorf("%s (%s): answer %q, %v; want %q", c.name, c.to, got, err, c.want)
		}
	}
	for _, to := range []string{hostPort(netip.MustParseAddr("127.0.0.1"), dnsPort), hostPort(gateway, dnsPort)} {
		if got, err := exchangeUDP(to, "query"); err != nil || got != "web-udp: query" {
			t.Errorf("udp to mapped port %s: answer %q, %v; want %q", to, got, err, "web-udp: query")
		}
	}
}

// TestDetach: Detach removes the mapping, the veth, the namespace mount and the lease,
// and is idempotent; another task's mapping stays.
func TestDetach(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(t)
	b := openBridge(t, cfg)
	port, otherPort := freePort(t), freePort(t)
	ep := attach(t, b, "gone", PortMapping{HostPort: port, ContainerPort: 80, Protocol: TCP})
	other := attach(t, b, "stays", PortMapping{HostPort: otherPort, ContainerPort: 80, Protocol: TCP})
	listenTCP(t, ep.NetNSPath, ":80", "gone")
	listenTCP(t, other.NetNSPath, ":80", "stays")
	loopback := netip.MustParseAddr("127.0.0.1")
	if got, err := dialTCP("", hostPort(loopback, port), "hi"); err != nil || got != "gone: hi" {
		t.Fatalf("before detach: %q, %v", got, err)
	}

	for i := range 2 {
		if err := b.Detach(context.Background(), "gone"); err != nil {
			t.Fatalf("detach %d: %v", i+1, err)
		}
	}
	if _, err := dialTCP("", hostPort(loopback, port), "hi"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("mapped port after detach: %v, want connection refused (no DNAT, nothing listening)", err)
	}
	if rules := run(t, "nft", "list", "chain", "ip", cfg.Table, portsChain); strings.Contains(rules, `"container gone"`) || !strings.Contains(rules, `comment "container stays"`) {
		t.Errorf("port mapping rules after detach:\n%s", rules)
	}
	if linkExists(t, ep.HostVeth) {
		t.Errorf("veth %s is still there", ep.HostVeth)
	}
	if !linkExists(t, other.HostVeth) {
		t.Errorf("the other task's veth %s is gone", other.HostVeth)
	}
	if mounts := mountsUnder(t, cfg.StateDir); !reflect.DeepEqual(mounts, []string{other.NetNSPath}) {
		t.Errorf("mounts after detach = %v, want only %s", mounts, other.NetNSPath)
	}
	if _, err := os.Stat(ep.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns mount point: %v, want it gone", err)
	}
	leases, err := b.ipam.leases()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[netip.Addr]string{other.IP: "stays"}; !reflect.DeepEqual(leases, want) {
		t.Errorf("leases after detach = %v, want %v", leases, want)
	}
	if _, err := b.Endpoint("gone"); !errors.Is(err, ErrNotAttached) {
		t.Errorf("Endpoint after detach: %v, want ErrNotAttached", err)
	}
	if got, err := dialTCP("", hostPort(loopback, otherPort), "hi"); err != nil || got != "stays: hi" {
		t.Errorf("other task's mapping after detach: %q, %v", got, err)
	}
	if err := b.Detach(context.Background(), "never-attached"); err != nil {
		t.Errorf("detach of an unknown container: %v", err)
	}
}

// TestAttachRefused: bad requests are refused with clear errors and leave nothing behind.
func TestAttachRefused(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(t)
	b := openBridge(t, cfg)
	port := freePort(t)
	attach(t, b, "owner", PortMapping{HostPort: port, ContainerPort: 80, Protocol: TCP})

	tests := []struct {
		name     string
		id       string
		mappings []PortMapping
		wantIs   error
		wantErr  string
	}{
		{
			name:     "host port zero",
			id:       "c1",
			mappings: []PortMapping{{HostPort: 0, ContainerPort: 80, Protocol: TCP}},
			wantIs:   ErrInvalidPortMapping,
			wantErr:  "attach c1: invalid port mapping 0 (host port 0 to container port 80/tcp): host port 0 is out of range 1-65535",
		},
		{
			name:     "duplicate host port",
			id:       "c1",
			mappings: []PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: UDP}, {HostPort: 31000, ContainerPort: 81, Protocol: UDP}},
			wantIs:   ErrInvalidPortMapping,
			wantErr:  "attach c1: invalid port mapping 1 (host port 31000 to container port 81/udp): host port 31000/udp is already mapped by mapping 0",
		},
		{
			name:     "unknown protocol",
			id:       "c1",
			mappings: []PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: "sctp"}},
			wantIs:   ErrInvalidPortMapping,
			wantErr:  `attach c1: invalid port mapping 0 (host port 31000 to container port 80/sctp): unknown protocol "sctp", want tcp or udp`,
		},
		{
			name:     "host port of another container",
			id:       "c1",
			mappings: []PortMapping{{HostPort: port, ContainerPort: 8080, Protocol: UDP}, {HostPort: port, ContainerPort: 8080, Protocol: TCP}},
			wantIs:   ErrPortInUse,
			wantErr:  fmt.Sprintf("attach c1: host port in use: mapping 1 (host port %d to container port 8080/tcp): host port %d/tcp is mapped by container owner", port, port),
		},
		{
			name:    "attached already",
			id:      "owner",
			wantIs:  ErrAttached,
			wantErr: "attach owner: already attached",
		},
		{
			name:    "bad container id",
			id:      "../x",
			wantErr: `container id "../x": only ASCII letters, digits and "_+-." are allowed`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := b.Attach(context.Background(), tt.id, tt.mappings)
			if err == nil || err.Error() != tt.wantErr || tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("Attach = %+v, %v; want error %s (wrapping %v)", ep, err, tt.wantErr, tt.wantIs)
			}
		})
	}
	ids, err := b.containers()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{"owner"}) {
		t.Errorf("containers with state after refused attaches = %v, want [owner]", ids)
	}
	if mounts := mountsUnder(t, cfg.StateDir); len(mounts) != 1 {
		t.Errorf("mounts = %v, want the owner's only", mounts)
	}
}

// TestExhaustion: concurrent Attaches fill the subnet with distinct addresses, the next one
// is refused with a clear error and leaves nothing, and a Detach makes room again.
func TestExhaustion(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(t)
	b := openBridge(t, cfg)
	const size = 29 // a /27 less network, gateway and broadcast addresses
	endpoints := make([]*Endpoint, size)
	var wg sync.WaitGroup
	for i := range size {
		wg.Go(func() {
			ep, err := b.Attach(context.Background(), fmt.Sprintf("task-%02d", i), nil)
			if err != nil {
				t.Errorf("attach %d: %v", i, err)
			}
			endpoints[i] = ep
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var ips []netip.Addr
	for _, ep := range endpoints {
		ips = append(ips, ep.IP)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	if ips = slices.Compact(ips); len(ips) != size || ips[0] != cfg.Subnet.Addr().Next().Next() || ips[size-1] != broadcast(cfg.Subnet).Prev() {
		t.Fatalf("addresses %v: want %d distinct, the subnet's whole task range", ips, size)
	}

	_, err := b.Attach(context.Background(), "one-too-many", nil)
	want := fmt.Sprintf("attach one-too-many: no free address in %s: all 29 task addresses are leased", cfg.Subnet)
	if err == nil || err.Error() != want || !errors.Is(err, ErrNoAddress) {
		t.Fatalf("attach to a full subnet: %v, want %s", err, want)
	}
	if _, err := os.Stat(b.netnsPath("one-too-many")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused attach left its netns: %v", err)
	}
	if err := b.Detach(context.Background(), "task-07"); err != nil {
		t.Fatal(err)
	}
	if ep := attach(t, b, "one-too-many"); ep.IP != endpoints[7].IP {
		t.Errorf("address after a detach = %s, want the freed %s", ep.IP, endpoints[7].IP)
	}
}

// TestRecover: a restarted agent opens the same bridge, keeps its live containers'
// endpoints (putting them back on a bridge that was deleted meanwhile and rewriting their
// rules after a flush) and removes the rest: a dead container's endpoint, a live one's
// whose veth is gone, and the remains of an Attach it did not finish.
func TestRecover(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(t)
	first := openBridge(t, cfg)
	port := freePort(t)
	live := attach(t, first, "live", PortMapping{HostPort: port, ContainerPort: 80, Protocol: TCP})
	dead := attach(t, first, "dead")
	lost := attach(t, first, "lostveth")
	run(t, "ip", "link", "del", lost.HostVeth)
	listenTCP(t, live.NetNSPath, ":80", "live")
	// An Attach cut short by a crash: a lease and a namespace, no veth, no record.
	if _, err := first.ipam.allocate("half"); err != nil {
		t.Fatal(err)
	}
	if err := createNetNS(first.netnsPath("half")); err != nil {
		t.Fatal(err)
	}
	// Someone flushed the table's port mappings and deleted the bridge meanwhile.
	run(t, "nft", "flush", "chain", "ip", cfg.Table, portsChain)
	run(t, "ip", "link", "del", cfg.Bridge)

	restarted := openBridge(t, cfg)
	rulesBefore := run(t, "nft", "list", "table", "ip", cfg.Table)
	var asked []string
	kept, err := restarted.Recover(context.Background(), func(id string) bool {
		asked = append(asked, id)
		return id != "dead"
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dead", "half", "live", "lostveth"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("Recover asked about %v, want %v", asked, want)
	}
	if len(kept) != 1 || !reflect.DeepEqual(&kept[0], live) {
		t.Fatalf("kept = %+v, want only %+v", kept, live)
	}
	if got, err := dialTCP("", hostPort(netip.MustParseAddr("127.0.0.1"), port), "back"); err != nil || got != "live: back" {
		t.Errorf("kept mapping after recover: %q, %v", got, err)
	}
	if linkExists(t, dead.HostVeth) {
		t.Errorf("the dead container's veth %s is still there", dead.HostVeth)
	}
	if mounts := mountsUnder(t, cfg.StateDir); !reflect.DeepEqual(mounts, []string{live.NetNSPath}) {
		t.Errorf("mounts after recover = %v, want only %s", mounts, live.NetNSPath)
	}
	leases, err := restarted.ipam.leases()
	if err != nil {
		t.Fatal(err)
	}
	if want := map[netip.Addr]string{live.IP: "live"}; !reflect.DeepEqual(leases, want) {
		t.Errorf("leases after recover = %v, want %v", leases, want)
	}
	if ids, err := restarted.containers(); err != nil || !reflect.DeepEqual(ids, []string{"live"}) {
		t.Errorf("containers after recover = %v, %v; want [live]", ids, err)
	}
	if !strings.Contains(rulesBefore, "chain "+guardChain) || strings.Count(rulesBefore, "masquerade") != 3 {
		t.Errorf("reopened table lacks or repeats its fixed rules:\n%s", rulesBefore)
	}
	if rules := run(t, "nft", "list", "table", "ip", cfg.Table); strings.Count(rules, "dnat to") != 1 {
		t.Errorf("want exactly one dnat rule after recover:\n%s", rules)
	}
}

// TestOpenIdempotent: opening an existing bridge again changes nothing; a link of another
// kind under the bridge's name is refused.
func TestOpenIdempotent(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(t)
	openBridge(t, cfg)
	table := run(t, "nft", "list", "table", "ip", cfg.Table)
	addrs := run(t, "ip", "-o", "addr", "show", "dev", cfg.Bridge)
	openBridge(t, cfg)
	if again := run(t, "nft", "list", "table", "ip", cfg.Table); again != table {
		t.Errorf("table changed on reopen:\n%s\nwas:\n%s", again, table)
	}
	if again := run(t, "ip", "-o", "addr", "show", "dev", cfg.Bridge); again != addrs {
		t.Errorf("bridge addresses changed on reopen:\n%s\nwas:\n%s", again, addrs)
	}
	for key, want := range map[string]string{"forwarding": "1\n", "route_localnet": "1\n"} {
		got, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv4/conf", cfg.Bridge, key))
		if err != nil || string(got) != want {
			t.Errorf("bridge %s = %q, %v; want %q", key, got, err, want)
		}
	}

	other := cfg
	other.Bridge += "d"
	other.StateDir = t.TempDir()
	run(t, "ip", "link", "add", other.Bridge, "type", "veth", "peer", "name", other.Bridge+"p")
	t.Cleanup(func() { run(t, "ip", "link", "del", other.Bridge) })
	_, err := Open(context.Background(), other, testLogger(t))
	if want := fmt.Sprintf("bridge %s: the link exists and is a veth, not a bridge", other.Bridge); err == nil || err.Error() != want {
		t.Errorf("Open over a veth: %v, want %s", err, want)
	}
}

// TestLoopbackGuard: route_localnet on the bridge would let a task send packets to the
// host's 127.0.0.1 services; the guard chain drops them. A control packet sent after each
// one to the gateway address shows the first has been handled by the time it arrives.
func TestLoopbackGuard(t *testing.T) {
	requireRoot(t)
	cfg := testConfig(t)
	b := openBridge(t, cfg)
	task := attach(t, b, "task")
	secret := listenHostUDP(t, "127.0.0.1:0")
	control := listenHostUDP(t, netip.AddrPortFrom(b.Gateway(), 0).String())
	secretAddr := netip.MustParseAddrPort(secret.LocalAddr().String())
	controlAddr := netip.MustParseAddrPort(control.LocalAddr().String())

	// probe sends to the loopback service, then the control packet, and reports whether
	// the loopback service got its packet.
	probe := func(round string) bool {
		t.Helper()
		if err := sendRawUDP(task, secretAddr, "secret "+round); err != nil {
			t.Fatal(err)
		}
		if err := sendRawUDP(task, controlAddr, "control "+round); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		if err := control.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if n, _, err := control.ReadFrom(buf); err != nil || string(buf[:n]) != "control "+round {
			t.Fatalf("control packet: %q, %v", buf[:n], err)
		}
		n, err := readNow(t, secret, buf)
		if err == nil && string(buf[:n]) != "secret "+round {
			t.Fatalf("loopback service got %q", buf[:n])
		}
		return err == nil
	}
	if probe("guarded") {
		t.Error("a task reached a service on the host's 127.0.0.1")
	}
	run(t, "nft", "flush", "chain", "ip", cfg.Table, guardChain)
	if !probe("unguarded") {
		t.Error("without the guard the loopback service got nothing: the test proves nothing")
	}
}

// TestOpenIPForward: with IPForward, Open turns on the host's forwarding. It runs in a
// namespace of its own, whose sysctls are not the machine's.
func TestOpenIPForward(t *testing.T) {
	requireRoot(t)
	host := filepath.Join(t.TempDir(), "host")
	if err := createNetNS(host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeNetNS(host); err != nil {
			t.Error(err)
		}
	})
	cfg := DefaultConfig()
	cfg.Subnet = netip.MustParsePrefix("198.18.0.32/27")
	cfg.StateDir = t.TempDir()
	err := inNetNS(host, func() error {
		// A new namespace starts with the host's IPv4 settings (unless
		// net.core.devconf_inherit_init_net says otherwise), and the host may forward.
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0o644); err != nil {
			return err
		}
		before, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if err != nil {
			return err
		}
		b, err := Open(context.Background(), cfg, testLogger(t))
		if err != nil {
			return err
		}
		after, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		if err != nil {
			return err
		}
		if string(before) != "0\n" || string(after) != "1\n" {
			t.Errorf("ip_forward before and after Open = %q, %q; want 0 and 1", before, after)
		}
		return b.Teardown(context.Background())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCreateNetNSLeavesNoThreadBehind: making a namespace never leaves one of the
// program's threads in it — not even the main thread, which the runtime cannot end — so
// the process's own network namespace (/proc/self is the main thread) stays the host's.
func TestCreateNetNSLeavesNoThreadBehind(t *testing.T) {
	requireRoot(t)
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := range 50 {
		path := filepath.Join(dir, fmt.Sprint("ns", i))
		if err := createNetNS(path); err != nil {
			t.Fatal(err)
		}
		if err := removeNetNS(path); err != nil {
			t.Fatal(err)
		}
		if now, err := os.Readlink("/proc/self/ns/net"); err != nil || now != host {
			t.Fatalf("after namespace %d the process is in %s (%v), want the host's %s", i, now, err, host)
		}
	}
	threads, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range threads {
		if ns, err := os.Readlink(filepath.Join("/proc/self/task", th.Name(), "ns/net")); err == nil && ns != host {
			t.Errorf("thread %s is in %s, want the host's %s", th.Name(), ns, host)
		}
	}
}
