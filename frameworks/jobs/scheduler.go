package jobs

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/jobs/schedule"
	"github.com/atoll/atoll/frameworks/services/placement"
	"github.com/atoll/atoll/node/master/state"
)

// A run's states: queued (waiting for an offer; its task id is chosen and recorded),
// launched (accepted on an offer), running, and, once ended and in the history, success
// or failure.
const (
	runQueued   = "queued"
	runLaunched = "launched"
	runRunning  = "running"
	runSuccess  = "success"
	runFailure  = "failure"
)

// Why the framework killed a run.
const (
	killedTimeout = "maxCompletionTime"
	killedUser    = "user"
)

// run is one attempt at running a job: a task.
type run struct {
	TaskID  string `json:"taskId"`
	Attempt int    `json:"attempt"`
	// Scheduled is when the run was due: the schedule's time, or when it was asked for.
	Scheduled time.Time `json:"scheduled"`
	Manual    bool      `json:"manual,omitempty"`
	// Arguments replace the job's for this run (PUT /job/{name}?arguments=).
	Arguments []string  `json:"arguments,omitempty"`
	State     string    `json:"state"`
	Agent     string    `json:"agentId,omitempty"`
	Host      string    `json:"host,omitempty"`
	Launched  time.Time `json:"launched,omitzero"`
	Start     time.Time `json:"start,omitzero"`
	End       time.Time `json:"end,omitzero"`
	// TaskState and Message are the task's last status, once it ended.
	TaskState api.TaskState `json:"taskState,omitempty"`
	Message   string        `json:"message,omitempty"`
	// Killed says why the framework killed it (killedTimeout, killedUser).
	Killed string `json:"killed,omitempty"`

	job string
	// persisted says the run is in the replicated state: only then may it launch.
	persisted bool
	// killSent is when the run's kill was last sent, kills how many times it was.
	killSent time.Time
	kills    int
	// aheadIndex is the run's place in Service.ahead while it waits for its time, -1
	// otherwise.
	aheadIndex int
}

// jobState is what changes as a job runs, stored apart from its definition.
type jobState struct {
	SuccessCount           int64     `json:"successCount"`
	ErrorCount             int64     `json:"errorCount"`
	ErrorsSinceLastSuccess int64     `json:"errorsSinceLastSuccess"`
	LastSuccess            time.Time `json:"lastSuccess,omitzero"`
	LastError              time.Time `json:"lastError,omitzero"`
	// LastStatus is runSuccess or runFailure after the first run, "" before.
	LastStatus string `json:"lastStatus,omitempty"`
	// Next is the next scheduled run; zero for dependent jobs and ended schedules.
	Next time.Time `json:"next,omitzero"`
	// Triggered is when the job's parents last set off a run of it.
	Triggered time.Time `json:"triggered,omitzero"`
	// Runs are the runs not yet ended.
	Runs []*run `json:"runs,omitempty"`
}

// entry is a job and its scheduling state.
type entry struct {
	job   *Job
	sched schedule.Schedule
	req   *placement.Requirements
	st    jobState
	// history holds the latest finished runs, oldest first.
	history []*run
	// heapIndex is the entry's place in the timers, -1 when not there.
	heapIndex int
	// fireAt is when the next run is taken (see setTimerLocked).
	fireAt time.Time
	// ahead is the run recorded ahead of its time (see Config.PrepareAhead), nil when
	// none. While there is one the entry is out of the timers: the next run is recorded
	// once this one is due.
	ahead *run
}

func newEntry(j *Job) (*entry, error) {
	sched, err := jobSchedule(j)
	if err != nil {
		return nil, err
	}
	req, err := jobRequirements(j)
	if err != nil {
		return nil, err
	}
	return &entry{job: j, sched: sched, req: req, heapIndex: -1}, nil
}

// newEntry is newEntry for this framework: its runs take resources of the framework's
// role.
func (s *Service) newEntry(j *Job) (*entry, error) {
	e, err := newEntry(j)
	if err != nil {
		return nil, err
	}
	e.req.Role = s.cfg.Role
	return e, nil
}

// active says a run of the job was launched and has not ended.
func (e *entry) active() bool {
	return slices.ContainsFunc(e.st.Runs, func(r *run) bool { return r.State == runLaunched || r.State == runRunning })
}

// hasQueued says a run of the job waits for an offer (not one recorded ahead of its
// time).
func (e *entry) hasQueued() bool {
	return slices.ContainsFunc(e.st.Runs, func(r *run) bool { return r.State == runQueued && r != e.ahead })
}

// timerHeap orders scheduled jobs by when their next run is taken.
type timerHeap []*entry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].fireAt.Before(h[j].fireAt) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *timerHeap) Push(x any) {
	e := x.(*entry)
	e.heapIndex = len(*h)
	*h = append(*h, e)
}
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIndex = -1
	return e
}

// push adds e, or moves it when it is there.
func (h *timerHeap) push(e *entry) {
	if e.heapIndex >= 0 {
		heap.Fix(h, e.heapIndex)
		return
	}
	heap.Push(h, e)
}

// remove takes e out, when it is there.
func (h *timerHeap) remove(e *entry) {
	if e.heapIndex >= 0 {
		heap.Remove(h, e.heapIndex)
	}
}

// peek returns when the earliest next run is taken.
func (h timerHeap) peek() (time.Time, bool) {
	if len(h) == 0 {
		return time.Time{}, false
	}
	return h[0].fireAt, true
}

// setTimerLocked puts e in the timers for its next run, taken Config.PrepareAhead before
// it, or at its time for a disabled job, which records nothing ahead; without a next run
// e leaves them. s.mu is held.
func (s *Service) setTimerLocked(e *entry) {
	if e.st.Next.IsZero() {
		s.timers.remove(e)
		return
	}
	e.fireAt = e.st.Next
	if !e.job.Disabled {
		e.fireAt = e.fireAt.Add(-s.cfg.PrepareAhead)
	}
	s.timers.push(e)
}

// runHeap orders the runs recorded ahead of their time by that time.
type runHeap []*run

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].Scheduled.Before(h[j].Scheduled) }
func (h runHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].aheadIndex, h[j].aheadIndex = i, j
}
func (h *runHeap) Push(x any) {
	r := x.(*run)
	r.aheadIndex = len(*h)
	*h = append(*h, r)
}
func (h *runHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.aheadIndex = -1
	return r
}

// pass takes the runs whose time came and launches them on the offers held for them,
// records the runs due soon (and fires those due now), kills overlong runs (on ticks),
// writes what changed, then acknowledges the updates it took, sends kills, and
// suppresses, revives or declines offers.
func (s *Service) pass(ctx context.Context, tick bool) error {
	s.mu.Lock()
	stream := s.stream
	if stream == nil || !s.ready {
		s.mu.Unlock()
		return nil
	}
	now := s.now()
	if s.takeDueLocked(now) {
		s.fresh = true
	}
	// The launch comes first: it is what the runs due now wait for.
	var plan launchPlan
	if len(s.held) > 0 && s.fresh && s.hasEligible(now) {
		held := make([]api.Offer, 0, len(s.held))
		for _, o := range s.held {
			held = append(held, o)
		}
		clear(s.held)
		plan = s.planLocked(held, now)
	}
	s.fresh = false
	s.mu.Unlock()
	if err := s.execute(ctx, stream, plan); err != nil {
		return err
	}

	s.mu.Lock()
	now = s.now()
	for len(s.timers) > 0 && !s.timers[0].fireAt.After(now) {
		s.fire(s.timers[0], now)
	}
	if tick {
		s.checkDeadlines(now)
	}
	if err := s.flushLocked(ctx); err != nil {
		s.mu.Unlock()
		return err
	}
	acks := s.acks
	s.acks = nil
	kills := s.kills
	s.kills = map[string]string{}
	wanted := s.aheadWaiting() || s.hasEligible(now)
	revive := wanted && (s.suppressed || s.declinedIdle)
	suppress := !wanted && !s.suppressed
	if revive {
		s.suppressed, s.declinedIdle = false, false
	}
	if suppress {
		s.suppressed = true
	}
	var release []api.OfferID
	if !wanted {
		for id := range s.held {
			release = append(release, api.OfferID{Value: id})
		}
		clear(s.held)
	}
	if s.fresh && len(s.held) > 0 {
		// Runs queued now may launch on the offers held: in a pass of their own, which
		// comes at once.
		s.trigger()
	}
	s.mu.Unlock()

	// An update not acknowledged (its agent went away meanwhile) is sent again by the
	// agent, and acknowledged then.
	var ackErr error
	failed := 0
	for _, st := range acks {
		if st.AgentID == nil {
			continue
		}
		call := &api.Call{Type: api.CallAcknowledge, Acknowledge: &api.Acknowledge{AgentID: *st.AgentID, TaskID: st.TaskID, UUID: st.UUID}}
		if err := s.call(ctx, stream, call); err != nil {
			ackErr = cmp.Or(ackErr, fmt.Errorf("acknowledge %s: %w", st.TaskID.Value, err))
			failed++
		}
	}
	if ackErr != nil {
		s.log.Info("status updates not acknowledged; their agents send them again", "updates", failed, "err", ackErr)
	}
	for taskID, agentID := range kills {
		call := &api.Call{Type: api.CallKill, Kill: &api.Kill{TaskID: api.TaskID{Value: taskID}, AgentID: &api.AgentID{Value: agentID}}}
		if err := s.call(ctx, stream, call); err != nil {
			return fmt.Errorf("kill %s: %w", taskID, err)
		}
	}
	if len(release) > 0 {
		if err := s.decline(ctx, stream, release, s.cfg.DeclineIdle); err != nil {
			return err
		}
	}
	switch {
	case revive:
		return s.call(ctx, stream, &api.Call{Type: api.CallRevive, Revive: &api.Revive{}})
	case suppress:
		return s.call(ctx, stream, &api.Call{Type: api.CallSuppress, Suppress: &api.Suppress{}})
	}
	return nil
}

// call sends a scheduler call of stream's subscription: straight to the master when the
// framework is built into it, else through the stream's client.
func (s *Service) call(ctx context.Context, stream *api.SchedulerStream, call *api.Call) error {
	if s.direct == nil {
		return stream.Call(ctx, call)
	}
	id := stream.FrameworkID()
	call.FrameworkID = &id
	if err := s.direct(ctx, stream.StreamID(), call); err != nil {
		return fmt.Errorf("%s: %w", call.Type, err)
	}
	return nil
}

// decline declines offers, refused for refuse.
func (s *Service) decline(ctx context.Context, stream *api.SchedulerStream, ids []api.OfferID, refuse time.Duration) error {
	seconds := refuse.Seconds()
	call := &api.Call{Type: api.CallDecline, Decline: &api.Decline{OfferIDs: ids, Filters: &api.Filters{RefuseSeconds: &seconds}}}
	if err := s.call(ctx, stream, call); err != nil {
		return fmt.Errorf("decline: %w", err)
	}
	return nil
}

// fire takes the next run of a scheduled job, due now or within Config.PrepareAhead,
// and sets the one after. A run due later is recorded ahead of its time, to be launched
// when it comes (see takeDueLocked), and the job leaves the timers until then. A run
// due now is queued, unless the job is disabled, or does not run concurrently and a run
// already waits. Runs the schedule passed while no master led are not made up: one
// runs, then the schedule goes on from now. s.mu is held.
func (s *Service) fire(e *entry, now time.Time) {
	due := e.st.Next
	e.st.Next = time.Time{}
	if next, ok := e.sched.Next(maxTime(due, now)); ok {
		e.st.Next = next
	}
	s.dirty[e.job.Name] = true
	switch {
	case due.After(now) && !e.job.Disabled:
		e.ahead = s.queueRun(e, due, 0, nil, false)
		heap.Push(&s.ahead, e.ahead)
		s.timers.remove(e)
		return
	case e.job.Disabled || (!e.job.Concurrent && e.hasQueued()):
	default:
		s.queueRun(e, due, 0, nil, false)
	}
	s.setTimerLocked(e)
}

// takeDueLocked takes the runs recorded ahead whose time came: each may launch from now
// on, unless its job was disabled meanwhile or does not run concurrently and has an
// earlier run still waiting, which is as if it fired now. Their jobs go back to the
// timers. It says whether there were any. s.mu is held.
func (s *Service) takeDueLocked(now time.Time) bool {
	took := false
	for len(s.ahead) > 0 && !s.ahead[0].Scheduled.After(now) {
		took = true
		r := heap.Pop(&s.ahead).(*run)
		e := s.jobs[r.job]
		if e == nil || e.ahead != r {
			continue
		}
		s.endAheadLocked(e)
		if r.State != runQueued {
			// Launched ahead, at this time.
			continue
		}
		earlier := slices.ContainsFunc(e.st.Runs, func(x *run) bool { return x != r && x.State == runQueued && x.Scheduled.Before(r.Scheduled) })
		if e.job.Disabled || (!e.job.Concurrent && earlier) {
			s.dropQueuedLocked(e, r)
		}
	}
	return took
}

// endAheadLocked ends e's wait for its run recorded ahead: the job goes back to the
// timers. s.mu is held.
func (s *Service) endAheadLocked(e *entry) {
	if e.ahead == nil {
		return
	}
	if e.ahead.aheadIndex >= 0 {
		heap.Remove(&s.ahead, e.ahead.aheadIndex)
	}
	e.ahead = nil
	s.setTimerLocked(e)
}

// dropQueuedLocked removes a run that waits for an offer or for its time. s.mu is held.
func (s *Service) dropQueuedLocked(e *entry, r *run) {
	if e.ahead == r {
		s.endAheadLocked(e)
	}
	delete(s.queued, r)
	e.st.Runs = slices.DeleteFunc(e.st.Runs, func(x *run) bool { return x == r })
	s.dirty[e.job.Name] = true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// queueRun adds a run of e waiting for an offer, its task id chosen now. s.mu is held.
func (s *Service) queueRun(e *entry, scheduled time.Time, attempt int, args []string, manual bool) *run {
	r := &run{
		TaskID:    newTaskID(e.job.Name, scheduled, attempt),
		Attempt:   attempt,
		Scheduled: scheduled,
		Manual:    manual,
		Arguments: args,
		State:     runQueued,
		job:       e.job.Name,

		aheadIndex: -1,
	}
	e.st.Runs = append(e.st.Runs, r)
	s.queued[r] = struct{}{}
	s.dirty[e.job.Name] = true
	return r
}

// newTaskID is a task id in Chronos's form, ct:<due ms>:<attempt>:<job>:, with a random
// suffix so that two runs due at once differ.
func newTaskID(job string, scheduled time.Time, attempt int) string {
	return fmt.Sprintf("ct:%d:%d:%s:%s", scheduled.UnixMilli(), attempt, job, uuid.NewString()[:8])
}

// checkDeadlines kills runs that ran longer than their job's maxCompletionTime, and
// sends again kills that went unanswered; runs of Metronome jobs not started by their
// deadline fail. s.mu is held.
func (s *Service) checkDeadlines(now time.Time) {
	for _, r := range s.byTask {
		e := s.jobs[r.job]
		if e == nil {
			continue
		}
		switch {
		case r.Killed == "" && e.job.MaxCompletionTime > 0 && !r.Start.IsZero() && now.Sub(r.Start) > time.Duration(e.job.MaxCompletionTime)*time.Millisecond:
			r.Killed = killedTimeout
			s.sendKillLocked(r, now)
		case r.Killed != "" && now.Sub(r.killSent) >= killRetry<<min(r.kills-1, maxKillBackoff):
			s.sendKillLocked(r, now)
		}
	}
	s.checkLaunchDeadlines(now)
}

// A kill that goes unanswered (its agent may have been away) is sent again after
// killRetry, then after twice as long each time, up to killRetry<<maxKillBackoff (40 s):
// when thousands of runs are killed at once, their ends take seconds to come back, and
// kills sent again meanwhile only add to what the master and agents must do.
const (
	killRetry      = 5 * time.Second
	maxKillBackoff = 3
)

// sendKillLocked has the run's task killed by the next pass. s.mu is held.
func (s *Service) sendKillLocked(r *run, now time.Time) {
	r.killSent = now
	r.kills++
	s.kills[r.TaskID] = r.Agent
}

// killRunLocked kills a launched run, or drops a queued one. s.mu is held.
func (s *Service) killRunLocked(e *entry, r *run, why string, now time.Time) {
	if r.State == runQueued {
		s.dropQueuedLocked(e, r)
		return
	}
	r.Killed = why
	s.sendKillLocked(r, now)
}

// eligible says a queued run may launch now: it is in the replicated state, its time
// came — or it is the run recorded ahead of an enabled job, launched now to start at its
// time (a LAUNCH with NotBefore) — and its job runs concurrently or has no run launched
// and no earlier run waiting.
func (s *Service) eligible(r *run, now time.Time) bool {
	e := s.jobs[r.job]
	if e == nil || !r.persisted {
		return false
	}
	if r.Scheduled.After(now) && (e.ahead != r || e.job.Disabled || r.Scheduled.Sub(now) > api.MaxLaunchAhead) {
		return false
	}
	if e.job.Concurrent {
		return true
	}
	if e.active() {
		return false
	}
	first := slices.IndexFunc(e.st.Runs, func(x *run) bool { return x.State == runQueued })
	return first >= 0 && e.st.Runs[first] == r
}

// hasEligible says a run may launch now. s.mu is held.
func (s *Service) hasEligible(now time.Time) bool {
	for r := range s.queued {
		if s.eligible(r, now) {
			return true
		}
	}
	return false
}

// maxMisses is how many runs in a row may not fit an offer before it is given up: the
// rest would not fit either, nearly always.
const maxMisses = 256

// launchPlan is what a round of offers comes to: the tasks launched on each offer, and
// the offers declined.
type launchPlan struct {
	accepts  []offerLaunch
	declines []api.OfferID
	// refuse is how long the declined offers are refused.
	refuse time.Duration
	// now is when the plan was made: runs due later launch at their time.
	now time.Time
}

// offerLaunch is the runs launched on one offer.
type offerLaunch struct {
	offer api.Offer
	runs  []placedRun
}

// placedRun is a run placed on an offer: its job, and the resources it takes.
type placedRun struct {
	job       *Job
	run       *run
	resources []api.Resource
}

// offers launches the waiting runs on the offers; what is left is held while runs wait
// for their time (so that they launch the moment it comes), else declined.
func (s *Service) offers(ctx context.Context, offers []api.Offer) error {
	s.mu.Lock()
	stream := s.stream
	plan := s.planLocked(offers, s.now())
	s.mu.Unlock()
	return s.execute(ctx, stream, plan)
}

// planLocked places the runs that may launch now on offers, earliest due first, each
// offer first taking an even share of them, so that a burst is launched by as many
// ACCEPTs at once as there are offers, then as many as fit (up to
// Config.MaxLaunchesPerOffer). The runs placed are marked launched. An offer no run
// took is held while runs wait for their time, and declined otherwise. s.mu is held.
func (s *Service) planLocked(offers []api.Offer, now time.Time) launchPlan {
	var waiting []*run
	for r := range s.queued {
		if s.eligible(r, now) {
			waiting = append(waiting, r)
		}
	}
	slices.SortFunc(waiting, func(a, b *run) int {
		if c := a.Scheduled.Compare(b.Scheduled); c != 0 {
			return c
		}
		return strings.Compare(a.TaskID, b.TaskID)
	})
	placed := make([][]placedRun, len(offers))
	if len(waiting) > 0 && len(offers) > 0 {
		remaining := slices.Clone(offers)
		planners := map[*entry]*placement.Planner{}
		taken := make([]bool, len(waiting))
		// A job that does not run concurrently launches one run per round.
		launchedJob := map[string]bool{}
		place := func(i, limit int) {
			offer := &offers[i]
			misses := 0
			for k, r := range waiting {
				if len(placed[i]) >= limit || misses >= maxMisses {
					return
				}
				if taken[k] || launchedJob[r.job] {
					continue
				}
				e := s.jobs[r.job]
				planner := planners[e]
				if planner == nil {
					planner = placement.NewPlanner(e.req, nil)
					planners[e] = planner
				}
				claims, _ := planner.MatchMany(&remaining[i], 1)
				if len(claims) == 0 {
					misses++
					continue
				}
				misses = 0
				taken[k] = true
				if !e.job.Concurrent {
					launchedJob[r.job] = true
				}
				placed[i] = append(placed[i], placedRun{e.job, r, claims[0].Resources})
				delete(s.queued, r)
				r.State, r.Agent, r.Host, r.Launched = runLaunched, offer.AgentID.Value, offer.Hostname, maxTime(now, r.Scheduled)
				s.byTask[r.TaskID] = r
				remaining[i].Resources = placement.Remaining(remaining[i].Resources, claims[0].Resources)
			}
		}
		share := min(s.cfg.MaxLaunchesPerOffer, (len(waiting)+len(offers)-1)/len(offers))
		for i := range offers {
			place(i, share)
		}
		if share < s.cfg.MaxLaunchesPerOffer && slices.Contains(taken, false) {
			for i := range offers {
				place(i, s.cfg.MaxLaunchesPerOffer)
			}
		}
	}
	plan := launchPlan{refuse: s.cfg.DeclineIdle, now: now}
	if len(waiting) > 0 {
		plan.refuse = s.cfg.DeclineUnfit
	}
	hold := s.aheadWaiting()
	for i, offer := range offers {
		switch {
		case len(placed[i]) > 0:
			plan.accepts = append(plan.accepts, offerLaunch{offer, placed[i]})
		case hold:
			s.held[offer.ID.Value] = offer
		default:
			plan.declines = append(plan.declines, offer.ID)
		}
	}
	if len(waiting) == 0 && len(plan.declines) > 0 {
		s.declinedIdle = true
	}
	return plan
}

// execute sends a plan's ACCEPTs, all at once (each builds its tasks), then its
// DECLINE. The runs of ACCEPTs that failed go back to the queue unless the master
// recorded their tasks.
func (s *Service) execute(ctx context.Context, stream *api.SchedulerStream, plan launchPlan) error {
	errs := make([]error, len(plan.accepts))
	tasks := make([][]api.TaskInfo, len(plan.accepts))
	var wg sync.WaitGroup
	for i, launch := range plan.accepts {
		wg.Go(func() {
			tasks[i] = make([]api.TaskInfo, len(launch.runs))
			// One LAUNCH per start time: the runs come earliest due first.
			var ops []api.OfferOperation
			start := 0
			for k, p := range launch.runs {
				tasks[i][k] = s.taskInfo(p.job, p.run, &launch.offer, p.resources)
				if k+1 < len(launch.runs) && launchTime(launch.runs[k+1].run, plan.now).Equal(launchTime(p.run, plan.now)) {
					continue
				}
				op := &api.LaunchOperation{TaskInfos: tasks[i][start : k+1]}
				if at := launchTime(p.run, plan.now); !at.IsZero() {
					op.NotBefore = &api.TimeInfo{Nanoseconds: at.UnixNano()}
				}
				ops = append(ops, api.OfferOperation{Type: api.OperationLaunch, Launch: op})
				start = k + 1
			}
			zero := 0.0
			errs[i] = s.call(ctx, stream, &api.Call{Type: api.CallAccept, Accept: &api.Accept{
				OfferIDs:   []api.OfferID{launch.offer.ID},
				Operations: ops,
				Filters:    &api.Filters{RefuseSeconds: &zero},
			}})
		})
	}
	wg.Wait()
	var failed []api.TaskInfo
	var firstErr error
	for i, err := range errs {
		if err != nil {
			failed = append(failed, tasks[i]...)
			firstErr = cmp.Or(firstErr, err)
		}
	}
	if firstErr != nil {
		if err := s.requeueUnrecorded(ctx, failed); err != nil {
			return fmt.Errorf("accept: %w; %w: %w", firstErr, errReload, err)
		}
		return fmt.Errorf("accept: %w", firstErr)
	}
	if len(plan.declines) > 0 {
		return s.decline(ctx, stream, plan.declines, plan.refuse)
	}
	return nil
}

// launchTime is when a run placed at now starts: zero for at once, or its time when that
// is later.
func launchTime(r *run, now time.Time) time.Time {
	if r.Scheduled.After(now) {
		return r.Scheduled
	}
	return time.Time{}
}

// aheadWaiting says a run recorded ahead of its time still waits to be launched, so that
// offers are held for it. s.mu is held.
func (s *Service) aheadWaiting() bool {
	return slices.ContainsFunc(s.ahead, func(r *run) bool { return r.State == runQueued })
}

// requeueUnrecorded puts back in the queue the runs of tasks an ACCEPT that failed did
// not get into the master's task table. When the master cannot tell, it returns why and
// leaves the rest for a new load of the state (errReload).
func (s *Service) requeueUnrecorded(ctx context.Context, tasks []api.TaskInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	live, _, err := s.host.Tasks(ctx, s.frameworkID)
	if err != nil {
		return fmt.Errorf("which runs the master recorded: %w", err)
	}
	recorded := map[string]bool{}
	for _, t := range live {
		recorded[t.ID] = true
	}
	for _, t := range tasks {
		if recorded[t.TaskID.Value] {
			continue
		}
		if r := s.byTask[t.TaskID.Value]; r != nil {
			delete(s.byTask, r.TaskID)
			r.State = runQueued
			s.queued[r] = struct{}{}
		}
	}
	return nil
}

// taskInfo is the task of a run of j on an offer, taking resources of it. It reads only
// what does not change once a run is queued, so it needs no lock.
func (s *Service) taskInfo(j *Job, r *run, offer *api.Offer, resources []api.Resource) api.TaskInfo {
	args := j.Arguments
	if len(r.Arguments) > 0 {
		args = r.Arguments
	}
	value := j.Command
	cmd := &api.CommandInfo{Shell: j.Shell, Value: &value}
	if j.Shell == nil || *j.Shell {
		for _, a := range args {
			value += " " + shellQuote(a)
		}
	} else {
		cmd.Arguments = append([]string{j.Command}, args...)
	}
	user := j.RunAsUser
	if user == "" {
		user = s.cfg.User
	}
	cmd.User = &user
	vars := []api.EnvironmentVariable{
		{Name: "CHRONOS_JOB_NAME", Value: j.Name},
		{Name: "CHRONOS_JOB_OWNER", Value: j.Owner},
		{Name: "CHRONOS_JOB_RUN_TIME", Value: r.Scheduled.UTC().Format(time.RFC3339)},
		{Name: "CHRONOS_JOB_RUN_ATTEMPT", Value: strconv.Itoa(r.Attempt)},
		{Name: "CHRONOS_RESOURCE_CPU", Value: strconv.FormatFloat(j.CPUs, 'f', -1, 64)},
		{Name: "CHRONOS_RESOURCE_MEM", Value: strconv.FormatFloat(j.Mem, 'f', -1, 64)},
		{Name: "CHRONOS_RESOURCE_DISK", Value: strconv.FormatFloat(j.Disk, 'f', -1, 64)},
		{Name: "mesos_task_id", Value: r.TaskID},
		{Name: "HOST", Value: offer.Hostname},
	}
	for _, v := range j.EnvironmentVariables {
		vars = append(vars, api.EnvironmentVariable{Name: v.Name, Value: v.Value})
	}
	cmd.Environment = &api.Environment{Variables: vars}
	for _, f := range j.Fetch {
		cmd.URIs = append(cmd.URIs, api.CommandURI{Value: f.URI, Executable: f.Executable, Extract: f.Extract, Cache: f.Cache})
	}
	for _, u := range j.URIs {
		cmd.URIs = append(cmd.URIs, api.CommandURI{Value: u})
	}
	task := api.TaskInfo{
		Name:      "ChronosTask:" + j.Name,
		TaskID:    api.TaskID{Value: r.TaskID},
		AgentID:   offer.AgentID,
		Resources: resources,
		Command:   cmd,
		Labels: &api.Labels{Labels: []api.Label{
			{Key: api.LabelJobName, Value: j.Name},
			{Key: api.LabelJobScheduled, Value: r.Scheduled.UTC().Format(time.RFC3339Nano)},
			{Key: api.LabelJobAttempt, Value: strconv.Itoa(r.Attempt)},
		}},
	}
	if c := j.Container; c != nil {
		info := &api.ContainerInfo{Type: c.Type}
		for _, v := range c.Volumes {
			info.Volumes = append(info.Volumes, api.Volume{ContainerPath: v.ContainerPath, HostPath: v.HostPath, Mode: v.Mode})
		}
		switch c.Type {
		case "MESOS":
			info.Mesos = &api.MesosInfo{Image: &api.Image{Type: "DOCKER", Docker: &api.ImageDocker{Name: c.Image}}}
		default:
			docker := &api.DockerInfo{Image: c.Image, Network: c.Network, ForcePullImage: c.ForcePullImage}
			for _, p := range c.Parameters {
				docker.Parameters = append(docker.Parameters, api.Parameter{Key: p.Key, Value: p.Value})
			}
			info.Docker = docker
		}
		task.Container = info
	}
	return task
}

// shellQuote quotes an argument for /bin/sh.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// updateLocked takes a task's status: the run follows it, and ends with the task. The
// update is acknowledged once what it changed is written. s.mu is held.
func (s *Service) updateLocked(st *api.TaskStatus, now time.Time) {
	if len(st.UUID) > 0 {
		s.acks = append(s.acks, *st)
	}
	r := s.byTask[st.TaskID.Value]
	if r == nil {
		// A task of no run: left from a job deleted while its task ran.
		if !st.State.Terminal() && st.AgentID != nil {
			s.kills[st.TaskID.Value] = st.AgentID.Value
		}
		return
	}
	e := s.jobs[r.job]
	if st.AgentID != nil {
		r.Agent = st.AgentID.Value
	}
	switch {
	case st.State == api.TaskRunning && r.State != runRunning:
		// Not written: the master's record of the task says it runs, and since when, to
		// a new leader (see load). A burst of launches is not followed by a burst of
		// writes.
		r.State, r.Start = runRunning, statusTime(st, now)
	case st.State == api.TaskDropped && r.State == runLaunched && r.Killed == "":
		// The master dropped the launch (the offer went away): the run waits again.
		delete(s.byTask, r.TaskID)
		r.State = runQueued
		s.queued[r] = struct{}{}
	case st.State.Terminal():
		s.finishLocked(e, r, st, now)
	}
}

// statusTime is when a status was produced.
func statusTime(st *api.TaskStatus, now time.Time) time.Time {
	if st.Timestamp > 0 {
		return time.Unix(0, int64(st.Timestamp*float64(time.Second))).UTC()
	}
	return now
}

// finishLocked ends a run: it goes to the history and the counters; a failed run is
// retried while the job has retries left (not a run a user killed, nor one past its
// Metronome deadlines: see mayRetry); a successful one sets off the job's children whose
// parents all succeeded. s.mu is held.
func (s *Service) finishLocked(e *entry, r *run, st *api.TaskStatus, now time.Time) {
	delete(s.byTask, r.TaskID)
	delete(s.queued, r)
	if e == nil {
		return
	}
	e.st.Runs = slices.DeleteFunc(e.st.Runs, func(x *run) bool { return x == r })
	success := st.State == api.TaskFinished
	r.End, r.TaskState, r.Message = statusTime(st, now), st.State, st.Message
	r.State = runFailure
	if success {
		r.State = runSuccess
	}
	e.history = append(e.history, r)
	if over := len(e.history) - s.cfg.HistorySize; over > 0 {
		e.history = slices.Delete(e.history, 0, over)
	}
	s.dirty[e.job.Name], s.dirtyHistory[e.job.Name] = true, true
	if success {
		e.st.SuccessCount++
		e.st.LastSuccess, e.st.ErrorsSinceLastSuccess, e.st.LastStatus = r.End, 0, runSuccess
		s.triggerChildren(e.job.Name, now)
		return
	}
	if r.Killed != killedUser && r.Attempt < *e.job.Retries && s.mayRetry(e, r, now) {
		s.queueRun(e, r.Scheduled, r.Attempt+1, r.Arguments, r.Manual)
		return
	}
	e.st.ErrorCount++
	e.st.ErrorsSinceLastSuccess++
	e.st.LastError, e.st.LastStatus = r.End, runFailure
}

// triggerChildren queues a run of each child of parent whose parents have all succeeded
// since the child last ran for them. s.mu is held.
func (s *Service) triggerChildren(parent string, now time.Time) {
	for _, child := range s.childrenOf(parent) {
		c := s.jobs[child]
		if c == nil || c.job.Disabled {
			continue
		}
		ready := true
		for _, p := range c.job.Parents {
			pe := s.jobs[p]
			if pe == nil || pe.st.LastStatus != runSuccess || !pe.st.LastSuccess.After(c.st.Triggered) {
				ready = false
				break
			}
		}
		if !ready {
			continue
		}
		c.st.Triggered = now
		s.dirty[child] = true
		if !c.job.Concurrent && c.hasQueued() {
			continue
		}
		s.queueRun(c, now, 0, nil, false)
	}
}

// childrenOf returns the jobs that name parent among their parents, by name.
func (s *Service) childrenOf(parent string) []string {
	var out []string
	for name := range s.children[parent] {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// flushLocked writes the state and history of the jobs that changed. s.mu is held.
func (s *Service) flushLocked(ctx context.Context) error {
	if len(s.dirty) == 0 && len(s.dirtyHistory) == 0 {
		return nil
	}
	var puts []state.KVPut
	for name := range s.dirty {
		e := s.jobs[name]
		if e == nil {
			continue
		}
		data, err := json.Marshal(&e.st)
		if err != nil {
			return fmt.Errorf("encode the state of job %s: %w", name, err)
		}
		puts = append(puts, state.KVPut{Key: stateKey(name), Value: data})
	}
	for name := range s.dirtyHistory {
		e := s.jobs[name]
		if e == nil {
			continue
		}
		data, err := json.Marshal(e.history)
		if err != nil {
			return fmt.Errorf("encode the history of job %s: %w", name, err)
		}
		puts = append(puts, state.KVPut{Key: historyKey(name), Value: data})
	}
	for len(puts) > 0 {
		n := min(len(puts), maxPutsPerWrite)
		if _, err := s.host.WriteKV(ctx, &state.WriteKVRequest{Namespace: s.namespace, Puts: puts[:n]}); err != nil {
			return fmt.Errorf("record the jobs' state: %w", err)
		}
		puts = puts[n:]
	}
	for name := range s.dirty {
		if e := s.jobs[name]; e != nil {
			for _, r := range e.st.Runs {
				if !r.persisted && r.State == runQueued {
					s.fresh = true
				}
				r.persisted = true
			}
		}
	}
	clear(s.dirty)
	clear(s.dirtyHistory)
	return nil
}
