package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// WithRuncAgents makes StartAgents run every agent with the runc containerizer and a
// bridge network of its own (--bridge-subnet Host.BridgeSubnet) instead of plain
// processes, entering its host's network namespace with nsenter so that it sees the
// machine's cgroups. NewCluster then also needs cgroups, nsenter and unshare, and Close
// kills and removes the containers the agents leave behind.
func WithRuncAgents() Option { return func(o *options) { o.runc = true } }

// BridgeSubnet is the subnet of the atoll0 bridge that StartAgents gives the host's agent
// under WithRuncAgents: 10.251.X.0/24, X numbering the hosts of every cluster on the
// machine (address slot and host index), so that no two agents' task addresses look
// alike and none is in 198.18.0.0/24.
func (h *Host) BridgeSubnet() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 251, byte(h.c.slot*slotSize + h.index), 0}), 24)
}

// runcCgroupParent is the cgroup, in every hierarchy, in which an agent's runc
// containerizer makes each container's cgroup: isolate.DefaultCgroupParent, which no
// agent flag changes (the harness does not import isolate, whose init code would come
// along into the test binary).
const runcCgroupParent = "atoll"

// runcStateGlobs find the containers the agents of a cluster recorded, below its temp
// dir: each agent's work dir is DataDir/agent, its runc containerizer's state runc/ in
// it, with a directory per container in containers/ (the containerizer's records) and
// libcontainer/ (libcontainer's state).
var runcStateGlobs = []string{"*/data/agent/runc/containers/*", "*/data/agent/runc/libcontainer/*"}

// cgroupKillTimeout bounds the wait for a container's processes to die.
const cgroupKillTimeout = 30 * time.Second

// requireCgroups skips the test, or fails it under CI=true, when runc agents cannot run:
// no cgroup hierarchy is mounted, or util-linux's nsenter and unshare, which start them,
// are missing.
func requireCgroups(t testing.TB) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	var msg string
	switch {
	case err != nil || len(parseCgroupMounts(string(data))) == 0:
		msg = fmt.Sprintf("e2e: runc agents need mounted cgroups (mountinfo: %v)", err)
	case !onPath("nsenter") || !onPath("unshare"):
		msg = "e2e: runc agents need util-linux's nsenter and unshare"
	default:
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; privileged test cannot run under CI=true", msg)
	}
	t.Skip(msg)
}

// RuncContainers lists the ids of the containers that the runc agents of the cluster
// recorded and did not destroy, sorted.
func (c *Cluster) RuncContainers() ([]string, error) { return runcContainerIDs(c.dir) }

func runcContainerIDs(dir string) ([]string, error) {
	var ids []string
	for _, pattern := range runcStateGlobs {
		matches, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, fmt.Errorf("runc state: %w", err)
		}
		for _, m := range matches {
			if id := filepath.Base(m); !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// ContainerCgroups returns the cgroup directories of a runc container that exist, one
// per hierarchy.
func ContainerCgroups(id string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cgroup mounts: %w", err)
	}
	var paths []string
	for _, m := range parseCgroupMounts(string(data)) {
		p := filepath.Join(m, runcCgroupParent, id)
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	return paths, nil
}

// parseCgroupMounts returns the mount points of the cgroup hierarchies, v1 and v2, in a
// mountinfo file: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE
// SUPEROPTIONS" lines, whose mount points escape space, tab, newline and backslash as
// octal (\040).
func parseCgroupMounts(mountinfo string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		fields := strings.Fields(line)
		sep := slices.Index(fields, "-")
		if sep < 6 || sep+1 >= len(fields) {
			continue
		}
		if fstype := fields[sep+1]; fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		if mp := unescapeMountField(fields[4]); filepath.IsAbs(mp) {
			out = append(out, filepath.Clean(mp))
		}
	}
	return out
}

// unescapeMountField undoes mountinfo's octal escapes (\NNN).
func unescapeMountField(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeRuncContainers kills every process left in the cgroups of the runc containers
// recorded below dir (a cluster's temp dir) and removes those cgroups. Killing the
// agents' namespaces does not reach them all: a container on the bridge runs in a
// network namespace of its own, and a container's init outlives its shim.
func removeRuncContainers(dir string) error {
	ids, err := runcContainerIDs(dir)
	if err != nil || len(ids) == 0 {
		return err
	}
	var paths []string
	for _, id := range ids {
		p, err := ContainerCgroups(id)
		if err != nil {
			return err
		}
		paths = append(paths, p...)
	}
	deadline := time.Now().Add(cgroupKillTimeout)
	for {
		var alive []string
		for _, p := range paths {
			thaw(p)
			for _, pid := range cgroupPIDs(p) {
				alive = append(alive, strconv.Itoa(pid))
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("runc containers' processes %s survive SIGKILL", strings.Join(alive, " "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
		}
	}
	// The parent goes too once empty; another agent's container keeps it (EBUSY).
	for _, p := range paths {
		_ = os.Remove(filepath.Dir(p))
	}
	return errors.Join(errs...)
}

// thaw thaws a frozen cgroup, whose processes would not die: v1's freezer, v2's
// cgroup.freeze. A cgroup of neither kind has no such file.
func thaw(cgroup string) {
	_ = os.WriteFile(filepath.Join(cgroup, "freezer.state"), []byte("THAWED"), 0o644)
	_ = os.WriteFile(filepath.Join(cgroup, "cgroup.freeze"), []byte("0"), 0o644)
}

// cgroupPIDs lists the processes in a cgroup (none when it is gone).
func cgroupPIDs(cgroup string) []int {
	data, err := os.ReadFile(filepath.Join(cgroup, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}
