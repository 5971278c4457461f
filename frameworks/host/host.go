// Package host is where Atoll's frameworks (services, jobs) run: inside the leading
// master, as the built-in frameworks do (InMaster), or as a process of their own that
// reaches a master over HTTP (Remote), as the Marathon and Chronos the package catalog
// installs do. A framework sees only Host: the scheduler API, its part of the replicated
// key-value table, the master's record of its tasks and of the agents, the routes of its
// API, and when it may schedule.
package host

import (
	"context"
	"net/http"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// Host is what a framework needs from where it runs. Its methods are safe for concurrent
// use. Reads of the master's state are the leader's current view.
type Host interface {
	// Namespace is the framework's part of the replicated key-value table: every KV read
	// and write is in it.
	Namespace() string
	// KV returns the value of key.
	KV(ctx context.Context, key string) (*state.KVEntry, bool, error)
	// KVList returns the entries whose keys start with prefix, ordered by key.
	KVList(ctx context.Context, prefix string) ([]*state.KVEntry, error)
	// WriteKV replicates a write (req.Namespace must be Namespace()) and returns the Raft
	// index it was applied at: once it returns, the write survives any failover.
	WriteKV(ctx context.Context, req *state.WriteKVRequest) (uint64, error)
	// Tasks returns the master's record of a framework's tasks: the live ones (unreachable
	// included) and the recently completed ones, oldest first.
	Tasks(ctx context.Context, frameworkID string) (live, completed []*state.Task, err error)
	// Agent returns a registered agent.
	Agent(ctx context.Context, agentID string) (*state.Agent, bool, error)
	// Scheduler is the client the framework subscribes to the scheduler API with.
	Scheduler() *api.Client
	// APIURL is the base URL the framework's API is reached at (http://host:port).
	APIURL() string
	// Handle serves pattern (an http.ServeMux pattern) with h wherever the framework's API
	// is served; HandleLeader does so only where the framework schedules, the others
	// forwarding. Register before the host serves.
	Handle(pattern string, h http.Handler)
	HandleLeader(pattern string, h http.Handler)
	// Lead runs r whenever the framework may schedule here: r.Run's context ends when it
	// no longer may, and Run must then return soon.
	Lead(r Runner)
	// Abdicate stops scheduling here for now, so that the framework starts over where the
	// host next lets it lead (Marathon's DELETE /v2/leader).
	Abdicate() error
}

// Runner is a framework's scheduler: the same methods as master.LeaderService.
type Runner interface {
	Name() string
	Run(ctx context.Context)
}
