package agent

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

func portsResource(ranges ...api.ValueRange) api.Resource {
	return api.Resource{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: ranges}}
}

func TestTaskPorts(t *testing.T) {
	tests := []struct {
		name      string
		resources []api.Resource
		want      []uint64
		wantErr   string
	}{
		{name: "none", resources: []api.Resource{{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 1}}}},
		{name: "ranges in given order", resources: []api.Resource{
			portsResource(api.ValueRange{Begin: 31005, End: 31006}, api.ValueRange{Begin: 31000, End: 31000}),
			{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 32}},
			portsResource(api.ValueRange{Begin: 80, End: 80}),
		}, want: []uint64{31005, 31006, 31000, 80}},
		{name: "backwards", resources: []api.Resource{portsResource(api.ValueRange{Begin: 2, End: 1})}, wantErr: "invalid port range [2-1]"},
		{name: "beyond 65535", resources: []api.Resource{portsResource(api.ValueRange{Begin: 65535, End: 1 << 40})}, wantErr: "invalid port range [65535-1099511627776]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := taskPorts(tt.resources)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestTaskEnv(t *testing.T) {
	base := taskEnvInput{sandbox: "/w/sandboxes/fw/t/c", taskID: "web.1", frameworkID: "fw", agentID: "agent-1", hostname: "node1"}
	tests := []struct {
		name  string
		ports []uint64
		want  []string
	}{
		{name: "no ports", want: []string{
			"MESOS_SANDBOX=/w/sandboxes/fw/t/c", "MESOS_TASK_ID=web.1", "MESOS_FRAMEWORK_ID=fw", "MESOS_AGENT_ID=agent-1", "HOST=node1",
		}},
		{name: "three ports", ports: []uint64{31005, 31006, 80}, want: []string{
			"MESOS_SANDBOX=/w/sandboxes/fw/t/c", "MESOS_TASK_ID=web.1", "MESOS_FRAMEWORK_ID=fw", "MESOS_AGENT_ID=agent-1", "HOST=node1",
			"PORT0=31005", "PORT1=31006", "PORT2=80", "PORT=31005", "PORTS=31005,31006,80",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.ports = tt.ports
			if got := taskEnv(in); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("env:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestLaunchSpecValidation covers the tasks the agent refuses before launching.
func TestLaunchSpecValidation(t *testing.T) {
	cmd := func(s string) *api.CommandInfo { return &api.CommandInfo{Value: &s} }
	no := false
	tests := []struct {
		name    string
		task    api.TaskInfo
		wantErr string
	}{
		{name: "executor", task: api.TaskInfo{Executor: &api.ExecutorInfo{}, Command: cmd("x")}, wantErr: "custom executors are not supported; give the task a command"},
		{name: "no command", task: api.TaskInfo{}, wantErr: "task has no command"},
		{name: "empty shell command", task: api.TaskInfo{Command: cmd("")}, wantErr: "shell command has no value"},
		{name: "no executable", task: api.TaskInfo{Command: &api.CommandInfo{Shell: &no}}, wantErr: "command has no executable (value)"},
		{name: "bad resources", task: api.TaskInfo{Command: cmd("x"), Resources: []api.Resource{{Name: "cpus", Type: api.Ranges}}}, wantErr: "resources: "},
		{name: "bad ports", task: api.TaskInfo{Command: cmd("x"), Resources: []api.Resource{portsResource(api.ValueRange{Begin: 1, End: 70000})}}, wantErr: "resources: "},
		{name: "bad health check", task: api.TaskInfo{Command: cmd("x"), HealthCheck: &api.HealthCheck{Type: "TCP", TCP: &api.TCPHealthCheck{Port: 70000}}},
			wantErr: "health_check.tcp.port: 70000 is not a port (1-65535)"},
	}
	a := &Agent{cfg: Config{Hostname: "h"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.launchSpecLocked(&taskRecord{Task: tt.task})
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
			}
		})
	}

	t.Run("valid", func(t *testing.T) {
		a := &Agent{cfg: Config{Hostname: "h"}, agentID: "agent-1"}
		rec := &taskRecord{
			FrameworkID: "fw", ContainerID: "c1", Sandbox: "/s",
			Task: api.TaskInfo{TaskID: api.TaskID{Value: "t1"}, Command: cmd("echo"), Resources: []api.Resource{
				{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 0.5}},
				{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 64}},
				portsResource(api.ValueRange{Begin: 31000, End: 31000}),
			}},
		}
		got, err := a.launchSpecLocked(rec)
		if err != nil {
			t.Fatal(err)
		}
		want := isolate.LaunchSpec{
			ContainerID: "c1", TaskID: "t1", Sandbox: "/s", Command: *rec.Task.Command,
			Env:  []string{"MESOS_SANDBOX=/s", "MESOS_TASK_ID=t1", "MESOS_FRAMEWORK_ID=fw", "MESOS_AGENT_ID=agent-1", "HOST=h", "PORT0=31000", "PORT=31000", "PORTS=31000"},
			CPUs: 0.5, MemMB: 64, Resources: rec.Task.Resources,
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("spec:\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestTerminalStatus(t *testing.T) {
	tests := []struct {
		name    string
		exit    isolate.ExitStatus
		killing bool
		want    api.TaskStatus
	}{
		{name: "success", exit: isolate.ExitStatus{Code: 0},
			want: api.TaskStatus{State: api.TaskFinished, Source: api.SourceExecutor, Message: "Command exited with status 0"}},
		{name: "failure", exit: isolate.ExitStatus{Code: 3},
			want: api.TaskStatus{State: api.TaskFailed, Source: api.SourceExecutor, Message: "Command exited with status 3"}},
		{name: "signal", exit: isolate.ExitStatus{Code: -1, Signal: 9},
			want: api.TaskStatus{State: api.TaskFailed, Source: api.SourceExecutor, Message: "Command terminated with signal Killed"}},
		{name: "oom", exit: isolate.ExitStatus{Code: -1, Signal: 9, OOMKilled: true},
			want: api.TaskStatus{State: api.TaskFailed, Source: api.SourceExecutor, Reason: api.ReasonContainerLimitationMem, Message: "Memory limit exceeded: Command terminated with signal Killed"}},
		{name: "killed by SIGTERM", exit: isolate.ExitStatus{Code: -1, Signal: 15}, killing: true,
			want: api.TaskStatus{State: api.TaskKilled, Source: api.SourceExecutor, Message: "Command terminated with signal Terminated"}},
		{name: "killed but exited cleanly", exit: isolate.ExitStatus{Code: 0}, killing: true,
			want: api.TaskStatus{State: api.TaskKilled, Source: api.SourceExecutor, Message: "Command exited with status 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := terminalStatus(tt.exit, tt.killing); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestKillGrace(t *testing.T) {
	policy := func(d time.Duration) *api.KillPolicy {
		return &api.KillPolicy{GracePeriod: &api.DurationInfo{Nanoseconds: int64(d)}}
	}
	tests := []struct {
		name          string
		event, ofTask *api.KillPolicy
		want          time.Duration
	}{
		{name: "default", want: 3 * time.Second},
		{name: "task", ofTask: policy(5 * time.Second), want: 5 * time.Second},
		{name: "event wins", event: policy(time.Second), ofTask: policy(5 * time.Second), want: time.Second},
		{name: "event without period", event: &api.KillPolicy{}, ofTask: policy(7 * time.Second), want: 7 * time.Second},
		{name: "zero", event: policy(0), want: 0},
		{name: "negative", event: policy(-time.Second), want: 0},
	}
	for _, tt := range tests {
		if got := killGrace(tt.event, tt.ofTask); got != tt.want {
			t.Errorf("%s: killGrace = %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestPathComponent(t *testing.T) {
	tests := map[string]string{
		"web.1":         "web.1",
		"a/b":           "a%2Fb",
		".":             "%2E",
		"..":            "%2E%2E",
		"../x":          "..%2Fx",
		"app_x-1.uuid":  "app_x-1.uuid",
		"with space":    "with%20space",
		"nul\x00inside": "nul%00inside",
	}
	for in, want := range tests {
		if got := pathComponent(in); got != want {
			t.Errorf("pathComponent(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLaunchSlot bounds the launches in flight: a launch beyond MaxConcurrentLaunches waits
// for a release, a launch that takes longer than launchSlotHold frees its slot on its own
// (and its late release frees nothing more), and a stopping agent ends the wait.
func TestLaunchSlot(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := &Agent{launchSlots: make(chan struct{}, 2), stopCtx: ctx}
	take := func() func() {
		t.Helper()
		release, ok := a.launchSlot()
		if !ok {
			t.Fatal("launchSlot: agent stopping")
		}
		return release
	}
	first, second := take(), take()
	third := make(chan func())
	go func() {
		release, _ := a.launchSlot()
		third <- release
	}()
	first()
	var releaseThird func()
	select {
	case releaseThird = <-third:
	case <-time.After(waitTimeout):
		t.Fatal("a launch waiting for a slot did not get the one released")
	}
	if n := len(a.launchSlots); n != 2 {
		t.Fatalf("%d slots taken, want 2", n)
	}
	releaseThird()

	// second has held its slot for launchSlotHold by the time it frees itself.
	deadline := time.Now().Add(launchSlotHold + waitTimeout)
	for len(a.launchSlots) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a launch held its slot for more than %v", launchSlotHold)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fourth := take()
	second()
	if n := len(a.launchSlots); n != 1 {
		t.Fatalf("%d slots taken after a late release, want 1", n)
	}
	fourth()

	take()
	take()
	cancel()
	if _, ok := a.launchSlot(); ok {
		t.Fatal("launchSlot of a stopping agent with every slot taken = ok")
	}
}

// TestLaunchesQueue runs tasks through a single launch slot: a task queued behind a launch
// starts once the slot is free, and one killed while it waits for the slot ends
// TASK_KILLED without being launched.
func TestLaunchesQueue(t *testing.T) {
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters, func(c *Config) { c.MaxConcurrentLaunches = 1 })
	peer.nextSubscribe()
	<-a.recovered
	a.launchSlots <- struct{}{} // held by the test, so that the launches queue
	peer.send(launchEvent("killed", "sleep 60"))
	peer.send(launchEvent("first", "sleep 60"))
	peer.send(launchEvent("second", "sleep 60"))
	peer.send(killEvent("killed", time.Second))
	waitUntil(t, "the kill to be recorded", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		killed := a.tasks[taskKey(testFramework, "killed")]
		return killed != nil && killed.rec.Killing
	})
	<-a.launchSlots

	states := map[string]api.TaskStatus{}
	for len(states) < 3 {
		u := peer.nextUpdate()
		states[u.Status.TaskID.Value] = u.Status
	}
	for _, id := range []string{"first", "second"} {
		if s := states[id]; s.State != api.TaskRunning {
			t.Errorf("%s: %s (%q), want TASK_RUNNING", id, s.State, s.Message)
		}
	}
	if s := states["killed"]; s.State != api.TaskKilled || s.Reason != api.ReasonTaskKilledDuringLaunch {
		t.Errorf("killed: %s %s (%q), want TASK_KILLED %s", s.State, s.Reason, s.Message, api.ReasonTaskKilledDuringLaunch)
	}
}
