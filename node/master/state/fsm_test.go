package state

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/hashicorp/raft"
)

func TestFSMApply(t *testing.T) {
	a1, a2 := testAgent("a1"), testAgent("a2")
	f1, f2 := testFramework("f1"), testFramework("f2")
	t1, t2, t3 := testTask("f1", "a1", "t1"), testTask("f1", "a2", "t2"), testTask("f2", "a1", "t3")
	running, finished := testStatus(api.TaskRunning, 1), testStatus(api.TaskFinished, 2)
	unreachable := testStatus(api.TaskUnreachable, 3)

	a1Unreachable := a1
	a1Unreachable.Unreachable = true
	a1Unreachable.UnreachableTime = t0.Add(time.Minute)
	a1Reregistered := a1
	a1Reregistered.ReregisteredTime = t0.Add(time.Hour)
	f1Disconnected := f1
	f1Disconnected.Connected = false
	failed := testTask("f1", "a1", "failed")
	failed.State = api.TaskFailed
	invalid := testTask("f1", "a1", "")

	tests := []struct {
		name  string
		steps []applyStep
		want  contents
	}{
		{
			name:  "empty",
			steps: nil,
			want:  contents{},
		},
		{
			name: "register agents",
			steps: []applyStep{
				{command: command{RegisterAgentType, RegisterAgentRequest{Agent: a2}}},
				{command: command{RegisterAgentType, &RegisterAgentRequest{Agent: a1}}},
			},
			want: contents{Agents: []*Agent{a1.stored(), a2.stored()}, LastIndex: 2},
		},
		{
			name: "re-register replaces",
			steps: []applyStep{
				{command: command{RegisterAgentType, RegisterAgentRequest{Agent: a1}}},
				{command: command{RegisterAgentType, RegisterAgentRequest{Agent: a1Reregistered}}},
			},
			want: contents{Agents: []*Agent{a1Reregistered.stored()}, LastIndex: 2},
		},
		{
			name: "update agent",
			steps: []applyStep{
				{command: command{RegisterAgentType, RegisterAgentRequest{Agent: a1}}},
				{command: command{UpdateAgentType, UpdateAgentRequest{Agent: a1Unreachable}}},
			},
			want: contents{Agents: []*Agent{a1Unreachable.stored()}, LastIndex: 2},
		},
		{
			name: "update unknown agent fails",
			steps: []applyStep{
				{command: command{UpdateAgentType, UpdateAgentRequest{Agent: a1}}, wantErr: ErrNotFound},
			},
			want: contents{LastIndex: 1},
		},
		{
			name: "agent with mismatched info id is rejected",
			steps: []applyStep{
				{command: command{RegisterAgentType, RegisterAgentRequest{Agent: Agent{ID: "a1", Info: api.AgentInfo{ID: &api.AgentID{Value: "a9"}}}}}, wantErr: ErrBadCommand},
			},
			want: contents{LastIndex: 1},
		},
		{
			name: "frameworks upsert",
			steps: []applyStep{
				{command: command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f1}}},
				{command: command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f2}}},
				{command: command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f1Disconnected}}},
			},
			want: contents{Frameworks: []*Framework{f1Disconnected.stored(), f2.stored()}, LastIndex: 3},
		},
		{
			name: "upsert cannot mark removed",
			steps: []applyStep{
				{command: command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f1.removedAt(t0)}}, wantErr: ErrBadCommand},
			},
			want: contents{LastIndex: 1},
		},
		{
			name: "add tasks, duplicates skipped, terminal goes to completed",
			steps: []applyStep{
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t1, t2}}}},
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t3, t1, failed}}}, wantSkipped: []TaskKey{{"f1", "t1"}}},
			},
			want: contents{
				Tasks:     []*Task{t1.stored(), t2.stored(), t3.stored()},
				Completed: []*Task{failed.stored()},
				LastIndex: 2,
			},
		},
		{
			name: "a batch with one invalid task adds nothing",
			steps: []applyStep{
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t1, invalid}}}, wantErr: ErrBadCommand},
			},
			want: contents{LastIndex: 1},
		},
		{
			name: "status updates: running stays, finished completes, unknown skipped",
			steps: []applyStep{
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t1, t2}}}},
				{command: command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{
					statusUpdate("f1", "t1", running),
					statusUpdate("f1", "t2", running),
					statusUpdate("f1", "nope", running),
					statusUpdate("f1", "t2", finished),
					statusUpdate("f1", "t2", running),
				}}}, wantSkipped: []TaskKey{{"f1", "nope"}, {"f1", "t2"}}},
			},
			want: contents{
				Tasks:     []*Task{t1.withStatuses(running)},
				Completed: []*Task{t2.withStatuses(running, finished)},
				LastIndex: 2,
			},
		},
		{
			name: "unreachable tasks stay live",
			steps: []applyStep{
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t1}}}},
				{command: command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{
					statusUpdate("f1", "t1", running), statusUpdate("f1", "t1", unreachable),
				}}}},
			},
			want: contents{Tasks: []*Task{t1.withStatuses(running, unreachable)}, LastIndex: 2},
		},
		{
			name: "status update without a state is rejected whole",
			steps: []applyStep{
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t1}}}},
				{command: command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{
					statusUpdate("f1", "t1", running), statusUpdate("f1", "t1", api.TaskStatus{}),
				}}}, wantErr: ErrBadCommand},
			},
			want: contents{Tasks: []*Task{t1.stored()}, LastIndex: 2},
		},
		{
			name: "remove tasks forgets them",
			steps: []applyStep{
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t1, t2}}}},
				{command: command{RemoveTasksType, RemoveTasksRequest{Keys: []TaskKey{{"f1", "t1"}, {"f2", "t1"}}}}, wantSkipped: []TaskKey{{"f2", "t1"}}},
			},
			want: contents{Tasks: []*Task{t2.stored()}, LastIndex: 2},
		},
		{
			name: "remove framework marks it and retires its tasks",
			steps: []applyStep{
				{command: command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f1}}},
				{command: command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f2}}},
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t1, t3, t2}}}},
				{command: command{RemoveFrameworkType, RemoveFrameworkRequest{FrameworkID: "f1", Time: t0.Add(time.Hour)}}},
				// Removing again (a retried command) changes nothing.
				{command: command{RemoveFrameworkType, RemoveFrameworkRequest{FrameworkID: "f1", Time: t0.Add(2 * time.Hour)}}},
				{command: command{RemoveFrameworkType, RemoveFrameworkRequest{FrameworkID: "f9", Time: t0}}, wantErr: ErrNotFound},
			},
			want: contents{
				Frameworks: []*Framework{f1.removedAt(t0.Add(time.Hour)).stored(), f2.stored()},
				Tasks:      []*Task{t3.stored()},
				Completed:  []*Task{t1.stored(), t2.stored()},
				LastIndex:  6,
			},
		},
		{
			name: "remove agent retires its tasks",
			steps: []applyStep{
				{command: command{RegisterAgentType, RegisterAgentRequest{Agent: a1}}},
				{command: command{RegisterAgentType, RegisterAgentRequest{Agent: a2}}},
				{command: command{AddTasksType, AddTasksRequest{Tasks: []Task{t1, t2, t3}}}},
				{command: command{RemoveAgentType, RemoveAgentRequest{AgentID: "a1"}}},
				{command: command{RemoveAgentType, RemoveAgentRequest{AgentID: "a1"}}, wantErr: ErrNotFound},
			},
			want: contents{
				Agents:    []*Agent{a2.stored()},
				Tasks:     []*Task{t2.stored()},
				Completed: []*Task{t1.stored(), t3.stored()},
				LastIndex: 5,
			},
		},
	}
	for _, tt := range tests {
		// Raft hands entries over one at a time or in batches: both must end the same.
		for _, batched := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/batched=%v", tt.name, batched), func(t *testing.T) {
				fsm := NewFSM(testLogger(t))
				var results []*ApplyResult
				if batched {
					var commands []command
					for _, s := range tt.steps {
						commands = append(commands, s.command)
					}
					results = applyBatch(t, fsm, 1, commands...)
				} else {
					for i, s := range tt.steps {
						results = append(results, applyOne(t, fsm, uint64(i+1), s.command))
					}
				}
				for i, s := range tt.steps {
					result := results[i]
					if want := s.wantErr; (want == nil) != (result.Err == nil) || (want != nil && !errors.Is(result.Err, want)) {
						t.Errorf("step %d (%s): err %v, want %v", i, s.t, result.Err, s.wantErr)
					}
					if !reflect.DeepEqual(result.Skipped, s.wantSkipped) {
						t.Errorf("step %d (%s): skipped %v, want %v", i, s.t, result.Skipped, s.wantSkipped)
					}
				}
				assertContents(t, dump(fsm.Store()), tt.want)
			})
		}
	}
}

type applyStep struct {
	command
	wantErr     error // errors.Is
	wantSkipped []TaskKey
}

// applyBatch applies commands as one ApplyBatch from index first, followed by a
// configuration entry that the FSM must pass over, and returns the commands' results.
func applyBatch(t testing.TB, fsm *FSM, first uint64, commands ...command) []*ApplyResult {
	t.Helper()
	var entries []*raft.Log
	for i, c := range commands {
		data, err := Encode(c.t, c.req)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, &raft.Log{Index: first + uint64(i), Type: raft.LogCommand, Data: data})
	}
	entries = append(entries, &raft.Log{Index: first + uint64(len(commands)), Type: raft.LogConfiguration})
	responses := fsm.ApplyBatch(entries)
	if len(responses) != len(entries) || responses[len(commands)] != nil {
		t.Fatalf("ApplyBatch of %d entries returned %v", len(entries), responses)
	}
	results := make([]*ApplyResult, len(commands))
	for i := range commands {
		result, ok := responses[i].(*ApplyResult)
		if !ok || result.Index != first+uint64(i) {
			t.Fatalf("response %d is %+v, want *ApplyResult with index %d", i, responses[i], first+uint64(i))
		}
		results[i] = result
	}
	return results
}

func TestStoreSecondaryIndexes(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	// Ids that would collide or prefix-match under naive NUL-terminated keys.
	tasks := []Task{
		testTask("f", "a", "t1"),
		testTask("f", "a\x00b", "t2"),
		testTask("f\x00", "a", "t3"),
		testTask("f", "ab", "t4"),
	}
	applyAll(t, fsm, 1, command{AddTasksType, AddTasksRequest{Tasks: tasks}})
	store := fsm.Store()

	keys := func(tasks []*Task) []string {
		var ids []string
		for _, task := range tasks {
			ids = append(ids, task.ID)
		}
		return ids
	}
	for _, tc := range []struct {
		name string
		got  []*Task
		want []string
	}{
		{"by agent a", store.TasksByAgent("a"), []string{"t1", "t3"}},
		{"by agent a\\x00b", store.TasksByAgent("a\x00b"), []string{"t2"}},
		{"by agent ab", store.TasksByAgent("ab"), []string{"t4"}},
		{"by agent none", store.TasksByAgent("zz"), nil},
		{"by framework f", store.TasksByFramework("f"), []string{"t1", "t2", "t4"}},
		{"by framework f\\x00", store.TasksByFramework("f\x00"), []string{"t3"}},
		{"all", store.Tasks(), []string{"t1", "t2", "t4", "t3"}},
	} {
		if got := keys(tc.got); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if task, ok := store.Task("f\x00", "t3"); !ok || task.AgentID != "a" {
		t.Errorf("Task(f\\x00, t3) = %v, %v; want the task on agent a", task, ok)
	}
	if _, ok := store.Task("f", "t3"); ok {
		t.Errorf("Task(f, t3) found a task of another framework")
	}
}

func TestCompletedTasksRingIsCapped(t *testing.T) {
	fsm, err := NewFSMWithConfig(FSMConfig{Logger: testLogger(t), MaxCompletedTasks: 3, MaxCompletedFrameworks: 1})
	if err != nil {
		t.Fatal(err)
	}
	var want []*Task
	index := uint64(1)
	for i := range 7 {
		task := testTask("f1", "a1", fmt.Sprintf("t%d", i))
		finished := testStatus(api.TaskFinished, i)
		applyAll(t, fsm, index,
			command{AddTasksType, AddTasksRequest{Tasks: []Task{task}}},
			command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{statusUpdate("f1", task.ID, finished)}}},
		)
		index += 2
		want = append(want, task.withStatuses(finished))
	}
	assertContents(t, dump(fsm.Store()), contents{Completed: want[4:], LastIndex: 14})
	if got := fsm.Store().CompletedTasksByFramework("f1"); !reflect.DeepEqual(got, want[4:]) {
		t.Errorf("CompletedTasksByFramework(f1) = %s, want the last 3", toJSON(t, got))
	}
	if got := fsm.Store().CompletedTasksByFramework("f2"); got != nil {
		t.Errorf("CompletedTasksByFramework(f2) = %s, want none", toJSON(t, got))
	}
}

func TestRemovedFrameworksAreCapped(t *testing.T) {
	fsm, err := NewFSMWithConfig(FSMConfig{Logger: testLogger(t), MaxCompletedTasks: 10, MaxCompletedFrameworks: 2})
	if err != nil {
		t.Fatal(err)
	}
	live := testFramework("live")
	applyAll(t, fsm, 1, command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: live}})
	index := uint64(2)
	// Removal times run backwards against ids, so eviction must go by time, not id.
	var removed []Framework
	for i := range 4 {
		f := testFramework(fmt.Sprintf("f%d", i))
		at := t0.Add(time.Duration(10-i) * time.Minute)
		if i == 3 {
			at = t0.Add(20 * time.Minute)
		}
		applyAll(t, fsm, index,
			command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f}},
			command{RemoveFrameworkType, RemoveFrameworkRequest{FrameworkID: f.ID, Time: at}},
		)
		index += 2
		removed = append(removed, f.removedAt(at))
	}
	// Removed at f0 10m, f1 9m, f2 8m, f3 20m: the two most recent are f0 and f3.
	want := contents{
		Frameworks: []*Framework{removed[0].stored(), removed[3].stored(), live.stored()},
		LastIndex:  9,
	}
	assertContents(t, dump(fsm.Store()), want)
}

func TestTaskStatusesAreCapped(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	task := testTask("f1", "a1", "t1")
	applyAll(t, fsm, 1, command{AddTasksType, AddTasksRequest{Tasks: []Task{task}}})
	var statuses []api.TaskStatus
	var updates []TaskStatusUpdate
	for i := range 25 {
		status := testStatus(api.TaskRunning, i)
		statuses = append(statuses, status)
		updates = append(updates, statusUpdate("f1", "t1", status))
	}
	// Some in one batched entry, the rest one per entry.
	applyAll(t, fsm, 2, command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: updates[:12]}})
	before, _ := fsm.Store().Task("f1", "t1")
	beforeJSON := toJSON(t, before)
	for i, update := range updates[12:] {
		applyAll(t, fsm, uint64(3+i), command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{update}}})
	}
	got, ok := fsm.Store().Task("f1", "t1")
	if !ok {
		t.Fatal("task t1 is gone")
	}
	if want := task.withStatuses(statuses[15:]...); !reflect.DeepEqual(got, want) {
		t.Errorf("task = %s\nwant %s", toJSON(t, got), toJSON(t, want))
	}
	// Records handed out earlier never change.
	if after := toJSON(t, before); after != beforeJSON {
		t.Errorf("an earlier read changed:\nbefore %s\nafter  %s", beforeJSON, after)
	}
}

func TestAddTasksKeepsLastStatuses(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	task := testTask("f1", "a1", "t1")
	var statuses []api.TaskStatus
	for i := range 12 {
		status := testStatus(api.TaskRunning, i)
		status.TaskID = api.TaskID{Value: "t1"}
		statuses = append(statuses, status)
	}
	task.Statuses = statuses
	task.State = api.TaskRunning
	applyAll(t, fsm, 1, command{AddTasksType, AddTasksRequest{Tasks: []Task{task}}})
	got, _ := fsm.Store().Task("f1", "t1")
	want := task.stored()
	want.Statuses = statuses[2:]
	if !reflect.DeepEqual(got, want) {
		t.Errorf("task = %s\nwant %s", toJSON(t, got), toJSON(t, want))
	}
}

func TestOnChange(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) { testOnChange(t, batched) })
	}
}

func testOnChange(t *testing.T, batched bool) {
	fsm := NewFSM(testLogger(t))
	type seen struct {
		Kind  ChangeKind
		ID    string
		State api.TaskState
		Index uint64
	}
	var got []seen
	fsm.OnChange(func(c Change) {
		s := seen{Kind: c.Kind, Index: c.Index}
		switch {
		case c.Agent != nil:
			s.ID = c.Agent.ID
		case c.Framework != nil:
			s.ID = c.Framework.ID
		case c.Task != nil:
			s.ID, s.State = c.Task.ID, c.Task.State
			// The whole command is committed before observers run.
			if _, live := fsm.Store().Task(c.Task.FrameworkID, c.Task.ID); live && (c.Kind == TaskRemoved || c.Task.State.Terminal()) {
				t.Errorf("%s %s (%s): still live in the store", c.Kind, c.Task.ID, c.Task.State)
			}
			if c.Kind == TaskUpdated && (c.Status == nil || c.Status.State != c.Task.State) {
				t.Errorf("%s %s: status %v, want the applied status", c.Kind, c.Task.ID, c.Status)
			}
		}
		if fsm.Store().LastIndex() < c.Index {
			t.Errorf("%s at index %d: store last index %d", c.Kind, c.Index, fsm.Store().LastIndex())
		}
		got = append(got, s)
	})
	var second []ChangeKind
	fsm.OnChange(func(c Change) { second = append(second, c.Kind) })

	a1 := testAgent("a1")
	a1Unreachable := a1
	a1Unreachable.Unreachable = true
	f1 := testFramework("f1")
	commands := []command{
		{RegisterAgentType, RegisterAgentRequest{Agent: a1}},
		{RegisterAgentType, RegisterAgentRequest{Agent: a1}},
		{UpdateAgentType, UpdateAgentRequest{Agent: a1Unreachable}},
		{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f1}},
		{UpsertFrameworkType, UpsertFrameworkRequest{Framework: f1}},
		{AddTasksType, AddTasksRequest{Tasks: []Task{testTask("f1", "a1", "t1"), testTask("f1", "a1", "t2"), testTask("f1", "a1", "t3")}}},
		{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{
			statusUpdate("f1", "t1", testStatus(api.TaskRunning, 1)),
			statusUpdate("f1", "t1", testStatus(api.TaskKilled, 2)),
		}}},
		{RemoveTasksType, RemoveTasksRequest{Keys: []TaskKey{{"f1", "t2"}}}},
		// Rejected: no changes.
		{UpdateAgentType, UpdateAgentRequest{Agent: testAgent("a9")}},
		{RemoveFrameworkType, RemoveFrameworkRequest{FrameworkID: "f1", Time: t0}},
		{RemoveAgentType, RemoveAgentRequest{AgentID: "a1"}},
	}
	// Index 10 goes to the configuration entry that applyBatch appends to its batch.
	if batched {
		// One batch of good commands, the rejected one alone, then the rest.
		applyBatch(t, fsm, 1, commands[:8]...)
		applyBatch(t, fsm, 9, commands[8])
		applyBatch(t, fsm, 11, commands[9:]...)
	} else {
		applyAll(t, fsm, 1, commands[:9]...)
		applyAll(t, fsm, 11, commands[9:]...)
	}
	want := []seen{
		{AgentAdded, "a1", "", 1},
		{AgentUpdated, "a1", "", 2},
		{AgentUpdated, "a1", "", 3},
		{FrameworkAdded, "f1", "", 4},
		{FrameworkUpdated, "f1", "", 5},
		{TaskAdded, "t1", api.TaskStaging, 6},
		{TaskAdded, "t2", api.TaskStaging, 6},
		{TaskAdded, "t3", api.TaskStaging, 6},
		{TaskUpdated, "t1", api.TaskRunning, 7},
		{TaskUpdated, "t1", api.TaskKilled, 7},
		{TaskRemoved, "t2", api.TaskStaging, 8},
		{TaskRemoved, "t3", api.TaskStaging, 11},
		{FrameworkRemoved, "f1", "", 11},
		{AgentRemoved, "a1", "", 12},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes:\ngot  %v\nwant %v", got, want)
	}
	if len(second) != len(want) {
		t.Errorf("second observer saw %d changes, want %d", len(second), len(want))
	}
}

func TestApplyRejectsUndecodableEntries(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	applyAll(t, fsm, 1, command{RegisterAgentType, RegisterAgentRequest{Agent: testAgent("a1")}})
	before := dump(fsm.Store())
	for i, data := range [][]byte{
		nil,
		{byte(RemoveTasksType) + 1},
		{255, '{', '}'},
		{byte(AddTasksType)},
		append([]byte{byte(AddTasksType)}, `{"tasks":[{"id":1}]}`...),
		append([]byte{byte(RegisterAgentType)}, `{"agent":{"id":"a2"}} trailing`...),
	} {
		index := uint64(2 + i)
		result, ok := fsm.Apply(&raft.Log{Index: index, Data: data}).(*ApplyResult)
		if !ok || !errors.Is(result.Err, ErrBadCommand) || result.Index != index {
			t.Errorf("entry %q: result %+v, want ErrBadCommand at index %d", data, result, index)
		}
		want := before
		want.LastIndex = index
		assertContents(t, dump(fsm.Store()), want)
	}
}

func TestStoredStatusesAreCompacted(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	var changed []*api.TaskStatus
	fsm.OnChange(func(c Change) {
		if c.Kind == TaskUpdated {
			changed = append(changed, c.Status)
		}
	})
	status := func(n int) api.TaskStatus {
		healthy := true
		s := testStatus(api.TaskRunning, n)
		s.Data = []byte("framework payload")
		s.Message = "health check passed"
		s.AgentID = &api.AgentID{Value: "a1"}
		s.Healthy = &healthy
		s.Labels = &api.Labels{Labels: []api.Label{{Key: "k", Value: "v"}}}
		s.ContainerStatus = &api.ContainerStatus{NetworkInfos: []api.NetworkInfo{{IPAddresses: []api.IPAddress{{IPAddress: "198.18.0.7"}}}}}
		return s
	}
	otherContainer := status(3)
	otherContainer.ContainerStatus = &api.ContainerStatus{NetworkInfos: []api.NetworkInfo{{IPAddresses: []api.IPAddress{{IPAddress: "198.18.0.8"}}}}}
	applyAll(t, fsm, 1,
		command{AddTasksType, AddTasksRequest{Tasks: []Task{testTask("f1", "a1", "t1")}}},
		command{UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{
			statusUpdate("f1", "t1", status(1)), statusUpdate("f1", "t1", status(2)), statusUpdate("f1", "t1", otherContainer),
		}}},
	)
	task, _ := fsm.Store().Task("f1", "t1")
	want := []api.TaskStatus{status(1), status(2), otherContainer}
	for i := range want {
		want[i].Data = nil
		want[i].TaskID = api.TaskID{Value: "t1"}
	}
	if !reflect.DeepEqual(task.Statuses, want) {
		t.Fatalf("statuses %s\nwant %s", toJSON(t, task.Statuses), toJSON(t, want))
	}
	first, second, third := &task.Statuses[0], &task.Statuses[1], &task.Statuses[2]
	if second.AgentID != first.AgentID || second.Labels != first.Labels || second.Healthy != first.Healthy || second.ContainerStatus != first.ContainerStatus {
		t.Errorf("equal values of consecutive statuses are not shared")
	}
	if third.ContainerStatus == second.ContainerStatus || third.AgentID != second.AgentID {
		t.Errorf("third status: container status shared %v (want false), agent id shared %v (want true)",
			third.ContainerStatus == second.ContainerStatus, third.AgentID == second.AgentID)
	}
	if len(changed) != 3 || changed[2] != third || changed[0].Data != nil {
		t.Errorf("changes carry %d statuses, want the 3 stored ones", len(changed))
	}
}
