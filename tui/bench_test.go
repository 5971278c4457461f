package tui

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/atoll/atoll/api"
)

// The targets, with 1,000 apps and 10,000 tasks: the first paint within 500 ms,
// an event on screen within 200 ms. The benchmarks measure the model's share (state,
// rows, rendering), not the terminal's.

const (
	benchApps        = 1000
	benchTasksPerApp = 10
	benchAgents      = 20
)

// BenchmarkFirstPaint builds the model from the full state of a large cluster and draws
// the overview, then the task view.
func BenchmarkFirstPaint(b *testing.B) {
	batch, tasks := fixture(benchApps, benchTasksPerApp, benchAgents)
	if tasks != benchApps*benchTasksPerApp {
		b.Fatalf("%d tasks", tasks)
	}
	for _, view := range []string{"overview", "apps", "tasks"} {
		b.Run(view, func(b *testing.B) {
			for b.Loop() {
				m, err := New(fixtureConfig())
				if err != nil {
					b.Fatal(err)
				}
				m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
				m.Update(batch)
				if view != "overview" {
					m.openView(findView(view), "")
					m.syncTop()
				}
				_ = m.View()
				m.Close()
			}
		})
	}
}

// BenchmarkEventToScreen applies one task update to a large cluster shown in the task
// view (or the overview) and draws the screen.
func BenchmarkEventToScreen(b *testing.B) {
	batch, _ := fixture(benchApps, benchTasksPerApp, benchAgents)
	for _, view := range []string{"overview", "apps", "tasks"} {
		b.Run(view, func(b *testing.B) {
			m, err := New(fixtureConfig())
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
			m.Update(batch)
			if view != "overview" {
				m.openView(findView(view), "")
			}
			states := []api.TaskState{api.TaskKilling, api.TaskRunning}
			i := 0
			for b.Loop() {
				st := states[i%2]
				i++
				m.Update(feedBatch{operatorEventMsg{&api.OperatorEvent{Type: api.OpEventTaskUpdated, TaskUpdated: &api.OpTaskUpdated{
					FrameworkID: api.FrameworkID{Value: "fw-marathon"}, State: st,
					Status: api.TaskStatus{TaskID: api.TaskID{Value: "app-0500.task-005"}, State: st},
				}}}})
				_ = m.View()
			}
		})
	}
}
