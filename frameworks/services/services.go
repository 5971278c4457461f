// Package services is Atoll's services framework: Marathon-compatible long-running apps,
// groups and rolling deployments, served as the Marathon v2 API on the master port.
//
// It is a framework like any other: built in, it runs on the leading master (a
// master.LeaderService) and talks to the scheduler API through the master's in-process
// client; run as a process of its own (`atoll framework services`, a second Marathon for
// users), it does the same over HTTP. Either way it takes offers, launches tasks and
// follows their status updates, and what it must not lose lives in the replicated
// key-value table, in its namespace: the apps, their versions and the deployments in
// progress.
// Its tasks are in the master's replicated task table, labelled with their app and
// version, so a new leader picks up exactly where the old one stopped: a deployment
// interrupted by a failover resumes, and no task is launched twice.
package services

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/frameworks/host"
	"github.com/atoll/atoll/frameworks/services/placement"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

// Config configures the services framework.
type Config struct {
	// Logger receives the framework's logs.
	Logger *slog.Logger
	// Name is the framework's name: "marathon", so that DNS names its tasks
	// <app>.marathon.<domain> as Mesos-DNS did.
	Name string
	// User runs tasks whose app names none.
	User string
	// Role is the role the framework subscribes with (Marathon's --mesos_role), and the
	// role of every app that names none.
	Role string
	// Principal authenticates the framework to the master ("" for none).
	Principal string
	// FailoverTimeout is how long the master keeps the framework's tasks while no leader
	// runs it (Marathon's default: a week).
	FailoverTimeout time.Duration
	// DeclineIdle is how long offers are refused while no app waits for instances
	// (Marathon's decline_offer_duration); the framework revives when work appears.
	DeclineIdle time.Duration
	// DeclineUnfit is how long an offer is refused that no waiting app could use.
	DeclineUnfit time.Duration
	// MaxLaunchesPerOffer bounds the instances launched on one offer.
	MaxLaunchesPerOffer int
	// ServicePorts is the range service ports are assigned from when an app asks for 0.
	ServicePortsBegin, ServicePortsEnd uint32
	// TickInterval is how often deployments and apps are checked without an event.
	TickInterval time.Duration
	// EventKeepAlive is how often /v2/events sends a comment when it has no event.
	EventKeepAlive time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// DefaultConfig is the production preset.
func DefaultConfig() Config {
	return Config{
		Logger:              slog.Default(),
		Name:                "marathon",
		User:                "root",
		Role:                "*",
		FailoverTimeout:     7 * 24 * time.Hour,
		DeclineIdle:         120 * time.Second,
		DeclineUnfit:        5 * time.Second,
		MaxLaunchesPerOffer: 1000,
		ServicePortsBegin:   10000,
		ServicePortsEnd:     10100,
		TickInterval:        time.Second,
		EventKeepAlive:      15 * time.Second,
	}
}

// builtinNamespace is the built-in framework's part of the replicated key-value table
// (one run by itself has a namespace of its own). Its keys: frameworkIDKey; appKey(id)
// for each app's current definition; versionKey(id, version) for each app's stored
// versions; deploymentKey(id) for each deployment in progress; groupKey(id) for each
// group created through /v2/groups; reservationKey(id, reservation) for each reservation
// of a resident app.
const (
	builtinNamespace = "services"
	frameworkIDKey   = "framework-id"
)

func appKey(id string) string               { return "app/" + id }
func versionPrefix(id string) string        { return "version/" + id + "@" }
func versionKey(id, version string) string  { return versionPrefix(id) + version }
func deploymentKey(id string) string        { return "deployment/" + id }
func parseAppKey(key string) (string, bool) { return strings.CutPrefix(key, "app/") }

// maxEventsPerPass bounds the events taken between two passes.
const maxEventsPerPass = 1000

// maxVersions is how many versions of an app are kept.
const maxVersions = 50

// Service is the services framework on one host. Where the host leads it schedules;
// elsewhere its API forwards there.
type Service struct {
	cfg    Config
	log    *slog.Logger
	host   host.Host
	events *eventBus
	// namespace is the host's key-value namespace.
	namespace string

	// wake asks the scheduler loop for a pass soon.
	wake chan struct{}

	// mu guards everything below: the scheduler loop and the API handlers share it.
	mu sync.Mutex
	// ready says the state was loaded for the current term; the API answers 503 before.
	ready       bool
	frameworkID string
	apps        map[string]*app
	deployments []*deployment
	instances   map[string]*instance
	// byApp indexes instances by app id.
	byApp map[string]map[string]*instance
	// stream is the term's subscription, nil between terms.
	stream *api.SchedulerStream
	// suppressed says offers are suppressed (no app waits); declinedIdle that offers were
	// declined for long since the last revive.
	suppressed, declinedIdle bool
	// kills are task ids to kill, sent by the loop.
	kills map[string]string // task id → agent id
}

// app is an app's current definition and scheduling state.
type app struct {
	def  *marathon.App
	spec *appSpec
	// defJSON is def encoded, made when first shown.
	defJSON []byte
	// toLaunch is how many instances the latest pass asked for.
	toLaunch int
	// failures in a row and the time before which no instance is launched.
	failures   int
	delayUntil time.Time
	// summary counts the offers this app saw since it waited.
	summary *placement.Summary
	// lastFailure is the latest unexpected end of one of its tasks.
	lastFailure *taskFailure
	// waitingSince is when the app began waiting for offers.
	waitingSince time.Time
	// reservations are a resident app's, one for each instance it has had at most.
	reservations []*reservation
}

// taskFailure is an instance's unexpected end, for /v2/apps' lastTaskFailure.
type taskFailure struct {
	TaskID    string `json:"taskId"`
	State     string `json:"state"`
	Message   string `json:"message"`
	Host      string `json:"host"`
	Timestamp string `json:"timestamp"`
	Version   string `json:"version"`
	AppID     string `json:"appId"`
	SlaveID   string `json:"slaveId"`
}

// Attach creates the built-in services framework on m: its scheduler runs while m leads,
// and its API is served on m's handler (Marathon's /v2 paths and /ping). Call it from a
// master.Config extension.
func Attach(m *master.Master, cfg Config) *Service {
	return New(host.NewInMaster(m, builtinNamespace), cfg)
}

// New creates the services framework on h: its scheduler runs while h leads, and its API
// is served on h's routes. Zero fields of cfg take DefaultConfig's values.
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
	if cfg.DeclineIdle == 0 {
		cfg.DeclineIdle = def.DeclineIdle
	}
	if cfg.DeclineUnfit == 0 {
		cfg.DeclineUnfit = def.DeclineUnfit
	}
	if cfg.MaxLaunchesPerOffer == 0 {
		cfg.MaxLaunchesPerOffer = def.MaxLaunchesPerOffer
	}
	if cfg.ServicePortsBegin == 0 {
		cfg.ServicePortsBegin, cfg.ServicePortsEnd = def.ServicePortsBegin, def.ServicePortsEnd
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = def.TickInterval
	}
	if cfg.EventKeepAlive == 0 {
		cfg.EventKeepAlive = def.EventKeepAlive
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "services"),
		host:      h,
		events:    newEventBus(),
		namespace: h.Namespace(),
		wake:      make(chan struct{}, 1),
	}
	h.Lead(s)
	s.routes()
	return s
}

// Name names the leader service.
func (s *Service) Name() string { return "services" }

// Run schedules while its host leads: it loads the state, subscribes, and runs the
// scheduler loop, subscribing again if the stream ends, until ctx does.
func (s *Service) Run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		s.ready, s.stream = false, nil
		s.mu.Unlock()
		s.events.closeAll("leadership ended")
	}()
	if err := s.load(ctx); err != nil {
		s.log.Error("cannot load the services state; the framework does not run this term", "err", err)
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
		case <-time.After(time.Second):
		}
	}
}

// load reads the framework's state: apps and deployments from the key-value table, and
// instances from the master's tasks.
func (s *Service) load(ctx context.Context) error {
	apps := map[string]*app{}
	var frameworkID string
	entry, ok, err := s.host.KV(ctx, frameworkIDKey)
	if err != nil {
		return err
	}
	if ok {
		if err := json.Unmarshal(entry.Value, &frameworkID); err != nil {
			return fmt.Errorf("framework id: %w", err)
		}
	}
	appEntries, err := s.host.KVList(ctx, "app/")
	if err != nil {
		return err
	}
	for _, entry := range appEntries {
		id, _ := parseAppKey(entry.Key)
		def, err := marathon.DecodeApp(entry.Value)
		if err != nil {
			return fmt.Errorf("app %s: %w", id, err)
		}
		spec, err := compile(def)
		if err != nil {
			return fmt.Errorf("app %s: %w", id, err)
		}
		apps[id] = &app{def: def, spec: spec, summary: placement.NewSummary(summaryAgents)}
	}
	if err := s.loadReservations(ctx, apps); err != nil {
		return err
	}
	deploymentEntries, err := s.host.KVList(ctx, "deployment/")
	if err != nil {
		return err
	}
	var deployments []*deployment
	for _, entry := range deploymentEntries {
		var d deployment
		if err := json.Unmarshal(entry.Value, &d); err != nil {
			return fmt.Errorf("deployment %s: %w", entry.Key, err)
		}
		deployments = append(deployments, &d)
	}
	sortDeployments(deployments)
	instances := map[string]*instance{}
	if frameworkID != "" {
		tasks, _, err := s.host.Tasks(ctx, frameworkID)
		if err != nil {
			return err
		}
		for _, t := range tasks {
			agent, _, err := s.host.Agent(ctx, t.AgentID)
			if err != nil {
				return err
			}
			if in, ok := instanceFromTask(t, agent); ok {
				instances[in.taskID] = in
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frameworkID, s.apps, s.deployments = frameworkID, apps, deployments
	s.instances, s.byApp = map[string]*instance{}, map[string]map[string]*instance{}
	for _, in := range instances {
		s.addInstance(in)
	}
	s.kills = map[string]string{}
	s.ready = true
	s.log.Info("services state loaded", "apps", len(apps), "deployments", len(deployments), "tasks", len(instances))
	return nil
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
		// Partition-aware: a task on an agent that stopped answering is UNREACHABLE, not
		// LOST, and the app's unreachableStrategy says when it is replaced.
		Capabilities: []api.FrameworkCapability{{Type: "MULTI_ROLE"}, {Type: api.CapabilityPartitionAware}},
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
	events, readErr := stream.Events(streamCtx, 64)
	ticker := time.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	for {
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
			// Take whatever else has arrived before the next pass: one pass for a burst
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
		case <-ticker.C:
		}
		if err := s.pass(ctx); err != nil {
			return err
		}
	}
}

// handleEvent takes one scheduler event.
func (s *Service) handleEvent(ctx context.Context, stream *api.SchedulerStream, ev *api.Event) error {
	switch ev.Type {
	case api.EventSubscribed:
		return s.subscribed(ctx, stream, ev.Subscribed)
	case api.EventOffers:
		return s.offers(ctx, ev.Offers.Offers)
	case api.EventUpdate:
		return s.update(ctx, &ev.Update.Status)
	case api.EventError:
		return fmt.Errorf("the master ended the subscription: %s", ev.Error.Message)
	case api.EventFailure:
		if ev.Failure.AgentID != nil {
			s.log.Info("agent lost", "agent", ev.Failure.AgentID.Value)
		}
	}
	return nil
}

// subscribed records the framework id and reconciles every task.
func (s *Service) subscribed(ctx context.Context, stream *api.SchedulerStream, sub *api.Subscribed) error {
	id := sub.FrameworkID.Value
	s.mu.Lock()
	known := s.frameworkID
	s.stream = stream
	s.suppressed = false
	s.mu.Unlock()
	if known != id {
		value, _ := json.Marshal(id)
		if _, err := s.host.WriteKV(ctx, &state.WriteKVRequest{Namespace: s.namespace, Puts: []state.KVPut{{Key: frameworkIDKey, Value: value}}}); err != nil {
			return fmt.Errorf("record the framework id: %w", err)
		}
		s.mu.Lock()
		s.frameworkID = id
		s.mu.Unlock()
	}
	s.log.Info("subscribed", "framework", id)
	// Implicit reconciliation: the master sends the latest status of every task.
	return stream.Reconcile(ctx)
}

// errNotReady answers API calls before the state is loaded.
var errNotReady = errors.New("the services framework is starting: try again in a moment")

// trigger asks the loop for a pass.
func (s *Service) trigger() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// now is the configured clock.
func (s *Service) now() time.Time { return s.cfg.Now() }

// httpError is an API error with its status.
func httpError(status int, format string, args ...any) *marathon.Error {
	return &marathon.Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

var _ = http.StatusOK
