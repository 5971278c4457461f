package vrrp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Config is one virtual router on one interface.
type Config struct {
	// Interface is the network interface advertisements are sent on and the virtual
	// addresses are added to. It needs an IPv4 address of its own, the packets' source.
	Interface string
	// VRID identifies the virtual router on the link, 1–255; every peer uses the same.
	VRID uint8
	// Priority is this router's claim to be master, 1–254, or 255 for the router that
	// owns the addresses (it becomes master at once). Higher wins; ties go to the higher
	// interface address.
	Priority uint8
	// VIPs are the virtual addresses (IPv4) with the prefix length they get on the
	// interface. Peers must list the same addresses in the same order.
	VIPs []netip.Prefix
	// AdvertInterval is how often the master advertises, in whole centiseconds from
	// 10 ms to 40.95 s. Backups declare the master down after about 3 intervals.
	AdvertInterval time.Duration
	// Preempt lets a backup with a higher priority than the master's take over.
	Preempt bool
	// PreemptDelay holds preemption back until a lower-priority master has been heard
	// for this long, so a router that just booted does not take over before it is ready.
	PreemptDelay time.Duration
	// UnicastPeers, when set, are sent every advertisement instead of the multicast
	// group (as keepalived's unicast_peer), for links without multicast.
	UnicastPeers []netip.Addr
	// GARPRepeat is how many gratuitous ARPs per virtual address each burst sends.
	GARPRepeat int
	// GARPDelay is when, after becoming master, the second burst of gratuitous ARPs
	// goes out; 0 sends only the first.
	GARPDelay time.Duration
	// Logger receives state changes and I/O errors; nil discards them.
	Logger *slog.Logger
	// OnState, if set, is called from Run's goroutine with each new state; it must not
	// block.
	OnState func(State)
}

// DefaultConfig returns RFC 5798's and keepalived's defaults: priority 100 (the RFC's
// default for a backup), 1 s adverts (keepalived's advert_int; about 3.6 s to fail
// over — set 100 ms for sub-second failover), preemption on (the RFC's Preempt_Mode),
// and keepalived's 5 gratuitous ARPs, again 5 s later, so switches and hosts that
// missed the first burst still learn the move.
func DefaultConfig() Config {
	return Config{
		Priority:       100,
		AdvertInterval: time.Second,
		Preempt:        true,
		GARPRepeat:     5,
		GARPDelay:      5 * time.Second,
	}
}

// Validate reports what is wrong with c, every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Interface == "" {
		errs = append(errs, errors.New("interface is empty"))
	}
	if c.VRID == 0 {
		errs = append(errs, errors.New("vrid 0 is reserved (1–255)"))
	}
	if c.Priority == ResignPriority {
		errs = append(errs, errors.New("priority 0 is reserved for a resigning master (1–255)"))
	}
	if len(c.VIPs) == 0 {
		errs = append(errs, errors.New("no virtual addresses"))
	}
	if len(c.VIPs) > 255 {
		errs = append(errs, fmt.Errorf("%d virtual addresses, at most 255", len(c.VIPs)))
	}
	for _, p := range c.VIPs {
		if !p.IsValid() || !p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("virtual address %v: only IPv4 is supported", p))
		}
	}
	cs := c.AdvertInterval / (10 * time.Millisecond)
	if c.AdvertInterval%(10*time.Millisecond) != 0 || cs < 1 || cs > MaxAdvertInterval {
		errs = append(errs, fmt.Errorf("advert interval %v: want whole centiseconds from 10ms to 40.95s", c.AdvertInterval))
	}
	if c.PreemptDelay < 0 {
		errs = append(errs, fmt.Errorf("preempt delay %v is negative", c.PreemptDelay))
	}
	for _, p := range c.UnicastPeers {
		if !p.Is4() {
			errs = append(errs, fmt.Errorf("unicast peer %v: only IPv4 is supported", p))
		}
	}
	if c.GARPRepeat < 0 {
		errs = append(errs, fmt.Errorf("garp repeat %d is negative", c.GARPRepeat))
	}
	if c.GARPDelay < 0 {
		errs = append(errs, fmt.Errorf("garp delay %v is negative", c.GARPDelay))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vrrp config: %w", err)
	}
	return nil
}

// centiseconds converts an interval that Validate accepted.
func centiseconds(d time.Duration) uint16 { return uint16(d / (10 * time.Millisecond)) }

// SkewTime is RFC 5798's Skew_Time for a router of priority under a master that
// advertises every interval: how much longer lower priorities wait before taking over.
func SkewTime(priority uint8, interval time.Duration) time.Duration {
	return time.Duration(256-int(priority)) * interval / 256
}

// MasterDownInterval is RFC 5798's Master_Down_Interval: how long a backup of priority
// hears nothing from a master advertising every interval before taking over.
func MasterDownInterval(priority uint8, interval time.Duration) time.Duration {
	return 3*interval + SkewTime(priority, interval)
}
