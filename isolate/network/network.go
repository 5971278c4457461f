// Package network gives tasks Mesos/Marathon-style BRIDGE networking: each task gets its
// own network namespace with an address on an agent-local bridge, a default route through
// the bridge, masquerade for traffic leaving the agent and DNAT rules for its port
// mappings, all made with netlink and nftables in-process. State lives in a directory so a
// restarted agent finds, keeps or removes what an earlier run made.
//
// An agent calls Open when it starts, then Recover with the containers it still runs;
// for each task, Attach before creating its container, which joins Endpoint.NetNSPath,
// and Detach once the container is destroyed.
//
// Port mappings take traffic to any of the host's own addresses: from other hosts, from
// tasks (hairpin) and from the host itself, 127.0.0.1 included (route_localnet is on for
// the bridge, and a guard chain keeps tasks from using that to reach the host's loopback
// services). nftables accept verdicts are final only within the table: a drop in another
// table (a firewall's forward chain, say) still drops forwarded task traffic.
package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/atoll/atoll/api"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var (
	// ErrNotAttached is returned for a container that has no endpoint.
	ErrNotAttached = errors.New("not attached")
	// ErrAttached is returned by Attach for a container that already has an endpoint.
	ErrAttached = errors.New("already attached")
	// ErrPortInUse is returned by Attach for a host port another container maps.
	ErrPortInUse = errors.New("host port in use")
)

// taskInterface is the name of the task's end of its veth pair.
const taskInterface = "eth0"

// Endpoint is one task's place on the bridge.
type Endpoint struct {
	ContainerID string `json:"container_id"`
	// NetNSPath is the task's network namespace, bind-mounted in the state dir; the
	// container joins it by this path.
	NetNSPath string `json:"netns_path"`
	// Interface is the task's interface in the namespace, eth0.
	Interface string `json:"interface"`
	// HostVeth is the bridge's end of the veth pair.
	HostVeth string `json:"host_veth"`
	// IP is the task's address on Interface, in Subnet.
	IP     netip.Addr   `json:"ip"`
	Subnet netip.Prefix `json:"subnet"`
	// Gateway is the bridge's address, the task's default route.
	Gateway      netip.Addr    `json:"gateway"`
	PortMappings []PortMapping `json:"port_mappings,omitempty"`
}

// NetworkInfo is the endpoint as a Mesos ContainerStatus reports it.
func (e *Endpoint) NetworkInfo() api.NetworkInfo {
	info := api.NetworkInfo{IPAddresses: []api.IPAddress{{Protocol: "IPv4", IPAddress: e.IP.String()}}}
	for _, m := range e.PortMappings {
		info.PortMappings = append(info.PortMappings, api.PortMapping{HostPort: uint32(m.HostPort), ContainerPort: uint32(m.ContainerPort), Protocol: string(m.Protocol)})
	}
	return info
}

// Bridge attaches tasks to an agent's bridge. Its methods are safe for concurrent use;
// two Bridges (or agent processes) must not share a state dir, bridge or table.
type Bridge struct {
	cfg     Config
	gateway netip.Addr
	rules   ruleset
	ipam    *ipam
	logger  *slog.Logger

	// mu serialises changes to links, namespaces and rules.
	mu sync.Mutex
}

// Open sets up the agent's side of the task network, idempotently: the state dir, the
// bridge with the gateway address, forwarding and route_localnet for the bridge (and
// ip_forward when cfg.IPForward), and the nftables table with its fixed rules. Endpoints
// an earlier run attached are left as they are: call Recover next. A nil logger discards.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Bridge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for _, dir := range []string{cfg.StateDir, filepath.Join(cfg.StateDir, "netns"), filepath.Join(cfg.StateDir, "endpoints")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("network state dir: %w", err)
		}
	}
	leases, err := newIPAM(filepath.Join(cfg.StateDir, "leases"), cfg.Subnet)
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		cfg:     cfg,
		gateway: cfg.Subnet.Addr().Next(),
		rules:   newRuleset(cfg.Table, cfg.Bridge, cfg.Subnet),
		ipam:    leases,
		logger:  logger,
	}
	if err := b.setupBridge(); err != nil {
		return nil, err
	}
	if err := b.rules.install(); err != nil {
		return nil, err
	}
	return b, nil
}

// Gateway is the bridge's address, every task's default route.
func (b *Bridge) Gateway() netip.Addr { return b.gateway }

func (b *Bridge) setupBridge() error {
	link, err := netlink.LinkByName(b.cfg.Bridge)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.cfg.Bridge, MTU: b.cfg.MTU, HardwareAddr: macOf(b.gateway)}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", b.cfg.Bridge, err)
		}
		link, err = netlink.LinkByName(b.cfg.Bridge)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", b.cfg.Bridge, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("bridge %s: the link exists and is a %s, not a bridge", b.cfg.Bridge, link.Type())
	}
	addr := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(b.gateway, b.cfg.Subnet.Bits()))}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("bridge %s: address %s: %w", b.cfg.Bridge, addr.IPNet, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s: up: %w", b.cfg.Bridge, err)
	}
	if b.cfg.IPForward {
		if err := writeSysctl("net/ipv4/ip_forward"); err != nil {
			return err
		}
	}
	// Forwarding on the bridge lets tasks' traffic be routed out; route_localnet lets
	// traffic from 127.0.0.0/8 that a port mapping sends to a task leave through the
	// bridge (it is masqueraded on the way).
	for _, key := range []string{"forwarding", "route_localnet"} {
		if err := writeSysctl("net/ipv4/conf/" + b.cfg.Bridge + "/" + key); err != nil {
			return err
		}
	}
	return nil
}

// writeSysctl sets a boolean sysctl (a path below /proc/sys) to 1.
func writeSysctl(key string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("sysctl %s: %w", strings.ReplaceAll(key, "/", "."), err)
	}
	return nil
}

// Attach gives containerID a new network namespace on the bridge: eth0 with a leased
// address, lo up, a default route through the gateway, and mappings forwarded from the
// host. The returned endpoint's NetNSPath is what the container joins. A failed Attach
// leaves nothing behind.
func (b *Bridge) Attach(ctx context.Context, containerID string, mappings []PortMapping) (*Endpoint, error) {
	if err := checkContainerID(containerID); err != nil {
		return nil, err
	}
	if err := ValidatePortMappings(mappings); err != nil {
		return nil, fmt.Errorf("attach %s: %w", containerID, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attach %s: %w", containerID, err)
	}
	if _, err := b.readEndpoint(containerID); err == nil {
		return nil, fmt.Errorf("attach %s: %w", containerID, ErrAttached)
	} else if !errors.Is(err, ErrNotAttached) {
		return nil, fmt.Errorf("attach %s: %w", containerID, err)
	}
	// Without a record, anything of the container's is left from an Attach cut short.
	if err := b.detach(containerID); err != nil {
		return nil, fmt.Errorf("attach %s: clear leftovers: %w", containerID, err)
	}
	if err := b.checkPortsFree(mappings); err != nil {
		return nil, fmt.Errorf("attach %s: %w", containerID, err)
	}
	ep, err := b.attach(containerID, mappings)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("attach %s: %w", containerID, err), b.detach(containerID))
	}
	return ep, nil
}

// checkPortsFree refuses mappings of host ports that another container maps.
func (b *Bridge) checkPortsFree(mappings []PortMapping) error {
	if len(mappings) == 0 {
		return nil
	}
	taken, err := b.rules.mappedPorts()
	if err != nil {
		return err
	}
	for i, m := range mappings {
		if owner, ok := taken[PortMapping{HostPort: m.HostPort, Protocol: m.Protocol}]; ok {
			return fmt.Errorf("%w: mapping %d (%s): host port %d/%s is mapped by container %s", ErrPortInUse, i, m, m.HostPort, m.Protocol, owner)
		}
	}
	return nil
}

func (b *Bridge) attach(containerID string, mappings []PortMapping) (*Endpoint, error) {
	ip, err := b.ipam.allocate(containerID)
	if err != nil {
		return nil, err
	}
	ep := &Endpoint{
		ContainerID:  containerID,
		NetNSPath:    b.netnsPath(containerID),
		Interface:    taskInterface,
		HostVeth:     b.hostVeth(containerID),
		IP:           ip,
		Subnet:       b.cfg.Subnet,
		Gateway:      b.gateway,
		PortMappings: slices.Clone(mappings),
	}
	if err := createNetNS(ep.NetNSPath); err != nil {
		return nil, err
	}
	ns, err := netns.GetFromPath(ep.NetNSPath)
	if err != nil {
		return nil, fmt.Errorf("open netns: %w", err)
	}
	defer ns.Close()
	if err := b.addVeth(ep, ns); err != nil {
		return nil, err
	}
	if err := configureTask(ep, ns); err != nil {
		return nil, err
	}
	if err := b.rules.setMappings(containerID, ip, mappings); err != nil {
		return nil, err
	}
	if err := b.writeEndpoint(ep); err != nil {
		return nil, err
	}
	return ep, nil
}

// addVeth makes the veth pair: the host end on the bridge, the other end created as eth0
// right in the task's namespace.
func (b *Bridge) addVeth(ep *Endpoint, ns netns.NsHandle) error {
	bridge, err := netlink.LinkByName(b.cfg.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", b.cfg.Bridge, err)
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: ep.HostVeth, MTU: b.cfg.MTU, MasterIndex: bridge.Attrs().Index},
		PeerName:         taskInterface,
		PeerHardwareAddr: macOf(ep.IP),
		PeerNamespace:    netlink.NsFd(ns),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", ep.HostVeth, err)
	}
	// With br_netfilter loaded, a task's packet to its own mapped port is DNATed while it
	// is still being bridged, and must go back out of the port it came in by.
	if err := netlink.LinkSetHairpin(veth, true); err != nil {
		return fmt.Errorf("veth %s hairpin: %w", ep.HostVeth, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("veth %s up: %w", ep.HostVeth, err)
	}
	return nil
}

// configureTask sets up the task's side, through a netlink socket in its namespace.
func configureTask(ep *Endpoint, ns netns.NsHandle) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in netns: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("netns lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("netns lo up: %w", err)
	}
	eth, err := h.LinkByName(ep.Interface)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ep.Interface, err)
	}
	addr := &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(ep.IP, ep.Subnet.Bits()))}
	if err := h.AddrAdd(eth, addr); err != nil {
		return fmt.Errorf("netns %s: address %s: %w", ep.Interface, addr.IPNet, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("netns %s up: %w", ep.Interface, err)
	}
	route := &netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.IP(ep.Gateway.AsSlice())}
	if err := h.RouteAdd(route); err != nil {
		return fmt.Errorf("netns default route via %s: %w", ep.Gateway, err)
	}
	return nil
}

// Detach removes containerID's endpoint: its port mapping rules and their conntrack
// entries, the veth pair, the namespace's mount and the address lease. Detaching a
// container with no endpoint, or one half made, is not an error; after an agent restart
// it works from the state dir.
func (b *Bridge) Detach(ctx context.Context, containerID string) error {
	if err := checkContainerID(containerID); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("detach %s: %w", containerID, err)
	}
	if err := b.detach(containerID); err != nil {
		return fmt.Errorf("detach %s: %w", containerID, err)
	}
	return nil
}

// detach tries every step and reports every failure. Callers hold b.mu.
func (b *Bridge) detach(containerID string) error {
	var errs []error
	if err := b.rules.setMappings(containerID, netip.Addr{}, nil); err != nil {
		errs = append(errs, err)
	}
	if err := deleteLink(b.hostVeth(containerID)); err != nil {
		errs = append(errs, err)
	}
	if err := removeNetNS(b.netnsPath(containerID)); err != nil {
		errs = append(errs, err)
	}
	leases, err := b.ipam.leases()
	if err != nil {
		errs = append(errs, err)
	}
	for addr, owner := range leases {
		if owner == containerID {
			errs = append(errs, forgetConnections(addr))
		}
	}
	if err := b.ipam.release(containerID); err != nil {
		errs = append(errs, err)
	}
	for _, path := range []string{b.endpointPath(containerID), b.endpointPath(containerID) + ".tmp"} {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove endpoint record: %w", err))
		}
	}
	return errors.Join(errs...)
}

// deleteLink deletes a link; a missing one is not an error.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// forgetConnections drops the conntrack entries of an address that is being freed, so a
// UDP flow to a mapped port does not stick to a task that is gone (or to the next task
// that gets the address).
func forgetConnections(addr netip.Addr) error {
	var toTask, fromTask netlink.ConntrackFilter
	ip := net.IP(addr.AsSlice())
	if err := toTask.AddIP(netlink.ConntrackReplyAnyIP, ip); err != nil {
		return fmt.Errorf("conntrack filter: %w", err)
	}
	if err := fromTask.AddIP(netlink.ConntrackOrigSrcIP, ip); err != nil {
		return fmt.Errorf("conntrack filter: %w", err)
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, &toTask, &fromTask); err != nil {
		return fmt.Errorf("forget connections of %s: %w", addr, err)
	}
	return nil
}

// Endpoint returns containerID's endpoint as recorded in the state dir, or ErrNotAttached.
func (b *Bridge) Endpoint(containerID string) (*Endpoint, error) {
	if err := checkContainerID(containerID); err != nil {
		return nil, err
	}
	return b.readEndpoint(containerID)
}

// Recover reconciles the state dir with the containers a restarted agent still has: it
// keeps each complete endpoint (recorded, its namespace mounted, its veth there) whose
// container keep reports alive, putting its veth back on the bridge and rewriting its port
// mapping rules in case either was lost meanwhile, and detaches everything else it finds:
// endpoints of containers that are gone, and the remains of an Attach the agent did not
// finish. Call it once after Open, before any Attach. It returns the kept endpoints, sorted by container id. A container keep
// reports alive whose endpoint is not among them has lost its network.
func (b *Bridge) Recover(ctx context.Context, keep func(containerID string) bool) ([]Endpoint, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids, err := b.containers()
	if err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	var kept []Endpoint
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return kept, errors.Join(append(errs, fmt.Errorf("recover: %w", err))...)
		}
		if keep(id) {
			ep, err := b.readEndpoint(id)
			if err == nil && !isNetNS(ep.NetNSPath) {
				err = errors.New("its network namespace is not mounted")
			}
			if err == nil {
				if err = b.restore(ep); !errors.Is(err, errNoVeth) {
					if err != nil {
						errs = append(errs, fmt.Errorf("recover %s: %w", id, err))
					}
					kept = append(kept, *ep)
					continue
				}
			}
			b.logger.Warn("removing the incomplete network endpoint of a live container", "container", id, "reason", err)
		} else {
			b.logger.Info("removing a leftover network endpoint", "container", id)
		}
		if err := b.detach(id); err != nil {
			errs = append(errs, fmt.Errorf("recover: detach %s: %w", id, err))
		}
	}
	return kept, errors.Join(errs...)
}

// errNoVeth is returned by restore for an endpoint whose veth pair is gone.
var errNoVeth = errors.New("veth pair is gone")

// restore puts a recorded endpoint's host veth back on the bridge (which may have been
// made anew) and rewrites its port mapping rules (which may have been flushed).
func (b *Bridge) restore(ep *Endpoint) error {
	veth, err := netlink.LinkByName(ep.HostVeth)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return fmt.Errorf("%s: %w", ep.HostVeth, errNoVeth)
	}
	if err != nil {
		return fmt.Errorf("veth %s: %w", ep.HostVeth, err)
	}
	bridge, err := netlink.LinkByName(b.cfg.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", b.cfg.Bridge, err)
	}
	if veth.Attrs().MasterIndex != bridge.Attrs().Index {
		if err := netlink.LinkSetMaster(veth, bridge); err != nil {
			return fmt.Errorf("veth %s onto bridge: %w", ep.HostVeth, err)
		}
	}
	if err := netlink.LinkSetHairpin(veth, true); err != nil {
		return fmt.Errorf("veth %s hairpin: %w", ep.HostVeth, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("veth %s up: %w", ep.HostVeth, err)
	}
	return b.rules.setMappings(ep.ContainerID, ep.IP, ep.PortMappings)
}

// Teardown detaches every endpoint and removes the nftables table and the bridge: for
// taking Atoll off a host, and for tests. The Bridge must not be used afterwards.
func (b *Bridge) Teardown(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	ids, err := b.containers()
	errs := []error{err}
	for _, id := range ids {
		errs = append(errs, b.detach(id))
	}
	errs = append(errs, b.rules.remove(), deleteLink(b.cfg.Bridge))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	return nil
}

// containers lists, sorted, every container id with something in the state dir: an
// endpoint record, a namespace mount point or an address lease.
func (b *Bridge) containers() ([]string, error) {
	seen := map[string]bool{}
	// Each dir's files are named by container id and one of these suffixes.
	for dir, suffixes := range map[string][]string{"endpoints": {".json", ".json.tmp"}, "netns": {""}} {
		entries, err := os.ReadDir(filepath.Join(b.cfg.StateDir, dir))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range entries {
			for _, suffix := range suffixes {
				if id, ok := strings.CutSuffix(e.Name(), suffix); ok && checkContainerID(id) == nil {
					seen[id] = true
					break
				}
			}
		}
	}
	leases, err := b.ipam.leases()
	if err != nil {
		return nil, err
	}
	for _, owner := range leases {
		if checkContainerID(owner) == nil {
			seen[owner] = true
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

func (b *Bridge) netnsPath(containerID string) string {
	return filepath.Join(b.cfg.StateDir, "netns", containerID)
}

func (b *Bridge) endpointPath(containerID string) string {
	return filepath.Join(b.cfg.StateDir, "endpoints", containerID+".json")
}

// hostVeth names the bridge's end of a container's veth pair: "ve" and 12 hex digits of a
// hash of the bridge and container, as the id itself may not fit in 15 bytes.
func (b *Bridge) hostVeth(containerID string) string {
	sum := sha256.Sum256([]byte(b.cfg.Bridge + "\x00" + containerID))
	return "ve" + hex.EncodeToString(sum[:6])
}

func (b *Bridge) readEndpoint(containerID string) (*Endpoint, error) {
	data, err := os.ReadFile(b.endpointPath(containerID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w", containerID, ErrNotAttached)
	}
	if err != nil {
		return nil, fmt.Errorf("endpoint record: %w", err)
	}
	var ep Endpoint
	if err := json.Unmarshal(data, &ep); err != nil {
		return nil, fmt.Errorf("endpoint record %s: %w", b.endpointPath(containerID), err)
	}
	return &ep, nil
}

// writeEndpoint records an endpoint, atomically: a record is there only once its endpoint
// is complete.
func (b *Bridge) writeEndpoint(ep *Endpoint) error {
	data, err := json.MarshalIndent(ep, "", "  ")
	if err != nil {
		return fmt.Errorf("endpoint record: %w", err)
	}
	path := b.endpointPath(ep.ContainerID)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("endpoint record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("endpoint record: %w", err), os.Remove(tmp))
	}
	return nil
}

// macOf is a locally administered MAC address made from an IPv4 address, so an address
// always comes with the same MAC and a reused one finds neighbours' caches right.
func macOf(ip netip.Addr) net.HardwareAddr {
	a := ip.As4()
	return net.HardwareAddr{0x02, 0xa7, a[0], a[1], a[2], a[3]}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 32)}
}
