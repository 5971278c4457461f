package vrrp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// rawSender sends hand-made VRRP payloads to the group from a lab host.
type rawSender struct {
	pc  *ipv4.PacketConn
	ifi *net.Interface
}

func newRawSender(t *testing.T, h *labHost) *rawSender {
	t.Helper()
	var s *rawSender
	var err error
	done := make(chan struct{})
	h.do(func() {
		defer close(done)
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return
		}
		var c net.PacketConn
		if c, err = net.ListenPacket(fmt.Sprintf("ip4:%d", IPProtocol), "0.0.0.0"); err != nil {
			return
		}
		s = &rawSender{pc: ipv4.NewPacketConn(c), ifi: ifi}
		err = s.pc.SetMulticastInterface(ifi)
	})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.pc.Close() })
	return s
}

func (s *rawSender) send(t *testing.T, payload []byte, ttl int) {
	t.Helper()
	if err := s.pc.SetMulticastTTL(ttl); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pc.WriteTo(payload, nil, &net.IPAddr{IP: GroupIPv4.AsSlice()}); err != nil {
		t.Fatal(err)
	}
}

// TestMalformedCounted: packets RFC 5798 §7.1 says to drop are dropped and counted by
// reason, even claiming priority 254 against a master of 100; a good one then is obeyed.
func TestMalformedCounted(t *testing.T) {
	l, cfg := peers(t, "router", "sender")
	router, sender := l.host("router"), l.host("sender")
	r, _ := router.run(withPriority(cfg, 100))
	waitFor(t, "router master", func() bool { return r.State() == Master })
	s := newRawSender(t, sender)
	from := sender.addr
	vip := l.vip(0).Addr()
	// 1 s adverts keep the router in Backup for 3.6 s after the good one.
	good := Advertisement{VRID: cfg.VRID, Priority: 254, MaxAdvertInterval: 100, Addrs: []netip.Addr{vip}}
	marshal := func(a Advertisement, mangle func([]byte)) []byte {
		b, err := Marshal(a, from, GroupIPv4)
		if err != nil {
			t.Fatal(err)
		}
		if mangle != nil {
			mangle(b)
		}
		return b
	}
	with := func(f func(*Advertisement)) Advertisement { a := good; f(&a); return a }
	// resum puts a right checksum back after a mangle.
	resum := func(b []byte) {
		binary.BigEndian.PutUint16(b[6:], 0)
		binary.BigEndian.PutUint16(b[6:], checksum(b, from, GroupIPv4))
	}
	packets := []struct {
		reason  string
		payload []byte
		ttl     int
	}{
		{DropTTL, marshal(good, nil), 64},
		{DropChecksum, marshal(good, func(b []byte) { b[7] ^= 0xff }), RequiredTTL},
		{DropVersion, marshal(good, func(b []byte) { b[0] = 0x21; resum(b) }), RequiredTTL},
		{DropType, marshal(good, func(b []byte) { b[0] = 0x32; resum(b) }), RequiredTTL},
		{DropLength, marshal(good, func(b []byte) { b[3] = 2; resum(b) }), RequiredTTL},
		{DropLength, marshal(good, nil)[:6], RequiredTTL},
		{DropInterval, marshal(with(func(a *Advertisement) { a.MaxAdvertInterval = 0 }), nil), RequiredTTL},
		{DropVRID, marshal(with(func(a *Advertisement) { a.VRID = 52 }), nil), RequiredTTL},
		{DropAddresses, marshal(with(func(a *Advertisement) { a.Addrs = []netip.Addr{vip, vip} }), nil), RequiredTTL},
		{DropAddresses, marshal(with(func(a *Advertisement) { a.Addrs = []netip.Addr{from} }), nil), RequiredTTL},
	}
	want := r.Stats().Dropped
	for _, p := range packets {
		s.send(t, p.payload, p.ttl)
		want[p.reason]++
	}
	waitFor(t, "drops counted", func() bool { return maps.Equal(r.Stats().Dropped, want) })
	st := r.Stats()
	if st.State != Master || st.AdvertsReceived != 0 || st.BecameMaster != 1 {
		t.Fatalf("after bad packets: state %v, received %d, became master %d; want master, 0, 1", st.State, st.AdvertsReceived, st.BecameMaster)
	}

	// The sender works: the same advert, well formed, makes the router back off.
	s.send(t, marshal(good, nil), RequiredTTL)
	waitFor(t, "router backing off", func() bool { return r.State() == Backup })
	if got := r.Stats().AdvertsReceived; got != 1 {
		t.Errorf("accepted adverts = %d, want 1", got)
	}
	if got := r.Stats().Dropped; !maps.Equal(got, want) {
		t.Errorf("drops = %v, want %v", got, want)
	}
}

// arpFrame is one ARP frame seen on the wire.
type arpFrame struct {
	at             time.Time
	ethDst, ethSrc net.HardwareAddr
	op             uint16
	sha, tha       net.HardwareAddr
	spa, tpa       netip.Addr
}

// listenARP captures ARP frames on h's eth0 until the test ends.
func listenARP(t *testing.T, h *labHost) <-chan arpFrame {
	t.Helper()
	frames := make(chan arpFrame, 100)
	var fd int
	var err error
	opened := make(chan struct{})
	h.do(func() {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err == nil {
			var ifi *net.Interface
			if ifi, err = net.InterfaceByName("eth0"); err == nil {
				err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index})
			}
		}
		close(opened)
		if err != nil {
			return
		}
		buf := make([]byte, 1500)
		for {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				close(frames)
				return
			}
			if n < 42 {
				continue
			}
			f := buf[:n]
			a := f[14:]
			spa, _ := netip.AddrFromSlice(a[14:18])
			tpa, _ := netip.AddrFromSlice(a[24:28])
			frames <- arpFrame{
				at: time.Now(), ethDst: bytes.Clone(f[0:6]), ethSrc: bytes.Clone(f[6:12]),
				op: binary.BigEndian.Uint16(a[6:]), sha: bytes.Clone(a[8:14]), tha: bytes.Clone(a[18:24]),
				spa: spa, tpa: tpa,
			}
		}
	})
	<-opened
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Shutdown(fd, unix.SHUT_RDWR)
		unix.Close(fd)
	})
	return frames
}

// TestGratuitousARP: a new master broadcasts GARPRepeat ARP replies per address from
// its own MAC, sender and target both the address, and a second burst GARPDelay later.
func TestGratuitousARP(t *testing.T) {
	l, cfg := peers(t, "router", "watcher")
	router, watcher := l.host("router"), l.host("watcher")
	frames := listenARP(t, watcher)
	cfg.GARPRepeat, cfg.GARPDelay = 5, 300*time.Millisecond
	mac := router.mac()
	vip := l.vip(0).Addr()
	r, _ := router.run(cfg)

	var seen []arpFrame
	deadline := time.After(20 * time.Second)
	for len(seen) < 10 {
		select {
		case f := <-frames:
			if f.spa == vip {
				seen = append(seen, f)
			}
		case <-deadline:
			t.Fatalf("saw %d gratuitous ARPs for %s, want 10", len(seen), vip)
		}
	}
	broadcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for i, f := range seen {
		if !bytes.Equal(f.ethDst, broadcast) || !bytes.Equal(f.ethSrc, mac) || f.op != 2 ||
			!bytes.Equal(f.sha, mac) || !bytes.Equal(f.tha, mac) || f.tpa != vip {
			t.Errorf("ARP %d: %+v; want a broadcast reply from %s for %s", i, f, mac, vip)
		}
	}
	if gap := seen[5].at.Sub(seen[4].at); gap < cfg.GARPDelay/2 {
		t.Errorf("second burst %v after the first, want about %v", gap, cfg.GARPDelay)
	}
	if got := r.Stats().GARPSent; got != 10 {
		t.Errorf("GARPSent = %d, want 10", got)
	}
}
