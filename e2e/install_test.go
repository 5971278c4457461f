package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// installTimeout bounds one run of install.sh or the uninstaller, the join included.
const installTimeout = 2 * time.Minute

// TestInstallScript: on a host with nothing of Atoll's, `curl -fsSL MASTER/install.sh |
// sh -s -- agent --join MASTER` (the host has no systemd, so the script takes its
// background path, into an ATOLL_INSTALL_ROOT under the test's dir) installs the master's
// own binary and starts an agent that the master lists as active, and that runs a task
// of an app posted to the master. Running the script again stops that agent and starts a
// new one, which rejoins with the task still running (the same task, never relaunched).
// The installed atoll-uninstall.sh stops the agent, the task ends with the agent's data
// dir, and no file and no process of the install remains. On another host the script
// installs an lb, which it finds joined once the master lists it as an alive gossip
// member, and its uninstaller leaves nothing either. The figures install_to_agent_joined
// and reinstall_to_agent_joined are the time from starting the pipeline to the script
// saying the agent joined.
func TestInstallScript(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	master := c.StartMasters(1)[0]
	c.WaitForLeader()
	host := c.AddHost("a1")
	root := filepath.Join(host.Dir(), "root")
	bin := root + "/usr/local/bin/atoll"
	pidFile := root + "/run/atoll-agent.pid"

	agentFlags := []string{"--name", host.Name(), "--bind", host.IP(), "--containerizer", "process"}
	out, took := runInstall(t, host, master, root, "agent", agentFlags...)
	recordFigure(t, "install_to_agent_joined", milliseconds(took), "ms", 1)
	for _, want := range []string{
		"installing an atoll agent from " + master.APIURL() + "\n",
		"\n  wrote " + bin + "\n",
		"\n  wrote " + root + "/usr/local/bin/atoll-uninstall.sh\n",
		"\n  wrote " + root + "/etc/atoll/agent.env\n",
		"\n  wrote " + root + "/etc/systemd/system/atoll-agent.service\n",
		"\n  no systemd here: started atoll-agent in the background, pid ",
		" joined\ndone: " + root + "/usr/local/bin/atoll-uninstall.sh removes it\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install.sh's output has no %q:\n%s", want, out)
		}
	}
	if got, want := fileSum(t, bin), fileSum(t, c.Bin()); got != want {
		t.Errorf("installed atoll has SHA-256 %x, the master's %x", got, want)
	}
	agents := c.WaitForAgents(1)
	if agents[0].AgentInfo.Hostname != host.IP() {
		t.Fatalf("the master's agent is on %s, want %s", agents[0].AgentInfo.Hostname, host.IP())
	}
	firstPID := readPIDFile(t, pidFile)

	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	const appID = "/installed"
	w := watchApp(t, c, appID)
	if err := marathonCall(ctx, master.APIURL(), http.MethodPost, "/v2/apps", map[string]any{
		"id": appID, "cmd": "exec sleep 3600", "cpus": 0.1, "mem": 16, "instances": 1,
	}, nil); err != nil {
		t.Fatal(err)
	}
	runsOnHost := func(s appSnapshot) bool {
		return len(s.app.Tasks) == 1 && s.app.Tasks[0].State == string(api.TaskRunning) && s.app.Tasks[0].Host == host.IP()
	}
	task := w.waitUntil(DefaultWaitTimeout, "running on "+host.Name(), runsOnHost).app.Tasks[0].ID

	out, took = runInstall(t, host, master, root, "agent", agentFlags...)
	recordFigure(t, "reinstall_to_agent_joined", milliseconds(took), "ms", 1)
	for _, want := range []string{
		"\n  unchanged " + bin + "\n",
		"\n  stopped atoll-agent (pid " + strconv.Itoa(firstPID) + ")\n",
		" joined\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the second install.sh's output has no %q:\n%s", want, out)
		}
	}
	secondPID := readPIDFile(t, pidFile)
	if secondPID == firstPID || running(firstPID) || !running(secondPID) {
		t.Errorf("after the second install: agent %d running %t, agent %d running %t; want only a new one", firstPID, running(firstPID), secondPID, running(secondPID))
	}
	w.waitUntil(DefaultWaitTimeout, "running on "+host.Name()+" after the agent's restart", runsOnHost)
	w.mu.Lock()
	latest, returned := w.latest.app.Tasks[0].ID, w.returned
	w.mu.Unlock()
	if latest != task || len(returned) > 0 {
		t.Errorf("after the agent's restart the app runs task %s (returned ids %q), want %s throughout", latest, returned, task)
	}

	uninstalled := runUninstall(t, host, root)
	if !strings.Contains(uninstalled, "\n  stopped atoll-agent (pid "+strconv.Itoa(secondPID)+")\n") ||
		!strings.Contains(uninstalled, "\nremoved "+bin+"\n") {
		t.Errorf("the uninstaller's output:\n%s", uninstalled)
	}

	// An lb has joined once it is an alive gossip member.
	lbHost := c.AddHost("l1")
	lbRoot := filepath.Join(lbHost.Dir(), "root")
	out, _ = runInstall(t, lbHost, master, lbRoot, "lb", "--name", lbHost.Name(), "--bind", lbHost.IP())
	if !strings.Contains(out, "\n  waiting for lb l1 to join the cluster at "+master.APIURL()+" ") {
		t.Errorf("install.sh lb's output:\n%s", out)
	}
	members, err := c.Client(master).GetMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lb []string
	for _, m := range members.Members {
		if m.Name == lbHost.Name() {
			lb = append(lb, m.Status+" "+m.Tags["role"])
		}
	}
	if len(lb) != 1 || lb[0] != "alive lb" {
		t.Errorf("the master's members named l1: %q, want one alive lb", lb)
	}
	if out := runUninstall(t, lbHost, lbRoot); !strings.Contains(out, "\n  stopped atoll-lb (pid ") {
		t.Errorf("the uninstaller's output on l1:\n%s", out)
	}
}

// runUninstall runs the uninstaller install.sh put under root on host, then waits until
// no process runs on the host (an agent's tasks end with its data dir, within a second or
// so) and checks that no file of the install remains. It returns the uninstaller's output.
func runUninstall(t *testing.T, host *Host, root string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := host.Command(ctx, root+"/usr/local/bin/atoll-uninstall.sh")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := combined(cmd)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(DefaultWaitTimeout)
	for {
		left := namespaceProcesses(t, host)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still running on %s %v after the uninstall: %v", host.Name(), DefaultWaitTimeout, left)
		}
		time.Sleep(pollInterval)
	}
	var files []string
	if err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(files) > 0 {
		t.Errorf("files left on %s after the uninstall: %q", host.Name(), files)
	}
	return out
}

// runInstall pipes the master's install.sh into sh on host, as an operator would, to
// install role with atoll's flags, and returns its output and how long it took until the
// script said the node joined.
func runInstall(t *testing.T, host, master *Host, root, role string, flags ...string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := host.Command(ctx, "sh", append([]string{"-c", `url=$1 role=$2 join=$3; shift 3; curl -fsSL "$url/install.sh" | sh -s -- "$role" --join "$join" -- "$@"`,
		"sh", master.APIURL(), role, master.IP()}, flags...)...)
	cmd.Env = append(os.Environ(), "ATOLL_INSTALL_ROOT="+root, "ATOLL_INSTALL_TIMEOUT="+strconv.Itoa(int(DefaultWaitTimeout/time.Second)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var joined time.Duration
	lines := bufio.NewReader(stdout)
	for {
		line, err := lines.ReadString('\n')
		out.WriteString(line)
		if joined == 0 && strings.HasSuffix(line, " joined\n") {
			joined = time.Since(start)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil || joined == 0 {
		t.Fatalf("install.sh on %s: %v\nstdout:\n%s\nstderr:\n%s", host.Name(), err, out.String(), stderr.String())
	}
	t.Logf("install.sh %s on %s, joined after %v:\n%s", role, host.Name(), joined, out.String())
	return out.String(), joined
}

func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

func readPIDFile(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pid
}

// namespaceProcesses lists the processes running (not zombies) in host's namespace.
func namespaceProcesses(t *testing.T, host *Host) []string {
	t.Helper()
	out, err := output("ip", "netns", "pids", host.Netns())
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, p := range strings.Fields(out) {
		if pid, err := strconv.Atoi(p); err == nil && running(pid) {
			cmdline, _ := os.ReadFile("/proc/" + p + "/cmdline")
			live = append(live, p+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return live
}
