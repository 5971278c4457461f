package services

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/frameworks/services/placement"
)

// bridgeNetwork is the network name the agents' containerizer gives its bridge.
const bridgeNetwork = "mesos-bridge"

// compile makes an app's scheduling spec. The app is normalised and valid; what is left
// to refuse is what the scheduler cannot express (a constraint placement rejects).
func compile(app *marathon.App) (*appSpec, error) {
	s := &appSpec{
		id:             app.ID,
		version:        app.Version,
		configVersion:  app.Version,
		instances:      app.Instances,
		checked:        len(app.HealthChecks) > 0,
		minHealthy:     app.UpgradeStrategy.MinimumHealthCapacity,
		maxOver:        app.UpgradeStrategy.MaximumOverCapacity,
		oldestFirst:    app.KillSelection == "OLDEST_FIRST",
		backoff:        time.Duration(app.BackoffSeconds) * time.Second,
		backoffFactor:  app.BackoffFactor,
		maxLaunchDelay: time.Duration(app.MaxLaunchDelaySeconds) * time.Second,
	}
	if app.VersionInfo != nil && app.VersionInfo.LastConfigChangeAt != "" {
		s.configVersion = app.VersionInfo.LastConfigChangeAt
	}
	role := app.Role
	if role == "" {
		role = "*"
	}
	s.req = placement.Requirements{
		CPUs:          app.Cpus,
		MemMB:         app.Mem,
		DiskMB:        app.Disk,
		GPUs:          float64(app.Gpus),
		Role:          role,
		AcceptedRoles: app.AcceptedResourceRoles,
	}
	for i, c := range app.Constraints {
		parsed, err := placement.ParseConstraint([]string(c))
		if err != nil {
			return nil, fmt.Errorf("constraints[%d]: %w", i, err)
		}
		s.req.Constraints = append(s.req.Constraints, parsed)
	}
	network := containerNetwork(app)
	bridge := network != ""
	if network != "" && network != bridgeNetwork {
		s.req.Networks = []string{network}
	}
	if app.Container != nil {
		for _, v := range app.Container.Volumes {
			switch {
			case v.Persistent != nil:
				s.persistent = append(s.persistent, persistentVolume{containerPath: v.ContainerPath, mode: v.Mode, sizeMB: float64(v.Persistent.Size)})
				s.req.DiskMB += float64(v.Persistent.Size)
			case v.External != nil:
				if d := v.External.Options[marathon.OptionDVDIDriver]; !slices.Contains(s.req.VolumeDrivers, d) {
					s.req.VolumeDrivers = append(s.req.VolumeDrivers, d)
				}
			}
		}
	}
	if bridge {
		// A mapping with a host port takes one from the offer: any for 0, else that one.
		s.req.RequirePorts = true
		for _, pm := range app.Container.PortMappings {
			if pm.HostPort == nil {
				continue
			}
			s.req.Ports = append(s.req.Ports, placement.Port{Name: pm.Name, Port: uint32(*pm.HostPort)})
			s.portNames = append(s.portNames, pm.Name)
			s.servicePorts = append(s.servicePorts, uint32(pm.ServicePort))
		}
	} else {
		s.req.RequirePorts = app.RequirePorts
		for _, pd := range app.PortDefinitions {
			port := placement.Port{Name: pd.Name}
			if app.RequirePorts {
				port.Port = uint32(pd.Port)
			}
			s.req.Ports = append(s.req.Ports, port)
			s.portNames = append(s.portNames, pd.Name)
			s.servicePorts = append(s.servicePorts, uint32(pd.Port))
		}
	}
	s.discovery = discoveryPorts(app, bridge)
	s.template = api.TaskInfo{Name: taskName(app.ID)}
	cmd := &api.CommandInfo{}
	switch {
	case app.Cmd != "":
		cmd.Value = &app.Cmd
	case len(app.Args) > 0:
		shell := false
		cmd.Shell = &shell
		if app.Container == nil || app.Container.Docker == nil {
			cmd.Value = &app.Args[0]
			cmd.Arguments = slices.Clone(app.Args)
		} else {
			// With an image, args are the arguments of its entrypoint.
			cmd.Arguments = slices.Clone(app.Args)
		}
	default:
		shell := false
		cmd.Shell = &shell
	}
	if app.User != "" {
		cmd.User = &app.User
	}
	names := make([]string, 0, len(app.Env))
	for name := range app.Env {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) > 0 {
		env := &api.Environment{}
		for _, name := range names {
			v := app.Env[name]
			if v.Secret != "" {
				// Resolved to its value when a task launches (withSecretValues).
				env.Variables = append(env.Variables, api.EnvironmentVariable{Name: name, Type: api.EnvSecret, Secret: secretReference(v.Secret)})
				continue
			}
			env.Variables = append(env.Variables, api.EnvironmentVariable{Name: name, Value: v.Value})
		}
		cmd.Environment = env
	}
	for _, f := range app.Fetch {
		extract := f.Extract
		cmd.URIs = append(cmd.URIs, api.CommandURI{Value: f.URI, Executable: f.Executable, Extract: &extract, Cache: f.Cache, OutputFile: f.DestPath})
	}
	s.template.Command = cmd
	s.secrets = app.Secrets
	if app.Container != nil || bridge {
		s.template.Container = containerInfo(app, network)
	}
	if len(app.Labels) > 0 {
		keys := make([]string, 0, len(app.Labels))
		for k := range app.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		labels := &api.Labels{}
		for _, k := range keys {
			labels.Labels = append(labels.Labels, api.Label{Key: k, Value: app.Labels[k]})
		}
		s.template.Labels = labels
	}
	if app.TaskKillGracePeriodSeconds != nil {
		s.template.KillPolicy = &api.KillPolicy{GracePeriod: &api.DurationInfo{Nanoseconds: int64(*app.TaskKillGracePeriodSeconds) * int64(time.Second)}}
	}
	s.readiness = readinessOf(app, s.portNames)
	if u := app.UnreachableStrategy; !u.Disabled {
		s.replaceUnreachable = true
		s.inactiveAfter = time.Duration(u.InactiveAfterSeconds) * time.Second
		s.expungeAfter = time.Duration(u.ExpungeAfterSeconds) * time.Second
	}
	if len(app.HealthChecks) > 0 {
		// Mesos runs one check per task: the first. Marathon's own checks for the others
		// have no agent-side equivalent, so they are not run (the app is checked by its
		// first).
		hc := app.HealthChecks[0]
		s.health = &healthSpec{check: hc, portIndex: -1, bridge: bridge}
		if hc.PortIndex != nil {
			s.health.portIndex = *hc.PortIndex
		}
	}
	if app.Check != nil {
		s.check = &checkSpec{check: *app.Check, bridge: bridge}
	}
	return s, nil
}

// containerNetwork is the network the app's tasks join: the agents' bridge
// (bridgeNetwork) for container/bridge, the network's name for a named container
// network, which an agent that has it makes its bridge, or "" for the host's network.
func containerNetwork(app *marathon.App) string {
	for _, n := range app.Networks {
		switch n.Mode {
		case marathon.NetworkBridge:
			return bridgeNetwork
		case marathon.NetworkContainer:
			return n.Name
		}
	}
	return ""
}

// usesBridge says the app's tasks join a container network: the agent's bridge, by its
// own name or another, with the app's port mappings.
func usesBridge(app *marathon.App) bool { return containerNetwork(app) != "" }

// taskName is Marathon's task name for an app: its path segments, last first, joined by
// dots (/grp/web → web.grp), which Mesos-DNS turns into names.
func taskName(appID string) string {
	segments := strings.Split(strings.Trim(appID, "/"), "/")
	slices.Reverse(segments)
	return strings.Join(segments, ".")
}

// containerInfo turns an app's container and the network it joins ("" for the host's)
// into the Mesos container. Its local persistent volumes are not there but in each
// task's resources (see withPersistentVolumes); its external volumes are Docker volumes
// of their driver.
func containerInfo(app *marathon.App, network string) *api.ContainerInfo {
	c := &api.ContainerInfo{Type: "MESOS"}
	mc := app.Container
	if mc != nil {
		for _, v := range mc.Volumes {
			switch {
			case v.Persistent != nil:
			case v.External != nil:
				c.Volumes = append(c.Volumes, api.Volume{ContainerPath: v.ContainerPath, Mode: v.Mode, Source: externalSource(v.External)})
			case v.Secret != "":
				c.Volumes = append(c.Volumes, api.Volume{ContainerPath: v.ContainerPath, Mode: api.VolumeRO,
					Source: &api.VolumeSource{Type: api.VolumeSourceSecret, Secret: secretReference(v.Secret)}})
			default:
				c.Volumes = append(c.Volumes, api.Volume{ContainerPath: v.ContainerPath, HostPath: v.HostPath, Mode: v.Mode})
			}
		}
		if mc.Docker != nil && mc.Docker.Image != "" {
			if mc.Type == marathon.ContainerDocker {
				c.Type = "DOCKER"
				c.Docker = &api.DockerInfo{Image: mc.Docker.Image, ForcePullImage: mc.Docker.ForcePullImage, Privileged: mc.Docker.Privileged}
				for _, p := range mc.Docker.Parameters {
					c.Docker.Parameters = append(c.Docker.Parameters, api.Parameter{Key: p.Key, Value: p.Value})
				}
			} else {
				cached := !mc.Docker.ForcePullImage
				c.Mesos = &api.MesosInfo{Image: &api.Image{Type: "DOCKER", Docker: &api.ImageDocker{Name: mc.Docker.Image}, Cached: &cached}}
			}
		}
	}
	if network != "" {
		n := api.NetworkInfo{Name: network}
		for _, pm := range mc.PortMappings {
			if pm.HostPort == nil {
				continue
			}
			n.PortMappings = append(n.PortMappings, api.PortMapping{ContainerPort: uint32(pm.ContainerPort), Protocol: pm.Protocol})
		}
		c.NetworkInfos = []api.NetworkInfo{n}
	}
	return c
}

// secretReference names one of the app's secrets, by its name in the app.
func secretReference(name string) *api.Secret {
	return &api.Secret{Type: api.SecretReferenceType, Reference: &api.SecretReference{Name: name}}
}

// externalSource is the Docker volume of an external volume: its driver is the dvdi/driver
// option, the other options go to the driver.
func externalSource(ev *marathon.ExternalVolume) *api.VolumeSource {
	dv := &api.DockerVolumeSource{Driver: ev.Options[marathon.OptionDVDIDriver], Name: ev.Name}
	for _, k := range slices.Sorted(maps.Keys(ev.Options)) {
		if k != marathon.OptionDVDIDriver {
			if dv.DriverOptions == nil {
				dv.DriverOptions = &api.Parameters{}
			}
			dv.DriverOptions.Parameter = append(dv.DriverOptions.Parameter, api.Parameter{Key: k, Value: ev.Options[k]})
		}
	}
	if ev.Size != nil {
		if dv.DriverOptions == nil {
			dv.DriverOptions = &api.Parameters{}
		}
		dv.DriverOptions.Parameter = append(dv.DriverOptions.Parameter, api.Parameter{Key: "size", Value: strconv.Itoa(*ev.Size)})
	}
	return &api.VolumeSource{Type: api.VolumeSourceDockerVolume, DockerVolume: dv}
}

// persistentVolume is a local persistent volume of an app: each instance has its own,
// at containerPath (in its sandbox), of sizeMB.
type persistentVolume struct {
	containerPath, mode string
	sizeMB              float64
}

// withPersistentVolumes turns sizeMB of the claim's disk into each persistent volume,
// named by its id in ids (in the order of vols): a disk resource with its persistence
// and volume, carved from the claimed disk of the same role, as Mesos's CREATE makes
// them.
func withPersistentVolumes(resources []api.Resource, vols []persistentVolume, ids []string) []api.Resource {
	out := slices.Clone(resources)
	for i, v := range vols {
		need := v.sizeMB
		for j := range out {
			r := &out[j]
			if r.Name != "disk" || r.Disk != nil || r.Scalar == nil || r.Scalar.Value < need {
				continue
			}
			scalar := *r.Scalar
			scalar.Value -= need
			r.Scalar = &scalar
			pv := *r
			pv.Scalar = &api.ValueScalar{Value: need}
			pv.Disk = &api.DiskInfo{
				Persistence: &api.DiskPersistence{ID: ids[i]},
				Volume:      &api.Volume{ContainerPath: v.containerPath, Mode: v.mode},
			}
			out = append(out, pv)
			break
		}
	}
	return slices.DeleteFunc(out, func(r api.Resource) bool {
		return r.Name == "disk" && r.Disk == nil && r.Scalar != nil && r.Scalar.Value == 0
	})
}

// healthSpec is an app's health check, made a Mesos check per task (its port is the
// task's).
type healthSpec struct {
	check marathon.HealthCheck
	// portIndex picks the task's port, -1 when the check names its port.
	portIndex int
	// bridge checks the container's port at the container's address.
	bridge bool
}

// mesosCheck returns the check for a task with these host ports; containerPorts are the
// app's port mappings' container ports, for bridge tasks.
func (h *healthSpec) mesosCheck(hostPorts, containerPorts []uint32) *api.HealthCheck {
	hc := h.check
	seconds := func(n int) *float64 { v := float64(n); return &v }
	failures := uint32(hc.MaxConsecutiveFailures)
	out := &api.HealthCheck{
		DelaySeconds:       seconds(hc.DelaySeconds),
		IntervalSeconds:    seconds(hc.IntervalSeconds),
		TimeoutSeconds:     seconds(hc.TimeoutSeconds),
		GracePeriodSeconds: seconds(hc.GracePeriodSeconds),
	}
	if failures == 0 {
		// Marathon's 0 never kills; Mesos's 0 would kill at the first failure.
		failures = math.MaxUint32
	}
	out.ConsecutiveFailures = &failures
	port := probedPort(hc.Port, h.portIndex, h.bridge, hostPorts, containerPorts)
	switch hc.Protocol {
	case marathon.HealthCommand:
		value := ""
		if hc.Command != nil {
			value = hc.Command.Value
		}
		out.Type = "COMMAND"
		out.Command = &api.CommandInfo{Value: &value}
	case marathon.HealthTCP, marathon.HealthMesosTCP:
		out.Type = "TCP"
		out.TCP = &api.TCPHealthCheck{Port: port}
	default:
		scheme := "http"
		if hc.Protocol == marathon.HealthHTTPS || hc.Protocol == marathon.HealthMesosHTTPS {
			scheme = "https"
		}
		out.Type = "HTTP"
		out.HTTP = &api.HTTPHealthCheck{Scheme: scheme, Port: port, Path: hc.Path}
	}
	return out
}

// probedPort is the port a task's agent probes for a check that names its port (port) or
// the app's port at portIndex (-1 for none): the task's host port there, or on the bridge
// the container port of the mapping, probed at the container's address.
func probedPort(port *int, portIndex int, bridge bool, hostPorts, containerPorts []uint32) uint32 {
	switch {
	case port != nil:
		return uint32(*port)
	case bridge && portIndex >= 0 && portIndex < len(containerPorts) && containerPorts[portIndex] != 0:
		return containerPorts[portIndex]
	case portIndex >= 0 && portIndex < len(hostPorts):
		return hostPorts[portIndex]
	}
	return 0
}

// checkSpec is an app's Mesos check, made a CheckInfo per task (its port is the task's).
type checkSpec struct {
	check marathon.Check
	// bridge checks the container's port at the container's address.
	bridge bool
}

// mesosCheck returns the check for a task with these host ports; containerPorts are the
// app's port mappings' container ports, for bridge tasks. A nil spec is no check.
func (c *checkSpec) mesosCheck(hostPorts, containerPorts []uint32) *api.CheckInfo {
	if c == nil {
		return nil
	}
	mc := c.check
	seconds := func(n int) *float64 { v := float64(n); return &v }
	out := &api.CheckInfo{
		DelaySeconds:    seconds(mc.DelaySeconds),
		IntervalSeconds: seconds(mc.IntervalSeconds),
		TimeoutSeconds:  seconds(mc.TimeoutSeconds),
	}
	portOf := func(port, portIndex *int) uint32 {
		index := -1
		if portIndex != nil {
			index = *portIndex
		}
		return probedPort(port, index, c.bridge, hostPorts, containerPorts)
	}
	switch {
	case mc.HTTP != nil:
		out.Type = api.CheckTypeHTTP
		out.HTTP = &api.CheckInfoHTTP{Port: portOf(mc.HTTP.Port, mc.HTTP.PortIndex), Path: mc.HTTP.Path}
	case mc.TCP != nil:
		out.Type = api.CheckTypeTCP
		out.TCP = &api.CheckInfoTCP{Port: portOf(mc.TCP.Port, mc.TCP.PortIndex)}
	case mc.Exec != nil:
		out.Type = api.CheckTypeCommand
		cmd := api.CommandInfo{}
		switch shell, argv := mc.Exec.Command.Shell, slices.Clone(mc.Exec.Command.Argv); {
		case shell != "":
			cmd.Value = &shell
		case len(argv) > 0:
			// An argument vector: its first element is the executable.
			no := false
			cmd.Shell, cmd.Value, cmd.Arguments = &no, &argv[0], argv
		}
		out.Command = &api.CheckInfoCommand{Command: cmd}
	}
	return out
}
