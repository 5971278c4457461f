package api

// Operator API types (include/mesos/v1/master/master.proto), spoken on POST /api/v1.

// OperatorCallType names an operator call.
type OperatorCallType string

// Operator call types Atoll answers. GET_MEMBERS and KILL_TASK are Atoll extensions.
const (
	OpGetHealth     OperatorCallType = "GET_HEALTH"
	OpGetVersion    OperatorCallType = "GET_VERSION"
	OpGetState      OperatorCallType = "GET_STATE"
	OpGetAgents     OperatorCallType = "GET_AGENTS"
	OpGetFrameworks OperatorCallType = "GET_FRAMEWORKS"
	OpGetTasks      OperatorCallType = "GET_TASKS"
	OpGetMembers    OperatorCallType = "GET_MEMBERS"
	OpSubscribe     OperatorCallType = "SUBSCRIBE"
	OpKillTask      OperatorCallType = "KILL_TASK"
	OpTeardown      OperatorCallType = "TEARDOWN"
)

// OperatorCall is one operator call.
type OperatorCall struct {
	Type     OperatorCallType `json:"type"`
	KillTask *KillTaskCall    `json:"kill_task,omitempty"`
	Teardown *TeardownCall    `json:"teardown,omitempty"`
}

// TeardownCall removes a framework and kills all its tasks, as Mesos's operator TEARDOWN
// and /master/teardown did.
type TeardownCall struct {
	FrameworkID FrameworkID `json:"framework_id"`
}

// KillTaskCall lets an operator kill any task (Atoll extension; Mesos operators had to
// go through the owning framework).
type KillTaskCall struct {
	FrameworkID FrameworkID `json:"framework_id"`
	TaskID      TaskID      `json:"task_id"`
	KillPolicy  *KillPolicy `json:"kill_policy,omitempty"`
}

// OperatorResponse answers an operator call; exactly the field for Type is set.
type OperatorResponse struct {
	Type          OperatorCallType `json:"type"`
	GetHealth     *GetHealth       `json:"get_health,omitempty"`
	GetVersion    *GetVersion      `json:"get_version,omitempty"`
	GetState      *GetState        `json:"get_state,omitempty"`
	GetAgents     *GetAgents       `json:"get_agents,omitempty"`
	GetFrameworks *GetFrameworks   `json:"get_frameworks,omitempty"`
	GetTasks      *GetTasks        `json:"get_tasks,omitempty"`
	GetMembers    *GetMembers      `json:"get_members,omitempty"`
}

// GetHealth says whether the master is healthy.
type GetHealth struct {
	Healthy bool `json:"healthy"`
}

// VersionInfo describes the running build.
type VersionInfo struct {
	Version   string  `json:"version"`
	BuildDate string  `json:"build_date,omitempty"`
	BuildTime float64 `json:"build_time,omitempty"`
	GitSHA    string  `json:"git_sha,omitempty"`
}

// GetVersion answers GET_VERSION.
type GetVersion struct {
	VersionInfo VersionInfo `json:"version_info"`
}

// GetState answers GET_STATE.
type GetState struct {
	GetTasks      *GetTasks      `json:"get_tasks"`
	GetExecutors  *GetExecutors  `json:"get_executors"`
	GetFrameworks *GetFrameworks `json:"get_frameworks"`
	GetAgents     *GetAgents     `json:"get_agents"`
}

// GetExecutors lists executors; Atoll's command tasks have none.
type GetExecutors struct {
	Executors []any `json:"executors"`
}

// AgentState is the operator view of an agent.
type AgentState struct {
	AgentInfo          AgentInfo  `json:"agent_info"`
	Active             bool       `json:"active"`
	Deactivated        bool       `json:"deactivated,omitempty"`
	Version            string     `json:"version,omitempty"`
	PID                string     `json:"pid,omitempty"`
	RegisteredTime     *TimeInfo  `json:"registered_time,omitempty"`
	ReregisteredTime   *TimeInfo  `json:"reregistered_time,omitempty"`
	TotalResources     []Resource `json:"total_resources"`
	AllocatedResources []Resource `json:"allocated_resources"`
	OfferedResources   []Resource `json:"offered_resources"`
}

// GetAgents answers GET_AGENTS.
type GetAgents struct {
	Agents          []AgentState `json:"agents"`
	RecoveredAgents []AgentInfo  `json:"recovered_agents"`
}

// FrameworkState is the operator view of a framework.
type FrameworkState struct {
	FrameworkInfo      FrameworkInfo `json:"framework_info"`
	Active             bool          `json:"active"`
	Connected          bool          `json:"connected"`
	Recovered          bool          `json:"recovered"`
	RegisteredTime     *TimeInfo     `json:"registered_time,omitempty"`
	ReregisteredTime   *TimeInfo     `json:"reregistered_time,omitempty"`
	UnregisteredTime   *TimeInfo     `json:"unregistered_time,omitempty"`
	Offers             []Offer       `json:"offers"`
	AllocatedResources []Resource    `json:"allocated_resources"`
	OfferedResources   []Resource    `json:"offered_resources"`
}

// GetFrameworks answers GET_FRAMEWORKS.
type GetFrameworks struct {
	Frameworks          []FrameworkState `json:"frameworks"`
	CompletedFrameworks []FrameworkState `json:"completed_frameworks"`
}

// GetTasks answers GET_TASKS.
type GetTasks struct {
	Tasks            []Task `json:"tasks"`
	UnreachableTasks []Task `json:"unreachable_tasks"`
	CompletedTasks   []Task `json:"completed_tasks"`
	OrphanTasks      []Task `json:"orphan_tasks,omitempty"`
}

// Member is one gossip member (Atoll extension).
type Member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Port   int               `json:"port"`
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
}

// GetMembers answers GET_MEMBERS (Atoll extension).
type GetMembers struct {
	Members []Member `json:"members"`
}

// OperatorEventType names an operator event.
type OperatorEventType string

// Operator event types.
const (
	OpEventSubscribed       OperatorEventType = "SUBSCRIBED"
	OpEventTaskAdded        OperatorEventType = "TASK_ADDED"
	OpEventTaskUpdated      OperatorEventType = "TASK_UPDATED"
	OpEventAgentAdded       OperatorEventType = "AGENT_ADDED"
	OpEventAgentRemoved     OperatorEventType = "AGENT_REMOVED"
	OpEventFrameworkAdded   OperatorEventType = "FRAMEWORK_ADDED"
	OpEventFrameworkUpdated OperatorEventType = "FRAMEWORK_UPDATED"
	OpEventFrameworkRemoved OperatorEventType = "FRAMEWORK_REMOVED"
	OpEventHeartbeat        OperatorEventType = "HEARTBEAT"
)

// OperatorEvent is one event on the operator SUBSCRIBE stream.
type OperatorEvent struct {
	Type             OperatorEventType      `json:"type"`
	Subscribed       *OpSubscribed          `json:"subscribed,omitempty"`
	TaskAdded        *OpTaskAdded           `json:"task_added,omitempty"`
	TaskUpdated      *OpTaskUpdated         `json:"task_updated,omitempty"`
	AgentAdded       *OpAgentAdded          `json:"agent_added,omitempty"`
	AgentRemoved     *OpAgentRemoved        `json:"agent_removed,omitempty"`
	FrameworkAdded   *OpFrameworkChanged    `json:"framework_added,omitempty"`
	FrameworkUpdated *OpFrameworkChanged    `json:"framework_updated,omitempty"`
	FrameworkRemoved *OpFrameworkRemovedEvt `json:"framework_removed,omitempty"`
}

// OpSubscribed is the first operator event: the full state.
type OpSubscribed struct {
	GetState                 *GetState `json:"get_state"`
	HeartbeatIntervalSeconds float64   `json:"heartbeat_interval_seconds,omitempty"`
}

// OpTaskAdded reports a new task.
type OpTaskAdded struct {
	Task Task `json:"task"`
}

// OpTaskUpdated reports a task's new status.
type OpTaskUpdated struct {
	FrameworkID FrameworkID `json:"framework_id"`
	Status      TaskStatus  `json:"status"`
	State       TaskState   `json:"state"`
}

// OpAgentAdded reports a new or returning agent.
type OpAgentAdded struct {
	Agent AgentState `json:"agent"`
}

// OpAgentRemoved reports an agent gone.
type OpAgentRemoved struct {
	AgentID AgentID `json:"agent_id"`
}

// OpFrameworkChanged reports a framework added or updated.
type OpFrameworkChanged struct {
	Framework FrameworkState `json:"framework"`
}

// OpFrameworkRemovedEvt reports a framework removed.
type OpFrameworkRemovedEvt struct {
	FrameworkInfo FrameworkInfo `json:"framework_info"`
}
