package api

// The agent protocol is Atoll's own (Mesos used libprocess messages). It mirrors the
// scheduler API: an agent POSTs SUBSCRIBE to /api/v1/agent on the leading master and keeps
// the RecordIO response open as its command stream (the first event is SUBSCRIBED, with the
// stream id in the Mesos-Stream-Id header); every other call is a separate POST carrying
// that stream id and answered 202. A non-leading master answers 307 with the leader's
// Location, as for schedulers.

// AgentPath is where agents talk to the master.
const AgentPath = "/api/v1/agent"

// AgentCallType names an agent→master call.
type AgentCallType string

// Agent call types.
const (
	AgentSubscribe AgentCallType = "SUBSCRIBE"
	AgentUpdate    AgentCallType = "UPDATE"
	AgentHeartbeat AgentCallType = "HEARTBEAT"
)

// AgentCall is one agent→master call.
type AgentCall struct {
	Type      AgentCallType       `json:"type"`
	AgentID   *AgentID            `json:"agent_id,omitempty"`
	Subscribe *AgentCallSubscribe `json:"subscribe,omitempty"`
	Update    *AgentCallUpdate    `json:"update,omitempty"`
	// Updates carries several status updates in one UPDATE call (of different tasks: per
	// task only one is ever in flight), which the master records in one Raft entry. An
	// UPDATE call has Update or Updates, not both.
	Updates []AgentCallUpdate `json:"updates,omitempty"`
}

// AgentCallSubscribe registers an agent, or re-registers it with the tasks it still runs.
type AgentCallSubscribe struct {
	// AgentInfo.ID is set when the agent re-registers with its checkpointed id.
	AgentInfo AgentInfo `json:"agent_info"`
	// BootID is the host's boot id; a new one means the host rebooted and the agent is new.
	BootID  string `json:"boot_id,omitempty"`
	Version string `json:"version,omitempty"`
	// Tasks are the tasks the agent knows of (running or with unacknowledged updates), so a
	// master can reconcile after the agent was away.
	Tasks []AgentTask `json:"tasks,omitempty"`
	// HTTPAddress is the agent's own API (sandbox files), host:port.
	HTTPAddress string `json:"http_address,omitempty"`
}

// AgentTask is a task as the agent knows it.
type AgentTask struct {
	FrameworkID FrameworkID `json:"framework_id"`
	Task        TaskInfo    `json:"task"`
	State       TaskState   `json:"state"`
}

// AgentCallUpdate carries a status update. Updates with a uuid are checkpointed by the agent
// and resent until the master relays the framework's ACKNOWLEDGE.
type AgentCallUpdate struct {
	FrameworkID FrameworkID `json:"framework_id"`
	Status      TaskStatus  `json:"status"`
}

// AgentEventType names a master→agent event.
type AgentEventType string

// Agent event types.
const (
	AgentSubscribed        AgentEventType = "SUBSCRIBED"
	AgentLaunch            AgentEventType = "LAUNCH"
	AgentKill              AgentEventType = "KILL"
	AgentAcknowledge       AgentEventType = "ACKNOWLEDGE"
	AgentShutdownFramework AgentEventType = "SHUTDOWN_FRAMEWORK"
	AgentEventHeartbeat    AgentEventType = "HEARTBEAT"
	AgentError             AgentEventType = "ERROR"
)

// AgentEvent is one master→agent event on the agent's stream.
type AgentEvent struct {
	Type              AgentEventType          `json:"type"`
	Subscribed        *AgentEventSubscribed   `json:"subscribed,omitempty"`
	Launch            *AgentEventLaunch       `json:"launch,omitempty"`
	Kill              *AgentEventKill         `json:"kill,omitempty"`
	Acknowledge       *AgentEventAcknowledge  `json:"acknowledge,omitempty"`
	ShutdownFramework *AgentEventShutdownFrwk `json:"shutdown_framework,omitempty"`
	Error             *ErrorEvent             `json:"error,omitempty"`
}

// AgentEventSubscribed confirms registration and gives the agent its id.
type AgentEventSubscribed struct {
	AgentID                  AgentID `json:"agent_id"`
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds"`
}

// AgentEventLaunch starts a task.
type AgentEventLaunch struct {
	FrameworkID   FrameworkID   `json:"framework_id"`
	FrameworkInfo FrameworkInfo `json:"framework_info"`
	Task          TaskInfo      `json:"task"`
}

// AgentEventKill kills a task; KillPolicy overrides the task's own when set.
type AgentEventKill struct {
	FrameworkID FrameworkID `json:"framework_id"`
	TaskID      TaskID      `json:"task_id"`
	KillPolicy  *KillPolicy `json:"kill_policy,omitempty"`
}

// AgentEventAcknowledge relays a framework's acknowledgement of an update.
type AgentEventAcknowledge struct {
	FrameworkID FrameworkID `json:"framework_id"`
	TaskID      TaskID      `json:"task_id"`
	UUID        []byte      `json:"uuid"`
}

// AgentEventShutdownFrwk kills every task of a removed framework.
type AgentEventShutdownFrwk struct {
	FrameworkID FrameworkID `json:"framework_id"`
}
