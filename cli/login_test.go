package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// TestLogin: login checks the token with the master and keeps the context, readable by
// the user alone; commands without --addr and ATOLL_ADDR then use its master and token,
// and never send its token to another master; logout forgets it. Refused tokens and
// missing flags keep nothing.
func TestLogin(t *testing.T) {
	ts, admin := authMaster(t)
	home := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": home}
	path := filepath.Join(home, "atoll", "config")

	bad := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no master", []string{"login", "--token", admin}, 2, "atoll: login needs the master: --addr URL (or ATOLL_ADDR)\n"},
		{"no token", []string{"--addr", ts.URL, "login"}, 2, "atoll: login needs a token: --token TOKEN (or ATOLL_TOKEN)\n"},
		{"refused token", []string{"--addr", ts.URL, "--token", "atl_nope_nope", "login"}, 1, "atoll: the master refused the token: "},
	}
	for _, tt := range bad {
		a := newTestApp(t, env)
		if code := a.runCLI(t, tt.args...); code != tt.code || !strings.HasPrefix(a.stderr.String(), tt.stderr) {
			t.Errorf("%s: exit %d, stderr %q; want %d, %q", tt.name, code, a.stderr.String(), tt.code, tt.stderr)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("%s: %s exists (%v): nothing may be kept", tt.name, path, err)
		}
	}

	a := newTestApp(t, env)
	if code := a.runCLI(t, "--addr", ts.URL, "--token", admin, "login", "--name", "lab"); code != 0 {
		t.Fatalf("login: exit %d: %s", code, a.stderr.String())
	}
	if want := "Logged in to " + ts.URL + " as context \"lab\" (kept in " + path + ").\n"; a.stdout.String() != want {
		t.Errorf("login printed %q, want %q", a.stdout.String(), want)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600: it holds tokens", path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept cliConfig
	if err := json.Unmarshal(data, &kept); err != nil {
		t.Fatal(err)
	}
	if want := (cliConfig{Current: "lab", Contexts: []cliContext{{Name: "lab", Addr: ts.URL, Token: admin}}}); !reflect.DeepEqual(kept, want) {
		t.Errorf("kept %+v, want %+v", kept, want)
	}

	// Listing tokens needs the admin token: the context's master and token are used.
	a = newTestApp(t, env)
	if code := a.runCLI(t, "token", "list"); code != 0 || !strings.Contains(a.stdout.String(), "admin") {
		t.Errorf("token list with the context: exit %d, stdout %q, stderr %q", code, a.stdout.String(), a.stderr.String())
	}

	// Another master named by --addr or ATOLL_ADDR never gets the context's token.
	var mu sync.Mutex
	var auths []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer other.Close()
	a = newTestApp(t, env)
	a.runCLI(t, "--addr", other.URL, "tasks")
	a = newTestApp(t, map[string]string{"XDG_CONFIG_HOME": home, addrEnv: other.URL})
	a.runCLI(t, "app", "list")
	mu.Lock()
	if len(auths) < 2 {
		t.Errorf("the other master got %d requests, want one from each command", len(auths))
	}
	for _, h := range auths {
		if h != "" {
			t.Errorf("the other master got Authorization %q: the context's token went to a master not its own", h)
		}
	}
	mu.Unlock()

	a = newTestApp(t, env)
	if code := a.runCLI(t, "logout"); code != 0 || a.stdout.String() != "Logged out of context \"lab\".\n" {
		t.Errorf("logout: exit %d, stdout %q, stderr %q", code, a.stdout.String(), a.stderr.String())
	}
	a = newTestApp(t, env)
	if code := a.runCLI(t, "logout"); code != 1 || a.stderr.String() != "atoll: no context \"\" to log out of (atoll login keeps one)\n" {
		t.Errorf("second logout: exit %d, stderr %q", code, a.stderr.String())
	}
	// Without the context: the default master, which is not there.
	a = newTestApp(t, env)
	if code := a.runCLI(t, "--token", admin, "tasks"); code != 1 || !strings.Contains(a.stderr.String(), defaultAddr) {
		t.Errorf("tasks after logout: exit %d, stderr %q; want a failure naming %s", code, a.stderr.String(), defaultAddr)
	}
}

// TestLoginLocal: `atoll up --auth` keeps its cluster as the context "local", next to the
// contexts kept before, and makes it current.
func TestLoginLocal(t *testing.T) {
	home := t.TempDir()
	a := newTestApp(t, map[string]string{"HOME": home})
	cfg := &cliConfig{Current: "lab", Contexts: []cliContext{{Name: "lab", Addr: "http://lab:5050", Token: "atl_lab"}}}
	if _, err := a.saveConfig(cfg); err != nil {
		t.Fatal(err)
	}
	a.loginLocal("http://127.0.0.1:5050", "atl_local", "")
	path := filepath.Join(home, ".config", "atoll", "config")
	if want := "Logged in to http://127.0.0.1:5050 as context \"local\" (kept in " + path + "): atoll commands use it.\n"; a.stdout.String() != want {
		t.Errorf("printed %q, want %q", a.stdout.String(), want)
	}
	got, err := a.loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := &cliConfig{Current: "local", Contexts: []cliContext{{Name: "lab", Addr: "http://lab:5050", Token: "atl_lab"}, {Name: "local", Addr: "http://127.0.0.1:5050", Token: "atl_local"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config %+v, want %+v", got, want)
	}

	// A config that is not one is reported, not overwritten.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	a = newTestApp(t, map[string]string{"HOME": home})
	a.loginLocal("http://127.0.0.1:5050", "atl_local", "")
	if !strings.Contains(a.stderr.String(), "is not an atoll config") || !strings.Contains(a.stderr.String(), "use atoll login --addr http://127.0.0.1:5050") {
		t.Errorf("with a broken config: stderr %q", a.stderr.String())
	}
	if data, _ := os.ReadFile(path); string(data) != "{not json" {
		t.Errorf("the broken config was replaced by %q", data)
	}
}
