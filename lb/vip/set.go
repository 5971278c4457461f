package vip

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/atoll/atoll/api"
)

// Task is what one task tells about VIPs.
type Task struct {
	// Name is the task's name, for problems.
	Name string
	// Framework is the name of the task's framework (the second label of its VIPs'
	// names); "" when the framework is unknown.
	Framework string
	// AgentIP is the address of the task's agent, the backend address of its host ports.
	AgentIP netip.Addr
	// IPs are the container's own addresses, the backend address of ports labelled
	// network-scope container.
	IPs []netip.Addr
	// Serving is set while the task takes connections: RUNNING and, when it has a
	// health check, healthy. A task that is not serving still keeps its VIPs' names (and
	// so their addresses) alive, without being a backend.
	Serving bool
	// Ports are the ports of its DiscoveryInfo; those with VIP_<n> labels make VIPs, for
	// each of their protocols (tcp when none is given; Marathon gave "udp,tcp" as one).
	Ports []api.Port
}

// Protocols a VIP port is balanced for.
const (
	TCP = "tcp"
	UDP = "udp"
)

// Table is the cluster's VIPs at one moment. It is never changed once made.
type Table struct {
	// Names are the named VIPs and their addresses, sorted by name.
	Names []Named
	// Services are the VIPs' ports, sorted by address, port and protocol.
	Services []Service
	// Problems say which VIP labels make no VIP, and why, sorted.
	Problems []string
}

// Named is a named VIP: Name (see Name) has the address Addr.
type Named struct {
	Name string
	Addr netip.Addr
}

// Service is one port of a VIP and where its connections go.
type Service struct {
	// Name is the VIP's name (see Name); "" for an address VIP.
	Name string
	// Addr is the VIP's address and port.
	Addr     netip.AddrPort
	Protocol string
	// Backends are the serving tasks' addresses and ports, sorted; empty while none serves.
	Backends []netip.AddrPort
}

// Set keeps the VIPs of a changing set of tasks: Put and Remove record what each task
// tells, Table makes the table of them all. A change costs what the task's own VIPs cost
// (and Table what the VIPs cost, with a new allocation when a name came or went),
// whatever the number of tasks. It is not safe for concurrent use.
type Set struct {
	r     netip.Prefix
	tasks map[string]*taskVIPs
	// names and addrs count the ports declaring each named and address VIP.
	names map[string]int
	addrs map[netip.Addr]int
	// services count the ports declaring each VIP port, and its backends.
	services map[serviceKey]*serviceState
	problems map[string]int
	// alloc are the named VIPs' addresses, made again when names changed.
	alloc     map[string]netip.Addr
	left      []string
	allocated bool
	changed   bool
}

// serviceKey is a VIP port: of a named VIP (name) or an address VIP (addr).
type serviceKey struct {
	name     string
	addr     netip.Addr
	port     uint16
	protocol string
}

type serviceState struct {
	refs     int
	backends map[netip.AddrPort]int
}

// taskVIPs is what one task adds to the Set.
type taskVIPs struct {
	ports    []vipPort
	problems []string
}

// vipPort is one VIP port a task declares, and its backend while it serves (invalid
// otherwise).
type vipPort struct {
	key     serviceKey
	backend netip.AddrPort
}

// NewSet makes an empty Set whose named VIPs get addresses of r (see ParseRange).
func NewSet(r netip.Prefix) *Set {
	return &Set{r: r, tasks: map[string]*taskVIPs{}, names: map[string]int{}, addrs: map[netip.Addr]int{},
		services: map[serviceKey]*serviceState{}, problems: map[string]int{}, changed: true}
}

// Put records what the task with this id (unique among the Set's tasks) tells now,
// replacing what it told before.
func (s *Set) Put(id string, t Task) {
	next := s.taskVIPs(t)
	prev := s.tasks[id]
	if prev == nil && next == nil {
		return
	}
	if prev != nil && next != nil && slices.Equal(prev.ports, next.ports) && slices.Equal(prev.problems, next.problems) {
		return
	}
	if next != nil {
		s.count(next, +1)
		s.tasks[id] = next
	} else {
		delete(s.tasks, id)
	}
	if prev != nil {
		s.count(prev, -1)
	}
}

// Remove forgets the task with this id.
func (s *Set) Remove(id string) {
	if prev := s.tasks[id]; prev != nil {
		delete(s.tasks, id)
		s.count(prev, -1)
	}
}

// Changed reports whether the table changed since Table was last called.
func (s *Set) Changed() bool { return s.changed }

// Table makes the table of the VIPs the tasks tell now.
func (s *Set) Table() *Table {
	if !s.allocated {
		taken := slices.Collect(maps.Keys(s.addrs))
		s.alloc, s.left = Allocate(s.r, slices.Collect(maps.Keys(s.names)), taken)
		s.allocated = true
	}
	s.changed = false
	t := &Table{}
	for _, name := range slices.Sorted(maps.Keys(s.alloc)) {
		t.Names = append(t.Names, Named{Name: name, Addr: s.alloc[name]})
	}
	for k, st := range s.services {
		addr := k.addr
		if k.name != "" {
			if addr = s.alloc[k.name]; !addr.IsValid() {
				continue
			}
		}
		svc := Service{Name: k.name, Addr: netip.AddrPortFrom(addr, k.port), Protocol: k.protocol}
		if len(st.backends) > 0 {
			svc.Backends = slices.SortedFunc(maps.Keys(st.backends), netip.AddrPort.Compare)
		}
		t.Services = append(t.Services, svc)
	}
	slices.SortFunc(t.Services, func(x, y Service) int {
		return cmp.Or(x.Addr.Compare(y.Addr), cmp.Compare(x.Protocol, y.Protocol))
	})
	problems := slices.Collect(maps.Keys(s.problems))
	for _, name := range s.left {
		problems = append(problems, fmt.Sprintf("VIP %s: no address left in %s", FQDN(name), s.r))
	}
	slices.Sort(problems)
	t.Problems = problems
	return t
}

// count adds (delta +1) or takes away (-1) a task's VIPs, noting what changes the table.
func (s *Set) count(tv *taskVIPs, delta int) {
	for _, p := range tv.ports {
		k := p.key
		if k.name != "" {
			if bump(s.names, k.name, delta) {
				s.allocated = false
			}
		} else if bump(s.addrs, k.addr, delta) {
			s.allocated = false
		}
		st := s.services[k]
		if st == nil {
			st = &serviceState{backends: map[netip.AddrPort]int{}}
			s.services[k] = st
		}
		if p.backend.IsValid() && bump(st.backends, p.backend, delta) {
			s.changed = true
		}
		st.refs += delta
		switch {
		case st.refs == 0:
			delete(s.services, k)
			s.changed = true
		case delta > 0 && st.refs == 1:
			s.changed = true
		}
	}
	for _, msg := range tv.problems {
		if bump(s.problems, msg, delta) {
			s.changed = true
		}
	}
	if !s.allocated {
		s.changed = true
	}
}

// bump adds delta to m[k], deleting it at 0, and reports whether k appeared or went.
func bump[K comparable](m map[K]int, k K, delta int) bool {
	n := m[k] + delta
	if n <= 0 {
		delete(m, k)
		return true
	}
	m[k] = n
	return n == delta
}

// taskVIPs reads a task's VIP labels; nil when it has none.
func (s *Set) taskVIPs(t Task) *taskVIPs {
	var tv *taskVIPs
	problem := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if !slices.Contains(tv.problems, msg) {
			tv.problems = append(tv.problems, msg)
		}
	}
	for _, p := range t.Ports {
		if p.Labels == nil {
			continue
		}
		for _, l := range p.Labels.Labels {
			if !strings.HasPrefix(l.Key, LabelPrefix) || len(l.Key) == len(LabelPrefix) {
				continue
			}
			if tv == nil {
				tv = &taskVIPs{}
			}
			for protocol := range strings.SplitSeq(strings.ToLower(cmp.Or(p.Protocol, TCP)), ",") {
				vp, err := s.vipPort(t, p, strings.TrimSpace(protocol), l.Value)
				if err != nil {
					problem("task %s: port %d label %s: %v", t.Name, p.Number, l.Key, err)
				}
				if vp.key.port != 0 && !slices.Contains(tv.ports, vp) {
					tv.ports = append(tv.ports, vp)
				}
			}
		}
	}
	if tv != nil {
		slices.SortFunc(tv.ports, compareVIPPorts)
		slices.Sort(tv.problems)
	}
	return tv
}

// vipPort reads one VIP label of port p for one of its protocols. A port that declares a VIP but cannot be its
// backend (no address known, a bad number) still keeps the VIP, and says why it is not a
// backend.
func (s *Set) vipPort(t Task, p api.Port, protocol, value string) (vipPort, error) {
	l, err := ParseLabel(value)
	if err != nil {
		return vipPort{}, err
	}
	if protocol != TCP && protocol != UDP {
		return vipPort{}, fmt.Errorf("protocol %q is neither tcp nor udp", p.Protocol)
	}
	k := serviceKey{addr: l.Addr, port: l.Port, protocol: protocol}
	if l.Name != "" {
		if k.name, err = Name(l.Name, t.Framework); err != nil {
			return vipPort{}, err
		}
	} else if !InRange(s.r, l.Addr) {
		// The balancers take the whole address over on every node, so only addresses
		// kept for VIPs may be VIPs.
		return vipPort{}, fmt.Errorf("address %s is not in the VIP range %s", l.Addr, s.r)
	}
	vp := vipPort{key: k}
	if !t.Serving {
		return vp, nil
	}
	if p.Number == 0 || p.Number > 65535 {
		return vp, fmt.Errorf("port number %d is not 1-65535, so the task is no backend", p.Number)
	}
	ip := backendIP(t, p)
	if !ip.IsValid() {
		return vp, errors.New("no address known for the task, so it is no backend")
	}
	vp.backend = netip.AddrPortFrom(ip.Unmap(), uint16(p.Number))
	return vp, nil
}

// backendIP is where a task's port p is reached: at the container's own address (an
// IPv4 one first) when Marathon's network-scope label says the number is the
// container's, else at the agent's.
func backendIP(t Task, p api.Port) netip.Addr {
	if p.Labels.Get("network-scope") != "container" || len(t.IPs) == 0 {
		return t.AgentIP
	}
	for _, a := range t.IPs {
		if a.Is4() {
			return a
		}
	}
	return t.IPs[0]
}

func compareVIPPorts(x, y vipPort) int {
	return cmp.Or(cmp.Compare(x.key.name, y.key.name), x.key.addr.Compare(y.key.addr), cmp.Compare(x.key.port, y.key.port),
		cmp.Compare(x.key.protocol, y.key.protocol), x.backend.Compare(y.backend))
}
