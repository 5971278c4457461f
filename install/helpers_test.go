package install_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/install"
	"github.com/atoll/atoll/node/pki"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(fakeNodeEnv); path != "" {
		os.Exit(runFakeNode(path))
	}
	dir, err := os.MkdirTemp("", "atoll-install-test-tools")
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(2)
	}
	toolsBase = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fakeNodeEnv, set to a file name, makes the test binary stand in for atoll when the
// installer starts it: it writes its arguments to that file, one a line, then the join
// variables of its environment (ATOLL_JOIN_TOKEN=…, ATOLL_MASTER_URL=…), creates the
// node-id file in its --data-dir as atoll does, and runs until SIGTERM.
const fakeNodeEnv = "ATOLL_INSTALL_TEST_NODE"

func runFakeNode(argsFile string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	for i, a := range args {
		if a == "--data-dir" && i+1 < len(args) {
			if err := os.MkdirAll(args[i+1], 0o700); err != nil {
				os.Stderr.WriteString(err.Error() + "\n")
				return 2
			}
			if err := os.WriteFile(filepath.Join(args[i+1], "node-id"), []byte("0123456789abcdef\n"), 0o600); err != nil {
				os.Stderr.WriteString(err.Error() + "\n")
				return 2
			}
		}
	}
	// What a node reads from its environment, as the environment file set it.
	args = append(args, "ATOLL_JOIN_TOKEN="+os.Getenv("ATOLL_JOIN_TOKEN"), "ATOLL_MASTER_URL="+os.Getenv("ATOLL_MASTER_URL"))
	if err := os.WriteFile(argsFile, []byte(strings.Join(args, "\n")+"\n"), 0o644); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	<-ctx.Done()
	return 0
}

// scriptTimeout bounds one run of a script: generous for a loaded machine.
const scriptTimeout = 60 * time.Second

// newMaster serves the installer for cfg, its executable a new file holding binary unless
// cfg names one; wrap, when set, wraps the handler.
func newMaster(t testing.TB, cfg install.Config, binary string, wrap func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	if cfg.Executable == "" && binary != "" {
		cfg.Executable = filepath.Join(t.TempDir(), "atoll")
		if err := os.WriteFile(cfg.Executable, []byte(binary), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var h http.Handler = install.NewHandler(cfg)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// clusterCA is a secure cluster's CA, served by the masters that withCA wraps, and a join
// token of it.
type clusterCA struct {
	pem   []byte
	hash  string
	token string
}

func newClusterCA(t testing.TB) clusterCA {
	t.Helper()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return clusterCA{pem: ca.CertPEM(), hash: ca.Hash(), token: pki.JoinToken{CAHash: ca.Hash(), Secret: "atl_abcdefghijkl_secret"}.String()}
}

// withCA wraps a master's handler to serve the cluster CA, as a secure master does.
func (ca clusterCA) withCA(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == pki.CAPath {
			_, _ = w.Write(ca.pem)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// get fetches url and returns the body of a 200 answer.
func get(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body
}

// shell is a POSIX shell the scripts must run under.
type shell struct {
	name string
	argv []string
}

var shells = []shell{{"dash", []string{"dash"}}, {"sh", []string{"sh"}}, {"busybox", []string{"busybox", "sh"}}}

// result is how a script run ended.
type result struct {
	stdout, stderr string
	code           int
}

// lastErrLine is the last line the script wrote to stderr: its own message, after
// whatever curl said.
func (r result) lastErrLine() string {
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	return lines[len(lines)-1]
}

// runScript runs script with sh as `sh -s -- args…`, reading it from stdin as
// `curl … | sh -s --` does, with exactly env for its environment.
func runScript(t testing.TB, sh shell, script []byte, env []string, args ...string) result {
	t.Helper()
	if _, err := exec.LookPath(sh.argv[0]); err != nil {
		t.Skipf("%s is not installed: %v", sh.argv[0], err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	argv := append(append(append([]string(nil), sh.argv...), "-s", "--"), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(script)
	cmd.Env = env
	return runCmd(t, cmd)
}

func runCmd(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", cmd, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// toolsBase holds the PATH directories toolsDir makes, one per set of fetchers, for the
// whole test binary.
var (
	toolsBase string
	toolsMu   sync.Mutex
	toolsDirs = map[string]string{}
)

// toolsDir returns a directory to use as PATH: links to every command on the test's PATH
// but curl and wget, plus those of fetchers ("curl", "wget", or "busybox-wget" for
// busybox's wget).
func toolsDir(t testing.TB, fetchers ...string) string {
	t.Helper()
	for _, f := range fetchers {
		target := f
		if f == "busybox-wget" {
			target = "busybox"
		}
		if _, err := exec.LookPath(target); err != nil {
			t.Skipf("%s is not installed: %v", target, err)
		}
	}
	toolsMu.Lock()
	defer toolsMu.Unlock()
	key := strings.Join(fetchers, ",")
	if dir, ok := toolsDirs[key]; ok {
		return dir
	}
	dir, err := os.MkdirTemp(toolsBase, "path")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Name() == "curl" || e.Name() == "wget" || e.IsDir() {
				continue
			}
			link := filepath.Join(dir, e.Name())
			if _, err := os.Lstat(link); err == nil {
				continue // an earlier PATH entry has it
			}
			if err := os.Symlink(filepath.Join(d, e.Name()), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range fetchers {
		name, target := f, f
		if f == "busybox-wget" {
			name, target = "wget", "busybox"
		}
		path, err := exec.LookPath(target)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(path, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	toolsDirs[key] = dir
	return dir
}

// entry is a file or directory of a tree: its mode and, for a file, its content.
type entry struct {
	mode    fs.FileMode
	content string
}

// tree returns every file and directory under root (not root itself) by slash path.
func tree(t testing.TB, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{mode: info.Mode()}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			e.content = string(data)
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// processRuns reports whether pid is a live process, not a zombie waiting for a reaper.
func processRuns(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}
