package network

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
)

// ErrNoAddress is returned by Attach when every address of the subnet is leased.
var ErrNoAddress = errors.New("no free address")

// ipam leases task addresses from a subnet. Each lease is a symlink in dir, named by the
// address and pointing at the owner's container id: creating a symlink is atomic and fails
// when the name exists, so two allocations never get one address, even from two processes,
// and leases outlive the agent with nothing else to write. Safe for concurrent use.
type ipam struct {
	dir         string
	subnet      netip.Prefix
	first, last netip.Addr // the leasable range: the subnet less its network, gateway and broadcast addresses

	mu   sync.Mutex
	next netip.Addr // where the next search starts, so a freed address is not handed out again at once
}

// newIPAM leases addresses of subnet, after its network address and the gateway (its
// first host address), up to the address before its broadcast address.
func newIPAM(dir string, subnet netip.Prefix) (*ipam, error) {
	subnet = subnet.Masked()
	first := subnet.Addr().Next().Next()
	last := broadcast(subnet).Prev()
	if !subnet.Contains(first) || last.Less(first) {
		return nil, fmt.Errorf("subnet %s has no address for tasks", subnet)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lease dir: %w", err)
	}
	return &ipam{dir: dir, subnet: subnet, first: first, last: last, next: first}, nil
}

// broadcast is the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	for i := 3; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		a[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	return netip.AddrFrom4(a)
}

// size is how many addresses can be leased.
func (p *ipam) size() int {
	a, b := p.first.As4(), p.last.As4()
	return int(be32(b)-be32(a)) + 1
}

func be32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

// allocate leases a free address to owner.
func (p *ipam) allocate(owner string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := p.next
	for range p.size() {
		err := os.Symlink(owner, filepath.Join(p.dir, addr.String()))
		if err == nil {
			p.next = p.after(addr)
			return addr, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return netip.Addr{}, fmt.Errorf("lease %s: %w", addr, err)
		}
		addr = p.after(addr)
	}
	return netip.Addr{}, fmt.Errorf("%w in %s: all %d task addresses are leased", ErrNoAddress, p.subnet, p.size())
}

// after is the leasable address following a, wrapping around.
func (p *ipam) after(a netip.Addr) netip.Addr {
	if a == p.last {
		return p.first
	}
	return a.Next()
}

// leases maps each leased address to its owner.
func (p *ipam) leases() (map[netip.Addr]string, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	out := make(map[netip.Addr]string, len(entries))
	for _, e := range entries {
		addr, err := netip.ParseAddr(e.Name())
		if err != nil {
			continue // not a lease
		}
		owner, err := os.Readlink(filepath.Join(p.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read lease %s: %w", addr, err)
		}
		out[addr] = owner
	}
	return out, nil
}

// release frees every address owner holds; releasing nothing is not an error.
func (p *ipam) release(owner string) error {
	leases, err := p.leases()
	if err != nil {
		return err
	}
	var errs []error
	for addr, o := range leases {
		if o != owner {
			continue
		}
		if err := os.Remove(filepath.Join(p.dir, addr.String())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("release %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}
