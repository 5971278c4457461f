package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api"
)

// waitTimeout bounds every wait for the agent in these tests: generous, so a loaded
// machine does not make them flaky; a passing test never waits this long.
const waitTimeout = 20 * time.Second

// protocolPeer is the master's side of the agent protocol, reduced to what these tests
// drive: it answers SUBSCRIBE with an event stream, records the calls it receives, and
// sends the events a test asks for. It is a protocol fixture, not a model of the master.
type protocolPeer struct {
	t      testing.TB
	server *httptest.Server
	// heartbeat is the interval announced in SUBSCRIBED; with silent set the peer never
	// sends the HEARTBEAT events it promised.
	heartbeat time.Duration
	silent    bool

	mu         sync.Mutex
	changed    chan struct{}
	done       chan struct{}
	streamID   string
	outbox     chan api.AgentEvent
	subscribes []api.AgentCall
	updates    []api.AgentCallUpdate
	heartbeats int
	// read cursors of nextSubscribe and nextUpdate.
	subscribesRead, updatesRead int
}

func newProtocolPeer(t testing.TB) *protocolPeer {
	t.Helper()
	p := &protocolPeer{
		t: t,
		// Long enough that a loaded machine never makes the agent give up on the stream.
		heartbeat: time.Second,
		changed:   make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	p.server = httptest.NewServer(p)
	t.Cleanup(func() {
		close(p.done)
		p.server.CloseClientConnections()
		p.server.Close()
	})
	return p
}

func (p *protocolPeer) masters() []string { return []string{p.server.URL} }

func (p *protocolPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != api.AgentPath {
		http.NotFound(w, r)
		return
	}
	var call api.AgentCall
	if err := json.NewDecoder(r.Body).Decode(&call); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch call.Type {
	case api.AgentSubscribe:
		p.serveStream(w, r, call)
	case api.AgentUpdate, api.AgentHeartbeat:
		p.mu.Lock()
		current := r.Header.Get(api.StreamIDHeader) == p.streamID
		if current && call.Type == api.AgentUpdate && call.Update != nil {
			p.updates = append(p.updates, *call.Update)
		}
		if current && call.Type == api.AgentUpdate {
			p.updates = append(p.updates, call.Updates...)
		}
		if current && call.Type == api.AgentHeartbeat {
			p.heartbeats++
		}
		p.mu.Unlock()
		if !current {
			http.Error(w, "unknown stream id", http.StatusForbidden)
			return
		}
		p.notify()
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, "unknown call type", http.StatusBadRequest)
	}
}

func (p *protocolPeer) serveStream(w http.ResponseWriter, r *http.Request, call api.AgentCall) {
	if r.Header.Get(api.StreamIDHeader) != "" || call.Subscribe == nil {
		http.Error(w, "bad SUBSCRIBE", http.StatusBadRequest)
		return
	}
	agentID := "agent-1"
	if id := call.Subscribe.AgentInfo.ID; id != nil {
		agentID = id.Value
	}
	streamID, outbox := uuid.NewString(), make(chan api.AgentEvent, 64)
	p.mu.Lock()
	p.streamID, p.outbox = streamID, outbox
	p.subscribes = append(p.subscribes, call)
	p.mu.Unlock()
	p.notify()

	w.Header().Set(api.StreamIDHeader, streamID)
	w.Header().Set("Content-Type", "application/recordio")
	w.WriteHeader(http.StatusOK)
	write := func(ev api.AgentEvent) bool {
		b, err := json.Marshal(ev)
		if err != nil {
			p.t.Errorf("encode event: %v", err)
			return false
		}
		if _, err := w.Write(api.AppendRecord(nil, b)); err != nil {
			return false
		}
		w.(http.Flusher).Flush()
		return true
	}
	if !write(api.AgentEvent{Type: api.AgentSubscribed, Subscribed: &api.AgentEventSubscribed{
		AgentID: api.AgentID{Value: agentID}, HeartbeatIntervalSeconds: p.heartbeat.Seconds(),
	}}) {
		return
	}
	var heartbeats <-chan time.Time
	if !p.silent {
		ticker := time.NewTicker(p.heartbeat)
		defer ticker.Stop()
		heartbeats = ticker.C
	}
	for {
		select {
		case ev := <-outbox:
			if !write(ev) {
				return
			}
		case <-heartbeats:
			if !write(api.AgentEvent{Type: api.AgentEventHeartbeat}) {
				return
			}
		case <-r.Context().Done():
			return
		case <-p.done:
			return
		}
	}
}

func (p *protocolPeer) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until check (called with p.mu held) reports true.
func (p *protocolPeer) waitFor(what string, check func() bool) {
	p.t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok := check()
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-p.changed:
		case <-deadline.C:
			p.t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
	}
}

// nextSubscribe returns the next SUBSCRIBE call the peer received.
func (p *protocolPeer) nextSubscribe() api.AgentCallSubscribe {
	p.t.Helper()
	var call api.AgentCall
	p.waitFor("a SUBSCRIBE", func() bool {
		if p.subscribesRead == len(p.subscribes) {
			return false
		}
		call = p.subscribes[p.subscribesRead]
		p.subscribesRead++
		return true
	})
	return *call.Subscribe
}

// nextUpdate returns the next UPDATE call the peer received.
func (p *protocolPeer) nextUpdate() api.AgentCallUpdate {
	p.t.Helper()
	var u api.AgentCallUpdate
	p.waitFor("an UPDATE", func() bool {
		if p.updatesRead == len(p.updates) {
			return false
		}
		u = p.updates[p.updatesRead]
		p.updatesRead++
		return true
	})
	return u
}

// send queues ev on the current event stream.
func (p *protocolPeer) send(ev api.AgentEvent) {
	p.t.Helper()
	p.mu.Lock()
	outbox := p.outbox
	p.mu.Unlock()
	if outbox == nil {
		p.t.Fatal("no agent subscribed to send an event to")
	}
	select {
	case outbox <- ev:
	case <-time.After(waitTimeout):
		p.t.Fatalf("event stream stuck sending %s", ev.Type)
	}
}

// ack acknowledges an update as the framework would.
func (p *protocolPeer) ack(u api.AgentCallUpdate) {
	p.t.Helper()
	p.send(api.AgentEvent{Type: api.AgentAcknowledge, Acknowledge: &api.AgentEventAcknowledge{
		FrameworkID: u.FrameworkID, TaskID: u.Status.TaskID, UUID: u.Status.UUID,
	}})
}
