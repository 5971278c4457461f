package master_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// cluster is one master and one agent on loopback.
func cluster(t *testing.T, opts ...func(*master.Config)) (*master.TestServer, *agent.Agent) {
	t.Helper()
	ts := master.NewTestServer(t, opts...)
	a := agent.TestAgent(t, ts.Masters)
	waitAgents(t, ts, 1)
	return ts, a
}

func waitAgents(t *testing.T, ts *master.TestServer, n int) {
	t.Helper()
	client := api.NewClient(ts.URL)
	eventually(t, fmt.Sprintf("%d active agents", n), func() error {
		got, err := client.GetAgents(context.Background())
		if err != nil {
			return err
		}
		active := 0
		for _, a := range got.Agents {
			if a.Active {
				active++
			}
		}
		if active != n {
			return fmt.Errorf("%d active agents", active)
		}
		return nil
	})
}

func TestLaunchRunsToFinishedWithAcks(t *testing.T) {
	ts, a := cluster(t)
	f := subscribe(t, ts.URL, frameworkInfo("launch"))
	offers := f.offers()
	if len(offers) != 1 || offers[0].AgentID.Value != a.ID() {
		t.Fatalf("offers = %+v, want one from agent %s", offers, a.ID())
	}
	if got := scalarOf(offers[0].Resources, "cpus"); got != 4 {
		t.Fatalf("offered cpus = %v, want 4", got)
	}
	f.launch(offers[0], shellTask("hello", "echo hello-from-task", 0.5, 64))

	running := f.update("hello", api.TaskRunning, true)
	if len(running.UUID) != 16 || running.AgentID == nil || running.AgentID.Value != a.ID() {
		t.Fatalf("TASK_RUNNING = %+v, want a 16-byte uuid and agent %s", running, a.ID())
	}
	finished := f.update("hello", api.TaskFinished, true)
	if finished.Source != api.SourceExecutor {
		t.Fatalf("TASK_FINISHED source = %s, want SOURCE_EXECUTOR", finished.Source)
	}

	// The task is recorded as finished, and its output is in the sandbox.
	eventually(t, "task completed in state", func() error {
		tasks, err := f.client.GetTasks(context.Background())
		if err != nil {
			return err
		}
		if len(tasks.CompletedTasks) != 1 || tasks.CompletedTasks[0].State != api.TaskFinished || len(tasks.Tasks) != 0 {
			return fmt.Errorf("tasks %+v", tasks)
		}
		return nil
	})
	sandbox := sandboxOf(t, finished)
	out, err := os.ReadFile(filepath.Join(sandbox, "stdout"))
	if err != nil || string(out) != "hello-from-task\n" {
		t.Fatalf("stdout = %q, %v; want %q", out, err, "hello-from-task\n")
	}
	// The freed resources are offered again in full.
	o := f.offers()
	if got := scalarOf(o[0].Resources, "cpus"); got != 4 {
		t.Fatalf("re-offered cpus = %v, want 4", got)
	}
}

// sandboxOf reads the sandbox_directory label the agent puts on its updates.
func sandboxOf(t *testing.T, st api.TaskStatus) string {
	t.Helper()
	if st.Labels != nil {
		for _, l := range st.Labels.Labels {
			if l.Key == "sandbox_directory" {
				return l.Value
			}
		}
	}
	t.Fatalf("status %+v has no sandbox_directory label", st)
	return ""
}

func TestKill(t *testing.T) {
	ts, _ := cluster(t)
	f := subscribe(t, ts.URL, frameworkInfo("kill"))
	o := f.offers()[0]
	f.launch(o, shellTask("sleeper", "sleep 60", 0.1, 32))
	f.update("sleeper", api.TaskRunning, true)
	if err := f.stream.Kill(f.ctx, api.TaskID{Value: "sleeper"}, &o.AgentID); err != nil {
		t.Fatalf("kill: %v", err)
	}
	st := f.update("sleeper", api.TaskKilled, true)
	if st.Source != api.SourceExecutor {
		t.Fatalf("TASK_KILLED source = %s", st.Source)
	}
	// Killing an unknown task answers TASK_LOST for a framework that is not partition-aware.
	if err := f.stream.Kill(f.ctx, api.TaskID{Value: "nope"}, nil); err != nil {
		t.Fatalf("kill unknown: %v", err)
	}
	lost := f.update("nope", api.TaskLost, false)
	if len(lost.UUID) != 0 {
		t.Fatalf("master-generated update has uuid %x", lost.UUID)
	}
}

func TestDeclineFilterThenRevive(t *testing.T) {
	ts, _ := cluster(t)
	f := subscribe(t, ts.URL, frameworkInfo("decline"))
	o := f.offers()[0]
	if err := f.stream.Decline(f.ctx, []api.OfferID{o.ID}, refuse(3600)); err != nil {
		t.Fatalf("decline: %v", err)
	}
	// Allocation runs every 100ms here: ten passes must all respect the filter.
	f.quiet(time.Second, "offer despite the decline filter", func(ev *api.Event) bool { return ev.Type == api.EventOffers })
	if err := f.stream.Revive(f.ctx); err != nil {
		t.Fatalf("revive: %v", err)
	}
	if got := f.offers(); got[0].AgentID != o.AgentID {
		t.Fatalf("offer after revive from %s, want %s", got[0].AgentID.Value, o.AgentID.Value)
	}
}

func TestSuppress(t *testing.T) {
	ts, _ := cluster(t)
	f := subscribe(t, ts.URL, frameworkInfo("suppress"))
	o := f.offers()[0]
	if err := f.stream.Suppress(f.ctx); err != nil {
		t.Fatalf("suppress: %v", err)
	}
	if err := f.stream.Decline(f.ctx, []api.OfferID{o.ID}, refuse(0)); err != nil {
		t.Fatalf("decline: %v", err)
	}
	f.quiet(time.Second, "offer while suppressed", func(ev *api.Event) bool { return ev.Type == api.EventOffers })
	if err := f.stream.Revive(f.ctx); err != nil {
		t.Fatalf("revive: %v", err)
	}
	f.offers()
}

func TestReconcile(t *testing.T) {
	ts, _ := cluster(t)
	f := subscribe(t, ts.URL, frameworkInfo("reconcile", api.CapabilityPartitionAware))
	o := f.offers()[0]
	f.launch(o, shellTask("r1", "sleep 60", 0.1, 32))
	f.update("r1", api.TaskRunning, true)

	// Implicit: every task of the framework, without uuid.
	if err := f.stream.Reconcile(f.ctx); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	st := f.update("r1", api.TaskRunning, false)
	if st.Reason != api.ReasonReconciliation || len(st.UUID) != 0 {
		t.Fatalf("implicit reconcile = %+v, want REASON_RECONCILIATION without uuid", st)
	}
	// Explicit: a known task, and unknown tasks on a known and an unknown agent.
	err := f.stream.Reconcile(f.ctx,
		api.ReconcileTask{TaskID: api.TaskID{Value: "r1"}},
		api.ReconcileTask{TaskID: api.TaskID{Value: "ghost"}, AgentID: &o.AgentID},
		api.ReconcileTask{TaskID: api.TaskID{Value: "phantom"}, AgentID: &api.AgentID{Value: "no-such-agent"}})
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	f.update("r1", api.TaskRunning, false)
	f.update("ghost", api.TaskGone, false)
	f.update("phantom", api.TaskUnknown, false)
}

func TestFrameworkFailover(t *testing.T) {
	ts, _ := cluster(t)
	info := frameworkInfo("failover")
	info.FailoverTimeout = 2
	f := subscribe(t, ts.URL, info)
	o := f.offers()[0]
	f.launch(o, shellTask("survivor", "sleep 60", 0.1, 32))
	f.update("survivor", api.TaskRunning, true)
	id := f.stream.FrameworkID()

	// Within the timeout: resubscribing with the id keeps the task.
	f.close()
	info.ID = &id
	f2 := subscribe(t, ts.URL, info)
	if f2.id() != id.Value {
		t.Fatalf("resubscribed as %s, want %s", f2.id(), id.Value)
	}
	if err := f2.stream.Reconcile(f2.ctx); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	f2.update("survivor", api.TaskRunning, false)

	// Beyond it: the framework is removed and its task killed.
	f2.close()
	client := api.NewClient(ts.URL)
	eventually(t, "framework removed and task killed", func() error {
		fws, err := client.GetFrameworks(context.Background())
		if err != nil {
			return err
		}
		if len(fws.CompletedFrameworks) != 1 || fws.CompletedFrameworks[0].FrameworkInfo.ID.Value != id.Value {
			return fmt.Errorf("completed frameworks %+v", fws.CompletedFrameworks)
		}
		tasks, err := client.GetTasks(context.Background())
		if err != nil {
			return err
		}
		if len(tasks.Tasks) != 0 || len(tasks.CompletedTasks) != 1 || tasks.CompletedTasks[0].State != api.TaskKilled {
			return fmt.Errorf("tasks %+v", tasks)
		}
		return nil
	})
	// A removed framework cannot come back.
	s, err := client.Subscribe(context.Background(), info, nil)
	if err != nil {
		t.Fatalf("subscribe after removal: %v", err)
	}
	defer s.Close()
	ev, err := s.Next()
	if err != nil || ev.Type != api.EventError || !strings.Contains(ev.Error.Message, "removed") {
		t.Fatalf("subscribe after removal: %+v, %v; want an ERROR event saying it was removed", ev, err)
	}
}

func TestAgentRestartRedeliversUnacknowledgedUpdate(t *testing.T) {
	ts := master.NewTestServer(t)
	workDir := t.TempDir()
	withWorkDir := func(c *agent.Config) { c.WorkDir = workDir }
	a1 := agent.TestAgent(t, ts.Masters, withWorkDir)
	waitAgents(t, ts, 1)
	f := subscribe(t, ts.URL, frameworkInfo("redeliver"))
	o := f.offers()[0]
	f.launch(o, shellTask("once", "echo once", 0.1, 32))
	f.update("once", api.TaskRunning, true)
	finished := f.update("once", api.TaskFinished, false) // not acknowledged

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a1.Shutdown(ctx, false); err != nil {
		t.Fatalf("agent shutdown: %v", err)
	}
	// Drain whatever retries the first agent made before it stopped.
	f.quiet(300*time.Millisecond, "", func(*api.Event) bool { return false })

	a2 := agent.TestAgent(t, ts.Masters, withWorkDir)
	if a2.ID() != a1.ID() {
		t.Fatalf("restarted agent id %q, want %q", a2.ID(), a1.ID())
	}
	again := f.update("once", api.TaskFinished, false)
	if !bytes.Equal(again.UUID, finished.UUID) {
		t.Fatalf("redelivered uuid %x, want %x", again.UUID, finished.UUID)
	}
	f.ack(again)
	// Once acknowledged it is not sent again (retries run every 200ms in tests).
	f.quiet(time.Second, "update after its acknowledgement", func(ev *api.Event) bool {
		return ev.Type == api.EventUpdate && ev.Update.Status.TaskID.Value == "once"
	})
}

func TestMasterRestartRecoversState(t *testing.T) {
	ts, a := cluster(t)
	info := frameworkInfo("recover")
	info.FailoverTimeout = 60
	f := subscribe(t, ts.URL, info)
	o := f.offers()[0]
	f.launch(o, shellTask("long", "sleep 60", 1, 128))
	f.update("long", api.TaskRunning, true)
	id := f.stream.FrameworkID()
	f.close()

	ts.Restart()
	client := api.NewClient(ts.URL)
	eventually(t, "state recovered from raft", func() error {
		st, err := client.GetState(context.Background())
		if err != nil {
			return err
		}
		if n := len(st.GetAgents.Agents); n != 1 || st.GetAgents.Agents[0].AgentInfo.ID.Value != a.ID() || !st.GetAgents.Agents[0].Active {
			return fmt.Errorf("agents %+v", st.GetAgents.Agents)
		}
		if n := len(st.GetFrameworks.Frameworks); n != 1 || st.GetFrameworks.Frameworks[0].FrameworkInfo.ID.Value != id.Value {
			return fmt.Errorf("frameworks %+v", st.GetFrameworks.Frameworks)
		}
		if n := len(st.GetTasks.Tasks); n != 1 || st.GetTasks.Tasks[0].State != api.TaskRunning {
			return fmt.Errorf("tasks %+v", st.GetTasks.Tasks)
		}
		return nil
	})
	info.ID = &id
	f2 := subscribe(t, ts.URL, info)
	// The running task's resources stay allocated: only the rest is offered.
	o2 := f2.offers()[0]
	if got := scalarOf(o2.Resources, "cpus"); got != 3 {
		t.Fatalf("offered cpus after restart = %v, want 3 (1 of 4 in use)", got)
	}
	if err := f2.stream.Reconcile(f2.ctx); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	f2.update("long", api.TaskRunning, false)
	if err := f2.stream.Kill(f2.ctx, api.TaskID{Value: "long"}, nil); err != nil {
		t.Fatalf("kill: %v", err)
	}
	f2.update("long", api.TaskKilled, true)
}

func TestAgentLossMakesTasksUnreachableOrLost(t *testing.T) {
	ts := master.NewTestServer(t)
	workDir := t.TempDir()
	withWorkDir := func(c *agent.Config) { c.WorkDir = workDir }
	a1 := agent.TestAgent(t, ts.Masters, withWorkDir)
	waitAgents(t, ts, 1)

	aware := subscribe(t, ts.URL, frameworkInfo("aware", api.CapabilityPartitionAware))
	o := aware.offers()[0]
	aware.launch(o, shellTask("pa", "sleep 60", 0.1, 32))
	aware.update("pa", api.TaskRunning, true)

	plain := subscribe(t, ts.URL, frameworkInfo("plain"))
	po := plain.offers()[0]
	plain.launch(po, shellTask("np", "sleep 60", 0.1, 32))
	plain.update("np", api.TaskRunning, true)

	// Hold an offer so its rescind can be seen.
	if err := aware.stream.Revive(aware.ctx); err != nil {
		t.Fatalf("revive: %v", err)
	}
	held := aware.offers()[0]

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a1.Shutdown(ctx, false); err != nil {
		t.Fatalf("agent shutdown: %v", err)
	}
	rescind := aware.waitFor("rescind", func(ev *api.Event) bool { return ev.Type == api.EventRescind })
	if rescind.Rescind.OfferID != held.ID {
		t.Fatalf("rescinded %s, want %s", rescind.Rescind.OfferID.Value, held.ID.Value)
	}
	un := aware.update("pa", api.TaskUnreachable, false)
	if un.UnreachableTime == nil {
		t.Fatalf("TASK_UNREACHABLE without unreachable_time: %+v", un)
	}
	plain.update("np", api.TaskLost, false)

	// The agent comes back: the partition-aware task continues, the one reported LOST is
	// killed.
	agent.TestAgent(t, ts.Masters, withWorkDir)
	aware.update("pa", api.TaskRunning, true)
	plain.update("np", api.TaskKilled, true)
}

func TestOperatorEventsAndState(t *testing.T) {
	ts, a := cluster(t)
	client := api.NewClient(ts.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := client.SubscribeOperator(ctx)
	if err != nil {
		t.Fatalf("operator subscribe: %v", err)
	}
	defer sub.Close()
	first, err := sub.Next()
	if err != nil || first.Type != api.OpEventSubscribed || len(first.Subscribed.GetState.GetAgents.Agents) != 1 {
		t.Fatalf("first operator event %+v, %v", first, err)
	}
	f := subscribe(t, ts.URL, frameworkInfo("ops"))
	f.launch(f.offers()[0], shellTask("op1", "echo hi", 0.1, 32))
	f.update("op1", api.TaskFinished, true)

	want := []api.OperatorEventType{api.OpEventFrameworkAdded, api.OpEventTaskAdded, api.OpEventTaskUpdated}
	var seen []api.OperatorEventType
	var finished bool
	for !finished {
		ev, err := sub.Next()
		if err != nil {
			t.Fatalf("operator stream: %v", err)
		}
		if ev.Type == api.OpEventHeartbeat || ev.Type == api.OpEventFrameworkUpdated {
			continue
		}
		if len(seen) == 0 || seen[len(seen)-1] != ev.Type {
			seen = append(seen, ev.Type)
		}
		if ev.Type == api.OpEventTaskUpdated && ev.TaskUpdated.State == api.TaskFinished {
			finished = true
		}
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("operator events %v, want %v", seen, want)
	}

	// /master/state in the Mesos shape.
	var doc struct {
		Slaves []struct {
			ID        string         `json:"id"`
			Resources map[string]any `json:"resources"`
		} `json:"slaves"`
		CompletedFrameworks []any `json:"completed_frameworks"`
		Frameworks          []struct {
			Name           string `json:"name"`
			CompletedTasks []struct {
				State string `json:"state"`
			} `json:"completed_tasks"`
		} `json:"frameworks"`
	}
	getJSON(t, ts.URL+"/master/state", &doc)
	if len(doc.Slaves) != 1 || doc.Slaves[0].ID != a.ID() || doc.Slaves[0].Resources["cpus"] != 4.0 || doc.Slaves[0].Resources["ports"] != "[31000-31100]" {
		t.Fatalf("state.json slaves = %+v", doc.Slaves)
	}
	if len(doc.Frameworks) != 1 || doc.Frameworks[0].Name != "ops" || len(doc.Frameworks[0].CompletedTasks) != 1 || doc.Frameworks[0].CompletedTasks[0].State != "TASK_FINISHED" {
		t.Fatalf("state.json frameworks = %+v", doc.Frameworks)
	}

	// Prometheus metrics: tasks by state, offers, allocation latency, leadership.
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`atoll_master_tasks{state="TASK_FINISHED"} 1`,
		`atoll_master_tasks_launched_total 1`,
		`atoll_master_agents{status="registered"} 1`,
		`atoll_master_is_leader 1`,
		`atoll_master_allocation_cycle_seconds_count`,
		`atoll_master_status_updates_total{state="TASK_FINISHED"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(string(body), "atoll_master_offers_sent_total") {
		t.Errorf("/metrics lacks the offers counter")
	}
}

// TestOperatorTaskStatesOnce: an operator stream gets each state of a task once, in
// order, though each reaches the broker twice (as its agent reports it, and again once
// committed). TestBrokerEarlyStates covers streams that join in between.
func TestOperatorTaskStatesOnce(t *testing.T) {
	ts, _ := cluster(t)
	client := api.NewClient(ts.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type view struct {
		mu     sync.Mutex
		states []api.TaskState // of the task "once"
		marker bool            // the task "marker" was added
	}
	follow := func(v *view) {
		sub, err := client.SubscribeOperator(ctx)
		if err != nil {
			t.Fatalf("operator subscribe: %v", err)
		}
		first, err := sub.Next()
		if err != nil || first.Type != api.OpEventSubscribed {
			t.Fatalf("first operator event %+v, %v", first, err)
		}
		for _, tk := range first.Subscribed.GetState.GetTasks.Tasks {
			if tk.TaskID.Value == "once" {
				v.states = append(v.states, tk.State)
			}
		}
		go func() {
			defer sub.Close()
			for {
				ev, err := sub.Next()
				if err != nil {
					return
				}
				v.mu.Lock()
				switch {
				case ev.Type == api.OpEventTaskUpdated && ev.TaskUpdated.Status.TaskID.Value == "once":
					v.states = append(v.states, ev.TaskUpdated.State)
				case ev.Type == api.OpEventTaskAdded && ev.TaskAdded.Task.TaskID.Value == "marker":
					v.marker = true
				}
				v.mu.Unlock()
			}
		}()
	}
	var before, between view
	follow(&before)
	f := subscribe(t, ts.URL, frameworkInfo("once"))
	f.launch(f.offers()[0], shellTask("once", "sleep 0.3", 0.1, 32))
	f.update("once", api.TaskRunning, true)
	follow(&between)
	f.update("once", api.TaskFinished, true)
	// The framework had FINISHED once it was committed, and the stream is in order: by
	// the marker's TASK_ADDED, a second copy of any state would have come.
	f.launch(f.offers()[0], shellTask("marker", "true", 0.1, 32))

	for name, v := range map[string]*view{"subscribed before the launch": &before, "subscribed while running": &between} {
		eventually(t, name+": the marker task", func() error {
			v.mu.Lock()
			defer v.mu.Unlock()
			if !v.marker {
				return errors.New("not added yet")
			}
			return nil
		})
		v.mu.Lock()
		got := fmt.Sprint(v.states)
		v.mu.Unlock()
		// The framework had RUNNING once it was committed, before the second stream
		// joined: that one has it from its snapshot.
		if want := "[TASK_RUNNING TASK_FINISHED]"; got != want {
			t.Errorf("%s: states %s, want %s", name, got, want)
		}
	}
}

func TestOfferTimeoutRescinds(t *testing.T) {
	ts, _ := cluster(t, func(c *master.Config) { c.OfferTimeout = 300 * time.Millisecond })
	f := subscribe(t, ts.URL, frameworkInfo("hoarder"))
	held := f.offers()[0]
	rescind := f.waitFor("rescind", func(ev *api.Event) bool { return ev.Type == api.EventRescind })
	if rescind.Rescind.OfferID != held.ID {
		t.Fatalf("rescinded %s, want %s", rescind.Rescind.OfferID.Value, held.ID.Value)
	}
	// The resources come back in a new offer, and the old id is no longer accepted.
	again := f.offers()[0]
	if again.ID == held.ID || scalarOf(again.Resources, "cpus") != 4 {
		t.Fatalf("re-offer %+v", again)
	}
	f.launch(held, shellTask("late", "true", 0.1, 32))
	if st := f.update("late", api.TaskLost, false); st.Reason != api.ReasonInvalidOffers {
		t.Fatalf("accepting a rescinded offer: %+v", st)
	}
}

// TestOperatorStreamManySubscribers: hundreds of operator subscribers (DNS servers and
// load balancers later) each get every event.
func TestOperatorStreamManySubscribers(t *testing.T) {
	ts, _ := cluster(t)
	const subscribers = 200
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := api.NewClient(ts.URL)
	got := make(chan string, subscribers)
	for range subscribers {
		sub, err := client.SubscribeOperator(ctx)
		if err != nil {
			t.Fatalf("operator subscribe: %v", err)
		}
		defer sub.Close()
		if ev, err := sub.Next(); err != nil || ev.Type != api.OpEventSubscribed {
			t.Fatalf("first event %+v, %v", ev, err)
		}
		go func() {
			for {
				ev, err := sub.Next()
				if err != nil {
					return
				}
				if ev.Type == api.OpEventTaskAdded {
					got <- ev.TaskAdded.Task.TaskID.Value
					return
				}
			}
		}()
	}
	f := subscribe(t, ts.URL, frameworkInfo("fanout"))
	f.launch(f.offers()[0], shellTask("seen-by-all", "true", 0.1, 32))
	for i := range subscribers {
		select {
		case id := <-got:
			if id != "seen-by-all" {
				t.Fatalf("subscriber saw TASK_ADDED for %q", id)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("only %d of %d subscribers saw TASK_ADDED", i, subscribers)
		}
	}
}

// TestLeaderChangeGivesFrameworksGrace: a framework with failover_timeout 0 (the Mesos
// default) keeps its tasks across a leader change if it resubscribes within the grace; with
// no grace it would be torn down by the new leader at once.
func TestLeaderChangeGivesFrameworksGrace(t *testing.T) {
	for _, grace := range []time.Duration{time.Minute, 0} {
		t.Run(fmt.Sprint("grace=", grace), func(t *testing.T) {
			ts, _ := cluster(t, func(c *master.Config) { c.LeaderChangeGrace = grace })
			info := frameworkInfo("no-timeout")
			f := subscribe(t, ts.URL, info)
			f.launch(f.offers()[0], shellTask("kept", "sleep 60", 0.1, 32))
			f.update("kept", api.TaskRunning, true)
			id := f.stream.FrameworkID()

			ts.Restart() // the old leader closes the stream itself
			info.ID = &id
			if grace == 0 {
				eventually(t, "framework removed by the new leader", func() error {
					fws, err := api.NewClient(ts.URL).GetFrameworks(context.Background())
					if err != nil {
						return err
					}
					if len(fws.CompletedFrameworks) != 1 {
						return fmt.Errorf("completed frameworks %+v", fws.CompletedFrameworks)
					}
					return nil
				})
				return
			}
			f2 := subscribe(t, ts.URL, info)
			if err := f2.stream.Reconcile(f2.ctx); err != nil {
				t.Fatal(err)
			}
			f2.update("kept", api.TaskRunning, false)
		})
	}
}

// TestOperatorTeardown: an operator's TEARDOWN ends the framework's stream, kills its tasks
// and forgets it; tearing it down again, or naming no framework, is refused.
func TestOperatorTeardown(t *testing.T) {
	ts, _ := cluster(t)
	f := subscribe(t, ts.URL, frameworkInfo("torn"))
	o := f.offers()[0]
	f.launch(o, shellTask("sleeper", "sleep 60", 0.1, 32))
	f.update("sleeper", api.TaskRunning, true)

	client := api.NewClient(ts.URL)
	ctx := context.Background()
	if err := client.Teardown(ctx, f.id()); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	eventually(t, "the torn-down framework's task killed and the framework gone", func() error {
		tasks, err := client.GetTasks(ctx)
		if err != nil {
			return err
		}
		if len(tasks.Tasks) != 0 || len(tasks.CompletedTasks) != 1 || tasks.CompletedTasks[0].State != api.TaskKilled {
			return fmt.Errorf("tasks %+v, completed %+v", tasks.Tasks, tasks.CompletedTasks)
		}
		fws, err := client.GetFrameworks(ctx)
		if err != nil {
			return err
		}
		if len(fws.Frameworks) != 0 {
			return fmt.Errorf("%d frameworks still registered", len(fws.Frameworks))
		}
		return nil
	})
	for _, ev := range drain(f.events) {
		if ev.Type == api.EventOffers {
			continue
		}
		if ev.Type != api.EventUpdate && ev.Type != api.EventError && ev.Type != api.EventRescind {
			t.Errorf("event after teardown: %s", ev.Type)
		}
	}

	tests := []struct {
		id   string
		want string
	}{
		{f.id(), "404"},
		{"", "400"},
	}
	for _, tt := range tests {
		err := client.Teardown(ctx, tt.id)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("teardown %q: %v, want a %s", tt.id, err, tt.want)
		}
	}
}

// drain returns the events left in a framework's channel once its stream ended.
func drain(events <-chan *api.Event) []*api.Event {
	var out []*api.Event
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-timeout:
			return out
		}
	}
}
