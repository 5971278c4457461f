package state

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
)

// bigAddTasks is an AddTasks entry at index of n tasks of framework f1 on agent a1, named
// prefix-0…, large enough (over predecodeMin) to be decoded ahead.
func bigAddTasks(t *testing.T, index uint64, prefix string, n int) *raft.Log {
	t.Helper()
	var tasks []Task
	for i := range n {
		tasks = append(tasks, testTask("f1", "a1", fmt.Sprintf("%s-%d", prefix, i)))
	}
	data, err := Encode(AddTasksType, AddTasksRequest{Tasks: tasks})
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < predecodeMin {
		t.Fatalf("an entry of %d tasks is %d bytes, under predecodeMin %d", n, len(data), predecodeMin)
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: data}
}

// taskIDs are the ids of the tasks in the store, sorted.
func taskIDs(s *Store) []string {
	var ids []string
	for _, task := range s.Tasks() {
		ids = append(ids, task.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestPredecode: large commands given to the log store are decoded ahead and applied from
// that; one replaced at its index before its commit (a follower's log truncated by a new
// leader) is applied as stored last; an entry applied with other bytes than those decoded
// ahead is decoded afresh; nothing decoded ahead outlives the entries applied after it or
// a snapshot restore.
func TestPredecode(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	applyAll(t, fsm, 1, command{RegisterAgentType, RegisterAgentRequest{Agent: testAgent("a1")}},
		command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: testFramework("f1")}})
	store := &predecodeStore{LogStore: raft.NewInmemStore(), fsm: fsm}

	old := bigAddTasks(t, 3, "old", 100)
	replaced := bigAddTasks(t, 3, "new", 100)
	other := bigAddTasks(t, 4, "stored", 100)
	if err := store.StoreLogs([]*raft.Log{old, other}); err != nil {
		t.Fatal(err)
	}
	if err := store.StoreLog(replaced); err != nil {
		t.Fatal(err)
	}
	fsm.ahead.mu.Lock()
	held := len(fsm.ahead.entries)
	fsm.ahead.mu.Unlock()
	if held != 2 {
		t.Fatalf("%d entries decoded ahead, want 2 (indexes 3 and 4)", held)
	}
	// Index 4 comes with bytes other than those stored (read back from disk, say).
	applied := bigAddTasks(t, 4, "applied", 100)
	responses := fsm.ApplyBatch([]*raft.Log{replaced, applied})
	for i, r := range responses {
		if res, ok := r.(*ApplyResult); !ok || res.Index != uint64(3+i) {
			t.Fatalf("response %d: %#v", i, r)
		}
	}
	var want []string
	for _, prefix := range []string{"applied", "new"} {
		for i := range 100 {
			want = append(want, fmt.Sprintf("%s-%d", prefix, i))
		}
	}
	slices.Sort(want)
	if got := taskIDs(fsm.Store()); !slices.Equal(got, want) {
		t.Errorf("tasks after the batch: %d (%v…), want the %d of the entries applied", len(got), got[:min(3, len(got))], len(want))
	}
	fsm.ahead.mu.Lock()
	held = len(fsm.ahead.entries)
	fsm.ahead.mu.Unlock()
	if held != 0 {
		t.Errorf("%d entries still decoded ahead after their indexes were applied", held)
	}

	// Decoded ahead, then a snapshot replaces the state: forgotten.
	if err := store.StoreLogs([]*raft.Log{bigAddTasks(t, 5, "later", 100)}); err != nil {
		t.Fatal(err)
	}
	if err := fsm.Restore(io.NopCloser(bytes.NewReader(persist(t, NewFSM(testLogger(t)))))); err != nil {
		t.Fatal(err)
	}
	fsm.ahead.mu.Lock()
	held = len(fsm.ahead.entries)
	fsm.ahead.mu.Unlock()
	if held != 0 {
		t.Errorf("%d entries decoded ahead survived a snapshot restore", held)
	}
}
