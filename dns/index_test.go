package dns

import (
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
)

// nameView is what a name answers, as text: its records by type, and the additional
// sections of SRV and NS answers, each sorted.
type nameView struct {
	records, srvExtra, nsExtra string
}

// tableView is everything a table answers, as text.
type tableView struct {
	names map[string]nameView
	zones []string
}

func sortedLines(lines []string) string {
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func rrLines(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, mdns.TypeToString[rr.Header().Rrtype]+" "+rr.String())
	}
	return out
}

// servedView reads a published table, checking that every name is in the shard lookup
// finds it in and that each type's records are of that type.
func servedView(t testing.TB, tbl *table) tableView {
	t.Helper()
	v := tableView{names: map[string]nameView{}}
	for _, shard := range tbl.shards {
		for name, set := range shard {
			if tbl.lookup(name) != set {
				t.Errorf("%s is not in the shard lookup reads", name)
			}
			var records []string
			for _, rrtype := range rrsetTypes {
				for _, rr := range set.records(rrtype) {
					records = append(records, mdns.TypeToString[rrtype]+" "+rr.String())
				}
			}
			if len(records) != len(set.all) {
				t.Errorf("%s: %d records by type, %d in all", name, len(records), len(set.all))
			}
			v.names[name] = nameView{records: sortedLines(records), srvExtra: sortedLines(rrLines(set.srvExtra)),
				nsExtra: sortedLines(rrLines(set.nsExtra))}
		}
	}
	for _, z := range tbl.zones {
		v.zones = append(v.zones, z.apex+" "+z.negative.String())
	}
	return v
}

// referenceView is the table of a whole record set, made the plain way: records grouped
// by name, the zones from the SOA records, every name between a name and its zones' apexes
// existing, the addresses of SRV and NS targets as additional records.
func referenceView(recs *Records) tableView {
	byName := map[string][]mdns.RR{}
	var zones []*mdns.SOA
	for _, rr := range recs.RRs {
		byName[rr.Header().Name] = append(byName[rr.Header().Name], rr)
		if soa, ok := rr.(*mdns.SOA); ok {
			zones = append(zones, soa)
		}
	}
	slices.SortFunc(zones, func(x, y *mdns.SOA) int { return strings.Compare(x.Hdr.Name, y.Hdr.Name) })
	exists := map[string]bool{}
	for name := range byName {
		exists[name] = true
		for _, z := range zones {
			if apex := z.Hdr.Name; name != apex && inZone(name, apex) {
				for parent := name; parent != apex; {
					_, parent, _ = strings.Cut(parent, ".")
					if parent != apex {
						exists[parent] = true
					}
				}
			}
		}
	}
	targetAddrs := func(rrs []mdns.RR, rrtype uint16) []string {
		var out []string
		done := map[string]bool{}
		for _, rr := range rrs {
			var target string
			switch rr := rr.(type) {
			case *mdns.SRV:
				target = rr.Target
			case *mdns.NS:
				target = rr.Ns
			}
			if rr.Header().Rrtype != rrtype || done[target] {
				continue
			}
			done[target] = true
			for _, addr := range byName[target] {
				if t := addr.Header().Rrtype; t == mdns.TypeA || t == mdns.TypeAAAA {
					out = append(out, mdns.TypeToString[t]+" "+addr.String())
				}
			}
		}
		return out
	}
	v := tableView{names: map[string]nameView{}}
	for name := range exists {
		rrs := byName[name]
		v.names[name] = nameView{records: sortedLines(rrLines(rrs)), srvExtra: sortedLines(targetAddrs(rrs, mdns.TypeSRV)),
			nsExtra: sortedLines(targetAddrs(rrs, mdns.TypeNS))}
	}
	for _, z := range zones {
		negative := *z
		negative.Hdr.Ttl = min(negative.Hdr.Ttl, negative.Minttl)
		v.zones = append(v.zones, z.Hdr.Name+" "+negative.String())
	}
	return v
}

// diffViews lists how got differs from want, at most ten names.
func diffViews(want, got tableView) string {
	var out []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range want.names {
			if !yield(n) {
				return
			}
		}
		for n := range got.names {
			if _, ok := want.names[n]; !ok && !yield(n) {
				return
			}
		}
	}) {
		w, inWant := want.names[name]
		g, inGot := got.names[name]
		if inWant != inGot || w != g {
			out = append(out, fmt.Sprintf("%s: want (exists %v) %+v\n  got (exists %v) %+v", name, inWant, w, inGot, g))
		}
	}
	if !slices.Equal(want.zones, got.zones) {
		out = append(out, fmt.Sprintf("zones: want %q, got %q", want.zones, got.zones))
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("… and %d more", len(out)-10))
	}
	return strings.Join(out, "\n")
}

// checkServed fails when the table s serves is not exactly the one of BuildRecords of
// its cluster and VIPs.
func checkServed(t testing.TB, s *Server, step string) {
	t.Helper()
	s.mu.Lock()
	recs := BuildRecords(s.cluster, s.vips, s.zone())
	if want := vipTable(s.cluster, s.vipRange); !reflect.DeepEqual(s.index.vipTable, want) || s.vipTable != s.index.vipTable {
		t.Fatalf("after %s the VIP table kept is\n%+v\nwant\n%+v", step, s.index.vipTable, want)
	}
	count := s.index.count
	if err := s.index.check(s.cluster); err != nil {
		t.Fatalf("after %s: %v", step, err)
	}
	s.mu.Unlock()
	want, got := referenceView(recs), servedView(t, s.table.Load())
	if d := diffViews(want, got); d != "" {
		t.Fatalf("after %s the served table differs from BuildRecords of the same state:\n%s", step, d)
	}
	if count != len(recs.RRs) {
		t.Fatalf("after %s the index counts %d records, BuildRecords makes %d", step, count, len(recs.RRs))
	}
}

// check reports the first of the index's own books that is wrong: a name kept with nothing
// in it, records miscounted, the task lists of agents and frameworks not those of the tasks.
func (ix *recordIndex) check(c *Cluster) error {
	records := 0
	for name, st := range ix.names {
		if len(st.records) == 0 && st.below == 0 && len(st.referrers) == 0 {
			return fmt.Errorf("%s is kept with no records, names below or referrers", name)
		}
		for _, r := range st.records {
			if target := dataOf(r.rr).target; hasTarget(r.rr.Header().Rrtype) && ix.names[target] != r.target {
				return fmt.Errorf("%s: the record %v keeps a state of %s that is not the index's", name, r.rr, target)
			}
		}
		records += len(st.records)
	}
	if records != ix.count {
		return fmt.Errorf("%d records counted, %d held", ix.count, records)
	}
	if len(ix.tasks) != len(c.tasks) {
		return fmt.Errorf("%d task units for %d tasks", len(ix.tasks), len(c.tasks))
	}
	for _, books := range []struct {
		what  string
		lists map[string]map[taskKey]struct{}
		of    func(taskKey, *taskEntry) string
	}{
		{"agent", ix.tasksOnAgent, func(_ taskKey, tr *taskEntry) string { return tr.agentID }},
		{"framework", ix.tasksOfFramework, func(k taskKey, _ *taskEntry) string { return k.frameworkID }},
	} {
		listed := 0
		for id, keys := range books.lists {
			for k := range keys {
				if tr := ix.tasks[k]; tr == nil || books.of(k, tr) != id {
					return fmt.Errorf("task %v listed for %s %s", k, books.what, id)
				}
			}
			listed += len(keys)
		}
		if listed != len(ix.tasks) {
			return fmt.Errorf("%d tasks listed by %s, %d known", listed, books.what, len(ix.tasks))
		}
	}
	return nil
}

// eventScript turns bytes into cluster events over a small universe of agents,
// frameworks and tasks, so that any byte string is a sequence of events that collide
// often: shared names and addresses, tasks whose agent or framework comes and goes,
// renamed frameworks, unhealthy and finished tasks.
type eventScript struct {
	data []byte
	pos  int
}

// pick returns a number below n from the script, 0 once it is used up.
func (s *eventScript) pick(n int) int {
	if s.pos >= len(s.data) {
		return 0
	}
	s.pos++
	return int(s.data[s.pos-1]) % n
}

func (s *eventScript) done() bool { return s.pos >= len(s.data) }

var (
	scriptAgents     = []string{"agent-0-S0", "agent-1-S1", "agent-2-S2", "gone-S9"}
	scriptHostnames  = []string{"node-a", "node-b", "10.0.1.3", "", "Node_A"}
	scriptFrameworks = []string{"fw-0", "fw-1", "fw-2"}
	scriptFwNames    = []string{"marathon", "Spark Cluster", "", "!!!", "MARATHON"}
	scriptFwHosts    = []string{"", "10.0.0.9", "node-a", "node-b", "elsewhere"}
	scriptTaskIDs    = []string{"t0", "t1", "t2", "t3", "t4"}
	scriptTaskNames  = []string{"/grp/web", "web.grp", "db", "", "___", strings.Repeat("long-", 14)}
	scriptStates     = []api.TaskState{api.TaskRunning, api.TaskRunning, api.TaskRunning, api.TaskRunning, api.TaskStaging,
		api.TaskStarting, api.TaskKilling, api.TaskFinished, api.TaskLost, api.TaskUnreachable}
	scriptIPs = []string{"172.17.0.5", "fd00::5", "10.0.1.1", "172.17.0.6", "fe80::1%eth0"}
)

func (s *eventScript) agent() api.AgentState {
	id := scriptAgents[s.pick(len(scriptAgents))]
	a := api.AgentState{AgentInfo: api.AgentInfo{Hostname: scriptHostnames[s.pick(len(scriptHostnames))], ID: &api.AgentID{Value: id}}}
	switch s.pick(4) {
	case 1:
		a.PID = fmt.Sprintf("slave(1)@10.0.1.%d:5051", s.pick(3)+1)
	case 2:
		a.PID = fmt.Sprintf("slave(1)@[fd00::1:%d]:5051", s.pick(3)+1)
	case 3:
		a.PID = "slave(1)@10.0.1.1:5051"
	}
	return a
}

func (s *eventScript) framework() api.FrameworkInfo {
	id := scriptFrameworks[s.pick(len(scriptFrameworks))]
	return api.FrameworkInfo{ID: &api.FrameworkID{Value: id}, Name: scriptFwNames[s.pick(len(scriptFwNames))],
		Hostname: scriptFwHosts[s.pick(len(scriptFwHosts))]}
}

func (s *eventScript) status(taskID string) api.TaskStatus {
	st := api.TaskStatus{TaskID: api.TaskID{Value: taskID}, State: scriptStates[s.pick(len(scriptStates))]}
	switch s.pick(3) {
	case 1:
		st.Healthy = new(true)
	case 2:
		st.Healthy = new(false)
	}
	if n := s.pick(4); n > 0 {
		ni := api.NetworkInfo{}
		for i := range n {
			ni.IPAddresses = append(ni.IPAddresses, api.IPAddress{IPAddress: scriptIPs[(s.pick(len(scriptIPs))+i)%len(scriptIPs)]})
		}
		st.ContainerStatus = &api.ContainerStatus{NetworkInfos: []api.NetworkInfo{ni}}
	}
	return st
}

func (s *eventScript) task() api.Task {
	id := scriptTaskIDs[s.pick(len(scriptTaskIDs))]
	t := api.Task{Name: scriptTaskNames[s.pick(len(scriptTaskNames))], TaskID: api.TaskID{Value: id},
		FrameworkID: api.FrameworkID{Value: scriptFrameworks[s.pick(len(scriptFrameworks))]},
		AgentID:     api.AgentID{Value: scriptAgents[s.pick(len(scriptAgents))]}, State: scriptStates[s.pick(len(scriptStates))]}
	if s.pick(4) == 0 {
		t.HealthCheck = &api.HealthCheck{Type: "TCP"}
	}
	switch s.pick(4) {
	case 1:
		t.Resources = append(t.Resources, portsResource(31000, 31000))
	case 2:
		t.Resources = append(t.Resources, portsResource(31000, 31002), portsResource(31001, 31001))
	case 3:
		t.Resources = append(t.Resources, portsResource(0, 1))
	}
	switch s.pick(4) {
	case 1:
		t.Discovery = &api.DiscoveryInfo{Name: "svc"}
	case 2:
		t.Discovery = &api.DiscoveryInfo{Name: scriptTaskNames[s.pick(len(scriptTaskNames))], Ports: &api.Ports{Ports: []api.Port{
			{Number: 8080, Name: "http", Protocol: "tcp", Labels: s.vipLabels()}, {Number: 53, Name: "dns", Protocol: "UDP"},
			{Number: 9000, Protocol: "sctp", Labels: s.vipLabels()}}}}
	case 3:
		t.Discovery = &api.DiscoveryInfo{Ports: &api.Ports{Ports: []api.Port{{Number: 8080}}}}
	}
	for range s.pick(3) {
		t.Statuses = append(t.Statuses, s.status(id))
	}
	return t
}

// scriptVIPs are VIP label values: names that collide, an address VIP, a bad one.
var scriptVIPs = []string{"/web:80", "/grp/api:80", "grpapi:80", "/app4:1", "/app6:1", "198.18.1.206:80", "bad"}

// vipLabels are a port's labels: none, or a VIP or two.
func (s *eventScript) vipLabels() *api.Labels {
	n := s.pick(3)
	if n == 0 {
		return nil
	}
	ls := &api.Labels{}
	for i := range n {
		ls.Labels = append(ls.Labels, api.Label{Key: fmt.Sprintf("VIP_%d", i), Value: scriptVIPs[s.pick(len(scriptVIPs))]})
	}
	return ls
}

func portsResource(begin, end uint64) api.Resource {
	return api.Resource{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: begin, End: end}}}}
}

// state is a GET_STATE of a few agents, frameworks and tasks.
func (s *eventScript) state() *api.GetState {
	st := &api.GetState{GetAgents: &api.GetAgents{}, GetFrameworks: &api.GetFrameworks{}, GetTasks: &api.GetTasks{}}
	for range 1 + s.pick(4) {
		st.GetAgents.Agents = append(st.GetAgents.Agents, s.agent())
	}
	for range 1 + s.pick(3) {
		st.GetFrameworks.Frameworks = append(st.GetFrameworks.Frameworks, api.FrameworkState{FrameworkInfo: s.framework()})
	}
	for range s.pick(10) {
		st.GetTasks.Tasks = append(st.GetTasks.Tasks, s.task())
	}
	return st
}

// event is the next operator event.
func (s *eventScript) event() *api.OperatorEvent {
	switch s.pick(24) {
	case 0:
		return &api.OperatorEvent{Type: api.OpEventSubscribed, Subscribed: &api.OpSubscribed{GetState: s.state()}}
	case 1, 2, 3, 4, 5:
		return &api.OperatorEvent{Type: api.OpEventTaskAdded, TaskAdded: &api.OpTaskAdded{Task: s.task()}}
	case 6, 7, 8, 9, 10, 11:
		id := scriptTaskIDs[s.pick(len(scriptTaskIDs))]
		st := s.status(id)
		return &api.OperatorEvent{Type: api.OpEventTaskUpdated, TaskUpdated: &api.OpTaskUpdated{
			FrameworkID: api.FrameworkID{Value: scriptFrameworks[s.pick(len(scriptFrameworks))]}, Status: st, State: st.State}}
	case 12, 13, 14:
		return &api.OperatorEvent{Type: api.OpEventAgentAdded, AgentAdded: &api.OpAgentAdded{Agent: s.agent()}}
	case 15:
		return &api.OperatorEvent{Type: api.OpEventAgentRemoved, AgentRemoved: &api.OpAgentRemoved{
			AgentID: api.AgentID{Value: scriptAgents[s.pick(len(scriptAgents))]}}}
	case 16, 17, 18:
		return &api.OperatorEvent{Type: api.OpEventFrameworkAdded, FrameworkAdded: &api.OpFrameworkChanged{
			Framework: api.FrameworkState{FrameworkInfo: s.framework()}}}
	case 19, 20:
		return &api.OperatorEvent{Type: api.OpEventFrameworkUpdated, FrameworkUpdated: &api.OpFrameworkChanged{
			Framework: api.FrameworkState{FrameworkInfo: s.framework()}}}
	case 21:
		return &api.OperatorEvent{Type: api.OpEventFrameworkRemoved, FrameworkRemoved: &api.OpFrameworkRemovedEvt{
			FrameworkInfo: s.framework()}}
	}
	return &api.OperatorEvent{Type: api.OpEventHeartbeat}
}

func (s *eventScript) masters() []Master {
	var ms []Master
	for i := range s.pick(4) {
		m := Master{ID: fmt.Sprintf("m%d", s.pick(3)), APIPort: uint16(5050 * s.pick(2)), Leader: s.pick(2) == 0}
		if s.pick(4) > 0 {
			m.IP = netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})
		}
		ms = append(ms, m)
	}
	return ms
}

func (s *eventScript) vips() []VIP {
	var vips []VIP
	for range s.pick(3) {
		vips = append(vips, VIP{Name: []string{"/web", "/grp/api", "///"}[s.pick(3)], IP: netip.MustParseAddr(scriptIPs[s.pick(len(scriptIPs))])})
	}
	return vips
}

// runScript drives s through the events of data the way the watcher does — batches of
// queued events applied at once, master and VIP changes in between — starting from a
// SUBSCRIBED, and checks after every step that the served table is exactly the one
// BuildRecords makes of the state reached.
func runScript(t testing.TB, s *Server, data []byte) {
	t.Helper()
	script := &eventScript{data: data}
	queued := make(chan *api.OperatorEvent, 8)
	s.setMasters(nil)
	s.SetVIPs(nil)
	s.apply(&api.OperatorEvent{Type: api.OpEventSubscribed, Subscribed: &api.OpSubscribed{GetState: script.state()}}, queued)
	checkServed(t, s, "the first SUBSCRIBED")
	for step := 0; !script.done(); step++ {
		switch script.pick(8) {
		case 0:
			s.setMasters(script.masters())
		case 1:
			s.SetVIPs(script.vips())
		default:
			first := script.event()
			for range script.pick(cap(queued)) {
				queued <- script.event()
			}
			s.apply(first, queued)
		}
		checkServed(t, s, fmt.Sprintf("step %d", step))
	}
}

// scriptServer is a server for runScript with the given domain.
func scriptServer(t testing.TB, domain string) *Server {
	t.Helper()
	return TestServer(t, func(c *Config) {
		c.Domain = domain
		c.NSAddr = "10.0.0.53"
		c.Logger = slog.New(slog.DiscardHandler)
	})
}

// TestIncrementalRecords: for random sequences of events, master and VIP changes,
// applied in random batches, the table served after every step is exactly the table of
// BuildRecords of the state reached: every name, record, empty non-terminal, additional
// record and zone. Also with a domain that holds the VIP zone.
func TestIncrementalRecords(t *testing.T) {
	for _, domain := range []string{"mesos", "directory"} {
		t.Run(domain, func(t *testing.T) {
			s := scriptServer(t, domain)
			rng := rand.New(rand.NewPCG(1, uint64(len(domain))))
			for range 300 {
				data := make([]byte, 50+rng.IntN(250))
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				runScript(t, s, data)
			}
		})
	}
}

// FuzzIncrementalRecords is TestIncrementalRecords for any byte string.
func FuzzIncrementalRecords(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 6, 1, 0, 1})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps over the lazy dog"))
	s := scriptServer(f, "mesos")
	f.Fuzz(func(t *testing.T, data []byte) {
		runScript(t, s, data)
	})
}

// TestNameStateHashCollision: a name holding two records whose data hash alike (forced
// here: 64-bit hashes do not collide in practice) is scanned from then on, and still
// finds and removes each of its records.
func TestNameStateHashCollision(t *testing.T) {
	seed := maphash.MakeSeed()
	data := func(i int) rrData {
		return rrData{rrtype: mdns.TypeA, addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}
	}
	st := &nameState{}
	insert := func(i int) { st.insert(seed, data(i), nameRecord{rr: newRR("x.mesos.", data(i), 60), units: 1}) }
	n := linearDedup + 2
	for i := range n {
		insert(i)
	}
	if st.index == nil {
		t.Fatalf("no index with %d records", n)
	}
	st.index[hashData(seed, data(n))] = 0 // data(n) now hashes like data(0)
	if i := st.find(seed, data(n)); i != -1 {
		t.Fatalf("find of a record not held, whose hash is another's = %d, want -1", i)
	}
	insert(n)
	insert(n + 1)
	if st.index != nil || !st.scan {
		t.Fatalf("index %v scan %v after a collision; want no index, scanning", st.index != nil, st.scan)
	}
	for _, remove := range []int{3, 0, n} {
		st.removeAt(seed, st.find(seed, data(remove)), data(remove))
	}
	for i := range n + 2 {
		j := st.find(seed, data(i))
		switch removed := i == 3 || i == 0 || i == n; {
		case removed && j != -1:
			t.Errorf("removed record %d found at %d", i, j)
		case !removed && (j < 0 || dataOf(st.records[j].rr) != data(i)):
			t.Errorf("record %d: found at %d", i, j)
		}
	}
}
