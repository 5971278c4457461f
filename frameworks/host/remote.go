package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

// RemoteConfig configures a framework that runs as a process of its own.
type RemoteConfig struct {
	// Master is the base URL of a master's API (http://host:5050). Any master will do:
	// followers forward to the leader what needs it.
	Master string
	// Namespace is the framework's key-value namespace; the master refuses the built-in
	// frameworks' (see master.CheckKVNamespace).
	Namespace string
	// Listen is the host:port the framework's own API listens on.
	Listen string
	// AdvertiseHost names this machine in APIURL when Listen is every interface's
	// address; "" is the machine's hostname.
	AdvertiseHost string
	// RequestTimeout bounds each read or write of the master's state, so that a master
	// that stopped answering fails the framework's request instead of holding it.
	RequestTimeout time.Duration
	// RestartDelay is the first wait before a scheduler whose Run returned by itself (it
	// could not read its state, say, while the master was away) runs again; the wait
	// doubles at each further failure up to MaxRestartDelay.
	RestartDelay, MaxRestartDelay time.Duration
	// AgentCacheTTL is how long one read of the master's agents answers Agent: the
	// scheduler looks agents up for each of its tasks when it starts.
	AgentCacheTTL time.Duration
	// Logger receives the host's logs.
	Logger *slog.Logger
}

// DefaultRemoteConfig is the production preset; Master and Namespace are left to set.
func DefaultRemoteConfig() RemoteConfig {
	return RemoteConfig{
		// Marathon's own port: scripts and load balancers expect it there.
		Listen: "127.0.0.1:8080",
		// A master answers state reads and Raft writes in milliseconds; half a minute
		// rides out an election.
		RequestTimeout: 30 * time.Second,
		// Quick to come back when the master returns, without a log line a second
		// while it is away for long.
		RestartDelay:    time.Second,
		MaxRestartDelay: 30 * time.Second,
		// Agents' names and addresses change rarely, and a missing agent is read again.
		AgentCacheTTL: 10 * time.Second,
		Logger:        slog.Default(),
	}
}

// Validate reports the first thing wrong with c.
func (c RemoteConfig) Validate() error {
	u, err := url.Parse(c.Master)
	switch {
	case c.Master == "":
		return errors.New("master URL: empty")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("master URL %q: want a URL like http://host:5050", c.Master)
	case c.Listen == "":
		return errors.New("listen address: empty")
	case c.RequestTimeout <= 0:
		return fmt.Errorf("request timeout: %v, want > 0", c.RequestTimeout)
	case c.RestartDelay <= 0 || c.MaxRestartDelay < c.RestartDelay:
		return fmt.Errorf("restart delays: %v up to %v, want 0 < first ≤ most", c.RestartDelay, c.MaxRestartDelay)
	case c.AgentCacheTTL < 0:
		return fmt.Errorf("agent cache TTL: %v, want ≥ 0", c.AgentCacheTTL)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen address %q: %w", c.Listen, err)
	}
	return master.CheckKVNamespace(c.Namespace)
}

// Remote runs a framework as a process of its own: it subscribes over the master's HTTP
// scheduler API, keeps its state through the master's key-value API, reads tasks and
// agents through the operator API, and serves the framework's API on a listener of its
// own. It alone schedules for its framework, so it leads from Serve to its end.
//
// Abdicate restarts the scheduler in place: it unsubscribes, reads its state again and
// subscribes again under the same framework id, adopting its tasks. That is what
// abdicating came to for a single Marathon run by another (it exited and was
// restarted); there is no other instance to hand over to.
type Remote struct {
	cfg    RemoteConfig
	log    *slog.Logger
	ln     net.Listener
	url    string
	client *api.Client
	http   *http.Client
	mux    *http.ServeMux

	mu      sync.Mutex
	runners []Runner
	// abdicate ends the current run of each scheduler (by its index in runners), so that
	// it starts over.
	abdicate map[int]context.CancelFunc
	agents   map[string]*state.Agent
	agentsAt time.Time
}

var _ Host = (*Remote)(nil)

// NewRemote checks cfg and binds the listener (so that a port in use is reported at
// once); Serve serves on it and closes it.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("framework API: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = cfg.AdvertiseHost
		if host == "" {
			if host, err = os.Hostname(); err != nil {
				ln.Close()
				return nil, fmt.Errorf("framework API on %s: name this machine with an advertised host: %w", addr, err)
			}
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	return &Remote{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "framework-host", "namespace", cfg.Namespace),
		ln:       ln,
		url:      "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)),
		client:   api.NewClient(cfg.Master),
		http:     &http.Client{Transport: transport},
		mux:      http.NewServeMux(),
		abdicate: map[int]context.CancelFunc{},
	}, nil
}

// Namespace is the framework's key-value namespace.
func (h *Remote) Namespace() string { return h.cfg.Namespace }

// kvURL is the key-value API's URL for the namespace, followed by rest.
func (h *Remote) kvURL(rest string) string {
	return strings.TrimRight(h.cfg.Master, "/") + master.KVPath + h.cfg.Namespace + rest
}

// escapeKey path-escapes a key, its dots too, so that no key reads as "." or "..".
func escapeKey(key string) string {
	return strings.ReplaceAll(url.PathEscape(key), ".", "%2E")
}

// do sends a key-value API request and decodes a 200 answer into out; notFound is
// returned for a 404.
func (h *Remote) do(ctx context.Context, method, target string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode != http.StatusOK:
		return &api.HTTPError{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("answer is not the JSON expected: %w", err)
	}
	return nil
}

// errNotFound is a key the master does not have.
var errNotFound = errors.New("not found")

// KV reads key from the leader.
func (h *Remote) KV(ctx context.Context, key string) (*state.KVEntry, bool, error) {
	var entry state.KVEntry
	switch err := h.do(ctx, http.MethodGet, h.kvURL("/"+escapeKey(key)), nil, &entry); {
	case errors.Is(err, errNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("read %s/%s: %w", h.cfg.Namespace, key, err)
	}
	return &entry, true, nil
}

// KVList reads the entries under prefix from the leader.
func (h *Remote) KVList(ctx context.Context, prefix string) ([]*state.KVEntry, error) {
	var list master.KVEntries
	if err := h.do(ctx, http.MethodGet, h.kvURL("?prefix="+url.QueryEscape(prefix)), nil, &list); err != nil {
		return nil, fmt.Errorf("list %s/%s: %w", h.cfg.Namespace, prefix, err)
	}
	return list.Entries, nil
}

// WriteKV sends req to the master, which applies it through Raft.
func (h *Remote) WriteKV(ctx context.Context, req *state.WriteKVRequest) (uint64, error) {
	if req.Namespace != h.cfg.Namespace {
		return 0, fmt.Errorf("key-value write to %q from the framework of namespace %q", req.Namespace, h.cfg.Namespace)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, fmt.Errorf("write to %s: %w", h.cfg.Namespace, err)
	}
	var written master.KVWritten
	if err := h.do(ctx, http.MethodPost, h.kvURL(""), body, &written); err != nil {
		return 0, fmt.Errorf("write to %s: %w", h.cfg.Namespace, err)
	}
	return written.Index, nil
}

// getTasks reads every task from the operator API.
func (h *Remote) getTasks(ctx context.Context) (*api.GetTasks, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	return h.client.GetTasks(ctx)
}

// Tasks reads the framework's tasks from the operator API (GET_TASKS).
func (h *Remote) Tasks(ctx context.Context, frameworkID string) (live, completed []*state.Task, err error) {
	all, err := h.getTasks(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("tasks of framework %s: %w", frameworkID, err)
	}
	for _, list := range [][]api.Task{all.Tasks, all.UnreachableTasks} {
		for i := range list {
			if list[i].FrameworkID.Value == frameworkID {
				live = append(live, taskRecord(&list[i]))
			}
		}
	}
	for i := range all.CompletedTasks {
		if all.CompletedTasks[i].FrameworkID.Value == frameworkID {
			completed = append(completed, taskRecord(&all.CompletedTasks[i]))
		}
	}
	return live, completed, nil
}

// taskRecord is the master's record of a task as far as the operator API shows it: all a
// framework reads of it. The launch time is that of its earliest status kept.
func taskRecord(t *api.Task) *state.Task {
	rec := &state.Task{
		FrameworkID: t.FrameworkID.Value,
		AgentID:     t.AgentID.Value,
		ID:          t.TaskID.Value,
		Info: api.TaskInfo{
			Name: t.Name, TaskID: t.TaskID, AgentID: t.AgentID, Resources: t.Resources,
			Container: t.Container, HealthCheck: t.HealthCheck, Labels: t.Labels, Discovery: t.Discovery,
		},
		Role:     t.Role,
		State:    t.State,
		Statuses: t.Statuses,
	}
	for _, st := range t.Statuses {
		if st.Timestamp <= 0 {
			continue
		}
		at := time.Unix(0, int64(st.Timestamp*float64(time.Second)))
		if rec.LaunchedTime.IsZero() || at.Before(rec.LaunchedTime) {
			rec.LaunchedTime = at
		}
	}
	return rec
}

// Agent answers from the latest read of the master's agents (GET_AGENTS), reading them
// again when it is older than AgentCacheTTL, or than agentMissReread and without the
// agent. An agent the master holds unreachable is not listed: it is known only if seen
// before.
func (h *Remote) Agent(ctx context.Context, agentID string) (*state.Agent, bool, error) {
	h.mu.Lock()
	a, ok := h.agents[agentID]
	age := time.Since(h.agentsAt)
	h.mu.Unlock()
	if age < h.cfg.AgentCacheTTL && (ok || age < agentMissReread) {
		return a, ok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	all, err := h.client.GetAgents(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("agent %s: %w", agentID, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.agents == nil {
		h.agents = map[string]*state.Agent{}
	}
	for _, as := range all.Agents {
		if as.AgentInfo.ID == nil {
			continue
		}
		rec := &state.Agent{ID: as.AgentInfo.ID.Value, Info: as.AgentInfo, Version: as.Version}
		// The agent's address is in its pid, "slave(1)@host:port", as Mesos gave it.
		if _, addr, ok := strings.Cut(as.PID, "@"); ok {
			rec.HTTPAddress = addr
		}
		h.agents[rec.ID] = rec
	}
	h.agentsAt = time.Now()
	a, ok = h.agents[agentID]
	return a, ok, nil
}

// agentMissReread is how old a read of the agents must be for a lookup of an agent it
// lacks to read them again: the tasks of an agent that is gone cost one read, not one
// each.
const agentMissReread = time.Second

// Scheduler is a client of the master's HTTP API.
func (h *Remote) Scheduler() *api.Client { return h.client }

// APIURL is where the framework's API listens.
func (h *Remote) APIURL() string { return h.url }

// Handle serves pattern on the framework's listener.
func (h *Remote) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// HandleLeader is Handle: this process is the only one serving the framework.
func (h *Remote) HandleLeader(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// Lead runs r from Serve on. Register before Serve.
func (h *Remote) Lead(r Runner) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runners = append(h.runners, r)
}

// Abdicate ends the current run of every scheduler; each starts over at once.
func (h *Remote) Abdicate() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, cancel := range h.abdicate {
		cancel()
	}
	return nil
}

// shutdownGrace bounds how long Serve waits for requests in flight when it ends.
const shutdownGrace = 5 * time.Second

// Serve serves the framework's API and runs its schedulers until ctx ends or the
// listener fails; then it stops the schedulers, which ends their event streams, and
// lets the requests in flight finish. It returns nil after ctx ended. Call it once.
func (h *Remote) Serve(ctx context.Context) error {
	srv := &http.Server{Handler: h.mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(h.ln) }()
	h.log.Info("framework API listening", "url", h.url, "master", h.cfg.Master)

	runCtx, stop := context.WithCancel(ctx)
	h.mu.Lock()
	runners := h.runners
	h.mu.Unlock()
	var wg sync.WaitGroup
	for i, r := range runners {
		wg.Go(func() { h.lead(runCtx, i, r) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("framework API on %s: %w", h.url, err)
	}
	stop()
	wg.Wait()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		_ = srv.Close()
	}
	return err
}

// lead runs r, the i-th runner, until ctx ends: at once again after Abdicate, after a
// growing delay when its Run returned by itself.
func (h *Remote) lead(ctx context.Context, i int, r Runner) {
	delay := h.cfg.RestartDelay
	for ctx.Err() == nil {
		runCtx, cancel := context.WithCancel(ctx)
		h.mu.Lock()
		h.abdicate[i] = cancel
		h.mu.Unlock()
		started := time.Now()
		r.Run(runCtx)
		abdicated := runCtx.Err() != nil
		h.mu.Lock()
		delete(h.abdicate, i)
		h.mu.Unlock()
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case abdicated:
			h.log.Info("scheduler abdicated; starting it over", "service", r.Name())
			delay = h.cfg.RestartDelay
			continue
		case time.Since(started) > h.cfg.MaxRestartDelay:
			delay = h.cfg.RestartDelay
		}
		h.log.Warn("scheduler stopped by itself; starting it again", "service", r.Name(), "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, h.cfg.MaxRestartDelay)
	}
}
