package network

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Config says how an agent's task network is laid out.
type Config struct {
	// Bridge is the name of the Linux bridge in the agent's namespace that every task's
	// veth joins (at most 15 bytes, as every interface name).
	Bridge string
	// Subnet is the IPv4 subnet of the task addresses, written with its network address.
	// Its first host address is the bridge's own and the tasks' gateway; the others, less
	// the broadcast address, are leased to tasks. Prefix lengths 16 to 30 are allowed.
	Subnet netip.Prefix
	// Table is the nftables table (family ip) that holds the masquerade, port mapping and
	// forward rules. The agent owns it whole: it rewrites its fixed rules on Open.
	Table string
	// StateDir holds what must outlive the agent process: the bind-mounted namespaces
	// (StateDir/netns/<container id>), the address leases and one record per endpoint.
	// Absolute.
	StateDir string
	// MTU of the bridge and of each task's veth pair.
	MTU int
	// IPForward sets net.ipv4.ip_forward to 1 on Open, for every interface of the host,
	// as tasks need to reach beyond the agent and clients elsewhere need to reach mapped
	// ports. The bridge's own forwarding is turned on either way.
	IPForward bool
}

// DefaultConfig is the production task network.
func DefaultConfig() Config {
	return Config{
		// atoll0 reads as Atoll's first bridge, as docker0 does for Docker.
		Bridge: "atoll0",
		// A /20 (4093 tasks, more than an agent runs) from 10/8, away from what other
		// software picks by default: Docker's 172.17-31/16 and 192.168/16 pools, the AWS
		// default VPC's 172.31/16, Kubernetes' 10.96/12 and 10.244/16. Each agent has the
		// same subnet: task addresses are agent-local, reached through port mappings.
		// Change it when it overlaps a network the agent must reach.
		Subnet: netip.MustParsePrefix("10.251.0.0/20"),
		Table:  "atoll",
		// Node wiring puts it in the agent's work dir; this is that dir's default.
		StateDir: "/var/lib/atoll/agent/network",
		// Ethernet's MTU; lower it where the host's own interface has less (tunnels, some
		// clouds) or large packets from tasks are dropped.
		MTU:       1500,
		IPForward: true,
	}
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	if err := checkIfName(c.Bridge); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	switch {
	case !c.Subnet.IsValid() || !c.Subnet.Addr().Is4():
		return fmt.Errorf("subnet %q: want an IPv4 subnet such as 10.251.0.0/20", c.Subnet)
	case c.Subnet.Bits() < 16 || c.Subnet.Bits() > 30:
		return fmt.Errorf("subnet %s: prefix length %d is out of range 16-30", c.Subnet, c.Subnet.Bits())
	case c.Subnet.Masked() != c.Subnet:
		return fmt.Errorf("subnet %s has host bits set: did you mean %s?", c.Subnet, c.Subnet.Masked())
	}
	if err := checkTableName(c.Table); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	if !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("state dir %q: want an absolute path", c.StateDir)
	}
	if c.MTU < 68 || c.MTU > 65535 {
		return fmt.Errorf("mtu %d is out of range 68-65535", c.MTU)
	}
	return nil
}

// checkIfName accepts a Linux interface name: 1 to 15 bytes, no "/", ":" or white space.
func checkIfName(name string) error {
	switch {
	case name == "" || len(name) > 15:
		return fmt.Errorf("interface name %q: want 1 to 15 bytes", name)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is reserved", name)
	case strings.ContainsAny(name, "/: \t\n\r\x00"):
		return fmt.Errorf("interface name %q has a \"/\", \":\" or white space", name)
	}
	return nil
}

// checkTableName accepts 1 to 64 ASCII letters, digits, "_" and "-".
func checkTableName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("nftables table name %q: want 1 to 64 characters", name)
	}
	for _, c := range name {
		if !isAlnum(c) && c != '_' && c != '-' {
			return fmt.Errorf("nftables table name %q: only ASCII letters, digits, \"_\" and \"-\" are allowed", name)
		}
	}
	return nil
}

// maxContainerIDLen keeps a container id short enough for the nftables rule comment
// (128 bytes) that carries it.
const maxContainerIDLen = 100

// checkContainerID accepts what the runc containerizer does (ASCII letters, digits and
// "_+-.", not "." or ".."), at most maxContainerIDLen long: the id names files in the
// state dir.
func checkContainerID(id string) error {
	switch {
	case id == "" || len(id) > maxContainerIDLen:
		return fmt.Errorf("container id %q: want 1 to %d characters", id, maxContainerIDLen)
	case id == "." || id == "..":
		return errors.New("container id must not be \".\" or \"..\"")
	}
	for _, c := range id {
		if !isAlnum(c) && !strings.ContainsRune("_+-.", c) {
			return fmt.Errorf("container id %q: only ASCII letters, digits and \"_+-.\" are allowed", id)
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
