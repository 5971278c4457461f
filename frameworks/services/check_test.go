package services_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// TestAppCheck: an app's Mesos check runs on the agent and each task shows its latest
// result as Marathon did (checkResult); a failing check kills nothing.
func TestAppCheck(t *testing.T) {
	c := newCluster(t, 1)
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", `{"id": "/probed", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16,
		"check": {"exec": {"command": {"shell": "test -e ok || exit 4"}}, "intervalSeconds": 1, "timeoutSeconds": 5, "delaySeconds": 0}}`, nil)
	task := c.waitDeployed("/probed", 1, false).App.Tasks[0]
	waitCheckResult := func(want string) {
		t.Helper()
		eventually(t, "checkResult "+want, func() error {
			tasks := c.app("/probed").App.Tasks
			if len(tasks) != 1 || tasks[0].ID != task.ID || tasks[0].State != "TASK_RUNNING" {
				return fmt.Errorf("tasks %+v, want %s running", tasks, task.ID)
			}
			if got := string(tasks[0].CheckResult); got != want {
				return fmt.Errorf("checkResult %s", got)
			}
			return nil
		})
	}
	waitCheckResult(`{"exec":{"exitCode":4}}`)

	agentTasks := c.agents[0].Tasks()
	if len(agentTasks) != 1 {
		t.Fatalf("agent tasks %+v", agentTasks)
	}
	if err := os.WriteFile(filepath.Join(agentTasks[0].Sandbox, "ok"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitCheckResult(`{"exec":{"exitCode":0}}`)

	var list struct {
		Tasks []taskView `json:"tasks"`
	}
	c.mustCall(http.StatusOK, "GET", "/v2/tasks", nil, &list)
	if len(list.Tasks) != 1 || string(list.Tasks[0].CheckResult) != `{"exec":{"exitCode":0}}` {
		t.Fatalf("GET /v2/tasks = %+v", list.Tasks)
	}
}
