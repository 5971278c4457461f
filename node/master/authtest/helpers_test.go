// Package authtest tests the master's API authentication end to end: real masters on
// loopback with the built-in frameworks and the catalog attached, every route with tokens
// of every role. It holds tests only, apart from node/master's own to keep both quick.
package authtest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/jobs"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/install"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/pkgs/cosmos"
)

// waitTimeout bounds every wait; generous for a loaded machine.
const waitTimeout = 20 * time.Second

// logBuffer collects a master's logs, for the tests that read them; a failing test
// prints them.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newLogger logs as JSON into a buffer that the test prints if it fails.
func newLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	return slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), logs
}

// clock is a settable clock for token expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// principals of the tokens an authMaster makes, by role.
var principals = map[api.TokenRole]string{
	api.RoleAdmin:     "admin",
	api.RoleOperator:  "ops",
	api.RoleReadOnly:  "viewer",
	api.RoleFramework: "fw1",
	api.RoleAgent:     "agent-1",
	api.RoleLB:        "lb-1",
	api.RoleMaster:    "master-x",
}

// authMaster is a master with authentication on, the services and jobs frameworks and
// the catalog attached, and a token of every role.
type authMaster struct {
	*master.TestServer
	tokens map[api.TokenRole]string
	logs   *logBuffer
	clock  *clock
	// adminTokens receives each admin token the master creates at election.
	adminTokens chan string
}

// newAuthMaster starts the master; extensions are attached after the frameworks.
func newAuthMaster(t testing.TB, extensions ...func(*master.Master)) *authMaster {
	t.Helper()
	logger, logs := newLogger(t)
	am := &authMaster{tokens: map[api.TokenRole]string{}, logs: logs, clock: &clock{now: time.Now()}, adminTokens: make(chan string, 4)}
	executable := filepath.Join(t.TempDir(), "atoll")
	if err := os.WriteFile(executable, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	am.TestServer = master.NewTestServer(t, func(c *master.Config) {
		c.Logger = logger
		c.Auth = master.AuthConfig{Enabled: true, AdminToken: func(token string) { am.adminTokens <- token }, Now: am.clock.Now}
		// Every route a node's master serves but the Mesos-DNS API, which needs a DNS
		// server (node's TestMasterAuth covers it).
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: logger, TickInterval: 100 * time.Millisecond})
			jobs.Attach(m, jobs.Config{Logger: logger, TickInterval: 100 * time.Millisecond})
			cosmos.Attach(m, cosmos.Config{Logger: logger})
			install.Register(m, install.Config{Executable: executable, Logger: logger})
		})
		c.Extensions = append(c.Extensions, extensions...)
	})
	am.tokens[api.RoleAdmin] = am.nextAdminToken(t)
	admin := api.NewClient(am.URL, api.WithToken(am.tokens[api.RoleAdmin]))
	for role, principal := range principals {
		if role == api.RoleAdmin {
			continue
		}
		// Tokens list in creation order: each a second after the one before.
		am.clock.advance(time.Second)
		am.tokens[role] = createToken(t, admin, api.CreateTokenRequest{Role: role, Principal: principal}).Token
	}
	return am
}

// nextAdminToken waits for the admin token the leader hands out.
func (am *authMaster) nextAdminToken(t testing.TB) string {
	t.Helper()
	select {
	case token := <-am.adminTokens:
		return token
	case <-time.After(waitTimeout):
		t.Fatalf("no admin token within %v", waitTimeout)
		return ""
	}
}

func createToken(t testing.TB, client *api.Client, req api.CreateTokenRequest) *api.CreatedToken {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	created, err := client.CreateToken(ctx, req)
	if err != nil {
		t.Fatalf("create %s token: %v", req.Role, err)
	}
	return created
}

// reply is an answer: its status, headers, and body when it is short (never a stream's).
type reply struct {
	status int
	header http.Header
	body   string
}

// call makes one request with an optional token and body. Only refusals and errors have
// their body read: a stream's would not end.
func call(t testing.TB, baseURL, method, path, token, body string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, baseURL+path, reader)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		r.body = string(data)
	}
	return r
}

// eventually polls cond until it returns nil, failing the test after waitTimeout.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
