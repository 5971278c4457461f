package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

func openTestCheckpoint(t testing.TB, path string) *checkpoint {
	t.Helper()
	cp, err := openCheckpoint(path)
	if err != nil {
		t.Fatalf("open checkpoint: %v", err)
	}
	t.Cleanup(func() { cp.close() })
	return cp
}

func testRecord(framework, taskID string, state api.TaskState) taskRecord {
	cmd := "sleep 10"
	return taskRecord{
		FrameworkID: framework,
		Framework:   api.FrameworkInfo{User: "root", Name: "test", ID: &api.FrameworkID{Value: framework}},
		Task: api.TaskInfo{
			Name:    taskID,
			TaskID:  api.TaskID{Value: taskID},
			AgentID: api.AgentID{Value: "agent-1"},
			Command: &api.CommandInfo{Value: &cmd},
			Resources: []api.Resource{
				{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 0.5}},
				{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31001}}}},
			},
		},
		ContainerID: "c-" + taskID,
		Sandbox:     "/sandboxes/" + taskID,
		Container:   &isolate.State{ContainerID: "c-" + taskID, Kind: "process", Sandbox: "/sandboxes/" + taskID, PID: 42, ShimPID: 41, StartTime: 1234},
		State:       state,
	}
}

func testUpdate(framework, taskID string, state api.TaskState, uuidByte byte) api.AgentCallUpdate {
	return api.AgentCallUpdate{
		FrameworkID: api.FrameworkID{Value: framework},
		Status: api.TaskStatus{
			TaskID:    api.TaskID{Value: taskID},
			State:     state,
			Source:    api.SourceExecutor,
			AgentID:   &api.AgentID{Value: "agent-1"},
			Timestamp: 1700000000.25,
			UUID:      []byte{uuidByte, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		},
	}
}

// TestCheckpointSurvivesReopen writes identity, tasks and updates, reopens the file and
// reads back exactly the same content with each task's updates in the order written.
func TestCheckpointSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta", "agent.db")
	cp, err := openCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.setBootID("boot-1"); err != nil {
		t.Fatal(err)
	}
	if err := cp.setAgentID("agent-1"); err != nil {
		t.Fatal(err)
	}
	recA := testRecord("fw-1", "a", api.TaskRunning)
	recB := testRecord("fw-2", "b", api.TaskFinished)
	updatesA := []api.AgentCallUpdate{
		testUpdate("fw-1", "a", api.TaskRunning, 1),
		testUpdate("fw-1", "a", api.TaskKilling, 2),
		testUpdate("fw-1", "a", api.TaskKilled, 3),
	}
	var want []checkpointedTask
	var queueA []queuedUpdate
	for _, u := range updatesA {
		seq, err := cp.appendUpdate(&recA, u)
		if err != nil {
			t.Fatal(err)
		}
		queueA = append(queueA, queuedUpdate{seq: seq, update: u})
	}
	if err := cp.putTask(&recB); err != nil {
		t.Fatal(err)
	}
	want = append(want, checkpointedTask{record: recA, updates: queueA}, checkpointedTask{record: recB})
	if err := cp.close(); err != nil {
		t.Fatal(err)
	}

	cp = openTestCheckpoint(t, path)
	agentID, bootID, err := cp.identity()
	if err != nil || agentID != "agent-1" || bootID != "boot-1" {
		t.Fatalf("identity = %q, %q, %v; want agent-1, boot-1", agentID, bootID, err)
	}
	got, err := cp.tasks()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tasks after reopen:\n got %+v\nwant %+v", got, want)
	}
	if queueA[0].seq >= queueA[1].seq || queueA[1].seq >= queueA[2].seq {
		t.Fatalf("sequence numbers not increasing: %d %d %d", queueA[0].seq, queueA[1].seq, queueA[2].seq)
	}
}

// TestCheckpointAcknowledgeRemoves removes acknowledged updates (head and middle) and
// keeps the rest in order; deleting a task removes its queue too.
func TestCheckpointAcknowledgeRemoves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	cp := openTestCheckpoint(t, path)
	rec := testRecord("fw-1", "a", api.TaskFinished)
	var queue []queuedUpdate
	for i, state := range []api.TaskState{api.TaskRunning, api.TaskKilling, api.TaskKilled, api.TaskLost} {
		u := testUpdate("fw-1", "a", state, byte(i))
		seq, err := cp.appendUpdate(&rec, u)
		if err != nil {
			t.Fatal(err)
		}
		queue = append(queue, queuedUpdate{seq: seq, update: u})
	}
	for _, seq := range []uint64{queue[0].seq, queue[2].seq} {
		if err := cp.removeUpdate(rec.key(), seq).wait(); err != nil {
			t.Fatal(err)
		}
	}
	// Removing an update of a task without a queue is not an error.
	if err := cp.removeUpdate(taskKey("fw-9", "none"), 1).wait(); err != nil {
		t.Fatal(err)
	}
	got, err := cp.tasks()
	if err != nil {
		t.Fatal(err)
	}
	want := []checkpointedTask{{record: rec, updates: []queuedUpdate{queue[1], queue[3]}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after acks:\n got %+v\nwant %+v", got, want)
	}

	if err := cp.deleteTask(rec.key()).wait(); err != nil {
		t.Fatal(err)
	}
	if got, err := cp.tasks(); err != nil || len(got) != 0 {
		t.Fatalf("after delete: %+v, %v; want nothing", got, err)
	}
	// A new queue for the same key starts empty: nothing of the old one is left.
	if _, err := cp.appendUpdate(&rec, testUpdate("fw-1", "a", api.TaskRunning, 9)); err != nil {
		t.Fatal(err)
	}
	got, err = cp.tasks()
	if err != nil || len(got) != 1 || len(got[0].updates) != 1 || got[0].updates[0].update.Status.UUID[0] != 9 {
		t.Fatalf("after re-adding: %+v, %v; want one task with update 9 only", got, err)
	}
}

// TestCheckpointDropAndReset covers framework removal (queue dropped, record kept) and a
// reboot (everything but the new boot id forgotten).
func TestCheckpointDropAndReset(t *testing.T) {
	cp := openTestCheckpoint(t, filepath.Join(t.TempDir(), "agent.db"))
	rec := testRecord("fw-1", "a", api.TaskRunning)
	if _, err := cp.appendUpdate(&rec, testUpdate("fw-1", "a", api.TaskRunning, 1)); err != nil {
		t.Fatal(err)
	}
	rec.FrameworkRemoved = true
	if err := cp.dropUpdates(&rec); err != nil {
		t.Fatal(err)
	}
	got, err := cp.tasks()
	if err != nil || !reflect.DeepEqual(got, []checkpointedTask{{record: rec}}) {
		t.Fatalf("after drop: %+v, %v; want the record alone", got, err)
	}
	if err := cp.setAgentID("agent-1"); err != nil {
		t.Fatal(err)
	}
	if err := cp.reset("boot-2"); err != nil {
		t.Fatal(err)
	}
	agentID, bootID, err := cp.identity()
	if err != nil || agentID != "" || bootID != "boot-2" {
		t.Fatalf("identity after reset = %q, %q, %v; want \"\", boot-2", agentID, bootID, err)
	}
	if got, err := cp.tasks(); err != nil || len(got) != 0 {
		t.Fatalf("tasks after reset: %+v, %v; want none", got, err)
	}
}

// TestCheckpointUpgradeAndDowngrade opens a checkpoint written with the free page list
// synced, as agents before NoFreelistSync wrote it, reads it, writes to it, and leaves a
// file that bbolt's default options (an older agent) still open and find consistent.
func TestCheckpointUpgradeAndDowngrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	rec := testRecord("fw-1", "a", api.TaskRunning)
	first := testUpdate("fw-1", "a", api.TaskRunning, 1)
	recJSON, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	firstJSON, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	old, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = old.Update(func(tx *bbolt.Tx) error {
		meta, err1 := tx.CreateBucket(bucketMeta)
		tasks, err2 := tx.CreateBucket(bucketTasks)
		updates, err3 := tx.CreateBucket(bucketUpdates)
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		queue, err := updates.CreateBucket([]byte(rec.key()))
		if err != nil {
			return err
		}
		return errors.Join(meta.Put(keyAgentID, []byte("agent-1")), meta.Put(keyBootID, []byte("boot-1")),
			tasks.Put([]byte(rec.key()), recJSON), queue.Put(seqKey(5), firstJSON))
	})
	if err := errors.Join(err, old.Close()); err != nil {
		t.Fatal(err)
	}

	cp, err := openCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	agentID, bootID, err := cp.identity()
	if err != nil || agentID != "agent-1" || bootID != "boot-1" {
		t.Fatalf("identity = %q, %q, %v; want agent-1, boot-1", agentID, bootID, err)
	}
	second := testUpdate("fw-1", "a", api.TaskFinished, 2)
	rec.State = api.TaskFinished
	seq, err := cp.appendUpdate(&rec, second)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 6 {
		t.Fatalf("sequence number after the old file's 5 = %d, want 6", seq)
	}
	if err := cp.close(); err != nil {
		t.Fatal(err)
	}

	downgraded, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer downgraded.Close()
	err = downgraded.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		if n := tx.Bucket(bucketUpdates).Bucket([]byte(rec.key())).Stats().KeyN; n != 2 {
			return fmt.Errorf("%d updates queued, want 2", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the file read with bbolt's default options: %v", err)
	}
	if err := downgraded.Close(); err != nil {
		t.Fatal(err)
	}
	cp = openTestCheckpoint(t, path)
	got, err := cp.tasks()
	want := []checkpointedTask{{record: rec, updates: []queuedUpdate{{seq: 5, update: first}, {seq: 6, update: second}}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("tasks = %+v, %v\nwant %+v", got, err, want)
	}
}

// TestCheckpointLocked refuses a second opener of the same file instead of hanging.
func TestCheckpointLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	openTestCheckpoint(t, path)
	_, err := openCheckpoint(path)
	if err == nil || !strings.Contains(err.Error(), "locked by another agent process") {
		t.Fatalf("second open: %v; want a lock error", err)
	}
}

// TestCheckpointGroupCommit: writes queued concurrently by many tasks all reach the disk,
// each task's updates in the order they were queued, and sequence numbers continue after a
// reopen.
func TestCheckpointGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	cp, err := openCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	const tasks, perTask = 50, 4
	states := []api.TaskState{api.TaskStarting, api.TaskRunning, api.TaskKilling, api.TaskKilled}
	var wg sync.WaitGroup
	for i := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := taskRecord{FrameworkID: "fw", Task: api.TaskInfo{TaskID: api.TaskID{Value: fmt.Sprint("t", i)}}}
			var ops []*cpOp
			for j := range perTask {
				rec.State = states[j]
				_, op := cp.appendUpdateAsync(&rec, testUpdate("fw", rec.Task.TaskID.Value, states[j], byte(j)))
				ops = append(ops, op)
			}
			for _, op := range ops {
				if err := op.wait(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := cp.close(); err != nil {
		t.Fatal(err)
	}
	cp, err = openCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.close()
	got, err := cp.tasks()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != tasks {
		t.Fatalf("%d tasks on disk, want %d", len(got), tasks)
	}
	for _, ct := range got {
		if ct.record.State != api.TaskKilled || len(ct.updates) != perTask {
			t.Fatalf("task %s: state %s with %d updates, want TASK_KILLED with %d", ct.record.Task.TaskID.Value, ct.record.State, len(ct.updates), perTask)
		}
		for j, u := range ct.updates {
			if u.update.Status.State != states[j] {
				t.Fatalf("task %s update %d is %s, want %s", ct.record.Task.TaskID.Value, j, u.update.Status.State, states[j])
			}
		}
	}
	if next, _ := cp.appendUpdateAsync(&got[0].record, testUpdate("fw", "t0", api.TaskLost, 9)); next != tasks*perTask+1 {
		t.Fatalf("sequence after reopen = %d, want %d", next, tasks*perTask+1)
	}
}
