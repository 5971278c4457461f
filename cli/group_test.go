package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

const prodGroup = `{"id": "/prod", "groups": [
	{"id": "db", "apps": [{"id": "pg", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16}]},
	{"id": "web", "dependencies": ["/prod/db"], "apps": [{"id": "front", "cmd": "exec sleep 1000", "cpus": 0.1, "mem": 16, "instances": 2}]}]}`

// TestGroupCommands deploys a group whose apps depend on each other, in steps, and
// lists, shows, changes and removes it.
func TestGroupCommands(t *testing.T) {
	ts := servicesCluster(t)
	prod := writeFile(t, "prod.json", prodGroup)
	m := newMasker()
	runSteps(t, ts.URL, m, []cliStep{
		{args: []string{"group", "add", prod, "--wait"}, stdout: `creating group /prod: deployment <D1>
step 1/2: StartApplication /prod/db/pg
/prod/db/pg: 0/1 tasks running at version <V1>
/prod/web/front: 0/2 tasks running at version <V1>
/prod/db/pg: 1/1 tasks running at version <V1>
step 2/2: StartApplication /prod/web/front
/prod/web/front: 1/2 tasks running at version <V1>
/prod/web/front: 2/2 tasks running at version <V1>
deployment <D1> finished
`},
		{args: []string{"group", "list"}, stdout: `ID         APPS  GROUPS  DEPENDENCIES  VERSION
/          0     1       -             -
/prod      0     2       -             <V2>
/prod/db   1     0       -             <V2>
/prod/web  1     0       /prod/db      <V2>
`},
		{args: []string{"group", "show", "prod"}, stdout: `ID:            /prod
Version:       <V2>
Dependencies:  -
Groups:        /prod/db,/prod/web

ID               INSTANCES  CPUS  MEM  VERSION                   DEPLOYMENTS
/prod/db/pg      1/1        0.1   16M  <V1>  -
/prod/web/front  2/2        0.1   16M  <V1>  -
`},
		{args: []string{"group", "show", "nope"}, code: 1, stderr: "atoll: GET /v2/groups/nope: 404 Group '/nope' does not exist\n"},
		{args: []string{"group", "add", prod}, code: 1, stderr: "atoll: POST /v2/groups: 409 Group /prod is already created. Use PUT to change this group.\n"},
		{args: []string{"group", "update", "/prod/web", writeFile(t, "web.json", `{"apps": [{"id": "front", "cmd": "exec sleep 1001", "cpus": 0.1, "mem": 16, "instances": 1}]}`), "--wait"},
			stdout: `updating group /prod/web: deployment <D2>
step 1/1: RestartApplication /prod/web/front
/prod/web/front: 0/1 tasks running at version <V3>
/prod/web/front: 1/1 tasks running at version <V3>
deployment <D2> finished
`},
		{args: []string{"group", "remove", "/prod/web", "--wait"}, stdout: `removing group /prod/web: deployment <D3>
step 1/1: StopApplication /prod/web/front
/prod/web/front: stopping, 1 task left
/prod/web/front: stopping, 0 tasks left
deployment <D3> finished
`},
		{args: []string{"group", "remove", "/prod", "--wait"}, stdout: `removing group /prod: deployment <D4>
step 1/1: StopApplication /prod/db/pg
/prod/db/pg: stopping, 1 task left
/prod/db/pg: stopping, 0 tasks left
deployment <D4> finished
`},
		{args: []string{"group", "list"}, stdout: `ID  APPS  GROUPS  DEPENDENCIES  VERSION
/   0     0       -             -
`},
	})
}

// TestGroupJSON: -o json prints the API's group JSON.
func TestGroupJSON(t *testing.T) {
	ts := servicesCluster(t)
	if code, _, stderr := cliRun(t, ts.URL, "group", "add", writeFile(t, "prod.json", prodGroup), "--wait"); code != 0 {
		t.Fatalf("group add: exit %d: %s", code, stderr)
	}
	for _, tt := range []struct {
		args []string
		path string
	}{
		{[]string{"group", "list", "-o", "json"}, "/v2/groups"},
		{[]string{"group", "show", "/prod/web", "-o", "json"}, "/v2/groups/prod/web"},
	} {
		var want, got any
		decodeJSON(t, httpGetOK(t, ts.URL+tt.path), &want)
		code, stdout, stderr := cliRun(t, ts.URL, tt.args...)
		if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%v: exit %d, stderr %q\nprinted %s\nwant the API's %s", tt.args, code, stderr, stdout, jsonOf(t, want))
		}
	}
}

// TestGroupsMissing: a server without /v2/groups (its 404 is not Marathon's) gets a
// clear error rather than a bare 404.
func TestGroupsMissing(t *testing.T) {
	old := httptest.NewServer(http.NewServeMux())
	t.Cleanup(old.Close)
	for _, args := range [][]string{{"group", "list"}, {"group", "remove", "/prod"}} {
		code, stdout, stderr := cliRun(t, old.URL, args...)
		want := "atoll: " + map[string]string{"list": "GET /v2/groups", "remove": "DELETE /v2/groups/prod"}[args[1]] +
			": this master serves no Marathon group API; deploy the apps one by one with atoll app add (it answers \"404 page not found\")\n"
		if code != 1 || stdout != "" || stderr != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, nothing, %q", args, code, stdout, stderr, want)
		}
	}
}
