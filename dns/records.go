package dns

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// VIPZone is the zone of the load balancer's named VIPs (DC/OS's name for it), answered
// with authority next to the cluster domain.
const VIPZone = "l4lb.thisdcos.directory"

// The SOA timers Mesos-DNS published.
const (
	soaRefresh = 60
	soaRetry   = 600
	soaExpire  = 86400
	soaMinTTL  = 60
)

// maxTaskPorts bounds the host ports published per task: a task holding a whole range
// would otherwise fill its SRV names with thousands of records.
const maxTaskPorts = 256

// Zone is what a record set is made with besides the cluster.
type Zone struct {
	// Domain is the cluster domain ("mesos").
	Domain string
	// TTL is every record's time to live, in seconds.
	TTL uint32
	// Serial is the SOA serial; it grows with every new record set.
	Serial uint32
	// NSAddr is the address of ns1.<Domain>; invalid gives it none.
	NSAddr netip.Addr
}

// VIP is a named virtual IP of the load balancer (the seam the LB feeds, see
// Server.SetVIPs): Name is the app's VIP name from its VIP_n port label without the port
// ("/myapp"), IP the address the LB holds for it.
type VIP struct {
	Name string
	IP   netip.Addr
}

// Records is the record set of one cluster state.
type Records struct {
	// RRs are all records, without duplicates, in a fixed order: the zones', the
	// masters', the agents', the frameworks', the tasks' (by framework and task name), the
	// VIPs'.
	RRs []mdns.RR
	// Tasks are the records of each published task, sorted by framework and task name,
	// duplicates across tasks included (the HTTP API's /v1/enumerate).
	Tasks []TaskRecords
	// Skipped says which names could not be made, and why.
	Skipped []string

	// names indexes RRs by name for the answer table.
	names map[string]*rrset
}

// TaskRecords are the records one task has.
type TaskRecords struct {
	Framework string
	Name      string
	ID        string
	RRs       []mdns.RR
}

// BuildRecords makes the record set of a cluster and the load balancer's VIPs. It is a
// pure function of its arguments; the naming follows Mesos-DNS (see discovery-and-lb.md):
//
//   - <task>.<framework>.<domain> A/AAAA: the container's addresses, else the agent's;
//     <task>.<framework>.slave.<domain>: the agent's. <task> is the task name as a label
//     (a Marathon app id's group path folded: /grp/web → web-grp), and also the name of
//     its DiscoveryInfo when that differs.
//   - <task>-<hash>-<agent>.<framework>.<domain> and …slave.<domain>: the same per task.
//   - _<task>._tcp|_udp.<framework>.slave.<domain> SRV for the task's host ports, also
//     without .slave. when the task has no DiscoveryInfo ports; with them,
//     _<task>._<protocol>.<framework>.<domain> (and _<port name>._<task>…) for each.
//   - leader, master, master<N>, _leader._tcp, slave and agent .<domain>,
//     <hostname>.agent.<domain> per agent, <framework>.<domain> for a framework whose
//     hostname is an address or an agent's hostname.
//   - SOA and NS at <domain> and at VIPZone; <vip>.marathon.l4lb.thisdcos.directory.
//   - PTR for masters, agents, containers with their own address, and VIPs.
//
// Only RUNNING tasks are published, and of those with a health check only healthy ones.
func BuildRecords(c *Cluster, vips []VIP, z Zone) *Records {
	domain := mdns.Fqdn(strings.ToLower(z.Domain))
	b := &builder{ttl: z.TTL, serial: z.Serial, names: map[string]*rrset{}}
	ns := "ns1." + domain
	for _, apex := range []string{domain, VIPZone + "."} {
		b.add(apex, rrData{rrtype: mdns.TypeSOA, target: ns})
		b.add(apex, rrData{rrtype: mdns.TypeNS, target: ns})
	}
	if z.NSAddr.IsValid() {
		b.addAddr(ns, z.NSAddr)
	}
	b.masters(c.masters, domain)
	b.agents(c, domain)
	b.frameworks(c, domain)
	b.taskRecords(c, domain)
	b.vips(vips)
	return b.finish()
}

// rrData tells the records of one name and type apart.
type rrData struct {
	rrtype uint16
	addr   netip.Addr
	target string
	port   uint16
}

// linearDedup is how many records a name holds before its duplicates are found through a
// map rather than by a scan.
const linearDedup = 32

type builder struct {
	ttl     uint32
	serial  uint32
	names   map[string]*rrset
	rrs     []mdns.RR
	tasks   []TaskRecords
	cur     *TaskRecords
	skipped []string
}

func (b *builder) skip(format string, args ...any) {
	b.skipped = append(b.skipped, fmt.Sprintf(format, args...))
}

// add records the record of name with data once (made by newRR only then), and with the
// task whose records are being made.
func (b *builder) add(name string, data rrData) {
	if len(name) > maxName {
		b.skip("%s: name longer than 253 characters", name)
		return
	}
	set := b.names[name]
	if set == nil {
		set = &rrset{}
		b.names[name] = set
	}
	rr := set.find(data)
	if rr == nil {
		rr = b.newRR(name, data)
		set.insert(data, rr)
		b.rrs = append(b.rrs, rr)
	}
	if b.cur != nil {
		b.cur.RRs = append(b.cur.RRs, rr)
	}
}

// newRR makes the record of name with data.
func (b *builder) newRR(name string, d rrData) mdns.RR {
	h := mdns.RR_Header{Name: name, Rrtype: d.rrtype, Class: mdns.ClassINET, Ttl: b.ttl}
	switch d.rrtype {
	case mdns.TypeA:
		return &mdns.A{Hdr: h, A: d.addr.AsSlice()}
	case mdns.TypeAAAA:
		return &mdns.AAAA{Hdr: h, AAAA: d.addr.AsSlice()}
	case mdns.TypeSRV:
		return &mdns.SRV{Hdr: h, Priority: 0, Weight: 1, Port: d.port, Target: d.target}
	case mdns.TypePTR:
		return &mdns.PTR{Hdr: h, Ptr: d.target}
	case mdns.TypeNS:
		return &mdns.NS{Hdr: h, Ns: d.target}
	}
	return &mdns.SOA{Hdr: h, Ns: d.target, Mbox: "root." + d.target, Serial: b.serial,
		Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: soaMinTTL}
}

// addAddr adds an A or AAAA record, as ip's family says.
func (b *builder) addAddr(name string, ip netip.Addr) {
	if ip.Is4() {
		b.add(name, rrData{rrtype: mdns.TypeA, addr: ip})
		return
	}
	b.add(name, rrData{rrtype: mdns.TypeAAAA, addr: ip})
}

func (b *builder) addSRV(name, target string, port uint16) {
	b.add(name, rrData{rrtype: mdns.TypeSRV, target: target, port: port})
}

func (b *builder) addPTR(ip netip.Addr, target string) {
	name, err := mdns.ReverseAddr(ip.String())
	if err != nil {
		b.skip("PTR for %s: %v", ip, err)
		return
	}
	b.add(name, rrData{rrtype: mdns.TypePTR, target: target})
}

func (b *builder) masters(masters []Master, domain string) {
	sorted := slices.SortedFunc(slices.Values(masters), func(x, y Master) int { return cmp.Compare(x.ID, y.ID) })
	for i, m := range sorted {
		if !m.IP.IsValid() {
			b.skip("master %s: no address", m.ID)
			continue
		}
		name := fmt.Sprintf("master%d.%s", i, domain)
		b.addAddr("master."+domain, m.IP)
		b.addAddr(name, m.IP)
		b.addPTR(m.IP, name)
		if m.Leader {
			b.addAddr("leader."+domain, m.IP)
			if m.APIPort != 0 {
				b.addSRV("_leader._tcp."+domain, "leader."+domain, m.APIPort)
			}
		}
	}
}

func (b *builder) agents(c *Cluster, domain string) {
	for _, id := range slices.Sorted(maps.Keys(c.agents)) {
		a := c.agents[id]
		if !a.IP.IsValid() {
			b.skip("agent %s: no address in its pid or hostname %q", a.ID, a.Hostname)
			continue
		}
		b.addAddr("slave."+domain, a.IP)
		b.addAddr("agent."+domain, a.IP)
		if host := label(a.Hostname, maxLabel); host != "" {
			name := host + ".agent." + domain
			b.addAddr(name, a.IP)
			b.addPTR(a.IP, name)
		}
	}
}

func (b *builder) frameworks(c *Cluster, domain string) {
	byHost := map[string]netip.Addr{}
	for _, a := range c.agents {
		if a.IP.IsValid() {
			byHost[a.Hostname] = a.IP
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.frameworks)) {
		f := c.frameworks[id]
		name := label(f.Name, maxLabel)
		if name == "" || f.Hostname == "" {
			continue
		}
		ip, err := netip.ParseAddr(f.Hostname)
		if err != nil {
			ip = byHost[f.Hostname]
		}
		if ip.IsValid() {
			b.addAddr(name+"."+domain, ip.Unmap())
		}
	}
}

func (b *builder) taskRecords(c *Cluster, domain string) {
	type named struct {
		framework string
		task      *Task
	}
	keys := slices.SortedFunc(maps.Keys(c.tasks), func(x, y taskKey) int {
		return cmp.Or(cmp.Compare(x.frameworkID, y.frameworkID), cmp.Compare(x.taskID, y.taskID))
	})
	var live []named
	for _, k := range keys {
		t := c.tasks[k]
		if !t.published() {
			continue
		}
		f, ok := c.frameworks[t.FrameworkID]
		if !ok {
			b.skip("task %s: framework %s unknown", t.ID, t.FrameworkID)
			continue
		}
		live = append(live, named{f.Name, t})
	}
	slices.SortFunc(live, func(x, y named) int {
		return cmp.Or(cmp.Compare(x.framework, y.framework), cmp.Compare(x.task.Name, y.task.Name), cmp.Compare(x.task.ID, y.task.ID))
	})
	for _, n := range live {
		b.tasks = append(b.tasks, TaskRecords{Framework: n.framework, Name: n.task.Name, ID: n.task.ID})
		b.cur = &b.tasks[len(b.tasks)-1]
		b.task(c, n.task, n.framework, domain)
		if len(b.cur.RRs) == 0 {
			b.tasks = b.tasks[:len(b.tasks)-1]
		}
		b.cur = nil
	}
}

// task adds one published task's records.
func (b *builder) task(c *Cluster, t *Task, framework, domain string) {
	fw := label(framework, maxLabel)
	if fw == "" {
		b.skip("task %s: framework name %q has no letters or digits", t.ID, framework)
		return
	}
	hostIP := c.agents[t.AgentID].IP
	ips := t.IPs
	if len(ips) == 0 && hostIP.IsValid() {
		ips = []netip.Addr{hostIP}
	}
	if len(ips) == 0 {
		b.skip("task %s: no container address, and no address known for agent %s", t.ID, t.AgentID)
		return
	}
	names := []string{taskLabel(t.Name)}
	if d := taskLabel(t.DiscoveryName); d != "" && d != names[0] {
		names = append(names, d)
	}
	if names[0] == "" {
		names = names[1:]
	}
	if len(names) == 0 {
		b.skip("task %s: name %q has no letters or digits", t.ID, t.Name)
		return
	}
	type discoveryPort struct {
		number uint16
		proto  string
		name   string
	}
	var discovery []discoveryPort
	for _, p := range t.DiscoveryPorts {
		proto := strings.ToLower(cmp.Or(p.Protocol, "tcp"))
		if proto != "tcp" && proto != "udp" || p.Number == 0 || p.Number > 65535 {
			b.skip("task %s: discovery port %d/%s is not a TCP or UDP port", t.ID, p.Number, p.Protocol)
			continue
		}
		discovery = append(discovery, discoveryPort{uint16(p.Number), proto, label(p.Name, maxLabel-1)})
	}
	hash, tail := taskHash(t.ID), agentTail(t.AgentID)
	fwDomain, slaveDomain := fw+"."+domain, fw+".slave."+domain
	ports := b.hostPorts(t)
	for i, name := range names {
		canonical := canonicalLabel(name, hash, tail)
		byName, byCanonical := name+"."+fwDomain, canonical+"."+fwDomain
		for _, ip := range ips {
			b.addAddr(byName, ip)
			b.addAddr(byCanonical, ip)
		}
		if i == 0 {
			for _, ip := range t.IPs {
				if ip != hostIP {
					b.addPTR(ip, byCanonical)
				}
			}
		}
		service := srvLabel(name)
		if hostIP.IsValid() {
			onAgent := canonical + "." + slaveDomain
			b.addAddr(name+"."+slaveDomain, hostIP)
			b.addAddr(onAgent, hostIP)
			if len(ports) > 0 {
				srvNames := []string{service + "._tcp." + slaveDomain, service + "._udp." + slaveDomain}
				if len(t.DiscoveryPorts) == 0 {
					srvNames = append(srvNames, service+"._tcp."+fwDomain, service+"._udp."+fwDomain)
				}
				for _, port := range ports {
					for _, srvName := range srvNames {
						b.addSRV(srvName, onAgent, port)
					}
				}
			}
		}
		for _, p := range discovery {
			srvName := service + "._" + p.proto + "." + fwDomain
			b.addSRV(srvName, byCanonical, p.number)
			if p.name != "" {
				b.addSRV("_"+p.name+"."+srvName, byCanonical, p.number)
			}
		}
	}
}

// hostPorts lists a task's host ports, at most maxTaskPorts of them.
func (b *builder) hostPorts(t *Task) []uint16 {
	var ports []uint16
	for _, r := range t.Ports {
		for p := r.Begin; p <= r.End && p <= 65535; p++ {
			if p == 0 {
				continue
			}
			if len(ports) == maxTaskPorts {
				b.skip("task %s: only its first %d host ports are published", t.ID, maxTaskPorts)
				return ports
			}
			ports = append(ports, uint16(p))
		}
	}
	return ports
}

func (b *builder) vips(vips []VIP) {
	sorted := slices.SortedFunc(slices.Values(vips), func(x, y VIP) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), x.IP.Compare(y.IP))
	})
	for _, v := range sorted {
		l := vipLabel(v.Name)
		if l == "" || !v.IP.IsValid() {
			b.skip("VIP %q %s: no name or no address", v.Name, v.IP)
			continue
		}
		name := l + ".marathon." + VIPZone + "."
		b.addAddr(name, v.IP.Unmap())
		b.addPTR(v.IP.Unmap(), name)
	}
}

func (b *builder) finish() *Records {
	return &Records{RRs: b.rrs, Tasks: b.tasks, Skipped: b.skipped, names: b.names}
}
