package vipproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addresses puts VIP addresses on the node, so that the proxy can listen on them and the
// node takes their traffic: its own, and that of the containers it routes. The proxy
// calls its methods from one goroutine at a time.
type Addresses interface {
	// Add puts a on the node; Remove takes it off again.
	Add(a netip.Addr) error
	Remove(a netip.Addr) error
	// Close takes every address off and releases what holds them.
	Close() error
}

// Local is Addresses for addresses the node already has, such as loopback's
// 127.0.0.0/8: it changes nothing, so it needs no privilege (tests, and nodes whose VIPs
// are routed to them some other way).
type Local struct{}

// Add does nothing: a is already local.
func (Local) Add(netip.Addr) error { return nil }

// Remove does nothing.
func (Local) Remove(netip.Addr) error { return nil }

// Close does nothing.
func (Local) Close() error { return nil }

// DefaultInterface is the dummy interface the node's VIP addresses are put on.
const DefaultInterface = "atoll-vip0"

// Dummy puts the addresses on a dummy interface of its own, as /32s: the kernel then
// delivers their traffic locally, whichever interface it comes in on. A kernel built
// without the dummy driver gets a bridge without ports instead, which holds local
// addresses the same way. It needs CAP_NET_ADMIN.
type Dummy struct {
	h    *netlink.Handle
	link netlink.Link
}

// NewDummy creates the dummy interface name and brings it up. An interface of that name
// left by a node that did not stop cleanly is taken over, without its addresses.
func NewDummy(name string) (*Dummy, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	d := &Dummy{h: h}
	if err := d.open(name); err != nil {
		h.Close()
		return nil, err
	}
	return d, nil
}

func (d *Dummy) open(name string) error {
	link, err := d.h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		attrs := netlink.LinkAttrs{Name: name}
		err := d.h.LinkAdd(&netlink.Dummy{LinkAttrs: attrs})
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = d.h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
		}
		if err != nil {
			return fmt.Errorf("create dummy interface %s: %w", name, err)
		}
		if link, err = d.h.LinkByName(name); err != nil {
			return fmt.Errorf("dummy interface %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("interface %s: %w", name, err)
	case link.Type() != "dummy" && link.Type() != "bridge":
		return fmt.Errorf("interface %s exists and is a %s interface, not a dummy one", name, link.Type())
	default:
		addrs, err := d.h.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("addresses of %s: %w", name, err)
		}
		for _, a := range addrs {
			if err := d.h.AddrDel(link, &a); err != nil {
				return fmt.Errorf("remove the old address %s from %s: %w", a.IPNet, name, err)
			}
		}
	}
	d.link = link
	if err := d.h.LinkSetUp(link); err != nil {
		_ = d.h.LinkDel(link)
		return fmt.Errorf("bring %s up: %w", name, err)
	}
	return nil
}

// Name is the interface's name.
func (d *Dummy) Name() string { return d.link.Attrs().Name }

// Add puts a on the interface.
func (d *Dummy) Add(a netip.Addr) error {
	if err := d.h.AddrReplace(d.link, hostAddr(a)); err != nil {
		return fmt.Errorf("add %s to %s: %w", a, d.Name(), err)
	}
	return nil
}

// Remove takes a off the interface; an address that is not there is fine.
func (d *Dummy) Remove(a netip.Addr) error {
	err := d.h.AddrDel(d.link, hostAddr(a))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s from %s: %w", a, d.Name(), err)
	}
	return nil
}

// Close deletes the interface, and with it every address.
func (d *Dummy) Close() error {
	defer d.h.Close()
	if err := d.h.LinkDel(d.link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s: %w", d.Name(), err)
	}
	return nil
}

// hostAddr is a as a one-address prefix.
func hostAddr(a netip.Addr) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
}

var (
	_ Addresses = Local{}
	_ Addresses = (*Dummy)(nil)
)
