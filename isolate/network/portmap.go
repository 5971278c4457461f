package network

import (
	"errors"
	"fmt"

	"github.com/atoll/atoll/api"
)

// ErrInvalidPortMapping is wrapped by every error about a port mapping a task asked for.
var ErrInvalidPortMapping = errors.New("invalid port mapping")

// Protocol is the transport protocol a port mapping forwards.
type Protocol string

// The protocols a port mapping can forward.
const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// number is the protocol's IANA number, as nftables matches it.
func (p Protocol) number() byte {
	if p == UDP {
		return 17
	}
	return 6
}

// PortMapping forwards HostPort/Protocol on the agent's own addresses to ContainerPort on
// the task's address.
type PortMapping struct {
	HostPort      uint16   `json:"host_port"`
	ContainerPort uint16   `json:"container_port"`
	Protocol      Protocol `json:"protocol"`
}

func (m PortMapping) String() string {
	return fmt.Sprintf("host port %d to container port %d/%s", m.HostPort, m.ContainerPort, m.Protocol)
}

// PortMappingsFromAPI turns a task's Mesos port mappings (NetworkInfo.port_mappings; a
// DockerInfo's port mappings convert with api.PortMapping(m)) into checked ones. As in
// Mesos and Marathon, an empty protocol means tcp and "tcp,udp" or "udp,tcp" maps both.
// Host and container ports must be concrete (1-65535: the framework has already chosen a
// host port from the agent's offer), and one host port may be mapped once per protocol.
// Errors wrap ErrInvalidPortMapping and name the mapping by its index.
func PortMappingsFromAPI(in []api.PortMapping) ([]PortMapping, error) {
	out := make([]PortMapping, 0, len(in))
	first := make(map[PortMapping]int, len(in)) // host port and protocol → index in in
	for i, m := range in {
		invalid := func(format string, args ...any) error {
			return fmt.Errorf("%w %d (host port %d, container port %d, protocol %q): %s", ErrInvalidPortMapping, i, m.HostPort, m.ContainerPort, m.Protocol, fmt.Sprintf(format, args...))
		}
		var protocols []Protocol
		switch m.Protocol {
		case "", "tcp":
			protocols = []Protocol{TCP}
		case "udp":
			protocols = []Protocol{UDP}
		case "tcp,udp":
			protocols = []Protocol{TCP, UDP}
		case "udp,tcp":
			protocols = []Protocol{UDP, TCP}
		default:
			return nil, invalid("unknown protocol, want tcp, udp or tcp,udp")
		}
		switch {
		case m.HostPort == 0 || m.HostPort > 65535:
			return nil, invalid("host port %d is out of range 1-65535", m.HostPort)
		case m.ContainerPort == 0 || m.ContainerPort > 65535:
			return nil, invalid("container port %d is out of range 1-65535", m.ContainerPort)
		}
		for _, p := range protocols {
			key := PortMapping{HostPort: uint16(m.HostPort), Protocol: p}
			if j, dup := first[key]; dup {
				return nil, invalid("host port %d/%s is already mapped by mapping %d", m.HostPort, p, j)
			}
			first[key] = i
			out = append(out, PortMapping{HostPort: uint16(m.HostPort), ContainerPort: uint16(m.ContainerPort), Protocol: p})
		}
	}
	return out, nil
}

// ValidatePortMappings checks mappings: ports 1-65535, protocol tcp or udp, and no host
// port mapped twice for one protocol. Errors wrap ErrInvalidPortMapping and name the
// mapping by its index.
func ValidatePortMappings(mappings []PortMapping) error {
	first := make(map[PortMapping]int, len(mappings)) // host port and protocol → index
	for i, m := range mappings {
		switch {
		case m.HostPort == 0:
			return fmt.Errorf("%w %d (%s): host port 0 is out of range 1-65535", ErrInvalidPortMapping, i, m)
		case m.ContainerPort == 0:
			return fmt.Errorf("%w %d (%s): container port 0 is out of range 1-65535", ErrInvalidPortMapping, i, m)
		case m.Protocol != TCP && m.Protocol != UDP:
			return fmt.Errorf("%w %d (%s): unknown protocol %q, want tcp or udp", ErrInvalidPortMapping, i, m, m.Protocol)
		}
		key := PortMapping{HostPort: m.HostPort, Protocol: m.Protocol}
		if j, dup := first[key]; dup {
			return fmt.Errorf("%w %d (%s): host port %d/%s is already mapped by mapping %d", ErrInvalidPortMapping, i, m, m.HostPort, m.Protocol, j)
		}
		first[key] = i
	}
	return nil
}
