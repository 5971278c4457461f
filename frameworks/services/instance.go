package services

import (
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// instance is one task of an app: the framework's view of it, from the task's TaskInfo
// and its latest status.
type instance struct {
	taskID   string
	appID    string
	version  string
	agentID  string
	hostname string
	// hostPorts are the host ports the task holds, in the order of the app's ports.
	hostPorts []uint32
	// persistenceIDs are its local persistent volumes', for a resident app's: they say
	// which reservation it holds.
	persistenceIDs []string
	// servicePorts are the app's service ports when it launched.
	servicePorts []uint32
	state        api.TaskState
	healthy      *bool
	ips          []string
	stagedAt     time.Time
	startedAt    time.Time
	// killing says a kill was asked for; the instance no longer counts toward its app.
	// killSent is when the kill was last sent: it is sent again until the task ends.
	killing     bool
	killSent    time.Time
	killRetries int
	// message is the latest status's message, for failures.
	message string
	// attributes are its agent's, for constraints.
	attributes []api.Attribute
	// healthResult is the latest health change: when it was last seen healthy, failing.
	lastSuccess, lastFailure time.Time
	lastFailureCause         string
	consecutiveFailures      int
	// checkStatus is the latest result of its app's check, nil before the first status
	// that carries one.
	checkStatus *api.CheckStatusInfo
	// readiness is its readiness probe, while its app deploys with a readiness check.
	readiness *readinessResult
	// unreachableSince is when its agent stopped answering, zero while it answers;
	// expunged says it was unreachable too long and is killed should it come back.
	unreachableSince time.Time
	expunged         bool
}

// addInstance records an instance. s.mu is held.
func (s *Service) addInstance(in *instance) {
	s.instances[in.taskID] = in
	m := s.byApp[in.appID]
	if m == nil {
		m = map[string]*instance{}
		s.byApp[in.appID] = m
	}
	m[in.taskID] = in
}

// removeInstance forgets an instance. s.mu is held.
func (s *Service) removeInstance(in *instance) {
	delete(s.instances, in.taskID)
	if m := s.byApp[in.appID]; m != nil {
		delete(m, in.taskID)
		if len(m) == 0 {
			delete(s.byApp, in.appID)
		}
	}
}

// newTaskID returns an id for a new task of the app: Marathon's form, the app id with
// its slashes as underscores, a dot, a uuid.
func newTaskID(appID string) string {
	return strings.ReplaceAll(strings.TrimPrefix(appID, "/"), "/", "_") + "." + uuid.NewString()
}

// live says the instance has not ended: it holds resources and counts toward its app
// unless it is being killed.
func (in *instance) live() bool { return !in.state.Terminal() }

// running says the instance runs.
func (in *instance) running() bool { return in.state == api.TaskRunning }

// healthyFor says the instance runs and, when its app checks health, passes its check.
func (in *instance) healthyFor(checked bool) bool {
	if !in.running() {
		return false
	}
	if !checked {
		return true
	}
	return in.healthy != nil && *in.healthy
}

// instanceFromTask rebuilds an instance from the master's record of a task, as a new
// leader does; ok is false for tasks the framework did not launch as an app's instance.
func instanceFromTask(t *state.Task, agent *state.Agent) (*instance, bool) {
	appID, version := t.Info.Labels.Get(api.LabelAppID), t.Info.Labels.Get(api.LabelAppVersion)
	if appID == "" {
		return nil, false
	}
	in := &instance{
		taskID:         t.ID,
		appID:          appID,
		version:        version,
		agentID:        t.AgentID,
		hostPorts:      portsOf(t.Info.Resources),
		persistenceIDs: persistenceIDsOf(t.Info.Resources),
		state:          t.State,
		stagedAt:       t.LaunchedTime,
	}
	if agent != nil {
		in.hostname = agent.Info.Hostname
		in.attributes = agent.Info.Attributes
	}
	for _, st := range t.Statuses {
		in.apply(&st)
	}
	in.state = t.State
	return in, true
}

// apply takes in a status update.
func (in *instance) apply(st *api.TaskStatus) {
	in.state = st.State
	switch {
	case st.State == api.TaskUnreachable && in.unreachableSince.IsZero():
		in.unreachableSince = time.Now()
		if st.UnreachableTime != nil {
			in.unreachableSince = time.Unix(0, st.UnreachableTime.Nanoseconds)
		}
	case st.State != api.TaskUnreachable:
		in.unreachableSince = time.Time{}
	}
	in.message = st.Message
	at := time.Now()
	if st.Timestamp > 0 {
		at = time.Unix(0, int64(st.Timestamp*float64(time.Second))).UTC()
	}
	if st.State == api.TaskRunning && in.startedAt.IsZero() {
		in.startedAt = at
	}
	if st.Healthy != nil {
		healthy := *st.Healthy
		in.healthy = &healthy
		if healthy {
			in.lastSuccess, in.consecutiveFailures = at, 0
		} else {
			in.lastFailure, in.lastFailureCause = at, st.Message
			in.consecutiveFailures++
		}
	}
	if st.CheckStatus != nil {
		in.checkStatus = st.CheckStatus
	}
	if st.ContainerStatus != nil {
		var ips []string
		for _, n := range st.ContainerStatus.NetworkInfos {
			for _, ip := range n.IPAddresses {
				ips = append(ips, ip.IPAddress)
			}
		}
		if len(ips) > 0 {
			in.ips = ips
		}
	}
}

// portsOf returns the ports of a task's resources, in order.
func portsOf(resources []api.Resource) []uint32 {
	var ports []uint32
	for _, r := range resources {
		if r.Name != "ports" || r.Ranges == nil {
			continue
		}
		for _, rg := range r.Ranges.Range {
			for p := rg.Begin; p <= rg.End && p-rg.Begin < 1<<16; p++ {
				ports = append(ports, uint32(p))
			}
		}
	}
	return ports
}

// sortForKill orders instances so that those to kill first come first: ones not yet
// running, then unhealthy ones, then by the app's kill selection (YOUNGEST_FIRST kills the
// most recently staged first).
func sortForKill(ins []*instance, oldestFirst bool, checked bool) {
	slices.SortStableFunc(ins, func(a, b *instance) int {
		if ra, rb := a.running(), b.running(); ra != rb {
			if ra {
				return 1
			}
			return -1
		}
		if ha, hb := a.healthyFor(checked), b.healthyFor(checked); ha != hb {
			if ha {
				return 1
			}
			return -1
		}
		if oldestFirst {
			return a.stagedAt.Compare(b.stagedAt)
		}
		return b.stagedAt.Compare(a.stagedAt)
	})
}
