package master

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// The operator Raft API (api.RaftPeersPath and its neighbours): the masters' Raft
// configuration, removing a dead master, and snapshots of the replicated state.

const (
	// maxSnapshotUpload bounds a restore's body, the compressed archive: some 10 GB of
	// state, far beyond what a master holds in memory, so only a mistake is refused.
	maxSnapshotUpload = 1 << 30
	// raftOpTimeout bounds taking a snapshot and waiting for a membership change or a
	// restore to start and commit; a healthy cluster needs well under a second.
	raftOpTimeout = 30 * time.Second
)

// handleRaftPeers serves GET /api/v1/raft/peers from this master's own view, so that it
// answers while no leader is elected, when it matters most.
func (m *Master) handleRaftPeers(w http.ResponseWriter, _ *http.Request) {
	peers, err := m.raftPeers()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, peers)
}

// raftConfiguration reads the latest Raft configuration and its log index.
func (m *Master) raftConfiguration() (raft.ConfigurationFuture, error) {
	future := m.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, errorf(http.StatusServiceUnavailable, "read the raft configuration: %v", err)
	}
	return future, nil
}

// raftPeers describes the Raft configuration as this master knows it.
func (m *Master) raftPeers() (*api.RaftPeers, error) {
	future, err := m.raftConfiguration()
	if err != nil {
		return nil, err
	}
	_, leaderID := m.raft.LeaderWithID()
	unreachable := m.raft.Unreachable()
	servers := future.Configuration().Servers
	peers := &api.RaftPeers{
		Servers:    make([]api.RaftServer, 0, len(servers)),
		LeaderID:   string(leaderID),
		Term:       m.raft.CurrentTerm(),
		LastIndex:  m.raft.LastIndex(),
		AnsweredBy: m.cfg.ID,
	}
	for _, s := range servers {
		isLeader := leaderID != "" && s.ID == leaderID
		var st string
		_, down := unreachable[s.ID]
		switch {
		case string(s.ID) == m.cfg.ID:
			st = raftStateName(m.raft.State())
		case isLeader:
			st = api.RaftLeader
		case down:
			st = api.RaftUnreachable
		case leaderID != "":
			st = api.RaftFollower
		default:
			st = api.RaftUnknown
		}
		peers.Servers = append(peers.Servers, api.RaftServer{
			ID:       string(s.ID),
			Address:  string(s.Address),
			Suffrage: suffrageName(s.Suffrage),
			Leader:   isLeader,
			State:    st,
		})
	}
	slices.SortFunc(peers.Servers, func(a, b api.RaftServer) int { return strings.Compare(a.ID, b.ID) })
	return peers, nil
}

func raftStateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return api.RaftLeader
	case raft.Follower:
		return api.RaftFollower
	case raft.Candidate:
		return api.RaftCandidate
	}
	return api.RaftUnknown
}

func suffrageName(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return api.RaftVoter
	case raft.Nonvoter:
		return api.RaftNonvoter
	}
	return api.RaftStaging
}

// handleRaftRemovePeer serves POST /api/v1/raft/remove-peer on the leader and answers with
// the configuration after the change.
func (m *Master) handleRaftRemovePeer(w http.ResponseWriter, r *http.Request) {
	var req api.RaftRemovePeerRequest
	if err := m.decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.ID == "" {
		writeError(w, errorf(http.StatusBadRequest, "invalid request: expecting 'id' to be present"))
		return
	}
	if m.redirectToLeader(w, r) {
		return
	}
	if err := m.removePeer(r.Context(), raft.ServerID(req.ID)); err != nil {
		writeError(w, err)
		return
	}
	peers, err := m.raftPeers()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, peers)
}

// removePeer removes a server from the configuration unless that would leave the cluster
// without a working quorum: the leader itself is never removed (it would step down with
// no successor chosen), and a voter is removed only when the voters that remain and answer
// this leader's heartbeats still form a majority of the voters that remain.
func (m *Master) removePeer(ctx context.Context, id raft.ServerID) error {
	future, err := m.raftConfiguration()
	if err != nil {
		return err
	}
	unreachable := m.raft.Unreachable()
	var target *raft.Server
	var voters, answering int
	var silent []string
	for _, s := range future.Configuration().Servers {
		switch {
		case s.ID == id:
			target = &s
		case s.Suffrage == raft.Voter:
			voters++
			if _, down := unreachable[s.ID]; down {
				silent = append(silent, string(s.ID))
			} else {
				answering++
			}
		}
	}
	if target == nil {
		return errorf(http.StatusNotFound, "server %q is not in the raft configuration (see `atoll operator raft list-peers`)", id)
	}
	if string(id) == m.cfg.ID {
		return errorf(http.StatusConflict, "refusing to remove %s: it is the leader. Stop it, and remove it on the master elected next if it is not coming back", id)
	}
	if quorum := voters/2 + 1; target.Suffrage == raft.Voter && answering < quorum {
		slices.Sort(silent)
		return errorf(http.StatusConflict,
			"refusing to remove %s: %d voters would remain, of which only %d answer the leader (%s do not), short of the %d a quorum needs. Bring them back, or remove them first",
			id, voters, answering, strings.Join(silent, ", "), quorum)
	}
	ctx, cancel := context.WithTimeout(ctx, raftOpTimeout)
	defer cancel()
	if err := m.raft.RemovePeer(ctx, id, future.Index()); err != nil {
		if errors.Is(err, state.ErrNotLeader) {
			return errNotLeader
		}
		return errorf(http.StatusServiceUnavailable, "%v", err)
	}
	m.log.Info("removed raft peer", "id", id, "address", target.Address)
	return nil
}

// handleSnapshotSave serves GET /api/v1/raft/snapshot: this master takes a snapshot of its
// replica and streams it as a snapshot archive. Any master answers, so a backup can be
// taken while no leader is elected; a follower's may trail the leader's by the entries it
// has not applied yet, as its index says.
func (m *Master) handleSnapshotSave(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), raftOpTimeout)
	meta, snapshot, err := m.raft.OpenSnapshot(ctx)
	cancel()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		writeError(w, errorf(http.StatusServiceUnavailable, "master %s has no state to snapshot yet: it has applied no raft entry", m.cfg.ID))
		return
	}
	if err != nil {
		writeError(w, errorf(http.StatusInternalServerError, "%v", err))
		return
	}
	defer snapshot.Close()
	archive := api.SnapshotMeta{
		Master:      m.cfg.ID,
		Created:     time.Now().UTC().Truncate(time.Second),
		ID:          meta.ID,
		Index:       meta.Index,
		Term:        meta.Term,
		RaftVersion: int(meta.Version),
		Size:        meta.Size,
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="atoll-snapshot-%d.tar.gz"`, meta.Index))
	if err := api.WriteSnapshot(w, archive, snapshot); err != nil {
		// The status is sent: the client is left with an archive that fails its checks.
		m.log.Warn("sending a snapshot failed", "index", meta.Index, "err", err)
		return
	}
	m.log.Info("snapshot sent", "index", meta.Index, "term", meta.Term, "bytes", meta.Size)
}

// handleSnapshotRestore serves POST /api/v1/raft/snapshot on the leader: the body is a
// snapshot archive that replaces the whole cluster's state once it checked out.
func (m *Master) handleSnapshotRestore(w http.ResponseWriter, r *http.Request) {
	// Before the body is read: a client that sent Expect: 100-continue then sends it
	// only to the leader.
	if m.redirectToLeader(w, r) {
		return
	}
	meta, err := m.restoreSnapshot(r.Context(), http.MaxBytesReader(w, r.Body, maxSnapshotUpload))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, meta)
}

// restoreSnapshot checks a snapshot archive whole (spooled to a file in the data dir, so
// that no size of state is held in memory twice) and only then has Raft install it.
func (m *Master) restoreSnapshot(ctx context.Context, archive io.Reader) (*api.SnapshotMeta, error) {
	spool, err := os.CreateTemp(m.cfg.DataDir, "restore-*.snapshot")
	if err != nil {
		return nil, fmt.Errorf("spool the snapshot: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	meta, err := api.ReadSnapshot(archive, spool)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errorf(http.StatusRequestEntityTooLarge, "snapshot archive larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, api.ErrBadSnapshot):
		return nil, errorf(http.StatusBadRequest, "%v; the cluster's state is unchanged", err)
	case err != nil:
		return nil, fmt.Errorf("spool the snapshot: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("spool the snapshot: %w", err)
	}
	raftMeta := &raft.SnapshotMeta{
		Version: raft.SnapshotVersion(meta.RaftVersion),
		ID:      meta.ID,
		Index:   meta.Index,
		Term:    meta.Term,
		Size:    meta.Size,
	}
	// A client that goes away must not stop a restore half way through the checks' wait.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), raftOpTimeout)
	defer cancel()
	err = m.raft.RestoreSnapshot(ctx, raftMeta, spool)
	switch {
	case errors.Is(err, state.ErrInvalidSnapshot):
		return nil, errorf(http.StatusBadRequest, "%v; the cluster's state is unchanged", err)
	case errors.Is(err, state.ErrNotLeader):
		return nil, errNotLeader
	case err != nil:
		return nil, err
	}
	m.log.Info("cluster state restored from a snapshot", "snapshot_master", meta.Master,
		"snapshot_index", meta.Index, "snapshot_term", meta.Term, "created", meta.Created, "bytes", meta.Size)
	m.rebuildLeaderState("cluster state restored from a snapshot")
	return &meta, nil
}

// rebuildLeaderState drops the leader's sessions, offers and allocator, which described the
// state before a restore, and rebuilds them from the store as a new leader does: streams
// close, and frameworks and agents resubscribe against the restored state.
func (m *Master) rebuildLeaderState(why string) {
	m.stepDown(why)
	m.mu.Lock()
	ctx := m.runCtx
	m.mu.Unlock()
	if ctx != nil && ctx.Err() == nil {
		m.becomeLeader(ctx)
	}
}
