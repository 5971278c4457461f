package master

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// The hooks the built-in frameworks (the services and jobs frameworks) are plugged into
// the master with. They are frameworks like any other: they talk to the scheduler API
// through an in-process client, the same handlers external frameworks reach over HTTP.
// What is theirs alone is where they run, on the leader while it leads, and where they
// keep their state, the replicated key-value table.

// LeaderService runs on the leading master: Run starts when this master becomes leader
// and its context ends when leadership does. It must return soon after that: stepping
// down waits for it, so that no two terms' runs overlap.
type LeaderService interface {
	Name() string
	Run(ctx context.Context)
}

// AddLeaderService registers s, before Run. A master already leading starts it at once.
func (m *Master) AddLeaderService(s LeaderService) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.services = append(m.services, s)
	if m.leader != nil {
		m.startServiceLocked(m.leader, s)
	}
}

// startServiceLocked runs s for the leadership ls. m.mu is held.
func (m *Master) startServiceLocked(ls *leaderState, s LeaderService) {
	ls.services.Add(1)
	go func() {
		defer ls.services.Done()
		m.log.Info("starting leader service", "service", s.Name(), "term", ls.term)
		s.Run(ls.ctx)
		m.log.Info("leader service stopped", "service", s.Name(), "term", ls.term)
	}()
}

// Handle serves pattern (an http.ServeMux pattern) with h on the master's API, next to
// its own routes. Register before calling Handler.
func (m *Master) Handle(pattern string, h http.Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.routes = append(m.routes, route{pattern, h})
}

// route is one Handle registration.
type route struct {
	pattern string
	handler http.Handler
}

// LeaderOnly wraps h so that a follower forwards the request to the leader (see
// forwardToLeader, including `?stale=true`); on the leader h answers.
func (m *Master) LeaderOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.forwardToLeader(w, r) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// InProcessClient is an API client that calls this master's handlers directly, without
// a socket: what the built-in frameworks subscribe through. Its calls need no token (see
// fromThisProcess).
func (m *Master) InProcessClient() *api.Client {
	m.inProcessOnce.Do(func() {
		m.inProcess = api.NewClient("http://in-process", api.WithHTTPClient(&http.Client{Transport: api.HandlerTransport(m.Handler())}))
	})
	return m.inProcess
}

// SchedulerCall handles a scheduler call (any but SUBSCRIBE) of the subscription streamID
// as the scheduler endpoint does, without the JSON and HTTP round trip: a built-in
// framework launching thousands of tasks at once spends most of its time there
// otherwise. The call is checked as the endpoint checks it; the master neither keeps nor
// changes its values. Only the leader answers.
func (m *Master) SchedulerCall(ctx context.Context, streamID string, call *api.Call) error {
	if err := ValidateCall(call); err != nil {
		return errorf(http.StatusBadRequest, "invalid call: %v", err)
	}
	if call.Type == api.CallSubscribe {
		return errorf(http.StatusBadRequest, "SUBSCRIBE goes through the scheduler endpoint, which streams the events")
	}
	return m.schedulerCall(ctx, streamID, call)
}

// WriteKV replicates a key-value write (see state.WriteKVRequest) and returns the Raft
// index it was applied at. Only the leader can write.
func (m *Master) WriteKV(ctx context.Context, req *state.WriteKVRequest) (uint64, error) {
	if err := req.Validate(); err != nil {
		return 0, err
	}
	resp, err := m.apply(ctx, state.WriteKVType, req)
	if err != nil {
		return 0, err
	}
	result, _ := resp.(*state.ApplyResult)
	if result == nil {
		return 0, fmt.Errorf("key-value write: the state machine answered %T", resp)
	}
	return result.Index, nil
}

// builtinState is Master's part for the built-in frameworks, guarded by Master.mu.
type builtinState struct {
	services []LeaderService
	routes   []route

	inProcessOnce sync.Once
	inProcess     *api.Client
}

// APIURL is this master's API base URL.
func (m *Master) APIURL() string { return m.cfg.APIURL }
