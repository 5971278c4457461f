package pkgs

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
)

func render(tb testing.TB, p *Package, options, appID string) *Rendered {
	tb.Helper()
	r, err := p.Render(json.RawMessage(options), appID)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func label(tb testing.TB, labels map[string]string, name string) string {
	tb.Helper()
	data, err := base64.StdEncoding.DecodeString(labels[name])
	if err != nil {
		tb.Fatalf("label %s: %v", name, err)
	}
	return string(data)
}

func TestRenderApp(t *testing.T) {
	p := resolve(t, "hello", "1.1.0")
	r := render(t, p, ``, "")
	app := r.App
	if r.Group != nil || app == nil {
		t.Fatalf("app %v, group %v", app, r.Group)
	}
	if app.ID != "/hello" || app.Cpus != 0.1 || app.Mem != 32 {
		t.Errorf("id %q cpus %v mem %v", app.ID, app.Cpus, app.Mem)
	}
	if got := app.Container.Docker.Image; got != "registry.example.com/hello:1.1.0" {
		t.Errorf("image %q (from resource.json)", got)
	}
	if got := app.Env["GREETING"].Value; got != `hello, <world> & "friends"` {
		t.Errorf("greeting %q: neither HTML-escaped nor left unescaped in the JSON", got)
	}
	if len(app.Constraints) != 0 || len(app.PortDefinitions) != 1 || app.PortDefinitions[0].Labels["VIP_0"] != "/hello:80" {
		t.Errorf("constraints %v, port definitions %+v", app.Constraints, app.PortDefinitions)
	}
	wantLabels := map[string]string{
		"DCOS_SERVICE_NAME":      "hello",
		universe.LabelName:       "hello", // over the template's own value
		universe.LabelVersion:    "1.1.0",
		universe.LabelSource:     "https://repo.example.com/test.json",
		universe.LabelOptions:    "e30=", // {}
		universe.LabelMetadata:   app.Labels[universe.LabelMetadata],
		universe.LabelDefinition: app.Labels[universe.LabelDefinition],
	}
	if !reflect.DeepEqual(app.Labels, wantLabels) {
		t.Errorf("labels %v\nwant %v", app.Labels, wantLabels)
	}
	wantMetadata := `{"packagingVersion":"4.0","name":"hello","version":"1.1.0","maintainer":"atoll@example.com",` +
		`"description":"A web server that says hello.","tags":["web","example"],"selected":true,"framework":false,` +
		`"preInstallNotes":"Needs 0.1 CPU and 32 MB.","postInstallNotes":"hello is starting.","postUninstallNotes":"hello is gone.",` +
		`"licenses":[{"name":"Apache License Version 2.0","url":"https://www.apache.org/licenses/LICENSE-2.0"}],` +
		`"images":{"icon-small":"https://example.com/hello-small.png","icon-medium":"https://example.com/hello-medium.png"}}`
	if got := label(t, app.Labels, universe.LabelMetadata); got != wantMetadata {
		t.Errorf("metadata label\n got %s\nwant %s", got, wantMetadata)
	}
	if got := jsonStringNoEscape(t, r.Options); got != `{"service":{"constraints":[],"cpus":0.1,"greeting":"hello, <world> & \"friends\"","mem":32,"name":"hello"}}` {
		t.Errorf("options %s", got)
	}
	// JSON is what the template wrote, labelled; Marathon's defaults come later.
	var raw map[string]any
	if err := json.Unmarshal(r.JSON, &raw); err != nil {
		t.Fatal(err)
	}
	if raw["id"] != "hello" || raw["instances"] != nil || raw["labels"].(map[string]any)[universe.LabelName] != "hello" {
		t.Errorf("JSON %s", r.JSON)
	}
}

func TestRenderOptionsAndAppID(t *testing.T) {
	p := resolve(t, "hello", "1.1.0")
	options := `{"service": {"name": "hi", "constraints": [["hostname", "UNIQUE"], ["zone", "GROUP_BY", "3"]], "greeting": "a \"b\" \\ c\nd\te"}}`
	r := render(t, p, options, "")
	app := r.App
	if app.ID != "/hi" {
		t.Errorf("id %q", app.ID)
	}
	wantConstraints := []marathon.Constraint{{"hostname", "UNIQUE"}, {"zone", "GROUP_BY", "3"}}
	if !reflect.DeepEqual(app.Constraints, wantConstraints) {
		t.Errorf("constraints %v", app.Constraints)
	}
	if got := app.Env["GREETING"].Value; got != "a \"b\" \\ c\nd\te" {
		t.Errorf("greeting %q", got)
	}
	if got := label(t, app.Labels, universe.LabelOptions); got != `{"service":{"constraints":[["hostname","UNIQUE"],["zone","GROUP_BY","3"]],"greeting":"a \"b\" \\ c\nd\te","name":"hi"}}` {
		t.Errorf("options label %s: the user's options, not the merged ones", got)
	}

	r = render(t, p, options, "/team/hello")
	if r.App.ID != "/team/hello" || r.App.Labels["DCOS_SERVICE_NAME"] != "hi" {
		t.Errorf("id %q, labels %v", r.App.ID, r.App.Labels)
	}
}

func TestRenderGroup(t *testing.T) {
	p := resolve(t, "webstack", "")
	tests := []struct {
		appID, options string
		wantIDs        []string
		wantDeps       []string
		wantWeb        int
	}{
		{"", ``, []string{"/webstack/db", "/webstack/web"}, []string{"/webstack/db"}, 2},
		{"", `{"stack": {"name": "shop", "web_instances": 5}}`, []string{"/shop/db", "/shop/web"}, []string{"/shop/db"}, 5},
		{"/prod/stack", ``, []string{"/prod/stack/db", "/prod/stack/web"}, []string{"/prod/stack/db"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.appID+tt.options, func(t *testing.T) {
			r := render(t, p, tt.options, tt.appID)
			if r.App != nil || r.Group == nil {
				t.Fatalf("app %v group %v", r.App, r.Group)
			}
			apps := r.Group.AllApps()
			var ids []string
			for _, a := range apps {
				ids = append(ids, a.ID)
				if a.Labels[universe.LabelName] != "webstack" || a.Labels[universe.LabelVersion] != "0.1.0" {
					t.Errorf("app %s labels %v", a.ID, a.Labels)
				}
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("apps %q, want %q", ids, tt.wantIDs)
			}
			if !reflect.DeepEqual(apps[1].Dependencies, tt.wantDeps) || apps[1].Instances != tt.wantWeb {
				t.Errorf("web dependencies %q instances %d", apps[1].Dependencies, apps[1].Instances)
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	const prefix = "render package demo 1.0: "
	tests := []struct {
		name     string
		template string
		options  string
		want     string
		marathon bool // the cause is a *marathon.Error
	}{
		{"invalid JSON", `{"id": "demo", "cmd": "x",
  "cpus": {{cpus}},
}`, ``, prefix + `the rendered template is not valid JSON: line 3, column 1: invalid character '}' looking for beginning of object key string: }`, false},
		{"trailing data", `{"id": "demo", "cmd": "x"} {}`, ``,
			prefix + `the rendered template is not valid JSON: line 1, column 28: unexpected data after the JSON object: {"id": "demo", "cmd": "x"} {}`, false},
		{"nothing", `{{#missing}}{}{{/missing}}`, ``, prefix + "the rendered template is not valid JSON: the template rendered nothing", false},
		{"not an object", `[{{cpus}}]`, ``,
			prefix + "the rendered template is not valid: the rendered JSON must be an object (a Marathon app or group), got an array", false},
		{"labels not strings", `{"id": "demo", "cmd": "x", "labels": {"a": "b", "n": {{cpus}}}}`, ``,
			prefix + "the rendered template is not valid: /labels/n: a label's value must be a string, got a number", false},
		{"labels not an object", `{"id": "demo", "cmd": "x", "labels": ["a"]}`, ``,
			prefix + "the rendered template is not valid: /labels: labels must be an object of strings, got an array", false},
		{"group apps not an array", `{"id": "g", "apps": {"id": "a"}}`, ``,
			prefix + "the rendered template is not valid: /apps: expected an array, got an object", false},
		{"group app labels", `{"id": "g", "groups": [{"id": "s", "apps": [{"id": "a", "labels": {"x": true}}]}]}`, ``,
			prefix + "the rendered template is not valid: /groups/0/apps/0/labels/x: a label's value must be a string, got a boolean", false},
		{"wrong type", `{"id": "demo", "cmd": "x", "cpus": "{{cpus}}"}`, ``,
			prefix + "the rendered app is not valid: 400 Invalid JSON: /cpus: error.expected.jsnumber", true},
		{"invalid app", `{"id": "demo", "cmd": "x", "cpus": {{cpus}}}`, `{"cpus": 0}`,
			prefix + "the rendered app is not valid: 422 Object is not valid: /cpus: got 0.0, expected 0.001 or more", true},
		{"unsupported feature", `{"id": "demo", "container": {"docker": {"image": "i", "parameters": [{"key": "log-driver", "value": "journald"}]}}}`, ``,
			prefix + `the rendered app is not valid: 422 Object is not valid: /container/docker/parameters/0/key: docker parameter "log-driver" is not supported by Atoll, which runs containers with runc, not the Docker CLI: supported are ` + strings.Join(marathon.SupportedDockerParameters, ", "), true},
		{"invalid group", `{"id": "/g", "apps": [{"id": "a", "cmd": "x", "dependencies": ["b"]}, {"id": "b", "cmd": "x", "dependencies": ["a"]}]}`, ``,
			prefix + "the rendered group is not valid: 422 Object is not valid: /: Dependency graph has cyclic dependencies: /g/a -> /g/b -> /g/a", true},
		{"invalid app id override", `{"id": "demo", "cmd": "x"}`, ``, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := demoPackageWith(t, map[string]string{"demo/0/marathon.json.mustache": tt.template})
			appID := ""
			if tt.want == "" {
				appID = "/Bad_ID"
				tt.want = prefix + "the rendered app is not valid: 422 Object is not valid: /id: must fully match regular expression '^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])$'"
			}
			r, err := p.Render(json.RawMessage(tt.options), appID)
			if err == nil {
				t.Fatalf("rendered %s", r.JSON)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			var rerr *RenderError
			if !errors.As(err, &rerr) || rerr.Package != "demo" || rerr.Version != "1.0" {
				t.Errorf("error %#v is not a *RenderError of the package", err)
			}
			var merr *marathon.Error
			if got := errors.As(err, &merr); got != tt.marathon {
				t.Errorf("errors.As(*marathon.Error) = %v, want %v", got, tt.marathon)
			}
		})
	}
}

// TestRenderResource: resource.json is "resource" in the context, merged over options of that
// name as Cosmos merged it (objects key by key, resource.json winning).
func TestRenderResource(t *testing.T) {
	p := demoPackageWith(t, map[string]string{
		"demo/0/config.json":            `{"properties": {"resource": {"type": "object"}}}`,
		"demo/0/resource.json":          `{"assets": {"uris": {"a": "http://r/a"}}}`,
		"demo/0/marathon.json.mustache": `{"id": "demo", "cmd": "{{resource.assets.uris.a}} {{resource.mine}}"}`,
	})
	r := render(t, p, `{"resource": {"assets": {"uris": {"a": "user"}}, "mine": "m"}}`, "")
	if r.App.Cmd != "http://r/a m" {
		t.Errorf("cmd %q", r.App.Cmd)
	}
}

func TestRenderNoTemplate(t *testing.T) {
	p := demoPackageWith(t, map[string]string{"demo/0/marathon.json.mustache": ""})
	_, err := p.Render(nil, "")
	if !errors.Is(err, ErrNoTemplate) {
		t.Errorf("error %v, want ErrNoTemplate", err)
	}
}

func TestRenderOptionsError(t *testing.T) {
	_, err := resolve(t, "hello", "1.1.0").Render(json.RawMessage(`{"service": {"mem": 1}}`), "")
	var oerr *OptionsError
	if !errors.As(err, &oerr) {
		t.Fatalf("error %v, want an *OptionsError", err)
	}
	var rerr *RenderError
	if errors.As(err, &rerr) {
		t.Errorf("an options error is not a render error: %v", err)
	}
}

// TestTemplateContext pins how values render, Cosmos's way.
func TestTemplateContext(t *testing.T) {
	tests := []struct {
		name, template, options, want string
	}{
		{"string escaped for JSON", `{{s}}`, `{"s": "a\"b\\c\nd</x>&"}`, `a\"b\\c\nd</x>&`},
		{"triple mustache the same", `{{{s}}}`, `{"s": "a\"b"}`, `a\"b`},
		{"unicode kept", `{{s}}`, `{"s": "é\u2028"}`, "é\\u2028"},
		{"strings of arrays keep quotes", `{{a}}`, `{"a": ["x", "y\"z"]}`, `["x", "y\"z"]`},
		{"nested arrays", `{{a}}`, `{"a": [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "2"]]}`, `[["hostname", "UNIQUE"], ["rack", "GROUP_BY", "2"]]`},
		{"mixed array", `{{a}}`, `{"a": [1, 0.5, true, null, {"k": "v", "n": [2]}]}`, `[1, 0.5, true, null, {"k": "v", "n": [2]}]`},
		{"empty array", `{{a}}`, `{"a": []}`, `[]`},
		{"integers", `{{a}} {{b}} {{c}} {{d}}`, `{"a": 1, "b": 1.0, "c": -2147483648, "d": 2147483647}`, `1 1 -2147483648 2147483647`},
		{"doubles", `{{a}} {{b}} {{c}} {{d}} {{e}}`, `{"a": 0.5, "b": 3000000000, "c": 0.00001, "d": 12345678.9, "e": 100000.5}`, `0.5 3.0E9 1.0E-5 1.23456789E7 100000.5`},
		{"booleans", `{{t}} {{f}}`, `{"t": true, "f": false}`, `true false`},
		{"null and missing", `[{{n}}][{{missing}}][{{a.b.c}}]`, `{"n": null}`, `[][][]`},
		{"dotted names", `{{a.b.c}}`, `{"a": {"b": {"c": "deep"}}}`, `deep`},
		{"false sections", `{{#f}}F{{/f}}{{#n}}N{{/n}}{{#e}}E{{/e}}{{#a}}A{{/a}}{{#missing}}M{{/missing}}`, `{"f": false, "n": null, "e": "", "a": []}`, ``},
		{"true sections", `{{#t}}T{{/t}}{{#z}}Z{{/z}}{{#s}}S{{/s}}{{#o}}O{{/o}}`, `{"t": true, "z": 0, "s": "x", "o": {}}`, `TZSO`},
		{"inverted sections", `{{^f}}F{{/f}}{{^t}}T{{/t}}{{^a}}A{{/a}}`, `{"f": false, "t": true, "a": []}`, `FA`},
		{"sections over arrays", `{{#env}}{{key}}={{value}};{{/env}}`, `{"env": [{"key": "A", "value": "1"}, {"key": "B", "value": "x\"y"}]}`, `A=1;B=x\"y;`},
		{"array strings in sections keep quotes", `{{#a}}<{{.}}>{{/a}}`, `{"a": ["x", "y"]}`, `<"x"><"y">`},
		{"parent context in sections", `{{#o}}{{name}}-{{top}}{{/o}}`, `{"top": "T", "o": {"name": "N"}}`, `N-T`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseTemplate(tt.template)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := parseOptions(json.RawMessage(tt.options))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := tmpl.render(mustacheContext(opts, false)); err != nil || got != tt.want {
				t.Errorf("got  %s (error %v)\nwant %s", got, err, tt.want)
			}
		})
	}
}

func TestJavaNumber(t *testing.T) {
	tests := map[string]string{
		"0": "0", "-0": "0", "7": "7", "7.0": "7", "1e2": "100", "2147483648": "2.147483648E9",
		"-2147483649": "-2.147483649E9", "0.001": "0.001", "0.0009": "9.0E-4", "9999999.5": "9999999.5",
		"10000000.5": "1.00000005E7", "1e300": "1.0E300", "-1.5": "-1.5", "1e400": "1e400",
	}
	for in, want := range tests {
		if got := javaNumber(json.Number(in)); got != want {
			t.Errorf("javaNumber(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestReadLabels(t *testing.T) {
	p := resolve(t, "hello", "1.1.0")
	r := render(t, p, `{"service": {"name": "hi"}}`, "")
	in, err := ReadLabels(r.App.Labels)
	if err != nil {
		t.Fatal(err)
	}
	if in.Metadata.Name != "hello" || in.Metadata.Version != "1.1.0" || in.Metadata.PostUninstallNotes != "hello is gone." ||
		in.Metadata.Images == nil || in.Metadata.Images.IconSmall != "https://example.com/hello-small.png" {
		t.Errorf("metadata %+v", in.Metadata)
	}
	if string(in.Options) != `{"service":{"name":"hi"}}` || in.Source != "https://repo.example.com/test.json" {
		t.Errorf("options %s source %s", in.Options, in.Source)
	}
	if got, want := jsonString(t, in.Package), jsonString(t, p.Package); got != want {
		t.Errorf("definition\n got %s\nwant %s", got, want)
	}

	in, err = ReadLabels(map[string]string{"DCOS_SERVICE_NAME": "x"})
	if in != nil || err != nil {
		t.Errorf("an app not from a package: %v, %v", in, err)
	}

	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	metadata := b64(`{"packagingVersion": "3.0", "name": "x", "version": "1", "maintainer": "m", "description": "d"}`)
	tests := []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"metadata not base64", map[string]string{universe.LabelName: "x", universe.LabelMetadata: "%"},
			"label DCOS_PACKAGE_METADATA: invalid base64: illegal base64 data at input byte 0"},
		{"metadata missing", map[string]string{universe.LabelName: "x"},
			"label DCOS_PACKAGE_METADATA: invalid JSON: empty document"},
		{"metadata shape", map[string]string{universe.LabelName: "x", universe.LabelMetadata: b64(`{"name": 1}`)},
			"label DCOS_PACKAGE_METADATA: name: expected a string, got a number; packagingVersion: missing required field; version: missing required field; maintainer: missing required field; description: missing required field"},
		{"options not an object", map[string]string{universe.LabelName: "x", universe.LabelMetadata: metadata, universe.LabelOptions: b64(`[]`)},
			"label DCOS_PACKAGE_OPTIONS: options must be a JSON object"},
		{"definition not an envelope", map[string]string{universe.LabelName: "x", universe.LabelMetadata: metadata, universe.LabelDefinition: b64(`{}`)},
			"label DCOS_PACKAGE_DEFINITION: metadata: missing required field; data: missing required field"},
		{"definition type", map[string]string{universe.LabelName: "x", universe.LabelMetadata: metadata, universe.LabelDefinition: b64(`{"metadata": {"Content-Type": "text/plain"}, "data": ""}`)},
			`label DCOS_PACKAGE_DEFINITION: unsupported Content-Type "text/plain"`},
		{"definition encoding", map[string]string{universe.LabelName: "x", universe.LabelMetadata: metadata, universe.LabelDefinition: b64(fmt.Sprintf(`{"metadata": {"Content-Type": %q, "Content-Encoding": "br"}, "data": ""}`, universe.MediaTypePackageV4))},
			`label DCOS_PACKAGE_DEFINITION: unsupported Content-Encoding "br"`},
		{"definition not gzip", map[string]string{universe.LabelName: "x", universe.LabelMetadata: metadata, universe.LabelDefinition: b64(fmt.Sprintf(`{"metadata": {"Content-Type": %q, "Content-Encoding": "gzip"}, "data": "AAAA"}`, universe.MediaTypePackageV4))},
			`label DCOS_PACKAGE_DEFINITION: unexpected EOF`},
		{"definition plain", map[string]string{universe.LabelName: "x", universe.LabelMetadata: metadata, universe.LabelDefinition: b64(fmt.Sprintf(`{"metadata": {"Content-Type": %q}, "data": %q}`, universe.MediaTypePackageV4, b64(`{"name": "x"}`)))},
			`label DCOS_PACKAGE_DEFINITION: packagingVersion: missing required field; version: missing required field; maintainer: missing required field; description: missing required field; tags: missing required field; releaseVersion: missing required field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ReadLabels(tt.labels)
			if err == nil {
				t.Fatalf("read %+v", in)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

// TestRenderConcurrently: one package renders from many goroutines (run with -race).
func TestRenderConcurrently(t *testing.T) {
	p := resolve(t, "datastore", "")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			name := fmt.Sprintf("store-%d", i)
			r, err := p.Render(json.RawMessage(fmt.Sprintf(`{"service": {"name": %q}, "node": {"count": %d}}`, name, i+1)), "")
			switch {
			case err != nil:
				errs <- err
			case r.App.ID != "/"+name || r.App.Env["NODE_COUNT"].Value != fmt.Sprint(i+1):
				errs <- fmt.Errorf("render %d: id %s count %s", i, r.App.ID, r.App.Env["NODE_COUNT"].Value)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
