package alloc

import (
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"
)

// testLogWriter sends log lines to t.Log, so they show only when a test fails.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// fakeClock is the allocator's clock in tests; filters expire relative to it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// newTestAllocator returns an allocator with the default minimum allocatable resources, a
// fixed seed, a fake clock and logs to t.
func newTestAllocator(t testing.TB, change func(*Config)) (*Allocator, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	cfg := DefaultConfig()
	cfg.Seed = 1
	cfg.Now = clock.Now
	cfg.Logger = slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	if change != nil {
		change(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(cfg), clock
}

// offers formats allocations as "framework@agent/role=resources", sorted.
func offers(allocs []Allocation) []string {
	out := []string{}
	for _, al := range allocs {
		out = append(out, fmt.Sprintf("%s@%s/%s=%s", al.FrameworkID, al.AgentID, al.Role, al.Resources))
	}
	sort.Strings(out)
	return out
}

func expectOffers(t *testing.T, a *Allocator, now time.Time, want ...string) []Allocation {
	t.Helper()
	allocs := a.Allocate(now)
	if want == nil {
		want = []string{}
	}
	if got := offers(allocs); !reflect.DeepEqual(got, want) {
		t.Fatalf("Allocate() = %q, want %q", got, want)
	}
	return allocs
}

func expectFree(t *testing.T, a *Allocator, agentID, want string) {
	t.Helper()
	if got := a.Free(agentID).String(); got != want {
		t.Fatalf("Free(%s) = %q, want %q", agentID, got, want)
	}
}

func TestSingleFrameworkGetsWholeAgent(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	total := mustParse(t, "cpus:4;mem:1024;ports:[31000-31010];zones:{a}")
	a.AddAgent("a1", "host1", total, nil)
	a.AddFramework("f1", []string{"*"}, nil, true)
	now := clock.Now()

	expectOffers(t, a, now, "f1@a1/*=cpus:4;mem:1024;ports:[31000-31010];zones:{a}")
	expectFree(t, a, "a1", "")
	if got := a.Allocated("f1"); len(got) != 1 || !got["a1"].Equal(total) {
		t.Fatalf("Allocated(f1) = %v", got)
	}
	if got := a.Shares(); !reflect.DeepEqual(got, map[string]float64{"f1": 1}) {
		t.Fatalf("Shares() = %v", got)
	}
	expectOffers(t, a, now)

	// The framework launches a task with 1 cpu, 256 mem and one port and hands back the rest.
	task := mustParse(t, "cpus:1;mem:256;ports:[31005-31005]")
	a.Recover("f1", "a1", "*", total.Subtract(task), 0)
	expectFree(t, a, "a1", "cpus:3;mem:768;ports:[31000-31004,31006-31010];zones:{a}")
	if got := a.Shares()["f1"]; got != 0.25 {
		t.Fatalf("share = %v, want 0.25", got)
	}
	expectOffers(t, a, now, "f1@a1/*=cpus:3;mem:768;ports:[31000-31004,31006-31010];zones:{a}")
}

func TestDeclineFilter(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	total := mustParse(t, "cpus:4;mem:1024")
	a.AddAgent("a1", "host1", total, nil)
	a.AddFramework("f1", nil, nil, true)
	start := clock.Now()

	expectOffers(t, a, start, "f1@a1/*=cpus:4;mem:1024")
	a.Recover("f1", "a1", "*", total, 5*time.Second)
	expectOffers(t, a, start.Add(4999*time.Millisecond))
	expectOffers(t, a, start.Add(5*time.Second), "f1@a1/*=cpus:4;mem:1024")

	// A task keeps 1 cpu; the rest is declined for an hour.
	task := mustParse(t, "cpus:1;mem:256")
	a.Recover("f1", "a1", "*", total.Subtract(task), time.Hour)
	expectOffers(t, a, start.Add(10*time.Second))
	// The task ends: more is free than the filter covers, so the agent is offered again.
	a.Recover("f1", "a1", "*", task, 0)
	expectOffers(t, a, start.Add(11*time.Second), "f1@a1/*=cpus:4;mem:1024")

	// Declined again; Revive clears the filter.
	a.Recover("f1", "a1", "*", total, time.Hour)
	expectOffers(t, a, start.Add(12*time.Second))
	a.Revive("f1", nil)
	expectOffers(t, a, start.Add(12*time.Second), "f1@a1/*=cpus:4;mem:1024")
}

func TestFilterPassesAgentToNextFramework(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	total := mustParse(t, "cpus:2;mem:512")
	a.AddAgent("a1", "host1", total, nil)
	a.AddFramework("f1", []string{"web"}, nil, true)
	a.AddFramework("f2", []string{"web"}, nil, true)
	now := clock.Now()

	expectOffers(t, a, now, "f1@a1/web=cpus:2;mem:512")
	a.Recover("f1", "a1", "web", total, time.Minute)
	// Both shares are 0 again and f1 sorts first, but its filter passes the agent on.
	expectOffers(t, a, now, "f2@a1/web=cpus:2;mem:512")
	a.Recover("f2", "a1", "web", total, 0)
	expectOffers(t, a, now, "f2@a1/web=cpus:2;mem:512")
	a.Recover("f2", "a1", "web", total, 0)
	expectOffers(t, a, now.Add(time.Minute), "f1@a1/web=cpus:2;mem:512")
}

func TestSuppressRevive(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	a.AddAgent("a1", "host1", mustParse(t, "cpus:1;mem:128"), nil)
	a.AddFramework("f1", []string{"a", "b"}, []string{"b"}, true)
	now := clock.Now()

	expectOffers(t, a, now, "f1@a1/a=cpus:1;mem:128")
	a.Recover("f1", "a1", "a", mustParse(t, "cpus:1;mem:128"), 0)
	a.Suppress("f1", []string{"a"})
	expectOffers(t, a, now)
	a.Revive("f1", []string{"b"})
	expectOffers(t, a, now, "f1@a1/b=cpus:1;mem:128")
	a.Recover("f1", "a1", "b", mustParse(t, "cpus:1;mem:128"), 0)
	a.Suppress("f1", nil)
	expectOffers(t, a, now)
	a.Revive("f1", nil)
	expectOffers(t, a, now, "f1@a1/a=cpus:1;mem:128")
}

func TestMinAllocatable(t *testing.T) {
	tests := []struct {
		min   []string
		agent string
		offer bool
	}{
		{nil, "cpus:0.009;mem:31", false}, // the default: cpus:0.01 or mem:32
		{nil, "cpus:0.01", true},
		{nil, "mem:32", true},
		{nil, "cpus:0.005;mem:16;disk:1000;ports:[1-100]", false},
		{[]string{}, "cpus:0.001", true},
		{[]string{"ports:[1-2]"}, "ports:[7-8]", true},
		{[]string{"ports:[1-2]"}, "cpus:4;ports:[7-7]", false},
		{[]string{"cpus:1;mem:512", "gpus:1"}, "cpus:1;mem:511", false},
		{[]string{"cpus:1;mem:512", "gpus:1"}, "gpus:1", true},
	}
	for _, tt := range tests {
		a, clock := newTestAllocator(t, func(c *Config) {
			if tt.min != nil {
				c.MinAllocatable = nil
				for _, m := range tt.min {
					c.MinAllocatable = append(c.MinAllocatable, mustParse(t, m))
				}
			}
		})
		a.AddAgent("a1", "host1", mustParse(t, tt.agent), nil)
		a.AddFramework("f1", []string{"*"}, nil, true)
		if got := len(a.Allocate(clock.Now())) == 1; got != tt.offer {
			t.Errorf("min %q, agent %q: offered = %v, want %v", tt.min, tt.agent, got, tt.offer)
		}
	}
}

// countByRole counts allocations by role.
func countByRole(allocs []Allocation) map[string]int {
	out := map[string]int{}
	for _, al := range allocs {
		out[al.Role]++
	}
	return out
}

func TestWeights(t *testing.T) {
	a, clock := newTestAllocator(t, func(c *Config) { c.Weights = map[string]float64{"big": 2} })
	for i := range 30 {
		a.AddAgent(fmt.Sprintf("a%02d", i), "host", mustParse(t, "cpus:1;mem:1024"), nil)
	}
	a.AddFramework("f-big", []string{"big"}, nil, true)
	a.AddFramework("f-small", []string{"small"}, nil, true)
	got := countByRole(a.Allocate(clock.Now()))
	if want := map[string]int{"big": 20, "small": 10}; !reflect.DeepEqual(got, want) {
		t.Fatalf("agents by role = %v, want %v", got, want)
	}

	// With weight 4 for "small", a fresh set of agents splits 1:4 once both are level.
	a.SetWeight("small", 4)
	a.SetWeight("small", -1) // ignored
	for i := range 70 {
		a.AddAgent(fmt.Sprintf("b%02d", i), "host", mustParse(t, "cpus:1;mem:1024"), nil)
	}
	got = countByRole(a.Allocate(clock.Now()))
	// Of 100 agents big ends with 34 and small with 66: weighted shares 0.17 and 0.165.
	if want := map[string]int{"big": 14, "small": 56}; !reflect.DeepEqual(got, want) {
		t.Fatalf("agents by role = %v, want %v", got, want)
	}
}

func TestInactiveSkipped(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	a.AddAgent("a1", "host1", mustParse(t, "cpus:1;mem:128"), nil)
	a.AddFramework("f1", nil, nil, true)
	a.AddFramework("f2", nil, nil, false)
	now := clock.Now()

	a.SetFrameworkActive("f1", false)
	expectOffers(t, a, now)
	a.SetFrameworkActive("f2", true)
	a.SetAgentActive("a1", false)
	expectOffers(t, a, now)
	a.SetAgentActive("a1", true)
	expectOffers(t, a, now, "f2@a1/*=cpus:1;mem:128")
}

func TestRemoveFrameworkFrees(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	a.AddAgent("a1", "host1", mustParse(t, "cpus:1;mem:128"), nil)
	a.AddAgent("a2", "host2", mustParse(t, "cpus:2;mem:256"), nil)
	a.AddFramework("f1", []string{"x", "y"}, nil, true)
	now := clock.Now()

	expectOffers(t, a, now, "f1@a1/x=cpus:1;mem:128", "f1@a2/y=cpus:2;mem:256")
	a.RemoveFramework("f1")
	expectFree(t, a, "a1", "cpus:1;mem:128")
	expectFree(t, a, "a2", "cpus:2;mem:256")
	if got := a.Allocated("f1"); got != nil {
		t.Fatalf("Allocated(f1) = %v after removal", got)
	}
	a.Recover("f1", "a1", "x", mustParse(t, "cpus:1"), time.Hour) // no-op
	a.AddFramework("f2", nil, nil, true)
	expectOffers(t, a, now, "f2@a1/*=cpus:1;mem:128", "f2@a2/*=cpus:2;mem:256")
}

func TestRemoveAgent(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	a.AddAgent("a1", "host1", mustParse(t, "cpus:1;mem:128"), nil)
	a.AddAgent("a2", "host2", mustParse(t, "cpus:1;mem:128"), nil)
	a.AddFramework("f1", nil, nil, true)
	now := clock.Now()
	expectOffers(t, a, now, "f1@a1/*=cpus:1;mem:128", "f1@a2/*=cpus:1;mem:128")
	a.Recover("f1", "a2", "*", mustParse(t, "cpus:1;mem:128"), time.Hour)

	a.RemoveAgent("a1")
	a.RemoveAgent("a1")
	if got := a.Allocated("f1"); len(got) != 0 {
		t.Fatalf("Allocated(f1) = %v after removing a1", got)
	}
	if got := a.Shares()["f1"]; got != 0 {
		t.Fatalf("share = %v, want 0", got)
	}
	a.Recover("f1", "a1", "*", mustParse(t, "cpus:1"), 0) // no-op
	expectFree(t, a, "a1", "")
	// Re-adding a2 replaces it: its filter and allocations are gone.
	a.AddAgent("a2", "host2", mustParse(t, "cpus:3;mem:128"), nil)
	expectOffers(t, a, now, "f1@a2/*=cpus:3;mem:128")
}

func TestRecoverOnlyWhatIsHeld(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	a.AddAgent("a1", "host1", mustParse(t, "cpus:4;mem:1024;ports:[1-10]"), nil)
	a.AddFramework("f1", nil, nil, true)
	a.AddFramework("f2", nil, nil, true)
	now := clock.Now()
	expectOffers(t, a, now, "f1@a1/*=cpus:4;mem:1024;ports:[1-10]")

	a.Recover("nobody", "a1", "*", mustParse(t, "cpus:4"), 0)
	a.Recover("f1", "nowhere", "*", mustParse(t, "cpus:4"), 0)
	a.Recover("f1", "a1", "other-role", mustParse(t, "cpus:4"), 0)
	a.Recover("f2", "a1", "*", mustParse(t, "cpus:4"), 0)
	expectFree(t, a, "a1", "")

	a.Recover("f1", "a1", "*", mustParse(t, "cpus:1;ports:[5-5]"), 0)
	a.Recover("f1", "a1", "*", mustParse(t, "cpus:1;ports:[5-5]"), 0) // already recovered: cpus:1 more only
	expectFree(t, a, "a1", "cpus:2;ports:[5-5]")
	a.Recover("f1", "a1", "", mustParse(t, "cpus:100;mem:100000;ports:[0-100];disk:5"), 0)
	expectFree(t, a, "a1", "cpus:4;mem:1024;ports:[1-10]")
	if got := a.Allocated("f1"); len(got) != 0 {
		t.Fatalf("Allocated(f1) = %v", got)
	}
}

func TestAddUsed(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	// After a failover the agent comes back with tasks of a framework not subscribed yet.
	a.AddAgent("a1", "host1", mustParse(t, "cpus:4;mem:1024;ports:[1-10]"),
		map[string]Resources{"f1": mustParse(t, "cpus:1;mem:256;ports:[3-3]")})
	expectFree(t, a, "a1", "cpus:3;mem:768;ports:[1-2,4-10]")
	// More than is free: only the free part is charged.
	a.AddUsed("f1", "a1", "web", mustParse(t, "cpus:5;ports:[3-4]"))
	expectFree(t, a, "a1", "mem:768;ports:[1-2,5-10]")
	a.AddUsed("f1", "unknown", "web", mustParse(t, "cpus:1"))
	if got := a.Allocated("f1")["a1"].String(); got != "cpus:4;mem:256;ports:[3-4]" {
		t.Fatalf("Allocated(f1) = %q", got)
	}
	// Nobody can be offered anything: f1 has not subscribed.
	expectOffers(t, a, clock.Now())

	a.AddFramework("f2", nil, nil, true)
	expectOffers(t, a, clock.Now(), "f2@a1/*=mem:768;ports:[1-2,5-10]")
	// f1's tasks end before it resubscribes; once all are recovered it is forgotten.
	a.Recover("f1", "a1", "*", mustParse(t, "cpus:1;mem:256;ports:[3-3]"), 0)
	a.Recover("f1", "a1", "web", mustParse(t, "cpus:3;ports:[4-4]"), time.Hour)
	if got := a.Allocated("f1"); got != nil {
		t.Fatalf("Allocated(f1) = %v, want nil", got)
	}
	if _, ok := a.Shares()["f1"]; ok {
		t.Fatal("placeholder framework f1 still has a share")
	}
	expectOffers(t, a, clock.Now(), "f2@a1/*=cpus:4;mem:256;ports:[3-4]")
}

func TestAddFrameworkAfterUsed(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	a.AddAgent("a1", "host1", mustParse(t, "cpus:4;mem:1024"), nil)
	a.AddAgent("a2", "host2", mustParse(t, "cpus:4;mem:1024"), nil)
	a.AddUsed("f1", "a1", "web", mustParse(t, "cpus:4;mem:1024"))
	a.AddFramework("f1", []string{"web"}, nil, true)
	a.AddFramework("f2", []string{"web"}, nil, true)
	// f1 already holds a whole agent, so f2 comes first in DRF order.
	expectOffers(t, a, clock.Now(), "f2@a2/web=cpus:4;mem:1024")
	a.Recover("f1", "a1", "web", mustParse(t, "cpus:4;mem:1024"), 0)
	expectOffers(t, a, clock.Now(), "f1@a1/web=cpus:4;mem:1024")
}

func TestDRFOrder(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	for i := range 6 {
		a.AddAgent(fmt.Sprintf("a%d", i), "host", mustParse(t, "cpus:1;mem:1000"), nil)
	}
	a.AddAgent("m", "host", mustParse(t, "cpus:1;mem:4000"), nil) // cluster: cpus 7, mem 10000
	a.AddFramework("f1", []string{"r"}, nil, true)
	a.AddFramework("f2", []string{"r"}, nil, true)
	a.AddFramework("f3", []string{"s"}, nil, true)
	a.AddUsed("f1", "m", "r", mustParse(t, "cpus:1;mem:4000"))  // f1: mem 0.4
	a.AddUsed("f2", "a0", "r", mustParse(t, "cpus:1;mem:1000")) // f2: cpus 1/7; role r: mem 0.5
	a.AddUsed("f3", "a1", "s", mustParse(t, "cpus:1;mem:1000")) // role s: cpus 2/7
	a.AddUsed("f3", "a2", "s", mustParse(t, "cpus:1;mem:1000")) //
	// The three free agents each add cpus 1/7: role s (2/7) gets one, then (3/7 < 0.5)
	// another; at 4/7 role r (0.5) comes first and, within it, f2 (1/7) before f1 (0.4).
	allocs := a.Allocate(clock.Now())
	if got := countByFramework(allocs); !reflect.DeepEqual(got, map[string]int{"f2": 1, "f3": 2}) {
		t.Fatalf("agents by framework = %v", got)
	}
}

func countByFramework(allocs []Allocation) map[string]int {
	out := map[string]int{}
	for _, al := range allocs {
		out[al.FrameworkID]++
	}
	return out
}

func TestUpdateFrameworkRoles(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	a.AddAgent("a1", "host1", mustParse(t, "cpus:1;mem:128"), nil)
	a.AddAgent("a2", "host2", mustParse(t, "cpus:1;mem:128"), nil)
	a.AddFramework("f1", []string{"old"}, nil, true)
	now := clock.Now()
	expectOffers(t, a, now, "f1@a1/old=cpus:1;mem:128", "f1@a2/old=cpus:1;mem:128")
	a.Recover("f1", "a2", "old", mustParse(t, "cpus:1;mem:128"), time.Hour)

	a.UpdateFrameworkRoles("f1", []string{"new"})
	a.UpdateFrameworkRoles("unknown", []string{"new"})
	expectOffers(t, a, now, "f1@a2/new=cpus:1;mem:128")
	// The allocation under the old role is still recoverable under it.
	a.Recover("f1", "a1", "old", mustParse(t, "cpus:1;mem:128"), 0)
	expectOffers(t, a, now, "f1@a1/new=cpus:1;mem:128")
	a.Revive("f1", []string{"old"}) // not a role of f1 any more: no-op
	if got := a.Allocated("f1"); len(got) != 2 {
		t.Fatalf("Allocated(f1) = %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		weights map[string]float64
		want    string
	}{
		{map[string]float64{"a": 1, "b": 0.5}, ""},
		{map[string]float64{"a": 0}, `weight of role "a" is 0, want a positive finite number`},
		{map[string]float64{"a": -2}, `weight of role "a" is -2`},
		{map[string]float64{"": 1}, "weight 1 names no role"},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		cfg.Weights = tt.weights
		err := cfg.Validate()
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && (err == nil || got[:len(tt.want)] != tt.want)) {
			t.Errorf("Validate(%v) = %v, want %q", tt.weights, err, tt.want)
		}
	}
}

// TestConcurrentUse drives the allocator from several goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	a, clock := newTestAllocator(t, nil)
	for i := range 20 {
		a.AddAgent(fmt.Sprintf("a%d", i), "host", mustParse(t, "cpus:2;mem:512;ports:[1-10]"), nil)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			id := fmt.Sprintf("f%d", g)
			a.AddFramework(id, []string{"r"}, nil, true)
			for range 50 {
				for _, al := range a.Allocate(clock.Now()) {
					a.Recover(al.FrameworkID, al.AgentID, al.Role, al.Resources, time.Millisecond)
				}
				a.Revive(id, nil)
				_ = a.Shares()
				_ = a.Allocated(id)
			}
		})
	}
	wg.Wait()
	for i := range 20 {
		expectFree(t, a, fmt.Sprintf("a%d", i), "cpus:2;mem:512;ports:[1-10]")
	}
}
