// Package nettest gives tests that build task networks a subnet no other test uses at
// the same time.
package nettest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Test networks take /27s of 198.18.0.0/24 with the same per-slot locks (files in
// $TMPDIR/atoll-e2e-slots) as the e2e harness, so that no two of them route one subnet to
// two bridges at once. Slot 0 is left to scripts/netns-cluster.sh.
const (
	firstSlot  = 1
	slots      = 8
	slotPrefix = 27
	// waitForSlot bounds the wait for a free slot while other tests hold them all.
	waitForSlot = 2 * time.Minute
)

// Subnet locks a free /27 of 198.18.0.0/24 until the test ends: one no other test holds
// and on which the root namespace has no address.
func Subnet(t testing.TB) netip.Prefix {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "atoll-e2e-slots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitForSlot)
	for {
		for slot := firstSlot; slot < slots; slot++ {
			subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(slot * 32)}), slotPrefix)
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("slot-%d.lock", slot)), os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				f.Close()
				continue
			}
			if inUse(t, subnet) {
				f.Close()
				continue
			}
			t.Cleanup(func() { f.Close() })
			return subnet
		}
		if time.Now().After(deadline) {
			t.Fatalf("no free /27 of 198.18.0.0/24 for %v", waitForSlot)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// inUse reports whether the root namespace has an address in subnet.
func inUse(t testing.TB, subnet netip.Prefix) bool {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if addr, ok := netip.AddrFromSlice(ipn.IP); ok && subnet.Contains(addr.Unmap()) {
				return true
			}
		}
	}
	return false
}
