package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/host"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

// waitTimeout bounds every wait: generous, for a loaded 2-core machine.
const waitTimeout = 30 * time.Second

// eventually polls cond until it returns nil or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, waitTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newRemote makes a remote host on a master for a test, with quick restarts, not
// serving.
func newRemote(t testing.TB, masterURL, namespace string) *host.Remote {
	t.Helper()
	cfg := host.DefaultRemoteConfig()
	cfg.Master, cfg.Namespace, cfg.Listen = masterURL, namespace, "127.0.0.1:0"
	cfg.RestartDelay, cfg.MaxRestartDelay = 10*time.Millisecond, 100*time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	h, err := host.NewRemote(cfg)
	if err != nil {
		t.Fatalf("remote host: %v", err)
	}
	return h
}

func TestRemoteConfig(t *testing.T) {
	valid := func() host.RemoteConfig {
		c := host.DefaultRemoteConfig()
		c.Master, c.Namespace = "http://127.0.0.1:5050", "services.user"
		return c
	}
	tests := []struct {
		name   string
		change func(*host.RemoteConfig)
		want   string
	}{
		{"valid", func(*host.RemoteConfig) {}, ""},
		{"no master", func(c *host.RemoteConfig) { c.Master = "" }, "master URL: empty"},
		{"master without scheme", func(c *host.RemoteConfig) { c.Master = "127.0.0.1:5050" }, `master URL "127.0.0.1:5050": want a URL like http://host:5050`},
		{"master not http", func(c *host.RemoteConfig) { c.Master = "ftp://m" }, `master URL "ftp://m": want a URL like http://host:5050`},
		{"built-in namespace", func(c *host.RemoteConfig) { c.Namespace = "services" }, `key-value namespace "services" belongs to the built-in services framework and cannot be used through the key-value API: give the framework a namespace of its own`},
		{"bad namespace", func(c *host.RemoteConfig) { c.Namespace = "My App" }, `key-value namespace "My App": want 1 to 63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit`},
		{"no listen", func(c *host.RemoteConfig) { c.Listen = "" }, "listen address: empty"},
		{"listen without port", func(c *host.RemoteConfig) { c.Listen = "127.0.0.1" }, `listen address "127.0.0.1": address 127.0.0.1: missing port in address`},
		{"no timeout", func(c *host.RemoteConfig) { c.RequestTimeout = 0 }, "request timeout: 0s, want > 0"},
		{"delays reversed", func(c *host.RemoteConfig) { c.MaxRestartDelay = time.Millisecond }, "restart delays: 1s up to 1ms, want 0 < first ≤ most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestRemoteKV: what a remote host writes, it and the master's replica read alike, keys
// with slashes and dots included; writes to another namespace are refused.
func TestRemoteKV(t *testing.T) {
	ts := master.NewTestServer(t)
	h := newRemote(t, ts.URL, "fw.one")
	ctx := context.Background()
	keys := []string{"app//web", "app//a.b/c", ".", "..", "a b?c#d%"}
	req := &state.WriteKVRequest{Namespace: "fw.one"}
	for i, key := range keys {
		req.Puts = append(req.Puts, state.KVPut{Key: key, Value: json.RawMessage(fmt.Sprint(i))})
	}
	index, err := h.WriteKV(ctx, req)
	if err != nil || index == 0 {
		t.Fatalf("WriteKV = %d, %v", index, err)
	}
	for i, key := range keys {
		got, ok, err := h.KV(ctx, key)
		want := &state.KVEntry{Namespace: "fw.one", Key: key, Value: json.RawMessage(fmt.Sprint(i)), Index: index}
		if err != nil || !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("KV(%q) = %+v, %v, %v; want %+v", key, got, ok, err, want)
		}
	}
	if got, ok, err := h.KV(ctx, "app//none"); got != nil || ok || err != nil {
		t.Errorf("KV of a missing key = %v, %v, %v; want nothing, no error", got, ok, err)
	}
	list, err := h.KVList(ctx, "app/")
	if err != nil {
		t.Fatal(err)
	}
	if want := ts.Store().KVList("fw.one", "app/"); len(list) != 2 || !reflect.DeepEqual(list, want) {
		t.Errorf("KVList(app/) = %+v, want the replica's %+v", list, want)
	}
	if _, err := h.WriteKV(ctx, &state.WriteKVRequest{Namespace: "services", Puts: []state.KVPut{{Key: "k", Value: json.RawMessage("1")}}}); err == nil ||
		err.Error() != `key-value write to "services" from the framework of namespace "fw.one"` {
		t.Errorf("write to another namespace: %v", err)
	}
	if entries := ts.Store().KVList("services", ""); len(entries) != 0 {
		t.Errorf("the services namespace has %d entries", len(entries))
	}
}

// TestRemoteTasksAndAgents: a remote host reads a framework's tasks and the agents as the
// in-master host does, in what frameworks read of them.
func TestRemoteTasksAndAgents(t *testing.T) {
	ts := master.NewTestServer(t)
	agent := master.StartSimulatedAgent(t, ts.URL, "sim-0", []api.Resource{
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 4}},
		{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 4096}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := api.NewClient(ts.URL).Subscribe(ctx, api.FrameworkInfo{User: "root", Name: "probe", Roles: []string{"*"},
		Capabilities: []api.FrameworkCapability{{Type: api.CapabilityMultiRole}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	events, _ := stream.Events(ctx, 16)
	var frameworkID string
	var offer *api.Offer
	for offer == nil {
		select {
		case ev := <-events:
			switch {
			case ev == nil:
				t.Fatal("the scheduler stream ended")
			case ev.Type == api.EventSubscribed:
				frameworkID = ev.Subscribed.FrameworkID.Value
			case ev.Type == api.EventOffers:
				offer = &ev.Offers.Offers[0]
			}
		case <-time.After(waitTimeout):
			t.Fatal("no offer")
		}
	}
	cmd := "sleep 1000"
	labels := &api.Labels{Labels: []api.Label{{Key: "app", Value: "/web"}}}
	var launched []api.TaskInfo
	for _, id := range []string{"web.1", "web.2"} {
		launched = append(launched, api.TaskInfo{Name: id, TaskID: api.TaskID{Value: id}, AgentID: offer.AgentID, Labels: labels,
			Command: &api.CommandInfo{Value: &cmd}, Resources: []api.Resource{
				{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 0.5}, AllocationInfo: offer.Resources[0].AllocationInfo},
				{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 64}, AllocationInfo: offer.Resources[0].AllocationInfo},
			}})
	}
	if err := stream.Accept(ctx, []api.OfferID{offer.ID}, []api.OfferOperation{{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: launched}}}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both tasks running", func() error {
		for _, task := range ts.Store().TasksByFramework(frameworkID) {
			if task.State != api.TaskRunning {
				return fmt.Errorf("task %s %s", task.ID, task.State)
			}
		}
		if n := len(ts.Store().TasksByFramework(frameworkID)); n != 2 {
			return fmt.Errorf("%d tasks", n)
		}
		return nil
	})
	if err := stream.Kill(ctx, api.TaskID{Value: "web.2"}, &offer.AgentID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web.2 completed", func() error {
		if n := len(ts.Store().CompletedTasksByFramework(frameworkID)); n != 1 {
			return fmt.Errorf("%d completed tasks", n)
		}
		return nil
	})

	inMaster := host.NewInMaster(ts.Master, "fw.one")
	remote := newRemote(t, ts.URL, "fw.one")
	wantLive, wantCompleted, _ := inMaster.Tasks(ctx, frameworkID)
	live, completed, err := remote.Tasks(ctx, frameworkID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want []*state.Task
	}{{"live", live, wantLive}, {"completed", completed, wantCompleted}} {
		if len(tc.got) != 1 || len(tc.want) != 1 {
			t.Fatalf("%s tasks: remote %d, in-master %d, want 1 each", tc.name, len(tc.got), len(tc.want))
		}
		got, want := tc.got[0], tc.want[0]
		if got.ID != want.ID || got.FrameworkID != want.FrameworkID || got.AgentID != want.AgentID || got.State != want.State || got.Role != want.Role ||
			!reflect.DeepEqual(got.Info.Labels, want.Info.Labels) || !reflect.DeepEqual(got.Info.Resources, want.Info.Resources) || !reflect.DeepEqual(got.Statuses, want.Statuses) {
			t.Errorf("%s task: remote %+v, in-master %+v", tc.name, got, want)
		}
		// The launch time is the earliest status's: the agent's, after the master's.
		if got.LaunchedTime.IsZero() || got.LaunchedTime.Before(want.LaunchedTime) {
			t.Errorf("%s task launched at %v, in-master at %v", tc.name, got.LaunchedTime, want.LaunchedTime)
		}
	}
	if live[0].ID != "web.1" || completed[0].ID != "web.2" || completed[0].State != api.TaskKilled {
		t.Errorf("live %s, completed %s %s; want web.1, web.2 TASK_KILLED", live[0].ID, completed[0].ID, completed[0].State)
	}
	if other, _, err := remote.Tasks(ctx, "another"); err != nil || len(other) != 0 {
		t.Errorf("tasks of another framework: %d, %v", len(other), err)
	}

	want, _, _ := inMaster.Agent(ctx, agent.ID)
	got, ok, err := remote.Agent(ctx, agent.ID)
	if err != nil || !ok || got.ID != want.ID || got.Info.Hostname != "sim-0" || !reflect.DeepEqual(got.Info.Attributes, want.Info.Attributes) || got.HTTPAddress != want.HTTPAddress {
		t.Errorf("Agent = %+v, %v, %v; in-master %+v", got, ok, err, want)
	}
	if got, ok, err := remote.Agent(ctx, "nope"); got != nil || ok || err != nil {
		t.Errorf("Agent of an unknown id = %v, %v, %v", got, ok, err)
	}
}

// runner counts its runs; each run ends with its context, or at once when quit is set.
type runner struct {
	mu   sync.Mutex
	runs int
	quit bool
}

func (r *runner) Name() string { return "counter" }

func (r *runner) Run(ctx context.Context) {
	r.mu.Lock()
	r.runs++
	quit := r.quit
	r.mu.Unlock()
	if !quit {
		<-ctx.Done()
	}
}

func (r *runner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs
}

// TestRemoteServe: Serve serves the routes and runs the scheduler; Abdicate starts it
// over at once, a run that ends by itself is retried, and Serve returns when its context
// ends, with the scheduler stopped.
func TestRemoteServe(t *testing.T) {
	ts := master.NewTestServer(t)
	h := newRemote(t, ts.URL, "fw.one")
	r := &runner{}
	h.Lead(r)
	h.Handle("GET /hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }))
	h.HandleLeader("POST /abdicate", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := h.Abdicate(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx) }()
	defer cancel()

	resp, err := http.Get(h.APIURL() + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hello" {
		t.Fatalf("GET /hello = %d %q", resp.StatusCode, body)
	}
	eventually(t, "the scheduler running", func() error { return runsAre(r, 1) })
	resp, err = http.Post(h.APIURL()+"/abdicate", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("abdicate: %v %v", resp, err)
	}
	resp.Body.Close()
	eventually(t, "the scheduler started over", func() error { return runsAre(r, 2) })

	r.mu.Lock()
	r.quit = true
	r.mu.Unlock()
	if err := h.Abdicate(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a scheduler that stops by itself retried", func() error {
		if n := r.count(); n < 5 {
			return fmt.Errorf("%d runs", n)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve still running after its context ended")
	}
	n := r.count()
	if _, err := http.Get(h.APIURL() + "/hello"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("GET after Serve returned: %v, want connection refused", err)
	}
	if r.count() != n {
		t.Errorf("the scheduler ran after Serve returned")
	}
}

// runsAre says the runner ran exactly n times.
func runsAre(r *runner, n int) error {
	if got := r.count(); got != n {
		return fmt.Errorf("%d runs, want %d", got, n)
	}
	return nil
}
