package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/pki"
	"github.com/atoll/atoll/pkgs/cosmos"
)

// authMaster starts a master that requires tokens, its clock fixed at testNow, with the
// services framework and the catalog, and returns it with its admin token.
func authMaster(t testing.TB) (*master.TestServer, string) {
	t.Helper()
	admins := make(chan string, 1)
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Auth = master.AuthConfig{Enabled: true, AdminToken: func(token string) { admins <- token }, Now: func() time.Time { return testNow }}
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger})
			cosmos.Attach(m, cosmos.Config{Logger: c.Logger})
		})
	})
	select {
	case token := <-admins:
		return ts, token
	case <-time.After(testTimeout):
		t.Fatal("no admin token")
		return nil, ""
	}
}

func TestTokenCommands(t *testing.T) {
	ts, admin := authMaster(t)
	adminID := strings.Split(admin, "_")[1]

	a := newTestApp(t, map[string]string{addrEnv: ts.URL, tokenEnv: admin})
	if code := a.runCLI(t, "token", "create", "--role", "read-only", "--principal", "viewer", "--ttl", "24h"); code != 0 {
		t.Fatalf("create: exit %d", code)
	}
	token, rest, _ := strings.Cut(a.stdout.String(), "\n")
	id := strings.Split(token, "_")[1]
	if want := fmt.Sprintf("Token %s, role read-only, expires 2026-03-02T12:00:00Z. It is shown only this once.\n", id); rest != want {
		t.Fatalf("create printed %q after the token, want %q", rest, want)
	}

	// --token wins over the environment.
	a = newTestApp(t, map[string]string{addrEnv: ts.URL, tokenEnv: token})
	if code := a.runCLI(t, "--token", admin, "token", "list"); code != 0 {
		t.Fatalf("list: exit %d", code)
	}
	rows := map[string]string{
		adminID: fmt.Sprintf("%s  admin      admin      active  2026-03-01T12:00:00Z  -                     bootstrap", adminID),
		id:      fmt.Sprintf("%s  read-only  viewer     active  2026-03-01T12:00:00Z  2026-03-02T12:00:00Z  %s", id, adminID),
	}
	ids := []string{adminID, id}
	slices.Sort(ids)
	want := "ID            ROLE       PRINCIPAL  STATUS  CREATED               EXPIRES               CREATED BY\n" + rows[ids[0]] + "\n" + rows[ids[1]] + "\n"
	if got := a.stdout.String(); got != want {
		t.Errorf("list:\n%s\nwant:\n%s", got, want)
	}

	// The read-only token reads through every client (operator API, Marathon, Cosmos),
	// and may not manage tokens.
	for _, args := range [][]string{{"tasks"}, {"app", "list"}, {"pkg", "search", "redis"}} {
		a = newTestApp(t, map[string]string{addrEnv: ts.URL, tokenEnv: token})
		if code := a.runCLI(t, args...); code != 0 {
			t.Errorf("%s with the read-only token: exit %d", args, code)
		}
	}
	a = newTestApp(t, map[string]string{addrEnv: ts.URL, tokenEnv: token})
	if code := a.runCLI(t, "token", "list"); code != 1 || a.stderr.String() != "atoll: list tokens: 403 Forbidden: role read-only may not GET /atoll/v1/tokens\n" {
		t.Errorf("list with the read-only token: exit %d, stderr %q", code, a.stderr.String())
	}

	a = newTestApp(t, map[string]string{addrEnv: ts.URL, tokenEnv: admin})
	if code := a.runCLI(t, "token", "revoke", id); code != 0 || a.stdout.String() != fmt.Sprintf("Revoked token %s (role read-only) at 2026-03-01T12:00:00Z.\n", id) {
		t.Fatalf("revoke: exit %d, stdout %q", code, a.stdout.String())
	}
	a = newTestApp(t, map[string]string{addrEnv: ts.URL, tokenEnv: admin})
	if code := a.runCLI(t, "-o", "json", "token", "list"); code != 0 {
		t.Fatalf("list -o json: exit %d", code)
	}
	var listed []api.Token
	if err := json.Unmarshal([]byte(a.stdout.String()), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("list -o json: %q: %v", a.stdout.String(), err)
	}
	for _, tok := range listed {
		if tok.ID == id && !tok.Revoked.Equal(testNow) {
			t.Errorf("listed %+v, want revoked at %v", tok, testNow)
		}
	}

	// Every client sends the token: refused ones say why.
	for _, tt := range []struct {
		args   []string
		token  string
		stderr string
	}{
		{[]string{"tasks"}, token, fmt.Sprintf("atoll: GET_STATE: 401 Unauthorized: token %s revoked at 2026-03-01T12:00:00Z\n", id)},
		{[]string{"app", "list"}, "", "atoll: GET /v2/apps: 401 authentication required: send the header \"Authorization: Bearer <token>\" (atoll --token, or ATOLL_TOKEN)\n"},
		{[]string{"pkg", "search"}, "", "atoll: POST /package/search: 401 authentication required: send the header \"Authorization: Bearer <token>\" (atoll --token, or ATOLL_TOKEN)\n"},
	} {
		a = newTestApp(t, map[string]string{addrEnv: ts.URL, tokenEnv: tt.token})
		if code := a.runCLI(t, tt.args...); code != 1 || a.stderr.String() != tt.stderr {
			t.Errorf("%s: exit %d, stderr %q; want 1, %q", tt.args, code, a.stderr.String(), tt.stderr)
		}
	}
}

func TestTokenCreateUsage(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"token", "create"}, "atoll: --role \"\": want one of admin, operator, read-only, framework, agent, lb, master\n"},
		{[]string{"token", "create", "--role", "root"}, "atoll: --role \"root\": want one of admin, operator, read-only, framework, agent, lb, master\n"},
		{[]string{"token", "create", "--role", "framework"}, "atoll: --principal: a framework token needs the principal its frameworks subscribe with\n"},
		{[]string{"token", "create", "--role", "agent", "--ttl", "1500ms"}, "atoll: --ttl 1.5s: want whole seconds, 0 for no expiry\n"},
		{[]string{"token", "revoke"}, "atoll: token revoke takes one token id, got 0 arguments\n"},
	}
	for _, tt := range tests {
		a := newTestApp(t, nil)
		if code := a.runCLI(t, tt.args...); code != 2 || !strings.HasPrefix(a.stderr.String(), tt.stderr) {
			t.Errorf("%s: exit %d, stderr %q; want 2, %q", tt.args, code, a.stderr.String(), tt.stderr)
		}
	}
}

// TestShowAdminToken: `atoll up --auth` writes the admin token to a file only its user
// reads, replacing an old one; a master prints it.
func TestShowAdminToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, adminTokenFile)
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := newTestApp(t, nil)
	a.showAdminToken(roleUp, dir, "atl_x")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "atl_x\n" || info.Mode().Perm() != 0o600 {
		t.Errorf("%s: %q, mode %v; want the token, 0600", path, data, info.Mode().Perm())
	}
	if want := fmt.Sprintf("Admin API token written to %s. Use it with:\n  export ATOLL_TOKEN=$(cat %s)\n", path, path); a.stdout.String() != want {
		t.Errorf("up printed %q, want %q", a.stdout.String(), want)
	}
	a = newTestApp(t, nil)
	a.showAdminToken(roleMaster, dir, "atl_y")
	want := "Admin API token, shown only this once (the cluster keeps only its hash):\n  atl_y\n" +
		"Use it with atoll --token or ATOLL_TOKEN=…, and make tokens for others with 'atoll token create --role …'.\n"
	if a.stdout.String() != want {
		t.Errorf("master printed %q, want %q", a.stdout.String(), want)
	}
}

// secureMaster starts a master of a secure cluster that requires tokens, serving its API
// over TLS with its certificate of the cluster CA, and returns the API's URL, the CA's
// file, the credentials and the admin token.
func secureMaster(t testing.TB) (url, caFile string, creds *pki.Credentials, admin string) {
	t.Helper()
	creds, err := pki.NewCluster("test", pki.Identity{Name: "m1", Roles: []pki.Role{pki.RoleMaster}, IPs: []net.IP{net.IPv4(127, 0, 0, 1).To4()}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	admins := make(chan string, 1)
	var attachErr error
	ts := master.NewTestServer(t, func(c *master.Config) {
		c.Auth = master.AuthConfig{Enabled: true, AdminToken: func(token string) { admins <- token }, Now: func() time.Time { return testNow }}
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			attachErr = master.AttachJoin(m, master.JoinConfig{Credentials: creds, FirstJoinTokens: func(map[pki.Role]string) {}})
		})
	})
	if attachErr != nil {
		t.Fatal(attachErr)
	}
	srv := httptest.NewUnstartedServer(ts.Handler())
	srv.TLS = creds.ServerTLS()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, creds.CA.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case admin = <-admins:
	case <-time.After(testTimeout):
		t.Fatal("no admin token")
	}
	return srv.URL, caFile, creds, admin
}

// TestTokenCreateJoinToken: on a secure cluster's master, reached over TLS with its CA,
// the tokens of node roles are printed as join tokens holding the CA's hash, with the
// command that installs a node, and a node joins with one; other roles get API tokens.
// Without the CA the master is not trusted.
func TestTokenCreateJoinToken(t *testing.T) {
	url, caFile, creds, admin := secureMaster(t)
	host := strings.TrimPrefix(url, "https://")
	a := newTestApp(t, map[string]string{addrEnv: url, tokenEnv: admin, caCertEnv: caFile})
	if code := a.runCLI(t, "token", "create", "--role", "agent", "--ttl", "24h"); code != 0 {
		t.Fatalf("create: exit %d", code)
	}
	joinText, rest, _ := strings.Cut(a.stdout.String(), "\n")
	token, err := pki.ParseJoinToken(joinText)
	if err != nil || token.CAHash != creds.CA.Hash() {
		t.Fatalf("create printed %q first, want a join token of CA %s (%v)", joinText, creds.CA.Hash(), err)
	}
	id := strings.Split(token.Secret, "_")[1]
	want := fmt.Sprintf("Join token %s, role agent, expires 2026-03-02T12:00:00Z. It is shown only this once. Install a node with it:\n"+
		"  curl -fsSL http://%s/install.sh | sudo sh -s -- agent --token %s\n", id, host, joinText)
	if rest != want {
		t.Fatalf("create printed after the token:\n%q\nwant\n%q", rest, want)
	}
	joined, err := pki.Join(context.Background(), pki.JoinConfig{MasterURL: url, Token: token, Identity: pki.Identity{Name: "a1", Roles: []pki.Role{pki.RoleAgent}}})
	if err != nil || !slices.Equal(joined.Roles(), []pki.Role{pki.RoleAgent}) {
		t.Fatalf("join with the printed token: %v", err)
	}

	a = newTestApp(t, map[string]string{addrEnv: url, tokenEnv: admin, caCertEnv: caFile})
	if code := a.runCLI(t, "-o", "json", "token", "create", "--role", "lb"); code != 0 {
		t.Fatalf("create -o json: exit %d", code)
	}
	var created struct {
		Token     string `json:"token"`
		JoinToken string `json:"join_token"`
	}
	if err := json.Unmarshal([]byte(a.stdout.String()), &created); err != nil || created.JoinToken != "ATL1-"+creds.CA.Hash()+"-"+created.Token {
		t.Fatalf("create -o json printed %s (%v), want the join token of the token", a.stdout, err)
	}

	a = newTestApp(t, map[string]string{addrEnv: url, tokenEnv: admin, caCertEnv: caFile})
	if code := a.runCLI(t, "token", "create", "--role", "operator"); code != 0 {
		t.Fatalf("create operator: exit %d", code)
	}
	if first, _, _ := strings.Cut(a.stdout.String(), "\n"); !strings.HasPrefix(first, "atl_") {
		t.Fatalf("an operator token printed as %q, want an API token", first)
	}

	a = newTestApp(t, map[string]string{addrEnv: url, tokenEnv: admin})
	if code := a.runCLI(t, "token", "create", "--role", "agent"); code != 1 || !strings.Contains(a.stderr.String(), "x509: certificate signed by unknown authority") {
		t.Fatalf("create without the CA: exit %d, stderr %q; want 1 and an unknown authority", code, a.stderr)
	}
}
