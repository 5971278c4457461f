// Package master is the master role: it holds the cluster's replicated state in Raft, and on
// the leader runs the DRF allocator, the scheduler API for frameworks, the agent streams and
// the operator API and event stream every tool and node consumes.
package master

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll/atoll/alloc"
	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// Config configures a master.
type Config struct {
	// ID is this master's stable id (its Raft server id).
	ID string
	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string
	// RaftAddr is the Raft transport's host:port; RaftAdvertise what peers dial, if
	// different.
	RaftAddr      string
	RaftAdvertise string
	// APIURL is this master's own API base URL (http://host:port), for redirects and
	// MasterInfo.
	APIURL string
	// Hostname is reported in MasterInfo and /master/state.
	Hostname string
	// Version is the running build's version.
	Version string
	// Dev tightens Raft timings for one-process clusters and tests.
	Dev bool
	// RaftFailureTimeout is Raft's leader failure detection time (state.RaftConfig's
	// FailureTimeout); 0 takes its default.
	RaftFailureTimeout time.Duration
	// BootstrapSelf bootstraps a single-master Raft configuration when there is no state on
	// disk (--bootstrap-expect 1). Multi-master bootstrap is driven by the node through
	// Raft().Bootstrap once gossip has found the expected masters.
	BootstrapSelf bool
	// LeaderAPI maps the Raft leader's server id to its API base URL, for 307 redirects.
	// nil: redirects are impossible and non-leaders answer 503.
	LeaderAPI func(serverID string) string
	// Members lists gossip members for GET_MEMBERS; nil answers an empty list.
	Members func() []api.Member

	// HeartbeatInterval is how often frameworks and agents get a HEARTBEAT event.
	HeartbeatInterval time.Duration
	// AgentTimeout is how long a disconnected or silent agent has to come back before its
	// tasks become UNREACHABLE (LOST for frameworks that are not partition-aware).
	AgentTimeout time.Duration
	// OfferTimeout rescinds offers held longer than this; 0 never does.
	OfferTimeout time.Duration
	// AllocationInterval is the periodic allocation pass; AllocationBatch how long an
	// event-triggered pass waits to batch further events.
	AllocationInterval time.Duration
	AllocationBatch    time.Duration
	// AgentReregisterTimeout is how long agents known from the store have to re-subscribe
	// to a newly elected leader before their tasks become UNREACHABLE: the masters, not the
	// agents, were away.
	AgentReregisterTimeout time.Duration
	// LeaderChangeGrace is the least time a framework gets to resubscribe after a leader
	// change, whatever its failover_timeout: the disconnect was the masters' doing.
	LeaderChangeGrace time.Duration
	// DefaultRefuse is the filter a DECLINE or ACCEPT without refuse_seconds installs.
	DefaultRefuse time.Duration
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
	// Allocator configures DRF (weights, minimum allocatable resources).
	Allocator alloc.Config
	// Registry receives the master's metrics, served at /metrics with whatever else the
	// node registers there (its DNS server's); nil gives the master a registry of its own.
	Registry *prometheus.Registry
	// Logger receives the master's logs.
	Logger *slog.Logger
	// Extensions are called by New, in order, to plug the built-in frameworks in: they
	// register leader services and routes (AddLeaderService, Handle).
	Extensions []func(*Master)
	// Auth turns on API tokens (see AuthConfig); off by default.
	Auth AuthConfig
	// RaftTLS carries Raft between masters over mutual TLS (state.RaftConfig's TLS);
	// nil is plain TCP.
	RaftTLS *state.RaftTLS
	// ForwardTLS is the TLS configuration of the requests a follower forwards to the
	// leader, when the masters serve their API over TLS; nil forwards plain HTTP.
	ForwardTLS *tls.Config
}

// DefaultConfig is the production preset.
func DefaultConfig() Config {
	return Config{
		ID:       "master-1",
		RaftAddr: "127.0.0.1:5052",
		APIURL:   "http://127.0.0.1:5050",
		Version:  "dev",
		// Mesos's values: frameworks resubscribe after about five missed heartbeats.
		HeartbeatInterval: 15 * time.Second,
		// Mesos needed 75 s; 10 s rides out GC pauses and short blips.
		AgentTimeout:       10 * time.Second,
		AllocationInterval: time.Second,
		// A few milliseconds lets a burst of declines or finished tasks be offered at once.
		AllocationBatch: 5 * time.Millisecond,
		// Four missed 15 s heartbeats: a framework notices the dead stream and resubscribes
		// well within it.
		LeaderChangeGrace: time.Minute,
		// Mesos allowed 10 minutes; agents retry every few seconds, so 2 minutes covers a
		// slow election and an agent's backoff with room to spare.
		AgentReregisterTimeout: 2 * time.Minute,
		DefaultRefuse:          5 * time.Second,
		// Large enough for an ACCEPT with hundreds of tasks, small enough to bound memory.
		MaxBodyBytes: 8 << 20,
		Allocator:    alloc.DefaultConfig(),
		Logger:       slog.Default(),
	}
}

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("master id: empty")
	case c.DataDir == "":
		return errors.New("master data dir: empty")
	case c.RaftAddr == "":
		return errors.New("raft address: empty")
	case c.HeartbeatInterval <= 0:
		return fmt.Errorf("heartbeat interval: %v, want > 0", c.HeartbeatInterval)
	case c.AgentTimeout <= 0:
		return fmt.Errorf("agent timeout: %v, want > 0", c.AgentTimeout)
	case c.AllocationInterval <= 0:
		return fmt.Errorf("allocation interval: %v, want > 0", c.AllocationInterval)
	case c.MaxBodyBytes <= 0:
		return fmt.Errorf("max body bytes: %d, want > 0", c.MaxBodyBytes)
	case c.OfferTimeout < 0:
		return fmt.Errorf("offer timeout: %v, want ≥ 0", c.OfferTimeout)
	}
	return nil
}

// Master is one master process. Every master serves reads from its own replica of the
// state; the leader also runs the allocator and owns framework and agent streams.
type Master struct {
	cfg     Config
	log     *slog.Logger
	fsm     *state.FSM
	raft    *state.Raft
	events  *broker
	metrics *metrics
	auth    *authState
	forward http.RoundTripper
	started time.Time

	// mu guards the leader-only state below; it is never held across a Raft apply.
	mu         sync.Mutex
	leader     *leaderState
	runCtx     context.Context
	leaderDone chan struct{}
	// agentsFailed holds when gossip reported each agent's node failed, until it sees it
	// again or the agent subscribes (AgentFailed, AgentAlive).
	agentsFailed map[string]time.Time
	builtinState
}

// New opens the master's Raft state (recovering whatever is on disk) without serving yet.
func New(cfg Config) (*Master, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Allocator.Logger == nil {
		cfg.Allocator.Logger = cfg.Logger.With("component", "alloc")
	}
	m := &Master{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "master"),
		fsm:     state.NewFSM(cfg.Logger.With("component", "fsm")),
		started: time.Now(),

		agentsFailed: map[string]time.Time{},
	}
	m.metrics = newMetrics(m)
	m.forward = forwardTransport
	if cfg.ForwardTLS != nil {
		t := forwardTransport.Clone()
		t.TLSClientConfig = cfg.ForwardTLS
		m.forward = t
	}
	m.auth = newAuthState(cfg.Auth, cfg.Logger)
	m.events = newBroker(m)
	m.fsm.OnChange(m.events.publish)

	rc := state.DefaultRaftConfig()
	rc.NodeID = cfg.ID
	rc.BindAddr = cfg.RaftAddr
	rc.AdvertiseAddr = cfg.RaftAdvertise
	rc.DataDir = cfg.DataDir
	rc.Logger = cfg.Logger.With("component", "raft")
	rc.Dev = cfg.Dev
	rc.TLS = cfg.RaftTLS
	if cfg.RaftFailureTimeout != 0 {
		rc.FailureTimeout = cfg.RaftFailureTimeout
	}
	r, err := state.OpenRaft(rc, m.fsm)
	if err != nil {
		m.metrics.unregister()
		return nil, fmt.Errorf("open raft: %w", err)
	}
	m.raft = r
	if cfg.Auth.Enabled {
		m.AddLeaderService(adminBootstrap{m})
	}
	for _, extend := range cfg.Extensions {
		extend(m)
	}
	if cfg.BootstrapSelf && !r.HasState() {
		if err := r.BootstrapSelf(); err != nil {
			r.Close()
			m.metrics.unregister()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	return m, nil
}

// Raft exposes the Raft node for bootstrap and operator commands.
func (m *Master) Raft() *state.Raft { return m.raft }

// Store is the local replica of the cluster state.
func (m *Master) Store() *state.Store { return m.fsm.Store() }

// Run serves as leader whenever this master holds leadership, until ctx is done; then it
// closes every stream and shuts Raft down.
func (m *Master) Run(ctx context.Context) error {
	m.mu.Lock()
	m.runCtx = ctx
	m.mu.Unlock()
	leaderCh := m.raft.LeaderCh()
	// LeaderCh only reports transitions; a master that is already leader starts at once.
	if m.isLeader() {
		m.becomeLeader(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			m.stepDown("master stopping")
			m.events.closeAll()
			return m.raft.Close()
		case isLeader := <-leaderCh:
			if isLeader {
				m.becomeLeader(ctx)
			} else {
				m.stepDown("lost leadership")
			}
		}
	}
}

// ID is this master's Raft server id.
func (m *Master) ID() string { return m.cfg.ID }

// IsLeader reports whether this master currently leads.
func (m *Master) IsLeader() bool { return m.isLeader() }

// HasLeader reports whether a leader is known (this master or another).
func (m *Master) HasLeader() bool { return m.leaderID() != "" }

func (m *Master) isLeader() bool { return m.raft.State() == raft.Leader }

// leaderID is the Raft server id of the current leader, "" when none is known.
func (m *Master) leaderID() string {
	_, id := m.raft.LeaderWithID()
	return string(id)
}

// leaderURL is the current leader's API base URL, "" when unknown.
func (m *Master) leaderURL() string {
	id := m.leaderID()
	if id == "" {
		return ""
	}
	if id == m.cfg.ID {
		return m.cfg.APIURL
	}
	if m.cfg.LeaderAPI == nil {
		return ""
	}
	return m.cfg.LeaderAPI(id)
}

// AgentFailed is a hint from gossip that the node running agentID is gone; the master
// treats the agent as disconnected at once instead of waiting for its stream to time out.
func (m *Master) AgentFailed(agentID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Every master remembers it: one elected later gives the agent AgentTimeout from
	// now, not AgentReregisterTimeout, to come back.
	if _, known := m.agentsFailed[agentID]; !known {
		m.agentsFailed[agentID] = time.Now()
	}
	if m.leader == nil {
		return
	}
	if as, ok := m.leader.agents[agentID]; ok && as.stream != nil {
		as.stream.close(errors.New("gossip reports the agent's node failed"))
	}
}

// AgentAlive tells the master that gossip sees the agent's node again (joined or updated),
// undoing AgentFailed.
func (m *Master) AgentAlive(agentID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.agentsFailed, agentID)
}

// Handler serves the master's HTTP API, checking tokens when Auth is on.
func (m *Master) Handler() http.Handler {
	routes := m.apiRoutes()
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.pattern, r.handler)
	}
	if !m.cfg.Auth.Enabled {
		return mux
	}
	return m.withAuth(mux, routes)
}

// Routes lists the http.ServeMux patterns Handler serves: the master's own and those
// registered with Handle so far.
func (m *Master) Routes() []string {
	var patterns []string
	for _, r := range m.apiRoutes() {
		patterns = append(patterns, r.pattern)
	}
	return patterns
}

// apiRoutes is every route of the API, the one list Handler and Routes are made from.
func (m *Master) apiRoutes() []route {
	routes := []route{
		{"POST " + api.SchedulerPath, http.HandlerFunc(m.handleScheduler)},
		{"POST " + api.AgentPath, http.HandlerFunc(m.handleAgent)},
		{"POST " + api.OperatorPath, http.HandlerFunc(m.handleOperator)},
		{"GET " + api.RaftPeersPath, http.HandlerFunc(m.handleRaftPeers)},
		{"POST " + api.RaftRemovePeerPath, http.HandlerFunc(m.handleRaftRemovePeer)},
		{"GET " + api.RaftSnapshotPath, http.HandlerFunc(m.handleSnapshotSave)},
		{"POST " + api.RaftSnapshotPath, http.HandlerFunc(m.handleSnapshotRestore)},
		{"GET /master/state", http.HandlerFunc(m.handleState)},
		{"GET /master/state.json", http.HandlerFunc(m.handleState)},
		{"GET /state.json", http.HandlerFunc(m.handleState)},
		{"GET /health", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("ok\n"))
		})},
		{"GET /metrics", m.metrics.handler()},
	}
	routes = append(routes, m.kvRoutes()...)
	routes = append(routes, m.tokenRoutes()...)
	m.mu.Lock()
	routes = append(routes, m.routes...)
	m.mu.Unlock()
	return routes
}
