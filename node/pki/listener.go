package pki

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// SplitTLS shares one listener between TLS and plain connections, told apart by their
// first byte (a TLS handshake record starts with 22): a master serves its API over TLS
// and, on the same port, what a machine without credentials fetches over plain HTTP
// (`curl http://master:5050/install.sh | sh`). Closing either listener closes both and
// ln. A connection that sends nothing within sniffTimeout is closed.
func SplitTLS(ln net.Listener) (tlsConns, plainConns net.Listener) {
	s := &splitter{ln: ln, done: make(chan struct{})}
	s.tls = &splitListener{s: s, conns: make(chan net.Conn)}
	s.plain = &splitListener{s: s, conns: make(chan net.Conn)}
	go s.acceptLoop()
	return s.tls, s.plain
}

// sniffTimeout bounds the wait for a connection's first byte, as an HTTP server's
// ReadHeaderTimeout bounds the wait for a request.
const sniffTimeout = 10 * time.Second

// tlsHandshakeRecord is the content type of the record every TLS connection starts with.
const tlsHandshakeRecord = 0x16

type splitter struct {
	ln         net.Listener
	tls, plain *splitListener
	done       chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

func (s *splitter) acceptLoop() {
	backoff := 5 * time.Millisecond
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				_ = s.close()
				return
			}
			// Out of file descriptors and the like pass: wait, as net/http does.
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		go s.route(conn)
	}
}

// route reads conn's first byte and hands conn to the listener it belongs to.
func (s *splitter) route(conn net.Conn) {
	var first [1]byte
	if err := conn.SetReadDeadline(time.Now().Add(sniffTimeout)); err != nil {
		conn.Close()
		return
	}
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		conn.Close()
		return
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		conn.Close()
		return
	}
	target := s.plain
	if first[0] == tlsHandshakeRecord {
		target = s.tls
	}
	select {
	case target.conns <- &peekedConn{Conn: conn, first: first[0], pending: true}:
	case <-s.done:
		conn.Close()
	}
}

func (s *splitter) close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = s.ln.Close()
	})
	return s.closeErr
}

// splitListener is one side of a SplitTLS.
type splitListener struct {
	s     *splitter
	conns chan net.Conn
}

func (l *splitListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}

func (l *splitListener) Close() error   { return l.s.close() }
func (l *splitListener) Addr() net.Addr { return l.s.ln.Addr() }

// peekedConn gives back the byte SplitTLS read before the rest of the connection.
type peekedConn struct {
	net.Conn
	first   byte
	pending bool
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if !c.pending || len(p) == 0 {
		return c.Conn.Read(p)
	}
	p[0] = c.first
	c.pending = false
	return 1, nil
}
