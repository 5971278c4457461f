// Package e2e is Atoll's multi-host test bed: each host is a Linux network namespace with a
// veth on a bridge in the root namespace, every address in 198.18.0.0/24, and runs the real
// atoll binary. Tests start masters and agents on hosts, kill, stop and restart them, cut
// the network between hosts (nftables) or pull a host's cable, and watch the cluster
// through the API from the test process, which reaches every host over the bridge.
//
// Nothing leaves the machine: the namespaces have no route but their /27 on the bridge, and
// the harness enables no forwarding or NAT (agents with runc containers do, in their own
// namespaces, between their tasks' bridge and the /27). Each cluster takes its own /27 of
// 198.18.0.0/24 (bridge B+1, hosts B+11 … B+30), locked against other test binaries, and
// names everything it creates after its id (ae2e + owner pid + cluster number), so
// parallel runs never collide and a later run removes what a crashed one left behind.
//
// The harness needs root, iproute2's ip, for partitions nft and for runc agents mounted
// cgroups; NewCluster skips the test when they are missing, and fails it under CI=true.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// Ports the daemons listen on. Every host has its own namespace, so all of them use the
// defaults.
const (
	APIPort   = 5050
	AgentPort = 5051
)

// DefaultWaitTimeout bounds the harness's waits (leader, agents) unless WithWaitTimeout
// says otherwise: generous, because a loaded 2-core CI machine runs the whole cluster.
const DefaultWaitTimeout = 60 * time.Second

// logTailLines is how much of each process log a failed test prints.
const logTailLines = 100

// Option configures a Cluster.
type Option func(*options)

type options struct {
	bin         string
	masterArgs  []string
	agentArgs   []string
	waitTimeout time.Duration
	partitions  bool
	runc        bool
}

// WithBinary runs bin instead of $ATOLL_BIN or a freshly built binary.
func WithBinary(bin string) Option { return func(o *options) { o.bin = bin } }

// WithMasterArgs appends flags to every master StartMasters starts ("--agent-timeout", "3s").
func WithMasterArgs(args ...string) Option {
	return func(o *options) { o.masterArgs = append(o.masterArgs, args...) }
}

// WithAgentArgs appends flags to every agent StartAgents starts.
func WithAgentArgs(args ...string) Option {
	return func(o *options) { o.agentArgs = append(o.agentArgs, args...) }
}

// WithWaitTimeout bounds WaitForLeader and WaitForAgents.
func WithWaitTimeout(d time.Duration) Option { return func(o *options) { o.waitTimeout = d } }

// WithPartitions declares that the test partitions hosts, so NewCluster checks for nft up
// front (skipping or, under CI=true, failing the test without it).
func WithPartitions() Option { return func(o *options) { o.partitions = true } }

// Cluster is one test's set of hosts on its own bridge. Its methods are safe for concurrent
// use. AddHost, Host.Start, StartMasters, StartAgents, WaitForLeader and WaitForAgents
// report failures with t.Fatal, so they belong on the test's goroutine; the fault and
// process methods (Partition, Heal, LinkDown, LinkUp, Proc's) return errors and may run
// on any goroutine, a chaos loop's say.
type Cluster struct {
	t    testing.TB
	id   string
	bin  string
	dir  string
	slot int
	opts options
	// lock holds the slot's flock until Close.
	lock *os.File

	mu      sync.Mutex
	bridge  string // set once the bridge exists
	hosts   []*Host
	masters []*Host
	agents  []*Host
	// cuts holds the partitioned host pairs, smaller index first.
	cuts   map[[2]int]bool
	closed bool
}

// NewCluster prepares an empty cluster for the test: it removes leftovers of dead harness
// runs, locks an address slot, makes the cluster's temp dir and finds (or builds) the atoll
// binary. The bridge comes with the first host. Close, registered with t.Cleanup, removes
// everything; when the test failed it first logs the tail of every process log.
func NewCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	o := options{waitTimeout: DefaultWaitTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	requirePrivileges(t, o.partitions)
	if o.runc {
		requireCgroups(t)
	}
	if err := sweepStale(); err != nil {
		t.Logf("e2e: removing leftovers of earlier runs: %v", err)
	}
	id, err := newClusterID()
	if err != nil {
		t.Fatal(err)
	}
	bin := o.bin
	if bin == "" {
		if bin, err = binary(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	slot, lock, err := acquireSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, id: id, bin: bin, slot: slot, lock: lock, opts: o, cuts: map[[2]int]bool{}}
	c.dir = filepath.Join(os.TempDir(), id)
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails()
		}
		if err := c.Close(); err != nil {
			t.Errorf("e2e: cluster %s cleanup: %v", c.id, err)
		}
	})
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// requirePrivileges skips the test, or fails it under CI=true, when the harness cannot run.
func requirePrivileges(t testing.TB, partitions bool) {
	t.Helper()
	var missing string
	switch {
	case os.Geteuid() != 0:
		missing = "root (network namespaces, veths and bridges are privileged)"
	case !onPath("ip"):
		missing = "iproute2's ip command (apt-get install iproute2)"
	case partitions && !onPath("nft"):
		missing = "the nft command to partition hosts (apt-get install nftables)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("e2e: privileged test cannot run under CI=true: needs %s", missing)
	}
	t.Skipf("e2e: privileged test skipped: needs %s", missing)
}

func onPath(cmd string) bool {
	_, err := exec.LookPath(cmd)
	return err == nil
}

// ID is the cluster's id, the prefix of every name it creates.
func (c *Cluster) ID() string { return c.id }

// Bin is the atoll binary the hosts run.
func (c *Cluster) Bin() string { return c.bin }

// Dir is the cluster's temp dir: the hosts' data dirs and the process logs.
func (c *Cluster) Dir() string { return c.dir }

// Bridge is the bridge's name (empty until the first host).
func (c *Cluster) Bridge() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bridge
}

// BridgeIP is the root namespace's address on the bridge, where hosts see the test process.
func (c *Cluster) BridgeIP() string { return slotAddr(c.slot, bridgeOffset).String() }

// Hosts returns the cluster's hosts in the order they were added.
func (c *Cluster) Hosts() []*Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Host(nil), c.hosts...)
}

// Masters returns the hosts StartMasters started masters on.
func (c *Cluster) Masters() []*Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Host(nil), c.masters...)
}

// Agents returns the hosts StartAgents started agents on.
func (c *Cluster) Agents() []*Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Host(nil), c.agents...)
}

var hostName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)

// AddHost creates a host: a network namespace named after the cluster and name, with lo up
// and eth0, a veth whose other end is on the cluster's bridge, at the next free address.
// name is a short DNS label, unique in the cluster ("m1", "client").
func (c *Cluster) AddHost(name string) *Host {
	c.t.Helper()
	h, err := c.addHost(name)
	if err != nil {
		c.t.Fatalf("e2e: add host %s: %v", name, err)
	}
	return h
}

func (c *Cluster) addHost(name string) (*Host, error) {
	if !hostName.MatchString(name) {
		return nil, fmt.Errorf("name %q: want a lower-case letter, then up to 19 letters, digits or '-'", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("cluster closed")
	}
	for _, h := range c.hosts {
		if h.name == name {
			return nil, fmt.Errorf("name %q already taken", name)
		}
	}
	if len(c.hosts) == MaxHosts {
		return nil, fmt.Errorf("a cluster has at most %d hosts", MaxHosts)
	}
	if c.bridge == "" {
		if err := c.createBridge(); err != nil {
			return nil, err
		}
	}
	index := len(c.hosts)
	h := &Host{
		c:     c,
		name:  name,
		index: index,
		ip:    slotAddr(c.slot, hostOffset+index),
		netns: c.id + "-" + name,
		veth:  fmt.Sprintf("%sv%d", c.id, index),
		dir:   filepath.Join(c.dir, name),
	}
	if err := os.Mkdir(h.dir, 0o755); err != nil {
		return nil, err
	}
	addr := netip.PrefixFrom(h.ip, slotPrefixLen).String()
	steps := [][]string{
		{"netns", "add", h.netns},
		{"link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns},
	}
	if ipv6Enabled() {
		steps = append(steps,
			[]string{"link", "set", h.veth, "addrgenmode", "none"},
			[]string{"-n", h.netns, "link", "set", "eth0", "addrgenmode", "none"})
	}
	steps = append(steps,
		[]string{"-n", h.netns, "addr", "add", addr, "dev", "eth0"},
		[]string{"-n", h.netns, "link", "set", "lo", "up"},
		[]string{"-n", h.netns, "link", "set", "eth0", "up"},
		[]string{"link", "set", h.veth, "master", c.bridge, "up"})
	// The host is registered first so that Close removes whatever part of it was made.
	c.hosts = append(c.hosts, h)
	for _, args := range steps {
		if err := run("ip", args...); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// createBridge makes the cluster's bridge with the root namespace's address on it. The
// caller holds c.mu.
func (c *Cluster) createBridge() error {
	name := c.id + bridgeSuffix
	c.bridge = name
	addr := netip.PrefixFrom(slotAddr(c.slot, bridgeOffset), slotPrefixLen).String()
	steps := [][]string{{"link", "add", name, "type", "bridge"}}
	if ipv6Enabled() {
		steps = append(steps, []string{"link", "set", name, "addrgenmode", "none"})
	}
	steps = append(steps, []string{"addr", "add", addr, "dev", name}, []string{"link", "set", name, "up"})
	for _, args := range steps {
		if err := run("ip", args...); err != nil {
			return err
		}
	}
	return nil
}

// ipv6Enabled reports whether the kernel runs IPv6. Where it does, the harness sets
// addrgenmode none on its links: no link-local addresses, so no neighbour discovery; the
// hosts speak IPv4 on their /27 only.
func ipv6Enabled() bool {
	_, err := os.Stat("/proc/net/if_inet6")
	return err == nil
}

// bridgeSuffix ends the bridge's name.
const bridgeSuffix = "br"

// Host returns the host named name, or nil.
func (c *Cluster) Host(name string) *Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		if h.name == name {
			return h
		}
	}
	return nil
}

// Client returns an API client for the master on h, reached from the test process.
func (c *Cluster) Client(h *Host) *api.Client { return api.NewClient(h.APIURL()) }

// Run runs the atoll binary in the root namespace (the test process's) and returns its
// combined output; the error includes the output.
func (c *Cluster) Run(ctx context.Context, args ...string) (string, error) {
	return combined(exec.CommandContext(ctx, c.bin, args...))
}

func combined(cmd *exec.Cmd) (string, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out), nil
}

// Close kills every process in the cluster's namespaces and in the cgroups of the runc
// containers its agents recorded, deletes the namespaces (with what the agents made in
// them: the atoll0 bridge, nftables tables, task veths), links, bridge and containers'
// cgroups, removes the temp dir and releases the address slot. It is idempotent, and
// removes whatever carries the cluster's id, whether or not the harness made it (a script
// run under the test's name).
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var procs []*Proc
	for _, h := range c.hosts {
		procs = append(procs, h.procs...)
	}
	c.mu.Unlock()

	var errs []error
	for _, p := range procs {
		errs = append(errs, p.Kill())
	}
	errs = append(errs, removeOwned(func(name string) bool { return strings.HasPrefix(name, c.id) }))
	if c.lock != nil {
		errs = append(errs, c.lock.Close())
	}
	return errors.Join(errs...)
}

func (c *Cluster) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// logTails logs the end of every process log.
func (c *Cluster) logTails() {
	for _, h := range c.Hosts() {
		for _, p := range h.Procs() {
			data, err := os.ReadFile(p.LogPath())
			if err != nil {
				c.t.Logf("e2e: %s: %v", p.LogPath(), err)
				continue
			}
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			if len(lines) > logTailLines {
				lines = lines[len(lines)-logTailLines:]
			}
			c.t.Logf("e2e: last %d lines of %s (%s):\n%s", len(lines), p.LogPath(), strings.Join(p.Args(), " "), strings.Join(lines, "\n"))
		}
	}
}

// Main runs the tests of a package that uses the harness and removes the binary it built;
// call it from TestMain: os.Exit(e2e.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if err := removeBinary(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
	}
	return code
}
