package tui

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

// fieldSummary is a field as one line: its label indented by its depth, a star when
// required, its type and its value as the form shows it.
func fieldSummary(f *formField) string {
	label := strings.Repeat("  ", f.depth) + f.name()
	if f.required {
		label += " *"
	}
	var value string
	switch f.kind {
	case fieldSection:
		return label
	case fieldBoolean:
		value = map[bool]string{true: "[x]", false: "[ ]"}[f.on]
	case fieldChoice:
		value = "‹ - ›"
		if !f.unset || f.choice > 0 {
			value = "‹ " + displayText(f.choices[f.choice]) + " ›"
		}
	default:
		value = f.text()
	}
	return fmt.Sprintf("%s [%s] %s", label, f.typeName(), value)
}

func TestBuildFields(t *testing.T) {
	deep := `{"type": "string", "default": "deep"}`
	for range maxFormDepth + 1 {
		deep = `{"type": "object", "properties": {"n": ` + deep + `}}`
	}
	tests := []struct {
		name, config string
		want         []string
		err          string
	}{
		{name: "sections in the schema's order", config: helloConfig, want: []string{
			"service *",
			"  name * [string] hello",
			"  instances [integer ≥ 0] 1",
			"  cpus [number ≥ 0.01] 0.1",
			"  greeting [one of hello, hi, hey] ‹ hello ›",
			"  verbose [boolean] [ ]",
			"  labels [JSON object] ",
			"owner * [string] ",
		}},
		{name: "an enclosing default replaces the properties' own", config: `{"properties": {"a": {"type": "object", "default": {"x": "from a"},
			"properties": {"x": {"type": "string", "default": "own"}, "y": {"type": "integer", "default": 3, "maximum": 9, "exclusiveMaximum": true}}}}}`,
			want: []string{"a", "  x [string] from a", "  y [integer < 9] "}},
		{name: "types", config: `{"properties": {
			"nullable": {"type": ["null", "string"], "default": "s"},
			"flag": {"default": true},
			"ratio": {"default": 1.5, "minimum": 0, "exclusiveMinimum": true},
			"word": {"default": "w"},
			"anything": {},
			"list": {"type": "array", "default": [1, "<b>", {"z": 1, "a": 2}]},
			"map": {"type": "object", "additionalProperties": true},
			"level": {"enum": [1, 2, 3], "default": 2},
			"mode": {"type": "string", "enum": ["a", "b"]},
			"odd": {"type": "wibble", "default": {"k": "v"}},
			"quoted": {"type": "wibble", "default": "s"},
			"skipped": true,
			"empty": {"type": "object", "properties": {"only": false}}}}`,
			want: []string{
				"nullable [string] s",
				"flag [boolean] [x]",
				"ratio [number > 0] 1.5",
				"word [string] w",
				"anything [JSON] ",
				`list [JSON array] [1,"<b>",{"z":1,"a":2}]`,
				"map [JSON object] ",
				"level [one of 1, 2, 3] ‹ 2 ›",
				"mode [one of a, b] ‹ - ›",
				`odd [JSON] {"k":"v"}`,
				`quoted [JSON] "s"`,
			}},
		{name: "too deep for sections", config: `{"properties": {"top": ` + deep + `}}`, want: []string{
			"top", "  n", "    n", "      n", "        n", "          n", "            n", "              n",
			`                n [JSON object] `,
		}},
		{name: "no config", config: "", want: nil},
		{name: "not JSON", config: `{"properties": `, err: "config.json is not JSON: unexpected EOF"},
		{name: "two documents", config: `{} {}`, err: "config.json is not JSON: more than one JSON value"},
		{name: "not an object", config: `[]`, err: "config.json is not a JSON Schema object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields, err := buildFields(json.RawMessage(tt.config))
			if tt.err != "" || err != nil {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			var got []string
			for _, f := range fields {
				got = append(got, fieldSummary(f))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("fields:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// helloPackage is the hello package as a describe answer gives it.
func helloPackage() *universe.Package {
	return &universe.Package{Metadata: universe.Metadata{PackagingVersion: "4.0", Name: "hello", Version: "1.1", Description: "Answers.",
		PreInstallNotes: "Every hello task takes a little memory.", PostInstallNotes: "Ask {{service.name}}."},
		ReleaseVersion: 1, Config: json.RawMessage(helloConfig)}
}

// formModel is a fixture model on the install form of hello: the catalog and the package
// are answered as the master would.
func formModel(t *testing.T, cfg Config) *Model {
	t.Helper()
	m := fixtureModel(t, cfg, 3, 100, 30)
	press(m, cmdKeys("catalog")...)
	m.Update(catalogMsg{seq: m.catalogSeq, results: []universe.SearchResult{{Name: "hello", CurrentVersion: "1.1"}}})
	press(m, "i")
	if p := m.top(); p.kind != pagePackage || !p.detail.installAfter {
		t.Fatalf("i on the catalog: page %d", p.kind)
	}
	m.Update(describeMsg{name: "hello", pkg: helloPackage()})
	if p := m.top(); p.kind != pageForm || p.form.name != "hello" || p.form.version != "1.1" {
		t.Fatalf("after the package was read: page %d", p.kind)
	}
	return m
}

func TestFormEditing(t *testing.T) {
	m := formModel(t, fixtureConfig())
	f := m.top().form
	steps := []struct {
		keys []string
		// focus is the focused field's path ("" the app id) after the keys.
		focus string
		// line is the focused field's line on screen.
		line    string
		options string
	}{
		{typed("/x"), "", "> app id         /x_                                       optional", ""},
		{[]string{"tab"}, "service.name", ">   name *       hello_                                    string", ""},
		{[]string{"shift+tab"}, "", "> app id         /x_                                       optional", ""},
		{[]string{"down", "down", "backspace", "5"}, "service.instances",
			">   instances    5_                                        integer ≥ 0 · default 1", `{"service":{"instances":5}}`},
		{[]string{"tab", "ctrl+u", "x"}, "service.cpus",
			">   cpus         x_                                        number ≥ 0.01 · default 0.1", `{"service":{"cpus":"x","instances":5}}`},
		{[]string{"ctrl+u", "backspace", "0", ".", "1"}, "service.cpus",
			">   cpus         0.1_                                      number ≥ 0.01", `{"service":{"instances":5}}`},
		{[]string{"tab", "right"}, "service.greeting",
			`>   greeting     ‹ hi ›                                    one of hello, hi, hey · default "hello"`, `{"service":{"greeting":"hi","instances":5}}`},
		{[]string{"right", "right"}, "service.greeting",
			">   greeting     ‹ hello ›                                 one of hello, hi, hey", `{"service":{"instances":5}}`},
		{[]string{"left"}, "service.greeting",
			`>   greeting     ‹ hey ›                                   one of hello, hi, hey · default "hello"`, `{"service":{"greeting":"hey","instances":5}}`},
		{[]string{"tab", "space"}, "service.verbose",
			">   verbose      [x]                                       boolean · default false", `{"service":{"greeting":"hey","instances":5,"verbose":true}}`},
		{[]string{"space"}, "service.verbose",
			">   verbose      [ ]                                       boolean", `{"service":{"greeting":"hey","instances":5}}`},
		{append([]string{"tab"}, typed(`{"a": "b"}`)...), "service.labels",
			`>   labels       {"a": "b"}_                               JSON object`, `{"service":{"greeting":"hey","instances":5,"labels":{"a":"b"}}}`},
		// Keys that do something elsewhere are text here.
		{append([]string{"tab"}, typed("q?:/me")...), "owner",
			"> owner *        q?:/me_                                   string", `{"owner":"q?:/me","service":{"greeting":"hey","instances":5,"labels":{"a":"b"}}}`},
		// The last field stays focused.
		{[]string{"tab"}, "owner",
			"> owner *        q?:/me_                                   string", `{"owner":"q?:/me","service":{"greeting":"hey","instances":5,"labels":{"a":"b"}}}`},
	}
	for i, s := range steps {
		press(m, s.keys...)
		fld := f.focused()
		path := fld.path
		if fld.appID {
			path = ""
		}
		line := screenLine(m, 3+f.focus)
		if path != s.focus || line != s.line || string(f.options()) != s.options {
			t.Fatalf("step %d %q: focus %q, line\n%q\noptions %s\nwant focus %q, line\n%q\noptions %s", i, s.keys, path, line, f.options(), s.focus, s.line, s.options)
		}
	}
	if f.appID() != "/x" || m.mode != modeNormal || len(m.pages) != 4 {
		t.Errorf("app id %q, mode %d, %d pages", f.appID(), m.mode, len(m.pages))
	}
	if got := screenLine(m, 28); got != " enter check & install  tab ↑↓ move  space ←→ toggle/choose  esc cancel" {
		t.Errorf("keys line %q", got)
	}
	if got := screenLine(m, 27); got != "Who answers for it." {
		t.Errorf("help line %q: want the focused field's description", got)
	}
	press(m, "esc")
	if p := m.top(); p.kind != pagePackage || m.flash.text != "install of hello cancelled" {
		t.Errorf("esc: page %d, flash %q", p.kind, m.flash.text)
	}
}

// schemaMismatch is the master's answer to options that fail the schema.
func schemaMismatch(problems ...universe.FieldError) error {
	data, _ := json.Marshal(map[string]any{"errors": problems})
	return &universe.ResponseError{Path: "/package/render", Status: 400, Body: universe.Error{Type: "JsonSchemaMismatch", Message: "invalid options", Data: data}}
}

func TestFormSubmit(t *testing.T) {
	m := formModel(t, fixtureConfig())
	p := m.top()
	f := p.form
	cmd := press(m, "enter")
	if cmd == nil || f.stage != stageChecking || m.busy != 1 {
		t.Fatalf("enter: command %v, stage %d, busy %d", cmd != nil, f.stage, m.busy)
	}
	if !strings.HasPrefix(screenLine(m, 2), "install hello 1.1  checking the options with the master…") {
		t.Errorf("while checking: %q", screenLine(m, 2))
	}
	// Keys wait for the answer.
	press(m, "x", "tab", "enter")
	if f.appID() != "" || f.focus != 0 || m.busy != 1 {
		t.Errorf("keys changed the form while it was checked: app id %q, focus %d, busy %d", f.appID(), f.focus, m.busy)
	}

	// The master's problems go next to their fields; the others above the form.
	m.Update(renderDoneMsg{form: f, err: schemaMismatch(
		universe.FieldError{Path: "owner", Message: "required option is missing"},
		universe.FieldError{Path: "service.instances", Message: "must be 0 or more, got -1"},
		universe.FieldError{Path: "service.instancez", Message: "unknown option: the schema allows no other properties here"},
		universe.FieldError{Path: "service.labels.a", Message: "expected a string, got a number"},
		universe.FieldError{Path: "service.instances", Message: "expected an integer, got a number"},
	)})
	if f.stage != stageEdit || m.busy != 0 || f.focused().path != "service.instances" {
		t.Fatalf("after the problems: stage %d, busy %d, focus %s", f.stage, m.busy, f.focused().path)
	}
	wantLines := []string{
		"install hello 1.1  * required · fields start at the package's defaults",
		"✗ service.instancez: unknown option: the schema allows no other properties here",
		"  app id                                                   optional",
		"  service *",
		"    name *       hello                                     string",
		">   instances    1_                                        integer ≥ 0",
		"                 ✗ must be 0 or more, got -1; expected an integer, got a number",
		"    cpus         0.1                                       number ≥ 0.01",
		"    greeting     ‹ hello ›                                 one of hello, hi, hey",
		"    verbose      [ ]                                       boolean",
		"    labels                                                 JSON object",
		"                 ✗ .a: expected a string, got a number",
		"  owner *                                                  string",
		"                 ✗ required option is missing",
	}
	for i, want := range wantLines {
		if got := screenLine(m, 2+i); got != want {
			t.Errorf("line %d: %q\nwant      %q", 2+i, got, want)
		}
	}
	// Editing a field clears its problem.
	press(m, "backspace", "3")
	if f.focused().err != "" || f.fields[len(f.fields)-1].err != "required option is missing" {
		t.Errorf("after an edit: instances %q, owner %q", f.focused().err, f.fields[len(f.fields)-1].err)
	}

	// The options render: the question, with what the install does on the page.
	press(m, "enter")
	m.Update(renderDoneMsg{form: f, rendered: renderedSummary{id: "/hello", group: true, apps: []string{"/hello/a", "/hello/b"}}})
	if m.mode != modeConfirm || f.stage != stageConfirm || screenLine(m, 29) != "Install hello 1.1 as group /hello?  y install  n no" {
		t.Fatalf("rendered: mode %d, stage %d, status %q", m.mode, f.stage, screenLine(m, 29))
	}
	want := []string{"install hello 1.1", "creates group /hello: /hello/a, /hello/b", "", "BEFORE INSTALLING", "  Every hello task takes a little memory.",
		"", "OPTIONS SET", "  service.instances: 3"}
	if got := m.confirmLines(f); !reflect.DeepEqual(got, want) {
		t.Errorf("confirmation:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := screenLine(m, 28); got != " esc cancel" {
		t.Errorf("keys line while asked %q", got)
	}
	press(m, "n")
	if m.mode != modeNormal || f.stage != stageEdit || m.flash.text != "cancelled" {
		t.Fatalf("n: mode %d, stage %d, flash %q", m.mode, f.stage, m.flash.text)
	}

	// The install fails: the form is back, with why.
	press(m, "enter")
	m.Update(renderDoneMsg{form: f, rendered: renderedSummary{id: "/hello"}})
	if cmd := press(m, "y"); cmd == nil || f.stage != stageInstalling || m.busy != 1 {
		t.Fatalf("y: command %v, stage %d, busy %d", cmd != nil, f.stage, m.busy)
	}
	m.Update(installDoneMsg{form: f, err: &universe.ResponseError{Path: "/package/install", Status: 409,
		Body: universe.Error{Type: "PackageAlreadyInstalled", Message: "/hello is already installed"}}})
	if f.stage != stageEdit || !reflect.DeepEqual(f.problems, []string{"/hello is already installed"}) ||
		m.flash.text != "install hello 1.1: POST /package/install: 409 /hello is already installed" || !m.flash.err {
		t.Fatalf("failed install: stage %d, problems %q, flash %q", f.stage, f.problems, m.flash.text)
	}

	// It installs: the install's page replaces the form and follows the deployment.
	press(m, "enter")
	m.Update(renderDoneMsg{form: f, rendered: renderedSummary{id: "/hello"}})
	press(m, "y")
	cmd = m.update(installDoneMsg{form: f, resp: &universe.InstallResponse{PackageName: "hello", PackageVersion: "1.1", AppID: "/hello",
		PostInstallNotes: "Ask hello.", DeploymentID: "d-1"}})
	p = m.top()
	if p.kind != pageInstall || cmd == nil || m.busy != 0 || m.flash.text != "installed hello 1.1 as /hello" || m.pages[len(m.pages)-2].kind != pagePackage {
		t.Fatalf("installed: page %d, command %v, busy %d, flash %q", p.kind, cmd != nil, m.busy, m.flash.text)
	}
	summary := func() string { return strings.Join(m.installSummary(p), "|") }
	if got := summary(); got != "package hello 1.1 installed as /hello|waiting for its apps to show…||AFTER INSTALLING|  Ask hello." {
		t.Errorf("summary %q", got)
	}
	event := func(typ, data string) {
		m.Update(feedBatch{marathonEventMsg{marathon.Event{Type: typ, Data: []byte(data)}}})
	}
	event(marathon.EventAPIPost, `{"uri": "/v2/apps", "appDefinition": {"id": "/hello", "instances": 2, "cmd": "hello"}}`)
	event(marathon.EventDeploymentInfo, `{"plan": {"id": "d-1", "affectedApps": ["/hello"], "currentStep": 1, "totalSteps": 1,
		"currentActions": [{"action": "StartApplication", "app": "/hello"}]}}`)
	if got := summary(); got != "package hello 1.1 installed as /hello|deployment d-1: step 1/1 Start /hello||AFTER INSTALLING|  Ask hello." {
		t.Errorf("summary during the deployment %q", got)
	}
	event(marathon.EventDeploymentSuccess, `{"id": "d-1", "plan": {"id": "d-1", "affectedApps": ["/hello"]}}`)
	if got := summary(); got != "package hello 1.1 installed as /hello|starting: 0 of 2 tasks running||AFTER INSTALLING|  Ask hello." {
		t.Errorf("summary after the deployment %q", got)
	}
	for j := range 2 {
		task := fixtureTask(0, j, 3, api.TaskRunning)
		task.Labels = &api.Labels{Labels: []api.Label{{Key: api.LabelAppID, Value: "/hello"}}}
		task.TaskID.Value = fmt.Sprintf("hello.%d", j)
		m.Update(feedBatch{operatorEventMsg{&api.OperatorEvent{Type: api.OpEventTaskAdded, TaskAdded: &api.OpTaskAdded{Task: task}}}})
	}
	if got := summary(); got != "package hello 1.1 installed as /hello|deployed: 2 of 2 tasks running||AFTER INSTALLING|  Ask hello." {
		t.Errorf("summary with the tasks running %q", got)
	}
	if got := rowKeys(m); !reflect.DeepEqual(got, []string{"/hello"}) {
		t.Errorf("the install page lists apps %v, want /hello alone", got)
	}
}

// packageFixture is a fixture model that knows installed packages and the catalog.
func packageFixture(t *testing.T, cfg Config) *Model {
	t.Helper()
	m := fixtureModel(t, cfg, 3, 120, 30)
	installed := func(name, version, appID string, framework bool) packageRecord {
		return packageRecord{name: name, version: version, appID: appID, framework: framework, info: universe.Installation{AppID: appID,
			PackageInformation: universe.InstalledPackageInformation{PackageDefinition: universe.PackageMetadata{Name: name, Version: version, Framework: framework}}}}
	}
	m.Update(packagesMsg{packages: []packageRecord{
		installed("hello", "1.1", "/app-0001", false),
		installed("hello", "1.0", "/app-0002", false),
		installed("relay", "2.0", "/gone", true),
	}})
	press(m, cmdKeys("catalog")...)
	m.Update(catalogMsg{seq: m.catalogSeq, results: []universe.SearchResult{
		{Name: "hello", CurrentVersion: "1.1", Description: "Answers.\nAnd more."},
		{Name: "relay", CurrentVersion: "2.0", Framework: true, Description: "Relays."},
		{Name: "stack", CurrentVersion: "1.0", Description: "A stack."},
	}})
	return m
}

func TestPackageRows(t *testing.T) {
	m := packageFixture(t, fixtureConfig())
	rows := func() []string {
		var out []string
		for _, r := range m.top().table.rows {
			out = append(out, strings.Join(r.cells, "|"))
		}
		return out
	}
	want := []string{"hello|1.1|2|-|Answers.", "relay|2.0|1|yes|Relays.", "stack|1.0|-|-|A stack."}
	if got := rows(); !reflect.DeepEqual(got, want) {
		t.Errorf("catalog rows %q, want %q", got, want)
	}
	press(m, "tab")
	want = []string{"hello|1.1|/app-0001|-|2/2|-|Running", "hello|1.0|/app-0002|-|3/3|-|Running", "relay|2.0|/gone|yes|-|-|no apps"}
	if got := rows(); m.top().view != viewPackages || !reflect.DeepEqual(got, want) {
		t.Errorf(":pkgs rows %q, want %q", got, want)
	}
	// A task of an installed app ends: the row follows.
	m.Update(feedBatch{operatorEventMsg{&api.OperatorEvent{Type: api.OpEventTaskUpdated, TaskUpdated: &api.OpTaskUpdated{
		FrameworkID: api.FrameworkID{Value: "fw-marathon"}, State: api.TaskFailed,
		Status: api.TaskStatus{TaskID: api.TaskID{Value: "app-0001.task-000"}, State: api.TaskFailed}}}}})
	if got := rows()[0]; got != "hello|1.1|/app-0001|-|1/2|-|Running" {
		t.Errorf("after a task failed: %q", got)
	}
	if cmd := press(m, "tab"); cmd == nil || m.top().view != viewCatalog || m.busy != 1 {
		t.Errorf("tab back to the catalog: command %v, view %s, busy %d; want a search", cmd != nil, m.top().view.name, m.busy)
	}
}

func TestCatalogSearch(t *testing.T) {
	m := fixtureModel(t, fixtureConfig(), 1, 100, 30)
	press(m, cmdKeys("catalog foo")...)
	press(m, cmdKeys("catalog bar")...)
	if m.catalogSeq != 2 || m.busy != 2 {
		t.Fatalf("two searches: seq %d, busy %d", m.catalogSeq, m.busy)
	}
	// The first answer comes last: it is not shown.
	m.Update(catalogMsg{seq: 2, query: "bar", results: []universe.SearchResult{{Name: "barn", CurrentVersion: "1"}}})
	m.Update(catalogMsg{seq: 1, query: "foo", results: []universe.SearchResult{{Name: "food", CurrentVersion: "1"}}})
	if got := rowKeys(m); !reflect.DeepEqual(got, []string{"barn"}) || m.busy != 0 || screenLine(m, 1) != `overview › catalog  1/1 · search "bar"` {
		t.Errorf("rows %v, busy %d, title %q", got, m.busy, screenLine(m, 1))
	}
	press(m, "s")
	if m.mode != modePrompt || screenLine(m, 29) != "search the catalog: bar_" {
		t.Fatalf("s: mode %d, status %q", m.mode, screenLine(m, 29))
	}
	press(m, "ctrl+u")
	press(m, typed("nothing")...)
	if cmd := press(m, "enter"); cmd == nil || m.catalogSeq != 3 {
		t.Fatalf("the search was not sent: seq %d", m.catalogSeq)
	}
	m.Update(catalogMsg{seq: 3, query: "nothing"})
	if got := screenLine(m, 3); got != `  no package matches "nothing" (s searches again)` {
		t.Errorf("empty search: %q", got)
	}
	press(m, cmdKeys("catalog")...)
	m.Update(catalogMsg{seq: m.catalogSeq, missing: true})
	if got := screenLine(m, 3); got != "  the package catalog is not available on this master" {
		t.Errorf("no catalog: %q", got)
	}
}

func TestUninstallQuestions(t *testing.T) {
	m := packageFixture(t, fixtureConfig())
	tests := []struct {
		name     string
		keys     []string
		question string
	}{
		{"catalog, installed twice", []string{"enter"}, "hello is installed 2 times: uninstall which?  1 /app-0001  2 /app-0002  a all  n no"},
		{"catalog, installed once", []string{"j"}, "Uninstall relay from /gone, removing everything it created?  y yes  n no"},
		{"pkgs, the installation selected", []string{"tab", "j"}, "Uninstall hello from /app-0002, removing everything it created?  y yes  n no"},
	}
	for _, tt := range tests {
		press(m, tt.keys...)
		if tt.keys[0] == "enter" {
			// From the package's page.
			m.Update(describeMsg{name: "hello", pkg: helloPackage()})
		}
		press(m, "u")
		if m.mode != modeConfirm || screenLine(m, 29) != tt.question {
			t.Errorf("%s: mode %d, status %q", tt.name, m.mode, screenLine(m, 29))
		}
		press(m, "esc")
		if tt.keys[0] == "enter" {
			press(m, "esc")
		}
	}
	press(m, "tab", "j", "j", "u")
	if m.flash.text != "package stack is not installed" || !m.flash.err || m.mode != modeNormal {
		t.Errorf("u on stack: flash %q, mode %d", m.flash.text, m.mode)
	}
	// All of them: the master at a closed port refuses, and the UI says so.
	press(m, "g", "u")
	busy := m.busy
	cmd := press(m, "a")
	if cmd == nil || m.busy != busy+1 {
		t.Fatalf("a: command %v, busy %d", cmd != nil, m.busy)
	}
	msg := cmd()
	done, ok := msg.(actionDoneMsg)
	if !ok || !done.packages {
		t.Fatalf("uninstall answered %#v", msg)
	}
	m.Update(msg)
	if want := "POST /package/uninstall: dial tcp 127.0.0.1:1: connect: connection refused"; m.flash.text != want || m.busy != busy {
		t.Errorf("flash %q, busy %d; want %q", m.flash.text, m.busy, want)
	}
}

func TestPackagesReadOnly(t *testing.T) {
	cfg := fixtureConfig()
	cfg.ReadOnly = true
	m := packageFixture(t, cfg)
	for _, tt := range []struct{ view, key, want string }{
		{"catalog", "i", "read-only: install the package is disabled (atoll tui runs with --read-only)"},
		{"catalog", "u", "read-only: uninstall the package and everything it created is disabled (atoll tui runs with --read-only)"},
		{"pkgs", "u", "read-only: uninstall the package and everything it created is disabled (atoll tui runs with --read-only)"},
	} {
		press(m, cmdKeys(tt.view)...)
		if tt.view == "catalog" {
			m.Update(catalogMsg{seq: m.catalogSeq, results: []universe.SearchResult{{Name: "hello", CurrentVersion: "1.1"}}})
		}
		cmd := press(m, tt.key)
		if cmd != nil || m.mode != modeNormal || len(m.pages) != 2 || m.flash.text != tt.want {
			t.Errorf("%s %s: command %v, mode %d, %d pages, flash %q", tt.view, tt.key, cmd != nil, m.mode, len(m.pages), m.flash.text)
		}
	}
	// The package page refuses too, and says nothing of the keys it refuses.
	press(m, cmdKeys("catalog")...)
	m.Update(catalogMsg{seq: m.catalogSeq, results: []universe.SearchResult{{Name: "hello", CurrentVersion: "1.1"}}})
	press(m, "enter")
	m.Update(describeMsg{name: "hello", pkg: helloPackage()})
	press(m, "i")
	if m.top().kind != pagePackage || m.flash.text != "read-only: install the package is disabled (atoll tui runs with --read-only)" {
		t.Errorf("i on the package page: page %d, flash %q", m.top().kind, m.flash.text)
	}
	if got := screenLine(m, 28); got != " d json  ? help  esc back" {
		t.Errorf("keys line %q", got)
	}
}

// TestDescribeLines: a package page says what the package is, its versions, notes and
// options; it waits for the answer, and says why there is none.
func TestDescribeLines(t *testing.T) {
	m := packageFixture(t, fixtureConfig())
	press(m, "enter")
	p := m.top()
	if got := m.packageLines(p); !reflect.DeepEqual(got, []string{"reading package hello…"}) {
		t.Errorf("before the answer: %q", got)
	}
	pkg := helloPackage()
	pkg.Framework, pkg.Selected, pkg.Website, pkg.Tags = true, true, "https://hello.invalid", []string{"greeting", "test"}
	m.Update(describeMsg{name: "hello", pkg: pkg, versions: map[string]string{"1.0": "0", "1.1": "1", "0.9": "x"}})
	got := m.packageLines(p)
	want := []string{
		"hello 1.1 (release 1) · a framework · selected", "  Answers.", "",
		"website     https://hello.invalid", "tags        greeting, test", "installed   /app-0001 (1.1), /app-0002 (1.0)",
		"", "VERSIONS", "  1.1 (release 1) ← this one · 1.0 (release 0) · 0.9 (release x)",
		"", "BEFORE INSTALLING", "  Every hello task takes a little memory.",
		"", "AFTER INSTALLING", "  Ask {{service.name}}.",
		"", "OPTIONS  * required · i installs with a form of them",
		`  service.name *       string · default "hello"`,
		"  service.instances    integer ≥ 0 · default 1",
		"  service.cpus         number ≥ 0.01 · default 0.1",
		`  service.greeting     one of hello, hi, hey · default "hello"`,
		"  service.verbose      boolean · default false",
		"  service.labels       JSON object",
		"  owner *              string",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	press(m, "esc", "j", "enter")
	m.Update(describeMsg{name: "relay", err: &universe.ResponseError{Path: "/package/describe", Status: 400, Body: universe.Error{Type: "PackageNotFound", Message: "no package relay"}}})
	if got := m.packageLines(m.top()); !reflect.DeepEqual(got, []string{"reading package relay failed: POST /package/describe: 400 no package relay"}) {
		t.Errorf("a failed read: %q", got)
	}
	press(m, "i")
	if m.top().kind != pagePackage || m.flash.text != "package relay could not be read: POST /package/describe: 400 no package relay" {
		t.Errorf("i on an unread package: page %d, flash %q", m.top().kind, m.flash.text)
	}
}

// TestFormNarrow: the form fits a small terminal: the focused field stays on screen.
func TestFormNarrow(t *testing.T) {
	m := formModel(t, fixtureConfig())
	m.Update(tea.WindowSizeMsg{Width: 40, Height: 10})
	f := m.top().form
	for range len(f.fields) {
		press(m, "tab")
		lines := strings.Split(m.View(), "\n")
		if len(lines) != 10 {
			t.Fatalf("%d lines", len(lines))
		}
		shown := slices.IndexFunc(lines[3:7], func(l string) bool { return strings.HasPrefix(l, ">") && strings.Contains(l, f.focused().name()) })
		if shown < 0 {
			t.Fatalf("%s is focused but not on screen:\n%s", f.focused().path, m.View())
		}
	}
	if got := strings.Split(m.View(), "\n")[6]; got != "> owner *        _          string" {
		t.Errorf("the last field at 40×10: %q", got)
	}
}

// TestPackagesRefresh: a deployment that ends, or an app that goes, has the installed
// packages read again (an install or uninstall by anyone shows so), unless the master has
// no catalog.
func TestPackagesRefresh(t *testing.T) {
	for _, tt := range []struct {
		name       string
		missing    bool
		event, doc string
		want       bool
	}{
		{"deployment ended", false, marathon.EventDeploymentSuccess, `{"id": "d", "plan": {"id": "d"}}`, true},
		{"app gone", false, marathon.EventAppTerminated, `{"appId": "/a"}`, true},
		{"deployment step", false, marathon.EventDeploymentStepSuccess, `{"plan": {"id": "d"}}`, false},
		{"no catalog", true, marathon.EventDeploymentSuccess, `{"id": "d", "plan": {"id": "d"}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := fixtureModel(t, fixtureConfig(), 1, 100, 30)
			m.Update(packagesMsg{missing: tt.missing})
			m.Update(feedBatch{marathonEventMsg{marathon.Event{Type: tt.event, Data: []byte(tt.doc)}}})
			if m.refresh.packages != tt.want || (tt.want && !m.refresh.pending) {
				t.Errorf("packages to read %v (scheduled %v), want %v", m.refresh.packages, m.refresh.pending, tt.want)
			}
		})
	}
}
