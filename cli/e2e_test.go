package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQuickStart is the README's quick start on the real binary, as a new user runs it:
// `atoll up` makes a secure cluster and logs the CLI in to it (a context in the user's
// config), so that a plain `atoll task run -- echo hello` reaches TASK_FINISHED over TLS
// with the admin token and says where its stdout is, and the node's DNS answers
// leader.mesos; Ctrl-C stops the cluster, and `atoll up` again recovers the same state
// from the data dir, the task's output still readable with `atoll task log`.
func TestQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "atoll")
	build := exec.Command("go", "build", "-o", bin, "github.com/atoll/atoll")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(dir, "data")
	// The user's own config, where atoll up keeps the context the commands below use.
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("ATOLL_ADDR", "")
	t.Setenv("ATOLL_TOKEN", "")
	apiPort, raftPort, dnsPort := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)

	up := startUp(t, bin, dataDir, apiPort, raftPort, dnsPort)
	config, err := os.ReadFile(filepath.Join(dir, "home", ".config", "atoll", "config"))
	if want := fmt.Sprintf(`"addr": "https://127.0.0.1:%d"`, apiPort); err != nil || !strings.Contains(string(config), want) {
		t.Fatalf("the CLI config after atoll up: %v\n%s\nwant a context with %s", err, config, want)
	}
	out := runAtoll(t, bin, "task", "run", "--name", "hello", "--", "echo", "hello")
	if !strings.Contains(out, "TASK_FINISHED") {
		t.Fatalf("task run output lacks TASK_FINISHED:\n%s", out)
	}
	stdoutPath := ""
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "stdout: "); ok {
			_, stdoutPath, _ = strings.Cut(rest, ":")
		}
	}
	if b, err := os.ReadFile(stdoutPath); err != nil || string(b) != "hello\n" {
		t.Fatalf("stdout at %q = %q, %v; want \"hello\\n\" (task run said:\n%s)", stdoutPath, b, err, out)
	}
	// The node's DNS follows the master: leader.mesos names it once the DNS server has
	// subscribed to the master's events.
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err := exec.Command(bin, "dns", "lookup", "--server", fmt.Sprintf("127.0.0.1:%d", dnsPort), "leader.mesos").CombinedOutput()
		if err == nil && strings.Contains(string(out), "leader.mesos.  60   A     127.0.0.1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("atoll dns lookup leader.mesos: %v\n%s\nwant an A record for 127.0.0.1", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	up.stop(t)

	startUp(t, bin, dataDir, apiPort, raftPort, dnsPort)
	var tasks []struct {
		ID struct {
			Value string `json:"value"`
		} `json:"task_id"`
		Name  string `json:"name"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(runAtoll(t, bin, "tasks", "--all", "-o", "json")), &tasks); err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Name != "hello" || tasks[0].State != "TASK_FINISHED" {
		t.Fatalf("tasks after restart = %+v, want the finished hello task", tasks)
	}
	if out := runAtoll(t, bin, "task", "log", tasks[0].ID.Value); out != "hello\n" {
		t.Fatalf("task log %s = %q, want the task's stdout \"hello\\n\"", tasks[0].ID.Value, out)
	}
	if out := runAtoll(t, bin, "task", "log", "--stderr", "-f", tasks[0].ID.Value); out != "" {
		t.Fatalf("task log --stderr -f %s = %q, want the empty stderr of a finished task", tasks[0].ID.Value, out)
	}
}

type upProcess struct {
	cmd  *exec.Cmd
	done chan error
}

// startUp runs `atoll up` (with extra flags) and waits for its "Atoll is up." line.
func startUp(t *testing.T, bin, dataDir string, apiPort, raftPort, dnsPort int, extra ...string) *upProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"up", "--data-dir", dataDir, "--api-port", fmt.Sprint(apiPort), "--raft-port", fmt.Sprint(raftPort),
		"--dns-port", fmt.Sprint(dnsPort), "--lb-http-port", "0", "--lb-https-port", "0", "--lb-app-id-port", "0", "--lb-admin-port", "0", "--log-level", "warn"}, extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testLogWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &upProcess{cmd: cmd, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			t.Log("up: " + sc.Text())
			if !signalled && strings.HasPrefix(sc.Text(), "Atoll is up.") {
				close(ready)
				signalled = true
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("atoll up did not say it was up within 60s")
	}
	return p
}

// stop sends Ctrl-C (SIGINT) and expects a clean exit (idempotent).
func (p *upProcess) stop(t *testing.T) {
	if p.done == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("atoll up after Ctrl-C: %v", err)
		}
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("atoll up did not stop within 60s of Ctrl-C")
	}
	p.done = nil
}

// runAtoll runs the CLI as the user would, with the context atoll up logged it in to.
func runAtoll(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("atoll %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	// Below the kernel's ephemeral range: a port picked there and then closed would be
	// free for any outgoing connection (of other tests running meanwhile) to take before
	// atoll up binds it, and the restart binds the same ports again.
	lowest := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lowest = n
			}
		}
	}
	// The node package's tests take the 4,000 ports just below the range; these the 4,000
	// below those.
	const span = 4000
	for range 100 {
		port := lowest - 2*span + rand.IntN(span)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatalf("no free port in [%d, %d) after 100 tries", lowest-2*span, lowest-span)
	return 0
}

type testLogWriter struct{ t *testing.T }

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
