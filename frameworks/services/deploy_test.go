package services_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
)

// TestRollingUpgradeKeepsCapacity upgrades an app of 4 instances with
// minimumHealthCapacity 1 and maximumOverCapacity 0.5: on every status change the app
// keeps at least 4 running tasks and never runs more than 6.
func TestRollingUpgradeKeepsCapacity(t *testing.T) {
	c := newCluster(t, 1)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/roll", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": 4,
		"upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.5}}`, nil)
	before := c.waitDeployed("/roll", 4, false)
	events := c.events("status_update_event", "deployment_success")
	running := map[string]string{} // task id → version
	for _, task := range before.App.Tasks {
		running[task.ID] = task.Version
	}
	var reply struct {
		DeploymentID string `json:"deploymentId"`
	}
	c.mustCall(http.StatusOK, "PUT", "/v2/apps/roll", `{"cmd": "exec sleep 1001"}`, &reply)
	var newVersion string
	for {
		ev := nextEvent(t, events, "")
		if ev.Type == "deployment_success" {
			if ev.Data["id"] == reply.DeploymentID {
				break
			}
			continue
		}
		if ev.Type != "status_update_event" {
			continue
		}
		id, state := ev.Data["taskId"].(string), ev.Data["taskStatus"].(string)
		switch state {
		case "TASK_RUNNING":
			running[id] = ev.Data["version"].(string)
			if running[id] != before.App.Tasks[0].Version {
				newVersion = running[id]
			}
		case "TASK_KILLED", "TASK_FAILED", "TASK_FINISHED", "TASK_LOST", "TASK_ERROR":
			delete(running, id)
		}
		if len(running) < 4 || len(running) > 6 {
			t.Fatalf("after %s of %s, %d tasks run, want 4 to 6: %v", state, id, len(running), running)
		}
	}
	after := c.waitDeployed("/roll", 4, false)
	for _, task := range after.App.Tasks {
		if task.Version != newVersion || newVersion == "" {
			t.Errorf("task %s runs version %s, want the new %q", task.ID, task.Version, newVersion)
		}
		for _, old := range before.App.Tasks {
			if old.ID == task.ID {
				t.Errorf("old task %s survived the upgrade", task.ID)
			}
		}
	}
}

// TestLockedAppAndRollback: an app whose new version cannot be placed keeps its
// deployment; changes answer 409 unless forced; rolling back returns the old version.
func TestLockedAppAndRollback(t *testing.T) {
	c := newCluster(t, 1)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/locked", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2}`, nil)
	v1 := c.waitDeployed("/locked", 2, false)
	var stuck struct {
		DeploymentID string `json:"deploymentId"`
	}
	c.mustCall(http.StatusOK, "PUT", "/v2/apps/locked", `{"cpus": 100}`, &stuck)

	status, body := c.call("PUT", "/v2/apps/locked", `{"instances": 3}`, nil)
	want := fmt.Sprintf(`{"message":"App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/%s'.","deployments":[{"id":"%s"}]}`, stuck.DeploymentID, stuck.DeploymentID)
	if status != http.StatusConflict || strings.TrimSpace(string(body)) != want {
		t.Errorf("PUT on a locked app = %d %s, want 409 %s", status, body, want)
	}
	status, _ = c.call("DELETE", "/v2/apps/locked", nil, nil)
	if status != http.StatusConflict {
		t.Errorf("DELETE on a locked app = %d, want 409", status)
	}

	// The queue says why: no offer has 100 cpus.
	var queue queueView
	eventually(t, "the queue names insufficient cpus", func() error {
		c.mustCall(http.StatusOK, "GET", "/v2/queue", nil, &queue)
		if len(queue.Queue) != 1 {
			return fmt.Errorf("queue %+v", queue)
		}
		for _, r := range queue.Queue[0].Summary.RejectSummaryLastOffers {
			if r.Reason == "InsufficientCpus" && r.Declined > 0 {
				return nil
			}
		}
		return fmt.Errorf("queue %+v", queue)
	})

	var rollback struct {
		DeploymentID string `json:"deploymentId"`
	}
	c.mustCall(http.StatusOK, "DELETE", "/v2/deployments/"+stuck.DeploymentID, nil, &rollback)
	if rollback.DeploymentID == "" || rollback.DeploymentID == stuck.DeploymentID {
		t.Fatalf("rollback deployment %q", rollback.DeploymentID)
	}
	v := c.waitDeployed("/locked", 2, false)
	var def struct {
		Cpus float64 `json:"cpus"`
	}
	c.mustCall(http.StatusOK, "GET", "/v2/apps/locked", nil, &struct {
		App *struct {
			Cpus *float64 `json:"cpus"`
		} `json:"app"`
	}{App: &struct {
		Cpus *float64 `json:"cpus"`
	}{Cpus: &def.Cpus}})
	if def.Cpus != 0.1 {
		t.Errorf("after rollback cpus = %v, want 0.1", def.Cpus)
	}
	// The old tasks kept running throughout: the stuck version never replaced them.
	for i, task := range v.App.Tasks {
		if task.ID != v1.App.Tasks[i].ID {
			t.Errorf("task %d is %s, want the original %s", i, task.ID, v1.App.Tasks[i].ID)
		}
	}

	// A forced change overrides a deployment in progress.
	c.mustCall(http.StatusOK, "PUT", "/v2/apps/locked", `{"cpus": 100}`, nil)
	c.mustCall(http.StatusOK, "PUT", "/v2/apps/locked?force=true", `{"cpus": 0.2}`, nil)
	c.waitDeployed("/locked", 2, false)
}

// TestUniqueHostnameConstraint places one instance per agent and leaves the fourth
// waiting, with the reason in the queue.
func TestUniqueHostnameConstraint(t *testing.T) {
	c := newCluster(t, 3)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/uniq", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": 4, "constraints": [["hostname", "UNIQUE"]]}`, nil)
	var queue struct {
		Queue []struct {
			Count   int `json:"count"`
			Summary struct {
				RejectSummaryLastOffers []struct {
					Reason   string `json:"reason"`
					Declined int    `json:"declined"`
				} `json:"rejectSummaryLastOffers"`
			} `json:"processedOffersSummary"`
		} `json:"queue"`
	}
	eventually(t, "three running, one waiting on the constraint", func() error {
		v := c.app("/uniq")
		if v.App.TasksRunning != 3 {
			return fmt.Errorf("%d running", v.App.TasksRunning)
		}
		hosts := map[string]bool{}
		for _, task := range v.App.Tasks {
			hosts[task.Host] = true
		}
		if len(hosts) != 3 {
			return fmt.Errorf("tasks on hosts %v", hosts)
		}
		c.mustCall(http.StatusOK, "GET", "/v2/queue", nil, &queue)
		if len(queue.Queue) != 1 || queue.Queue[0].Count != 1 {
			return fmt.Errorf("queue %+v", queue)
		}
		for _, r := range queue.Queue[0].Summary.RejectSummaryLastOffers {
			if r.Reason == "UnfulfilledConstraint" && r.Declined > 0 {
				return nil
			}
		}
		return fmt.Errorf("queue %+v", queue)
	})
}

// TestRollingUpgradeWithHealthChecks upgrades 4 health-checked instances with
// minimumHealthCapacity 0.5 and maximumOverCapacity 0: on every status and health change
// at least 2 tasks are healthy and at most 4 run.
func TestRollingUpgradeWithHealthChecks(t *testing.T) {
	bb := busybox(t)
	c := newCluster(t, 1)
	app := func(page string) string {
		return fmt.Sprintf(`{"id": "/hc", "cpus": 0.1, "mem": 16, "instances": 4,
			"cmd": "echo %s > health; exec %s httpd -f -p $PORT0 -h .",
			"upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
			"healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "gracePeriodSeconds": 30,
				"intervalSeconds": 1, "timeoutSeconds": 2, "maxConsecutiveFailures": 3, "delaySeconds": 0}]}`, page, bb)
	}
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", app("v1"), nil)
	before := c.waitDeployed("/hc", 4, true)
	events := c.events("status_update_event", "health_status_changed_event", "deployment_success")
	running, healthy := map[string]bool{}, map[string]bool{}
	for _, task := range before.App.Tasks {
		running[task.ID], healthy[task.ID] = true, true
	}
	var reply struct {
		DeploymentID string `json:"deploymentId"`
	}
	c.mustCall(http.StatusOK, "PUT", "/v2/apps/hc", app("v2"), &reply)
	for {
		ev := nextEvent(t, events, "")
		id, _ := ev.Data["taskId"].(string)
		switch ev.Type {
		case "deployment_success":
			if ev.Data["id"] != reply.DeploymentID {
				continue
			}
		case "status_update_event":
			switch state := ev.Data["taskStatus"]; state {
			case "TASK_RUNNING":
				running[id] = true
			case "TASK_KILLED", "TASK_FAILED", "TASK_FINISHED", "TASK_LOST", "TASK_ERROR":
				delete(running, id)
				delete(healthy, id)
			}
		case "health_status_changed_event":
			if ev.Data["alive"] == true {
				healthy[id] = true
			} else {
				delete(healthy, id)
			}
		default:
			continue
		}
		if len(healthy) < 2 || len(running) > 4 {
			t.Fatalf("after %s of %s: %d healthy, %d running; want at least 2 healthy and at most 4 running", ev.Type, id, len(healthy), len(running))
		}
		if ev.Type == "deployment_success" {
			break
		}
	}
	after := c.waitDeployed("/hc", 4, true)
	for _, task := range after.App.Tasks {
		for _, old := range before.App.Tasks {
			if old.ID == task.ID {
				t.Errorf("old task %s survived the upgrade", task.ID)
			}
		}
	}
}

// TestLaunchBackoff: a crash-looping app waits longer after each failure, up to its
// maximum, the queue shows the delay and the last failure, and resetting the delay
// relaunches at once.
func TestLaunchBackoff(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	events := c.events("status_update_event")
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/crash", "cmd": "exit 3", "cpus": 0.1, "mem": 16,
		"backoffSeconds": 1, "backoffFactor": 2, "maxLaunchDelaySeconds": 3}`, nil)
	// Failures come at growing intervals: 1 s, 2 s, then 3 s (the maximum).
	var failedAt []time.Time
	for len(failedAt) < 4 {
		ev := nextEvent(t, events, "status_update_event")
		if ev.Data["taskStatus"] == "TASK_FAILED" {
			failedAt = append(failedAt, time.Now())
		}
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
		if gap := failedAt[i+1].Sub(failedAt[i]); gap < want {
			t.Errorf("failure %d came %v after the previous, want at least the delay %v", i+2, gap, want)
		}
	}
	var queue struct {
		Queue []struct {
			Delay struct {
				TimeLeftSeconds int  `json:"timeLeftSeconds"`
				Overdue         bool `json:"overdue"`
			} `json:"delay"`
			LastTaskFailure struct {
				State   string `json:"state"`
				Message string `json:"message"`
			} `json:"lastTaskFailure"`
		} `json:"queue"`
	}
	// The queue follows the framework's next pass after the failure.
	eventually(t, "the app queued with its failure", func() error {
		c.mustCall(http.StatusOK, "GET", "/v2/queue", nil, &queue)
		if len(queue.Queue) != 1 || queue.Queue[0].LastTaskFailure.State != "TASK_FAILED" {
			return fmt.Errorf("queue %+v", queue)
		}
		return nil
	})
	if d := queue.Queue[0].Delay; d.Overdue || d.TimeLeftSeconds < 1 || d.TimeLeftSeconds > 3 {
		t.Errorf("queue delay %+v, want 1-3 s left", d)
	}
	c.mustCall(http.StatusNoContent, "DELETE", "/v2/queue/crash/delay", nil, nil)
	c.mustCall(http.StatusOK, "GET", "/v2/queue", nil, &queue)
	if len(queue.Queue) == 1 && !queue.Queue[0].Delay.Overdue {
		t.Errorf("after resetting the delay the queue says %+v", queue.Queue[0].Delay)
	}
}

// TestReadinessChecks: a deployment waits for new instances to answer their readiness
// check, and shows the check's results meanwhile.
func TestReadinessChecks(t *testing.T) {
	t.Parallel()
	bb := busybox(t)
	c := newCluster(t, 1)
	// The ready page appears 3 s after the task starts.
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", fmt.Sprintf(`{"id": "/ready", "cpus": 0.1, "mem": 16, "instances": 1,
		"cmd": "(sleep 3; echo ok > ready) & exec %s httpd -f -p $PORT0 -h .",
		"portDefinitions": [{"port": 0, "name": "http-api"}],
		"readinessChecks": [{"name": "page", "path": "/ready", "portName": "http-api", "intervalSeconds": 2, "timeoutSeconds": 1, "preserveLastResponse": true}]}`, bb), nil)
	var deployments []struct {
		CurrentActions []struct {
			App     string `json:"app"`
			Results []struct {
				Name         string `json:"name"`
				Ready        bool   `json:"ready"`
				LastResponse *struct {
					Status int `json:"status"`
				} `json:"lastResponse"`
			} `json:"readinessCheckResults"`
		} `json:"currentActions"`
	}
	eventually(t, "the deployment shows a failing readiness check", func() error {
		c.mustCall(http.StatusOK, "GET", "/v2/deployments", nil, &deployments)
		if len(deployments) != 1 || len(deployments[0].CurrentActions) != 1 || len(deployments[0].CurrentActions[0].Results) != 1 {
			return fmt.Errorf("deployments %+v", deployments)
		}
		r := deployments[0].CurrentActions[0].Results[0]
		if r.Name != "page" || r.Ready || r.LastResponse == nil || r.LastResponse.Status != http.StatusNotFound {
			return fmt.Errorf("readiness result %+v", r)
		}
		return nil
	})
	c.waitDeployed("/ready", 1, false)
	var queue struct {
		Queue []any `json:"queue"`
	}
	c.mustCall(http.StatusOK, "GET", "/v2/queue", nil, &queue)
	if len(queue.Queue) != 0 {
		t.Errorf("queue after the deployment %v", queue.Queue)
	}
}

// TestUnreachableStrategy: when an agent stops answering, an app's tasks there are
// replaced at once by default, and never with unreachableStrategy "disabled".
func TestUnreachableStrategy(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 0)
	resources := []api.Resource{
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 4}},
		{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 4096}},
		{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31100}}}},
	}
	doomed := master.StartSimulatedAgent(t, c.master.URL, "doomed", resources)
	c.waitAgents(1)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/replaced", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2}`, nil)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/kept", "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2, "unreachableStrategy": "disabled"}`, nil)
	c.waitDeployed("/replaced", 2, false)
	c.waitDeployed("/kept", 2, false)
	master.StartSimulatedAgent(t, c.master.URL, "spare", resources)
	c.waitAgents(2)
	doomed.Stop()
	// The master takes the silent agent for unreachable after its agent timeout.
	eventually(t, "the replaced app runs again on the spare agent", func() error {
		v := c.app("/replaced")
		onSpare := 0
		for _, task := range v.App.Tasks {
			if task.Host == "spare" && task.State == "TASK_RUNNING" {
				onSpare++
			}
		}
		if onSpare != 2 {
			return fmt.Errorf("%d tasks running on spare: %+v", onSpare, v.App.Tasks)
		}
		return nil
	})
	v := c.app("/kept")
	for _, task := range v.App.Tasks {
		if task.Host != "doomed" || task.State != "TASK_UNREACHABLE" {
			t.Errorf("kept app's task %s on %s is %s, want unreachable on doomed and not replaced", task.ID, task.Host, task.State)
		}
	}
	if len(v.App.Tasks) != 2 {
		t.Errorf("kept app has %d tasks, want its 2 unreachable ones", len(v.App.Tasks))
	}
}
