package master_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// launchAt accepts offer o with the tasks, to be launched at at.
func (f *framework) launchAt(o api.Offer, at time.Time, tasks ...api.TaskInfo) error {
	f.t.Helper()
	for i := range tasks {
		tasks[i].AgentID = o.AgentID
	}
	return f.stream.Accept(f.ctx, []api.OfferID{o.ID}, []api.OfferOperation{{
		Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: tasks, NotBefore: &api.TimeInfo{Nanoseconds: at.UnixNano()}},
	}}, nil)
}

// statusTime is when the agent stamped a status.
func statusTime(st api.TaskStatus) time.Time {
	return time.Unix(0, int64(st.Timestamp*1e9))
}

// taskState is the master's view of a live task's state, "" when it has none.
func taskState(t *testing.T, client *api.Client, id string) api.TaskState {
	t.Helper()
	tasks, err := client.GetTasks(context.Background())
	if err != nil {
		t.Fatalf("GET_TASKS: %v", err)
	}
	for _, task := range tasks.Tasks {
		if task.TaskID.Value == id {
			return task.State
		}
	}
	return ""
}

// TestLaunchNotBefore: a LAUNCH with NotBefore is recorded at once (TASK_STAGING, its
// resources taken) and reaches the agent at its time, not before; a task killed before its
// time ends TASK_KILLED from the master and its resources are offered again.
func TestLaunchNotBefore(t *testing.T) {
	ts, a := cluster(t)
	f := subscribe(t, ts.URL, frameworkInfo("at"))
	o := f.offers()[0]
	at := time.Now().Add(1500 * time.Millisecond)
	if err := f.launchAt(o, at, shellTask("timed", "sleep 60", 0.5, 64), shellTask("dropped", "sleep 60", 1, 64)); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if got := taskState(t, f.client, "timed"); got != api.TaskStaging {
		t.Fatalf("right after the ACCEPT the master says task timed is %q, want %s", got, api.TaskStaging)
	}

	if err := f.stream.Kill(f.ctx, api.TaskID{Value: "dropped"}, &o.AgentID); err != nil {
		t.Fatalf("kill: %v", err)
	}
	killed := f.update("dropped", api.TaskKilled, false)
	if killed.Source != api.SourceMaster || killed.Reason != api.ReasonTaskKilledDuringLaunch {
		t.Fatalf("TASK_KILLED of a task killed before its time: source %s, reason %s; want %s, %s", killed.Source, killed.Reason, api.SourceMaster, api.ReasonTaskKilledDuringLaunch)
	}

	running := f.update("timed", api.TaskRunning, true)
	if started := statusTime(running); started.Before(at) {
		t.Fatalf("task timed ran at %s, %v before its time %s", started.Format(time.RFC3339Nano), at.Sub(started), at.Format(time.RFC3339Nano))
	}
	if running.AgentID == nil || running.AgentID.Value != a.ID() {
		t.Fatalf("TASK_RUNNING %+v, want it from agent %s", running, a.ID())
	}
	// Of what the two tasks took, only the running one's is still in use.
	eventually(t, "0.5 cpus in use on the agent", func() error {
		agents, err := f.client.GetAgents(context.Background())
		if err != nil {
			return err
		}
		if len(agents.Agents) != 1 {
			return fmt.Errorf("%d agents", len(agents.Agents))
		}
		ag := agents.Agents[0]
		if used := scalarOf(ag.AllocatedResources, "cpus"); used != 0.5 {
			return fmt.Errorf("%v cpus in use", used)
		}
		return nil
	})
}

// TestLaunchNotBeforeTooFar: a NotBefore more than api.MaxLaunchAhead ahead is refused with
// the reason, and its task gets TASK_ERROR.
func TestLaunchNotBeforeTooFar(t *testing.T) {
	ts, _ := cluster(t)
	f := subscribe(t, ts.URL, frameworkInfo("far"))
	o := f.offers()[0]
	err := f.launchAt(o, time.Now().Add(api.MaxLaunchAhead+time.Minute), shellTask("far", "true", 0.1, 32))
	if err == nil || !strings.Contains(err.Error(), "it may be at most 1m0s ahead") {
		t.Fatalf("accept: %v, want a refusal saying it may be at most 1m0s ahead", err)
	}
	st := f.update("far", api.TaskError, false)
	if !strings.Contains(st.Message, "it may be at most 1m0s ahead") {
		t.Fatalf("TASK_ERROR message %q, want the reason", st.Message)
	}
	if got := taskState(t, f.client, "far"); got != "" {
		t.Fatalf("the refused task is %s in the master, want it unknown", got)
	}
}

// TestLaunchNotBeforeAcrossRestart: a launch waiting for its time when the master restarts
// is sent by the master leading next, at its time.
func TestLaunchNotBeforeAcrossRestart(t *testing.T) {
	ts, a := cluster(t)
	info := frameworkInfo("at-restart")
	f := subscribe(t, ts.URL, info)
	o := f.offers()[0]
	at := time.Now().Add(10 * time.Second)
	if err := f.launchAt(o, at, shellTask("later", "sleep 60", 0.5, 64)); err != nil {
		t.Fatalf("accept: %v", err)
	}
	id := f.stream.FrameworkID()
	ts.Restart()
	if time.Now().After(at) {
		t.Fatalf("the master took until %v after the launch time to restart", time.Since(at))
	}
	info.ID = &id
	f2 := subscribe(t, ts.URL, info)
	running := f2.update("later", api.TaskRunning, true)
	if started := statusTime(running); started.Before(at) {
		t.Fatalf("task later ran at %s, %v before its time", started.Format(time.RFC3339Nano), at.Sub(started))
	}
	if running.AgentID == nil || running.AgentID.Value != a.ID() {
		t.Fatalf("TASK_RUNNING %+v, want it from agent %s", running, a.ID())
	}
	eventually(t, "task later RUNNING in the master", func() error {
		if got := taskState(t, f2.client, "later"); got != api.TaskRunning {
			return fmt.Errorf("task later is %q", got)
		}
		return nil
	})
}
