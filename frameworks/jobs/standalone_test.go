package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/host"
	"github.com/atoll/atoll/frameworks/jobs"
)

// startStandalone starts a jobs framework named name with role, run by itself against
// the cluster's master over HTTP as `atoll framework jobs` runs it, keeping its state in
// namespace; it waits until its API answers and returns a cluster whose calls go to it,
// and the function that stops it.
func (c *cluster) startStandalone(name, role, namespace string) (*cluster, func()) {
	c.t.Helper()
	r := host.StartTestRemote(c.t, c.master.URL, namespace, func(h host.Host, logger *slog.Logger) {
		jobs.New(h, jobs.Config{Logger: logger, Name: name, Role: role, TickInterval: 100 * time.Millisecond})
	})
	sc := &cluster{t: c.t, master: c.master, base: r.URL}
	eventually(c.t, "the framework's API ready", func() error {
		if status, body := sc.call("GET", "/v1/scheduler/jobs", nil, nil); status != http.StatusOK {
			return fmt.Errorf("GET /v1/scheduler/jobs = %d %s", status, body)
		}
		return nil
	})
	return sc, r.Stop
}

// frameworks returns the master's connected frameworks' ids and roles ("id role,…") by
// name.
func (c *cluster) frameworks() map[string]string {
	c.t.Helper()
	list, err := api.NewClient(c.master.URL).GetFrameworks(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range list.Frameworks {
		if f.Connected {
			out[f.FrameworkInfo.Name] = f.FrameworkInfo.ID.Value + " " + strings.Join(f.FrameworkInfo.Roles, ",")
		}
	}
	return out
}

// jobNames lists the names of /v1/scheduler/jobs.
func (c *cluster) jobNames() []string {
	c.t.Helper()
	var list []jobView
	c.mustCall(http.StatusOK, "GET", "/v1/scheduler/jobs", nil, &list)
	names := []string{}
	for _, j := range list {
		names = append(names, j.Name)
	}
	slices.Sort(names)
	return names
}

// TestStandaloneFramework runs a second jobs framework as a process of its own, next to
// the built-in one: it registers over HTTP with a role of its own and runs its job on the
// agent with that role, under its own framework id and in its own namespace; restarted,
// it comes back as the same framework with the job and its history.
func TestStandaloneFramework(t *testing.T) {
	c := newCluster(t, 1)
	const namespace = "jobs.chronos-user"
	sc, stop := c.startStandalone("chronos-user", "batch", namespace)
	sc.mustCall(http.StatusNoContent, "POST", "/v1/scheduler/iso8601", `{"name": "hello", "command": "true", "schedule": "R1//PT1H", "cpus": 0.1, "mem": 16}`, nil)
	sc.waitCounts("hello", 1, 0)
	runs := sc.runs("hello")
	if len(runs) != 1 || runs[0].Status != "success" || runs[0].State != "TASK_FINISHED" {
		t.Fatalf("runs %+v, want one that succeeded", runs)
	}

	fws := c.frameworks()
	userID, _, _ := strings.Cut(fws["chronos-user"], " ")
	builtinID, _, _ := strings.Cut(fws["chronos"], " ")
	if want := map[string]string{"chronos": builtinID + " *", "chronos-user": userID + " batch"}; userID == "" || builtinID == "" || !maps.Equal(fws, want) {
		t.Fatalf("connected frameworks (id and roles) %v, want chronos with role * and chronos-user with role batch", fws)
	}
	store := c.master.Store()
	var finished []string
	for _, task := range store.CompletedTasksByFramework(userID) {
		if task.State != api.TaskFinished || task.Role != "batch" {
			t.Errorf("task %s ended %s with role %q, want TASK_FINISHED with role batch", task.ID, task.State, task.Role)
		}
		finished = append(finished, task.ID)
	}
	if !slices.Equal(finished, []string{runs[0].TaskID}) || len(store.TasksByFramework(userID)) != 0 {
		t.Errorf("the master has completed tasks %v and %d live of the standalone framework, want [%s] and none", finished, len(store.TasksByFramework(userID)), runs[0].TaskID)
	}
	if n := len(store.CompletedTasksByFramework(builtinID)) + len(store.TasksByFramework(builtinID)); n != 0 {
		t.Errorf("the built-in framework has %d tasks, want none", n)
	}
	if names := c.jobNames(); len(names) != 0 {
		t.Errorf("the built-in framework's jobs: %v, want none", names)
	}
	if names := sc.jobNames(); !slices.Equal(names, []string{"hello"}) {
		t.Errorf("the standalone framework's jobs: %v, want [hello]", names)
	}
	for _, tc := range []struct {
		namespace string
		want      []string
	}{{namespace, []string{"job/hello"}}, {"jobs", nil}} {
		var got []string
		for _, e := range store.KVList(tc.namespace, "job/") {
			got = append(got, e.Key)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("jobs in namespace %s: %v, want %v", tc.namespace, got, tc.want)
		}
	}

	stop()
	sc, _ = c.startStandalone("chronos-user", "batch", namespace)
	eventually(t, "the standalone framework registered again", func() error {
		if got := c.frameworks()["chronos-user"]; got != userID+" batch" {
			return fmt.Errorf("connected as %q, want %s batch", got, userID)
		}
		return nil
	})
	if v := sc.job("hello"); v.SuccessCount != 1 || v.ErrorCount != 0 {
		t.Errorf("after the restart the job counts %d successes and %d errors, want 1 and 0", v.SuccessCount, v.ErrorCount)
	}
	if got := sc.runs("hello"); len(got) != 1 || got[0].TaskID != runs[0].TaskID {
		t.Errorf("after the restart the runs are %+v, want the one of task %s", got, runs[0].TaskID)
	}
}
