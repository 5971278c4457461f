package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// updateStream reads the updates the peer receives, skipping resends of updates it
// already returned.
type updateStream struct {
	peer *protocolPeer
	seen map[string]bool
}

func newUpdateStream(peer *protocolPeer) *updateStream {
	return &updateStream{peer: peer, seen: map[string]bool{}}
}

func (s *updateStream) next(t *testing.T) api.AgentCallUpdate {
	t.Helper()
	for {
		u := s.peer.nextUpdate()
		if id := string(u.Status.UUID); !s.seen[id] {
			s.seen[id] = true
			return u
		}
	}
}

// freePort returns a loopback TCP port nothing listened on a moment ago.
func freePort(t *testing.T) uint32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint32(ln.Addr().(*net.TCPAddr).Port)
}

// healthServerLaunch launches the test binary as a health server task (see
// healthServerEnv) listening on listen, with the given health check and port resource.
func healthServerLaunch(t *testing.T, taskID, listen string, port uint32, hc *api.HealthCheck) api.AgentEvent {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ev := launchEvent(taskID, "exec '"+exe+"'", portsResource(api.ValueRange{Begin: uint64(port), End: uint64(port)}))
	ev.Launch.Task.Command.Environment = &api.Environment{Variables: []api.EnvironmentVariable{{Name: healthServerEnv, Value: listen}}}
	ev.Launch.Task.HealthCheck = hc
	return ev
}

func seconds(s float64) *float64 { return &s }

// fastHealthCheck probes every 0.1 s from the start; failures count once the first
// success ended the grace period (long enough for the task to come up).
func fastHealthCheck(kind string, failures uint32) *api.HealthCheck {
	return &api.HealthCheck{
		Type: kind, DelaySeconds: seconds(0), IntervalSeconds: seconds(0.1), TimeoutSeconds: seconds(5),
		GracePeriodSeconds: seconds(30), ConsecutiveFailures: &failures,
	}
}

// wantHealth checks a health update.
func wantHealth(t *testing.T, u api.AgentCallUpdate, taskID string, healthy bool, message string) {
	t.Helper()
	wantUpdate(t, u, taskID, api.TaskRunning)
	s := u.Status
	if s.Reason != api.ReasonTaskHealthCheckUpdated || s.Source != api.SourceExecutor || s.Healthy == nil || *s.Healthy != healthy || s.Message != message {
		t.Fatalf("health update %+v (healthy %v), want TASK_RUNNING healthy=%v with REASON_TASK_HEALTH_CHECK_STATUS_UPDATED and message %q",
			s, s.Healthy, healthy, message)
	}
}

// wantUnhealthyKill checks the terminal update of a task killed for failing its health
// check: TASK_KILLED, healthy=false, no reason (as in Mesos), the failure named, then how
// the task ended (any words, if exit is empty).
func wantUnhealthyKill(t *testing.T, u api.AgentCallUpdate, taskID string, failures int, failure, exit string) {
	t.Helper()
	wantUpdate(t, u, taskID, api.TaskKilled)
	s := u.Status
	checks := "checks"
	if failures == 1 {
		checks = "check"
	}
	want := fmt.Sprintf("killed after %d consecutive failed health %s, the last: %s; Command ", failures, checks, failure)
	if exit != "" {
		want = strings.TrimSuffix(want, "Command ") + exit
	}
	if s.Healthy == nil || *s.Healthy || s.Reason != "" || !strings.HasPrefix(s.Message, want) || exit != "" && s.Message != want || s.Source != api.SourceExecutor {
		t.Fatalf("terminal update %+v (healthy %v), want TASK_KILLED healthy=false, no reason, message %q", s, s.Healthy, want)
	}
}

// terminated is how the tasks of these tests end when killed.
const terminated = "Command terminated with signal Terminated"

func touch(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHealthChecks runs each kind of check against a real task: it goes healthy, then
// failing (the server answers 503, stops listening, or the command fails) makes the task
// unhealthy after consecutive_failures failures and the agent kills it, every update
// acknowledged through the reliable path.
func TestHealthChecks(t *testing.T) {
	no := false
	tests := []struct {
		name  string
		check func(port uint32) *api.HealthCheck
		// trigger is the file that makes the check fail; failure the words it fails with.
		trigger string
		failure func(port uint32) string
	}{
		{name: "http", check: func(port uint32) *api.HealthCheck {
			hc := fastHealthCheck(healthHTTP, 2)
			hc.HTTP = &api.HTTPHealthCheck{Port: port, Path: "/health"}
			return hc
		}, trigger: "sick", failure: func(port uint32) string {
			return fmt.Sprintf("HTTP GET http://127.0.0.1:%d/health: 503 Service Unavailable", port)
		}},
		{name: "tcp", check: func(port uint32) *api.HealthCheck {
			hc := fastHealthCheck(healthTCP, 2)
			hc.TCP = &api.TCPHealthCheck{Port: port}
			return hc
		}, trigger: "deaf", failure: func(port uint32) string {
			return fmt.Sprintf("connect to 127.0.0.1:%d: connection refused", port)
		}},
		{name: "shell command", check: func(port uint32) *api.HealthCheck {
			// Runs in the sandbox with the task's environment.
			cmd := fmt.Sprintf(`test "$MESOS_TASK_ID" = health-shell-command && test "$PORT0" = %d && test "$(pwd)" = "$MESOS_SANDBOX" && test ! -e sick`, port)
			hc := fastHealthCheck(healthCommand, 2)
			hc.Command = &api.CommandInfo{Value: &cmd}
			return hc
		}, trigger: "sick", failure: func(uint32) string { return "command exited with status 1" }},
		{name: "argv command", check: func(uint32) *api.HealthCheck {
			exe := "test"
			hc := fastHealthCheck(healthCommand, 3)
			hc.Command = &api.CommandInfo{Shell: &no, Value: &exe, Arguments: []string{"test", "!", "-e", "sick"}}
			return hc
		}, trigger: "sick", failure: func(uint32) string { return "command exited with status 1" }},
	}
	// One agent runs the cases one after the other.
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			check := tt.check(port)
			taskID := "health-" + strings.ReplaceAll(tt.name, " ", "-")
			peer.send(healthServerLaunch(t, taskID, "127.0.0.1:"+strconv.Itoa(int(port)), port, check))

			running := updates.next(t)
			wantUpdate(t, running, taskID, api.TaskRunning)
			if running.Status.Healthy != nil || running.Status.Reason != "" {
				t.Fatalf("TASK_RUNNING at launch = %+v, want no health yet", running.Status)
			}
			peer.ack(running)
			healthy := updates.next(t)
			wantHealth(t, healthy, taskID, true, "")
			if healthy.Status.ContainerStatus == nil || healthy.Status.Labels == nil {
				t.Fatalf("health update lacks the container status or sandbox label: %+v", healthy.Status)
			}
			peer.ack(healthy)
			tasks := a.Tasks()
			if len(tasks) != 1 || tasks[0].Healthy == nil || !*tasks[0].Healthy {
				t.Fatalf("tasks = %+v, want the task healthy", tasks)
			}

			touch(t, tasks[0].Sandbox, tt.trigger)
			unhealthy := updates.next(t)
			wantHealth(t, unhealthy, taskID, false, tt.failure(port))
			peer.ack(unhealthy)
			killed := updates.next(t)
			wantUnhealthyKill(t, killed, taskID, int(*check.ConsecutiveFailures), tt.failure(port), terminated)
			peer.ack(killed)
			waitUntil(t, "the killed task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
		})
	}
}

// TestHealthCheckGracePeriod: failures within the grace period send nothing and do not
// count; the first success ends the grace, so the next failure counts at once.
func TestHealthCheckGracePeriod(t *testing.T) {
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	ev := launchEvent("graceful", "sleep 60")
	cmd := "echo >> checks; test -e ready"
	ev.Launch.Task.HealthCheck = fastHealthCheck(healthCommand, 1)
	ev.Launch.Task.HealthCheck.Command = &api.CommandInfo{Value: &cmd}
	ev.Launch.Task.KillPolicy = &api.KillPolicy{GracePeriod: &api.DurationInfo{Nanoseconds: int64(5 * time.Second)}}
	peer.send(ev)
	running := updates.next(t)
	wantUpdate(t, running, "graceful", api.TaskRunning)
	peer.ack(running)
	sandbox := a.Tasks()[0].Sandbox

	// Five failed checks, with consecutive_failures 1: nothing happens in the grace period.
	waitUntil(t, "five failed checks", func() bool {
		b, _ := os.ReadFile(filepath.Join(sandbox, "checks"))
		return strings.Count(string(b), "\n") >= 5
	})
	tasks := a.Tasks()
	if len(tasks) != 1 || tasks[0].State != api.TaskRunning || tasks[0].Healthy != nil || tasks[0].PendingUpdates != 0 {
		t.Fatalf("after failures in the grace period the agent holds %+v, want the task running with no health and no update", tasks)
	}
	peer.mu.Lock()
	for _, u := range peer.updates {
		if u.Status.State != api.TaskRunning || u.Status.Healthy != nil {
			t.Errorf("update %+v during the grace period", u.Status)
		}
	}
	peer.mu.Unlock()

	touch(t, sandbox, "ready")
	healthy := updates.next(t)
	wantHealth(t, healthy, "graceful", true, "")
	peer.ack(healthy)
	if err := os.Remove(filepath.Join(sandbox, "ready")); err != nil {
		t.Fatal(err)
	}
	unhealthy := updates.next(t)
	wantHealth(t, unhealthy, "graceful", false, "command exited with status 1")
	peer.ack(unhealthy)
	killed := updates.next(t)
	wantUnhealthyKill(t, killed, "graceful", 1, "command exited with status 1", terminated)
	peer.ack(killed)
	waitUntil(t, "the killed task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
}

// TestHealthCheckTiming: the first check waits delay_seconds, and a failing check is
// ignored for grace_period_seconds after the start. Both are lower bounds on the gap
// between the agent's TASK_RUNNING and its health update, which no load can shorten.
func TestHealthCheckTiming(t *testing.T) {
	tests := []struct {
		name         string
		command      string
		delay, grace float64
		healthy      bool
	}{
		{name: "delay", command: "true", delay: 0.5, grace: 0, healthy: true},
		{name: "grace period", command: "exit 4", delay: 0, grace: 0.5, healthy: false},
	}
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			taskID := "timed-" + strings.ReplaceAll(tt.name, " ", "-")
			ev := launchEvent(taskID, "sleep 60")
			failures := uint32(1)
			ev.Launch.Task.HealthCheck = &api.HealthCheck{
				Type: healthCommand, Command: &api.CommandInfo{Value: &tt.command}, DelaySeconds: &tt.delay,
				IntervalSeconds: seconds(0.1), GracePeriodSeconds: &tt.grace, ConsecutiveFailures: &failures,
			}
			peer.send(ev)
			running := updates.next(t)
			wantUpdate(t, running, taskID, api.TaskRunning)
			peer.ack(running)
			health := updates.next(t)
			message := ""
			if !tt.healthy {
				message = "command exited with status 4"
			}
			wantHealth(t, health, taskID, tt.healthy, message)
			// The container started (Started) just before TASK_RUNNING was stamped.
			const slack = 0.05
			if gap, floor := health.Status.Timestamp-running.Status.Timestamp, max(tt.delay, tt.grace)-slack; gap < floor {
				t.Fatalf("health update %.3f s after TASK_RUNNING, want at least %.3f s", gap, floor)
			}
			peer.ack(health)
			if tt.healthy {
				peer.send(killEvent(taskID, time.Second))
				killed := updates.next(t)
				wantUpdate(t, killed, taskID, api.TaskKilled)
				peer.ack(killed)
			} else {
				killed := updates.next(t)
				wantUnhealthyKill(t, killed, taskID, 1, message, terminated)
				peer.ack(killed)
			}
			waitUntil(t, "the killed task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
		})
	}
}

// TestHealthCheckAcrossRestart: a health update left unacknowledged survives an agent
// restart and is redelivered with its uuid; the restarted agent checks the recovered task
// again, knowing it was healthy (no repeated healthy update), and kills it when it fails.
func TestHealthCheckAcrossRestart(t *testing.T) {
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	first := TestAgent(t, peer.masters, withWorkDir(workDir))
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	port := freePort(t)
	hc := fastHealthCheck(healthHTTP, 2)
	hc.HTTP = &api.HTTPHealthCheck{Port: port, Path: "/health"}
	peer.send(healthServerLaunch(t, "survivor", "127.0.0.1:"+strconv.Itoa(int(port)), port, hc))
	running := updates.next(t)
	wantUpdate(t, running, "survivor", api.TaskRunning)
	peer.ack(running)
	healthy := updates.next(t)
	wantHealth(t, healthy, "survivor", true, "")
	sandbox := first.Tasks()[0].Sandbox
	shutdown(t, first, false)
	left := readCheckpoint(t, workDir)
	if len(left) != 1 || left[0].record.Healthy == nil || !*left[0].record.Healthy || len(left[0].updates) != 1 ||
		string(left[0].updates[0].update.Status.UUID) != string(healthy.Status.UUID) {
		t.Fatalf("checkpoint after shutdown = %+v, want the healthy task with its unacknowledged health update", left)
	}

	second := TestAgent(t, peer.masters, withWorkDir(workDir))
	sub := peer.nextSubscribe()
	if len(sub.Tasks) != 1 || sub.Tasks[0].State != api.TaskRunning {
		t.Fatalf("SUBSCRIBE after restart lists %+v, want survivor running", sub.Tasks)
	}
	redelivered := peer.nextUpdate()
	for string(redelivered.Status.UUID) == string(running.Status.UUID) {
		redelivered = peer.nextUpdate()
	}
	if !reflect.DeepEqual(redelivered, healthy) {
		t.Fatalf("after the restart the agent sent %+v, want the unacknowledged health update", redelivered.Status)
	}
	peer.ack(redelivered)
	waitUntil(t, "the acknowledgement", func() bool {
		tasks := second.Tasks()
		return len(tasks) == 1 && tasks[0].PendingUpdates == 0
	})

	touch(t, sandbox, "sick")
	failure := fmt.Sprintf("HTTP GET http://127.0.0.1:%d/health: 503 Service Unavailable", port)
	unhealthy := updates.next(t)
	wantHealth(t, unhealthy, "survivor", false, failure)
	peer.ack(unhealthy)
	killed := updates.next(t)
	wantUnhealthyKill(t, killed, "survivor", 2, failure, terminated)
	peer.ack(killed)
	waitUntil(t, "the killed task to be forgotten", func() bool { return len(second.Tasks()) == 0 })
}

// TestHealthCheckStopsWithTask: a task killed by its framework is no longer checked, so
// a check failing while it dies sends nothing.
func TestHealthCheckStopsWithTask(t *testing.T) {
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	// The task says when its trap is set: a TERM before that (on a loaded machine) would
	// end it by the signal rather than by its own exit.
	ev := launchEvent("stopped", "trap 'sleep 0.5; exit 0' TERM; touch trapped; while :; do sleep 0.05; done")
	ev.Launch.FrameworkInfo.Capabilities = []api.FrameworkCapability{{Type: api.CapabilityTaskKillingState}}
	cmd := "echo >> checks; test ! -e sick"
	ev.Launch.Task.HealthCheck = fastHealthCheck(healthCommand, 1)
	ev.Launch.Task.HealthCheck.Command = &api.CommandInfo{Value: &cmd}
	peer.send(ev)
	running := updates.next(t)
	wantUpdate(t, running, "stopped", api.TaskRunning)
	peer.ack(running)
	healthy := updates.next(t)
	wantHealth(t, healthy, "stopped", true, "")
	peer.ack(healthy)
	sandbox := a.Tasks()[0].Sandbox
	waitUntil(t, "the task's trap to be set", func() bool {
		_, err := os.Stat(filepath.Join(sandbox, "trapped"))
		return err == nil
	})

	peer.send(killEvent("stopped", 5*time.Second))
	killing := updates.next(t)
	wantUpdate(t, killing, "stopped", api.TaskKilling)
	peer.ack(killing)
	touch(t, sandbox, "sick")
	killed := updates.next(t)
	wantUpdate(t, killed, "stopped", api.TaskKilled)
	if killed.Status.Healthy != nil || killed.Status.Message != "Command exited with status 0" {
		t.Fatalf("TASK_KILLED = %+v, want no health and the task's own exit", killed.Status)
	}
	peer.ack(killed)
	waitUntil(t, "the killed task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
	checks, err := os.ReadFile(filepath.Join(sandbox, "checks"))
	if err != nil {
		t.Fatal(err)
	}
	// Let a checker that failed to stop show itself.
	time.Sleep(300 * time.Millisecond)
	if after, err := os.ReadFile(filepath.Join(sandbox, "checks")); err != nil || len(after) != len(checks) {
		t.Fatalf("checks went on after the task ended: %d bytes, then %d (%v)", len(checks), len(after), err)
	}
}

func TestParseHealthCheck(t *testing.T) {
	shell := "true"
	empty := ""
	no := false
	failures := func(n uint32) *uint32 { return &n }
	tests := []struct {
		name    string
		check   api.HealthCheck
		want    healthCheck
		wantErr string
	}{
		{name: "mesos defaults", check: api.HealthCheck{Type: "TCP", TCP: &api.TCPHealthCheck{Port: 8080}},
			want: healthCheck{kind: "TCP", delay: 15 * time.Second, interval: 10 * time.Second, timeout: 20 * time.Second, grace: 10 * time.Second, failures: 3, port: 8080}},
		{name: "fractional seconds", check: api.HealthCheck{
			Type: "HTTP", HTTP: &api.HTTPHealthCheck{Port: 80, Scheme: "https", Path: "/ping?x=1", Statuses: []uint32{200, 204}},
			DelaySeconds: seconds(0), IntervalSeconds: seconds(0.2), TimeoutSeconds: seconds(0), GracePeriodSeconds: seconds(1.5), ConsecutiveFailures: failures(0),
		}, want: healthCheck{kind: "HTTP", interval: 200 * time.Millisecond, grace: 1500 * time.Millisecond, port: 80,
			scheme: "https", path: "/ping?x=1", statuses: []uint32{200, 204}}},
		{name: "http path defaults to /", check: api.HealthCheck{Type: "HTTP", HTTP: &api.HTTPHealthCheck{Port: 1}},
			want: healthCheck{kind: "HTTP", delay: 15 * time.Second, interval: 10 * time.Second, timeout: 20 * time.Second, grace: 10 * time.Second, failures: 3, port: 1, scheme: "http", path: "/"}},
		{name: "command", check: api.HealthCheck{Type: "COMMAND", Command: &api.CommandInfo{Value: &shell}},
			want: healthCheck{kind: "COMMAND", delay: 15 * time.Second, interval: 10 * time.Second, timeout: 20 * time.Second, grace: 10 * time.Second, failures: 3, command: &api.CommandInfo{Value: &shell}}},

		{name: "no type", check: api.HealthCheck{TCP: &api.TCPHealthCheck{Port: 1}}, wantErr: "health_check.type: missing; want COMMAND, HTTP or TCP"},
		{name: "unknown type", check: api.HealthCheck{Type: "UNKNOWN"}, wantErr: `health_check.type: "UNKNOWN" is not COMMAND, HTTP or TCP`},
		{name: "marathon protocol", check: api.HealthCheck{Type: "MESOS_HTTP"}, wantErr: `health_check.type: "MESOS_HTTP" is not COMMAND, HTTP or TCP`},
		{name: "http without http", check: api.HealthCheck{Type: "HTTP"}, wantErr: "health_check.http: required for an HTTP health check"},
		{name: "http port 0", check: api.HealthCheck{Type: "HTTP", HTTP: &api.HTTPHealthCheck{}}, wantErr: "health_check.http.port: 0 is not a port (1-65535)"},
		{name: "http port too big", check: api.HealthCheck{Type: "HTTP", HTTP: &api.HTTPHealthCheck{Port: 65536}}, wantErr: "health_check.http.port: 65536 is not a port (1-65535)"},
		{name: "http scheme", check: api.HealthCheck{Type: "HTTP", HTTP: &api.HTTPHealthCheck{Port: 1, Scheme: "ftp"}}, wantErr: `health_check.http.scheme: "ftp" is not http or https`},
		{name: "relative path", check: api.HealthCheck{Type: "HTTP", HTTP: &api.HTTPHealthCheck{Port: 1, Path: "health"}}, wantErr: `health_check.http.path: "health" does not start with /`},
		{name: "control character in path", check: api.HealthCheck{Type: "HTTP", HTTP: &api.HTTPHealthCheck{Port: 1, Path: "/a\nb"}}, wantErr: `health_check.http.path: "/a\nb" is not a URL path`},
		{name: "status", check: api.HealthCheck{Type: "HTTP", HTTP: &api.HTTPHealthCheck{Port: 1, Statuses: []uint32{200, 700}}}, wantErr: "health_check.http.statuses: 700 is not an HTTP status (100-599)"},
		{name: "tcp without tcp", check: api.HealthCheck{Type: "TCP"}, wantErr: "health_check.tcp: required for a TCP health check"},
		{name: "tcp port", check: api.HealthCheck{Type: "TCP", TCP: &api.TCPHealthCheck{}}, wantErr: "health_check.tcp.port: 0 is not a port (1-65535)"},
		{name: "command without command", check: api.HealthCheck{Type: "COMMAND"}, wantErr: "health_check.command: required for a COMMAND health check"},
		{name: "empty shell command", check: api.HealthCheck{Type: "COMMAND", Command: &api.CommandInfo{Value: &empty}}, wantErr: "health_check.command.value: empty shell command"},
		{name: "no executable", check: api.HealthCheck{Type: "COMMAND", Command: &api.CommandInfo{Shell: &no}}, wantErr: "health_check.command.value: no executable"},
		{name: "uris", check: api.HealthCheck{Type: "COMMAND", Command: &api.CommandInfo{Value: &shell, URIs: []api.CommandURI{{Value: "http://x/y"}}}},
			wantErr: "health_check.command.uris: not supported; a health check fetches nothing"},
		{name: "secret variable", check: api.HealthCheck{Type: "COMMAND", Command: &api.CommandInfo{Value: &shell, Environment: &api.Environment{Variables: []api.EnvironmentVariable{{Name: "K", Type: "SECRET"}}}}},
			wantErr: `health_check.command.environment: variable "K": type "SECRET" is not supported`},
		{name: "bad variable", check: api.HealthCheck{Type: "COMMAND", Command: &api.CommandInfo{Value: &shell, Environment: &api.Environment{Variables: []api.EnvironmentVariable{{Name: "A=B"}}}}},
			wantErr: `health_check.command.environment: variable "A=B" is invalid`},
		{name: "negative delay", check: api.HealthCheck{Type: "TCP", TCP: &api.TCPHealthCheck{Port: 1}, DelaySeconds: seconds(-1)}, wantErr: "health_check.delay_seconds: -1 is out of range (0-31536000)"},
		{name: "huge timeout", check: api.HealthCheck{Type: "TCP", TCP: &api.TCPHealthCheck{Port: 1}, TimeoutSeconds: seconds(1e300)}, wantErr: "health_check.timeout_seconds: 1e+300 is out of range (0-31536000)"},
		{name: "negative grace", check: api.HealthCheck{Type: "TCP", TCP: &api.TCPHealthCheck{Port: 1}, GracePeriodSeconds: seconds(-0.5)}, wantErr: "health_check.grace_period_seconds: -0.5 is out of range (0-31536000)"},
		{name: "zero interval", check: api.HealthCheck{Type: "TCP", TCP: &api.TCPHealthCheck{Port: 1}, IntervalSeconds: seconds(0)}, wantErr: "health_check.interval_seconds: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHealthCheck(&tt.check)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseHealthCheck feeds health checks as frameworks send them (JSON): never a
// panic, and what is accepted can be run.
func FuzzParseHealthCheck(f *testing.F) {
	for _, seed := range []string{
		`{"type":"HTTP","http":{"port":8080,"path":"/health","scheme":"https","statuses":[200]},"interval_seconds":0.2}`,
		`{"type":"TCP","tcp":{"port":31000},"delay_seconds":0,"grace_period_seconds":300,"consecutive_failures":0}`,
		`{"type":"COMMAND","command":{"value":"curl -f localhost:$PORT0","environment":{"variables":[{"name":"A","value":"b"}]}}}`,
		`{"type":"COMMAND","command":{"shell":false,"value":"test","arguments":["test","-e","x"]}}`,
		`{"type":"HTTP","http":{"port":0}}`,
		`{"timeout_seconds":-1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var hc api.HealthCheck
		if json.Unmarshal(data, &hc) != nil {
			return
		}
		check, err := parseHealthCheck(&hc)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "health_check.") {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		if check.interval <= 0 || check.delay < 0 || check.timeout < 0 || check.grace < 0 {
			t.Fatalf("accepted durations %+v", check)
		}
		switch check.kind {
		case healthHTTP, healthTCP:
			if check.port == 0 || check.port > maxPort {
				t.Fatalf("accepted port %d", check.port)
			}
		case healthCommand:
			if check.command == nil || check.command.Value == nil || *check.command.Value == "" {
				t.Fatalf("accepted command %+v", check.command)
			}
		default:
			t.Fatalf("accepted type %q", check.kind)
		}
	})
}

func TestHealthyStatus(t *testing.T) {
	tests := []struct {
		code     int
		statuses []uint32
		want     bool
	}{
		{code: 199}, {code: 200, want: true}, {code: 302, want: true}, {code: 399, want: true}, {code: 400}, {code: 503},
		{code: 200, statuses: []uint32{204}}, {code: 204, statuses: []uint32{204}, want: true}, {code: 503, statuses: []uint32{200, 503}, want: true},
	}
	for _, tt := range tests {
		if got := healthyStatus(tt.code, tt.statuses); got != tt.want {
			t.Errorf("healthyStatus(%d, %v) = %v, want %v", tt.code, tt.statuses, got, tt.want)
		}
	}
}

// TestHealthProbeTimeout: a probe that gets no answer fails once timeout_seconds passed,
// in words that say so.
func TestHealthProbeTimeout(t *testing.T) {
	// A listener that never accepts: connections complete in the kernel's backlog, and
	// the HTTP request gets no answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	target := "http://" + ln.Addr().String() + "/health"
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = httpProbe(target, nil, 200*time.Millisecond)(ctx)
	if want := "HTTP GET " + target + ": timed out after 200ms"; err == nil || err.Error() != want {
		t.Fatalf("probe = %v, want %q", err, want)
	}

	cmd := "sleep 30 & sleep 30"
	a := &Agent{cfg: Config{Hostname: "h"}}
	probe, err := a.commandProbeLocked(&taskRecord{Sandbox: t.TempDir(), Task: api.TaskInfo{TaskID: api.TaskID{Value: "t"}}},
		healthCheck{kind: healthCommand, timeout: 200 * time.Millisecond, command: &api.CommandInfo{Value: &cmd}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = probe(ctx)
	if want := "command timed out after 200ms"; err == nil || err.Error() != want {
		t.Fatalf("probe = %v, want %q", err, want)
	}
	if elapsed := time.Since(start); elapsed > waitTimeout {
		t.Fatalf("the timed-out command was waited for %s", elapsed)
	}
}

func TestProbeError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "refused", err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, want: "connection refused"},
		{name: "deadline", err: fmt.Errorf("dial: %w", context.DeadlineExceeded), want: "timed out after 1.5s"},
		{name: "other", err: errors.New("malformed HTTP response"), want: "malformed HTTP response"},
	}
	for _, tt := range tests {
		if got := probeError(tt.err, 1500*time.Millisecond); got != tt.want {
			t.Errorf("%s: probeError = %q, want %q", tt.name, got, tt.want)
		}
	}
}
