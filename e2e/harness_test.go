package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

func TestNameOwner(t *testing.T) {
	tests := []struct {
		name    string
		wantPID int
		wantOK  bool
	}{
		{ownerTag(1234) + "00", 1234, true},
		{ownerTag(1234) + "0z-m1", 1234, true},
		{ownerTag(1234) + "07v3", 1234, true},
		{ownerTag(1234) + "00br", 1234, true},
		{ownerTag(4194304) + binDirTail, 4194304, true},
		{"ae2e000ya00", 1234, true},
		{ownerTag(1234), 0, false},        // no cluster number
		{ownerTag(1234) + "0", 0, false},  // cluster number cut short
		{ownerTag(1234) + "-b", 0, false}, // neither a cluster number nor binDirTail
		{ownerTag(1234) + "A0", 0, false}, // upper case is not ours
		{"ae2e000000000", 0, false},       // pid 0
		{"ae2ezzzzz00", 0, false},         // beyond any pid_max
		{"atoll-m1", 0, false},            // netns-cluster.sh's default names
		{"aerospace", 0, false},           // a stranger's name
		{"eth0", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		pid, ok := nameOwner(tt.name)
		if pid != tt.wantPID || ok != tt.wantOK {
			t.Errorf("nameOwner(%q) = %d, %t; want %d, %t", tt.name, pid, ok, tt.wantPID, tt.wantOK)
		}
	}
}

func FuzzNameOwner(f *testing.F) {
	f.Add(ownerTag(1234) + "00-m1")
	f.Add(ownerTag(99) + binDirTail)
	f.Add("ae2e")
	f.Fuzz(func(t *testing.T, name string) {
		pid, ok := nameOwner(name)
		if !ok {
			return
		}
		if pid <= 0 || pid > 1<<22 || !strings.HasPrefix(name, ownerTag(pid)) {
			t.Fatalf("nameOwner(%q) = %d: not the owner tag it starts with", name, pid)
		}
	})
}

// startSoloMaster runs a one-master cluster of its own on h and waits until its API
// answers the test process.
func startSoloMaster(t *testing.T, c *Cluster, h *Host) *Proc {
	t.Helper()
	p := h.Start("master", "--secure=false", "--name", h.Name(), "--bind", h.IP(), "--data-dir", h.DataDir())
	ctx, cancel := context.WithTimeout(context.Background(), DefaultWaitTimeout)
	defer cancel()
	for {
		reqCtx, reqCancel := context.WithTimeout(ctx, stateTimeout)
		_, err := c.Client(h).GetHealth(reqCtx)
		reqCancel()
		if err == nil {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("master on %s not answering within %v: %v", h.Name(), DefaultWaitTimeout, err)
		case <-time.After(pollInterval):
		}
	}
}

// harnessNames lists the namespaces and root-namespace links named with prefix, as
// `ip netns list` and `ip -o link show` show them, sorted.
func harnessNames(t *testing.T, prefix string) []string {
	t.Helper()
	var found []string
	for _, cmd := range []struct {
		args  []string
		field int // of each line, the name
	}{
		{[]string{"netns", "list"}, 0},      // "NAME (id: N)"
		{[]string{"-o", "link", "show"}, 1}, // "N: NAME[@PEER]: <FLAGS> …"
	} {
		out, err := exec.Command("ip", cmd.args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(cmd.args, " "), err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			fields := strings.Fields(line)
			if len(fields) <= cmd.field {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(fields[cmd.field], ":"), "@")
			if strings.HasPrefix(name, prefix) {
				found = append(found, name)
			}
		}
	}
	slices.Sort(found)
	return found
}

// TestHarnessCleanup: two hosts talk over the bridge (the CLI on one reaches a master on
// the other), and Close kills every process in the namespaces, the harness's and any
// other, deletes the namespaces, veths and bridge and removes the temp dir, idempotently.
func TestHarnessCleanup(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	h1, h2 := c.AddHost("h1"), c.AddHost("h2")
	master := startSoloMaster(t, c, h1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := h2.Run(ctx, "--addr", h1.APIURL(), "members", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var members []api.Member
	if err := json.Unmarshal([]byte(out), &members); err != nil {
		t.Fatalf("members -o json: %v\n%s", err, out)
	}
	if len(members) != 1 || members[0].Name != "h1" || members[0].Addr != h1.IP() || members[0].Status != "alive" {
		t.Fatalf("h2 sees members %+v, want h1 alive at %s", members, h1.IP())
	}
	want := []string{c.ID() + "-h1", c.ID() + "-h2", c.ID() + "br", c.ID() + "v0", c.ID() + "v1"}
	if got := harnessNames(t, c.ID()); !slices.Equal(got, want) {
		t.Fatalf("before Close: %q, want %q (2 namespaces, the bridge, 2 veths)", got, want)
	}

	sleeper := h2.Command(context.Background(), "sleep", "600")
	sleeperDone := startInNamespace(t, sleeper, c.ID()+"-h2")

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if master.Running() {
		t.Error("the master still runs after Close")
	}
	select {
	case err := <-sleeperDone:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("a process started in the namespace ended with %v, want SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a process started in the namespace outlived Close")
	}
	if got := harnessNames(t, c.ID()); len(got) != 0 {
		t.Errorf("after Close: %q remain", got)
	}
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp dir %s after Close: %v, want it gone", c.Dir(), err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestSweepStale: the startup sweep removes what a dead harness process left (a namespace
// with a process in it, a link, a temp dir) and keeps what a live one owns.
func TestSweepStale(t *testing.T) {
	requirePrivileges(t, false)
	if err := sweepStale(); err != nil {
		t.Fatal(err)
	}
	// No process has a pid of pid_max or more, so that owner is surely dead.
	raw, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	deadPID, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	dead := ownerTag(deadPID) + "00"
	live := ownerTag(os.Getppid()) + "00"
	t.Cleanup(func() {
		if err := removeOwned(func(name string) bool { return strings.HasPrefix(name, dead) || strings.HasPrefix(name, live) }); err != nil {
			t.Error(err)
		}
	})
	for _, id := range []string{dead, live} {
		for _, args := range [][]string{{"netns", "add", id + "-x"}, {"link", "add", id + "br", "type", "bridge"}} {
			if err := run("ip", args...); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(filepath.Join(os.TempDir(), id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sleeperDone := startInNamespace(t, exec.Command("ip", "netns", "exec", dead+"-x", "sleep", "600"), dead+"-x")

	if err := removeOwned(func(name string) bool { return stale(name, 0) }); err != nil {
		t.Fatal(err)
	}
	if got := harnessNames(t, dead); len(got) != 0 {
		t.Errorf("stale %q remain", got)
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp dir: %v, want it gone", err)
	}
	select {
	case <-sleeperDone:
	case <-time.After(10 * time.Second):
		t.Error("a process in a stale namespace survived the sweep")
	}
	if got := harnessNames(t, live); !slices.Equal(got, []string{live + "-x", live + "br"}) {
		t.Errorf("a live owner's names = %q, want its namespace and bridge kept", got)
	}
	if _, err := os.Stat(filepath.Join(os.TempDir(), live)); err != nil {
		t.Errorf("a live owner's temp dir: %v", err)
	}
}

// TestPartitionHarness: Partition cuts TCP between two hosts both ways and nothing else,
// Heal restores it whichever side cut, and LinkDown cuts a host off from everyone until
// LinkUp. Reachability is the CLI, run on one host, asking a master on another.
func TestPartitionHarness(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, WithPartitions())
	a, b, x := c.AddHost("a"), c.AddHost("b"), c.AddHost("x")
	startSoloMaster(t, c, a)
	startSoloMaster(t, c, b)

	type path struct {
		from, to *Host // from nil: the test process in the root namespace
		want     bool
	}
	check := func(step string, paths ...path) {
		t.Helper()
		var wg sync.WaitGroup
		got := make([]bool, len(paths))
		for i, p := range paths {
			wg.Go(func() { got[i] = reachable(c, p.from, p.to, p.want) })
		}
		wg.Wait()
		for i, p := range paths {
			if got[i] != p.want {
				from := "root namespace"
				if p.from != nil {
					from = p.from.Name()
				}
				t.Errorf("%s: %s reaches %s: %t, want %t", step, from, p.to.Name(), got[i], p.want)
			}
		}
	}
	mustDo := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	check("connected", path{a, b, true}, path{b, a, true}, path{x, a, true})

	mustDo(a.Partition(b))
	if got := a.Partitioned(); !slices.Equal(got, []*Host{b}) {
		t.Errorf("a.Partitioned() = %v, want [b]", got)
	}
	check("a partitioned from b", path{a, b, false}, path{b, a, false}, path{x, a, true}, path{x, b, true}, path{nil, a, true}, path{nil, b, true})

	mustDo(a.Heal())
	check("a healed", path{a, b, true}, path{b, a, true})

	mustDo(b.Partition(a))
	check("b partitioned from a", path{a, b, false})
	mustDo(a.Heal())
	if got := b.Partitioned(); len(got) != 0 {
		t.Errorf("b.Partitioned() after a.Heal() = %v, want none", got)
	}
	check("a healed b's cut", path{a, b, true})

	if err := a.Partition(a); err == nil {
		t.Error("a.Partition(a) succeeded, want an error")
	}

	mustDo(a.LinkDown())
	check("a's link down", path{x, a, false}, path{nil, a, false}, path{x, b, true})
	mustDo(a.LinkUp())
	check("a's link up", path{x, a, true}, path{nil, a, true})
}

// reachable reports whether the master on to answers a request from from (nil: the test
// process). Expecting success it retries for a while, since a healed link may need an
// ARP round first; expecting failure it gives one attempt a few seconds, since dropped
// packets make a request hang rather than fail.
func reachable(c *Cluster, from, to *Host, expect bool) bool {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var err error
		if from == nil {
			_, err = c.Client(to).GetHealth(ctx)
		} else {
			_, err = from.Run(ctx, "--addr", to.APIURL(), "members")
		}
		cancel()
		if err == nil || !expect || time.Now().After(deadline) {
			return err == nil
		}
		time.Sleep(pollInterval)
	}
}

// startInNamespace starts an `ip netns exec ns …` command and returns once the process has
// entered ns (until it has, a sweep listing the namespace's processes cannot see it), with
// a channel that receives its Wait result. Cleanup kills it if the test did not.
func startInNamespace(t *testing.T, cmd *exec.Cmd, ns string) <-chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	pid := strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := output("ip", "netns", "pids", ns)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(strings.Fields(out), pid) {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: pid %s not in namespace %s after 10s (its pids: %q)", cmd, pid, ns, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
