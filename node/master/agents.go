package master

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/alloc"
	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// agentSession is the leader's view of one agent. Guarded by Master.mu.
type agentSession struct {
	id         string
	hostname   string
	httpAddr   string
	attributes []api.Attribute
	stream     *stream // nil while disconnected
	lastSeen   time.Time
	// lostTimer fires AgentTimeout after a disconnect unless the agent comes back.
	lostTimer *time.Timer
}

// ValidateAgentCall checks an agent call's envelope.
func ValidateAgentCall(c *api.AgentCall) error {
	switch c.Type {
	case api.AgentSubscribe:
		if c.Subscribe == nil {
			return errors.New("expecting 'subscribe' to be present")
		}
		if c.Subscribe.AgentInfo.Hostname == "" {
			return errors.New("'subscribe.agent_info.hostname' must be set")
		}
		if _, err := alloc.FromProto(c.Subscribe.AgentInfo.Resources); err != nil {
			return fmt.Errorf("'subscribe.agent_info.resources': %v", err)
		}
		return nil
	case api.AgentUpdate:
		if c.AgentID == nil || c.AgentID.Value == "" {
			return errors.New("expecting 'agent_id' to be present")
		}
		switch {
		case c.Update == nil && len(c.Updates) == 0:
			return errors.New("expecting 'update' or 'updates' to be present")
		case c.Update != nil && len(c.Updates) > 0:
			return errors.New("expecting 'update' or 'updates', not both")
		case c.Update != nil:
			return validateAgentUpdate("update", c.Update)
		}
		for i := range c.Updates {
			if err := validateAgentUpdate(fmt.Sprintf("updates[%d]", i), &c.Updates[i]); err != nil {
				return err
			}
		}
		return nil
	case api.AgentHeartbeat:
		if c.AgentID == nil || c.AgentID.Value == "" {
			return errors.New("expecting 'agent_id' to be present")
		}
		return nil
	case "":
		return errors.New("expecting 'type' to be present")
	}
	return fmt.Errorf("unknown agent call type %q", c.Type)
}

func validateAgentUpdate(field string, u *api.AgentCallUpdate) error {
	if u.Status.TaskID.Value == "" || u.FrameworkID.Value == "" {
		return fmt.Errorf("'%s' needs 'status.task_id' and 'framework_id'", field)
	}
	if u.Status.State == "" {
		return fmt.Errorf("'%s.status.state' must be set", field)
	}
	return nil
}

func (m *Master) handleAgent(w http.ResponseWriter, r *http.Request) {
	var call api.AgentCall
	if err := m.decodeBody(r, &call); err != nil {
		writeError(w, err)
		return
	}
	if err := ValidateAgentCall(&call); err != nil {
		writeError(w, errorf(http.StatusBadRequest, "invalid agent call: %v", err))
		return
	}
	if m.redirectToLeader(w, r) {
		return
	}
	if call.Type == api.AgentSubscribe {
		m.agentSubscribe(w, r, call.Subscribe)
		return
	}
	ls, as, err := m.agentSessionFor(call.AgentID.Value, r.Header.Get(api.StreamIDHeader))
	if err != nil {
		writeError(w, err)
		return
	}
	switch call.Type {
	case api.AgentHeartbeat:
	case api.AgentUpdate:
		updates := call.Updates
		if call.Update != nil {
			updates = []api.AgentCallUpdate{*call.Update}
		}
		if err := m.statusUpdates(r.Context(), ls, as, updates); err != nil {
			writeError(w, err)
			return
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

// agentSessionFor checks that a call comes from the agent's current stream.
func (m *Master) agentSessionFor(agentID, streamID string) (*leaderState, *agentSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ls := m.leader
	if ls == nil {
		return nil, nil, errNotLeader
	}
	as := ls.agents[agentID]
	if as == nil || as.stream == nil {
		return nil, nil, errorf(http.StatusForbidden, "agent %s is not subscribed", agentID)
	}
	if streamID != as.stream.id {
		return nil, nil, errorf(http.StatusForbidden, "the stream id %q does not match agent %s's subscription", streamID, agentID)
	}
	as.lastSeen = time.Now()
	return ls, as, nil
}

// agentSubscribe registers or re-registers an agent, reconciles the tasks it reports with
// the replicated state, and streams commands to it until the connection ends.
func (m *Master) agentSubscribe(w http.ResponseWriter, r *http.Request, sub *api.AgentCallSubscribe) {
	info := sub.AgentInfo
	total, _ := alloc.FromProto(info.Resources)
	store := m.fsm.Store()
	now := time.Now()
	id := ""
	if info.ID != nil {
		id = info.ID.Value
	}
	var prev *state.Agent
	if id != "" {
		prev, _ = store.Agent(id)
	} else {
		id = uuid.NewString() + "-S0"
		info.ID = &api.AgentID{Value: id}
	}
	rec := state.Agent{ID: id, Info: info, HTTPAddress: sub.HTTPAddress, Version: sub.Version, BootID: sub.BootID, RegisteredTime: now}
	if prev != nil {
		rec.RegisteredTime = prev.RegisteredTime
		rec.ReregisteredTime = now
	}
	if _, err := m.apply(r.Context(), state.RegisterAgentType, state.RegisterAgentRequest{Agent: rec}); err != nil {
		writeError(w, fmt.Errorf("record agent: %w", err))
		return
	}

	// Reconcile: what the agent runs against what the master believes. Launches waiting
	// for their time are not the agent's to know yet.
	m.mu.Lock()
	var pending map[state.TaskKey]*deferredLaunch
	if m.leader != nil {
		pending = m.pendingOnLocked(m.leader, id, false, now)
	}
	m.mu.Unlock()
	reported := map[state.TaskKey]api.AgentTask{}
	for _, t := range sub.Tasks {
		reported[state.TaskKey{FrameworkID: t.FrameworkID.Value, TaskID: t.Task.TaskID.Value}] = t
	}
	var toKill []state.TaskKey
	var updates []state.TaskStatusUpdate
	type usedRole struct {
		framework, role string
		res             alloc.Resources
	}
	var usedByRole []usedRole
	for key, t := range reported {
		known, ok := store.Task(key.FrameworkID, key.TaskID)
		fw, fwOK := store.Framework(key.FrameworkID)
		switch {
		case !ok || known.AgentID != id || known.State.Terminal() || !fwOK || fw.Removed:
			// The master gave up on it (or never knew it): the framework was told it is
			// gone, so it must not keep running.
			if !t.State.Terminal() {
				toKill = append(toKill, key)
			}
		case known.State == api.TaskUnreachable && !t.State.Terminal():
			st := masterStatus(key.TaskID, id, t.State, "", "agent re-registered")
			updates = append(updates, state.TaskStatusUpdate{FrameworkID: key.FrameworkID, TaskID: key.TaskID, Status: st})
		}
		if ok && known.AgentID == id && !known.State.Terminal() && !t.State.Terminal() {
			r, _ := alloc.FromProto(known.Info.Resources)
			usedByRole = append(usedByRole, usedRole{key.FrameworkID, known.Role, r})
		}
	}
	for _, known := range store.TasksByAgent(id) {
		key := state.TaskKey{FrameworkID: known.FrameworkID, TaskID: known.ID}
		if _, ok := reported[key]; ok || known.State.Terminal() || pending[key] != nil {
			continue
		}
		// The agent does not know the task: it was lost with the agent's state, or its
		// launch never arrived.
		st := masterStatus(known.ID, id, api.TaskGone, api.ReasonAgentRestarted, "task not reported by the agent when it re-registered")
		if fw, ok := store.Framework(known.FrameworkID); ok && !fw.Info.HasCapability(api.CapabilityPartitionAware) {
			st.State = api.TaskLost
		}
		updates = append(updates, state.TaskStatusUpdate{FrameworkID: known.FrameworkID, TaskID: known.ID, Status: st})
	}
	if len(updates) > 0 {
		if _, err := m.apply(r.Context(), state.UpdateTaskStatusesType, state.UpdateTaskStatusesRequest{Updates: updates}); err != nil {
			writeError(w, fmt.Errorf("reconcile agent tasks: %w", err))
			return
		}
	}

	m.mu.Lock()
	ls := m.leader
	if ls == nil {
		m.mu.Unlock()
		writeError(w, errNotLeader)
		return
	}
	// It is back, whatever gossip last said.
	delete(m.agentsFailed, id)
	as := ls.agents[id]
	if as == nil {
		as = &agentSession{id: id}
		ls.agents[id] = as
	}
	if as.stream != nil {
		as.stream.close(errors.New("agent re-subscribed on a new stream"))
	}
	if as.lostTimer != nil {
		as.lostTimer.Stop()
		as.lostTimer = nil
	}
	as.hostname, as.httpAddr, as.attributes = info.Hostname, sub.HTTPAddress, info.Attributes
	st := newStream(uuid.NewString())
	as.stream = st
	as.lastSeen = now
	// Offers on the agent's old incarnation are void: its resources are re-added afresh.
	for _, o := range ls.offers {
		if o.agentID == id {
			m.rescindLocked(ls, o, true)
		}
	}
	ls.alloc.RemoveAgent(id)
	ls.alloc.AddAgent(id, info.Hostname, total, nil)
	for _, u := range usedByRole {
		ls.alloc.AddUsed(u.framework, id, u.role, u.res)
	}
	for _, u := range updates {
		m.sendUpdateLocked(ls, u.FrameworkID, u.Status)
	}
	// Launches whose time came while the agent was away go on its new stream, but those
	// it has (sent by a previous leader).
	for key := range reported {
		delete(ls.pending, key)
	}
	due := m.pendingOnLocked(ls, id, true, time.Now())
	ls.triggerAllocation()
	m.mu.Unlock()

	m.log.Info("agent subscribed", "agent", id, "hostname", info.Hostname, "resources", total.String(),
		"reregistered", prev != nil, "tasks", len(sub.Tasks), "killing", len(toKill))

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(api.StreamIDHeader, st.id)
	w.WriteHeader(http.StatusOK)
	st.sendJSON(api.AgentEvent{Type: api.AgentSubscribed, Subscribed: &api.AgentEventSubscribed{
		AgentID:                  api.AgentID{Value: id},
		HeartbeatIntervalSeconds: m.cfg.HeartbeatInterval.Seconds(),
	}})
	for _, k := range toKill {
		st.sendJSON(api.AgentEvent{Type: api.AgentKill, Kill: &api.AgentEventKill{
			FrameworkID: api.FrameworkID{Value: k.FrameworkID},
			TaskID:      api.TaskID{Value: k.TaskID},
		}})
	}
	for _, d := range due {
		if st.sendRecord(d.record) {
			m.metrics.tasksLaunched.Inc()
		}
	}
	err := st.serve(r.Context(), w)
	m.agentDisconnected(ls, as, st, err)
}

// agentDisconnected handles the end of an agent's stream: nothing more is offered on it
// and its offers are rescinded; it has AgentTimeout to come back.
func (m *Master) agentDisconnected(ls *leaderState, as *agentSession, st *stream, cause error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls || as.stream != st {
		return
	}
	as.stream = nil
	ls.alloc.SetAgentActive(as.id, false)
	for _, o := range ls.offers {
		if o.agentID == as.id {
			m.rescindLocked(ls, o, true)
		}
	}
	if as.lostTimer != nil {
		as.lostTimer.Stop()
	}
	// The timeout counts from the agent's last contact, not from when its absence was
	// noticed.
	wait := max(m.cfg.AgentTimeout-time.Since(as.lastSeen), 0)
	as.lostTimer = time.AfterFunc(wait, func() { m.agentTimedOut(as.id, as) })
	m.log.Warn("agent disconnected; waiting for it to come back", "agent", as.id, "cause", cause, "unreachable_in", wait.Round(time.Millisecond))
}

// agentTimedOut marks an agent that stayed away unreachable: its tasks become UNREACHABLE
// for partition-aware frameworks and LOST for the others, and frameworks get FAILURE.
func (m *Master) agentTimedOut(agentID string, as *agentSession) {
	m.mu.Lock()
	ls := m.leader
	if ls == nil || ls.agents[agentID] != as || as.stream != nil {
		m.mu.Unlock()
		return
	}
	delete(ls.agents, agentID)
	ls.alloc.RemoveAgent(agentID)
	// Its launches still to come end with its other tasks, below.
	for key := range m.pendingOnLocked(ls, agentID, false, time.Now()) {
		delete(ls.pending, key)
	}
	m.mu.Unlock()

	m.log.Warn("agent did not come back in time; marking it unreachable", "agent", agentID, "timeout", m.cfg.AgentTimeout)
	m.metrics.agentsLost.Inc()
	store := m.fsm.Store()
	now := time.Now()
	ctx, cancel := context.WithTimeout(ls.ctx, 30*time.Second)
	defer cancel()
	if a, ok := store.Agent(agentID); ok {
		rec := *a
		rec.Unreachable, rec.UnreachableTime = true, now
		if _, err := m.apply(ctx, state.UpdateAgentType, state.UpdateAgentRequest{Agent: rec}); err != nil {
			m.log.Error("could not record unreachable agent", "agent", agentID, "err", err)
			return
		}
	}
	var updates []state.TaskStatusUpdate
	for _, t := range store.TasksByAgent(agentID) {
		if t.State.Terminal() || t.State == api.TaskUnreachable {
			continue
		}
		st := masterStatus(t.ID, agentID, api.TaskUnreachable, api.ReasonAgentDisconnected, fmt.Sprintf("agent %s is unreachable", agentID))
		st.UnreachableTime = &api.TimeInfo{Nanoseconds: now.UnixNano()}
		if fw, ok := store.Framework(t.FrameworkID); !ok || !fw.Info.HasCapability(api.CapabilityPartitionAware) {
			st.State = api.TaskLost
			st.Reason = api.ReasonAgentRemoved
		}
		updates = append(updates, state.TaskStatusUpdate{FrameworkID: t.FrameworkID, TaskID: t.ID, Status: st})
	}
	if len(updates) > 0 {
		if _, err := m.apply(ctx, state.UpdateTaskStatusesType, state.UpdateTaskStatusesRequest{Updates: updates}); err != nil {
			m.log.Error("could not record tasks of unreachable agent", "agent", agentID, "err", err)
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	for _, u := range updates {
		m.sendUpdateLocked(ls, u.FrameworkID, u.Status)
	}
	for _, fs := range ls.frameworks {
		if fs.stream != nil {
			fs.stream.sendJSON(api.Event{Type: api.EventFailure, Failure: &api.Failure{AgentID: &api.AgentID{Value: agentID}}})
		}
	}
}

// statusUpdates records a batch of an agent's status updates in one Raft entry, frees the
// resources of tasks that ended, and forwards each update to its framework. The agent's
// retries make delivery at-least-once: a duplicate (a uuid the task's history holds) is
// forwarded, not re-applied. Operator streams get each update that changes its task's
// state at once, ahead of its commit (see broker).
func (m *Master) statusUpdates(ctx context.Context, ls *leaderState, as *agentSession, updates []api.AgentCallUpdate) error {
	store := m.fsm.Store()
	type pending struct {
		fid     string
		status  api.TaskStatus
		task    *state.Task
		wasLive bool
		record  bool // not a duplicate: recorded and, if terminal, its resources freed
	}
	var (
		forward  []pending
		orphaned []api.AgentCallUpdate
		record   []state.TaskStatusUpdate
	)
	for _, u := range updates {
		fid, tid := u.FrameworkID.Value, u.Status.TaskID.Value
		status := u.Status
		status.AgentID = &api.AgentID{Value: as.id}
		if fw, ok := store.Framework(fid); !ok || fw.Removed {
			orphaned = append(orphaned, api.AgentCallUpdate{FrameworkID: u.FrameworkID, Status: status})
			continue
		}
		t, known := store.Task(fid, tid)
		p := pending{fid: fid, status: status, task: t, wasLive: known && !t.State.Terminal()}
		duplicate := false
		if known && len(status.UUID) > 0 {
			for _, s := range t.Statuses {
				if bytes.Equal(s.UUID, status.UUID) {
					duplicate = true
					break
				}
			}
		}
		if known && !duplicate && t.AgentID == as.id {
			p.record = true
			record = append(record, state.TaskStatusUpdate{FrameworkID: fid, TaskID: tid, Status: status})
			m.events.publishEarly(fid, status, t.State)
		}
		forward = append(forward, p)
	}
	if len(record) > 0 {
		if _, err := m.apply(ctx, state.UpdateTaskStatusesType, state.UpdateTaskStatusesRequest{Updates: record}); err != nil {
			return fmt.Errorf("record status updates: %w", err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return errNotLeader
	}
	for _, u := range orphaned {
		// Nobody will acknowledge it: ack on the framework's behalf so the agent stops
		// retrying, and make sure the task does not outlive its framework.
		if as.stream != nil && len(u.Status.UUID) > 0 {
			as.stream.sendJSON(api.AgentEvent{Type: api.AgentAcknowledge, Acknowledge: &api.AgentEventAcknowledge{
				FrameworkID: u.FrameworkID, TaskID: u.Status.TaskID, UUID: u.Status.UUID}})
		}
		if as.stream != nil && !u.Status.State.Terminal() {
			as.stream.sendJSON(api.AgentEvent{Type: api.AgentKill, Kill: &api.AgentEventKill{FrameworkID: u.FrameworkID, TaskID: u.Status.TaskID}})
		}
	}
	freed := false
	for _, p := range forward {
		if p.wasLive && p.record && p.status.State.Terminal() {
			ls.alloc.Recover(p.fid, as.id, p.task.Role, mustResources(p.task.Info.Resources), 0)
			freed = true
		}
		m.metrics.statusUpdates.WithLabelValues(string(p.status.State)).Inc()
		m.sendUpdateLocked(ls, p.fid, p.status)
	}
	if freed {
		ls.triggerAllocation()
	}
	return nil
}
