// Package marathon holds the Marathon v2 REST API wire format that Atoll's services framework
// speaks: app, group, task, deployment, queue, info and event JSON with Marathon's exact field
// names; decoding with Marathon's 400 "Invalid JSON" errors; normalisation to Marathon's
// canonical form (defaults, absolute ids, legacy fields translated); and validation with
// Marathon's 422 "Object is not valid" errors, including the features Atoll rejects.
//
// The life of a request body is DecodeApp (or DecodeGroup, DecodeAppList, DecodeAppPatch),
// then Normalize, then Validate. Decoding starts every object from Marathon's defaults, so a
// field absent from the JSON has its default and an explicit zero stays zero (cpus, mem,
// instances, backoff, upgrade strategy, kill selection, unreachable strategy, health check,
// readiness check and check timings, fetch flags, port protocols). Normalize adds the
// defaults that depend on the rest of the app (networks, port definitions, port mappings,
// health check port index and path, the check's port index, readiness status codes) and
// translates the legacy input-only forms
// (ports, uris, ipAddress, container.docker.network, container.docker.portMappings), which
// are never marshalled.
//
// # What Atoll does not support
//
// Marathon accepted and ignored fields it did not know; so does this package. Fields Marathon
// knew but Atoll cannot honour are rejected with 422 naming the field, never dropped:
//
//   - persistent volumes of type path or mount (Atoll keeps local persistent volumes in
//     the agent's work dir), residency.taskLostBehavior RELAUNCH_AFTER_TIMEOUT, and
//     external volumes of a provider other than dvdi;
//   - container.docker.pullConfig (registry credentials from a secret);
//   - storeUrls (the artifact store), container.appc (AppC images), container.linuxInfo
//     (seccomp and IPC settings), container.docker.credential;
//   - executor other than "" or "//cmd" (custom executors);
//   - gpus > 0 (agents offer no GPUs);
//   - container.docker.parameters other than those DockerOptions maps onto runc
//     containers (Atoll runs containers with runc, not the Docker CLI), and privileged or
//     parameters in MESOS containers;
//   - container networks without a name, and container.docker.network NONE;
//   - pods in groups.
//
// The first group is found while decoding (those fields have no Go field here), the rest by
// Validate.
package marathon

import (
	"encoding/json"
	"time"
)

// TimeLayout is how Marathon writes timestamps (versions, task times, events): UTC with
// milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Timestamp formats t the way Marathon does.
func Timestamp(t time.Time) string {
	return t.UTC().Format(TimeLayout)
}

// App is a Marathon app definition (a run spec). Fields that exist only on input
// (Ports, URIs, IPAddress) carry json:"-" and a wire tag: DecodeApp reads them, Normalize
// translates them, marshalling never writes them.
type App struct {
	// ID is the app's path, like "/group/app"; Normalize makes it absolute.
	ID string `json:"id"`
	// Cmd is run by /bin/sh -c. At most one of Cmd and Args.
	Cmd string `json:"cmd,omitempty"`
	// Args is the command as an argument vector (with an image: its entrypoint's arguments).
	Args []string `json:"args,omitempty"`
	// User runs the tasks.
	User string `json:"user,omitempty"`
	// Env is the tasks' environment.
	Env map[string]EnvValue `json:"env,omitempty"`
	// Instances is how many tasks to run (default 1).
	Instances int `json:"instances"`
	// Cpus per task (default 1, at least 0.001).
	Cpus float64 `json:"cpus"`
	// Mem per task in MB (default 128).
	Mem float64 `json:"mem"`
	// Disk per task in MB (default 0).
	Disk float64 `json:"disk"`
	// Gpus per task (default 0; Atoll supports only 0).
	Gpus int `json:"gpus"`
	// Executor is "" or "//cmd" (the command executor); Atoll supports no other.
	Executor string `json:"executor"`
	// Constraints restrict where tasks run.
	Constraints []Constraint `json:"constraints,omitempty"`
	// Fetch lists the artifacts put into each task's sandbox.
	Fetch []Fetch `json:"fetch,omitempty"`
	// BackoffSeconds is the first launch delay after a task failure (default 1).
	BackoffSeconds int `json:"backoffSeconds"`
	// BackoffFactor multiplies the delay on each further failure (default 1.15, at least 1).
	BackoffFactor float64 `json:"backoffFactor"`
	// MaxLaunchDelaySeconds caps the delay (default 300).
	MaxLaunchDelaySeconds int `json:"maxLaunchDelaySeconds"`
	// Container says how tasks are contained; nil runs them on the host's filesystem.
	Container *Container `json:"container,omitempty"`
	// HealthChecks decide whether tasks are healthy.
	HealthChecks []HealthCheck `json:"healthChecks,omitempty"`
	// Check is a Mesos check of each task: its result is shown, never acted on.
	Check *Check `json:"check,omitempty"`
	// ReadinessChecks decide whether a new task may replace an old one in a deployment.
	ReadinessChecks []ReadinessCheck `json:"readinessChecks,omitempty"`
	// Dependencies are app or group ids deployed (and healthy) before this app.
	Dependencies []string `json:"dependencies,omitempty"`
	// UpgradeStrategy bounds capacity during a rolling upgrade (default {1, 1}).
	UpgradeStrategy UpgradeStrategy `json:"upgradeStrategy"`
	// Labels are free-form metadata (load balancer settings, package names, …).
	Labels map[string]string `json:"labels"`
	// AcceptedResourceRoles limits the roles of the resources tasks may use.
	AcceptedResourceRoles []string `json:"acceptedResourceRoles,omitempty"`
	// Role is the role the app's resources are reserved for.
	Role string `json:"role,omitempty"`
	// Version is when this definition was stored.
	Version string `json:"version,omitempty"`
	// VersionInfo tells the last scaling and the last configuration change.
	VersionInfo *VersionInfo `json:"versionInfo,omitempty"`
	// KillSelection picks which tasks go first when scaling down (default YOUNGEST_FIRST).
	KillSelection string `json:"killSelection"`
	// UnreachableStrategy says when tasks on unreachable agents are replaced (default
	// {0, 0}: at once).
	UnreachableStrategy UnreachableStrategy `json:"unreachableStrategy"`
	// TaskKillGracePeriodSeconds is the time between SIGTERM and SIGKILL; nil leaves it to
	// the agent.
	TaskKillGracePeriodSeconds *int `json:"taskKillGracePeriodSeconds,omitempty"`
	// Secrets declares secrets by name: Source names a secret of the secret store.
	Secrets map[string]SecretDef `json:"secrets,omitempty"`
	// Residency says how tasks with local persistent volumes keep to their agents;
	// Normalize gives resident apps the default.
	Residency *Residency `json:"residency,omitempty"`
	// PortDefinitions are the ports of host-networked tasks. Nil and empty differ on input:
	// nil gets the default port, empty means none.
	PortDefinitions []PortDefinition `json:"portDefinitions,omitzero"`
	// RequirePorts makes the definitions' port numbers the host ports (host networking only).
	RequirePorts bool `json:"requirePorts"`
	// Networks the tasks join (default host).
	Networks []Network `json:"networks,omitempty"`
	// ResourceLimits let tasks use more than they reserve.
	ResourceLimits *ResourceLimits `json:"resourceLimits,omitempty"`
	// Tty allocates a terminal.
	Tty bool `json:"tty,omitempty"`

	// Ports is the legacy form of PortDefinitions (input only).
	Ports []int `json:"-" wire:"ports"`
	// URIs is the legacy form of Fetch (input only).
	URIs []string `json:"-" wire:"uris"`
	// IPAddress is the legacy form of Networks (input only).
	IPAddress *IPAddress `json:"-" wire:"ipAddress"`
}

// setDefaults gives a freshly decoded app Marathon's defaults.
func (a *App) setDefaults() {
	a.Instances = 1
	a.Cpus = 1
	a.Mem = 128
	a.BackoffSeconds = 1
	a.BackoffFactor = 1.15
	// The spec's 300 s; Marathon's older RAML said 3600, later releases 300.
	a.MaxLaunchDelaySeconds = 300
	a.UpgradeStrategy = UpgradeStrategy{MinimumHealthCapacity: 1, MaximumOverCapacity: 1}
	a.KillSelection = KillYoungestFirst
}

// UnmarshalJSON decodes as DecodeApp does (defaults, legacy forms, Marathon's errors),
// without the checks for unsupported features, so that encoding/json users read apps the
// same way.
func (a *App) UnmarshalJSON(data []byte) error {
	tree, err := parseJSON(data)
	if err != nil {
		return err
	}
	var app App
	app.setDefaults()
	d := &decoder{}
	d.value(reflectValue(&app), tree, "")
	if e := d.err(); e != nil {
		return e
	}
	*a = app
	return nil
}

// Clone returns a deep copy of a.
func (a *App) Clone() *App {
	c := &App{}
	deepCopy(reflectValue(c), reflectValue(a))
	return c
}

// Kill selections.
const (
	KillYoungestFirst = "YOUNGEST_FIRST"
	KillOldestFirst   = "OLDEST_FIRST"
)

// EnvValue is an environment variable's value: a string, or on the wire {"secret": name}.
type EnvValue struct {
	// Value is the variable's value when Secret is empty.
	Value string
	// Secret names a secret in App.Secrets.
	Secret string
}

// MarshalJSON writes a string, or {"secret": name}.
func (v EnvValue) MarshalJSON() ([]byte, error) {
	if v.Secret != "" {
		return json.Marshal(struct {
			Secret string `json:"secret"`
		}{v.Secret})
	}
	return json.Marshal(v.Value)
}

// UnmarshalJSON reads a string or {"secret": name}.
func (v *EnvValue) UnmarshalJSON(data []byte) error {
	return unmarshalWire(data, v)
}

func (v *EnvValue) decodeWire(d *decoder, raw any, path string) {
	switch x := raw.(type) {
	case string:
		*v = EnvValue{Value: x}
	case map[string]any:
		secret, ok := x["secret"].(string)
		if !ok {
			d.add(path+"/secret", codeString)
			return
		}
		*v = EnvValue{Secret: secret}
	default:
		d.add(path, codeString)
	}
}

// SecretDef declares a secret of the app: Source names it in the secret store.
type SecretDef struct {
	Source string `json:"source"`
}

// Constraint is [field, operator] or [field, operator, value] on the wire.
type Constraint []string

// Constraint operators.
const (
	OpUnique  = "UNIQUE"
	OpCluster = "CLUSTER"
	OpGroupBy = "GROUP_BY"
	OpLike    = "LIKE"
	OpUnlike  = "UNLIKE"
	OpMaxPer  = "MAX_PER"
	OpIs      = "IS"
)

// Field is the attribute constrained: "@hostname" (or "hostname"), "@region", "@zone" or an
// agent attribute.
func (c Constraint) Field() string { return c.at(0) }

// Operator is one of the Op constants.
func (c Constraint) Operator() string { return c.at(1) }

// Value is the operator's argument and whether there is one.
func (c Constraint) Value() (string, bool) { return c.at(2), len(c) > 2 }

func (c Constraint) at(i int) string {
	if i < len(c) {
		return c[i]
	}
	return ""
}

// Fetch is an artifact downloaded into the sandbox before a task starts.
type Fetch struct {
	URI string `json:"uri"`
	// Extract unpacks archives (default true).
	Extract bool `json:"extract"`
	// Executable sets the file's executable bit.
	Executable bool `json:"executable"`
	// Cache keeps the download on the agent for later tasks.
	Cache bool `json:"cache"`
	// DestPath names the file in the sandbox.
	DestPath string `json:"destPath,omitempty"`
}

func (f *Fetch) setDefaults() { f.Extract = true }

// UpgradeStrategy bounds capacity during a rolling upgrade, as fractions of instances.
type UpgradeStrategy struct {
	// MinimumHealthCapacity of healthy tasks stays up (0 to 1).
	MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
	// MaximumOverCapacity of extra tasks may run at once (0 to 1).
	MaximumOverCapacity float64 `json:"maximumOverCapacity"`
}

// UnreachableStrategy is "disabled" or {inactiveAfterSeconds, expungeAfterSeconds} on the
// wire.
type UnreachableStrategy struct {
	// Disabled never replaces tasks on unreachable agents.
	Disabled bool
	// InactiveAfterSeconds after an agent became unreachable a replacement is launched.
	InactiveAfterSeconds int64
	// ExpungeAfterSeconds after that the task is forgotten (killed should it return).
	ExpungeAfterSeconds int64
}

type unreachableEnabled struct {
	InactiveAfterSeconds int64 `json:"inactiveAfterSeconds"`
	ExpungeAfterSeconds  int64 `json:"expungeAfterSeconds"`
}

// unreachableDisabled is the wire string for UnreachableStrategy.Disabled.
const unreachableDisabled = "disabled"

// MarshalJSON writes "disabled" or the object.
func (u UnreachableStrategy) MarshalJSON() ([]byte, error) {
	if u.Disabled {
		return json.Marshal(unreachableDisabled)
	}
	return json.Marshal(unreachableEnabled{InactiveAfterSeconds: u.InactiveAfterSeconds, ExpungeAfterSeconds: u.ExpungeAfterSeconds})
}

// UnmarshalJSON reads "disabled" or the object.
func (u *UnreachableStrategy) UnmarshalJSON(data []byte) error {
	return unmarshalWire(data, u)
}

func (u *UnreachableStrategy) decodeWire(d *decoder, raw any, path string) {
	switch x := raw.(type) {
	case string:
		if x != unreachableDisabled {
			d.add(path, codeEnum)
			return
		}
		*u = UnreachableStrategy{Disabled: true}
	case map[string]any:
		// Marathon's defaults for an object that leaves a field out.
		enabled := unreachableEnabled{InactiveAfterSeconds: 300, ExpungeAfterSeconds: 600}
		d.value(reflectValue(&enabled), x, path)
		*u = UnreachableStrategy{InactiveAfterSeconds: enabled.InactiveAfterSeconds, ExpungeAfterSeconds: enabled.ExpungeAfterSeconds}
	default:
		d.add(path, codeObject)
	}
}

// ResourceLimits let tasks use more cpus or memory than they reserve.
type ResourceLimits struct {
	Cpus *ResourceLimit `json:"cpus,omitempty"`
	Mem  *ResourceLimit `json:"mem,omitempty"`
}

// ResourceLimit is a number or "unlimited" on the wire.
type ResourceLimit struct {
	Unlimited bool
	Value     float64
}

const unlimited = "unlimited"

// MarshalJSON writes the number or "unlimited".
func (l ResourceLimit) MarshalJSON() ([]byte, error) {
	if l.Unlimited {
		return json.Marshal(unlimited)
	}
	return json.Marshal(l.Value)
}

// UnmarshalJSON reads a number or "unlimited".
func (l *ResourceLimit) UnmarshalJSON(data []byte) error {
	return unmarshalWire(data, l)
}

func (l *ResourceLimit) decodeWire(d *decoder, raw any, path string) {
	switch x := raw.(type) {
	case string:
		if x != unlimited {
			d.add(path, codeEnum)
			return
		}
		*l = ResourceLimit{Unlimited: true}
	case json.Number:
		f, ok := parseFloat(x)
		if !ok {
			d.add(path, codeNumber)
			return
		}
		*l = ResourceLimit{Value: f}
	default:
		d.add(path, codeNumber)
	}
}

// VersionInfo tells when an app last changed.
type VersionInfo struct {
	LastScalingAt      string `json:"lastScalingAt"`
	LastConfigChangeAt string `json:"lastConfigChangeAt"`
}

// Container describes how tasks are contained.
type Container struct {
	// Type is DOCKER (default) or MESOS; Atoll runs both with runc.
	Type string `json:"type"`
	// Docker names the image.
	Docker *Docker `json:"docker,omitempty"`
	// Volumes are host paths mounted into the container.
	Volumes []Volume `json:"volumes,omitempty"`
	// PortMappings are the ports of tasks on container networks. Nil and empty differ on
	// input: nil gets a default mapping, empty means none.
	PortMappings []PortMapping `json:"portMappings,omitzero"`
}

func (c *Container) setDefaults() { c.Type = ContainerDocker }

// Container types.
const (
	ContainerDocker = "DOCKER"
	ContainerMesos  = "MESOS"
)

// Docker is a container's image.
type Docker struct {
	Image string `json:"image"`
	// ForcePullImage pulls even when the image is cached.
	ForcePullImage bool `json:"forcePullImage"`
	// Privileged gives the container every privilege: all capabilities and devices, no
	// masked paths.
	Privileged bool `json:"privileged"`
	// Parameters are Docker CLI options; Atoll takes those of DockerOptions.
	Parameters []DockerParameter `json:"parameters,omitempty"`
	// PullConfig names a secret holding registry credentials (Atoll does not support it).
	PullConfig *DockerPullConfig `json:"pullConfig,omitempty"`

	// Network is the legacy form of App.Networks: BRIDGE, HOST, USER or NONE (input only).
	Network string `json:"-" wire:"network"`
	// PortMappings is the legacy form of Container.PortMappings (input only).
	PortMappings []PortMapping `json:"-" wire:"portMappings"`
}

// DockerParameter is a Docker CLI option.
type DockerParameter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// DockerPullConfig names a secret with a Docker config.json.
type DockerPullConfig struct {
	Secret string `json:"secret"`
}

// Volume mounts a host path (absolute, or relative to the sandbox) into the container, or
// is a local persistent volume, or an external volume.
type Volume struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath,omitempty"`
	// Secret makes the volume a file holding that secret.
	Secret string `json:"secret,omitempty"`
	// Persistent makes the volume a local persistent volume: a directory its agent keeps
	// across the task's restarts, which ties the task to that agent (a resident app).
	Persistent *PersistentVolume `json:"persistent,omitempty"`
	// External makes the volume one of a volume driver, found by name on any agent that
	// has the driver.
	External *ExternalVolume `json:"external,omitempty"`
	// Mode is RO or RW.
	Mode string `json:"mode"`
}

// PersistentVolume is a local persistent volume's disk.
type PersistentVolume struct {
	// Type is root (default): a directory in the agent's work dir. Atoll supports no
	// other (path and mount disks).
	Type string `json:"type"`
	// Size is in MiB.
	Size int `json:"size"`
	// MaxSize and Constraints pick among mount disks (Atoll has none).
	MaxSize     *int         `json:"maxSize,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty"`
}

func (p *PersistentVolume) setDefaults() { p.Type = PersistentRoot }

// Persistent volume types.
const (
	PersistentRoot  = "root"
	PersistentPath  = "path"
	PersistentMount = "mount"
)

// ExternalVolume is a volume of a volume driver (Docker volume driver interface).
type ExternalVolume struct {
	Name string `json:"name"`
	// Provider is dvdi.
	Provider string `json:"provider"`
	// Options go to the driver; "dvdi/driver" names it.
	Options map[string]string `json:"options,omitempty"`
	// Size is in GiB, for drivers that create volumes.
	Size *int `json:"size,omitempty"`
}

// External volume providers and options.
const (
	ProviderDVDI     = "dvdi"
	OptionDVDIDriver = "dvdi/driver"
)

// Residency says how a resident app's tasks keep to the agents holding their volumes.
type Residency struct {
	RelaunchEscalationTimeoutSeconds int `json:"relaunchEscalationTimeoutSeconds"`
	// TaskLostBehavior is WAIT_FOREVER (default) or RELAUNCH_AFTER_TIMEOUT.
	TaskLostBehavior string `json:"taskLostBehavior"`
}

func (r *Residency) setDefaults() {
	r.RelaunchEscalationTimeoutSeconds = 3600
	r.TaskLostBehavior = TaskLostWaitForever
}

// Task lost behaviours of resident apps.
const (
	TaskLostWaitForever          = "WAIT_FOREVER"
	TaskLostRelaunchAfterTimeout = "RELAUNCH_AFTER_TIMEOUT"
)

// Resident reports whether the app has local persistent volumes.
func (a *App) Resident() bool {
	if a.Container == nil {
		return false
	}
	for _, v := range a.Container.Volumes {
		if v.Persistent != nil {
			return true
		}
	}
	return false
}

// PortMapping maps a container port to a host port and a service port.
type PortMapping struct {
	// ContainerPort 0 takes the host port's number.
	ContainerPort int `json:"containerPort"`
	// HostPort 0 picks one from the offer; nil (container networks only) maps none.
	HostPort *int `json:"hostPort,omitempty"`
	// ServicePort 0 has Atoll assign one for load balancers.
	ServicePort int `json:"servicePort"`
	// Protocol is tcp (default), udp or "udp,tcp".
	Protocol     string            `json:"protocol"`
	Name         string            `json:"name,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	NetworkNames []string          `json:"networkNames,omitempty"`
}

func (p *PortMapping) setDefaults() { p.Protocol = ProtocolTCP }

// PortDefinition is a port of a host-networked task.
type PortDefinition struct {
	// Port 0 has Atoll assign a service port; with requirePorts it is the host port.
	Port int `json:"port"`
	// Protocol is tcp (default), udp or "udp,tcp".
	Protocol string            `json:"protocol"`
	Name     string            `json:"name,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

func (p *PortDefinition) setDefaults() { p.Protocol = ProtocolTCP }

// Port protocols.
const (
	ProtocolTCP    = "tcp"
	ProtocolUDP    = "udp"
	ProtocolUDPTCP = "udp,tcp"
)

// Network is a network tasks join.
type Network struct {
	// Mode is host, container/bridge or container (the default inside a network object).
	Mode   string            `json:"mode"`
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

func (n *Network) setDefaults() { n.Mode = NetworkContainer }

// Network modes.
const (
	NetworkHost      = "host"
	NetworkBridge    = "container/bridge"
	NetworkContainer = "container"
)

// IPAddress is the legacy way to ask for a container network (input only).
type IPAddress struct {
	NetworkName string            `json:"networkName"`
	Discovery   *IPDiscovery      `json:"discovery"`
	Groups      []string          `json:"groups"`
	Labels      map[string]string `json:"labels"`
}

// IPDiscovery lists the ports of a legacy ipAddress container.
type IPDiscovery struct {
	Ports []IPDiscoveryPort `json:"ports"`
}

// IPDiscoveryPort is a port of a legacy ipAddress container.
type IPDiscoveryPort struct {
	Number   int    `json:"number"`
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
}

func (p *IPDiscoveryPort) setDefaults() { p.Protocol = ProtocolTCP }

// HealthCheck says how tasks are checked. Atoll runs every protocol on the agent next to the
// task.
type HealthCheck struct {
	// Protocol is one of the Health constants (default HTTP).
	Protocol string `json:"protocol"`
	// Path is requested by the HTTP protocols (default "/").
	Path string `json:"path,omitempty"`
	// PortIndex picks a port of the app; Port names one directly.
	PortIndex *int `json:"portIndex,omitempty"`
	Port      *int `json:"port,omitempty"`
	// Command is run by COMMAND checks.
	Command *CommandCheck `json:"command,omitempty"`
	// GracePeriodSeconds after a task starts failures do not count (default 300).
	GracePeriodSeconds int `json:"gracePeriodSeconds"`
	// IntervalSeconds between checks (default 60).
	IntervalSeconds int `json:"intervalSeconds"`
	// TimeoutSeconds a check may take (default 20).
	TimeoutSeconds int `json:"timeoutSeconds"`
	// MaxConsecutiveFailures before the task is killed (default 3; 0 never kills).
	MaxConsecutiveFailures int `json:"maxConsecutiveFailures"`
	// DelaySeconds before the first check (default 15).
	DelaySeconds int `json:"delaySeconds"`
	// IgnoreHTTP1xx treats 1xx answers as neither healthy nor unhealthy.
	IgnoreHTTP1xx bool `json:"ignoreHttp1xx"`
	// IPProtocol is IPv4 (when empty) or IPv6.
	IPProtocol string `json:"ipProtocol,omitempty"`
}

func (h *HealthCheck) setDefaults() {
	h.Protocol = HealthHTTP
	h.GracePeriodSeconds = 300
	h.IntervalSeconds = 60
	h.TimeoutSeconds = 20
	h.MaxConsecutiveFailures = 3
	h.DelaySeconds = 15
}

// CommandCheck is a COMMAND check's shell command.
type CommandCheck struct {
	Value string `json:"value"`
}

// Health check protocols.
const (
	HealthHTTP       = "HTTP"
	HealthHTTPS      = "HTTPS"
	HealthTCP        = "TCP"
	HealthCommand    = "COMMAND"
	HealthMesosHTTP  = "MESOS_HTTP"
	HealthMesosHTTPS = "MESOS_HTTPS"
	HealthMesosTCP   = "MESOS_TCP"
)

// Check is an app's Mesos check (Marathon 1.6+): the agent runs it next to each task and
// reports the result with the task (checkResult), which nobody interprets: unlike a health
// check it never kills a task or holds up a deployment. Exactly one of HTTP, TCP and Exec.
type Check struct {
	HTTP *HTTPCheck `json:"http,omitempty"`
	TCP  *TCPCheck  `json:"tcp,omitempty"`
	Exec *ExecCheck `json:"exec,omitempty"`
	// IntervalSeconds between checks (default 60).
	IntervalSeconds int `json:"intervalSeconds"`
	// TimeoutSeconds a check may take (default 20).
	TimeoutSeconds int `json:"timeoutSeconds"`
	// DelaySeconds before the first check (default 15).
	DelaySeconds int `json:"delaySeconds"`
}

func (c *Check) setDefaults() {
	c.IntervalSeconds = 60
	c.TimeoutSeconds = 20
	c.DelaySeconds = 15
}

// HTTPCheck GETs a path on a port of the task and reports the status code.
type HTTPCheck struct {
	// PortIndex picks a port of the app; Port names one directly.
	PortIndex *int   `json:"portIndex,omitempty"`
	Port      *int   `json:"port,omitempty"`
	Path      string `json:"path,omitempty"`
	// Scheme is HTTP (default); Mesos checks have no HTTPS.
	Scheme string `json:"scheme"`
}

func (h *HTTPCheck) setDefaults() { h.Scheme = CheckSchemeHTTP }

// HTTP check schemes.
const (
	CheckSchemeHTTP  = "HTTP"
	CheckSchemeHTTPS = "HTTPS"
)

// TCPCheck connects to a port of the task and reports whether it could.
type TCPCheck struct {
	// PortIndex picks a port of the app; Port names one directly.
	PortIndex *int `json:"portIndex,omitempty"`
	Port      *int `json:"port,omitempty"`
}

// ExecCheck runs a command next to the task and reports its exit code.
type ExecCheck struct {
	Command CheckCommand `json:"command"`
}

// CheckCommand is a command: a shell command line, or an argument vector (exactly one).
type CheckCommand struct {
	Shell string   `json:"shell,omitempty"`
	Argv  []string `json:"argv,omitempty"`
}

// ReadinessCheck says when a new task is ready to replace an old one.
type ReadinessCheck struct {
	Name string `json:"name"`
	// Protocol is HTTP or HTTPS.
	Protocol string `json:"protocol"`
	Path     string `json:"path"`
	// PortName names a port definition or port mapping.
	PortName        string `json:"portName"`
	IntervalSeconds int    `json:"intervalSeconds"`
	TimeoutSeconds  int    `json:"timeoutSeconds"`
	// HTTPStatusCodesForReady default [200].
	HTTPStatusCodesForReady []int `json:"httpStatusCodesForReady"`
	// PreserveLastResponse shows the last answer in the deployment.
	PreserveLastResponse bool `json:"preserveLastResponse"`
}

func (r *ReadinessCheck) setDefaults() {
	r.Name = "readinessCheck"
	r.Protocol = HealthHTTP
	r.Path = "/"
	r.PortName = "http-api"
	r.IntervalSeconds = 30
	r.TimeoutSeconds = 10
}
