package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Protocol constants of RFC 5798.
const (
	// IPProtocol is VRRP's IP protocol number (IPv4 protocol, IPv6 next header).
	IPProtocol = 112
	// Version is the VRRP version this package speaks.
	Version = 3
	// TypeAdvertisement is the only VRRP packet type.
	TypeAdvertisement = 1
	// RequiredTTL is the TTL (IPv4) or hop limit (IPv6) every advertisement is sent
	// with; anything else may have crossed a router and is dropped (RFC 5798 §5.1.1.3).
	RequiredTTL = 255
	// OwnerPriority is the priority of the router that owns the virtual addresses.
	OwnerPriority = 255
	// ResignPriority is the priority a master sends when it stops being master.
	ResignPriority = 0
	// MaxAdvertInterval is the largest advertisement interval the 12-bit field holds,
	// in centiseconds.
	MaxAdvertInterval = 0x0fff

	headerLen = 8
)

// Multicast groups advertisements are sent to.
var (
	GroupIPv4 = netip.AddrFrom4([4]byte{224, 0, 0, 18})
	GroupIPv6 = netip.MustParseAddr("ff02::12")
)

// Errors Parse returns; each names one reason a packet is dropped.
var (
	ErrTruncated = errors.New("vrrp: packet shorter than its header or address list")
	ErrVersion   = errors.New("vrrp: version is not 3")
	ErrType      = errors.New("vrrp: type is not ADVERTISEMENT")
	ErrChecksum  = errors.New("vrrp: bad checksum")
	ErrFamily    = errors.New("vrrp: source and destination are not one address family")
)

// Advertisement is a VRRPv3 ADVERTISEMENT (RFC 5798 §5.2).
type Advertisement struct {
	// VRID is the virtual router the packet speaks for.
	VRID uint8
	// Priority is the sender's priority: 255 owner, 1–254 backup, 0 resigning master.
	Priority uint8
	// MaxAdvertInterval is the sender's advertisement interval in centiseconds (12 bits).
	MaxAdvertInterval uint16
	// Addrs are the virtual addresses, all of the packet's address family.
	Addrs []netip.Addr
}

// Marshal encodes a as sent from src to dst (their family picks IPv4 or IPv6 addresses
// and the checksum's pseudo-header).
func Marshal(a Advertisement, src, dst netip.Addr) ([]byte, error) {
	is4, err := family(src, dst)
	if err != nil {
		return nil, err
	}
	if a.MaxAdvertInterval > MaxAdvertInterval {
		return nil, fmt.Errorf("vrrp: marshal: interval %d cs exceeds %d", a.MaxAdvertInterval, MaxAdvertInterval)
	}
	if len(a.Addrs) > 255 {
		return nil, fmt.Errorf("vrrp: marshal: %d addresses, at most 255 fit", len(a.Addrs))
	}
	size := addrSize(is4)
	b := make([]byte, headerLen, headerLen+len(a.Addrs)*size)
	b[0] = Version<<4 | TypeAdvertisement
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addrs))
	binary.BigEndian.PutUint16(b[4:], a.MaxAdvertInterval)
	for _, addr := range a.Addrs {
		if addr.Is4() != is4 || addr.Is4In6() {
			return nil, fmt.Errorf("vrrp: marshal: address %s is not of the packet's family", addr)
		}
		b = append(b, addr.AsSlice()...)
	}
	binary.BigEndian.PutUint16(b[6:], checksum(b, src, dst))
	return b, nil
}

// Parse decodes b, the payload of an IP packet from src to dst. It checks what the
// packet says about itself (version, type, length, checksum); TTL, VRID and address
// list are the receiver's checks.
func Parse(b []byte, src, dst netip.Addr) (Advertisement, error) {
	is4, err := family(src, dst)
	if err != nil {
		return Advertisement{}, err
	}
	if len(b) < headerLen {
		return Advertisement{}, ErrTruncated
	}
	if v := b[0] >> 4; v != Version {
		return Advertisement{}, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	if t := b[0] & 0x0f; t != TypeAdvertisement {
		return Advertisement{}, fmt.Errorf("%w: %d", ErrType, t)
	}
	count, size := int(b[3]), addrSize(is4)
	// Trailing bytes past the address list would change the checksum but not the
	// meaning; RFC 5798 sizes the packet by the count, so they are an error too.
	if len(b) != headerLen+count*size {
		return Advertisement{}, fmt.Errorf("%w: %d bytes for %d addresses", ErrTruncated, len(b), count)
	}
	if checksum(b, src, dst) != 0 {
		return Advertisement{}, ErrChecksum
	}
	a := Advertisement{
		VRID:              b[1],
		Priority:          b[2],
		MaxAdvertInterval: binary.BigEndian.Uint16(b[4:]) & MaxAdvertInterval,
		Addrs:             make([]netip.Addr, 0, count),
	}
	for off := headerLen; off < len(b); off += size {
		addr, _ := netip.AddrFromSlice(b[off : off+size])
		a.Addrs = append(a.Addrs, addr)
	}
	return a, nil
}

// family reports whether src and dst are IPv4 (false: IPv6), or ErrFamily.
func family(src, dst netip.Addr) (bool, error) {
	switch {
	case src.Is4() && dst.Is4():
		return true, nil
	case src.Is6() && dst.Is6() && !src.Is4In6() && !dst.Is4In6():
		return false, nil
	}
	return false, fmt.Errorf("%w: %v to %v", ErrFamily, src, dst)
}

func addrSize(is4 bool) int {
	if is4 {
		return 4
	}
	return 16
}

// checksum is the Internet checksum (RFC 1071) of b behind the pseudo-header of its IP
// packet from src to dst (RFC 5798 §5.2.8: RFC 2460's for IPv6, and the IPv4 one as
// keepalived and routers compute it for VRRPv3). Over a packet whose checksum field is
// filled in it is 0 when the field is right.
func checksum(b []byte, src, dst netip.Addr) uint16 {
	var sum uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	s, d := src.AsSlice(), dst.AsSlice()
	add(s)
	add(d)
	sum += IPProtocol + uint32(len(b))
	add(b)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
