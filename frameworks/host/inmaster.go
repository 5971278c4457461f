package host

import (
	"context"
	"fmt"
	"net/http"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

// InMaster runs a framework inside a master, as a master.LeaderService: it schedules
// while that master leads, reads the master's own replica, writes through its Raft, and
// serves its API on the master's handler (on every master; followers forward to the
// leader).
type InMaster struct {
	m         *master.Master
	namespace string
}

var _ Host = (*InMaster)(nil)

// NewInMaster is the host of a framework built into m, keeping its state in namespace.
func NewInMaster(m *master.Master, namespace string) *InMaster {
	return &InMaster{m: m, namespace: namespace}
}

// Namespace is the framework's key-value namespace.
func (h *InMaster) Namespace() string { return h.namespace }

// KV returns the value of key from the master's replica.
func (h *InMaster) KV(_ context.Context, key string) (*state.KVEntry, bool, error) {
	entry, ok := h.m.Store().KV(h.namespace, key)
	return entry, ok, nil
}

// KVList returns the entries under prefix from the master's replica.
func (h *InMaster) KVList(_ context.Context, prefix string) ([]*state.KVEntry, error) {
	return h.m.Store().KVList(h.namespace, prefix), nil
}

// WriteKV replicates req through the master's Raft; only the leader can.
func (h *InMaster) WriteKV(ctx context.Context, req *state.WriteKVRequest) (uint64, error) {
	if req.Namespace != h.namespace {
		return 0, fmt.Errorf("key-value write to %q from the framework of namespace %q", req.Namespace, h.namespace)
	}
	return h.m.WriteKV(ctx, req)
}

// Tasks returns a framework's tasks from one read of the master's replica.
func (h *InMaster) Tasks(_ context.Context, frameworkID string) (live, completed []*state.Task, err error) {
	snap := h.m.Store().Snapshot()
	return snap.TasksByFramework(frameworkID), snap.CompletedTasksByFramework(frameworkID), nil
}

// Agent returns an agent from the master's replica.
func (h *InMaster) Agent(_ context.Context, agentID string) (*state.Agent, bool, error) {
	a, ok := h.m.Store().Agent(agentID)
	return a, ok, nil
}

// Scheduler is the master's in-process client.
func (h *InMaster) Scheduler() *api.Client { return h.m.InProcessClient() }

// APIURL is the master's API base URL.
func (h *InMaster) APIURL() string { return h.m.APIURL() }

// Handle serves pattern on every master.
func (h *InMaster) Handle(pattern string, handler http.Handler) { h.m.Handle(pattern, handler) }

// HandleLeader serves pattern on the leader; followers forward.
func (h *InMaster) HandleLeader(pattern string, handler http.Handler) {
	h.m.Handle(pattern, h.m.LeaderOnly(handler))
}

// Lead runs r while the master leads.
func (h *InMaster) Lead(r Runner) { h.m.AddLeaderService(r) }

// Abdicate hands Raft leadership, and with it the framework, to another master.
func (h *InMaster) Abdicate() error { return h.m.Raft().LeadershipTransfer().Error() }
