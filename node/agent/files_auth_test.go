package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
)

// authCluster is a master that requires API tokens and an agent with a token of its own,
// as in a secure cluster, and tokens of every kind the tests need.
type authCluster struct {
	master *master.TestServer
	agent  *Agent
	admin  *api.Client
	// tokens by name: admin, read-only, operator, alice and bob (framework tokens of
	// those principals), lb, and agent (the agent's own).
	tokens map[string]api.CreatedToken
}

func newAuthCluster(t *testing.T) *authCluster {
	t.Helper()
	admins := make(chan string, 1)
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Auth = master.AuthConfig{Enabled: true, AdminToken: func(token string) { admins <- token }}
	})
	c := &authCluster{master: ts, tokens: map[string]api.CreatedToken{}}
	adminToken := <-admins
	c.admin = api.NewClient(ts.URL, api.WithToken(adminToken))
	c.tokens["admin"] = api.CreatedToken{Token: adminToken, Info: api.Token{Role: api.RoleAdmin}}
	for name, req := range map[string]api.CreateTokenRequest{
		"read-only": {Role: api.RoleReadOnly},
		"operator":  {Role: api.RoleOperator},
		"alice":     {Role: api.RoleFramework, Principal: "alice"},
		"bob":       {Role: api.RoleFramework, Principal: "bob"},
		"lb":        {Role: api.RoleLB, Principal: "l1"},
		"agent":     {Role: api.RoleAgent, Principal: "a1"},
	} {
		c.tokens[name] = c.createToken(t, req)
	}
	c.agent = TestAgent(t, ts.Masters, func(cfg *Config) { cfg.MasterToken = c.tokens["agent"].Token })
	return c
}

func (c *authCluster) createToken(t *testing.T, req api.CreateTokenRequest) api.CreatedToken {
	t.Helper()
	created, err := c.admin.CreateToken(context.Background(), req)
	if err != nil {
		t.Fatalf("create a %s token: %v", req.Role, err)
	}
	return *created
}

// runTask runs command as a task of a framework of principal, with that principal's
// token, until it finishes, and returns the framework's id and the task's sandbox.
func (c *authCluster) runTask(t *testing.T, principal, taskID, command string) (frameworkID, sandbox string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	client := api.NewClient(c.master.URL, api.WithToken(c.tokens[principal].Token))
	stream, err := client.Subscribe(ctx, api.FrameworkInfo{Name: principal + "-framework", Principal: principal, Role: "*"}, nil)
	if err != nil {
		t.Fatalf("subscribe as %s: %v", principal, err)
	}
	defer stream.Close()
	launched := false
	for {
		ev, err := stream.Next()
		if err != nil {
			t.Fatalf("%s's subscription: %v", principal, err)
		}
		switch {
		case ev.Type == api.EventOffers && !launched:
			offer := ev.Offers.Offers[0]
			var resources []api.Resource
			for _, r := range offer.Resources {
				if r.Name == "cpus" || r.Name == "mem" {
					r.Scalar = &api.ValueScalar{Value: 0.1}
					if r.Name == "mem" {
						r.Scalar.Value = 32
					}
					resources = append(resources, r)
				}
			}
			task := api.TaskInfo{Name: taskID, TaskID: api.TaskID{Value: taskID}, AgentID: offer.AgentID, Command: &api.CommandInfo{Value: &command}, Resources: resources}
			op := api.OfferOperation{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: []api.TaskInfo{task}}}
			if err := stream.Accept(ctx, []api.OfferID{offer.ID}, []api.OfferOperation{op}, nil); err != nil {
				t.Fatalf("launch %s: %v", taskID, err)
			}
			launched = true
		case ev.Type == api.EventUpdate:
			status := ev.Update.Status
			if len(status.UUID) > 0 {
				if err := stream.Acknowledge(ctx, status); err != nil {
					t.Fatalf("acknowledge: %v", err)
				}
			}
			if dir := status.Labels.Get(api.SandboxLabel); dir != "" {
				sandbox = dir
			}
			switch {
			case status.State == api.TaskFinished:
				return stream.FrameworkID().Value, sandbox
			case status.State.Terminal():
				t.Fatalf("task %s ended %s: %s", taskID, status.State, status.Message)
			}
		}
	}
}

// filesReply is an answer of the agent's /files API.
type filesReply struct {
	status                int
	body, wwwAuthenticate string
}

// getFiles asks the agent's /files API for path with token ("" sends none; one with a
// space is sent as the whole Authorization header).
func getFiles(t *testing.T, agentURL, route, path, token string) filesReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, agentURL+route+"?"+url.Values{"path": {path}, "offset": {"0"}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.Contains(token, " "):
		req.Header.Set("Authorization", token)
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Every answer is one JSON document.
	var body json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s of %s: %d: %v", route, path, resp.StatusCode, err)
	}
	return filesReply{resp.StatusCode, string(body), resp.Header.Get("WWW-Authenticate")}
}

// message is the JSON error answer the agent gives for msg.
func message(msg string) string {
	data, _ := json.Marshal(map[string]string{"message": msg})
	return string(data)
}

// TestSandboxAuth: the /files API of an agent with a token for the masters, which
// require tokens, as in a secure cluster.
func TestSandboxAuth(t *testing.T) {
	c := newAuthCluster(t)
	t.Run("requests", func(t *testing.T) { testSandboxRequests(t, c) })
	t.Run("decisions", func(t *testing.T) { testSandboxDecisions(t, c) })
}

// testSandboxRequests: on an agent with a token for the masters, the /files API serves a
// task's sandbox to the tokens that may read that task (admin, operator, read-only, and
// the framework tokens of its framework's principal), refuses other tokens and those the
// masters refuse with 403 saying why, and requests without a token with 401; paths in no
// task's sandbox are for admin tokens; a symlink into another task's sandbox is judged
// by where it leads.
func testSandboxRequests(t *testing.T, c *authCluster) {
	aliceFramework, aliceSandbox := c.runTask(t, "alice", "alice-task", "echo hello from alice")
	aliceStdout := filepath.Join(aliceSandbox, "stdout")
	bobFramework, bobSandbox := c.runTask(t, "bob", "bob-task", "echo hello from bob; ln -s "+aliceStdout+" peek")
	if aliceFramework == bobFramework {
		t.Fatalf("alice and bob share framework %s", aliceFramework)
	}
	agentURL := "http://" + c.agent.HTTPAddr()
	aliceRead := `{"data":"hello from alice\n","offset":0}`
	id := func(name string) string { return c.tokens[name].Info.ID }
	notAlice := func(name string) string {
		return message(fmt.Sprintf("token %s is a framework token of principal %q, which may not read the sandbox of task alice-task: its framework %s is principal \"alice\"'s", id(name), name, aliceFramework))
	}
	nowhere := message(fmt.Sprintf("token %s (role read-only) may read the tasks' sandboxes only: this path is in none, and only admin tokens read elsewhere", id("read-only")))
	tests := []struct {
		name, route, path, token string
		wantStatus               int
		wantBody                 string
	}{
		{name: "admin", path: aliceStdout, token: "admin", wantStatus: 200, wantBody: aliceRead},
		{name: "read-only", path: aliceStdout, token: "read-only", wantStatus: 200, wantBody: aliceRead},
		{name: "operator", path: aliceStdout, token: "operator", wantStatus: 200, wantBody: aliceRead},
		{name: "the task's framework's principal", path: aliceStdout, token: "alice", wantStatus: 200, wantBody: aliceRead},
		{name: "another principal", path: aliceStdout, token: "bob", wantStatus: 403, wantBody: notAlice("bob")},
		{name: "another principal's own task", path: filepath.Join(bobSandbox, "stdout"), token: "bob", wantStatus: 200, wantBody: `{"data":"hello from bob\n","offset":0}`},
		{name: "a symlink into another principal's sandbox", path: filepath.Join(bobSandbox, "peek"), token: "bob", wantStatus: 403, wantBody: notAlice("bob")},
		{name: "the symlink for a reader of both", path: filepath.Join(bobSandbox, "peek"), token: "read-only", wantStatus: 200, wantBody: aliceRead},
		{name: "another principal, not written yet", path: filepath.Join(aliceSandbox, "stderr.1"), token: "bob", wantStatus: 403, wantBody: notAlice("bob")},
		{name: "lb token", path: aliceStdout, token: "lb", wantStatus: 403,
			wantBody: message(fmt.Sprintf("token %s has role lb, which may not read task sandboxes: admin, operator and read-only tokens may, and framework tokens those of their own frameworks' tasks", id("lb")))},
		{name: "the agent's own token", path: aliceStdout, token: "agent", wantStatus: 403,
			wantBody: message(fmt.Sprintf("token %s has role agent, which may not read task sandboxes: admin, operator and read-only tokens may, and framework tokens those of their own frameworks' tasks", id("agent")))},
		{name: "no token", path: aliceStdout, wantStatus: 401,
			wantBody: message(`authentication required: send the header "Authorization: Bearer <token>" (atoll --token, or ATOLL_TOKEN)`)},
		{name: "the scheme without a token", path: aliceStdout, token: "Bearer ", wantStatus: 401,
			wantBody: message(`authentication required: send the header "Authorization: Bearer <token>" (atoll --token, or ATOLL_TOKEN)`)},
		{name: "another scheme", path: aliceStdout, token: "Basic YWxpY2U6c2VjcmV0", wantStatus: 401,
			wantBody: message(`authorization scheme "Basic" is not supported: send "Authorization: Bearer <token>"`)},
		{name: "unknown token", path: aliceStdout, token: "atl_aaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", wantStatus: 403,
			wantBody: message("the masters refuse this token: invalid token: no token has id aaaaaaaaaaaa")},
		{name: "no token, outside the sandboxes", path: "/etc/passwd", wantStatus: 401,
			wantBody: message(`authentication required: send the header "Authorization: Bearer <token>" (atoll --token, or ATOLL_TOKEN)`)},
		{name: "outside the sandboxes", path: "/etc/passwd", token: "admin", wantStatus: 403, wantBody: message("path is outside the sandboxes: /etc/passwd")},
		{name: "browse the sandbox", route: "/files/browse", path: aliceSandbox, token: "alice", wantStatus: 200},
		{name: "browse it as another principal", route: "/files/browse", path: aliceSandbox, token: "bob", wantStatus: 403, wantBody: notAlice("bob")},
		{name: "browse the sandboxes", route: "/files/browse", path: c.agent.sandboxes, token: "read-only", wantStatus: 403, wantBody: nowhere},
		{name: "browse a framework's sandboxes", route: "/files/browse", path: filepath.Dir(aliceSandbox), token: "read-only", wantStatus: 403, wantBody: nowhere},
		{name: "browse the sandboxes as admin", route: "/files/browse", path: c.agent.sandboxes, token: "admin", wantStatus: 200},
	}
	for _, tc := range tests {
		route := tc.route
		if route == "" {
			route = "/files/read"
		}
		token := tc.token
		if created, ok := c.tokens[token]; ok {
			token = created.Token
		}
		got := getFiles(t, agentURL, route, tc.path, token)
		if got.status != tc.wantStatus || tc.wantBody != "" && got.body != tc.wantBody {
			t.Errorf("%s: %d %s, want %d %s", tc.name, got.status, got.body, tc.wantStatus, tc.wantBody)
		}
		if want := map[bool]string{true: `Bearer realm="atoll"`}[tc.wantStatus == 401]; got.wwwAuthenticate != want {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tc.name, got.wwwAuthenticate, want)
		}
	}
}

// testSandboxDecisions: a decision about a token and a sandbox is kept for
// sandboxAuthTTL, so reads in a row cost the masters one question, and a revoked token
// is refused once its decision expires; a master that cannot be reached is no answer,
// and is asked again.
func testSandboxDecisions(t *testing.T, c *authCluster) {
	target, err := url.Parse(c.master.URL)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(counting.Close)
	masters := []string{counting.URL}
	auth := newSandboxAuth(c.agent.sandboxes, func() []string { return masters }, http.DefaultClient, http.DefaultClient)
	now := time.Now()
	auth.now = func() time.Time { return now }
	reader := c.createToken(t, api.CreateTokenRequest{Role: api.RoleReadOnly})
	stdout := filepath.Join(c.agent.sandboxes, "fw", "task.c", "stdout")
	check := func(what string, wantAsked int64, wantErr string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/files/read", nil)
		req.Header.Set("Authorization", "Bearer "+reader.Token)
		asked.Store(0)
		err := auth.allow(req, stdout)
		if got := errString(err); got != wantErr || asked.Load() != wantAsked {
			t.Errorf("%s: %q after %d questions to the masters, want %q after %d", what, got, asked.Load(), wantErr, wantAsked)
		}
	}
	check("first read", 1, "")
	check("second read", 0, "")
	revoked, err := c.admin.RevokeToken(context.Background(), reader.Info.ID)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(sandboxAuthTTL - time.Millisecond)
	check("read after the revocation, before the decision expired", 0, "")
	now = now.Add(time.Millisecond)
	refused := fmt.Sprintf("the masters refuse this token: token %s revoked at %s", reader.Info.ID, revoked.Revoked.UTC().Format(time.RFC3339))
	check("read once the decision expired", 1, refused)
	check("read again", 0, refused)
	now = now.Add(sandboxAuthTTL)
	counting.Close()
	check("read with the master gone", 0, "cannot check the token with the masters: Get \""+counting.URL+api.TokenSelfPath+"\": dial tcp "+strings.TrimPrefix(counting.URL, "http://")+": connect: connection refused")
	masters = nil
	check("read with no master", 0, "cannot check the token with the masters: this agent knows of none")
}

// FuzzSandboxOf: any path is under the sandboxes or not, and one said to be in a task's
// sandbox is under them.
func FuzzSandboxOf(f *testing.F) {
	for _, seed := range []string{"/s/fw/task.c/stdout", "/s", "/s/fw", "/s/fw/.c", "/s/%zz/t.c", "/s/f%2Fw/t%2E.c/x", "/other", "s/fw/t.c", "/s/../s/fw/t.c"} {
		f.Add(seed)
	}
	auth := newSandboxAuth("/s", nil, nil, nil)
	f.Fuzz(func(t *testing.T, path string) {
		frameworkID, taskID, under := auth.sandboxOf(path)
		clean := filepath.Clean(path)
		if under != (clean == "/s" || strings.HasPrefix(clean, "/s/")) {
			t.Fatalf("sandboxOf(%q) under = %v", path, under)
		}
		if (frameworkID == "") != (taskID == "") || frameworkID != "" && len(strings.Split(clean, "/")) < 4 {
			t.Fatalf("sandboxOf(%q) = %q, %q", path, frameworkID, taskID)
		}
	})
}

// TestOpenResolved: the files API opens a resolved path only if the open landed on that
// very path, not through a symlink a task put in its place.
func TestOpenResolved(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
	}{
		{path: file},
		{path: dir},
		{path: link, want: "path changed while it was opened: /requested"},
		{path: filepath.Join(dir, "missing"), want: "cannot open file: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
	}
	for _, tc := range tests {
		f, err := openResolved(tc.path, "/requested")
		if got := errString(err); got != tc.want {
			t.Errorf("openResolved(%s) = %q, want %q", tc.path, got, tc.want)
		}
		if err == nil {
			f.Close()
		}
	}
}
