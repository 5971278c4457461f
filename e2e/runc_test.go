package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api/marathon"
)

// busybox serves the bridge app and fetches from it: the host's static busybox, which a
// container on the host's filesystem runs as it is (CI installs busybox-static).
const busybox = "/bin/busybox"

// requireHostFile skips the test, or fails it under CI=true, when path is missing.
func requireHostFile(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("e2e: test cannot run under CI=true: needs %s at %s", what, path)
	}
	t.Skipf("e2e: test skipped: needs %s at %s", what, path)
}

// pidnsCommand prints what a task sees of its PID namespace, without forking before the
// listing (echo and the glob are the shell's own): its shell's pid, the processes in its
// /proc, a child's parent pid and PID 1's command line. Then it sleeps.
const pidnsCommand = `echo "pid $$"; echo procs /proc/[0-9]*; sh -c 'echo "ppid $PPID"'; printf 'cmdline '; tr '\0' ' ' </proc/1/cmdline; echo; exec sleep 3600`

// pidnsOutput is what pidnsCommand prints in a PID namespace of its own, its shell being
// the container's PID 1 (/bin/sh -c COMMAND) and alone in it.
const pidnsOutput = "pid 1\nprocs /proc/1\nppid 1\ncmdline /bin/sh -c " + pidnsCommand + " \n"

// webCommand serves a page naming the task on port 8080 of its container.
const webCommand = `printf 'task %s\n' "$MESOS_TASK_ID" > index.html && exec ` + busybox + ` httpd -f -p 8080`

// TestRuncTasksOnHosts: agents on two hosts run tasks in runc containers, their bridge
// networks on 10.251.X.0/24 (X per agent). Through the Marathon API:
//   - an app of 2 instances on the host's filesystem, constraint hostname UNIQUE, runs one
//     task on each agent, and each task (its log read back with `atoll task log`) is PID 1
//     of a PID namespace of its own (/bin/sh -c COMMAND, the only process in its /proc) and
//     its child sees PID 1 as its parent;
//   - a container/bridge app with port mapping 8080 → host port 0 runs busybox httpd from
//     the host's filesystem: its task has an address in its agent's bridge subnet and a
//     host port from the agent's range, and every other host fetches the task's page from
//     AGENT-IP:HOST-PORT, while AGENT-IP:8080 refuses.
//
// Close then leaves nothing: no namespace, link or temp dir; none of the containers'
// cgroups or processes; no process or mount holding the agents' network namespaces (so
// their atoll0 bridges and nftables tables are gone) or the bridge task's; no mount below
// the cluster's dir.
func TestRuncTasksOnHosts(t *testing.T) {
	t.Parallel()
	requireHostFile(t, busybox, "busybox (apt-get install busybox-static) for the bridge app's web server and the hosts' wget")
	c := NewCluster(t, WithRuncAgents())
	masters := c.StartMasters(1)
	agents := c.StartAgents(2)
	leader := c.WaitForLeader()
	c.WaitForAgents(2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	pidns := watchApp(t, c, "/pidns")
	var created marathon.AppInfo
	if err := marathonCall(ctx, leader.APIURL(), http.MethodPost, "/v2/apps", map[string]any{
		"id": "/pidns", "cmd": pidnsCommand, "cpus": 0.1, "mem": 32, "instances": 2,
		"constraints": [][]string{{"hostname", "UNIQUE"}},
	}, &created); err != nil {
		t.Fatal(err)
	}
	s := pidns.waitUntil(3*time.Minute, "deployed", func(s appSnapshot) bool { return s.deployed(created.Version) })
	var hosts []string
	for _, task := range s.app.Tasks {
		hosts = append(hosts, task.Host)
	}
	slices.Sort(hosts)
	if want := []string{agents[0].IP(), agents[1].IP()}; !slices.Equal(hosts, want) {
		t.Errorf("the UNIQUE app's tasks run on %q, want one on each agent %q", hosts, want)
	}
	for _, task := range s.app.Tasks {
		if got := taskLog(ctx, t, c, leader, task.ID, strings.Count(pidnsOutput, "\n")); got != pidnsOutput {
			t.Errorf("task %s on %s printed:\n%s\nwant:\n%s", task.ID, task.Host, got, pidnsOutput)
		}
	}

	web := watchApp(t, c, "/web")
	if err := marathonCall(ctx, leader.APIURL(), http.MethodPost, "/v2/apps", map[string]any{
		"id": "/web", "cmd": webCommand, "cpus": 0.1, "mem": 32, "instances": 1,
		"networks":  []map[string]any{{"mode": "container/bridge"}},
		"container": map[string]any{"type": "MESOS", "portMappings": []map[string]any{{"containerPort": 8080, "hostPort": 0}}},
	}, &created); err != nil {
		t.Fatal(err)
	}
	s = web.waitUntil(3*time.Minute, "deployed", func(s appSnapshot) bool { return s.deployed(created.Version) })
	task := s.app.Tasks[0]
	i := slices.IndexFunc(agents, func(a *Host) bool { return a.IP() == task.Host })
	if i < 0 {
		t.Fatalf("the bridge task runs on %q, not an agent", task.Host)
	}
	agent := agents[i]
	subnet := agent.BridgeSubnet()
	if len(task.IPAddresses) != 1 {
		t.Errorf("the bridge task has addresses %+v, want one in %s", task.IPAddresses, subnet)
	} else if ip, err := netip.ParseAddr(task.IPAddresses[0].IPAddress); err != nil || !subnet.Contains(ip) || ip == subnet.Addr().Next() {
		t.Errorf("the bridge task's address %q is not a task address of %s's bridge %s", task.IPAddresses[0].IPAddress, agent.Name(), subnet)
	}
	if len(task.Ports) != 1 || task.Ports[0] < 31000 || task.Ports[0] > 32000 {
		t.Fatalf("the bridge task has host ports %v, want one in the agent's 31000-32000", task.Ports)
	}
	t.Logf("bridge task %s on %s: address %+v, host port %d", task.ID, agent.Name(), task.IPAddresses, task.Ports[0])
	page := "task " + task.ID + "\n"
	mapped := "http://" + agent.Addr(task.Ports[0]) + "/index.html"
	for _, h := range append(others(agents, agent), masters...) {
		if got := fetchUntil(ctx, t, h, mapped, page); got != page {
			t.Errorf("%s fetched %s: %q, want %q", h.Name(), mapped, got, page)
		}
		direct := "http://" + agent.Addr(8080) + "/index.html"
		if out, err := wget(ctx, h, direct); err == nil {
			t.Errorf("%s fetched %s, the container's own port on the agent's address: %q; want it refused", h.Name(), direct, out)
		}
	}
	pidns.stop()
	web.stop()

	// Two pidns containers and the web one.
	checkRuncCleanup(t, c, agents, 3)
}

// taskLog waits until `atoll task log` prints at least lines lines of the task's stdout
// and returns them.
func taskLog(ctx context.Context, t *testing.T, c *Cluster, master *Host, id string, lines int) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := c.Run(ctx, "--addr", master.APIURL(), "task", "log", id)
		if err == nil && strings.Count(out, "\n") >= lines {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("task log %s: %d lines (%v), want %d:\n%s", id, strings.Count(out, "\n"), err, lines, out)
		}
		time.Sleep(pollInterval)
	}
}

// wget fetches url from host h with busybox wget and returns the body.
func wget(ctx context.Context, h *Host, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// No -T: busybox 1.35's wget crashes with it; ctx bounds the fetch.
	out, err := h.Command(ctx, busybox, "wget", "-q", "-O", "-", url).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return string(out), fmt.Errorf("wget %s on %s: %w: %s", url, h.Name(), err, exit.Stderr)
		}
		return string(out), fmt.Errorf("wget %s on %s: %w", url, h.Name(), err)
	}
	return string(out), nil
}

// fetchUntil fetches url from h until it answers want (a web server that reports
// RUNNING may not listen yet) or a minute passes, and returns the last answer.
func fetchUntil(ctx context.Context, t *testing.T, h *Host, url, want string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := wget(ctx, h, url)
		if (err == nil && out == want) || time.Now().After(deadline) {
			if err != nil {
				t.Errorf("%v", err)
			}
			return out
		}
		time.Sleep(pollInterval)
	}
}

// checkRuncCleanup records what the runc agents made (containers' cgroups and processes,
// network namespaces), closes the cluster and checks that all of it is gone. containers
// is how many containers the agents should have recorded.
func checkRuncCleanup(t *testing.T, c *Cluster, agents []*Host, containers int) {
	t.Helper()
	ids, err := c.RuncContainers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != containers {
		t.Errorf("the agents recorded containers %q, want %d", ids, containers)
	}
	var cgroups []string
	pids := map[uint32]uint64{}
	netns := map[uint64]string{}
	for _, id := range ids {
		paths, err := ContainerCgroups(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) == 0 {
			t.Errorf("container %s has no cgroup under /%s", id, runcCgroupParent)
		}
		cgroups = append(cgroups, paths...)
		for _, p := range paths {
			for _, pid := range cgroupPIDs(p) {
				if start, err := processStart(uint32(pid)); err == nil {
					pids[uint32(pid)] = start
				}
				if ino, err := inode(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil {
					netns[ino] = "container " + id
				}
			}
		}
	}
	// Each container runs one process: its command's shell replaced itself.
	if len(pids) != containers {
		t.Errorf("the containers' cgroups hold %d processes, want %d", len(pids), containers)
	}
	t.Logf("before Close: containers %q, %d cgroups, processes %v", ids, len(cgroups), slices.Sorted(maps.Keys(pids)))
	for _, a := range agents {
		ino, err := inode(filepath.Join(netnsDir, a.Netns()))
		if err != nil {
			t.Fatal(err)
		}
		netns[ino] = "host " + a.Name()
		gateway := netip.PrefixFrom(a.BridgeSubnet().Addr().Next(), a.BridgeSubnet().Bits())
		out, err := output("ip", "-n", a.Netns(), "-4", "-o", "addr", "show", "dev", "atoll0")
		if err != nil || !strings.Contains(out, " inet "+gateway.String()+" ") {
			t.Errorf("%s's atoll0 bridge: %q (%v), want address %s", a.Name(), out, err, gateway)
		}
	}
	// The agents' namespaces, the bridge task's and the host-network tasks' (the
	// agents').
	if want := len(agents) + 1; len(netns) != want {
		t.Errorf("the containers and agents are in %d network namespaces, want %d: %v", len(netns), want, netns)
	}

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := harnessNames(t, c.ID()); len(got) != 0 {
		t.Errorf("after Close: %q remain", got)
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s after Close: %v, want it gone", c.Dir(), err)
	}
	for _, p := range cgroups {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s after Close: %v, want it gone", p, err)
		}
	}
	for pid, start := range pids {
		// A zombie is dead: its reaper, the machine's init, may not have come by yet.
		if now, err := processStart(pid); err == nil && now == start && running(int(pid)) {
			t.Errorf("container process %d outlived Close", pid)
		}
	}
	for _, holder := range netnsHolders(t, netns) {
		t.Errorf("after Close: %s", holder)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), c.Dir()) {
		t.Errorf("mounts below %s remain after Close:\n%s", c.Dir(), mounts)
	}
}

// inode returns a file's inode number; for a namespace file, the namespace's.
func inode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// netnsHolders lists the processes in, and the mounts (in every process's mount
// namespace) of, the network namespaces whose inodes netns names: what keeps one alive.
func netnsHolders(t *testing.T, netns map[uint64]string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var holders []string
	mountNamespaces := map[uint64]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ino, err := inode(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && netns[ino] != "" {
			holders = append(holders, fmt.Sprintf("process %d is in the network namespace of %s", pid, netns[ino]))
		}
		mnt, err := inode(fmt.Sprintf("/proc/%d/ns/mnt", pid))
		if err != nil || mountNamespaces[mnt] {
			continue
		}
		mountNamespaces[mnt] = true
		f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
		if err != nil {
			continue // gone since
		}
		lines := bufio.NewScanner(f)
		for lines.Scan() {
			for ino, what := range netns {
				if strings.Contains(lines.Text(), fmt.Sprintf(" net:[%d] ", ino)) {
					holders = append(holders, fmt.Sprintf("process %d's mount namespace mounts the network namespace of %s: %s", pid, what, lines.Text()))
				}
			}
		}
		f.Close()
	}
	return holders
}

func TestParseCgroupMounts(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		want      []string
	}{
		{
			name: "v1 and v2 hierarchies, other mounts left out",
			mountinfo: "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
				"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
				"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n" +
				"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n" +
				"50 1 0:4 net:[4026532177] /run/netns/x rw - nsfs nsfs rw\n",
			want: []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"},
		},
		{
			name:      "optional fields before the separator",
			mountinfo: "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 master:2 - cgroup2 cgroup2 rw,nsdelegate\n",
			want:      []string{"/sys/fs/cgroup"},
		},
		{
			name:      "escaped mount point",
			mountinfo: `60 1 0:40 / /mnt/my\040cgroups\134x rw - cgroup2 none rw` + "\n",
			want:      []string{`/mnt/my cgroups\x`},
		},
		{
			name:      "a bad escape stays as it is",
			mountinfo: `60 1 0:40 / /mnt/a\09 rw - cgroup2 none rw` + "\n",
			want:      []string{`/mnt/a\09`},
		},
		{
			name: "malformed lines",
			mountinfo: "\n" +
				"garbage\n" +
				"1 2 3 4 - cgroup2 x rw\n" + // too few fields before the separator
				"1 2 0:1 / /x rw -\n" + // no file system type
				"1 2 0:1 / relative rw - cgroup2 x rw\n",
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCgroupMounts(tt.mountinfo); !slices.Equal(got, tt.want) {
				t.Errorf("parseCgroupMounts = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParseCgroupMounts(f *testing.F) {
	f.Add("32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n")
	f.Add(`60 1 0:40 / /mnt/my\040cgroups rw shared:1 - cgroup2 none rw`)
	f.Add("1 2 3 4 - cgroup2")
	f.Fuzz(func(t *testing.T, mountinfo string) {
		for _, mp := range parseCgroupMounts(mountinfo) {
			if !filepath.IsAbs(mp) || filepath.Clean(mp) != mp {
				t.Fatalf("parseCgroupMounts(%q) returned %q: not a clean absolute path", mountinfo, mp)
			}
		}
	})
}
