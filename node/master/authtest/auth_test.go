package authtest

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/node/master"
)

// TestRefusalShapes: 401 and 403 come in the shape of the API the path belongs to, with
// a Bearer challenge on 401.
func TestRefusalShapes(t *testing.T) {
	am := newAuthMaster(t)
	const textType, jsonType = "text/plain; charset=utf-8", "application/json; charset=utf-8"
	tests := []struct {
		name, method, path, body, token string
		status                          int
		contentType, wantBody           string
		challenge                       string
	}{
		{"marathon 401", "GET", "/v2/apps", "", "", 401, jsonType,
			`{"message":"authentication required: send the header \"Authorization: Bearer <token>\" (atoll --token, or ATOLL_TOKEN)"}` + "\n", `Bearer realm="atoll"`},
		{"marathon 403", "POST", "/v2/apps", `{"id":"/x"}`, "read-only", 403, jsonType,
			`{"message":"role read-only may not POST /v2/apps"}` + "\n", ""},
		{"mesos 401", "GET", "/master/state", "", unknownToken, 401, textType,
			"invalid token: no token has id aaaaaaaaaaaa\n", `Bearer realm="atoll", error="invalid_token"`},
		{"mesos 403", "POST", "/api/v1", `{"type":"TEARDOWN","teardown":{"framework_id":{"value":"f"}}}`, "read-only", 403, textType,
			"role read-only may not POST /api/v1 TEARDOWN\n", ""},
		{"cosmos 401", "POST", "/package/install", `{"packageName":"redis"}`, "atl_nonsense", 401, universe.MediaTypeError,
			`{"type":"Unauthorized","message":"invalid token: not an Atoll API token: want atl_<id>_<secret> as ` + "`atoll token create`" + ` prints it"}` + "\n",
			`Bearer realm="atoll", error="invalid_token"`},
		{"cosmos 403", "POST", "/package/install", `{"packageName":"redis"}`, "lb", 403, universe.MediaTypeError,
			`{"type":"Forbidden","message":"role lb may not POST /package/install"}` + "\n", ""},
		{"chronos 401", "GET", "/v1/scheduler/jobs", "", "", 401, textType,
			"authentication required: send the header \"Authorization: Bearer <token>\" (atoll --token, or ATOLL_TOKEN)\n", `Bearer realm="atoll"`},
		{"chronos 403", "DELETE", "/scheduler/job/nightly", "", "agent", 403, textType,
			"role agent may not DELETE /scheduler/job/nightly\n", ""},
		{"token api 403", "GET", "/atoll/v1/tokens", "", "operator", 403, textType,
			"role operator may not GET /atoll/v1/tokens\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token
			if role := api.TokenRole(token); role.Valid() {
				token = am.tokens[role]
			}
			got := call(t, am.URL, tt.method, tt.path, token, tt.body)
			if got.status != tt.status || got.header.Get("Content-Type") != tt.contentType || got.body != tt.wantBody || got.header.Get("WWW-Authenticate") != tt.challenge {
				t.Errorf("%s %s: %d %q %q (WWW-Authenticate %q)\nwant %d %q %q (%q)", tt.method, tt.path, got.status, got.header.Get("Content-Type"), got.body,
					got.header.Get("WWW-Authenticate"), tt.status, tt.contentType, tt.wantBody, tt.challenge)
			}
		})
	}
}

// TestExpiry: a token with a TTL works until the clock reaches its expiry, then every
// request with it is refused, saying when it expired.
func TestExpiry(t *testing.T) {
	am := newAuthMaster(t)
	admin := api.NewClient(am.URL, api.WithToken(am.tokens[api.RoleAdmin]))
	created := createToken(t, admin, api.CreateTokenRequest{Role: api.RoleReadOnly, Principal: "temp", TTLSeconds: 3600})
	if want := created.Info.Created.Add(time.Hour); !created.Info.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v", created.Info.Expires, want)
	}
	if got := call(t, am.URL, "GET", "/master/state", created.Token, ""); got.status != 200 {
		t.Fatalf("before expiry: %d %s", got.status, got.body)
	}
	am.clock.advance(59*time.Minute + 59*time.Second)
	if got := call(t, am.URL, "GET", "/master/state", created.Token, ""); got.status != 200 {
		t.Fatalf("a second before expiry: %d %s", got.status, got.body)
	}
	am.clock.advance(time.Second)
	want := fmt.Sprintf("token %s expired at %s\n", created.Info.ID, created.Info.Expires.UTC().Format(time.RFC3339))
	if got := call(t, am.URL, "GET", "/master/state", created.Token, ""); got.status != 401 || got.body != want {
		t.Fatalf("at expiry: %d %q, want 401 %q", got.status, got.body, want)
	}
	list, err := admin.ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range list.Tokens {
		if tok.ID == created.Info.ID && tok.Status(am.clock.Now()) != "expired" {
			t.Fatalf("listed as %q, want expired", tok.Status(am.clock.Now()))
		}
	}
}

// TestRevocationOnEveryMaster: a token revoked through the leader is refused by every
// master, each checking its own replica, as soon as it applied the revocation.
func TestRevocationOnEveryMaster(t *testing.T) {
	logger, _ := newLogger(t)
	admins := make(chan string, 3)
	cluster := master.NewTestCluster(t, 3, func(c *master.Config) {
		c.Logger = logger.With("master", c.ID)
		c.Auth = master.AuthConfig{Enabled: true, AdminToken: func(token string) { admins <- token }}
	})
	var adminToken string
	select {
	case adminToken = <-admins:
	case <-time.After(waitTimeout):
		t.Fatal("no admin token")
	}
	leader := cluster.Leader()
	admin := api.NewClient(leader.URL, api.WithToken(adminToken))
	created := createToken(t, admin, api.CreateTokenRequest{Role: api.RoleReadOnly, Principal: "soon-revoked"})
	// /metrics is served by each master itself, so each answer is that master's decision.
	for _, ts := range cluster.Servers {
		eventually(t, ts.ID()+" accepting the token", func() error {
			if got := call(t, ts.URL, "GET", "/metrics", created.Token, ""); got.status != 200 {
				return fmt.Errorf("%d %s", got.status, got.body)
			}
			return nil
		})
	}
	revoked, err := admin.RevokeToken(context.Background(), created.Info.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("token %s revoked at %s\n", created.Info.ID, revoked.Revoked.UTC().Format(time.RFC3339))
	for _, ts := range cluster.Servers {
		eventually(t, ts.ID()+" refusing the revoked token", func() error {
			if got := call(t, ts.URL, "GET", "/metrics", created.Token, ""); got.status != 401 || got.body != want {
				return fmt.Errorf("%d %q, want 401 %q", got.status, got.body, want)
			}
			return nil
		})
	}
	again, err := admin.RevokeToken(context.Background(), created.Info.ID)
	if err != nil || !again.Revoked.Equal(revoked.Revoked) {
		t.Fatalf("revoking again: %+v, %v; want the first revocation's time %v", again, err, revoked.Revoked)
	}
}

// TestInProcessCallsPass: with authentication on, the built-in services framework still
// deploys an app (its scheduler calls reach the master in-process, without a token) and
// the catalog still installs a package (it creates the app through the Marathon API
// in-process).
func TestInProcessCallsPass(t *testing.T) {
	am := newAuthMaster(t)
	master.StartSimulatedAgentWithToken(t, am.URL, am.tokens[api.RoleAgent], "sim-0", []api.Resource{
		{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 4}},
		{Name: "mem", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 4096}},
		{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 31100}}}},
	})
	apps := marathon.NewClient(am.URL, marathon.WithToken(am.tokens[api.RoleOperator]))
	ctx := context.Background()
	if _, err := apps.CreateApp(ctx, []byte(`{"id":"/web","cmd":"sleep 600","cpus":0.1,"mem":16,"instances":2}`), false); err != nil {
		t.Fatalf("create app: %v", err)
	}
	eventually(t, "the app's instances running", func() error {
		app, err := apps.GetApp(ctx, "/web")
		if err != nil {
			return err
		}
		if running := app.Value.TasksRunning; running == nil || *running != 2 {
			return fmt.Errorf("running: %v", running)
		}
		return nil
	})
	catalog := universe.NewClient(am.URL, universe.WithToken(am.tokens[api.RoleOperator]))
	installed, err := catalog.Install(ctx, &universe.InstallRequest{PackageName: "redis", AppID: "/cache"})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if _, err := apps.GetApp(ctx, installed.AppID); err != nil {
		t.Fatalf("the installed package's app: %v", err)
	}
}

func TestFrameworkTokens(t *testing.T) {
	am := newAuthMaster(t)
	ctx := context.Background()
	fw := api.NewClient(am.URL, api.WithToken(am.tokens[api.RoleFramework]))
	op := api.NewClient(am.URL, api.WithToken(am.tokens[api.RoleOperator]))
	info := func(principal string, roles ...string) api.FrameworkInfo {
		return api.FrameworkInfo{User: "root", Name: "test-" + principal, Principal: principal, Roles: roles}
	}
	subscribeErr := func(client *api.Client, fi api.FrameworkInfo) (*api.SchedulerStream, error) {
		s, err := client.Subscribe(ctx, fi, nil)
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	for _, roles := range [][]string{{"fw1"}, {"*"}, {"fw1/dev", "fw1"}, nil} {
		if _, err := subscribeErr(fw, info("fw1", roles...)); err != nil {
			t.Errorf("framework token, principal fw1, roles %q: %v", roles, err)
		}
	}
	others, err := subscribeErr(op, info("other"))
	if err != nil {
		t.Fatalf("operator token subscribing principal other: %v", err)
	}
	if ev, err := others.Next(); err != nil || ev.Type != api.EventSubscribed {
		t.Fatalf("first event %+v, %v; want SUBSCRIBED", ev, err)
	}
	tests := []struct {
		name string
		body string
		want string
	}{
		{"another principal", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","principal":"other"}}}`,
			`a framework token of principal "fw1" may not subscribe a framework with principal "other"`},
		{"no principal", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x"}}}`,
			`a framework token of principal "fw1" may not subscribe a framework with principal ""`},
		{"another role", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","principal":"fw1","roles":["fw1","prod"]}}}`,
			`a framework token of principal "fw1" may not subscribe in role "prod": only "fw1", "fw1/…" and *`},
		{"a role that only starts like it", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","principal":"fw1","role":"fw10"}}}`,
			`a framework token of principal "fw1" may not subscribe in role "fw10": only "fw1", "fw1/…" and *`},
		{"failing over another's framework", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","principal":"fw1","id":{"value":"` + others.FrameworkID().Value + `"}}}}`,
			fmt.Sprintf(`framework %s belongs to principal "other", not to this token's "fw1"`, others.FrameworkID().Value)},
		{"calling for another's framework", `{"type":"TEARDOWN","framework_id":{"value":"` + others.FrameworkID().Value + `"}}`,
			fmt.Sprintf(`framework %s belongs to principal "other", not to this token's "fw1"`, others.FrameworkID().Value)},
		{"a body that is not one call", `{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"x","principal":"fw1"}}} {"type":"TEARDOWN"}`,
			"a framework token's scheduler calls must be one JSON call of at most 8388608 bytes"},
	}
	for _, tt := range tests {
		got := call(t, am.URL, "POST", api.SchedulerPath, am.tokens[api.RoleFramework], tt.body)
		if got.status != 403 || got.body != tt.want+"\n" {
			t.Errorf("%s: %d %q, want 403 %q", tt.name, got.status, got.body, tt.want)
		}
	}
	// The key-value namespace named as the principal is the framework's; no other is.
	if got := call(t, am.URL, "POST", master.KVPath+"fw1", am.tokens[api.RoleFramework], `{"puts":[{"key":"k","value":1}]}`); got.status != 200 {
		t.Errorf("writing its own namespace: %d %s", got.status, got.body)
	}
	want := `a framework token of principal "fw1" may only write key-value namespace "fw1", not "fw2"` + "\n"
	if got := call(t, am.URL, "POST", master.KVPath+"fw2", am.tokens[api.RoleFramework], `{"puts":[{"key":"k","value":1}]}`); got.status != 403 || got.body != want {
		t.Errorf("writing another namespace: %d %q, want 403 %q", got.status, got.body, want)
	}
	// The key-value API never reaches the tokens.
	want = "key-value namespace \"auth\" belongs to the masters' API tokens and cannot be used through the key-value API: give the framework a namespace of its own\n"
	if got := call(t, am.URL, "GET", master.KVPath+"auth", am.tokens[api.RoleAdmin], ""); got.status != 400 || got.body != want {
		t.Errorf("reading the tokens through the key-value API: %d %q, want 400 %q", got.status, got.body, want)
	}
}

// auditLines are the audit log's lines, decoded.
func auditLines(t testing.TB, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	scanner := bufio.NewScanner(strings.NewReader(logs))
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		var line map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", scanner.Text(), err)
		}
		if line["component"] == "audit" {
			delete(line, "time")
			delete(line, "remote")
			out = append(out, line)
		}
	}
	return out
}

// TestAudit: each allowed write is one audit line naming the token, its principal and
// role, the method, path and call type; reads and refused requests are not.
func TestAudit(t *testing.T) {
	am := newAuthMaster(t)
	before := len(auditLines(t, am.logs.String()))
	op := am.tokens[api.RoleOperator]
	opID := strings.Split(op, "_")[1]
	call(t, am.URL, "GET", "/v2/apps", op, "")
	call(t, am.URL, "POST", "/api/v1", op, `{"type":"GET_STATE"}`)
	call(t, am.URL, "POST", "/v2/apps", am.tokens[api.RoleReadOnly], `{"id":"/refused","cmd":"true"}`)
	if got := call(t, am.URL, "POST", "/v2/apps", op, `{"id":"/audited","cmd":"sleep 1","cpus":0.1,"mem":16,"instances":0}`); got.status != 201 {
		t.Fatalf("create app: %d %s", got.status, got.body)
	}
	call(t, am.URL, "POST", "/api/v1", op, `{"type":"KILL_TASK","kill_task":{"task_id":{"value":"none"}}}`)
	got := auditLines(t, am.logs.String())[before:]
	want := []map[string]any{
		{"level": "INFO", "msg": "api write", "component": "audit", "token": opID, "principal": "ops", "role": "operator", "method": "POST", "path": "/v2/apps"},
		{"level": "INFO", "msg": "api write", "component": "audit", "token": opID, "principal": "ops", "role": "operator", "method": "POST", "path": "/api/v1", "call": "KILL_TASK"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit lines:\n%v\nwant:\n%v", got, want)
	}
}

// TestSecretsNotKept: no token's secret is in the replicated state (the key-value table,
// a snapshot of it, the Raft files on disk), in the logs or in a listing.
func TestSecretsNotKept(t *testing.T) {
	am := newAuthMaster(t)
	admin := am.tokens[api.RoleAdmin]
	// Use every token, well and badly.
	for _, token := range am.tokens {
		call(t, am.URL, "GET", "/master/state", token, "")
		call(t, am.URL, "GET", "/master/state", token[:len(token)-1]+"a", "")
		call(t, am.URL, "GET", "/master/state", token+"x", "")
	}
	var secrets []string
	for _, token := range am.tokens {
		secrets = append(secrets, token[len("atl_")+13:])
	}
	places := map[string]string{"logs": am.logs.String()}
	for _, entry := range am.Store().KVList("auth", "") {
		places["kv "+entry.Key] = string(entry.Value)
	}
	if len(places) != 1+len(am.tokens) {
		t.Fatalf("%d stored tokens, want %d", len(places)-1, len(am.tokens))
	}
	places["token list"] = call(t, am.URL, "GET", "/atoll/v1/tokens", admin, "").body
	places["snapshot"] = snapshot(t, am.URL, admin)
	err := filepath.WalkDir(am.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		places[path] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for where, text := range places {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("a token's secret is in %s", where)
			}
		}
	}
}

// snapshot takes a snapshot of the cluster state and returns it uncompressed.
func snapshot(t testing.TB, baseURL, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, baseURL+api.RaftSnapshotPath, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("snapshot: %s", resp.Status)
	}
	gz, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "secret_sha256") {
		t.Fatalf("the snapshot (%d bytes) holds no token records", len(data))
	}
	return string(data)
}

// TestAdminBootstrap: the first leader creates an admin token and hands it over once; a
// leader elected later does not, unless no admin token works any more.
func TestAdminBootstrap(t *testing.T) {
	am := newAuthMaster(t)
	ctx := context.Background()
	first := am.tokens[api.RoleAdmin]
	am.Restart()
	admin := api.NewClient(am.URL, api.WithToken(first))
	eventually(t, "the restarted master's bootstrap service to run", func() error {
		if n := strings.Count(am.logs.String(), `"msg":"leader service stopped","component":"master","service":"auth-bootstrap"`); n != 2 {
			return fmt.Errorf("it ran %d times", n)
		}
		return nil
	})
	select {
	case token := <-am.adminTokens:
		t.Fatalf("a second admin token %s while the first works", token[:17])
	default:
	}
	list, err := admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	firstID := strings.Split(first, "_")[1]
	if list.Tokens[0].ID != firstID || list.Tokens[0].CreatedBy != "bootstrap" || list.Tokens[0].Principal != "admin" || len(list.Tokens) != len(principals) {
		t.Fatalf("tokens %+v, want the bootstrap admin token %s first of %d", list.Tokens, firstID, len(principals))
	}
	if _, err := admin.RevokeToken(ctx, firstID); err != nil {
		t.Fatal(err)
	}
	am.Restart()
	second := am.nextAdminToken(t)
	if got := call(t, am.URL, "GET", "/atoll/v1/tokens", second, ""); got.status != 200 {
		t.Fatalf("the new admin token: %d %s", got.status, got.body)
	}
	if got := call(t, am.URL, "GET", "/atoll/v1/tokens", first, ""); got.status != 401 {
		t.Fatalf("the revoked admin token: %d %s", got.status, got.body)
	}
}

// TestTokenAPI: bad requests are refused naming the problem; created tokens are listed
// in creation order, without secrets.
func TestTokenAPI(t *testing.T) {
	am := newAuthMaster(t)
	admin := am.tokens[api.RoleAdmin]
	tests := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/atoll/v1/tokens", `{"role":"superuser"}`, 400, `role "superuser": want one of admin, operator, read-only, framework, agent, lb, master`},
		{"POST", "/atoll/v1/tokens", `{"role":"framework"}`, 400, "principal: a framework token needs one, the principal its frameworks subscribe with"},
		{"POST", "/atoll/v1/tokens", `{"role":"agent","ttl_seconds":-5}`, 400, "ttl_seconds: -5, want 0 (no expiry) to 3153600000"},
		{"POST", "/atoll/v1/tokens", `{"role":`, 400, "failed to parse body into JSON: unexpected EOF"},
		{"DELETE", "/atoll/v1/tokens/nosuchtoken1", "", 404, `no token has id "nosuchtoken1"`},
	}
	for _, tt := range tests {
		if got := call(t, am.URL, tt.method, tt.path, admin, tt.body); got.status != tt.status || got.body != tt.want+"\n" {
			t.Errorf("%s %s %s: %d %q, want %d %q", tt.method, tt.path, tt.body, got.status, got.body, tt.status, tt.want)
		}
	}
	client := api.NewClient(am.URL, api.WithToken(admin))
	list, err := client.ListTokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, tok := range list.Tokens {
		roles = append(roles, string(tok.Role))
	}
	if len(roles) != len(principals) || roles[0] != "admin" {
		t.Fatalf("roles in creation order %q: want admin first of %d", roles, len(principals))
	}
	var httpErr *api.HTTPError
	readOnly := api.NewClient(am.URL, api.WithToken(am.tokens[api.RoleReadOnly]))
	if _, err := readOnly.CreateToken(context.Background(), api.CreateTokenRequest{Role: api.RoleAdmin}); !errors.As(err, &httpErr) || httpErr.Status != 403 ||
		httpErr.Message != "role read-only may not POST /atoll/v1/tokens" {
		t.Fatalf("a read-only token creating an admin token: %v", err)
	}
}

// TestKVSecrets: the keys of a namespace's secret store (master.SecretKeyPrefix) are read
// through the key-value API by the namespace's framework token and admins alone; other
// readers are refused the key and do not see it listed.
func TestKVSecrets(t *testing.T) {
	am := newAuthMaster(t)
	ns := principals[api.RoleFramework]
	write := `{"puts": [{"key": "secret/db", "value": "` + base64.StdEncoding.EncodeToString([]byte("hunter2")) + `"}, {"key": "plain", "value": "YQ=="}]}`
	if r := call(t, am.URL, "POST", master.KVPath+ns, am.tokens[api.RoleFramework], write); r.status != http.StatusOK {
		t.Fatalf("write: %d %s", r.status, r.body)
	}
	secretPath := master.KVPath + ns + "/secret%2Fdb"
	for _, tt := range []struct {
		role api.TokenRole
		want int
		keys []string
	}{
		{api.RoleFramework, http.StatusOK, []string{"plain", "secret/db"}},
		{api.RoleAdmin, http.StatusOK, []string{"plain", "secret/db"}},
		{api.RoleOperator, http.StatusForbidden, []string{"plain"}},
		{api.RoleReadOnly, http.StatusForbidden, []string{"plain"}},
	} {
		r := call(t, am.URL, "GET", secretPath, am.tokens[tt.role], "")
		if r.status != tt.want {
			t.Errorf("%s: GET %s: %d %s, want %d", tt.role, secretPath, r.status, r.body, tt.want)
		}
		if tt.want == http.StatusForbidden && !strings.Contains(r.body, `key "secret/db" of key-value namespace "fw1" is a secret`) {
			t.Errorf("%s: refusal %q does not say the key is a secret", tt.role, r.body)
		}
		var list master.KVEntries
		if err := getJSON(am.URL+master.KVPath+ns, am.tokens[tt.role], &list); err != nil {
			t.Fatalf("%s: list: %v", tt.role, err)
		}
		var keys []string
		for _, e := range list.Entries {
			keys = append(keys, e.Key)
		}
		if !slices.Equal(keys, tt.keys) {
			t.Errorf("%s: listed keys %q, want %q", tt.role, keys, tt.keys)
		}
	}
}

// getJSON GETs url with token and decodes the answer into v.
func getJSON(url, token string, v any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
