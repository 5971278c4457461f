package vrrp

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// testLogger sends a router's log to t.Log, shown only when the test fails.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// peers builds a lab of the named hosts and the config they share: VRID 51, the lab's
// first virtual address, 100 ms adverts, one burst of gratuitous ARP.
func peers(t *testing.T, names ...string) (*lab, Config) {
	l := newLab(t, names...)
	cfg := DefaultConfig()
	cfg.VRID, cfg.VIPs, cfg.AdvertInterval, cfg.GARPDelay = 51, []netip.Prefix{l.vip(0)}, 100*time.Millisecond, 0
	return l, cfg
}

func withPriority(cfg Config, p uint8) Config { cfg.Priority = p; return cfg }

// waitElected waits until master is Master with the address and every backup is
// Backup without it, and then checks that a backup has heard the master's adverts.
func waitElected(t *testing.T, vip netip.Prefix, master *Router, masterHost *labHost, backups map[*Router]*labHost) {
	t.Helper()
	waitFor(t, "election", func() bool {
		if master.State() != Master || !masterHost.hasVIP(vip) {
			return false
		}
		for r, h := range backups {
			if r.State() != Backup || h.hasVIP(vip) {
				return false
			}
		}
		return true
	})
	for r := range backups {
		n := r.Stats().AdvertsReceived
		waitFor(t, "adverts from the master", func() bool { return r.Stats().AdvertsReceived >= n+3 })
		if r.State() != Backup || master.State() != Master {
			t.Fatalf("election did not hold: master %v, backup %v", master.State(), r.State())
		}
	}
}

// TestElection: two Atoll peers elect the higher priority, and only the master holds
// the address.
func TestElection(t *testing.T) {
	tests := []struct {
		name         string
		prioA, prioB uint8
		wantA        bool
	}{
		{"a higher", 150, 100, true},
		{"b higher", 100, 150, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, cfg := peers(t, "a", "b")
			a, b := l.host("a"), l.host("b")
			ra, _ := a.run(withPriority(cfg, tt.prioA))
			rb, _ := b.run(withPriority(cfg, tt.prioB))
			if tt.wantA {
				waitElected(t, l.vip(0), ra, a, map[*Router]*labHost{rb: b})
			} else {
				waitElected(t, l.vip(0), rb, b, map[*Router]*labHost{ra: a})
			}
		})
	}
}

// TestTieBreak: two masters of one priority that hear each other (their links come up
// after both took over) leave the higher interface address (b's) master. (Otherwise a
// tie goes to whichever backup times out first, and the other stays backup.)
func TestTieBreak(t *testing.T) {
	l, cfg := peers(t, "a", "b")
	a, b := l.host("a"), l.host("b")
	for _, h := range []*labHost{a, b} {
		l.ip("-n", h.ns, "link", "set", "eth0", "down")
	}
	ra, _ := a.run(withPriority(cfg, 100))
	rb, _ := b.run(withPriority(cfg, 100))
	waitFor(t, "both master", func() bool { return ra.State() == Master && rb.State() == Master })
	for _, h := range []*labHost{a, b} {
		l.ip("-n", h.ns, "link", "set", "eth0", "up")
	}
	waitElected(t, l.vip(0), rb, b, map[*Router]*labHost{ra: a})
}

// TestResign: a master that stops advertises priority 0 and drops the address, and the
// backup takes over after its Skew_Time rather than the whole Master_Down_Interval.
func TestResign(t *testing.T) {
	l, cfg := peers(t, "a", "b")
	cfg.AdvertInterval = 500 * time.Millisecond
	a, b := l.host("a"), l.host("b")
	ra, stopA := a.run(withPriority(cfg, 150))
	rb, _ := b.run(withPriority(cfg, 100))
	waitElected(t, l.vip(0), ra, a, map[*Router]*labHost{rb: b})

	start := time.Now()
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if a.hasVIP(l.vip(0)) {
		t.Fatal("stopped master still holds the address")
	}
	waitFor(t, "backup taking over", func() bool { return rb.State() == Master })
	took := time.Since(start)
	if !b.hasVIP(l.vip(0)) {
		t.Fatal("new master lacks the address")
	}
	if got := ra.Stats().PriorityZeroSent; got != 1 {
		t.Errorf("priority-0 adverts sent = %d, want 1", got)
	}
	if got := rb.Stats().PriorityZeroReceived; got != 1 {
		t.Errorf("priority-0 adverts received = %d, want 1", got)
	}
	// Skew_Time is 0.3 s and Master_Down_Interval 1.8 s: taking over sooner than the
	// latter proves the resignation was acted on.
	t.Logf("takeover after resignation: %v (Skew_Time %v)", took, SkewTime(100, cfg.AdvertInterval))
	if mdi := MasterDownInterval(100, cfg.AdvertInterval); took >= mdi {
		t.Errorf("takeover took %v, not less than Master_Down_Interval %v", took, mdi)
	}
}

// TestMasterVanishes: when the master's link goes down without a word, the backup
// takes over once Master_Down_Interval passes without adverts, and gives the address
// back when the master, still of higher priority, returns.
func TestMasterVanishes(t *testing.T) {
	l, cfg := peers(t, "a", "b")
	a, b := l.host("a"), l.host("b")
	ra, _ := a.run(withPriority(cfg, 150))
	rb, _ := b.run(withPriority(cfg, 100))
	waitElected(t, l.vip(0), ra, a, map[*Router]*labHost{rb: b})

	start := time.Now()
	l.ip("-n", a.ns, "link", "set", "eth0", "down")
	waitFor(t, "backup taking over", func() bool { return rb.State() == Master && b.hasVIP(l.vip(0)) })
	took := time.Since(start)
	// The last advert came at most one interval before the link went down.
	if least := MasterDownInterval(100, cfg.AdvertInterval) - cfg.AdvertInterval; took < least {
		t.Errorf("backup took over after %v, before Master_Down_Interval could pass (%v)", took, least)
	}
	t.Logf("takeover after the master vanished: %v (Master_Down_Interval %v)", took, MasterDownInterval(100, cfg.AdvertInterval))
	if got := rb.Stats().PriorityZeroReceived; got != 0 {
		t.Errorf("priority-0 adverts received = %d, want 0", got)
	}

	garps := ra.Stats().GARPSent
	l.ip("-n", a.ns, "link", "set", "eth0", "up")
	waitElected(t, l.vip(0), ra, a, map[*Router]*labHost{rb: b})
	// Clients learnt b's MAC for the address; a announces it again on hearing b.
	if got := ra.Stats().GARPSent; got <= garps {
		t.Errorf("returning master sent %d gratuitous ARPs, want more than the %d of before", got, garps)
	}
	if ra.Stats().SendErrors == 0 {
		t.Error("no send errors counted while the link was down")
	}
	if got := ra.Stats().BecameMaster; got != 1 {
		t.Errorf("returning master became master %d times, want 1 (it never left)", got)
	}
}

// TestPreempt: a higher-priority router that joins a running master takes over with
// Preempt, only after PreemptDelay with one, and never without Preempt.
func TestPreempt(t *testing.T) {
	tests := []struct {
		name    string
		preempt bool
		delay   time.Duration
	}{
		{"on", true, 0},
		{"on after delay", true, time.Second},
		{"off", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, cfg := peers(t, "low", "high")
			low, high := l.host("low"), l.host("high")
			rl, _ := low.run(withPriority(cfg, 100))
			waitFor(t, "low master", func() bool { return rl.State() == Master })
			hcfg := withPriority(cfg, 150)
			hcfg.Preempt, hcfg.PreemptDelay = tt.preempt, tt.delay
			start := time.Now()
			rh, _ := high.run(hcfg)
			if !tt.preempt {
				// Ten adverts accepted is three Master_Down_Intervals of not preempting.
				waitFor(t, "adverts from low", func() bool { return rh.Stats().AdvertsReceived >= 10 })
				if rh.State() != Backup || rl.State() != Master || high.hasVIP(l.vip(0)) || !low.hasVIP(l.vip(0)) {
					t.Fatalf("without preemption: high %v, low %v", rh.State(), rl.State())
				}
				return
			}
			waitElected(t, l.vip(0), rh, high, map[*Router]*labHost{rl: low})
			if took := time.Since(start); took < tt.delay {
				t.Errorf("preempted after %v, within PreemptDelay %v", took, tt.delay)
			}
		})
	}
}

// TestOwner: the address owner (priority 255) becomes master at once, without passing
// through Backup, and a running master of lower priority yields, even with Preempt off.
func TestOwner(t *testing.T) {
	l, cfg := peers(t, "other", "owner")
	other, owner := l.host("other"), l.host("owner")
	ro, _ := other.run(withPriority(cfg, 100))
	waitFor(t, "other master", func() bool { return ro.State() == Master })

	var mu sync.Mutex
	var states []State
	ocfg := withPriority(cfg, OwnerPriority)
	ocfg.Preempt = false
	ocfg.OnState = func(s State) {
		mu.Lock()
		defer mu.Unlock()
		states = append(states, s)
	}
	rown, _ := owner.run(ocfg)
	waitElected(t, l.vip(0), rown, owner, map[*Router]*labHost{ro: other})
	mu.Lock()
	defer mu.Unlock()
	if want := []State{Master}; !slices.Equal(states, want) {
		t.Errorf("owner states = %v, want %v", states, want)
	}
}

func TestVIPLease(t *testing.T) {
	for interval, want := range map[time.Duration]time.Duration{
		100 * time.Millisecond:  2 * time.Second,
		time.Second:             3 * time.Second,
		1500 * time.Millisecond: 5 * time.Second,
	} {
		if got := vipLease(interval); got != want {
			t.Errorf("vipLease(%v) = %v, want %v", interval, got, want)
		}
	}
}

// TestVIPExpires: an address a master stops renewing (it was killed, or froze) leaves
// the interface when its lease ends, instead of answering ARP beside the new master.
func TestVIPExpires(t *testing.T) {
	l := newLab(t, "a")
	a := l.host("a")
	vip := l.vip(0)
	added := make(chan error, 1)
	a.do(func() {
		v, err := openVIPSet("eth0", []netip.Prefix{vip}, 2*time.Second)
		if err == nil {
			defer v.close()
			err = v.add()
		}
		added <- err
	})
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	if !a.hasVIP(vip) {
		t.Fatalf("%s is not on a after add", vip)
	}
	waitFor(t, "the unrenewed address to expire", func() bool { return !a.hasVIP(vip) })
}
