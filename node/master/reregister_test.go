package master_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// TestFailedAgentAcrossLeaderChange: an agent whose node gossip reported failed before a
// leader change gets what is left of AgentTimeout from the new leader, not the
// AgentReregisterTimeout meant for agents that merely lost their leader: its tasks become
// unreachable within seconds, not minutes.
func TestFailedAgentAcrossLeaderChange(t *testing.T) {
	c := master.NewTestCluster(t, 3, func(cfg *master.Config) {
		cfg.AgentTimeout = 2 * time.Second
		cfg.AgentReregisterTimeout = 10 * time.Minute
	})
	leader := c.Leader()
	urls := func() []string {
		var out []string
		for _, s := range c.Running() {
			out = append(out, s.URL)
		}
		return out
	}
	a := agent.TestAgent(t, urls)
	// A framework that outlives its stream: with no failover timeout, the old leader
	// would remove it, and kill its task, the moment the stream closes.
	info := frameworkInfo("aware", api.CapabilityPartitionAware)
	info.FailoverTimeout = 600
	f := subscribe(t, leader.URL, info)
	o := f.offers()[0]
	f.launch(o, shellTask("pa", "sleep 60", 0.1, 32))
	f.update("pa", api.TaskRunning, true)
	agentID := o.AgentID.Value

	// The agent's host goes away: every master's gossip says so.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx, false); err != nil {
		t.Fatalf("agent shutdown: %v", err)
	}
	for _, s := range c.Running() {
		s.Master.AgentFailed(agentID)
	}
	f.close()
	leader.Stop()
	next := c.Leader()
	if next == leader {
		t.Fatal("the stopped master still leads")
	}
	client := api.NewClient(next.URL)
	eventually(t, "the task unreachable on the new leader", func() error {
		tasks, err := client.GetTasks(context.Background())
		if err != nil {
			return err
		}
		if len(tasks.UnreachableTasks) != 1 || tasks.UnreachableTasks[0].TaskID.Value != "pa" {
			return fmt.Errorf("unreachable tasks %+v, tasks %+v, completed %+v", tasks.UnreachableTasks, tasks.Tasks, tasks.CompletedTasks)
		}
		return nil
	})
}
