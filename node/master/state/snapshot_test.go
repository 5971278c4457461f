package state

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/hashicorp/raft"
)

// populatedFSM returns an FSM holding every kind of record: agents (one unreachable), a
// live and a removed framework, live tasks with statuses, and a completed ring.
func populatedFSM(t testing.TB, cfg FSMConfig) *FSM {
	t.Helper()
	fsm, err := NewFSMWithConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a2 := testAgent("a2")
	a2.Unreachable = true
	a2.UnreachableTime = t0.Add(time.Minute)
	withData := testTask("f1", "a1", "t-data")
	withData.Info.Data = []byte{0, 1, 2, 255}
	withData.Info.Labels = &api.Labels{Labels: []api.Label{{Key: "k", Value: "v"}}}
	healthy := true
	running := testStatus(api.TaskRunning, 1)
	running.Healthy = &healthy
	running.ContainerStatus = &api.ContainerStatus{NetworkInfos: []api.NetworkInfo{{IPAddresses: []api.IPAddress{{IPAddress: "10.0.0.5"}}}}}
	applyAll(t, fsm, 1,
		command{RegisterAgentType, RegisterAgentRequest{Agent: testAgent("a1")}},
		command{RegisterAgentType, RegisterAgentRequest{Agent: a2}},
		command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: testFramework("f1")}},
		command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: testFramework("f2")}},
		command{AddTasksType, AddTasksRequest{Tasks: []Task{
			testTask("f1", "a1", "t1"), testTask("f1", "a2", "t2"), withData,
			testTask("f2", "a1", "t3"), testTask("f2", "a1", "t4"),
		}}},
		command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{
			statusUpdate("f1", "t1", running),
			statusUpdate("f1", "t2", running),
			statusUpdate("f1", "t2", testStatus(api.TaskFailed, 2)),
			statusUpdate("f1", "t-data", running),
		}}},
		command{RemoveFrameworkType, RemoveFrameworkRequest{FrameworkID: "f2", Time: t0.Add(time.Hour)}},
		command{WriteKVType, WriteKVRequest{Namespace: "apps", Puts: []KVPut{{Key: "/a", Value: json.RawMessage(`{"id":"/a"}`)}, {Key: "/b", Value: json.RawMessage(`[1,2]`)}}}},
		command{WriteKVType, WriteKVRequest{Namespace: "jobs", Puts: []KVPut{{Key: "j", Value: json.RawMessage(`"x"`)}}}},
	)
	return fsm
}

// persist writes a snapshot of fsm through raft's in-memory snapshot store and returns
// its bytes.
func persist(t testing.TB, fsm *FSM) []byte {
	t.Helper()
	snap, err := fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	store := raft.NewInmemSnapshotStore()
	sink, err := store.Create(raft.SnapshotVersionMax, 1, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	_, rc, err := store.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestSnapshotRestore(t *testing.T) {
	source := populatedFSM(t, FSMConfig{Logger: testLogger(t), MaxCompletedTasks: 10, MaxCompletedFrameworks: 10})
	want := dump(source.Store())
	if len(want.Agents) != 2 || len(want.Frameworks) != 2 || len(want.Tasks) != 2 || len(want.Completed) != 3 || len(want.KV) != 3 {
		t.Fatalf("fixture does not cover every table: %s", toJSON(t, want))
	}
	data := persist(t, source)
	// Applying after the snapshot was taken does not leak into it.
	applyAll(t, source, 10, command{RemoveAgentType, RemoveAgentRequest{AgentID: "a1"}})

	restored := NewFSM(testLogger(t))
	applyAll(t, restored, 1, command{RegisterAgentType, RegisterAgentRequest{Agent: testAgent("stale")}})
	var changes []Change
	restored.OnChange(func(c Change) { changes = append(changes, c) })
	if err := restored.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertContents(t, dump(restored.Store()), want)
	if wantChanges := []Change{{Kind: Restored, Index: 9}}; !reflect.DeepEqual(changes, wantChanges) {
		t.Errorf("changes %+v, want %+v", changes, wantChanges)
	}

	// The ring continues after a restore: the next completed task goes last.
	applyAll(t, restored, 10, command{AddTasksType, AddTasksRequest{Tasks: []Task{{FrameworkID: "f1", AgentID: "a1", ID: "late", State: api.TaskFinished}}}})
	completed := restored.Store().CompletedTasks()
	if got := completed[len(completed)-1].ID; len(completed) != 4 || got != "late" {
		t.Errorf("after restore the ring has %d tasks ending in %q, want 4 ending in late", len(completed), got)
	}
}

func TestRestoreTrimsCompletedToOwnCap(t *testing.T) {
	source := populatedFSM(t, FSMConfig{Logger: testLogger(t), MaxCompletedTasks: 10, MaxCompletedFrameworks: 10})
	want := dump(source.Store())
	want.Completed = want.Completed[1:]
	restored, err := NewFSMWithConfig(FSMConfig{Logger: testLogger(t), MaxCompletedTasks: 2, MaxCompletedFrameworks: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := restored.Restore(io.NopCloser(bytes.NewReader(persist(t, source)))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	assertContents(t, dump(restored.Store()), want)
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	good := string(persist(t, populatedFSM(t, DefaultFSMConfig())))
	header, _, _ := strings.Cut(good, "\n")
	tests := []struct {
		name, data, wantErr string
	}{
		{"empty", "", "read header: EOF"},
		{"wrong version", `{"version":2,"last_index":1}`, "snapshot version 2, want 1"},
		{"two records in one", header + "\n" + `{"agent":{"id":"a"},"framework":{"id":"f"}}`, "record 1: holds 2 records, want 1"},
		{"no record", header + "\n{}", "record 1: holds 0 records, want 1"},
		{"completed without task", header + "\n" + `{"completed":{"seq":1}}`, "record 1: completed record without a task"},
		{"agent without id", header + "\n" + `{"agent":{"id":""}}`, "record 1: insert into agents: object missing primary index"},
		{"truncated", good[:len(good)-20], "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsm := NewFSM(testLogger(t))
			applyAll(t, fsm, 1, command{RegisterAgentType, RegisterAgentRequest{Agent: testAgent("kept")}})
			want := dump(fsm.Store())
			restoredCalled := false
			fsm.OnChange(func(Change) { restoredCalled = true })
			err := fsm.Restore(io.NopCloser(strings.NewReader(tt.data)))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("restore error %v, want one containing %q", err, tt.wantErr)
			}
			assertContents(t, dump(fsm.Store()), want)
			if restoredCalled {
				t.Errorf("observers were called for a failed restore")
			}
		})
	}
}
