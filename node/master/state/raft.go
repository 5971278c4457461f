package state

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// RaftConfig configures the master's Raft member.
type RaftConfig struct {
	// NodeID is this member's Raft server id. It must stay the same across restarts and be
	// unique in the cluster.
	NodeID string
	// BindAddr is the host:port the Raft TCP transport listens on (port 0 picks one).
	BindAddr string
	// AdvertiseAddr is the host:port other members dial; empty means BindAddr, which then
	// must name a specific IP.
	AdvertiseAddr string
	// DataDir holds the Raft state: DataDir/raft/raft.db (log and stable store) and
	// DataDir/raft/snapshots.
	DataDir string
	// Logger receives Raft's logs; nil discards them.
	Logger *slog.Logger
	// Dev tightens the timings for tests and `atoll up`: a leader in well under a second on
	// loopback, where no network delay needs tolerating. It overrides FailureTimeout and
	// commits batches sooner.
	Dev bool
	// FailureTimeout is how long a follower goes without hearing from the leader before it
	// stands for election (followers check at random intervals of one to two
	// FailureTimeouts, so that usually one stands alone), and how long a candidate without
	// a majority waits before trying again. A dead leader is replaced within 2–4 ×
	// FailureTimeout. Default 300 ms: a LAN round trip is well under a millisecond and the
	// leader heartbeats every FailureTimeout/10, so only a leader stalled for 300 ms is
	// deposed. Raise it for links with long pauses.
	FailureTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot trigger a new one.
	// Default 16384: at the ~1,000 status updates/s of a busy cluster that is a snapshot
	// every quarter minute or so, each costing under a second of CPU (and ~60 MB written)
	// for 10,000 tasks with full status histories.
	SnapshotThreshold uint64
	// TrailingLogs is how many entries stay in the log after a snapshot, so that a follower
	// that fell briefly behind catches up from the log instead of a full snapshot. Default
	// 10240 (raft's), about ten seconds of the busiest load.
	TrailingLogs uint64
	// SnapshotInterval is how often Raft checks SnapshotThreshold. Default 2 minutes
	// (raft's): checks are cheap, but more often gains little as the threshold dominates.
	SnapshotInterval time.Duration
	// TLS, when set, carries the transport over mutual TLS; nil is plain TCP.
	TLS *RaftTLS
}

// RaftTLS is the TLS of a Raft transport: both sides check that the other is a member
// (node/pki builds such configurations from a master's certificate).
type RaftTLS struct {
	// Server accepts the connections other members open; it must require and verify
	// their certificates.
	Server *tls.Config
	// Client opens connections to other members; it must verify theirs.
	Client *tls.Config
}

// Raft tunables that are not configuration: batching is what makes concurrent applies
// cheap (one disk write for up to maxAppendEntries commands).
const (
	maxAppendEntries  = 256
	logCacheEntries   = 512 // recent entries served to followers from memory
	snapshotsRetained = 2
	transportMaxPool  = 3
	transportTimeout  = 10 * time.Second
	boltOpenTimeout   = 2 * time.Second // waiting for another process's lock on raft.db
)

// DefaultRaftConfig returns the production defaults; NodeID, DataDir and (when BindAddr
// is a wildcard) AdvertiseAddr must still be set.
func DefaultRaftConfig() RaftConfig {
	return RaftConfig{
		BindAddr:          "0.0.0.0:5052",
		SnapshotThreshold: 16384,
		TrailingLogs:      10240,
		SnapshotInterval:  2 * time.Minute,
		FailureTimeout:    300 * time.Millisecond,
	}
}

// devFailureTimeout is FailureTimeout under Dev, whatever FailureTimeout says: test
// clusters under the race detector on a loaded machine need this much.
const devFailureTimeout = 300 * time.Millisecond

// minFailureTimeout keeps FailureTimeout above scheduling noise: below it, a busy leader's
// missed heartbeat would depose it.
const minFailureTimeout = 100 * time.Millisecond

// Validate reports the first invalid field.
func (c RaftConfig) Validate() error {
	if c.NodeID == "" {
		return errors.New("raft config: NodeID is empty")
	}
	if c.DataDir == "" {
		return errors.New("raft config: DataDir is empty")
	}
	bindHost, err := splitHostPort(c.BindAddr)
	if err != nil {
		return fmt.Errorf("raft config: BindAddr: %w", err)
	}
	if c.AdvertiseAddr == "" {
		if ip := net.ParseIP(bindHost); ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("raft config: AdvertiseAddr is required when BindAddr %q is not a specific IP", c.BindAddr)
		}
	} else {
		advertiseHost, err := splitHostPort(c.AdvertiseAddr)
		if err != nil {
			return fmt.Errorf("raft config: AdvertiseAddr: %w", err)
		}
		if ip := net.ParseIP(advertiseHost); ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("raft config: AdvertiseAddr %q must name a specific IP", c.AdvertiseAddr)
		}
	}
	if c.SnapshotThreshold == 0 {
		return errors.New("raft config: SnapshotThreshold is 0")
	}
	if !c.Dev && c.FailureTimeout < minFailureTimeout {
		return fmt.Errorf("raft config: FailureTimeout is %v, want at least %v", c.FailureTimeout, minFailureTimeout)
	}
	if c.SnapshotInterval <= 0 {
		return fmt.Errorf("raft config: SnapshotInterval is %v, want > 0", c.SnapshotInterval)
	}
	if c.TLS != nil && (c.TLS.Server == nil || c.TLS.Client == nil) {
		return errors.New("raft config: TLS needs both a Server and a Client configuration")
	}
	if err := raft.ValidateConfig(c.raftConfig(nil)); err != nil {
		return fmt.Errorf("raft config: %w", err)
	}
	return nil
}

func splitHostPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("port %q: %w", port, err)
	}
	return host, nil
}

// raftConfig translates c into hashicorp/raft's configuration.
func (c RaftConfig) raftConfig(logger *hclogAdapter) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(c.NodeID)
	if logger != nil {
		conf.Logger = logger
	}
	conf.MaxAppendEntries = maxAppendEntries
	conf.BatchApplyCh = true
	conf.SnapshotThreshold = c.SnapshotThreshold
	conf.TrailingLogs = c.TrailingLogs
	conf.SnapshotInterval = c.SnapshotInterval
	timeout := c.FailureTimeout
	if c.Dev {
		timeout = devFailureTimeout
		conf.CommitTimeout = 5 * time.Millisecond
	}
	conf.HeartbeatTimeout = timeout
	conf.ElectionTimeout = timeout
	conf.LeaderLeaseTimeout = timeout / 2
	return conf
}

// ErrNotLeader is returned by Raft.Apply on a member that is not the leader: forward the
// request to the leader.
var ErrNotLeader = errors.New("not the raft leader")

// Raft is the master's Raft member over an FSM, with its on-disk stores and transport. The
// embedded *raft.Raft gives leadership state, LeaderCh, membership changes and Snapshot.
type Raft struct {
	*raft.Raft
	logger    *slog.Logger
	nodeID    raft.ServerID
	transport *raft.NetworkTransport
	boltStore *raftboltdb.BoltStore
	logs      raft.LogStore
	snapshots raft.SnapshotStore
	contacts  peerContacts
}

// OpenRaft opens (creating if needed) the Raft state in cfg.DataDir and starts the member.
// A member that never bootstrapped or joined stays a follower with no peers: call
// BootstrapSelf or Bootstrap, or have a leader add it.
func OpenRaft(cfg RaftConfig, fsm *FSM) (*Raft, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	hlog := newHclogAdapter(logger)
	dir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open raft: %w", err)
	}
	dbPath := filepath.Join(dir, "raft.db")
	boltStore, err := raftboltdb.New(raftboltdb.Options{
		Path:        dbPath,
		BoltOptions: &bbolt.Options{Timeout: boltOpenTimeout},
	})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s (in use by another process?): %w", dbPath, err)
	}
	r := &Raft{logger: logger, nodeID: raft.ServerID(cfg.NodeID), boltStore: boltStore,
		contacts: peerContacts{failing: map[raft.ServerID]time.Time{}}}
	ok := false
	defer func() {
		if !ok {
			r.closeStores()
		}
	}()
	if r.logs, err = raft.NewLogCache(logCacheEntries, boltStore); err != nil {
		return nil, fmt.Errorf("open raft log cache: %w", err)
	}
	r.logs = &predecodeStore{LogStore: r.logs, fsm: fsm}
	if r.snapshots, err = raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetained, hlog.Named("snapshots")); err != nil {
		return nil, fmt.Errorf("open raft snapshots in %s: %w", dir, err)
	}
	var advertise net.Addr
	if cfg.AdvertiseAddr != "" {
		if advertise, err = net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("raft advertise address: %w", err)
		}
	}
	transportConfig := &raft.NetworkTransportConfig{
		Logger:  hlog.Named("transport"),
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
	}
	if cfg.TLS != nil {
		var stream *tlsStreamLayer
		if stream, err = listenTLS(cfg.BindAddr, advertise, cfg.TLS); err != nil {
			return nil, fmt.Errorf("raft transport on %s: %w", cfg.BindAddr, err)
		}
		transportConfig.Stream = stream
		r.transport = raft.NewNetworkTransportWithConfig(transportConfig)
	} else if r.transport, err = raft.NewTCPTransportWithConfig(cfg.BindAddr, advertise, transportConfig); err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", cfg.BindAddr, err)
	}
	if r.Raft, err = raft.NewRaft(cfg.raftConfig(hlog), fsm, r.logs, boltStore, r.snapshots, r.transport); err != nil {
		r.transport.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	r.RegisterObserver(raft.NewObserver(nil, false, r.contacts.observe))
	ok = true
	return r, nil
}

// tlsStreamLayer is the Raft transport's stream layer over mutual TLS: a TLS listener
// for the connections other members open, TLS dials for those this member opens.
type tlsStreamLayer struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

// listenTLS binds the stream layer to bind; other members dial advertise, or the bound
// address when advertise is nil, which must then be a specific IP.
func listenTLS(bind string, advertise net.Addr, cfg *RaftTLS) (*tlsStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	if tcp, ok := advertise.(*net.TCPAddr); !ok || tcp.IP == nil || tcp.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("address %v is not one other members can dial", advertise)
	}
	return &tlsStreamLayer{Listener: tls.NewListener(ln, cfg.Server), advertise: advertise, client: cfg.Client}, nil
}

// Dial opens a TLS connection to another member, the handshake included in timeout.
func (l *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(address), l.client)
	if err != nil {
		return nil, fmt.Errorf("raft TLS dial %s: %w", address, err)
	}
	return conn, nil
}

// Addr is what other members dial.
func (l *tlsStreamLayer) Addr() net.Addr { return l.advertise }

// Addr is the address other members reach this one at.
func (r *Raft) Addr() raft.ServerAddress { return r.transport.LocalAddr() }

// HasState reports whether this member has a Raft log or snapshot on disk, that is whether
// it was bootstrapped or joined before. An unreadable store counts as state, so that a
// caller never bootstraps over it.
func (r *Raft) HasState() bool {
	has, err := raft.HasExistingState(r.logs, r.boltStore, r.snapshots)
	if err != nil {
		r.logger.Error("reading raft state", "error", err)
		return true
	}
	return has
}

// BootstrapSelf makes this member a single-node cluster, unless it has state already.
func (r *Raft) BootstrapSelf() error {
	return r.Bootstrap([]raft.Server{{Suffrage: raft.Voter, ID: r.nodeID, Address: r.Addr()}})
}

// Bootstrap starts a cluster of servers, unless this member has state already. For
// bootstrap-expect N every member calls it with the same N servers.
func (r *Raft) Bootstrap(servers []raft.Server) error {
	if r.HasState() {
		return nil
	}
	err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// Apply replicates a command and waits until this member has applied it. ctx bounds both
// the wait to enqueue and the wait for the result; when ctx ends first the command may
// still be applied. It returns the FSM's *ApplyResult and, when that carries an Err, the
// Err too; ErrNotLeader when this member is not the leader.
func (r *Raft) Apply(ctx context.Context, t MessageType, req any) (any, error) {
	data, err := Encode(t, req)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("apply %s: %w", t, err)
	}
	var timeout time.Duration
	if deadline, ok := ctx.Deadline(); ok {
		if timeout = time.Until(deadline); timeout <= 0 {
			return nil, fmt.Errorf("apply %s: %w", t, context.DeadlineExceeded)
		}
	}
	future := r.Raft.Apply(data, timeout)
	if err := waitFuture(ctx, future); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrLeadershipLost) {
			err = ErrNotLeader
		}
		return nil, fmt.Errorf("apply %s: %w", t, err)
	}
	response := future.Response()
	if result, ok := response.(*ApplyResult); ok && result.Err != nil {
		return result, result.Err
	}
	return response, nil
}

// waitFuture waits for future or for ctx, whichever ends first.
func waitFuture(ctx context.Context, future raft.Future) error {
	if ctx.Done() == nil {
		return future.Error()
	}
	done := make(chan error, 1)
	go func() { done <- future.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close shuts Raft down (closing the transport) and closes the stores.
func (r *Raft) Close() error {
	var errs []error
	if err := r.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("shut down raft: %w", err))
	}
	if err := r.closeStores(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (r *Raft) closeStores() error {
	if err := r.boltStore.Close(); err != nil {
		return fmt.Errorf("close raft log: %w", err)
	}
	return nil
}

// peerContacts tracks which followers the leader's heartbeats fail to reach, from Raft's
// heartbeat observations: Raft keeps its followers' last contact to itself.
type peerContacts struct {
	mu sync.Mutex
	// failing maps a follower to when it last answered (zero: not in this leadership).
	failing map[raft.ServerID]time.Time
}

// observe is a Raft observer's filter that records what it needs and passes nothing on.
// Raft calls it from its own goroutines, so it only takes a lock for a map update.
func (c *peerContacts) observe(o *raft.Observation) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch data := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		// The heartbeats of a leadership that just ended may still report a failure.
		if o.Raft.State() == raft.Leader {
			c.failing[data.PeerID] = data.LastContact
		}
	case raft.ResumedHeartbeatObservation:
		delete(c.failing, data.PeerID)
	case raft.PeerObservation:
		if data.Removed {
			delete(c.failing, data.Peer.ID)
		}
	case raft.RaftState:
		// Every leadership starts its heartbeats afresh.
		clear(c.failing)
	}
	return false
}

// Unreachable returns the servers that this member, while it leads, fails to send
// heartbeats to, each with when it last answered (zero if not since this member became
// leader). It is empty on a member that does not lead: only the leader sends heartbeats.
func (r *Raft) Unreachable() map[raft.ServerID]time.Time {
	out := map[raft.ServerID]time.Time{}
	if r.State() != raft.Leader {
		return out
	}
	r.contacts.mu.Lock()
	defer r.contacts.mu.Unlock()
	for id, lastContact := range r.contacts.failing {
		out[id] = lastContact
	}
	return out
}

// RemovePeer removes a server from the Raft configuration, on the leader, and waits until
// the change is committed or ctx ends (when it may still be committed later). prevIndex is
// the index of the configuration the caller looked at: the removal fails if the
// configuration changed since (0 removes regardless).
func (r *Raft) RemovePeer(ctx context.Context, id raft.ServerID, prevIndex uint64) error {
	timeout, err := enqueueTimeout(ctx)
	if err != nil {
		return fmt.Errorf("remove raft peer %s: %w", id, err)
	}
	if err := waitFuture(ctx, r.RemoveServer(id, prevIndex, timeout)); err != nil {
		return fmt.Errorf("remove raft peer %s: %w", id, notLeader(err))
	}
	return nil
}

// OpenSnapshot has Raft take a snapshot of the FSM now, as it does on its own (so the log
// is compacted too), and opens it for reading. It works on any member. ctx bounds the wait
// for the snapshot to be written; raft.ErrNothingNewToSnapshot says this member has applied
// no entry yet.
func (r *Raft) OpenSnapshot(ctx context.Context) (*raft.SnapshotMeta, io.ReadCloser, error) {
	future := r.Snapshot()
	if err := waitFuture(ctx, future); err != nil {
		return nil, nil, fmt.Errorf("take snapshot: %w", err)
	}
	meta, snapshot, err := future.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open snapshot: %w", err)
	}
	return meta, snapshot, nil
}

// ErrInvalidSnapshot is wrapped by RestoreSnapshot's errors about a snapshot the FSM would
// not take; the cluster's state is then untouched.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// RestoreSnapshot replaces the whole cluster's state with an FSM snapshot (as Persist
// writes it, meta.Size bytes), on the leader: Raft installs it on every member and this
// returns once a majority has it. state is read twice: whole first, building the state in
// memory as the FSM will, to check that the FSM takes it (Raft panics when its FSM rejects
// a snapshot it already installed), then from its start by Raft. ctx bounds the waits to start and to commit; the restore itself is not
// interrupted.
func (r *Raft) RestoreSnapshot(ctx context.Context, meta *raft.SnapshotMeta, state io.ReadSeeker) error {
	if meta.Version < raft.SnapshotVersionMin || meta.Version > raft.SnapshotVersionMax {
		return fmt.Errorf("restore snapshot: %w: raft snapshot version %d, this build reads %d to %d",
			ErrInvalidSnapshot, meta.Version, raft.SnapshotVersionMin, raft.SnapshotVersionMax)
	}
	// Checking is all that is wanted here, so no completed task is evicted.
	if _, _, err := readSnapshot(state, math.MaxInt); err != nil {
		return fmt.Errorf("restore snapshot: %w: %w", ErrInvalidSnapshot, err)
	}
	if _, err := state.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("restore snapshot: rewind: %w", err)
	}
	timeout, err := enqueueTimeout(ctx)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := r.Restore(meta, state, timeout); err != nil {
		return fmt.Errorf("restore snapshot: %w", notLeader(err))
	}
	return nil
}

// enqueueTimeout is the time left before ctx's deadline, for Raft calls that take a
// timeout instead of a context (0: no deadline).
func enqueueTimeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return 0, nil
	}
	timeout := time.Until(deadline)
	if timeout <= 0 {
		return 0, context.DeadlineExceeded
	}
	return timeout, nil
}

// notLeader turns raft's errors for a member that cannot lead a change into ErrNotLeader.
func notLeader(err error) error {
	if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, raft.ErrLeadershipLost) {
		return ErrNotLeader
	}
	return err
}
