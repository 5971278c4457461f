package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/pkgs/cosmos"
)

// helloConfig is the hello package's options: a section with every kind of field, and a
// required option without a default.
const helloConfig = `{"type": "object", "properties": {
	"service": {"type": "object", "description": "The service.", "properties": {
		"name": {"type": "string", "default": "hello", "description": "App id of the service."},
		"instances": {"type": "integer", "minimum": 0, "default": 1, "description": "How many tasks run it."},
		"cpus": {"type": "number", "minimum": 0.01, "default": 0.1, "description": "CPUs of each task."},
		"greeting": {"type": "string", "enum": ["hello", "hi", "hey"], "default": "hello", "description": "What it answers."},
		"verbose": {"type": "boolean", "default": false, "description": "Log every question."},
		"labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Labels of the app."}},
		"required": ["name"], "additionalProperties": false},
	"owner": {"type": "string", "description": "Who answers for it."}},
	"required": ["service", "owner"]}`

// testPackage is one revision of a package in the flat repository layout.
func testPackage(repo fstest.MapFS, name, version string, rev int, framework bool, desc, config, template string) {
	meta := map[string]any{
		"packagingVersion": "4.0", "name": name, "version": version, "maintainer": "tests@atoll.invalid",
		"description": desc, "tags": []string{"test"}, "framework": framework,
		"upgradesFrom": []string{"*"}, "downgradesTo": []string{"*"},
		"preInstallNotes":    "Every " + name + " task takes a little memory.",
		"postInstallNotes":   "Ask {{service.name}} something: it answers.",
		"postUninstallNotes": "Nothing of " + name + " is left.",
	}
	data, _ := json.Marshal(meta)
	dir := fmt.Sprintf("%s/%d/", name, rev)
	repo[dir+"package.json"] = &fstest.MapFile{Data: data}
	repo[dir+"config.json"] = &fstest.MapFile{Data: []byte(config)}
	repo[dir+"marathon.json.mustache"] = &fstest.MapFile{Data: []byte(template)}
}

// testPackages is the catalog of the package tests: hello in two versions, a group and a
// framework.
func testPackages() fstest.MapFS {
	repo := fstest.MapFS{}
	hello := `{"id": "/{{service.name}}", "instances": {{service.instances}}, "cpus": {{service.cpus}}, "mem": 16,
		"cmd": "echo {{service.greeting}}; sleep 600", "env": {"OWNER": "{{owner}}", "VERBOSE": "{{service.verbose}}"}}`
	testPackage(repo, "hello", "1.0", 0, false, "Answers every question with a greeting.", helloConfig, hello)
	testPackage(repo, "hello", "1.1", 1, false, "Answers every question with a greeting, now politely.", helloConfig, hello)
	testPackage(repo, "stack", "1.0", 0, false, "A database and a web server that waits for it.",
		`{"type": "object", "properties": {"service": {"type": "object", "properties": {"name": {"type": "string", "default": "stack"}}}}}`,
		`{"id": "/{{service.name}}", "apps": [
			{"id": "/{{service.name}}/db", "instances": 1, "cpus": 0.1, "mem": 16, "cmd": "db"},
			{"id": "/{{service.name}}/web", "instances": 1, "cpus": 0.1, "mem": 16, "cmd": "web", "dependencies": ["/{{service.name}}/db"]}]}`)
	testPackage(repo, "relay", "2.0", 0, true, "A framework that relays tasks.",
		`{"type": "object", "properties": {"service": {"type": "object", "properties": {"name": {"type": "string", "default": "relay"}}}}}`,
		`{"id": "/{{service.name}}", "instances": 1, "cpus": 0.1, "mem": 16, "cmd": "relay",
			"labels": {"DCOS_PACKAGE_FRAMEWORK_NAME": "{{service.name}}"}}`)
	return repo
}

// newPackageCluster is a master with the services and jobs frameworks and the catalog of
// testPackages, a simulated agent, and three installs: hello twice (1.1 as /hello, 1.0 as
// /hello-old) and stack as the group /stack, all running.
func newPackageCluster(t testing.TB) *testCluster {
	t.Helper()
	epoch := time.Now()
	ts := master.NewTestServer(t, withFrameworks, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			cosmos.Attach(m, cosmos.Config{Logger: c.Logger, Builtin: testPackages()})
		})
	})
	c := &testCluster{t: t, master: ts, marathon: marathon.NewClient(ts.URL), chronos: chronos.NewClient(ts.URL),
		cosmos: universe.NewClient(ts.URL), epoch: epoch}
	master.StartSimulatedAgent(t, ts.URL, "host-0", simResources(4, 4096, 10000))
	ctx := context.Background()
	eventually(t, "the agent and the catalog", func() error {
		if n := len(ts.Store().Agents()); n != 1 {
			return fmt.Errorf("%d agents", n)
		}
		_, err := c.cosmos.List(ctx, &universe.ListRequest{})
		return err
	})
	for _, req := range []universe.InstallRequest{
		{PackageName: "hello", Options: json.RawMessage(`{"owner": "ops"}`)},
		{PackageName: "hello", PackageVersion: "1.0", AppID: "/hello-old", Options: json.RawMessage(`{"owner": "ops", "service": {"greeting": "hey"}}`)},
		{PackageName: "stack"},
	} {
		if _, err := c.cosmos.Install(ctx, &req); err != nil {
			t.Fatalf("install %s: %v", req.PackageName, err)
		}
	}
	for _, id := range []string{"/hello", "/hello-old", "/stack/db", "/stack/web"} {
		c.waitRunning(id, 1)
	}
	return c
}

// installedIDs lists the app ids the catalog has installations at.
func (c *testCluster) installedIDs() []string {
	c.t.Helper()
	list, err := c.cosmos.List(context.Background(), &universe.ListRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	var ids []string
	for _, p := range list.Packages {
		ids = append(ids, p.AppID)
	}
	slices.Sort(ids)
	return ids
}

// TestPackageViews draws the package views of a cluster with the catalog, installs a
// package through the form (its problems shown at their fields first) and follows the
// install, then uninstalls: testdata/TestPackageViews/*.golden, regenerated with -update.
func TestPackageViews(t *testing.T) {
	c := newPackageCluster(t)
	ready := []string{"leader master-1 · dev", "● connected", "APPS       4  running 4"}
	for _, tt := range []struct {
		name          string
		width, height int
		keys          []string
		// then are keys for once the catalog shows.
		then []string
		want []string
	}{
		{name: "pkgs", width: 100, height: 16, keys: cmdKeys("pkgs"), want: []string{"/hello-old", "/stack", "2/2"}},
		{name: "catalog", width: 100, height: 16, keys: cmdKeys("catalog"), want: []string{"relay", "politely"}},
		{name: "catalog-search", width: 100, height: 16, keys: cmdKeys("catalog datab"), want: []string{`search "datab"`, "stack"}},
		{name: "package", width: 100, height: 40, keys: cmdKeys("catalog"), then: []string{"enter"}, want: []string{"VERSIONS", "owner *"}},
		{name: "form", width: 100, height: 24, keys: cmdKeys("catalog"), then: []string{"i"}, want: []string{"install hello 1.1", "owner *"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := startTUI(t, c.testConfig(), tt.width, tt.height)
			u.waitScreen(ready...)
			u.keys(tt.keys...)
			if tt.then != nil {
				u.waitScreen("> hello")
				u.keys(tt.then...)
			}
			screen := u.waitScreen(tt.want...)
			golden.RequireEqual(t, []byte(mask(screen)+"\n"))
		})
	}

	// Install through the form: its problems first, then the confirmation, then the
	// install followed; then uninstall.
	u := startTUI(t, c.testConfig(), 100, 24)
	u.waitScreen(ready...)
	step := func(name string, want ...string) {
		t.Helper()
		screen := u.waitScreen(want...)
		t.Run(name, func(t *testing.T) { golden.RequireEqual(t, []byte(mask(screen)+"\n")) })
	}
	u.keys(cmdKeys("catalog")...)
	u.waitScreen("> hello")
	u.keys("i")
	u.waitScreen("> app id")
	u.keys(typed("/hello-2")...)
	u.keys("tab", "tab", "backspace")
	u.keys(typed("-1")...)
	u.keys("tab", "ctrl+u")
	u.keys(typed("lots")...)
	u.keys("tab", "right", "tab", "space", "enter")
	step("form-errors", "✗ required option is missing")
	if got := c.installedIDs(); !reflect.DeepEqual(got, []string{"/hello", "/hello-old", "/stack"}) {
		t.Fatalf("a form with problems installed something: %v", got)
	}
	// The focus is on the first field with a problem: instances.
	u.keys("ctrl+u", "2", "tab", "ctrl+u")
	u.keys(typed("0.2")...)
	u.keys("tab", "tab", "tab", "tab")
	u.keys(typed("ops")...)
	u.keys("enter")
	step("confirm", "Install hello 1.1 as app /hello-2?  y install  n no")
	u.keys("y")
	step("installed", "deployed: 2 of 2 tasks running", "Running", "installed hello 1.1 as /hello-2")
	if got := c.installedIDs(); !reflect.DeepEqual(got, []string{"/hello", "/hello-2", "/hello-old", "/stack"}) {
		t.Fatalf("installed: %v", got)
	}
	app, err := c.marathon.GetApp(context.Background(), "/hello-2")
	if err != nil {
		t.Fatal(err)
	}
	if a := app.Value; a.Instances != 2 || a.Cpus != 0.2 || a.Cmd != "echo hi; sleep 600" || a.Env["OWNER"].Value != "ops" || a.Env["VERBOSE"].Value != "true" {
		t.Errorf("/hello-2 is %d × %v cpus, %q, env %v", a.Instances, a.Cpus, a.Cmd, a.Env)
	}

	// Uninstall: hello is installed three times, so the question is which.
	u.keys(cmdKeys("catalog hello")...)
	u.waitScreen("> hello", "3")
	u.keys("u")
	u.waitScreen("hello is installed 3 times: uninstall which?  1 /hello  2 /hello-2  3 /hello-old  a all  n no")
	u.keys("2")
	u.waitScreen("uninstalled hello from /hello-2: Nothing of hello is left.")
	if got := c.installedIDs(); !reflect.DeepEqual(got, []string{"/hello", "/hello-old", "/stack"}) {
		t.Errorf("after uninstalling /hello-2: %v", got)
	}
	// From :pkgs, the selected installation.
	u.keys(cmdKeys("pkgs stack")...)
	u.waitScreen("> stack")
	u.keys("u")
	u.waitScreen("Uninstall stack from /stack, removing everything it created?  y yes  n no")
	u.keys("y")
	u.waitScreen("uninstalled stack from /stack: Nothing of stack is left.")
	if got := c.installedIDs(); !reflect.DeepEqual(got, []string{"/hello", "/hello-old"}) {
		t.Errorf("after uninstalling /stack: %v", got)
	}
}
