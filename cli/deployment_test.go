package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api/marathon"
)

// waitForDeclinedOffers waits until /v2/queue says offers were declined for the app for
// lack of cpus.
func waitForDeclinedOffers(t testing.TB, addr, appID string) {
	t.Helper()
	eventually(t, appID+" waits with declined offers", func() error {
		var q marathon.Queue
		decodeJSON(t, httpGetOK(t, addr+"/v2/queue"), &q)
		for _, item := range q.Queue {
			if item.App == nil || item.App.ID != appID {
				continue
			}
			for _, step := range item.ProcessedOffersSummary.RejectSummaryLaunchAttempt {
				if step.Reason == marathon.ReasonInsufficientCpus && step.Declined > 0 {
					return nil
				}
			}
			return fmt.Errorf("queue item %+v", item.ProcessedOffersSummary)
		}
		return fmt.Errorf("%s is not in the queue", appID)
	})
}

// deploymentsInProgress lists the ids of the deployments in progress.
func deploymentsInProgress(t testing.TB, addr string) []string {
	t.Helper()
	var list []marathon.Deployment
	decodeJSON(t, httpGetOK(t, addr+"/v2/deployments"), &list)
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	return ids
}

// TestLockedApp: a change that cannot be placed keeps its deployment; the app is locked
// (409, with what to do) until --force; --wait explains why it waits and gives up at its
// timeout; the deployment commands list, roll back and stop deployments.
func TestLockedApp(t *testing.T) {
	ts := servicesCluster(t)
	m := newMasker()
	web := writeFile(t, "web.json", webApp)
	tooBig := writeFile(t, "big.json", `{"cpus": 100}`)
	runSteps(t, ts.URL, m, []cliStep{
		{args: []string{"app", "add", web, "--wait"}, stdout: `created app /web: deployment <D1>
step 1/1: StartApplication /web
/web: 0/1 tasks running at version <V1>
/web: 1/1 tasks running at version <V1>
deployment <D1> finished
`},
		{args: []string{"app", "update", "web", tooBig}, stdout: "updating app /web: deployment <D2>\n"},
	})
	waitForDeclinedOffers(t, ts.URL, "/web")
	runSteps(t, ts.URL, m, []cliStep{
		{args: []string{"app", "scale", "web", "2"}, code: 1,
			stderr: `atoll: PATCH /v2/apps/web: 409 App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<D2>'.
atoll: --force overrides the deployment; or end it first: atoll deployment rollback <D2>, or atoll deployment stop <D2>
`},
		{args: []string{"deployment", "list"}, stdout: `ID                                    APPS  STEP  ACTIONS                  VERSION
<D2>  /web  1/1   RestartApplication /web  <V2>
`},
		{args: []string{"app", "list"}, stdout: `ID    INSTANCES  CPUS  MEM  VERSION                   DEPLOYMENTS
/web  1/1        100   16M  <V2>  <D2>
`},
		{args: []string{"deployment", "rollback", "nope"}, code: 1, stderr: "atoll: DELETE /v2/deployments/nope: 404 DeploymentPlan nope does not exist\n"},
	})
	d2 := deploymentsInProgress(t, ts.URL)
	runSteps(t, ts.URL, m, []cliStep{
		// Rolling back is a new deployment, back to the definition before: the task that
		// still runs it is all it needs.
		{args: []string{"deployment", "rollback", d2[0], "--wait"}, stdout: `rolling back deployment <D2>: deployment <D3>
step 1/1: RestartApplication /web
/web: 1/1 tasks running at version <V1>
deployment <D3> finished
`},
		{args: []string{"deployment", "list"}, stdout: "ID  APPS  STEP  ACTIONS  VERSION\n"},
		{args: []string{"app", "update", "web", tooBig}, stdout: "updating app /web: deployment <D4>\n"},
	})
	waitForDeclinedOffers(t, ts.URL, "/web")
	runSteps(t, ts.URL, m, []cliStep{
		{args: []string{"app", "scale", "web", "2", "--force", "--wait", "--timeout", "2s"}, code: 1, stdout: `scaling app /web to 2 instances: deployment <D5>
step 1/1: ScaleApplication /web
/web: 0/2 tasks running at version <V3>
/web: waiting for offers: N offers declined: InsufficientCpus N
`, stderr: `atoll: timed out after 2s waiting for deployment <D5>
  /web: 0/2 tasks running at version <V3>
  /web: waiting for offers: N offers declined: InsufficientCpus N
The deployment goes on: see atoll deployment list, or undo it with atoll deployment rollback <D5>
`},
	})
	// --force superseded the deployment it overrode.
	inProgress := deploymentsInProgress(t, ts.URL)
	if len(inProgress) != 1 || m.mask(inProgress[0]) != "<D5>" {
		t.Fatalf("deployments in progress %v, want only the forced one", inProgress)
	}
	runSteps(t, ts.URL, m, []cliStep{
		{args: []string{"deployment", "stop", inProgress[0]}, stdout: "stopped deployment <D5>: its apps stay as they are now\n"},
		{args: []string{"deployment", "list"}, stdout: "ID  APPS  STEP  ACTIONS  VERSION\n"},
		{args: []string{"deployment", "stop", inProgress[0]}, code: 1, stderr: "atoll: DELETE /v2/deployments/<D5>: 404 DeploymentPlan <D5> does not exist\n"},
		{args: []string{"app", "list"}, stdout: `ID    INSTANCES  CPUS  MEM  VERSION                   DEPLOYMENTS
/web  1/2        100   16M  <V4>  -
`},
	})

	// Ctrl-C ends the wait, not the deployment.
	a := newTestApp(t, map[string]string{addrEnv: ts.URL})
	exit := make(chan int, 1)
	go func() { exit <- a.runCLI(t, "app", "restart", "web", "--wait") }()
	eventually(t, "the restart's progress shows", func() error {
		if !strings.Contains(a.stdout.String(), "tasks running") {
			return fmt.Errorf("stdout %q", a.stdout)
		}
		return nil
	})
	a.interrupt()
	if code := <-exit; code != 1 {
		t.Fatalf("interrupted wait: exit %d, want 1", code)
	}
	wantOut := "restarting app /web: deployment <D6>\nstep 1/1: RestartApplication /web\n/web: 0/2 tasks running at version <V5>\n"
	wantErr := "atoll: stopped waiting for deployment <D6>\n  /web: 0/2 tasks running at version <V5>\n"
	if got, gotErr := m.mask(a.stdout.String()), m.mask(a.stderr.String()); !strings.HasPrefix(got, wantOut) || !strings.HasPrefix(gotErr, wantErr) {
		t.Fatalf("interrupted wait printed\n%s\nand\n%s\nwant them to start\n%s\nand\n%s", got, gotErr, wantOut, wantErr)
	}
	runSteps(t, ts.URL, m, []cliStep{
		{args: []string{"deployment", "list"}, stdout: `ID                                    APPS  STEP  ACTIONS                  VERSION
<D6>  /web  1/1   RestartApplication /web  <V5>
`},
		{args: []string{"app", "remove", "web", "--force", "--wait"}, stdout: `removing app /web: deployment <D7>
step 1/1: StopApplication /web
/web: stopping, 1 task left
/web: stopping, 0 tasks left
deployment <D7> finished
`},
	})
}

// TestWaitWithoutEvents: when /v2/events is unavailable, --wait follows the deployment
// by polling.
func TestWaitWithoutEvents(t *testing.T) {
	ts := servicesCluster(t)
	target, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/events" {
			http.Error(w, "no events here", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	m := newMasker()
	code, stdout, stderr := cliRun(t, front.URL, "app", "add", writeFile(t, "web.json", webApp), "--wait")
	stdout, stderr = m.mask(stdout), m.mask(stderr)
	if code != 0 || !strings.HasPrefix(stdout, "created app /web: deployment <D1>\n") || !strings.HasSuffix(stdout, "deployment <D1> finished\n") ||
		stderr != "atoll: following the deployment by polling: GET /v2/events: 503 no events here\n" {
		t.Fatalf("app add --wait: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var app struct {
		App struct {
			TasksRunning int `json:"tasksRunning"`
		} `json:"app"`
	}
	decodeJSON(t, httpGetOK(t, ts.URL+"/v2/apps/web"), &app)
	if app.App.TasksRunning != 1 {
		t.Fatalf("after the wait, %d tasks run, want 1", app.App.TasksRunning)
	}
}

// testWatch is a watch of a deployment with two apps: /web restarted to version v2 (3
// instances, health checked), /old being stopped.
func testWatch(out *bytes.Buffer, terminal bool) *deploymentWatch {
	return &deploymentWatch{
		out: out, terminal: terminal, width: 72, id: "d-1", start: time.Now(),
		known: true, step: 2, totalSteps: 3, actions: "RestartApplication /web, StopApplication /old",
		apps: map[string]*appProgress{
			"/web": {id: "/web", instances: 3, version: "v2", checked: true},
			"/old": {id: "/old", stop: true, initial: 2},
		},
		order: []string{"/old", "/web"},
		tasks: map[string]*taskProgress{
			"web.1": {appID: "/web", version: "v1", state: "TASK_RUNNING", healthy: true},
			"web.2": {appID: "/web", version: "v2", state: "TASK_RUNNING", healthy: true},
			"web.3": {appID: "/web", version: "v2", state: "TASK_STAGING"},
			"old.1": {appID: "/old", version: "v1", state: "TASK_KILLING"},
		},
	}
}

func TestProgressFrame(t *testing.T) {
	w := testWatch(&bytes.Buffer{}, true)
	w.apps["/web"].waiting = "/web: waiting for offers: 12 offers declined: InsufficientCpus 10, UnfulfilledConstraint 2"
	w.recent = []string{"12:00:01 web.2 TASK_RUNNING on host-0", "12:00:02 web.3 TASK_STAGING on host-1"}
	want := []string{
		"deployment d-1  (42s)",
		"  step 2/3: RestartApplication /web, StopApplication /old",
		"  /old [██████████░░░░░░░░░░] stopping, 1 task left",
		"  /web [██████░░░░░░░░░░░░░░] 1/3 running at v2, 1 healthy",
		"  /web: waiting for offers: 12 offers declined: InsufficientCpus 10, UnfulfilledConstraint 2",
		"    12:00:01 web.2 TASK_RUNNING on host-0",
		"    12:00:02 web.3 TASK_STAGING on host-1",
	}
	if got := w.frame(42 * time.Second); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("frame:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestProgressDraw: each frame replaces the last on the terminal, its lines cut to the
// terminal's width.
func TestProgressDraw(t *testing.T) {
	var out bytes.Buffer
	w := testWatch(&out, true)
	w.width = 56
	w.draw()
	first := out.String()
	wantFirst := "\x1b[J" +
		"deployment d-1  (0s)\n" +
		"  step 2/3: RestartApplication /web, StopApplication /…\n" +
		"  /old [██████████░░░░░░░░░░] stopping, 1 task left\n" +
		"  /web [██████░░░░░░░░░░░░░░] 1/3 running at v2, 1 hea…\n"
	if first != wantFirst {
		t.Fatalf("first frame %q\nwant %q", first, wantFirst)
	}
	out.Reset()
	delete(w.tasks, "old.1")
	w.tasks["web.3"].state = "TASK_RUNNING"
	w.draw()
	wantSecond := "\x1b[4A\x1b[J" +
		"deployment d-1  (0s)\n" +
		"  step 2/3: RestartApplication /web, StopApplication /…\n" +
		"  /old [████████████████████] stopping, 0 tasks left\n" +
		"  /web [█████████████░░░░░░░] 2/3 running at v2, 1 hea…\n"
	if got := out.String(); got != wantSecond {
		t.Fatalf("second frame %q\nwant %q", got, wantSecond)
	}
}

// TestProgressLines: not on a terminal, a line says each change once.
func TestProgressLines(t *testing.T) {
	var out bytes.Buffer
	w := testWatch(&out, false)
	w.show()
	w.show()
	web := w.apps["/web"]
	web.waiting, web.waitingKey = "/web: waiting for offers: 1 offer declined: InsufficientCpus 1", "offers: InsufficientCpus"
	w.show()
	web.waiting = "/web: waiting for offers: 2 offers declined: InsufficientCpus 2"
	w.show()
	w.statusUpdate(marathon.StatusUpdateEvent{TaskID: "web.3", TaskStatus: "TASK_RUNNING", AppID: "/web", Version: "v2", Host: "host-1"})
	w.statusUpdate(marathon.StatusUpdateEvent{TaskID: "old.1", TaskStatus: "TASK_FAILED", AppID: "/old", Version: "v1", Host: "host-0", Message: "exit 1"})
	w.statusUpdate(marathon.StatusUpdateEvent{TaskID: "web.1", TaskStatus: "TASK_KILLED", AppID: "/web", Version: "v1", Host: "host-0"})
	w.step = 3
	w.actions = "ScaleApplication /db"
	w.show()
	want := `step 2/3: RestartApplication /web, StopApplication /old
/old: stopping, 1 task left
/web: 1/3 tasks running at version v2, 1 healthy
/web: waiting for offers: 1 offer declined: InsufficientCpus 1
/old: task old.1 TASK_FAILED on host-0: exit 1
step 3/3: ScaleApplication /db
/old: stopping, 0 tasks left
/web: 2/3 tasks running at version v2, 1 healthy
`
	if got := out.String(); got != want {
		t.Fatalf("lines:\n%s\nwant:\n%s", got, want)
	}
}

func TestProgressLine(t *testing.T) {
	w := testWatch(&bytes.Buffer{}, false)
	w.apps["/web"].instances, w.apps["/web"].checked = 1, false
	w.tasks["web.3"].state = "TASK_RUNNING"
	if got, want := w.progressLine(w.apps["/web"]), "/web: 2 tasks running, scaling down to 1"; got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
}

func TestBar(t *testing.T) {
	tests := []struct {
		done, total int
		want        string
	}{
		{0, 4, "[░░░░░░░░░░░░░░░░░░░░]"},
		{1, 4, "[█████░░░░░░░░░░░░░░░]"},
		{4, 4, "[████████████████████]"},
		{7, 4, "[████████████████████]"},
		{-1, 4, "[░░░░░░░░░░░░░░░░░░░░]"},
		{0, 0, "[████████████████████]"},
	}
	for _, tt := range tests {
		if got := bar(tt.done, tt.total); got != tt.want {
			t.Errorf("bar(%d, %d) = %s, want %s", tt.done, tt.total, got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		line  string
		width int
		want  string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a bit too long", 10, "a bit too…"},
		{"[██████████]", 5, "[███…"},
		{"anything", 0, "anything"},
	}
	for _, tt := range tests {
		if got := truncate(tt.line, tt.width); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.line, tt.width, got, tt.want)
		}
	}
}

func TestWaitingReason(t *testing.T) {
	tests := []struct {
		name    string
		item    string
		want    string
		wantKey string
	}{
		{"declined offers", `{"count":3,"processedOffersSummary":{"processedOffersCount":14,"unusedOffersCount":12,"rejectSummaryLaunchAttempt":[
			{"reason":"UnfulfilledRole","declined":0,"processed":14},{"reason":"UnfulfilledConstraint","declined":2,"processed":14},
			{"reason":"InsufficientCpus","declined":10,"processed":12},{"reason":"InsufficientMemory","declined":0,"processed":2}]}}`,
			"/web: waiting for offers: 12 offers declined: UnfulfilledConstraint 2, InsufficientCpus 10", "offers: UnfulfilledConstraint, InsufficientCpus"},
		{"one offer", `{"count":1,"processedOffersSummary":{"rejectSummaryLaunchAttempt":[{"reason":"InsufficientPorts","declined":1,"processed":1}]}}`,
			"/web: waiting for offers: 1 offer declined: InsufficientPorts 1", "offers: InsufficientPorts"},
		{"launch delay", `{"count":1,"delay":{"timeLeftSeconds":7,"overdue":false},"processedOffersSummary":{},
			"lastTaskFailure":{"appId":"/web","host":"host-0","message":"Command exited with status 1","state":"TASK_FAILED","taskId":"web.1"}}`,
			"/web: launch delayed 7s after task failures (last: TASK_FAILED on host-0: Command exited with status 1)", "delay"},
		{"overdue delay, nothing declined", `{"count":1,"delay":{"timeLeftSeconds":0,"overdue":true},"since":"2026-03-01T11:00:00.000Z","processedOffersSummary":{"processedOffersCount":1}}`, "", ""},
		{"no offer yet", `{"count":1,"since":"2026-03-01T11:59:58.000Z","processedOffersSummary":{"processedOffersCount":0}}`, "", ""},
		{"no offer for long", `{"count":1,"since":"2026-03-01T11:59:48.000Z","processedOffersSummary":{"processedOffersCount":0}}`,
			"/web: waiting for offers: none came in 12s: is an agent registered, with free resources for the app's role?", "no offers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var item marathon.QueueItem
			decodeJSON(t, []byte(tt.item), &item)
			if got, key := waitingReason("/web", item, testNow); got != tt.want || key != tt.wantKey {
				t.Fatalf("waitingReason = %q, %q; want %q, %q", got, key, tt.want, tt.wantKey)
			}
		})
	}
}

func TestDescribeActions(t *testing.T) {
	var d marathon.Deployment
	decodeJSON(t, []byte(`{"steps":[{"actions":[{"action":"StartApplication","app":"/db"},{"action":"ScaleApplication","app":"/web"}]}],
		"currentActions":[{"action":"StopApplication","app":"/old","readinessCheckResults":[]}]}`), &d)
	if got, want := describeActions(d.Steps[0].Actions), "StartApplication /db, ScaleApplication /web"; got != want {
		t.Errorf("steps: %q, want %q", got, want)
	}
	if got, want := describeActions(currentActions(d.CurrentActions)), "StopApplication /old"; got != want {
		t.Errorf("current: %q, want %q", got, want)
	}
}
