package master_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

func TestMain(m *testing.M) {
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// waitTimeout bounds every wait for an event; generous because CI machines are loaded.
const waitTimeout = 20 * time.Second

// framework is a scheduler driven by a test through the real HTTP API.
type framework struct {
	t      testing.TB
	client *api.Client
	stream *api.SchedulerStream
	events chan *api.Event
	ctx    context.Context
	cancel context.CancelFunc
}

func frameworkInfo(name string, caps ...string) api.FrameworkInfo {
	info := api.FrameworkInfo{User: "root", Name: name, FailoverTimeout: 0}
	for _, c := range caps {
		info.Capabilities = append(info.Capabilities, api.FrameworkCapability{Type: c})
	}
	return info
}

// subscribe connects a framework and waits for SUBSCRIBED; opts configure its client
// (a token).
func subscribe(t testing.TB, url string, info api.FrameworkInfo, opts ...api.ClientOption) *framework {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := api.NewClient(url, opts...)
	s, err := client.Subscribe(ctx, info, nil)
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	f := &framework{t: t, client: client, stream: s, events: make(chan *api.Event, 1024), ctx: ctx, cancel: cancel}
	go func() {
		defer close(f.events)
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			f.events <- ev
		}
	}()
	ev := f.next()
	if ev.Type != api.EventSubscribed {
		t.Fatalf("first event %s, want SUBSCRIBED", ev.Type)
	}
	t.Cleanup(f.close)
	return f
}

func (f *framework) close() {
	f.cancel()
	_ = f.stream.Close()
}

func (f *framework) id() string { return f.stream.FrameworkID().Value }

// next returns the next event that is not a heartbeat.
func (f *framework) next() *api.Event {
	f.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-f.events:
			if !ok {
				f.t.Fatalf("framework stream closed")
			}
			if ev.Type == api.EventHeartbeat {
				continue
			}
			return ev
		case <-timer.C:
			f.t.Fatalf("no event within %v", waitTimeout)
		}
	}
}

// waitFor returns the first event matching pred, skipping others.
func (f *framework) waitFor(what string, pred func(*api.Event) bool) *api.Event {
	f.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-f.events:
			if !ok {
				f.t.Fatalf("framework stream closed while waiting for %s", what)
			}
			if pred(ev) {
				return ev
			}
		case <-deadline:
			f.t.Fatalf("no %s within %v", what, waitTimeout)
		}
	}
}

// quiet asserts no event matching pred arrives within d.
func (f *framework) quiet(d time.Duration, what string, pred func(*api.Event) bool) {
	f.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-f.events:
			if !ok {
				return
			}
			if pred(ev) {
				f.t.Fatalf("unexpected %s: %+v", what, ev)
			}
		case <-deadline:
			return
		}
	}
}

func (f *framework) offers() []api.Offer {
	f.t.Helper()
	return f.waitFor("offers", func(ev *api.Event) bool { return ev.Type == api.EventOffers }).Offers.Offers
}

// update waits for the task's update in state want, acknowledging updates on the way
// when ack is set.
func (f *framework) update(taskID string, want api.TaskState, ack bool) api.TaskStatus {
	f.t.Helper()
	var got api.TaskStatus
	f.waitFor(fmt.Sprintf("%s %s", taskID, want), func(ev *api.Event) bool {
		if ev.Type != api.EventUpdate || ev.Update.Status.TaskID.Value != taskID {
			return false
		}
		st := ev.Update.Status
		if ack && len(st.UUID) > 0 {
			f.ack(st)
		}
		if st.State == want {
			got = st
			return true
		}
		return false
	})
	return got
}

func (f *framework) ack(st api.TaskStatus) {
	f.t.Helper()
	if err := f.stream.Acknowledge(f.ctx, st); err != nil {
		f.t.Fatalf("acknowledge %s: %v", st.TaskID.Value, err)
	}
}

func scalar(name string, v float64) api.Resource {
	return api.Resource{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: v}}
}

func shellTask(id, cmd string, cpus, mem float64) api.TaskInfo {
	return api.TaskInfo{
		Name:      id,
		TaskID:    api.TaskID{Value: id},
		Resources: []api.Resource{scalar("cpus", cpus), scalar("mem", mem)},
		Command:   &api.CommandInfo{Value: &cmd},
	}
}

// launch accepts offer o with the tasks (agent ids filled in).
func (f *framework) launch(o api.Offer, tasks ...api.TaskInfo) {
	f.t.Helper()
	for i := range tasks {
		tasks[i].AgentID = o.AgentID
	}
	err := f.stream.Accept(f.ctx, []api.OfferID{o.ID}, []api.OfferOperation{{
		Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: tasks},
	}}, nil)
	if err != nil {
		f.t.Fatalf("accept: %v", err)
	}
}

func refuse(seconds float64) *api.Filters { return &api.Filters{RefuseSeconds: &seconds} }

func scalarOf(rs []api.Resource, name string) float64 {
	for _, r := range rs {
		if r.Name == name && r.Scalar != nil {
			return r.Scalar.Value
		}
	}
	return 0
}

// eventually polls cond until it holds or the wait times out.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}
