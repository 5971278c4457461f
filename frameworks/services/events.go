package services

import (
	"encoding/json"
	"sync"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
)

// event is one event of /v2/events: its type and its JSON payload, which carries
// eventType and timestamp like Marathon's.
type event struct {
	Type    string
	Payload map[string]any
}

// eventBus fans events out to the /v2/events subscribers. Publishing never blocks: a
// subscriber too far behind is dropped (its stream ends and it reconnects).
type eventBus struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one /v2/events stream.
type subscriber struct {
	types  map[string]bool // nil: every type
	events chan []byte
	done   chan string // the reason the bus dropped it
	once   sync.Once
}

// maxQueuedEvents is how many events a subscriber may have unread before it is dropped.
const maxQueuedEvents = 10_000

func newEventBus() *eventBus { return &eventBus{subs: map[*subscriber]struct{}{}} }

func (b *eventBus) subscribe(types []string) *subscriber {
	s := &subscriber{events: make(chan []byte, maxQueuedEvents), done: make(chan string, 1)}
	if len(types) > 0 {
		s.types = map[string]bool{}
		for _, t := range types {
			s.types[t] = true
		}
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *eventBus) unsubscribe(s *subscriber) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

func (s *subscriber) drop(why string) {
	s.once.Do(func() { s.done <- why })
}

// publish sends an event to every subscriber that wants its type.
func (b *eventBus) publish(ev event) {
	ev.Payload["eventType"] = ev.Type
	if _, ok := ev.Payload["timestamp"]; !ok {
		ev.Payload["timestamp"] = marathon.Timestamp(nowUTC())
	}
	data, err := json.Marshal(ev.Payload)
	if err != nil {
		return
	}
	frame := append(append(append([]byte("event: "+ev.Type+"\ndata: "), data...), '\n'), '\n')
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.types != nil && !s.types[ev.Type] {
			continue
		}
		select {
		case s.events <- frame:
		default:
			delete(b.subs, s)
			s.drop("too many unread events")
		}
	}
}

// closeAll ends every stream, as when leadership ends.
func (b *eventBus) closeAll(why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		delete(b.subs, s)
		s.drop(why)
	}
}

// statusEvent is Marathon's status_update_event for an instance's new status.
func (s *Service) statusEvent(in *instance, st *api.TaskStatus) event {
	ports := in.hostPorts
	if ports == nil {
		ports = []uint32{}
	}
	ips := []map[string]string{}
	for _, ip := range in.ips {
		ips = append(ips, map[string]string{"ipAddress": ip, "protocol": "IPv4"})
	}
	return event{Type: "status_update_event", Payload: map[string]any{
		"slaveId":     in.agentID,
		"taskId":      in.taskID,
		"taskStatus":  string(st.State),
		"message":     st.Message,
		"appId":       in.appID,
		"host":        in.hostname,
		"ipAddresses": ips,
		"ports":       ports,
		"version":     in.version,
	}}
}

// healthEvent is Marathon's health_status_changed_event.
func healthEvent(in *instance, alive bool) event {
	return event{Type: "health_status_changed_event", Payload: map[string]any{
		"appId":      in.appID,
		"taskId":     in.taskID,
		"instanceId": in.taskID,
		"version":    in.version,
		"alive":      alive,
	}}
}

// deploymentEvent is a deployment_* event as Marathon sends them: the deployment's id
// and plan (id, version, steps: the shape of /v2/deployments, with the affected apps and
// current actions too), and for deployment_info and deployment_step_* the step in
// question as currentStep.
func (s *Service) deploymentEvent(typ string, d *deployment) event {
	plan := s.deploymentJSON(d)
	payload := map[string]any{"id": d.ID, "plan": plan}
	if typ == "deployment_info" || typ == "deployment_step_success" || typ == "deployment_step_failure" {
		steps, _ := plan["steps"].([]map[string]any)
		if i := min(d.Current, len(steps)-1); i >= 0 {
			payload["currentStep"] = steps[i]
		}
	}
	return event{Type: typ, Payload: payload}
}
