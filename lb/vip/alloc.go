package vip

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"slices"
)

// Allocate gives each of names an address of the range, as a function of the names and
// taken alone, so that every DNS server and balancer in the cluster computes the same
// addresses without talking to each other. A name's address is the one its FNV-1a hash
// picks among the range's usable addresses (all but the network and broadcast
// addresses); names are placed in sorted order, and one whose address is taken — by an
// address VIP in taken or a name placed before it — takes the next free one, wrapping
// around. Names left when the range is full are returned in left, sorted.
//
// A name keeps its address as names come and go, unless a new name that sorts before it
// hashes to the same address; in a range as large as the default one that is rare.
func Allocate(r netip.Prefix, names []string, taken []netip.Addr) (addrs map[string]netip.Addr, left []string) {
	first, size := usable(r)
	used := make(map[uint32]bool, len(taken)+len(names))
	for _, a := range taken {
		if off, ok := offset(first, size, a); ok {
			used[off] = true
		}
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	addrs = make(map[string]netip.Addr, len(sorted))
	for _, name := range sorted {
		if uint64(len(used)) >= size {
			left = append(left, name)
			continue
		}
		off := uint32(hash(name) % size)
		for used[off] {
			off = uint32((uint64(off) + 1) % size)
		}
		used[off] = true
		addrs[name] = addrAt(first + off)
	}
	return addrs, left
}

// usable returns the first usable address of r as a number and how many there are; none
// when r is not an IPv4 prefix.
func usable(r netip.Prefix) (first uint32, size uint64) {
	if !r.Addr().Is4() {
		return 0, 0
	}
	base := r.Masked().Addr().As4()
	first = binary.BigEndian.Uint32(base[:])
	size = uint64(1) << (32 - r.Bits())
	if r.Bits() <= 30 {
		return first + 1, size - 2
	}
	return first, size
}

// offset returns where a is among the usable addresses, if it is one of them.
func offset(first uint32, size uint64, a netip.Addr) (uint32, bool) {
	if !a.Is4() {
		return 0, false
	}
	b := a.As4()
	n := binary.BigEndian.Uint32(b[:])
	if n < first || uint64(n-first) >= size {
		return 0, false
	}
	return n - first, true
}

func addrAt(n uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}

// hash is the FNV-1a hash of a name: fixed by its specification, so every node and
// every version of Atoll places names alike.
func hash(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

// InRange reports whether a is one of r's usable addresses.
func InRange(r netip.Prefix, a netip.Addr) bool {
	first, size := usable(r)
	_, ok := offset(first, size, a)
	return ok
}
