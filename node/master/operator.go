package master

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/alloc"
	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// handleOperator serves POST /api/v1. A follower forwards calls to the leader, or answers
// reads from its own replica with ?stale=true (KILL_TASK always goes to the leader).
func (m *Master) handleOperator(w http.ResponseWriter, r *http.Request) {
	if m.forwardToLeader(w, r) {
		return
	}
	var call api.OperatorCall
	if err := m.decodeBody(r, &call); err != nil {
		writeError(w, err)
		return
	}
	resp := api.OperatorResponse{Type: call.Type}
	switch call.Type {
	case api.OpGetHealth:
		resp.GetHealth = &api.GetHealth{Healthy: true}
	case api.OpGetVersion:
		resp.GetVersion = &api.GetVersion{VersionInfo: api.VersionInfo{Version: m.cfg.Version}}
	case api.OpGetState:
		resp.GetState = m.getState()
	case api.OpGetAgents:
		resp.GetAgents = m.getAgents(m.view())
	case api.OpGetFrameworks:
		resp.GetFrameworks = m.getFrameworks(m.view())
	case api.OpGetTasks:
		resp.GetTasks = m.getTasks(clusterView{tasks: m.fsm.Store().Tasks()})
	case api.OpGetMembers:
		members := []api.Member{}
		if m.cfg.Members != nil {
			members = m.cfg.Members()
		}
		resp.GetMembers = &api.GetMembers{Members: members}
	case api.OpSubscribe:
		m.events.subscribe(w, r)
		return
	case api.OpKillTask:
		if err := m.operatorKill(w, r, call.KillTask); err != nil {
			writeError(w, err)
		}
		return
	case api.OpTeardown:
		if err := m.operatorTeardown(w, r, call.Teardown); err != nil {
			writeError(w, err)
		}
		return
	case "":
		writeError(w, errorf(http.StatusBadRequest, "invalid call: expecting 'type' to be present"))
		return
	default:
		writeError(w, errorf(http.StatusBadRequest, "invalid call: unsupported operator call type %q", call.Type))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// operatorKill kills a task on the operator's behalf, with the task's own kill policy
// unless the call gives one.
func (m *Master) operatorKill(w http.ResponseWriter, r *http.Request, k *api.KillTaskCall) error {
	if k == nil || k.TaskID.Value == "" || k.FrameworkID.Value == "" {
		return errorf(http.StatusBadRequest, "invalid call: KILL_TASK needs 'kill_task.framework_id' and 'kill_task.task_id'")
	}
	if m.redirectToLeader(w, r) {
		return nil
	}
	t, ok := m.fsm.Store().Task(k.FrameworkID.Value, k.TaskID.Value)
	if !ok {
		return errorf(http.StatusNotFound, "task %s of framework %s is unknown", k.TaskID.Value, k.FrameworkID.Value)
	}
	if t.State.Terminal() {
		return errorf(http.StatusConflict, "task %s already ended: %s", t.ID, t.State)
	}
	m.mu.Lock()
	ls := m.leader
	if ls == nil {
		m.mu.Unlock()
		return errNotLeader
	}
	as := ls.agents[t.AgentID]
	if as == nil || as.stream == nil {
		m.mu.Unlock()
		return errorf(http.StatusServiceUnavailable, "agent %s holding task %s is disconnected; retry when it is back", t.AgentID, t.ID)
	}
	as.stream.sendJSON(api.AgentEvent{Type: api.AgentKill, Kill: &api.AgentEventKill{
		FrameworkID: k.FrameworkID, TaskID: k.TaskID, KillPolicy: k.KillPolicy}})
	m.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// operatorTeardown removes a framework on the operator's behalf: its offers are rescinded,
// its agents told to shut it down, and its tasks killed.
func (m *Master) operatorTeardown(w http.ResponseWriter, r *http.Request, t *api.TeardownCall) error {
	if t == nil || t.FrameworkID.Value == "" {
		return errorf(http.StatusBadRequest, "invalid call: TEARDOWN needs 'teardown.framework_id'")
	}
	if m.redirectToLeader(w, r) {
		return nil
	}
	id := t.FrameworkID.Value
	fw, ok := m.fsm.Store().Framework(id)
	if !ok {
		return errorf(http.StatusNotFound, "framework %s is unknown", id)
	}
	if fw.Removed {
		return errorf(http.StatusNotFound, "framework %s was already removed", id)
	}
	m.mu.Lock()
	ls := m.leader
	m.mu.Unlock()
	if ls == nil {
		return errNotLeader
	}
	if err := m.removeFramework(r.Context(), ls, id, "torn down by an operator"); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func timeInfo(t time.Time) *api.TimeInfo {
	if t.IsZero() {
		return nil
	}
	return &api.TimeInfo{Nanoseconds: t.UnixNano()}
}

// usage sums the resources of live tasks by agent and by framework.
func usage(tasks []*state.Task) (byAgent, byFramework map[string]alloc.Resources) {
	byAgent, byFramework = map[string]alloc.Resources{}, map[string]alloc.Resources{}
	for _, t := range tasks {
		if t.State.Terminal() || t.State == api.TaskUnreachable {
			continue
		}
		r := mustResources(t.Info.Resources)
		byAgent[t.AgentID] = byAgent[t.AgentID].Add(r)
		byFramework[t.FrameworkID] = byFramework[t.FrameworkID].Add(r)
	}
	return byAgent, byFramework
}

// offered sums outstanding offers by agent and by framework (leader only; empty elsewhere).
func (m *Master) offered() (byAgent, byFramework map[string]alloc.Resources, offers map[string][]api.Offer) {
	byAgent, byFramework, offers = map[string]alloc.Resources{}, map[string]alloc.Resources{}, map[string][]api.Offer{}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader == nil {
		return
	}
	for _, o := range m.leader.offers {
		byAgent[o.agentID] = byAgent[o.agentID].Add(o.resources)
		byFramework[o.frameworkID] = byFramework[o.frameworkID].Add(o.resources)
		if as := m.leader.agents[o.agentID]; as != nil {
			offers[o.frameworkID] = append(offers[o.frameworkID], m.offerProto(o, as))
		}
	}
	return
}

// connectedAgents reports which agents have a live stream (leader only).
func (m *Master) connectedAgents() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	if m.leader == nil {
		return out
	}
	for id, as := range m.leader.agents {
		out[id] = as.stream != nil
	}
	return out
}

// clusterView is one read of the live tasks, what they use and what is offered, shared by
// the parts of GET_STATE and /master/state so each is computed once per request.
type clusterView struct {
	tasks                              []*state.Task
	usedByAgent, usedByFramework       map[string]alloc.Resources
	offeredByAgent, offeredByFramework map[string]alloc.Resources
	offers                             map[string][]api.Offer
}

func (m *Master) view() clusterView {
	v := clusterView{tasks: m.fsm.Store().Tasks()}
	v.usedByAgent, v.usedByFramework = usage(v.tasks)
	v.offeredByAgent, v.offeredByFramework, v.offers = m.offered()
	return v
}

func (m *Master) getAgents(v clusterView) *api.GetAgents {
	store := m.fsm.Store()
	used, offered := v.usedByAgent, v.offeredByAgent
	connected := m.connectedAgents()
	out := &api.GetAgents{Agents: []api.AgentState{}, RecoveredAgents: []api.AgentInfo{}}
	for _, a := range store.Agents() {
		if a.Unreachable {
			continue
		}
		active, known := connected[a.ID]
		if !known && !m.isLeader() {
			// Followers do not see streams; an agent that is not unreachable is active.
			active = true
		}
		out.Agents = append(out.Agents, agentState(a, active, used[a.ID], offered[a.ID]))
	}
	sort.Slice(out.Agents, func(i, j int) bool { return out.Agents[i].AgentInfo.ID.Value < out.Agents[j].AgentInfo.ID.Value })
	return out
}

func agentState(a *state.Agent, active bool, used, offered alloc.Resources) api.AgentState {
	info := a.Info
	info.ID = &api.AgentID{Value: a.ID}
	return api.AgentState{
		AgentInfo:          info,
		Active:             active,
		Version:            a.Version,
		PID:                "slave(1)@" + a.HTTPAddress,
		RegisteredTime:     timeInfo(a.RegisteredTime),
		ReregisteredTime:   timeInfo(a.ReregisteredTime),
		TotalResources:     nonNil(info.Resources),
		AllocatedResources: nonNil(used.Proto()),
		OfferedResources:   nonNil(offered.Proto()),
	}
}

func nonNil(rs []api.Resource) []api.Resource {
	if rs == nil {
		return []api.Resource{}
	}
	return rs
}

func (m *Master) getFrameworks(v clusterView) *api.GetFrameworks {
	store := m.fsm.Store()
	used, offered, offers := v.usedByFramework, v.offeredByFramework, v.offers
	out := &api.GetFrameworks{Frameworks: []api.FrameworkState{}, CompletedFrameworks: []api.FrameworkState{}}
	for _, f := range store.Frameworks() {
		fs := api.FrameworkState{
			FrameworkInfo:      f.Info,
			Active:             f.Connected && !f.Removed,
			Connected:          f.Connected && !f.Removed,
			RegisteredTime:     timeInfo(f.RegisteredTime),
			ReregisteredTime:   timeInfo(f.ReregisteredTime),
			UnregisteredTime:   timeInfo(f.UnregisteredTime),
			Offers:             offers[f.ID],
			AllocatedResources: nonNil(used[f.ID].Proto()),
			OfferedResources:   nonNil(offered[f.ID].Proto()),
		}
		if fs.Offers == nil {
			fs.Offers = []api.Offer{}
		}
		if f.Removed {
			out.CompletedFrameworks = append(out.CompletedFrameworks, fs)
		} else {
			out.Frameworks = append(out.Frameworks, fs)
		}
	}
	return out
}

func (m *Master) getTasks(v clusterView) *api.GetTasks {
	store := m.fsm.Store()
	out := &api.GetTasks{Tasks: []api.Task{}, UnreachableTasks: []api.Task{}, CompletedTasks: []api.Task{}}
	for _, t := range v.tasks {
		if t.State == api.TaskUnreachable {
			out.UnreachableTasks = append(out.UnreachableTasks, taskProto(t))
		} else {
			out.Tasks = append(out.Tasks, taskProto(t))
		}
	}
	for _, t := range store.CompletedTasks() {
		out.CompletedTasks = append(out.CompletedTasks, taskProto(t))
	}
	return out
}

func (m *Master) getState() *api.GetState {
	v := m.view()
	return &api.GetState{
		GetTasks:      m.getTasks(v),
		GetExecutors:  &api.GetExecutors{Executors: []any{}},
		GetFrameworks: m.getFrameworks(v),
		GetAgents:     m.getAgents(v),
	}
}

// taskProto is the operator API's view of a task.
func taskProto(t *state.Task) api.Task {
	out := api.Task{
		Name:        t.Info.Name,
		TaskID:      api.TaskID{Value: t.ID},
		FrameworkID: api.FrameworkID{Value: t.FrameworkID},
		AgentID:     api.AgentID{Value: t.AgentID},
		State:       t.State,
		Resources:   t.Info.Resources,
		Statuses:    t.Statuses,
		Labels:      t.Info.Labels,
		Discovery:   t.Info.Discovery,
		Container:   withoutSecretValues(t.Info.Container),
		HealthCheck: t.Info.HealthCheck,
		Role:        t.Role,
	}
	if n := len(t.Statuses); n > 0 {
		out.StatusUUID = t.Statuses[n-1].UUID
	}
	if t.Info.Command != nil && t.Info.Command.User != nil {
		out.User = *t.Info.Command.User
	}
	return out
}

// broker fans the FSM's changes out to operator SUBSCRIBE streams. Each event is encoded
// once and the same framed bytes are queued on every stream, so hundreds of subscribers
// (DNS servers, load balancers, TUIs) cost one encoding and a slice append each.
//
// A task's status update from its agent is published as it arrives (publishEarly),
// before Raft commits it, as a Mesos master publishes what its agents report: an
// operator stream (the DNS servers' above all) then follows the tasks without waiting
// for the disk. Its commit is then published only to the streams that did not see it.
type broker struct {
	m *Master
	// mu guards subs, joined and early. Lock order: broker.mu before Master.mu
	// (subscribe reads offers).
	mu sync.Mutex
	// subs are the streams, each with the order it joined in (joined counts them).
	subs   map[*stream]uint64
	joined uint64
	// early are the task states published ahead of their commit, by task, oldest first.
	early map[earlyKey][]earlyState
	stop  chan struct{}
}

// earlyKey names a task among the early states.
type earlyKey struct{ frameworkID, taskID string }

// earlyState is a task state published ahead of its commit: every stream that had
// joined by joined got it.
type earlyState struct {
	state  api.TaskState
	joined uint64
	at     time.Time
}

// earlyTTL is how long an early state waits for its commit. One that waited longer (its
// update was never committed: the master lost its leadership, say) is forgotten, and
// should its commit come after all, it is published again.
const earlyTTL = time.Minute

var (
	errRestored = errors.New("state restored from a snapshot: resubscribe for a fresh view")
	errStopping = errors.New("master stopping")
)

func newBroker(m *Master) *broker {
	b := &broker{m: m, subs: map[*stream]uint64{}, early: map[earlyKey][]earlyState{}, stop: make(chan struct{})}
	go b.heartbeats()
	return b
}

func (b *broker) heartbeats() {
	t := time.NewTicker(b.m.cfg.HeartbeatInterval)
	defer t.Stop()
	hb, _ := json.Marshal(api.OperatorEvent{Type: api.OpEventHeartbeat})
	rec := api.AppendRecord(nil, hb)
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			b.mu.Lock()
			for s := range b.subs {
				s.sendRecord(rec)
			}
			b.forgetEarlyLocked(now.Add(-earlyTTL))
			b.mu.Unlock()
		}
	}
}

// subscribe streams the current state, then every change, until the client goes away.
// Registration and the state read happen under the broker lock, so no change between
// them is missed (a change may at worst be seen twice).
func (b *broker) subscribe(w http.ResponseWriter, r *http.Request) {
	st := newStream(uuid.NewString())
	b.mu.Lock()
	b.joined++
	b.subs[st] = b.joined
	first := api.OperatorEvent{Type: api.OpEventSubscribed, Subscribed: &api.OpSubscribed{
		GetState:                 b.m.getState(),
		HeartbeatIntervalSeconds: b.m.cfg.HeartbeatInterval.Seconds(),
	}}
	st.sendJSON(first)
	b.mu.Unlock()
	b.m.metrics.operatorSubscribers.Inc()
	defer func() {
		b.mu.Lock()
		delete(b.subs, st)
		b.mu.Unlock()
		b.m.metrics.operatorSubscribers.Dec()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(api.StreamIDHeader, st.id)
	w.WriteHeader(http.StatusOK)
	_ = st.serve(r.Context(), w)
}

// publish is the FSM's change hook: it runs in log order on every master.
func (b *broker) publish(c state.Change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		return
	}
	if c.Kind == state.Restored {
		// The state was replaced wholesale: subscribers reconnect and start from a new
		// snapshot rather than receive a partial picture.
		for s := range b.subs {
			s.close(errRestored)
		}
		clear(b.early)
		return
	}
	seenBy := b.committedLocked(c)
	if ev, ok := b.operatorEvent(c); ok {
		b.sendLocked(ev, seenBy)
	}
}

// sendLocked encodes ev once and queues it on the streams that joined after seenBy.
func (b *broker) sendLocked(ev api.OperatorEvent, seenBy uint64) {
	raw, err := json.Marshal(ev)
	if err != nil {
		return
	}
	rec := api.AppendRecord(nil, raw)
	for s, joined := range b.subs {
		if joined > seenBy {
			s.sendRecord(rec)
		}
	}
}

// publishEarly publishes status, an update of framework fid's task from its agent, before
// it is committed: when it changes the task's state from what the streams last saw (its
// last early state, or else committed, the state the task has in the store).
func (b *broker) publishEarly(fid string, status api.TaskStatus, committed api.TaskState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) == 0 {
		return
	}
	key := earlyKey{fid, status.TaskID.Value}
	states := b.early[key]
	last := committed
	if n := len(states); n > 0 {
		last = states[n-1].state
	}
	if status.State == last {
		return
	}
	status.Data = nil
	b.sendLocked(taskUpdated(fid, status, status.State), 0)
	b.early[key] = append(states, earlyState{state: status.State, joined: b.joined, at: time.Now()})
}

// committedLocked matches a committed change with the early states of its task: the
// streams that joined by the returned order saw it, or a later state, already (0: none).
func (b *broker) committedLocked(c state.Change) uint64 {
	if c.Task == nil || c.Kind != state.TaskUpdated && c.Kind != state.TaskRemoved {
		return 0
	}
	key := earlyKey{c.Task.FrameworkID, c.Task.ID}
	states, ok := b.early[key]
	if !ok {
		return 0
	}
	if c.Kind == state.TaskRemoved {
		delete(b.early, key)
		return 0
	}
	i := slices.IndexFunc(states, func(e earlyState) bool { return e.state == c.Task.State })
	if i < 0 {
		// Not one the agent reported (the master's own, say): everyone gets it, after the
		// early states, so their commits, should they come, are news again.
		delete(b.early, key)
		return 0
	}
	// The states are in the order published, which is the order they are committed in.
	seenBy := states[len(states)-1].joined
	if rest := states[i+1:]; len(rest) > 0 && !c.Task.State.Terminal() {
		b.early[key] = slices.Clone(rest)
	} else {
		delete(b.early, key)
	}
	return seenBy
}

// forgetEarlyLocked drops the early states of tasks whose last was published before
// cutoff.
func (b *broker) forgetEarlyLocked(cutoff time.Time) {
	for key, states := range b.early {
		if states[len(states)-1].at.Before(cutoff) {
			delete(b.early, key)
		}
	}
}

func (b *broker) operatorEvent(c state.Change) (api.OperatorEvent, bool) {
	switch c.Kind {
	case state.AgentAdded, state.AgentUpdated:
		if c.Agent == nil {
			return api.OperatorEvent{}, false
		}
		if c.Agent.Unreachable {
			return api.OperatorEvent{Type: api.OpEventAgentRemoved, AgentRemoved: &api.OpAgentRemoved{AgentID: api.AgentID{Value: c.Agent.ID}}}, true
		}
		return api.OperatorEvent{Type: api.OpEventAgentAdded, AgentAdded: &api.OpAgentAdded{Agent: agentState(c.Agent, true, alloc.Resources{}, alloc.Resources{})}}, true
	case state.AgentRemoved:
		if c.Agent == nil {
			return api.OperatorEvent{}, false
		}
		return api.OperatorEvent{Type: api.OpEventAgentRemoved, AgentRemoved: &api.OpAgentRemoved{AgentID: api.AgentID{Value: c.Agent.ID}}}, true
	case state.FrameworkAdded, state.FrameworkUpdated:
		if c.Framework == nil {
			return api.OperatorEvent{}, false
		}
		fs := api.FrameworkState{FrameworkInfo: c.Framework.Info, Active: c.Framework.Connected, Connected: c.Framework.Connected,
			RegisteredTime: timeInfo(c.Framework.RegisteredTime), Offers: []api.Offer{}, AllocatedResources: []api.Resource{}, OfferedResources: []api.Resource{}}
		typ, body := api.OpEventFrameworkUpdated, &api.OpFrameworkChanged{Framework: fs}
		if c.Kind == state.FrameworkAdded {
			return api.OperatorEvent{Type: api.OpEventFrameworkAdded, FrameworkAdded: body}, true
		}
		return api.OperatorEvent{Type: typ, FrameworkUpdated: body}, true
	case state.FrameworkRemoved:
		if c.Framework == nil {
			return api.OperatorEvent{}, false
		}
		return api.OperatorEvent{Type: api.OpEventFrameworkRemoved, FrameworkRemoved: &api.OpFrameworkRemovedEvt{FrameworkInfo: c.Framework.Info}}, true
	case state.TaskAdded:
		if c.Task == nil {
			return api.OperatorEvent{}, false
		}
		return api.OperatorEvent{Type: api.OpEventTaskAdded, TaskAdded: &api.OpTaskAdded{Task: taskProto(c.Task)}}, true
	case state.TaskUpdated:
		if c.Task == nil {
			return api.OperatorEvent{}, false
		}
		var st api.TaskStatus
		if c.Status != nil {
			st = *c.Status
		} else if n := len(c.Task.Statuses); n > 0 {
			st = c.Task.Statuses[n-1]
		}
		return taskUpdated(c.Task.FrameworkID, st, c.Task.State), true
	}
	return api.OperatorEvent{}, false
}

// taskUpdated is the TASK_UPDATED event of framework fid's task: status st, which left it
// in taskState.
func taskUpdated(fid string, st api.TaskStatus, taskState api.TaskState) api.OperatorEvent {
	return api.OperatorEvent{Type: api.OpEventTaskUpdated, TaskUpdated: &api.OpTaskUpdated{
		FrameworkID: api.FrameworkID{Value: fid}, Status: st, State: taskState}}
}

// closeAll ends every operator stream (the master is stopping).
func (b *broker) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	for s := range b.subs {
		s.close(errStopping)
	}
}
