package lb

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// sockConn is a TCP connection whose reads and writes are non-blocking system calls
// made without telling the Go scheduler (syscall.RawSyscall6), waiting for readiness
// through the runtime's poller as net.Conn does (so deadlines and Close still end a
// wait). They are recvfrom(2) and sendto(2), which skip the file layer read(2) and
// write(2) go through. A loopback or LAN write runs the receiver's TCP processing in the sender's
// context and often lasts longer than the 20 µs after which the runtime's monitor takes
// the processor of a goroutine in a system call and hands it to another thread: for a
// proxy doing nothing but such calls that is a thread wake-up and a context switch per
// request, and the monitor itself then wakes every 20 µs. The calls never block, so the
// goroutine keeps its processor instead.
//
// One goroutine may read while another writes, as with any net.Conn.
type sockConn struct {
	*net.TCPConn
	rc syscall.RawConn
	// The read in progress: its buffer, what it read, its error.
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	// The write in progress: its buffer, how much of it is written, its error.
	wbuf   []byte
	wn     int
	werrno syscall.Errno
	// readFn and writeFn are the calls handed to rc, bound once (a closure per call
	// would be an allocation per read and write).
	readFn, writeFn func(fd uintptr) bool
}

// newSockConn wraps a TCP connection; any other connection is returned as it is.
func newSockConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	sc := &sockConn{TCPConn: tc, rc: rc}
	sc.readFn, sc.writeFn = sc.read, sc.write
	return sc
}

func (c *sockConn) read(fd uintptr) bool {
	for {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.rbuf))), uintptr(len(c.rbuf)), 0, 0, 0)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerrno = int(n), errno
		return true
	}
}

func (c *sockConn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		rest := c.wbuf[c.wn:]
		n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(rest))), uintptr(len(rest)), syscall.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = errno
			return true
		}
	}
	return true
}

// Read reads as net.Conn's Read does.
func (c *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	case c.rerrno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", c.rerrno)}
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

// Write writes all of p, as net.Conn's Write does.
func (c *sockConn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	switch {
	case err != nil:
		return c.wn, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	case c.werrno != 0:
		return c.wn, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", c.werrno)}
	}
	return c.wn, nil
}

// bulkAfter is how many bytes a stream carries before pump takes it for a bulk one.
const bulkAfter = 64 << 10

// pump copies src to dst until src ends and returns how much it copied. A stream starts
// through a buffer, read and written with sockConn's system calls (small exchanges,
// such as a request and its response, cost no more); past bulkAfter bytes the rest goes
// by splice(2) between TCP connections, without copying through user space.
func pump(dst, src net.Conn) int64 {
	bp := copyBuffers.Get().(*[]byte)
	buf := *bp
	r, w := newSockConn(src), newSockConn(dst)
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				copyBuffers.Put(bp)
				return n
			}
			n += int64(m)
		}
		if err != nil {
			copyBuffers.Put(bp)
			return n
		}
		if n >= bulkAfter {
			break
		}
	}
	copyBuffers.Put(bp)
	bulk, _ := io.Copy(dst, src)
	return n + bulk
}
