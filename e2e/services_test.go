package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/atoll/atoll/api/marathon"
)

// appPollInterval spaces an appWatch's polls: short, so that a task the framework lists
// for a moment (one launched and killed at once) is seen.
const appPollInterval = 25 * time.Millisecond

// marathonCall sends a Marathon API request to the master at base and, for a 2xx answer,
// decodes its body into out (unless nil). Any other answer is an error carrying its
// status and body.
func marathonCall(ctx context.Context, base, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w: %s", method, path, err, prefixOf(string(data), 200))
	}
	return nil
}

// marathonAnyMaster sends a read through the first running master that answers (any
// master forwards it to the leader), so that it rides out a failover.
func marathonAnyMaster(ctx context.Context, c *Cluster, method, path string, out any) error {
	var errs []error
	for _, m := range c.Masters() {
		if p := m.Proc(); p == nil || !p.Running() {
			continue
		}
		err := marathonCall(ctx, m.APIURL(), method, path, nil, out)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", m.Name(), err))
	}
	if len(errs) == 0 {
		return errors.New("no master is running")
	}
	return errors.Join(errs...)
}

// appSnapshot is one poll of GET /v2/apps/{id}.
type appSnapshot struct {
	at  time.Time
	app marathon.AppInfo
}

// live lists the snapshot's tasks that have not ended.
func (s appSnapshot) live() []marathon.Task {
	var out []marathon.Task
	for _, task := range s.app.Tasks {
		if !api.TaskState(task.State).Terminal() {
			out = append(out, task)
		}
	}
	return out
}

// runningAt counts the tasks RUNNING at version.
func (s appSnapshot) runningAt(version string) int {
	n := 0
	for _, task := range s.app.Tasks {
		if task.State == string(api.TaskRunning) && task.Version == version {
			n++
		}
	}
	return n
}

// deployed says the app is at version with no deployment: exactly instances tasks, all
// RUNNING at version.
func (s appSnapshot) deployed(version string) bool {
	return s.app.Version == version && len(s.app.Deployments) == 0 && len(s.app.Tasks) == s.app.Instances &&
		s.runningAt(version) == s.app.Instances
}

// describe lists the tasks as "id state version" lines.
func (s appSnapshot) describe() string {
	var lines []string
	for _, task := range s.app.Tasks {
		lines = append(lines, fmt.Sprintf("%s %s %s on %s", task.ID, task.State, task.Version, task.Host))
	}
	return fmt.Sprintf("app %s version %s, %d instances, deployments %v, tasks:\n\t%s", s.app.ID, s.app.Version, s.app.Instances, s.app.Deployments, strings.Join(lines, "\n\t"))
}

// appWatch polls one app through any running master for as long as a test runs, and keeps
// what the framework's own task list showed: the most tasks live at once, each task id's
// versions and states, and ids that left the list and came back.
type appWatch struct {
	t      testing.TB
	c      *Cluster
	id     string
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// changed is closed and replaced after every successful poll.
	changed chan struct{}
	latest  *appSnapshot
	polls   int
	// maxLive is the most live tasks one poll listed, maxLiveAt that poll.
	maxLive   int
	maxLiveAt *appSnapshot
	// present are the ids the latest poll listed, gone those listed once and no more.
	present map[string]bool
	gone    map[string]bool
	// returned are ids that left the list and came back: launched twice.
	returned []string
	// versions is each id's version; runningIDs the ids seen RUNNING, by version.
	versions   map[string]string
	runningIDs map[string]map[string]bool
	// lastErr is the latest failed poll's error.
	lastErr error
}

// watchApp starts polling app id; it stops when the test ends.
func watchApp(t testing.TB, c *Cluster, id string) *appWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &appWatch{
		t: t, c: c, id: id, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}),
		present: map[string]bool{}, gone: map[string]bool{}, versions: map[string]string{}, runningIDs: map[string]map[string]bool{},
	}
	t.Cleanup(w.stop)
	go w.run(ctx)
	return w
}

// stop ends the polls and waits for the poller.
func (w *appWatch) stop() {
	w.cancel()
	<-w.done
}

func (w *appWatch) run(ctx context.Context) {
	defer close(w.done)
	for ctx.Err() == nil {
		var reply struct {
			App marathon.AppInfo `json:"app"`
		}
		err := marathonAnyMaster(ctx, w.c, http.MethodGet, "/v2/apps"+w.id, &reply)
		if err == nil {
			w.record(appSnapshot{at: time.Now(), app: reply.App})
		} else if ctx.Err() == nil {
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(appPollInterval):
		}
	}
}

func (w *appWatch) record(s appSnapshot) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	w.latest = &s
	if live := len(s.live()); live > w.maxLive {
		w.maxLive, w.maxLiveAt = live, &s
	}
	listed := map[string]bool{}
	for _, task := range s.app.Tasks {
		listed[task.ID] = true
		if w.gone[task.ID] {
			w.returned = append(w.returned, task.ID)
			delete(w.gone, task.ID)
		}
		w.versions[task.ID] = task.Version
		if task.State == string(api.TaskRunning) {
			if w.runningIDs[task.Version] == nil {
				w.runningIDs[task.Version] = map[string]bool{}
			}
			w.runningIDs[task.Version][task.ID] = true
		}
	}
	for id := range w.present {
		if !listed[id] {
			w.gone[id] = true
		}
	}
	w.present = listed
	close(w.changed)
	w.changed = make(chan struct{})
}

// waitUntil waits up to timeout for a poll that satisfies cond and returns it.
func (w *appWatch) waitUntil(timeout time.Duration, what string, cond func(appSnapshot) bool) appSnapshot {
	w.t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		latest, changed, lastErr := w.latest, w.changed, w.lastErr
		w.mu.Unlock()
		if latest != nil && cond(*latest) {
			return *latest
		}
		select {
		case <-changed:
		case <-deadline:
			state := "no successful poll"
			if latest != nil {
				state = latest.describe()
			}
			w.t.Fatalf("app %s: not %s within %v (last poll error: %v); last seen %s", w.id, what, timeout, lastErr, state)
		}
	}
}

// TestServicesFailoverMidDeployment: three masters run the services framework, two agents
// the tasks. An app of 8 `sleep` instances (upgrade strategy minimumHealthCapacity 1,
// maximumOverCapacity 0.25) gets a new command, and while the rolling upgrade is half
// done (some, not all, tasks RUNNING at the new version) the leading master is SIGKILLed.
// A new leader is elected and its framework finishes the deployment: /v2/deployments is
// empty and the app lists exactly 8 tasks, all RUNNING at its current version. Throughout
// (the framework's task list polled every 25 ms) no more than 10 tasks (8 × 1.25) were
// live at once and no task id left the list and came back; the master's task table holds
// every task id once, exactly 8 of each version ever ran, and the agents' namespaces run
// exactly 8 processes of the new command and none of the old. The killed master then
// restarts and follows the new leader. The figure services_failover_kill_to_deployed is
// the time from the kill to the first poll that shows the deployment finished.
func TestServicesFailoverMidDeployment(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	c.StartMasters(3)
	agents := c.StartAgents(2)
	leader := c.WaitForLeader()
	c.WaitForAgents(2)

	const (
		id        = "/rolling"
		instances = 8
		maxOver   = 0.25
		// maxAttempts bounds the upgrades started before one is caught half done.
		maxAttempts = 3
	)
	capacity := instances + int(math.Floor(instances*maxOver))
	command := func(attempt int) string { return "exec sleep " + strconv.Itoa(3600+attempt) }
	w := watchApp(t, c, id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var created marathon.AppInfo
	err := marathonCall(ctx, leader.APIURL(), http.MethodPost, "/v2/apps", map[string]any{
		"id": id, "cmd": command(0), "cpus": taskCPUs, "mem": 16, "instances": instances,
		"upgradeStrategy": map[string]any{"minimumHealthCapacity": 1, "maximumOverCapacity": maxOver},
	}, &created)
	if err != nil {
		t.Fatal(err)
	}
	versions := []string{created.Version}
	w.waitUntil(3*time.Minute, "deployed", func(s appSnapshot) bool { return s.deployed(created.Version) })

	// Upgrade until one is caught half done; an upgrade that finished between two polls
	// is simply followed by another.
	var (
		killed  time.Time
		target  string
		attempt int
	)
	for attempt = 1; attempt <= maxAttempts && killed.IsZero(); attempt++ {
		var reply struct {
			DeploymentID string `json:"deploymentId"`
			Version      string `json:"version"`
		}
		if err := marathonCall(ctx, leader.APIURL(), http.MethodPut, "/v2/apps"+id, map[string]any{"cmd": command(attempt)}, &reply); err != nil {
			t.Fatal(err)
		}
		target = reply.Version
		versions = append(versions, target)
		s := w.waitUntil(3*time.Minute, "under way or deployed", func(s appSnapshot) bool {
			n := s.runningAt(target)
			return s.app.Version == target && ((n >= 1 && n <= instances-2) || s.deployed(target))
		})
		if s.deployed(target) {
			t.Logf("upgrade %d (deployment %s) finished between two polls; upgrading again", attempt, reply.DeploymentID)
			continue
		}
		if err := leader.Proc().Kill(); err != nil {
			t.Fatal(err)
		}
		killed = time.Now()
		t.Logf("killed the leader %s during deployment %s, %d of %d tasks RUNNING at the new version:\n%s", leader.Name(), reply.DeploymentID, s.runningAt(target), instances, s.describe())
	}
	if killed.IsZero() {
		t.Fatalf("no upgrade was seen half done in %d attempts", maxAttempts)
	}
	next := c.WaitForLeaderOtherThan(leader)
	t.Logf("%s leads %v after the kill", next.Name(), time.Since(killed))
	done := w.waitUntil(3*time.Minute, "deployed after the failover", func(s appSnapshot) bool { return s.deployed(target) })
	toDeployed := done.at.Sub(killed)
	recordFigure(t, "services_failover_kill_to_deployed", milliseconds(toDeployed), "ms", 1)
	var deployments []json.RawMessage
	if err := marathonCall(ctx, next.APIURL(), http.MethodGet, "/v2/deployments", nil, &deployments); err != nil {
		t.Fatal(err)
	}
	if len(deployments) != 0 {
		t.Errorf("/v2/deployments after the deployment finished: %s, want none", deployments)
	}
	w.stop()

	w.mu.Lock()
	maxLive, maxLiveAt, returned, runningIDs, polls := w.maxLive, w.maxLiveAt, w.returned, w.runningIDs, w.polls
	w.mu.Unlock()
	t.Logf("%d polls of the app; at most %d tasks live at once", polls, maxLive)
	if maxLive > capacity {
		t.Errorf("%d tasks were live at once, more than %d (instances × (1 + maximumOverCapacity)):\n%s", maxLive, capacity, maxLiveAt.describe())
	}
	if len(returned) > 0 {
		t.Errorf("task ids left the app's task list and came back (launched twice): %q", returned)
	}
	for _, v := range versions {
		if n := len(runningIDs[v]); n != instances {
			t.Errorf("the framework listed %d task ids RUNNING at version %s, want %d", n, v, instances)
		}
	}

	checkMasterTasks(ctx, t, c, next, done, versions)
	final := command(attempt - 1)
	for i := range attempt {
		cmd := strings.TrimPrefix(command(i), "exec ")
		want := 0
		if i == attempt-1 {
			want = instances
		}
		if got := countProcesses(t, agents, cmd); got != want {
			t.Errorf("the agents' hosts run %d processes %q, want %d (the app's command is %q)", got, cmd, want, final)
		}
	}

	if err := leader.Proc().Restart(); err != nil {
		t.Fatal(err)
	}
	waitFollows(t, c, leader, next, DefaultWaitTimeout)
}

// checkMasterTasks checks the leader's task table against the deployed app: every task
// id appears once; the framework's live tasks are the app's, all RUNNING; and exactly the
// app's instances ever ran at each of versions.
func checkMasterTasks(ctx context.Context, t *testing.T, c *Cluster, leader *Host, done appSnapshot, versions []string) {
	t.Helper()
	var info struct {
		FrameworkID string `json:"frameworkId"`
	}
	if err := marathonCall(ctx, leader.APIURL(), http.MethodGet, "/v2/info", nil, &info); err != nil {
		t.Fatal(err)
	}
	tasks, err := c.Client(leader).GetTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var appTasks []string
	for _, task := range done.app.Tasks {
		appTasks = append(appTasks, task.ID)
	}
	slices.Sort(appTasks)
	seen := map[string]int{}
	var live []string
	ran := 0
	for _, list := range [][]api.Task{tasks.Tasks, tasks.UnreachableTasks, tasks.CompletedTasks, tasks.OrphanTasks} {
		for _, task := range list {
			if task.FrameworkID.Value != info.FrameworkID {
				continue
			}
			seen[task.TaskID.Value]++
			if slices.ContainsFunc(task.Statuses, func(st api.TaskStatus) bool { return st.State == api.TaskRunning }) {
				ran++
			}
		}
	}
	for _, task := range tasks.Tasks {
		if task.FrameworkID.Value != info.FrameworkID {
			continue
		}
		live = append(live, task.TaskID.Value)
		if task.State != api.TaskRunning {
			t.Errorf("live task %s is %s, want %s", task.TaskID.Value, task.State, api.TaskRunning)
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("the master lists task %s %d times", id, n)
		}
	}
	slices.Sort(live)
	if !slices.Equal(live, appTasks) {
		t.Errorf("the master's live tasks of the framework are %q, want the app's %q", live, appTasks)
	}
	if want := len(versions) * done.app.Instances; ran != want {
		t.Errorf("%d tasks of the framework ever ran, by the master's statuses; want %d (%d instances at each of %d versions)", ran, want, done.app.Instances, len(versions))
	}
}

// countProcesses counts the processes on hosts whose command line is cmd, its words
// separated by spaces.
func countProcesses(t *testing.T, hosts []*Host, cmd string) int {
	t.Helper()
	n := 0
	for _, h := range hosts {
		out, err := output("ip", "netns", "pids", h.Netns())
		if err != nil {
			t.Fatal(err)
		}
		for _, pid := range strings.Fields(out) {
			raw, err := os.ReadFile("/proc/" + pid + "/cmdline")
			if err != nil {
				continue // gone since
			}
			if strings.Join(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), " ") == cmd {
				n++
			}
		}
	}
	return n
}
