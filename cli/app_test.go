package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

func TestMain(m *testing.M) {
	// The process containerizer re-executes this test binary as each task's supervisor.
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// servicesCluster starts a master running the services framework and one agent,
// host-0, with the process containerizer, and waits until the Marathon API answers.
func servicesCluster(t testing.TB) *master.TestServer {
	t.Helper()
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
		})
	})
	agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) { cfg.Hostname = "host-0" })
	eventually(t, "the agent registered and the Marathon API answers", func() error {
		if n := len(ts.Store().Agents()); n != 1 {
			return fmt.Errorf("%d agents", n)
		}
		status, body := httpGet(t, ts.URL+"/v2/apps")
		if status != http.StatusOK {
			return fmt.Errorf("GET /v2/apps: %d %s", status, body)
		}
		return nil
	})
	return ts
}

// eventually polls cond until it returns nil, failing the test after testTimeout.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %v: %v", what, testTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpGet GETs url and returns the status and body.
func httpGet(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, body
}

// cliRun runs the command line against the master at addr, with the real clock, and
// returns its exit code, stdout and stderr.
func cliRun(t testing.TB, addr string, args ...string) (int, string, string) {
	t.Helper()
	a := newTestApp(t, map[string]string{addrEnv: addr})
	a.now = time.Now
	code := a.runCLI(t, args...)
	return code, a.stdout.String(), a.stderr.String()
}

// writeFile writes a file in a new temporary directory and returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// withStdin makes content the process's stdin until the test ends.
func withStdin(t testing.TB, content string) {
	t.Helper()
	f, err := os.Open(writeFile(t, "stdin", content))
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdin
	os.Stdin = f
	t.Cleanup(func() {
		os.Stdin = saved
		f.Close()
	})
}

var (
	taskIDPattern  = regexp.MustCompile(`\b([a-z0-9_-]+)\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	uuidPattern    = regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	versionPattern = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\b`)
	hostPortPat    = regexp.MustCompile(`\b31(0\d\d|100)\b`)
	agePattern     = regexp.MustCompile(`\b\d+[smhd] ago\b`)
	offerCounts    = regexp.MustCompile(`\d+ offers? declined: InsufficientCpus \d+`)
	localAddr      = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// masker replaces what changes from run to run in the command line's output: task ids
// become <app>.<TASK>, deployment ids <D1>, <D2>, … and versions <V1>, <V2>, … in the
// order they first appear in the test (so that one id keeps its name across commands),
// host ports <PORT>, ages <AGE> and the counts of declined offers N.
type masker struct {
	ids, versions map[string]string
}

func newMasker() *masker {
	return &masker{ids: map[string]string{}, versions: map[string]string{}}
}

func (m *masker) mask(s string) string {
	s = taskIDPattern.ReplaceAllString(s, "$1.<TASK>")
	s = uuidPattern.ReplaceAllStringFunc(s, func(id string) string { return name(m.ids, id, "D") })
	s = versionPattern.ReplaceAllStringFunc(s, func(v string) string { return name(m.versions, v, "V") })
	s = hostPortPat.ReplaceAllString(s, "<PORT>")
	s = agePattern.ReplaceAllString(s, "<AGE>")
	s = offerCounts.ReplaceAllString(s, "N offers declined: InsufficientCpus N")
	return localAddr.ReplaceAllString(s, "<ADDR>")
}

// name is the placeholder for v: the next free one when v is new.
func name(names map[string]string, v, prefix string) string {
	if n, ok := names[v]; ok {
		return n
	}
	n := fmt.Sprintf("<%s%d>", prefix, len(names)+1)
	names[v] = n
	return n
}

// cliStep is one command of a scenario and what it must print, masked.
type cliStep struct {
	args         []string
	code         int
	stdout       string
	stderr       string
	stdoutPrefix bool // stdout need only start with the given text
}

// runSteps runs the steps in order against the master at addr.
func runSteps(t *testing.T, addr string, m *masker, steps []cliStep) {
	t.Helper()
	for _, s := range steps {
		code, stdout, stderr := cliRun(t, addr, s.args...)
		stdout, stderr = m.mask(stdout), m.mask(stderr)
		okOut := stdout == s.stdout || s.stdoutPrefix && strings.HasPrefix(stdout, s.stdout)
		if code != s.code || !okOut || stderr != s.stderr {
			t.Fatalf("atoll %s: exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s",
				strings.Join(s.args, " "), code, s.code, stdout, s.stdout, stderr, s.stderr)
		}
	}
}

const webApp = `{"id": "web", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16}`

// TestAppCommands takes an app through its life with the app commands, on a real master
// and agent: add from stdin, list, show, scale, tasks, restart and remove, following
// each deployment to its end with --wait (which, not on a terminal, prints a line per
// change).
func TestAppCommands(t *testing.T) {
	ts := servicesCluster(t)
	withStdin(t, webApp)
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"app", "add", "-", "--wait"}, stdout: `created app /web: deployment <D1>
step 1/1: StartApplication /web
/web: 0/1 tasks running at version <V1>
/web: 1/1 tasks running at version <V1>
deployment <D1> finished
`},
		{args: []string{"app", "list"}, stdout: `ID    INSTANCES  CPUS  MEM  VERSION                   DEPLOYMENTS
/web  1/1        0.1   16M  <V1>  -
`},
		{args: []string{"app", "show", "/web"}, stdout: `ID:             /web
Command:        exec sleep 1000
Image:          -
Instances:      1 running of 1 (0 staged, 0 healthy, 0 unhealthy)
CPUs:           0.1
Memory:         16M
Disk:           0
Service ports:  10000
Constraints:    -
Labels:         -
Health checks:  0
Version:        <V1>
Deployments:    -
Last failure:   -

ID                                        HOST    PORTS  STATE         HEALTH  STARTED
web.<TASK>  host-0  <PORT>  TASK_RUNNING  -       <AGE>
`},
		{args: []string{"app", "scale", "web", "3", "--wait"}, stdout: `scaling app /web to 3 instances: deployment <D2>
step 1/1: ScaleApplication /web
/web: 1/3 tasks running at version <V1>
/web: 2/3 tasks running at version <V1>
/web: 3/3 tasks running at version <V1>
deployment <D2> finished
`},
		{args: []string{"app", "tasks", "web"}, stdout: `ID                                        HOST    PORTS  STATE         HEALTH  STARTED
web.<TASK>  host-0  <PORT>  TASK_RUNNING  -       <AGE>
web.<TASK>  host-0  <PORT>  TASK_RUNNING  -       <AGE>
web.<TASK>  host-0  <PORT>  TASK_RUNNING  -       <AGE>
`},
		{args: []string{"app", "list"}, stdout: `ID    INSTANCES  CPUS  MEM  VERSION                   DEPLOYMENTS
/web  3/3        0.1   16M  <V2>  -
`},
		{args: []string{"app", "restart", "web", "--wait"}, stdout: `restarting app /web: deployment <D3>
step 1/1: RestartApplication /web
/web: 0/3 tasks running at version <V3>
/web: 1/3 tasks running at version <V3>
/web: 2/3 tasks running at version <V3>
/web: 3/3 tasks running at version <V3>
deployment <D3> finished
`},
		{args: []string{"app", "remove", "web", "--wait"}, stdout: `removing app /web: deployment <D4>
step 1/1: StopApplication /web
/web: stopping, 3 tasks left
/web: stopping, 2 tasks left
/web: stopping, 1 task left
/web: stopping, 0 tasks left
deployment <D4> finished
`},
		{args: []string{"app", "list"}, stdout: "ID  INSTANCES  CPUS  MEM  VERSION  DEPLOYMENTS\n"},
		{args: []string{"app", "show", "web"}, code: 1, stderr: "atoll: GET /v2/apps/web: 404 App '/web' does not exist\n"},
	})
}

// TestAppErrors: the API's errors are printed readably, Marathon's details one per
// line, and the command exits 1.
func TestAppErrors(t *testing.T) {
	ts := servicesCluster(t)
	invalid := writeFile(t, "invalid.json", `{"id": "bad", "cmd": "exec sleep 1000", "cpus": 0, "mem": 16}`)
	twoErrors := writeFile(t, "two.json", `{"id": "bad", "cmd": "exec sleep 1000", "cpus": 0, "mem": -1}`)
	notJSON := writeFile(t, "broken.json", `{"id": "bad", "cpus": "many"}`)
	web := writeFile(t, "web.json", webApp)
	missing := filepath.Join(t.TempDir(), "missing.json")
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"app", "add", invalid}, code: 1, stderr: "atoll: POST /v2/apps: 422 Object is not valid: /cpus: got 0.0, expected 0.001 or more\n"},
		{args: []string{"app", "add", twoErrors, "--wait"}, code: 1, stderr: `atoll: POST /v2/apps: 422 Object is not valid:
  /cpus: got 0.0, expected 0.001 or more
  /mem: got -1.0, expected 0.0 or more
`},
		{args: []string{"app", "add", notJSON}, code: 1, stderr: "atoll: POST /v2/apps: 400 Invalid JSON: /cpus: error.expected.jsnumber\n"},
		{args: []string{"app", "add", web}, stdout: "created app /web: deployment <D1>\n"},
		{args: []string{"app", "add", web}, code: 1, stderr: "atoll: POST /v2/apps: 409 An app with id [/web] already exists.\n"},
		{args: []string{"app", "restart", "nope"}, code: 1, stderr: "atoll: POST /v2/apps/nope/restart: 404 App '/nope' does not exist\n"},
		{args: []string{"app", "add", missing}, code: 1, stderr: "atoll: read the definition: open " + missing + ": no such file or directory\n"},
	})
}

// TestNoMaster: without a master at the address, the commands say so.
func TestNoMaster(t *testing.T) {
	code, stdout, stderr := cliRun(t, "http://127.0.0.1:1", "app", "list")
	want := "atoll: GET /v2/apps: dial tcp 127.0.0.1:1: connect: connection refused\n" +
		"atoll: is a master running at http://127.0.0.1:1? Start one with 'atoll up', or set --addr or ATOLL_ADDR.\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, stdout, stderr, want)
	}
}

// TestAppUsageErrors: command lines that cannot run exit 2 before calling the API.
func TestAppUsageErrors(t *testing.T) {
	empty := writeFile(t, "empty.json", " \n")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"app", "scale", "web"}, "atoll: app scale takes an app id and a number of instances, got 1 arguments\nRun 'atoll app scale --help' for usage.\n"},
		{[]string{"app", "scale", "web", "-1"}, "atoll: unknown shorthand flag: '1' in -1\nRun 'atoll app scale --help' for usage.\n"},
		{[]string{"app", "scale", "web", "two"}, "atoll: instances \"two\": want a whole number, 0 or more\nRun 'atoll app scale --help' for usage.\n"},
		{[]string{"app", "restart", "web", "--timeout", "1m"}, "atoll: --timeout needs --wait\nRun 'atoll app restart --help' for usage.\n"},
		{[]string{"app", "restart", "web", "--wait", "--timeout", "0s"}, "atoll: --timeout 0s: want more than 0\nRun 'atoll app restart --help' for usage.\n"},
		{[]string{"app", "add", empty}, "atoll: " + empty + " is empty: want a JSON definition\nRun 'atoll app add --help' for usage.\n"},
		{[]string{"app", "update", "web"}, "atoll: app update takes an app id and a file, got 1 arguments\nRun 'atoll app update --help' for usage.\n"},
		{[]string{"deployment", "rollback", "d1", "--force"}, "atoll: unknown flag: --force\nRun 'atoll deployment rollback --help' for usage.\n"},
		{[]string{"app", "bogus"}, "atoll: unknown command \"bogus\" for \"atoll app\"\nRun 'atoll app --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			// No master listens there: a command that called the API would fail with 1.
			code, stdout, stderr := cliRun(t, "http://127.0.0.1:1", tt.args...)
			if code != 2 || stdout != "" || stderr != tt.want {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

// TestAppJSON: -o json prints the API's own JSON, and what app show -o json prints can
// be deployed again as it is.
func TestAppJSON(t *testing.T) {
	ts := servicesCluster(t)
	web := writeFile(t, "web.json", webApp)
	code, stdout, stderr := cliRun(t, ts.URL, "app", "add", web, "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("app add: exit %d: %s", code, stderr)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(stdout), &created); err != nil || created["id"] != "/web" {
		t.Fatalf("app add -o json printed %q (%v), want the created app", stdout, err)
	}
	// With -o json the progress goes to stderr, leaving stdout to the JSON.
	if !strings.HasSuffix(stderr, " finished\n") {
		t.Fatalf("app add --wait -o json: stderr %q, want the progress ending with the deployment finished", stderr)
	}

	var apps struct {
		Apps []any `json:"apps"`
	}
	decodeJSON(t, httpGetOK(t, ts.URL+"/v2/apps"), &apps)
	var app struct {
		App any `json:"app"`
	}
	decodeJSON(t, httpGetOK(t, ts.URL+"/v2/apps/web"), &app)
	var tasks struct {
		Tasks []any `json:"tasks"`
	}
	decodeJSON(t, httpGetOK(t, ts.URL+"/v2/apps/web/tasks"), &tasks)
	tests := []struct {
		args []string
		want any
	}{
		{[]string{"app", "list", "-o", "json"}, apps.Apps},
		{[]string{"app", "show", "web", "-o", "json"}, app.App},
		{[]string{"app", "tasks", "web", "-o", "json"}, tasks.Tasks},
		{[]string{"deployment", "list", "-o", "json"}, []any{}},
	}
	var shown string
	for _, tt := range tests {
		code, stdout, stderr := cliRun(t, ts.URL, tt.args...)
		var got any
		if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || !reflect.DeepEqual(got, tt.want) {
			t.Fatalf("atoll %s: exit %d, stderr %q\nprinted %s\nwant the API's %s", strings.Join(tt.args, " "), code, stderr, stdout, jsonOf(t, tt.want))
		}
		if tt.args[1] == "show" {
			shown = stdout
		}
	}

	// The definition as shown, status and version included, deploys unchanged.
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"app", "update", "web", writeFile(t, "shown.json", shown), "--wait"}, stdout: `updating app /web: deployment <D1>
step 1/1: ScaleApplication /web
/web: 1/1 tasks running at version <V1>
deployment <D1> finished
`},
		{args: []string{"app", "deploy", writeFile(t, "shown.json", shown), "--wait", "-o", "json"}, stdout: `{
  "deploymentId": "<D2>",
  "version": "<V2>"
}
`, stderr: `step 1/1: ScaleApplication /web
/web: 1/1 tasks running at version <V1>
deployment <D2> finished
`},
	})
}

func httpGetOK(t testing.TB, url string) []byte {
	t.Helper()
	status, body := httpGet(t, url)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, body)
	}
	return body
}

func decodeJSON(t testing.TB, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

// TestAppDeploy: deploy adds an app that does not exist and replaces the whole
// definition of one that does.
func TestAppDeploy(t *testing.T) {
	ts := servicesCluster(t)
	runSteps(t, ts.URL, newMasker(), []cliStep{
		{args: []string{"app", "deploy", writeFile(t, "web.json", `{"id": "/web", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "labels": {"tier": "front"}}`), "--wait"},
			stdout: `created app /web: deployment <D1>
step 1/1: StartApplication /web
/web: 0/1 tasks running at version <V1>
/web: 1/1 tasks running at version <V1>
deployment <D1> finished
`},
		{args: []string{"app", "deploy", writeFile(t, "web.json", `{"id": "/web", "cmd": "exec sleep 1001", "cpus": 0.1, "mem": 16, "instances": 2}`), "--wait"},
			stdout: `updating app /web: deployment <D2>
step 1/1: RestartApplication /web
/web: 0/2 tasks running at version <V2>
/web: 1/2 tasks running at version <V2>
/web: 2/2 tasks running at version <V2>
deployment <D2> finished
`},
	})
	var app struct {
		App struct {
			Cmd    string            `json:"cmd"`
			Labels map[string]string `json:"labels"`
		} `json:"app"`
	}
	decodeJSON(t, httpGetOK(t, ts.URL+"/v2/apps/web"), &app)
	if app.App.Cmd != "exec sleep 1001" || len(app.App.Labels) != 0 {
		t.Fatalf("after deploy the app has cmd %q and labels %v, want the file's cmd and no labels", app.App.Cmd, app.App.Labels)
	}
}

func TestDropStatus(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"id":"/web","cpus":1}`, `{"id":"/web","cpus":1}`},
		{`{"id":"/web","cpus":1,"version":"v","versionInfo":{},"tasksRunning":1,"tasks":[],"deployments":[]}`, `{"cpus":1,"id":"/web"}`},
		// A version alone (with the id) asks to go back to it: kept.
		{`{"id":"/web","version":"v"}`, `{"id":"/web","version":"v"}`},
		{`{"version":"v"}`, `{"version":"v"}`},
		{`{"version":"v","instances":2}`, `{"instances":2}`},
		{`not json`, `not json`},
		{`[{"id":"/web","version":"v","cpus":1}]`, `[{"id":"/web","version":"v","cpus":1}]`},
	}
	for _, tt := range tests {
		if got := string(dropStatus([]byte(tt.in))); got != tt.want {
			t.Errorf("dropStatus(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestTaskHealth(t *testing.T) {
	tests := []struct {
		results string
		want    string
	}{
		{`[]`, "-"},
		{`[{"alive":true},{"alive":true}]`, "healthy"},
		{`[{"alive":true},{"alive":false,"consecutiveFailures":2}]`, "unhealthy"},
		{`[{"alive":false,"lastFailure":"2026-03-01T12:00:00.000Z"}]`, "unhealthy"},
		{`[{"alive":false,"consecutiveFailures":0}]`, "unknown"},
	}
	for _, tt := range tests {
		var task marathon.Task
		decodeJSON(t, []byte(`{"id":"web.1","healthCheckResults":`+tt.results+`}`), &task)
		if got := taskHealth(task); got != tt.want {
			t.Errorf("taskHealth(%s) = %q, want %q", tt.results, got, tt.want)
		}
	}
}
