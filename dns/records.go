package dns

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/lb/vip"
)

// VIPZone is the zone of the named VIPs (DC/OS's name for it), answered with authority
// next to the cluster domain.
const VIPZone = vip.Zone

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
	// VIPRange is where the named VIPs of the tasks' VIP_<n> port labels get their
	// addresses (see vip.Allocate); a range that is not IPv4 gives them none.
	VIPRange netip.Prefix
}

// VIP is a named VIP set by hand (Server.SetVIPs), besides those the tasks' VIP_<n> port
// labels name: Name is a Marathon VIP name without the port ("/myapp", which gives
// myapp.marathon.l4lb.thisdcos.directory), IP its address.
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
}

// TaskRecords are the records one task has.
type TaskRecords struct {
	Framework string
	Name      string
	ID        string
	RRs       []mdns.RR
}

// BuildRecords makes the record set of a cluster and of VIPs set by hand. It is a pure
// function of its arguments; the naming follows Mesos-DNS (see discovery-and-lb.md):
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
//   - SOA and NS at <domain> and at VIPZone; <vip>.<framework>.l4lb.thisdcos.directory
//     for every named VIP of the tasks' VIP_<n> port labels (<framework> is the name of
//     the task's framework as a label; see package vip), whatever the state of its
//     tasks, with the address vip.Allocate gives it in z.VIPRange; and
//     <vip>.marathon.l4lb.thisdcos.directory for each of vips.
//   - PTR for masters, agents, containers with their own address, and VIPs.
//
// Only RUNNING tasks are published, and of those with a health check only healthy ones.
//
// The server answers from an index kept current unit by unit (see recordIndex) and
// builds the whole set only for the HTTP API's listings; both make their records with the
// same units, and the index must always hold exactly this set.
func BuildRecords(c *Cluster, vips []VIP, z Zone) *Records {
	domain := mdns.Fqdn(strings.ToLower(z.Domain))
	m := &merger{ttl: z.TTL, made: map[addition]mdns.RR{}}
	m.merge(zoneUnit(domain, z.Serial, z.NSAddr), nil)
	m.merge(mastersUnit(c.masters, domain), nil)
	for _, id := range slices.Sorted(maps.Keys(c.agents)) {
		m.merge(agentUnit(c.agents[id], domain), nil)
	}
	byHost := c.hostAddrs()
	for _, id := range slices.Sorted(maps.Keys(c.frameworks)) {
		m.merge(frameworkUnit(c.frameworks[id], byHost, domain), nil)
	}
	keys := slices.SortedFunc(maps.Keys(c.tasks), func(x, y taskKey) int {
		return cmp.Or(cmp.Compare(x.frameworkID, y.frameworkID), cmp.Compare(x.taskID, y.taskID))
	})
	var listed []*taskUnit
	for _, k := range keys {
		switch u := newTaskUnit(c, c.tasks[k], domain); {
		case u.orphan:
			m.merge(&u.unit, nil)
		case u.listed:
			listed = append(listed, u)
		}
	}
	slices.SortFunc(listed, compareTaskUnits)
	var tasks []TaskRecords
	for _, u := range listed {
		tr := TaskRecords{Framework: u.framework, Name: u.name, ID: u.id}
		m.merge(&u.unit, &tr.RRs)
		if len(tr.RRs) > 0 {
			tasks = append(tasks, tr)
		}
	}
	m.merge(vipsUnit(vips, vipTable(c, z.VIPRange)), nil)
	return &Records{RRs: m.rrs, Tasks: tasks, Skipped: m.skipped}
}

// vipTable makes the VIP table of the cluster's tasks, with named VIPs' addresses from r.
func vipTable(c *Cluster, r netip.Prefix) *vip.Table {
	set := vip.NewSet(r)
	for k, t := range c.tasks {
		set.Put(k.vipID(), vipTask(c, t))
	}
	return set.Table()
}

// vipTask is what task t tells about VIPs.
func vipTask(c *Cluster, t *Task) vip.Task {
	vt := vip.Task{Name: t.Name, AgentIP: c.agents[t.AgentID].IP, IPs: t.IPs, Serving: t.published(), Ports: t.DiscoveryPorts}
	if f, ok := c.frameworks[t.FrameworkID]; ok {
		vt.Framework = f.Name
	}
	return vt
}

// merger puts units together into one record set, each record once.
type merger struct {
	ttl     uint32
	made    map[addition]mdns.RR
	rrs     []mdns.RR
	skipped []string
}

// merge adds u's records and skipped names; taskRRs, when not nil, receives every record
// of u, those made by earlier units included.
func (m *merger) merge(u *unit, taskRRs *[]mdns.RR) {
	for _, a := range u.adds {
		rr := m.made[a]
		if rr == nil {
			rr = newRR(a.name, a.data, m.ttl)
			m.made[a] = rr
			m.rrs = append(m.rrs, rr)
		}
		if taskRRs != nil {
			*taskRRs = append(*taskRRs, rr)
		}
	}
	m.skipped = append(m.skipped, u.skipped...)
}

// rrData tells the records of one name and type apart.
type rrData struct {
	rrtype uint16
	port   uint16
	// serial is the SOA's: a new serial is a new record.
	serial uint32
	addr   netip.Addr
	target string
}

// newRR makes the record of name with data.
func newRR(name string, d rrData, ttl uint32) mdns.RR {
	h := mdns.RR_Header{Name: name, Rrtype: d.rrtype, Class: mdns.ClassINET, Ttl: ttl}
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
	return &mdns.SOA{Hdr: h, Ns: d.target, Mbox: "root." + d.target, Serial: d.serial,
		Refresh: soaRefresh, Retry: soaRetry, Expire: soaExpire, Minttl: soaMinTTL}
}

// unit is what one part of the cluster adds to the record set — the zone, the masters,
// an agent, a framework, a task or the VIPs —, in the order BuildRecords adds it, and the
// names it could not make. A change remakes only the units it touches.
type unit struct {
	adds    []addition
	skipped []string
}

// addition is one record: its name and data.
type addition struct {
	name string
	data rrData
}

func (u *unit) skip(format string, args ...any) {
	u.skipped = append(u.skipped, fmt.Sprintf(format, args...))
}

// add adds the record of name with data, unless the name is too long.
func (u *unit) add(name string, data rrData) {
	if len(name) > maxName {
		u.skip("%s: name longer than 253 characters", name)
		return
	}
	u.adds = append(u.adds, addition{name, data})
}

// addAddr adds an A or AAAA record, as ip's family says. A record holds no zone (as
// fe80::1%eth0 has): it is dropped.
func (u *unit) addAddr(name string, ip netip.Addr) {
	ip = ip.WithZone("")
	if ip.Is4() {
		u.add(name, rrData{rrtype: mdns.TypeA, addr: ip})
		return
	}
	u.add(name, rrData{rrtype: mdns.TypeAAAA, addr: ip})
}

func (u *unit) addSRV(name, target string, port uint16) {
	u.add(name, rrData{rrtype: mdns.TypeSRV, target: target, port: port})
}

func (u *unit) addPTR(ip netip.Addr, target string) {
	name, err := mdns.ReverseAddr(ip.String())
	if err != nil {
		u.skip("PTR for %s: %v", ip, err)
		return
	}
	u.add(name, rrData{rrtype: mdns.TypePTR, target: target})
}

// zoneUnit is the zones' own records: SOA and NS at the domain and at VIPZone, and the
// name server's address.
func zoneUnit(domain string, serial uint32, nsAddr netip.Addr) *unit {
	u := &unit{}
	ns := "ns1." + domain
	for _, apex := range zoneApexes(domain) {
		u.add(apex, rrData{rrtype: mdns.TypeSOA, target: ns, serial: serial})
		u.add(apex, rrData{rrtype: mdns.TypeNS, target: ns})
	}
	if nsAddr.IsValid() {
		u.addAddr(ns, nsAddr)
	}
	return u
}

// zoneApexes are the names of the zones answered with authority.
func zoneApexes(domain string) []string { return []string{domain, VIPZone + "."} }

func mastersUnit(masters []Master, domain string) *unit {
	u := &unit{}
	sorted := slices.SortedFunc(slices.Values(masters), func(x, y Master) int { return cmp.Compare(x.ID, y.ID) })
	for i, m := range sorted {
		if !m.IP.IsValid() {
			u.skip("master %s: no address", m.ID)
			continue
		}
		name := fmt.Sprintf("master%d.%s", i, domain)
		u.addAddr("master."+domain, m.IP)
		u.addAddr(name, m.IP)
		u.addPTR(m.IP, name)
		if m.Leader {
			u.addAddr("leader."+domain, m.IP)
			if m.APIPort != 0 {
				u.addSRV("_leader._tcp."+domain, "leader."+domain, m.APIPort)
			}
		}
	}
	return u
}

func agentUnit(a Agent, domain string) *unit {
	u := &unit{}
	if !a.IP.IsValid() {
		u.skip("agent %s: no address in its pid or hostname %q", a.ID, a.Hostname)
		return u
	}
	u.addAddr("slave."+domain, a.IP)
	u.addAddr("agent."+domain, a.IP)
	if host := label(a.Hostname, maxLabel); host != "" {
		name := host + ".agent." + domain
		u.addAddr(name, a.IP)
		u.addPTR(a.IP, name)
	}
	return u
}

// frameworkUnit is <framework>.<domain>, when the framework's hostname is an address or
// an agent's hostname (byHost, see Cluster.hostAddrs).
func frameworkUnit(f Framework, byHost map[string]netip.Addr, domain string) *unit {
	u := &unit{}
	name := label(f.Name, maxLabel)
	if name == "" || f.Hostname == "" {
		return u
	}
	ip, err := netip.ParseAddr(f.Hostname)
	if err != nil {
		ip = byHost[f.Hostname]
	}
	if ip.IsValid() {
		u.addAddr(name+"."+domain, ip.Unmap())
	}
	return u
}

// taskUnit is one task's unit, with what orders it among the others and what it was made
// from (its framework and agent: a change to either remakes it).
type taskUnit struct {
	unit
	// framework is its framework's name; tasks are ordered by it, then name, then id.
	framework   string
	name, id    string
	frameworkID string
	agentID     string
	// listed is set for a published task of a known framework: it is in Records.Tasks
	// when it has records.
	listed bool
	// orphan is set for a published task whose framework is unknown.
	orphan bool
}

// compareTaskUnits orders tasks as Records.Tasks lists them.
func compareTaskUnits(x, y *taskUnit) int {
	return cmp.Or(cmp.Compare(x.framework, y.framework), cmp.Compare(x.name, y.name), cmp.Compare(x.id, y.id),
		cmp.Compare(x.frameworkID, y.frameworkID))
}

// newTaskUnit makes task t's unit: its records when it is published.
func newTaskUnit(c *Cluster, t *Task, domain string) *taskUnit {
	u := &taskUnit{name: t.Name, id: t.ID, frameworkID: t.FrameworkID, agentID: t.AgentID}
	if !t.published() {
		return u
	}
	f, ok := c.frameworks[t.FrameworkID]
	if !ok {
		u.orphan = true
		u.skip("task %s: framework %s unknown", t.ID, t.FrameworkID)
		return u
	}
	u.listed = true
	u.framework = f.Name
	u.task(c, t, f.Name, domain)
	return u
}

// task adds one published task's records.
func (u *unit) task(c *Cluster, t *Task, framework, domain string) {
	fw := label(framework, maxLabel)
	if fw == "" {
		u.skip("task %s: framework name %q has no letters or digits", t.ID, framework)
		return
	}
	hostIP := c.agents[t.AgentID].IP
	ips := t.IPs
	if len(ips) == 0 && hostIP.IsValid() {
		ips = []netip.Addr{hostIP}
	}
	if len(ips) == 0 {
		u.skip("task %s: no container address, and no address known for agent %s", t.ID, t.AgentID)
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
		u.skip("task %s: name %q has no letters or digits", t.ID, t.Name)
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
			u.skip("task %s: discovery port %d/%s is not a TCP or UDP port", t.ID, p.Number, p.Protocol)
			continue
		}
		discovery = append(discovery, discoveryPort{uint16(p.Number), proto, label(p.Name, maxLabel-1)})
	}
	hash, tail := taskHash(t.ID), agentTail(t.AgentID)
	fwDomain, slaveDomain := fw+"."+domain, fw+".slave."+domain
	ports := u.hostPorts(t)
	for i, name := range names {
		canonical := canonicalLabel(name, hash, tail)
		byName, byCanonical := name+"."+fwDomain, canonical+"."+fwDomain
		for _, ip := range ips {
			u.addAddr(byName, ip)
			u.addAddr(byCanonical, ip)
		}
		if i == 0 {
			for _, ip := range t.IPs {
				if ip != hostIP {
					u.addPTR(ip, byCanonical)
				}
			}
		}
		service := srvLabel(name)
		if hostIP.IsValid() {
			onAgent := canonical + "." + slaveDomain
			u.addAddr(name+"."+slaveDomain, hostIP)
			u.addAddr(onAgent, hostIP)
			if len(ports) > 0 {
				srvNames := []string{service + "._tcp." + slaveDomain, service + "._udp." + slaveDomain}
				if len(t.DiscoveryPorts) == 0 {
					srvNames = append(srvNames, service+"._tcp."+fwDomain, service+"._udp."+fwDomain)
				}
				for _, port := range ports {
					for _, srvName := range srvNames {
						u.addSRV(srvName, onAgent, port)
					}
				}
			}
		}
		for _, p := range discovery {
			srvName := service + "._" + p.proto + "." + fwDomain
			u.addSRV(srvName, byCanonical, p.number)
			if p.name != "" {
				u.addSRV("_"+p.name+"."+srvName, byCanonical, p.number)
			}
		}
	}
}

// hostPorts lists a task's host ports, at most maxTaskPorts of them.
func (u *unit) hostPorts(t *Task) []uint16 {
	var ports []uint16
	for _, r := range t.Ports {
		for p := r.Begin; p <= r.End && p <= 65535; p++ {
			if p == 0 {
				continue
			}
			if len(ports) == maxTaskPorts {
				u.skip("task %s: only its first %d host ports are published", t.ID, maxTaskPorts)
				return ports
			}
			ports = append(ports, uint16(p))
		}
	}
	return ports
}

// vipsUnit is the VIPs' records: those set by hand and the named VIPs of table, and
// table's problems as names skipped.
func vipsUnit(vips []VIP, table *vip.Table) *unit {
	u := &unit{}
	sorted := slices.SortedFunc(slices.Values(vips), func(x, y VIP) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), x.IP.Compare(y.IP))
	})
	for _, v := range sorted {
		name, err := vip.NormalName(v.Name)
		if err == nil {
			name, err = vip.Name(name, "marathon")
		}
		if err != nil || !v.IP.IsValid() {
			u.skip("VIP %q %s: no name or no address", v.Name, v.IP)
			continue
		}
		u.addVIP(vip.FQDN(name), v.IP)
	}
	for _, n := range table.Names {
		u.addVIP(vip.FQDN(n.Name), n.Addr)
	}
	for _, p := range table.Problems {
		u.skip("%s", p)
	}
	return u
}

// addVIP adds a VIP's address record and its PTR.
func (u *unit) addVIP(name string, ip netip.Addr) {
	u.addAddr(name, ip.Unmap())
	u.addPTR(ip.Unmap(), name)
}
