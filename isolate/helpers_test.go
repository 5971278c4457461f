package isolate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate/network"
	"github.com/atoll/atoll/isolate/network/nettest"
)

// The test binary is re-executed as the process containerizer's supervisor, as the runc
// containers' shims and inits, and as an agent that launches a container and is killed;
// it must become one before TestMain parses flags or runs anything.
func init() {
	RunContainerInitIfRequested()
	RunShimIfRequested()
	if kind := os.Getenv(testAgentEnv); kind != "" {
		os.Exit(runTestAgent(kind))
	}
}

func TestMain(m *testing.M) {
	// Supervisors are this test binary; built with -race they would otherwise wait a
	// second at exit for race reports. They get GORACE from the test process.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// testTimeout bounds every wait on a real process; generous for a loaded 2-core machine.
const testTimeout = 30 * time.Second

// testLogWriter sends a component's logs to t.Log so they show only on failure.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testLogger is a containerizer's logger for a test: its debug logs go to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// requireRoot skips a test that needs root, saying why, except under CI, which must run
// it.
func requireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root and CI must run it: run the tests as root")
	}
	t.Skip("needs root " + why)
}

func ptr[T any](v T) *T { return &v }

var containerSeq atomic.Int64

// shellSpec is a launch of the shell command script in a fresh sandbox.
func shellSpec(t testing.TB, script string) LaunchSpec {
	t.Helper()
	return LaunchSpec{
		ContainerID: fmt.Sprintf("c%d", containerSeq.Add(1)),
		TaskID:      "task-" + t.Name(),
		Sandbox:     t.TempDir(),
		Command:     api.CommandInfo{Value: &script},
	}
}

// waitExit waits for the container to end.
func waitExit(t testing.TB, c Containerizer, containerID string) ExitStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	status, err := c.Wait(ctx, containerID)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return status
}

// checkLaunchDuplicate launches spec again while it runs, which c must refuse.
func checkLaunchDuplicate(t testing.TB, c Containerizer, spec LaunchSpec) {
	t.Helper()
	_, err := c.Launch(context.Background(), spec)
	if want := "launch " + spec.ContainerID + ": container already exists"; err == nil || err.Error() != want {
		t.Errorf("second Launch = %v, want %q", err, want)
	}
}

// checkDestroyRunning destroys a running container, which c must refuse.
func checkDestroyRunning(t testing.TB, c Containerizer, containerID string) {
	t.Helper()
	err := c.Destroy(context.Background(), containerID)
	if want := "destroy " + containerID + ": container is still running"; err == nil || err.Error() != want {
		t.Errorf("Destroy of a running container = %v, want %q", err, want)
	}
}

// checkUnknown checks that c knows no container containerID: never launched, or
// destroyed.
func checkUnknown(t testing.TB, c Containerizer, containerID string) {
	t.Helper()
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Wait":    func() error { _, err := c.Wait(ctx, containerID); return err },
		"Kill":    func() error { return c.Kill(ctx, containerID, 0) },
		"Destroy": func() error { return c.Destroy(ctx, containerID) },
	} {
		if err := call(); !errors.Is(err, ErrUnknownContainer) {
			t.Errorf("%s(%q) = %v, want ErrUnknownContainer", name, containerID, err)
		}
	}
}

// launchErrorCase is a launch a containerizer refuses. $ID and $SANDBOX in wantErr stand
// for the container id and the sandbox path.
type launchErrorCase struct {
	name    string
	modify  func(*LaunchSpec)
	wantErr string
}

// commonLaunchErrors are the launches every containerizer refuses with the same error.
func commonLaunchErrors() []launchErrorCase {
	return []launchErrorCase{
		{
			name:    "unknown user",
			modify:  func(s *LaunchSpec) { s.Command.User = ptr("no-such-user-xyz") },
			wantErr: `launch $ID: user "no-such-user-xyz": user: unknown user no-such-user-xyz`,
		},
		{
			name:    "no command",
			modify:  func(s *LaunchSpec) { s.Command = api.CommandInfo{} },
			wantErr: "launch $ID: command has no value",
		},
		{
			name:    "relative sandbox",
			modify:  func(s *LaunchSpec) { s.Sandbox = "sandbox" },
			wantErr: `launch $ID: sandbox "sandbox" is not an absolute path`,
		},
		{
			name:    "missing sandbox",
			modify:  func(s *LaunchSpec) { s.Sandbox = filepath.Join(s.Sandbox, "missing") },
			wantErr: "launch $ID: sandbox: stat $SANDBOX: no such file or directory",
		},
		{
			name:    "malformed environment entry",
			modify:  func(s *LaunchSpec) { s.Env = []string{"NOEQUALS"} },
			wantErr: `launch $ID: environment entry "NOEQUALS" is not NAME=value`,
		},
		{
			name: "secret environment variable without a secret",
			modify: func(s *LaunchSpec) {
				s.Command.Environment = &api.Environment{Variables: []api.EnvironmentVariable{{Name: "S", Type: "SECRET"}}}
			},
			wantErr: `launch $ID: environment variable "S": a SECRET needs a secret`,
		},
		{
			name: "secret environment variable by reference",
			modify: func(s *LaunchSpec) {
				s.Command.Environment = &api.Environment{Variables: []api.EnvironmentVariable{{Name: "S", Type: "SECRET",
					Secret: &api.Secret{Type: api.SecretReferenceType, Reference: &api.SecretReference{Name: "db/password"}}}}}
			},
			wantErr: `launch $ID: environment variable "S": secret "db/password" is a reference, which the agent cannot resolve: the framework must send its value`,
		},
		{
			name: "environment variable of an unknown type",
			modify: func(s *LaunchSpec) {
				s.Command.Environment = &api.Environment{Variables: []api.EnvironmentVariable{{Name: "S", Type: "FILE"}}}
			},
			wantErr: `launch $ID: environment variable "S": type "FILE" is not supported`,
		},
	}
}

// testLaunchErrors launches each case, modifying a shell command's launch, and checks its
// error, that c does not know the container, and that nothingLeft finds nothing of it.
func testLaunchErrors(t *testing.T, c Containerizer, cases []launchErrorCase, nothingLeft func(testing.TB)) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := shellSpec(t, "echo should not run")
			tc.modify(&spec)
			_, err := c.Launch(context.Background(), spec)
			want := strings.NewReplacer("$ID", spec.ContainerID, "$SANDBOX", spec.Sandbox).Replace(tc.wantErr)
			if err == nil || err.Error() != want {
				t.Fatalf("Launch error = %v, want %q", err, want)
			}
			nothingLeft(t)
			if _, err := c.Wait(context.Background(), spec.ContainerID); !errors.Is(err, ErrUnknownContainer) {
				t.Errorf("Wait after a failed launch = %v, want ErrUnknownContainer", err)
			}
		})
	}
}

// The test agent's settings: testAgentEnv, set to a containerizer kind, makes the test
// binary a test agent (see runTestAgent) for the state dir, sandbox and (for runc) cgroup
// parent the others name.
const (
	testAgentEnv         = "ATOLL_TEST_AGENT"
	testAgentStateDirEnv = "ATOLL_TEST_AGENT_STATE_DIR"
	testAgentSandboxEnv  = "ATOLL_TEST_AGENT_SANDBOX"
	testAgentCgroupEnv   = "ATOLL_TEST_AGENT_CGROUP"
)

// runTestAgent launches a container with a containerizer of kind, prints its state as
// JSON and waits to be killed without letting go of anything, as an agent that dies with
// its containers running.
func runTestAgent(kind string) int {
	var c Containerizer
	var err error
	switch kind {
	case ProcessKind:
		cfg := DefaultProcessConfig()
		cfg.StateDir = os.Getenv(testAgentStateDirEnv)
		c, err = NewProcess(cfg)
	case RuncKind:
		cfg := DefaultRuncConfig()
		cfg.StateDir = os.Getenv(testAgentStateDirEnv)
		cfg.CgroupParent = os.Getenv(testAgentCgroupEnv)
		c, err = NewRunc(cfg)
	default:
		err = fmt.Errorf("unknown containerizer kind %q", kind)
	}
	var st State
	if err == nil {
		st, err = c.Launch(context.Background(), LaunchSpec{
			ContainerID: "agent-task",
			Sandbox:     os.Getenv(testAgentSandboxEnv),
			Command:     api.CommandInfo{Value: ptr("echo ready; exec sleep 1000")},
		})
	}
	if err == nil {
		err = json.NewEncoder(os.Stdout).Encode(st)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {}
}

// startTestAgent runs the test binary as an agent with a containerizer of kind, in a
// process group of its own as a shell gives a foreground job, and returns it and the
// state of the container it launched, whose output goes to sandbox/stdout. The agent is
// killed when the test ends, if it has not been.
func startTestAgent(t testing.TB, kind, stateDir, sandbox, cgroupParent string) (*exec.Cmd, State) {
	t.Helper()
	agent := exec.Command(os.Args[0])
	agent.Env = append(os.Environ(), testAgentEnv+"="+kind, testAgentStateDirEnv+"="+stateDir,
		testAgentSandboxEnv+"="+sandbox, testAgentCgroupEnv+"="+cgroupParent)
	agent.Stderr = testLogWriter{t}
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	var st State
	if err := json.NewDecoder(stdout).Decode(&st); err != nil {
		t.Fatalf("read the agent's state: %v", err)
	}
	return agent, st
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// waitForOutput polls path until its content starts with prefix.
func waitForOutput(t testing.TB, path, prefix string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		data, _ := os.ReadFile(path)
		if strings.HasPrefix(string(data), prefix) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %q, want it to start with %q", path, data, prefix)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForFile polls until path exists.
func waitForFile(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStat returns the fields of /proc/PID/stat after the command name (field 3 onwards),
// or nil when the process does not exist.
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
}

// running reports whether pid is a live process; a zombie is not.
func running(pid int) bool {
	fields := procStat(pid)
	return fields != nil && fields[0] != "Z" && fields[0] != "X"
}

// waitGone polls until none of pids runs.
func waitGone(t testing.TB, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for _, pid := range pids {
		for running(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still running", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitReaped polls until pid is gone, zombie included.
func waitReaped(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for procStat(pid) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d not reaped", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testNetworkConfig is a task network with a bridge and nftables table of its own on a
// locked test subnet.
func testNetworkConfig(t testing.TB) network.Config {
	t.Helper()
	requireRoot(t, "for network namespaces, links and nftables")
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	cfg := network.DefaultConfig()
	cfg.Bridge = "at" + hex.EncodeToString(suffix)
	cfg.Table = "atoll-test-" + hex.EncodeToString(suffix)
	cfg.Subnet = nettest.Subnet(t)
	cfg.StateDir = t.TempDir()
	cfg.IPForward = false // the host's forwarding is not the tests' to change
	return cfg
}

// openTestBridge opens the task network cfg, as an agent does when it starts. When the
// test ends, after its containers are destroyed, it checks that they left no endpoint
// (no record, namespace, veth or port mapping rule), then tears the network down.
func openTestBridge(t testing.TB, cfg network.Config) *network.Bridge {
	t.Helper()
	b, err := network.Open(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("open the task network: %v", err)
	}
	empty := takeNetworkSnapshot(t, cfg)
	t.Cleanup(func() {
		checkNetworkSnapshot(t, cfg, empty)
		if err := b.Teardown(context.Background()); err != nil {
			t.Errorf("tear the task network down: %v", err)
		}
	})
	return b
}

// networkSnapshot is what a task network holds for its endpoints.
type networkSnapshot struct {
	// Files are the endpoints' records and namespaces in the state dir.
	Files []string
	// Ports are the links on the bridge, the endpoints' veths.
	Ports []string
	// Rules counts the nftables rules of the network's table.
	Rules int
}

func takeNetworkSnapshot(t testing.TB, cfg network.Config) networkSnapshot {
	t.Helper()
	var s networkSnapshot
	for _, dir := range []string{"endpoints", "netns"} {
		entries, err := os.ReadDir(filepath.Join(cfg.StateDir, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			s.Files = append(s.Files, filepath.Join(dir, e.Name()))
		}
	}
	s.Ports = bridgePorts(t, cfg.Bridge)
	s.Rules = nftRules(t, cfg.Table)
	return s
}

// checkNetworkSnapshot fails the test unless the task network holds what want says.
func checkNetworkSnapshot(t testing.TB, cfg network.Config, want networkSnapshot) {
	t.Helper()
	if got := takeNetworkSnapshot(t, cfg); !reflect.DeepEqual(got, want) {
		t.Errorf("task network holds %+v, want %+v", got, want)
	}
}

// bridgePorts lists the links on the bridge.
func bridgePorts(t testing.TB, bridge string) []string {
	t.Helper()
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatalf("bridge %s: %v", bridge, err)
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			ports = append(ports, l.Attrs().Name)
		}
	}
	return ports
}

// nftRules counts the rules in the chains of the ip table.
func nftRules(t testing.TB, table string) int {
	t.Helper()
	conn, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range chains {
		if c.Table.Name != table {
			continue
		}
		rules, err := conn.GetRules(c.Table, c)
		if err != nil {
			t.Fatal(err)
		}
		n += len(rules)
	}
	return n
}

// freePort is a port nothing listens on at the moment on 127.0.0.1, for a host port.
func freePort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}
