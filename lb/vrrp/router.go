// Package vrrp runs one VRRPv3 virtual router (RFC 5798, IPv4) on one interface: it
// elects a master among the peers on the link, and the master holds the virtual
// addresses and announces them with gratuitous ARP. It interoperates with keepalived
// (vrrp_version 3).
package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// State is a virtual router's state (RFC 5798 §6.4).
type State int32

// The states of RFC 5798's state machine.
const (
	Initialize State = iota
	Backup
	Master
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "initialize"
	case Backup:
		return "backup"
	case Master:
		return "master"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Router is one virtual router. Its methods are safe to call from any goroutine while
// Run runs.
type Router struct {
	cfg   Config
	log   *slog.Logger
	state atomic.Int32
	ran   atomic.Bool
	c     counters
}

// New checks cfg and returns a router that does nothing until Run.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.VIPs = slices.Clone(cfg.VIPs)
	cfg.UnicastPeers = slices.Clone(cfg.UnicastPeers)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "vrrp", "vrid", cfg.VRID, "interface", cfg.Interface)
	return &Router{cfg: cfg, log: log}, nil
}

// State is the router's current state.
func (r *Router) State() State { return State(r.state.Load()) }

// Run runs the state machine until ctx ends, then, if master, advertises priority 0 so
// a backup takes over after its Skew_Time, and removes the virtual addresses. Its
// sockets and netlink handle belong to the network namespace of the goroutine that
// calls Run. It returns nil when ctx ends, or the error that stopped it; it runs once.
func (r *Router) Run(ctx context.Context) error {
	if !r.ran.CompareAndSwap(false, true) {
		return errors.New("vrrp: Run called twice")
	}
	ifi, err := net.InterfaceByName(r.cfg.Interface)
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	src, err := primaryAddr(ifi, r.cfg.VIPs)
	if err != nil {
		return err
	}
	vips, err := openVIPSet(r.cfg.Interface, r.cfg.VIPs, vipLease(r.cfg.AdvertInterval))
	if err != nil {
		return err
	}
	defer vips.close()
	garp, err := openGARP(ifi)
	if err != nil {
		return err
	}
	defer garp.close()
	conn, err := openAdvertConn(ifi, src, r.cfg.UnicastPeers)
	if err != nil {
		return err
	}
	rx := make(chan received, 64)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		r.readLoop(conn, ifi.Index, src, rx)
	}()
	defer func() {
		conn.close()
		<-readDone
	}()
	m := &machine{r: r, conn: conn, garp: garp, vips: vips, src: src}
	return m.run(ctx, rx)
}

// received is an advertisement that passed every check, with its sender.
type received struct {
	adv Advertisement
	src netip.Addr
}

// readLoop reads until conn closes, counts and drops what RFC 5798 §7.1 says to drop,
// and hands the rest to the state machine (dropping them too if it falls behind by a
// whole queue, which only stale advertisements would fill).
func (r *Router) readLoop(conn *advertConn, ifindex int, self netip.Addr, rx chan<- received) {
	buf := make([]byte, 1500)
	for {
		p, err := conn.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Warn("read advertisement", "err", err)
			continue
		}
		if p.ifIndex != ifindex || p.src == self {
			continue
		}
		adv, ok := r.check(p)
		if !ok {
			continue
		}
		select {
		case rx <- received{adv: adv, src: p.src}:
		default:
			r.c.queueFull.Add(1)
		}
	}
}

// check validates one packet against RFC 5798 §7.1, counting why it drops it.
func (r *Router) check(p packet) (Advertisement, bool) {
	if p.ttl != RequiredTTL {
		r.c.badTTL.Add(1)
		return Advertisement{}, false
	}
	if !p.dst.IsValid() {
		p.dst = GroupIPv4
	}
	adv, err := Parse(p.payload, p.src, p.dst)
	switch {
	case errors.Is(err, ErrVersion):
		r.c.badVersion.Add(1)
	case errors.Is(err, ErrType):
		r.c.badType.Add(1)
	case errors.Is(err, ErrChecksum):
		r.c.badChecksum.Add(1)
	case err != nil:
		r.c.badLength.Add(1)
	case adv.VRID != r.cfg.VRID:
		r.c.otherVRID.Add(1)
	case adv.MaxAdvertInterval == 0:
		// A zero interval would make Master_Down_Interval zero and backups flap.
		r.c.badInterval.Add(1)
	case !sameAddrs(adv.Addrs, r.cfg.VIPs):
		r.c.addrMismatch.Add(1)
	default:
		r.c.received.Add(1)
		if adv.Priority == ResignPriority {
			r.c.priorityZeroReceived.Add(1)
		}
		return adv, true
	}
	return Advertisement{}, false
}

// sameAddrs reports whether an advertisement lists exactly the configured addresses.
// RFC 5798 §7.1 only asks to log a mismatch; keepalived drops such packets, and so does
// Atoll, since peers that disagree on the addresses would each hold different ones.
func sameAddrs(got []netip.Addr, want []netip.Prefix) bool {
	if len(got) != len(want) {
		return false
	}
	for i, p := range want {
		if got[i] != p.Addr() {
			return false
		}
	}
	return true
}

// machine is Run's state: owned by Run's goroutine.
type machine struct {
	r    *Router
	conn *advertConn
	garp *garpSender
	vips *vipSet
	src  netip.Addr

	// timer is Master_Down_Timer in Backup and Adver_Timer in Master.
	timer *time.Timer
	// garpTimer sends the second burst of gratuitous ARPs.
	garpTimer *time.Timer
	// masterAdverInterval is the interval the current master advertises.
	masterAdverInterval time.Duration
	// lowerSince is when a lower-priority master was first heard in this Backup spell,
	// for PreemptDelay.
	lowerSince time.Time
	// lastReclaim is when reclaim last announced the addresses.
	lastReclaim time.Time
	// sendFailing keeps a link that is down from logging every interval.
	sendFailing bool
}

func (m *machine) run(ctx context.Context, rx <-chan received) error {
	cfg := m.r.cfg
	m.timer = time.NewTimer(time.Hour)
	defer m.timer.Stop()
	m.garpTimer = time.NewTimer(time.Hour)
	m.garpTimer.Stop()
	defer m.garpTimer.Stop()

	// Addresses left by an earlier run that did not end cleanly belong to whoever is
	// master now.
	if err := m.vips.remove(); err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	var err error
	if cfg.Priority == OwnerPriority {
		err = m.becomeMaster()
	} else {
		m.becomeBackup(cfg.AdvertInterval)
	}
	for err == nil {
		select {
		case <-ctx.Done():
			return m.shutdown()
		case <-m.timer.C:
			if m.r.State() == Backup {
				err = m.becomeMaster()
			} else {
				m.advertise(cfg.Priority)
				m.timer.Reset(cfg.AdvertInterval)
			}
		case <-m.garpTimer.C:
			m.announce()
		case p := <-rx:
			err = m.receive(p)
		}
	}
	return errors.Join(err, m.shutdown())
}

// receive applies one advertisement (RFC 5798 §6.4.2 and §6.4.3).
func (m *machine) receive(p received) error {
	cfg := m.r.cfg
	interval := time.Duration(p.adv.MaxAdvertInterval) * 10 * time.Millisecond
	switch m.r.State() {
	case Backup:
		switch {
		case p.adv.Priority == ResignPriority:
			m.timer.Reset(SkewTime(cfg.Priority, m.masterAdverInterval))
		case !cfg.Preempt || p.adv.Priority >= cfg.Priority || m.delayPreemption():
			if p.adv.Priority >= cfg.Priority {
				m.lowerSince = time.Time{}
			}
			m.masterAdverInterval = interval
			m.timer.Reset(MasterDownInterval(cfg.Priority, interval))
		}
		// Otherwise a lower-priority master is ignored, and Master_Down_Timer preempts it.
	case Master:
		switch {
		case p.adv.Priority == ResignPriority:
			m.advertise(cfg.Priority)
			m.timer.Reset(cfg.AdvertInterval)
		case p.adv.Priority > cfg.Priority || p.adv.Priority == cfg.Priority && p.src.Compare(m.src) > 0:
			m.r.log.Info("higher-priority master heard", "from", p.src, "priority", p.adv.Priority)
			if err := m.leaveMaster(); err != nil {
				return err
			}
			m.becomeBackup(interval)
		default:
			m.reclaim()
		}
	}
	return nil
}

// reannounceEvery bounds how often a master answers lower-priority adverts with
// gratuitous ARP: a peer that cannot hear it would otherwise trigger a burst every
// interval.
const reannounceEvery = time.Second

// reclaim answers a lower-priority master, one that missed us (a link that was down,
// a partition) and may have drawn the clients' ARP entries to itself: RFC 5798 has the
// advert discarded, and the peer yields at our next advert, but the clients would keep
// the peer's MAC until their entries expire, so announce the addresses again (as
// keepalived's garp_lower_prio_repeat does).
func (m *machine) reclaim() {
	if time.Since(m.lastReclaim) < reannounceEvery {
		return
	}
	m.lastReclaim = time.Now()
	m.r.log.Info("lower-priority master heard; announcing the addresses again")
	m.announce()
}

// delayPreemption reports whether a lower-priority master is still within PreemptDelay
// of first being heard, starting the clock at the first one.
func (m *machine) delayPreemption() bool {
	if m.r.cfg.PreemptDelay == 0 {
		return false
	}
	if m.lowerSince.IsZero() {
		m.lowerSince = time.Now()
	}
	return time.Since(m.lowerSince) < m.r.cfg.PreemptDelay
}

func (m *machine) becomeBackup(masterInterval time.Duration) {
	m.masterAdverInterval = masterInterval
	m.lowerSince = time.Time{}
	m.timer.Reset(MasterDownInterval(m.r.cfg.Priority, masterInterval))
	m.setState(Backup)
}

func (m *machine) becomeMaster() error {
	if err := m.vips.add(); err != nil {
		return fmt.Errorf("vrrp: become master: %w", err)
	}
	m.advertise(m.r.cfg.Priority)
	m.announce()
	if m.r.cfg.GARPDelay > 0 {
		m.garpTimer.Reset(m.r.cfg.GARPDelay)
	}
	m.timer.Reset(m.r.cfg.AdvertInterval)
	m.r.c.becameMaster.Add(1)
	m.setState(Master)
	return nil
}

// leaveMaster gives the addresses up on the way to Backup or Initialize.
func (m *machine) leaveMaster() error {
	m.garpTimer.Stop()
	if err := m.vips.remove(); err != nil {
		return fmt.Errorf("vrrp: leave master: %w", err)
	}
	return nil
}

// shutdown is the Shutdown event: a master resigns with priority 0 so backups wait
// only Skew_Time, then drops its addresses.
func (m *machine) shutdown() error {
	m.timer.Stop()
	var err error
	if m.r.State() == Master {
		m.advertise(ResignPriority)
		err = m.leaveMaster()
	}
	m.setState(Initialize)
	return err
}

func (m *machine) advertise(priority uint8) {
	cfg := m.r.cfg
	adv := Advertisement{VRID: cfg.VRID, Priority: priority, MaxAdvertInterval: centiseconds(cfg.AdvertInterval)}
	for _, p := range cfg.VIPs {
		adv.Addrs = append(adv.Addrs, p.Addr())
	}
	if err := m.conn.send(adv); err != nil {
		m.r.c.sendErrors.Add(1)
		if !m.sendFailing {
			m.r.log.Warn("advertise", "err", err)
		}
		m.sendFailing = true
		return
	}
	m.r.c.sent.Add(1)
	if priority != ResignPriority && m.r.State() == Master {
		if err := m.vips.renew(); err != nil {
			m.r.log.Warn("renew the virtual addresses", "err", err)
		}
	}
	if m.sendFailing && priority != ResignPriority && m.r.State() == Master {
		// The link is back: while it was down a backup may have taken the addresses
		// and the clients' ARP entries with them.
		m.r.log.Info("advertising again; announcing the addresses again")
		m.announce()
	}
	m.sendFailing = false
	if priority == ResignPriority {
		m.r.c.priorityZeroSent.Add(1)
	}
}

// announce sends one burst of gratuitous ARPs for every virtual address.
func (m *machine) announce() {
	for _, p := range m.r.cfg.VIPs {
		for range m.r.cfg.GARPRepeat {
			if err := m.garp.send(p.Addr()); err != nil {
				m.r.c.sendErrors.Add(1)
				m.r.log.Warn("gratuitous ARP", "err", err)
				return
			}
			m.r.c.garpSent.Add(1)
		}
	}
}

func (m *machine) setState(s State) {
	if State(m.r.state.Swap(int32(s))) == s {
		return
	}
	m.r.log.Info("state", "state", s, "priority", m.r.cfg.Priority)
	if m.r.cfg.OnState != nil {
		m.r.cfg.OnState(s)
	}
}
