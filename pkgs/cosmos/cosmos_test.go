package cosmos_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/pkgs"
	"github.com/atoll/atoll/pkgs/cosmos"
)

func TestMain(m *testing.M) {
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// testTimeout bounds every wait: generous, for a loaded 2-core machine.
const testTimeout = 60 * time.Second

// pkgFiles returns a package's files in the flat repository layout.
func pkgFiles(name, version string, rev int, framework bool, config, template string) fstest.MapFS {
	meta := map[string]any{
		"packagingVersion": "4.0", "name": name, "version": version, "maintainer": "tests@atoll.invalid",
		"description": "the " + name + " test package", "tags": []string{"test"}, "framework": framework,
		"upgradesFrom": []string{"*"}, "downgradesTo": []string{"*"},
		"preInstallNotes": "about to install " + name, "postInstallNotes": "installed {{service.name}}",
		"postUninstallNotes": "removed " + name,
	}
	data, _ := json.Marshal(meta)
	dir := fmt.Sprintf("%s/%d/", name, rev)
	return fstest.MapFS{
		dir + "package.json":           {Data: data},
		dir + "config.json":            {Data: []byte(config)},
		dir + "marathon.json.mustache": {Data: []byte(template)},
	}
}

// serviceConfig is a config schema with service.name and service.instances.
func serviceConfig(name string) string {
	return `{"type":"object","properties":{"service":{"type":"object","additionalProperties":false,"properties":{
		"name":{"type":"string","default":"` + name + `"},
		"instances":{"type":"integer","minimum":0,"default":2},
		"framework-name":{"type":"string","default":"` + name + `-fw"}}}}}`
}

// testRepository is the repository the tests' catalog starts with, in place of the
// built-in one.
func testRepository() fstest.MapFS {
	repo := fstest.MapFS{}
	add := func(fs fstest.MapFS) {
		for k, v := range fs {
			repo[k] = v
		}
	}
	add(pkgFiles("sleeper", "1.0", 0, false, serviceConfig("sleeper"), `{
		"id": "/{{service.name}}", "instances": {{service.instances}}, "cpus": 0.05, "mem": 16,
		"cmd": "sleep 600"}`))
	add(pkgFiles("sleeper", "2.0", 1, false, serviceConfig("sleeper"), `{
		"id": "/{{service.name}}", "instances": {{service.instances}}, "cpus": 0.05, "mem": 16,
		"cmd": "sleep 700"}`))
	add(pkgFiles("pair", "1.0", 0, false, serviceConfig("pair"), `{
		"id": "/{{service.name}}", "apps": [
			{"id": "/{{service.name}}/db", "instances": 1, "cpus": 0.05, "mem": 16, "cmd": "sleep 600"},
			{"id": "/{{service.name}}/web", "instances": 1, "cpus": 0.05, "mem": 16, "cmd": "sleep 600",
			 "dependencies": ["/{{service.name}}/db"]}]}`))
	add(pkgFiles("fw", "1.0", 0, true, serviceConfig("fw"), `{
		"id": "/{{service.name}}", "instances": 1, "cpus": 0.05, "mem": 16, "cmd": "sleep 600",
		"labels": {"DCOS_PACKAGE_FRAMEWORK_NAME": "{{service.framework-name}}"}}`))
	strict := pkgFiles("strict", "2.0", 1, false, serviceConfig("strict"), `{"id": "/{{service.name}}", "cmd": "sleep 600", "cpus": 0.05, "mem": 16, "portDefinitions": []}`)
	strict["strict/1/package.json"] = &fstest.MapFile{Data: []byte(`{"packagingVersion": "4.0", "name": "strict", "version": "2.0",
		"maintainer": "tests@atoll.invalid", "description": "upgrades only from 1.5", "tags": [], "upgradesFrom": ["1.5"], "downgradesTo": []}`)}
	add(strict)
	add(pkgFiles("strict", "1.0", 0, false, serviceConfig("strict"), `{"id": "/{{service.name}}", "cmd": "sleep 500", "cpus": 0.05, "mem": 16, "portDefinitions": []}`))
	add(pkgFiles("portless", "1.0", 0, false, serviceConfig("portless"), `{
		"id": "/{{service.name}}", "instances": {{service.instances}}, "cpus": 0.05, "mem": 16,
		"cmd": "sleep 600", "portDefinitions": []}`))
	add(pkgFiles("broken", "1.0", 0, false, serviceConfig("broken"), `{"id": "/{{service.name}}", "instances": {{service.instances}},}`))
	return repo
}

// cluster is a master with the services framework and the catalog, and one agent.
type cluster struct {
	t      testing.TB
	master *master.TestServer
	cosmos *universe.Client
	apps   *marathon.Client
	op     *api.Client
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
			cosmos.Attach(m, cosmos.Config{Logger: c.Logger, Builtin: testRepository()})
		})
	})
	agent.TestAgent(t, ts.Masters)
	c := &cluster{t: t, master: ts, cosmos: universe.NewClient(ts.URL), apps: marathon.NewClient(ts.URL), op: api.NewClient(ts.URL)}
	eventually(t, "the agent registered", func() error {
		if n := len(ts.Store().Agents()); n != 1 {
			return fmt.Errorf("%d agents", n)
		}
		return nil
	})
	return c
}

func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running waits until the app has n running tasks.
func (c *cluster) running(id string, n int) {
	c.t.Helper()
	eventually(c.t, fmt.Sprintf("%d tasks of %s running", n, id), func() error {
		tasks, err := c.apps.AppTasks(context.Background(), id)
		if err != nil {
			return err
		}
		running := 0
		for _, t := range tasks {
			if t.Value.State == "TASK_RUNNING" {
				running++
			}
		}
		if running != n {
			return fmt.Errorf("%d running", running)
		}
		return nil
	})
}

// deploying says whether a deployment is in progress.
func (c *cluster) deploying() bool {
	c.t.Helper()
	ds, err := c.apps.ListDeployments(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return len(ds) > 0
}

// settled waits until no deployment is in progress.
func (c *cluster) settled() {
	c.t.Helper()
	eventually(c.t, "no deployment in progress", func() error {
		if c.deploying() {
			return errors.New("deployments in progress")
		}
		return nil
	})
}

// noApps waits until no app is left.
func (c *cluster) noApps() {
	c.t.Helper()
	eventually(c.t, "no apps left", func() error {
		apps, err := c.apps.ListApps(context.Background())
		if err != nil {
			return err
		}
		if len(apps) != 0 {
			return fmt.Errorf("%d apps: %s", len(apps), apps[0].Value.ID)
		}
		return nil
	})
}

// cosmosType is the Cosmos error type of err ("" when err is not a Cosmos error answer).
func cosmosType(err error) (int, string) {
	var re *universe.ResponseError
	if !errors.As(err, &re) {
		return 0, ""
	}
	return re.Status, re.Body.Type
}

func TestSearchDescribeRenderVersions(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()

	found, err := c.cosmos.Search(ctx, "sleep*")
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if len(found.Packages) != 1 || found.Packages[0].Name != "sleeper" || found.Packages[0].CurrentVersion != "2.0" ||
		!reflect.DeepEqual(found.Packages[0].Versions, map[string]int64{"1.0": 0, "2.0": 1}) {
		t.Errorf("search sleep* = %+v", found.Packages)
	}
	all, err := c.cosmos.Search(ctx, "")
	if err != nil || len(all.Packages) != 6 {
		t.Errorf("search everything: %d packages, %v; want 6", len(all.Packages), err)
	}

	desc, err := c.cosmos.Describe(ctx, "sleeper", "1.0")
	if err != nil || desc.Package.Name != "sleeper" || desc.Package.Version != "1.0" || desc.Package.ReleaseVersion != 0 {
		t.Fatalf("describe sleeper 1.0 = %+v, %v", desc.Package.Metadata, err)
	}

	rendered, err := c.cosmos.Render(ctx, &universe.RenderRequest{PackageName: "sleeper", Options: json.RawMessage(`{"service":{"instances":3}}`), AppID: "/team/sleepy"})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var app marathon.App
	if err := json.Unmarshal(rendered.MarathonJSON, &app); err != nil {
		t.Fatalf("rendered %s: %v", rendered.MarathonJSON, err)
	}
	if app.ID != "/team/sleepy" || app.Instances != 3 || app.Labels[universe.LabelName] != "sleeper" || app.Labels[universe.LabelVersion] != "2.0" {
		t.Errorf("rendered app id %s instances %v labels %v", app.ID, app.Instances, app.Labels)
	}

	versions, err := c.cosmos.ListVersions(ctx, "sleeper")
	if err != nil || !reflect.DeepEqual(versions.Results, map[string]string{"1.0": "0", "2.0": "1"}) {
		t.Errorf("list-versions = %v, %v", versions.Results, err)
	}
}

func TestInstallListUninstall(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()

	resp, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "sleeper", PackageVersion: "1.0"})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	want := universe.InstallResponse{PackageName: "sleeper", PackageVersion: "1.0", AppID: "/sleeper", PostInstallNotes: "installed sleeper", DeploymentID: resp.DeploymentID}
	if !reflect.DeepEqual(*resp, want) || resp.DeploymentID == "" {
		t.Errorf("install answered %+v, want %+v with a deployment id", *resp, want)
	}
	c.running("/sleeper", 2)

	_, err = c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "sleeper"})
	if status, typ := cosmosType(err); status != http.StatusConflict || typ != "PackageAlreadyInstalled" {
		t.Errorf("second install as /sleeper: %v, want 409 PackageAlreadyInstalled", err)
	}
	if _, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "sleeper", AppID: "/other", Options: json.RawMessage(`{"service":{"instances":1}}`)}); err != nil {
		t.Fatalf("install as /other: %v", err)
	}
	c.running("/other", 1)

	list, err := c.cosmos.List(ctx, &universe.ListRequest{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	var got []string
	for _, p := range list.Packages {
		got = append(got, p.AppID+"="+p.PackageInformation.PackageDefinition.Name+"@"+p.PackageInformation.PackageDefinition.Version)
	}
	if want := []string{"/other=sleeper@2.0", "/sleeper=sleeper@1.0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list = %v, want %v", got, want)
	}

	_, err = c.cosmos.Uninstall(ctx, &universe.UninstallRequest{PackageName: "sleeper"})
	if status, typ := cosmosType(err); status != http.StatusBadRequest || typ != "AmbiguousAppId" {
		t.Errorf("uninstall of a package installed twice without --app-id: %v, want 400 AmbiguousAppId", err)
	}
	removed, err := c.cosmos.Uninstall(ctx, &universe.UninstallRequest{PackageName: "sleeper", All: true})
	if err != nil {
		t.Fatalf("uninstall --all: %v", err)
	}
	if len(removed.Results) != 2 || removed.Results[0].PostUninstallNotes != "removed sleeper" {
		t.Errorf("uninstall answered %+v", removed.Results)
	}
	c.noApps()
	c.leavesNothing("sleeper", "other")

	_, err = c.cosmos.Uninstall(ctx, &universe.UninstallRequest{PackageName: "sleeper"})
	if status, typ := cosmosType(err); status != http.StatusBadRequest || typ != "PackageNotInstalled" {
		t.Errorf("uninstall of a package not installed: %v, want 400 PackageNotInstalled", err)
	}
}

// leavesNothing checks that the replicated state keeps no trace of the apps: no
// installation record, no app, version or deployment of the services framework, and no
// live task.
func (c *cluster) leavesNothing(names ...string) {
	c.t.Helper()
	eventually(c.t, "nothing left of "+strings.Join(names, ", "), func() error {
		store := c.master.Store()
		if left := store.KVList("packages", "install/"); len(left) != 0 {
			return fmt.Errorf("installation records left: %s", left[0].Key)
		}
		for _, e := range store.KVList("services", "") {
			for _, n := range names {
				if strings.Contains(e.Key, n) {
					return fmt.Errorf("services key %s left", e.Key)
				}
			}
		}
		for _, task := range store.Tasks() {
			if !task.State.Terminal() {
				return fmt.Errorf("task %s is %s", task.ID, task.State)
			}
		}
		return nil
	})
}

func TestInstallGroup(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	if _, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "pair", AppID: "/stack"}); err != nil {
		t.Fatalf("install a package that renders a group: %v", err)
	}
	c.running("/stack/db", 1)
	c.running("/stack/web", 1)
	if _, err := c.cosmos.Uninstall(ctx, &universe.UninstallRequest{PackageName: "pair", AppID: "stack"}); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	c.noApps()
	c.leavesNothing("stack")
	if _, err := c.apps.GetGroup(ctx, "/stack"); err == nil {
		t.Error("the group /stack is still there")
	}
}

// TestUninstallTearsDownFramework: uninstalling a framework package removes the framework
// its app registered, with the framework's own tasks.
func TestUninstallTearsDownFramework(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	if _, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "fw"}); err != nil {
		t.Fatalf("install: %v", err)
	}
	c.running("/fw", 1)

	// What the package's app would do: register as fw-fw and run a task.
	sub, err := c.op.Subscribe(ctx, api.FrameworkInfo{Name: "fw-fw", User: "root", FailoverTimeout: 3600}, nil)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Close()
	launched := false
	for !launched {
		ev, err := sub.Next()
		if err != nil {
			t.Fatalf("framework stream: %v", err)
		}
		if ev.Type != api.EventOffers {
			continue
		}
		o := ev.Offers.Offers[0]
		cmd := "sleep 600"
		task := api.TaskInfo{Name: "own", TaskID: api.TaskID{Value: "own-task"}, AgentID: o.AgentID,
			Resources: []api.Resource{scalar("cpus", 0.05), scalar("mem", 16)},
			Command:   &api.CommandInfo{Value: &cmd}}
		launch := api.OfferOperation{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: []api.TaskInfo{task}}}
		if err := sub.Accept(ctx, []api.OfferID{o.ID}, []api.OfferOperation{launch}, nil); err != nil {
			t.Fatalf("accept: %v", err)
		}
		launched = true
	}
	eventually(t, "the framework's own task running", func() error {
		if task, ok := c.master.Store().Task(sub.FrameworkID().Value, "own-task"); !ok || task.State != api.TaskRunning {
			return fmt.Errorf("task %+v", task)
		}
		return nil
	})

	// A second install under the same framework name is refused: uninstall could not tell
	// the two frameworks apart.
	_, err = c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "fw", AppID: "/fw2"})
	if status, typ := cosmosType(err); status != http.StatusConflict || typ != "PackageAlreadyInstalled" {
		t.Errorf("install under a registered framework's name: %v, want 409 PackageAlreadyInstalled", err)
	}

	if _, err := c.cosmos.Uninstall(ctx, &universe.UninstallRequest{PackageName: "fw"}); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	c.noApps()
	c.leavesNothing("fw")
	fws, err := c.op.GetFrameworks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fws.Frameworks {
		if f.FrameworkInfo.Name == "fw-fw" {
			t.Errorf("framework fw-fw (%s) still registered", f.FrameworkInfo.ID.Value)
		}
	}
}

// TestBadInput: every refusal names what is wrong, and nothing is left half-installed.
func TestBadInput(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	tests := []struct {
		name       string
		req        universe.InstallRequest
		wantStatus int
		wantType   string
		wantIn     string
	}{
		{"unknown package", universe.InstallRequest{PackageName: "nope"}, 400, "PackageNotFound", "Package [nope] not found"},
		{"unknown version", universe.InstallRequest{PackageName: "sleeper", PackageVersion: "9.9"}, 400, "VersionNotFound", "available versions: 2.0, 1.0"},
		{"option of the wrong type", universe.InstallRequest{PackageName: "sleeper", Options: json.RawMessage(`{"service":{"instances":"many"}}`)}, 400, "JsonSchemaMismatch", "service.instances"},
		{"option below its minimum", universe.InstallRequest{PackageName: "sleeper", Options: json.RawMessage(`{"service":{"instances":-1}}`)}, 400, "JsonSchemaMismatch", "service.instances"},
		{"unknown option", universe.InstallRequest{PackageName: "sleeper", Options: json.RawMessage(`{"service":{"instancez":1}}`)}, 400, "JsonSchemaMismatch", "instancez"},
		{"options not an object", universe.InstallRequest{PackageName: "sleeper", Options: json.RawMessage(`[1]`)}, 400, "MalformedRequest", "options"},
		{"a template that renders no JSON", universe.InstallRequest{PackageName: "broken"}, 400, "PackageRenderError", "broken"},
		{"an app id Marathon refuses", universe.InstallRequest{PackageName: "sleeper", AppID: "/Bad_Id"}, 400, "PackageRenderError", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.cosmos.Install(ctx, &tt.req)
			status, typ := cosmosType(err)
			if status != tt.wantStatus || typ != tt.wantType || !strings.Contains(fmt.Sprint(err), tt.wantIn) {
				t.Errorf("install %+v: %v (status %d, type %q); want %d %s mentioning %q", tt.req, err, status, typ, tt.wantStatus, tt.wantType, tt.wantIn)
			}
		})
	}

	raw := []struct {
		name, contentType, body string
		wantStatus              int
		wantType, wantIn        string
	}{
		{"malformed JSON", "application/json", `{"packageName":`, 400, "MalformedRequest", "not valid"},
		{"missing package name", universe.MediaTypeInstallRequest, `{}`, 400, "MalformedRequest", "packageName"},
		{"misspelt field", "application/json", `{"packageName":"sleeper","optionz":{}}`, 400, "MalformedRequest", "optionz"},
		{"not JSON", "text/plain", `packageName=sleeper`, 415, "UnsupportedContentType", "text/plain"},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(c.master.URL+"/package/install", tt.contentType, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body universe.Error
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("error body: %v", err)
			}
			if resp.StatusCode != tt.wantStatus || body.Type != tt.wantType || !strings.Contains(body.Message, tt.wantIn) ||
				resp.Header.Get("Content-Type") != universe.MediaTypeError {
				t.Errorf("%d %s %q (%s); want %d %s mentioning %q", resp.StatusCode, body.Type, body.Message, resp.Header.Get("Content-Type"), tt.wantStatus, tt.wantType, tt.wantIn)
			}
		})
	}
	apps, err := c.apps.ListApps(ctx)
	if err != nil || len(apps) != 0 {
		t.Errorf("after refused installs: %d apps, %v", len(apps), err)
	}
	if left := c.master.Store().KVList("packages", "install/"); len(left) != 0 {
		t.Errorf("after refused installs: installation %s recorded", left[0].Key)
	}
}

// TestRepositories: a repository is added only when it can be fetched and read; its
// packages are then found; removing it removes them from the catalog.
func TestRepositories(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()

	extra, err := pkgs.LoadFS(pkgFiles("extra", "0.1", 0, false, serviceConfig("extra"), `{"id":"/{{service.name}}","cmd":"sleep 1","cpus":0.05,"mem":16}`), "extra", "test")
	if err != nil {
		t.Fatal(err)
	}
	index, err := json.Marshal(extra.Index())
	if err != nil {
		t.Fatal(err)
	}
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(index)
	}))
	defer good.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"packages": [{"name": 7}]}`))
	}))
	defer garbage.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	bad := []struct {
		name, uri  string
		wantStatus int
		wantType   string
		wantIn     string
	}{
		{"down", downURL + "/repo", http.StatusBadGateway, "RepositoryUriConnection", "connection refused"},
		{"garbage", garbage.URL, http.StatusBadGateway, "RepositoryUriConnection", "name"},
		{"not http", "ftp://example.invalid/repo", http.StatusBadRequest, "UnsupportedRepositoryUri", "http://"},
		{"duplicate name", good.URL, http.StatusConflict, "RepositoryAlreadyPresent", "built-in"},
	}
	for _, tt := range bad {
		name := tt.name
		if tt.name == "duplicate name" {
			name = "built-in"
		}
		_, err := c.cosmos.RepositoryAdd(ctx, &universe.RepositoryAddRequest{Name: name, URI: tt.uri})
		status, typ := cosmosType(err)
		if status != tt.wantStatus || typ != tt.wantType || !strings.Contains(fmt.Sprint(err), tt.wantIn) {
			t.Errorf("add %s (%s): %v; want %d %s mentioning %q", tt.name, tt.uri, err, tt.wantStatus, tt.wantType, tt.wantIn)
		}
	}
	list, err := c.cosmos.RepositoryList(ctx)
	if err != nil || len(list.Repositories) != 1 {
		t.Fatalf("after refused adds: %+v, %v", list, err)
	}

	first := int64(0)
	added, err := c.cosmos.RepositoryAdd(ctx, &universe.RepositoryAddRequest{Name: "extra", URI: good.URL, Index: &first})
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if names := repoNames(added.Repositories); !reflect.DeepEqual(names, []string{"extra", "built-in"}) {
		t.Errorf("repositories after add at 0: %v", names)
	}
	found, err := c.cosmos.Search(ctx, "extra")
	if err != nil || len(found.Packages) != 1 || found.Packages[0].Name != "extra" {
		t.Errorf("search extra after adding its repository: %+v, %v", found, err)
	}
	far := int64(5)
	_, err = c.cosmos.RepositoryAdd(ctx, &universe.RepositoryAddRequest{Name: "far", URI: good.URL + "/x", Index: &far})
	if status, typ := cosmosType(err); status != http.StatusBadRequest || typ != "RepositoryAddIndexOutOfBounds" {
		t.Errorf("add at index 5 of 2: %v", err)
	}

	removed, err := c.cosmos.RepositoryDelete(ctx, &universe.RepositoryDeleteRequest{Name: "extra"})
	if err != nil || !reflect.DeepEqual(repoNames(removed.Repositories), []string{"built-in"}) {
		t.Fatalf("delete: %+v, %v", removed, err)
	}
	_, err = c.cosmos.Describe(ctx, "extra", "")
	if status, typ := cosmosType(err); status != http.StatusBadRequest || typ != "PackageNotFound" {
		t.Errorf("describe extra after removing its repository: %v", err)
	}
	_, err = c.cosmos.RepositoryDelete(ctx, &universe.RepositoryDeleteRequest{Name: "extra"})
	if status, typ := cosmosType(err); status != http.StatusNotFound || typ != "RepositoryNotPresent" {
		t.Errorf("delete a missing repository: %v", err)
	}
}

func scalar(name string, v float64) api.Resource {
	return api.Resource{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: v}}
}

func repoNames(repos []universe.PackageRepository) []string {
	var out []string
	for _, r := range repos {
		out = append(out, r.Name)
	}
	return slices.Clip(out)
}

// TestUpdate: an installed package moves to another version its upgradesFrom allows, with
// the installed options kept under the new ones, and back where downgradesTo allows; a
// version that allows neither is refused and nothing changes.
func TestUpdate(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	if _, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "sleeper", PackageVersion: "1.0", Options: json.RawMessage(`{"service":{"instances":1}}`)}); err != nil {
		t.Fatal(err)
	}
	c.running("/sleeper", 1)

	app := func() marathon.AppInfo {
		t.Helper()
		got, err := c.apps.GetApp(ctx, "/sleeper")
		if err != nil {
			t.Fatal(err)
		}
		return got.Value
	}
	c.settled()
	resp, err := c.cosmos.UpdateService(ctx, &universe.ServiceUpdateRequest{AppID: "sleeper", PackageVersion: "2.0", Options: json.RawMessage(`{"service":{"name":"sleeper"}}`)})
	if err != nil {
		t.Fatalf("update to 2.0: %v", err)
	}
	if resp.Package.Version != "2.0" || resp.PreviousVersion != "1.0" || resp.MarathonDeploymentID == "" {
		t.Errorf("update answered version %s from %s, deployment %q", resp.Package.Version, resp.PreviousVersion, resp.MarathonDeploymentID)
	}
	if got := app(); got.Cmd != "sleep 700" || got.Instances != 1 || got.Labels[universe.LabelVersion] != "2.0" {
		t.Errorf("after the update the app runs %v with %d instances, labels %v; want 2.0's command and the installed 1 instance", got.Cmd, got.Instances, got.Labels)
	}
	c.running("/sleeper", 1)
	list, err := c.cosmos.List(ctx, &universe.ListRequest{PackageName: "sleeper"})
	if err != nil || len(list.Packages) != 1 || list.Packages[0].PackageInformation.PackageDefinition.Version != "2.0" {
		t.Errorf("list after the update: %+v, %v", list, err)
	}

	c.settled()
	if _, err := c.cosmos.UpdateService(ctx, &universe.ServiceUpdateRequest{AppID: "/sleeper", PackageVersion: "1.0", Options: json.RawMessage(`{"service":{"instances":2}}`)}); err != nil {
		t.Fatalf("downgrade to 1.0: %v", err)
	}
	if got := app(); got.Cmd != "sleep 600" || got.Instances != 2 {
		t.Errorf("after the downgrade the app runs %q with %d instances", got.Cmd, got.Instances)
	}

	if _, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "strict", PackageVersion: "1.0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "strict", PackageVersion: "2.0", AppID: "/strict2"}); err != nil {
		t.Fatal(err)
	}
	c.settled()
	tests := []struct {
		req        universe.ServiceUpdateRequest
		wantStatus int
		wantType   string
		wantIn     string
	}{
		{universe.ServiceUpdateRequest{AppID: "/strict", PackageVersion: "2.0"}, 400, "VersionUpgradeNotSupported", "upgradesFrom is [1.5]"},
		{universe.ServiceUpdateRequest{AppID: "/strict2", PackageVersion: "1.0"}, 400, "VersionUpgradeNotSupported", "its downgradesTo is []"},
		{universe.ServiceUpdateRequest{AppID: "/strict", PackageVersion: "3.0"}, 400, "VersionNotFound", "available versions: 2.0, 1.0"},
		{universe.ServiceUpdateRequest{AppID: "/nothing"}, 404, "MarathonAppNotFound", "/nothing"},
		{universe.ServiceUpdateRequest{AppID: "/strict", Options: json.RawMessage(`{"service":{"instances":-1}}`)}, 400, "JsonSchemaMismatch", "service.instances"},
	}
	for _, tt := range tests {
		_, err := c.cosmos.UpdateService(ctx, &tt.req)
		status, typ := cosmosType(err)
		if status != tt.wantStatus || typ != tt.wantType || !strings.Contains(fmt.Sprint(err), tt.wantIn) {
			t.Errorf("update %+v: %v; want %d %s mentioning %q", tt.req, err, tt.wantStatus, tt.wantType, tt.wantIn)
		}
	}
	if got, err := c.apps.GetApp(ctx, "/strict"); err != nil || got.Value.Cmd != "sleep 500" {
		t.Errorf("the refused updates changed /strict: %+v, %v", got.Value.Cmd, err)
	}
}
