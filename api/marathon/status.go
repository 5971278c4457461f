package marathon

import "encoding/json"

// DeploymentIDHeader is the response header naming the deployment a change started.
const DeploymentIDHeader = "Marathon-Deployment-Id"

// AppInfo is an app as GET /v2/apps and /v2/apps/{id} show it: the definition and, as
// embed= asks, its status, in one JSON object.
type AppInfo struct {
	App
	AppStatus
}

// AppStatus is what GET /v2/apps adds to a definition: task counts (embed=apps.counts),
// deployments, tasks, readiness and the last failure.
type AppStatus struct {
	TasksStaged           *int                   `json:"tasksStaged,omitempty"`
	TasksRunning          *int                   `json:"tasksRunning,omitempty"`
	TasksHealthy          *int                   `json:"tasksHealthy,omitempty"`
	TasksUnhealthy        *int                   `json:"tasksUnhealthy,omitempty"`
	Deployments           []DeploymentRef        `json:"deployments,omitempty"`
	Tasks                 []Task                 `json:"tasks,omitempty"`
	ReadinessCheckResults []ReadinessCheckResult `json:"readinessCheckResults,omitempty"`
	LastTaskFailure       *TaskFailure           `json:"lastTaskFailure,omitempty"`
}

// MarshalJSON writes the definition's and the status's fields in one object.
func (a AppInfo) MarshalJSON() ([]byte, error) {
	app, err := json.Marshal(a.App)
	if err != nil {
		return nil, err
	}
	status, err := json.Marshal(a.AppStatus)
	if err != nil {
		return nil, err
	}
	if len(status) == 2 { // {}
		return app, nil
	}
	return append(append(app[:len(app)-1], ','), status[1:]...), nil
}

// UnmarshalJSON reads the definition (as App.UnmarshalJSON does) and the status.
func (a *AppInfo) UnmarshalJSON(data []byte) error {
	if err := a.App.UnmarshalJSON(data); err != nil {
		return err
	}
	return json.Unmarshal(data, &a.AppStatus)
}

// Task is a running (or staging, …) instance of an app.
type Task struct {
	AppID string `json:"appId"`
	// ID looks like "<app id with / replaced by _>.<uuid>".
	ID                 string              `json:"id"`
	Host               string              `json:"host"`
	IPAddresses        []TaskIPAddress     `json:"ipAddresses,omitempty"`
	Ports              []int               `json:"ports"`
	ServicePorts       []int               `json:"servicePorts,omitempty"`
	SlaveID            string              `json:"slaveId,omitempty"`
	State              string              `json:"state"`
	StagedAt           string              `json:"stagedAt,omitempty"`
	StartedAt          string              `json:"startedAt,omitempty"`
	Version            string              `json:"version,omitempty"`
	HealthCheckResults []HealthCheckResult `json:"healthCheckResults,omitempty"`
	CheckResult        *CheckStatus        `json:"checkResult,omitempty"`
	LocalVolumes       []LocalVolume       `json:"localVolumes,omitempty"`
	Region             string              `json:"region,omitempty"`
	Zone               string              `json:"zone,omitempty"`
	Role               string              `json:"role,omitempty"`
}

// TaskIPAddress is an address of a task's container.
type TaskIPAddress struct {
	IPAddress string `json:"ipAddress"`
	// Protocol is IPv4 or IPv6.
	Protocol string `json:"protocol"`
}

// HealthCheckResult is the state of one health check of a task.
type HealthCheckResult struct {
	Alive               bool   `json:"alive"`
	ConsecutiveFailures int    `json:"consecutiveFailures"`
	FirstSuccess        string `json:"firstSuccess,omitempty"`
	LastSuccess         string `json:"lastSuccess,omitempty"`
	LastFailure         string `json:"lastFailure,omitempty"`
	LastFailureCause    string `json:"lastFailureCause,omitempty"`
	InstanceID          string `json:"instanceId,omitempty"`
	TaskID              string `json:"taskId,omitempty"`
}

// CheckStatus is the latest result of a task's check: the field of the check's kind, none
// while the check has no result (it has not completed yet, timed out, or an HTTP check got
// no answer).
type CheckStatus struct {
	HTTP *HTTPCheckStatus    `json:"http,omitempty"`
	TCP  *TCPCheckStatus     `json:"tcp,omitempty"`
	Exec *CommandCheckStatus `json:"exec,omitempty"`
}

// HTTPCheckStatus is an HTTP check's answer.
type HTTPCheckStatus struct {
	StatusCode int `json:"statusCode"`
}

// TCPCheckStatus says whether a TCP check connected.
type TCPCheckStatus struct {
	Succeeded bool `json:"succeeded"`
}

// CommandCheckStatus is how an exec check's command exited.
type CommandCheckStatus struct {
	ExitCode int `json:"exitCode"`
}

// LocalVolume names a persistent volume of a task (never set by Atoll, which has none).
type LocalVolume struct {
	RunSpecID     string `json:"runSpecId"`
	ContainerPath string `json:"containerPath"`
	UUID          string `json:"uuid"`
	PersistenceID string `json:"persistenceId"`
}

// TaskFailure is an app's last failed task.
type TaskFailure struct {
	AppID     string `json:"appId"`
	Host      string `json:"host"`
	Message   string `json:"message"`
	State     string `json:"state"`
	TaskID    string `json:"taskId"`
	Timestamp string `json:"timestamp"`
	Version   string `json:"version"`
	SlaveID   string `json:"slaveId,omitempty"`
}

// TaskList is the body of task lists: {"tasks": [...]}.
type TaskList struct {
	Tasks []Task `json:"tasks"`
}

// TaskEnvelope is the body naming one task: {"task": ...}.
type TaskEnvelope struct {
	Task Task `json:"task"`
}

// Deployment is a deployment in progress (GET /v2/deployments).
type Deployment struct {
	ID             string                 `json:"id"`
	Version        string                 `json:"version"`
	AffectedApps   []string               `json:"affectedApps"`
	AffectedPods   []string               `json:"affectedPods"`
	Steps          []DeploymentStep       `json:"steps"`
	CurrentActions []DeploymentActionInfo `json:"currentActions"`
	// CurrentStep counts from 1.
	CurrentStep int `json:"currentStep"`
	TotalSteps  int `json:"totalSteps"`
}

// DeploymentStep is a set of actions run together.
type DeploymentStep struct {
	Actions []DeploymentAction `json:"actions"`
}

// DeploymentAction is one action of a step.
type DeploymentAction struct {
	// Action is one of the Action constants.
	Action string `json:"action"`
	App    string `json:"app,omitempty"`
	Pod    string `json:"pod,omitempty"`
}

// DeploymentActionInfo is an action of the current step with its readiness.
type DeploymentActionInfo struct {
	Action                string                 `json:"action"`
	App                   string                 `json:"app,omitempty"`
	Pod                   string                 `json:"pod,omitempty"`
	ReadinessCheckResults []ReadinessCheckResult `json:"readinessCheckResults"`
}

// Deployment actions.
const (
	ActionStartApplication   = "StartApplication"
	ActionStopApplication    = "StopApplication"
	ActionScaleApplication   = "ScaleApplication"
	ActionRestartApplication = "RestartApplication"
	ActionResolveArtifacts   = "ResolveArtifacts"
)

// ReadinessCheckResult is the state of a readiness check of a task.
type ReadinessCheckResult struct {
	Name         string        `json:"name"`
	TaskID       string        `json:"taskId"`
	Ready        bool          `json:"ready"`
	LastResponse *HTTPResponse `json:"lastResponse,omitempty"`
}

// HTTPResponse is a readiness check's last answer.
type HTTPResponse struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType"`
	Body        string `json:"body"`
}

// DeploymentResult is the body of a call that started a deployment.
type DeploymentResult struct {
	DeploymentID string `json:"deploymentId"`
	Version      string `json:"version"`
}

// DeploymentPlan is a deployment's plan as deployment events carry it.
type DeploymentPlan struct {
	ID       string           `json:"id"`
	Original *Group           `json:"original,omitempty"`
	Target   *Group           `json:"target,omitempty"`
	Steps    []DeploymentStep `json:"steps"`
	Version  string           `json:"version"`
}

// Queue is the body of GET /v2/queue.
type Queue struct {
	Queue []QueueItem `json:"queue"`
}

// QueueItem is an app with instances left to launch, and why offers did not fit it.
type QueueItem struct {
	App   *App   `json:"app"`
	Count int    `json:"count"`
	Role  string `json:"role,omitempty"`
	// Delay is the launch backoff.
	Delay                  *QueueDelay            `json:"delay,omitempty"`
	Since                  string                 `json:"since"`
	ProcessedOffersSummary ProcessedOffersSummary `json:"processedOffersSummary"`
	// LastUnusedOffers is there with embed=lastUnusedOffers.
	LastUnusedOffers []UnusedOffer `json:"lastUnusedOffers,omitempty"`
	// LastTaskFailure is the app's last unexpected task end, an Atoll addition.
	LastTaskFailure *TaskFailure `json:"lastTaskFailure,omitempty"`
}

// QueueDelay is an app's launch backoff.
type QueueDelay struct {
	TimeLeftSeconds int64 `json:"timeLeftSeconds"`
	Overdue         bool  `json:"overdue"`
}

// ProcessedOffersSummary counts the offers considered for an app and why they were not used.
type ProcessedOffersSummary struct {
	ProcessedOffersCount int    `json:"processedOffersCount"`
	UnusedOffersCount    int    `json:"unusedOffersCount"`
	LastUnusedOfferAt    string `json:"lastUnusedOfferAt,omitempty"`
	LastUsedOfferAt      string `json:"lastUsedOfferAt,omitempty"`
	// RejectSummaryLastOffers counts, over the last offer of each agent, how many were
	// declined at each check (in the order checks run) out of how many reached it.
	RejectSummaryLastOffers []DeclinedOfferStep `json:"rejectSummaryLastOffers,omitempty"`
	// RejectSummaryLaunchAttempt counts the same over every offer of the launch attempt.
	RejectSummaryLaunchAttempt []DeclinedOfferStep `json:"rejectSummaryLaunchAttempt,omitempty"`
}

// DeclinedOfferStep is one check of offer matching: offers that reached it and offers it
// declined.
type DeclinedOfferStep struct {
	// Reason is one of the Reason constants.
	Reason    string `json:"reason"`
	Declined  int    `json:"declined"`
	Processed int    `json:"processed"`
}

// Reasons an offer did not fit, in the order Marathon checked them.
const (
	ReasonUnfulfilledRole                 = "UnfulfilledRole"
	ReasonUnfulfilledConstraint           = "UnfulfilledConstraint"
	ReasonNoCorrespondingReservationFound = "NoCorrespondingReservationFound"
	ReasonAgentMaintenance                = "AgentMaintenance"
	ReasonInsufficientCpus                = "InsufficientCpus"
	ReasonInsufficientMemory              = "InsufficientMemory"
	ReasonInsufficientDisk                = "InsufficientDisk"
	ReasonInsufficientGpus                = "InsufficientGpus"
	ReasonInsufficientPorts               = "InsufficientPorts"
	ReasonDeclinedScarceResources         = "DeclinedScarceResources"
)

// UnusedOffer is an offer that did not fit, with why.
type UnusedOffer struct {
	Offer     Offer    `json:"offer"`
	Reason    []string `json:"reason"`
	Timestamp string   `json:"timestamp"`
}

// Offer is an offer as the queue shows it.
type Offer struct {
	ID         string           `json:"id"`
	AgentID    string           `json:"agentId"`
	Hostname   string           `json:"hostname"`
	Resources  []OfferResource  `json:"resources"`
	Attributes []OfferAttribute `json:"attributes"`
}

// OfferResource is a resource of an offer.
type OfferResource struct {
	Name   string       `json:"name"`
	Scalar float64      `json:"scalar,omitempty"`
	Ranges []OfferRange `json:"ranges,omitempty"`
	Set    []string     `json:"set,omitempty"`
	Role   string       `json:"role"`
}

// OfferAttribute is an agent attribute of an offer.
type OfferAttribute struct {
	Name   string       `json:"name"`
	Scalar float64      `json:"scalar,omitempty"`
	Ranges []OfferRange `json:"ranges,omitempty"`
	Set    []string     `json:"set,omitempty"`
	Text   string       `json:"text,omitempty"`
}

// OfferRange is an inclusive range (of ports).
type OfferRange struct {
	Begin int64 `json:"begin"`
	End   int64 `json:"end"`
}

// Info is the body of GET /v2/info.
type Info struct {
	Name            string          `json:"name"`
	Version         string          `json:"version"`
	Buildref        string          `json:"buildref"`
	Elected         bool            `json:"elected"`
	Leader          string          `json:"leader,omitempty"`
	FrameworkID     string          `json:"frameworkId,omitempty"`
	MarathonConfig  MarathonConfig  `json:"marathon_config"`
	ZookeeperConfig ZookeeperConfig `json:"zookeeper_config"`
	HTTPConfig      HTTPConfig      `json:"http_config"`
}

// MarathonConfig is the configuration /v2/info shows (durations in milliseconds unless the
// name says seconds; failover_timeout is seconds).
type MarathonConfig struct {
	AccessControlAllowOrigin       []string `json:"access_control_allow_origin,omitempty"`
	Checkpoint                     bool     `json:"checkpoint"`
	DeclineOfferDuration           int64    `json:"decline_offer_duration"`
	DefaultNetworkName             string   `json:"default_network_name,omitempty"`
	EnvVarsPrefix                  string   `json:"env_vars_prefix,omitempty"`
	Executor                       string   `json:"executor"`
	FailoverTimeout                int64    `json:"failover_timeout"`
	Features                       []string `json:"features"`
	FrameworkName                  string   `json:"framework_name"`
	HA                             bool     `json:"ha"`
	Hostname                       string   `json:"hostname"`
	LaunchToken                    int      `json:"launch_token"`
	LaunchTokenRefreshInterval     int64    `json:"launch_token_refresh_interval"`
	LeaderProxyConnectionTimeoutMs int      `json:"leader_proxy_connection_timeout_ms"`
	LeaderProxyReadTimeoutMs       int      `json:"leader_proxy_read_timeout_ms"`
	LocalPortMax                   int      `json:"local_port_max"`
	LocalPortMin                   int      `json:"local_port_min"`
	Master                         string   `json:"master"`
	MaxInstancesPerOffer           int      `json:"max_instances_per_offer"`
	MesosBridgeName                string   `json:"mesos_bridge_name"`
	MesosHeartbeatFailureThreshold int      `json:"mesos_heartbeat_failure_threshold"`
	MesosHeartbeatInterval         int64    `json:"mesos_heartbeat_interval"`
	MesosLeaderUIURL               string   `json:"mesos_leader_ui_url"`
	MesosRole                      string   `json:"mesos_role,omitempty"`
	MesosUser                      string   `json:"mesos_user,omitempty"`
	MinReviveOffersInterval        int64    `json:"min_revive_offers_interval"`
	OfferMatchingTimeout           int64    `json:"offer_matching_timeout"`
	OnElectedPrepareTimeout        int64    `json:"on_elected_prepare_timeout"`
	ReconciliationInitialDelay     int64    `json:"reconciliation_initial_delay"`
	ReconciliationInterval         int64    `json:"reconciliation_interval"`
	ScaleAppsInitialDelay          int64    `json:"scale_apps_initial_delay"`
	ScaleAppsInterval              int64    `json:"scale_apps_interval"`
	StoreCache                     bool     `json:"store_cache"`
	TaskLaunchConfirmTimeout       int64    `json:"task_launch_confirm_timeout"`
	TaskLaunchTimeout              int64    `json:"task_launch_timeout"`
	TaskLostExpungeInitialDelay    int64    `json:"task_lost_expunge_initial_delay"`
	TaskLostExpungeInterval        int64    `json:"task_lost_expunge_interval"`
	TaskReservationTimeout         int64    `json:"task_reservation_timeout"`
	WebuiURL                       string   `json:"webui_url,omitempty"`
}

// ZookeeperConfig is what /v2/info said about ZooKeeper; Atoll keeps its state in Raft and
// fills it only for tools that read it.
type ZookeeperConfig struct {
	Zk                     string `json:"zk"`
	ZkCompression          bool   `json:"zk_compression"`
	ZkCompressionThreshold int64  `json:"zk_compression_threshold"`
	ZkConnectionTimeout    int64  `json:"zk_connection_timeout"`
	ZkMaxNodeSize          int64  `json:"zk_max_node_size"`
	ZkMaxVersions          int    `json:"zk_max_versions"`
	ZkSessionTimeout       int64  `json:"zk_session_timeout"`
	ZkTimeout              int64  `json:"zk_timeout"`
}

// HTTPConfig is the API's ports.
type HTTPConfig struct {
	HTTPPort  int `json:"http_port"`
	HTTPSPort int `json:"https_port"`
}

// Leader is the body of GET /v2/leader.
type Leader struct {
	// Leader is the leading master's host:port.
	Leader string `json:"leader"`
}
