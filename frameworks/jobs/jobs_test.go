package jobs_test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// TestScheduledRunsOnTime: a job every 2 s, five times (R5), runs five times, each
// within half a second after its time (never before), and no more.
func TestScheduledRunsOnTime(t *testing.T) {
	c := newCluster(t, 1)
	start := time.Now().Add(2 * time.Second).UTC().Truncate(time.Millisecond)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", map[string]any{
		"name": "tick", "command": "true", "schedule": "R5/" + start.Format(time.RFC3339Nano) + "/PT2S", "cpus": 0.1, "mem": 16,
	}, nil)
	c.waitCounts("tick", 5, 0)
	runs := c.runs("tick")
	if len(runs) != 5 {
		t.Fatalf("%d runs, want 5: %+v", len(runs), runs)
	}
	for i, r := range runs {
		due := start.Add(time.Duration(i) * 2 * time.Second)
		if got := parseTime(t, r.Scheduled); !got.Equal(due) {
			t.Errorf("run %d scheduled at %v, want %v", i, got, due)
		}
		if skew := parseTime(t, r.Start).Sub(due); skew < 0 || skew > 500*time.Millisecond {
			t.Errorf("run %d started %v after its time, want within 0.5 s after it", i, skew)
		}
		if r.Status != "success" || r.State != "TASK_FINISHED" || r.Attempt != 0 {
			t.Errorf("run %d: %+v", i, r)
		}
	}
	// The schedule has ended: nothing more runs.
	time.Sleep(2500 * time.Millisecond)
	if v := c.job("tick"); v.SuccessCount != 5 {
		t.Errorf("%d successes after the schedule ended, want 5", v.SuccessCount)
	}
}

// TestFailingJobRetried: a failing job is retried exactly its retries times, then
// counts one error.
func TestFailingJobRetried(t *testing.T) {
	c := newCluster(t, 1)
	c.mustCall(http.StatusNoContent, "POST", "/scheduler/iso8601", `{"name": "flaky", "command": "exit 3", "schedule": "R1//PT1H", "retries": 2, "mem": 16}`, nil)
	v := c.waitCounts("flaky", 0, 1)
	if v.ErrorsSinceLastSuccess != 1 || v.LastError == "" || v.LastSuccess != "" {
		t.Errorf("counters %+v", v)
	}
	// Let a fourth attempt show, were there one.
	time.Sleep(time.Second)
	runs := c.runs("flaky")
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3 (the run and 2 retries): %+v", len(runs), runs)
	}
	for i, r := range runs {
		if r.Attempt != i || r.Status != "failure" || r.State != "TASK_FAILED" {
			t.Errorf("run %d: %+v", i, r)
		}
	}
	if v := c.job("flaky"); v.ErrorCount != 1 || v.SuccessCount != 0 {
		t.Errorf("after the retries: %+v", v)
	}
}

// TestDependencyChain: a → b → c run in that order, each after its parent succeeded.
func TestDependencyChain(t *testing.T) {
	c := newCluster(t, 1)
	out := filepath.Join(t.TempDir(), "order")
	cmd := func(name string) string { return fmt.Sprintf("echo %s >> %s", name, out) }
	// The parents first, disabled so that the chain starts only when asked to.
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", map[string]any{"name": "a", "command": cmd("a"), "schedule": "R/2099-01-01T00:00:00Z/P1D", "mem": 16}, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/dependency", map[string]any{"name": "b", "command": cmd("b"), "parents": []string{"a"}, "mem": 16}, nil)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/dependency", map[string]any{"name": "c", "command": cmd("c"), "parents": []string{"b"}, "mem": 16}, nil)
	c.mustCall(http.StatusNoContent, "PUT", "/v1/scheduler/job/a", nil, nil)
	c.waitCounts("c", 1, 0)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "a\nb\nc\n" {
		t.Errorf("runs in the order %q, want a, b, c", data)
	}
	var previousEnd time.Time
	for _, name := range []string{"a", "b", "c"} {
		runs := c.runs(name)
		if len(runs) != 1 {
			t.Fatalf("job %s ran %d times, want once", name, len(runs))
		}
		if start := parseTime(t, runs[0].Start); start.Before(previousEnd) {
			t.Errorf("job %s started at %v, before its parent ended at %v", name, start, previousEnd)
		}
		previousEnd = parseTime(t, runs[0].End)
	}
	csv := string(c.mustCall(http.StatusOK, "GET", "/scheduler/graph/csv", nil, nil))
	if want := "node,a,success,idle\nnode,b,success,idle\nnode,c,success,idle\nlink,a,b\nlink,b,c\n"; csv != want {
		t.Errorf("graph csv:\n%s\nwant\n%s", csv, want)
	}
	dot := string(c.mustCall(http.StatusOK, "GET", "/v1/scheduler/graph/dot", nil, nil))
	if !strings.Contains(dot, `"a" -> "b";`) || !strings.Contains(dot, `"b" -> "c";`) || !strings.HasPrefix(dot, "digraph G {") {
		t.Errorf("graph dot:\n%s", dot)
	}
}

// TestRunNowWithArguments: PUT /job/{name}?arguments= runs the job at once with those
// arguments, a job whose schedule is far off.
func TestRunNowWithArguments(t *testing.T) {
	c := newCluster(t, 1)
	out := filepath.Join(t.TempDir(), "out")
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", map[string]any{
		"name": "later", "command": "echo > " + out, "arguments": []string{"default"}, "schedule": "R/2099-01-01T00:00:00Z/P1D", "mem": 16,
	}, nil)
	c.mustCall(http.StatusNoContent, "PUT", "/v1/scheduler/job/later?arguments=hello%20it%27s%20me", nil, nil)
	c.waitCounts("later", 1, 0)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "hello it's me\n" {
		t.Errorf("the run wrote %q", data)
	}
	c.mustCall(http.StatusNoContent, "PUT", "/scheduler/job/later", nil, nil)
	c.waitCounts("later", 2, 0)
	if data, _ := os.ReadFile(out); string(data) != "default\n" {
		t.Errorf("a run without arguments wrote %q, want the job's", data)
	}
	c.mustCall(http.StatusNotFound, "PUT", "/v1/scheduler/job/nothing", nil, nil)
}

// TestDisabled: a disabled job does not run on its schedule; enabled again, it does.
func TestDisabled(t *testing.T) {
	c := newCluster(t, 1)
	job := map[string]any{"name": "off", "command": "true", "schedule": "R//PT1S", "disabled": true, "mem": 16}
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", job, nil)
	time.Sleep(2500 * time.Millisecond)
	if v := c.job("off"); v.SuccessCount != 0 || v.ErrorCount != 0 || !v.Disabled {
		t.Fatalf("a disabled job ran: %+v", v)
	}
	if runs := c.runs("off"); len(runs) != 0 {
		t.Fatalf("a disabled job has runs: %+v", runs)
	}
	job["disabled"] = false
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", job, nil)
	eventually(t, "the enabled job runs", func() error {
		if v := c.job("off"); v.SuccessCount < 1 {
			return fmt.Errorf("%d successes", v.SuccessCount)
		}
		return nil
	})
}

// TestRescheduleDropsRunRecordedAhead: a run is recorded seconds before its time (and
// shown queued); when the job's schedule changes meanwhile, that run goes and never
// starts.
func TestRescheduleDropsRunRecordedAhead(t *testing.T) {
	c := newCluster(t, 1)
	due := time.Now().Add(3 * time.Second).UTC().Truncate(time.Millisecond)
	job := map[string]any{"name": "moved", "command": "true", "schedule": "R1/" + due.Format(time.RFC3339Nano) + "/PT1H", "mem": 16}
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", job, nil)
	eventually(t, "the run recorded ahead", func() error {
		runs := c.runs("moved")
		if len(runs) != 1 || runs[0].Status != "queued" || !parseTime(t, runs[0].Scheduled).Equal(due) {
			return fmt.Errorf("runs %+v", runs)
		}
		return nil
	})
	job["schedule"] = "R1/" + due.Add(time.Hour).Format(time.RFC3339Nano) + "/PT1H"
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", job, nil)
	if runs := c.runs("moved"); len(runs) != 0 {
		t.Fatalf("runs after the schedule changed: %+v", runs)
	}
	time.Sleep(time.Until(due.Add(time.Second)))
	if runs := c.runs("moved"); len(runs) != 0 {
		t.Errorf("runs after the old time passed: %+v", runs)
	}
	if v := c.job("moved"); v.SuccessCount != 0 || v.ErrorCount != 0 {
		t.Errorf("the job ran at its old time: %+v", v)
	}
}

// TestRunLaunchedAhead: a run recorded ahead is launched ahead too: the master holds its
// task TASK_STAGING with the run's time as its launch time, and starts it then, not
// before. When the job's schedule changes before that time, the task is killed without
// ever starting and the job has no run.
func TestRunLaunchedAhead(t *testing.T) {
	c := newCluster(t, 1)
	launchedAhead := func(name string, due time.Time) *state.Task {
		t.Helper()
		var task *state.Task
		eventually(t, "the task of "+name+" launched ahead", func() error {
			for _, tk := range c.master.Store().Tasks() {
				if tk.Info.Name == "ChronosTask:"+name {
					task = tk
				}
			}
			switch {
			case task == nil:
				return errors.New("no task")
			case task.State != api.TaskStaging || !task.LaunchAt.Equal(due):
				return fmt.Errorf("task %s %s, launch at %v", task.ID, task.State, task.LaunchAt)
			}
			return nil
		})
		if time.Now().After(due) {
			t.Fatalf("the task of %s was seen launched ahead only after its time %v", name, due)
		}
		return task
	}

	due := time.Now().Add(4 * time.Second).UTC().Truncate(time.Millisecond)
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", map[string]any{
		"name": "timed", "command": "true", "schedule": "R1/" + due.Format(time.RFC3339Nano) + "/PT1H", "mem": 16}, nil)
	launchedAhead("timed", due)
	c.waitCounts("timed", 1, 0)
	if start := parseTime(t, c.runs("timed")[0].Start); start.Before(due) {
		t.Errorf("the run started at %v, before its time %v", start, due)
	}

	due = time.Now().Add(4 * time.Second).UTC().Truncate(time.Millisecond)
	job := map[string]any{"name": "moved", "command": "true", "schedule": "R1/" + due.Format(time.RFC3339Nano) + "/PT1H", "mem": 16}
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", job, nil)
	task := launchedAhead("moved", due)
	job["schedule"] = "R1/" + due.Add(time.Hour).Format(time.RFC3339Nano) + "/PT1H"
	c.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", job, nil)
	eventually(t, "the task launched ahead killed", func() error {
		for _, tk := range c.master.Store().CompletedTasks() {
			if tk.ID == task.ID {
				if n := len(tk.Statuses); tk.State != api.TaskKilled || n == 0 || tk.Statuses[n-1].Reason != api.ReasonTaskKilledDuringLaunch {
					return fmt.Errorf("task %s %s: %+v", tk.ID, tk.State, tk.Statuses)
				}
				return nil
			}
		}
		return fmt.Errorf("task %s not completed", task.ID)
	})
	time.Sleep(time.Until(due.Add(time.Second)))
	if runs := c.runs("moved"); len(runs) != 0 {
		t.Errorf("runs after the old time passed: %+v", runs)
	}
	if v := c.job("moved"); v.SuccessCount != 0 || v.ErrorCount != 0 {
		t.Errorf("the job ran at its old time: %+v", v)
	}
}
