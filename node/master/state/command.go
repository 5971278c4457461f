package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/atoll/atoll/api"
)

// MessageType identifies the command in a Raft log entry: the entry's first byte. Values are
// written to disk, so they are only ever appended, never reordered or reused.
type MessageType uint8

// Commands. Each has a request struct, named after it, that follows the type byte as JSON.
const (
	RegisterAgentType      MessageType = iota // RegisterAgentRequest
	UpdateAgentType                           // UpdateAgentRequest
	RemoveAgentType                           // RemoveAgentRequest
	UpsertFrameworkType                       // UpsertFrameworkRequest
	RemoveFrameworkType                       // RemoveFrameworkRequest
	AddTasksType                              // AddTasksRequest
	UpdateTaskStatusesType                    // UpdateTaskStatusesRequest
	RemoveTasksType                           // RemoveTasksRequest
	WriteKVType                               // WriteKVRequest
)

var messageTypeNames = [...]string{
	RegisterAgentType:      "RegisterAgent",
	UpdateAgentType:        "UpdateAgent",
	RemoveAgentType:        "RemoveAgent",
	UpsertFrameworkType:    "UpsertFramework",
	RemoveFrameworkType:    "RemoveFramework",
	AddTasksType:           "AddTasks",
	UpdateTaskStatusesType: "UpdateTaskStatuses",
	RemoveTasksType:        "RemoveTasks",
	WriteKVType:            "WriteKV",
}

func (t MessageType) String() string {
	if int(t) < len(messageTypeNames) {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", uint8(t))
}

// RegisterAgentRequest inserts an agent, or replaces it when it re-registers.
type RegisterAgentRequest struct {
	Agent Agent `json:"agent"`
}

// UpdateAgentRequest replaces an existing agent (for example to mark it unreachable).
type UpdateAgentRequest struct {
	Agent Agent `json:"agent"`
}

// RemoveAgentRequest deletes an agent. Its remaining live tasks move to the completed ring
// as they are: the master sends their terminal statuses first.
type RemoveAgentRequest struct {
	AgentID string `json:"agent_id"`
}

// UpsertFrameworkRequest inserts or replaces a framework.
type UpsertFrameworkRequest struct {
	Framework Framework `json:"framework"`
}

// RemoveFrameworkRequest marks a framework removed at Time. The master kills its tasks
// first; whatever live tasks remain move to the completed ring as they are.
type RemoveFrameworkRequest struct {
	FrameworkID string    `json:"framework_id"`
	Time        time.Time `json:"time"`
}

// AddTasksRequest adds launched tasks. A task whose key is already live is skipped (so a
// retried command is harmless); one whose State is empty starts as TASK_STAGING; one whose
// State is terminal goes straight to the completed ring.
type AddTasksRequest struct {
	Tasks []Task `json:"tasks"`
}

// TaskStatusUpdate is one status update for one live task.
type TaskStatusUpdate struct {
	FrameworkID string         `json:"framework_id"`
	TaskID      string         `json:"task_id"`
	Status      api.TaskStatus `json:"status"`
}

// UpdateTaskStatusesRequest applies many status updates in one log entry, in order. An
// update for a task that is not live is skipped and reported in ApplyResult.Skipped.
type UpdateTaskStatusesRequest struct {
	Updates []TaskStatusUpdate `json:"updates"`
}

// RemoveTasksRequest forgets live tasks without a terminal status (they do not enter the
// completed ring). Keys that are not live are skipped and reported.
type RemoveTasksRequest struct {
	Keys []TaskKey `json:"keys"`
}

// ErrBadCommand is wrapped by every error about an undecodable or malformed command.
var ErrBadCommand = errors.New("bad command")

// Encode serialises a command for a Raft log entry: the type byte, then req as JSON. req
// must be the request struct for t (a value or a pointer).
func Encode(t MessageType, req any) ([]byte, error) {
	want, err := newRequest(t)
	if err != nil {
		return nil, err
	}
	if !sameRequestType(want, req) {
		return nil, fmt.Errorf("encode %s: %w: request is %T, want %T", t, ErrBadCommand, req, want)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}

// Decode parses a log entry written by Encode. The request is returned as a pointer to the
// request struct for the type (for example *AddTasksRequest).
func Decode(data []byte) (MessageType, any, error) {
	if len(data) == 0 {
		return 0, nil, fmt.Errorf("decode: %w: empty entry", ErrBadCommand)
	}
	t := MessageType(data[0])
	req, err := newRequest(t)
	if err != nil {
		return t, nil, err
	}
	if err := json.Unmarshal(data[1:], req); err != nil {
		return t, nil, fmt.Errorf("decode %s: %w: %w", t, ErrBadCommand, err)
	}
	return t, req, nil
}

// newRequest returns a pointer to a zero request struct for t.
func newRequest(t MessageType) (any, error) {
	switch t {
	case RegisterAgentType:
		return &RegisterAgentRequest{}, nil
	case UpdateAgentType:
		return &UpdateAgentRequest{}, nil
	case RemoveAgentType:
		return &RemoveAgentRequest{}, nil
	case UpsertFrameworkType:
		return &UpsertFrameworkRequest{}, nil
	case RemoveFrameworkType:
		return &RemoveFrameworkRequest{}, nil
	case AddTasksType:
		return &AddTasksRequest{}, nil
	case UpdateTaskStatusesType:
		return &UpdateTaskStatusesRequest{}, nil
	case RemoveTasksType:
		return &RemoveTasksRequest{}, nil
	case WriteKVType:
		return &WriteKVRequest{}, nil
	}
	return nil, fmt.Errorf("%w: unknown message type %d", ErrBadCommand, uint8(t))
}

// sameRequestType reports whether req is a T or a non-nil *T, where want is a *T.
func sameRequestType(want, req any) bool {
	wantType, reqType := reflect.TypeOf(want), reflect.TypeOf(req)
	if reqType == wantType {
		return !reflect.ValueOf(req).IsNil()
	}
	return reqType == wantType.Elem()
}
