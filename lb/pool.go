package lb

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// deadlineConn keeps an inactivity timeout on a connection without a call per read or
// write: a deadline is pushed forward only once a quarter of its timeout has passed
// since it was set, so a peer silent for between three quarters of the timeout and the
// whole of it is timed out. A zero timeout leaves that direction's deadline as set.
// It is used by one reader and one writer goroutine at a time.
type deadlineConn struct {
	net.Conn
	readTimeout, writeTimeout time.Duration
	// readRefresh and writeRefresh are when (Unix nanoseconds) the deadline set last is
	// pushed forward again.
	readRefresh, writeRefresh int64
	// aborted: reads fail from now on (set from another goroutine than the reader's).
	aborted atomic.Bool
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.readTimeout > 0 {
		if now := time.Now(); now.UnixNano() > c.readRefresh {
			_ = c.Conn.SetReadDeadline(now.Add(c.readTimeout))
			c.readRefresh = now.UnixNano() + int64(c.readTimeout/4)
		}
	}
	// Checked after the deadline is pushed, so that abort's past deadline is either
	// set after that push or seen here.
	if c.aborted.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	return c.Conn.Read(p)
}

// abort makes the reader's read in progress, and every read after it, fail.
func (c *deadlineConn) abort() {
	c.aborted.Store(true)
	_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		if now := time.Now(); now.UnixNano() > c.writeRefresh {
			_ = c.Conn.SetWriteDeadline(now.Add(c.writeTimeout))
			c.writeRefresh = now.UnixNano() + int64(c.writeTimeout/4)
		}
	}
	return c.Conn.Write(p)
}

// readFor makes reads time out after d of inactivity, from the next read on; the
// deadline in force is kept when d is already the timeout.
func (c *deadlineConn) readFor(d time.Duration) {
	if c.readTimeout != d {
		c.readTimeout, c.readRefresh = d, 0
	}
}

// readUntil makes reads time out at t, whatever happens before.
func (c *deadlineConn) readUntil(t time.Time) {
	c.readTimeout = 0
	_ = c.Conn.SetReadDeadline(t)
}

// Buffer sizes of the proxy's connections.
const (
	// readBufferSize holds a typical request or response head with room to spare, and a
	// request body up to this size is sent in one piece (and can be sent again to
	// another backend).
	readBufferSize  = 16 << 10
	writeBufferSize = 16 << 10
)

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}
	// copyBuffers are the bodies' copy buffers.
	copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

func getReader(r *deadlineConn) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func getWriter(w *deadlineConn) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putBuffers(br *bufio.Reader, bw *bufio.Writer) {
	br.Reset(nil)
	bw.Reset(nil)
	readers.Put(br)
	writers.Put(bw)
}

// backendConn is a connection to a backend, idle in its backend's pool or carrying one
// request at a time.
type backendConn struct {
	conn net.Conn
	dc   deadlineConn
	br   *bufio.Reader
	bw   *bufio.Writer
	// idleSince is when (Unix nanoseconds) it went back to the pool; used counts the
	// requests it finished.
	idleSince int64
	used      int
}

// connPool is a backend's idle keep-alive connections, most recently used last.
type connPool struct {
	mu   sync.Mutex
	idle []*backendConn
	// closed: the backend left the table; connections coming back are closed. Set
	// under mu, read without it by the loops.
	closed atomic.Bool
}

// staleCheckAfter is how long a pooled connection may idle before it is checked for a
// close by its backend before use: backends close idle connections after seconds, not
// milliseconds, and the check costs a system call.
const staleCheckAfter = time.Second

// getConn takes an idle connection to b, or dials one. reused tells which. Idle ones
// past the idle timeout, or that the backend closed, are closed and skipped. A request
// that cannot be sent again (check) has the connection checked whatever its idle time.
func (s *Server) getConn(b *backend, check bool) (bc *backendConn, reused bool, err error) {
	now := time.Now().UnixNano()
	for {
		b.pool.mu.Lock()
		n := len(b.pool.idle)
		if n == 0 {
			b.pool.mu.Unlock()
			break
		}
		bc = b.pool.idle[n-1]
		b.pool.idle[n-1] = nil
		b.pool.idle = b.pool.idle[:n-1]
		b.pool.mu.Unlock()
		idle := now - bc.idleSince
		if idle > int64(s.cfg.IdleTimeout) || (check || idle > int64(staleCheckAfter)) && !connAlive(bc.conn) {
			s.closeConn(bc)
			continue
		}
		return bc, true, nil
	}
	c, err := s.dialer.Dial("tcp", b.addr)
	if err != nil {
		return nil, false, err
	}
	if !s.track(c) {
		c.Close()
		return nil, false, errClosed
	}
	bc = &backendConn{conn: c}
	bc.dc = deadlineConn{Conn: newSockConn(c), readTimeout: s.cfg.ServerTimeout, writeTimeout: s.cfg.ServerTimeout}
	bc.br, bc.bw = getReader(&bc.dc), getWriter(&bc.dc)
	return bc, false, nil
}

// spent tells whether a backend connection that carried used requests has carried its
// last (Config.MaxRequestsPerBackendConn).
func (s *Server) spent(used int) bool {
	return s.cfg.MaxRequestsPerBackendConn > 0 && used >= s.cfg.MaxRequestsPerBackendConn
}

// errClosed: the server is closing.
var errClosed = errors.New("lb: server closed")

// putConn gives a connection that finished a request back to b's pool, or closes it
// when that was its last request, the pool is full or b left the table.
func (s *Server) putConn(b *backend, bc *backendConn) {
	bc.idleSince = time.Now().UnixNano()
	if bc.used++; s.spent(bc.used) {
		s.closeConn(bc)
		return
	}
	b.pool.mu.Lock()
	if b.pool.closed.Load() || len(b.pool.idle) >= s.cfg.MaxIdlePerBackend {
		b.pool.mu.Unlock()
		s.closeConn(bc)
		return
	}
	b.pool.idle = append(b.pool.idle, bc)
	b.pool.mu.Unlock()
}

func (s *Server) closeConn(bc *backendConn) {
	s.untrack(bc.conn)
	putBuffers(bc.br, bc.bw)
	bc.br, bc.bw = nil, nil
}

// closePool closes b's idle connections; with retire, those in use are closed when
// their requests end.
func (s *Server) closePool(b *backend, retire bool) {
	b.pool.mu.Lock()
	idle := b.pool.idle
	b.pool.idle = nil
	if retire {
		b.pool.closed.Store(true)
	}
	b.pool.mu.Unlock()
	for _, bc := range idle {
		s.closeConn(bc)
	}
	if retire && s.tcp != nil {
		for _, l := range s.tcp.loops {
			l.post(func() { l.dropIdle(b) })
		}
	}
}

// connAlive tells whether an idle connection is still open with nothing to read: a
// backend's close (or a byte it should not have sent) shows without waiting.
func connAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		alive = fdAlive(int(fd))
		return true
	})
	return err == nil && alive
}
