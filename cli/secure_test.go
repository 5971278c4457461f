package cli

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/node"
	"github.com/atoll/atoll/node/pki"
)

// TestNodeRevoke: `atoll node revoke` revokes a node that joined, saying up to which
// generation and which tokens; again, it has no token left to revoke; an unknown node
// is an error from the master.
func TestNodeRevoke(t *testing.T) {
	url, caFile, _, admin := secureMaster(t)
	env := map[string]string{addrEnv: url, tokenEnv: admin, caCertEnv: caFile}
	a := newTestApp(t, env)
	if code := a.runCLI(t, "-o", "json", "token", "create", "--role", "agent"); code != 0 {
		t.Fatalf("token create: exit %d", code)
	}
	var created struct {
		JoinToken string `json:"join_token"`
	}
	if err := json.Unmarshal([]byte(a.stdout.String()), &created); err != nil {
		t.Fatal(err)
	}
	joinToken, err := pki.ParseJoinToken(created.JoinToken)
	if err != nil {
		t.Fatal(err)
	}
	a1, err := pki.Join(context.Background(), pki.JoinConfig{MasterURL: url, Token: joinToken, Identity: pki.Identity{Name: "a1", Roles: []pki.Role{pki.RoleAgent}}})
	if err != nil {
		t.Fatal(err)
	}
	a = newTestApp(t, env)
	if code := a.runCLI(t, "node", "revoke", "a1"); code != 0 {
		t.Fatalf("node revoke a1: exit %d", code)
	}
	want := "Revoked node a1 at 2026-03-01T12:00:00Z: the masters refuse its certificates (generation below 1) and API tokens (" +
		strings.Split(a1.APIToken, "_")[1] + ").\n"
	if a.stdout.String() != want {
		t.Fatalf("node revoke printed %q, want %q", a.stdout, want)
	}

	a = newTestApp(t, env)
	if code := a.runCLI(t, "-o", "json", "node", "revoke", "a1"); code != 0 {
		t.Fatalf("node revoke a1 again: exit %d", code)
	}
	var again pki.NodeRevocation
	if err := json.Unmarshal([]byte(a.stdout.String()), &again); err != nil || again.Name != "a1" || again.Generation != 1 || len(again.Tokens) != 0 {
		t.Fatalf("node revoke -o json printed %s (%v), want a1 at generation 1 and no token", a.stdout, err)
	}

	a = newTestApp(t, env)
	if code := a.runCLI(t, "node", "revoke", "nobody"); code != 1 ||
		a.stderr.String() != "atoll: revoke node nobody: 404 Not Found: no node named \"nobody\" joined this cluster\n" {
		t.Fatalf("node revoke nobody: exit %d, stderr %q", code, a.stderr)
	}
}

// TestKeyringRotate: `atoll keyring rotate` on a secure master running in this process
// rotates its gossip key, which the master then keeps in its data dir.
func TestKeyringRotate(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.Name, cfg.Master, cfg.Secure, cfg.Dev = "m1", true, true, true
	cfg.BindAddr, cfg.DataDir = "127.0.0.1", t.TempDir()
	cfg.APIPort, cfg.RaftPort, cfg.GossipPort, cfg.DNSPort = 0, 0, 0, -1
	cfg.Logger = slog.New(slog.NewTextHandler(&testLogWriter{t}, nil))
	admins := make(chan string, 1)
	cfg.AdminToken = func(token string) { admins <- token }
	cfg.JoinCommands = func(map[pki.Role]string) {}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan node.Info, 1), make(chan error, 1)
	go func() { done <- node.Run(ctx, cfg, func(info node.Info) { ready <- info }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("node: %v", err)
		}
	})
	var info node.Info
	select {
	case info = <-ready:
	case err := <-done:
		t.Fatalf("node stopped: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("node not ready")
	}
	var admin string
	select {
	case admin = <-admins:
	case <-time.After(testTimeout):
		t.Fatal("no admin token")
	}
	pkiDir := filepath.Join(cfg.DataDir, "pki")
	before, err := pki.LoadCredentials(pkiDir)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(pkiDir, "ca.crt")
	a := newTestApp(t, map[string]string{addrEnv: info.APIURL, tokenEnv: admin, caCertEnv: caFile})
	if code := a.runCLI(t, "keyring", "rotate"); code != 0 {
		t.Fatalf("keyring rotate: exit %d", code)
	}
	when, rest, ok := strings.Cut(strings.TrimPrefix(a.stdout.String(), "Rotated the gossip key at "), " on ")
	if _, err := time.Parse(time.RFC3339, when); err != nil || !ok || rest != "1 gossip members; the old key no longer works.\n" {
		t.Fatalf("keyring rotate printed %q", a.stdout)
	}
	eventually(t, "the master keeping the new gossip key", func() error {
		after, err := pki.LoadCredentials(pkiDir)
		if err != nil {
			return err
		}
		if string(after.GossipKey) == string(before.GossipKey) {
			return errors.New("the old key still")
		}
		return nil
	})

	a = newTestApp(t, map[string]string{addrEnv: info.APIURL, caCertEnv: caFile})
	if code := a.runCLI(t, "keyring", "rotate"); code != 1 || !strings.HasPrefix(a.stderr.String(), "atoll: rotate the gossip key: 401 Unauthorized: authentication required") {
		t.Fatalf("keyring rotate without a token: exit %d, stderr %q", code, a.stderr)
	}
}
