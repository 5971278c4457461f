package network

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

func newTestIPAM(t testing.TB, dir, subnet string) *ipam {
	t.Helper()
	p, err := newIPAM(dir, netip.MustParsePrefix(subnet))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func allocate(t testing.TB, p *ipam, owner string) netip.Addr {
	t.Helper()
	addr, err := p.allocate(owner)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestIPAMRange(t *testing.T) {
	tests := []struct {
		subnet      string
		first, last string
		size        int
	}{
		{"198.18.0.128/26", "198.18.0.130", "198.18.0.190", 61},
		{"198.18.0.0/24", "198.18.0.2", "198.18.0.254", 253},
		{"198.18.0.4/30", "198.18.0.6", "198.18.0.6", 1},
		{"10.251.0.0/20", "10.251.0.2", "10.251.15.254", 4093},
		{"10.0.0.0/16", "10.0.0.2", "10.0.255.254", 65533},
	}
	for _, tt := range tests {
		t.Run(tt.subnet, func(t *testing.T) {
			p := newTestIPAM(t, t.TempDir(), tt.subnet)
			if p.first.String() != tt.first || p.last.String() != tt.last || p.size() != tt.size {
				t.Errorf("range %s-%s (%d), want %s-%s (%d)", p.first, p.last, p.size(), tt.first, tt.last, tt.size)
			}
		})
	}
	if _, err := newIPAM(t.TempDir(), netip.MustParsePrefix("198.18.0.0/31")); err == nil || err.Error() != "subnet 198.18.0.0/31 has no address for tasks" {
		t.Errorf("/31: error = %v", err)
	}
}

// TestIPAMLeases: addresses go in order and round, a freed address is not handed out again
// before the others, exhaustion says so, and leases survive a new allocator on the dir.
func TestIPAMLeases(t *testing.T) {
	dir := t.TempDir()
	p := newTestIPAM(t, dir, "198.18.0.0/29") // .2 to .6
	for i, want := range []string{"198.18.0.2", "198.18.0.3", "198.18.0.4"} {
		if got := allocate(t, p, fmt.Sprintf("c%d", i)); got.String() != want {
			t.Fatalf("allocation %d = %s, want %s", i, got, want)
		}
	}
	if err := p.release("c1"); err != nil {
		t.Fatal(err)
	}
	if err := p.release("c1"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	for i, want := range []string{"198.18.0.5", "198.18.0.6", "198.18.0.3"} {
		if got := allocate(t, p, fmt.Sprintf("d%d", i)); got.String() != want {
			t.Fatalf("allocation d%d = %s, want %s", i, got, want)
		}
	}
	_, err := p.allocate("e")
	if !errors.Is(err, ErrNoAddress) || err.Error() != "no free address in 198.18.0.0/29: all 5 task addresses are leased" {
		t.Fatalf("allocate from a full subnet: %v", err)
	}

	restarted := newTestIPAM(t, dir, "198.18.0.0/29")
	if _, err := restarted.allocate("e"); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("a new allocator on the same dir handed out a leased address (err %v)", err)
	}
	if err := restarted.release("d2"); err != nil {
		t.Fatal(err)
	}
	if got := allocate(t, restarted, "e"); got.String() != "198.18.0.3" {
		t.Fatalf("allocation after release = %s, want 198.18.0.3", got)
	}
	leases, err := restarted.leases()
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]string{
		netip.MustParseAddr("198.18.0.2"): "c0",
		netip.MustParseAddr("198.18.0.3"): "e",
		netip.MustParseAddr("198.18.0.4"): "c2",
		netip.MustParseAddr("198.18.0.5"): "d0",
		netip.MustParseAddr("198.18.0.6"): "d1",
	}
	if !reflect.DeepEqual(leases, want) {
		t.Errorf("leases = %v, want %v", leases, want)
	}
}

// TestIPAMConcurrent: two allocators on one dir (two agents' worth of racing) and many
// goroutines never hand out one address twice, and stop exactly at the subnet's size.
func TestIPAMConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "leases")
	allocators := []*ipam{newTestIPAM(t, dir, "198.18.0.0/26"), newTestIPAM(t, dir, "198.18.0.0/26")}
	const workers = 8
	var mu sync.Mutex
	got := map[netip.Addr]string{}
	exhausted := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				owner := fmt.Sprintf("w%d-%d", w, i)
				addr, err := allocators[w%2].allocate(owner)
				mu.Lock()
				if err != nil {
					if !errors.Is(err, ErrNoAddress) {
						t.Errorf("allocate: %v", err)
					}
					exhausted++
					mu.Unlock()
					return
				}
				if prev, dup := got[addr]; dup {
					t.Errorf("%s leased to both %s and %s", addr, prev, owner)
				}
				got[addr] = owner
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != 61 || exhausted != workers {
		t.Errorf("%d addresses leased and %d workers saw exhaustion, want 61 and %d", len(got), exhausted, workers)
	}
	leases, err := allocators[0].leases()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(leases, got) {
		t.Errorf("leases on disk differ from what was handed out")
	}
}

func TestBroadcast(t *testing.T) {
	for prefix, want := range map[string]string{
		"198.18.0.128/26": "198.18.0.191",
		"198.18.0.0/24":   "198.18.0.255",
		"10.251.0.0/20":   "10.251.15.255",
		"10.0.0.0/8":      "10.255.255.255",
		"198.18.0.8/30":   "198.18.0.11",
	} {
		if got := broadcast(netip.MustParsePrefix(prefix)); got.String() != want {
			t.Errorf("broadcast(%s) = %s, want %s", prefix, got, want)
		}
	}
}
