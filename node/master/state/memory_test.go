package state

import (
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/atoll/atoll/api"
)

// realisticTask is a task as a Marathon-style app launches it: command, resources with
// ports, environment, labels, discovery, health check and a Docker image.
func realisticTask(n int) Task {
	id := fmt.Sprintf("web.%08d-0000-11ef-8000-0242ac110002", n)
	shell := true
	command := "python3 -m http.server $PORT0"
	interval := 10.0
	return Task{
		FrameworkID: "marathon-0000-0000-0000-000000000001",
		AgentID:     fmt.Sprintf("agent-%04d-0000-0000-0000-000000000000-S%d", n%100, n%100),
		ID:          id,
		Role:        "web",
		State:       api.TaskStaging,
		Info: api.TaskInfo{
			Name: "web",
			Resources: []api.Resource{
				{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 0.1}},
				{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 64}},
				{Name: "disk", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 0}},
				{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31000}}}},
			},
			Command: &api.CommandInfo{
				Shell: &shell,
				Value: &command,
				Environment: &api.Environment{Variables: []api.EnvironmentVariable{
					{Name: "PORT0", Value: "31000"}, {Name: "PORT", Value: "31000"},
					{Name: "MARATHON_APP_ID", Value: "/web"}, {Name: "MARATHON_APP_VERSION", Value: "2024-05-06T07:08:09.000Z"},
					{Name: "MESOS_TASK_ID", Value: id},
				}},
			},
			Container: &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{Type: "DOCKER", Docker: &api.ImageDocker{Name: "python:3.12-slim"}}}},
			HealthCheck: &api.HealthCheck{
				Type: "HTTP", IntervalSeconds: &interval,
				HTTP: &api.HTTPHealthCheck{Port: 31000, Path: "/"},
			},
			Labels: &api.Labels{Labels: []api.Label{{Key: "HAPROXY_GROUP", Value: "external"}, {Key: "team", Value: "web"}}},
			Discovery: &api.DiscoveryInfo{
				Visibility: "FRAMEWORK", Name: "web",
				Ports: &api.Ports{Ports: []api.Port{{Number: 31000, Name: "http", Protocol: "tcp"}}},
			},
		},
		LaunchedTime: t0,
	}
}

// realisticStatus is the n-th status of a running task: each has its own uuid and time,
// and repeats the agent, health and container status.
func realisticStatus(task *Task, n int) api.TaskStatus {
	healthy := true
	return api.TaskStatus{
		State:     api.TaskRunning,
		Source:    api.SourceExecutor,
		Message:   "health check passed",
		AgentID:   &api.AgentID{Value: task.AgentID},
		Timestamp: float64(t0.Unix()) + float64(n),
		UUID:      []byte(fmt.Sprintf("%016d", n)),
		Healthy:   &healthy,
		ContainerStatus: &api.ContainerStatus{
			ContainerID:  &api.ContainerID{Value: "c-" + task.ID},
			NetworkInfos: []api.NetworkInfo{{IPAddresses: []api.IPAddress{{Protocol: "IPv4", IPAddress: "198.18.0.10"}}}},
		},
	}
}

// build10kTasks applies 10,000 realistic tasks with a full history of statuses each, the
// way they arrive: launches in batches, then status updates in batches.
func build10kTasks(b *testing.B) *FSM {
	b.Helper()
	const tasks, batch = 10000, 200
	fsm := NewFSM(nil)
	index := uint64(1)
	for start := 0; start < tasks; start += batch {
		var launched []Task
		for n := start; n < start+batch; n++ {
			launched = append(launched, realisticTask(n))
		}
		applyAll(b, fsm, index, command{AddTasksType, AddTasksRequest{Tasks: launched}})
		index++
		for round := range MaxTaskStatuses {
			var updates []TaskStatusUpdate
			for i := range launched {
				updates = append(updates, statusUpdate(launched[i].FrameworkID, launched[i].ID, realisticStatus(&launched[i], round)))
			}
			applyAll(b, fsm, index, command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: updates}})
			index++
		}
	}
	return fsm
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.HeapAlloc
}

// BenchmarkStoreMemory10kTasks reports the live heap that 10,000 tasks with 10 statuses
// each take in the store (the master's RSS budget is 250 MB in all).
func BenchmarkStoreMemory10kTasks(b *testing.B) {
	for range b.N {
		before := heapInUse()
		fsm := build10kTasks(b)
		after := heapInUse()
		if got := len(fsm.Store().Tasks()); got != 10000 {
			b.Fatalf("%d live tasks, want 10000", got)
		}
		b.ReportMetric(float64(after-before)/(1<<20), "heap-MB")
		runtime.KeepAlive(fsm)
	}
}

// BenchmarkSnapshotPersist10kTasks measures writing a snapshot of 10,000 tasks.
func BenchmarkSnapshotPersist10kTasks(b *testing.B) {
	fsm := build10kTasks(b)
	snap, err := fsm.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	counter := &countingWriter{}
	b.ResetTimer()
	for range b.N {
		counter.n = 0
		if err := snap.(*fsmSnapshot).write(counter); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(counter.n)/(1<<20), "snapshot-MB")
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)
