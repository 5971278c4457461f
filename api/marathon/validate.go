package marathon

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Marathon's patterns: an id's path segments and port names (stringTypes.raml's LegacyName).
const (
	idSegmentPattern = `^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$`
	portNamePattern  = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
)

var (
	idSegmentRE = regexp.MustCompile(idSegmentPattern)
	portNameRE  = regexp.MustCompile(portNamePattern)
)

// Messages of Marathon's validators.
const (
	msgCmdArgs              = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
	msgNotAbsolute          = "Path needs to be absolute"
	msgRoot                 = "must not be root"
	msgReserved             = "must not end with any of the following reserved keywords: restart, tasks, versions, ., .."
	msgNotEmpty             = "must not be empty"
	msgNotDefined           = "must be defined"
	msgPortNamesUnique      = "Port names must be unique."
	msgPortsUnique          = "Ports must be unique."
	msgHealthPortIndex      = "Health check port indices must address an element of the ports array or container port mappings."
	msgOneMesosCheck        = "AppDefinition can contain at most one Mesos health check"
	msgSingleInstance       = "Single instance app may only have one instance"
	msgMigrationAPI         = "DCOS_PACKAGE_FRAMEWORK_NAME and DCOS_MIGRATION_API_PATH must be defined when using DCOS_MIGRATION_API_VERSION"
	msgHostNetworks         = "Host networks may not have names or labels"
	msgBridgeNetworks       = "Bridge networks may not have names"
	msgDuplicateNets        = "Duplicate networks are not allowed"
	msgNetworkMix           = "Must specify either a single host network, single bridge network, or else 1-to-n container networks"
	msgUrisAndFetch         = "cannot specify both uris and fetch fields"
	msgPortsAndDefs         = "cannot specify both ports and port definitions"
	msgDockerPortMaps       = "cannot specify both portMappings and docker.portMappings"
	msgCyclicDependency     = "Dependency graph has cyclic dependencies"
	msgInactiveExpunge      = "must be less than or equal to expungeAfterSeconds"
	msgCheckOneKind         = "Check must specify exactly one of http, tcp or exec"
	msgCheckPort            = "Check must specify either a port or a portIndex"
	msgCheckHTTPS           = "HTTPS is not supported for checks: Mesos checks speak plain HTTP"
	msgCheckPath            = "must be a URL path starting with /"
	msgCheckCommand         = "must specify either shell or argv, never both"
	msgDockerOnly           = "only DOCKER containers take this: use container type DOCKER"
	msgNetworkName          = "a container network must be named: Atoll has no default network"
	msgUndeclaredSecret     = "secret %q is not declared in the app's secrets"
	msgRelaunchAfterTimeout = "RELAUNCH_AFTER_TIMEOUT is not supported by Atoll: a resident instance waits for the agent holding its volumes (WAIT_FOREVER)"
	msgVolumeKinds          = "a volume is one of a host path, a secret, a persistent volume or an external volume"
	msgPersistentPath       = "a persistent volume's containerPath is a directory name in the sandbox: it must not contain /"
	msgPersistentRW         = "a persistent volume's mode must be RW"
	msgPersistentType       = "Atoll keeps local persistent volumes in the agent's work dir (type root) only: it has no path or mount disks"
	msgDVDIDriver           = "options must name the volume driver (dvdi/driver)"
	msgResidencyVolumes     = "residency needs local persistent volumes"
	msgResidentUpgrade      = "must be 0 for apps with local persistent volumes: a new task cannot start beside the one holding its volumes"
	msgNetHost              = "docker parameter net=host asks for the host's network, but the app's networks are not host"
)

// Labels with rules of their own.
const (
	labelSingleInstance   = "MARATHON_SINGLE_INSTANCE_APP"
	labelMigrationVersion = "DCOS_MIGRATION_API_VERSION"
	labelMigrationPath    = "DCOS_MIGRATION_API_PATH"
	labelFrameworkName    = "DCOS_PACKAGE_FRAMEWORK_NAME"
)

// Validate checks a normalised app with Marathon's rules and messages and rejects what
// Atoll does not support (see the package doc). It returns nil when the app is valid, else a
// 422 "Object is not valid" naming each path.
func Validate(app *App) *Error {
	var v details
	validateApp(&v, app, "")
	return v.errorWith(http.StatusUnprocessableEntity, MessageInvalidObject)
}

// ValidateGroup checks a normalised group: every app and subgroup (paths like
// "/groups/0/apps/1/cpus"), that each is a child of its group, that no id is used twice,
// that dependencies inside the group's own tree name an app or group of it (ids outside it
// name what the cluster already runs) and that dependencies have no cycle (the error names
// one).
func ValidateGroup(g *Group) *Error {
	var v details
	ids := map[string]bool{}
	validateGroup(&v, g, "", ids)
	validateDependencies(&v, g, ids)
	return v.errorWith(http.StatusUnprocessableEntity, MessageInvalidObject)
}

func got(value any, bound string) string {
	return fmt.Sprintf("got %s, expected %s", formatNumber(value), bound)
}

func atLeast[N int | int64 | float64](v *details, path string, value, min N) {
	if value < min {
		v.add(path, got(value, formatNumber(min)+" or more"))
	}
}

func atMost[N int | int64 | float64](v *details, path string, value, max N) {
	if value > max {
		v.add(path, got(value, formatNumber(max)+" or less"))
	}
}

func oneOf(v *details, path, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		v.add(path, fmt.Sprintf("unknown value %q: must be one of %s", value, strings.Join(allowed, ", ")))
	}
}

func validPort(v *details, path string, port int) {
	atLeast(v, path, port, 0)
	atMost(v, path, port, 65535)
}

// validPathID checks an absolute id's syntax; reserved says whether the last segment may not
// be one of the API's keywords (apps' ids).
func validPathID(v *details, path, id string, reserved bool) {
	if id == "" {
		v.add(path, codeMissing)
		return
	}
	segments, absolute := pathSegments(id)
	if !absolute {
		v.add(path, msgNotAbsolute)
	}
	for _, s := range segments {
		if !idSegmentRE.MatchString(s) {
			v.add(path, "must fully match regular expression '"+idSegmentPattern+"'")
			break
		}
	}
	if reserved && len(segments) > 0 && slices.Contains([]string{"restart", "tasks", "versions", ".", ".."}, segments[len(segments)-1]) {
		v.add(path, msgReserved)
	}
}

func validateApp(v *details, app *App, prefix string) {
	p := func(path string) string {
		if path == "/" && prefix != "" {
			return prefix
		}
		return prefix + path
	}

	// Legacy forms that Normalize could not translate.
	if len(app.URIs) > 0 {
		v.add(p("/uris"), msgUrisAndFetch)
	}
	if app.Ports != nil {
		v.add(p("/ports"), msgPortsAndDefs)
	}
	if app.Container != nil && app.Container.Docker != nil && app.Container.Docker.PortMappings != nil {
		v.add(p("/container/docker/portMappings"), msgDockerPortMaps)
	}
	if t := translateNetworks(app); t.conflict != nil {
		v.add(p(t.conflict.Path), t.conflict.Errors[0])
	}

	validPathID(v, p("/id"), app.ID, true)
	if segments, _ := pathSegments(app.ID); app.ID != "" && len(segments) == 0 {
		v.add(p("/id"), msgRoot)
	}

	hasImage := app.Container != nil && app.Container.Docker != nil
	if app.Cmd != "" && len(app.Args) > 0 || app.Cmd == "" && len(app.Args) == 0 && !hasImage {
		v.add(p("/"), msgCmdArgs)
	}

	atLeast(v, p("/cpus"), app.Cpus, 0.001)
	atLeast(v, p("/mem"), app.Mem, 0.0)
	atLeast(v, p("/disk"), app.Disk, 0.0)
	atLeast(v, p("/instances"), app.Instances, 0)
	atLeast(v, p("/gpus"), app.Gpus, 0)
	if app.Gpus > 0 {
		v.add(p("/gpus"), msgGpus)
	}
	atLeast(v, p("/backoffSeconds"), app.BackoffSeconds, 0)
	atLeast(v, p("/backoffFactor"), app.BackoffFactor, 1.0)
	atLeast(v, p("/maxLaunchDelaySeconds"), app.MaxLaunchDelaySeconds, 0)
	if app.TaskKillGracePeriodSeconds != nil {
		atLeast(v, p("/taskKillGracePeriodSeconds"), *app.TaskKillGracePeriodSeconds, 0)
	}
	if app.Executor != "" && app.Executor != "//cmd" {
		v.add(p("/executor"), msgExecutor)
	}
	for _, c := range []struct {
		path     string
		capacity float64
	}{
		{"/upgradeStrategy/minimumHealthCapacity", app.UpgradeStrategy.MinimumHealthCapacity},
		{"/upgradeStrategy/maximumOverCapacity", app.UpgradeStrategy.MaximumOverCapacity},
	} {
		switch {
		case c.capacity > 1:
			v.add(p(c.path), "is greater than 1")
		case c.capacity < 0:
			v.add(p(c.path), "is less than 0")
		}
	}
	oneOf(v, p("/killSelection"), app.KillSelection, KillYoungestFirst, KillOldestFirst)
	if u := app.UnreachableStrategy; !u.Disabled {
		atLeast(v, p("/unreachableStrategy/inactiveAfterSeconds"), u.InactiveAfterSeconds, 0)
		atLeast(v, p("/unreachableStrategy/expungeAfterSeconds"), u.ExpungeAfterSeconds, 0)
		if u.InactiveAfterSeconds > u.ExpungeAfterSeconds {
			v.add(p("/unreachableStrategy/inactiveAfterSeconds"), msgInactiveExpunge)
		}
	}
	for i, c := range app.Constraints {
		validateConstraint(v, p("/constraints/"+strconv.Itoa(i)), c)
	}
	validateSecrets(v, app, p)
	validateLabels(v, app, p)
	for i, dep := range app.Dependencies {
		validPathID(v, p("/dependencies/"+strconv.Itoa(i)), dep, false)
	}
	for i, f := range app.Fetch {
		if f.URI == "" {
			v.add(p("/fetch/"+strconv.Itoa(i)+"/uri"), msgNotEmpty)
		}
	}
	for i, role := range app.AcceptedResourceRoles {
		if role == "" {
			v.add(p("/acceptedResourceRoles/"+strconv.Itoa(i)), msgNotEmpty)
		}
	}
	validateResidency(v, app, p)
	validateNetworks(v, app.Networks, p)
	validatePortDefinitions(v, app.PortDefinitions, p)
	if app.Container != nil {
		validateContainer(v, app.Container, app.Networks, app.Secrets, p)
	}
	validateHealthChecks(v, app, p)
	validateCheck(v, app, p)
	validateReadinessChecks(v, app, p)
	if l := app.ResourceLimits; l != nil {
		if l.Cpus != nil && !l.Cpus.Unlimited {
			atLeast(v, p("/resourceLimits/cpus"), l.Cpus.Value, app.Cpus)
		}
		if l.Mem != nil && !l.Mem.Unlimited {
			atLeast(v, p("/resourceLimits/mem"), l.Mem.Value, app.Mem)
		}
	}
}

func validateConstraint(v *details, path string, c Constraint) {
	if len(c) == 0 {
		v.add(path, "Missing field and operator")
		return
	}
	if len(c) == 1 || len(c) > 3 {
		v.add(path, "illegal constraint specification "+strings.Join(c, ","))
		return
	}
	value, hasValue := c.Value()
	isInt := func() bool { _, err := strconv.Atoi(value); return err == nil }
	switch c.Operator() {
	case OpUnique:
		if hasValue {
			v.add(path, "Value specified but not used")
		}
	case OpCluster, OpIs:
		if !hasValue {
			v.add(path, "Missing value")
		}
	case OpGroupBy:
		if hasValue && !isInt() {
			v.add(path, "Value was specified but is not a number")
		}
	case OpMaxPer:
		switch {
		case !hasValue:
			v.add(path, "Missing value")
		case !isInt():
			v.add(path, "Value was specified but is not a number")
		}
	case OpLike, OpUnlike:
		if !hasValue {
			v.add(path, "A regular expression value must be provided")
		} else if _, err := regexp.Compile(value); err != nil {
			v.add(path, "'"+value+"' is not a valid regular expression")
		}
	default:
		v.add(path, "illegal constraint operator "+c.Operator())
	}
}

func validateLabels(v *details, app *App, p func(string) string) {
	if app.Labels[labelSingleInstance] == "true" {
		if app.Instances > 1 {
			v.add(p("/instances"), msgSingleInstance)
		}
		if c := app.UpgradeStrategy.MinimumHealthCapacity; c != 0 {
			v.add(p("/upgradeStrategy/minimumHealthCapacity"), got(c, "0.0"))
		}
		if c := app.UpgradeStrategy.MaximumOverCapacity; c != 0 {
			v.add(p("/upgradeStrategy/maximumOverCapacity"), got(c, "0.0"))
		}
	}
	if version, ok := app.Labels[labelMigrationVersion]; ok && version != "" {
		if version != "v1" || app.Labels[labelFrameworkName] == "" || app.Labels[labelMigrationPath] == "" {
			v.add(p("/labels"), msgMigrationAPI)
		}
	}
}

func validateNetworks(v *details, networks []Network, p func(string) string) {
	counts := map[string]int{}
	names := map[string]bool{}
	unnamedContainers := 0
	for i, n := range networks {
		path := p("/networks/" + strconv.Itoa(i))
		oneOf(v, path+"/mode", n.Mode, NetworkHost, NetworkBridge, NetworkContainer)
		counts[n.Mode]++
		switch n.Mode {
		case NetworkHost:
			if n.Name != "" || len(n.Labels) > 0 {
				v.add(p("/networks"), msgHostNetworks)
			}
		case NetworkBridge:
			if n.Name != "" {
				v.add(p("/networks"), msgBridgeNetworks)
			}
		case NetworkContainer:
			if n.Name == "" {
				v.add(path+"/name", msgNetworkName)
				unnamedContainers++
			}
		}
		if n.Name != "" {
			if names[n.Name] {
				v.add(p("/networks"), msgDuplicateNets)
			}
			names[n.Name] = true
		}
	}
	if unnamedContainers > 1 {
		v.add(p("/networks"), msgDuplicateNets)
	}
	host, bridge, container := counts[NetworkHost], counts[NetworkBridge], counts[NetworkContainer]
	if len(networks) > 0 && !(host == 1 && bridge == 0 && container == 0 ||
		host == 0 && bridge == 1 && container == 0 ||
		host == 0 && bridge == 0 && container > 0) {
		v.add(p("/networks"), msgNetworkMix)
	}
}

func validatePortDefinitions(v *details, defs []PortDefinition, p func(string) string) {
	names := map[string]bool{}
	ports := map[int]bool{}
	for i, d := range defs {
		path := p("/portDefinitions/" + strconv.Itoa(i))
		validPort(v, path+"/port", d.Port)
		validPortName(v, path+"/name", d.Name)
		oneOf(v, path+"/protocol", d.Protocol, ProtocolTCP, ProtocolUDP, ProtocolUDPTCP)
		if d.Name != "" {
			if names[d.Name] {
				v.add(p("/portDefinitions"), msgPortNamesUnique)
			}
			names[d.Name] = true
		}
		if d.Port != 0 {
			if ports[d.Port] {
				v.add(p("/portDefinitions"), msgPortsUnique)
			}
			ports[d.Port] = true
		}
	}
}

func validPortName(v *details, path, name string) {
	if name != "" && !portNameRE.MatchString(name) {
		v.add(path, "must fully match regular expression '"+portNamePattern+"'")
	}
}

func validateContainer(v *details, c *Container, networks []Network, secrets map[string]SecretDef, p func(string) string) {
	oneOf(v, p("/container/type"), c.Type, ContainerDocker, ContainerMesos)
	if d := c.Docker; d != nil {
		if d.Image == "" {
			v.add(p("/container/docker/image"), msgNotEmpty)
		}
		if c.Type != ContainerDocker {
			if d.Privileged {
				v.add(p("/container/docker/privileged"), msgDockerOnly)
			}
			if len(d.Parameters) > 0 {
				v.add(p("/container/docker/parameters"), msgDockerOnly)
			}
		}
		validateDockerParameters(v, d.Parameters, networks, p)
		if d.PullConfig != nil {
			v.add(p("/container/docker/pullConfig"), msgPullConfig)
		}
	} else if c.Type == ContainerDocker {
		v.add(p("/container/docker"), msgNotDefined)
	}
	for i, vol := range c.Volumes {
		validateVolume(v, vol, p("/container/volumes/"+strconv.Itoa(i)), secrets)
	}
	names := map[string]bool{}
	for i, m := range c.PortMappings {
		path := p("/container/portMappings/" + strconv.Itoa(i))
		validPort(v, path+"/containerPort", m.ContainerPort)
		if m.HostPort != nil {
			validPort(v, path+"/hostPort", *m.HostPort)
		}
		validPort(v, path+"/servicePort", m.ServicePort)
		validPortName(v, path+"/name", m.Name)
		oneOf(v, path+"/protocol", m.Protocol, ProtocolTCP, ProtocolUDP, ProtocolUDPTCP)
		if m.Name != "" {
			if names[m.Name] {
				v.add(p("/container/portMappings"), msgPortNamesUnique)
			}
			names[m.Name] = true
		}
	}
}

// validateVolume checks a volume of one kind: a host path, a secret, a local persistent
// volume or an external one.
func validateVolume(v *details, vol Volume, path string, secrets map[string]SecretDef) {
	if vol.ContainerPath == "" {
		v.add(path+"/containerPath", msgNotEmpty)
	}
	kinds := 0
	for _, set := range []bool{vol.HostPath != "", vol.Secret != "", vol.Persistent != nil, vol.External != nil} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		v.add(path, msgVolumeKinds)
		return
	}
	switch {
	case vol.Secret != "":
		// A secret volume has no mode to check.
		if _, ok := secrets[vol.Secret]; !ok {
			v.add(path+"/secret", fmt.Sprintf(msgUndeclaredSecret, vol.Secret))
		}
		return
	case vol.Persistent != nil:
		validatePersistentVolume(v, vol, path)
	case vol.External != nil:
		validateExternalVolume(v, vol.External, path+"/external")
	case vol.HostPath == "":
		v.add(path+"/hostPath", msgNotEmpty)
	}
	oneOf(v, path+"/mode", vol.Mode, "RO", "RW")
}

// validatePersistentVolume checks a local persistent volume: a root disk of some size, at
// a path of the sandbox one level down, read-write.
func validatePersistentVolume(v *details, vol Volume, path string) {
	pv := vol.Persistent
	if strings.Contains(vol.ContainerPath, "/") {
		v.add(path+"/containerPath", msgPersistentPath)
	}
	if vol.Mode != "RW" {
		v.add(path+"/mode", msgPersistentRW)
	}
	atLeast(v, path+"/persistent/size", pv.Size, 1)
	if pv.Type != PersistentRoot {
		oneOf(v, path+"/persistent/type", pv.Type, PersistentRoot, PersistentPath, PersistentMount)
		if pv.Type == PersistentPath || pv.Type == PersistentMount {
			v.add(path+"/persistent/type", msgPersistentType)
		}
	}
	if pv.MaxSize != nil {
		v.add(path+"/persistent/maxSize", msgPersistentType)
	}
	if len(pv.Constraints) > 0 {
		v.add(path+"/persistent/constraints", msgPersistentType)
	}
}

// validateExternalVolume checks an external volume: a name and a driver.
func validateExternalVolume(v *details, ev *ExternalVolume, path string) {
	if ev.Name == "" {
		v.add(path+"/name", msgNotEmpty)
	}
	oneOf(v, path+"/provider", ev.Provider, ProviderDVDI)
	if ev.Options[OptionDVDIDriver] == "" {
		v.add(path+"/options", msgDVDIDriver)
	}
	if ev.Size != nil {
		atLeast(v, path+"/size", *ev.Size, 1)
	}
}

// validateSecrets checks the app's secrets, each naming a secret of the store, and that
// every env value {"secret": name} names one of them. Whether the store has them is for
// deployment to say.
func validateSecrets(v *details, app *App, p func(string) string) {
	for _, name := range sortedKeys(app.Secrets) {
		if app.Secrets[name].Source == "" {
			v.add(p("/secrets/"+name+"/source"), msgNotEmpty)
		}
	}
	for _, name := range sortedKeys(app.Env) {
		if ref := app.Env[name].Secret; ref != "" {
			if _, ok := app.Secrets[ref]; !ok {
				v.add(p("/env/"+name), fmt.Sprintf(msgUndeclaredSecret, ref))
			}
		}
	}
}

// validateResidency checks a resident app: its residency, and an upgrade strategy that
// never starts a task beside the one holding the volumes.
func validateResidency(v *details, app *App, p func(string) string) {
	r := app.Residency
	if r == nil {
		return
	}
	if !app.Resident() {
		v.add(p("/residency"), msgResidencyVolumes)
	}
	atLeast(v, p("/residency/relaunchEscalationTimeoutSeconds"), r.RelaunchEscalationTimeoutSeconds, 0)
	if r.TaskLostBehavior == TaskLostRelaunchAfterTimeout {
		v.add(p("/residency/taskLostBehavior"), msgRelaunchAfterTimeout)
	} else {
		oneOf(v, p("/residency/taskLostBehavior"), r.TaskLostBehavior, TaskLostWaitForever, TaskLostRelaunchAfterTimeout)
	}
	if app.Resident() && app.UpgradeStrategy.MaximumOverCapacity != 0 {
		v.add(p("/upgradeStrategy/maximumOverCapacity"), msgResidentUpgrade)
	}
}

// validateDockerParameters checks each parameter with DockerOptions.Set, and that
// net=host goes with host networking.
func validateDockerParameters(v *details, params []DockerParameter, networks []Network, p func(string) string) {
	var opts DockerOptions
	for i, param := range params {
		path := p("/container/docker/parameters/" + strconv.Itoa(i))
		err := opts.Set(param.Key, param.Value)
		switch {
		case errors.Is(err, errUnsupportedParameter):
			v.add(path+"/key", fmt.Sprintf("docker parameter %q %v", param.Key, err))
		case err != nil:
			v.add(path+"/value", fmt.Sprintf("docker parameter %s: %v", param.Key, err))
		case opts.NetHost && slices.ContainsFunc(networks, func(n Network) bool { return n.Mode != NetworkHost }):
			v.add(path+"/value", msgNetHost)
			opts.NetHost = false
		}
	}
}

// portCount is how many ports a normalised app's tasks have (the indices health checks
// address).
func portCount(app *App) int {
	if app.Container != nil && len(app.Container.PortMappings) > 0 {
		return len(app.Container.PortMappings)
	}
	return len(app.PortDefinitions)
}

func validateHealthChecks(v *details, app *App, p func(string) string) {
	ports := portCount(app)
	mesosChecks := 0
	for i, hc := range app.HealthChecks {
		path := p("/healthChecks/" + strconv.Itoa(i))
		oneOf(v, path+"/protocol", hc.Protocol,
			HealthHTTP, HealthHTTPS, HealthTCP, HealthCommand, HealthMesosHTTP, HealthMesosHTTPS, HealthMesosTCP)
		switch hc.Protocol {
		case HealthCommand:
			if hc.Command == nil || hc.Command.Value == "" {
				v.add(path+"/command", msgNotDefined)
			}
		case HealthMesosHTTP, HealthMesosHTTPS, HealthMesosTCP:
			mesosChecks++
		}
		if hc.Protocol != HealthCommand {
			switch {
			case hc.PortIndex != nil:
				if *hc.PortIndex < 0 || *hc.PortIndex >= ports {
					v.add(path, msgHealthPortIndex)
				}
			case hc.Port != nil:
				validPort(v, path+"/port", *hc.Port)
			default:
				v.add(path, msgHealthPortIndex)
			}
		}
		atLeast(v, path+"/gracePeriodSeconds", hc.GracePeriodSeconds, 0)
		atLeast(v, path+"/intervalSeconds", hc.IntervalSeconds, 0)
		atLeast(v, path+"/timeoutSeconds", hc.TimeoutSeconds, 0)
		atLeast(v, path+"/maxConsecutiveFailures", hc.MaxConsecutiveFailures, 0)
		atLeast(v, path+"/delaySeconds", hc.DelaySeconds, 0)
		if hc.IPProtocol != "" {
			oneOf(v, path+"/ipProtocol", hc.IPProtocol, "IPv4", "IPv6")
		}
	}
	if mesosChecks > 1 {
		v.add(p("/healthChecks"), msgOneMesosCheck)
	}
}

// validateCheck checks the app's Mesos check: one kind, a port of the app (or a port) for
// http and tcp, a command for exec, and timings the agents can run.
func validateCheck(v *details, app *App, p func(string) string) {
	c := app.Check
	if c == nil {
		return
	}
	path := p("/check")
	var kinds []string
	if c.HTTP != nil {
		kinds = append(kinds, "http")
	}
	if c.TCP != nil {
		kinds = append(kinds, "tcp")
	}
	if c.Exec != nil {
		kinds = append(kinds, "exec")
	}
	switch len(kinds) {
	case 0:
		v.add(path, msgCheckOneKind+": got none")
	case 1:
	default:
		v.add(path, msgCheckOneKind+": got "+strings.Join(kinds, " and "))
	}
	ports := portCount(app)
	if h := c.HTTP; h != nil {
		validCheckPort(v, path+"/http", h.PortIndex, h.Port, ports)
		if h.Path != "" {
			if _, err := url.ParseRequestURI(h.Path); err != nil || !strings.HasPrefix(h.Path, "/") {
				v.add(path+"/http/path", msgCheckPath)
			}
		}
		if h.Scheme == CheckSchemeHTTPS {
			v.add(path+"/http/scheme", msgCheckHTTPS)
		} else {
			oneOf(v, path+"/http/scheme", h.Scheme, CheckSchemeHTTP, CheckSchemeHTTPS)
		}
	}
	if t := c.TCP; t != nil {
		validCheckPort(v, path+"/tcp", t.PortIndex, t.Port, ports)
	}
	if e := c.Exec; e != nil {
		switch argv := e.Command.Argv; {
		case (e.Command.Shell == "") == (len(argv) == 0):
			v.add(path+"/exec/command", msgCheckCommand)
		case len(argv) > 0 && argv[0] == "":
			v.add(path+"/exec/command/argv/0", msgNotEmpty)
		}
	}
	// An interval of 0 would have the agents check without pause.
	atLeast(v, path+"/intervalSeconds", c.IntervalSeconds, 1)
	atLeast(v, path+"/timeoutSeconds", c.TimeoutSeconds, 0)
	atLeast(v, path+"/delaySeconds", c.DelaySeconds, 0)
}

// validCheckPort checks the port of an http or tcp check at path: an index of one of the
// app's ports, or a port number.
func validCheckPort(v *details, path string, portIndex, port *int, ports int) {
	switch {
	case portIndex != nil && port != nil, portIndex == nil && port == nil:
		v.add(path, msgCheckPort)
	case portIndex != nil && ports == 0:
		v.add(path+"/portIndex", fmt.Sprintf("got %d, but the app has no ports", *portIndex))
	case portIndex != nil:
		if *portIndex < 0 || *portIndex >= ports {
			v.add(path+"/portIndex", fmt.Sprintf("got %d, expected the index of one of the app's ports (0 to %d)", *portIndex, ports-1))
		}
	default:
		atLeast(v, path+"/port", *port, 1)
		atMost(v, path+"/port", *port, 65535)
	}
}

func validateReadinessChecks(v *details, app *App, p func(string) string) {
	atMost(v, p("/readinessChecks"), len(app.ReadinessChecks), 1)
	portNames := map[string]bool{}
	for _, d := range app.PortDefinitions {
		portNames[d.Name] = d.Name != ""
	}
	if app.Container != nil {
		for _, m := range app.Container.PortMappings {
			portNames[m.Name] = m.Name != ""
		}
	}
	for i, rc := range app.ReadinessChecks {
		path := p("/readinessChecks/" + strconv.Itoa(i))
		if rc.Name == "" {
			v.add(path+"/name", msgNotEmpty)
		}
		oneOf(v, path+"/protocol", rc.Protocol, HealthHTTP, HealthHTTPS)
		if rc.Path == "" {
			v.add(path+"/path", msgNotEmpty)
		}
		if !portNames[rc.PortName] {
			v.add(path+"/portName", "No port definition reference for portName "+rc.PortName)
		}
		atLeast(v, path+"/intervalSeconds", rc.IntervalSeconds, 0)
		if rc.TimeoutSeconds <= 0 {
			v.add(path+"/timeoutSeconds", got(rc.TimeoutSeconds, "more than 0"))
		} else if rc.TimeoutSeconds >= rc.IntervalSeconds {
			v.add(path+"/timeoutSeconds", got(rc.TimeoutSeconds, "less than "+formatNumber(rc.IntervalSeconds)))
		}
		for j, code := range rc.HTTPStatusCodesForReady {
			cpath := path + "/httpStatusCodesForReady/" + strconv.Itoa(j)
			atLeast(v, cpath, code, 100)
			atMost(v, cpath, code, 999)
		}
	}
}

// validateGroup checks g and what is in it, recording every id in ids.
func validateGroup(v *details, g *Group, path string, ids map[string]bool) {
	validPathID(v, path+"/id", g.ID, false)
	claim := func(idPath, id string) {
		if ids[id] {
			v.add(idPath, id+" is used by more than one app or group")
		}
		ids[id] = true
	}
	claim(path+"/id", g.ID)
	for i, dep := range g.Dependencies {
		validPathID(v, path+"/dependencies/"+strconv.Itoa(i), dep, false)
	}
	childOf := func(idPath, id string) {
		if id != "" && parentPath(id) != g.ID {
			v.add(idPath, "Identifier is not child of '"+g.ID+"'")
		}
	}
	for i, app := range g.Apps {
		appPath := path + "/apps/" + strconv.Itoa(i)
		if app == nil {
			v.add(appPath, codeObject)
			continue
		}
		validateApp(v, app, appPath)
		childOf(appPath+"/id", app.ID)
		claim(appPath+"/id", app.ID)
	}
	for i, sub := range g.Groups {
		subPath := path + "/groups/" + strconv.Itoa(i)
		if sub == nil {
			v.add(subPath, codeObject)
			continue
		}
		childOf(subPath+"/id", sub.ID)
		validateGroup(v, sub, subPath, ids)
	}
}

// validateDependencies checks that dependencies inside root's tree exist and that
// dependencies between root's apps (an app's own and its groups') have no cycle.
func validateDependencies(v *details, root *Group, ids map[string]bool) {
	inTree := func(id string) bool {
		return root.ID == "/" || id == root.ID || strings.HasPrefix(id, root.ID+"/")
	}
	apps := map[string]*App{}          // app id → app
	members := map[string][]string{}   // group id → ids of every app in it
	var order []string                 // app ids, depth first
	inherited := map[string][]string{} // app id → dependencies of its enclosing groups
	var walk func(g *Group, path string, groupDeps []string) []string
	walk = func(g *Group, path string, groupDeps []string) []string {
		groupDeps = append(slices.Clone(groupDeps), g.Dependencies...)
		checkExist := func(depPath string, deps []string) {
			for i, dep := range deps {
				if inTree(dep) && !ids[dep] {
					v.add(depPath+"/"+strconv.Itoa(i), "unknown app or group "+dep)
				}
			}
		}
		checkExist(path+"/dependencies", g.Dependencies)
		var all []string
		for i, app := range g.Apps {
			if app == nil {
				continue
			}
			checkExist(path+"/apps/"+strconv.Itoa(i)+"/dependencies", app.Dependencies)
			if _, dup := apps[app.ID]; !dup {
				order = append(order, app.ID)
			}
			apps[app.ID] = app
			inherited[app.ID] = groupDeps
			all = append(all, app.ID)
		}
		for i, sub := range g.Groups {
			if sub != nil {
				all = append(all, walk(sub, path+"/groups/"+strconv.Itoa(i), groupDeps)...)
			}
		}
		members[g.ID] = append(members[g.ID], all...)
		return all
	}
	walk(root, "", nil)

	edges := func(id string) []string {
		var out []string
		for _, dep := range append(slices.Clone(inherited[id]), apps[id].Dependencies...) {
			if _, ok := apps[dep]; ok {
				out = append(out, dep)
			}
			out = append(out, members[dep]...)
		}
		return out
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var stack []string
	var cycle []string
	var visit func(id string) bool
	visit = func(id string) bool {
		state[id] = visiting
		stack = append(stack, id)
		for _, next := range edges(id) {
			switch state[next] {
			case visiting:
				start := slices.Index(stack, next)
				cycle = append(slices.Clone(stack[start:]), next)
				return true
			case unvisited:
				if visit(next) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[id] = done
		return false
	}
	for _, id := range order {
		if state[id] == unvisited && visit(id) {
			v.add("/", msgCyclicDependency+": "+strings.Join(cycle, " -> "))
			return
		}
	}
}

// formatNumber writes a number the way Marathon's messages do (Scala's toString: a double
// always has a decimal point).
func formatNumber(v any) string {
	switch n := v.(type) {
	case float64:
		s := strconv.FormatFloat(n, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	default:
		return fmt.Sprint(n)
	}
}
