package vrrp

import (
	"net/netip"
	"testing"
	"time"
)

// TestKeepalivedInterop: keepalived (vrrp_version 3) and Atoll in one VRID elect the
// higher priority whichever it is, and either takes the address over when the other
// stops.
func TestKeepalivedInterop(t *testing.T) {
	l := newLab(t, "ka", "atoll")
	ka, at := l.host("ka"), l.host("atoll")
	vip := l.vip(0)
	const interval = 100 * time.Millisecond

	// keepalived 150 beats Atoll 100.
	k := startKeepalived(t, ka, keepalivedConfig{vrid: 42, priority: 150, advertInt: interval, vips: []netip.Prefix{vip}})
	cfg := DefaultConfig()
	cfg.VRID, cfg.Priority, cfg.AdvertInterval, cfg.VIPs = 42, 100, interval, []netip.Prefix{vip}
	cfg.GARPDelay = 0
	r, stop := at.run(cfg)
	waitFor(t, "keepalived master with the address", func() bool { return ka.hasVIP(vip) })
	waitFor(t, "Atoll backup hearing keepalived", func() bool { s := r.Stats(); return s.State == Backup && s.AdvertsReceived >= 5 })
	if at.hasVIP(vip) {
		t.Fatal("Atoll backup holds the address")
	}
	if d := r.Stats().Dropped; d[DropChecksum] != 0 || d[DropTTL] != 0 || d[DropLength] != 0 || d[DropAddresses] != 0 {
		t.Fatalf("Atoll dropped keepalived's adverts: %v", d)
	}

	// keepalived stops (priority 0): Atoll takes over.
	k.stop()
	waitFor(t, "Atoll master", func() bool { return r.State() == Master && at.hasVIP(vip) })
	if ka.hasVIP(vip) {
		t.Fatal("stopped keepalived still holds the address")
	}
	if got := r.Stats().PriorityZeroReceived; got != 1 {
		t.Errorf("priority-0 adverts from keepalived = %d, want 1", got)
	}
	stop()

	// Atoll 200 beats keepalived 150; when Atoll stops, keepalived takes over.
	startKeepalived(t, ka, keepalivedConfig{vrid: 42, priority: 150, advertInt: interval, vips: []netip.Prefix{vip}})
	waitFor(t, "keepalived master again", func() bool { return ka.hasVIP(vip) })
	cfg.Priority = 200
	r, stop = at.run(cfg)
	waitFor(t, "Atoll preempting keepalived", func() bool { return r.State() == Master && at.hasVIP(vip) && !ka.hasVIP(vip) })
	stop()
	waitFor(t, "keepalived master after Atoll stopped", func() bool { return ka.hasVIP(vip) })
	if at.hasVIP(vip) {
		t.Fatal("stopped Atoll still holds the address")
	}
}
