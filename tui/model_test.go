package tui

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
)

// screenLine is line i of the model's screen.
func screenLine(m *Model, i int) string { return strings.Split(m.View(), "\n")[i] }

func TestFilter(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 5, 100, 30)
	press(m, cmdKeys("apps")...)
	press(m, append([]string{"/"}, typed("app-00(0[24]|42)")...)...)
	if got, want := rowKeys(m), []string{"/app-0002", "/app-0004"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("filtered rows %v, want %v", got, want)
	}
	if m.mode != modeFilter || screenLine(m, 29) != "/app-00(0[24]|42)_" {
		t.Errorf("mode %d, status line %q", m.mode, screenLine(m, 29))
	}
	press(m, "enter")
	if m.mode != modeNormal || m.top().filter != "app-00(0[24]|42)" || screenLine(m, 1) != "overview › apps  1/2 · /app-00(0[24]|42)/" {
		t.Errorf("after enter: mode %d, filter %q, title %q", m.mode, m.top().filter, screenLine(m, 1))
	}
	// A new app that matches shows at once.
	m.Update(feedBatch{marathonEventMsg{marathon.Event{Type: marathon.EventAPIPost, Data: []byte(`{"eventType":"api_post_event","uri":"/v2/apps","appDefinition":{"id":"/app-0042","instances":1}}`)}}})
	if got, want := rowKeys(m), []string{"/app-0002", "/app-0004", "/app-0042"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows after a new app %v, want %v", got, want)
	}
	press(m, "esc")
	if m.top().view != viewApps || m.top().filter != "" || len(rowKeys(m)) != 6 {
		t.Errorf("esc: view %s, filter %q, %d rows; want the apps unfiltered", m.top().view.name, m.top().filter, len(rowKeys(m)))
	}
	press(m, "esc")
	if m.top().kind != pageOverview {
		t.Errorf("second esc: page %d, want the overview", m.top().kind)
	}
	// Not a regular expression: matched as text.
	press(m, cmdKeys("apps")...)
	press(m, "/", "(")
	if len(rowKeys(m)) != 0 || m.flash.text != "/( is not a regular expression (error parsing regexp: missing closing ): `(?i)(`): matching it as text" {
		t.Errorf("rows %v, flash %q", rowKeys(m), m.flash.text)
	}
	// A command's argument filters too.
	press(m, "esc")
	press(m, cmdKeys("tasks APP-0001")...)
	if got, want := rowKeys(m), []string{"fw-marathon/app-0001.task-000", "fw-marathon/app-0001.task-001"}; !reflect.DeepEqual(got, want) {
		t.Errorf(":tasks APP-0001 rows %v, want %v", got, want)
	}
}

func TestSort(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 5, 100, 30)
	press(m, cmdKeys("apps")...)
	tests := []struct {
		key   string
		title string
		want  []string
	}{
		{">", "TASKS↓", []string{"/app-0002", "/app-0001", "/app-0004", "/app-0000", "/app-0003"}},
		{"I", "TASKS↑", []string{"/app-0000", "/app-0003", "/app-0001", "/app-0004", "/app-0002"}},
		{"<", "ID↑", []string{"/app-0000", "/app-0001", "/app-0002", "/app-0003", "/app-0004"}},
		{"I", "ID↓", []string{"/app-0004", "/app-0003", "/app-0002", "/app-0001", "/app-0000"}},
		{"<", "VERSION↓", []string{"/app-0000", "/app-0001", "/app-0002", "/app-0003", "/app-0004"}},
	}
	for _, tt := range tests {
		press(m, tt.key)
		if got := rowKeys(m); !reflect.DeepEqual(got, tt.want) || !strings.Contains(screenLine(m, 2), tt.title) {
			t.Errorf("after %q: rows %v, header %q; want %v sorted by %s", tt.key, got, screenLine(m, 2), tt.want, tt.title)
		}
	}
	// The cursor stays on its row when the order changes.
	press(m, "j", "j")
	key := m.top().table.selectedKey()
	press(m, ">")
	if m.top().table.selectedKey() != key {
		t.Errorf("cursor moved from %s to %s", key, m.top().table.selectedKey())
	}
}

func TestDrillDown(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 5, 100, 30)
	press(m, cmdKeys("apps")...)
	press(m, "j", "enter")
	if p := m.top(); p.kind != pageApp || p.key != "/app-0001" {
		t.Fatalf("enter on /app-0001: page %d %q", p.kind, p.key)
	}
	if got, want := rowKeys(m), []string{"fw-marathon/app-0001.task-000", "fw-marathon/app-0001.task-001"}; !reflect.DeepEqual(got, want) {
		t.Errorf("app tasks %v, want %v", got, want)
	}
	press(m, "j", "enter")
	if p := m.top(); p.kind != pageTask || p.key != "fw-marathon/app-0001.task-001" {
		t.Fatalf("enter on a task: page %d %q", p.kind, p.key)
	}
	if got := screenLine(m, 2); got != "id         app-0001.task-001" {
		t.Errorf("task page starts %q", got)
	}
	press(m, "d")
	if p := m.top(); p.kind != pageText || p.title != "task app-0001.task-001" || p.lines[0] != "{" || p.lines[1] != `  "name": "app-0001",` {
		t.Errorf("d: page %d %q %q", p.kind, p.title, p.lines[:2])
	}
	press(m, "esc", "esc")
	if p := m.top(); p.kind != pageApp || p.table.selectedKey() != "fw-marathon/app-0001.task-001" {
		t.Errorf("back on the app page: %d, selected %q", p.kind, p.table.selectedKey())
	}
	press(m, "q")
	if p := m.top(); p.view != viewApps || p.table.selectedKey() != "/app-0001" {
		t.Errorf("q: back on %v, selected %q", p.view, p.table.selectedKey())
	}
	// Agents open their tasks.
	press(m, cmdKeys("agents")...)
	press(m, "enter")
	if p := m.top(); p.view != viewTasks || p.scope.agent != "agent-00" || screenLine(m, 1) != "overview › agents › tasks of agent host-00  1/5" {
		t.Errorf("agent's tasks: %+v, title %q", p.scope, screenLine(m, 1))
	}
}

func TestConfirmations(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 3, 120, 30)
	press(m, cmdKeys("apps")...)
	press(m, "ctrl+d")
	if m.mode != modeConfirm || screenLine(m, 29) != "Destroy /app-0000 and kill its 1 task? Its definition is gone for good.  y yes  n no" {
		t.Fatalf("ctrl+d: mode %d, status %q", m.mode, screenLine(m, 29))
	}
	// Keys that answer nothing are ignored.
	if cmd := press(m, "x"); cmd != nil || m.mode != modeConfirm {
		t.Errorf("x answered the question")
	}
	press(m, "n")
	if m.mode != modeNormal || m.busy != 0 || m.flash.text != "cancelled" {
		t.Errorf("n: mode %d, busy %d, flash %q", m.mode, m.busy, m.flash.text)
	}
	tests := []struct {
		name     string
		keys     []string
		question string
	}{
		{"restart", []string{"r"}, "Restart /app-0000, replacing its 1 task?  y yes  n no"},
		{"suspend", []string{"z"}, "Suspend /app-0000: scale it to 0, killing its 1 task?  y yes  n no"},
		{"scale down", []string{"j", "j", "s", "1", "enter"}, "Scale /app-0002 down from 3 to 1, killing 2 tasks?  y yes  n no"},
	}
	for _, tt := range tests {
		press(m, tt.keys...)
		if m.mode != modeConfirm || screenLine(m, 29) != tt.question {
			t.Errorf("%s: mode %d, status %q", tt.name, m.mode, screenLine(m, 29))
		}
		press(m, "esc")
	}
	// Kill an app's task: kill, or kill and scale down.
	press(m, cmdKeys("tasks")...)
	press(m, "ctrl+k")
	if want := "Kill task app-0000.task-000 of /app-0000?  y kill (/app-0000 replaces it)  s kill and scale /app-0000 down by one  n no"; screenLine(m, 29) != want {
		t.Errorf("ctrl+k: %q", screenLine(m, 29))
	}
	// Yes runs the action: the master at a closed port refuses, and the UI says so.
	cmd := press(m, "y")
	if m.mode != modeNormal || m.busy != 1 || cmd == nil {
		t.Fatalf("y: mode %d, busy %d, command %v", m.mode, m.busy, cmd != nil)
	}
	msg := cmd()
	done, ok := msg.(actionDoneMsg)
	if !ok || done.err == nil || !strings.Contains(done.err.Error(), "connection refused") {
		t.Fatalf("the kill answered %#v", msg)
	}
	m.Update(msg)
	if m.busy != 0 || !m.flash.err || !strings.HasPrefix(screenLine(m, 29), "KILL_TASK: Post \"http://127.0.0.1:1/api/v1\"") {
		t.Errorf("after the failed kill: busy %d, status %q", m.busy, screenLine(m, 29))
	}
}

func TestScalePrompt(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 3, 100, 30)
	press(m, cmdKeys("apps")...)
	press(m, "s")
	if m.mode != modePrompt || screenLine(m, 29) != "scale /app-0000 to (now 1): _" {
		t.Fatalf("s: mode %d, status %q", m.mode, screenLine(m, 29))
	}
	press(m, "x", "enter")
	if m.mode != modeNormal || m.flash.text != `scale /app-0000: "x" is not a number of instances` {
		t.Errorf("not a number: mode %d, flash %q", m.mode, m.flash.text)
	}
	cmd := press(m, "s", "3", "enter")
	if m.mode != modeNormal || m.busy != 1 || cmd == nil {
		t.Errorf("scale up: mode %d, busy %d: want it sent without a question", m.mode, m.busy)
	}
}

func TestReadOnly(t *testing.T) {
	cfg := fixtureConfig()
	cfg.ReadOnly = true
	m := fixtureModel(t, cfg, 3, 120, 30)
	press(m, cmdKeys("apps")...)
	tests := []struct{ view, key, want string }{
		{"apps", "s", "read-only: scale the app is disabled (atoll tui runs with --read-only)"},
		{"apps", "r", "read-only: restart the app is disabled (atoll tui runs with --read-only)"},
		{"apps", "z", "read-only: suspend the app is disabled (atoll tui runs with --read-only)"},
		{"apps", "ctrl+d", "read-only: destroy the app is disabled (atoll tui runs with --read-only)"},
		{"tasks", "ctrl+k", "read-only: kill the task is disabled (atoll tui runs with --read-only)"},
		{"jobs", "r", "read-only: run the job now is disabled (atoll tui runs with --read-only)"},
		{"jobs", "e", "read-only: enable or disable the job is disabled (atoll tui runs with --read-only)"},
		{"jobs", "ctrl+d", "read-only: delete the job is disabled (atoll tui runs with --read-only)"},
		{"deployments", "r", "read-only: roll the deployment back is disabled (atoll tui runs with --read-only)"},
	}
	for _, tt := range tests {
		press(m, cmdKeys(tt.view)...)
		cmd := press(m, tt.key)
		if cmd != nil || m.mode != modeNormal || m.busy != 0 || m.flash.text != tt.want {
			t.Errorf("%s %s: command %v, mode %d, busy %d, flash %q; want %q", tt.view, tt.key, cmd != nil, m.mode, m.busy, m.flash.text, tt.want)
		}
	}
	press(m, cmdKeys("apps")...)
	if keys := screenLine(m, 28); keys != " enter open  d json  / filter  <> sort  ? help  esc back" {
		t.Errorf("keys line %q: want no actions", keys)
	}
	if !strings.Contains(screenLine(m, 0), "· read-only") {
		t.Errorf("header %q does not say read-only", screenLine(m, 0))
	}
}

func TestEventUpdatesTable(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 2, 120, 30)
	press(m, cmdKeys("tasks")...)
	row := func(key string) string {
		for _, r := range m.top().table.rows {
			if r.key == key {
				return strings.Join(r.cells, "|")
			}
		}
		return ""
	}
	const key = "fw-marathon/app-0001.task-001"
	if got := row(key); got != "app-0001.task-001|/app-0001|RUNNING|host-01|-|marathon|1h" {
		t.Fatalf("row %q", got)
	}
	healthy := false
	update := func(state api.TaskState) {
		m.Update(feedBatch{operatorEventMsg{&api.OperatorEvent{Type: api.OpEventTaskUpdated, TaskUpdated: &api.OpTaskUpdated{
			FrameworkID: api.FrameworkID{Value: "fw-marathon"}, State: state,
			Status: api.TaskStatus{TaskID: api.TaskID{Value: "app-0001.task-001"}, State: state, Healthy: &healthy, Timestamp: float64(fixtureEpoch.Add(30 * 60e9).Unix())},
		}}}})
	}
	update(api.TaskKilling)
	if got := row(key); got != "app-0001.task-001|/app-0001|KILLING|host-01|sick|marathon|1h" {
		t.Errorf("after TASK_UPDATED: row %q", got)
	}
	if !strings.Contains(m.View(), "  app-0001.task-001  /app-0001  KILLING  host-01  sick") {
		t.Errorf("the screen does not show the change:\n%s", m.View())
	}
	added := fixtureTask(1, 7, 3, api.TaskStaging)
	m.Update(feedBatch{operatorEventMsg{&api.OperatorEvent{Type: api.OpEventTaskAdded, TaskAdded: &api.OpTaskAdded{Task: added}}}})
	if got := row("fw-marathon/app-0001.task-007"); got != "app-0001.task-007|/app-0001|STAGING|host-01|-|marathon|1h" {
		t.Errorf("after TASK_ADDED: row %q", got)
	}
	update(api.TaskKilled)
	if got := row(key); got != "" {
		t.Errorf("an ended task is listed: %q", got)
	}
	press(m, "a")
	if got := row(key); got != "app-0001.task-001|/app-0001|KILLED|host-01|sick|marathon|1h" {
		t.Errorf("with ended tasks: row %q", got)
	}
	// The app's counts follow its tasks.
	if c := m.state.counts("/app-0001"); c != (appCounts{staged: 1, running: 1}) {
		t.Errorf("counts %+v", c)
	}
	// Marathon events: an app removed.
	press(m, cmdKeys("apps")...)
	m.Update(feedBatch{marathonEventMsg{marathon.Event{Type: marathon.EventAppTerminated, Data: []byte(`{"eventType":"app_terminated_event","appId":"/app-0000"}`)}}})
	if got := rowKeys(m); !reflect.DeepEqual(got, []string{"/app-0001"}) {
		t.Errorf("apps after app_terminated_event: %v", got)
	}
	press(m, cmdKeys("events")...)
	var events []string
	for _, r := range m.top().table.rows {
		events = append(events, strings.Join(r.cells, "|"))
	}
	want := []string{
		"0s|marathon|app_terminated_event|/app-0000|-",
		"0s|mesos|TASK_UPDATED|app-0001.task-001|KILLED",
		"0s|mesos|TASK_ADDED|app-0001.task-007|STAGING",
		"0s|mesos|TASK_UPDATED|app-0001.task-001|KILLING",
	}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("events, latest first:\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
}

func TestCommandLine(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 2, 100, 30)
	tests := []struct {
		keys   []string
		input  string
		status string
	}{
		{[]string{":", "d", "e", "tab"}, "deployments", ":deployments_ deployments"},
		{[]string{":", "a", "tab"}, "a", ":a_ agents apps"},
		{[]string{":", "d", "p", "tab"}, "deployments", ":deployments_ deployments"},
		{[]string{":", "f", "tab"}, "frameworks", ":frameworks_ frameworks"},
	}
	for _, tt := range tests {
		press(m, tt.keys...)
		if m.mode != modeCommand || m.input.text() != tt.input || screenLine(m, 29) != tt.status {
			t.Errorf("%q: mode %d, input %q, status %q; want %q", tt.keys, m.mode, m.input.text(), screenLine(m, 29), tt.status)
		}
		press(m, "esc")
	}
	errs := []struct{ line, flash string }{
		{"xy", "no command :xy (? lists them)"},
		{"a", ":a could be agents, apps"},
	}
	for _, tt := range errs {
		press(m, cmdKeys(tt.line)...)
		if m.flash.text != tt.flash || !m.flash.err {
			t.Errorf(":%s: flash %q, want %q", tt.line, m.flash.text, tt.flash)
		}
	}
	for _, name := range []string{"no", "ag", "fw", "app", "ts", "dp", "job", "pkg", "ev"} {
		press(m, cmdKeys(name)...)
		if v := findView(name); m.top().view != v {
			t.Errorf(":%s opened %v", name, m.top().view)
		}
	}
	press(m, cmdKeys("home")...)
	if len(m.pages) != 1 {
		t.Errorf(":home left %d pages", len(m.pages))
	}
	if cmd := press(m, cmdKeys("q")...); cmd == nil || reflect.TypeOf(cmd()) != reflect.TypeOf(tea.Quit()) {
		t.Error(":q does not quit")
	}
}

func TestLineInput(t *testing.T) {
	in := newLineInput(":", "")
	for _, k := range []string{"a", "b", "c"} {
		in.update(keyMsg(k))
	}
	steps := []struct {
		key  tea.KeyMsg
		want string
		pos  int
	}{
		{tea.KeyMsg{Type: tea.KeyLeft}, "abc", 2},
		{keyMsg("x"), "abxc", 3},
		{tea.KeyMsg{Type: tea.KeyBackspace}, "abc", 2},
		{tea.KeyMsg{Type: tea.KeyDelete}, "ab", 2},
		{tea.KeyMsg{Type: tea.KeySpace}, "ab ", 3},
		{keyMsg("d"), "ab d", 4},
		{tea.KeyMsg{Type: tea.KeyCtrlW}, "ab ", 3},
		{tea.KeyMsg{Type: tea.KeyHome}, "ab ", 0},
		{tea.KeyMsg{Type: tea.KeyEnd}, "ab ", 3},
		{tea.KeyMsg{Type: tea.KeyCtrlU}, "", 0},
	}
	for i, s := range steps {
		in.update(s.key)
		if in.text() != s.want || in.pos != s.pos {
			t.Errorf("step %d (%v): %q at %d, want %q at %d", i, s.key, in.text(), in.pos, s.want, s.pos)
		}
	}
}

func TestResize(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 30, 80, 24)
	for _, view := range []string{"overview", "apps", "tasks", "agents", "pkgs", "catalog", "events", "help"} {
		press(m, cmdKeys(view)...)
		for _, size := range [][2]int{{80, 24}, {200, 50}, {40, 10}, {132, 43}} {
			m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
			lines := strings.Split(m.View(), "\n")
			if len(lines) != size[1] {
				t.Errorf("%s at %dx%d: %d lines", view, size[0], size[1], len(lines))
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w > size[0] {
					t.Errorf("%s at %dx%d: line %d is %d wide: %q", view, size[0], size[1], i, w, l)
				}
			}
		}
	}
}

func TestConnectionStates(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 1, 120, 20)
	m.Update(feedBatch{connMsg{stream: streamOperator, state: connReconnecting, attempt: 3, err: errors.New("dial tcp 127.0.0.1:5050: connect: connection refused")}})
	if got := screenLine(m, 0); !strings.HasSuffix(got, "reconnecting… (3: dial tcp 127.0.0.1:5050: connect: connection refused)") {
		t.Errorf("header %q", got)
	}
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 20})
	if got, want := screenLine(m, 0), "atoll http://master:5050 | reconnecting… (3: dial tcp 127.0.0.1:5050: connect: …"; got != want {
		t.Errorf("narrow header %q, want %q", got, want)
	}
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 20})
	m.Update(feedBatch{connMsg{stream: streamOperator, state: connConnected}})
	if got := screenLine(m, 0); !strings.HasSuffix(got, "● connected") {
		t.Errorf("header %q", got)
	}
	m.Update(feedBatch{connMsg{stream: streamMarathon, state: connMissing, err: errMissing}})
	m.Update(jobsMsg{err: fmt.Errorf("GET /v1/scheduler/jobs: %w", chronos.ErrNoJobsAPI)})
	m.Update(packagesMsg{missing: true})
	for _, tt := range []struct{ view, want string }{
		{"apps", "the Marathon API is not served by this master (no services framework)"},
		{"deployments", "the Marathon API is not served by this master (no services framework)"},
		{"jobs", "the Chronos API is not served by this master (no jobs framework)"},
		{"pkgs", "the package catalog is not available on this master"},
	} {
		press(m, cmdKeys(tt.view)...)
		if got := screenLine(m, 3); got != "  "+tt.want {
			t.Errorf("%s: %q, want %q", tt.view, got, tt.want)
		}
	}
}

func TestColour(t *testing.T) {
	plain := fixtureModel(t, fixtureConfig(), 3, 100, 30)
	press(plain, cmdKeys("apps")...)
	if v := plain.View(); strings.Contains(v, "\x1b") || !strings.Contains(v, "> /app-0000") {
		t.Errorf("without colour the screen has escapes or no selection mark:\n%q", v)
	}
	cfg := fixtureConfig()
	r := lipgloss.NewRenderer(&strings.Builder{})
	r.SetColorProfile(termenv.ANSI256)
	cfg.Renderer = r
	coloured := fixtureModel(t, cfg, 3, 100, 30)
	press(coloured, cmdKeys("apps")...)
	if v := coloured.View(); !strings.Contains(v, "\x1b[") {
		t.Error("with colour the screen has no escapes")
	}
}

func TestWaitingReasons(t *testing.T) {
	tests := []struct {
		name string
		item marathon.QueueItem
		want []string
	}{
		{name: "no offers", want: []string{"no offers received yet"}},
		{name: "checks", item: marathon.QueueItem{ProcessedOffersSummary: marathon.ProcessedOffersSummary{ProcessedOffersCount: 3,
			RejectSummaryLastOffers: []marathon.DeclinedOfferStep{{Reason: marathon.ReasonUnfulfilledRole, Processed: 3}, {Reason: marathon.ReasonUnfulfilledConstraint, Declined: 1, Processed: 3}, {Reason: marathon.ReasonInsufficientMemory, Declined: 2, Processed: 2}}}},
			want: []string{"constraints not met: 1 of 3 offers declined", "not enough memory: 2 of 2 offers declined"}},
		{name: "last offer", item: marathon.QueueItem{ProcessedOffersSummary: marathon.ProcessedOffersSummary{ProcessedOffersCount: 1},
			LastUnusedOffers: []marathon.UnusedOffer{{Offer: marathon.Offer{Hostname: "host-3"}, Reason: []string{marathon.ReasonInsufficientPorts, "SomethingNew"}}}},
			want: []string{"last offer (from host-3): not enough ports, SomethingNew"}},
		{name: "backoff and failure", item: marathon.QueueItem{Delay: &marathon.QueueDelay{TimeLeftSeconds: 12}, ProcessedOffersSummary: marathon.ProcessedOffersSummary{ProcessedOffersCount: 1},
			LastTaskFailure: &marathon.TaskFailure{State: "TASK_FAILED", Message: "exited with 1"}},
			want: []string{"backing off after failures: next launch in 12s", "last failure: FAILED exited with 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := waitingReasons(tt.item); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("waitingReasons = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := fixtureConfig()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no client", func(c *Config) { c.Chronos = nil }, "tui: the API, Marathon, Chronos and Universe clients are required"},
		{"no catalog client", func(c *Config) { c.Universe = nil }, "tui: the API, Marathon, Chronos and Universe clients are required"},
		{"timeout", func(c *Config) { c.RequestTimeout = 0 }, "tui: request timeout 0s and connect timeout 10s must be positive"},
		{"backoff", func(c *Config) { c.ReconnectMax = c.ReconnectMin / 2 }, "tui: reconnect backoff 250ms to 125ms: want 0 < min ≤ max"},
		{"interval", func(c *Config) { c.NodesInterval = -1 }, "tui: nodes interval -1ns and refresh delay 250ms must be positive"},
		{"sizes", func(c *Config) { c.LogLines = 0 }, "tui: max events 1000, max ended tasks 1000, log lines 0: want positive numbers"},
	}
	for _, tt := range tests {
		cfg := good
		tt.edit(&cfg)
		if err := cfg.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted it", tt.name)
		}
	}
}

// TestKeysTogether: keys that arrive in one read (typed fast, or sent by a script) act one
// by one; a paste goes whole into the field it is pasted in.
func TestKeysTogether(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 3, 100, 30)
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(":apps app-0001")})
	m.Update(keyMsg("enter"))
	if p := m.top(); p.view != viewApps || p.filter != "app-0001" || !reflect.DeepEqual(rowKeys(m), []string{"/app-0001"}) {
		t.Fatalf("typed together: view %v, filter %q, rows %v", p.view, p.filter, rowKeys(m))
	}
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("sz"), Paste: true})
	if m.mode != modeNormal || m.flash.text != "" {
		t.Errorf("a paste acted as keys: mode %d, flash %q", m.mode, m.flash.text)
	}
	press(m, "esc", "/")
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("0002"), Paste: true})
	if got := rowKeys(m); m.input.text() != "0002" || !reflect.DeepEqual(got, []string{"/app-0002"}) {
		t.Errorf("pasted in the filter: %q, rows %v", m.input.text(), got)
	}
}

// TestNodeNames: masters show by their node names, which the gossip members' id tags give.
func TestNodeNames(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 1, 100, 30)
	m.Update(nodesMsg{raft: &api.RaftPeers{LeaderID: "9c49518699f2f2af", Servers: []api.RaftServer{
		{ID: "9c49518699f2f2af", State: api.RaftLeader}, {ID: "71c9d9e1ce0a7fcc", State: api.RaftFollower}}}})
	if got := screenLine(m, 2); got != "MASTERS    9c49518699f2f2af leader · 71c9d9e1ce0a7fcc follower" {
		t.Errorf("without members: %q", got)
	}
	m.Update(nodesMsg{raft: &api.RaftPeers{LeaderID: "9c49518699f2f2af", Servers: []api.RaftServer{
		{ID: "9c49518699f2f2af", State: api.RaftLeader}, {ID: "71c9d9e1ce0a7fcc", State: api.RaftFollower}}},
		members: []api.Member{{Name: "m1", Tags: map[string]string{api.MemberTagID: "9c49518699f2f2af"}}, {Name: "m2", Tags: map[string]string{api.MemberTagID: "71c9d9e1ce0a7fcc"}}}})
	if got := screenLine(m, 2); got != "MASTERS    m1 leader · m2 follower" || !strings.HasPrefix(screenLine(m, 0), "atoll http://master:5050 · leader m1 ") {
		t.Errorf("with members: %q, header %q", got, screenLine(m, 0))
	}
}
