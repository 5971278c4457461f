package master

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/atoll/atoll/alloc"
	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// accept applies an ACCEPT: the offers are consumed, valid tasks are recorded in Raft and
// sent to their agent, invalid ones get TASK_ERROR (or TASK_DROPPED/LOST when the offers
// themselves were invalid), and the unused remainder goes back with the call's filter.
// Nothing is ever allocated twice: the offers leave the table before anything else.
func (m *Master) accept(ctx context.Context, ls *leaderState, fs *frameworkSession, acc *api.Accept) error {
	refuse := m.refuseDuration(acc.Filters)
	var launches []api.TaskInfo
	// launchAt is when each launch is sent to the agent: zero for at once.
	var launchAt []time.Time
	now := time.Now()
	for _, op := range acc.Operations {
		switch op.Type {
		case api.OperationLaunch:
			if op.Launch == nil {
				continue
			}
			at, err := notBefore(op.Launch, now)
			if err != nil {
				for _, t := range append(launches, op.Launch.TaskInfos...) {
					m.sendTaskError(ls, fs.id, t, api.TaskError, api.ReasonTaskInvalid, err.Error())
				}
				m.recoverOffers(ls, fs.id, acc.OfferIDs, 0)
				return errorf(http.StatusBadRequest, "%v", err)
			}
			launches = append(launches, op.Launch.TaskInfos...)
			for range op.Launch.TaskInfos {
				launchAt = append(launchAt, at)
			}
		default:
			// Reservations and volumes arrive later; say so instead of ignoring them.
			for _, t := range launches {
				m.sendTaskError(ls, fs.id, t, api.TaskError, api.ReasonTaskInvalid, fmt.Sprintf("operation %s is not supported", op.Type))
			}
			m.recoverOffers(ls, fs.id, acc.OfferIDs, 0)
			return errorf(http.StatusBadRequest, "offer operation %q is not supported yet; only LAUNCH is", op.Type)
		}
	}

	m.mu.Lock()
	if m.leader != ls {
		m.mu.Unlock()
		return errNotLeader
	}
	var taken []*offer
	invalid := ""
offers:
	for _, id := range acc.OfferIDs {
		o := ls.offers[id.Value]
		switch {
		case o == nil:
			invalid = fmt.Sprintf("offer %s is no longer valid", id.Value)
		case o.frameworkID != fs.id:
			invalid = fmt.Sprintf("offer %s belongs to another framework", id.Value)
		case len(taken) > 0 && o.agentID != taken[0].agentID:
			invalid = fmt.Sprintf("offer %s is on agent %s, not %s: offers must be on one agent", id.Value, o.agentID, taken[0].agentID)
		default:
			delete(ls.offers, o.id)
			taken = append(taken, o)
			continue
		}
		break offers
	}
	if len(acc.OfferIDs) == 0 {
		invalid = "no offer ids given"
	}
	if invalid != "" {
		// Mesos: valid offers among them go back to the allocator; every task is dropped.
		for _, o := range taken {
			ls.alloc.Recover(o.frameworkID, o.agentID, o.role, o.resources, 0)
		}
		ls.triggerAllocation()
		m.mu.Unlock()
		for _, t := range launches {
			m.sendTaskError(ls, fs.id, t, api.TaskDropped, api.ReasonInvalidOffers, invalid)
		}
		m.metrics.invalidAccepts.Inc()
		return nil
	}
	agentID := taken[0].agentID
	as := ls.agents[agentID]
	agentGone := as == nil || as.stream == nil
	info := fs.info
	m.mu.Unlock()

	// The offers are this call's alone now: the tasks are checked against them without
	// the lock, so that ACCEPTs on other agents are checked at the same time.
	remaining := map[string]alloc.Resources{}
	for _, o := range taken {
		remaining[o.role] = remaining[o.role].Add(o.resources)
	}
	var valid []state.Task
	type rejection struct {
		task   api.TaskInfo
		reason string
	}
	var rejected []rejection
	seen := map[string]bool{}
	for i, t := range launches {
		role, res, why := m.validateTask(fs, agentID, t, remaining, seen)
		if why != "" {
			rejected = append(rejected, rejection{t, why})
			continue
		}
		seen[t.TaskID.Value] = true
		remaining[role] = remaining[role].Subtract(res)
		t.AgentID = api.AgentID{Value: agentID}
		valid = append(valid, state.Task{
			FrameworkID:  fs.id,
			AgentID:      agentID,
			ID:           t.TaskID.Value,
			Info:         t,
			Role:         role,
			State:        api.TaskStaging,
			LaunchedTime: now,
			LaunchAt:     launchAt[i],
			Statuses:     []api.TaskStatus{masterStatus(t.TaskID.Value, agentID, api.TaskStaging, "", "")},
		})
	}
	m.mu.Lock()
	if m.leader == ls {
		if agentGone {
			// The agent vanished between offer and accept: everything goes back.
			for role, r := range remaining {
				ls.alloc.Recover(fs.id, agentID, role, r, 0)
			}
			for _, t := range valid {
				ls.alloc.Recover(fs.id, agentID, t.Role, mustResources(t.Info.Resources), 0)
			}
		} else {
			for role, r := range remaining {
				if !r.IsEmpty() {
					ls.alloc.Recover(fs.id, agentID, role, r, refuse)
				}
			}
		}
		ls.triggerAllocation()
	}
	m.mu.Unlock()

	for _, r := range rejected {
		m.sendTaskError(ls, fs.id, r.task, api.TaskError, api.ReasonTaskInvalid, r.reason)
	}
	if len(valid) == 0 {
		return nil
	}
	if agentGone {
		for _, t := range valid {
			m.sendTaskError(ls, fs.id, t.Info, api.TaskDropped, api.ReasonAgentDisconnected, fmt.Sprintf("agent %s is disconnected", agentID))
		}
		return nil
	}
	// The launches are framed while Raft records the tasks, and the lock is taken only to
	// queue them: a launch of thousands of tasks spends little time after the write.
	framed := make(chan launchFrames, 1)
	go func() { framed <- frameLaunches(fs.id, info, valid) }()
	if _, err := m.apply(ctx, state.AddTasksType, state.AddTasksRequest{Tasks: taskRecords(valid)}); err != nil {
		m.mu.Lock()
		if m.leader == ls {
			for _, t := range valid {
				ls.alloc.Recover(fs.id, agentID, t.Role, mustResources(t.Info.Resources), 0)
			}
		}
		m.mu.Unlock()
		for _, t := range valid {
			m.sendTaskError(ls, fs.id, t.Info, api.TaskDropped, "", fmt.Sprintf("could not record the task: %v", err))
		}
		return nil
	}
	frames := <-framed
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return errNotLeader
	}
	if as.stream == nil {
		return nil
	}
	if frames.err != nil {
		// Never with our own types; as sendJSON does, the agent's stream ends, and the
		// agent's reconciliation when it is back has the tasks it lacks reported lost.
		as.stream.close(frames.err)
		return nil
	}
	later := map[time.Time][]*deferredLaunch{}
	for i, rec := range frames.records {
		if at := valid[i].LaunchAt; !at.IsZero() {
			later[at] = append(later[at], &deferredLaunch{key: valid[i].Key(), agentID: agentID, at: at, record: rec})
			continue
		}
		// A launch that did not reach the agent is reconciled when it re-subscribes: the
		// task it does not report becomes LOST/GONE.
		if as.stream.sendRecord(rec) {
			m.metrics.tasksLaunched.Inc()
		}
	}
	for at, launches := range later {
		m.deferLaunchesLocked(ls, at, launches)
	}
	return nil
}

// notBefore is when a LAUNCH operation's tasks are sent to the agent: zero for at once
// (no NotBefore, or one passed), or its NotBefore, at most api.MaxLaunchAhead from now.
func notBefore(op *api.LaunchOperation, now time.Time) (time.Time, error) {
	if op.NotBefore == nil {
		return time.Time{}, nil
	}
	at := time.Unix(0, op.NotBefore.Nanoseconds)
	switch {
	case !at.After(now):
		return time.Time{}, nil
	case at.Sub(now) > api.MaxLaunchAhead:
		return time.Time{}, fmt.Errorf("launch not_before %s is %v ahead; it may be at most %v ahead", at.UTC().Format(time.RFC3339Nano), at.Sub(now).Round(time.Millisecond), api.MaxLaunchAhead)
	}
	return at, nil
}

// launchFrames are the LAUNCH events of an ACCEPT's tasks, framed for the agent's stream,
// or why they could not be.
type launchFrames struct {
	records [][]byte
	err     error
}

// frameLaunches frames the LAUNCH event of each task, of the framework id and info.
func frameLaunches(frameworkID string, info api.FrameworkInfo, tasks []state.Task) launchFrames {
	records := make([][]byte, len(tasks))
	for i, t := range tasks {
		event, err := json.Marshal(api.AgentEvent{Type: api.AgentLaunch, Launch: &api.AgentEventLaunch{
			FrameworkID:   api.FrameworkID{Value: frameworkID},
			FrameworkInfo: info,
			Task:          t.Info,
		}})
		if err != nil {
			return launchFrames{err: fmt.Errorf("encode the launch of task %s: %w", t.ID, err)}
		}
		records[i] = api.AppendRecord(nil, event)
	}
	return launchFrames{records: records}
}

// taskRecords are the tasks as the AddTasks command carries them: without the copies of
// the task and agent ids in the task info and status, which the state machine fills in
// from the record's (a launch of 10,000 tasks is that much less to encode and decode).
func taskRecords(tasks []state.Task) []state.Task {
	out := make([]state.Task, len(tasks))
	for i, t := range tasks {
		t.Info.TaskID, t.Info.AgentID = api.TaskID{}, api.AgentID{}
		t.Statuses = slices.Clone(t.Statuses)
		for j := range t.Statuses {
			t.Statuses[j].TaskID = api.TaskID{}
		}
		out[i] = t
	}
	return out
}

// validateTask checks one TaskInfo against the framework, the agent and the resources
// left in the accepted offers; it returns the role the resources come from, the resources
// and "" — or why the task is invalid.
func (m *Master) validateTask(fs *frameworkSession, agentID string, t api.TaskInfo, remaining map[string]alloc.Resources, seen map[string]bool) (string, alloc.Resources, string) {
	if t.TaskID.Value == "" {
		return "", alloc.Resources{}, "task_id is empty"
	}
	if t.Name == "" {
		return "", alloc.Resources{}, "name is empty"
	}
	if seen[t.TaskID.Value] {
		return "", alloc.Resources{}, fmt.Sprintf("task id %s is used twice in this ACCEPT", t.TaskID.Value)
	}
	if existing, ok := m.fsm.Store().Task(fs.id, t.TaskID.Value); ok && !existing.State.Terminal() {
		return "", alloc.Resources{}, fmt.Sprintf("task id %s is already in use", t.TaskID.Value)
	}
	if t.AgentID.Value != "" && t.AgentID.Value != agentID {
		return "", alloc.Resources{}, fmt.Sprintf("agent_id %s does not match the offer's agent %s", t.AgentID.Value, agentID)
	}
	if t.Executor != nil {
		return "", alloc.Resources{}, "custom executors are not supported; give the task a command"
	}
	if t.Command == nil {
		return "", alloc.Resources{}, "a task needs a command"
	}
	if t.Command.IsShell() && (t.Command.Value == nil || *t.Command.Value == "") {
		return "", alloc.Resources{}, "command.value is empty"
	}
	if !t.Command.IsShell() && (t.Command.Value == nil || *t.Command.Value == "") {
		return "", alloc.Resources{}, "command.value (the executable) is empty"
	}
	res, err := alloc.FromProto(t.Resources)
	if err != nil {
		return "", alloc.Resources{}, fmt.Sprintf("invalid resources: %v", err)
	}
	if res.IsEmpty() {
		return "", alloc.Resources{}, "a task needs resources (cpus or mem)"
	}
	role := ""
	for _, r := range t.Resources {
		if r.AllocationInfo != nil && r.AllocationInfo.Role != "" {
			role = r.AllocationInfo.Role
			break
		}
	}
	if role == "" {
		if len(remaining) != 1 {
			return "", alloc.Resources{}, "resources need allocation_info.role: the offers come from several roles"
		}
		for r := range remaining {
			role = r
		}
	}
	left, ok := remaining[role]
	if !ok {
		return "", alloc.Resources{}, fmt.Sprintf("no offered resources for role %q", role)
	}
	if !left.Contains(res) {
		return "", alloc.Resources{}, fmt.Sprintf("task uses more resources (%s) than offered and not yet used (%s)", res, left)
	}
	return role, res, ""
}

// sendTaskError tells a framework about a task the master refused.
func (m *Master) sendTaskError(ls *leaderState, fid string, t api.TaskInfo, st api.TaskState, reason api.StatusReason, msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	m.sendUpdateLocked(ls, fid, masterStatus(t.TaskID.Value, t.AgentID.Value, st, reason, msg))
	m.metrics.tasksRefused.WithLabelValues(string(st)).Inc()
}

// recoverOffers returns a framework's offers to the allocator.
func (m *Master) recoverOffers(ls *leaderState, fid string, ids []api.OfferID, refuse time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	for _, id := range ids {
		if o := ls.offers[id.Value]; o != nil && o.frameworkID == fid {
			delete(ls.offers, o.id)
			ls.alloc.Recover(o.frameworkID, o.agentID, o.role, o.resources, refuse)
		}
	}
	ls.triggerAllocation()
}

// mustResources converts resources that were validated when the task was accepted.
func mustResources(rs []api.Resource) alloc.Resources {
	r, err := alloc.FromProto(rs)
	if err != nil {
		return alloc.Resources{}
	}
	return r
}

// kill forwards a KILL to the task's agent, or answers for tasks the master knows are
// gone or never existed.
func (m *Master) kill(ctx context.Context, ls *leaderState, fs *frameworkSession, k *api.Kill) error {
	t, ok := m.fsm.Store().Task(fs.id, k.TaskID.Value)
	m.mu.Lock()
	if m.leader != ls {
		m.mu.Unlock()
		return errNotLeader
	}
	if d := ls.pending[state.TaskKey{FrameworkID: fs.id, TaskID: k.TaskID.Value}]; d != nil && ok {
		delete(ls.pending, d.key)
		m.mu.Unlock()
		return m.killPending(ctx, ls, fs.id, d, t)
	}
	defer m.mu.Unlock()
	if !ok {
		agentID := ""
		if k.AgentID != nil {
			agentID = k.AgentID.Value
		}
		m.sendUpdateLocked(ls, fs.id, masterStatus(k.TaskID.Value, agentID, api.TaskUnknown, api.ReasonReconciliation, "attempted to kill an unknown task"))
		return nil
	}
	if t.State.Terminal() {
		m.sendUpdateLocked(ls, fs.id, m.latestStatus(t, api.ReasonReconciliation))
		return nil
	}
	as := ls.agents[t.AgentID]
	if as == nil || as.stream == nil {
		// The agent is away; the kill is re-issued when it re-registers (its tasks are
		// reconciled then) and the framework hears about the agent's state meanwhile.
		m.sendUpdateLocked(ls, fs.id, m.latestStatus(t, api.ReasonAgentDisconnected))
		return nil
	}
	as.stream.sendJSON(api.AgentEvent{Type: api.AgentKill, Kill: &api.AgentEventKill{
		FrameworkID: api.FrameworkID{Value: fs.id},
		TaskID:      k.TaskID,
		KillPolicy:  k.KillPolicy,
	}})
	return nil
}

// latestStatus is a task's last status, resent without uuid for reconciliation.
func (m *Master) latestStatus(t *state.Task, reason api.StatusReason) api.TaskStatus {
	var s api.TaskStatus
	if n := len(t.Statuses); n > 0 {
		s = t.Statuses[n-1]
	} else {
		s = masterStatus(t.ID, t.AgentID, t.State, "", "")
	}
	s.UUID = nil
	s.Reason = reason
	s.Source = api.SourceMaster
	if s.AgentID == nil {
		s.AgentID = &api.AgentID{Value: t.AgentID}
	}
	return s
}

// acknowledge relays a framework's ACKNOWLEDGE to the agent holding the update.
func (m *Master) acknowledge(ls *leaderState, fid string, ack *api.Acknowledge) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return errNotLeader
	}
	as := ls.agents[ack.AgentID.Value]
	if as == nil {
		return errorf(http.StatusBadRequest, "acknowledge: unknown agent %s", ack.AgentID.Value)
	}
	if as.stream == nil {
		// The agent resends the update when it is back; the framework acks it then.
		return nil
	}
	as.stream.sendJSON(api.AgentEvent{Type: api.AgentAcknowledge, Acknowledge: &api.AgentEventAcknowledge{
		FrameworkID: api.FrameworkID{Value: fid},
		TaskID:      ack.TaskID,
		UUID:        ack.UUID,
	}})
	m.metrics.acks.Inc()
	return nil
}

// reconcile answers with the latest known state of the named tasks, or of all the
// framework's tasks when none are named.
func (m *Master) reconcile(ls *leaderState, fs *frameworkSession, rc *api.Reconcile) {
	store := m.fsm.Store()
	var statuses []api.TaskStatus
	if len(rc.Tasks) == 0 {
		for _, t := range store.TasksByFramework(fs.id) {
			statuses = append(statuses, m.latestStatus(t, api.ReasonReconciliation))
		}
	} else {
		for _, rt := range rc.Tasks {
			if t, ok := store.Task(fs.id, rt.TaskID.Value); ok {
				statuses = append(statuses, m.latestStatus(t, api.ReasonReconciliation))
				continue
			}
			agentID := ""
			if rt.AgentID != nil {
				agentID = rt.AgentID.Value
			}
			st := api.TaskUnknown
			if agentID != "" {
				if _, known := store.Agent(agentID); known {
					st = api.TaskGone
				}
			}
			statuses = append(statuses, masterStatus(rt.TaskID.Value, agentID, st, api.ReasonReconciliation, "task is unknown to the master"))
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	for _, s := range statuses {
		m.sendUpdateLocked(ls, fs.id, s)
	}
}
