package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Everything the harness creates (namespaces, links, temp dirs) is named after its owner so
// that a later run can tell what a crashed one left behind: namePrefix, the creating
// process's pid in base 36 (pidDigits), then a per-process cluster number (seqDigits).
// The resulting cluster id is 11 characters, which leaves room for a link suffix within
// Linux's 15-character interface names (IFNAMSIZ less the NUL).
const (
	namePrefix = "ae2e"
	pidDigits  = 5 // 36^5 > 2^22, Linux's largest pid_max
	seqDigits  = 2
	maxSeq     = 36 * 36
	binDirTail = "-bin"
)

// Addresses: 198.18.0.0/24 is cut into /27 slots. Slot 0 belongs to
// scripts/netns-cluster.sh's default cluster; the harness takes the first free one of the
// others, so clusters of parallel tests and test binaries never share addresses. In a
// slot at base B the bridge (in the root namespace) has B+1 and hosts B+11 … B+30.
const (
	slotSize      = 32
	slotPrefixLen = 27
	firstSlot     = 1
	slotCount     = 256 / slotSize
	bridgeOffset  = 1
	hostOffset    = 11
	// MaxHosts is how many hosts one cluster can have.
	MaxHosts = slotSize - 2 - hostOffset + 1
)

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/run/netns"

// commandTimeout bounds each ip or nft invocation; they finish in milliseconds.
const commandTimeout = 30 * time.Second

var clusterSeq atomic.Int64

// ownerTag is the part of every name that identifies the creating process.
func ownerTag(pid int) string {
	return namePrefix + padBase36(pid, pidDigits)
}

// newClusterID returns a cluster id unique among this process's clusters and, through the
// pid, among all processes alive.
func newClusterID() (string, error) {
	seq := int(clusterSeq.Add(1)) - 1
	if seq >= maxSeq {
		return "", fmt.Errorf("more than %d clusters in one test binary", maxSeq)
	}
	return ownerTag(os.Getpid()) + padBase36(seq, seqDigits), nil
}

func padBase36(n, width int) string {
	s := strconv.FormatInt(int64(n), 36)
	return strings.Repeat("0", max(width-len(s), 0)) + s
}

// nameOwner returns the pid of the process that created a harness name (a namespace,
// link or temp dir name), or false when name is not one of the harness's: the owner tag
// followed by a cluster number or, for the binary's temp dir, binDirTail.
func nameOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok || len(rest) < pidDigits {
		return 0, false
	}
	digits, tail := rest[:pidDigits], rest[pidDigits:]
	if !base36(digits) || !(tail == binDirTail || len(tail) >= seqDigits && base36(tail[:seqDigits])) {
		return 0, false
	}
	pid, err := strconv.ParseInt(digits, 36, 64)
	if err != nil || pid <= 0 || pid > 1<<22 {
		return 0, false
	}
	return int(pid), true
}

// base36 reports whether s is made of lower-case base-36 digits only.
func base36(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'z') {
			return false
		}
	}
	return true
}

// processAlive reports whether pid names a live process.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// slotAddr returns the address at offset in slot's /27.
func slotAddr(slot, offset int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, 0, byte(slot*slotSize + offset)})
}

func slotPrefix(slot int) netip.Prefix {
	return netip.PrefixFrom(slotAddr(slot, 0), slotPrefixLen)
}

// slotLockDir holds one lock file per slot. The files stay: deleting a lock file another
// process may be about to lock would break the exclusion.
func slotLockDir() string { return filepath.Join(os.TempDir(), "atoll-e2e-slots") }

// acquireSlot locks the first free slot: one no other harness process holds and on whose
// subnet the root namespace has no address (a netns-cluster.sh cluster, say). The lock is
// released when the returned file is closed or the process dies.
func acquireSlot(ctx context.Context) (int, *os.File, error) {
	if err := os.MkdirAll(slotLockDir(), 0o755); err != nil {
		return 0, nil, fmt.Errorf("slot locks: %w", err)
	}
	for {
		for slot := firstSlot; slot < slotCount; slot++ {
			f, err := os.OpenFile(filepath.Join(slotLockDir(), fmt.Sprintf("slot-%d.lock", slot)), os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				return 0, nil, fmt.Errorf("slot lock: %w", err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				f.Close()
				continue
			}
			used, err := subnetInUse(slotPrefix(slot))
			if err != nil {
				f.Close()
				return 0, nil, err
			}
			if !used {
				return slot, f, nil
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("no free address slot in 198.18.0.0/24 (all %d in use): %w", slotCount-firstSlot, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// subnetInUse reports whether an interface of the root namespace has an address in p.
func subnetInUse(p netip.Prefix) (bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip, ok := netip.AddrFromSlice(ipn.IP.To4()); ok && p.Contains(ip) {
			return true, nil
		}
	}
	return false, nil
}

// run runs a command with a timeout and returns its error with its output.
func run(name string, args ...string) error {
	_, err := output(name, args...)
	return err
}

func output(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// namespaces lists the named network namespaces.
func namespaces() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// links lists the root namespace's interface names.
func links() ([]string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	names := make([]string, 0, len(ifaces))
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	return names, nil
}

// killNamespace kills every process in the namespace, polling until none is left: tasks
// and the task supervisor outlive the agent that started them.
func killNamespace(ns string) error {
	deadline := time.Now().Add(commandTimeout)
	for {
		out, err := output("ip", "netns", "pids", ns)
		if err != nil {
			return err
		}
		pids := strings.Fields(out)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s: processes %s survive SIGKILL", ns, strings.Join(pids, " "))
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeOwned removes every namespace (with its processes), root-namespace link and temp
// dir (with the runc containers its agents recorded) for whose name owned says yes.
// Deleting a namespace takes its veth end with it, and deleting the root end of a veth
// takes the other, so their order does not matter; the containers go after the
// namespaces, whose processes include the containers' shims.
func removeOwned(owned func(name string) bool) error {
	var errs []error
	nss, err := namespaces()
	errs = append(errs, err)
	for _, ns := range nss {
		if !owned(ns) {
			continue
		}
		// Another process's sweep may remove a dead owner's namespace at the same time.
		err := killNamespace(ns)
		if err == nil {
			err = run("ip", "netns", "delete", ns)
		}
		if err != nil && namespaceExists(ns) {
			errs = append(errs, err)
		}
	}
	ifaces, err := links()
	errs = append(errs, err)
	for _, name := range ifaces {
		if owned(name) {
			if err := run("ip", "link", "delete", name); err != nil && linkExists(name) {
				errs = append(errs, err)
			}
		}
	}
	entries, err := os.ReadDir(os.TempDir())
	errs = append(errs, err)
	for _, e := range entries {
		if owned(e.Name()) {
			dir := filepath.Join(os.TempDir(), e.Name())
			errs = append(errs, removeRuncContainers(dir), os.RemoveAll(dir))
		}
	}
	return errors.Join(errs...)
}

func namespaceExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// linkExists reports whether the root namespace has the link (a veth goes with its peer's
// namespace, so a delete may find it gone).
func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

var sweepOnce sync.Once

// sweepStale removes what harness runs that are no longer alive left behind (a crashed or
// timed-out test binary runs no cleanup). Anything named after this very process is stale
// too: it predates this process, whose pid was reused, since the sweep runs before this
// process creates anything.
func sweepStale() error {
	var err error
	sweepOnce.Do(func() {
		self := os.Getpid()
		err = removeOwned(func(name string) bool { return stale(name, self) })
	})
	return err
}

// stale reports whether name is a harness name whose owner is dead or is self.
func stale(name string, self int) bool {
	pid, ok := nameOwner(name)
	return ok && (pid == self || !processAlive(pid))
}

var build struct {
	once sync.Once
	path string
	err  error
}

// binary returns the atoll binary every host runs: $ATOLL_BIN when set, else one built
// once per test binary into a temp dir that Main removes (or, after a crash, the sweep).
func binary() (string, error) {
	if bin := os.Getenv("ATOLL_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("ATOLL_BIN: %w", err)
		}
		return bin, nil
	}
	build.once.Do(func() {
		dir := filepath.Join(os.TempDir(), ownerTag(os.Getpid())+binDirTail)
		if build.err = os.MkdirAll(dir, 0o755); build.err != nil {
			return
		}
		build.path = filepath.Join(dir, "atoll")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", build.path, "github.com/atoll/atoll").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build atoll: %w\n%s", err, out)
		}
	})
	return build.path, build.err
}

// removeBinary removes the binary built by this process, if any.
func removeBinary() error {
	return os.RemoveAll(filepath.Join(os.TempDir(), ownerTag(os.Getpid())+binDirTail))
}
