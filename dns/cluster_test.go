package dns

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/atoll/atoll/api"
)

// TestKeepReported: following a new master, a task the DNS had RUNNING and the new
// master's snapshot has not yet started keeps its names; every other task is as the
// snapshot says.
func TestKeepReported(t *testing.T) {
	task := func(id string, st api.TaskState, ip string) api.Task {
		tk := api.Task{Name: id, TaskID: api.TaskID{Value: id}, FrameworkID: api.FrameworkID{Value: "fw"},
			AgentID: api.AgentID{Value: "a1"}, State: st}
		if ip != "" {
			tk.Statuses = []api.TaskStatus{{TaskID: tk.TaskID, State: st, ContainerStatus: &api.ContainerStatus{
				NetworkInfos: []api.NetworkInfo{{IPAddresses: []api.IPAddress{{IPAddress: ip}}}}}}}
		}
		return tk
	}
	state := func(tasks ...api.Task) *api.GetState {
		return &api.GetState{GetTasks: &api.GetTasks{Tasks: tasks}}
	}
	prev := NewCluster(nil, state(
		task("reported", api.TaskRunning, "198.18.0.5"),
		task("ended", api.TaskRunning, ""),
		task("staging", api.TaskStaging, ""),
		task("killing", api.TaskKilling, ""),
	))
	next := NewCluster(nil, state(
		task("reported", api.TaskStaging, ""),
		task("staging", api.TaskStarting, ""),
		task("killing", api.TaskRunning, ""),
		task("new", api.TaskRunning, ""),
	))
	next.keepReported(prev)
	got := map[string]string{}
	for key, tk := range next.tasks {
		got[key.taskID] = fmt.Sprint(tk.State, " ", tk.IPs)
	}
	want := map[string]string{
		"reported": fmt.Sprint(api.TaskRunning, " ", []netip.Addr{netip.MustParseAddr("198.18.0.5")}),
		"staging":  fmt.Sprint(api.TaskStarting, " ", []netip.Addr(nil)),
		"killing":  fmt.Sprint(api.TaskRunning, " ", []netip.Addr(nil)),
		"new":      fmt.Sprint(api.TaskRunning, " ", []netip.Addr(nil)),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tasks after keepReported:\n got %v\nwant %v", got, want)
	}
}
