package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// advertConn sends and receives advertisements on one interface over a raw IPv4
// socket of protocol 112. Reads and writes may run on different goroutines.
type advertConn struct {
	raw  net.PacketConn
	pc   *ipv4.PacketConn
	ifi  *net.Interface
	src  netip.Addr
	dsts []netip.Addr
}

// openAdvertConn opens the socket in the calling goroutine's network namespace, joins
// the VRRP group on ifi (unless peers replace multicast) and sends with TTL 255 from src.
func openAdvertConn(ifi *net.Interface, src netip.Addr, peers []netip.Addr) (*advertConn, error) {
	raw, err := net.ListenPacket(fmt.Sprintf("ip4:%d", IPProtocol), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("vrrp: open raw socket: %w", err)
	}
	c := &advertConn{raw: raw, pc: ipv4.NewPacketConn(raw), ifi: ifi, src: src, dsts: peers}
	setup := []error{
		c.pc.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true),
		c.pc.SetMulticastTTL(RequiredTTL),
		c.pc.SetTTL(RequiredTTL),
		c.pc.SetMulticastInterface(ifi),
		// Peers on other hosts hear the group; our own adverts looping back would only
		// be dropped again.
		c.pc.SetMulticastLoopback(false),
	}
	if len(peers) == 0 {
		c.dsts = []netip.Addr{GroupIPv4}
		setup = append(setup, c.pc.JoinGroup(ifi, &net.IPAddr{IP: GroupIPv4.AsSlice()}))
	}
	if err := errors.Join(setup...); err != nil {
		raw.Close()
		return nil, fmt.Errorf("vrrp: set up raw socket on %s: %w", ifi.Name, err)
	}
	return c, nil
}

// send sends a to every destination.
func (c *advertConn) send(a Advertisement) error {
	var errs []error
	for _, dst := range c.dsts {
		b, err := Marshal(a, c.src, dst)
		if err != nil {
			return err
		}
		cm := &ipv4.ControlMessage{Src: c.src.AsSlice(), IfIndex: c.ifi.Index}
		if _, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			errs = append(errs, fmt.Errorf("send advertisement to %s: %w", dst, err))
		}
	}
	return errors.Join(errs...)
}

// packet is one received IP payload with what its header and control message said.
type packet struct {
	payload  []byte
	ttl      int
	src, dst netip.Addr
	ifIndex  int
}

// read blocks for the next packet; it fails for good once the conn is closed.
func (c *advertConn) read(buf []byte) (packet, error) {
	n, cm, from, err := c.pc.ReadFrom(buf)
	if err != nil {
		return packet{}, err
	}
	p := packet{payload: buf[:n]}
	if ipa, ok := from.(*net.IPAddr); ok {
		p.src, _ = netip.AddrFromSlice(ipa.IP.To4())
	}
	if cm != nil {
		p.ttl, p.ifIndex = cm.TTL, cm.IfIndex
		p.dst, _ = netip.AddrFromSlice(cm.Dst.To4())
	}
	return p, nil
}

func (c *advertConn) close() error { return c.raw.Close() }

// garpSender broadcasts gratuitous ARPs on one interface through an AF_PACKET socket.
type garpSender struct {
	fd      int
	ifindex int
	mac     net.HardwareAddr
}

// openGARP opens a send-only packet socket (protocol 0 receives nothing) in the calling
// goroutine's network namespace.
func openGARP(ifi *net.Interface) (*garpSender, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("vrrp: interface %s has no Ethernet address for gratuitous ARP", ifi.Name)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("vrrp: open packet socket: %w", err)
	}
	return &garpSender{fd: fd, ifindex: ifi.Index, mac: ifi.HardwareAddr}, nil
}

// send broadcasts one ARP reply for vip from the interface's MAC: sender and target are
// both vip and the interface, which is what Linux takes as gratuitous and lets replace
// a fresh neighbour entry at once.
func (g *garpSender) send(vip netip.Addr) error {
	frame := garpFrame(g.mac, vip)
	to := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  g.ifindex,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	if err := unix.Sendto(g.fd, frame, 0, to); err != nil {
		return fmt.Errorf("send gratuitous ARP for %s: %w", vip, err)
	}
	return nil
}

func (g *garpSender) close() error { return unix.Close(g.fd) }

// garpFrame is an Ethernet broadcast carrying an ARP reply (RFC 826) in which mac
// announces vip, padded to Ethernet's 60-byte minimum.
func garpFrame(mac net.HardwareAddr, vip netip.Addr) []byte {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_ARP)
	arp := f[14:]
	binary.BigEndian.PutUint16(arp[0:], 1) // Ethernet
	binary.BigEndian.PutUint16(arp[2:], unix.ETH_P_IP)
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:], 2) // reply
	ip := vip.As4()
	copy(arp[8:14], mac)
	copy(arp[14:18], ip[:])
	copy(arp[18:24], mac)
	copy(arp[24:28], ip[:])
	return f
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// vipSet adds and removes the virtual addresses on one link through a netlink handle
// bound to the network namespace it was opened in. The addresses are leased: added with
// a valid lifetime that the master renews as it advertises, so the kernel takes them off
// a master that died without removing them (killed, or its process frozen), instead of
// answering ARP for them next to the new master.
type vipSet struct {
	h       *netlink.Handle
	link    netlink.Link
	vips    []netip.Prefix
	lease   time.Duration
	renewed time.Time
}

// vipLease is how long a master's addresses outlive its last renewal: three
// advertisement intervals, and at least the kernel's granularity of whole seconds with
// room for a late renewal.
func vipLease(advertInterval time.Duration) time.Duration {
	lease := (3*advertInterval + time.Second - 1).Truncate(time.Second)
	return max(lease, 2*time.Second)
}

func openVIPSet(ifname string, vips []netip.Prefix, lease time.Duration) (*vipSet, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vrrp: netlink: %w", err)
	}
	link, err := h.LinkByName(ifname)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("vrrp: link %s: %w", ifname, err)
	}
	return &vipSet{h: h, link: link, vips: vips, lease: lease}, nil
}

// add puts every virtual address on the link, or renews its lease if it is there.
func (v *vipSet) add() error {
	seconds := int(v.lease / time.Second)
	for _, p := range v.vips {
		a := nlAddr(p)
		a.ValidLft, a.PreferedLft = seconds, seconds
		if err := v.h.AddrReplace(v.link, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", p, v.link.Attrs().Name, err)
		}
	}
	v.renewed = time.Now()
	return nil
}

// renew renews the addresses' lease when a quarter of it has passed.
func (v *vipSet) renew() error {
	if time.Since(v.renewed) < v.lease/4 {
		return nil
	}
	return v.add()
}

// remove takes every virtual address off the link; one already gone is fine.
func (v *vipSet) remove() error {
	var errs []error
	for _, p := range v.vips {
		err := v.h.AddrDel(v.link, nlAddr(p))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("remove %s from %s: %w", p, v.link.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

func (v *vipSet) close() { v.h.Close() }

func nlAddr(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

// primaryAddr is the interface's first IPv4 address that is not a virtual one: the
// source of advertisements and the tie-breaker between equal priorities.
func primaryAddr(ifi *net.Interface, vips []netip.Prefix) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("vrrp: addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipn.IP.To4())
		if !ok || isVIP(addr, vips) {
			continue
		}
		return addr, nil
	}
	return netip.Addr{}, fmt.Errorf("vrrp: interface %s has no IPv4 address of its own", ifi.Name)
}

func isVIP(addr netip.Addr, vips []netip.Prefix) bool {
	for _, p := range vips {
		if p.Addr() == addr {
			return true
		}
	}
	return false
}
