package install_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/install"
)

// settingsLine is the uninstaller's line that install.sh replaces with its own settings.
const settingsLine = "root=${ATOLL_INSTALL_ROOT-} bin_dir=${ATOLL_INSTALL_BIN_DIR:-/usr/local/bin} # @install-settings"

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// env is a script's whole environment: PATH, TMPDIR, the install root and extra.
func env(path, tmp, root string, extra ...string) []string {
	return append([]string{"PATH=" + path, "TMPDIR=" + tmp, "ATOLL_INSTALL_ROOT=" + root}, extra...)
}

// dirs makes a test's install root and temp dir, both empty.
func dirs(t *testing.T) (root, tmp string) {
	t.Helper()
	base := t.TempDir()
	root, tmp = filepath.Join(base, "root"), filepath.Join(base, "tmp")
	for _, d := range []string{root, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root, tmp
}

func wantEnv(url, root, token, args string) string {
	s := fmt.Sprintf(`# The atoll agent node, as install.sh from %[1]s set it up: run it again to change
# this file. systemd (EnvironmentFile=) and the installer's background start read it;
# atoll agent runs with the flags in ATOLL_ARGS.
ATOLL_MASTER_URL="%[1]s"
ATOLL_DATA_DIR="%[2]s/var/lib/atoll"
`, url, root)
	if token != "" {
		s += "# The join token: the node joins the cluster with it when it first starts, and keeps\n" +
			"# what it gets (its certificate, the cluster CA, the gossip key) in " + root + "/var/lib/atoll/pki.\n" +
			"ATOLL_JOIN_TOKEN=\"" + token + "\"\n"
	}
	return s + "ATOLL_ARGS=\"" + args + "\"\n"
}

func wantUnit(url, root, bin string) string {
	return fmt.Sprintf(`[Unit]
Description=Atoll agent
Documentation=%[1]s/install.sh
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=exec
EnvironmentFile=%[2]s/etc/atoll/agent.env
ExecStart=%[3]s agent $ATOLL_ARGS
Restart=always
RestartSec=2
# Tasks outlive the node's process, whose next run recovers them: stopping or restarting
# the unit signals atoll alone.
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0

[Install]
WantedBy=multi-user.target
`, url, root, bin)
}

// TestInstall: install.sh piped into each shell, downloading with curl, GNU wget or
// busybox's wget, installs exactly the binary, the uninstaller (with this run's settings
// baked in), the environment file (the default --join of the serving master, the token,
// atoll's flags) and the unit into ATOLL_INSTALL_ROOT, says so file by file, starts
// nothing under ATOLL_INSTALL_SKIP_START=1 and leaves its temp dir empty.
func TestInstall(t *testing.T) {
	for _, tc := range []struct {
		sh      shell
		fetcher string
		binDir  string
	}{
		{shells[0], "curl", ""},
		{shells[1], "wget", ""},
		{shells[2], "busybox-wget", "/opt/atoll/bin"},
	} {
		t.Run(tc.sh.name+"-"+tc.fetcher, func(t *testing.T) {
			t.Parallel()
			const binary = "atoll v1\n"
			ca := newClusterCA(t)
			srv := newMaster(t, install.Config{Join: "10.0.0.1:7946"}, binary, ca.withCA)
			script := get(t, srv.URL+install.ScriptPath)
			root, tmp := dirs(t)
			extra := []string{"ATOLL_INSTALL_SKIP_START=1"}
			binDir := "/usr/local/bin"
			if tc.binDir != "" {
				binDir = tc.binDir
				extra = append(extra, "ATOLL_INSTALL_BIN_DIR="+binDir)
			}
			r := runScript(t, tc.sh, script, env(toolsDir(t, tc.fetcher), tmp, root, extra...),
				"agent", "--token", ca.token, "--", "--name", "node1", "--resources", "cpus:2;mem:512;ports:[31000-31999]")
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
			}

			bin := root + binDir + "/atoll"
			args := "--join 10.0.0.1:7946 --data-dir " + root + "/var/lib/atoll --name node1 --resources cpus:2;mem:512;ports:[31000-31999]"
			wantOut := fmt.Sprintf(`installing an atoll agent from %[1]s
  the cluster CA matches the join token: SHA-256 %[9]s
  downloaded atoll for %[2]s/%[3]s, SHA-256 %[4]s: verified
  wrote %[5]s
  wrote %[6]s
  wrote %[7]s/etc/atoll/agent.env
  wrote %[7]s/etc/systemd/system/atoll-agent.service
not started (ATOLL_INSTALL_SKIP_START=1); start it with: setsid %[5]s agent %[8]s </dev/null >>%[7]s/var/log/atoll-agent.log 2>&1 &
`, srv.URL, runtime.GOOS, runtime.GOARCH, sum(binary), bin, root+binDir+"/atoll-uninstall.sh", root, args, ca.hash)
			if r.stdout != wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, wantOut)
			}

			uninstaller := strings.Replace(string(get(t, srv.URL+install.UninstallPath)), settingsLine,
				"root='"+root+"' bin_dir='"+binDir+"'", 1)
			want := map[string]entry{
				"etc":                                    {mode: os.ModeDir | 0o755},
				"etc/atoll":                              {mode: os.ModeDir | 0o755},
				"etc/atoll/agent.env":                    {mode: 0o600, content: wantEnv(srv.URL, root, ca.token, args)},
				"etc/systemd":                            {mode: os.ModeDir | 0o755},
				"etc/systemd/system":                     {mode: os.ModeDir | 0o755},
				"etc/systemd/system/atoll-agent.service": {mode: 0o644, content: wantUnit(srv.URL, root, bin)},
			}
			parts := strings.Split(strings.TrimPrefix(binDir, "/"), "/")
			for i := range parts {
				want[strings.Join(parts[:i+1], "/")] = entry{mode: os.ModeDir | 0o755}
			}
			rel := strings.TrimPrefix(binDir, "/")
			want[rel+"/atoll"] = entry{mode: 0o755, content: binary}
			want[rel+"/atoll-uninstall.sh"] = entry{mode: 0o755, content: uninstaller}
			assertTree(t, root, want)
			assertTree(t, tmp, map[string]entry{})
		})
	}
}

// TestInstallJoinURL: --join with a master's URL downloads from that master, not the one
// that served the script, and joins its host on atoll's default gossip port.
func TestInstallJoinURL(t *testing.T) {
	t.Parallel()
	served := newMaster(t, install.Config{Join: "10.0.0.1:7946"}, "atoll from the first\n", nil)
	other := newMaster(t, install.Config{Join: "10.0.0.2:7946"}, "atoll from the other\n", nil)
	root, tmp := dirs(t)
	r := runScript(t, shells[0], get(t, served.URL+install.ScriptPath), env(toolsDir(t, "curl"), tmp, root, "ATOLL_INSTALL_SKIP_START=1"),
		"lb", "--join", other.URL+"/")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
	}
	files := tree(t, root)
	if got := files["usr/local/bin/atoll"].content; got != "atoll from the other\n" {
		t.Errorf("installed %q, want the other master's binary", got)
	}
	wantEnv := fmt.Sprintf(`# The atoll lb node, as install.sh from %[1]s set it up: run it again to change
# this file. systemd (EnvironmentFile=) and the installer's background start read it;
# atoll lb runs with the flags in ATOLL_ARGS.
ATOLL_MASTER_URL="%[1]s"
ATOLL_DATA_DIR="%[2]s/var/lib/atoll"
ATOLL_ARGS="--join 127.0.0.1 --data-dir %[2]s/var/lib/atoll"
`, other.URL, root)
	if got := files["etc/atoll/lb.env"].content; got != wantEnv {
		t.Errorf("environment file:\n%s\nwant:\n%s", got, wantEnv)
	}
	if _, ok := files["etc/systemd/system/atoll-lb.service"]; !ok {
		t.Errorf("no atoll-lb unit")
	}
}

// assertTree fails the test unless the tree under root is exactly want.
func assertTree(t *testing.T, root string, want map[string]entry) {
	t.Helper()
	got := tree(t, root)
	for path, w := range want {
		g, ok := got[path]
		switch {
		case !ok:
			t.Errorf("%s: missing", path)
		case g.mode != w.mode:
			t.Errorf("%s: mode %v, want %v", path, g.mode, w.mode)
		case g.content != w.content:
			t.Errorf("%s:\n%s\nwant:\n%s", path, g.content, w.content)
		}
	}
	for path := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("%s: not expected", path)
		}
	}
}

// TestUpgrade: running the installer again from a master serving another binary
// replaces the binary (saying which checksum it had and has), rewrites only the files
// whose content changes (the master's URL is in the environment file and the unit), and
// a third run changes nothing.
func TestUpgrade(t *testing.T) {
	t.Parallel()
	const v1, v2 = "atoll v1\n", "atoll v2, bigger\n"
	first := newMaster(t, install.Config{Join: "10.0.0.1:7946"}, v1, nil)
	second := newMaster(t, install.Config{Join: "10.0.0.1:7946"}, v2, nil)
	root, tmp := dirs(t)
	path := toolsDir(t, "curl")
	runOK := func(srv string) string {
		t.Helper()
		r := runScript(t, shells[0], get(t, srv+install.ScriptPath), env(path, tmp, root, "ATOLL_INSTALL_SKIP_START=1"), "agent")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
		}
		return r.stdout
	}
	runOK(first.URL)
	out := runOK(second.URL)

	bin := root + "/usr/local/bin/atoll"
	args := "--join 10.0.0.1:7946 --data-dir " + root + "/var/lib/atoll"
	want := fmt.Sprintf(`installing an atoll agent from %[1]s
  downloaded atoll for %[2]s/%[3]s, SHA-256 %[4]s: verified
  replaced %[5]s
  upgraded atoll: SHA-256 %[6]s -> %[4]s
  unchanged %[7]s/usr/local/bin/atoll-uninstall.sh
  replaced %[7]s/etc/atoll/agent.env
  replaced %[7]s/etc/systemd/system/atoll-agent.service
not started (ATOLL_INSTALL_SKIP_START=1); start it with: setsid %[5]s agent %[8]s </dev/null >>%[7]s/var/log/atoll-agent.log 2>&1 &
`, second.URL, runtime.GOOS, runtime.GOARCH, sum(v2), bin, sum(v1), root, args)
	if out != want {
		t.Errorf("second run's stdout:\n%s\nwant:\n%s", out, want)
	}
	files := tree(t, root)
	if got := files["usr/local/bin/atoll"]; got.content != v2 || got.mode != 0o755 {
		t.Errorf("binary after the upgrade: %q mode %v, want %q mode 0755", got.content, got.mode, v2)
	}
	if got, w := files["etc/atoll/agent.env"].content, wantEnv(second.URL, root, "", args); got != w {
		t.Errorf("environment file:\n%s\nwant:\n%s", got, w)
	}

	out = runOK(second.URL)
	for _, f := range []string{bin, root + "/usr/local/bin/atoll-uninstall.sh", root + "/etc/atoll/agent.env", root + "/etc/systemd/system/atoll-agent.service"} {
		if !strings.Contains(out, "\n  unchanged "+f+"\n") {
			t.Errorf("third run does not say %s is unchanged:\n%s", f, out)
		}
	}
	if strings.Contains(out, "wrote") || strings.Contains(out, "replaced") || strings.Contains(out, "upgraded") {
		t.Errorf("third run changed something:\n%s", out)
	}
}

// TestUninstall: the installed atoll-uninstall.sh, run with no settings of its own,
// removes everything the installer wrote, and the node's data directory, and leaves the
// machine's own directories and files exactly as they were.
func TestUninstall(t *testing.T) {
	t.Parallel()
	srv := newMaster(t, install.Config{}, "atoll v1\n", nil)
	root, tmp := dirs(t)
	for _, d := range []string{"usr/local/bin", "etc/systemd/system", "var/log", "run", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for path, content := range map[string]string{
		"usr/local/bin/other-tool":         "#!/bin/sh\n",
		"etc/systemd/system/other.service": "[Service]\n",
		"etc/hostname":                     "node1\n",
		"var/log/syslog":                   "boot\n",
		"var/lib/other/state":              "keep\n",
	} {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := tree(t, root)
	path := toolsDir(t, "curl")
	r := runScript(t, shells[0], get(t, srv.URL+install.ScriptPath), env(path, tmp, root, "ATOLL_INSTALL_SKIP_START=1"), "agent")
	if r.code != 0 {
		t.Fatalf("install: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// What the node would have made when it ran.
	dataDir := filepath.Join(root, "var/lib/atoll")
	for _, f := range []string{"node-id", "agent/checkpoint.db"} {
		if err := os.MkdirAll(filepath.Join(dataDir, filepath.Dir(f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataDir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	cmd := exec.Command(root + "/usr/local/bin/atoll-uninstall.sh")
	cmd.Env = []string{"PATH=" + path}
	r = runCmd(t, cmd)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("uninstall: exit %d, stderr:\n%s\nstdout:\n%s", r.code, r.stderr, r.stdout)
	}
	want := fmt.Sprintf(`removing the atoll agent
  removed %[1]s/etc/systemd/system/atoll-agent.service
  removed %[1]s/etc/atoll/agent.env
  removed %[1]s/var/lib/atoll (the node's state; an agent's tasks end with it)
removed %[1]s/usr/local/bin/atoll
removed %[1]s/usr/local/bin/atoll-uninstall.sh
removed %[1]s/etc/atoll
`, root)
	if r.stdout != want {
		t.Errorf("uninstall's stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	assertTree(t, root, before)
}

// TestBackgroundStart: without systemd the installer starts the node in the background
// with the flags of the environment file, its join token and master in the node's
// environment (as systemd's EnvironmentFile= gives them), its output in the log and its
// pid in the pid file, and when the node does not join in time says so and fails, leaving it installed;
// running again stops that node and starts a new one; the uninstaller stops it and
// removes its log and pid file too. The test binary stands in for atoll: the master
// serves its own executable.
func TestBackgroundStart(t *testing.T) {
	t.Parallel()
	ca := newClusterCA(t)
	srv := newMaster(t, install.Config{}, "", ca.withCA)
	root, tmp := dirs(t)
	argsFile := filepath.Join(t.TempDir(), "args")
	pidFile := root + "/run/atoll-agent.pid"
	t.Cleanup(func() {
		if pid, err := readPID(pidFile); err == nil && processRuns(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	path := toolsDir(t, "curl")
	script := get(t, srv.URL+install.ScriptPath)
	runInstall := func() (result, int) {
		t.Helper()
		if err := os.Remove(argsFile); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		r := runScript(t, shells[0], script, env(path, tmp, root, fakeNodeEnv+"="+argsFile, "ATOLL_INSTALL_TIMEOUT=0"),
			"agent", "--token", ca.token, "--", "--name", "node1")
		pid, err := readPID(pidFile)
		if err != nil {
			t.Fatalf("%v; stdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
		}
		return r, pid
	}

	r, pid := runInstall()
	bin := root + "/usr/local/bin/atoll"
	wantErr := fmt.Sprintf("atoll-install: agent node1 has not joined within 0s (see %[1]s/var/log/atoll-agent.log, or journalctl -u atoll-agent under systemd); it stays installed: run the installer again to retry, or %[1]s/usr/local/bin/atoll-uninstall.sh to remove it", root)
	if r.code != 1 || r.lastErrLine() != wantErr {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and %s", r.code, r.stderr, wantErr)
	}
	args := "--join 127.0.0.1 --data-dir " + root + "/var/lib/atoll --name node1"
	for _, line := range []string{
		"  no systemd here: started atoll-agent in the background, pid " + strconv.Itoa(pid),
		"    log:      " + root + "/var/log/atoll-agent.log",
		"    pid file: " + pidFile,
		"    setsid " + bin + " agent " + args + " </dev/null >>" + root + "/var/log/atoll-agent.log 2>&1 &",
		"  waiting for agent node1 to join the cluster at " + srv.URL + " ",
	} {
		if !strings.Contains(r.stdout, "\n"+line+"\n") {
			t.Errorf("stdout has no line %q:\n%s", line, r.stdout)
		}
	}
	nodeEnv := "ATOLL_JOIN_TOKEN=" + ca.token + "\nATOLL_MASTER_URL=" + srv.URL + "\n"
	if got, want := waitFile(t, argsFile), strings.ReplaceAll("agent "+args, " ", "\n")+"\n"+nodeEnv; got != want {
		t.Errorf("the node's arguments:\n%s\nwant:\n%s", got, want)
	}
	if !processRuns(pid) {
		t.Fatalf("node %d is not running", pid)
	}

	r, second := runInstall()
	if !strings.Contains(r.stdout, "\n  stopped atoll-agent (pid "+strconv.Itoa(pid)+")\n") {
		t.Errorf("the second run does not say it stopped the node:\n%s", r.stdout)
	}
	if second == pid || processRuns(pid) || !processRuns(second) {
		t.Errorf("after the second run: old node %d running %t, new node %d running %t", pid, processRuns(pid), second, processRuns(second))
	}
	waitFile(t, argsFile)

	cmd := exec.Command(root + "/usr/local/bin/atoll-uninstall.sh")
	cmd.Env = []string{"PATH=" + path}
	r = runCmd(t, cmd)
	want := fmt.Sprintf(`removing the atoll agent
  stopped atoll-agent (pid %[2]d)
  removed %[1]s/etc/systemd/system/atoll-agent.service
  removed %[1]s/etc/atoll/agent.env
  removed %[1]s/var/log/atoll-agent.log
  removed %[1]s/run/atoll-agent.pid
  removed %[1]s/var/lib/atoll (the node's state; an agent's tasks end with it)
removed %[1]s/usr/local/bin/atoll
removed %[1]s/usr/local/bin/atoll-uninstall.sh
removed %[1]s/etc/atoll
`, root, second)
	if r.code != 0 || r.stdout != want {
		t.Errorf("uninstall: exit %d, stdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
	if processRuns(second) {
		t.Errorf("node %d still runs after the uninstall", second)
	}
	assertTree(t, root, map[string]entry{
		"etc": {mode: os.ModeDir | 0o755}, "etc/systemd": {mode: os.ModeDir | 0o755}, "etc/systemd/system": {mode: os.ModeDir | 0o755},
		"usr": {mode: os.ModeDir | 0o755}, "usr/local": {mode: os.ModeDir | 0o755}, "usr/local/bin": {mode: os.ModeDir | 0o755},
		"var": {mode: os.ModeDir | 0o755}, "var/log": {mode: os.ModeDir | 0o755}, "var/lib": {mode: os.ModeDir | 0o700},
		"run": {mode: os.ModeDir | 0o755},
	})
}

func readPID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// waitFile waits for the fake node to write its arguments and returns them.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(scriptTimeout)
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(data), "\n") {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not written within %v: %v", path, scriptTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBadInput: the installer refuses bad arguments, a token that is no join token, a
// master whose CA is not the one the join token pins (a man in the middle) or that has
// none, a master it cannot reach, a download whose checksum does not match, a master of
// another architecture and a machine without curl or wget (or with only BusyBox's wget
// for a secure join), each with a message on stderr and exit status 1, writing nothing.
func TestBadInput(t *testing.T) {
	const binary = "atoll v1\n"
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	unameS, unameM := uname(t, "-s"), uname(t, "-m")
	corrupt := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == install.BinaryPath {
				_, _ = w.Write([]byte("atoll v1 with a flipped bit\n"))
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	usage := "usage: install.sh master|agent|lb [--join ADDR] [--token TOKEN] [-- ATOLL FLAGS]"
	ca, mitm := newClusterCA(t), newClusterCA(t)
	notJoinToken := "atoll-install: --token: not a join token: want ATL1-<CA hash>-<secret>, as the first master and atoll token create --role agent print it"
	for _, tc := range []struct {
		name     string
		args     []string
		env      []string
		cfg      install.Config
		wrap     func(http.Handler) http.Handler
		down     bool // the master is gone by the time the script runs
		fetchers []string
		// want is the last line on stderr; MASTER stands for the master's URL.
		want string
	}{
		{name: "no role", want: "atoll-install: no role given. " + usage},
		{name: "unknown role", args: []string{"worker"}, want: "atoll-install: unknown role 'worker': want master, agent or lb. " + usage},
		{name: "unknown option", args: []string{"agent", "--name", "n1"}, want: "atoll-install: unknown option '--name' (atoll's own flags go after --). " + usage},
		{name: "join without value", args: []string{"agent", "--join"}, want: "atoll-install: --join needs a value. " + usage},
		{name: "bad join", args: []string{"agent", "--join", "m1;reboot"}, want: "atoll-install: --join 'm1;reboot': want host, host:port or http://host:port"},
		{name: "bad token", args: []string{"agent", "--token=a'b"}, want: "atoll-install: --token: only letters, digits and . _ ~ + / = - may appear in a token"},
		{name: "API token", args: []string{"agent", "--token", "atl_abcdefghijkl_secret"}, want: notJoinToken},
		{name: "short CA hash", args: []string{"agent", "--token", "ATL1-abcd-atl_x"}, want: notJoinToken},
		{name: "no secret", args: []string{"agent", "--token", "ATL1-" + ca.hash}, want: notJoinToken},
		{name: "uppercase CA hash", args: []string{"lb", "--token", "ATL1-" + strings.ToUpper(ca.hash) + "-atl_x"},
			want: strings.Replace(notJoinToken, "--role agent", "--role lb", 1)},
		{name: "CA of another cluster", args: []string{"agent", "--token", mitm.token}, wrap: ca.withCA,
			want: "atoll-install: the cluster CA's hash " + ca.hash + ", as MASTER served it, does not match the join token's " + mitm.hash +
				": a man in the middle, or a token of another cluster; nothing was installed"},
		{name: "master without security", args: []string{"agent", "--token", ca.token},
			want: "atoll-install: cannot fetch the cluster CA from MASTER/atoll/v1/ca: is the master secure (atoll master without --secure=false) and reachable? A join token is for secure clusters only"},
		{name: "join token with busybox's wget", args: []string{"agent", "--token", ca.token}, wrap: ca.withCA, fetchers: []string{"busybox-wget"},
			want: "atoll-install: BusyBox's wget cannot check the master's certificate, which joining a secure cluster needs: install curl (apt-get install curl) and run again"},
		{name: "flag with a space", args: []string{"agent", "--", "--attributes", "rack:a b"}, want: "atoll-install: atoll flag 'rack:a b': spaces, quotes, backslashes and $ cannot go through the environment file"},
		{name: "relative bin dir", args: []string{"agent"}, env: []string{"ATOLL_INSTALL_BIN_DIR=bin"}, want: "atoll-install: ATOLL_INSTALL_BIN_DIR=bin: want an absolute path"},
		{name: "bad timeout", args: []string{"agent"}, env: []string{"ATOLL_INSTALL_TIMEOUT=soon"}, want: "atoll-install: ATOLL_INSTALL_TIMEOUT=soon: want a whole number of seconds"},
		{name: "unreachable master", args: []string{"agent"}, down: true,
			want: "atoll-install: cannot reach the master at MASTER (GET /download/atoll.arch failed): is it running, and reachable from this machine?"},
		{name: "unreachable master with wget", args: []string{"agent"}, down: true, fetchers: []string{"wget"},
			want: "atoll-install: cannot reach the master at MASTER (GET /download/atoll.arch failed): is it running, and reachable from this machine?"},
		{name: "checksum mismatch", args: []string{"agent"}, wrap: corrupt,
			want: "atoll-install: checksum mismatch: the atoll downloaded from MASTER has SHA-256 " + sum("atoll v1 with a flipped bit\n") + ", the master says " + sum(binary) + " (corrupted in transit?); nothing was installed"},
		{name: "wrong architecture", args: []string{"agent"}, cfg: install.Config{GOARCH: other},
			want: "atoll-install: wrong architecture: the master at MASTER serves atoll for linux/" + other + ", this machine is linux/" + runtime.GOARCH + " (" + unameS + " " + unameM + "); install from a master of this machine's platform"},
		{name: "no curl or wget", args: []string{"agent"}, fetchers: []string{},
			want: "atoll-install: neither curl nor wget is installed: install one (apt-get install curl) and run again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newMaster(t, tc.cfg, binary, tc.wrap)
			script := get(t, srv.URL+install.ScriptPath)
			if tc.down {
				srv.Close()
			}
			fetchers := tc.fetchers
			if fetchers == nil {
				fetchers = []string{"curl"}
			}
			root, tmp := dirs(t)
			r := runScript(t, shells[0], script, env(toolsDir(t, fetchers...), tmp, root, tc.env...), tc.args...)
			if want := strings.ReplaceAll(tc.want, "MASTER", srv.URL); r.code != 1 || r.lastErrLine() != want {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and:\n%s", r.code, r.stderr, want)
			}
			assertTree(t, root, map[string]entry{})
			assertTree(t, tmp, map[string]entry{})
		})
	}
}

func uname(t *testing.T, flag string) string {
	t.Helper()
	out, err := exec.Command("uname", flag).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestShellcheck: the scripts as served pass shellcheck as POSIX sh.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		// CI installs it (.ci/run): there the check must run, not be skipped.
		if os.Getenv("CI") == "true" {
			t.Fatal("shellcheck is not installed (apt-get install shellcheck)")
		}
		t.Skip("shellcheck is not installed (apt-get install shellcheck)")
	}
	srv := newMaster(t, install.Config{Join: "10.0.0.1:7946"}, "atoll\n", nil)
	for _, p := range []string{install.ScriptPath, install.UninstallPath} {
		file := filepath.Join(t.TempDir(), filepath.Base(p))
		if err := os.WriteFile(file, get(t, srv.URL+p), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("shellcheck", "--shell=sh", file).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s: %v\n%s", p, err, out)
		}
	}
}
