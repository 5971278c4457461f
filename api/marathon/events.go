package marathon

// Event types of /v2/events (the SSE "event:" line and each payload's eventType).
const (
	EventAPIPost               = "api_post_event"
	EventAppTerminated         = "app_terminated_event"
	EventGroupChangeSuccess    = "group_change_success"
	EventGroupChangeFailed     = "group_change_failed"
	EventStatusUpdate          = "status_update_event"
	EventInstanceChanged       = "instance_changed_event"
	EventInstanceHealthChanged = "instance_health_changed_event"
	EventAddHealthCheck        = "add_health_check_event"
	EventRemoveHealthCheck     = "remove_health_check_event"
	EventFailedHealthCheck     = "failed_health_check_event"
	EventHealthStatusChanged   = "health_status_changed_event"
	EventUnhealthyTaskKill     = "unhealthy_task_kill_event"
	EventDeploymentInfo        = "deployment_info"
	EventDeploymentSuccess     = "deployment_success"
	EventDeploymentFailed      = "deployment_failed"
	EventDeploymentStepSuccess = "deployment_step_success"
	EventDeploymentStepFailure = "deployment_step_failure"
	EventStreamAttached        = "event_stream_attached"
	EventStreamDetached        = "event_stream_detached"
)

// EventHeader is the part every event has.
type EventHeader struct {
	// EventType is one of the Event constants.
	EventType string `json:"eventType"`
	// Timestamp is when the event happened (TimeLayout).
	Timestamp string `json:"timestamp"`
}

// APIPostEvent: an API request changed an app.
type APIPostEvent struct {
	EventHeader
	ClientIP      string `json:"clientIp"`
	URI           string `json:"uri"`
	AppDefinition *App   `json:"appDefinition"`
}

// StatusUpdateEvent: a task's state changed.
type StatusUpdateEvent struct {
	EventHeader
	SlaveID string `json:"slaveId"`
	TaskID  string `json:"taskId"`
	// TaskStatus is the Mesos state, like TASK_RUNNING.
	TaskStatus  string          `json:"taskStatus"`
	Message     string          `json:"message,omitempty"`
	AppID       string          `json:"appId"`
	Host        string          `json:"host"`
	IPAddresses []TaskIPAddress `json:"ipAddresses,omitempty"`
	Ports       []int           `json:"ports"`
	Version     string          `json:"version"`
}

// InstanceChangedEvent: an instance's condition changed.
type InstanceChangedEvent struct {
	EventHeader
	InstanceID     string `json:"instanceId"`
	Condition      string `json:"condition"`
	RunSpecID      string `json:"runSpecId"`
	AgentID        string `json:"agentId"`
	Host           string `json:"host"`
	RunSpecVersion string `json:"runSpecVersion"`
}

// InstanceHealthChangedEvent: an instance became healthy or unhealthy (Healthy nil: not
// known yet).
type InstanceHealthChangedEvent struct {
	EventHeader
	InstanceID     string `json:"instanceId"`
	RunSpecID      string `json:"runSpecId"`
	RunSpecVersion string `json:"runSpecVersion"`
	Healthy        *bool  `json:"healthy"`
}

// HealthCheckEvent: a health check was added to or removed from an app
// (add_health_check_event, remove_health_check_event).
type HealthCheckEvent struct {
	EventHeader
	AppID       string      `json:"appId"`
	Version     string      `json:"version,omitempty"`
	HealthCheck HealthCheck `json:"healthCheck"`
}

// FailedHealthCheckEvent: a health check of a task failed.
type FailedHealthCheckEvent struct {
	EventHeader
	AppID       string      `json:"appId"`
	TaskID      string      `json:"taskId"`
	InstanceID  string      `json:"instanceId,omitempty"`
	HealthCheck HealthCheck `json:"healthCheck"`
}

// HealthStatusChangedEvent: a task's health changed.
type HealthStatusChangedEvent struct {
	EventHeader
	AppID      string `json:"appId"`
	TaskID     string `json:"taskId,omitempty"`
	InstanceID string `json:"instanceId"`
	Version    string `json:"version"`
	Alive      bool   `json:"alive"`
}

// UnhealthyTaskKillEvent: a task was killed for failing its health checks.
type UnhealthyTaskKillEvent struct {
	EventHeader
	AppID      string `json:"appId"`
	TaskID     string `json:"taskId"`
	InstanceID string `json:"instanceId,omitempty"`
	Version    string `json:"version"`
	Reason     string `json:"reason"`
	Host       string `json:"host"`
	SlaveID    string `json:"slaveId"`
}

// AppTerminatedEvent: an app was removed and its tasks are gone.
type AppTerminatedEvent struct {
	EventHeader
	AppID string `json:"appId"`
}

// GroupChangeEvent: a group change was deployed (group_change_success) or failed
// (group_change_failed, with Reason).
type GroupChangeEvent struct {
	EventHeader
	GroupID string `json:"groupId"`
	Version string `json:"version"`
	Reason  string `json:"reason,omitempty"`
}

// DeploymentResultEvent: a deployment finished (deployment_success) or failed
// (deployment_failed).
type DeploymentResultEvent struct {
	EventHeader
	ID string `json:"id"`
}

// DeploymentStepEvent: a deployment started a step (deployment_info), finished one
// (deployment_step_success) or one failed (deployment_step_failure).
type DeploymentStepEvent struct {
	EventHeader
	Plan        DeploymentPlan `json:"plan"`
	CurrentStep DeploymentStep `json:"currentStep"`
}

// EventStreamEvent: a client attached to (event_stream_attached) or detached from
// (event_stream_detached) /v2/events.
type EventStreamEvent struct {
	EventHeader
	RemoteAddress string `json:"remoteAddress"`
}
