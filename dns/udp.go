package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// udpBatch is the most datagrams one system call reads (recvmmsg) or writes (sendmmsg).
// Under load a socket's queue holds many queries, and two system calls for all of them
// instead of two per query is much of the CPU a query costs; 64 keeps a batch's buffers
// (64 × maxQuerySize) small.
const udpBatch = 64

// headerSize is the length of a DNS message header.
const headerSize = 12

// oobSize holds the control messages of one query: IP_PKTINFO, IPV6_PKTINFO, or both
// (what a dual-stack socket gets for an IPv4 query).
var oobSize = unix.CmsgSpace(unix.SizeofInet4Pktinfo) + unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// mmsghdr is the kernel's struct mmsghdr: one datagram of a recvmmsg or sendmmsg.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// mmsgs are the headers of a batch of datagrams with their buffers, made once and
// reused batch after batch. The headers point into the other slices.
type mmsgs struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	addrs []unix.RawSockaddrInet6
	oobs  [][]byte
}

func newMmsgs(oob int) *mmsgs {
	m := &mmsgs{hdrs: make([]mmsghdr, udpBatch), iovs: make([]unix.Iovec, udpBatch),
		addrs: make([]unix.RawSockaddrInet6, udpBatch), oobs: make([][]byte, udpBatch)}
	for i := range udpBatch {
		h := &m.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&m.addrs[i]))
		h.Iov = &m.iovs[i]
		h.SetIovlen(1)
		if oob > 0 {
			m.oobs[i] = make([]byte, oob)
		}
	}
	return m
}

// setBuffer makes buf datagram i's payload.
func (m *mmsgs) setBuffer(i int, buf []byte) {
	m.iovs[i].Base = unsafe.SliceData(buf)
	m.iovs[i].SetLen(len(buf))
}

// setControl makes the first n bytes of datagram i's control buffer its control messages.
func (m *mmsgs) setControl(i, n int) {
	h := &m.hdrs[i].hdr
	h.Control = nil
	if n > 0 {
		h.Control = &m.oobs[i][0]
	}
	h.SetControllen(n)
}

// udpLoop serves one UDP socket: it reads a batch of queries, answers them one after the
// other from the answer table into buffers of its own, and writes the answers in one
// batch. Queries for upstreams are answered by goroutines of their own, so a slow
// upstream holds up no other query. Buffers, the query and the reply are reused batch
// after batch: an answer of the fast path (answerWire) allocates nothing; other queries
// are unpacked and answered by the general path.
//
// The answers are the ones ServeDNS gives, and what miekg/dns's server does with a
// datagram that is no query (no reply, FORMERR or NOTIMP) is done here the same way.
//
// The system calls are made without telling the Go scheduler (RawSyscall): the socket
// is non-blocking, so they never wait, and a batch's sendmmsg takes long enough (the
// kernel delivers each datagram on loopback within it) that the scheduler would hand
// the loop's P to another thread meanwhile, costing a thread switch per batch.
type udpLoop struct {
	s    *Server
	conn *net.UDPConn
	raw  syscall.RawConn
	// pktinfo is set when the socket listens on every address: each answer then leaves
	// from the address its query was sent to, as the client expects (the kernel would
	// pick one by route otherwise).
	pktinfo bool

	in, out *mmsgs
	// queries[i] is the buffer in's datagram i is read into; answers[i] the one out's
	// datagram i is packed into.
	queries, answers [][]byte
	req              *mdns.Msg
	reply            reply
	scratch          wireScratch

	// The state of the system call being made, and the functions making it, bound once.
	pending            []mmsghdr
	done               int
	errno              syscall.Errno
	recvmmsg, sendmmsg func(fd uintptr) bool
}

func newUDPLoop(s *Server, conn *net.UDPConn) (*udpLoop, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	l := &udpLoop{s: s, conn: conn, raw: raw, req: new(mdns.Msg)}
	local, _ := conn.LocalAddr().(*net.UDPAddr)
	l.pktinfo = local != nil && local.IP.IsUnspecified()
	oob := 0
	if l.pktinfo {
		oob = oobSize
	}
	l.in, l.out = newMmsgs(oob), newMmsgs(oob)
	l.queries, l.answers = make([][]byte, udpBatch), make([][]byte, udpBatch)
	for i := range udpBatch {
		l.queries[i] = make([]byte, maxQuerySize)
		l.in.setBuffer(i, l.queries[i])
		l.answers[i] = make([]byte, 0, 1024)
	}
	l.recvmmsg = func(fd uintptr) bool { return l.call(unix.SYS_RECVMMSG, fd) }
	l.sendmmsg = func(fd uintptr) bool { return l.call(unix.SYS_SENDMMSG, fd) }
	return l, nil
}

// call makes the system call trap (recvmmsg or sendmmsg) for l.pending on fd; false
// when it would have to wait (RawConn.Read and Write then wait for the socket).
func (l *udpLoop) call(trap, fd uintptr) bool {
	for {
		n, _, errno := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&l.pending[0])), uintptr(len(l.pending)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		l.done, l.errno = int(n), errno
		return true
	}
}

// serve answers queries until the socket is closed (nil) or fails. ctx bounds the
// exchanges with upstreams.
func (l *udpLoop) serve(ctx context.Context) error {
	for {
		n, err := l.read()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		answers := 0
		for i := range n {
			h := &l.in.hdrs[i]
			oob := l.in.oobs[i][:h.hdr.Controllen]
			packed := l.handle(ctx, l.queries[i][:h.n], i, oob, answers)
			if packed == nil {
				continue
			}
			l.out.setBuffer(answers, packed)
			l.out.addrs[answers] = l.in.addrs[i]
			l.out.hdrs[answers].hdr.Namelen = h.hdr.Namelen
			reply := 0
			if l.pktinfo {
				reply = len(appendSource(l.out.oobs[answers][:0], oob))
			}
			l.out.setControl(answers, reply)
			answers++
		}
		if err := l.write(answers); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
	}
}

// read waits for queries and reads as many as are there, up to a batch.
func (l *udpLoop) read() (int, error) {
	for i := range udpBatch {
		h := &l.in.hdrs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.Flags = 0
		l.in.setControl(i, len(l.in.oobs[i]))
	}
	l.pending = l.in.hdrs
	if err := l.raw.Read(l.recvmmsg); err != nil {
		return 0, err
	}
	if l.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", l.errno)
	}
	return l.done, nil
}

// write sends the first n answers, as many per system call as the kernel takes. An
// answer the kernel refuses is dropped, as a lost datagram would be: the client asks
// again.
func (l *udpLoop) write(n int) error {
	hdrs := l.out.hdrs[:n]
	for len(hdrs) > 0 {
		l.pending = hdrs
		if err := l.raw.Write(l.sendmmsg); err != nil {
			return err
		}
		if l.errno != 0 {
			hdrs = hdrs[1:]
			continue
		}
		hdrs = hdrs[l.done:]
	}
	return nil
}

// handle answers the datagram raw, in's datagram i, received with the control messages
// oob: it returns the answer packed into the answer buffer slot, or nil when there is
// none to send now (no answer, or an upstream's coming later).
func (l *udpLoop) handle(ctx context.Context, raw []byte, i int, oob []byte, slot int) []byte {
	if len(raw) < headerSize {
		// Not even a header: no answer, it could only be used for amplification.
		return nil
	}
	if packed, ok := l.s.answerWire(raw, l.answers[slot][:0], &l.scratch); ok {
		l.keep(packed, slot)
		return packed
	}
	req := l.req
	*req = mdns.Msg{}
	hdr := mdns.Header{Id: binary.BigEndian.Uint16(raw), Bits: binary.BigEndian.Uint16(raw[2:]),
		Qdcount: binary.BigEndian.Uint16(raw[4:]), Ancount: binary.BigEndian.Uint16(raw[6:]),
		Nscount: binary.BigEndian.Uint16(raw[8:]), Arcount: binary.BigEndian.Uint16(raw[10:])}
	switch action := mdns.DefaultMsgAcceptFunc(hdr); action {
	case mdns.MsgIgnore:
		return nil
	case mdns.MsgAccept:
		if err := req.Unpack(raw); err != nil {
			return l.reject(req, false, slot)
		}
	default:
		// The header alone, as miekg/dns's server answers it.
		_ = req.Unpack(raw[:headerSize])
		return l.reject(req, action == mdns.MsgRejectNotImplemented, slot)
	}
	packed, out := l.s.answer(&l.reply, req, l.s.udpSize(req), l.answers[slot])
	l.reply.reset()
	if out == outForwarded {
		addr := sockaddrUDP(&l.in.addrs[i])
		if addr == nil {
			return nil
		}
		l.req = new(mdns.Msg)
		w := &udpWriter{conn: l.conn, addr: addr}
		if l.pktinfo {
			w.oob = appendSource(nil, oob)
		}
		l.s.forwards.Go(func() { l.s.forward(ctx, w, req, false) })
		return nil
	}
	l.keep(packed, slot)
	return packed
}

// reject makes the answer to a datagram that is no query the server takes: FORMERR, or
// NOTIMP for an opcode other than QUERY and NOTIFY, with req's header and question (what
// of it could be read).
func (l *udpLoop) reject(req *mdns.Msg, notImplemented bool, slot int) []byte {
	opcode := req.Opcode
	req.SetRcodeFormatError(req)
	req.Zero = false
	if notImplemented {
		req.Opcode = opcode
		req.Rcode = mdns.RcodeNotImplemented
	}
	req.Answer, req.Ns, req.Extra = nil, nil, nil
	packed, err := req.PackBuffer(l.answers[slot][:cap(l.answers[slot])])
	if err != nil {
		return nil
	}
	l.keep(packed, slot)
	return packed
}

// keep makes packed slot's buffer for the next answers, unless it grew too big to hold.
func (l *udpLoop) keep(packed []byte, slot int) {
	if packed != nil && cap(packed) <= maxPooledBuf {
		l.answers[slot] = packed[:0]
	}
}

// sockaddrUDP returns the address recvmmsg wrote to sa (an IPv4 or IPv6 socket address);
// nil when it is neither.
func sockaddrUDP(sa *unix.RawSockaddrInet6) *net.UDPAddr {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	var ip netip.Addr
	switch sa.Family {
	case unix.AF_INET:
		ip = netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr)
	case unix.AF_INET6:
		ip = netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			ip = ip.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
	default:
		return nil
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port))
}

// udpWriter sends one answer from an upstream to a UDP client.
type udpWriter struct {
	conn *net.UDPConn
	addr *net.UDPAddr
	oob  []byte
}

func (w *udpWriter) WriteMsg(m *mdns.Msg) error {
	packed, err := m.Pack()
	if err != nil {
		return err
	}
	_, _, err = w.conn.WriteMsgUDP(packed, w.oob, w.addr)
	return err
}

// appendSource appends to b the control message that sends an answer from the address
// the query was sent to, as received in the query's control messages oob; it appends
// nothing when they hold no such address. An IPv4 address (also when a dual-stack socket
// reports it as IPv4-mapped IPv6) goes in IP_PKTINFO, an IPv6 one in IPV6_PKTINFO.
func appendSource(b, oob []byte) []byte {
	dst, ok := queryDst(oob)
	if !ok {
		return b
	}
	if dst.Is4() || dst.Is4In6() {
		var pi unix.Inet4Pktinfo
		pi.Spec_dst = dst.Unmap().As4()
		return appendCmsg(b, unix.IPPROTO_IP, unix.IP_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&pi)), unix.SizeofInet4Pktinfo))
	}
	var pi unix.Inet6Pktinfo
	pi.Addr = dst.As16()
	return appendCmsg(b, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unsafe.Slice((*byte)(unsafe.Pointer(&pi)), unix.SizeofInet6Pktinfo))
}

// queryDst returns the address a query was sent to, from its control messages:
// IPV6_PKTINFO's when there is one, else IP_PKTINFO's.
func queryDst(oob []byte) (netip.Addr, bool) {
	var v4 netip.Addr
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || uint64(h.Len) > uint64(len(oob)) {
			break
		}
		data := oob[unix.CmsgLen(0):h.Len]
		switch {
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom16(pi.Addr), true
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			v4 = netip.AddrFrom4(pi.Addr)
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return v4, v4.IsValid()
}

// appendCmsg appends one control message.
func appendCmsg(b []byte, level, typ int32, data []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, unix.CmsgSpace(len(data)))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[start]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[start+unix.CmsgLen(0):], data)
	return b
}
