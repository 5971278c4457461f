package jobs_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// TestFailoverDuringRun stops the leading master while a job's run is running: the new
// leader's framework follows the run the old one launched to its end, so the job runs
// exactly once, neither lost nor launched again; a job every second keeps one run per
// due time across the failover.
func TestFailoverDuringRun(t *testing.T) {
	mc := master.NewTestCluster(t, 3, withJobs)
	var all []string
	for _, ts := range mc.Servers {
		all = append(all, ts.URL)
	}
	agent.TestAgent(t, func() []string { return all }, func(cfg *agent.Config) { cfg.Hostname = "host-0" })
	leader := mc.Leader()
	c := &cluster{t: t, master: leader}
	c.waitAgents(1)

	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", `{"name": "long", "command": "sleep 3", "schedule": "R1//PT1H", "mem": 16}`, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", `{"name": "tick", "command": "true", "schedule": "R//PT1S", "mem": 16}`, nil)
	eventually(t, "the long run running", func() error {
		runs := c.runs("long")
		if len(runs) != 1 || runs[0].Status != "running" {
			return fmt.Errorf("runs %+v", runs)
		}
		return nil
	})
	leader.Stop()
	c.master = mc.Leader()
	if c.master == leader {
		t.Fatal("the stopped master still leads")
	}
	v := c.waitCounts("long", 1, 0)
	if v.ErrorCount != 0 {
		t.Errorf("counters %+v", v)
	}
	runs := c.runs("long")
	if len(runs) != 1 || runs[0].Status != "success" {
		t.Fatalf("runs of long after the failover: %+v", runs)
	}
	tasks := 0
	for _, task := range append(c.master.Store().Tasks(), c.master.Store().CompletedTasks()...) {
		if task.Info.Name == "ChronosTask:long" {
			tasks++
		}
	}
	if tasks != 1 {
		t.Errorf("%d tasks of job long in the master's state, want 1", tasks)
	}
	// The tick job goes on, one run per due time.
	eventually(t, "tick runs after the failover", func() error {
		if v := c.job("tick"); v.SuccessCount < 6 {
			return fmt.Errorf("%d successes", v.SuccessCount)
		}
		return nil
	})
	seen := map[string]bool{}
	for _, r := range c.runs("tick") {
		if seen[r.Scheduled] {
			t.Errorf("two runs of tick due at %s", r.Scheduled)
		}
		seen[r.Scheduled] = true
	}
}

// TestFailoverBeforeRunRecordedAhead stops the leading master after its framework
// recorded a run ahead of its time and before that time: the new leader's framework
// launches that same run (its task id) once, not before its time.
func TestFailoverBeforeRunRecordedAhead(t *testing.T) {
	mc := master.NewTestCluster(t, 3, withJobs)
	var all []string
	for _, ts := range mc.Servers {
		all = append(all, ts.URL)
	}
	agent.TestAgent(t, func() []string { return all }, func(cfg *agent.Config) { cfg.Hostname = "host-0" })
	leader := mc.Leader()
	c := &cluster{t: t, master: leader}
	c.waitAgents(1)

	due := time.Now().Add(4 * time.Second).UTC().Truncate(time.Millisecond)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", map[string]any{
		"name": "soon", "command": "true", "schedule": "R1/" + due.Format(time.RFC3339Nano) + "/PT1H", "mem": 16,
	}, nil)
	var recorded string
	eventually(t, "the run recorded ahead", func() error {
		runs := c.runs("soon")
		if len(runs) != 1 || runs[0].Status != "queued" {
			return fmt.Errorf("runs %+v", runs)
		}
		recorded = runs[0].TaskID
		return nil
	})
	if time.Now().After(due) {
		t.Fatalf("the run was seen recorded only after its time %v", due)
	}
	leader.Stop()
	c.master = mc.Leader()
	c.waitCounts("soon", 1, 0)
	runs := c.runs("soon")
	if len(runs) != 1 || runs[0].TaskID != recorded || runs[0].Status != "success" {
		t.Fatalf("runs after the failover: %+v, want the one recorded ahead (%s), succeeded", runs, recorded)
	}
	if start := parseTime(t, runs[0].Start); start.Before(due) {
		t.Errorf("the run started at %v, before its time %v", start, due)
	}
	tasks := 0
	for _, task := range append(c.master.Store().Tasks(), c.master.Store().CompletedTasks()...) {
		if task.Info.Name == "ChronosTask:soon" {
			tasks++
		}
	}
	if tasks != 1 {
		t.Errorf("%d tasks of job soon in the master's state, want 1", tasks)
	}
}

// TestMissedRunsRunOnce: runs due while no master led run once when one does, not once
// for each time missed, and the schedule goes on.
func TestMissedRunsRunOnce(t *testing.T) {
	c := newCluster(t, 1)
	start := time.Now().Add(time.Second).UTC().Truncate(time.Millisecond)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", map[string]any{
		"name": "every", "command": "true", "schedule": "R/" + start.Format(time.RFC3339Nano) + "/PT1S", "mem": 16,
	}, nil)
	eventually(t, "two runs", func() error {
		if v := c.job("every"); v.SuccessCount < 2 {
			return fmt.Errorf("%d successes", v.SuccessCount)
		}
		return nil
	})
	c.master.Stop()
	stopped := time.Now()
	time.Sleep(3500 * time.Millisecond)
	restarted := time.Now()
	c.master.Restart()
	eventually(t, "runs after the restart", func() error {
		runs := c.runs("every")
		if len(runs) == 0 || parseTime(t, runs[len(runs)-1].Scheduled).Before(restarted.Add(2*time.Second)) {
			return fmt.Errorf("%d runs", len(runs))
		}
		return nil
	})
	missed := 0
	for _, r := range c.runs("every") {
		if at := parseTime(t, r.Scheduled); at.After(stopped) && at.Before(restarted) {
			missed++
		}
	}
	if missed != 1 {
		t.Errorf("%d runs due while no master led, want 1", missed)
	}
}
