package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
)

const (
	// callTimeout bounds one UPDATE or HEARTBEAT call.
	callTimeout = 10 * time.Second
	// maxRedirects bounds how many non-leaders are followed for one registration: masters
	// that disagree about the leader mid-election must not keep the agent bouncing.
	maxRedirects = 5
	// missedHeartbeats is how many master heartbeat intervals may pass without an event
	// before the agent considers the stream dead.
	missedHeartbeats = 3
	// defaultMasterHeartbeat is assumed when SUBSCRIBED carries no interval (the Mesos
	// scheduler API's 15 s).
	defaultMasterHeartbeat = 15 * time.Second
	// maxMasterHeartbeat caps the interval a master announces, so a nonsensical one cannot
	// leave a dead stream undetected for long.
	maxMasterHeartbeat = 5 * time.Minute
	// maxErrorBody bounds how much of an error response is quoted in logs.
	maxErrorBody = 512
)

// session is a live registration with the leading master.
type session struct {
	// master is the leader's base URL, http://host:port.
	master   string
	streamID string
	agentID  string
}

// connect keeps the agent registered with the leading master until ctx ends.
func (a *Agent) connect(ctx context.Context) {
	backoff := a.cfg.ReconnectBackoff
	for {
		subscribed, err := a.runSession(ctx)
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			backoff = a.cfg.ReconnectBackoff
			a.log.Warn("lost the connection to the master, reconnecting", "reason", err, "retry_in", backoff)
		} else {
			a.log.Warn("cannot register with a master, retrying", "reason", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, a.cfg.ReconnectBackoffMax)
	}
}

// runSession registers with the leader and handles its events until the stream ends. It
// reports whether registration succeeded, and why the session ended.
func (a *Agent) runSession(ctx context.Context) (subscribed bool, err error) {
	sessCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, master, err := a.subscribe(sessCtx)
	if err != nil {
		return false, err
	}
	events := make(chan api.AgentEvent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cancel(a.readEvents(sessCtx, resp.Body, events, master))
	}()
	defer func() {
		cancel(nil)
		resp.Body.Close()
		<-done
	}()
	streamID := resp.Header.Get(api.StreamIDHeader)
	if streamID == "" {
		return false, fmt.Errorf("master %s answered SUBSCRIBE without a %s header", master, api.StreamIDHeader)
	}

	first, err := nextEvent(sessCtx, events, missedHeartbeats*a.cfg.HeartbeatInterval, master)
	if err != nil {
		return false, err
	}
	switch {
	case first.Type == api.AgentError && first.Error != nil:
		return false, fmt.Errorf("master %s refused the registration: %s", master, first.Error.Message)
	case first.Type != api.AgentSubscribed || first.Subscribed == nil:
		return false, fmt.Errorf("master %s sent %s as its first event, want SUBSCRIBED", master, first.Type)
	}
	sess, err := a.subscribed(master, streamID, first.Subscribed)
	if err != nil {
		return false, err
	}
	defer a.clearSession()
	interval := defaultMasterHeartbeat
	if s := first.Subscribed.HeartbeatIntervalSeconds; s > 0 {
		interval = time.Duration(min(s, maxMasterHeartbeat.Seconds()) * float64(time.Second))
	}
	heartbeatDone := make(chan struct{})
	go func() {
		defer close(heartbeatDone)
		if err := a.heartbeat(sessCtx, sess); err != nil {
			cancel(err)
		}
	}()
	defer func() {
		cancel(nil)
		<-heartbeatDone
	}()

	for {
		ev, err := nextEvent(sessCtx, events, missedHeartbeats*interval, master)
		if err != nil {
			return true, err
		}
		if err := a.handleEvent(ev); err != nil {
			return true, err
		}
	}
}

// subscribe sends SUBSCRIBE to each candidate master in turn, following redirects to the
// leader, and returns the first open event stream and the leader's base URL.
func (a *Agent) subscribe(ctx context.Context) (*http.Response, string, error) {
	candidates := a.cfg.Masters()
	if len(candidates) == 0 {
		return nil, "", errors.New("no master address known yet")
	}
	body, err := json.Marshal(a.subscribeCall())
	if err != nil {
		return nil, "", fmt.Errorf("encode SUBSCRIBE: %w", err)
	}
	var reasons []string
	for _, candidate := range candidates {
		resp, leader, err := a.subscribeTo(ctx, strings.TrimRight(candidate, "/"), body)
		if err == nil {
			return resp, leader, nil
		}
		if ctx.Err() != nil {
			return nil, "", context.Cause(ctx)
		}
		reasons = append(reasons, err.Error())
	}
	return nil, "", fmt.Errorf("no master reachable: %s", strings.Join(reasons, "; "))
}

func (a *Agent) subscribeTo(ctx context.Context, master string, body []byte) (*http.Response, string, error) {
	target := master
	for hops := 0; ; hops++ {
		req, err := http.NewRequestWithContext(api.StreamContext(ctx), http.MethodPost, target+api.AgentPath, bytes.NewReader(body))
		if err != nil {
			return nil, "", fmt.Errorf("master %s: %w", target, err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		resp, err := a.client.Do(req)
		if err != nil {
			return nil, "", fmt.Errorf("master %s: %w", target, err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return resp, target, nil
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			location := resp.Header.Get("Location")
			drain(resp)
			if hops == maxRedirects {
				return nil, "", fmt.Errorf("master %s: gave up after %d redirects without reaching the leader", master, maxRedirects)
			}
			leader, err := leaderBase(req.URL, location)
			if err != nil {
				return nil, "", fmt.Errorf("master %s redirected to %q: %w", target, location, err)
			}
			a.log.Info("master is not the leader, following to the leader", "master", target, "leader", leader)
			target = leader
		default:
			return nil, "", fmt.Errorf("master %s: SUBSCRIBE answered %s: %s", target, resp.Status, errorBody(resp))
		}
	}
}

// leaderBase resolves a redirect's Location (absolute, or "//host:port/path" as Mesos
// masters send it) to the leader's base URL.
func leaderBase(from *url.URL, location string) (string, error) {
	if location == "" {
		return "", errors.New("no Location header")
	}
	loc, err := url.Parse(location)
	if err != nil {
		return "", err
	}
	abs := from.ResolveReference(loc)
	if abs.Host == "" {
		return "", errors.New("no host in Location")
	}
	return abs.Scheme + "://" + abs.Host, nil
}

// subscribeCall builds SUBSCRIBE with the agent's identity and every task it holds.
func (a *Agent) subscribeCall() api.AgentCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	info := api.AgentInfo{
		Hostname:   a.cfg.Hostname,
		Port:       a.httpPort(),
		Resources:  a.resources,
		Attributes: a.attributes,
	}
	if a.agentID != "" {
		info.ID = &api.AgentID{Value: a.agentID}
	}
	keys := make([]string, 0, len(a.tasks))
	for key, t := range a.tasks {
		// Tasks of removed frameworks are being forgotten, and an unknown task's TASK_LOST
		// is all there is of it: neither is the master's to reconcile.
		if !t.rec.Unknown && !t.rec.FrameworkRemoved {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	tasks := make([]api.AgentTask, 0, len(keys))
	for _, key := range keys {
		t := a.tasks[key]
		tasks = append(tasks, api.AgentTask{
			FrameworkID: api.FrameworkID{Value: t.rec.FrameworkID},
			Task:        t.rec.Task,
			State:       t.rec.State,
		})
	}
	return api.AgentCall{
		Type:    api.AgentSubscribe,
		AgentID: info.ID,
		Subscribe: &api.AgentCallSubscribe{
			AgentInfo:   info,
			BootID:      a.bootID,
			Version:     a.cfg.Version,
			Tasks:       tasks,
			HTTPAddress: net.JoinHostPort(a.ip, strconv.Itoa(a.httpPort())),
		},
	}
}

// subscribed records the registration: the agent id (checkpointed the first time) and the
// session, and makes every pending update due at once.
func (a *Agent) subscribed(master, streamID string, ev *api.AgentEventSubscribed) (session, error) {
	id := ev.AgentID.Value
	if id == "" {
		return session{}, fmt.Errorf("master %s sent SUBSCRIBED without an agent id", master)
	}
	a.mu.Lock()
	if a.agentID != id {
		if err := a.cp.setAgentID(id); err != nil {
			a.mu.Unlock()
			return session{}, err
		}
		if a.agentID != "" {
			a.log.Warn("master registered this agent under a new id; it no longer knew the old one", "old_agent_id", a.agentID, "agent_id", id)
		}
		a.agentID = id
	}
	sess := session{master: master, streamID: streamID, agentID: id}
	a.session = &sess
	pending := 0
	for _, t := range a.tasks {
		t.nextSend, t.backoff = time.Time{}, a.cfg.UpdateRetryInitial
		pending += len(t.queue)
	}
	a.mu.Unlock()
	a.kickSender()
	a.log.Info("registered with the master", "master", master, "agent_id", id, "pending_updates", pending)
	return sess, nil
}

func (a *Agent) clearSession() {
	a.mu.Lock()
	a.session = nil
	a.mu.Unlock()
}

// readEvents decodes the event stream into events until it fails, and says why it ended.
func (a *Agent) readEvents(ctx context.Context, body io.Reader, events chan<- api.AgentEvent, master string) error {
	records := api.NewRecordReader(body)
	for {
		rec, err := records.ReadRecord()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("master %s closed the event stream", master)
			}
			return fmt.Errorf("read event stream from master %s: %w", master, err)
		}
		var ev api.AgentEvent
		if err := json.Unmarshal(rec, &ev); err != nil {
			a.log.Warn("skipping malformed event from the master", "master", master, "err", err)
			continue
		}
		select {
		case events <- ev:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// nextEvent waits for the next event, at most timeout.
func nextEvent(ctx context.Context, events <-chan api.AgentEvent, timeout time.Duration, master string) (api.AgentEvent, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ev := <-events:
		return ev, nil
	case <-ctx.Done():
		return api.AgentEvent{}, context.Cause(ctx)
	case <-timer.C:
		return api.AgentEvent{}, fmt.Errorf("no event (not even a heartbeat) from master %s for %s", master, timeout)
	}
}

// handleEvent acts on one event; an error ends the session.
func (a *Agent) handleEvent(ev api.AgentEvent) error {
	switch ev.Type {
	case api.AgentEventHeartbeat:
	case api.AgentLaunch:
		if ev.Launch == nil {
			a.log.Warn("ignoring LAUNCH event without a launch field")
			return nil
		}
		a.launch(ev.Launch)
	case api.AgentKill:
		if ev.Kill == nil {
			a.log.Warn("ignoring KILL event without a kill field")
			return nil
		}
		a.kill(ev.Kill)
	case api.AgentAcknowledge:
		if ev.Acknowledge == nil {
			a.log.Warn("ignoring ACKNOWLEDGE event without an acknowledge field")
			return nil
		}
		a.acknowledge(ev.Acknowledge)
	case api.AgentShutdownFramework:
		if ev.ShutdownFramework == nil {
			a.log.Warn("ignoring SHUTDOWN_FRAMEWORK event without a shutdown_framework field")
			return nil
		}
		a.shutdownFramework(ev.ShutdownFramework.FrameworkID.Value)
	case api.AgentError:
		msg := ""
		if ev.Error != nil {
			msg = ev.Error.Message
		}
		return fmt.Errorf("master sent ERROR: %s", msg)
	default:
		a.log.Warn("ignoring event of unknown type", "type", ev.Type)
	}
	return nil
}

// heartbeat sends HEARTBEAT calls until ctx ends; a failed one means the registration is
// gone (the master restarted, lost leadership or dropped the stream).
func (a *Agent) heartbeat(ctx context.Context, sess session) error {
	ticker := time.NewTicker(a.cfg.HeartbeatInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			err := a.call(ctx, sess, api.AgentCall{Type: api.AgentHeartbeat, AgentID: &api.AgentID{Value: sess.agentID}})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("heartbeat: %w", err)
			}
		}
	}
}

// call POSTs one call on the session's stream; the master answers 202.
func (a *Agent) call(ctx context.Context, sess session, c api.AgentCall) error {
	return a.post(ctx, sess, c.Type, c)
}

// post POSTs call, a call of type callType in any form that encodes as one, on the
// session's stream; the master answers 202.
func (a *Agent) post(ctx context.Context, sess session, callType api.AgentCallType, call any) error {
	body, err := json.Marshal(call)
	if err != nil {
		return fmt.Errorf("encode %s: %w", callType, err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sess.master+api.AgentPath, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s to master %s: %w", callType, sess.master, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.StreamIDHeader, sess.streamID)
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s to master %s: %w", callType, sess.master, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s to master %s answered %s: %s", callType, sess.master, resp.Status, errorBody(resp))
	}
	drain(resp)
	return nil
}

// drain reads a little of resp's body and closes it, so the connection can be reused.
func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
}

// errorBody returns the start of resp's body for an error message, and closes it.
func errorBody(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	return strings.TrimSpace(string(b))
}
