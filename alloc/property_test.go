package alloc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// TestAllocatorProperty: random agents, frameworks, accepts and declines never allocate the
// same resource twice and converge to DRF shares within one task's size.
//
// Each seed builds a random cluster and frameworks that each want an unbounded number of
// tasks of one fixed size, in a few weighted roles, then runs two phases against a model
// the test keeps of every task and filter:
//
//  1. Churn: frameworks accept a random number of the tasks that fit an offer (usually all),
//     hand back the rest (sometimes with a decline filter), finish random tasks, get
//     suppressed, revived, deactivated, removed and replaced while agents come and go
//     from service. After every cycle the allocator's accounting must equal the model's:
//     for every agent, free + Σ allocated = total exactly, with no port in two places, and
//     each offer must go to an eligible framework (active, unsuppressed, not filtered) of a
//     role with the lowest weighted dominant share among roles with an eligible framework,
//     and within it the framework with the lowest dominant share (the DRF pick rule).
//
//  2. Filling: all tasks end, everyone is revived, and the cluster is filled again one agent
//     at a time (a single active agent, so the offer on it is the only one outstanding and
//     shares are task shares); a framework takes one task per offer and declines, with a
//     filter, an offer none of its tasks fits. When no framework fits anywhere, this holds:
//
//     For frameworks i and j of one role, let t be i's last task and F the free resources
//     it was taken from. If j's task fits F too, then share(i) - share(j) <= share(t).
//     The same holds between roles with weighted shares: for roles R ≠ R', if a task of
//     some framework of R' fits F of R's last task t, then S(R) - S(R') <= share(t)/w(R).
//
//     Why it is true: when i got F, j was eligible (a filter only hides resources j could
//     not fit), so DRF chose i with share(i) <= share(j); since then i gained t, whose
//     dominant share bounds the increase of i's dominant share, and j gained or kept its
//     share (nothing finished). Frameworks j that fit nowhere i could place a task are not
//     bound: DRF rightly gives i what j cannot use. With whole-agent offers and frameworks
//     taking several tasks per offer the same argument bounds the gap by one offer, not
//     one task, which is why phase 2 takes one task per offer.
func TestAllocatorProperty(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			s := newPropSim(t, seed)
			for range 60 {
				s.churnCycle()
			}
			s.fill()
		})
	}
}

type propFramework struct {
	id, role   string
	task       Resources // scalars of one task
	ports      int       // ports one task needs
	active     bool
	suppressed bool
}

type propAgent struct {
	id     string
	total  Resources
	active bool
}

type propTask struct {
	fw    *propFramework
	agent *propAgent
	res   Resources
}

type propFilter struct {
	res     Resources
	expires time.Time
}

type propFilterKey struct {
	fw    *propFramework
	agent *propAgent
}

type propSim struct {
	t       *testing.T
	rng     *rand.Rand
	a       *Allocator
	clock   *fakeClock
	agents  []*propAgent
	fws     []*propFramework
	tasks   []propTask
	filters map[propFilterKey][]propFilter
	weights map[string]float64
	total   Resources
	nextFW  int
}

var propRoles = []string{"r0", "r1", "r2"}

var propShapes = []struct {
	res   string
	ports int
}{
	{"cpus:1;mem:1024", 0},
	{"cpus:2;mem:512", 1},
	{"cpus:0.5;mem:256", 0},
	{"cpus:1.5;mem:3000", 2},
	{"cpus:0.5;mem:2048", 1},
}

func newPropSim(t *testing.T, seed uint64) *propSim {
	rng := rand.New(rand.NewPCG(seed, 42))
	weights := map[string]float64{}
	for _, r := range propRoles {
		weights[r] = float64(1 + rng.IntN(2))
	}
	a, clock := newTestAllocator(t, func(c *Config) {
		c.Seed = int64(seed)
		c.Weights = weights
	})
	s := &propSim{t: t, rng: rng, a: a, clock: clock, filters: map[propFilterKey][]propFilter{}, weights: weights}
	for i := range 12 + rng.IntN(12) {
		base := 31000 + uint64(rng.IntN(100))
		total := mustParse(t, fmt.Sprintf("cpus:%d;mem:%d;disk:%d;ports:[%d-%d,%d-%d]",
			2*(1+rng.IntN(8)), 1024*(2+rng.IntN(30)), 1000*(1+rng.IntN(10)),
			base, base+uint64(rng.IntN(8)), base+20, base+20+uint64(rng.IntN(10))))
		ag := &propAgent{id: fmt.Sprintf("agent%02d", i), total: total, active: true}
		s.agents = append(s.agents, ag)
		s.total = s.total.Add(total)
		a.AddAgent(ag.id, "host", total, nil)
	}
	for range 4 + rng.IntN(6) {
		s.addFramework()
	}
	return s
}

func (s *propSim) addFramework() {
	shape := propShapes[s.rng.IntN(len(propShapes))]
	fw := &propFramework{
		id:         fmt.Sprintf("fw%03d", s.nextFW),
		role:       propRoles[s.rng.IntN(len(propRoles))],
		task:       mustParse(s.t, shape.res),
		ports:      shape.ports,
		active:     s.rng.IntN(10) > 0,
		suppressed: s.rng.IntN(10) == 0,
	}
	s.nextFW++
	s.fws = append(s.fws, fw)
	var suppressed []string
	if fw.suppressed {
		suppressed = []string{fw.role}
	}
	s.a.AddFramework(fw.id, []string{fw.role}, suppressed, fw.active)
}

// share is the dominant share of r in the cluster.
func (s *propSim) share(r Resources) float64 {
	var share float64
	for _, name := range []string{CPUs, Mem, Disk, GPUs} {
		if total := s.total.Scalar(name); total > 0 {
			share = max(share, r.Scalar(name)/total)
		}
	}
	return share
}

func (s *propSim) framework(id string) *propFramework {
	for _, fw := range s.fws {
		if fw.id == id {
			return fw
		}
	}
	s.t.Fatalf("allocation to unknown framework %s", id)
	return nil
}

func (s *propSim) agent(id string) *propAgent {
	for _, ag := range s.agents {
		if ag.id == id {
			return ag
		}
	}
	s.t.Fatalf("allocation of unknown agent %s", id)
	return nil
}

// fits reports whether one task of fw fits in r.
func fits(fw *propFramework, r Resources) bool {
	return r.Contains(fw.task) && countRanges(r.ports) >= uint64(fw.ports)
}

// takeTask returns one task of fw made of r: its scalars and r's lowest ports.
func takeTask(fw *propFramework, r Resources) Resources {
	task := fw.task
	var ports []api.ValueRange
	need := uint64(fw.ports)
	for _, rg := range r.ports {
		if need == 0 {
			break
		}
		n := min(need, rg.End-rg.Begin+1)
		ports = append(ports, api.ValueRange{Begin: rg.Begin, End: rg.Begin + n - 1})
		need -= n
	}
	return task.Add(Resources{ports: normalizeRanges(ports)})
}

// free is the model's idea of an agent's free resources between cycles.
func (s *propSim) free(ag *propAgent) Resources {
	free := ag.total
	for _, task := range s.tasks {
		if task.agent == ag {
			free = free.Subtract(task.res)
		}
	}
	return free
}

func (s *propSim) filtered(fw *propFramework, ag *propAgent, free Resources, now time.Time) bool {
	for _, f := range s.filters[propFilterKey{fw, ag}] {
		if now.Before(f.expires) && f.res.Contains(free) {
			return true
		}
	}
	return false
}

func (s *propSim) decline(fw *propFramework, ag *propAgent, r Resources, refuse time.Duration) {
	s.a.Recover(fw.id, ag.id, fw.role, r, refuse)
	if refuse > 0 && !r.IsEmpty() {
		key := propFilterKey{fw, ag}
		s.filters[key] = append(s.filters[key], propFilter{res: r, expires: s.clock.Now().Add(refuse)})
	}
}

func (s *propSim) revive(fw *propFramework) {
	s.a.Revive(fw.id, nil)
	fw.suppressed = false
	for key := range s.filters {
		if key.fw == fw {
			delete(s.filters, key)
		}
	}
}

// allocate runs a cycle and checks every offer against the DRF pick rule.
func (s *propSim) allocate() []Allocation {
	t := s.t
	t.Helper()
	now := s.clock.Now()
	allocs := s.a.Allocate(now)
	const eps = 1e-9

	holding := map[*propFramework]Resources{}
	roleHolding := map[string]Resources{}
	for _, task := range s.tasks {
		holding[task.fw] = holding[task.fw].Add(task.res)
		roleHolding[task.fw.role] = roleHolding[task.fw.role].Add(task.res)
	}
	roleShare := func(role string) float64 { return s.share(roleHolding[role]) / s.weights[role] }
	eligible := func(fw *propFramework, ag *propAgent, free Resources) bool {
		return fw.active && !fw.suppressed && !s.filtered(fw, ag, free, now)
	}
	offered := map[*propAgent]bool{}
	for _, al := range allocs {
		ag, fw := s.agent(al.AgentID), s.framework(al.FrameworkID)
		if offered[ag] || !ag.active {
			t.Fatalf("offer of agent %s (active %v) twice or while inactive", ag.id, ag.active)
		}
		offered[ag] = true
		if free := s.free(ag); !al.Resources.Equal(free) {
			t.Fatalf("offer of %s = %q, want all its free resources %q", ag.id, al.Resources, free)
		}
		if al.Role != fw.role || !eligible(fw, ag, al.Resources) {
			t.Fatalf("offer %+v to a framework that is not eligible: %+v", al, fw)
		}
		for _, other := range s.fws {
			if !eligible(other, ag, al.Resources) {
				continue
			}
			if roleShare(fw.role) > roleShare(other.role)+eps {
				t.Fatalf("offer of %s to %s in role %s (share %v) before role %s (share %v) of %s",
					ag.id, fw.id, fw.role, roleShare(fw.role), other.role, roleShare(other.role), other.id)
			}
			if other.role == fw.role && s.share(holding[fw]) > s.share(holding[other])+eps {
				t.Fatalf("offer of %s to %s (share %v) before %s (share %v) in role %s",
					ag.id, fw.id, s.share(holding[fw]), other.id, s.share(holding[other]), fw.role)
			}
		}
		holding[fw] = holding[fw].Add(al.Resources)
		roleHolding[fw.role] = roleHolding[fw.role].Add(al.Resources)
	}
	for _, ag := range s.agents {
		free := s.free(ag)
		if offered[ag] || !ag.active || !(free.Scalar(CPUs) >= 0.01 || free.Scalar(Mem) >= 32) {
			continue
		}
		for _, fw := range s.fws {
			if eligible(fw, ag, free) {
				t.Fatalf("agent %s with %q free not offered, but %s is eligible", ag.id, free, fw.id)
			}
		}
	}
	return allocs
}

// checkInvariants compares the allocator's accounting with the model's.
func (s *propSim) checkInvariants() {
	t := s.t
	t.Helper()
	want := map[string]map[string]Resources{} // framework → agent → resources of its tasks
	for _, fw := range s.fws {
		want[fw.id] = map[string]Resources{}
	}
	for _, task := range s.tasks {
		want[task.fw.id][task.agent.id] = want[task.fw.id][task.agent.id].Add(task.res)
	}
	sums := map[string]Resources{}
	for _, ag := range s.agents {
		sums[ag.id] = s.a.Free(ag.id)
	}
	for _, fw := range s.fws {
		got := s.a.Allocated(fw.id)
		if len(got) != len(want[fw.id]) {
			t.Fatalf("Allocated(%s) = %v, want %v", fw.id, got, want[fw.id])
		}
		for agentID, r := range got {
			if !r.Equal(want[fw.id][agentID]) {
				t.Fatalf("Allocated(%s)[%s] = %q, want %q", fw.id, agentID, r, want[fw.id][agentID])
			}
			if n := countRanges(sums[agentID].ports) + countRanges(r.ports); countRanges(sums[agentID].Add(r).ports) != n {
				t.Fatalf("ports of %s on %s overlap with others: %q and %q", fw.id, agentID, r, sums[agentID])
			}
			sums[agentID] = sums[agentID].Add(r)
		}
	}
	for _, ag := range s.agents {
		if !sums[ag.id].Equal(ag.total) {
			t.Fatalf("agent %s: free + allocated = %q, want the total %q", ag.id, sums[ag.id], ag.total)
		}
	}
	checkConsistent(t, s.a)
}

func (s *propSim) churnCycle() {
	rng := s.rng
	for _, al := range s.allocate() {
		ag, fw := s.agent(al.AgentID), s.framework(al.FrameworkID)
		offer := al.Resources
		var most int
		for left := offer; fits(fw, left); most++ {
			left = left.Subtract(takeTask(fw, left))
		}
		n := most
		if rng.IntN(10) < 4 {
			n = rng.IntN(most + 1)
		}
		for range n {
			task := takeTask(fw, offer)
			offer = offer.Subtract(task)
			s.tasks = append(s.tasks, propTask{fw: fw, agent: ag, res: task})
		}
		refuse := []time.Duration{0, 0, 0, 3 * time.Second, time.Hour}[rng.IntN(5)]
		s.decline(fw, ag, offer, refuse)
	}
	var finished []propTask
	s.tasks = slices.DeleteFunc(s.tasks, func(task propTask) bool {
		if rng.IntN(25) > 0 {
			return false
		}
		s.a.Recover(task.fw.id, task.agent.id, task.fw.role, task.res, 0)
		finished = append(finished, task)
		return true
	})
	// A confused master recovers what a framework does not hold: a task twice, or a whole
	// agent. The allocator must ignore it.
	for _, task := range finished {
		if !slices.ContainsFunc(s.tasks, func(other propTask) bool { return other.fw == task.fw && other.agent == task.agent }) {
			s.a.Recover(task.fw.id, task.agent.id, task.fw.role, task.res, 0)
			s.a.Recover(task.fw.id, task.agent.id, task.fw.role, task.agent.total, time.Hour)
		}
	}
	for _, fw := range slices.Clone(s.fws) {
		switch rng.IntN(100) {
		case 0, 1:
			s.a.Suppress(fw.id, nil)
			fw.suppressed = true
		case 2, 3:
			s.revive(fw)
		case 4, 5:
			fw.active = !fw.active
			s.a.SetFrameworkActive(fw.id, fw.active)
		case 6:
			s.a.RemoveFramework(fw.id)
			s.fws = slices.DeleteFunc(s.fws, func(f *propFramework) bool { return f == fw })
			s.tasks = slices.DeleteFunc(s.tasks, func(task propTask) bool { return task.fw == fw })
			s.addFramework()
		}
	}
	for _, ag := range s.agents {
		if rng.IntN(50) == 0 {
			ag.active = !ag.active
			s.a.SetAgentActive(ag.id, ag.active)
		}
	}
	s.clock.Advance(time.Second)
	s.checkInvariants()
}

// fill runs phase 2 (see TestAllocatorProperty) and checks the DRF bound.
func (s *propSim) fill() {
	t := s.t
	for _, task := range s.tasks {
		s.a.Recover(task.fw.id, task.agent.id, task.fw.role, task.res, 0)
	}
	s.tasks = nil
	for _, fw := range s.fws {
		s.revive(fw)
		fw.active = true
		s.a.SetFrameworkActive(fw.id, true)
	}
	for _, ag := range s.agents {
		ag.active = false
		s.a.SetAgentActive(ag.id, false)
	}
	s.checkInvariants()

	type lastTask struct {
		gain    float64 // dominant share of the task (divided by the role's weight for roles)
		fitters []*propFramework
	}
	lastOfFramework := map[*propFramework]lastTask{}
	lastOfRole := map[string]lastTask{}
	for _, i := range s.rng.Perm(len(s.agents)) {
		ag := s.agents[i]
		ag.active = true
		s.a.SetAgentActive(ag.id, true)
		for {
			allocs := s.allocate()
			if len(allocs) == 0 {
				break
			}
			al := allocs[0]
			fw := s.framework(al.FrameworkID)
			if !fits(fw, al.Resources) {
				s.decline(fw, ag, al.Resources, time.Hour)
				s.checkInvariants()
				continue
			}
			var fitters []*propFramework
			for _, other := range s.fws {
				if fits(other, al.Resources) {
					fitters = append(fitters, other)
				}
			}
			task := takeTask(fw, al.Resources)
			s.tasks = append(s.tasks, propTask{fw: fw, agent: ag, res: task})
			s.decline(fw, ag, al.Resources.Subtract(task), 0)
			lastOfFramework[fw] = lastTask{gain: s.share(task), fitters: fitters}
			lastOfRole[fw.role] = lastTask{gain: s.share(task) / s.weights[fw.role], fitters: fitters}
			s.checkInvariants()
		}
		ag.active = false
		s.a.SetAgentActive(ag.id, false)
	}

	// Saturated: no framework fits any agent's free resources.
	for _, ag := range s.agents {
		for _, fw := range s.fws {
			if free := s.a.Free(ag.id); fits(fw, free) {
				t.Fatalf("after filling, a task of %s still fits %s's free %q", fw.id, ag.id, free)
			}
		}
	}

	holding := map[*propFramework]Resources{}
	roleHolding := map[string]Resources{}
	for _, task := range s.tasks {
		holding[task.fw] = holding[task.fw].Add(task.res)
		roleHolding[task.fw.role] = roleHolding[task.fw.role].Add(task.res)
	}
	roleShare := func(role string) float64 { return s.share(roleHolding[role]) / s.weights[role] }
	const eps = 1e-9
	compared := 0
	for i, last := range lastOfFramework {
		for _, j := range last.fitters {
			if j.role != i.role || j == i {
				continue
			}
			compared++
			if gap := s.share(holding[i]) - s.share(holding[j]); gap > last.gain+eps {
				t.Errorf("role %s: %s has share %v, %s has %v: gap %v exceeds one task of %s (%v)",
					i.role, i.id, s.share(holding[i]), j.id, s.share(holding[j]), gap, i.id, last.gain)
			}
		}
	}
	for role, last := range lastOfRole {
		for _, j := range last.fitters {
			if j.role == role {
				continue
			}
			compared++
			if gap := roleShare(role) - roleShare(j.role); gap > last.gain+eps {
				t.Errorf("role %s has weighted share %v, role %s has %v: gap %v exceeds one task (%v)",
					role, roleShare(role), j.role, roleShare(j.role), gap, last.gain)
			}
		}
	}
	if compared == 0 {
		t.Fatal("no pair of frameworks or roles was compared")
	}
	t.Logf("%d agents, %d frameworks, %d tasks, %d comparisons", len(s.agents), len(s.fws), len(s.tasks), compared)
}

// checkConsistent checks the allocator's internal bookkeeping: every agent's free and held
// resources add up to its total without overlapping, sums by client and role match what
// they hold, and the DRF orders are sorted and hold exactly the ready clients.
func checkConsistent(t testing.TB, a *Allocator) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var total quantities
	sums := map[*agent]Resources{}
	for _, ag := range a.agents {
		total.add(ag.total)
		sums[ag] = ag.free
		if a.agentOrder[ag.index] != ag {
			t.Fatalf("agent %s not at its index", ag.id)
		}
	}
	if total.fixed != a.total.fixed || len(a.agentOrder) != len(a.agents) {
		t.Fatalf("cluster total %v, want %v", a.total.fixed, total.fixed)
	}
	roleAlloc := map[*role][4]int64{}
	roleMembers := map[*role]int{}
	for _, fw := range a.frameworks {
		for name, c := range fw.clients {
			if c.role != a.roles[name] || c.gone || c.fw != fw {
				t.Fatalf("client %s/%s is not linked to its role", fw.id, name)
			}
			roleMembers[c.role]++
			var held quantities
			for ag, r := range c.held {
				if r.IsEmpty() || a.agents[ag.id] != ag {
					t.Fatalf("client %s/%s holds %q on agent %s", fw.id, name, r, ag.id)
				}
				if countRanges(sums[ag].Add(r).ports) != countRanges(sums[ag].ports)+countRanges(r.ports) {
					t.Fatalf("ports of %s/%s on %s are also free or held elsewhere", fw.id, name, ag.id)
				}
				sums[ag] = sums[ag].Add(r)
				held.add(r)
			}
			if held.fixed != c.alloc.fixed {
				t.Fatalf("client %s/%s alloc %v, holds %v", fw.id, name, c.alloc.fixed, held.fixed)
			}
			sum := roleAlloc[c.role]
			for i := range sum {
				sum[i] += held.fixed[i]
			}
			roleAlloc[c.role] = sum
			if c.listed != c.ready() || c.listed != slices.Contains(c.role.clients, c) {
				t.Fatalf("client %s/%s listed %v, ready %v", fw.id, name, c.listed, c.ready())
			}
			filters := 0
			for _, ag := range a.agentOrder {
				if _, ok := ag.filters[c]; ok {
					filters++
				}
			}
			if filters != c.filterCount {
				t.Fatalf("client %s/%s has filters on %d agents, counted %d", fw.id, name, filters, c.filterCount)
			}
		}
	}
	for ag, sum := range sums {
		if !sum.Equal(ag.total) {
			t.Fatalf("agent %s: free + held = %q, total %q", ag.id, sum, ag.total)
		}
	}
	for name, r := range a.roles {
		if r.alloc.fixed != roleAlloc[r] || r.members != roleMembers[r] || r.name != name {
			t.Fatalf("role %s: alloc %v members %d, want %v and %d", name, r.alloc.fixed, r.members, roleAlloc[r], roleMembers[r])
		}
		if !slices.IsSortedFunc(r.clients, compareClients) {
			t.Fatalf("role %s: clients out of order", name)
		}
		if r.listed != (len(r.clients) > 0) || r.listed != slices.Contains(a.roleOrder, r) {
			t.Fatalf("role %s listed %v with %d ready clients", name, r.listed, len(r.clients))
		}
	}
	if !slices.IsSortedFunc(a.roleOrder, compareRoles) {
		t.Fatal("roles out of order")
	}
}
