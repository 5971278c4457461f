package isolate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate/network"
)

func TestFormatResolvConf(t *testing.T) {
	tests := []struct {
		nameservers, search []string
		want                string
	}{
		{nameservers: []string{"198.18.0.53"}, want: "nameserver 198.18.0.53\n"},
		{nameservers: []string{"198.18.0.53"}, search: []string{"mesos"}, want: "nameserver 198.18.0.53\nsearch mesos\n"},
		{
			nameservers: []string{"127.0.0.1", "::1"}, search: []string{"mesos", "marathon.mesos"},
			want: "nameserver 127.0.0.1\nnameserver ::1\nsearch mesos marathon.mesos\n",
		},
	}
	for _, tc := range tests {
		if got := string(formatResolvConf(tc.nameservers, tc.search)); got != tc.want {
			t.Errorf("formatResolvConf(%q, %q) = %q, want %q", tc.nameservers, tc.search, got, tc.want)
		}
	}
}

func TestReplaceLoopbackNameservers(t *testing.T) {
	gateway := netip.MustParseAddr("198.18.0.33")
	tests := []struct {
		name, conf, want string
	}{
		{name: "empty"},
		{
			name: "systemd-resolved's stub",
			conf: "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n",
			want: "# stub\nnameserver 198.18.0.33\noptions edns0 trust-ad\nsearch .\n",
		},
		{
			name: "no loopback nameserver",
			conf: "nameserver 10.255.255.53\nsearch example.com\n",
			want: "nameserver 10.255.255.53\nsearch example.com\n",
		},
		{
			name: "several loopback nameservers become the gateway once, in the first one's place",
			conf: "nameserver 10.0.0.2\nnameserver 127.0.0.1\nnameserver ::1\nnameserver ::ffff:127.0.0.2\nsearch a\n",
			want: "nameserver 10.0.0.2\nnameserver 198.18.0.33\nsearch a\n",
		},
		{
			name: "the gateway is a nameserver already",
			conf: "nameserver 127.0.0.1\nnameserver 198.18.0.33\n",
			want: "nameserver 198.18.0.33\n",
		},
		{
			name: "a tab, a trailing comment and no final line break",
			conf: "search a\nnameserver\t127.0.0.1 # local",
			want: "search a\nnameserver 198.18.0.33\n",
		},
		{
			name: "lines the resolver does not read as nameservers stay",
			conf: "# nameserver 127.0.0.1\n nameserver 127.0.0.1\nnameserver127.0.0.1\nnameserver\nnameserver localhost\n",
			want: "# nameserver 127.0.0.1\n nameserver 127.0.0.1\nnameserver127.0.0.1\nnameserver\nnameserver localhost\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(replaceLoopbackNameservers([]byte(tc.conf), gateway)); got != tc.want {
				t.Errorf("replaceLoopbackNameservers(%q) = %q, want %q", tc.conf, got, tc.want)
			}
		})
	}
}

func FuzzReplaceLoopbackNameservers(f *testing.F) {
	for _, seed := range []string{
		"", "nameserver 127.0.0.53\noptions edns0\n", "nameserver ::1\nnameserver 198.18.0.33\n",
		"nameserver\t127.0.0.1 x", "nameserver 10.0.0.1\r\nnameserver 127.0.0.1\r\n", "nameserver fe80::1%eth0\n",
	} {
		f.Add([]byte(seed))
	}
	gateway := netip.MustParseAddr("198.18.0.33")
	f.Fuzz(func(t *testing.T, conf []byte) {
		got := replaceLoopbackNameservers(conf, gateway)
		gateways := 0
		var kept, want [][]byte // the lines that are not nameservers on loopback or the gateway
		for _, line := range bytes.SplitAfter(got, []byte("\n")) {
			addr, ok := resolvNameserver(line)
			switch {
			case ok && addr.Unmap().IsLoopback():
				t.Fatalf("loopback nameserver left: %q in %q", line, got)
			case ok && addr == gateway:
				gateways++
			case len(line) > 0:
				kept = append(kept, line)
			}
		}
		wantGateways, loopback := 0, false
		for _, line := range bytes.SplitAfter(conf, []byte("\n")) {
			addr, ok := resolvNameserver(line)
			switch {
			case ok && addr.Unmap().IsLoopback():
				loopback = true
			case ok && addr == gateway:
				wantGateways++
			case len(line) > 0:
				want = append(want, line)
			}
		}
		if loopback && wantGateways == 0 {
			wantGateways = 1
		}
		if gateways != wantGateways {
			t.Errorf("%q has the gateway %d times, want %d", got, gateways, wantGateways)
		}
		if !reflect.DeepEqual(kept, want) {
			t.Errorf("other lines changed: %q, want %q", kept, want)
		}
		if again := replaceLoopbackNameservers(got, gateway); !bytes.Equal(again, got) {
			t.Errorf("not idempotent: %q, then %q", got, again)
		}
	})
}

// bridgeServer writes the task's view of its network to the sandbox (its eth0 addresses
// and routes), says ready and serves "hello" on port 8080 to every connection.
const bridgeServer = `/bin/busybox ip -o -4 addr show dev eth0 > addr
/bin/busybox cat /proc/net/route > route
echo ready
exec /bin/busybox nc -ll -p 8080 -e /bin/busybox echo hello`

// bridgeContainerPort is the port bridgeServer serves on.
const bridgeContainerPort = 8080

// mesosBridge is a Mesos container on the host's filesystem that joins the bridge with
// hostPort mapped to bridgeContainerPort, as Marathon sends for networks mode
// "container/bridge".
func mesosBridge(hostPort uint16) *api.ContainerInfo {
	return &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{
		Name:         BridgeNetwork,
		PortMappings: []api.PortMapping{{HostPort: uint32(hostPort), ContainerPort: bridgeContainerPort, Protocol: "tcp"}},
	}}}
}

// wantNetworkInfos is what State reports of a container at ep with hostPort mapped.
func wantNetworkInfos(ep *network.Endpoint, hostPort uint16) []api.NetworkInfo {
	return []api.NetworkInfo{{
		IPAddresses:  []api.IPAddress{{Protocol: "IPv4", IPAddress: ep.IP.String()}},
		PortMappings: []api.PortMapping{{HostPort: uint32(hostPort), ContainerPort: bridgeContainerPort, Protocol: "tcp"}},
	}}
}

// fetch connects to addr and returns all it sends.
func fetch(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	data, err := io.ReadAll(conn)
	return string(data), err
}

// checkHello polls addr until it answers, and checks that it says hello.
func checkHello(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		got, err := fetch(addr)
		if err == nil && got != "" {
			if got != "hello\n" {
				t.Errorf("%s says %q, want %q", addr, got, "hello\n")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never said hello: %q, %v", addr, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkRefused checks that a connection to addr is refused.
func checkRefused(t testing.TB, addr string) {
	t.Helper()
	if got, err := fetch(addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("%s: got %q, %v; want the connection refused", addr, got, err)
	}
}

// checkTaskNetwork checks the task's own view of its network, which bridgeServer wrote
// to its sandbox, and that it runs in the endpoint's namespace.
func checkTaskNetwork(t testing.TB, spec LaunchSpec, st State, ep *network.Endpoint) {
	t.Helper()
	waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "ready\n")
	if addr, want := readFile(t, filepath.Join(spec.Sandbox, "addr")), fmt.Sprintf("eth0    inet %s/%d ", ep.IP, ep.Subnet.Bits()); !strings.Contains(addr, want) {
		t.Errorf("the task's eth0 addresses %q lack %q", addr, want)
	}
	gw := ep.Gateway.As4()
	if route, want := readFile(t, filepath.Join(spec.Sandbox, "route")), fmt.Sprintf("\neth0\t00000000\t%02X%02X%02X%02X\t0003\t", gw[3], gw[2], gw[1], gw[0]); !strings.Contains(route, want) {
		t.Errorf("the task's routes %q lack the default route %q", route, want)
	}
	var task, endpoint syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", st.PID), &task); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(ep.NetNSPath, &endpoint); err != nil {
		t.Fatal(err)
	}
	if task.Ino != endpoint.Ino || task.Dev != endpoint.Dev {
		t.Errorf("the task's network namespace is %d:%d, want the endpoint's %d:%d", task.Dev, task.Ino, endpoint.Dev, endpoint.Ino)
	}
}

// killAndDestroy kills a running container, waits for it and destroys it.
func killAndDestroy(t testing.TB, r *Runc, spec LaunchSpec, paths map[string]string) {
	t.Helper()
	if err := r.Kill(context.Background(), spec.ContainerID, 0); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if got, want := waitExit(t, r, spec.ContainerID), (ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
	runcDestroy(t, r, spec, paths)
}

// checkDetached checks that a destroyed container's endpoint is gone: its record, its
// veth, its port mapping.
func checkDetached(t testing.TB, b *network.Bridge, ep *network.Endpoint) {
	t.Helper()
	if got, err := b.Endpoint(ep.ContainerID); !errors.Is(err, network.ErrNotAttached) {
		t.Errorf("Endpoint after Destroy = %+v, %v; want ErrNotAttached", got, err)
	}
	if _, err := netlink.LinkByName(ep.HostVeth); !errors.As(err, new(netlink.LinkNotFoundError)) {
		t.Errorf("veth %s after Destroy: %v, want it gone", ep.HostVeth, err)
	}
	for _, m := range ep.PortMappings {
		checkRefused(t, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), m.HostPort).String())
	}
}

// A task that asks for the bridge, Docker's way with an image, Marathon's on the host's
// filesystem, or by another name the agent gives its bridge, runs in its endpoint's namespace with eth0 on the bridge, is reached through
// its mapped port on 127.0.0.1 and at its address, reports both in its State, and leaves
// nothing on the bridge once destroyed.
func TestRuncBridge(t *testing.T) {
	images, ref := testImages(t, v1.Config{})
	cfg := testNetworkConfig(t)
	b := openTestBridge(t, cfg)
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Network, c.Images, c.BridgeNames = b, images, []string{"dcos"} })
	tests := []struct {
		name      string
		container func(hostPort uint16) *api.ContainerInfo
		// network is the name State reports, "" for the bridge's own.
		network string
	}{
		{
			name: "docker BRIDGE with an image",
			container: func(hostPort uint16) *api.ContainerInfo {
				return &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: ref, Network: "BRIDGE", PortMappings: []api.DockerPortMapping{
					{HostPort: uint32(hostPort), ContainerPort: bridgeContainerPort, Protocol: "tcp"}}}}
			},
		},
		{name: "mesos-bridge on the host's filesystem", container: mesosBridge},
		{
			name: "a named network that is the bridge, as Marathon sends for networks mode container",
			container: func(hostPort uint16) *api.ContainerInfo {
				return &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: "dcos", PortMappings: []api.PortMapping{
					{HostPort: uint32(hostPort), ContainerPort: bridgeContainerPort, Protocol: "tcp"}}}}}
			},
			network: "dcos",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hostPort := freePort(t)
			spec := shellSpec(t, bridgeServer)
			spec.Container = tc.container(hostPort)
			st := runcLaunch(t, r, spec)
			paths := runcCgroupPaths(t, r, spec.ContainerID)
			ep, err := b.Endpoint(spec.ContainerID)
			if err != nil {
				t.Fatalf("Endpoint: %v", err)
			}
			if !cfg.Subnet.Contains(ep.IP) || ep.IP == b.Gateway() {
				t.Errorf("address %s, want one of %s other than the gateway %s", ep.IP, cfg.Subnet, b.Gateway())
			}
			want := wantNetworkInfos(ep, hostPort)
			want[0].Name = tc.network
			if !reflect.DeepEqual(st.NetworkInfos, want) {
				t.Errorf("State.NetworkInfos = %+v, want %+v", st.NetworkInfos, want)
			}
			checkTaskNetwork(t, spec, st, ep)
			checkHello(t, fmt.Sprintf("127.0.0.1:%d", hostPort))
			checkHello(t, netip.AddrPortFrom(ep.IP, bridgeContainerPort).String())
			killAndDestroy(t, r, spec, paths)
			checkDetached(t, b, ep)
		})
	}
}

// A restarted agent's Runc, on the same state dir and a bridge opened anew, keeps the
// endpoints of its running containers, which stay reachable even when the nftables
// table was lost meanwhile; it removes the endpoint of a container it does not have, and
// kills a recovered container whose endpoint is gone.
func TestRuncBridgeRecover(t *testing.T) {
	cfg := testNetworkConfig(t)
	stateDir := t.TempDir()
	first := openTestBridge(t, cfg)
	before := newTestRunc(t, stateDir, func(c *RuncConfig) { c.Network = first })

	hostPort, cutOffPort, strayPort := freePort(t), freePort(t), freePort(t)
	serve := shellSpec(t, bridgeServer)
	serve.Container = mesosBridge(hostPort)
	serveState := runcLaunch(t, before, serve)
	servePaths := runcCgroupPaths(t, before, serve.ContainerID)
	checkHello(t, fmt.Sprintf("127.0.0.1:%d", hostPort))
	cutOff := shellSpec(t, bridgeServer)
	cutOff.Container = mesosBridge(cutOffPort)
	cutOffState := runcLaunch(t, before, cutOff)
	cutOffPaths := runcCgroupPaths(t, before, cutOff.ContainerID)
	waitForOutput(t, filepath.Join(cutOff.Sandbox, "stdout"), "ready\n")
	cutOffEndpoint, err := first.Endpoint(cutOff.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	// An endpoint of no container of the state dir's, as a launch cut short leaves.
	stray, err := first.Attach(context.Background(), "stray", []network.PortMapping{{HostPort: strayPort, ContainerPort: 80, Protocol: network.TCP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := before.Release(context.Background(), false); err != nil {
		t.Fatal(err)
	}

	// While no agent runs, the table goes (a firewall reload, say) and so does one veth.
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	conn.DelTable(&nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyIPv4})
	if err := conn.Flush(); err != nil {
		t.Fatalf("delete table %s: %v", cfg.Table, err)
	}
	checkRefused(t, fmt.Sprintf("127.0.0.1:%d", hostPort))
	veth, err := netlink.LinkByName(cutOffEndpoint.HostVeth)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(veth); err != nil {
		t.Fatal(err)
	}

	// The restarted agent opens the network anew; first's cleanup checks and tears it down.
	second, err := network.Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	after := newTestRunc(t, stateDir, func(c *RuncConfig) { c.Network, c.CgroupParent = second, before.cgroupParent })
	destroyOnCleanup(t, after, serve, servePaths)
	destroyOnCleanup(t, after, cutOff, cutOffPaths)
	if err := after.Recover(context.Background(), []State{serveState, cutOffState}); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	checkDetached(t, second, stray)
	ep, err := second.Endpoint(serve.ContainerID)
	if err != nil {
		t.Fatalf("the running container's endpoint: %v", err)
	}
	checkHello(t, fmt.Sprintf("127.0.0.1:%d", hostPort))
	checkHello(t, netip.AddrPortFrom(ep.IP, bridgeContainerPort).String())
	c, err := after.containers.lookup(serve.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if want := wantNetworkInfos(ep, hostPort); !reflect.DeepEqual(c.state, serveState) || !reflect.DeepEqual(c.state.NetworkInfos, want) {
		t.Errorf("recovered state %+v, want %+v with network infos %+v", c.state, serveState, want)
	}
	if got, want := waitExit(t, after, cutOff.ContainerID), (ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}); got != want {
		t.Errorf("the container that lost its endpoint: status %+v, want %+v", got, want)
	}
	runcDestroy(t, after, cutOff, cutOffPaths)
	checkDetached(t, second, cutOffEndpoint)

	checkHello(t, fmt.Sprintf("127.0.0.1:%d", hostPort))
	killAndDestroy(t, after, serve, servePaths)
	checkDetached(t, second, ep)
}

// Containers get the resolv.conf RuncConfig.DNS says, read-only, whether on the host's
// filesystem or an image's and on the host's network or the bridge, where loopback
// nameservers become the gateway; without DNS, the host's.
func TestRuncResolvConf(t *testing.T) {
	images, ref := testImages(t, v1.Config{})
	cfg := testNetworkConfig(t)
	b := openTestBridge(t, cfg)
	// The three share the bridge: each NewRunc takes the endpoints of the containers it
	// does not have down, and all are made before any container is.
	newRunc := func(dns, search []string) *Runc {
		return newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Network, c.Images, c.DNS, c.DNSSearch = b, images, dns, search })
	}
	withDNS := newRunc([]string{"198.18.0.53"}, []string{"mesos"})
	loopbackDNS := newRunc([]string{"127.0.0.1", "198.18.0.53"}, []string{"mesos", "marathon.mesos"})
	hostDNS := newRunc(nil, nil)
	host := readFile(t, hostResolvConf)
	image := &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{Type: "DOCKER", Docker: &api.ImageDocker{Name: ref}}}}
	bridge := &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: BridgeNetwork}}}
	imageOnBridge := &api.ContainerInfo{Type: "MESOS", Mesos: image.Mesos, NetworkInfos: bridge.NetworkInfos}
	tests := []struct {
		name      string
		r         *Runc
		container *api.ContainerInfo
		want      string
	}{
		{"DNS, host filesystem", withDNS, nil, "nameserver 198.18.0.53\nsearch mesos\n"},
		{"DNS, image", withDNS, image, "nameserver 198.18.0.53\nsearch mesos\n"},
		{"DNS, host filesystem on the bridge", withDNS, bridge, "nameserver 198.18.0.53\nsearch mesos\n"},
		{"loopback DNS, host filesystem", loopbackDNS, nil, "nameserver 127.0.0.1\nnameserver 198.18.0.53\nsearch mesos marathon.mesos\n"},
		{
			"loopback DNS, image on the bridge", loopbackDNS, imageOnBridge,
			fmt.Sprintf("nameserver %s\nnameserver 198.18.0.53\nsearch mesos marathon.mesos\n", b.Gateway()),
		},
		{"no DNS, host filesystem", hostDNS, nil, host},
		{"no DNS, image", hostDNS, image, host},
		{"no DNS, host filesystem on the bridge", hostDNS, bridge, string(replaceLoopbackNameservers([]byte(host), b.Gateway()))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := shellSpec(t, `cat /etc/resolv.conf; if echo x 2>/dev/null >> /etc/resolv.conf; then echo writable; else echo read-only; fi`)
			spec.Container = tc.container
			runcLaunch(t, tc.r, spec)
			paths := runcCgroupPaths(t, tc.r, spec.ContainerID)
			if got, want := waitExit(t, tc.r, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
				t.Errorf("status = %+v, want %+v (stderr %q)", got, want, readFile(t, filepath.Join(spec.Sandbox, "stderr")))
			}
			if got, want := readFile(t, filepath.Join(spec.Sandbox, "stdout")), tc.want+"read-only\n"; got != want {
				t.Errorf("stdout = %q, want %q", got, want)
			}
			runcDestroy(t, tc.r, spec, paths)
		})
	}
	if got := readFile(t, hostResolvConf); got != host {
		t.Errorf("the host's resolv.conf changed: %q, was %q", got, host)
	}
}

// Bridge requests that cannot be met fail the launch with what is wrong, leaving nothing
// behind: no container, mount or cgroup, and nothing on the bridge.
func TestRuncBridgeLaunchErrors(t *testing.T) {
	t.Run("no bridge", func(t *testing.T) {
		r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Images = ImageRootFS{} })
		testLaunchErrors(t, r, []launchErrorCase{
			{
				name:    "mesos-bridge",
				modify:  func(s *LaunchSpec) { s.Container = mesosBridge(31000) },
				wantErr: "launch $ID: bridge networking is not enabled on this agent",
			},
			{
				name: "docker BRIDGE",
				modify: func(s *LaunchSpec) {
					s.Container = &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: "busybox", Network: "BRIDGE"}}
				},
				wantErr: "launch $ID: bridge networking is not enabled on this agent",
			},
		}, func(t testing.TB) { checkNothingLeft(t, r) })
	})

	cfg := testNetworkConfig(t)
	b := openTestBridge(t, cfg)
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Network = b })
	takenPort := freePort(t)
	if _, err := b.Attach(context.Background(), "holder", []network.PortMapping{{HostPort: takenPort, ContainerPort: 80, Protocol: network.TCP}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Detach(context.Background(), "holder"); err != nil {
			t.Errorf("detach holder: %v", err)
		}
	})
	holderOnly := takeNetworkSnapshot(t, cfg)
	onBridge := func(modify func(*LaunchSpec)) func(*LaunchSpec) {
		return func(s *LaunchSpec) {
			s.Container = mesosBridge(freePort(t))
			if modify != nil {
				modify(s)
			}
		}
	}
	testLaunchErrors(t, r, []launchErrorCase{
		{
			name: "invalid port mapping",
			modify: onBridge(func(s *LaunchSpec) {
				s.Container.NetworkInfos[0].PortMappings = []api.PortMapping{{HostPort: 70000, ContainerPort: 80, Protocol: "tcp"}}
			}),
			wantErr: `launch $ID: network mesos-bridge: invalid port mapping 0 (host port 70000, container port 80, protocol "tcp"): host port 70000 is out of range 1-65535`,
		},
		{
			name: "host port mapped by another container",
			modify: onBridge(func(s *LaunchSpec) {
				s.Container.NetworkInfos[0].PortMappings[0].HostPort = uint32(takenPort)
			}),
			wantErr: fmt.Sprintf("launch $ID: join the bridge network: attach $ID: host port in use: mapping 0 (host port %d to container port 8080/tcp): host port %d/tcp is mapped by container holder", takenPort, takenPort),
		},
		{
			name:    "unknown user",
			modify:  onBridge(func(s *LaunchSpec) { s.Command.User = ptr("no-such-user-xyz") }),
			wantErr: `launch $ID: user "no-such-user-xyz": user: unknown user no-such-user-xyz`,
		},
		{
			name: "command not found, after joining the bridge",
			modify: onBridge(func(s *LaunchSpec) {
				s.Command = api.CommandInfo{Shell: ptr(false), Value: ptr("no-such-program-xyz")}
			}),
			wantErr: `launch $ID: unable to start container process: error during container init: exec: "no-such-program-xyz": executable file not found in $PATH`,
		},
		{
			name: "other network",
			modify: func(s *LaunchSpec) {
				s.Container = &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: "overlay"}}}
			},
			wantErr: `launch $ID: the runc containerizer cannot join network "overlay": only "mesos-bridge", the agent's bridge`,
		},
	}, func(t testing.TB) {
		checkNothingLeft(t, r)
		checkNetworkSnapshot(t, cfg, holderOnly)
	})
}
