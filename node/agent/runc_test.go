package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/isolate/network"
	"github.com/atoll/atoll/isolate/network/nettest"
)

// requireRoot skips a test that needs root, except under CI=true, where it fails.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("runc containers need root, and CI=true runs every privileged test")
	}
	t.Skip("runc containers need root")
}

// withRunc gives the agent the runc containerizer, its state in the work dir and its
// containers' cgroups under a parent of the test's own, removed at the end; bridge, if
// not nil, is its task network.
func withRunc(t *testing.T, workDir string, bridge *network.Bridge) func(*Config) {
	parent := fmt.Sprintf("/atoll-agent-test-%d", os.Getpid())
	// Registered before the agent's own cleanup, so it runs after the agent stopped.
	t.Cleanup(func() {
		for _, root := range cgroupRoots(t) {
			if err := os.Remove(filepath.Join(root, parent)); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cgroup %s left behind: %v", filepath.Join(root, parent), err)
			}
		}
	})
	return func(c *Config) {
		rc := isolate.DefaultRuncConfig()
		rc.StateDir = filepath.Join(workDir, "runc")
		rc.CgroupParent = parent
		rc.HiddenPaths = []string{workDir}
		rc.Network = bridge
		rc.Logger = c.Logger
		r, err := isolate.NewRunc(rc)
		if err != nil {
			t.Fatalf("runc containerizer: %v", err)
		}
		c.Containerizer = r
	}
}

// cgroupRoots lists the mounted cgroup hierarchies (v1 controllers, or the v2 root).
func cgroupRoots(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	roots := []string{"/sys/fs/cgroup"}
	for _, e := range entries {
		if e.IsDir() {
			roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return roots
}

// TestRuncTasksSurviveAgentRestart: five tasks in runc containers keep running while the
// agent process is replaced; the new agent re-registers listing them, with the same
// container pids, redelivers the update that was not acknowledged, and reports each
// task's end when it comes. Killing one with a grace period ends it TASK_KILLED.
func TestRuncTasksSurviveAgentRestart(t *testing.T) {
	requireRoot(t)
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	first := TestAgent(t, peer.masters, withWorkDir(workDir), withRunc(t, workDir, nil))
	peer.nextSubscribe()
	ids := []string{"r0", "r1", "r2", "r3", "r4"}
	for _, id := range ids {
		peer.send(launchEvent(id, "while [ ! -e /mnt/mesos/sandbox/release ]; do sleep 0.05; done; echo done"))
	}
	pids := map[string]uint32{}
	var unacked api.AgentCallUpdate
	for len(pids) < len(ids) {
		u := peer.nextUpdate()
		if u.Status.State != api.TaskRunning {
			t.Fatalf("update %s %s (%s), want TASK_RUNNING", u.Status.TaskID.Value, u.Status.State, u.Status.Message)
		}
		id := u.Status.TaskID.Value
		if _, seen := pids[id]; seen {
			continue // a resend
		}
		pids[id] = u.Status.ContainerStatus.ExecutorPID
		if id == "r4" {
			unacked = u // left unacknowledged across the restart
			continue
		}
		peer.ack(u)
	}
	waitUntil(t, "four acknowledgements", func() bool {
		pending := 0
		for _, task := range first.Tasks() {
			pending += task.PendingUpdates
		}
		return pending == 1
	})
	sandboxes := map[string]string{}
	for _, task := range first.Tasks() {
		sandboxes[task.TaskID] = task.Sandbox
	}
	shutdown(t, first, false)
	for id, pid := range pids {
		if err := syscall.Kill(int(pid), 0); err != nil {
			t.Fatalf("task %s (pid %d) did not outlive the agent: %v", id, pid, err)
		}
	}

	second := TestAgent(t, peer.masters, withWorkDir(workDir), withRunc(t, workDir, nil))
	sub := peer.nextSubscribe()
	var listed []string
	for _, task := range sub.Tasks {
		if task.State != api.TaskRunning {
			t.Errorf("re-registration lists %s in %s, want TASK_RUNNING", task.Task.TaskID.Value, task.State)
		}
		listed = append(listed, task.Task.TaskID.Value)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, ids) {
		t.Fatalf("re-registration lists %q, want %q", listed, ids)
	}
	redelivered := peer.nextUpdate()
	if !bytes.Equal(redelivered.Status.UUID, unacked.Status.UUID) || redelivered.Status.ContainerStatus.ExecutorPID != pids["r4"] {
		t.Fatalf("after the restart the agent sent %+v, want r4's unacknowledged TASK_RUNNING", redelivered.Status)
	}
	peer.ack(redelivered)

	peer.send(killEvent("r0", 0))
	for _, id := range ids[1:] {
		if err := os.WriteFile(filepath.Join(sandboxes[id], "release"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ended := map[string]api.TaskState{}
	for len(ended) < len(ids) {
		u := peer.nextUpdate()
		if bytes.Equal(u.Status.UUID, redelivered.Status.UUID) {
			continue
		}
		ended[u.Status.TaskID.Value] = u.Status.State
		peer.ack(u)
	}
	want := map[string]api.TaskState{"r0": api.TaskKilled, "r1": api.TaskFinished, "r2": api.TaskFinished, "r3": api.TaskFinished, "r4": api.TaskFinished}
	if fmt.Sprint(ended) != fmt.Sprint(want) {
		t.Fatalf("tasks ended %v, want %v", ended, want)
	}
	for _, id := range ids[1:] {
		if out, err := os.ReadFile(filepath.Join(sandboxes[id], "stdout")); err != nil || string(out) != "done\n" {
			t.Errorf("task %s stdout = %q, %v; want \"done\\n\"", id, out, err)
		}
	}
	waitUntil(t, "every task forgotten", func() bool { return len(second.Tasks()) == 0 })
}

// testBridge opens a task bridge network for the test, torn down when it ends.
func testBridge(t *testing.T) (*network.Bridge, network.Config) {
	t.Helper()
	suffix := fmt.Sprintf("%x", os.Getpid()%0xffffff)
	nc := network.DefaultConfig()
	nc.Bridge, nc.Table = "atb"+suffix, "atoll-agent-test-"+suffix
	nc.Subnet = nettest.Subnet(t)
	nc.StateDir = t.TempDir()
	nc.IPForward = false
	bridge, err := network.Open(context.Background(), nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bridge.Teardown(context.Background()); err != nil {
			t.Errorf("tear the bridge down: %v", err)
		}
	})
	return bridge, nc
}

// TestRuncBridgeTaskReportsItsAddress: a task on the bridge network (Marathon's
// container/bridge: a network_info named mesos-bridge) reports in TASK_RUNNING its own
// address on the agent's bridge, not the agent's, with its port mapping.
func TestRuncBridgeTaskReportsItsAddress(t *testing.T) {
	requireRoot(t)
	bridge, nc := testBridge(t)
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	a := TestAgent(t, peer.masters, withWorkDir(workDir), withRunc(t, workDir, bridge))
	peer.nextSubscribe()
	ev := launchEvent("web", "sleep 60")
	ev.Launch.Task.Container = &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{
		Name: isolate.BridgeNetwork, PortMappings: []api.PortMapping{{HostPort: 31000, ContainerPort: 8080, Protocol: "tcp"}},
	}}}
	peer.send(ev)
	running := peer.nextUpdate()
	wantUpdate(t, running, "web", api.TaskRunning)
	infos := running.Status.ContainerStatus.NetworkInfos
	if len(infos) != 1 || len(infos[0].IPAddresses) != 1 {
		t.Fatalf("TASK_RUNNING network infos %+v, want the task's one address", infos)
	}
	ip, err := netip.ParseAddr(infos[0].IPAddresses[0].IPAddress)
	if err != nil || !nc.Subnet.Contains(ip) || ip == bridge.Gateway() {
		t.Fatalf("TASK_RUNNING address %q, want one in the bridge's %s", infos[0].IPAddresses[0].IPAddress, nc.Subnet)
	}
	if pm := infos[0].PortMappings; len(pm) != 1 || pm[0].HostPort != 31000 || pm[0].ContainerPort != 8080 {
		t.Fatalf("TASK_RUNNING port mappings %+v, want 31000→8080", pm)
	}
	peer.ack(running)
	peer.send(killEvent("web", 0))
	killed := peer.nextUpdate()
	for killed.Status.State == api.TaskRunning {
		killed = peer.nextUpdate()
	}
	wantUpdate(t, killed, "web", api.TaskKilled)
	peer.ack(killed)
	waitUntil(t, "the task forgotten", func() bool { return len(a.Tasks()) == 0 })
}

// TestRuncHealthCheckOnBridge: the HTTP check of a task on the bridge network reaches
// the task at its own address and container port (busybox httpd serving the sandbox), and
// a failing check gets the container killed.
func TestRuncHealthCheckOnBridge(t *testing.T) {
	requireRoot(t)
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the task's HTTP server is %s (Debian's busybox-static): %v", busybox, err)
		}
		t.Skipf("the task's HTTP server is %s (Debian's busybox-static): %v", busybox, err)
	}
	bridge, _ := testBridge(t)
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	a := TestAgent(t, peer.masters, withWorkDir(workDir), withRunc(t, workDir, bridge))
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	ev := launchEvent("web", "echo ok > health; exec "+busybox+" httpd -f -p 8080 -h .")
	ev.Launch.Task.Container = &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: isolate.BridgeNetwork}}}
	ev.Launch.Task.HealthCheck = fastHealthCheck(healthHTTP, 1)
	ev.Launch.Task.HealthCheck.HTTP = &api.HTTPHealthCheck{Port: 8080, Path: "/health"}
	ev.Launch.Task.KillPolicy = &api.KillPolicy{GracePeriod: &api.DurationInfo{Nanoseconds: int64(500 * time.Millisecond)}}
	peer.send(ev)
	running := updates.next(t)
	wantUpdate(t, running, "web", api.TaskRunning)
	ip := running.Status.ContainerStatus.NetworkInfos[0].IPAddresses[0].IPAddress
	peer.ack(running)
	healthy := updates.next(t)
	wantHealth(t, healthy, "web", true, "")
	peer.ack(healthy)

	if err := os.Remove(filepath.Join(a.Tasks()[0].Sandbox, "health")); err != nil {
		t.Fatal(err)
	}
	failure := "HTTP GET http://" + ip + ":8080/health: 404 Not Found"
	unhealthy := updates.next(t)
	wantHealth(t, unhealthy, "web", false, failure)
	peer.ack(unhealthy)
	killed := updates.next(t)
	// As the container's init, httpd may ignore SIGTERM and die of the SIGKILL after the
	// grace period.
	wantUnhealthyKill(t, killed, "web", 1, failure, "")
	peer.ack(killed)
	waitUntil(t, "the task forgotten", func() bool { return len(a.Tasks()) == 0 })
}

// TestRuncCommandHealthCheck: a COMMAND check of a runc task runs inside its container,
// where PID 1 is the task, not on the host.
func TestRuncCommandHealthCheck(t *testing.T) {
	requireRoot(t)
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	a := TestAgent(t, peer.masters, withWorkDir(workDir), withRunc(t, workDir, nil))
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	ev := launchEvent("inside", "exec sleep 1000")
	ev.Launch.Task.HealthCheck = fastHealthCheck(healthCommand, 1)
	check := `[ "$(cat /proc/1/comm)" = sleep ] && [ "$PWD" = /mnt/mesos/sandbox ] && [ "$EXTRA" = 1 ]`
	ev.Launch.Task.HealthCheck.Command = &api.CommandInfo{Value: &check, Environment: &api.Environment{Variables: []api.EnvironmentVariable{{Name: "EXTRA", Value: "1"}}}}
	peer.send(ev)
	running := updates.next(t)
	wantUpdate(t, running, "inside", api.TaskRunning)
	peer.ack(running)
	healthy := updates.next(t)
	wantHealth(t, healthy, "inside", true, "")
	peer.ack(healthy)
	peer.send(killEvent("inside", 0))
	killed := updates.next(t)
	wantUpdate(t, killed, "inside", api.TaskKilled)
	peer.ack(killed)
	waitUntil(t, "the task forgotten", func() bool { return len(a.Tasks()) == 0 })
}

// TestShutdownDestroysKilledContainers: an agent stopping with its tasks killed leaves no
// container cgroup behind (withRunc's cleanup checks), though the kills' updates were
// never acknowledged, and a restarted agent still sends them.
func TestShutdownDestroysKilledContainers(t *testing.T) {
	requireRoot(t)
	peer := newProtocolPeer(t)
	workDir := t.TempDir()
	a := TestAgent(t, peer.masters, withWorkDir(workDir), withRunc(t, workDir, nil))
	peer.nextSubscribe()
	updates := newUpdateStream(peer)
	peer.send(launchEvent("victim", "exec sleep 1000"))
	running := updates.next(t)
	wantUpdate(t, running, "victim", api.TaskRunning)
	peer.ack(running)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx, true); err != nil {
		t.Fatal(err)
	}
	// The container is gone from the runc state dir: nothing left to recover.
	entries, err := os.ReadDir(filepath.Join(workDir, "runc", "containers"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("container records left after shutdown: %v", entries)
	}
	// Restarted, the agent still reports the kill.
	TestAgent(t, peer.masters, withWorkDir(workDir), withRunc(t, workDir, nil))
	peer.nextSubscribe()
	killed := updates.next(t)
	wantUpdate(t, killed, "victim", api.TaskKilled)
	peer.ack(killed)
}
