package master

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// frameworkSession is the leader's view of one framework. Guarded by Master.mu.
type frameworkSession struct {
	id        string
	info      api.FrameworkInfo
	stream    *stream // nil while disconnected
	recovered bool    // known from the store, not yet resubscribed to this leader
	failover  *time.Timer
	// recordMu serialises writes of the framework's record (recordConnection); it is
	// held across the Raft apply, never with Master.mu.
	recordMu sync.Mutex
}

func (fs *frameworkSession) stopTimer() {
	if fs.failover != nil {
		fs.failover.Stop()
		fs.failover = nil
	}
}

func (fs *frameworkSession) partitionAware() bool {
	return fs.info.HasCapability(api.CapabilityPartitionAware)
}

// httpError is an API error with its status code.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, err error) {
	var he *httpError
	status := http.StatusInternalServerError
	if errors.As(err, &he) {
		status = he.status
	} else if errors.Is(err, errNotLeader) {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, err.Error()+"\n")
}

// decodeBody reads a JSON body of at most MaxBodyBytes into v, rejecting unknown
// content types, trailing garbage and oversized bodies with the status Mesos uses. A call
// the token check decoded already is taken from there.
func (m *Master) decodeBody(r *http.Request, v any) error {
	if takeCheckedCall(r.Context(), v) {
		return nil
	}
	if err := checkJSONContent(r); err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, m.cfg.MaxBodyBytes+1))
	if err != nil {
		return errorf(http.StatusBadRequest, "read body: %v", err)
	}
	if int64(len(body)) > m.cfg.MaxBodyBytes {
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", m.cfg.MaxBodyBytes)
	}
	if err := decodeJSON(body, v); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	return nil
}

// checkJSONContent refuses a request whose Content-Type is given and not JSON.
func checkJSONContent(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return errorf(http.StatusUnsupportedMediaType, "invalid Content-Type %q: %v", ct, err)
	}
	if mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, "unsupported Content-Type %q: only application/json is supported", mt)
	}
	return nil
}

// decodeJSON decodes exactly one JSON value from body into v.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("failed to parse body into JSON: %w", err)
	}
	if dec.More() {
		return errors.New("failed to parse body into JSON: trailing data after the call")
	}
	return nil
}

// redirectToLeader answers a leader-only request on a non-leader: 307 to the leader as
// Mesos does, or 503 while no leader is known. It reports whether it answered.
func (m *Master) redirectToLeader(w http.ResponseWriter, r *http.Request) bool {
	if m.isLeader() && m.holdsLeaderState() {
		return false
	}
	leader := m.leaderURL()
	if leader == "" || leader == m.cfg.APIURL {
		writeError(w, errorf(http.StatusServiceUnavailable, "%v", errNoLeader))
		return true
	}
	w.Header().Set("Location", strings.TrimSuffix(leader, "/")+r.URL.RequestURI())
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}

// ValidateCall checks a decoded scheduler call's envelope: a known type, its body present
// and a framework id on every call but SUBSCRIBE.
func ValidateCall(c *api.Call) error {
	need := func(present bool) error {
		if !present {
			return fmt.Errorf("expecting '%s' to be present", strings.ToLower(string(c.Type)))
		}
		return nil
	}
	if c.Type != api.CallSubscribe && (c.FrameworkID == nil || c.FrameworkID.Value == "") {
		return errors.New("expecting 'framework_id' to be present")
	}
	switch c.Type {
	case api.CallSubscribe:
		if err := need(c.Subscribe != nil); err != nil {
			return err
		}
		fi := c.Subscribe.FrameworkInfo
		if fi.Name == "" {
			return errors.New("'subscribe.framework_info.name' must be set")
		}
		if c.FrameworkID != nil && (fi.ID == nil || fi.ID.Value != c.FrameworkID.Value) {
			return errors.New("'framework_id' differs from 'subscribe.framework_info.id'")
		}
		if fi.FailoverTimeout < 0 || math.IsNaN(fi.FailoverTimeout) || math.IsInf(fi.FailoverTimeout, 0) {
			return errors.New("'subscribe.framework_info.failover_timeout' must be a finite number ≥ 0")
		}
		return nil
	case api.CallTeardown, api.CallRevive, api.CallSuppress, api.CallRequest:
		return nil
	case api.CallAccept:
		return need(c.Accept != nil)
	case api.CallDecline:
		return need(c.Decline != nil)
	case api.CallKill:
		if err := need(c.Kill != nil); err != nil {
			return err
		}
		if c.Kill.TaskID.Value == "" {
			return errors.New("expecting 'kill.task_id' to be present")
		}
		return nil
	case api.CallShutdown:
		return need(c.Shutdown != nil)
	case api.CallAcknowledge:
		if err := need(c.Acknowledge != nil); err != nil {
			return err
		}
		if _, err := uuid.FromBytes(c.Acknowledge.UUID); err != nil {
			return fmt.Errorf("'acknowledge.uuid' is not a valid UUID: %v", err)
		}
		return nil
	case api.CallReconcile:
		return need(c.Reconcile != nil)
	case api.CallMessage:
		return need(c.Message != nil)
	case "":
		return errors.New("expecting 'type' to be present")
	}
	return fmt.Errorf("unknown call type %q", c.Type)
}

// DecodeCall parses and validates a scheduler call body, as the scheduler endpoint does.
func DecodeCall(body []byte) (*api.Call, error) {
	var c api.Call
	if err := decodeJSON(body, &c); err != nil {
		return nil, err
	}
	if err := ValidateCall(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (m *Master) handleScheduler(w http.ResponseWriter, r *http.Request) {
	if accept := r.Header.Get("Accept"); accept != "" && !acceptsJSON(accept) {
		writeError(w, errorf(http.StatusNotAcceptable, "only application/json responses are supported, not %q", accept))
		return
	}
	var call api.Call
	if err := m.decodeBody(r, &call); err != nil {
		writeError(w, err)
		return
	}
	if err := ValidateCall(&call); err != nil {
		writeError(w, errorf(http.StatusBadRequest, "invalid call: %v", err))
		return
	}
	if m.redirectToLeader(w, r) {
		return
	}
	if call.Type == api.CallSubscribe {
		if r.Header.Get(api.StreamIDHeader) != "" {
			writeError(w, errorf(http.StatusBadRequest, "SUBSCRIBE must not carry a %s header", api.StreamIDHeader))
			return
		}
		m.subscribe(w, r, &call)
		return
	}
	if err := m.schedulerCall(r.Context(), r.Header.Get(api.StreamIDHeader), &call); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "application/json" || mt == "*/*" || mt == "application/*" || mt == "application/recordio" {
			return true
		}
	}
	return false
}

// subscribe registers or re-registers a framework and streams its events until the
// connection ends.
func (m *Master) subscribe(w http.ResponseWriter, r *http.Request, call *api.Call) {
	// A framework that names no user has its tasks run as each agent's task user
	// (nobody on an agent running as root), never silently as root.
	info := call.Subscribe.FrameworkInfo
	now := time.Now()

	m.mu.Lock()
	ls := m.leader
	if ls == nil {
		m.mu.Unlock()
		writeError(w, errNotLeader)
		return
	}
	var fs *frameworkSession
	isNew := info.ID == nil || info.ID.Value == ""
	if !isNew {
		if f, ok := m.fsm.Store().Framework(info.ID.Value); ok && f.Removed {
			m.mu.Unlock()
			m.refuseStream(w, fmt.Sprintf("framework %s has been removed", info.ID.Value))
			return
		}
		fs = ls.frameworks[info.ID.Value]
	} else {
		info.ID = &api.FrameworkID{Value: uuid.NewString() + "-0000"}
	}
	if fs == nil {
		fs = &frameworkSession{id: info.ID.Value}
		ls.frameworks[fs.id] = fs
		ls.alloc.AddFramework(fs.id, info.AllRoles(), call.Subscribe.SuppressedRoles, true)
	} else {
		// Failover: the new subscription replaces the old one, which is told why.
		if fs.stream != nil {
			fs.stream.sendJSON(api.Event{Type: api.EventError, Error: &api.ErrorEvent{Message: "framework failed over"}})
			fs.stream.close(errors.New("framework failed over"))
		}
		fs.stopTimer()
		ls.alloc.UpdateFrameworkRoles(fs.id, info.AllRoles())
		if len(call.Subscribe.SuppressedRoles) > 0 {
			ls.alloc.Suppress(fs.id, call.Subscribe.SuppressedRoles)
		}
		ls.alloc.SetFrameworkActive(fs.id, true)
	}
	fs.info = info
	fs.recovered = false
	// SUBSCRIBED is queued before the stream is visible, so it always comes first.
	st := newStream(uuid.NewString())
	st.sendJSON(api.Event{Type: api.EventSubscribed, Subscribed: &api.Subscribed{
		FrameworkID:              *info.ID,
		HeartbeatIntervalSeconds: m.cfg.HeartbeatInterval.Seconds(),
		MasterInfo:               m.masterInfo(),
	}})
	fs.stream = st
	m.mu.Unlock()

	if err := m.recordConnection(r.Context(), ls, fs, now); err != nil {
		m.mu.Lock()
		if fs.stream == st {
			fs.stream = nil
		}
		m.mu.Unlock()
		writeError(w, fmt.Errorf("record framework: %w", err))
		return
	}
	m.log.Info("framework subscribed", "framework", fs.id, "name", info.Name, "new", isNew)

	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(api.StreamIDHeader, st.id)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	m.mu.Lock()
	if m.leader == ls {
		ls.triggerAllocation()
	}
	m.mu.Unlock()

	err := st.serve(r.Context(), w)
	m.frameworkDisconnected(ls, fs, st, err)
}

// refuseStream answers a SUBSCRIBE with a stream holding only an ERROR event, as Mesos
// does for removed frameworks.
func (m *Master) refuseStream(w http.ResponseWriter, msg string) {
	b, _ := json.Marshal(api.Event{Type: api.EventError, Error: &api.ErrorEvent{Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(api.StreamIDHeader, uuid.NewString())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(api.AppendRecord(nil, b))
}

// frameworkDisconnected handles the end of a framework's stream: its offers are rescinded
// and, unless it resubscribes within failover_timeout, it is torn down.
func (m *Master) frameworkDisconnected(ls *leaderState, fs *frameworkSession, st *stream, cause error) {
	m.mu.Lock()
	if m.leader != ls || fs.stream != st {
		// Replaced by a newer subscription, torn down, or leadership moved on.
		m.mu.Unlock()
		return
	}
	fs.stream = nil
	ls.alloc.SetFrameworkActive(fs.id, false)
	for _, o := range ls.offers {
		if o.frameworkID == fs.id {
			m.rescindLocked(ls, o, false)
		}
	}
	m.startFailoverTimer(ls, fs)
	failoverTimeout := fs.info.FailoverTimeout
	m.mu.Unlock()
	m.log.Info("framework disconnected", "framework", fs.id, "cause", cause, "failover_timeout", failoverTimeout)
	ctx, cancel := context.WithTimeout(ls.ctx, 10*time.Second)
	defer cancel()
	if err := m.recordConnection(ctx, ls, fs, time.Now()); err != nil {
		m.log.Warn("could not record framework disconnect", "framework", fs.id, "err", err)
	}
}

// recordConnection writes fs's record as its stream now stands: connected (with the
// current FrameworkInfo) or disconnected since now. Writes for one framework are
// serialised and each reads the stream after taking the lock, so a disconnect recorded
// late never overwrites a newer subscription, nor the other way round.
func (m *Master) recordConnection(ctx context.Context, ls *leaderState, fs *frameworkSession, now time.Time) error {
	fs.recordMu.Lock()
	defer fs.recordMu.Unlock()
	m.mu.Lock()
	current, connected, info := m.leader == ls, fs.stream != nil, fs.info
	m.mu.Unlock()
	if !current {
		return errNotLeader
	}
	rec := state.Framework{ID: fs.id, Info: info, Connected: connected, RegisteredTime: now}
	if old, ok := m.fsm.Store().Framework(fs.id); ok {
		if old.Removed || !connected && !old.Connected {
			return nil
		}
		rec = *old
		rec.Info, rec.Connected = info, connected
		if connected {
			rec.ReregisteredTime = now
		} else {
			rec.UnregisteredTime = now
		}
	}
	_, err := m.apply(ctx, state.UpsertFrameworkType, state.UpsertFrameworkRequest{Framework: rec})
	return err
}

// startFailoverTimer tears fs down after its failover_timeout. Caller holds m.mu.
func (m *Master) startFailoverTimer(ls *leaderState, fs *frameworkSession) {
	m.startFailoverTimerAtLeast(ls, fs, 0)
}

// startFailoverTimerAtLeast tears fs down after its failover_timeout, or after least if
// that is longer. Caller holds m.mu.
func (m *Master) startFailoverTimerAtLeast(ls *leaderState, fs *frameworkSession, least time.Duration) {
	fs.stopTimer()
	timeout := max(time.Duration(fs.info.FailoverTimeout*float64(time.Second)), least)
	fs.failover = time.AfterFunc(timeout, func() {
		m.mu.Lock()
		current := m.leader == ls && ls.frameworks[fs.id] == fs && fs.stream == nil
		m.mu.Unlock()
		if !current {
			return
		}
		m.log.Info("framework failover timeout passed; removing it", "framework", fs.id, "timeout", timeout)
		if err := m.removeFramework(ls.ctx, ls, fs.id, "failover timeout passed"); err != nil {
			m.log.Warn("remove framework after failover timeout", "framework", fs.id, "err", err)
		}
	})
}

// removeFramework tears a framework down: its offers go back, its tasks are killed on
// their agents, and it is recorded as removed.
func (m *Master) removeFramework(ctx context.Context, ls *leaderState, id, why string) error {
	m.mu.Lock()
	if m.leader != ls {
		m.mu.Unlock()
		return errNotLeader
	}
	fs := ls.frameworks[id]
	if fs != nil {
		fs.stopTimer()
		for _, o := range ls.offers {
			if o.frameworkID == id {
				m.rescindLocked(ls, o, false)
			}
		}
		if fs.stream != nil {
			fs.stream.close(fmt.Errorf("framework removed: %s", why))
			fs.stream = nil
		}
		delete(ls.frameworks, id)
		ls.alloc.RemoveFramework(id)
	}
	agents := map[string]bool{}
	for _, t := range m.fsm.Store().TasksByFramework(id) {
		agents[t.AgentID] = true
	}
	for agentID := range agents {
		if as := ls.agents[agentID]; as != nil && as.stream != nil {
			as.stream.sendJSON(api.AgentEvent{Type: api.AgentShutdownFramework,
				ShutdownFramework: &api.AgentEventShutdownFrwk{FrameworkID: api.FrameworkID{Value: id}}})
		}
	}
	ls.triggerAllocation()
	m.mu.Unlock()
	// Its live tasks end as KILLED in the record (Mesos does the same), whatever their
	// agents report later.
	var updates []state.TaskStatusUpdate
	for _, t := range m.fsm.Store().TasksByFramework(id) {
		if t.State.Terminal() {
			continue
		}
		st := masterStatus(t.ID, t.AgentID, api.TaskKilled, api.ReasonFrameworkRemoved, "framework removed: "+why)
		updates = append(updates, state.TaskStatusUpdate{FrameworkID: id, TaskID: t.ID, Status: st})
	}
	if len(updates) > 0 {
		if _, err := m.apply(ctx, state.UpdateTaskStatusesType, state.UpdateTaskStatusesRequest{Updates: updates}); err != nil {
			return err
		}
	}
	_, err := m.apply(ctx, state.RemoveFrameworkType, state.RemoveFrameworkRequest{FrameworkID: id, Time: time.Now()})
	return err
}

// schedulerCall handles every call but SUBSCRIBE.
func (m *Master) schedulerCall(ctx context.Context, streamID string, call *api.Call) error {
	fid := call.FrameworkID.Value
	m.mu.Lock()
	ls := m.leader
	if ls == nil {
		m.mu.Unlock()
		return errNotLeader
	}
	fs := ls.frameworks[fid]
	if fs == nil || fs.stream == nil {
		m.mu.Unlock()
		return errorf(http.StatusForbidden, "framework %s is not subscribed", fid)
	}
	if streamID == "" {
		m.mu.Unlock()
		return errorf(http.StatusBadRequest, "all non-subscribe calls should include the %s header", api.StreamIDHeader)
	}
	if streamID != fs.stream.id {
		m.mu.Unlock()
		return errorf(http.StatusForbidden, "the stream id %q does not match framework %s's subscription", streamID, fid)
	}
	m.mu.Unlock()

	m.metrics.calls.WithLabelValues(string(call.Type)).Inc()
	switch call.Type {
	case api.CallTeardown:
		return m.removeFramework(ctx, ls, fid, "TEARDOWN")
	case api.CallAccept:
		return m.accept(ctx, ls, fs, call.Accept)
	case api.CallDecline:
		m.decline(ls, fid, call.Decline.OfferIDs, call.Decline.Filters)
	case api.CallRevive:
		ls.alloc.Revive(fid, call.Revive.Roles)
		ls.triggerAllocation()
	case api.CallSuppress:
		ls.alloc.Suppress(fid, call.Suppress.Roles)
	case api.CallKill:
		return m.kill(ctx, ls, fs, call.Kill)
	case api.CallAcknowledge:
		return m.acknowledge(ls, fid, call.Acknowledge)
	case api.CallReconcile:
		m.reconcile(ls, fs, call.Reconcile)
	case api.CallShutdown:
		return errorf(http.StatusNotImplemented, "SHUTDOWN: custom executors are not supported")
	case api.CallMessage:
		return errorf(http.StatusNotImplemented, "MESSAGE: custom executors are not supported")
	case api.CallRequest:
	}
	return nil
}

// refuseDuration turns Filters into a filter duration: negative or missing means the
// default, and it is capped at 365 days as in Mesos.
func (m *Master) refuseDuration(f *api.Filters) time.Duration {
	if f == nil || f.RefuseSeconds == nil || *f.RefuseSeconds < 0 || math.IsNaN(*f.RefuseSeconds) {
		return m.cfg.DefaultRefuse
	}
	const maxRefuse = 365 * 24 * time.Hour
	if *f.RefuseSeconds > maxRefuse.Seconds() {
		return maxRefuse
	}
	return time.Duration(*f.RefuseSeconds * float64(time.Second))
}

func (m *Master) decline(ls *leaderState, fid string, ids []api.OfferID, filters *api.Filters) {
	refuse := m.refuseDuration(filters)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	for _, id := range ids {
		o := ls.offers[id.Value]
		if o == nil || o.frameworkID != fid {
			continue
		}
		delete(ls.offers, o.id)
		ls.alloc.Recover(o.frameworkID, o.agentID, o.role, o.resources, refuse)
		m.metrics.offersDeclined.Inc()
	}
	ls.triggerAllocation()
}

// masterInfo describes this master.
func (m *Master) masterInfo() *api.MasterInfo {
	return &api.MasterInfo{
		ID:       m.cfg.ID,
		Hostname: m.cfg.Hostname,
		Version:  m.cfg.Version,
		PID:      "master@" + strings.TrimPrefix(m.cfg.APIURL, "http://"),
	}
}

// sendUpdate delivers a status to a framework's stream if it is connected; reliable
// updates that find it disconnected are redelivered by the agent's retries.
func (m *Master) sendUpdateLocked(ls *leaderState, fid string, status api.TaskStatus) {
	fs := ls.frameworks[fid]
	if fs == nil || fs.stream == nil {
		return
	}
	status.State = status.State.ForFramework(fs.partitionAware())
	fs.stream.sendJSON(api.Event{Type: api.EventUpdate, Update: &api.Update{Status: status}})
}

// masterStatus builds an update the master itself produces (no uuid: not acknowledged).
func masterStatus(taskID, agentID string, st api.TaskState, reason api.StatusReason, msg string) api.TaskStatus {
	s := api.TaskStatus{
		TaskID:    api.TaskID{Value: taskID},
		State:     st,
		Source:    api.SourceMaster,
		Reason:    reason,
		Message:   msg,
		Timestamp: float64(time.Now().UnixNano()) / 1e9,
	}
	if agentID != "" {
		s.AgentID = &api.AgentID{Value: agentID}
	}
	return s
}
