package vrrp

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkFailoverGap measures what a client sees when the VRRP master's host dies
// (its link goes down, so it sends no priority 0): the time from the link going down to
// the first TCP connection through the address to the backup, and the connections that
// fail after that. Atoll advertises every 100 ms; keepalived runs its defaults (1 s,
// priority 100 on the backup). Run with -benchtime 3x; each iteration kills the master
// and brings it back.
//
//	CI=true go test -run XXX -bench FailoverGap -benchtime 3x ./lb/vrrp
func BenchmarkFailoverGap(b *testing.B) {
	b.Run("atoll-100ms", func(b *testing.B) {
		failoverGap(b, func(l *lab, h *labHost, priority uint8) (isMaster func() bool, stop func()) {
			cfg := DefaultConfig()
			cfg.VRID, cfg.Priority, cfg.VIPs, cfg.AdvertInterval = 51, priority, []netip.Prefix{l.vip(0)}, 100*time.Millisecond
			r, stopRouter := h.run(cfg)
			return func() bool { return r.State() == Master }, func() { stopRouter() }
		})
	})
	b.Run("keepalived-defaults", func(b *testing.B) {
		failoverGap(b, func(l *lab, h *labHost, priority uint8) (isMaster func() bool, stop func()) {
			k := startKeepalived(b, h, keepalivedConfig{vrid: 51, priority: priority, advertInt: time.Second, vips: []netip.Prefix{l.vip(0)}})
			return func() bool { return h.hasVIP(l.vip(0)) }, k.stop
		})
	})
}

// peerStarter starts a peer of priority on h and returns a probe of whether it is
// master and a func that stops it.
type peerStarter func(l *lab, h *labHost, priority uint8) (isMaster func() bool, stop func())

// failoverGap runs the measurement b.N times on one lab, with fresh peers each time.
func failoverGap(b *testing.B, start peerStarter) {
	l := newLab(b, "master", "backup", "client")
	master, backup, client := l.host("master"), l.host("backup"), l.host("client")
	const port = 8080
	for _, h := range []*labHost{master, backup} {
		serve(b, h, port)
	}
	target := net.JoinHostPort(l.vip(0).Addr().String(), strconv.Itoa(port))

	var gaps time.Duration
	var failures int
	b.ResetTimer()
	for range b.N {
		masterUp, stopMaster := start(l, master, 150)
		backupUp, stopBackup := start(l, backup, 100)
		waitFor(b, "master elected", func() bool { return masterUp() && !backupUp() && !backup.hasVIP(l.vip(0)) })
		p := probe(b, client, target)
		waitFor(b, "client reaching the master", func() bool { _, ok := p.firstAfter(time.Time{}); return ok })
		l.ip("-n", master.ns, "link", "set", "eth0", "down")
		// From here no connection can reach the master.
		down := time.Now()
		waitFor(b, "backup taking over", backupUp)
		waitFor(b, "client reaching the backup", func() bool { _, ok := p.firstAfter(down); return ok })
		first, _ := p.firstAfter(down)
		time.Sleep(time.Second)
		n := p.stop().failuresAfter(first)
		gaps += first.Sub(down)
		failures += n
		b.Logf("gap %v, %d failed connections after the first success", first.Sub(down), n)
		stopMaster()
		stopBackup()
		l.ip("-n", master.ns, "link", "set", "eth0", "up")
	}
	b.StopTimer()
	b.ReportMetric(float64((gaps / time.Duration(b.N)).Milliseconds()), "gap-ms")
	b.ReportMetric(float64(failures)/float64(b.N), "failed-after-move")
	b.ReportMetric(0, "ns/op")
}

// serve accepts and closes TCP connections on port of every address of h.
func serve(tb testing.TB, h *labHost, port int) {
	tb.Helper()
	var ln net.Listener
	var err error
	done := make(chan struct{})
	h.do(func() {
		defer close(done)
		ln, err = net.Listen("tcp4", ":"+strconv.Itoa(port))
	})
	<-done
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// prober connects to a target from a lab host every 10 ms, each try given 50 ms.
type prober struct {
	mu    sync.Mutex
	tries []try
	quit  chan struct{}
	done  chan struct{}
}

// try is one connection attempt, by when it started: one that started before the
// master died may succeed after.
type try struct {
	at time.Time
	ok bool
}

func probe(tb testing.TB, h *labHost, target string) *prober {
	p := &prober{quit: make(chan struct{}), done: make(chan struct{})}
	h.do(func() {
		defer close(p.done)
		for {
			select {
			case <-p.quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			at := time.Now()
			c, err := net.DialTimeout("tcp4", target, 50*time.Millisecond)
			if err == nil {
				c.Close()
			}
			p.mu.Lock()
			p.tries = append(p.tries, try{at: at, ok: err == nil})
			p.mu.Unlock()
		}
	})
	tb.Cleanup(func() { p.stop() })
	return p
}

// firstAfter is the start of the first successful connection started after t.
func (p *prober) firstAfter(t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tr := range p.tries {
		if tr.ok && tr.at.After(t) {
			return tr.at, true
		}
	}
	return time.Time{}, false
}

// failuresAfter counts failed connections started after t.
func (p *prober) failuresAfter(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, tr := range p.tries {
		if !tr.ok && tr.at.After(t) {
			n++
		}
	}
	return n
}

func (p *prober) stop() *prober {
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	<-p.done
	return p
}
