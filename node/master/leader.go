package master

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/atoll/atoll/alloc"
	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// leaderState is everything only the leader keeps: live streams, outstanding offers and the
// allocator. It is rebuilt from the replicated store on every election and dropped on
// step-down; offers are never replicated. Guarded by Master.mu.
type leaderState struct {
	ctx    context.Context
	cancel context.CancelFunc
	alloc  *alloc.Allocator

	frameworks map[string]*frameworkSession
	agents     map[string]*agentSession
	offers     map[string]*offer
	// nextOffer numbers offers; with the election term it makes ids unique across leaders.
	nextOffer uint64
	term      uint64

	allocTrigger chan struct{}
	// pending are the launches waiting for their time (LAUNCH with NotBefore), and dueAt
	// those of each time a timer is set for.
	pending map[state.TaskKey]*deferredLaunch
	dueAt   map[time.Time][]*deferredLaunch
	// services counts the leader services running for this term.
	services sync.WaitGroup
}

// offer is an outstanding offer.
type offer struct {
	id          string
	frameworkID string
	agentID     string
	role        string
	resources   alloc.Resources
	created     time.Time
}

// reregisterWait is how long a new leader gives a known agent to subscribe before its
// tasks become unreachable: AgentReregisterTimeout, since the masters were away, not the
// agent; but for an agent gossip already reported failed, what is left of AgentTimeout
// since then, as the old leader would have given it. m.mu must be held.
func (m *Master) reregisterWait(agentID string, now time.Time) time.Duration {
	if failed, ok := m.agentsFailed[agentID]; ok {
		return max(0, m.cfg.AgentTimeout-now.Sub(failed))
	}
	return max(m.cfg.AgentTimeout, m.cfg.AgentReregisterTimeout)
}

// becomeLeader rebuilds leader state from the store and starts the leader loops.
func (m *Master) becomeLeader(ctx context.Context) {
	// A new leader must apply everything its predecessor committed before reading state;
	// it retries for as long as it leads, since a leader without leader state serves no one.
	for {
		err := m.raft.Barrier(10 * time.Second).Error()
		if err == nil {
			break
		}
		if !m.isLeader() || ctx.Err() != nil {
			m.log.Warn("leadership ended before the barrier completed", "err", err)
			return
		}
		m.log.Error("leadership barrier failed; retrying", "err", err)
		time.Sleep(100 * time.Millisecond)
	}
	m.mu.Lock()
	if m.leader != nil {
		m.mu.Unlock()
		return
	}
	lctx, cancel := context.WithCancel(ctx)
	ls := &leaderState{
		ctx:          lctx,
		cancel:       cancel,
		alloc:        alloc.New(m.cfg.Allocator),
		frameworks:   map[string]*frameworkSession{},
		agents:       map[string]*agentSession{},
		offers:       map[string]*offer{},
		term:         m.raft.CurrentTerm(),
		allocTrigger: make(chan struct{}, 1),
	}
	store := m.fsm.Store()
	now := time.Now()
	// Agents known to the store come back inactive: nothing is offered on them until they
	// re-subscribe, and those that never do become unreachable after AgentTimeout.
	for _, a := range store.Agents() {
		if a.Unreachable {
			continue
		}
		total, err := alloc.FromProto(a.Info.Resources)
		if err != nil {
			m.log.Error("agent in store has invalid resources; ignoring it", "agent", a.ID, "err", err)
			continue
		}
		ls.alloc.AddAgent(a.ID, a.Info.Hostname, total, nil)
		ls.alloc.SetAgentActive(a.ID, false)
		as := &agentSession{id: a.ID, hostname: a.Info.Hostname, httpAddr: a.HTTPAddress, attributes: a.Info.Attributes}
		as.lostTimer = time.AfterFunc(m.reregisterWait(a.ID, now), func() { m.agentTimedOut(a.ID, as) })
		ls.agents[a.ID] = as
	}
	for _, f := range store.Frameworks() {
		if f.Removed {
			continue
		}
		fs := &frameworkSession{id: f.ID, info: f.Info, recovered: true}
		ls.frameworks[f.ID] = fs
		ls.alloc.AddFramework(f.ID, f.Info.AllRoles(), nil, false)
		m.startFailoverTimerAtLeast(ls, fs, m.cfg.LeaderChangeGrace)
	}
	for _, t := range store.Tasks() {
		if t.State.Terminal() {
			continue
		}
		r, err := alloc.FromProto(t.Info.Resources)
		if err != nil {
			continue
		}
		ls.alloc.AddUsed(t.FrameworkID, t.AgentID, t.Role, r)
	}
	m.takeOverLaunchesLocked(ls, store, now)
	m.leader = ls
	for _, s := range m.services {
		m.startServiceLocked(ls, s)
	}
	m.leaderDone = make(chan struct{})
	done := m.leaderDone
	agents, frameworks := len(ls.agents), len(ls.frameworks)
	m.mu.Unlock()

	m.log.Info("became leader", "term", ls.term, "agents", agents, "frameworks", frameworks, "elapsed", time.Since(now))
	m.metrics.elections.Inc()
	go m.markFrameworksDisconnected(ls)
	go func() {
		defer close(done)
		m.leaderLoop(ls)
	}()
}

// stepDown drops leader state: every framework and agent stream closes so clients
// reconnect to the new leader.
func (m *Master) stepDown(why string) {
	m.mu.Lock()
	ls := m.leader
	m.leader = nil
	done := m.leaderDone
	if ls == nil {
		m.mu.Unlock()
		return
	}
	ls.cancel()
	reason := fmt.Errorf("master %s: %s", m.cfg.ID, why)
	// Under the lock: a subscription still finishing with this leadership's state
	// changes its sessions' streams under it too.
	for _, fs := range ls.frameworks {
		fs.stopTimer()
		if fs.stream != nil {
			fs.stream.close(reason)
		}
	}
	for _, as := range ls.agents {
		if as.lostTimer != nil {
			as.lostTimer.Stop()
		}
		if as.stream != nil {
			as.stream.close(reason)
		}
	}
	m.mu.Unlock()
	m.log.Info("no longer leader", "reason", why)
	<-done
	ls.services.Wait()
}

// leaderLoop runs allocation passes (on events, batched, and periodically), heartbeats and
// timeouts until leadership ends.
func (m *Master) leaderLoop(ls *leaderState) {
	allocTick := time.NewTicker(m.cfg.AllocationInterval)
	defer allocTick.Stop()
	heartbeat := time.NewTicker(m.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		select {
		case <-ls.ctx.Done():
			return
		case <-ls.allocTrigger:
			// Batch: more triggers arriving within the window collapse into this pass.
			timer := time.NewTimer(m.cfg.AllocationBatch)
			select {
			case <-ls.ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			select {
			case <-ls.allocTrigger:
			default:
			}
			m.allocate(ls)
		case <-allocTick.C:
			m.expireOffers(ls)
			m.closeSilentAgents(ls)
			m.allocate(ls)
		case <-heartbeat.C:
			m.sendHeartbeats(ls)
		}
	}
}

// triggerAllocation queues an allocation pass; it never blocks.
func (ls *leaderState) triggerAllocation() {
	select {
	case ls.allocTrigger <- struct{}{}:
	default:
	}
}

// allocate runs one DRF pass and turns its allocations into offers.
func (m *Master) allocate(ls *leaderState) {
	start := time.Now()
	allocations := ls.alloc.Allocate(start)
	m.metrics.allocationSeconds.Observe(time.Since(start).Seconds())
	if len(allocations) == 0 {
		return
	}
	byFramework := map[string][]api.Offer{}
	m.mu.Lock()
	if m.leader != ls {
		m.mu.Unlock()
		return
	}
	for _, a := range allocations {
		fs := ls.frameworks[a.FrameworkID]
		as := ls.agents[a.AgentID]
		if fs == nil || fs.stream == nil || as == nil || as.stream == nil {
			ls.alloc.Recover(a.FrameworkID, a.AgentID, a.Role, a.Resources, 0)
			continue
		}
		ls.nextOffer++
		o := &offer{
			id:          fmt.Sprintf("%s-T%d-O%d", m.cfg.ID, ls.term, ls.nextOffer),
			frameworkID: a.FrameworkID,
			agentID:     a.AgentID,
			role:        a.Role,
			resources:   a.Resources,
			created:     start,
		}
		ls.offers[o.id] = o
		byFramework[a.FrameworkID] = append(byFramework[a.FrameworkID], m.offerProto(o, as))
	}
	for fid, offers := range byFramework {
		fs := ls.frameworks[fid]
		fs.stream.sendJSON(api.Event{Type: api.EventOffers, Offers: &api.Offers{Offers: offers}})
		m.metrics.offersSent.Add(float64(len(offers)))
	}
	m.mu.Unlock()
}

func (m *Master) offerProto(o *offer, as *agentSession) api.Offer {
	res := o.resources.Proto()
	for i := range res {
		res[i].AllocationInfo = &api.AllocationInfo{Role: o.role}
	}
	return api.Offer{
		ID:             api.OfferID{Value: o.id},
		FrameworkID:    api.FrameworkID{Value: o.frameworkID},
		AgentID:        api.AgentID{Value: o.agentID},
		Hostname:       as.hostname,
		Resources:      res,
		Attributes:     as.attributes,
		AllocationInfo: &api.AllocationInfo{Role: o.role},
	}
}

// rescindLocked withdraws an offer: the framework is told and the resources go back to the
// allocator. Caller holds m.mu.
func (m *Master) rescindLocked(ls *leaderState, o *offer, notify bool) {
	delete(ls.offers, o.id)
	ls.alloc.Recover(o.frameworkID, o.agentID, o.role, o.resources, 0)
	if fs := ls.frameworks[o.frameworkID]; notify && fs != nil && fs.stream != nil {
		fs.stream.sendJSON(api.Event{Type: api.EventRescind, Rescind: &api.Rescind{OfferID: api.OfferID{Value: o.id}}})
	}
	m.metrics.offersRescinded.Inc()
	ls.triggerAllocation()
}

// expireOffers rescinds offers older than OfferTimeout.
func (m *Master) expireOffers(ls *leaderState) {
	if m.cfg.OfferTimeout <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	cutoff := time.Now().Add(-m.cfg.OfferTimeout)
	for _, o := range ls.offers {
		if o.created.Before(cutoff) {
			m.rescindLocked(ls, o, true)
		}
	}
}

func (m *Master) sendHeartbeats(ls *leaderState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	for _, fs := range ls.frameworks {
		if fs.stream != nil {
			fs.stream.sendJSON(api.Event{Type: api.EventHeartbeat})
		}
	}
	for _, as := range ls.agents {
		if as.stream != nil {
			as.stream.sendJSON(api.AgentEvent{Type: api.AgentEventHeartbeat})
		}
	}
}

// closeSilentAgents ends the stream of every agent not heard from (no call, no heartbeat)
// for AgentTimeout: a stream can stay open on a dead link. The agent is then unreachable
// at once, as the timeout counts from its last contact.
func (m *Master) closeSilentAgents(ls *leaderState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leader != ls {
		return
	}
	silentSince := time.Now().Add(-m.cfg.AgentTimeout)
	for _, as := range ls.agents {
		if as.stream != nil && as.lastSeen.Before(silentSince) {
			as.stream.close(fmt.Errorf("agent silent since %s", as.lastSeen.Format(time.RFC3339)))
		}
	}
}

// apply replicates one command and returns the FSM's answer.
func (m *Master) apply(ctx context.Context, t state.MessageType, req any) (any, error) {
	resp, err := m.raft.Apply(ctx, t, req)
	if errors.Is(err, state.ErrNotLeader) {
		return nil, errNotLeader
	}
	return resp, err
}

// errNotLeader answers requests that need the leader on a master that is not.
var errNotLeader = errors.New("not the leading master")

// markFrameworksDisconnected records that frameworks whose streams ended with the previous
// leader are disconnected, unless they resubscribed meanwhile.
func (m *Master) markFrameworksDisconnected(ls *leaderState) {
	for _, f := range m.fsm.Store().Frameworks() {
		if f.Removed || !f.Connected {
			continue
		}
		m.mu.Lock()
		fs := ls.frameworks[f.ID]
		m.mu.Unlock()
		if fs == nil {
			continue
		}
		if err := m.recordConnection(ls.ctx, ls, fs, time.Now()); err != nil {
			m.log.Warn("could not record framework disconnect after leader change", "framework", f.ID, "err", err)
			return
		}
	}
}
