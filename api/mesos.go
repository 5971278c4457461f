// Package api holds Atoll's wire types — Mesos v1, the agent protocol and, later, Marathon v2,
// Chronos and Universe — whose JSON matches the original field names exactly, and the Go
// client every tool uses to talk to a cluster.
package api

// The Mesos v1 types below follow include/mesos/v1/mesos.proto. JSON uses the proto field
// names (snake_case), enums as their string names and bytes as base64 (Go's []byte default).

// FrameworkID identifies a framework across failovers.
type FrameworkID struct {
	Value string `json:"value"`
}

// AgentID identifies an agent; it survives agent restarts on the same boot.
type AgentID struct {
	Value string `json:"value"`
}

// OfferID identifies one offer.
type OfferID struct {
	Value string `json:"value"`
}

// TaskID identifies a task; frameworks choose it.
type TaskID struct {
	Value string `json:"value"`
}

// ExecutorID identifies an executor.
type ExecutorID struct {
	Value string `json:"value"`
}

// ContainerID identifies a container on an agent.
type ContainerID struct {
	Value string `json:"value"`
}

// ValueType is the type of a resource or attribute value.
type ValueType string

// Value types.
const (
	Scalar ValueType = "SCALAR"
	Ranges ValueType = "RANGES"
	Set    ValueType = "SET"
	Text   ValueType = "TEXT"
)

// ValueScalar is a floating point value (Mesos keeps three decimal places).
type ValueScalar struct {
	Value float64 `json:"value"`
}

// ValueRange is an inclusive range of integers.
type ValueRange struct {
	Begin uint64 `json:"begin"`
	End   uint64 `json:"end"`
}

// ValueRanges is a list of inclusive ranges.
type ValueRanges struct {
	Range []ValueRange `json:"range"`
}

// ValueSet is a set of strings.
type ValueSet struct {
	Item []string `json:"item"`
}

// ValueText is a string value.
type ValueText struct {
	Value string `json:"value"`
}

// AllocationInfo says which role resources are allocated to.
type AllocationInfo struct {
	Role string `json:"role,omitempty"`
}

// Resource is one named resource: cpus, mem (MB), disk (MB), gpus, ports or a custom one.
type Resource struct {
	Name           string          `json:"name"`
	Type           ValueType       `json:"type"`
	Scalar         *ValueScalar    `json:"scalar,omitempty"`
	Ranges         *ValueRanges    `json:"ranges,omitempty"`
	Set            *ValueSet       `json:"set,omitempty"`
	Role           string          `json:"role,omitempty"`
	AllocationInfo *AllocationInfo `json:"allocation_info,omitempty"`
	// Disk says, for a disk resource, that it is a persistent volume.
	Disk *DiskInfo `json:"disk,omitempty"`
}

// DiskInfo is a disk resource's persistence and where a task sees it (mesos.proto's
// Resource.DiskInfo).
type DiskInfo struct {
	Persistence *DiskPersistence `json:"persistence,omitempty"`
	// Volume is where the task sees it: ContainerPath and Mode.
	Volume *Volume `json:"volume,omitempty"`
}

// DiskPersistence identifies a persistent volume on its agent.
type DiskPersistence struct {
	ID        string `json:"id"`
	Principal string `json:"principal,omitempty"`
}

// Attribute is a fixed property of an agent (rack, zone, …) used by constraints.
type Attribute struct {
	Name   string       `json:"name"`
	Type   ValueType    `json:"type"`
	Scalar *ValueScalar `json:"scalar,omitempty"`
	Ranges *ValueRanges `json:"ranges,omitempty"`
	Set    *ValueSet    `json:"set,omitempty"`
	Text   *ValueText   `json:"text,omitempty"`
}

// Label is a key/value pair.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// Labels is a list of labels.
type Labels struct {
	Labels []Label `json:"labels"`
}

// Get returns the value of the first label named key, or "" (also for nil labels).
func (l *Labels) Get(key string) string {
	if l == nil {
		return ""
	}
	for _, label := range l.Labels {
		if label.Key == key {
			return label.Value
		}
	}
	return ""
}

// FrameworkCapability names a feature a framework supports.
type FrameworkCapability struct {
	Type string `json:"type"`
}

// Framework capabilities Atoll acts on.
const (
	CapabilityPartitionAware   = "PARTITION_AWARE"
	CapabilityTaskKillingState = "TASK_KILLING_STATE"
	CapabilityMultiRole        = "MULTI_ROLE"
)

// FrameworkInfo describes a framework; it is sent in SUBSCRIBE.
type FrameworkInfo struct {
	User            string                `json:"user"`
	Name            string                `json:"name"`
	ID              *FrameworkID          `json:"id,omitempty"`
	FailoverTimeout float64               `json:"failover_timeout,omitempty"`
	Checkpoint      bool                  `json:"checkpoint,omitempty"`
	Role            string                `json:"role,omitempty"`
	Roles           []string              `json:"roles,omitempty"`
	Hostname        string                `json:"hostname,omitempty"`
	Principal       string                `json:"principal,omitempty"`
	WebuiURL        string                `json:"webui_url,omitempty"`
	Capabilities    []FrameworkCapability `json:"capabilities,omitempty"`
	Labels          *Labels               `json:"labels,omitempty"`
}

// HasCapability reports whether the framework declared capability c.
func (f *FrameworkInfo) HasCapability(c string) bool {
	for _, have := range f.Capabilities {
		if have.Type == c {
			return true
		}
	}
	return false
}

// AllRoles returns the framework's roles: Roles, else Role, else "*".
func (f *FrameworkInfo) AllRoles() []string {
	if len(f.Roles) > 0 {
		return f.Roles
	}
	if f.Role != "" {
		return []string{f.Role}
	}
	return []string{"*"}
}

// Address is a network address.
type Address struct {
	Hostname string `json:"hostname,omitempty"`
	IP       string `json:"ip,omitempty"`
	Port     int    `json:"port"`
}

// MasterInfo describes the leading master.
type MasterInfo struct {
	ID       string   `json:"id"`
	IP       uint32   `json:"ip"`
	Port     uint32   `json:"port"`
	PID      string   `json:"pid,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
	Version  string   `json:"version,omitempty"`
	Address  *Address `json:"address,omitempty"`
}

// AgentInfo describes an agent.
type AgentInfo struct {
	Hostname   string      `json:"hostname"`
	Port       int         `json:"port,omitempty"`
	Resources  []Resource  `json:"resources,omitempty"`
	Attributes []Attribute `json:"attributes,omitempty"`
	ID         *AgentID    `json:"id,omitempty"`
}

// Offer is a set of resources on one agent offered to one framework.
type Offer struct {
	ID             OfferID         `json:"id"`
	FrameworkID    FrameworkID     `json:"framework_id"`
	AgentID        AgentID         `json:"agent_id"`
	Hostname       string          `json:"hostname"`
	URL            *URL            `json:"url,omitempty"`
	Resources      []Resource      `json:"resources"`
	Attributes     []Attribute     `json:"attributes,omitempty"`
	ExecutorIDs    []ExecutorID    `json:"executor_ids,omitempty"`
	AllocationInfo *AllocationInfo `json:"allocation_info,omitempty"`
}

// URL locates the agent offering resources.
type URL struct {
	Scheme  string  `json:"scheme"`
	Address Address `json:"address"`
	Path    string  `json:"path,omitempty"`
}

// Filters narrow future offers after a DECLINE or ACCEPT.
type Filters struct {
	RefuseSeconds *float64 `json:"refuse_seconds,omitempty"`
}

// OfferOperationType names an operation in ACCEPT.
type OfferOperationType string

// Offer operation types.
const (
	OperationLaunch      OfferOperationType = "LAUNCH"
	OperationLaunchGroup OfferOperationType = "LAUNCH_GROUP"
	OperationReserve     OfferOperationType = "RESERVE"
	OperationUnreserve   OfferOperationType = "UNRESERVE"
	OperationCreate      OfferOperationType = "CREATE"
	OperationDestroy     OfferOperationType = "DESTROY"
)

// OfferOperation is one operation applied to accepted offers.
type OfferOperation struct {
	Type   OfferOperationType `json:"type"`
	Launch *LaunchOperation   `json:"launch,omitempty"`
}

// LaunchOperation launches tasks.
type LaunchOperation struct {
	TaskInfos []TaskInfo `json:"task_infos"`
	// NotBefore, an Atoll extension, launches the tasks at that time rather than at once:
	// the master records them now (their resources are theirs from now on, and they are
	// TASK_STAGING) and sends them to the agent when the time comes, so that a launch
	// due at a known time costs nothing but the send then. It may be at most
	// MaxLaunchAhead ahead; a time already passed launches at once. A task killed before
	// its time ends TASK_KILLED without reaching the agent.
	NotBefore *TimeInfo `json:"not_before,omitempty"`
}

// Environment holds environment variables.
type Environment struct {
	Variables []EnvironmentVariable `json:"variables"`
}

// EnvironmentVariable is one variable.
type EnvironmentVariable struct {
	Name  string `json:"name"`
	Type  string `json:"type,omitempty"`
	Value string `json:"value,omitempty"`
	// Secret is the variable's value when Type is SECRET.
	Secret *Secret `json:"secret,omitempty"`
}

// Environment variable types.
const (
	EnvValue  = "VALUE"
	EnvSecret = "SECRET"
)

// CommandURI is an artifact fetched into the sandbox.
type CommandURI struct {
	Value      string `json:"value"`
	Executable bool   `json:"executable,omitempty"`
	Extract    *bool  `json:"extract,omitempty"`
	Cache      bool   `json:"cache,omitempty"`
	OutputFile string `json:"output_file,omitempty"`
}

// CommandInfo is what a task runs. With Shell (the default) Value is run by /bin/sh -c;
// otherwise Value is the executable and Arguments its argv.
type CommandInfo struct {
	URIs        []CommandURI `json:"uris,omitempty"`
	Environment *Environment `json:"environment,omitempty"`
	Shell       *bool        `json:"shell,omitempty"`
	Value       *string      `json:"value,omitempty"`
	Arguments   []string     `json:"arguments,omitempty"`
	User        *string      `json:"user,omitempty"`
}

// IsShell reports whether the command runs through the shell (the Mesos default).
func (c *CommandInfo) IsShell() bool { return c.Shell == nil || *c.Shell }

// ExecutorInfo describes a custom executor. Atoll runs command tasks itself and rejects
// custom executors for now.
type ExecutorInfo struct {
	Type        string       `json:"type,omitempty"`
	ExecutorID  ExecutorID   `json:"executor_id"`
	FrameworkID *FrameworkID `json:"framework_id,omitempty"`
	Command     *CommandInfo `json:"command,omitempty"`
	Resources   []Resource   `json:"resources,omitempty"`
	Name        string       `json:"name,omitempty"`
}

// DockerPortMapping maps a host port to a container port.
type DockerPortMapping struct {
	HostPort      uint32 `json:"host_port"`
	ContainerPort uint32 `json:"container_port"`
	Protocol      string `json:"protocol,omitempty"`
}

// Parameter is a key/value pair passed to a containerizer.
type Parameter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// DockerInfo is the Docker part of a ContainerInfo.
type DockerInfo struct {
	Image          string              `json:"image"`
	Network        string              `json:"network,omitempty"`
	PortMappings   []DockerPortMapping `json:"port_mappings,omitempty"`
	Privileged     bool                `json:"privileged,omitempty"`
	Parameters     []Parameter         `json:"parameters,omitempty"`
	ForcePullImage bool                `json:"force_pull_image,omitempty"`
}

// ImageDocker names a Docker image.
type ImageDocker struct {
	Name string `json:"name"`
}

// Image is a container image for the Mesos containerizer.
type Image struct {
	Type   string       `json:"type"`
	Docker *ImageDocker `json:"docker,omitempty"`
	Cached *bool        `json:"cached,omitempty"`
}

// MesosInfo is the Mesos (universal) containerizer part of a ContainerInfo.
type MesosInfo struct {
	Image *Image `json:"image,omitempty"`
}

// Volume mounts a host path or image into a container.
type Volume struct {
	ContainerPath string `json:"container_path"`
	HostPath      string `json:"host_path,omitempty"`
	Mode          string `json:"mode,omitempty"`
	Image         *Image `json:"image,omitempty"`
	// Source says what the volume is when HostPath and Image are not set.
	Source *VolumeSource `json:"source,omitempty"`
}

// Volume modes.
const (
	VolumeRW = "RW"
	VolumeRO = "RO"
)

// Volume source types (mesos.proto's Volume.Source.Type).
const (
	VolumeSourceHostPath     = "HOST_PATH"
	VolumeSourceSandboxPath  = "SANDBOX_PATH"
	VolumeSourceDockerVolume = "DOCKER_VOLUME"
	VolumeSourceSecret       = "SECRET"
)

// VolumeSource is a volume's source (mesos.proto's Volume.Source): Type names the one
// of the other fields that is set.
type VolumeSource struct {
	Type         string              `json:"type"`
	DockerVolume *DockerVolumeSource `json:"docker_volume,omitempty"`
	HostPath     *HostPathSource     `json:"host_path,omitempty"`
	SandboxPath  *SandboxPathSource  `json:"sandbox_path,omitempty"`
	Secret       *Secret             `json:"secret,omitempty"`
}

// DockerVolumeSource is a volume of a volume driver (an external, DVDI volume).
type DockerVolumeSource struct {
	// Driver names the volume driver; empty means the default, "local".
	Driver        string      `json:"driver,omitempty"`
	Name          string      `json:"name"`
	DriverOptions *Parameters `json:"driver_options,omitempty"`
}

// Parameters is a list of key/value pairs.
type Parameters struct {
	Parameter []Parameter `json:"parameter"`
}

// HostPathSource is a path on the agent's host.
type HostPathSource struct {
	Path string `json:"path"`
}

// Sandbox path types.
const (
	SandboxPathSelf   = "SELF"
	SandboxPathParent = "PARENT"
)

// SandboxPathSource is a path relative to a sandbox: the container's own (SELF) or its
// parent's (PARENT, for nested containers).
type SandboxPathSource struct {
	Type string `json:"type,omitempty"`
	Path string `json:"path"`
}

// Secret types.
const (
	SecretReferenceType = "REFERENCE"
	SecretValueType     = "VALUE"
)

// Secret is a secret, by reference to the secret store or by value.
type Secret struct {
	Type      string           `json:"type"`
	Reference *SecretReference `json:"reference,omitempty"`
	Value     *SecretValue     `json:"value,omitempty"`
}

// SecretReference names a secret in the secret store, and optionally one key of it.
type SecretReference struct {
	Name string `json:"name"`
	Key  string `json:"key,omitempty"`
}

// SecretValue is a secret's content.
type SecretValue struct {
	Data []byte `json:"data"`
}

// IPAddress is an address of a container.
type IPAddress struct {
	Protocol  string `json:"protocol,omitempty"`
	IPAddress string `json:"ip_address,omitempty"`
}

// PortMapping maps ports for a container network.
type PortMapping struct {
	HostPort      uint32 `json:"host_port"`
	ContainerPort uint32 `json:"container_port"`
	Protocol      string `json:"protocol,omitempty"`
}

// NetworkInfo describes a container's network.
type NetworkInfo struct {
	IPAddresses  []IPAddress   `json:"ip_addresses,omitempty"`
	Name         string        `json:"name,omitempty"`
	Labels       *Labels       `json:"labels,omitempty"`
	PortMappings []PortMapping `json:"port_mappings,omitempty"`
}

// ContainerInfo describes how a task is contained.
type ContainerInfo struct {
	Type         string        `json:"type"`
	Volumes      []Volume      `json:"volumes,omitempty"`
	Hostname     string        `json:"hostname,omitempty"`
	Docker       *DockerInfo   `json:"docker,omitempty"`
	Mesos        *MesosInfo    `json:"mesos,omitempty"`
	NetworkInfos []NetworkInfo `json:"network_infos,omitempty"`
}

// ContainerStatus reports a running container's network addresses.
type ContainerStatus struct {
	ContainerID  *ContainerID  `json:"container_id,omitempty"`
	NetworkInfos []NetworkInfo `json:"network_infos,omitempty"`
	ExecutorPID  uint32        `json:"executor_pid,omitempty"`
}

// DurationInfo is a duration in nanoseconds.
type DurationInfo struct {
	Nanoseconds int64 `json:"nanoseconds"`
}

// TimeInfo is a point in time in nanoseconds since the epoch.
type TimeInfo struct {
	Nanoseconds int64 `json:"nanoseconds"`
}

// KillPolicy says how long a task gets between SIGTERM and SIGKILL.
type KillPolicy struct {
	GracePeriod *DurationInfo `json:"grace_period,omitempty"`
}

// HTTPHealthCheck probes an HTTP endpoint.
type HTTPHealthCheck struct {
	Scheme   string   `json:"scheme,omitempty"`
	Port     uint32   `json:"port"`
	Path     string   `json:"path,omitempty"`
	Statuses []uint32 `json:"statuses,omitempty"`
}

// TCPHealthCheck opens a TCP connection.
type TCPHealthCheck struct {
	Port uint32 `json:"port"`
}

// HealthCheck describes how the agent checks a task's health.
type HealthCheck struct {
	DelaySeconds        *float64         `json:"delay_seconds,omitempty"`
	IntervalSeconds     *float64         `json:"interval_seconds,omitempty"`
	TimeoutSeconds      *float64         `json:"timeout_seconds,omitempty"`
	ConsecutiveFailures *uint32          `json:"consecutive_failures,omitempty"`
	GracePeriodSeconds  *float64         `json:"grace_period_seconds,omitempty"`
	Type                string           `json:"type,omitempty"`
	Command             *CommandInfo     `json:"command,omitempty"`
	HTTP                *HTTPHealthCheck `json:"http,omitempty"`
	TCP                 *TCPHealthCheck  `json:"tcp,omitempty"`
}

// CheckInfo is a general check of a task (mesos.proto's CheckInfo): the agent runs it next
// to the task and reports its result in TaskStatus.CheckStatus, neither interpreting nor
// acting on it. Type names the one of Command, HTTP and TCP that is set.
type CheckInfo struct {
	Type    string            `json:"type,omitempty"`
	Command *CheckInfoCommand `json:"command,omitempty"`
	HTTP    *CheckInfoHTTP    `json:"http,omitempty"`
	TCP     *CheckInfoTCP     `json:"tcp,omitempty"`
	// DelaySeconds after the task started the first check runs (Mesos default 15).
	DelaySeconds *float64 `json:"delay_seconds,omitempty"`
	// IntervalSeconds between the end of a check and the next (Mesos default 10).
	IntervalSeconds *float64 `json:"interval_seconds,omitempty"`
	// TimeoutSeconds bounds a check, 0 for none (Mesos default 20); a check that times out
	// has no result.
	TimeoutSeconds *float64 `json:"timeout_seconds,omitempty"`
}

// Check types, of CheckInfo and CheckStatusInfo.
const (
	CheckTypeCommand = "COMMAND"
	CheckTypeHTTP    = "HTTP"
	CheckTypeTCP     = "TCP"
)

// CheckInfoCommand is a command check: the command runs next to the task.
type CheckInfoCommand struct {
	Command CommandInfo `json:"command"`
}

// CheckInfoHTTP is an HTTP check: a GET of http://<task's address>:port/path.
type CheckInfoHTTP struct {
	Port uint32 `json:"port"`
	Path string `json:"path,omitempty"`
}

// CheckInfoTCP is a TCP check: a connection to the task's address and port.
type CheckInfoTCP struct {
	Port uint32 `json:"port"`
}

// CheckStatusInfo is the result of a task's check (mesos.proto's CheckStatusInfo). Type and
// the message of that type are always set; the message is empty while no check has
// completed or when the latest did not (it timed out, or an HTTP check got no answer).
type CheckStatusInfo struct {
	Type    string              `json:"type,omitempty"`
	Command *CheckStatusCommand `json:"command,omitempty"`
	HTTP    *CheckStatusHTTP    `json:"http,omitempty"`
	TCP     *CheckStatusTCP     `json:"tcp,omitempty"`
}

// CheckStatusCommand is a command check's result: the command's exit code.
type CheckStatusCommand struct {
	ExitCode *int32 `json:"exit_code,omitempty"`
}

// CheckStatusHTTP is an HTTP check's result: the answer's status code.
type CheckStatusHTTP struct {
	StatusCode *uint32 `json:"status_code,omitempty"`
}

// CheckStatusTCP is a TCP check's result: whether the connection was made.
type CheckStatusTCP struct {
	Succeeded *bool `json:"succeeded,omitempty"`
}

// Port is a named port in DiscoveryInfo.
type Port struct {
	Number     uint32  `json:"number"`
	Name       string  `json:"name,omitempty"`
	Protocol   string  `json:"protocol,omitempty"`
	Visibility string  `json:"visibility,omitempty"`
	Labels     *Labels `json:"labels,omitempty"`
}

// Ports is a list of ports.
type Ports struct {
	Ports []Port `json:"ports"`
}

// DiscoveryInfo tells service discovery how to publish a task.
type DiscoveryInfo struct {
	Visibility  string  `json:"visibility"`
	Name        string  `json:"name,omitempty"`
	Environment string  `json:"environment,omitempty"`
	Location    string  `json:"location,omitempty"`
	Version     string  `json:"version,omitempty"`
	Ports       *Ports  `json:"ports,omitempty"`
	Labels      *Labels `json:"labels,omitempty"`
}

// TaskInfo describes a task to launch.
type TaskInfo struct {
	Name              string         `json:"name"`
	TaskID            TaskID         `json:"task_id"`
	AgentID           AgentID        `json:"agent_id"`
	Resources         []Resource     `json:"resources,omitempty"`
	Executor          *ExecutorInfo  `json:"executor,omitempty"`
	Command           *CommandInfo   `json:"command,omitempty"`
	Container         *ContainerInfo `json:"container,omitempty"`
	HealthCheck       *HealthCheck   `json:"health_check,omitempty"`
	Check             *CheckInfo     `json:"check,omitempty"`
	KillPolicy        *KillPolicy    `json:"kill_policy,omitempty"`
	Data              []byte         `json:"data,omitempty"`
	Labels            *Labels        `json:"labels,omitempty"`
	Discovery         *DiscoveryInfo `json:"discovery,omitempty"`
	MaxCompletionTime *DurationInfo  `json:"max_completion_time,omitempty"`
}

// TaskState is the state of a task.
type TaskState string

// Task states. DROPPED, UNREACHABLE, GONE, GONE_BY_OPERATOR and UNKNOWN only go to
// PARTITION_AWARE frameworks; others get LOST.
const (
	TaskStaging        TaskState = "TASK_STAGING"
	TaskStarting       TaskState = "TASK_STARTING"
	TaskRunning        TaskState = "TASK_RUNNING"
	TaskKilling        TaskState = "TASK_KILLING"
	TaskFinished       TaskState = "TASK_FINISHED"
	TaskFailed         TaskState = "TASK_FAILED"
	TaskKilled         TaskState = "TASK_KILLED"
	TaskError          TaskState = "TASK_ERROR"
	TaskLost           TaskState = "TASK_LOST"
	TaskDropped        TaskState = "TASK_DROPPED"
	TaskUnreachable    TaskState = "TASK_UNREACHABLE"
	TaskGone           TaskState = "TASK_GONE"
	TaskGoneByOperator TaskState = "TASK_GONE_BY_OPERATOR"
	TaskUnknown        TaskState = "TASK_UNKNOWN"
)

// Terminal reports whether no further state follows s. UNREACHABLE is not terminal: the
// agent may come back.
func (s TaskState) Terminal() bool {
	switch s {
	case TaskFinished, TaskFailed, TaskKilled, TaskError, TaskLost, TaskDropped, TaskGone, TaskGoneByOperator:
		return true
	}
	return false
}

// ForFramework maps s to what a framework without PARTITION_AWARE understands.
func (s TaskState) ForFramework(partitionAware bool) TaskState {
	if partitionAware {
		return s
	}
	switch s {
	case TaskDropped, TaskUnreachable, TaskGone, TaskGoneByOperator, TaskUnknown:
		return TaskLost
	}
	return s
}

// StatusSource says who produced a status update.
type StatusSource string

// Status sources.
const (
	SourceMaster   StatusSource = "SOURCE_MASTER"
	SourceAgent    StatusSource = "SOURCE_AGENT"
	SourceExecutor StatusSource = "SOURCE_EXECUTOR"
)

// StatusReason explains a status update (a subset of Mesos's REASON_* names).
type StatusReason string

// Status reasons Atoll produces.
const (
	ReasonCommandExecutorFailed    StatusReason = "REASON_COMMAND_EXECUTOR_FAILED"
	ReasonContainerLaunchFailed    StatusReason = "REASON_CONTAINER_LAUNCH_FAILED"
	ReasonContainerLimitationMem   StatusReason = "REASON_CONTAINER_LIMITATION_MEMORY"
	ReasonExecutorTerminated       StatusReason = "REASON_EXECUTOR_TERMINATED"
	ReasonFrameworkRemoved         StatusReason = "REASON_FRAMEWORK_REMOVED"
	ReasonInvalidOffers            StatusReason = "REASON_INVALID_OFFERS"
	ReasonAgentRemoved             StatusReason = "REASON_AGENT_REMOVED"
	ReasonAgentUnknown             StatusReason = "REASON_AGENT_UNKNOWN"
	ReasonAgentDisconnected        StatusReason = "REASON_AGENT_DISCONNECTED"
	ReasonAgentRestarted           StatusReason = "REASON_AGENT_RESTARTED"
	ReasonReconciliation           StatusReason = "REASON_RECONCILIATION"
	ReasonTaskHealthCheckUpdated   StatusReason = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
	ReasonTaskCheckStatusUpdated   StatusReason = "REASON_TASK_CHECK_STATUS_UPDATED"
	ReasonTaskInvalid              StatusReason = "REASON_TASK_INVALID"
	ReasonTaskKilledDuringLaunch   StatusReason = "REASON_TASK_KILLED_DURING_LAUNCH"
	ReasonTaskUnknown              StatusReason = "REASON_TASK_UNKNOWN"
	ReasonMaxCompletionTimeReached StatusReason = "REASON_MAX_COMPLETION_TIME_REACHED"
	ReasonResourcesUnknown         StatusReason = "REASON_RESOURCES_UNKNOWN"
)

// TaskStatus is the latest known state of a task.
type TaskStatus struct {
	TaskID          TaskID           `json:"task_id"`
	State           TaskState        `json:"state"`
	Message         string           `json:"message,omitempty"`
	Source          StatusSource     `json:"source,omitempty"`
	Reason          StatusReason     `json:"reason,omitempty"`
	Data            []byte           `json:"data,omitempty"`
	AgentID         *AgentID         `json:"agent_id,omitempty"`
	ExecutorID      *ExecutorID      `json:"executor_id,omitempty"`
	Timestamp       float64          `json:"timestamp,omitempty"`
	UUID            []byte           `json:"uuid,omitempty"`
	Healthy         *bool            `json:"healthy,omitempty"`
	CheckStatus     *CheckStatusInfo `json:"check_status,omitempty"`
	Labels          *Labels          `json:"labels,omitempty"`
	ContainerStatus *ContainerStatus `json:"container_status,omitempty"`
	UnreachableTime *TimeInfo        `json:"unreachable_time,omitempty"`
}

// Task is the master's record of a launched task (mesos.proto's Task message).
type Task struct {
	Name        string         `json:"name"`
	TaskID      TaskID         `json:"task_id"`
	FrameworkID FrameworkID    `json:"framework_id"`
	ExecutorID  *ExecutorID    `json:"executor_id,omitempty"`
	AgentID     AgentID        `json:"agent_id"`
	State       TaskState      `json:"state"`
	Resources   []Resource     `json:"resources,omitempty"`
	Statuses    []TaskStatus   `json:"statuses,omitempty"`
	StatusUUID  []byte         `json:"status_update_uuid,omitempty"`
	Labels      *Labels        `json:"labels,omitempty"`
	Discovery   *DiscoveryInfo `json:"discovery,omitempty"`
	Container   *ContainerInfo `json:"container,omitempty"`
	HealthCheck *HealthCheck   `json:"health_check,omitempty"`
	User        string         `json:"user,omitempty"`
	Role        string         `json:"role,omitempty"`
}

// Agent attributes by which an agent advertises what its containerizer gives tasks
// beyond host paths and its bridge, each a TEXT attribute of comma-separated names:
// AttributeNetworks are the named container networks its bridge also is (Marathon's
// networks of mode container), AttributeVolumeDrivers its volume drivers besides
// LocalVolumeDriver, which every agent with the runc containerizer has.
const (
	AttributeNetworks      = "atoll_networks"
	AttributeVolumeDrivers = "atoll_volume_drivers"
	LocalVolumeDriver      = "local"
)
