package agent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

func openTestCheckpoint(t testing.TB, dir string) *checkpoint {
	t.Helper()
	cp, err := openCheckpoint(dir)
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
	path := filepath.Join(t.TempDir(), "meta")
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
	cp := openTestCheckpoint(t, t.TempDir())
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
	cp := openTestCheckpoint(t, t.TempDir())
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

// TestCheckpointTakesOverLegacy opens a work dir holding the bbolt checkpoint agents
// before kept, written with and without the free page list synced: its identity, tasks
// and updates carry over, sequence numbers continue after its highest, and the bbolt file
// is removed once the log holds its content.
func TestCheckpointTakesOverLegacy(t *testing.T) {
	for _, noFreelistSync := range []bool{false, true} {
		t.Run(fmt.Sprint("NoFreelistSync=", noFreelistSync), func(t *testing.T) {
			dir := t.TempDir()
			legacy := filepath.Join(dir, legacyCheckpointFile)
			rec := testRecord("fw-1", "a", api.TaskRunning)
			first := testUpdate("fw-1", "a", api.TaskRunning, 1)
			writeLegacyCheckpoint(t, legacy, &bbolt.Options{NoFreelistSync: noFreelistSync}, rec, map[uint64]api.AgentCallUpdate{5: first})

			cp, err := openCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(legacy); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("legacy checkpoint after the take-over: %v, want it removed", err)
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
			cp = openTestCheckpoint(t, dir)
			got, err := cp.tasks()
			want := []checkpointedTask{{record: rec, updates: []queuedUpdate{{seq: 5, update: first}, {seq: 6, update: second}}}}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("tasks = %+v, %v\nwant %+v", got, err, want)
			}
		})
	}
}

// writeLegacyCheckpoint writes a bbolt checkpoint as agents before did: agent-1 on
// boot-1, rec and its updates.
func writeLegacyCheckpoint(t testing.TB, path string, opts *bbolt.Options, rec taskRecord, updates map[uint64]api.AgentCallUpdate) {
	t.Helper()
	recJSON, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, opts)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err1 := tx.CreateBucket(bucketMeta)
		tasks, err2 := tx.CreateBucket(bucketTasks)
		all, err3 := tx.CreateBucket(bucketUpdates)
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		queue, err := all.CreateBucket([]byte(rec.key()))
		if err != nil {
			return err
		}
		errs := []error{meta.Put(keyAgentID, []byte("agent-1")), meta.Put(keyBootID, []byte("boot-1")), tasks.Put([]byte(rec.key()), recJSON)}
		for seq, u := range updates {
			uJSON, err := json.Marshal(u)
			errs = append(errs, err, queue.Put(binary.BigEndian.AppendUint64(nil, seq), uJSON))
		}
		return errors.Join(errs...)
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointWrittenSurvivesAgentCrash: a write that needs no sync (a task's record at
// LAUNCH) is found by the next agent process once it settled, even though the process
// that made it died without closing the checkpoint.
func TestCheckpointWrittenSurvivesAgentCrash(t *testing.T) {
	dir := t.TempDir()
	cp, err := openCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := testRecord("fw-1", "a", api.TaskStaging)
	if err := cp.putTask(&rec); err != nil {
		t.Fatal(err)
	}
	// A crash: the committer stops with the process, and nothing is synced or closed.
	cp.stop()
	if err := cp.release(); err != nil {
		t.Fatal(err)
	}
	got, err := openTestCheckpoint(t, dir).tasks()
	if want := []checkpointedTask{{record: rec}}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("tasks after the crash = %+v, %v\nwant %+v", got, err, want)
	}
}

// TestCheckpointTornTail reopens logs whose end was left incomplete or damaged, as a
// host crash may leave the part not synced yet: the records before the first one that
// does not check are kept, the rest is dropped, and the file written from then on is
// whole again.
func TestCheckpointTornTail(t *testing.T) {
	recA := testRecord("fw-1", "a", api.TaskRunning)
	recB := testRecord("fw-1", "b", api.TaskRunning)
	recC := testRecord("fw-1", "c", api.TaskRunning)
	// write makes a log of tasks a, b and c and returns its bytes and where c's record
	// starts.
	write := func(t *testing.T, dir string) ([]byte, int) {
		cp, err := openCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range []*taskRecord{&recA, &recB} {
			if err := cp.putTask(rec); err != nil {
				t.Fatal(err)
			}
		}
		cStart := int(cp.end)
		if err := errors.Join(cp.putTask(&recC), cp.close()); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, checkpointFile))
		if err != nil {
			t.Fatal(err)
		}
		return data, cStart
	}
	tests := []struct {
		name string
		// damage changes the log; c is where task c's record starts.
		damage func(data []byte, c int) []byte
		want   []taskRecord
	}{
		{name: "whole", damage: func(data []byte, _ int) []byte { return data }, want: []taskRecord{recA, recB, recC}},
		{name: "cut inside the last record", damage: func(data []byte, c int) []byte { return data[:c+20] }, want: []taskRecord{recA, recB}},
		{name: "cut inside the last frame", damage: func(data []byte, c int) []byte { return data[:c+3] }, want: []taskRecord{recA, recB}},
		{name: "last record's payload damaged", damage: func(data []byte, c int) []byte {
			data[c+recordHeaderSize+10] ^= 0xff
			return data
		}, want: []taskRecord{recA, recB}},
		{name: "last record's length too long", damage: func(data []byte, c int) []byte {
			binary.LittleEndian.PutUint32(data[c:], uint32(len(data)))
			return data
		}, want: []taskRecord{recA, recB}},
		{name: "last record from another log", damage: func(data []byte, c int) []byte {
			op := logOp{kind: opTask, key: recC.key(), data: []byte(`{}`)}
			return appendRecord(data[:c], binary.LittleEndian.Uint64(data[len(checkpointMagic):])+1, &op)
		}, want: []taskRecord{recA, recB}},
		{name: "garbage after the records", damage: func(data []byte, _ int) []byte {
			return append(data, bytes.Repeat([]byte{0x5a}, 100)...)
		}, want: []taskRecord{recA, recB, recC}},
		{name: "header only", damage: func(data []byte, _ int) []byte { return data[:checkpointHeaderSize] }, want: nil},
		{name: "empty", damage: func([]byte, int) []byte { return nil }, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data, c := write(t, dir)
			if err := os.WriteFile(filepath.Join(dir, checkpointFile), tc.damage(data, c), 0o600); err != nil {
				t.Fatal(err)
			}
			cp := openTestCheckpoint(t, dir)
			checkTasks(t, cp, tc.want)
			// Written after the damage, and read back after another reopen.
			recD := testRecord("fw-1", "d", api.TaskStaging)
			if err := errors.Join(cp.putTask(&recD), cp.close()); err != nil {
				t.Fatal(err)
			}
			checkTasks(t, openTestCheckpoint(t, dir), append(slices.Clone(tc.want), recD))
		})
	}
}

// checkTasks checks that cp holds exactly the records want, without updates.
func checkTasks(t testing.TB, cp *checkpoint, want []taskRecord) {
	t.Helper()
	got, err := cp.tasks()
	if err != nil {
		t.Fatal(err)
	}
	var wantTasks []checkpointedTask
	for _, rec := range want {
		wantTasks = append(wantTasks, checkpointedTask{record: rec})
	}
	if !reflect.DeepEqual(got, wantTasks) {
		t.Fatalf("tasks = %+v\nwant %+v", got, wantTasks)
	}
}

// TestCheckpointNotALog refuses a file that is not a checkpoint log rather than
// overwriting it.
func TestCheckpointNotALog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, checkpointFile)
	content := []byte("something else entirely")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openCheckpoint(dir)
	if want := "checkpoint " + path + ": not an agent checkpoint log"; err == nil || err.Error() != want {
		t.Fatalf("open = %v, want %q", err, want)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("file after the refused open = %q, %v; want it untouched", got, err)
	}
}

// TestCheckpointCompaction: a log that has grown past several times its content is
// rewritten with the content alone, which reads back the same.
func TestCheckpointCompaction(t *testing.T) {
	dir := t.TempDir()
	cp, err := openCompactingAt(dir, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.close() })
	generation := func() uint64 {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(dir, checkpointFile))
		if err != nil {
			t.Fatal(err)
		}
		return binary.LittleEndian.Uint64(data[len(checkpointMagic):])
	}
	first := generation()
	var kept []taskRecord
	var keptUpdates [][]queuedUpdate
	// written counts the bytes of the records written, which the log would hold without
	// compaction.
	written := 0
	for i := range 100 {
		rec := testRecord("fw-1", fmt.Sprintf("t%03d", i), api.TaskRunning)
		u := testUpdate("fw-1", rec.Task.TaskID.Value, api.TaskRunning, byte(i))
		seq, err := cp.appendUpdate(&rec, u)
		if err != nil {
			t.Fatal(err)
		}
		recJSON, err1 := json.Marshal(rec)
		uJSON, err2 := json.Marshal(u)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		written += len(appendRecord(nil, 0, &logOp{kind: opUpdate, seq: seq, key: rec.key(), data: recJSON, extra: uJSON}))
		if i%10 != 0 {
			if err := cp.deleteTask(rec.key()).wait(); err != nil {
				t.Fatal(err)
			}
			written += len(appendRecord(nil, 0, &logOp{kind: opDeleteTask, key: rec.key()}))
			continue
		}
		kept = append(kept, rec)
		keptUpdates = append(keptUpdates, []queuedUpdate{{seq: seq, update: u}})
	}
	if generation() == first {
		t.Fatalf("the log was never rewritten: %d bytes", cp.end)
	}
	if cp.end >= int64(written/2) {
		t.Errorf("log holds %d bytes after compactions, want under half the %d written", cp.end, written)
	}
	var want []checkpointedTask
	for i, rec := range kept {
		want = append(want, checkpointedTask{record: rec, updates: keptUpdates[i]})
	}
	for _, reopen := range []bool{false, true} {
		if reopen {
			if err := cp.close(); err != nil {
				t.Fatal(err)
			}
			cp = openTestCheckpoint(t, dir)
		}
		got, err := cp.tasks()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("reopened %v: tasks = %+v, %v\nwant %+v", reopen, got, err, want)
		}
	}
}

// TestCheckpointLocked refuses a second opener of the same file instead of hanging.
func TestCheckpointLocked(t *testing.T) {
	path := t.TempDir()
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
	path := t.TempDir()
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
				ops = append(ops, cp.appendUpdateAsync(&rec, testUpdate("fw", rec.Task.TaskID.Value, states[j], byte(j))).written)
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
	if next := cp.appendUpdateAsync(&got[0].record, testUpdate("fw", "t0", api.TaskLost, 9)); next.seq != tasks*perTask+1 {
		t.Fatalf("sequence after reopen = %d, want %d", next.seq, tasks*perTask+1)
	}
}

// payloadOf is op's payload.
func payloadOf(op logOp) []byte { return op.appendPayload(nil) }

func TestParseLogOp(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    logOp
		wantErr string
	}{
		{name: "task", payload: payloadOf(logOp{kind: opTask, key: "k", data: []byte("{}")}), want: logOp{kind: opTask, key: "k", data: []byte("{}"), extra: []byte{}}},
		{name: "update with its record", payload: payloadOf(logOp{kind: opUpdate, seq: 7, key: "k", data: []byte("r"), extra: []byte("u")}),
			want: logOp{kind: opUpdate, seq: 7, key: "k", data: []byte("r"), extra: []byte("u")}},
		{name: "update alone", payload: payloadOf(logOp{kind: opUpdate, seq: 300, key: "k", extra: []byte("u")}),
			want: logOp{kind: opUpdate, seq: 300, key: "k", data: []byte{}, extra: []byte("u")}},
		{name: "remove update", payload: payloadOf(logOp{kind: opRemoveUpdate, seq: 1, key: "k"}), want: logOp{kind: opRemoveUpdate, seq: 1, key: "k", data: []byte{}, extra: []byte{}}},
		{name: "delete task", payload: payloadOf(logOp{kind: opDeleteTask, key: "k"}), want: logOp{kind: opDeleteTask, key: "k", data: []byte{}, extra: []byte{}}},
		{name: "drop updates", payload: payloadOf(logOp{kind: opDropUpdates, key: "k", data: []byte("r")}), want: logOp{kind: opDropUpdates, key: "k", data: []byte("r"), extra: []byte{}}},
		{name: "agent id", payload: payloadOf(logOp{kind: opAgentID, data: []byte("a")}), want: logOp{kind: opAgentID, data: []byte("a"), extra: []byte{}}},
		{name: "boot id", payload: payloadOf(logOp{kind: opBootID, data: []byte("b")}), want: logOp{kind: opBootID, data: []byte("b"), extra: []byte{}}},
		{name: "reset", payload: payloadOf(logOp{kind: opReset, data: []byte("b")}), want: logOp{kind: opReset, data: []byte("b"), extra: []byte{}}},
		{name: "empty", payload: nil, wantErr: "empty record"},
		{name: "unknown kind", payload: payloadOf(logOp{kind: 99, key: "k"}), wantErr: "unknown record kind 99"},
		{name: "kind 0", payload: payloadOf(logOp{kind: 0}), wantErr: "unknown record kind 0"},
		{name: "no sequence number", payload: []byte{byte(opTask)}, wantErr: "bad sequence number"},
		{name: "field overruns", payload: []byte{byte(opTask), 0, 5, 'k'}, wantErr: "field 0 overruns the record"},
		{name: "missing field", payload: []byte{byte(opTask), 0, 1, 'k'}, wantErr: "field 1 overruns the record"},
		{name: "trailing bytes", payload: append(payloadOf(logOp{kind: opDeleteTask, key: "k"}), 0), wantErr: "1 bytes after the record's fields"},
		{name: "task without record", payload: payloadOf(logOp{kind: opTask, key: "k"}), wantErr: "record of kind 1 lacks a field it needs or has one it does not take"},
		{name: "task without key", payload: payloadOf(logOp{kind: opTask, data: []byte("r")}), wantErr: "record of kind 1 lacks a field it needs or has one it does not take"},
		{name: "update without sequence number", payload: payloadOf(logOp{kind: opUpdate, key: "k", extra: []byte("u")}), wantErr: "record of kind 2 lacks a field it needs or has one it does not take"},
		{name: "update without update", payload: payloadOf(logOp{kind: opUpdate, seq: 1, key: "k", data: []byte("r")}), wantErr: "record of kind 2 lacks a field it needs or has one it does not take"},
		{name: "delete with a sequence number", payload: payloadOf(logOp{kind: opDeleteTask, seq: 1, key: "k"}), wantErr: "record of kind 4 lacks a field it needs or has one it does not take"},
		{name: "empty agent id", payload: payloadOf(logOp{kind: opAgentID}), wantErr: "record of kind 6 lacks a field it needs or has one it does not take"},
		{name: "boot id with a key", payload: payloadOf(logOp{kind: opBootID, key: "k", data: []byte("b")}), wantErr: "record of kind 7 lacks a field it needs or has one it does not take"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLogOp(tc.payload)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("parseLogOp = %+v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseLogOp = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// FuzzParseLogOp: any payload either fails to parse or parses to an op that encodes to a
// payload parsing to the same op.
func FuzzParseLogOp(f *testing.F) {
	f.Add(payloadOf(logOp{kind: opUpdate, seq: 9, key: "fw\x00a", data: []byte("r"), extra: []byte("u")}))
	f.Add(payloadOf(logOp{kind: opAgentID, data: []byte("agent")}))
	f.Add([]byte{byte(opDeleteTask), 0x80, 0x00, 1, 'k', 0, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		op, err := parseLogOp(payload)
		if err != nil {
			return
		}
		again, err := parseLogOp(op.appendPayload(nil))
		if err != nil || !reflect.DeepEqual(again, op) {
			t.Fatalf("%+v re-encoded parses to %+v, %v", op, again, err)
		}
	})
}

// FuzzReplayLog replays any file as a checkpoint log: it never panics, its records end
// within the file, and what it holds, written out as a log of its own, replays to the
// same.
func FuzzReplayLog(f *testing.F) {
	var ops []logOp
	ops = append(ops,
		logOp{kind: opBootID, data: []byte("boot-1")}, logOp{kind: opAgentID, data: []byte("agent-1")},
		logOp{kind: opTask, key: "fw\x00a", data: []byte(`{"state":"TASK_STAGING"}`)},
		logOp{kind: opUpdate, seq: 1, key: "fw\x00a", data: []byte(`{"state":"TASK_RUNNING"}`), extra: []byte(`{}`)},
		logOp{kind: opUpdate, seq: 2, key: "fw\x00a", extra: []byte(`{"x":1}`)},
		logOp{kind: opRemoveUpdate, seq: 1, key: "fw\x00a"},
		logOp{kind: opDropUpdates, key: "fw\x00b", data: []byte(`{}`)},
		logOp{kind: opDeleteTask, key: "fw\x00b"},
		logOp{kind: opReset, data: []byte("boot-2")},
		logOp{kind: opTask, key: "fw\x00c", data: []byte(`{}`)},
	)
	log := binary.LittleEndian.AppendUint64([]byte(checkpointMagic), 42)
	for i := range ops {
		log = appendRecord(log, 42, &ops[i])
		f.Add(slices.Clone(log))
	}
	f.Add(append(slices.Clone(log), make([]byte, 64)...))
	f.Add([]byte(checkpointMagic))
	f.Add([]byte("not a log at all, not at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		state, end, err := replayLog(data)
		if err != nil {
			return
		}
		if end < 0 || end > int64(len(data)) {
			t.Fatalf("records end at %d of a %d-byte file", end, len(data))
		}
		again, againEnd, err := replayLog(state.snapshot(7))
		if err != nil {
			t.Fatalf("replaying the snapshot: %v", err)
		}
		if againEnd != int64(len(state.snapshot(7))) {
			t.Fatalf("the snapshot's records end at %d of %d bytes", againEnd, len(state.snapshot(7)))
		}
		if !equalStates(state, again) {
			t.Fatalf("snapshot replays to %+v, want %+v", again, state)
		}
	})
}

// equalStates compares states, taking nil and empty byte slices and update lists as
// equal, as a log does.
func equalStates(x, y checkpointState) bool {
	if x.agentID != y.agentID || x.bootID != y.bootID || len(x.tasks) != len(y.tasks) {
		return false
	}
	for key, tx := range x.tasks {
		ty := y.tasks[key]
		if ty == nil || !bytes.Equal(tx.record, ty.record) || (tx.record == nil) != (ty.record == nil) || len(tx.updates) != len(ty.updates) {
			return false
		}
		for i, u := range tx.updates {
			if u.seq != ty.updates[i].seq || !bytes.Equal(u.data, ty.updates[i].data) {
				return false
			}
		}
	}
	return true
}
