package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// Timings of the test frameworks.
const (
	// subscribeTimeout bounds one SUBSCRIBE until its SUBSCRIBED event, the master's Raft
	// write included.
	subscribeTimeout = 15 * time.Second
	// callTimeout bounds one scheduler or operator call.
	callTimeout = 10 * time.Second
	// resubscribeInterval spaces a framework's attempts to subscribe while no master
	// accepts it: short, so kill→resubscribed measures the cluster, not the framework.
	resubscribeInterval = 100 * time.Millisecond
	// streamSilence is how long a stream may stay silent (the masters' 15 s heartbeats
	// included) before a framework gives up on it.
	streamSilence = 45 * time.Second
	// declineForever is the refuse filter for offers a framework has no use for.
	declineForever = 3600
)

// maxLaunches bounds how often a haScheduler launches one task id: the tests expect one
// launch, and a task lost again and again must not flood the logs.
const maxLaunches = 3

// Resources of every task the test frameworks launch: small enough for hundreds of tasks
// on one agent, above the allocator's minimum.
const (
	taskCPUs = 0.01
	taskMem  = 4
)

// schedulerOptions configure a haScheduler.
type schedulerOptions struct {
	// name is the framework's name.
	name string
	// partitionAware declares PARTITION_AWARE: UNREACHABLE instead of LOST.
	partitionAware bool
}

// sleepCommand is what the test frameworks' tasks run: long enough to outlive any test.
const sleepCommand = "sleep 3600"

// haScheduler is a framework that rides out master failures the way a production one
// must: it subscribes through any master and, when its stream breaks, resubscribes with
// its framework id (failover_timeout 600) to each master in turn until one accepts. After
// every subscription it reconciles its tasks. It acknowledges every update, keeps every
// task it was asked for running, and relaunches a task (under the same id) only when the
// master reports it ended. It records every LAUNCH it sends, so a test tells a task that
// survived from one launched again. A task refused with TASK_ERROR is not launched again,
// and none more than maxLaunches times.
type haScheduler struct {
	t       testing.TB
	masters []string
	opts    schedulerOptions
	cancel  context.CancelFunc
	done    chan struct{}

	mu sync.Mutex
	// changed is closed and replaced on every change, waking waitUntil.
	changed chan struct{}
	view    schedView
	// wanted lists the tasks to keep running, in the order asked; pending those to launch.
	wanted  []string
	pending map[string]bool
	stream  *api.SchedulerStream
	// agentOf is the agent of each task the master placed, for reconciliation.
	agentOf map[string]api.AgentID
}

// schedView is what a haScheduler saw, copied out for tests.
type schedView struct {
	// ID is the framework id, empty before the first SUBSCRIBED.
	ID string
	// Subscribed holds when each SUBSCRIBED arrived.
	Subscribed []time.Time
	// Latest is each task's latest status, from updates and reconciliation.
	Latest map[string]api.TaskStatus
	// LatestAt is when Latest changed.
	LatestAt map[string]time.Time
	// States lists every state each task was reported in, in order.
	States map[string][]api.TaskState
	// PIDs is each task's executor_pid from its first RUNNING update that carried one.
	PIDs map[string]uint32
	// Launches counts the LAUNCH operations sent per task id.
	Launches map[string]int
	// Errors are ERROR events and failed ACCEPTs: things a healthy cluster never causes.
	Errors []string
}

func (v schedView) clone() schedView {
	return schedView{
		ID:         v.ID,
		Subscribed: slices.Clone(v.Subscribed),
		Latest:     maps.Clone(v.Latest),
		LatestAt:   maps.Clone(v.LatestAt),
		States:     maps.Clone(v.States),
		PIDs:       maps.Clone(v.PIDs),
		Launches:   maps.Clone(v.Launches),
		Errors:     slices.Clone(v.Errors),
	}
}

// allRunning reports whether every id's latest state is TASK_RUNNING.
func (v schedView) allRunning(ids []string) bool {
	for _, id := range ids {
		if v.Latest[id].State != api.TaskRunning {
			return false
		}
	}
	return true
}

// stayedRunning reports the first state other than RUNNING any of ids was reported in
// after its first RUNNING, or "" when there was none.
func (v schedView) stayedRunning(ids []string) string {
	for _, id := range ids {
		states := v.States[id]
		first := slices.Index(states, api.TaskRunning)
		if first < 0 {
			return id + " never RUNNING"
		}
		for _, st := range states[first:] {
			if st != api.TaskRunning {
				return fmt.Sprintf("%s went %s after RUNNING (states %v)", id, st, states)
			}
		}
	}
	return ""
}

// startScheduler subscribes a haScheduler through masters and keeps it running until the
// test ends.
func startScheduler(t testing.TB, masters []*Host, opts schedulerOptions) *haScheduler {
	t.Helper()
	urls := make([]string, len(masters))
	for i, m := range masters {
		urls[i] = m.APIURL()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &haScheduler{
		t: t, masters: urls, opts: opts, cancel: cancel, done: make(chan struct{}),
		changed: make(chan struct{}),
		view: schedView{Latest: map[string]api.TaskStatus{}, LatestAt: map[string]time.Time{},
			States: map[string][]api.TaskState{}, PIDs: map[string]uint32{}, Launches: map[string]int{}},
		pending: map[string]bool{},
		agentOf: map[string]api.AgentID{},
	}
	t.Cleanup(s.stop)
	go s.run(ctx)
	return s
}

// stop ends the framework's stream (the framework stays registered until its
// failover_timeout) and waits for its goroutine.
func (s *haScheduler) stop() {
	s.cancel()
	<-s.done
}

// Want asks the framework to keep tasks with these ids running.
func (s *haScheduler) Want(ids ...string) {
	s.mu.Lock()
	for _, id := range ids {
		if !slices.Contains(s.wanted, id) {
			s.wanted = append(s.wanted, id)
			s.pending[id] = true
		}
	}
	stream := s.stream
	s.mu.Unlock()
	if stream != nil {
		// Offers declined earlier are filtered; a failure here is repaired by the revive
		// after the next subscription.
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		_ = stream.Revive(ctx)
	}
}

// Unwant stops keeping the task running and kills it.
func (s *haScheduler) Unwant(id string) error {
	s.mu.Lock()
	s.wanted = slices.DeleteFunc(s.wanted, func(w string) bool { return w == id })
	delete(s.pending, id)
	stream, agent := s.stream, s.agentOf[id]
	s.mu.Unlock()
	if stream == nil {
		return fmt.Errorf("kill %s: not subscribed", id)
	}
	return s.call(context.Background(), func(ctx context.Context) error { return stream.Kill(ctx, api.TaskID{Value: id}, &agent) })
}

// View returns a copy of what the framework saw.
func (s *haScheduler) View() schedView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view.clone()
}

// waitUntil waits up to timeout for cond to hold on the framework's view and returns that
// view; it fails the test with what when it does not.
func (s *haScheduler) waitUntil(timeout time.Duration, what string, cond func(schedView) bool) schedView {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		v := s.view.clone()
		changed := s.changed
		s.mu.Unlock()
		if cond(v) {
			return v
		}
		select {
		case <-changed:
		case <-deadline.C:
			s.t.Fatalf("framework %s: not %s within %v; latest statuses %s", s.opts.name, what, timeout, describeStatuses(v.Latest))
		}
	}
}

func describeStatuses(latest map[string]api.TaskStatus) string {
	ids := make([]string, 0, len(latest))
	for id := range latest {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s=%s ", id, latest[id].State)
	}
	return strings.TrimSpace(b.String())
}

// notifyLocked wakes waitUntil; the caller holds s.mu.
func (s *haScheduler) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *haScheduler) logf(format string, args ...any) {
	s.t.Logf("framework %s: "+format, append([]any{s.opts.name}, args...)...)
}

// run subscribes and serves streams until ctx ends, trying the masters in turn.
func (s *haScheduler) run(ctx context.Context) {
	defer close(s.done)
	failures := 0
	var firstErr error
	for attempt := 0; ctx.Err() == nil; attempt++ {
		url := s.masters[attempt%len(s.masters)]
		served, err := s.session(ctx, url)
		if ctx.Err() != nil {
			return
		}
		if served {
			if failures > 0 {
				s.logf("subscribed through %s after %d failed attempts (first: %v)", url, failures, firstErr)
			}
			failures, firstErr = 0, nil
			s.logf("stream from %s ended: %v", url, err)
		} else {
			if failures == 0 {
				firstErr = err
			}
			failures++
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(resubscribeInterval):
		}
	}
}

// session subscribes through url and serves the stream until it ends. It reports whether
// the master answered SUBSCRIBED.
func (s *haScheduler) session(ctx context.Context, url string) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	info := api.FrameworkInfo{User: "root", Name: s.opts.name, FailoverTimeout: 600}
	if s.view.ID != "" {
		info.ID = &api.FrameworkID{Value: s.view.ID}
	}
	s.mu.Unlock()
	if s.opts.partitionAware {
		info.Capabilities = []api.FrameworkCapability{{Type: api.CapabilityPartitionAware}}
	}
	watchdog := time.AfterFunc(subscribeTimeout, cancel)
	defer watchdog.Stop()
	stream, err := api.NewClient(url).Subscribe(sctx, info, nil)
	if err != nil {
		return false, err
	}
	defer stream.Close()
	ev, err := stream.Next()
	if err != nil {
		return false, err
	}
	if ev.Type != api.EventSubscribed {
		if ev.Type == api.EventError && ev.Error != nil {
			s.recordError("SUBSCRIBE through %s answered ERROR: %s", url, ev.Error.Message)
		}
		return false, fmt.Errorf("first event %s, want SUBSCRIBED", ev.Type)
	}
	watchdog.Reset(streamSilence)

	s.mu.Lock()
	s.view.ID = ev.Subscribed.FrameworkID.Value
	s.view.Subscribed = append(s.view.Subscribed, time.Now())
	s.stream = stream
	var known []api.ReconcileTask
	for _, id := range s.wanted {
		if s.view.Launches[id] > 0 {
			rt := api.ReconcileTask{TaskID: api.TaskID{Value: id}}
			if agent, ok := s.agentOf[id]; ok {
				rt.AgentID = &agent
			}
			known = append(known, rt)
		}
	}
	needOffers := len(s.pending) > 0
	s.notifyLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.stream == stream {
			s.stream = nil
		}
		s.mu.Unlock()
	}()

	if len(known) > 0 {
		if err := s.call(sctx, func(ctx context.Context) error { return stream.Reconcile(ctx, known...) }); err != nil {
			return true, err
		}
	}
	if needOffers {
		// Filters from earlier declines outlive a failover to the same leader.
		if err := s.call(sctx, func(ctx context.Context) error { return stream.Revive(ctx) }); err != nil {
			return true, err
		}
	}
	for {
		ev, err := stream.Next()
		if err != nil {
			return true, err
		}
		watchdog.Reset(streamSilence)
		if err := s.handle(sctx, stream, ev); err != nil {
			return true, err
		}
	}
}

func (s *haScheduler) call(ctx context.Context, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return fn(ctx)
}

func (s *haScheduler) recordError(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.logf("%s", msg)
	s.mu.Lock()
	s.view.Errors = append(s.view.Errors, msg)
	s.notifyLocked()
	s.mu.Unlock()
}

// handle acts on one event; an error ends the stream.
func (s *haScheduler) handle(ctx context.Context, stream *api.SchedulerStream, ev *api.Event) error {
	switch ev.Type {
	case api.EventOffers:
		for _, o := range ev.Offers.Offers {
			if err := s.useOffer(ctx, stream, o); err != nil {
				return err
			}
		}
	case api.EventUpdate:
		return s.update(ctx, stream, ev.Update.Status)
	case api.EventError:
		msg := "no message"
		if ev.Error != nil {
			msg = ev.Error.Message
		}
		s.recordError("ERROR event: %s", msg)
		return fmt.Errorf("ERROR event: %s", msg)
	}
	return nil
}

// useOffer launches as many pending tasks as fit in the offer, or declines it.
func (s *haScheduler) useOffer(ctx context.Context, stream *api.SchedulerStream, o api.Offer) error {
	cpus, mem := scalar(o.Resources, "cpus"), scalar(o.Resources, "mem")
	role := "*"
	if o.AllocationInfo != nil && o.AllocationInfo.Role != "" {
		role = o.AllocationInfo.Role
	}
	s.mu.Lock()
	var tasks []api.TaskInfo
	for _, id := range s.wanted {
		if !s.pending[id] || cpus < taskCPUs || mem < taskMem {
			continue
		}
		cpus, mem = cpus-taskCPUs, mem-taskMem
		delete(s.pending, id)
		s.view.Launches[id]++
		s.agentOf[id] = o.AgentID
		tasks = append(tasks, newTask(id, sleepCommand, o.AgentID, role))
	}
	morePending := len(s.pending) > 0
	s.notifyLocked()
	s.mu.Unlock()

	refuse := float64(declineForever)
	if morePending {
		refuse = 0
	}
	if len(tasks) == 0 {
		return s.call(ctx, func(ctx context.Context) error {
			return stream.Decline(ctx, []api.OfferID{o.ID}, &api.Filters{RefuseSeconds: &refuse})
		})
	}
	op := api.OfferOperation{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: tasks}}
	err := s.call(ctx, func(ctx context.Context) error {
		return stream.Accept(ctx, []api.OfferID{o.ID}, []api.OfferOperation{op}, &api.Filters{RefuseSeconds: &refuse})
	})
	if err != nil {
		// The launch may or may not have been recorded: the reconciliation after the next
		// subscription tells, and relaunches what the master does not know.
		s.recordError("ACCEPT of %d tasks on %s: %v", len(tasks), o.Hostname, err)
	}
	return err
}

// newTask is a task of the test frameworks.
func newTask(id, command string, agent api.AgentID, role string) api.TaskInfo {
	return api.TaskInfo{
		Name:    id,
		TaskID:  api.TaskID{Value: id},
		AgentID: agent,
		Command: &api.CommandInfo{Value: &command},
		Resources: []api.Resource{
			{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: taskCPUs}, AllocationInfo: &api.AllocationInfo{Role: role}},
			{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: taskMem}, AllocationInfo: &api.AllocationInfo{Role: role}},
		},
	}
}

// scalar sums the named scalar resource.
func scalar(rs []api.Resource, name string) float64 {
	total := 0.0
	for _, r := range rs {
		if r.Name == name && r.Scalar != nil {
			total += r.Scalar.Value
		}
	}
	return total
}

// update records a status, acknowledges it and puts a wanted task that ended back in line
// for a launch.
func (s *haScheduler) update(ctx context.Context, stream *api.SchedulerStream, st api.TaskStatus) error {
	id := st.TaskID.Value
	s.mu.Lock()
	s.view.Latest[id] = st
	s.view.LatestAt[id] = time.Now()
	// A new slice each time: views share the old one.
	s.view.States[id] = append(slices.Clip(s.view.States[id]), st.State)
	if st.AgentID != nil {
		s.agentOf[id] = *st.AgentID
	}
	if _, ok := s.view.PIDs[id]; !ok && st.State == api.TaskRunning && st.ContainerStatus != nil && st.ContainerStatus.ExecutorPID != 0 {
		s.view.PIDs[id] = st.ContainerStatus.ExecutorPID
	}
	// TASK_ERROR says the launch itself was refused: launching it again would be refused
	// again.
	ended := (st.State.Terminal() || st.State == api.TaskUnknown) && st.State != api.TaskError
	relaunch := ended && slices.Contains(s.wanted, id) && !s.pending[id] && s.view.Launches[id] < maxLaunches
	if relaunch {
		s.pending[id] = true
	}
	s.notifyLocked()
	s.mu.Unlock()
	if relaunch {
		s.logf("task %s ended (%s, %s: %s); launching it again", id, st.State, st.Reason, st.Message)
		if err := s.call(ctx, func(ctx context.Context) error { return stream.Revive(ctx) }); err != nil {
			return err
		}
	}
	if len(st.UUID) > 0 {
		return s.call(ctx, func(ctx context.Context) error { return stream.Acknowledge(ctx, st) })
	}
	return nil
}

// rawReply is a master's answer read without the client's redirect handling.
type rawReply struct {
	status   int
	location string
	// body is the reply's text; for a 200 stream, its first RecordIO record.
	body string
}

// postRaw posts a JSON body to url and reads the reply without following redirects.
func postRaw(ctx context.Context, url string, body any) (rawReply, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return rawReply{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return rawReply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	httpClient := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := httpClient.Do(req)
	if err != nil {
		return rawReply{}, err
	}
	defer resp.Body.Close()
	reply := rawReply{status: resp.StatusCode, location: resp.Header.Get("Location")}
	if resp.StatusCode == http.StatusOK && strings.HasSuffix(url, api.SchedulerPath) {
		rec, err := api.NewRecordReader(resp.Body).ReadRecord()
		if err != nil {
			return reply, fmt.Errorf("first record of the SUBSCRIBE stream: %w", err)
		}
		reply.body = string(rec)
		return reply, nil
	}
	text, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	reply.body = string(text)
	return reply, err
}

// subscribeCall is a SUBSCRIBE for a new framework named name.
func subscribeCall(name string) api.Call {
	info := api.FrameworkInfo{User: "root", Name: name}
	return api.Call{Type: api.CallSubscribe, Subscribe: &api.Subscribe{FrameworkInfo: info}}
}

// staleState reads GET_STATE from h's own replica (?stale=true), without asking the
// leader.
func staleState(ctx context.Context, h *Host) (*api.GetState, error) {
	reply, err := postRaw(ctx, h.APIURL()+api.OperatorPath+"?stale=true", api.OperatorCall{Type: api.OpGetState})
	if err != nil {
		return nil, fmt.Errorf("GET_STATE ?stale=true on %s: %w", h.Name(), err)
	}
	if reply.status != http.StatusOK {
		return nil, fmt.Errorf("GET_STATE ?stale=true on %s: %d %s", h.Name(), reply.status, strings.TrimSpace(reply.body))
	}
	var resp api.OperatorResponse
	if err := json.Unmarshal([]byte(reply.body), &resp); err != nil || resp.GetState == nil {
		return nil, fmt.Errorf("GET_STATE ?stale=true on %s: reply %q: %v", h.Name(), prefixOf(reply.body, 200), err)
	}
	return resp.GetState, nil
}

func prefixOf(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// stateDigest is the replicated part of a GET_STATE, in a form two masters' answers can be
// compared in: what is leader-only (offers, streams) is left out.
type stateDigest struct {
	Frameworks []string
	Tasks      []string
	Agents     []string
}

func digest(s *api.GetState) stateDigest {
	var d stateDigest
	if f := s.GetFrameworks; f != nil {
		for _, fw := range f.Frameworks {
			d.Frameworks = append(d.Frameworks, fmt.Sprintf("%s %s connected=%t", fw.FrameworkInfo.ID.Value, fw.FrameworkInfo.Name, fw.Connected))
		}
		for _, fw := range f.CompletedFrameworks {
			d.Frameworks = append(d.Frameworks, fmt.Sprintf("%s %s removed", fw.FrameworkInfo.ID.Value, fw.FrameworkInfo.Name))
		}
	}
	if t := s.GetTasks; t != nil {
		for _, list := range [][]api.Task{t.Tasks, t.UnreachableTasks, t.CompletedTasks} {
			for _, task := range list {
				d.Tasks = append(d.Tasks, fmt.Sprintf("%s/%s %s on %s, %d statuses", task.FrameworkID.Value, task.TaskID.Value, task.State, task.AgentID.Value, len(task.Statuses)))
			}
		}
	}
	if a := s.GetAgents; a != nil {
		for _, agent := range a.Agents {
			d.Agents = append(d.Agents, fmt.Sprintf("%s %s", agent.AgentInfo.ID.Value, agent.AgentInfo.Hostname))
		}
	}
	slices.Sort(d.Frameworks)
	slices.Sort(d.Tasks)
	slices.Sort(d.Agents)
	return d
}

func (d stateDigest) equal(o stateDigest) bool {
	return slices.Equal(d.Frameworks, o.Frameworks) && slices.Equal(d.Tasks, o.Tasks) && slices.Equal(d.Agents, o.Agents)
}

// leaderWithin waits up to timeout for Leader.
func leaderWithin(t testing.TB, c *Cluster, timeout time.Duration) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	h, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// localView is what a master's own /master/state?stale=true says about leadership.
func localView(ctx context.Context, h *Host) masterView {
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	return fetchView(ctx, http.DefaultClient, h)
}

// waitFollows waits up to timeout until h's own view names the cluster's current leader
// (normally leader, unless another election followed) and h does not claim to lead, and
// returns that leader.
func waitFollows(t testing.TB, c *Cluster, h, leader *Host, timeout time.Duration) *Host {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		current := leader
		ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
		if l, err := c.Leader(ctx); err == nil {
			current = l
		}
		cancel()
		v := localView(context.Background(), h)
		if v.err == nil && v.leader == "master@"+current.Addr(APIPort) && !v.self && current != h {
			return current
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not follow the leader (%s, elected after %s) within %v: leader %q, self %t, err %v", h.Name(), current.Name(), leader.Name(), timeout, v.leader, v.self, v.err)
		}
		time.Sleep(pollInterval)
	}
}

// processStart returns the start time (clock ticks since boot) of a live process, which
// tells it from a later process that got the same pid.
func processStart(pid uint32) (uint64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count from its end.
	i := strings.LastIndex(string(raw), ") ")
	var fields []string
	if i >= 0 {
		fields = strings.Fields(string(raw)[i+2:])
	}
	// starttime is field 22 of stat; fields starts at field 3.
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format %q", pid, prefixOf(string(raw), 80))
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// processStarts returns processStart for every task's pid.
func processStarts(t testing.TB, pids map[string]uint32) map[string]uint64 {
	t.Helper()
	starts := map[string]uint64{}
	for id, pid := range pids {
		start, err := processStart(pid)
		if err != nil {
			t.Fatalf("task %s, pid %d: %v", id, pid, err)
		}
		starts[id] = start
	}
	return starts
}

// checkSameProcesses fails the test for every task whose process is no longer the one
// that started it.
func checkSameProcesses(t testing.TB, pids map[string]uint32, starts map[string]uint64) {
	t.Helper()
	for id, pid := range pids {
		start, err := processStart(pid)
		switch {
		case err != nil:
			t.Errorf("task %s: its process %d is gone: %v", id, pid, err)
		case start != starts[id]:
			t.Errorf("task %s: pid %d now belongs to a process started at tick %d, not the task's (%d)", id, pid, start, starts[id])
		}
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// figuresMu serializes appends to the figures file across parallel tests.
var figuresMu sync.Mutex

// figure is one measured value, as a JSON line of the figures file.
type figure struct {
	Test    string  `json:"test"`
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Samples int     `json:"samples"`
	Time    string  `json:"time"`
}

// recordFigure logs a measured figure and, when $ATOLL_E2E_FIGURES names a file, appends
// it there as a JSON line, for BENCHMARKS.md.
func recordFigure(t testing.TB, name string, value float64, unit string, samples int) {
	t.Helper()
	t.Logf("figure %s = %.1f %s (%d samples)", name, value, unit, samples)
	path := os.Getenv("ATOLL_E2E_FIGURES")
	if path == "" {
		return
	}
	line, err := json.Marshal(figure{Test: t.Name(), Name: name, Value: value, Unit: unit, Samples: samples, Time: time.Now().UTC().Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	figuresMu.Lock()
	defer figuresMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("figures file: %v", err)
		return
	}
	_, werr := f.Write(append(line, '\n'))
	if err := errors.Join(werr, f.Close()); err != nil {
		t.Errorf("figures file %s: %v", path, err)
	}
}

// milliseconds converts d for figures.
func milliseconds(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
