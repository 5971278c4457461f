package isolate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/api"
)

var cgroupParentSeq atomic.Int64

// newTestRunc returns a runc containerizer keeping its records in stateDir, whose
// containers' cgroups go to a parent of the test's own below the test process's cgroups.
// When the test ends, after its containers are destroyed, it removes that parent and
// checks that nothing is left there.
func newTestRunc(t testing.TB, stateDir string, opts ...func(*RuncConfig)) *Runc {
	t.Helper()
	requireRoot(t, "to create containers")
	cfg := DefaultRuncConfig()
	cfg.Logger = testLogger(t)
	cfg.StateDir = stateDir
	cfg.CgroupParent = fmt.Sprintf("atoll-test-%d-%d", os.Getpid(), cgroupParentSeq.Add(1))
	for _, opt := range opts {
		opt(&cfg)
	}
	r, err := NewRunc(cfg)
	if err != nil {
		t.Fatalf("NewRunc: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Release(context.Background(), true); err != nil {
			t.Errorf("cleanup: Release: %v", err)
		}
		removeCgroupParent(t, cfg.CgroupParent)
	})
	return r
}

// removeCgroupParent removes a test's cgroup parent in every hierarchy, failing the test
// if a container's cgroup is left in it.
func removeCgroupParent(t testing.TB, parent string) {
	t.Helper()
	for _, path := range checkCgroupParentEmpty(t, parent) {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup %s: %v", path, err)
		}
	}
}

// checkCgroupParentEmpty fails the test if a container's cgroup is left in the cgroup
// parent, and returns the parent's path in every hierarchy.
func checkCgroupParentEmpty(t testing.TB, parent string) []string {
	t.Helper()
	m, err := cgroupManager(&cgroups.Cgroup{Path: parent}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, path := range m.GetPaths() {
		entries, _ := os.ReadDir(path)
		for _, e := range entries {
			if e.IsDir() {
				t.Errorf("cgroup %s left behind", filepath.Join(path, e.Name()))
			}
		}
		paths = append(paths, path)
	}
	return paths
}

// runcLaunch starts spec and makes sure the container is killed and destroyed when the
// test ends, leaving no mount or cgroup behind.
func runcLaunch(t testing.TB, r *Runc, spec LaunchSpec) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := r.Launch(ctx, spec)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	destroyOnCleanup(t, r, spec, runcCgroupPaths(t, r, spec.ContainerID))
	return st
}

// runcCgroupPaths returns a running container's cgroups, one for each hierarchy, as
// libcontainer recorded them.
func runcCgroupPaths(t testing.TB, r *Runc, id string) map[string]string {
	t.Helper()
	lc, err := libcontainer.Load(r.libcontainerRoot(), id)
	if err != nil {
		t.Fatalf("load container %s: %v", id, err)
	}
	st, err := lc.State()
	if err != nil {
		t.Fatalf("container %s state: %v", id, err)
	}
	if len(st.CgroupPaths) == 0 {
		t.Fatalf("container %s has no cgroups", id)
	}
	return st.CgroupPaths
}

// checkDestroyed fails the test if anything of a destroyed container is left: a mount of
// its root or sandbox, a cgroup, its records or libcontainer's state.
func checkDestroyed(t testing.TB, r *Runc, spec LaunchSpec, cgroupPaths map[string]string) {
	t.Helper()
	mountinfo := readFile(t, "/proc/self/mountinfo")
	for _, line := range strings.Split(mountinfo, "\n") {
		if strings.Contains(line, r.containerDir(spec.ContainerID)) || strings.Contains(line, spec.Sandbox) {
			t.Errorf("mount left behind: %s", line)
		}
	}
	for subsystem, path := range cgroupPaths {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s cgroup %s left behind (stat: %v)", subsystem, path, err)
		}
	}
	for _, path := range []string{r.containerDir(spec.ContainerID), filepath.Join(r.libcontainerRoot(), spec.ContainerID)} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (stat: %v)", path, err)
		}
	}
}

// destroyOnCleanup kills and destroys the container through r when the test ends, unless
// r was released (another Runc took the container over), and checks that nothing of it
// is left.
func destroyOnCleanup(t testing.TB, r *Runc, spec LaunchSpec, cgroupPaths map[string]string) {
	t.Helper()
	t.Cleanup(func() {
		if _, known := r.containers.find(spec.ContainerID); !known || r.containers.isClosed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := r.Kill(ctx, spec.ContainerID, 0); err != nil {
			t.Errorf("cleanup: kill %s: %v", spec.ContainerID, err)
		}
		if _, err := r.Wait(ctx, spec.ContainerID); err != nil {
			t.Errorf("cleanup: wait %s: %v", spec.ContainerID, err)
			return
		}
		if err := r.Destroy(ctx, spec.ContainerID); err != nil {
			t.Errorf("cleanup: destroy %s: %v", spec.ContainerID, err)
		}
		checkDestroyed(t, r, spec, cgroupPaths)
	})
}

// runcDestroy destroys an exited container and checks that nothing of it is left.
func runcDestroy(t testing.TB, r *Runc, spec LaunchSpec, cgroupPaths map[string]string) {
	t.Helper()
	if err := r.Destroy(context.Background(), spec.ContainerID); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	checkDestroyed(t, r, spec, cgroupPaths)
	if _, err := r.Wait(context.Background(), spec.ContainerID); !errors.Is(err, ErrUnknownContainer) {
		t.Errorf("Wait after Destroy = %v, want ErrUnknownContainer", err)
	}
}

// cgroupValue reads a cgroup file of a running container: v1File in the v1 hierarchy of
// subsystem, or v2File in its cgroup v2.
func cgroupValue(t testing.TB, paths map[string]string, subsystem, v1File, v2File string) string {
	t.Helper()
	path := filepath.Join(paths[subsystem], v1File)
	if cgroups.IsCgroup2UnifiedMode() {
		path = filepath.Join(paths[""], v2File)
	}
	return strings.TrimSpace(readFile(t, path))
}

// cgroupStat returns the value of key in a cgroup's flat-keyed file (cpu.stat).
func cgroupStat(t testing.TB, content, key string) uint64 {
	t.Helper()
	for _, line := range strings.Split(content, "\n") {
		if value, ok := strings.CutPrefix(line, key+" "); ok {
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %q", key, content)
	return 0
}

func TestRuncLaunch(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	maskedScript, maskedWant := maskedPathsCheck(t)
	topLevel := hostTopLevel(t)
	tests := []struct {
		name   string
		script string
		modify func(*LaunchSpec)
		want   ExitStatus
		stdout string
		stderr string
		// files are the sandbox's files the task wrote, and their content.
		files map[string]string
	}{
		{
			name:   "own pid namespace: the task is pid 1 and sees no host process",
			script: `echo pid=$$; for p in /proc/[0-9]*; do echo ${p#/proc/}; done`,
			stdout: "pid=1\n1\n",
		},
		{
			name:   "sandbox is the writable working directory",
			script: `pwd; echo $MESOS_SANDBOX; echo hi > f; cat /mnt/mesos/sandbox/f`,
			stdout: "/mnt/mesos/sandbox\n/mnt/mesos/sandbox\nhi\n",
			files:  map[string]string{"f": "hi\n"},
		},
		{
			name: "host filesystem is read-only, /tmp is private",
			script: `for path in /x /usr/x /etc/x /run/x /tmp/x; do
				if touch $path 2>/dev/null; then echo $path writable; else echo $path read-only; fi
			done; test -e /bin/sh && echo host sh`,
			stdout: "/x read-only\n/usr/x read-only\n/etc/x read-only\n/run/x read-only\n/tmp/x writable\nhost sh\n",
		},
		{
			name:   "root holds the host's top-level directories and symlinks and the mount points",
			script: `ls -A / | LC_ALL=C sort`,
			stdout: topLevel,
		},
		{
			name:   "default capabilities and no new privileges",
			script: `grep -E '^(CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status`,
			stdout: "CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n",
		},
		{
			name:   "masked and read-only /proc paths",
			script: maskedScript + `if echo 1 2>/dev/null > /proc/sys/vm/drop_caches; then echo /proc/sys writable; else echo /proc/sys read-only; fi`,
			stdout: maskedWant + "/proc/sys read-only\n",
		},
		{
			name:   "hidden host paths show empty",
			script: `ls -A /etc/ssl | wc -l; ls -d /etc/ssl`,
			stdout: "0\n/etc/ssl\n",
		},
		{
			name:   "exit status",
			script: "echo out; echo err >&2; exit 3",
			want:   ExitStatus{Code: 3, Message: "exited with status 3"},
			stdout: "out\n",
			stderr: "err\n",
		},
		{
			name:   "shell command not found",
			script: "no-such-command-xyz",
			want:   ExitStatus{Code: 127, Message: "exited with status 127"},
			stderr: "/bin/sh: 1: no-such-command-xyz: not found\n",
		},
		{
			name:   "environment",
			script: `echo "$FROM_COMMAND $FROM_AGENT $MESOS_SANDBOX"`,
			modify: func(s *LaunchSpec) {
				s.Command.Environment = &api.Environment{Variables: []api.EnvironmentVariable{{Name: "FROM_COMMAND", Value: "c"}}}
				s.Env = []string{"FROM_AGENT=a", "MESOS_SANDBOX=" + s.Sandbox}
			},
			stdout: "c a /mnt/mesos/sandbox\n",
		},
		{
			name: "plain command with arguments",
			modify: func(s *LaunchSpec) {
				s.Command = api.CommandInfo{Shell: ptr(false), Value: ptr("echo"), Arguments: []string{"echo", "a b", "c"}}
			},
			stdout: "a b c\n",
		},
		{
			name:   "hostname",
			script: "hostname",
			modify: func(s *LaunchSpec) { s.Container = &api.ContainerInfo{Type: "MESOS", Hostname: "box"} },
			stdout: "box\n",
		},
		{
			name:   "user",
			script: "id -u; id -g; echo x > owned",
			modify: func(s *LaunchSpec) { s.Command.User = ptr("nobody") },
			stdout: nobody.Uid + "\n" + nobody.Gid + "\n",
			files:  map[string]string{"owned": "x\n"},
		},
	}
	if entries, err := os.ReadDir("/etc/ssl"); err != nil || len(entries) == 0 {
		t.Fatalf("the host's /etc/ssl, to be hidden, has %d entries (%v)", len(entries), err)
	}
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.HiddenPaths = []string{"/etc/ssl/"} })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := shellSpec(t, tc.script)
			spec.CPUs, spec.MemMB = 0.5, 64
			if tc.modify != nil {
				tc.modify(&spec)
			}
			runcLaunch(t, r, spec)
			want := tc.want
			if want.Message == "" {
				want = ExitStatus{Message: "exited with status 0"}
			}
			if got := waitExit(t, r, spec.ContainerID); got != want {
				t.Errorf("status = %+v, want %+v", got, want)
			}
			if got := readFile(t, filepath.Join(spec.Sandbox, "stdout")); got != tc.stdout {
				t.Errorf("stdout = %q, want %q", got, tc.stdout)
			}
			if got := readFile(t, filepath.Join(spec.Sandbox, "stderr")); got != tc.stderr {
				t.Errorf("stderr = %q, want %q", got, tc.stderr)
			}
			for name, content := range tc.files {
				if got := readFile(t, filepath.Join(spec.Sandbox, name)); got != content {
					t.Errorf("sandbox file %s = %q, want %q", name, got, content)
				}
			}
		})
	}
}

// hostTopLevel is what `ls -A /` prints, sorted, in a container on the host's
// filesystem: the host's top-level directories and symlinks, except hostViewSkipped, and
// the mount points of the container's own /dev, /mnt (for the sandbox), /proc, /sys and
// /tmp.
func hostTopLevel(t testing.TB) string {
	t.Helper()
	v, err := readHostView()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"dev", "mnt", "proc", "sys", "tmp"}
	names = append(names, v.dirs...)
	for _, l := range v.links {
		names = append(names, l.name)
	}
	slices.Sort(names)
	return strings.Join(names, "\n") + "\n"
}

// maskedPathsCheck returns a script that prints the size of each masked path this host
// has (the bytes of a file, the entries of a directory), and what it prints when each is
// masked.
func maskedPathsCheck(t testing.TB) (script, want string) {
	t.Helper()
	for _, path := range maskedPaths {
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			continue
		case fi.IsDir():
			script += "ls " + path + " | wc -l\n"
		default:
			script += "wc -c < " + path + "\n"
		}
		want += "0\n"
	}
	if len(want) < len("0\n0\n") {
		t.Fatalf("this host has fewer than two of the masked paths %v", maskedPaths)
	}
	return script, want
}

func TestRuncNamespaces(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	spec := shellSpec(t, "exec sleep 1000")
	st := runcLaunch(t, r, spec)
	// This thread's namespaces are the test's: the main thread's (/proc/self) may be in
	// another network namespace, having made one for a bridge endpoint and then been
	// parked for good, as Go does with a locked main thread whose goroutine ended.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, ns := range []string{"mnt", "pid", "ipc", "uts", "cgroup", "net"} {
		host, err := os.Readlink("/proc/thread-self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		task, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", st.PID, ns))
		if err != nil {
			t.Fatal(err)
		}
		if shared := task == host; shared != (ns == "net") {
			t.Errorf("%s namespace %s, host's %s: shared = %v, want %v", ns, task, host, shared, ns == "net")
		}
	}
}

func TestRuncCgroupLimits(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	spec := shellSpec(t, "exec sleep 1000")
	spec.CPUs, spec.MemMB = 0.25, 64
	runcLaunch(t, r, spec)
	paths := runcCgroupPaths(t, r, spec.ContainerID)
	tests := []struct {
		subsystem, v1File, v2File string
		v1, v2                    string
	}{
		{"cpu", "cpu.shares", "cpu.weight", "256", strconv.FormatUint(cgroups.ConvertCPUSharesToCgroupV2Value(256), 10)},
		{"cpu", "cpu.cfs_quota_us", "cpu.max", "25000", "25000 100000"},
		{"cpu", "cpu.cfs_period_us", "cpu.max", "100000", "25000 100000"},
		{"memory", "memory.limit_in_bytes", "memory.max", "67108864", "67108864"},
		{"pids", "pids.max", "pids.max", "4096", "4096"},
	}
	if _, err := os.Stat(filepath.Join(paths["memory"], "memory.memsw.limit_in_bytes")); err == nil || cgroups.IsCgroup2UnifiedMode() {
		tests = append(tests, struct {
			subsystem, v1File, v2File string
			v1, v2                    string
		}{"memory", "memory.memsw.limit_in_bytes", "memory.swap.max", "67108864", "0"})
	}
	for _, tc := range tests {
		want := tc.v1
		if cgroups.IsCgroup2UnifiedMode() {
			want = tc.v2
		}
		if got := cgroupValue(t, paths, tc.subsystem, tc.v1File, tc.v2File); got != want {
			t.Errorf("%s = %q, want %q", tc.v1File, got, want)
		}
	}
}

func TestRuncCPUQuotaThrottles(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	spec := shellSpec(t, "while :; do :; done")
	spec.CPUs = 0.1
	runcLaunch(t, r, spec)
	paths := runcCgroupPaths(t, r, spec.ContainerID)
	// A busy loop allowed 10 ms of every 100 ms period is throttled in each period it runs.
	const wantThrottled = 3
	deadline := time.Now().Add(testTimeout)
	for {
		stat := cgroupValue(t, paths, "cpu", "cpu.stat", "cpu.stat")
		throttled := cgroupStat(t, stat, "nr_throttled")
		if throttled >= wantThrottled {
			if periods := cgroupStat(t, stat, "nr_periods"); periods < throttled {
				t.Errorf("nr_periods %d < nr_throttled %d", periods, throttled)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busy loop throttled in %d periods, want at least %d:\n%s", throttled, wantThrottled, stat)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRuncOOMKilled(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	// tail keeps the line it reads in memory, and /dev/zero has no line break.
	spec := shellSpec(t, "exec tail /dev/zero")
	spec.MemMB = 48
	runcLaunch(t, r, spec)
	want := ExitStatus{Code: -1, Signal: 9, OOMKilled: true, Message: "killed by SIGKILL after running out of memory (limit 48 MiB)"}
	if got := waitExit(t, r, spec.ContainerID); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
}

func TestRuncKill(t *testing.T) {
	killed := ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
	tests := []struct {
		name   string
		script string
		graces []time.Duration
		want   ExitStatus
		// signals is what the task's TERM handler wrote.
		signals string
	}{
		{
			name:   "TERM handler exits",
			script: `trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done`,
			graces: []time.Duration{testTimeout},
			want:   ExitStatus{Code: 3, Message: "exited with status 3"},
		},
		{
			name:    "SIGKILL after grace when TERM is trapped",
			script:  `trap 'echo TERM >> signals' TERM; echo ready; while :; do sleep 0.05; done`,
			graces:  []time.Duration{time.Second},
			want:    killed,
			signals: "TERM\n",
		},
		{
			name:   "init without a TERM handler ends at the SIGKILL",
			script: `echo ready; exec sleep 1000`,
			graces: []time.Duration{200 * time.Millisecond},
			want:   killed,
		},
		{
			name:   "no grace: SIGKILL at once, no TERM",
			script: `trap 'echo TERM >> signals' TERM; echo ready; while :; do sleep 0.05; done`,
			graces: []time.Duration{0},
			want:   killed,
		},
		{
			name:    "a shorter grace brings SIGKILL forward",
			script:  `trap 'echo TERM >> signals' TERM; echo ready; while :; do sleep 0.05; done`,
			graces:  []time.Duration{time.Hour, 0},
			want:    killed,
			signals: "TERM\n",
		},
	}
	r := newTestRunc(t, t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := shellSpec(t, tc.script)
			runcLaunch(t, r, spec)
			waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "ready\n")
			for i, grace := range tc.graces {
				if err := r.Kill(context.Background(), spec.ContainerID, grace); err != nil {
					t.Fatalf("Kill: %v", err)
				}
				if i < len(tc.graces)-1 {
					// The first TERM is handled before the next request.
					waitForOutput(t, filepath.Join(spec.Sandbox, "signals"), tc.signals)
				}
			}
			if got := waitExit(t, r, spec.ContainerID); got != tc.want {
				t.Errorf("status = %+v, want %+v", got, tc.want)
			}
			signals, _ := os.ReadFile(filepath.Join(spec.Sandbox, "signals"))
			if string(signals) != tc.signals {
				t.Errorf("signals handled = %q, want %q", signals, tc.signals)
			}
			if err := r.Kill(context.Background(), spec.ContainerID, 0); err != nil {
				t.Errorf("Kill after exit = %v, want nil", err)
			}
		})
	}
}

func TestRuncLaunchErrors(t *testing.T) {
	tests := append(commonLaunchErrors(),
		launchErrorCase{
			name: "plain command not found",
			modify: func(s *LaunchSpec) {
				s.Command = api.CommandInfo{Shell: ptr(false), Value: ptr("no-such-program-xyz")}
			},
			wantErr: `launch $ID: unable to start container process: error during container init: exec: "no-such-program-xyz": executable file not found in $PATH`,
		},
		launchErrorCase{
			name: "plain command path does not exist",
			modify: func(s *LaunchSpec) {
				s.Command = api.CommandInfo{Shell: ptr(false), Value: ptr("/nonexistent/prog")}
			},
			wantErr: `launch $ID: unable to start container process: error during container init: exec: "/nonexistent/prog": stat /nonexistent/prog: no such file or directory`,
		},
		launchErrorCase{
			name:    "container id is a path",
			modify:  func(s *LaunchSpec) { s.ContainerID = "../escape" },
			wantErr: `launch ../escape: container id "../escape": only ASCII letters, digits and "_+-." are allowed`,
		},
		launchErrorCase{
			name:    "negative cpus",
			modify:  func(s *LaunchSpec) { s.CPUs = -1 },
			wantErr: "launch $ID: cpus -1 is not a non-negative number",
		},
		launchErrorCase{
			name:    "mem not a number",
			modify:  func(s *LaunchSpec) { s.MemMB = math.NaN() },
			wantErr: "launch $ID: mem NaN is not a non-negative number",
		},
		launchErrorCase{
			name: "image without an image store",
			modify: func(s *LaunchSpec) {
				s.Container = &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{Type: "DOCKER"}}}
			},
			wantErr: "launch $ID: the container has an image and the runc containerizer has no image store",
		},
	)
	r := newTestRunc(t, t.TempDir())
	testLaunchErrors(t, r, tests, func(t testing.TB) { checkNothingLeft(t, r) })
}

// checkNothingLeft fails the test if r's state dir holds a container or r's cgroup parent
// a cgroup, or if a mount of r's state dir is visible.
func checkNothingLeft(t testing.TB, r *Runc) {
	t.Helper()
	for _, dir := range []string{r.containersDir(), r.libcontainerRoot()} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("%s left behind", filepath.Join(dir, e.Name()))
		}
	}
	checkCgroupParentEmpty(t, r.cgroupParent)
	for _, line := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
		if strings.Contains(line, r.stateDir) {
			t.Errorf("mount left behind: %s", line)
		}
	}
}

func TestRuncSharesHostRoot(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	specs := []LaunchSpec{shellSpec(t, "exec sleep 1000"), shellSpec(t, "exec sleep 1000")}
	cgroupPaths := make([]map[string]string, len(specs))
	for i, spec := range specs {
		runcLaunch(t, r, spec)
		cgroupPaths[i] = runcCgroupPaths(t, r, spec.ContainerID)
	}
	roots := dirNames(t, r.hostRootsDir())
	if len(roots) != 1 {
		t.Fatalf("host roots %q, want one", roots)
	}
	root := filepath.Join(r.hostRootsDir(), roots[0])
	for _, spec := range specs {
		recorded, err := readRecord(r.containerDir(spec.ContainerID), runcSpecFile, parseRuncShimSpec)
		if err != nil {
			t.Fatal(err)
		}
		if recorded.Config.Rootfs != root {
			t.Errorf("container %s has root %s, want the shared %s", spec.ContainerID, recorded.Config.Rootfs, root)
		}
	}
	inRoot := dirNames(t, root)
	for i, spec := range specs {
		if err := r.Kill(context.Background(), spec.ContainerID, 0); err != nil {
			t.Fatal(err)
		}
		waitExit(t, r, spec.ContainerID)
		runcDestroy(t, r, spec, cgroupPaths[i])
	}
	checkNothingLeft(t, r)
	if got := dirNames(t, root); !slices.Equal(got, inRoot) {
		t.Errorf("after Destroy the shared root holds %q, want %q as before", got, inRoot)
	}
}

func TestRuncSpareShim(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	first := shellSpec(t, "exec sleep 1000")
	firstState := runcLaunch(t, r, first)
	wantArgs := runcShimName + "\x00" + r.containerDir(first.ContainerID) + "\x00"
	if got := readFile(t, fmt.Sprintf("/proc/%d/cmdline", firstState.ShimPID)); got != wantArgs {
		t.Errorf("first shim's arguments %q, want %q", got, wantArgs)
	}

	// The next launch gets the shim started meanwhile.
	spare := waitForSpare(t, r)
	if got, want := readFile(t, fmt.Sprintf("/proc/%d/cmdline", spare)), runcShimName+"\x00"; got != want {
		t.Errorf("spare's arguments %q, want %q", got, want)
	}
	second := shellSpec(t, "echo second")
	if st := runcLaunch(t, r, second); st.ShimPID != spare {
		t.Errorf("second launch's shim %d, want the spare %d", st.ShimPID, spare)
	}
	if got := waitExit(t, r, second.ContainerID); got != (ExitStatus{Message: "exited with status 0"}) {
		t.Errorf("second container: %+v", got)
	}
	if got := readFile(t, filepath.Join(second.Sandbox, "stdout")); got != "second\n" {
		t.Errorf("second container's stdout %q", got)
	}
	if log := readFile(t, filepath.Join(r.containerDir(second.ContainerID), runcShimLog)); !strings.Contains(log, "container running") {
		t.Errorf("the spare did not log to its container's shim log: %q", log)
	}

	// A dead spare is reaped and replaced by a new shim.
	dead := waitForSpare(t, r)
	if err := unix.Kill(dead, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.spareMu.Lock()
	deadPidfd := r.spare.pidfd
	r.spareMu.Unlock()
	// Readable once every thread has exited and the spare's end of its input is closed.
	if err := waitReadable(deadPidfd); err != nil {
		t.Fatal(err)
	}
	third := shellSpec(t, "exec sleep 1000")
	if st := runcLaunch(t, r, third); st.ShimPID == dead {
		t.Errorf("third launch got the dead spare %d", dead)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead spare %d was not reaped: %v", dead, err)
	}

	// Release stops the spare.
	last := waitForSpare(t, r)
	for _, spec := range []LaunchSpec{first, second, third} {
		paths := runcCgroupPaths(t, r, spec.ContainerID)
		if err := r.Kill(context.Background(), spec.ContainerID, 0); err != nil {
			t.Fatal(err)
		}
		waitExit(t, r, spec.ContainerID)
		runcDestroy(t, r, spec, paths)
	}
	if err := r.Release(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", last)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spare %d outlived Release: %q, %v", last, stat, err)
	}
}

// waitForSpare waits for r to have a spare shim and returns its pid.
func waitForSpare(t testing.TB, r *Runc) int {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		r.spareMu.Lock()
		spare := r.spare
		r.spareMu.Unlock()
		if spare != nil {
			return spare.cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare shim")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRuncLaunchDuplicate(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	spec := shellSpec(t, "exec sleep 1000")
	runcLaunch(t, r, spec)
	checkLaunchDuplicate(t, r, spec)
}

func TestRuncDestroy(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	spec := shellSpec(t, "exec sleep 1000")
	runcLaunch(t, r, spec)
	paths := runcCgroupPaths(t, r, spec.ContainerID)
	checkDestroyRunning(t, r, spec.ContainerID)
	if err := r.Kill(context.Background(), spec.ContainerID, 0); err != nil {
		t.Fatal(err)
	}
	waitExit(t, r, spec.ContainerID)
	runcDestroy(t, r, spec, paths)
	checkNothingLeft(t, r)
	checkUnknown(t, r, spec.ContainerID)
}

func TestRuncRecover(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	stateDir := t.TempDir()
	before := newTestRunc(t, stateDir)

	type launched struct {
		spec  LaunchSpec
		state State
		paths map[string]string
	}
	start := func(script string) launched {
		spec := shellSpec(t, script)
		st := runcLaunch(t, before, spec)
		waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "ready\n")
		return launched{spec, st, runcCgroupPaths(t, before, spec.ContainerID)}
	}
	var running []launched
	for range 5 {
		running = append(running, start("echo ready; exec sleep 1000"))
	}
	exits := start(`echo ready; while [ ! -e go ]; do sleep 0.05; done; exit 7`)
	shimDies := start("echo ready; exec sleep 1000")
	rebooted := start("echo ready; exec sleep 1000")
	all := append(slices.Clone(running), exits, shimDies, rebooted)

	if err := before.Release(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := before.Wait(context.Background(), running[0].spec.ContainerID); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait after Release = %v, want ErrClosed", err)
	}
	if err := before.Kill(context.Background(), running[0].spec.ContainerID, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Kill after Release = %v, want ErrClosed", err)
	}
	if _, err := before.Launch(context.Background(), shellSpec(t, "true")); !errors.Is(err, ErrClosed) {
		t.Errorf("Launch after Release = %v, want ErrClosed", err)
	}

	// While no agent runs: one container exits, one shim dies, and the host "reboots"
	// under another: its processes die and its records are of another boot.
	if err := os.WriteFile(filepath.Join(exits.spec.Sandbox, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, filepath.Join(before.containerDir(exits.spec.ContainerID), runcExitFile))
	for _, l := range []launched{shimDies, rebooted} {
		if err := unix.Kill(l.state.ShimPID, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitReaped(t, l.state.ShimPID)
	}
	if err := unix.Kill(rebooted.state.PID, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		t.Fatal(err)
	}
	waitReaped(t, rebooted.state.PID)
	dir := before.containerDir(rebooted.spec.ContainerID)
	rec, err := readRecord(dir, runcShimFile, parseRuncShimRecord)
	if err != nil {
		t.Fatal(err)
	}
	rec.BootID = "an-earlier-boot"
	if err := writeRecord(dir, runcShimFile, rec); err != nil {
		t.Fatal(err)
	}

	after := newTestRunc(t, stateDir, func(c *RuncConfig) { c.CgroupParent = before.cgroupParent })
	for _, l := range all {
		destroyOnCleanup(t, after, l.spec, l.paths)
	}
	states := make([]State, len(all))
	for i, l := range all {
		states[i] = l.state
	}
	if err := after.Recover(context.Background(), states); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if err := after.Recover(context.Background(), states); err != nil {
		t.Fatalf("second Recover: %v", err)
	}
	for _, l := range running {
		c, err := after.containers.lookup(l.spec.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.state, l.state) {
			t.Errorf("recovered state %+v, want %+v", c.state, l.state)
		}
		if started, err := readStartTime(l.state.PID); err != nil || started != l.state.StartTime {
			t.Errorf("container %s: pid %d started at %d (%v), want the same process, started at %d",
				l.spec.ContainerID, l.state.PID, started, err, l.state.StartTime)
		}
		if _, err := after.Wait(cancelled, l.spec.ContainerID); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait on a running recovered container = %v, want context.Canceled", err)
		}
	}
	for _, tc := range []struct {
		l    launched
		want ExitStatus
	}{
		{exits, ExitStatus{Code: 7, Message: "exited with status 7"}},
		{shimDies, ExitStatus{Code: -1, Message: "the container's shim died without recording the task's exit (gone when the agent recovered)"}},
		{rebooted, ExitStatus{Code: -1, Message: "the host rebooted since the container started; it is gone"}},
	} {
		if got, err := after.Wait(cancelled, tc.l.spec.ContainerID); err != nil || got != tc.want {
			t.Errorf("container %s: Wait = %+v, %v; want %+v", tc.l.spec.ContainerID, got, err, tc.want)
		}
		runcDestroy(t, after, tc.l.spec, tc.l.paths)
	}
	waitReaped(t, shimDies.state.PID)

	for _, l := range running {
		if err := after.Kill(context.Background(), l.spec.ContainerID, 0); err != nil {
			t.Fatalf("Kill: %v", err)
		}
	}
	for _, l := range running {
		want := ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
		if got := waitExit(t, after, l.spec.ContainerID); got != want {
			t.Errorf("container %s: status %+v, want %+v", l.spec.ContainerID, got, want)
		}
		runcDestroy(t, after, l.spec, l.paths)
	}
	checkNothingLeft(t, after)

	for _, tc := range []struct {
		state   State
		wantErr string
	}{
		{State{ContainerID: "gone", Kind: RuncKind, PID: 1, StartTime: 1},
			"recover gone: no record of the container in " + after.containerDir("gone")},
		{State{ContainerID: "p", Kind: ProcessKind}, `recover p: kind "process" is not "runc"`},
	} {
		if err := after.Recover(context.Background(), []State{tc.state}); err == nil || err.Error() != tc.wantErr {
			t.Errorf("Recover(%+v) = %v, want %q", tc.state, err, tc.wantErr)
		}
	}
}

func TestRuncKillWhileAgentIsDown(t *testing.T) {
	stateDir := t.TempDir()
	before := newTestRunc(t, stateDir)
	spec := shellSpec(t, `trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	st := runcLaunch(t, before, spec)
	paths := runcCgroupPaths(t, before, spec.ContainerID)
	waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "ready\n")
	if err := before.Kill(context.Background(), spec.ContainerID, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := before.Release(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	waitReaped(t, st.PID)

	after := newTestRunc(t, stateDir, func(c *RuncConfig) { c.CgroupParent = before.cgroupParent })
	destroyOnCleanup(t, after, spec, paths)
	if err := after.Recover(context.Background(), []State{st}); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	want := ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
	if got := waitExit(t, after, spec.ContainerID); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
	runcDestroy(t, after, spec, paths)
}

// Containers outlive the agent process that launched them, even when it is killed along
// with its whole process group; the next agent process recovers them.
func TestRuncOutlivesAgent(t *testing.T) {
	stateDir := t.TempDir()
	sandbox := t.TempDir()
	after := newTestRunc(t, stateDir)
	agent, st := startTestAgent(t, RuncKind, stateDir, sandbox, after.cgroupParent)
	spec := LaunchSpec{ContainerID: st.ContainerID, Sandbox: sandbox}
	destroyOnCleanup(t, after, spec, runcCgroupPaths(t, after, st.ContainerID))

	if err := syscall.Kill(-agent.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(); err == nil || err.Error() != "signal: killed" {
		t.Fatalf("agent ended with %v, want signal: killed", err)
	}
	waitForOutput(t, filepath.Join(sandbox, "stdout"), "ready\n")
	if !running(st.ShimPID) || !running(st.PID) {
		t.Fatalf("shim %d running %v, container %d running %v, want both running",
			st.ShimPID, running(st.ShimPID), st.PID, running(st.PID))
	}

	if err := after.Recover(context.Background(), []State{st}); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if err := after.Kill(context.Background(), st.ContainerID, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := waitExit(t, after, st.ContainerID), (ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
	waitReaped(t, st.PID)
}
