// Package jobs is Atoll's jobs framework: Chronos-compatible batch jobs on ISO 8601 or
// cron schedules, or run when their parents succeed, with retries and a history of runs,
// served as the Chronos API (/v1/scheduler and /scheduler) on the master port.
//
// It is a framework like any other: built in, it runs on the leading master (a
// master.LeaderService) and talks to the scheduler API through the master's in-process
// client; run as a process of its own (`atoll framework jobs`), it does the same over
// HTTP. Jobs, their counters and history, and every run not yet ended live in the
// replicated key-value table, in its namespace; a run is recorded with its task id
// before the task is launched, and its tasks are labelled with the job, so a new leader
// follows the runs the old one launched and launches, exactly once, those it had only
// recorded. Runs missed while no master led run once when one does.
package jobs

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/host"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

// Config configures the jobs framework.
type Config struct {
	// Logger receives the framework's logs.
	Logger *slog.Logger
	// Name is the framework's name: "chronos", so that DNS names its tasks
	// <job>.chronos.<domain> as Mesos-DNS did.
	Name string
	// User runs tasks whose job names no runAsUser.
	User string
	// Role is the role the framework subscribes with (Chronos's --mesos_role) and its
	// runs take resources of.
	Role string
	// Principal authenticates the framework to the master ("" for none).
	Principal string
	// FailoverTimeout is how long the master keeps the framework's tasks while no leader
	// runs it (a week, as the services framework).
	FailoverTimeout time.Duration
	// HistorySize is how many finished runs each job keeps.
	HistorySize int
	// DeclineIdle is how long offers are refused while no run waits; the framework
	// revives when one is due.
	DeclineIdle time.Duration
	// DeclineUnfit is how long an offer is refused that no waiting run could use.
	DeclineUnfit time.Duration
	// TickInterval is how often overlong runs and unanswered kills are looked for.
	TickInterval time.Duration
	// MaxLaunchesPerOffer bounds the runs launched on one offer.
	MaxLaunchesPerOffer int
	// PrepareAhead is how long before a scheduled run is due it is recorded and launched
	// (a LAUNCH with NotBefore: its task and resources are the master's from then on),
	// so that when its time comes only the send to the agent is left. A run never starts
	// before its time. At most api.MaxLaunchAhead.
	PrepareAhead time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// DefaultConfig is the production preset.
func DefaultConfig() Config {
	return Config{
		Logger:          slog.Default(),
		Name:            "chronos",
		User:            "root",
		Role:            "*",
		FailoverTimeout: 7 * 24 * time.Hour,
		// Ten runs show a pattern of failures without making a job's record large.
		HistorySize: 10,
		// Runs come at known times and the framework revives for them: idle offers can go
		// to other frameworks for long.
		DeclineIdle: 120 * time.Second,
		// Short: a run that did not fit one agent must not wait long for another.
		DeclineUnfit: time.Second,
		// maxCompletionTime is in milliseconds but a second is precise enough for it.
		TickInterval: time.Second,
		// A minute boundary with thousands of jobs due fills agents in a few offers.
		MaxLaunchesPerOffer: 1000,
		// Recording 10,000 runs due at one minute boundary takes well under a second, and
		// offers come a moment after a revive; seconds more cover a loaded machine. Offers
		// are held that long before a run, kept from other frameworks.
		// Recording and launching 10,000 runs takes seconds on a loaded machine.
		PrepareAhead: 15 * time.Second,
	}
}

// builtinNamespace is the built-in framework's part of the replicated key-value table
// (one run by itself has a namespace of its own). Its keys: frameworkIDKey; jobKey(name)
// for each job's definition; stateKey(name) for its counters, next run and the runs not
// yet ended; historyKey(name) for its finished runs; metronomeKey(name) for what a job
// made or changed through the Metronome API has beyond the Chronos model.
const (
	builtinNamespace = "jobs"
	frameworkIDKey   = "framework-id"
)

func jobKey(name string) string     { return "job/" + name }
func stateKey(name string) string   { return "state/" + name }
func historyKey(name string) string { return "history/" + name }

// maxEventsPerPass bounds the events taken between two passes.
const maxEventsPerPass = 1000

// maxPutsPerWrite bounds the keys of one replicated write: a minute boundary with
// 10,000 jobs due is a few writes, each of a size Raft moves quickly.
const maxPutsPerWrite = 2000

// Service is the jobs framework on one host. Where the host leads it schedules;
// elsewhere its API forwards there.
type Service struct {
	cfg  Config
	log  *slog.Logger
	host host.Host
	// namespace is the host's key-value namespace.
	namespace string
	// direct sends scheduler calls straight to the master the framework is built into;
	// nil sends them through the stream's client.
	direct func(ctx context.Context, streamID string, call *api.Call) error

	// wake asks the scheduler loop for a pass soon.
	wake chan struct{}

	// mu guards everything below: the scheduler loop and the API handlers share it. It is
	// held across replicated writes, so that they land in the order memory changed.
	mu sync.Mutex
	// ready says the state was loaded for the current term; the API answers 503 before.
	ready       bool
	frameworkID string
	jobs        map[string]*entry
	// metronome holds what jobs made or changed through the Metronome API have beyond
	// the Chronos model, by job name.
	metronome map[string]*metronomeMeta
	// children indexes the jobs by each of their parents.
	children map[string]map[string]bool
	// timers orders scheduled jobs by their next run (those with no run recorded ahead).
	timers timerHeap
	// ahead orders the runs recorded ahead of their time by it.
	ahead runHeap
	// held are offers kept for the runs recorded ahead, by offer id.
	held map[string]api.Offer
	// fresh says runs became able to launch since the offers held were last tried.
	fresh bool
	// byTask indexes the runs launched, by task id.
	byTask map[string]*run
	// queued holds the runs waiting for an offer.
	queued map[*run]struct{}
	// dirty names the jobs whose state changed since the last write; dirtyHistory those
	// whose history did.
	dirty, dirtyHistory map[string]bool
	// acks are status updates to acknowledge once the state they changed is written.
	acks []api.TaskStatus
	// kills are task ids to kill, sent by the loop.
	kills map[string]string // task id → agent id
	// stream is the term's subscription, nil between terms.
	stream *api.SchedulerStream
	// suppressed says offers are suppressed (no run waits); declinedIdle that offers were
	// declined for long since the last revive.
	suppressed, declinedIdle bool
}

// Attach creates the built-in jobs framework on m: its scheduler runs while m leads, and
// its API is served on m's handler (Chronos's /v1/scheduler and /scheduler paths). Call
// it from a master.Config extension.
func Attach(m *master.Master, cfg Config) *Service {
	s := New(host.NewInMaster(m, builtinNamespace), cfg)
	s.direct = m.SchedulerCall
	return s
}

// New creates the jobs framework on h: its scheduler runs while h leads, and its API is
// served on h's routes. Zero fields of cfg take DefaultConfig's values.
func New(h host.Host, cfg Config) *Service {
	def := DefaultConfig()
	if cfg.Logger == nil {
		cfg.Logger = def.Logger
	}
	if cfg.Name == "" {
		cfg.Name = def.Name
	}
	if cfg.User == "" {
		cfg.User = def.User
	}
	if cfg.Role == "" {
		cfg.Role = def.Role
	}
	if cfg.FailoverTimeout == 0 {
		cfg.FailoverTimeout = def.FailoverTimeout
	}
	if cfg.HistorySize == 0 {
		cfg.HistorySize = def.HistorySize
	}
	if cfg.DeclineIdle == 0 {
		cfg.DeclineIdle = def.DeclineIdle
	}
	if cfg.DeclineUnfit == 0 {
		cfg.DeclineUnfit = def.DeclineUnfit
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = def.TickInterval
	}
	if cfg.MaxLaunchesPerOffer == 0 {
		cfg.MaxLaunchesPerOffer = def.MaxLaunchesPerOffer
	}
	if cfg.PrepareAhead == 0 {
		cfg.PrepareAhead = def.PrepareAhead
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "jobs"),
		host:      h,
		namespace: h.Namespace(),
		wake:      make(chan struct{}, 1),
	}
	h.Lead(s)
	s.routes()
	return s
}

// Name names the leader service.
func (s *Service) Name() string { return "jobs" }

// Run schedules while its host leads: it loads the state, subscribes, and runs the
// scheduler loop, subscribing again if the stream ends, until ctx does. A stream that
// ended with the framework unsure of its runs (errReload) has the state loaded again.
func (s *Service) Run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		s.ready, s.stream = false, nil
		s.mu.Unlock()
	}()
	if err := s.load(ctx); err != nil {
		s.log.Error("cannot load the jobs state; the framework does not run this term", "err", err)
		return
	}
	for ctx.Err() == nil {
		err := s.runStream(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("scheduler stream ended; subscribing again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if errors.Is(err, errReload) {
			if err := s.load(ctx); err != nil {
				s.log.Error("cannot load the jobs state again; the framework stops for this term", "err", err)
				return
			}
		}
	}
}

// errReload ends a stream after which the framework cannot tell which of its runs the
// master recorded: it loads its state again, which tells.
var errReload = errors.New("the runs launched are uncertain: loading the state again")

// load reads the framework's state: jobs, their state and history from the key-value
// table, and their runs' tasks from the master's task table. A run recorded with a task
// the master knows follows that task; one whose task the master never recorded was not
// launched, and waits for an offer again.
func (s *Service) load(ctx context.Context) error {
	var frameworkID string
	idEntry, ok, err := s.host.KV(ctx, frameworkIDKey)
	if err != nil {
		return err
	}
	if ok {
		if err := json.Unmarshal(idEntry.Value, &frameworkID); err != nil {
			return fmt.Errorf("framework id: %w", err)
		}
	}
	jobEntries, err := s.host.KVList(ctx, "job/")
	if err != nil {
		return err
	}
	jobs := map[string]*entry{}
	for _, kv := range jobEntries {
		var j Job
		if err := json.Unmarshal(kv.Value, &j); err != nil {
			return fmt.Errorf("job %s: %w", kv.Key, err)
		}
		e, err := s.newEntry(&j)
		if err != nil {
			return fmt.Errorf("job %s: %w", j.Name, err)
		}
		jobs[j.Name] = e
	}
	stateEntries, err := s.host.KVList(ctx, "state/")
	if err != nil {
		return err
	}
	for _, kv := range stateEntries {
		e := jobs[strings.TrimPrefix(kv.Key, "state/")]
		if e == nil {
			continue
		}
		if err := json.Unmarshal(kv.Value, &e.st); err != nil {
			return fmt.Errorf("job state %s: %w", kv.Key, err)
		}
	}
	historyEntries, err := s.host.KVList(ctx, "history/")
	if err != nil {
		return err
	}
	for _, kv := range historyEntries {
		e := jobs[strings.TrimPrefix(kv.Key, "history/")]
		if e == nil {
			continue
		}
		if err := json.Unmarshal(kv.Value, &e.history); err != nil {
			return fmt.Errorf("job history %s: %w", kv.Key, err)
		}
	}
	metronome, err := s.loadMetronome(ctx)
	if err != nil {
		return err
	}
	live := map[string]*state.Task{}
	completed := map[string]*state.Task{}
	if frameworkID != "" {
		liveTasks, completedTasks, err := s.host.Tasks(ctx, frameworkID)
		if err != nil {
			return err
		}
		for _, t := range liveTasks {
			live[t.ID] = t
		}
		for _, t := range completedTasks {
			completed[t.ID] = t
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.frameworkID, s.jobs, s.metronome = frameworkID, jobs, metronome
	s.timers, s.ahead, s.held, s.fresh = nil, nil, map[string]api.Offer{}, false
	s.children = map[string]map[string]bool{}
	for name, e := range jobs {
		s.link(name, e.job.Parents)
	}
	s.byTask, s.queued = map[string]*run{}, map[*run]struct{}{}
	s.dirty, s.dirtyHistory = map[string]bool{}, map[string]bool{}
	s.acks, s.kills = nil, map[string]string{}
	now := s.now()
	var ended []api.TaskStatus
	for name, e := range jobs {
		for _, r := range e.st.Runs {
			r.job, r.persisted, r.aheadIndex = name, true, -1
			if t := live[r.TaskID]; t != nil {
				r.State = runLaunched
				if t.State == api.TaskRunning {
					r.State = runRunning
					if r.Start.IsZero() {
						r.Start = runningSince(t, now)
					}
				}
				r.Agent = t.AgentID
				s.byTask[r.TaskID] = r
				continue
			}
			if t := completed[r.TaskID]; t != nil {
				// It ended while no master led: take its end as if it arrived now.
				r.State, r.Agent = runLaunched, t.AgentID
				if r.Start.IsZero() && slices.ContainsFunc(t.Statuses, func(st api.TaskStatus) bool { return st.State == api.TaskRunning }) {
					r.Start = runningSince(t, now)
				}
				s.byTask[r.TaskID] = r
				st := api.TaskStatus{TaskID: api.TaskID{Value: t.ID}, State: t.State, AgentID: &api.AgentID{Value: t.AgentID}}
				if n := len(t.Statuses); n > 0 {
					st = t.Statuses[n-1]
					st.UUID = nil
				}
				st.State = t.State
				ended = append(ended, st)
				continue
			}
			if r.State == runRunning {
				// Seen running, now unknown even among completed tasks: lost.
				s.byTask[r.TaskID] = r
				ended = append(ended, api.TaskStatus{TaskID: api.TaskID{Value: r.TaskID}, State: api.TaskLost, Message: "the task is unknown to the master after a failover"})
				continue
			}
			// Recorded, never launched: it is launched now, with the same task id, or
			// when its time comes if it was recorded ahead of it.
			r.State = runQueued
			s.queued[r] = struct{}{}
			if r.Scheduled.After(now) && e.ahead == nil {
				e.ahead = r
				heap.Push(&s.ahead, r)
			}
		}
		missed := !e.st.Next.IsZero() && !e.st.Next.After(now)
		// A run launched ahead whose time passed while no master led starts late, once
		// its agent is back.
		late := func(r *run) bool {
			t := live[r.TaskID]
			return t != nil && t.State == api.TaskStaging && !t.LaunchAt.IsZero() && !t.LaunchAt.After(now)
		}
		if missed && slices.ContainsFunc(e.st.Runs, func(r *run) bool { return (r.State == runQueued || late(r)) && !r.Scheduled.After(now) }) {
			// Runs passed while no master led, and one not started is due: it is the
			// one run made up for them, and the schedule goes on from now.
			e.st.Next = time.Time{}
			if next, ok := e.sched.Next(now); ok {
				e.st.Next = next
			}
			s.dirty[name] = true
		}
		if e.ahead == nil {
			s.setTimerLocked(e)
		}
	}
	// Tasks of the framework no run knows (their job was deleted): killed.
	for id, t := range live {
		if _, ok := s.byTask[id]; !ok && t.Info.Labels.Get(api.LabelJobName) != "" {
			s.kills[id] = t.AgentID
		}
	}
	for i := range ended {
		s.updateLocked(&ended[i], now)
	}
	s.ready = true
	s.log.Info("jobs state loaded", "jobs", len(jobs), "launched", len(s.byTask), "queued", len(s.queued))
	return nil
}

// runningSince is when the master's record of a task says it started running: its first
// RUNNING status it keeps, else (older statuses are dropped) its oldest, else now.
func runningSince(t *state.Task, now time.Time) time.Time {
	if i := slices.IndexFunc(t.Statuses, func(st api.TaskStatus) bool { return st.State == api.TaskRunning }); i >= 0 {
		return statusTime(&t.Statuses[i], now)
	}
	if len(t.Statuses) > 0 {
		return statusTime(&t.Statuses[0], now)
	}
	return now
}

// runStream subscribes and runs the scheduler loop until the stream or ctx ends.
func (s *Service) runStream(ctx context.Context) error {
	s.mu.Lock()
	info := api.FrameworkInfo{
		User:            s.cfg.User,
		Name:            s.cfg.Name,
		FailoverTimeout: s.cfg.FailoverTimeout.Seconds(),
		Checkpoint:      true,
		Roles:           []string{s.cfg.Role},
		Principal:       s.cfg.Principal,
		Capabilities:    []api.FrameworkCapability{{Type: api.CapabilityMultiRole}, {Type: api.CapabilityPartitionAware}},
	}
	if s.frameworkID != "" {
		info.ID = &api.FrameworkID{Value: s.frameworkID}
	}
	s.mu.Unlock()
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.host.Scheduler().Subscribe(streamCtx, info, nil)
	if err != nil {
		return err
	}
	defer stream.Close()
	// Room for a whole pass of events: a burst of updates is taken in few passes, each one
	// write.
	events, readErr := stream.Events(streamCtx, maxEventsPerPass)
	ticker := time.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		tick := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return <-readErr
			}
			if err := s.handleEvent(ctx, stream, ev); err != nil {
				return err
			}
			// Take whatever else has arrived before the next pass: one write for a burst
			// of updates, not one each.
		drain:
			for range maxEventsPerPass {
				select {
				case ev, ok := <-events:
					if !ok {
						return <-readErr
					}
					if err := s.handleEvent(ctx, stream, ev); err != nil {
						return err
					}
				default:
					break drain
				}
			}
		case <-s.wake:
		case <-timer.C:
		case <-ticker.C:
			tick = true
		}
		if err := s.pass(ctx, tick); err != nil {
			return err
		}
		s.mu.Lock()
		wait := time.Hour
		if next, ok := s.timers.peek(); ok {
			wait = next.Sub(s.now())
		}
		if len(s.ahead) > 0 {
			wait = min(wait, s.ahead[0].Scheduled.Sub(s.now()))
		}
		wait = max(wait, 0)
		s.mu.Unlock()
		timer.Reset(wait)
	}
}

// handleEvent takes one scheduler event.
func (s *Service) handleEvent(ctx context.Context, stream *api.SchedulerStream, ev *api.Event) error {
	switch ev.Type {
	case api.EventSubscribed:
		return s.subscribed(ctx, stream, ev.Subscribed)
	case api.EventOffers:
		return s.offers(ctx, ev.Offers.Offers)
	case api.EventRescind:
		s.mu.Lock()
		delete(s.held, ev.Rescind.OfferID.Value)
		s.mu.Unlock()
	case api.EventUpdate:
		s.mu.Lock()
		s.updateLocked(&ev.Update.Status, s.now())
		s.mu.Unlock()
	case api.EventError:
		return fmt.Errorf("the master ended the subscription: %s", ev.Error.Message)
	}
	return nil
}

// subscribed records the framework id and reconciles every task.
func (s *Service) subscribed(ctx context.Context, stream *api.SchedulerStream, sub *api.Subscribed) error {
	id := sub.FrameworkID.Value
	s.mu.Lock()
	s.stream = stream
	s.suppressed = false
	// Offers of an earlier subscription are gone with it.
	clear(s.held)
	if s.frameworkID != id {
		value, _ := json.Marshal(id)
		if _, err := s.host.WriteKV(ctx, &state.WriteKVRequest{Namespace: s.namespace, Puts: []state.KVPut{{Key: frameworkIDKey, Value: value}}}); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("record the framework id: %w", err)
		}
		s.frameworkID = id
	}
	s.mu.Unlock()
	s.log.Info("subscribed", "framework", id)
	// Implicit reconciliation: the master sends the latest status of every task.
	return stream.Reconcile(ctx)
}

// errNotReady answers API calls before the state is loaded.
var errNotReady = errors.New("the jobs framework is starting: try again in a moment")

// trigger asks the loop for a pass.
func (s *Service) trigger() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// now is the configured clock.
func (s *Service) now() time.Time { return s.cfg.Now() }
