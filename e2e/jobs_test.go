package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// jobRun is one run of the jobs API's /job/stat.
type jobRun struct {
	TaskID    string `json:"taskId"`
	Attempt   int    `json:"attempt"`
	Scheduled string `json:"scheduledTime"`
	Start     string `json:"taskStartTime"`
	End       string `json:"taskEndTime"`
	Status    string `json:"status"`
}

// jobCounts is what the test reads of a job from GET /job/{name}.
type jobCounts struct {
	SuccessCount int `json:"successCount"`
	ErrorCount   int `json:"errorCount"`
}

// jobRuns reads a job's runs (its history, then those not ended) through any running
// master, which forwards to the leader.
func jobRuns(ctx context.Context, c *Cluster, name string) ([]jobRun, error) {
	var stat struct {
		History []jobRun `json:"taskStatHistory"`
	}
	if err := marathonAnyMaster(ctx, c, http.MethodGet, "/v1/scheduler/job/stat/"+name, &stat); err != nil {
		return nil, err
	}
	return stat.History, nil
}

// apiTime parses a time of the jobs API; a malformed one fails the test.
func apiTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("jobs API time %q: %v", s, err)
	}
	return at
}

// pollUntil calls cond every pollInterval until it returns nil, failing the test with
// its last error when timeout passes.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// TestJobsFailoverMidRun: three masters run the jobs framework, two agents its tasks. A
// job runs every 6 s, 5 times (R5/<start>/PT6S), each run a `sleep 4`, and a dependent
// job runs after each of its successes. While the second run runs, the leading master is
// SIGKILLed. The new leader's framework follows the run the old one launched to its end
// and the schedule goes on: the jobs API lists exactly one run per due time, all of them
// successful, the second one spanning the kill; the master's task table holds exactly one
// task per due time (counted by the scheduled-time label the framework puts on its
// tasks), each FINISHED, with the task ids the jobs API names; and the dependent job ran
// exactly once after each of its parent's runs, the one that spanned the kill included.
// The killed master then restarts and follows the new leader.
func TestJobsFailoverMidRun(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	c.StartMasters(3)
	c.StartAgents(2)
	leader := c.WaitForLeader()
	c.WaitForAgents(2)

	const (
		parent = "tick"
		child  = "tock"
		runs   = 5
		period = 6 * time.Second
		// spanning is the run during which the leader is killed.
		spanning = 1
		// label is the framework's label with a task's due time.
		label = api.LabelJobScheduled
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now().Add(8 * time.Second).UTC().Truncate(time.Second)
	due := func(i int) time.Time { return start.Add(time.Duration(i) * period) }
	job := map[string]any{
		"name": parent, "command": "sleep 4", "schedule": fmt.Sprintf("R%d/%s/PT%dS", runs, start.Format(time.RFC3339), int(period/time.Second)),
		"cpus": taskCPUs, "mem": 16, "retries": 0,
	}
	// The framework answers 503 until the leader has loaded its state.
	pollUntil(t, DefaultWaitTimeout, "the jobs framework taking a job", func() error {
		return marathonCall(ctx, leader.APIURL(), http.MethodPost, "/v1/scheduler/iso8601", job, nil)
	})
	dependent := map[string]any{"name": child, "command": "true", "parents": []string{parent}, "cpus": taskCPUs, "mem": 16, "retries": 0}
	if err := marathonCall(ctx, leader.APIURL(), http.MethodPost, "/v1/scheduler/dependency", dependent, nil); err != nil {
		t.Fatal(err)
	}

	pollUntil(t, time.Until(due(spanning))+DefaultWaitTimeout, fmt.Sprintf("the run due at %s running", due(spanning).Format(time.RFC3339)), func() error {
		list, err := jobRuns(ctx, c, parent)
		if err != nil {
			return err
		}
		for _, r := range list {
			if r.Scheduled != "" && apiTime(t, r.Scheduled).Equal(due(spanning)) && r.Status == "running" {
				return nil
			}
		}
		return fmt.Errorf("runs %+v", list)
	})
	time.Sleep(time.Second)
	killed := time.Now()
	if err := leader.Proc().Kill(); err != nil {
		t.Fatal(err)
	}
	next := c.WaitForLeaderOtherThan(leader)
	t.Logf("killed the leader %s mid-run; %s leads %v later", leader.Name(), next.Name(), time.Since(killed))

	// The last run ends 4 s after its time; the dependent job's run comes right after.
	pollUntil(t, time.Until(due(runs-1))+DefaultWaitTimeout, "every run of both jobs done", func() error {
		for _, name := range []string{parent, child} {
			var counts jobCounts
			if err := marathonAnyMaster(ctx, c, http.MethodGet, "/v1/scheduler/job/"+name, &counts); err != nil {
				return err
			}
			if counts.SuccessCount+counts.ErrorCount < runs {
				return fmt.Errorf("job %s: %+v", name, counts)
			}
		}
		return nil
	})
	// Time for a run launched twice, or a made-up run, to show.
	time.Sleep(period)

	parentRuns, err := jobRuns(ctx, c, parent)
	if err != nil {
		t.Fatal(err)
	}
	childRuns, err := jobRuns(ctx, c, child)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runs of %s: %+v", parent, parentRuns)
	t.Logf("runs of %s: %+v", child, childRuns)
	taskOf := map[time.Time]string{}
	var ends []time.Time
	for _, r := range parentRuns {
		at := apiTime(t, r.Scheduled)
		if _, twice := taskOf[at]; twice {
			t.Errorf("job %s has two runs due at %s", parent, r.Scheduled)
		}
		taskOf[at] = r.TaskID
		if r.Status != "success" || r.Attempt != 0 {
			t.Errorf("job %s: the run due at %s is %s (attempt %d), want a success at the first attempt", parent, r.Scheduled, r.Status, r.Attempt)
			continue
		}
		ends = append(ends, apiTime(t, r.End))
		if at.Equal(due(spanning)) && !(apiTime(t, r.Start).Before(killed) && apiTime(t, r.End).After(killed)) {
			t.Errorf("the run due at %s ran from %s to %s, not across the kill at %s", r.Scheduled, r.Start, r.End, killed.UTC().Format(time.RFC3339Nano))
		}
	}
	for i := range runs {
		if _, ok := taskOf[due(i)]; !ok {
			t.Errorf("job %s has no run due at %s", parent, due(i).Format(time.RFC3339))
		}
	}
	if len(taskOf) != runs {
		t.Errorf("job %s ran at %d times, want the %d of its schedule", parent, len(taskOf), runs)
	}

	// The dependent job: one run after each of its parent's, before the next one ended.
	slices.SortFunc(ends, time.Time.Compare)
	for i, end := range ends {
		n := 0
		for _, r := range childRuns {
			at := apiTime(t, r.Scheduled)
			if !at.Before(end) && (i == len(ends)-1 || at.Before(ends[i+1])) {
				n++
				if r.Status != "success" {
					t.Errorf("job %s: the run set off at %s is %s", child, r.Scheduled, r.Status)
				}
			}
		}
		if n != 1 {
			t.Errorf("job %s ran %d times after its parent's run that ended at %s, want once", child, n, end.UTC().Format(time.RFC3339Nano))
		}
	}
	if len(childRuns) != runs {
		t.Errorf("job %s has %d runs, want %d", child, len(childRuns), runs)
	}

	// The master's records: one task per run, each finished.
	tasks, err := c.Client(next).GetTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byDue := map[time.Time][]string{}
	childTasks := map[string]int{}
	for _, list := range [][]api.Task{tasks.Tasks, tasks.UnreachableTasks, tasks.CompletedTasks, tasks.OrphanTasks} {
		for _, task := range list {
			switch task.Name {
			case "ChronosTask:" + parent:
				if task.Labels == nil || task.Labels.Get(label) == "" {
					t.Errorf("task %s has no %s label", task.TaskID.Value, label)
					continue
				}
				at := apiTime(t, task.Labels.Get(label))
				byDue[at] = append(byDue[at], task.TaskID.Value)
			case "ChronosTask:" + child:
				childTasks[task.TaskID.Value]++
			default:
				continue
			}
			if task.State != api.TaskFinished {
				t.Errorf("task %s (%s) is %s, want %s", task.TaskID.Value, task.Name, task.State, api.TaskFinished)
			}
		}
	}
	for i := range runs {
		ids := byDue[due(i)]
		if len(ids) != 1 || ids[0] != taskOf[due(i)] {
			t.Errorf("the master records tasks %q for the run of %s due at %s, want exactly the jobs API's %q", ids, parent, due(i).Format(time.RFC3339), taskOf[due(i)])
		}
	}
	if len(byDue) != runs {
		var times []string
		for at := range byDue {
			times = append(times, at.Format(time.RFC3339Nano))
		}
		slices.Sort(times)
		t.Errorf("the master records tasks of %s due at %s, want the %d times of its schedule", parent, strings.Join(times, ", "), runs)
	}
	for id, n := range childTasks {
		if n != 1 {
			t.Errorf("the master lists task %s of %s %d times", id, child, n)
		}
	}
	if len(childTasks) != runs {
		t.Errorf("the master records %d tasks of %s, want %d", len(childTasks), child, runs)
	}

	if err := leader.Proc().Restart(); err != nil {
		t.Fatal(err)
	}
	waitFollows(t, c, leader, next, DefaultWaitTimeout)
}
