package isolate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate/network"
)

// BridgeNetwork is the network a task's ContainerInfo.network_infos names to join the
// agent's bridge: what Marathon sends for networks mode "container/bridge" with the Mesos
// containerizer (its --mesos_bridge_name default). A Docker container asks for the
// bridge with network BRIDGE instead.
const BridgeNetwork = "mesos-bridge"

// errBridgeDisabled fails the launch of a task that asks for the bridge on an agent
// without one.
var errBridgeDisabled = errors.New("bridge networking is not enabled on this agent")

// Where a container's resolver configuration comes from and goes.
const (
	// hostResolvConf is the host's, which containers without RuncConfig.DNS get a copy of.
	hostResolvConf = "/etc/resolv.conf"
	// containerResolvConf is where a container sees the one it gets.
	containerResolvConf = "/etc/resolv.conf"
	// runcResolvConf is the file, in the container's directory, bind-mounted there.
	runcResolvConf = "resolv.conf"
	// maxResolvConf bounds the host's file: far more than any real one.
	maxResolvConf = 64 << 10
	// maxSearchDomain is the longest domain name.
	maxSearchDomain = 253
)

// containerNetwork reads which network a task's container asks for: the host's (the
// default: no network_infos naming a network, and Docker's network HOST or unset), or
// the bridge (a network_info named BridgeNetwork, or Docker's network BRIDGE) with the
// port mappings of that network_info or of the DockerInfo, checked. Docker's network USER
// joins the network its network_info names, which must be the bridge.
func containerNetwork(ci *api.ContainerInfo, bridgeNames []string) (bridge bool, name string, mappings []network.PortMapping, err error) {
	var requested []api.PortMapping
	from := "network " + BridgeNetwork
	for i, n := range ci.NetworkInfos {
		switch {
		case n.Name == BridgeNetwork || n.Name != "" && slices.Contains(bridgeNames, n.Name):
			if bridge {
				return false, "", nil, fmt.Errorf("network_infos %d: network %q is joined twice", i, n.Name)
			}
			bridge, name, requested = true, n.Name, n.PortMappings
			from = "network " + n.Name
		case n.Name == "":
			if len(n.PortMappings) > 0 {
				return false, "", nil, fmt.Errorf("network_infos %d: port mappings need network %q", i, BridgeNetwork)
			}
		case len(bridgeNames) > 0:
			return false, "", nil, fmt.Errorf("the runc containerizer cannot join network %q: only %q, the agent's bridge, also named %s", n.Name, BridgeNetwork, quoteAll(bridgeNames))
		default:
			return false, "", nil, fmt.Errorf("the runc containerizer cannot join network %q: only %q, the agent's bridge", n.Name, BridgeNetwork)
		}
	}
	if d := ci.Docker; d != nil {
		switch d.Network {
		case "":
		case "HOST":
			if bridge {
				return false, "", nil, fmt.Errorf("docker: network HOST conflicts with network %q in network_infos", name)
			}
		case "BRIDGE":
			if len(d.PortMappings) > 0 && len(requested) > 0 {
				return false, "", nil, fmt.Errorf("docker: port mappings are given both here and in network %q: give them once", name)
			}
			bridge = true
			if name == "" {
				name = BridgeNetwork
			}
			if len(d.PortMappings) > 0 {
				from, requested = "docker", make([]api.PortMapping, 0, len(d.PortMappings))
				for _, m := range d.PortMappings {
					requested = append(requested, api.PortMapping(m))
				}
			}
		case "USER":
			if !bridge {
				return false, "", nil, fmt.Errorf("docker: network USER needs a network_info naming the network, and only %q, the agent's bridge, is supported", BridgeNetwork)
			}
		default:
			return false, "", nil, fmt.Errorf("docker: network %q is not supported: use HOST or BRIDGE", d.Network)
		}
		if len(d.PortMappings) > 0 && d.Network != "BRIDGE" {
			return false, "", nil, errors.New("docker: port mappings need network BRIDGE")
		}
	}
	if !bridge {
		return false, "", nil, nil
	}
	if mappings, err = network.PortMappingsFromAPI(requested); err != nil {
		return false, "", nil, fmt.Errorf("%s: %w", from, err)
	}
	return true, name, mappings, nil
}

// quoteAll writes names quoted, separated by commas.
func quoteAll(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return strings.Join(quoted, ", ")
}

// checkDNS checks RuncConfig's DNS settings.
func checkDNS(nameservers, search []string) error {
	for _, ns := range nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			return fmt.Errorf("DNS nameserver %q is not an IP address", ns)
		}
	}
	if len(search) > 0 && len(nameservers) == 0 {
		return errors.New("DNS search domains need DNS nameservers")
	}
	for _, domain := range search {
		if domain == "" || len(domain) > maxSearchDomain || strings.ContainsAny(domain, " \t\r\n\x00#;") {
			return fmt.Errorf("DNS search domain %q: want 1 to %d characters, no white space, \"#\" or \";\"", domain, maxSearchDomain)
		}
	}
	return nil
}

// formatResolvConf is a resolv.conf with nameservers and search domains.
func formatResolvConf(nameservers, search []string) []byte {
	var b bytes.Buffer
	for _, ns := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return b.Bytes()
}

// replaceLoopbackNameservers rewrites a resolv.conf for a container in a network
// namespace of its own, where the host's loopback addresses are its own: each
// nameserver on loopback becomes gateway, at most once and not where gateway is already
// a nameserver. Every other line stays as it is.
func replaceLoopbackNameservers(conf []byte, gateway netip.Addr) []byte {
	lines := bytes.SplitAfter(conf, []byte("\n"))
	servers := make([]netip.Addr, len(lines)) // each line's nameserver, if any
	hasGateway := false
	for i, line := range lines {
		if addr, ok := resolvNameserver(line); ok {
			servers[i] = addr
			hasGateway = hasGateway || addr == gateway
		}
	}
	var out bytes.Buffer
	for i, line := range lines {
		if !servers[i].IsValid() || !servers[i].Unmap().IsLoopback() {
			out.Write(line)
			continue
		}
		if !hasGateway {
			fmt.Fprintf(&out, "nameserver %s\n", gateway)
			hasGateway = true
		}
	}
	return out.Bytes()
}

// resolvNameserver parses a resolv.conf line "nameserver ADDRESS", as the resolver does:
// the keyword starts the line, and the address is the first word after it.
func resolvNameserver(line []byte) (netip.Addr, bool) {
	rest, ok := bytes.CutPrefix(line, []byte("nameserver"))
	if !ok || len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
		return netip.Addr{}, false
	}
	fields := bytes.Fields(rest)
	if len(fields) == 0 {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(string(fields[0]))
	return addr, err == nil
}

// resolvConf returns the /etc/resolv.conf of a new container, or nil when the container
// is to see the host's own (on the host's filesystem and network, without RuncConfig.DNS)
// or none (the host has none). On the bridge, loopback nameservers become the bridge's
// gateway.
func (r *Runc) resolvConf(hasImage, bridge bool) ([]byte, error) {
	var conf []byte
	switch {
	case len(r.dns) > 0:
		conf = formatResolvConf(r.dns, r.dnsSearch)
	case !hasImage && !bridge:
		return nil, nil
	default:
		data, err := readHostResolvConf()
		if data == nil || err != nil {
			return nil, err
		}
		conf = data
	}
	if bridge {
		conf = replaceLoopbackNameservers(conf, r.network.Gateway())
	}
	return conf, nil
}

// readHostResolvConf reads the host's resolv.conf, or returns nil when it has none.
func readHostResolvConf() ([]byte, error) {
	f, err := os.Open(hostResolvConf)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the host's resolv.conf: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxResolvConf+1))
	if err != nil {
		return nil, fmt.Errorf("the host's resolv.conf: %w", err)
	}
	if len(data) > maxResolvConf {
		return nil, fmt.Errorf("the host's resolv.conf is larger than %d bytes", maxResolvConf)
	}
	return data, nil
}

// joinBridge attaches the container to the bridge with its port mappings and returns the
// network namespace it is to join and what State reports of it.
func (r *Runc) joinBridge(ctx context.Context, id, name string, mappings []network.PortMapping) (string, []api.NetworkInfo, error) {
	ep, err := r.network.Attach(ctx, id, mappings)
	if err != nil {
		return "", nil, fmt.Errorf("join the bridge network: %w", err)
	}
	info := ep.NetworkInfo()
	if name != BridgeNetwork {
		// A named network the bridge also is: reported by the name the task asked for.
		info.Name = name
	}
	return ep.NetNSPath, []api.NetworkInfo{info}, nil
}

// recoverNetwork reconciles the bridge with StateDir when r is made, before any launch:
// the endpoints of containers that started and were not destroyed stay (and are put
// back on the bridge if need be), the others go: those of destroyed containers and of
// launches an earlier agent process did not finish.
func (r *Runc) recoverNetwork() {
	kept, err := r.network.Recover(context.Background(), func(id string) bool {
		_, err := os.Lstat(filepath.Join(r.containerDir(id), runcShimFile))
		return err == nil
	})
	if err != nil {
		r.logger.Warn("recover the bridge network's endpoints", "err", err)
	}
	r.logger.Debug("bridge network recovered", "endpoints", len(kept))
}
