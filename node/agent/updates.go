package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api"
)

// The status update manager, as in Mesos: every update is checkpointed before it is sent;
// per task the updates form a queue of which only the head is in flight, resent with
// exponential backoff until the framework's acknowledgement (relayed by the master) removes
// it. A 202 from the master only means it received the call.

// maxConcurrentUpdates bounds the status update calls in flight to the master, and
// maxUpdatesPerCall how many updates one call carries (the master records a call's updates
// in one Raft entry). Few calls in flight make updates that come due meanwhile wait for a
// free call and go out together.
const (
	maxConcurrentUpdates = 4
	maxUpdatesPerCall    = 128
)

// sandboxLabel is the status update label that tells clients (atoll task run, log
// tailers) where the task's sandbox is.
const sandboxLabel = "sandbox_directory"

// updateLocked records a new status of t: the task's record becomes rec with rec.State set
// to status.State, and the status is filled in (task, agent, time, a fresh uuid, container
// status, sandbox label, check status) and queued. Record and update are checkpointed in one transaction
// before anything is sent. For a task of a removed framework nothing is queued, and a
// terminal status removes the task. It reports whether the status was recorded. a.mu must
// be held.
func (a *Agent) updateLocked(t *task, rec taskRecord, status api.TaskStatus) bool {
	rec.State = status.State
	withCheckStatus(&rec, &status)
	if rec.FrameworkRemoved {
		if status.State.Terminal() {
			t.rec = rec
			a.removeTaskLocked(t)
			return true
		}
		if err := a.cp.putTask(&rec); err != nil {
			a.log.Error("cannot checkpoint task", "task", rec.Task.TaskID.Value, "err", err)
			return false
		}
		t.rec = rec
		return true
	}
	status.TaskID = rec.Task.TaskID
	if a.agentID != "" {
		status.AgentID = &api.AgentID{Value: a.agentID}
	}
	status.Timestamp = float64(time.Now().UnixNano()) / 1e9
	id := uuid.New()
	status.UUID = id[:]
	if rec.Container != nil && status.ContainerStatus == nil {
		// The task's own process: the supervisor (ShimPID) is shared by every task.
		pid := rec.Container.PID
		// A task on the host's network has the agent's address; one on the bridge its own.
		networks := rec.Container.NetworkInfos
		if len(networks) == 0 {
			networks = []api.NetworkInfo{{IPAddresses: []api.IPAddress{{IPAddress: a.ip}}}}
		}
		status.ContainerStatus = &api.ContainerStatus{
			ContainerID:  &api.ContainerID{Value: rec.ContainerID},
			ExecutorPID:  uint32(pid),
			NetworkInfos: networks,
		}
	}
	if rec.Sandbox != "" {
		status.Labels = &api.Labels{Labels: []api.Label{{Key: sandboxLabel, Value: rec.Sandbox}}}
	}
	update := api.AgentCallUpdate{FrameworkID: api.FrameworkID{Value: rec.FrameworkID}, Status: status}
	// Queued for the group commit; the sender holds it back until it is written.
	t.rec = rec
	t.queue = append(t.queue, a.cp.appendUpdateAsync(&rec, update))
	a.log.Info("task status", "framework", rec.FrameworkID, "task", rec.Task.TaskID.Value, "state", status.State, "message", status.Message, "reason", status.Reason)
	if len(t.queue) == 1 {
		t.nextSend, t.backoff = time.Time{}, a.cfg.UpdateRetryInitial
		a.kickSender()
	}
	return true
}

// acknowledge removes the acknowledged update from its task's queue; once a terminal
// task's last update is acknowledged the task is forgotten and its container destroyed.
func (a *Agent) acknowledge(ack *api.AgentEventAcknowledge) {
	key := taskKey(ack.FrameworkID.Value, ack.TaskID.Value)
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tasks[key]
	if t == nil {
		a.log.Debug("ignoring acknowledgement for a task this agent does not hold", "framework", ack.FrameworkID.Value, "task", ack.TaskID.Value)
		return
	}
	i := slices.IndexFunc(t.queue, func(q queuedUpdate) bool { return bytes.Equal(q.update.Status.UUID, ack.UUID) })
	if i < 0 {
		a.log.Debug("ignoring acknowledgement of an unknown update", "framework", ack.FrameworkID.Value, "task", ack.TaskID.Value)
		return
	}
	seq := t.queue[i].seq
	t.queue = slices.Delete(t.queue, i, i+1)
	if len(t.queue) == 0 && t.rec.State.Terminal() {
		// The task's deletion takes its queue with it.
		a.removeTaskLocked(t)
		return
	}
	// Not waited for: if the removal is lost in a crash, the update is only sent again.
	a.cp.removeUpdate(key, seq)
	if i == 0 && len(t.queue) > 0 {
		t.nextSend, t.backoff = time.Time{}, a.cfg.UpdateRetryInitial
		a.kickSender()
	}
}

// sendUnreliableLocked sends an update about a launch the agent never took on: it has no
// uuid, so the master records and forwards it without an acknowledgement to wait for, and
// nothing is checkpointed. Without a session it is not sent: a re-subscribing agent does
// not report the task, and the master ends it as gone. a.mu must be held.
func (a *Agent) sendUnreliableLocked(u api.AgentCallUpdate) {
	if a.session == nil {
		return
	}
	sess := *a.session
	if a.agentID != "" {
		u.Status.AgentID = &api.AgentID{Value: a.agentID}
	}
	u.Status.Timestamp = float64(time.Now().UnixNano()) / 1e9
	a.taskGoroutines.Add(1)
	go func() {
		defer a.taskGoroutines.Done()
		err := a.call(context.Background(), sess, api.AgentCall{Type: api.AgentUpdate, AgentID: &api.AgentID{Value: sess.agentID}, Update: &u})
		if err != nil {
			a.log.Warn("status update not delivered", "task", u.Status.TaskID.Value, "state", u.Status.State, "err", err)
		}
	}()
}

func (a *Agent) kickSender() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// sendUpdates sends each task's head update when it is due, until ctx ends. Updates of
// different tasks go out together: a call takes every head due when a call slot is free
// (up to maxUpdatesPerCall), so under load, updates that come due while calls are in
// flight wait for the next free slot and share its call and its Raft entry.
func (a *Agent) sendUpdates(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	slots := make(chan struct{}, maxConcurrentUpdates)
	var sends sync.WaitGroup
	defer sends.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		sess, due, wait := a.dueUpdates(time.Now(), maxUpdatesPerCall)
		if len(due) > 0 {
			sends.Add(1)
			go func() {
				defer sends.Done()
				defer func() { <-slots }()
				if err := a.post(ctx, sess, api.AgentUpdate, newUpdateCall(sess.agentID, due)); err != nil && ctx.Err() == nil {
					a.log.Warn("status updates not delivered, will resend", "updates", len(due), "first_task", due[0].update.Status.TaskID.Value, "err", err)
				}
			}()
			if wait == 0 {
				continue // more are due than one call carries
			}
		} else {
			<-slots
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-timer.C:
		}
	}
}

// updateCall is an UPDATE call whose status updates are JSON already, as they were
// checkpointed: its Update and Updates stand for AgentCall's.
type updateCall struct {
	api.AgentCall
	Update  json.RawMessage   `json:"update,omitempty"`
	Updates []json.RawMessage `json:"updates,omitempty"`
}

// newUpdateCall makes the UPDATE call of agentID that carries due.
func newUpdateCall(agentID string, due []queuedUpdate) updateCall {
	call := updateCall{AgentCall: api.AgentCall{Type: api.AgentUpdate, AgentID: &api.AgentID{Value: agentID}}}
	if len(due) == 1 {
		call.Update = due[0].encoded
		return call
	}
	for _, q := range due {
		call.Updates = append(call.Updates, q.encoded)
	}
	return call
}

// dueUpdates returns up to limit head updates due at now (scheduling their resends), the
// session to send them on, and how long until the next one is due: 0 when more than limit
// were due. Nothing is due while the agent is not registered: registering makes every
// head due at once.
func (a *Agent) dueUpdates(now time.Time, limit int) (session, []queuedUpdate, time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	wait := time.Hour
	if a.session == nil {
		return session{}, nil, wait
	}
	var due []queuedUpdate
	for _, t := range a.tasks {
		if len(t.queue) == 0 {
			continue
		}
		if len(due) == limit {
			if !now.Before(t.nextSend) {
				wait = 0
			}
			continue
		}
		if now.Before(t.nextSend) {
			wait = min(wait, t.nextSend.Sub(now))
			continue
		}
		if head := t.queue[0]; head.written != nil {
			written, err := head.written.settled()
			if !written {
				continue // the commit kicks the sender
			}
			if err != nil {
				a.log.Error("cannot checkpoint status update; it is lost", "task", head.update.Status.TaskID.Value, "state", head.update.Status.State, "err", err)
				t.queue = t.queue[1:]
				t.nextSend = time.Time{}
				continue
			}
		}
		if t.queue[0].encoded == nil {
			// Read from disk.
			encoded, err := json.Marshal(t.queue[0].update)
			if err != nil {
				a.log.Error("cannot encode status update; it is lost", "task", t.queue[0].update.Status.TaskID.Value, "err", err)
				t.queue = t.queue[1:]
				t.nextSend = time.Time{}
				continue
			}
			t.queue[0].encoded = encoded
		}
		due = append(due, t.queue[0])
		t.nextSend = now.Add(t.backoff)
		wait = min(wait, t.backoff)
		t.backoff = min(2*t.backoff, a.cfg.UpdateRetryMax)
	}
	return *a.session, due, wait
}
