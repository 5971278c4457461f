package authtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/pki"
)

// access is who may make a request.
type access int

const (
	anyone     access = iota // no token needed
	readers                  // every role but lb
	readersLB                // every role
	operators                // operator and admin
	admins                   // admin only
	frameworks               // operator, admin, and framework tokens for their own principal
	agents                   // operator, admin, agent and master
	nodes                    // admin and the node roles: agent, lb and master
)

// may says whether a token of role (or none, "") may make a request needing a.
func (a access) may(role api.TokenRole) bool {
	switch {
	case a == anyone || role == api.RoleAdmin:
		return true
	case role == "":
		return false
	}
	switch a {
	case readers:
		return role != api.RoleLB
	case readersLB:
		return true
	case operators:
		return role == api.RoleOperator
	case frameworks:
		return role == api.RoleOperator || role == api.RoleFramework
	case agents:
		return role == api.RoleOperator || role == api.RoleAgent || role == api.RoleMaster
	case nodes:
		return role == api.RoleAgent || role == api.RoleLB || role == api.RoleMaster
	}
	return false
}

// routeAccess is who may use each route, by "METHOD path-pattern": the policy as the
// routes see it, written out route by route. A route missing here fails TestEveryRoute.
var routeAccess = func() map[string]access {
	m := map[string]access{
		// The master's own.
		"POST /api/v1/scheduler":                frameworks,
		"POST /api/v1/agent":                    agents,
		"POST /api/v1":                          operators, // no call type: see TestOperatorCalls for each
		"GET /api/v1/raft/peers":                anyone,
		"POST /api/v1/raft/remove-peer":         operators,
		"GET /api/v1/raft/snapshot":             admins,
		"POST /api/v1/raft/snapshot":            admins,
		"GET /master/state":                     readers,
		"GET /master/state.json":                readers,
		"GET /state.json":                       readers,
		"GET /health":                           anyone,
		"GET /metrics":                          readers,
		"GET /atoll/v1/kv/{namespace}":          readers,
		"GET /atoll/v1/kv/{namespace}/{key...}": readers,
		"POST /atoll/v1/kv/{namespace}":         frameworks,
		"POST /atoll/v1/tokens":                 admins,
		"GET /atoll/v1/tokens":                  admins,
		"DELETE /atoll/v1/tokens/{id}":          admins,
		"GET /atoll/v1/tokens/self":             readersLB,
		// Marathon (the services framework).
		"GET /ping":                       anyone,
		"GET /v2/info":                    readers,
		"GET /v2/leader":                  readers,
		"DELETE /v2/leader":               operators,
		"GET /v2/apps":                    readersLB,
		"POST /v2/apps":                   operators,
		"PUT /v2/apps":                    operators,
		"PATCH /v2/apps":                  operators,
		"GET /v2/tasks":                   readersLB,
		"POST /v2/tasks/delete":           operators,
		"GET /v2/deployments":             readers,
		"DELETE /v2/deployments/{id}":     operators,
		"GET /v2/queue":                   readers,
		"DELETE /v2/queue/{path...}":      operators,
		"GET /v2/events":                  readersLB,
		"GET /v2/apps/{path...}":          readersLB,
		"GET /v2/groups":                  readers,
		"GET /v2/groups/{path...}":        readers,
		"GET /leader":                     readers,
		"POST /package/search":            readers,
		"POST /package/describe":          readers,
		"POST /package/render":            readers,
		"POST /package/install":           operators,
		"POST /package/list":              readers,
		"POST /package/uninstall":         operators,
		"POST /package/list-versions":     readers,
		"POST /package/repository/list":   readers,
		"POST /package/repository/add":    operators,
		"POST /package/repository/delete": operators,
		"POST /cosmos/service/update":     operators,
		// What a machine installing a node fetches.
		"GET /install.sh":            anyone,
		"GET /atoll-uninstall.sh":    anyone,
		"GET /download/atoll":        anyone,
		"GET /download/atoll.sha256": anyone,
		"GET /download/atoll.arch":   anyone,
		// A secure cluster's node joins (TestEveryRoute attaches them).
		"GET /atoll/v1/ca":                   anyone,
		"POST /atoll/v1/join":                nodes,
		"POST /atoll/v1/renew":               anyone, // the node certificate is its credential
		"POST /atoll/v1/nodes/{name}/revoke": admins,
	}
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, path := range []string{"/v2/apps/{path...}", "/v2/groups", "/v2/groups/{path...}"} {
			m[method+" "+path] = operators
		}
	}
	// The services framework's secret store: names to readers, values to no one.
	m["GET /v1/secrets"] = readers
	m["PUT /v1/secrets/{name...}"] = operators
	m["DELETE /v1/secrets/{name...}"] = operators
	// Metronome (the jobs framework's /v1/jobs).
	for _, r := range []string{"GET /v1/jobs", "GET /v1/jobs/{id}", "GET /v1/jobs/{id}/schedules", "GET /v1/jobs/{id}/schedules/{scheduleId}", "GET /v1/jobs/{id}/runs", "GET /v1/jobs/{id}/runs/{runId}"} {
		m[r] = readers
	}
	for _, r := range []string{"POST /v1/jobs", "PUT /v1/jobs/{id}", "DELETE /v1/jobs/{id}", "POST /v1/jobs/{id}/schedules", "PUT /v1/jobs/{id}/schedules/{scheduleId}",
		"DELETE /v1/jobs/{id}/schedules/{scheduleId}", "POST /v1/jobs/{id}/runs", "POST /v1/jobs/{id}/runs/{runId}/actions/stop"} {
		m[r] = operators
	}
	// Chronos 3 and 2 (the jobs framework).
	for _, prefix := range []string{"/v1/scheduler", "/scheduler"} {
		for _, r := range []string{"GET /jobs", "GET /jobs/summary", "GET /jobs/search", "GET /job/{name}", "GET /job/stat/{name}", "GET /graph/dot", "GET /graph/csv", "GET /leader"} {
			method, path, _ := strings.Cut(r, " ")
			m[method+" "+prefix+path] = readers
		}
		for _, r := range []string{"POST /iso8601", "PUT /iso8601", "POST /dependency", "PUT /dependency", "PUT /job/{name}", "DELETE /job/{name}", "PUT /job/success/{name}", "DELETE /task/kill/{name}"} {
			method, path, _ := strings.Cut(r, " ")
			m[method+" "+prefix+path] = operators
		}
	}
	return m
}()

// concretePath fills a pattern's wildcards: names that exist nowhere, and the framework
// token's principal as the key-value namespace.
func concretePath(path string) string {
	r := strings.NewReplacer("{namespace}", principals[api.RoleFramework], "{key...}", "k", "{path...}", "none/such", "{id}", "none-such", "{name}", "none-such", "{scheduleId}", "none-such", "{runId}", "none-such")
	return r.Replace(path)
}

// tokenKinds are the credentials each request is tried with: none, a malformed token, a
// well-formed one the cluster never made, and a token of every role.
var tokenKinds = []struct {
	name string
	role api.TokenRole
}{
	{"none", ""}, {"malformed", ""}, {"unknown", ""},
	{"admin", api.RoleAdmin}, {"operator", api.RoleOperator}, {"read-only", api.RoleReadOnly},
	{"framework", api.RoleFramework}, {"agent", api.RoleAgent}, {"lb", api.RoleLB}, {"master", api.RoleMaster},
}

const unknownToken = "atl_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// TestEveryRoute tries every route the master serves (enumerated from the list its mux
// is built from; the join routes of a secure cluster's master included) with every kind
// of token: without a working token it answers 401, with
// a role the policy does not allow 403, and otherwise the handler answers what it
// answers the admin token.
func TestEveryRoute(t *testing.T) {
	creds, err := pki.NewCluster("test", pki.Identity{Name: "m1", Roles: []pki.Role{pki.RoleMaster}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	am := newAuthMaster(t, func(m *master.Master) {
		if err := master.AttachJoin(m, master.JoinConfig{Credentials: creds, FirstJoinTokens: func(map[pki.Role]string) {}}); err != nil {
			t.Errorf("AttachJoin: %v", err)
		}
	})
	type request struct{ method, pattern, path string }
	var requests []request
	for _, pattern := range am.Routes() {
		method, path, ok := strings.Cut(pattern, " ")
		methods := []string{method}
		if !ok {
			path, methods = pattern, []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
		}
		for _, m := range methods {
			requests = append(requests, request{m, path, concretePath(path)})
		}
	}
	if len(requests) < 80 {
		t.Fatalf("only %d requests from %d routes: are the frameworks attached?", len(requests), len(am.Routes()))
	}
	for _, req := range requests {
		key := req.method + " " + req.pattern
		want, ok := routeAccess[key]
		if !ok {
			t.Errorf("route %s: no expected access; add it to routeAccess and a row to the master's policy table", key)
			continue
		}
		// A body every API refuses (a number where an id goes), so that no request
		// changes what the next one finds.
		body := ""
		if req.method != "GET" && req.method != "DELETE" {
			body = `{"id": 5}`
		}
		admin := call(t, am.URL, req.method, req.path, am.tokens[api.RoleAdmin], body)
		if admin.status == http.StatusUnauthorized || admin.status == http.StatusForbidden && strings.Contains(admin.body, "may not") {
			t.Errorf("%s %s with the admin token: %d %s", req.method, req.path, admin.status, admin.body)
			continue
		}
		for _, kind := range tokenKinds {
			token := am.tokens[kind.role]
			switch kind.name {
			case "none":
				token = ""
			case "malformed":
				token = "atl_not-a-token"
			case "unknown":
				token = unknownToken
			}
			got := call(t, am.URL, req.method, req.path, token, body)
			what := fmt.Sprintf("%s %s with %s token", req.method, req.path, kind.name)
			switch {
			case want == anyone || kind.role != "" && want.may(kind.role):
				if got.status != admin.status {
					t.Errorf("%s: %d %s, want the admin's %d", what, got.status, got.body, admin.status)
				}
			case kind.role == "":
				if got.status != http.StatusUnauthorized || !strings.Contains(got.header.Get("WWW-Authenticate"), `Bearer realm="atoll"`) {
					t.Errorf("%s: %d %q (WWW-Authenticate %q), want 401 with a Bearer challenge", what, got.status, got.body, got.header.Get("WWW-Authenticate"))
				}
			default:
				wantMsg := fmt.Sprintf("role %s may not %s %s", kind.role, req.method, req.path)
				if got.status != http.StatusForbidden || refusal(t, req.path, got) != wantMsg {
					t.Errorf("%s: %d %q, want 403 %q", what, got.status, got.body, wantMsg)
				}
			}
		}
	}
}

// refusal is a 401 or 403 answer's message, from whichever shape its API uses.
func refusal(t testing.TB, path string, r reply) string {
	t.Helper()
	switch {
	case strings.HasPrefix(path, "/v2/"), strings.HasPrefix(path, "/package/"), strings.HasPrefix(path, "/cosmos/"):
		var body struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(r.body), &body); err != nil {
			t.Errorf("%s: refusal %q is not JSON: %v", path, r.body, err)
		}
		return body.Message
	}
	return strings.TrimSuffix(r.body, "\n")
}

// TestOperatorCalls: on the operator API, which is one route, the call type decides: reads
// for readers (some for lb tokens too), the rest for operators.
func TestOperatorCalls(t *testing.T) {
	am := newAuthMaster(t)
	tests := []struct {
		call api.OperatorCallType
		want access
	}{
		{api.OpGetHealth, readersLB},
		{api.OpGetVersion, readersLB},
		{api.OpGetTasks, readersLB},
		{api.OpGetMembers, readersLB},
		{api.OpSubscribe, readersLB},
		{api.OpGetState, readers},
		{api.OpGetAgents, readers},
		{api.OpGetFrameworks, readers},
		{api.OpKillTask, operators},
		{api.OpTeardown, operators},
		{"REBOOT_EVERYTHING", operators},
	}
	for _, tt := range tests {
		body := `{"type":"` + string(tt.call) + `"}`
		admin := call(t, am.URL, "POST", api.OperatorPath, am.tokens[api.RoleAdmin], body)
		for _, kind := range tokenKinds[3:] {
			got := call(t, am.URL, "POST", api.OperatorPath, am.tokens[kind.role], body)
			if tt.want.may(kind.role) {
				if got.status != admin.status {
					t.Errorf("%s with %s token: %d %s, want the admin's %d", tt.call, kind.name, got.status, got.body, admin.status)
				}
				continue
			}
			wantMsg := fmt.Sprintf("role %s may not POST /api/v1 %s", kind.role, tt.call)
			if got.status != http.StatusForbidden || refusal(t, api.OperatorPath, got) != wantMsg {
				t.Errorf("%s with %s token: %d %q, want 403 %q", tt.call, kind.name, got.status, got.body, wantMsg)
			}
		}
	}
}
