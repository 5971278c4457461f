package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The TCP engine's socket calls. Those made on the hot path are non-blocking and made
// with syscall.RawSyscall6, which does not tell the Go scheduler (see sockConn for why):
// a loopback connect(2) or send(2) runs the peer's TCP processing in the caller's
// context and may last longer than the 20 µs after which the runtime hands the
// processor of a goroutine in a system call to another thread.

// rawRecv reads from a non-blocking socket.
func rawRecv(fd int, p []byte) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0, 0, 0)
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}

// rawSend writes to a non-blocking socket; a peer gone is an error, not a SIGPIPE.
func rawSend(fd int, p []byte) (int, syscall.Errno) {
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), syscall.MSG_NOSIGNAL, 0, 0)
		if errno != syscall.EINTR {
			return int(n), errno
		}
	}
}

// rawAccept takes a connection off a listening socket with flags (SOCK_NONBLOCK,
// SOCK_CLOEXEC) and returns it with its peer's address.
func rawAccept(fd, flags int) (int, netip.Addr, syscall.Errno) {
	var sa unix.RawSockaddrAny
	size := uint32(unsafe.Sizeof(sa))
	for {
		nfd, _, errno := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), uintptr(flags), 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return -1, netip.Addr{}, errno
		}
		return int(nfd), sockaddrIP(&sa), 0
	}
}

// sockaddrIP is the address of an AF_INET or AF_INET6 socket address (IPv4-mapped ones
// unmapped), zero for another family.
func sockaddrIP(sa *unix.RawSockaddrAny) netip.Addr {
	switch sa.Addr.Family {
	case unix.AF_INET:
		return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr)
	case unix.AF_INET6:
		return netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(sa)).Addr).Unmap()
	}
	return netip.Addr{}
}

// rawConnect starts a non-blocking connect(2) to ap: 0 when connected at once,
// EINPROGRESS when under way.
func rawConnect(fd int, ap netip.AddrPort) syscall.Errno {
	var sa unix.RawSockaddrAny
	size := fillSockaddr(&sa, ap)
	for {
		_, _, errno := syscall.RawSyscall(syscall.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(size))
		if errno != syscall.EINTR {
			return errno
		}
	}
}

// fillSockaddr writes ap into sa in its family's form and returns its length.
func fillSockaddr(sa *unix.RawSockaddrAny, ap netip.AddrPort) uint32 {
	port := ap.Port()
	if ip := ap.Addr(); ip.Is4() {
		sin := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sin.Family = unix.AF_INET
		sin.Port = port<<8 | port>>8
		sin.Addr = ip.As4()
		return unix.SizeofSockaddrInet4
	}
	sin6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
	sin6.Family = unix.AF_INET6
	sin6.Port = port<<8 | port>>8
	sin6.Addr = ap.Addr().As16()
	if zone := ap.Addr().Zone(); zone != "" {
		if ifi, err := net.InterfaceByName(zone); err == nil {
			sin6.Scope_id = uint32(ifi.Index)
		} else if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
			sin6.Scope_id = uint32(n)
		}
	}
	return unix.SizeofSockaddrInet6
}

// familyOf is the socket family for ip.
func familyOf(ip netip.Addr) int {
	if ip.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// socketErr reads and clears a socket's pending error (a connect that failed), nil
// without one.
func socketErr(fd int) error {
	var v int32
	size := uint32(4)
	_, _, errno := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&size)), 0)
	switch {
	case errno != 0:
		return errno
	case v != 0:
		return syscall.Errno(v)
	}
	return nil
}

// setInt sets an integer socket option without telling the scheduler (it never blocks).
func setInt(fd, level, name, value int) error {
	v := int32(value)
	_, _, errno := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name), uintptr(unsafe.Pointer(&v)), 4, 0)
	if errno != 0 {
		return os.NewSyscallError("setsockopt", errno)
	}
	return nil
}

// Keep-alive probes, as net's defaults: idle client connections are probed after 15 s,
// backend ones after 30 s (the Dialer's KeepAlive the HTTP path uses too).
const (
	clientKeepAlive  = 15
	backendKeepAlive = 30
)

// setKeepAlive turns TCP keep-alive on with the idle time and interval secs.
func setKeepAlive(fd, secs int) error {
	for _, o := range []struct{ level, name, value int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs},
	} {
		if err := setInt(fd, o.level, o.name, o.value); err != nil {
			return err
		}
	}
	return nil
}

// backendSocket makes a non-blocking socket for a connection to ip: no Nagle delay, as
// net.Dial's, and keep-alive.
func backendSocket(ip netip.Addr) (int, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_SOCKET, uintptr(familyOf(ip)), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("socket", errno)
	}
	fd := int(r)
	err := setInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err == nil {
		err = setKeepAlive(fd, backendKeepAlive)
	}
	if err != nil {
		rawClose(fd)
		return -1, err
	}
	return fd, nil
}

// rawListener is a listening socket of a service port, owned by the TCP engine: every
// loop of the engine polls it.
type rawListener struct {
	key string
	// kind is the listener kind of a virtual host or app id port (whose connections
	// are all HTTP), "" for a service port.
	kind string
	fd   int
	// refs counts the loops still holding it.
	refs atomic.Int32
}

// listenTCP binds and listens on key (host:port, an empty host for every address, a
// name resolved to its first IPv4 address, else its first). The socket is
// non-blocking and set up once for what connections accepted from it inherit: no Nagle
// delay and keep-alive, as net.Listen's connections have.
func listenTCP(ctx context.Context, key string) (*rawListener, error) {
	host, portText, err := net.SplitHostPort(key)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portText, err)
	}
	ip := netip.IPv6Unspecified()
	if host != "" {
		if ip, err = resolveHost(ctx, host); err != nil {
			return nil, err
		}
	}
	fd, err := listenSocket(netip.AddrPortFrom(ip, uint16(port)))
	if err != nil && host == "" && (errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPROTONOSUPPORT)) {
		// No IPv6 on this host: every IPv4 address then.
		fd, err = listenSocket(netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port)))
	}
	if err != nil {
		return nil, err
	}
	return &rawListener{key: key, fd: fd}, nil
}

// listenSocket makes the listening socket for ap (the unspecified IPv6 address takes
// IPv4 connections too).
func listenSocket(ap netip.AddrPort) (int, error) {
	fd, err := unix.Socket(familyOf(ap.Addr()), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	opts := []struct{ level, name, value int }{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	}
	if ap.Addr().Is6() && ap.Addr().IsUnspecified() {
		opts = append(opts, struct{ level, name, value int }{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0})
	}
	for _, o := range opts {
		if err = setInt(fd, o.level, o.name, o.value); err != nil {
			break
		}
	}
	if err == nil {
		err = setKeepAlive(fd, clientKeepAlive)
	}
	if err == nil {
		var sa unix.RawSockaddrAny
		size := fillSockaddr(&sa, ap)
		if _, _, errno := syscall.Syscall(syscall.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(size)); errno != 0 {
			err = os.NewSyscallError("bind", errno)
		}
	}
	if err == nil {
		if err = unix.Listen(fd, unix.SOMAXCONN); err != nil {
			err = os.NewSyscallError("listen", err)
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// resolveHost is host's address: host itself when it is an IP address, else the first
// IPv4 address it resolves to, else its first.
func resolveHost(ctx context.Context, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			return ip.Unmap(), nil
		}
	}
	if len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("%s has no address", host)
	}
	return ips[0], nil
}
