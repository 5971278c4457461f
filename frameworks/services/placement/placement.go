// Package placement decides whether a Mesos offer can host instances of a Marathon app and
// which of its resources and host ports they take, or names the one reason it cannot, with
// Marathon's queue reason names; it also keeps the per-app offer statistics /v2/queue shows.
//
// Evaluation follows Marathon's order (its "reason funnel"), so a rejected offer counts under
// exactly one reason: UnfulfilledRole (no resource of an accepted role), then
// UnfulfilledConstraint, then InsufficientCpus, InsufficientMemory, InsufficientDisk,
// InsufficientGpus and InsufficientPorts.
package placement

import (
	"fmt"

	"github.com/atoll/atoll/api"
)

// Requirements is what one instance of an app needs from an offer.
type Requirements struct {
	// CPUs, MemMB, DiskMB and GPUs are the scalar amounts; zero means none is taken.
	// Negative and NaN amounts count as zero.
	CPUs, MemMB, DiskMB, GPUs float64
	// Ports lists the app's ports in order; each gets one host port.
	Ports []Port
	// RequirePorts makes a non-zero Port.Port the exact host port (Marathon's requirePorts).
	// Without it every port gets any free host port.
	RequirePorts bool
	// Role is the app's role; "" means "*". When the offer says which role its resources are
	// allocated to (allocation_info), only resources allocated to this role are used.
	Role string
	// AcceptedRoles is Marathon's acceptedResourceRoles: only resources reserved for one of
	// these roles ("*" meaning unreserved) are used. Empty means Role and "*".
	AcceptedRoles []string
	// Constraints must all hold for the offer's agent, given the instances already placed.
	Constraints []Constraint
	// Networks are named container networks the instance joins, which the offer's agent
	// must list in its api.AttributeNetworks.
	Networks []string
	// VolumeDrivers are the drivers of the instance's external volumes, which the offer's
	// agent must list in its api.AttributeVolumeDrivers; every agent has
	// api.LocalVolumeDriver.
	VolumeDrivers []string
}

// Port is one of an app's ports.
type Port struct {
	// Name is the port's name (for $PORT_<NAME>); placement does not use it.
	Name string
	// Port is the requested host port; 0 means any. It binds only with RequirePorts.
	Port uint32
}

// Placed is where one of the app's current (non-terminal) instances runs. Constraints
// compare the candidate offer with these.
type Placed struct {
	// AgentID is the agent running the instance. Constraints compare hostnames, not agent
	// IDs, as Marathon does; the ID is there so callers can tell instances apart.
	AgentID string
	// Hostname is the agent's hostname, the value of the hostname and @hostname fields.
	Hostname string
	// Attributes are the agent's attributes, the values of every other field.
	Attributes []api.Attribute
}

// PlacedOn returns where an instance launched from offer runs.
func PlacedOn(offer *api.Offer) Placed {
	return Placed{AgentID: offer.AgentID.Value, Hostname: offer.Hostname, Attributes: offer.Attributes}
}

// Claim is what one instance takes from an offer.
type Claim struct {
	// Resources go into the LAUNCH operation's TaskInfo unchanged: each carries the role and
	// allocation_info of the offered resource it was carved from, so an amount drawn from
	// two roles appears twice. Scalars come in the order cpus, mem, disk, gpus, then ports.
	Resources []api.Resource
	// HostPorts are the host ports chosen, in the order of Requirements.Ports.
	HostPorts []uint32
}

// Reason says why an offer cannot host an instance. The values are ordered as Marathon's
// reason funnel: when several apply, the lowest is the one reported.
type Reason int

// Reasons, named as Marathon's /v2/queue shows them.
const (
	// Matched means the offer fits; it is not a reason for declining.
	Matched Reason = iota
	// UnfulfilledRole means no resource of the offer has a role the app may use.
	UnfulfilledRole
	// UnavailableNetwork means the offer's agent does not have a named container network
	// the app joins (its api.AttributeNetworks do not list it). It is Atoll's, not
	// Marathon's: /v2/queue shows it only when an offer was declined for it.
	UnavailableNetwork
	// UnavailableVolumeDriver means the offer's agent does not have the volume driver of
	// an external volume of the app (its api.AttributeVolumeDrivers do not list it); like
	// UnavailableNetwork, Atoll's.
	UnavailableVolumeDriver
	// UnfulfilledConstraint means a constraint does not hold on the offer's agent.
	UnfulfilledConstraint
	// NoCorrespondingReservationFound means a resident app's instance waits for the agent
	// that holds its local persistent volumes, and the offer is another agent's.
	NoCorrespondingReservationFound
	// InsufficientCpus means the usable cpus are too few.
	InsufficientCpus
	// InsufficientMemory means the usable mem is too little.
	InsufficientMemory
	// InsufficientDisk means the usable disk is too little.
	InsufficientDisk
	// InsufficientGpus means the usable gpus are too few.
	InsufficientGpus
	// InsufficientPorts means the usable port ranges lack a required port or enough ports.
	InsufficientPorts
)

// atollReason says r is Atoll's own, shown in a funnel only when offers were declined for
// it.
func atollReason(r Reason) bool { return r == UnavailableNetwork || r == UnavailableVolumeDriver }

// firstDecline and lastDecline bound the reasons for declining, in funnel order.
const (
	firstDecline = UnfulfilledRole
	lastDecline  = InsufficientPorts
)

var reasonNames = [...]string{
	Matched:                         "Matched",
	UnfulfilledRole:                 "UnfulfilledRole",
	UnavailableNetwork:              "UnavailableNetwork",
	UnavailableVolumeDriver:         "UnavailableVolumeDriver",
	UnfulfilledConstraint:           "UnfulfilledConstraint",
	NoCorrespondingReservationFound: "NoCorrespondingReservationFound",
	InsufficientCpus:                "InsufficientCpus",
	InsufficientMemory:              "InsufficientMemory",
	InsufficientDisk:                "InsufficientDisk",
	InsufficientGpus:                "InsufficientGpus",
	InsufficientPorts:               "InsufficientPorts",
}

// String returns Marathon's name for r.
func (r Reason) String() string {
	if r < 0 || int(r) >= len(reasonNames) {
		return fmt.Sprintf("Reason(%d)", int(r))
	}
	return reasonNames[r]
}

// MarshalText encodes r as its name, so JSON shows "InsufficientCpus".
func (r Reason) MarshalText() ([]byte, error) {
	if r < 0 || int(r) >= len(reasonNames) {
		return nil, fmt.Errorf("placement: unknown reason %d", int(r))
	}
	return []byte(reasonNames[r]), nil
}
