package state

import (
	"time"

	"github.com/atoll/atoll/api"
)

// Agent is the master's record of a registered agent. Read-only once stored (see Store).
type Agent struct {
	// ID is the agent id; Info.ID carries the same value.
	ID   string        `json:"id"`
	Info api.AgentInfo `json:"info"`
	// HTTPAddress is the host:port of the agent's HTTP API (sandbox files, stats).
	HTTPAddress string `json:"http_address,omitempty"`
	// Version is the agent's Atoll version.
	Version string `json:"version,omitempty"`
	// BootID is the host's boot id: a different one on re-registration means a reboot.
	BootID           string    `json:"boot_id,omitempty"`
	RegisteredTime   time.Time `json:"registered_time"`
	ReregisteredTime time.Time `json:"reregistered_time,omitzero"`
	// Unreachable is set when the master gave up waiting for the agent's pings.
	Unreachable     bool      `json:"unreachable,omitempty"`
	UnreachableTime time.Time `json:"unreachable_time,omitzero"`
}

// Framework is the master's record of a framework, live or torn down. Read-only once
// stored (see Store).
type Framework struct {
	// ID is the framework id; Info.ID carries the same value.
	ID               string            `json:"id"`
	Info             api.FrameworkInfo `json:"info"`
	RegisteredTime   time.Time         `json:"registered_time"`
	ReregisteredTime time.Time         `json:"reregistered_time,omitzero"`
	UnregisteredTime time.Time         `json:"unregistered_time,omitzero"`
	// Connected says the framework has a live subscription. It is replicated so that a new
	// leader knows which frameworks to wait for before failing them over.
	Connected bool `json:"connected,omitempty"`
	// Removed marks a torn-down framework, kept for completed_frameworks (the most recent
	// FSMConfig.MaxCompletedFrameworks of them).
	Removed     bool      `json:"removed,omitempty"`
	RemovedTime time.Time `json:"removed_time,omitzero"`
}

// Task is the master's record of a launched task. Read-only once stored (see Store).
type Task struct {
	FrameworkID string `json:"framework_id"`
	AgentID     string `json:"agent_id"`
	// ID is the task id, unique within its framework among live tasks.
	ID   string       `json:"id"`
	Info api.TaskInfo `json:"info"`
	// Role is the role the task's resources were allocated to.
	Role  string        `json:"role,omitempty"`
	State api.TaskState `json:"state"`
	// Statuses are the task's most recent status updates, latest last, at most
	// MaxTaskStatuses of them.
	Statuses     []api.TaskStatus `json:"statuses,omitempty"`
	LaunchedTime time.Time        `json:"launched_time"`
	// LaunchAt, when set, is when the leader sends the task to its agent (a LAUNCH with
	// NotBefore): until then the task is TASK_STAGING without the agent knowing it.
	LaunchAt time.Time `json:"launch_at,omitzero"`
}

// Pending says the task waits for its LaunchAt, at now: it was never sent to its agent.
func (t *Task) Pending(now time.Time) bool {
	return t.State == api.TaskStaging && t.LaunchAt.After(now)
}

// Key returns the task's primary key.
func (t *Task) Key() TaskKey { return TaskKey{FrameworkID: t.FrameworkID, TaskID: t.ID} }

// TaskKey identifies a task: task ids are chosen by frameworks, so they are unique only
// within one framework.
type TaskKey struct {
	FrameworkID string `json:"framework_id"`
	TaskID      string `json:"task_id"`
}

// MaxTaskStatuses is how many status updates a task record keeps: enough for GET_STATE and
// /master/state consumers (which read the latest few), few enough to keep 10,000s of tasks
// small.
const MaxTaskStatuses = 10

// completedTask is a terminal (or orphaned) task in the completed ring. Seq orders the ring:
// the lowest is evicted first.
type completedTask struct {
	Seq  uint64 `json:"seq"`
	Task *Task  `json:"task"`
}

// meta holds the store's scalar state (the last applied index) in memdb so that it is read
// in the same consistent snapshot as the records.
type meta struct {
	LastIndex uint64
}
