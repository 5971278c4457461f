package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Host is one machine of the cluster: a network namespace with one address on the bridge.
// Processes on it share the machine's filesystem; its data dir keeps them apart.
type Host struct {
	c     *Cluster
	name  string
	index int
	ip    netip.Addr
	netns string
	veth  string
	dir   string

	// procs is guarded by c.mu.
	procs []*Proc
}

// Name is the host's name in the cluster, also its atoll node name.
func (h *Host) Name() string { return h.name }

// IP is the host's address.
func (h *Host) IP() string { return h.ip.String() }

// Netns is the host's network namespace (ip netns exec NETNS …).
func (h *Host) Netns() string { return h.netns }

// Veth is the root namespace's end of the host's veth, a port of the bridge.
func (h *Host) Veth() string { return h.veth }

// Dir is the host's directory for data dirs and logs.
func (h *Host) Dir() string { return h.dir }

// DataDir is the data dir StartMasters and StartAgents give the host's atoll.
func (h *Host) DataDir() string { return filepath.Join(h.dir, "data") }

// APIURL is the master API URL on this host.
func (h *Host) APIURL() string { return "http://" + h.Addr(APIPort) }

// Addr is the host's address with port, for dialing.
func (h *Host) Addr(port int) string { return net.JoinHostPort(h.IP(), strconv.Itoa(port)) }

// Procs returns the processes started on the host, oldest first.
func (h *Host) Procs() []*Proc {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return append([]*Proc(nil), h.procs...)
}

// Proc returns the process started last on the host (its daemon, for hosts of
// StartMasters and StartAgents), or nil.
func (h *Host) Proc() *Proc {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	if len(h.procs) == 0 {
		return nil
	}
	return h.procs[len(h.procs)-1]
}

// Start runs the atoll binary with args in the host's namespace, its stdout and stderr
// appended to a log file in the host's dir. The process is killed when the test process
// dies and at Close.
func (h *Host) Start(args ...string) *Proc {
	h.c.t.Helper()
	return h.start([]string{"ip", "netns", "exec", h.netns}, args)
}

// startWithCgroups is Start for a process that needs the machine's cgroup hierarchies
// (an agent with the runc containerizer): ip netns exec mounts a sysfs of the namespace
// on /sys, which hides /sys/fs/cgroup, so it enters the network namespace with nsenter
// instead, in a mount namespace of its own (unshare) whose mounts, as under ip netns
// exec, do not propagate back to the machine's.
func (h *Host) startWithCgroups(args ...string) *Proc {
	h.c.t.Helper()
	return h.start([]string{"nsenter", "--net=" + filepath.Join(netnsDir, h.netns), "--", "unshare", "--mount", "--propagation", "slave", "--"}, args)
}

// start runs the atoll binary with args through enter, a command that runs its arguments
// in the host's namespaces, replacing itself.
func (h *Host) start(enter, args []string) *Proc {
	h.c.t.Helper()
	h.c.mu.Lock()
	if h.c.closed {
		h.c.mu.Unlock()
		h.c.t.Fatalf("e2e: start on %s: cluster closed", h.name)
	}
	logName := h.name + ".log"
	if n := len(h.procs); n > 0 {
		logName = fmt.Sprintf("%s-%d.log", h.name, n+1)
	}
	p := &Proc{host: h, enter: enter, args: append([]string(nil), args...), logPath: filepath.Join(h.dir, logName)}
	h.procs = append(h.procs, p)
	h.c.mu.Unlock()
	if err := p.start(); err != nil {
		h.c.t.Fatalf("e2e: start on %s: %v", h.name, err)
	}
	return p
}

// Command returns a command that runs name with args in the host's namespace, for tools
// other than atoll. The caller runs and waits for it; Close kills it if it still runs.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.netns, name}, args...)...)
}

// Run runs the atoll binary with args in the host's namespace (a CLI command such as
// "--addr", url, "members") and returns its combined output; the error includes the output.
func (h *Host) Run(ctx context.Context, args ...string) (string, error) {
	return combined(h.Command(ctx, h.c.bin, args...))
}

// nftTable is the table Partition keeps its rules in, in each host's namespace.
const nftTable = "atoll_e2e"

// Partition cuts every packet between h and each of others, both ways, established
// connections included, until Heal; the hosts can still reach the root namespace, so the
// test keeps watching them. Cuts add up: partitioning h from a and then from b cuts both.
// The rules are nftables drops in each host's namespace; no packet is rejected, so
// connections time out as on a real partition.
func (h *Host) Partition(others ...*Host) error {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range others {
		if o == h || o.c != c {
			return fmt.Errorf("partition %s from %s: not another host of the cluster", h.name, o.name)
		}
	}
	for _, o := range others {
		c.cuts[pair(h, o)] = true
	}
	return c.applyCuts(append([]*Host{h}, others...))
}

// Heal undoes every cut between h and other hosts, whichever host's Partition made it.
func (h *Host) Heal() error {
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := []*Host{h}
	for _, o := range c.hosts {
		if c.cuts[pair(h, o)] {
			delete(c.cuts, pair(h, o))
			changed = append(changed, o)
		}
	}
	return c.applyCuts(changed)
}

// Partitioned returns the hosts h is cut from, in the order they were added.
func (h *Host) Partitioned() []*Host {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	return h.c.cutFrom(h)
}

func pair(a, b *Host) [2]int {
	return [2]int{min(a.index, b.index), max(a.index, b.index)}
}

// cutFrom lists the hosts h is cut from; the caller holds c.mu.
func (c *Cluster) cutFrom(h *Host) []*Host {
	var out []*Host
	for _, o := range c.hosts {
		if o != h && c.cuts[pair(h, o)] {
			out = append(out, o)
		}
	}
	return out
}

// applyCuts replaces the partition rules in each host's namespace with what c.cuts says,
// in one nft transaction per host; the caller holds c.mu.
func (c *Cluster) applyCuts(hosts []*Host) error {
	var errs []error
	var done []*Host
	for _, h := range hosts {
		if slices.Contains(done, h) {
			continue
		}
		done = append(done, h)
		errs = append(errs, h.loadRules(c.cutFrom(h)))
	}
	return errors.Join(errs...)
}

// loadRules atomically replaces h's partition table with drops for peers (none: no table).
func (h *Host) loadRules(peers []*Host) error {
	if !onPath("nft") {
		return errors.New("partition: the nft command is missing (apt-get install nftables)")
	}
	// Declaring the table first makes the delete succeed when it does not exist yet.
	script := fmt.Sprintf("table inet %[1]s\ndelete table inet %[1]s\n", nftTable)
	if len(peers) > 0 {
		ips := make([]string, len(peers))
		for i, p := range peers {
			ips[i] = p.IP()
		}
		set := "{ " + strings.Join(ips, ", ") + " }"
		script += fmt.Sprintf(`table inet %s {
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr %s drop
	}
	chain output {
		type filter hook output priority filter; policy accept;
		ip daddr %s drop
	}
}
`, nftTable, set, set)
	}
	cmd := exec.Command("ip", "netns", "exec", h.netns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if _, err := combined(cmd); err != nil {
		return fmt.Errorf("partition rules on %s: %w", h.name, err)
	}
	return nil
}

// LinkDown pulls the host's cable: its veth's bridge end goes down, so the host loses
// carrier and reaches no one, the root namespace included, until LinkUp.
func (h *Host) LinkDown() error { return run("ip", "link", "set", h.veth, "down") }

// LinkUp plugs the cable back in.
func (h *Host) LinkUp() error { return run("ip", "link", "set", h.veth, "up") }
