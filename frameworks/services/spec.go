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

// appSpec is an app definition compiled for the scheduler: what one instance needs from
// an offer, the TaskInfo every instance starts from, and the deployment settings. It is
// made once per app version and read-only after.
type appSpec struct {
	id string
	// version is the app's version; configVersion the version of its last change other
	// than scaling, which instances are compared against (a scale does not restart them).
	version       string
	configVersion string
	instances     int
	req           placement.Requirements
	// template is the TaskInfo of every instance, without its id, agent and resources.
	template api.TaskInfo
	// portNames name the app's ports, in order ("" for unnamed ones); servicePorts are
	// their service ports.
	portNames    []string
	servicePorts []uint32
	// discovery are the ports every instance publishes in its DiscoveryInfo.
	discovery []discoveryPort
	// checked says the app has health checks: instances count once healthy.
	checked bool
	// health is the check the agents run, nil for none.
	health *healthSpec
	// check is the app's Mesos check, nil for none.
	check *checkSpec
	// readiness is the framework's readiness check, nil for none.
	readiness *readinessSpec
	// unreachable is the unreachableStrategy: with replaceUnreachable, an instance
	// unreachable for inactiveAfter no longer counts (a replacement launches), and one
	// unreachable for expungeAfter is killed should it come back.
	replaceUnreachable          bool
	inactiveAfter, expungeAfter time.Duration
	// minHealthy and maxOver are the upgrade strategy's capacities.
	minHealthy, maxOver float64
	oldestFirst         bool
	// persistent are the app's local persistent volumes: with them the app is resident,
	// each instance keeping to the agent of its reservation.
	persistent []persistentVolume
	// secrets are the app's, which its tasks get the values of.
	secrets        map[string]marathon.SecretDef
	backoff        time.Duration
	backoffFactor  float64
	maxLaunchDelay time.Duration
}

// capacities returns how many instances must stay healthy during a rolling replacement
// and how many may run at most, for a target of n (Marathon's rounding: the least
// healthy count up, the most capacity down).
func (s *appSpec) capacities(n int) (minHealthy, maxCapacity int) {
	minHealthy = int(math.Ceil(float64(n) * s.minHealthy))
	maxCapacity = n + int(math.Floor(float64(n)*s.maxOver))
	return minHealthy, maxCapacity
}

// taskInfo returns the TaskInfo that launches an instance with the claimed resources.
func (s *appSpec) taskInfo(taskID, agentID string, claim *placement.Claim) api.TaskInfo {
	t := s.template
	t.TaskID = api.TaskID{Value: taskID}
	t.AgentID = api.AgentID{Value: agentID}
	t.Resources = claim.Resources
	labels := []api.Label{{Key: api.LabelAppID, Value: s.id}, {Key: api.LabelAppVersion, Value: s.configVersion}}
	if t.Labels != nil {
		labels = append(labels, t.Labels.Labels...)
	}
	t.Labels = &api.Labels{Labels: labels}
	if t.Command != nil {
		cmd := *t.Command
		cmd.Environment = s.environment(cmd.Environment, taskID, claim.HostPorts)
		t.Command = &cmd
	}
	if t.Container != nil {
		t.Container = withHostPorts(t.Container, claim.HostPorts)
	}
	if s.health != nil {
		t.HealthCheck = s.health.mesosCheck(claim.HostPorts, s.containerPorts())
	}
	t.Check = s.check.mesosCheck(claim.HostPorts, s.containerPorts())
	t.Discovery = s.discoveryInfo(claim.HostPorts)
	return t
}

// discoveryPort is one port of the DiscoveryInfo of every instance: its number is the
// instance's host port at hostIndex.
type discoveryPort struct {
	name      string
	protocol  string
	labels    []api.Label
	hostIndex int
}

// networkScopeLabel is the port label Marathon gave the ports of port mappings, saying
// which address the number is a port of: the agent's ("host") or the container's.
const networkScopeLabel = "network-scope"

// discoveryPorts lists an app's ports as Marathon published them in its tasks'
// DiscoveryInfo, for Mesos-DNS's SRV records and DC/OS's named VIPs (the VIP_n labels):
// the port definitions, or with bridge networking the port mappings (labelled
// network-scope host, their numbers being host ports), one port per protocol of each
// ("udp,tcp" gives two), with the port's name and labels, sorted by key.
func discoveryPorts(app *marathon.App, bridge bool) []discoveryPort {
	var out []discoveryPort
	add := func(name, protocols string, labels map[string]string, hostIndex int, scope string) {
		if scope != "" {
			labels = maps.Clone(labels)
			if labels == nil {
				labels = map[string]string{}
			}
			labels[networkScopeLabel] = scope
		}
		var ls []api.Label
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			ls = append(ls, api.Label{Key: k, Value: labels[k]})
		}
		var seen []string
		for p := range strings.SplitSeq(protocols, ",") {
			if p = strings.TrimSpace(p); p == "" || slices.Contains(seen, p) {
				continue
			}
			seen = append(seen, p)
			out = append(out, discoveryPort{name: name, protocol: p, labels: ls, hostIndex: hostIndex})
		}
	}
	if bridge {
		hostIndex := 0
		for _, pm := range app.Container.PortMappings {
			if pm.HostPort == nil {
				continue
			}
			add(pm.Name, pm.Protocol, pm.Labels, hostIndex, "host")
			hostIndex++
		}
		return out
	}
	for i, pd := range app.PortDefinitions {
		add(pd.Name, pd.Protocol, pd.Labels, i, "")
	}
	return out
}

// discoveryInfo is an instance's DiscoveryInfo with these host ports, as Marathon made
// it: visible to the framework, named like the task (the app id's segments, last first).
func (s *appSpec) discoveryInfo(hostPorts []uint32) *api.DiscoveryInfo {
	d := &api.DiscoveryInfo{Visibility: "FRAMEWORK", Name: s.template.Name}
	var ports []api.Port
	for _, p := range s.discovery {
		if p.hostIndex >= len(hostPorts) {
			continue
		}
		port := api.Port{Number: hostPorts[p.hostIndex], Name: p.name, Protocol: p.protocol}
		if len(p.labels) > 0 {
			port.Labels = &api.Labels{Labels: p.labels}
		}
		ports = append(ports, port)
	}
	if len(ports) > 0 {
		d.Ports = &api.Ports{Ports: ports}
	}
	return d
}

// containerPorts are the container ports of the app's mappings that take host ports.
func (s *appSpec) containerPorts() []uint32 {
	var ports []uint32
	if c := s.template.Container; c != nil {
		for _, n := range c.NetworkInfos {
			for _, m := range n.PortMappings {
				ports = append(ports, m.ContainerPort)
			}
		}
	}
	return ports
}

// withHostPorts returns a copy of c whose port mappings, in order, map the claimed host
// ports: the app's port mappings each take one, in order.
func withHostPorts(c *api.ContainerInfo, hostPorts []uint32) *api.ContainerInfo {
	out := *c
	n := 0
	if c.Docker != nil && len(c.Docker.PortMappings) > 0 {
		d := *c.Docker
		d.PortMappings = slices.Clone(d.PortMappings)
		for i := range d.PortMappings {
			if n < len(hostPorts) {
				d.PortMappings[i].HostPort = hostPorts[n]
				n++
			}
		}
		out.Docker = &d
	}
	if len(c.NetworkInfos) > 0 {
		out.NetworkInfos = slices.Clone(c.NetworkInfos)
		for i := range out.NetworkInfos {
			mappings := slices.Clone(out.NetworkInfos[i].PortMappings)
			for j := range mappings {
				if n < len(hostPorts) {
					mappings[j].HostPort = hostPorts[n]
					if mappings[j].ContainerPort == 0 {
						// Marathon's containerPort 0: the same number as the host port.
						mappings[j].ContainerPort = hostPorts[n]
					}
					n++
				}
			}
			out.NetworkInfos[i].PortMappings = mappings
		}
	}
	return &out
}

// environment adds Marathon's task variables to env: $PORT0…, $PORT, $PORT_<NAME>,
// $PORTS, $HOST is the agent's business, $MARATHON_APP_ID and friends.
func (s *appSpec) environment(env *api.Environment, taskID string, hostPorts []uint32) *api.Environment {
	var vars []api.EnvironmentVariable
	if env != nil {
		vars = append(vars, env.Variables...)
	}
	set := func(name, value string) {
		vars = append(vars, api.EnvironmentVariable{Name: name, Value: value})
	}
	ports := make([]string, len(hostPorts))
	for i, p := range hostPorts {
		ports[i] = strconv.FormatUint(uint64(p), 10)
		set("PORT"+strconv.Itoa(i), ports[i])
		if i < len(s.portNames) && s.portNames[i] != "" {
			set("PORT_"+envName(s.portNames[i]), ports[i])
		}
	}
	if len(ports) > 0 {
		set("PORT", ports[0])
		set("PORTS", strings.Join(ports, ","))
	}
	set("MARATHON_APP_ID", s.id)
	set("MARATHON_APP_VERSION", s.version)
	set("MESOS_TASK_ID", taskID)
	return &api.Environment{Variables: vars}
}

// envName makes a port name an environment variable's suffix: upper case, with anything
// but letters and digits as underscores.
func envName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, name)
}

// launchDelay is how long to wait before launching a replacement after failures in a
// row: backoff × factor^(failures-1), at most maxLaunchDelay.
func (s *appSpec) launchDelay(failures int) time.Duration {
	if failures <= 0 || s.backoff <= 0 {
		return 0
	}
	d := float64(s.backoff) * math.Pow(s.backoffFactor, float64(failures-1))
	if max := float64(s.maxLaunchDelay); d > max {
		d = max
	}
	return time.Duration(d)
}

// String names the spec in logs.
func (s *appSpec) String() string { return fmt.Sprintf("%s@%s", s.id, s.version) }
