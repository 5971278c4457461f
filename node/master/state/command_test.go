package state

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/hashicorp/raft"
)

// sampleCommands has one fully populated request per message type.
func sampleCommands() []command {
	task := testTask("f1", "a1", "t1")
	task.State = api.TaskRunning
	task.Statuses = []api.TaskStatus{testStatus(api.TaskRunning, 1)}
	return []command{
		{RegisterAgentType, &RegisterAgentRequest{Agent: testAgent("a1")}},
		{UpdateAgentType, &UpdateAgentRequest{Agent: testAgent("a1")}},
		{RemoveAgentType, &RemoveAgentRequest{AgentID: "a1"}},
		{UpsertFrameworkType, &UpsertFrameworkRequest{Framework: testFramework("f1")}},
		{RemoveFrameworkType, &RemoveFrameworkRequest{FrameworkID: "f1", Time: t0}},
		{AddTasksType, &AddTasksRequest{Tasks: []Task{task}}},
		{UpdateTaskStatusesType, &UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{statusUpdate("f1", "t1", testStatus(api.TaskFinished, 2))}}},
		{RemoveTasksType, &RemoveTasksRequest{Keys: []TaskKey{{"f1", "t1"}}}},
		{WriteKVType, &WriteKVRequest{Namespace: "apps", Puts: []KVPut{{Key: "/a", Value: json.RawMessage(`{"id":"/a"}`)}}, Deletes: []string{"/b"}, DeletePrefixes: []string{"/c/"}}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	commands := sampleCommands()
	if len(commands) != len(messageTypeNames) {
		t.Fatalf("%d sample commands for %d message types", len(commands), len(messageTypeNames))
	}
	for _, c := range commands {
		t.Run(c.t.String(), func(t *testing.T) {
			data, err := Encode(c.t, c.req)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if data[0] != byte(c.t) {
				t.Errorf("first byte %d, want %d", data[0], c.t)
			}
			// A value encodes the same as a pointer to it.
			byValue, err := Encode(c.t, reflect.ValueOf(c.req).Elem().Interface())
			if err != nil || string(byValue) != string(data) {
				t.Errorf("encode by value = %q, %v; want %q", byValue, err, data)
			}
			gotType, got, err := Decode(data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if gotType != c.t || !reflect.DeepEqual(got, c.req) {
				t.Errorf("decode = %s %s, want %s %s", gotType, toJSON(t, got), c.t, toJSON(t, c.req))
			}
		})
	}
}

func TestEncodeRejectsMismatchedRequests(t *testing.T) {
	tests := []struct {
		name string
		t    MessageType
		req  any
	}{
		{"other request", AddTasksType, RemoveTasksRequest{}},
		{"nil pointer", AddTasksType, (*AddTasksRequest)(nil)},
		{"nil", RemoveAgentType, nil},
		{"pointer to pointer", RemoveAgentType, new(*RemoveAgentRequest)},
		{"unknown type", MessageType(200), RemoveAgentRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if data, err := Encode(tt.t, tt.req); !errors.Is(err, ErrBadCommand) {
				t.Errorf("Encode = %q, %v; want ErrBadCommand", data, err)
			}
		})
	}
}

func TestEnumStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{RegisterAgentType.String(), "RegisterAgent"},
		{RemoveTasksType.String(), "RemoveTasks"},
		{MessageType(42).String(), "MessageType(42)"},
		{AgentAdded.String(), "AgentAdded"},
		{Restored.String(), "Restored"},
		{ChangeKind(0).String(), "ChangeKind(0)"},
		{ChangeKind(99).String(), "ChangeKind(99)"},
	} {
		if tc.got != tc.want {
			t.Errorf("String() = %q, want %q", tc.got, tc.want)
		}
	}
}

// FuzzDecodeCommand feeds arbitrary entries to FSM.Apply: it must never panic, must report
// undecodable entries as ErrBadCommand without changing the records, and must keep the
// store's invariants whatever it applies.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		data, err := Encode(c.t, c.req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Add([]byte{byte(AddTasksType), '{', '}'})
	f.Add([]byte{byte(UpdateTaskStatusesType), 'n', 'u', 'l', 'l'})
	f.Add(append([]byte{byte(AddTasksType)}, `{"tasks":[{"framework_id":"f1","agent_id":"a1","id":"x","state":"TASK_LOST","statuses":[{},{},{},{},{},{},{},{},{},{},{},{}]}]}`...))
	f.Add(append([]byte{byte(UpdateTaskStatusesType)}, `{"updates":[{"framework_id":"f1","task_id":"t1","status":{"state":"TASK_KILLED","task_id":{"value":"t2"}}}]}`...))
	f.Add([]byte{99, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		newFSM := func() *FSM {
			fsm, err := NewFSMWithConfig(FSMConfig{MaxCompletedTasks: 2, MaxCompletedFrameworks: 1})
			if err != nil {
				t.Fatal(err)
			}
			applyAll(t, fsm, 1,
				command{RegisterAgentType, RegisterAgentRequest{Agent: testAgent("a1")}},
				command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: testFramework("f1")}},
				command{AddTasksType, AddTasksRequest{Tasks: []Task{testTask("f1", "a1", "t1"), testTask("f1", "a1", "t2")}}},
			)
			return fsm
		}
		// The entry follows a good command, applied alone in one FSM and in one batch with
		// the entry in another: both must end the same.
		noop, err := Encode(RemoveTasksType, RemoveTasksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		fsm := newFSM()
		applyOne(t, fsm, 4, command{RemoveTasksType, RemoveTasksRequest{}})
		before := dump(fsm.Store())
		result, ok := fsm.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: data}).(*ApplyResult)
		if !ok {
			t.Fatalf("Apply did not return *ApplyResult")
		}
		batchFSM := newFSM()
		responses := batchFSM.ApplyBatch([]*raft.Log{{Index: 4, Data: noop}, {Index: 5, Data: data}})
		if batchResult, ok := responses[1].(*ApplyResult); !ok || !reflect.DeepEqual(batchResult, result) {
			t.Fatalf("ApplyBatch result %+v, Apply result %+v", responses[1], result)
		}
		assertContents(t, dump(batchFSM.Store()), dump(fsm.Store()))
		if _, _, decodeErr := Decode(data); decodeErr != nil && !errors.Is(result.Err, ErrBadCommand) {
			t.Fatalf("undecodable entry: result error %v, want ErrBadCommand", result.Err)
		}
		after := dump(fsm.Store())
		if after.LastIndex != 5 {
			t.Fatalf("last index %d, want 5", after.LastIndex)
		}
		if result.Err != nil {
			before.LastIndex = 5
			assertContents(t, after, before)
		}
		for _, task := range after.Tasks {
			if task.State.Terminal() || len(task.Statuses) > MaxTaskStatuses {
				t.Fatalf("live task %s: state %s with %d statuses", task.ID, task.State, len(task.Statuses))
			}
		}
		for _, task := range after.Completed {
			if len(task.Statuses) > MaxTaskStatuses {
				t.Fatalf("completed task %s has %d statuses", task.ID, len(task.Statuses))
			}
		}
		if len(after.Completed) > 2 {
			t.Fatalf("%d completed tasks, cap 2", len(after.Completed))
		}
		removed := 0
		for _, framework := range after.Frameworks {
			if framework.Removed {
				removed++
			}
		}
		if removed > 1 {
			t.Fatalf("%d removed frameworks, cap 1", removed)
		}
	})
}
