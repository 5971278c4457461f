package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

// checkServer is a loopback HTTP server that checks probe: it answers every request with
// code and counts the connections made to it; stop and start it to make checks fail and
// pass.
type checkServer struct {
	t     testing.TB
	addr  string
	code  atomic.Int32
	conns atomic.Int64
	srv   *http.Server
}

func newCheckServer(t testing.TB, port uint32) *checkServer {
	t.Helper()
	s := &checkServer{t: t, addr: "127.0.0.1:" + strconv.Itoa(int(port))}
	s.code.Store(http.StatusOK)
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *checkServer) start() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(s.code.Load())) }),
		ConnState: func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	go func(srv *http.Server) {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.t.Errorf("check server: %v", err)
		}
	}(s.srv)
}

func (s *checkServer) stop() {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// checkResult builds the check status a test expects: the type and, unless value is nil,
// its result (an HTTP status code, a TCP success, an exit code).
func checkResult(kind string, value any) *api.CheckStatusInfo {
	s := noCheckResult(kind)
	switch v := value.(type) {
	case int:
		if kind == api.CheckTypeHTTP {
			code := uint32(v)
			s.HTTP.StatusCode = &code
		} else {
			code := int32(v)
			s.Command.ExitCode = &code
		}
	case bool:
		s.TCP.Succeeded = &v
	}
	return s
}

// wantCheckUpdate checks a check update: TASK_RUNNING with the check status and, for a
// change of it, REASON_TASK_CHECK_STATUS_UPDATED; never a health.
func wantCheckUpdate(t *testing.T, u api.AgentCallUpdate, taskID string, reason api.StatusReason, want *api.CheckStatusInfo) {
	t.Helper()
	wantUpdate(t, u, taskID, api.TaskRunning)
	s := u.Status
	if s.Reason != reason || s.Source != api.SourceExecutor || s.Healthy != nil || !reflect.DeepEqual(s.CheckStatus, want) {
		got, _ := json.Marshal(s.CheckStatus)
		wantJSON, _ := json.Marshal(want)
		t.Fatalf("update reason %q source %s healthy %v check_status %s; want reason %q, no health, check_status %s",
			s.Reason, s.Source, s.Healthy, got, reason, wantJSON)
	}
}

// noUpdatesBut fails if the peer received an update the stream has not returned.
func noUpdatesBut(t *testing.T, updates *updateStream) {
	t.Helper()
	updates.peer.mu.Lock()
	defer updates.peer.mu.Unlock()
	for _, u := range updates.peer.updates {
		if !updates.seen[string(u.Status.UUID)] {
			t.Fatalf("unexpected update %+v", u.Status)
		}
	}
}

// TestChecks runs each kind of check against a real task whose check result flips: the
// agent reports TASK_RUNNING with no result yet, then each change of the result and
// nothing else; a failing check never kills the task, and its end carries the last
// result.
func TestChecks(t *testing.T) {
	type step struct {
		// flip changes what the check sees; nil for the first result.
		flip func()
		want *api.CheckStatusInfo
	}
	tests := []struct {
		name string
		kind string
		// check is the task's check; server, when set, serves on port for it.
		check  func(port uint32) *api.CheckInfo
		server bool
		// steps get the server (nil without) and the task's sandbox.
		steps func(t *testing.T, s *checkServer, sandbox string) []step
	}{
		{name: "http", kind: api.CheckTypeHTTP, server: true,
			check: func(port uint32) *api.CheckInfo {
				return &api.CheckInfo{Type: api.CheckTypeHTTP, HTTP: &api.CheckInfoHTTP{Port: port, Path: "/v1/health"}}
			},
			steps: func(_ *testing.T, s *checkServer, _ string) []step {
				return []step{
					{want: checkResult(api.CheckTypeHTTP, 200)},
					{flip: func() { s.code.Store(http.StatusServiceUnavailable) }, want: checkResult(api.CheckTypeHTTP, 503)},
					// No answer is no result.
					{flip: s.stop, want: checkResult(api.CheckTypeHTTP, nil)},
					{flip: func() { s.code.Store(http.StatusOK); s.start() }, want: checkResult(api.CheckTypeHTTP, 200)},
				}
			},
		},
		{name: "tcp", kind: api.CheckTypeTCP, server: true,
			check: func(port uint32) *api.CheckInfo {
				return &api.CheckInfo{Type: api.CheckTypeTCP, TCP: &api.CheckInfoTCP{Port: port}}
			},
			steps: func(_ *testing.T, s *checkServer, _ string) []step {
				return []step{
					{want: checkResult(api.CheckTypeTCP, true)},
					{flip: s.stop, want: checkResult(api.CheckTypeTCP, false)},
					{flip: s.start, want: checkResult(api.CheckTypeTCP, true)},
				}
			},
		},
		{name: "command", kind: api.CheckTypeCommand,
			check: func(port uint32) *api.CheckInfo {
				// Runs in the sandbox with the task's environment.
				cmd := `echo >> checks; test "$PORT0" = ` + strconv.Itoa(int(port)) + ` || exit 9; if test -e sick; then exit 3; fi`
				return &api.CheckInfo{Type: api.CheckTypeCommand, Command: &api.CheckInfoCommand{Command: api.CommandInfo{Value: &cmd}}}
			},
			steps: func(t *testing.T, _ *checkServer, sandbox string) []step {
				return []step{
					{want: checkResult(api.CheckTypeCommand, 0)},
					{flip: func() { touch(t, sandbox, "sick") }, want: checkResult(api.CheckTypeCommand, 3)},
					{flip: func() {
						if err := os.Remove(filepath.Join(sandbox, "sick")); err != nil {
							t.Error(err)
						}
					}, want: checkResult(api.CheckTypeCommand, 0)},
				}
			},
		},
	}
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			var server *checkServer
			if tt.server {
				server = newCheckServer(t, port)
			}
			taskID := "check-" + tt.name
			ev := launchEvent(taskID, "sleep 60", portsResource(api.ValueRange{Begin: uint64(port), End: uint64(port)}))
			check := tt.check(port)
			check.DelaySeconds, check.IntervalSeconds, check.TimeoutSeconds = seconds(0), seconds(0.1), seconds(5)
			ev.Launch.Task.Check = check
			peer.send(ev)

			running := updates.next(t)
			wantCheckUpdate(t, running, taskID, "", checkResult(tt.kind, nil))
			peer.ack(running)
			sandbox := a.Tasks()[0].Sandbox
			var last *api.CheckStatusInfo
			for i, st := range tt.steps(t, server, sandbox) {
				if st.flip != nil {
					st.flip()
				}
				u := updates.next(t)
				wantCheckUpdate(t, u, taskID, api.ReasonTaskCheckStatusUpdated, st.want)
				peer.ack(u)
				last = st.want
				if i == 1 {
					// A failing check changes nothing but the result: the task runs on.
					if tasks := a.Tasks(); len(tasks) != 1 || tasks[0].State != api.TaskRunning {
						t.Fatalf("tasks = %+v, want the task running", tasks)
					}
				}
			}

			// A few more checks with the same result report nothing.
			probes := func() int64 {
				if server != nil {
					return server.conns.Load()
				}
				b, _ := os.ReadFile(filepath.Join(sandbox, "checks"))
				return int64(strings.Count(string(b), "\n"))
			}
			seen := probes()
			waitUntil(t, "three more checks", func() bool { return probes() >= seen+3 })
			waitUntil(t, "the acknowledgements", func() bool {
				tasks := a.Tasks()
				return len(tasks) == 1 && tasks[0].PendingUpdates == 0
			})
			noUpdatesBut(t, updates)
			if tasks := a.Tasks(); tasks[0].State != api.TaskRunning || tasks[0].Healthy != nil {
				t.Fatalf("tasks = %+v, want the task running without health", tasks)
			}

			peer.send(killEvent(taskID, time.Second))
			killed := updates.next(t)
			wantUpdate(t, killed, taskID, api.TaskKilled)
			if !reflect.DeepEqual(killed.Status.CheckStatus, last) {
				t.Fatalf("TASK_KILLED = %+v, want the last check status", killed.Status)
			}
			peer.ack(killed)
			waitUntil(t, "the killed task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
		})
	}
}

// TestCheckWithHealthCheck: a task with both reports each through its own updates, the
// health updates carrying the latest check status, the check updates no health.
func TestCheckWithHealthCheck(t *testing.T) {
	peer := newProtocolPeer(t)
	a := TestAgent(t, peer.masters)
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	ev := launchEvent("both", "sleep 60")
	check := "test ! -e sick"
	ev.Launch.Task.Check = &api.CheckInfo{Type: api.CheckTypeCommand, Command: &api.CheckInfoCommand{Command: api.CommandInfo{Value: &check}},
		DelaySeconds: seconds(0), IntervalSeconds: seconds(0.1), TimeoutSeconds: seconds(5)}
	// The health check waits for the file ready, so the check reports first.
	health := "test -e ready"
	ev.Launch.Task.HealthCheck = fastHealthCheck(healthCommand, 1)
	ev.Launch.Task.HealthCheck.Command = &api.CommandInfo{Value: &health}
	peer.send(ev)

	running := updates.next(t)
	wantCheckUpdate(t, running, "both", "", checkResult(api.CheckTypeCommand, nil))
	peer.ack(running)
	passed := updates.next(t)
	wantCheckUpdate(t, passed, "both", api.ReasonTaskCheckStatusUpdated, checkResult(api.CheckTypeCommand, 0))
	peer.ack(passed)

	touch(t, a.Tasks()[0].Sandbox, "ready")
	healthy := updates.next(t)
	wantHealth(t, healthy, "both", true, "")
	if !reflect.DeepEqual(healthy.Status.CheckStatus, checkResult(api.CheckTypeCommand, 0)) {
		t.Fatalf("health update check_status = %+v, want the last check result", healthy.Status.CheckStatus)
	}
	peer.ack(healthy)

	touch(t, a.Tasks()[0].Sandbox, "sick")
	failed := updates.next(t)
	wantCheckUpdate(t, failed, "both", api.ReasonTaskCheckStatusUpdated, checkResult(api.CheckTypeCommand, 1))
	peer.ack(failed)
	peer.send(killEvent("both", time.Second))
	killed := updates.next(t)
	wantUpdate(t, killed, "both", api.TaskKilled)
	peer.ack(killed)
	waitUntil(t, "the killed task to be forgotten", func() bool { return len(a.Tasks()) == 0 })
}

// TestCheckAcrossRestart: a check update left unacknowledged survives an agent restart and
// is redelivered with its uuid; the restarted agent checks the recovered task again,
// knowing its last result (no repeated update), and reports the next change.
func TestCheckAcrossRestart(t *testing.T) {
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	first := TestAgent(t, peer.masters, withWorkDir(workDir))
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	ev := launchEvent("survivor", "sleep 60")
	cmd := "echo >> checks; test ! -e sick"
	ev.Launch.Task.Check = &api.CheckInfo{Type: api.CheckTypeCommand, Command: &api.CheckInfoCommand{Command: api.CommandInfo{Value: &cmd}},
		DelaySeconds: seconds(0), IntervalSeconds: seconds(0.1), TimeoutSeconds: seconds(5)}
	peer.send(ev)
	running := updates.next(t)
	wantCheckUpdate(t, running, "survivor", "", checkResult(api.CheckTypeCommand, nil))
	peer.ack(running)
	passed := updates.next(t)
	wantCheckUpdate(t, passed, "survivor", api.ReasonTaskCheckStatusUpdated, checkResult(api.CheckTypeCommand, 0))
	sandbox := first.Tasks()[0].Sandbox
	shutdown(t, first, false)
	left := readCheckpoint(t, workDir)
	if len(left) != 1 || !reflect.DeepEqual(left[0].record.CheckStatus, checkResult(api.CheckTypeCommand, 0)) || len(left[0].updates) != 1 {
		t.Fatalf("checkpoint after shutdown = %+v, want the task with its last check result and the unacknowledged check update", left)
	}

	second := TestAgent(t, peer.masters, withWorkDir(workDir))
	peer.nextSubscribe()
	redelivered := peer.nextUpdate()
	for string(redelivered.Status.UUID) == string(running.Status.UUID) {
		redelivered = peer.nextUpdate()
	}
	if !reflect.DeepEqual(redelivered, passed) {
		t.Fatalf("after the restart the agent sent %+v, want the unacknowledged check update", redelivered.Status)
	}
	peer.ack(redelivered)
	countChecks := func() int {
		b, _ := os.ReadFile(filepath.Join(sandbox, "checks"))
		return strings.Count(string(b), "\n")
	}
	seen := countChecks()
	waitUntil(t, "the recovered task's checks", func() bool { return countChecks() >= seen+3 })
	waitUntil(t, "the acknowledgement", func() bool {
		tasks := second.Tasks()
		return len(tasks) == 1 && tasks[0].PendingUpdates == 0
	})
	noUpdatesBut(t, updates)

	touch(t, sandbox, "sick")
	failed := updates.next(t)
	wantCheckUpdate(t, failed, "survivor", api.ReasonTaskCheckStatusUpdated, checkResult(api.CheckTypeCommand, 1))
	peer.ack(failed)
	peer.send(killEvent("survivor", time.Second))
	killed := updates.next(t)
	wantUpdate(t, killed, "survivor", api.TaskKilled)
	peer.ack(killed)
	waitUntil(t, "the killed task to be forgotten", func() bool { return len(second.Tasks()) == 0 })
}

// TestCheckProbeNoResult: a check that does not complete has no result: an HTTP check
// without an answer in time, a command that times out.
func TestCheckProbeNoResult(t *testing.T) {
	// A listener that never accepts: connections complete in the kernel's backlog, and
	// the HTTP request gets no answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	cmd := "sleep 30 & sleep 30"
	a := &Agent{cfg: Config{Hostname: "h"}}
	rec := &taskRecord{Sandbox: t.TempDir(), Task: api.TaskInfo{TaskID: api.TaskID{Value: "t"}}, Container: &isolate.State{}}
	for _, check := range []taskCheck{
		{kind: api.CheckTypeHTTP, port: port, path: "/", timeout: 200 * time.Millisecond},
		{kind: api.CheckTypeCommand, command: &api.CommandInfo{Value: &cmd}, timeout: 200 * time.Millisecond},
	} {
		t.Run(check.kind, func(t *testing.T) {
			probe, err := a.checkProbeLocked(rec, check)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), check.timeout)
			defer cancel()
			start := time.Now()
			if got, want := probe(ctx), checkResult(check.kind, nil); !reflect.DeepEqual(got, want) {
				t.Fatalf("probe = %+v, want %+v", got, want)
			}
			if elapsed := time.Since(start); elapsed > waitTimeout {
				t.Fatalf("the timed-out check was waited for %s", elapsed)
			}
		})
	}
}

// TestInvalidCheckAtLaunch: a task with a check the agent cannot run is refused.
func TestInvalidCheckAtLaunch(t *testing.T) {
	cmd := "sleep 60"
	a := &Agent{cfg: Config{Hostname: "h"}}
	_, err := a.launchSpecLocked(&taskRecord{Task: api.TaskInfo{Command: &api.CommandInfo{Value: &cmd},
		Check: &api.CheckInfo{Type: api.CheckTypeTCP, TCP: &api.CheckInfoTCP{Port: 80}, IntervalSeconds: seconds(0)}}})
	if want := "check.interval_seconds: must be positive"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestParseCheck(t *testing.T) {
	shell := "true"
	empty := ""
	no := false
	tests := []struct {
		name    string
		check   api.CheckInfo
		want    taskCheck
		wantErr string
	}{
		{name: "mesos defaults", check: api.CheckInfo{Type: "TCP", TCP: &api.CheckInfoTCP{Port: 8080}},
			want: taskCheck{kind: "TCP", delay: 15 * time.Second, interval: 10 * time.Second, timeout: 20 * time.Second, port: 8080}},
		{name: "http", check: api.CheckInfo{Type: "HTTP", HTTP: &api.CheckInfoHTTP{Port: 80, Path: "/v1/health"},
			DelaySeconds: seconds(0), IntervalSeconds: seconds(0.5), TimeoutSeconds: seconds(0)},
			want: taskCheck{kind: "HTTP", interval: 500 * time.Millisecond, port: 80, path: "/v1/health"}},
		{name: "http path defaults to /", check: api.CheckInfo{Type: "HTTP", HTTP: &api.CheckInfoHTTP{Port: 1}},
			want: taskCheck{kind: "HTTP", delay: 15 * time.Second, interval: 10 * time.Second, timeout: 20 * time.Second, port: 1, path: "/"}},
		{name: "command", check: api.CheckInfo{Type: "COMMAND", Command: &api.CheckInfoCommand{Command: api.CommandInfo{Value: &shell}}},
			want: taskCheck{kind: "COMMAND", delay: 15 * time.Second, interval: 10 * time.Second, timeout: 20 * time.Second, command: &api.CommandInfo{Value: &shell}}},

		{name: "no type", check: api.CheckInfo{TCP: &api.CheckInfoTCP{Port: 1}}, wantErr: "check.type: missing; want COMMAND, HTTP or TCP"},
		{name: "unknown type", check: api.CheckInfo{Type: "UNKNOWN"}, wantErr: `check.type: "UNKNOWN" is not COMMAND, HTTP or TCP`},
		{name: "http without http", check: api.CheckInfo{Type: "HTTP"}, wantErr: "check.http: required for an HTTP check"},
		{name: "http port 0", check: api.CheckInfo{Type: "HTTP", HTTP: &api.CheckInfoHTTP{}}, wantErr: "check.http.port: 0 is not a port (1-65535)"},
		{name: "relative path", check: api.CheckInfo{Type: "HTTP", HTTP: &api.CheckInfoHTTP{Port: 1, Path: "health"}}, wantErr: `check.http.path: "health" does not start with /`},
		{name: "control character in path", check: api.CheckInfo{Type: "HTTP", HTTP: &api.CheckInfoHTTP{Port: 1, Path: "/a\nb"}}, wantErr: `check.http.path: "/a\nb" is not a URL path`},
		{name: "tcp without tcp", check: api.CheckInfo{Type: "TCP"}, wantErr: "check.tcp: required for a TCP check"},
		{name: "tcp port too big", check: api.CheckInfo{Type: "TCP", TCP: &api.CheckInfoTCP{Port: 65536}}, wantErr: "check.tcp.port: 65536 is not a port (1-65535)"},
		{name: "command without command", check: api.CheckInfo{Type: "COMMAND"}, wantErr: "check.command: required for a COMMAND check"},
		{name: "empty shell command", check: api.CheckInfo{Type: "COMMAND", Command: &api.CheckInfoCommand{Command: api.CommandInfo{Value: &empty}}},
			wantErr: "check.command.command.value: empty shell command"},
		{name: "no executable", check: api.CheckInfo{Type: "COMMAND", Command: &api.CheckInfoCommand{Command: api.CommandInfo{Shell: &no}}},
			wantErr: "check.command.command.value: no executable"},
		{name: "uris", check: api.CheckInfo{Type: "COMMAND", Command: &api.CheckInfoCommand{Command: api.CommandInfo{Value: &shell, URIs: []api.CommandURI{{Value: "http://x/y"}}}}},
			wantErr: "check.command.command.uris: not supported; a check fetches nothing"},
		{name: "negative delay", check: api.CheckInfo{Type: "TCP", TCP: &api.CheckInfoTCP{Port: 1}, DelaySeconds: seconds(-1)}, wantErr: "check.delay_seconds: -1 is out of range (0-31536000)"},
		{name: "huge timeout", check: api.CheckInfo{Type: "TCP", TCP: &api.CheckInfoTCP{Port: 1}, TimeoutSeconds: seconds(1e300)}, wantErr: "check.timeout_seconds: 1e+300 is out of range (0-31536000)"},
		{name: "zero interval", check: api.CheckInfo{Type: "TCP", TCP: &api.CheckInfoTCP{Port: 1}, IntervalSeconds: seconds(0)}, wantErr: "check.interval_seconds: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCheck(&tt.check)
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

// FuzzParseCheck feeds checks as frameworks send them (JSON): never a panic, and what is
// accepted can be run.
func FuzzParseCheck(f *testing.F) {
	for _, seed := range []string{
		`{"type":"HTTP","http":{"port":8080,"path":"/v1/health"},"interval_seconds":30,"timeout_seconds":20,"delay_seconds":15}`,
		`{"type":"TCP","tcp":{"port":31000},"delay_seconds":0}`,
		`{"type":"COMMAND","command":{"command":{"value":"test -e ready","environment":{"variables":[{"name":"A","value":"b"}]}}}}`,
		`{"type":"COMMAND","command":{"command":{"shell":false,"value":"test","arguments":["test","-e","x"]}}}`,
		`{"type":"HTTP","http":{"port":0}}`,
		`{"interval_seconds":-1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c api.CheckInfo
		if json.Unmarshal(data, &c) != nil {
			return
		}
		check, err := parseCheck(&c)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "check.") {
				t.Fatalf("error %q does not name the field", err)
			}
			return
		}
		if check.interval <= 0 || check.delay < 0 || check.timeout < 0 {
			t.Fatalf("accepted durations %+v", check)
		}
		switch check.kind {
		case api.CheckTypeHTTP, api.CheckTypeTCP:
			if check.port == 0 || check.port > maxPort {
				t.Fatalf("accepted port %d", check.port)
			}
		case api.CheckTypeCommand:
			if check.command == nil || check.command.Value == nil || *check.command.Value == "" {
				t.Fatalf("accepted command %+v", check.command)
			}
		default:
			t.Fatalf("accepted type %q", check.kind)
		}
	})
}

// TestNoCheckResultMarshals: a check status without a result is the type with an empty
// message, as Mesos sends it.
func TestNoCheckResultMarshals(t *testing.T) {
	for kind, want := range map[string]string{
		api.CheckTypeHTTP:    `{"type":"HTTP","http":{}}`,
		api.CheckTypeTCP:     `{"type":"TCP","tcp":{}}`,
		api.CheckTypeCommand: `{"type":"COMMAND","command":{}}`,
	} {
		if b, err := json.Marshal(noCheckResult(kind)); err != nil || string(b) != want {
			t.Errorf("%s: %s, %v; want %s", kind, b, err, want)
		}
	}
	if b, _ := json.Marshal(checkResult(api.CheckTypeTCP, false)); string(b) != `{"type":"TCP","tcp":{"succeeded":false}}` {
		t.Errorf("TCP failure = %s", b)
	}
}
