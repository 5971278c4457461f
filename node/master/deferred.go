package master

import (
	"context"
	"fmt"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// Launches at a time (a LAUNCH with NotBefore, an Atoll extension): the tasks are
// recorded in Raft when the framework accepts, their LAUNCH events framed, and the leader
// sends them when their time comes. A new leader takes them over from the tasks'
// LaunchAt: those still to come at their time; those whose time passed are sent when
// their agent re-subscribes without them (the previous leader did not send them, or the
// agent would know them).

// deferredLaunch is a task's framed LAUNCH waiting for its time.
type deferredLaunch struct {
	key     state.TaskKey
	agentID string
	at      time.Time
	record  []byte
}

// deferLaunchesLocked sends launches (all due at) on their agent's stream at that time,
// with every other launch due then: one timer a time, so that a burst due at once (the
// ACCEPTs of many offers) is queued on the agents' streams in one go. Until then their
// tasks are pending: a KILL ends them without the agent, and an agent re-registering is
// not asked for them. m.mu is held.
func (m *Master) deferLaunchesLocked(ls *leaderState, at time.Time, launches []*deferredLaunch) {
	ls.addPending(launches)
	waiting, timed := ls.dueAt[at]
	ls.dueAt[at] = append(waiting, launches...)
	if !timed {
		time.AfterFunc(time.Until(at), func() { m.launchDeferred(ls, at) })
	}
}

// addPending makes launches pending: a KILL ends them without the agent, and their
// agent re-registering is not asked for them. m.mu is held.
func (ls *leaderState) addPending(launches []*deferredLaunch) {
	if ls.pending == nil {
		ls.pending, ls.dueAt = map[state.TaskKey]*deferredLaunch{}, map[time.Time][]*deferredLaunch{}
	}
	for _, d := range launches {
		ls.pending[d.key] = d
	}
}

// launchDeferred sends the launches due at at, but for tasks that ended meanwhile
// (killed, their framework removed). A launch whose agent is away stays pending until the
// agent re-subscribes (and is sent then), or until the agent is given up.
func (m *Master) launchDeferred(ls *leaderState, at time.Time) {
	m.mu.Lock()
	launches := ls.dueAt[at]
	delete(ls.dueAt, at)
	m.mu.Unlock()
	// One snapshot for the whole burst, not one per task.
	snap := m.fsm.Store().Snapshot()
	staging := make([]bool, len(launches))
	for i, d := range launches {
		t, ok := snap.Task(d.key.FrameworkID, d.key.TaskID)
		staging[i] = ok && t.State == api.TaskStaging
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	for i, d := range launches {
		if ls.pending[d.key] != d {
			continue
		}
		if !staging[i] {
			delete(ls.pending, d.key)
			continue
		}
		as := ls.agents[d.agentID]
		switch {
		case as == nil:
			delete(ls.pending, d.key)
		case as.stream != nil:
			delete(ls.pending, d.key)
			if as.stream.sendRecord(d.record) {
				m.metrics.tasksLaunched.Inc()
			}
		}
	}
}

// pendingOnLocked lists the launches waiting on agentID: with due, those whose time came
// are taken out of the pending ones, to be sent on the agent's new stream. m.mu is held.
func (m *Master) pendingOnLocked(ls *leaderState, agentID string, due bool, now time.Time) map[state.TaskKey]*deferredLaunch {
	out := map[state.TaskKey]*deferredLaunch{}
	for key, d := range ls.pending {
		if d.agentID != agentID {
			continue
		}
		if due {
			if d.at.After(now) {
				continue
			}
			delete(ls.pending, key)
		}
		out[key] = d
	}
	return out
}

// takeOverLaunchesLocked takes over, on a new leader, the launches of tasks still
// TASK_STAGING with a launch time: those to come are sent at their time, and the others
// when their agent re-subscribes without them. m.mu is held.
func (m *Master) takeOverLaunchesLocked(ls *leaderState, store *state.Store, now time.Time) {
	type batch struct {
		frameworkID, agentID string
		at                   time.Time
	}
	batches := map[batch][]state.Task{}
	for _, t := range store.Tasks() {
		if t.State == api.TaskStaging && !t.LaunchAt.IsZero() {
			b := batch{t.FrameworkID, t.AgentID, t.LaunchAt}
			batches[b] = append(batches[b], *t)
		}
	}
	for b, tasks := range batches {
		fw, ok := store.Framework(b.frameworkID)
		if !ok {
			continue
		}
		frames := frameLaunches(b.frameworkID, fw.Info, tasks)
		if frames.err != nil {
			m.log.Error("could not frame launches a previous leader deferred; their agent reports them lost", "framework", b.frameworkID, "err", frames.err)
			continue
		}
		launches := make([]*deferredLaunch, len(tasks))
		for i, t := range tasks {
			launches[i] = &deferredLaunch{key: t.Key(), agentID: b.agentID, at: b.at, record: frames.records[i]}
		}
		if b.at.After(now) {
			m.deferLaunchesLocked(ls, b.at, launches)
			continue
		}
		// No agent has a stream to a new leader yet: each is sent on its agent's.
		ls.addPending(launches)
	}
}

// killPending ends a task killed before its launch time: TASK_KILLED, recorded by the
// master, and its resources go back. The agent never hears of it.
func (m *Master) killPending(ctx context.Context, ls *leaderState, fid string, d *deferredLaunch, t *state.Task) error {
	st := masterStatus(t.ID, t.AgentID, api.TaskKilled, api.ReasonTaskKilledDuringLaunch, "killed before its launch time")
	if _, err := m.apply(ctx, state.UpdateTaskStatusesType, state.UpdateTaskStatusesRequest{Updates: []state.TaskStatusUpdate{{FrameworkID: fid, TaskID: t.ID, Status: st}}}); err != nil {
		m.mu.Lock()
		if m.leader == ls && ls.pending[d.key] == nil {
			// Not recorded: the launch goes ahead, at its time or at once.
			if d.at.After(time.Now()) {
				ls.pending[d.key] = d
			} else {
				m.deferLaunchesLocked(ls, time.Now(), []*deferredLaunch{d})
			}
		}
		m.mu.Unlock()
		return fmt.Errorf("record the kill of task %s: %w", t.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return errNotLeader
	}
	ls.alloc.Recover(fid, t.AgentID, t.Role, mustResources(t.Info.Resources), 0)
	m.sendUpdateLocked(ls, fid, st)
	ls.triggerAllocation()
	return nil
}
