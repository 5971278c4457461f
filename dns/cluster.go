package dns

import (
	"net"
	"net/netip"
	"strings"

	"github.com/atoll/atoll/api"
)

// Cluster is the part of the cluster state DNS names are made from: the masters, and the
// agents, frameworks and live tasks the leader's operator API reports. NewCluster builds it
// from a GET_STATE (the SUBSCRIBED event), Apply keeps it current with the stream's deltas.
// It remembers what changed since the record index last looked (see takeChanges), so the
// answer table is updated by the difference. It is not safe for concurrent use.
type Cluster struct {
	masters    []Master
	agents     map[string]Agent
	frameworks map[string]Framework
	tasks      map[taskKey]*Task
	changed    changes
}

// changes are the parts of a Cluster changed since the last takeChanges.
type changes struct {
	// all is set when everything may have changed (a new cluster, SUBSCRIBED); the other
	// fields are then not kept.
	all        bool
	masters    bool
	agents     map[string]struct{}
	frameworks map[string]struct{}
	tasks      map[taskKey]struct{}
}

// Master is one master.
type Master struct {
	// ID is the master's server id; masters are numbered (master0, master1, …) in its order.
	ID string `json:"id"`
	// IP is where the master is reached.
	IP netip.Addr `json:"ip"`
	// APIPort is the port of its HTTP API; 0 when unknown.
	APIPort uint16 `json:"api_port,omitempty"`
	// Leader is set on the leading master.
	Leader bool `json:"leader,omitempty"`
}

// Agent is one agent.
type Agent struct {
	ID       string
	Hostname string
	// IP is the agent's address (from its pid, else its hostname when that is an IP);
	// invalid when neither gives one.
	IP netip.Addr
}

// Framework is one framework.
type Framework struct {
	ID       string
	Name     string
	Hostname string
}

// Task is one live task as DNS sees it.
type Task struct {
	ID          string
	Name        string
	FrameworkID string
	AgentID     string
	State       api.TaskState
	// HealthChecked is set when the task has a health check; it is then only published
	// while Healthy.
	HealthChecked bool
	// Healthy is the latest health report.
	Healthy bool
	// IPs are the container's own addresses, from the latest status that reported any.
	IPs []netip.Addr
	// Ports are the host ports of its "ports" resources.
	Ports []api.ValueRange
	// DiscoveryName and DiscoveryPorts come from the task's DiscoveryInfo.
	DiscoveryName  string
	DiscoveryPorts []api.Port
}

type taskKey struct{ frameworkID, taskID string }

// vipID is the task's id in a vip.Set.
func (k taskKey) vipID() string { return k.frameworkID + "\x00" + k.taskID }

// NewCluster builds the cluster from the masters and a GET_STATE; st may be nil (no agents,
// frameworks or tasks known yet). Completed tasks are left out: they never have names.
func NewCluster(masters []Master, st *api.GetState) *Cluster {
	c := &Cluster{masters: masters, agents: map[string]Agent{}, frameworks: map[string]Framework{}, tasks: map[taskKey]*Task{},
		changed: changes{all: true}}
	if st == nil {
		return c
	}
	if st.GetAgents != nil {
		for _, a := range st.GetAgents.Agents {
			c.putAgent(a)
		}
	}
	if st.GetFrameworks != nil {
		for _, f := range st.GetFrameworks.Frameworks {
			c.putFramework(f.FrameworkInfo)
		}
	}
	if st.GetTasks != nil {
		for _, t := range st.GetTasks.Tasks {
			c.putTask(t)
		}
		for _, t := range st.GetTasks.UnreachableTasks {
			c.putTask(t)
		}
	}
	return c
}

// SetMasters replaces the masters.
func (c *Cluster) SetMasters(masters []Master) {
	c.masters = masters
	c.changed.masters = true
}

// Masters returns the masters.
func (c *Cluster) Masters() []Master { return c.masters }

// Apply changes the cluster by one operator event and reports whether any name could have
// changed. SUBSCRIBED replaces everything but the masters; HEARTBEAT and unknown events
// change nothing. Events may repeat (the master may send a change twice around SUBSCRIBED).
func (c *Cluster) Apply(ev *api.OperatorEvent) bool {
	switch ev.Type {
	case api.OpEventSubscribed:
		if ev.Subscribed == nil {
			return false
		}
		*c = *NewCluster(c.masters, ev.Subscribed.GetState)
	case api.OpEventTaskAdded:
		if ev.TaskAdded == nil {
			return false
		}
		c.putTask(ev.TaskAdded.Task)
	case api.OpEventTaskUpdated:
		if ev.TaskUpdated == nil {
			return false
		}
		return c.updateTask(ev.TaskUpdated)
	case api.OpEventAgentAdded:
		if ev.AgentAdded == nil {
			return false
		}
		c.putAgent(ev.AgentAdded.Agent)
	case api.OpEventAgentRemoved:
		if ev.AgentRemoved == nil {
			return false
		}
		delete(c.agents, ev.AgentRemoved.AgentID.Value)
		c.markAgent(ev.AgentRemoved.AgentID.Value)
	case api.OpEventFrameworkAdded, api.OpEventFrameworkUpdated:
		changed := ev.FrameworkAdded
		if ev.Type == api.OpEventFrameworkUpdated {
			changed = ev.FrameworkUpdated
		}
		if changed == nil {
			return false
		}
		c.putFramework(changed.Framework.FrameworkInfo)
	case api.OpEventFrameworkRemoved:
		if ev.FrameworkRemoved == nil || ev.FrameworkRemoved.FrameworkInfo.ID == nil {
			return false
		}
		id := ev.FrameworkRemoved.FrameworkInfo.ID.Value
		delete(c.frameworks, id)
		c.markFramework(id)
		for k := range c.tasks {
			if k.frameworkID == id {
				delete(c.tasks, k)
				c.markTask(k)
			}
		}
	default:
		return false
	}
	return true
}

func (c *Cluster) putAgent(a api.AgentState) {
	if a.AgentInfo.ID == nil || a.AgentInfo.ID.Value == "" {
		return
	}
	c.agents[a.AgentInfo.ID.Value] = Agent{ID: a.AgentInfo.ID.Value, Hostname: a.AgentInfo.Hostname, IP: agentIP(a)}
	c.markAgent(a.AgentInfo.ID.Value)
}

// agentIP is the address in the agent's pid ("slave(1)@10.0.0.5:5051"), else its hostname
// when that is an address.
func agentIP(a api.AgentState) netip.Addr {
	if _, hostport, ok := strings.Cut(a.PID, "@"); ok {
		if host, _, err := net.SplitHostPort(hostport); err == nil {
			if ip, err := netip.ParseAddr(host); err == nil {
				return ip.Unmap()
			}
		}
	}
	if ip, err := netip.ParseAddr(a.AgentInfo.Hostname); err == nil {
		return ip.Unmap()
	}
	return netip.Addr{}
}

func (c *Cluster) putFramework(info api.FrameworkInfo) {
	if info.ID == nil || info.ID.Value == "" {
		return
	}
	c.frameworks[info.ID.Value] = Framework{ID: info.ID.Value, Name: info.Name, Hostname: info.Hostname}
	c.markFramework(info.ID.Value)
}

func (c *Cluster) putTask(t api.Task) {
	key := taskKey{t.FrameworkID.Value, t.TaskID.Value}
	if key.frameworkID == "" || key.taskID == "" {
		return
	}
	c.markTask(key)
	if t.State.Terminal() {
		delete(c.tasks, key)
		return
	}
	task := &Task{
		ID:            t.TaskID.Value,
		Name:          t.Name,
		FrameworkID:   t.FrameworkID.Value,
		AgentID:       t.AgentID.Value,
		State:         t.State,
		HealthChecked: t.HealthCheck != nil,
	}
	for _, r := range t.Resources {
		if r.Name == "ports" && r.Ranges != nil {
			task.Ports = append(task.Ports, r.Ranges.Range...)
		}
	}
	if d := t.Discovery; d != nil {
		task.DiscoveryName = d.Name
		if d.Ports != nil {
			task.DiscoveryPorts = d.Ports.Ports
		}
	}
	for _, st := range t.Statuses {
		task.observe(st)
	}
	c.tasks[key] = task
}

// keepReported carries over from prev, the cluster as last followed, the state of each
// task prev had RUNNING (or further) and c, from a new master's snapshot, has not yet
// started: a master publishes what agents report before Raft commits it, and a new
// leader's state may lack the last of that. A task never goes back to STAGING or
// STARTING, and its agent sends the report again until the new leader commits it.
func (c *Cluster) keepReported(prev *Cluster) {
	if prev == nil {
		return
	}
	for key, t := range c.tasks {
		if t.State != api.TaskStaging && t.State != api.TaskStarting {
			continue
		}
		if p, ok := prev.tasks[key]; ok && p.State != api.TaskStaging && p.State != api.TaskStarting {
			t.State, t.Healthy, t.IPs = p.State, p.Healthy, p.IPs
		}
	}
}

// updateTask applies a TASK_UPDATED; a task that ended is forgotten.
func (c *Cluster) updateTask(u *api.OpTaskUpdated) bool {
	key := taskKey{u.FrameworkID.Value, u.Status.TaskID.Value}
	t, ok := c.tasks[key]
	if !ok {
		return false
	}
	c.markTask(key)
	if u.State.Terminal() {
		delete(c.tasks, key)
		return true
	}
	t.State = u.State
	t.observe(u.Status)
	return true
}

func (c *Cluster) markAgent(id string) {
	if !c.changed.all {
		c.changed.agents = markKey(c.changed.agents, id)
	}
}

func (c *Cluster) markFramework(id string) {
	if !c.changed.all {
		c.changed.frameworks = markKey(c.changed.frameworks, id)
	}
}

func (c *Cluster) markTask(key taskKey) {
	if !c.changed.all {
		c.changed.tasks = markKey(c.changed.tasks, key)
	}
}

// markKey adds key to set, making the set when it is the first.
func markKey[K comparable](set map[K]struct{}, key K) map[K]struct{} {
	if set == nil {
		set = map[K]struct{}{}
	}
	set[key] = struct{}{}
	return set
}

// takeChanges returns what changed since it was last called, and starts over.
func (c *Cluster) takeChanges() changes {
	ch := c.changed
	c.changed = changes{}
	return ch
}

// hostAddrs maps agent hostnames to their addresses, for frameworks named by hostname;
// of agents sharing a hostname, the one with the lowest id counts.
func (c *Cluster) hostAddrs() map[string]netip.Addr {
	byHost := map[string]netip.Addr{}
	owner := map[string]string{}
	for id, a := range c.agents {
		if !a.IP.IsValid() {
			continue
		}
		if have, ok := owner[a.Hostname]; !ok || id < have {
			owner[a.Hostname] = id
			byHost[a.Hostname] = a.IP
		}
	}
	return byHost
}

// observe takes what a status says about health and addresses.
func (t *Task) observe(st api.TaskStatus) {
	if st.Healthy != nil {
		t.Healthy = *st.Healthy
	}
	if st.ContainerStatus == nil {
		return
	}
	var ips []netip.Addr
	for _, ni := range st.ContainerStatus.NetworkInfos {
		for _, a := range ni.IPAddresses {
			if ip, err := netip.ParseAddr(a.IPAddress); err == nil {
				ips = append(ips, ip.Unmap())
			}
		}
	}
	if len(ips) > 0 {
		t.IPs = ips
	}
}

// published reports whether the task gets names: RUNNING, and healthy if it is checked.
func (t *Task) published() bool {
	return t.State == api.TaskRunning && (!t.HealthChecked || t.Healthy)
}
