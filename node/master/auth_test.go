package master

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/pki"
)

func TestParseToken(t *testing.T) {
	const id, secret = "abcdefgh2345", "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	tests := []struct {
		name, token string
		ok          bool
	}{
		{"valid", "atl_" + id + "_" + secret, true},
		{"empty", "", false},
		{"no prefix", "xyz_" + id + "_" + secret, false},
		{"upper case", "atl_" + strings.ToUpper(id) + "_" + secret, false},
		{"short secret", "atl_" + id + "_" + secret[1:], false},
		{"long secret", "atl_" + id + "_" + secret + "a", false},
		{"short id", "atl_" + id[1:] + "_a" + secret, false},
		{"separator missing", "atl_" + id + "a" + secret, false},
		{"not base32 in id", "atl_abcdefgh2341_" + secret, false},
		{"not base32 in secret", "atl_" + id + "_" + secret[:51] + "8", false},
		{"padding", "atl_" + id + "_" + secret[:51] + "=", false},
		{"whitespace", " atl_" + id + "_" + secret[1:], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, gotSecret, err := parseToken(tt.token)
			if !tt.ok {
				if err != errBadTokenFormat {
					t.Fatalf("parseToken(%q) = %q, %q, %v; want errBadTokenFormat", tt.token, gotID, gotSecret, err)
				}
				return
			}
			if err != nil || gotID != id || gotSecret != secret {
				t.Fatalf("parseToken(%q) = %q, %q, %v; want %q, %q", tt.token, gotID, gotSecret, err, id, secret)
			}
		})
	}
}

func TestNewTokenSecretParses(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, secret, err := newTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		gotID, gotSecret, err := parseToken(tokenPrefix + id + "_" + secret)
		if err != nil || gotID != id || gotSecret != secret {
			t.Fatalf("token of %q, %q parses as %q, %q, %v", id, secret, gotID, gotSecret, err)
		}
		if seen[id] {
			t.Fatalf("id %s made twice", id)
		}
		seen[id] = true
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add("atl_abcdefgh2345_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst")
	f.Add("atl__")
	f.Add("")
	f.Add("Bearer atl_x")
	f.Fuzz(func(t *testing.T, token string) {
		id, secret, err := parseToken(token)
		if err != nil {
			return
		}
		if tokenPrefix+id+"_"+secret != token || len(id) != tokenIDLen || len(secret) != tokenSecretLen || !isBase32(id) || !isBase32(secret) {
			t.Fatalf("parseToken(%q) accepted it as %q, %q", token, id, secret)
		}
	})
}

// FuzzPeekCall: whatever the body, peeking leaves it whole for the handler, and decodes
// exactly the call the handler would.
func FuzzPeekCall(f *testing.F) {
	f.Add(true, []byte(`{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n","principal":"p","roles":["p"]}}}`))
	f.Add(false, []byte(`{"type":"KILL_TASK","kill_task":{"task_id":{"value":"t"}}}`))
	f.Add(true, []byte(`{"framework_id":{"value":"f"},"type":"DECLINE"}`))
	f.Add(false, []byte(`{"type":"GET_STATE"}}`))
	f.Add(true, []byte(`not json`))
	f.Add(false, []byte(`{"type":7}`))
	f.Fuzz(func(t *testing.T, scheduler bool, body []byte) {
		const limit = 1 << 10
		path := api.OperatorPath
		var handler, checked any = &api.OperatorCall{}, &api.OperatorCall{}
		if scheduler {
			path, handler, checked = api.SchedulerPath, &api.Call{}, &api.Call{}
		}
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		call := peekCall(r, "POST "+path, limit)
		rest, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(rest, body) {
			t.Fatalf("after the peek the body reads %q, %v; want %q", rest, err, body)
		}
		handlerDecodes := len(body) <= limit && decodeJSON(body, handler) == nil
		ctx := context.WithValue(r.Context(), authContextKey{}, &requestAuth{call: call})
		took := takeCheckedCall(ctx, checked)
		if took != handlerDecodes || took && !reflect.DeepEqual(checked, handler) {
			t.Fatalf("the check took %v: %+v; the handler decodes it: %v, as %+v", took, checked, handlerDecodes, handler)
		}
	})
}

// TestPolicyTable pins the decision for routes of every API, those the master registers
// and those the node and the installer add.
func TestPolicyTable(t *testing.T) {
	tests := []struct {
		method, pattern string
		call            api.OperatorCallType
		kind            ruleKind
		allow           roleSet
		check           check
	}{
		{"GET", "GET /health", "", public, 0, noCheck},
		{"HEAD", "GET /health", "", public, 0, noCheck},
		{"GET", "GET /ping", "", public, 0, noCheck},
		{"GET", "GET /install.sh", "", public, 0, noCheck},
		{"GET", "GET /atoll-uninstall.sh", "", public, 0, noCheck},
		{"GET", "GET /download/atoll", "", public, 0, noCheck},
		{"GET", "GET /download/{file}", "", public, 0, noCheck},
		{"GET", "GET /api/v1/raft/peers", "", public, 0, noCheck},
		{"POST", "POST /api/v1/scheduler", "", write, byOperator | byFramework, ownFramework},
		{"POST", "POST /api/v1/agent", "", agentProtocol, byOperator | byAgent | byMaster, noCheck},
		{"POST", "POST " + pki.RenewPath, "", nodeCertificate, 0, noCheck},
		{"POST", "POST " + pki.NodesPath + "/{name}/revoke", "", write, 0, noCheck},
		{"POST", "POST " + pki.KeyringRotatePath, "", write, 0, noCheck},
		{"POST", "POST /api/v1", api.OpSubscribe, read, readers | byLB, noCheck},
		{"POST", "POST /api/v1", api.OpGetTasks, read, readers | byLB, noCheck},
		{"POST", "POST /api/v1", api.OpGetState, read, readers, noCheck},
		{"POST", "POST /api/v1", api.OpKillTask, write, byOperator, noCheck},
		{"POST", "POST /api/v1", "", write, byOperator, noCheck},
		{"POST", "POST /api/v1/raft/remove-peer", "", write, byOperator, noCheck},
		{"GET", "GET /api/v1/raft/snapshot", "", read, 0, noCheck},
		{"POST", "POST /api/v1/raft/snapshot", "", write, 0, noCheck},
		{"GET", "GET /atoll/v1/tokens", "", read, 0, noCheck},
		{"POST", "POST /atoll/v1/tokens", "", write, 0, noCheck},
		{"DELETE", "DELETE /atoll/v1/tokens/{id}", "", write, 0, noCheck},
		{"GET", "GET /master/state.json", "", read, readers, noCheck},
		{"GET", "GET /metrics", "", read, readers, noCheck},
		{"GET", "GET /atoll/v1/kv/{namespace}/{key...}", "", read, readers, noCheck},
		{"POST", "POST /atoll/v1/kv/{namespace}", "", write, byOperator | byFramework, ownNamespace},
		{"GET", "GET /v2/apps", "", read, readers | byLB, noCheck},
		{"GET", "/v2/apps/{path...}", "", read, readers | byLB, noCheck},
		{"DELETE", "/v2/apps/{path...}", "", write, byOperator, noCheck},
		{"GET", "GET /v2/events", "", read, readers | byLB, noCheck},
		{"GET", "GET /v2/info", "", read, readers, noCheck},
		{"POST", "POST /v2/tasks/delete", "", write, byOperator, noCheck},
		{"PATCH", "/v2/groups/{path...}", "", write, byOperator, noCheck},
		{"GET", "GET /v1/scheduler/jobs", "", read, readers, noCheck},
		{"PUT", "PUT /scheduler/job/{name}", "", write, byOperator, noCheck},
		{"GET", "GET /leader", "", read, readers, noCheck},
		{"GET", "/v1/hosts/", "", read, readers, noCheck},
		{"POST", "/v1/hosts/", "", write, byOperator, noCheck},
		{"POST", "POST /package/search", "", read, readers, noCheck},
		{"POST", "POST /package/repository/list", "", read, readers, noCheck},
		{"POST", "POST /package/install", "", write, byOperator, noCheck},
		{"POST", "POST /cosmos/service/update", "", write, byOperator, noCheck},
	}
	for _, tt := range tests {
		rl := policyFor(tt.pattern).lookup(tt.method, tt.call)
		if rl == nil {
			t.Errorf("%s on %q (%s): no row", tt.method, tt.pattern, tt.call)
			continue
		}
		if rl.kind != tt.kind || rl.allow != tt.allow || rl.check != tt.check {
			t.Errorf("%s on %q (%s): row %+v, want kind %d, allow %b, check %d", tt.method, tt.pattern, tt.call, *rl, tt.kind, tt.allow, tt.check)
		}
	}
	for _, uncovered := range []struct{ method, pattern string }{
		{"GET", "GET /somewhere/new"},
		{"POST", "POST /health"},
	} {
		if rl := policyFor(uncovered.pattern).lookup(uncovered.method, ""); rl != nil {
			t.Errorf("%s on %q: row %+v, want none (admin only)", uncovered.method, uncovered.pattern, *rl)
		}
	}
}

// TestPolicyRows checks the table's own consistency: public rows need nothing else, and
// rows that depend on the call are on routes that never need no token.
func TestPolicyRows(t *testing.T) {
	for _, r := range policy {
		if r.kind == public && (r.allow != 0 || r.calls != nil || r.check != noCheck || r.method != http.MethodGet) {
			t.Errorf("public row %+v: want a GET with no roles, calls or checks", r)
		}
		if r.kind == nodeCertificate && (r.allow != 0 || r.calls != nil || r.check != noCheck) {
			t.Errorf("node certificate row %+v: want no roles, calls or checks", r)
		}
		if r.calls != nil && r.method != http.MethodPost {
			t.Errorf("row %+v: call types come in POST bodies", r)
		}
	}
}

func TestValidateTokenRequest(t *testing.T) {
	tests := []struct {
		req  api.CreateTokenRequest
		want string
	}{
		{api.CreateTokenRequest{Role: api.RoleAdmin}, ""},
		{api.CreateTokenRequest{Role: api.RoleFramework, Principal: "marathon-user", TTLSeconds: 3600}, ""},
		{api.CreateTokenRequest{Role: api.RoleReadOnly, Principal: "alice@example.com"}, ""},
		{api.CreateTokenRequest{Role: "root"}, `role "root": want one of admin, operator, read-only, framework, agent, lb, master`},
		{api.CreateTokenRequest{Role: api.RoleFramework}, "principal: a framework token needs one, the principal its frameworks subscribe with"},
		{api.CreateTokenRequest{Role: api.RoleAgent, TTLSeconds: -1}, "ttl_seconds: -1, want 0 (no expiry) to 3153600000"},
		{api.CreateTokenRequest{Role: api.RoleAgent, Principal: "-x"}, `principal "-x": want letters, digits and . _ @ - (not first)`},
		{api.CreateTokenRequest{Role: api.RoleAgent, Principal: "a b"}, `principal "a b": want letters, digits and . _ @ - (not first)`},
		{api.CreateTokenRequest{Role: api.RoleAgent, Principal: strings.Repeat("a", 129)}, "principal: 129 characters, at most 128"},
	}
	for _, tt := range tests {
		got := ""
		if err := validateTokenRequest(tt.req); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("validateTokenRequest(%+v) = %q, want %q", tt.req, got, tt.want)
		}
	}
}

// TestFromThisProcess: requests api.HandlerTransport hands over count as in-process, also
// when made with a network request's context (as the catalog's calls are); network
// requests do not, whatever their headers say.
func TestFromThisProcess(t *testing.T) {
	var inProcess, network atomic.Int32
	var inner http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fromThisProcess(r) {
			inProcess.Add(1)
		} else {
			network.Add(1)
		}
	})
	local := &http.Client{Transport: api.HandlerTransport(inner)}
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r)
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://in-process/x", nil)
		resp, err := local.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	})
	srv := httptest.NewServer(outer)
	defer srv.Close()
	for _, header := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "Host"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
		req.Header.Set(header, inProcessAddr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if inProcess.Load() != 4 || network.Load() != 4 {
		t.Fatalf("in-process requests seen as such: %d, network requests: %d; want 4 and 4", inProcess.Load(), network.Load())
	}
}
