package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// argPrinters makes a directory of commands that print their name and arguments as
// "<name><arg1><arg2>…", named like the words the quoting treats specially in command
// position, and returns a PATH that finds them before anything else.
func argPrinters(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"printargs", "FOO=bar", "if", "dd"} {
		script := "#!/bin/sh\nprintf '<%s>' \"${0##*/}\" \"$@\"\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir + ":/usr/bin:/bin"
}

// runShell runs command with /bin/sh -c, as the agent runs shell tasks.
func runShell(t testing.TB, path, command string) string {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = []string{"PATH=" + path, "HOME=/nonexistent", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", command, err, out)
	}
	return string(out)
}

func TestShellJoin(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"printargs", "hello"}, "printargs hello"},
		{[]string{"printargs", "hello world"}, "printargs 'hello world'"},
		{[]string{"printargs", "it's"}, `printargs 'it'\''s'`},
		{[]string{"printargs", "$HOME", "${HOME}", "$(id)", "`id`"}, "printargs '$HOME' '${HOME}' '$(id)' '`id`'"},
		{[]string{"printargs", ""}, "printargs ''"},
		{[]string{"printargs", `"double"`, `back\slash`}, `printargs '"double"' 'back\slash'`},
		{[]string{"printargs", "a;b", "a|b", "a&b", "(x)", "#c", "a*", "~", "!x", "a b\tc\nd"}, "printargs 'a;b' 'a|b' 'a&b' '(x)' '#c' 'a*' '~' '!x' 'a b\tc\nd'"},
		{[]string{"printargs", "--flag=v", "/p/a.b", "u@h:1,2", "50%", "+x", "if"}, "printargs --flag=v /p/a.b u@h:1,2 50% +x if"},
		{[]string{"printargs", "héllo"}, "printargs 'héllo'"},
		{[]string{"dd", "if=/dev/null", "of=x"}, "dd if=/dev/null of=x"},
		{[]string{"FOO=bar", "x"}, "'FOO=bar' x"},
		{[]string{"if", "x"}, "'if' x"},
	}
	path := argPrinters(t)
	for _, tt := range tests {
		got := shellJoin(tt.args)
		if got != tt.want {
			t.Errorf("shellJoin(%q) = %q, want %q", tt.args, got, tt.want)
			continue
		}
		want := "<" + strings.Join(tt.args, "><") + ">"
		if out := runShell(t, path, got); out != want {
			t.Errorf("sh -c %q printed %q, want %q", got, out, want)
		}
	}
}

// FuzzShellJoin checks with a real shell that quoted arguments arrive unchanged.
func FuzzShellJoin(f *testing.F) {
	for _, seed := range [][2]string{{"a b", "it's"}, {"$x", "`y`"}, {"", "\n"}, {"'", "\\'"}, {"\xff", "~"}} {
		f.Add(seed[0], seed[1])
	}
	path := argPrinters(f)
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.ContainsRune(a+b, 0) {
			t.Skip("arguments cannot hold NUL")
		}
		joined := shellJoin([]string{"printargs", a, b})
		if out, want := runShell(t, path, joined), "<printargs><"+a+"><"+b+">"; out != want {
			t.Fatalf("sh -c %q printed %q, want %q", joined, out, want)
		}
	})
}

func TestNewTaskInfo(t *testing.T) {
	shellOff := false
	tests := []struct {
		name     string
		opts     taskRunOptions
		args     []string
		want     api.TaskInfo
		wantNeed need
	}{
		{
			name: "shell",
			opts: taskRunOptions{cpus: 0.1, mem: 32, role: "*", shell: true, env: []string{"A=b=c", "EMPTY="}},
			args: []string{"/usr/bin/echo", "hello world"},
			want: api.TaskInfo{Name: "echo", TaskID: api.TaskID{Value: "echo-x1"}, Command: &api.CommandInfo{
				Value:       ptr("/usr/bin/echo 'hello world'"),
				Environment: &api.Environment{Variables: []api.EnvironmentVariable{{Name: "A", Value: "b=c"}, {Name: "EMPTY"}}},
			}},
			wantNeed: need{cpus: 0.1, mem: 32},
		},
		{
			name: "no shell, named",
			opts: taskRunOptions{name: "probe", cpus: 1, mem: 0, disk: 10, ports: 2, role: "web", shell: false},
			args: []string{"ls", "-l", "a b"},
			want: api.TaskInfo{Name: "probe", TaskID: api.TaskID{Value: "probe-x1"}, Command: &api.CommandInfo{
				Shell: &shellOff, Value: ptr("ls"), Arguments: []string{"ls", "-l", "a b"},
			}},
			wantNeed: need{cpus: 1, disk: 10, ports: 2},
		},
		{
			name: "odd command name",
			opts: taskRunOptions{cpus: 1, role: "*", shell: true},
			args: []string{"./my prog+1"},
			want: api.TaskInfo{Name: "my-prog-1", TaskID: api.TaskID{Value: "my-prog-1-x1"}, Command: &api.CommandInfo{
				Value: ptr("'./my prog+1'"),
			}},
			wantNeed: need{cpus: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotNeed, err := newTaskInfo(tt.opts, tt.args, "x1")
			if err != nil {
				t.Fatalf("newTaskInfo: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) || gotNeed != tt.wantNeed {
				t.Fatalf("got %s %+v\nwant %s %+v", jsonOf(t, got), gotNeed, jsonOf(t, tt.want), tt.wantNeed)
			}
		})
	}
}

func TestCommandName(t *testing.T) {
	for in, want := range map[string]string{"echo": "echo", "/bin/sh": "sh", "a/b c": "b-c", "..": "task", "/": "task", "ñ": "task", "x.y_z-1": "x.y_z-1"} {
		if got := commandName(in); got != want {
			t.Errorf("commandName(%q) = %q, want %q", in, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func scalarRes(name string, v float64, role string) api.Resource {
	return api.Resource{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: v}, Role: role}
}

func portsRes(role string, ranges ...api.ValueRange) api.Resource {
	return api.Resource{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: ranges}, Role: role}
}

func TestFit(t *testing.T) {
	tests := []struct {
		name      string
		offered   []api.Resource
		need      need
		want      []api.Resource
		wantLacks []lack
	}{
		{
			name:    "one role",
			offered: []api.Resource{scalarRes("cpus", 2, "*"), scalarRes("mem", 1024, "*"), scalarRes("disk", 100, "*")},
			need:    need{cpus: 0.1, mem: 32},
			want:    []api.Resource{scalarRes("cpus", 0.1, "*"), scalarRes("mem", 32, "*")},
		},
		{
			name:    "split across roles",
			offered: []api.Resource{scalarRes("cpus", 0.25, "web"), scalarRes("cpus", 1, "*"), scalarRes("mem", 16, "web"), scalarRes("mem", 16, "*")},
			need:    need{cpus: 0.5, mem: 32},
			want:    []api.Resource{scalarRes("cpus", 0.25, "web"), scalarRes("cpus", 0.25, "*"), scalarRes("mem", 16, "web"), scalarRes("mem", 16, "*")},
		},
		{
			name:    "exact amounts in thousandths",
			offered: []api.Resource{scalarRes("cpus", 0.1, "*"), scalarRes("cpus", 0.2, "*"), scalarRes("mem", 32, "*")},
			need:    need{cpus: 0.3, mem: 32},
			want:    []api.Resource{scalarRes("cpus", 0.1, "*"), scalarRes("cpus", 0.2, "*"), scalarRes("mem", 32, "*")},
		},
		{
			name:    "ports across ranges and resources",
			offered: []api.Resource{scalarRes("cpus", 1, "*"), portsRes("*", api.ValueRange{Begin: 31000, End: 31001}, api.ValueRange{Begin: 31010, End: 31020}), portsRes("web", api.ValueRange{Begin: 40000, End: 40005})},
			need:    need{cpus: 1, ports: 5},
			want:    []api.Resource{scalarRes("cpus", 1, "*"), portsRes("*", api.ValueRange{Begin: 31000, End: 31001}, api.ValueRange{Begin: 31010, End: 31012})},
		},
		{
			name:    "ports from a second resource",
			offered: []api.Resource{scalarRes("cpus", 1, "*"), portsRes("*", api.ValueRange{Begin: 31000, End: 31000}), portsRes("web", api.ValueRange{Begin: 40000, End: 40005})},
			need:    need{cpus: 1, ports: 2},
			want:    []api.Resource{scalarRes("cpus", 1, "*"), portsRes("*", api.ValueRange{Begin: 31000, End: 31000}), portsRes("web", api.ValueRange{Begin: 40000, End: 40000})},
		},
		{
			name:      "lacks mem",
			offered:   []api.Resource{scalarRes("cpus", 2, "*"), scalarRes("mem", 16, "*")},
			need:      need{cpus: 0.1, mem: 32},
			wantLacks: []lack{{"mem", 16, 32}},
		},
		{
			name:      "lacks everything",
			offered:   []api.Resource{scalarRes("cpus", 0.05, "*"), portsRes("*", api.ValueRange{Begin: 1, End: 1}, api.ValueRange{Begin: 9, End: 2})},
			need:      need{cpus: 0.1, mem: 32, disk: 1, ports: 2},
			wantLacks: []lack{{"cpus", 0.05, 0.1}, {"mem", 0, 32}, {"disk", 0, 1}, {"ports", 1, 2}},
		},
		{
			name:    "huge port range",
			offered: []api.Resource{scalarRes("cpus", 1, "*"), portsRes("*", api.ValueRange{Begin: 0, End: ^uint64(0)})},
			need:    need{cpus: 1, ports: 3},
			want:    []api.Resource{scalarRes("cpus", 1, "*"), portsRes("*", api.ValueRange{Begin: 0, End: 2})},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, lacks := fit(tt.offered, tt.need)
			if !reflect.DeepEqual(got, tt.want) || !reflect.DeepEqual(lacks, tt.wantLacks) {
				t.Fatalf("fit = %s, %+v\nwant %s, %+v", jsonOf(t, got), lacks, jsonOf(t, tt.want), tt.wantLacks)
			}
		})
	}
}

func TestLackSummary(t *testing.T) {
	tests := []struct {
		byAgent map[string][]lack
		want    string
	}{
		{map[string][]lack{"a1": {{"mem", 16, 32}}}, "offers from 1 agent lack mem (have 16, need 32)"},
		{map[string][]lack{"a1": {{"mem", 16, 32}}, "a2": {{"mem", 24, 32}, {"cpus", 0.05, 0.1}}, "a3": {{"ports", 0, 2}}},
			"offers from 1 agent lack cpus (have 0.05, need 0.1); offers from 2 agents lack mem (have at most 24, need 32); offers from 1 agent lack ports (have 0, need 2)"},
	}
	for _, tt := range tests {
		if got := lackSummary(tt.byAgent); got != tt.want {
			t.Errorf("lackSummary(%v) = %q, want %q", tt.byAgent, got, tt.want)
		}
	}
}

// fakeScheduler speaks the scheduler API literally, as a test fixture: SUBSCRIBE gets a
// stream of whatever the test pushes; later calls need the stream id, are recorded and
// passed to react, which may push events. TEARDOWN ends the stream.
type fakeScheduler struct {
	srv   *httptest.Server
	push  chan string
	react func(api.Call)

	mu        sync.Mutex
	subscribe *api.Call
	calls     []string
	ended     chan struct{}
}

func newFakeScheduler(t testing.TB, react func(*fakeScheduler, api.Call)) *fakeScheduler {
	t.Helper()
	s := &fakeScheduler{push: make(chan string, 64), ended: make(chan struct{})}
	s.react = func(c api.Call) { react(s, c) }
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeScheduler) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var call api.Call
	if r.URL.Path != api.SchedulerPath || json.Unmarshal(body, &call) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if call.Type == api.CallSubscribe {
		s.mu.Lock()
		s.subscribe = &call
		s.mu.Unlock()
		w.Header().Set(api.StreamIDHeader, "s1")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case ev := <-s.push:
				_, _ = w.Write(api.AppendRecord(nil, []byte(ev)))
				w.(http.Flusher).Flush()
			case <-s.ended:
				return
			case <-r.Context().Done():
				return
			}
		}
	}
	if r.Header.Get(api.StreamIDHeader) != "s1" {
		http.Error(w, "wrong stream id", http.StatusForbidden)
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, string(body))
	if call.Type == api.CallTeardown {
		close(s.ended)
	}
	s.mu.Unlock()
	s.react(call)
	w.WriteHeader(http.StatusAccepted)
}

func (s *fakeScheduler) recorded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

const (
	subscribedFW1 = `{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"fw-1"},"heartbeat_interval_seconds":15}}`
	// Agent a1's offer is too small; a2's fits, its ports spread over two ranges.
	twoOffers = `{"type":"OFFERS","offers":{"offers":[
 {"id":{"value":"o1"},"framework_id":{"value":"fw-1"},"agent_id":{"value":"a1"},"hostname":"h1",
  "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"role":"*"},{"name":"mem","type":"SCALAR","scalar":{"value":16},"role":"*"}]},
 {"id":{"value":"o2"},"framework_id":{"value":"fw-1"},"agent_id":{"value":"a2"},"hostname":"h2",
  "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":2},"role":"*"},{"name":"mem","type":"SCALAR","scalar":{"value":1024},"role":"*"},
   {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000},{"begin":31005,"end":31010}]},"role":"*"}]}]}}`
)

func update(state, uuid, extra string) string {
	u := ""
	if uuid != "" {
		u = `,"uuid":"` + uuid + `"`
	}
	return `{"type":"UPDATE","update":{"status":{"task_id":{"value":"printargs-0001"},"state":"` + state + `","agent_id":{"value":"a2"},"source":"SOURCE_EXECUTOR"` + u + extra + `}}}`
}

func ack(uuid string) string {
	return `{"framework_id":{"value":"fw-1"},"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a2"},"task_id":{"value":"printargs-0001"},"uuid":"` + uuid + `"}}`
}

const (
	acceptO2 = `{"framework_id":{"value":"fw-1"},"type":"ACCEPT","accept":{"offer_ids":[{"value":"o2"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[` +
		`{"name":"printargs","task_id":{"value":"printargs-0001"},"agent_id":{"value":"a2"},"resources":[` +
		`{"name":"cpus","type":"SCALAR","scalar":{"value":0.1},"role":"*"},{"name":"mem","type":"SCALAR","scalar":{"value":32},"role":"*"},` +
		`{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31000},{"begin":31005,"end":31005}]},"role":"*"}],` +
		`"command":{"environment":{"variables":[{"name":"GREETING","value":"a b"}]},"value":"printargs 'hello world' '$HOME'"}}]}}],"filters":{"refuse_seconds":5}}}`
	suppressAll = `{"framework_id":{"value":"fw-1"},"type":"SUPPRESS","suppress":{}}`
	declineO1   = `{"framework_id":{"value":"fw-1"},"type":"DECLINE","decline":{"offer_ids":[{"value":"o1"}],"filters":{"refuse_seconds":5}}}`
	teardown    = `{"framework_id":{"value":"fw-1"},"type":"TEARDOWN"}`
)

var taskRunArgs = []string{"task", "run", "--ports", "2", "--env", "GREETING=a b", "--", "printargs", "hello world", "$HOME"}

func TestTaskRun(t *testing.T) {
	tests := []struct {
		name      string
		react     func(*fakeScheduler, api.Call, *testApp)
		wantCode  int
		wantOut   string
		wantErr   string
		wantCalls []string
	}{
		{
			name: "finished",
			react: func(s *fakeScheduler, c api.Call, _ *testApp) {
				if c.Type == api.CallAccept {
					s.push <- update("TASK_STARTING", "AQ==", "")
					s.push <- update("TASK_RUNNING", "Ag==", "")
					s.push <- update("TASK_RUNNING", "Ag==", "") // delivered twice: printed once, acknowledged twice
					s.push <- update("TASK_FINISHED", "Aw==", `,"message":"Command exited with status 0","labels":{"labels":[{"key":"sandbox_directory","value":"/var/lib/atoll/agent/sandboxes/x"}]}`)
				}
			},
			wantCode: 0,
			wantOut: `waiting for an offer with cpus:0.1;mem:32;ports:2 …
launching task printargs-0001 on h2
TASK_STARTING
TASK_RUNNING on h2 (agent a2)
TASK_FINISHED: Command exited with status 0
stdout: h2:/var/lib/atoll/agent/sandboxes/x/stdout
stderr: h2:/var/lib/atoll/agent/sandboxes/x/stderr
`,
			wantCalls: []string{acceptO2, suppressAll, declineO1, ack("AQ=="), ack("Ag=="), ack("Ag=="), ack("Aw=="), teardown},
		},
		{
			name: "failed",
			react: func(s *fakeScheduler, c api.Call, _ *testApp) {
				if c.Type == api.CallAccept {
					s.push <- update("TASK_RUNNING", "AQ==", "")
					s.push <- update("TASK_FAILED", "Ag==", `,"message":"Command exited with status 3","reason":"REASON_COMMAND_EXECUTOR_FAILED"`)
				}
			},
			wantCode: 1,
			wantOut: `waiting for an offer with cpus:0.1;mem:32;ports:2 …
launching task printargs-0001 on h2
TASK_RUNNING on h2 (agent a2)
TASK_FAILED: Command exited with status 3 (REASON_COMMAND_EXECUTOR_FAILED)
task printargs-0001 ran on h2 (agent a2); its stdout and stderr are in its sandbox there
`,
			wantCalls: []string{acceptO2, suppressAll, declineO1, ack("AQ=="), ack("Ag=="), teardown},
		},
		{
			name: "rejected by the master",
			react: func(s *fakeScheduler, c api.Call, _ *testApp) {
				if c.Type == api.CallAccept {
					s.push <- `{"type":"UPDATE","update":{"status":{"task_id":{"value":"printargs-0001"},"state":"TASK_ERROR","source":"SOURCE_MASTER","reason":"REASON_TASK_INVALID","message":"ports not offered"}}}`
				}
			},
			wantCode: 1,
			wantOut: `waiting for an offer with cpus:0.1;mem:32;ports:2 …
launching task printargs-0001 on h2
TASK_ERROR: ports not offered (REASON_TASK_INVALID)
`,
			wantCalls: []string{acceptO2, suppressAll, declineO1, teardown},
		},
		{
			name: "interrupted while running",
			react: func(s *fakeScheduler, c api.Call, a *testApp) {
				switch c.Type {
				case api.CallAccept:
					s.push <- update("TASK_RUNNING", "AQ==", "")
				case api.CallAcknowledge:
					if string(c.Acknowledge.UUID) == "\x01" {
						a.interrupt()
					}
				case api.CallKill:
					s.push <- update("TASK_KILLED", "Ag==", `,"message":"Command terminated with signal Terminated"`)
				}
			},
			wantCode: 1,
			wantOut: `waiting for an offer with cpus:0.1;mem:32;ports:2 …
launching task printargs-0001 on h2
TASK_RUNNING on h2 (agent a2)
interrupted: killing task printargs-0001 …
TASK_KILLED: Command terminated with signal Terminated
task printargs-0001 ran on h2 (agent a2); its stdout and stderr are in its sandbox there
`,
			wantCalls: []string{acceptO2, suppressAll, declineO1, ack("AQ=="),
				`{"framework_id":{"value":"fw-1"},"type":"KILL","kill":{"task_id":{"value":"printargs-0001"},"agent_id":{"value":"a2"}}}`,
				ack("Ag=="), teardown},
		},
		{
			name: "subscription ended by the master",
			react: func(s *fakeScheduler, c api.Call, _ *testApp) {
				if c.Type == api.CallAccept {
					s.push <- `{"type":"ERROR","error":{"message":"framework removed"}}`
				}
			},
			wantCode: 1,
			wantOut: `waiting for an offer with cpus:0.1;mem:32;ports:2 …
launching task printargs-0001 on h2
`,
			wantErr:   "atoll: the master ended the subscription: framework removed\n",
			wantCalls: []string{acceptO2, suppressAll, declineO1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestApp(t, nil)
			a.waitReport = time.Hour
			master := newFakeScheduler(t, func(s *fakeScheduler, c api.Call) { tt.react(s, c, a) })
			master.push <- subscribedFW1
			master.push <- twoOffers
			a.getenv = func(k string) string { return map[string]string{addrEnv: master.srv.URL}[k] }

			if code := a.runCLI(t, taskRunArgs...); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d", code, tt.wantCode)
			}
			if got := a.stdout.String(); got != tt.wantOut {
				t.Fatalf("stdout:\n%s\nwant:\n%s", got, tt.wantOut)
			}
			if got := a.stderr.String(); got != tt.wantErr {
				t.Fatalf("stderr = %q, want %q", got, tt.wantErr)
			}
			if got := master.recorded(); !reflect.DeepEqual(got, tt.wantCalls) {
				t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantCalls, "\n"))
			}
			master.mu.Lock()
			sub := master.subscribe.Subscribe.FrameworkInfo
			master.mu.Unlock()
			if sub.Name != "atoll-task-run" || sub.Role != "*" || sub.User == "" || sub.FailoverTimeout != 0 || sub.ID != nil || len(sub.Capabilities) != 0 {
				t.Fatalf("SUBSCRIBE framework_info = %+v", sub)
			}
		})
	}
}

// TestTaskRunExplainsWaiting checks that a waiting task run says what the offers lack, and
// that Ctrl-C before a launch tears the framework down.
func TestTaskRunExplainsWaiting(t *testing.T) {
	a := newTestApp(t, nil)
	master := newFakeScheduler(t, func(*fakeScheduler, api.Call) {})
	master.push <- subscribedFW1
	master.push <- `{"type":"OFFERS","offers":{"offers":[{"id":{"value":"o1"},"framework_id":{"value":"fw-1"},"agent_id":{"value":"a1"},"hostname":"h1",
  "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":1}},{"name":"mem","type":"SCALAR","scalar":{"value":16}}]}]}}`
	a.getenv = func(k string) string { return map[string]string{addrEnv: master.srv.URL}[k] }

	const lackLine = "offers from 1 agent lack mem (have 16, need 32)\n"
	go func() {
		deadline := time.Now().Add(testTimeout)
		for !strings.Contains(a.stdout.String(), lackLine) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		a.interrupt()
	}()
	if code := a.runCLI(t, "task", "run", "true"); code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	out := a.stdout.String()
	if !strings.HasPrefix(out, "waiting for an offer with cpus:0.1;mem:32 …\n") || !strings.Contains(out, lackLine) ||
		!strings.HasSuffix(out, "\ninterrupted before the task was launched\n") {
		t.Fatalf("stdout:\n%s", out)
	}
	want := []string{declineO1, teardown}
	if got := master.recorded(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTaskKill(t *testing.T) {
	const tasksJSON = `{"type":"GET_TASKS","get_tasks":{
 "tasks":[{"name":"web","task_id":{"value":"web.1"},"framework_id":{"value":"f1"},"agent_id":{"value":"a1"},"state":"TASK_RUNNING"},
          {"name":"dup","task_id":{"value":"dup"},"framework_id":{"value":"f2"},"agent_id":{"value":"a1"},"state":"TASK_RUNNING"}],
 "unreachable_tasks":[{"name":"dup","task_id":{"value":"dup"},"framework_id":{"value":"f1"},"agent_id":{"value":"a2"},"state":"TASK_UNREACHABLE"}],
 "completed_tasks":[{"name":"old","task_id":{"value":"old"},"framework_id":{"value":"f1"},"agent_id":{"value":"a1"},"state":"TASK_FINISHED"}]}}`
	tests := []struct {
		args      []string
		wantCode  int
		wantOut   string
		wantErr   string
		wantCalls []string
	}{
		{[]string{"web.1"}, 0, "kill requested for web.1\n", "",
			[]string{`{"type":"GET_TASKS"}`, `{"type":"KILL_TASK","kill_task":{"framework_id":{"value":"f1"},"task_id":{"value":"web.1"}}}`}},
		{[]string{"dup", "--framework", "f2"}, 0, "kill requested for dup\n", "",
			[]string{`{"type":"KILL_TASK","kill_task":{"framework_id":{"value":"f2"},"task_id":{"value":"dup"}}}`}},
		{[]string{"dup"}, 2, "", "atoll: task \"dup\" exists in frameworks f1, f2: choose one with --framework\nRun 'atoll task kill --help' for usage.\n",
			[]string{`{"type":"GET_TASKS"}`}},
		{[]string{"old"}, 1, "", "atoll: no task \"old\" is running (see atoll tasks)\n",
			[]string{`{"type":"GET_TASKS"}`}},
		{[]string{"gone", "--framework", "f1"}, 1, "", "atoll: KILL_TASK: 404 Not Found: unknown task gone\n",
			[]string{`{"type":"KILL_TASK","kill_task":{"framework_id":{"value":"f1"},"task_id":{"value":"gone"}}}`}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var mu sync.Mutex
			var calls []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				calls = append(calls, string(body))
				mu.Unlock()
				switch {
				case string(body) == `{"type":"GET_TASKS"}`:
					_, _ = io.WriteString(w, tasksJSON)
				case strings.Contains(string(body), `"gone"`):
					http.Error(w, "unknown task gone", http.StatusNotFound)
				default:
					w.WriteHeader(http.StatusAccepted)
				}
			}))
			defer srv.Close()
			a := newTestApp(t, map[string]string{addrEnv: srv.URL})
			if code := a.runCLI(t, append([]string{"task", "kill"}, tt.args...)...); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d", code, tt.wantCode)
			}
			if a.stdout.String() != tt.wantOut || a.stderr.String() != tt.wantErr {
				t.Fatalf("stdout %q, stderr %q; want %q, %q", a.stdout, a.stderr, tt.wantOut, tt.wantErr)
			}
			mu.Lock()
			defer mu.Unlock()
			if !reflect.DeepEqual(calls, tt.wantCalls) {
				t.Fatalf("calls = %q, want %q", calls, tt.wantCalls)
			}
		})
	}
}
