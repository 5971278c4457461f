package state

import (
	"encoding/json"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/hashicorp/raft"
)

// t0 is the time fixtures are stamped with: UTC without a monotonic reading, so records
// compare equal after a JSON round trip.
var t0 = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// testLogger returns a logger writing to t.Log that falls silent once the test ends, since
// Raft's goroutines may still log while shutting down.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p))
	}
	return len(p), nil
}

func testAgent(id string) Agent {
	return Agent{
		ID: id,
		Info: api.AgentInfo{
			Hostname: "host-" + id,
			Port:     5051,
			Resources: []api.Resource{
				{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 4}},
				{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 8192}},
			},
		},
		HTTPAddress:    "127.0.0.1:5051",
		Version:        "0.1.0",
		BootID:         "boot-" + id,
		RegisteredTime: t0,
	}
}

// stored returns the agent as the store holds it: Info.ID filled in.
func (a Agent) stored() *Agent {
	a.Info.ID = &api.AgentID{Value: a.ID}
	return &a
}

func testFramework(id string) Framework {
	return Framework{
		ID:             id,
		Info:           api.FrameworkInfo{User: "root", Name: "fw-" + id, Roles: []string{"web"}},
		RegisteredTime: t0,
		Connected:      true,
	}
}

func (f Framework) stored() *Framework {
	f.Info.ID = &api.FrameworkID{Value: f.ID}
	return &f
}

func (f Framework) removedAt(at time.Time) Framework {
	f.Removed = true
	f.RemovedTime = at
	f.Connected = false
	return f
}

func testTask(frameworkID, agentID, id string) Task {
	return Task{
		FrameworkID: frameworkID,
		AgentID:     agentID,
		ID:          id,
		Info: api.TaskInfo{
			Name:      "task-" + id,
			Resources: []api.Resource{{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 0.5}}},
		},
		Role:         "web",
		LaunchedTime: t0,
	}
}

// stored returns the task as the store holds it after AddTasks: ids in Info filled in and
// STAGING for an empty state.
func (t Task) stored() *Task {
	t.Info.TaskID = api.TaskID{Value: t.ID}
	t.Info.AgentID = api.AgentID{Value: t.AgentID}
	if t.State == "" {
		t.State = api.TaskStaging
	}
	return &t
}

// withStatuses returns the stored task after the given statuses were applied.
func (t Task) withStatuses(statuses ...api.TaskStatus) *Task {
	stored := t.stored()
	for _, s := range statuses {
		s.TaskID = api.TaskID{Value: t.ID}
		stored.Statuses = append(stored.Statuses, s)
		stored.State = s.State
	}
	return stored
}

func testStatus(state api.TaskState, n int) api.TaskStatus {
	return api.TaskStatus{
		State:     state,
		Source:    api.SourceAgent,
		Timestamp: float64(t0.Unix() + int64(n)),
		UUID:      []byte{byte(n), 1, 2, 3},
	}
}

func statusUpdate(frameworkID, taskID string, status api.TaskStatus) TaskStatusUpdate {
	return TaskStatusUpdate{FrameworkID: frameworkID, TaskID: taskID, Status: status}
}

// command is one command to apply.
type command struct {
	t   MessageType
	req any
}

// applyAll applies commands as consecutive log entries from index first and returns the
// results.
func applyAll(t testing.TB, fsm *FSM, first uint64, commands ...command) []*ApplyResult {
	t.Helper()
	results := make([]*ApplyResult, len(commands))
	for i, c := range commands {
		results[i] = applyOne(t, fsm, first+uint64(i), c)
	}
	return results
}

func applyOne(t testing.TB, fsm *FSM, index uint64, c command) *ApplyResult {
	t.Helper()
	data, err := Encode(c.t, c.req)
	if err != nil {
		t.Fatalf("encode %s: %v", c.t, err)
	}
	response := fsm.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
	result, ok := response.(*ApplyResult)
	if !ok {
		t.Fatalf("apply %s returned %T, want *ApplyResult", c.t, response)
	}
	if result.Index != index {
		t.Fatalf("apply %s: result index %d, want %d", c.t, result.Index, index)
	}
	return result
}

// contents is everything a store holds, for exact comparison.
type contents struct {
	Agents     []*Agent
	Frameworks []*Framework
	Tasks      []*Task
	Completed  []*Task
	KV         []*KVEntry
	LastIndex  uint64
}

func dump(s *Store) contents {
	snap := s.Snapshot()
	return contents{
		Agents:     snap.Agents(),
		Frameworks: snap.Frameworks(),
		Tasks:      snap.Tasks(),
		Completed:  snap.CompletedTasks(),
		KV:         append(snap.KVList("apps", ""), snap.KVList("jobs", "")...),
		LastIndex:  snap.LastIndex(),
	}
}

func assertContents(t testing.TB, got, want contents) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("store contents differ\ngot:  %s\nwant: %s", toJSON(t, got), toJSON(t, want))
	}
}

func toJSON(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(data)
}
