package services_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// TestFailoverDuringDeployment stops the leading master in the middle of a rolling
// upgrade: the new leader's framework resumes the deployment from the replicated state
// and finishes it, with exactly the app's instances running and none launched twice.
func TestFailoverDuringDeployment(t *testing.T) {
	t.Parallel()
	mc := master.NewTestCluster(t, 3, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
		})
	})
	var all []string
	for _, ts := range mc.Servers {
		all = append(all, ts.URL)
	}
	// Every master's address: the agent finds the leader among them, the stopped one
	// refusing.
	urls := func() []string { return all }
	agent.TestAgent(t, urls, func(cfg *agent.Config) { cfg.Hostname = "host-0" })
	leader := mc.Leader()
	c := &cluster{t: t, master: leader}
	c.waitAgents(1)

	const n = 12
	c.mustCall(http.StatusCreated, "POST", "/v2/apps", fmt.Sprintf(`{"id": "/ha", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": %d,
		"upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0.1}}`, n), nil)
	c.waitDeployed("/ha", n, false)
	var reply struct {
		DeploymentID string `json:"deploymentId"`
	}
	c.mustCall(http.StatusOK, "PUT", "/v2/apps/ha", `{"cmd": "exec sleep 1001"}`, &reply)
	// Stop the leader once the upgrade has replaced some, not all, of the tasks.
	eventually(t, "the upgrade under way", func() error {
		v := c.app("/ha")
		newer := 0
		for _, task := range v.App.Tasks {
			if task.Version == v.App.Version {
				newer++
			}
		}
		if newer == 0 || newer >= n-2 {
			return fmt.Errorf("%d of %d tasks at the new version", newer, len(v.App.Tasks))
		}
		return nil
	})
	leader.Stop()
	c.master = mc.Leader()
	if c.master == leader {
		t.Fatal("the stopped master still leads")
	}
	v := c.waitDeployed("/ha", n, false)
	for _, task := range v.App.Tasks {
		if task.Version != v.App.Version {
			t.Errorf("task %s at version %s, want %s", task.ID, task.Version, v.App.Version)
		}
	}
	// The master's own record: exactly n live tasks of the framework, no duplicates left
	// running.
	live := 0
	for _, task := range c.master.Store().Tasks() {
		if !task.State.Terminal() {
			live++
		}
	}
	if live != n {
		t.Errorf("%d live tasks in the master's state, want %d", live, n)
	}
	var deployments []any
	c.mustCall(http.StatusOK, "GET", "/v2/deployments", nil, &deployments)
	if len(deployments) != 0 {
		t.Errorf("deployments left: %v", deployments)
	}
}

// TestAbdicate: DELETE /v2/leader hands leadership to another master, whose framework
// then answers; a single master cannot abdicate.
func TestAbdicate(t *testing.T) {
	mc := master.NewTestCluster(t, 3, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
		})
	})
	leader := mc.Leader()
	c := &cluster{t: t, master: leader}
	var reply map[string]string
	c.mustCall(http.StatusOK, "DELETE", "/v2/leader", nil, &reply)
	if reply["message"] != "Leadership abdicated" {
		t.Errorf("DELETE /v2/leader = %v", reply)
	}
	next := mc.Leader()
	if next == leader {
		t.Fatalf("%s still leads after abdicating", leader.ID())
	}
	c.master = next
	eventually(t, "the new leader's framework answers", func() error {
		var l map[string]string
		if status, body := c.call("GET", "/v2/leader", nil, &l); status != http.StatusOK || l["leader"] != strings.TrimPrefix(next.URL, "http://") {
			return fmt.Errorf("GET /v2/leader = %d %s, want %s", status, body, next.URL)
		}
		return nil
	})

	single := newCluster(t, 0)
	if status, body := single.call("DELETE", "/v2/leader", nil, nil); status != http.StatusServiceUnavailable {
		t.Errorf("a single master abdicating = %d %s, want 503", status, body)
	}
}
