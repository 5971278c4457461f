package api

import "time"

// Scheduler API types (include/mesos/v1/scheduler/scheduler.proto), spoken on
// POST /api/v1/scheduler.

// CallType names a scheduler call.
type CallType string

// Scheduler call types.
const (
	CallSubscribe   CallType = "SUBSCRIBE"
	CallTeardown    CallType = "TEARDOWN"
	CallAccept      CallType = "ACCEPT"
	CallDecline     CallType = "DECLINE"
	CallRevive      CallType = "REVIVE"
	CallSuppress    CallType = "SUPPRESS"
	CallKill        CallType = "KILL"
	CallShutdown    CallType = "SHUTDOWN"
	CallAcknowledge CallType = "ACKNOWLEDGE"
	CallReconcile   CallType = "RECONCILE"
	CallMessage     CallType = "MESSAGE"
	CallRequest     CallType = "REQUEST"
)

// Call is one scheduler call.
type Call struct {
	FrameworkID *FrameworkID `json:"framework_id,omitempty"`
	Type        CallType     `json:"type"`

	Subscribe   *Subscribe   `json:"subscribe,omitempty"`
	Accept      *Accept      `json:"accept,omitempty"`
	Decline     *Decline     `json:"decline,omitempty"`
	Revive      *Revive      `json:"revive,omitempty"`
	Suppress    *Suppress    `json:"suppress,omitempty"`
	Kill        *Kill        `json:"kill,omitempty"`
	Shutdown    *Shutdown    `json:"shutdown,omitempty"`
	Acknowledge *Acknowledge `json:"acknowledge,omitempty"`
	Reconcile   *Reconcile   `json:"reconcile,omitempty"`
	Message     *MessageCall `json:"message,omitempty"`
	Request     *RequestCall `json:"request,omitempty"`
}

// Subscribe subscribes a framework.
type Subscribe struct {
	FrameworkInfo   FrameworkInfo `json:"framework_info"`
	SuppressedRoles []string      `json:"suppressed_roles,omitempty"`
}

// Accept accepts offers with operations.
type Accept struct {
	OfferIDs   []OfferID        `json:"offer_ids"`
	Operations []OfferOperation `json:"operations,omitempty"`
	Filters    *Filters         `json:"filters,omitempty"`
}

// Decline declines offers.
type Decline struct {
	OfferIDs []OfferID `json:"offer_ids"`
	Filters  *Filters  `json:"filters,omitempty"`
}

// Revive clears filters and resumes offers for roles (all roles when empty).
type Revive struct {
	Roles []string `json:"roles,omitempty"`
}

// Suppress stops offers for roles (all roles when empty).
type Suppress struct {
	Roles []string `json:"roles,omitempty"`
}

// Kill kills a task.
type Kill struct {
	TaskID     TaskID      `json:"task_id"`
	AgentID    *AgentID    `json:"agent_id,omitempty"`
	KillPolicy *KillPolicy `json:"kill_policy,omitempty"`
}

// Shutdown shuts an executor down.
type Shutdown struct {
	ExecutorID ExecutorID `json:"executor_id"`
	AgentID    AgentID    `json:"agent_id"`
}

// Acknowledge acknowledges a status update by uuid.
type Acknowledge struct {
	AgentID AgentID `json:"agent_id"`
	TaskID  TaskID  `json:"task_id"`
	UUID    []byte  `json:"uuid"`
}

// Reconcile asks for the latest state of tasks; an empty list means all of them.
type Reconcile struct {
	Tasks []ReconcileTask `json:"tasks,omitempty"`
}

// ReconcileTask names one task to reconcile.
type ReconcileTask struct {
	TaskID  TaskID   `json:"task_id"`
	AgentID *AgentID `json:"agent_id,omitempty"`
}

// MessageCall sends data to an executor.
type MessageCall struct {
	AgentID    AgentID    `json:"agent_id"`
	ExecutorID ExecutorID `json:"executor_id"`
	Data       []byte     `json:"data"`
}

// RequestCall asks for resources; accepted and ignored, as Mesos does.
type RequestCall struct {
	Requests []any `json:"requests,omitempty"`
}

// EventType names a scheduler event.
type EventType string

// Scheduler event types.
const (
	EventSubscribed EventType = "SUBSCRIBED"
	EventOffers     EventType = "OFFERS"
	EventRescind    EventType = "RESCIND"
	EventUpdate     EventType = "UPDATE"
	EventMessage    EventType = "MESSAGE"
	EventFailure    EventType = "FAILURE"
	EventError      EventType = "ERROR"
	EventHeartbeat  EventType = "HEARTBEAT"
)

// Event is one scheduler event on the SUBSCRIBE stream.
type Event struct {
	Type       EventType     `json:"type"`
	Subscribed *Subscribed   `json:"subscribed,omitempty"`
	Offers     *Offers       `json:"offers,omitempty"`
	Rescind    *Rescind      `json:"rescind,omitempty"`
	Update     *Update       `json:"update,omitempty"`
	Message    *MessageEvent `json:"message,omitempty"`
	Failure    *Failure      `json:"failure,omitempty"`
	Error      *ErrorEvent   `json:"error,omitempty"`
}

// Subscribed is the first event of a subscription.
type Subscribed struct {
	FrameworkID              FrameworkID `json:"framework_id"`
	HeartbeatIntervalSeconds float64     `json:"heartbeat_interval_seconds,omitempty"`
	MasterInfo               *MasterInfo `json:"master_info,omitempty"`
}

// Offers carries new offers.
type Offers struct {
	Offers []Offer `json:"offers"`
}

// Rescind withdraws an offer.
type Rescind struct {
	OfferID OfferID `json:"offer_id"`
}

// Update carries a task status update.
type Update struct {
	Status TaskStatus `json:"status"`
}

// MessageEvent carries data from an executor.
type MessageEvent struct {
	AgentID    AgentID    `json:"agent_id"`
	ExecutorID ExecutorID `json:"executor_id"`
	Data       []byte     `json:"data"`
}

// Failure reports a lost agent or executor.
type Failure struct {
	AgentID    *AgentID    `json:"agent_id,omitempty"`
	ExecutorID *ExecutorID `json:"executor_id,omitempty"`
	Status     *int32      `json:"status,omitempty"`
}

// ErrorEvent reports an error that ends the subscription.
type ErrorEvent struct {
	Message string `json:"message"`
}

// StreamIDHeader carries the scheduler stream id (≤128 bytes).
const StreamIDHeader = "Mesos-Stream-Id"

// MaxLaunchAhead is how far ahead a LAUNCH's NotBefore (an Atoll extension) may be.
const MaxLaunchAhead = time.Minute
