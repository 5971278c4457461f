package services_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"
)

// busybox returns the path of a static busybox for tasks that serve HTTP; CI installs
// one, so there its absence fails the test.
func busybox(t testing.TB) string {
	t.Helper()
	const path = "/bin/busybox"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (apt-get install busybox-static): %v", path, err)
		}
		t.Skipf("%s is missing (apt-get install busybox-static)", path)
	}
	return path
}

// TestHealthChecks: instances count once their agent-run health check passes, and a task
// failing its check is killed by its agent and replaced.
func TestHealthChecks(t *testing.T) {
	t.Parallel()
	bb := busybox(t)
	c := newCluster(t, 1)
	events := c.events("health_status_changed_event", "unhealthy_task_kill_event")
	// Healthy at first; after a few seconds the health file goes and the check fails.
	app := fmt.Sprintf(`{"id": "/checked", "cpus": 0.1, "mem": 16, "instances": 2,
		"cmd": "echo ok > health; (sleep 4; rm health) & exec %s httpd -f -p $PORT0 -h .",
		"healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 30,
			"intervalSeconds": 1, "timeoutSeconds": 2, "maxConsecutiveFailures": 2, "delaySeconds": 0}]}`, bb)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", app, nil)
	first := c.waitDeployed("/checked", 2, true)
	for _, task := range first.App.Tasks {
		if len(task.HealthCheckResults) != 1 || !task.HealthCheckResults[0].Alive {
			t.Errorf("task %s health %+v, want alive", task.ID, task.HealthCheckResults)
		}
	}
	healthy := nextEvent(t, events, "health_status_changed_event")
	if healthy.Data["alive"] != true || healthy.Data["appId"] != "/checked" {
		t.Errorf("first health event %v", healthy.Data)
	}
	killed := nextEvent(t, events, "unhealthy_task_kill_event")
	victim, _ := killed.Data["taskId"].(string)
	original := map[string]bool{}
	for _, task := range first.App.Tasks {
		original[task.ID] = true
	}
	if !original[victim] {
		t.Errorf("unhealthy_task_kill_event for %q, not one of the first tasks %v", victim, original)
	}
	// The killed task is replaced by a new one.
	eventually(t, "the unhealthy task replaced", func() error {
		v := c.app("/checked")
		replacements := 0
		for _, task := range v.App.Tasks {
			if task.ID == victim {
				return fmt.Errorf("the killed task %s is still listed", victim)
			}
			if !original[task.ID] {
				replacements++
			}
		}
		if replacements == 0 {
			return fmt.Errorf("no replacement among %d tasks", len(v.App.Tasks))
		}
		return nil
	})
}
