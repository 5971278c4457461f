package tui

import (
	"fmt"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

// fixtureEpoch is the time of every status in the fixtures; the fixture clock is an hour
// later.
var fixtureEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixtureTask is task j of app i, on agent j mod agents.
func fixtureTask(i, j, agents int, state api.TaskState) api.Task {
	ts := float64(fixtureEpoch.Unix())
	return api.Task{
		Name: fmt.Sprintf("app-%04d", i), TaskID: api.TaskID{Value: fmt.Sprintf("app-%04d.task-%03d", i, j)},
		FrameworkID: api.FrameworkID{Value: "fw-marathon"}, AgentID: api.AgentID{Value: fmt.Sprintf("agent-%02d", j%agents)},
		State:     state,
		Resources: simResources(0.1, 32, 0)[:2],
		Labels:    &api.Labels{Labels: []api.Label{{Key: api.LabelAppID, Value: fmt.Sprintf("/app-%04d", i)}}},
		Statuses:  []api.TaskStatus{{TaskID: api.TaskID{Value: fmt.Sprintf("app-%04d.task-%03d", i, j)}, State: state, Timestamp: ts}},
	}
}

// fixture is a cluster state of apps apps, app i with i%3+1 tasks (or tasksPerApp when
// above 0), on agents agents: the SUBSCRIBED event and the Marathon snapshot.
func fixture(apps, tasksPerApp, agents int) (feedBatch, int) {
	st := &api.GetState{GetAgents: &api.GetAgents{}, GetFrameworks: &api.GetFrameworks{}, GetTasks: &api.GetTasks{}}
	for a := range agents {
		id := api.AgentID{Value: fmt.Sprintf("agent-%02d", a)}
		st.GetAgents.Agents = append(st.GetAgents.Agents, api.AgentState{
			AgentInfo: api.AgentInfo{Hostname: fmt.Sprintf("host-%02d", a), ID: &id}, Active: true,
			TotalResources: simResources(64, 65536, 100000), Version: "test",
		})
	}
	fid := api.FrameworkID{Value: "fw-marathon"}
	st.GetFrameworks.Frameworks = []api.FrameworkState{{FrameworkInfo: api.FrameworkInfo{Name: "marathon", ID: &fid}, Active: true, Connected: true}}
	var snap marathonSnapshotMsg
	tasks := 0
	for i := range apps {
		n := i%3 + 1
		if tasksPerApp > 0 {
			n = tasksPerApp
		}
		for j := range n {
			st.GetTasks.Tasks = append(st.GetTasks.Tasks, fixtureTask(i, j, agents, api.TaskRunning))
			tasks++
		}
		snap.apps = append(snap.apps, marathon.AppInfo{App: marathon.App{ID: fmt.Sprintf("/app-%04d", i), Cmd: "sleep 1000", Instances: n, Cpus: 0.1, Mem: 32,
			Version: marathon.Timestamp(fixtureEpoch)}})
	}
	subscribed := &api.OperatorEvent{Type: api.OpEventSubscribed, Subscribed: &api.OpSubscribed{GetState: st}}
	return feedBatch{
		operatorEventMsg{subscribed},
		connMsg{stream: streamOperator, state: connConnected},
		snap,
		connMsg{stream: streamMarathon, state: connConnected},
		jobsMsg{jobs: []chronos.Job{{Name: "nightly", Command: "backup", Cron: "0 3 * * *"}}},
	}, tasks
}

// fixtureModel is a model fed a fixture, on a width × height screen, whose clients point
// at a closed loopback port: it is never started, so it makes no request unless a test
// runs a command it returns.
func fixtureModel(tb testing.TB, cfg Config, apps, width, height int) *Model {
	tb.Helper()
	m := newFixtureModel(tb, cfg)
	batch, _ := fixture(apps, 0, 3)
	m.Update(tea.WindowSizeMsg{Width: width, Height: height})
	m.Update(batch)
	return m
}

func newFixtureModel(tb testing.TB, cfg Config) *Model {
	tb.Helper()
	m, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Close)
	return m
}

// fixtureConfig is a configuration for fixture models.
func fixtureConfig() Config {
	cfg := DefaultConfig()
	const closed = "http://127.0.0.1:1"
	cfg.API = api.NewClient(closed)
	cfg.Marathon = marathon.NewClient(closed)
	cfg.Chronos = chronos.NewClient(closed)
	cfg.Universe = universe.NewClient(closed)
	cfg.Addr = "http://master:5050"
	now := fixtureEpoch.Add(time.Hour)
	cfg.Now = func() time.Time { return now }
	cfg.Renderer = plainRenderer()
	return cfg
}

// press sends keys to the model and returns the last command.
func press(m *Model, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		_, cmd = m.Update(keyMsg(k))
	}
	return cmd
}

// rowKeys lists the keys of the top page's rows, in order.
func rowKeys(m *Model) []string {
	var keys []string
	for _, r := range m.top().table.rows {
		keys = append(keys, r.key)
	}
	return keys
}
