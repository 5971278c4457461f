package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

const testFramework = "fw-1"

// launchEvent launches a shell command as a task of testFramework.
func launchEvent(taskID, command string, resources ...api.Resource) api.AgentEvent {
	return api.AgentEvent{Type: api.AgentLaunch, Launch: &api.AgentEventLaunch{
		FrameworkID:   api.FrameworkID{Value: testFramework},
		FrameworkInfo: api.FrameworkInfo{User: "root", Name: "test", ID: &api.FrameworkID{Value: testFramework}},
		Task: api.TaskInfo{
			Name:      taskID,
			TaskID:    api.TaskID{Value: taskID},
			AgentID:   api.AgentID{Value: "agent-1"},
			Command:   &api.CommandInfo{Value: &command},
			Resources: resources,
		},
	}}
}

func killEvent(taskID string, grace time.Duration) api.AgentEvent {
	return api.AgentEvent{Type: api.AgentKill, Kill: &api.AgentEventKill{
		FrameworkID: api.FrameworkID{Value: testFramework},
		TaskID:      api.TaskID{Value: taskID},
		KillPolicy:  &api.KillPolicy{GracePeriod: &api.DurationInfo{Nanoseconds: int64(grace)}},
	}}
}

// wantUpdate checks an update's task, state and the fields every agent update carries.
func wantUpdate(t *testing.T, u api.AgentCallUpdate, taskID string, state api.TaskState) {
	t.Helper()
	s := u.Status
	if u.FrameworkID.Value != testFramework || s.TaskID.Value != taskID || s.State != state {
		t.Fatalf("update for %s/%s in %s (%q), want %s/%s in %s", u.FrameworkID.Value, s.TaskID.Value, s.State, s.Message, testFramework, taskID, state)
	}
	if len(s.UUID) != 16 {
		t.Fatalf("update uuid %x: want 16 bytes", s.UUID)
	}
	if s.AgentID == nil || s.AgentID.Value != "agent-1" {
		t.Fatalf("update agent id %v, want agent-1", s.AgentID)
	}
	if now := float64(time.Now().UnixNano()) / 1e9; s.Timestamp < now-600 || s.Timestamp > now+1 {
		t.Fatalf("update timestamp %f is not about now (%f)", s.Timestamp, now)
	}
}

// waitUntil polls cond until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func shutdown(t *testing.T, a *Agent, killTasks bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := a.Shutdown(ctx, killTasks); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// readCheckpoint returns what a stopped agent left in workDir's checkpoint.
func readCheckpoint(t *testing.T, workDir string) []checkpointedTask {
	t.Helper()
	cp, err := openCheckpoint(filepath.Join(workDir, "meta"))
	if err != nil {
		t.Fatal(err)
	}
	defer cp.close()
	tasks, err := cp.tasks()
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

func withWorkDir(dir string) func(*Config) { return func(c *Config) { c.WorkDir = dir } }

// TestUnacknowledgedUpdateSurvivesRestart is the reliability contract: only the head
// update is in flight and it is resent until acknowledged; after a restart on the same
// work dir the agent re-registers with its id, lists the task, and redelivers the pending
// update with exactly the same uuid; acknowledging it empties the checkpoint.
func TestUnacknowledgedUpdateSurvivesRestart(t *testing.T) {
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	first := TestAgent(t, peer.masters, withWorkDir(workDir))

	sub := peer.nextSubscribe()
	if sub.AgentInfo.ID != nil {
		t.Fatalf("first SUBSCRIBE carries agent id %v, want none", sub.AgentInfo.ID)
	}
	if sub.AgentInfo.Hostname != "localhost" || sub.Version != "test" || sub.BootID == "" || sub.HTTPAddress != first.HTTPAddr() {
		t.Fatalf("SUBSCRIBE = %+v", sub)
	}
	waitUntil(t, "the agent id", func() bool { return first.ID() == "agent-1" })

	peer.send(launchEvent("t1", "echo hi"))
	running := peer.nextUpdate()
	wantUpdate(t, running, "t1", api.TaskRunning)
	if cs := running.Status.ContainerStatus; cs == nil || cs.ExecutorPID == 0 || cs.ContainerID == nil ||
		len(cs.NetworkInfos) != 1 || !reflect.DeepEqual(cs.NetworkInfos[0].IPAddresses, []api.IPAddress{{IPAddress: "127.0.0.1"}}) {
		t.Fatalf("TASK_RUNNING container status = %+v", running.Status.ContainerStatus)
	}
	if running.Status.Source != api.SourceExecutor {
		t.Fatalf("TASK_RUNNING source = %s", running.Status.Source)
	}
	// Until TASK_RUNNING is acknowledged it is the only update in flight: the next one
	// the master sees is its resend, with the same uuid, even though the task finished.
	resent := peer.nextUpdate()
	if !reflect.DeepEqual(resent, running) {
		t.Fatalf("resend differs:\n got %+v\nwant %+v", resent, running)
	}
	peer.ack(running)
	var finished api.AgentCallUpdate
	for finished = peer.nextUpdate(); bytes.Equal(finished.Status.UUID, running.Status.UUID); finished = peer.nextUpdate() {
		// Resends of TASK_RUNNING that crossed the acknowledgement.
	}
	wantUpdate(t, finished, "t1", api.TaskFinished)
	if finished.Status.Message != "Command exited with status 0" {
		t.Fatalf("TASK_FINISHED message = %q", finished.Status.Message)
	}
	waitUntil(t, "the acknowledgement to be applied", func() bool {
		tasks := first.Tasks()
		return len(tasks) == 1 && tasks[0].PendingUpdates == 1 && tasks[0].State == api.TaskFinished
	})

	shutdown(t, first, false)
	pending := readCheckpoint(t, workDir)
	if len(pending) != 1 || len(pending[0].updates) != 1 || !bytes.Equal(pending[0].updates[0].update.Status.UUID, finished.Status.UUID) {
		t.Fatalf("checkpoint after shutdown = %+v, want t1 with the TASK_FINISHED update", pending)
	}

	second := TestAgent(t, peer.masters, withWorkDir(workDir))
	sub = peer.nextSubscribe()
	if sub.AgentInfo.ID == nil || sub.AgentInfo.ID.Value != "agent-1" {
		t.Fatalf("SUBSCRIBE after restart carries agent id %v, want agent-1", sub.AgentInfo.ID)
	}
	if len(sub.Tasks) != 1 || sub.Tasks[0].Task.TaskID.Value != "t1" || sub.Tasks[0].State != api.TaskFinished || sub.Tasks[0].FrameworkID.Value != testFramework {
		t.Fatalf("SUBSCRIBE after restart lists tasks %+v, want t1 in TASK_FINISHED", sub.Tasks)
	}
	if second.ID() != "agent-1" {
		t.Fatalf("restarted agent id = %q, want agent-1", second.ID())
	}
	redelivered := peer.nextUpdate()
	if !bytes.Equal(redelivered.Status.UUID, finished.Status.UUID) || !reflect.DeepEqual(redelivered, finished) {
		t.Fatalf("redelivered update differs:\n got %+v\nwant %+v", redelivered, finished)
	}
	peer.ack(redelivered)
	waitUntil(t, "the task to be forgotten", func() bool { return len(second.Tasks()) == 0 })
	shutdown(t, second, false)
	if left := readCheckpoint(t, workDir); len(left) != 0 {
		t.Fatalf("checkpoint not empty after the last acknowledgement: %+v", left)
	}
}

// TestKillWithGrace kills a running task: TASK_KILLED, worded as the signal it died of;
// a framework with TASK_KILLING_STATE first hears TASK_KILLING.
func TestKillWithGrace(t *testing.T) {
	for _, killingState := range []bool{false, true} {
		t.Run(fmt.Sprintf("killing_state=%v", killingState), func(t *testing.T) {
			peer := newProtocolPeer(t)
			a := TestAgent(t, peer.masters)
			peer.nextSubscribe()
			launch := launchEvent("sleeper", "sleep 60")
			if killingState {
				launch.Launch.FrameworkInfo.Capabilities = []api.FrameworkCapability{{Type: api.CapabilityTaskKillingState}}
			}
			peer.send(launch)
			running := peer.nextUpdate()
			wantUpdate(t, running, "sleeper", api.TaskRunning)
			peer.ack(running)
			peer.send(killEvent("sleeper", 5*time.Second))
			next := peer.nextUpdate()
			for bytes.Equal(next.Status.UUID, running.Status.UUID) {
				next = peer.nextUpdate()
			}
			if killingState {
				wantUpdate(t, next, "sleeper", api.TaskKilling)
				peer.ack(next)
				killing := next
				for next = peer.nextUpdate(); bytes.Equal(next.Status.UUID, killing.Status.UUID); next = peer.nextUpdate() {
				}
			}
			wantUpdate(t, next, "sleeper", api.TaskKilled)
			if next.Status.Message != "Command terminated with signal Terminated" || next.Status.Source != api.SourceExecutor {
				t.Fatalf("TASK_KILLED = %+v", next.Status)
			}
			peer.ack(next)
			waitUntil(t, "the killed task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
		})
	}
}

// TestFailedTasks covers tasks that end badly or never start.
func TestFailedTasks(t *testing.T) {
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	no := false
	missing := "/nonexistent/command"
	badCommand := launchEvent("bad", "")
	badCommand.Launch.Task.Command = &api.CommandInfo{Shell: &no, Value: &missing}
	executorTask := launchEvent("executor", "true")
	executorTask.Launch.Task.Executor = &api.ExecutorInfo{ExecutorID: api.ExecutorID{Value: "e"}}
	badHealthCheck := launchEvent("bad-health-check", "sleep 60")
	badHealthCheck.Launch.Task.HealthCheck = &api.HealthCheck{Type: "HTTP", HTTP: &api.HTTPHealthCheck{Port: 8080, Path: "health"}}

	tests := []struct {
		name    string
		event   api.AgentEvent
		states  []api.TaskState
		reason  api.StatusReason
		message string
		source  api.StatusSource
	}{
		{name: "missing executable", event: badCommand, states: []api.TaskState{api.TaskFailed},
			reason: api.ReasonContainerLaunchFailed, message: "launch container: launch ", source: api.SourceAgent},
		{name: "non-zero exit", event: launchEvent("exit3", "exit 3"), states: []api.TaskState{api.TaskRunning, api.TaskFailed},
			message: "Command exited with status 3", source: api.SourceExecutor},
		{name: "custom executor", event: executorTask, states: []api.TaskState{api.TaskError},
			reason: api.ReasonTaskInvalid, message: "custom executors are not supported; give the task a command", source: api.SourceAgent},
		{name: "invalid health check", event: badHealthCheck, states: []api.TaskState{api.TaskError},
			reason: api.ReasonTaskInvalid, message: `health_check.http.path: "health" does not start with /`, source: api.SourceAgent},
		{name: "kill of an unknown task", event: killEvent("ghost", time.Second), states: []api.TaskState{api.TaskLost},
			reason: api.ReasonTaskUnknown, message: "task is unknown to this agent", source: api.SourceAgent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer.send(tt.event)
			var last api.AgentCallUpdate
			for _, state := range tt.states {
				u := peer.nextUpdate()
				for last.Status.UUID != nil && bytes.Equal(u.Status.UUID, last.Status.UUID) {
					u = peer.nextUpdate()
				}
				wantUpdate(t, u, u.Status.TaskID.Value, state)
				peer.ack(u)
				last = u
			}
			s := last.Status
			if s.Reason != tt.reason || !strings.HasPrefix(s.Message, tt.message) || s.Source != tt.source {
				t.Fatalf("final status reason %s, source %s, message %q; want %s, %s, %q…", s.Reason, s.Source, s.Message, tt.reason, tt.source, tt.message)
			}
			if tt.name == "missing executable" && !strings.Contains(s.Message, missing) {
				t.Fatalf("launch failure message %q does not name %s", s.Message, missing)
			}
			waitUntil(t, "the task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
		})
	}
}

// TestTaskEnvironmentAndFiles runs a task that prints its environment and reads its
// stdout back through the agent's /files API.
func TestTaskEnvironmentAndFiles(t *testing.T) {
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	ports := portsResource(api.ValueRange{Begin: 31005, End: 31006}, api.ValueRange{Begin: 31000, End: 31000})
	peer.send(launchEvent("env", `echo "$PORT0 $PORT1 $PORT2 $PORT $PORTS $HOST $MESOS_TASK_ID $MESOS_FRAMEWORK_ID $MESOS_AGENT_ID"; echo "$MESOS_SANDBOX"; pwd`, ports))
	running := peer.nextUpdate()
	wantUpdate(t, running, "env", api.TaskRunning)
	tasks := a.Tasks()
	if len(tasks) != 1 {
		t.Fatalf("tasks = %+v", tasks)
	}
	sandbox := tasks[0].Sandbox
	wantSandbox := filepath.Join(a.cfg.WorkDir, "sandboxes", testFramework, "env."+tasks[0].ContainerID)
	if sandbox != wantSandbox {
		t.Fatalf("sandbox %s, want %s under the work dir's sandboxes", sandbox, wantSandbox)
	}
	if want := (&api.Labels{Labels: []api.Label{{Key: "sandbox_directory", Value: sandbox}}}); !reflect.DeepEqual(running.Status.Labels, want) {
		t.Fatalf("TASK_RUNNING labels = %+v, want %+v", running.Status.Labels, want)
	}
	peer.ack(running)
	for u := peer.nextUpdate(); u.Status.State != api.TaskFinished; u = peer.nextUpdate() {
	}

	resp, err := http.Get("http://" + a.HTTPAddr() + "/files/read?" + url.Values{"path": {sandbox + "/stdout"}, "offset": {"0"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var read readResponse
	if err := json.NewDecoder(resp.Body).Decode(&read); err != nil || resp.StatusCode != 200 {
		t.Fatalf("files/read: %d %v", resp.StatusCode, err)
	}
	want := "31005 31006 31000 31005 31005,31006,31000 localhost env fw-1 agent-1\n" + sandbox + "\n" + sandbox + "\n"
	if read.Data != want || read.Offset != 0 {
		t.Fatalf("stdout = %q at %d, want %q", read.Data, read.Offset, want)
	}

	resp, err = http.Get("http://" + a.HTTPAddr() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("health: %d %q", resp.StatusCode, body)
	}
}

// TestRecoversRunningTask restarts the agent under a running task: the new agent lists it
// as running, re-attaches, and reports its exit.
func TestRecoversRunningTask(t *testing.T) {
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	first := TestAgent(t, peer.masters, withWorkDir(workDir))
	peer.nextSubscribe()
	peer.send(launchEvent("waiter", "while [ ! -e release ]; do sleep 0.05; done"))
	running := peer.nextUpdate()
	wantUpdate(t, running, "waiter", api.TaskRunning)
	peer.ack(running)
	waitUntil(t, "the acknowledgement", func() bool {
		tasks := first.Tasks()
		return len(tasks) == 1 && tasks[0].PendingUpdates == 0
	})
	sandbox := first.Tasks()[0].Sandbox
	shutdown(t, first, false)

	second := TestAgent(t, peer.masters, withWorkDir(workDir))
	sub := peer.nextSubscribe()
	if len(sub.Tasks) != 1 || sub.Tasks[0].Task.TaskID.Value != "waiter" || sub.Tasks[0].State != api.TaskRunning {
		t.Fatalf("SUBSCRIBE after restart lists %+v, want waiter running", sub.Tasks)
	}
	if err := os.WriteFile(filepath.Join(sandbox, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var finished api.AgentCallUpdate
	for finished = peer.nextUpdate(); bytes.Equal(finished.Status.UUID, running.Status.UUID); finished = peer.nextUpdate() {
	}
	wantUpdate(t, finished, "waiter", api.TaskFinished)
	peer.ack(finished)
	waitUntil(t, "the task to be forgotten", func() bool { return len(second.Tasks()) == 0 })
}

// TestShutdownKillsTasks is `atoll up`'s Ctrl-C: every task is killed and its terminal
// update is checkpointed before Shutdown returns.
func TestShutdownKillsTasks(t *testing.T) {
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	a := TestAgent(t, peer.masters, withWorkDir(workDir))
	peer.nextSubscribe()
	peer.send(launchEvent("long", "sleep 60"))
	wantUpdate(t, peer.nextUpdate(), "long", api.TaskRunning)
	shutdown(t, a, true)
	left := readCheckpoint(t, workDir)
	if len(left) != 1 || left[0].record.State != api.TaskKilled || len(left[0].updates) != 2 {
		t.Fatalf("checkpoint after shutdown = %+v, want task long killed with 2 updates", left)
	}
	if got := left[0].updates[1].update.Status; got.State != api.TaskKilled || got.Message != "Command terminated with signal Terminated" {
		t.Fatalf("last update = %+v", got)
	}
	if err := a.Run(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Run after Shutdown = %v, want ErrShutdown", err)
	}
}

// TestShutdownFramework kills and forgets a removed framework's tasks without updates.
func TestShutdownFramework(t *testing.T) {
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	peer.send(launchEvent("long", "sleep 60"))
	wantUpdate(t, peer.nextUpdate(), "long", api.TaskRunning)
	peer.send(api.AgentEvent{Type: api.AgentShutdownFramework, ShutdownFramework: &api.AgentEventShutdownFrwk{FrameworkID: api.FrameworkID{Value: testFramework}}})
	waitUntil(t, "the framework's task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
}

// TestReconnectsWhenHeartbeatsStop re-registers, with the same id, when the master goes
// quiet for three heartbeat intervals.
func TestReconnectsWhenHeartbeatsStop(t *testing.T) {
	peer := newProtocolPeer(t)
	peer.silent, peer.heartbeat = true, 200*time.Millisecond
	TestAgent(t, peer.masters)
	if sub := peer.nextSubscribe(); sub.AgentInfo.ID != nil {
		t.Fatalf("first SUBSCRIBE carries id %v", sub.AgentInfo.ID)
	}
	if sub := peer.nextSubscribe(); sub.AgentInfo.ID == nil || sub.AgentInfo.ID.Value != "agent-1" {
		t.Fatalf("second SUBSCRIBE carries id %v, want agent-1", sub.AgentInfo.ID)
	}
}

// TestFollowsRedirectToLeader registers through a non-leader's 307 and then talks to the
// leader directly.
func TestFollowsRedirectToLeader(t *testing.T) {
	leader := newProtocolPeer(t)
	leaderURL, err := url.Parse(leader.server.URL)
	if err != nil {
		t.Fatal(err)
	}
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The Mesos form: scheme-relative.
		w.Header().Set("Location", "//"+leaderURL.Host+api.AgentPath)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(follower.Close)
	TestAgent(t, func() []string { return []string{"http://127.0.0.1:1", follower.URL} })
	leader.nextSubscribe()
	leader.send(launchEvent("t", "true"))
	wantUpdate(t, leader.nextUpdate(), "t", api.TaskRunning)
}

// TestRebootStartsNewAgent drops a checkpoint written under another boot id.
func TestRebootStartsNewAgent(t *testing.T) {
	for _, tt := range []struct {
		bootID    string
		wantID    string
		wantTasks int
	}{
		{bootID: "boot-1", wantID: "agent-7", wantTasks: 1},
		{bootID: "boot-2", wantID: "", wantTasks: 0},
	} {
		t.Run(tt.bootID, func(t *testing.T) {
			workDir := t.TempDir()
			cp, err := openCheckpoint(filepath.Join(workDir, "meta"))
			if err != nil {
				t.Fatal(err)
			}
			rec := testRecord("fw-1", "a", api.TaskFinished)
			_, err1 := cp.appendUpdate(&rec, testUpdate("fw-1", "a", api.TaskFinished, 1))
			err2 := cp.setAgentID("agent-7")
			err3 := cp.setBootID("boot-1")
			if err := errors.Join(err1, err2, err3, cp.close()); err != nil {
				t.Fatal(err)
			}
			containerizer, err := isolate.NewProcess(isolate.ProcessConfig{StateDir: filepath.Join(workDir, "containers")})
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.WorkDir, cfg.HTTPAddr, cfg.BootID = workDir, "127.0.0.1:0", tt.bootID
			cfg.Resources = "cpus:1;mem:1;disk:1"
			cfg.Masters = func() []string { return nil }
			cfg.Containerizer = containerizer
			cfg.Logger = TestLogger(t)
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer shutdown(t, a, false)
			if a.ID() != tt.wantID || len(a.Tasks()) != tt.wantTasks {
				t.Fatalf("id %q with %d tasks, want %q with %d", a.ID(), len(a.Tasks()), tt.wantID, tt.wantTasks)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Masters = func() []string { return nil }
		c.Containerizer = &isolate.Process{}
		return c
	}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "default plus required", change: func(*Config) {}},
		{name: "work dir", change: func(c *Config) { c.WorkDir = "" }, wantErr: "agent config: WorkDir is required"},
		{name: "http addr", change: func(c *Config) { c.HTTPAddr = "" }, wantErr: "agent config: HTTPAddr is required"},
		{name: "masters", change: func(c *Config) { c.Masters = nil }, wantErr: "agent config: Masters is required"},
		{name: "containerizer", change: func(c *Config) { c.Containerizer = nil }, wantErr: "agent config: Containerizer is required"},
		{name: "launches", change: func(c *Config) { c.MaxConcurrentLaunches = 0 }, wantErr: "agent config: MaxConcurrentLaunches must be positive, got 0"},
		{name: "heartbeat", change: func(c *Config) { c.HeartbeatInterval = 0 }, wantErr: "agent config: HeartbeatInterval must be positive, got 0s"},
		{name: "retry", change: func(c *Config) { c.UpdateRetryInitial = -time.Second }, wantErr: "agent config: UpdateRetryInitial must be positive, got -1s"},
		{name: "retry max", change: func(c *Config) { c.UpdateRetryMax = time.Second }, wantErr: "agent config: UpdateRetryMax (1s) is below UpdateRetryInitial (10s)"},
		{name: "backoff", change: func(c *Config) { c.ReconnectBackoff = 0 }, wantErr: "agent config: ReconnectBackoff must be positive, got 0s"},
		{name: "backoff max", change: func(c *Config) { c.ReconnectBackoffMax = time.Millisecond }, wantErr: "agent config: ReconnectBackoffMax (1ms) is below ReconnectBackoff (1s)"},
		{name: "resources", change: func(c *Config) { c.Resources = "cpus" }, wantErr: "agent config: Resources: "},
		{name: "attributes", change: func(c *Config) { c.Attributes = "rack" }, wantErr: `agent config: Attributes: attribute "rack": want name:value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
			}
		})
	}
}

// TestRecoveryReportsLostTasks restarts over a checkpoint whose tasks have no container to
// go back to: one was never launched, the other's container records are gone.
func TestRecoveryReportsLostTasks(t *testing.T) {
	workDir := t.TempDir()
	cp, err := openCheckpoint(filepath.Join(workDir, "meta"))
	if err != nil {
		t.Fatal(err)
	}
	unlaunched := testRecord(testFramework, "unlaunched", api.TaskStaging)
	unlaunched.Container = nil
	vanished := testRecord(testFramework, "vanished", api.TaskRunning)
	errs := []error{cp.setBootID("boot-1"), cp.setAgentID("agent-1"), cp.putTask(&unlaunched), cp.putTask(&vanished), cp.close()}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters, withWorkDir(workDir), func(c *Config) { c.BootID = "boot-1" })
	sub := peer.nextSubscribe()
	if sub.AgentInfo.ID == nil || sub.AgentInfo.ID.Value != "agent-1" || len(sub.Tasks) != 2 {
		t.Fatalf("SUBSCRIBE = %+v, want agent-1 with two tasks", sub)
	}
	want := map[string]string{
		"unlaunched": "agent restarted before the task's container was launched",
		"vanished":   "container lost while the agent was down: ",
	}
	for range len(want) {
		u := peer.nextUpdate()
		wantUpdate(t, u, u.Status.TaskID.Value, api.TaskFailed)
		prefix, ok := want[u.Status.TaskID.Value]
		if !ok || !strings.HasPrefix(u.Status.Message, prefix) || u.Status.Reason != api.ReasonExecutorTerminated || u.Status.Source != api.SourceAgent {
			t.Fatalf("update %+v, want TASK_FAILED %q with REASON_EXECUTOR_TERMINATED", u.Status, prefix)
		}
		delete(want, u.Status.TaskID.Value)
		peer.ack(u)
	}
	waitUntil(t, "both tasks to be forgotten", func() bool { return len(a.Tasks()) == 0 })
}

// TestRecoveryDeletesAcknowledgedTasks restarts over a checkpoint left by an agent that
// crashed before the (unwaited) deletion of tasks whose last update was acknowledged
// reached the disk: those tasks, launched or not, are deleted and not reported to the
// master, while an ended task whose last update is still unacknowledged is kept and the
// update resent.
func TestRecoveryDeletesAcknowledgedTasks(t *testing.T) {
	workDir := t.TempDir()
	cp, err := openCheckpoint(filepath.Join(workDir, "meta"))
	if err != nil {
		t.Fatal(err)
	}
	launched := testRecord(testFramework, "launched", api.TaskFinished)
	unlaunched := testRecord(testFramework, "unlaunched", api.TaskError)
	unlaunched.Container = nil
	pending := testRecord(testFramework, "pending", api.TaskFailed)
	pending.Container = nil
	pendingUpdate := testUpdate(testFramework, "pending", api.TaskFailed, 7)
	_, appendErr := cp.appendUpdate(&pending, pendingUpdate)
	errs := []error{cp.setBootID("boot-1"), cp.setAgentID("agent-1"), cp.putTask(&launched), cp.putTask(&unlaunched), appendErr, cp.close()}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters, withWorkDir(workDir), func(c *Config) { c.BootID = "boot-1" })
	sub := peer.nextSubscribe()
	if len(sub.Tasks) != 1 || sub.Tasks[0].Task.TaskID.Value != "pending" || sub.Tasks[0].State != api.TaskFailed {
		t.Fatalf("SUBSCRIBE lists %+v, want only task pending in TASK_FAILED", sub.Tasks)
	}
	u := peer.nextUpdate()
	if u.Status.TaskID.Value != "pending" || !bytes.Equal(u.Status.UUID, pendingUpdate.Status.UUID) {
		t.Fatalf("resent update %+v, want the pending one with uuid %x", u.Status, pendingUpdate.Status.UUID)
	}
	if views := a.Tasks(); len(views) != 1 || views[0].TaskID != "pending" || views[0].PendingUpdates != 1 {
		t.Fatalf("tasks = %+v, want only pending with one update", views)
	}
	shutdown(t, a, false)
	left := readCheckpoint(t, workDir)
	if len(left) != 1 || left[0].record.Task.TaskID.Value != "pending" || len(left[0].updates) != 1 {
		t.Fatalf("checkpoint after restart holds %+v, want only pending with its update", left)
	}
}

// TestKillBeforeLaunch answers a kill that arrived before the launch began with
// TASK_KILLED, and never starts the container.
func TestKillBeforeLaunch(t *testing.T) {
	a := TestAgent(t, func() []string { return nil })
	// A task put in the table before the agent's recovery ran would be taken for one the
	// previous agent process never launched.
	<-a.recovered
	cmd := "echo never"
	rec := taskRecord{
		FrameworkID: testFramework, ContainerID: "c-early", State: api.TaskStaging, Killing: true,
		Sandbox: filepath.Join(a.sandboxes, testFramework, "early", "c-early"),
		Task:    api.TaskInfo{TaskID: api.TaskID{Value: "early"}, Command: &api.CommandInfo{Value: &cmd}},
	}
	a.mu.Lock()
	tk := &task{rec: rec, done: make(chan struct{}), backoff: a.cfg.UpdateRetryInitial}
	a.tasks[rec.key()] = tk
	spec, err := a.launchSpecLocked(&tk.rec)
	tk.spec = spec
	a.taskGoroutines.Add(1)
	a.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	a.runTask(tk)

	a.mu.Lock()
	defer a.mu.Unlock()
	if len(tk.queue) != 1 || tk.rec.Container != nil {
		t.Fatalf("queue %+v, container %+v; want one update and no container", tk.queue, tk.rec.Container)
	}
	s := tk.queue[0].update.Status
	if s.State != api.TaskKilled || s.Reason != api.ReasonTaskKilledDuringLaunch || s.Message != "task killed before it was launched" {
		t.Fatalf("status = %+v", s)
	}
	if _, err := os.Stat(rec.Sandbox); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sandbox of a task never launched exists: %v", err)
	}
}

func TestAdvertisedIP(t *testing.T) {
	tests := []struct {
		name     string
		addr     *net.TCPAddr
		hostname string
		want     string
	}{
		{name: "bound listener", addr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 5051}, hostname: "198.18.0.9", want: "127.0.0.2"},
		{name: "ip hostname", addr: &net.TCPAddr{IP: net.IPv4zero, Port: 5051}, hostname: "198.18.0.9", want: "198.18.0.9"},
		{name: "ipv6 hostname", addr: &net.TCPAddr{IP: net.IPv6unspecified, Port: 5051}, hostname: "::1", want: "::1"},
	}
	for _, tt := range tests {
		if got := advertisedIP(tt.addr, tt.hostname); got != tt.want {
			t.Errorf("%s: advertisedIP = %q, want %q", tt.name, got, tt.want)
		}
	}
	got := net.ParseIP(advertisedIP(&net.TCPAddr{IP: net.IPv4zero}, "localhost"))
	if got == nil || got.To4() == nil || got.IsUnspecified() {
		t.Fatalf("advertisedIP for a wildcard listener = %v, want a usable IPv4 address", got)
	}
}

// TestRelaunchOfHeldTaskID: the master may relaunch a task id whose last run it has as
// terminal while the agent still holds that run for want of an acknowledgement. The agent
// answers the new launch with an unacknowledged TASK_DROPPED naming why (so the master's
// record of the launch ends), starts nothing, and keeps resending the old run's update.
func TestRelaunchOfHeldTaskID(t *testing.T) {
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	peer.send(launchEvent("t1", "true"))
	running := peer.nextUpdate()
	wantUpdate(t, running, "t1", api.TaskRunning)
	peer.ack(running)
	var finished api.AgentCallUpdate
	for finished = peer.nextUpdate(); bytes.Equal(finished.Status.UUID, running.Status.UUID); finished = peer.nextUpdate() {
	}
	wantUpdate(t, finished, "t1", api.TaskFinished)

	peer.send(launchEvent("t1", "echo second run > second"))
	var dropped api.AgentCallUpdate
	for dropped = peer.nextUpdate(); bytes.Equal(dropped.Status.UUID, finished.Status.UUID); dropped = peer.nextUpdate() {
		// Resends of the unacknowledged TASK_FINISHED.
	}
	s := dropped.Status
	wantMsg := "task id t1 is still held by this agent (its previous run is TASK_FINISHED with an unacknowledged update); launch it under a new id"
	if dropped.FrameworkID.Value != testFramework || s.TaskID.Value != "t1" || s.State != api.TaskDropped || s.Source != api.SourceAgent ||
		s.Reason != api.ReasonTaskInvalid || s.Message != wantMsg || len(s.UUID) != 0 || s.AgentID == nil || s.AgentID.Value != "agent-1" {
		t.Fatalf("answer to the relaunch = %+v, want an unacknowledged TASK_DROPPED saying %q", dropped, wantMsg)
	}
	tasks := a.Tasks()
	if len(tasks) != 1 || tasks[0].State != api.TaskFinished || tasks[0].PendingUpdates != 1 {
		t.Fatalf("agent holds %+v, want only t1's finished run with its pending update", tasks)
	}
	if _, err := os.Stat(filepath.Join(tasks[0].Sandbox, "second")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused launch ran: %v", err)
	}
	resent := peer.nextUpdate()
	if !reflect.DeepEqual(resent, finished) {
		t.Fatalf("after the refusal the agent sent %+v, want the TASK_FINISHED resend", resent)
	}
}
