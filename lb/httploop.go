package lb

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The HTTP path of the event loops: a connection accepted on an HTTP service port stays
// on the loop that accepted it, which reads its requests, sends each to a backend over a
// keep-alive connection of the loop's own pool and relays the response, without a
// goroutine per connection (the TCP path's reasons, tcpproxy.go). It serves the usual
// requests: HTTP/1.1, a body of known length that arrives with its head (or soon after)
// or none, to a service without access rules or credentials. Anything else is handed
// over, before a byte of it has gone anywhere, to the goroutine path (http.go), which
// then serves the connection to its end: HTTP/1.0, chunked or large request bodies,
// Expect, upgrades, malformed requests (which it refuses with its status), services
// with an allow list or basic auth, backends named by host name, and requests that
// every backend tried refused or failed when they may be sent again (the goroutine path
// queues for a newer table and answers 503 when none comes). Responses of every framing
// are relayed: Content-Length, chunked (decoded and chunked again, as the goroutine
// path does), until close, interim 1xx.

// Phases of a loop HTTP connection.
const (
	// hReading: reading a request head (and its body).
	hReading = iota
	// hConnecting: connecting to a backend.
	hConnecting
	// hExchanging: sending the request, then relaying the response.
	hExchanging
	// hClosing: the response is out but for what the client has not taken yet; the
	// connection closes once it has.
	hClosing
	hClosed
)

// Phases of a response being relayed.
const (
	rHead = iota
	rLength
	rChunkSize
	rChunkData
	rChunkEnd
	rTrailers
	rUntilClose
)

// hconn is a client's HTTP connection on a loop, and its exchange in progress.
type hconn struct {
	l      *loop
	fd     int
	key    string
	ip     netip.Addr
	ipText string
	phase  int

	// in holds what was read from the client and not yet answered, from the current
	// request's first byte (a pooled buffer, nil while empty).
	in    []byte
	inBuf *[]byte
	// reqLen is the current request's length in in (head and body), once it is whole;
	// bodyAt is where its body starts.
	reqLen, bodyAt int
	// scanned is how much of in was looked at for the end of a head.
	scanned int
	req     request
	// out is what the client could not take yet.
	out    []byte
	outBuf *[]byte
	// What the sockets' events said since, as for a TCP session.
	clientIn, clientOut, clientEnd bool
	serverIn, serverOut, serverEnd bool

	// The exchange: the service, the backend tried and its connection (-1 for none).
	svc    *service
	b      *backend
	bfd    int
	bused  int // the requests bfd carried before this one
	cookie string
	// hostKey is scratch space for the virtual host looked up.
	hostKey  []byte
	start    time.Time
	tried    []*backend
	triedBuf [4]*backend
	// send is the request as it goes to the backend; sent how much of it went.
	send []byte
	sent int
	// emitted: part of the response went to the client, so a failure can only end the
	// connection.
	emitted bool
	// rin holds backend bytes read but not yet relayed (a head or chunk line that came
	// in pieces).
	rin        []byte
	rinBuf     *[]byte
	resp       response
	rphase     int
	left       int64 // the Content-Length body's or the chunk's bytes still to come
	trailers   []byte
	code       int
	closeAfter bool
	relayed    int64
	queued     bool
	tm         timerEntry
	// tmKind is what the timer is for, so that it is not pushed back on every event.
	tmKind int
}

// Kinds of an hconn's timer.
const (
	tmNone = iota
	tmIdle
	tmHead
	tmDial
	tmServer
	tmClient
)

func (c *hconn) timer() *timerEntry { return &c.tm }

// requestBuffers hold a request (head and body) while it is answered: as the goroutine
// path's read buffer, room for the usual request; a larger one is handed over.
var requestBuffers = sync.Pool{New: func() any { b := make([]byte, readBufferSize); return &b }}

// idleConn is a keep-alive connection to a backend in a loop's pool.
type idleConn struct {
	fd    int
	used  int // requests it carried
	since int64
}

// startHTTP serves a connection accepted on an HTTP service port.
func (l *loop) startHTTP(fd int, ip netip.Addr, key string) {
	c := &hconn{l: l, fd: fd, key: key, ip: ip, ipText: ip.String(), bfd: -1, tm: timerEntry{index: -1}}
	if err := l.register(fd, slot{kind: slotHTTP, hc: c}, connEvents); err != nil {
		l.closeClient(fd)
		return
	}
	c.arm(tmIdle, l.s.cfg.IdleTimeout)
}

// arm sets the connection's timer for kind to fire d from now, unless a timer of that
// kind is set already and has more than three quarters of d to go.
func (c *hconn) arm(kind int, d time.Duration) {
	at := c.l.now + int64(d)
	if c.tmKind == kind && c.tm.index >= 0 && c.tm.at-c.l.now > int64(d)*3/4 {
		return
	}
	c.tmKind = kind
	c.l.setTimer(c, at)
}

func (c *hconn) disarm() {
	c.tmKind = tmNone
	c.l.stopTimer(c)
}

func (c *hconn) clientEvent(ev uint32) {
	noteEvents(ev, &c.clientIn, &c.clientOut, &c.clientEnd)
	c.run()
}

func (c *hconn) serverEvent(ev uint32) {
	noteEvents(ev, &c.serverIn, &c.serverOut, &c.serverEnd)
	if c.phase == hConnecting {
		if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			if err := socketErr(c.bfd); err != nil {
				c.dropBackend()
				c.l.s.eject(c.b, err)
				c.connectNext()
				c.run()
				return
			}
		} else if ev&unix.EPOLLOUT == 0 {
			return
		}
		c.phase = hExchanging
	}
	c.run()
}

// run goes as far as the sockets let it.
func (c *hconn) run() {
	for range transferBudget {
		before := c.phase
		progressed := false
		switch c.phase {
		case hReading:
			progressed = c.readRequest()
		case hExchanging:
			progressed = c.exchange()
		case hClosing:
			if !c.flush() || len(c.out) == 0 {
				c.close()
			}
			return
		default:
			return
		}
		if !progressed && c.phase == before {
			return
		}
	}
	// Budget spent: the loop comes back to it after the others.
	c.l.enqueue(c, &c.queued)
}

func (c *hconn) resume() {
	c.queued = false
	if c.phase != hClosed {
		c.run()
	}
}

// readRequest reads until a request is whole and starts its exchange; false when it
// must wait.
func (c *hconn) readRequest() bool {
	l := c.l
	if len(c.out) > 0 {
		// The last response first: the next request waits until the client took it.
		if !c.flush() {
			c.close()
			return false
		}
		if len(c.out) > 0 {
			c.arm(tmClient, l.s.cfg.ClientTimeout)
			return false
		}
	}
	for c.reqLen == 0 {
		if c.parse() {
			break
		}
		if c.phase != hReading {
			return false // handed over or closed
		}
		if !c.clientIn {
			if len(c.in) == 0 {
				c.releaseIn()
				c.arm(tmIdle, l.s.cfg.IdleTimeout)
			} else if c.tmKind != tmHead {
				// From the head's first byte, never pushed back.
				c.arm(tmHead, l.s.cfg.HeaderTimeout)
			}
			return false
		}
		if c.inBuf == nil {
			c.inBuf = requestBuffers.Get().(*[]byte)
			c.in = (*c.inBuf)[:0]
		}
		if len(c.in) == cap(c.in) {
			c.handOver() // a head or body larger than the loop's buffer
			return false
		}
		n, errno := rawRecv(c.fd, c.in[len(c.in):cap(c.in)])
		switch {
		case errno == syscall.EAGAIN:
			c.clientIn = false
			continue
		case errno != 0 || n == 0:
			// The client left (a request cut short is not answered, as on the
			// goroutine path).
			c.close()
			return false
		}
		if len(c.in)+n < cap(c.in) && !c.clientEnd {
			c.clientIn = false
		}
		c.in = c.in[:len(c.in)+n]
	}
	return c.begin()
}

// parse parses the request at the start of in once its head is whole; true when the
// request (with its body) is whole. A request the loop does not serve is handed over.
func (c *hconn) parse() bool {
	r := &c.req
	// Parsed only once an empty line came: a head trickling in is not scanned again
	// and again from its start.
	from := max(c.scanned-2, 0)
	c.scanned = len(c.in)
	if !bytes.Contains(c.in[from:], []byte("\n\n")) && !bytes.Contains(c.in[from:], []byte("\n\r\n")) {
		return false
	}
	n, err := headFrom(c.in, &r.head)
	if errors.Is(err, errIncomplete) {
		return false
	}
	if err == nil {
		if err = r.parseRequest(); err == nil {
			err = r.analyze()
		}
	}
	if err != nil || r.minor != 1 || r.expect || r.upgrade != nil || r.chunked {
		c.handOver()
		return false
	}
	c.reqLen, c.bodyAt = n, n
	if r.contentLength > 0 {
		if int64(len(c.in)-n) < r.contentLength {
			// A body still on its way is streamed to the backend by the goroutine
			// path, as it comes.
			c.handOver()
			return false
		}
		c.reqLen += int(r.contentLength)
	}
	return true
}

// begin starts the exchange of the whole request at the start of in.
func (c *hconn) begin() bool {
	s, r := c.l.s, &c.req
	var svc *service
	svc, c.hostKey = s.routes.Load().route(c.key, r, c.hostKey)
	if svc == nil || svc.auth != nil || len(svc.allowed) > 0 || c.key == vhostListener && svc.def.RedirectToHTTPS {
		// No service (503), access rules, credentials, a redirect: the goroutine
		// path answers.
		c.handOver()
		return false
	}
	c.svc, c.emitted, c.code, c.relayed = svc, false, 0, 0
	c.start = time.Unix(0, c.l.now)
	c.cookie = ""
	if svc.def.Sticky {
		c.cookie = stickyValue(r)
	}
	svc.stats.sessions.Add(1)
	svc.stats.active.Add(1)
	c.tried = c.triedBuf[:0]
	c.connectNext()
	return c.phase == hExchanging
}

// connectNext takes a pooled connection to, or connects to, the next backend the
// balance algorithm picks, up to Attempts of them. When none takes the request, the
// goroutine path gets it.
func (c *hconn) connectNext() {
	l, s := c.l, c.l.s
	for len(c.tried) < s.cfg.Attempts {
		b := c.svc.pick(c.ipText, c.cookie, c.tried)
		if b == nil {
			break
		}
		if !b.dialAddr.IsValid() {
			break // a host name: the goroutine path resolves it
		}
		c.tried = append(c.tried, b)
		c.b = b
		b.sessions.Add(1)
		c.send = appendRequestHead(c.send[:0], &c.req, b, c.ipText, false)
		if c.req.contentLength > 0 {
			c.send = append(c.send, c.in[c.bodyAt:c.reqLen]...)
		}
		c.sent, c.rphase = 0, rHead
		if fd, used := l.takeIdle(b, !c.req.idempotent()); fd >= 0 {
			l.slots[fd] = slot{kind: slotHTTPServer, hc: c, gen: l.slots[fd].gen}
			c.useBackend(fd, used)
			c.phase = hExchanging
			c.serverOut = true
			return
		}
		fd, pending, err := l.dial(b.dialAddr, slot{kind: slotHTTPServer, hc: c})
		if err != nil {
			s.eject(b, err)
			continue
		}
		c.useBackend(fd, 0)
		if pending {
			c.phase = hConnecting
			c.arm(tmDial, s.cfg.DialTimeout)
			return
		}
		c.phase = hExchanging
		c.serverOut = true
		return
	}
	c.unbegin()
	c.handOver()
}

// useBackend makes fd, polled for c already, the exchange's backend connection; used
// is how many requests it carried before.
func (c *hconn) useBackend(fd, used int) {
	c.bfd, c.bused = fd, used
	c.serverIn, c.serverOut, c.serverEnd = false, false, false
}

// dropBackend closes the exchange's backend connection.
func (c *hconn) dropBackend() {
	if c.bfd >= 0 {
		c.l.closeFD(c.bfd)
		c.bfd = -1
	}
	c.releaseRin()
}

// unbegin takes back the counts of an exchange the goroutine path takes over.
func (c *hconn) unbegin() {
	c.svc.stats.sessions.Add(^uint64(0))
	c.svc.stats.active.Add(-1)
}

// exchange sends the request and relays the response as far as the sockets let it;
// false when it must wait.
func (c *hconn) exchange() bool {
	s := c.l.s
	if c.bfd < 0 {
		c.backendFailed(errors.New("no connection"))
		return false
	}
	if c.sent < len(c.send) {
		if !c.serverOut {
			c.arm(tmServer, s.cfg.ServerTimeout)
			return false
		}
		n, errno := rawSend(c.bfd, c.send[c.sent:])
		switch {
		case errno == syscall.EAGAIN:
			c.serverOut = false
			return true
		case errno != 0:
			c.backendFailed(os.NewSyscallError("send", errno))
			return false
		}
		c.sent += n
		if c.sent < len(c.send) {
			c.serverOut = false
			return true
		}
		c.b.active.Add(1)
	}
	if len(c.out) > 0 {
		// The client has not taken the last of the response yet.
		if !c.flush() {
			c.abort()
			return false
		}
		if len(c.out) > 0 {
			c.arm(tmClient, s.cfg.ClientTimeout)
			return false
		}
	}
	if !c.serverIn {
		c.arm(tmServer, s.cfg.ServerTimeout)
		return false
	}
	buf := c.l.buf
	n, errno := rawRecv(c.bfd, buf)
	switch {
	case errno == syscall.EAGAIN:
		c.serverIn = false
		return true
	case errno != 0:
		c.backendFailed(os.NewSyscallError("recv", errno))
		return false
	case n == 0:
		if c.rphase == rUntilClose {
			c.finish(false)
			return true
		}
		c.backendFailed(errBackendClosed)
		return false
	}
	if n < len(buf) && !c.serverEnd {
		c.serverIn = false
	}
	data := buf[:n]
	if len(c.rin) > 0 {
		if len(c.rin)+n > cap(c.rin) {
			c.backendFailed(errHeadTooLarge)
			return false
		}
		c.rin = append(c.rin, data...)
		data = c.rin
	}
	out := c.l.obuf[:0]
	used, done, err := c.relay(data, &out)
	c.l.obuf = out[:0]
	if err != nil {
		c.backendFailed(err)
		return false
	}
	rest := data[used:]
	if len(rest) > 0 && !done {
		if c.rinBuf == nil {
			c.rinBuf = pendingBuffers.Get().(*[]byte)
		}
		c.rin = append((*c.rinBuf)[:0], rest...)
	} else {
		c.releaseRin()
	}
	if len(out) > 0 {
		c.emitted = true
		if !c.emit(out) {
			c.abort()
			return false
		}
	}
	if done {
		c.finish(len(rest) == 0 && !c.resp.close)
	}
	return true
}

// errBackendClosed: the backend closed its connection before the response ended.
var errBackendClosed = errors.New("backend closed the connection")

// relay relays the backend bytes in p: it appends what goes to the client to *out and
// returns how many bytes of p it used (the rest is an unfinished line, kept for more)
// and whether the response ended.
func (c *hconn) relay(p []byte, out *[]byte) (used int, done bool, err error) {
	r, resp := &c.req, &c.resp
	for used < len(p) {
		rest := p[used:]
		switch c.rphase {
		case rHead:
			n, err := headFrom(rest, &resp.head)
			if errors.Is(err, errIncomplete) {
				return used, false, nil
			}
			if err == nil {
				if err = resp.parseResponse(); err == nil {
					err = resp.analyze(r.isHead())
				}
			}
			if err != nil {
				return used, false, err
			}
			used += n
			if resp.status < 200 {
				if resp.status == http.StatusSwitchingProtocols {
					return used, false, errUnaskedUpgrade // the request asked for none
				}
				*out = appendInterim(*out, resp)
				continue
			}
			c.code = resp.status
			setCookie := c.svc.def.Sticky && c.cookie != c.b.cookie
			// The client is HTTP/1.1: a chunked body goes out chunked.
			*out, _, c.closeAfter = appendResponseHead(*out, r, resp, c.b, false, setCookie)
			switch {
			case resp.bodyless(r.isHead()):
				return used, true, nil
			case resp.chunked:
				c.rphase, c.trailers = rChunkSize, c.trailers[:0]
			case resp.contentLength >= 0:
				c.rphase, c.left = rLength, resp.contentLength
				if c.left == 0 {
					return used, true, nil
				}
			default:
				c.rphase = rUntilClose
			}
		case rLength:
			n := min(int64(len(rest)), c.left)
			*out = append(*out, rest[:n]...)
			used += int(n)
			c.left -= n
			c.relayed += n
			if c.left == 0 {
				return used, true, nil
			}
		case rUntilClose:
			*out = append(*out, rest...)
			used += len(rest)
			c.relayed += int64(len(rest))
		case rChunkSize:
			line, after, err := cutLine(rest, maxChunkLine, errChunkSize)
			if errors.Is(err, errIncomplete) {
				return used, false, nil
			}
			if err != nil {
				return used, false, err
			}
			size, err := parseChunkLine(line)
			if err != nil {
				return used, false, err
			}
			used += len(rest) - len(after)
			if size == 0 {
				c.rphase = rTrailers
			} else {
				c.rphase, c.left = rChunkData, size
			}
		case rChunkData:
			n := min(int64(len(rest)), c.left)
			*out = appendChunk(*out, rest[:n])
			used += int(n)
			c.left -= n
			c.relayed += n
			if c.left == 0 {
				c.rphase = rChunkEnd
			}
		case rChunkEnd:
			if len(rest) < 2 {
				if rest[0] != '\r' {
					return used, false, errChunkEnd
				}
				return used, false, nil
			}
			if rest[0] != '\r' || rest[1] != '\n' {
				return used, false, errChunkEnd
			}
			used += 2
			c.rphase = rChunkSize
		case rTrailers:
			line, after, err := cutLine(rest, maxTrailerSize, errTrailer)
			if errors.Is(err, errIncomplete) {
				return used, false, nil
			}
			if err != nil {
				return used, false, err
			}
			used += len(rest) - len(after)
			if len(line) == 0 {
				*out = append(append(append(*out, "0\r\n"...), c.trailers...), "\r\n"...)
				return used, true, nil
			}
			if !validTrailerLine(line) || len(c.trailers)+len(line)+2 > maxTrailerSize {
				return used, false, errTrailer
			}
			c.trailers = append(append(c.trailers, line...), '\r', '\n')
		}
	}
	return used, false, nil
}

// errUnaskedUpgrade: a backend switched protocols for a request that asked for none.
var errUnaskedUpgrade = errors.New("backend switched protocols unasked")

// appendChunk appends p as one chunk (nothing for an empty p, which would end the body).
func appendChunk(dst, p []byte) []byte {
	if len(p) == 0 {
		return dst
	}
	dst = strconv.AppendInt(dst, int64(len(p)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, p...)
	return append(dst, '\r', '\n')
}

// emit sends p to the client, keeping what it cannot take yet; false when the client's
// connection failed.
func (c *hconn) emit(p []byte) bool {
	if len(c.out) == 0 && c.clientOut {
		n, errno := rawSend(c.fd, p)
		switch {
		case errno == 0:
			p = p[n:]
		case errno != syscall.EAGAIN:
			return false
		}
		if len(p) > 0 {
			c.clientOut = false
		}
	}
	if len(p) > 0 {
		if c.outBuf == nil {
			c.outBuf = pendingBuffers.Get().(*[]byte)
			c.out = (*c.outBuf)[:0]
		}
		c.out = append(c.out, p...)
	}
	return true
}

// flush sends what the client has not taken yet; false when its connection failed.
func (c *hconn) flush() bool {
	for len(c.out) > 0 && c.clientOut {
		n, errno := rawSend(c.fd, c.out)
		switch {
		case errno == syscall.EAGAIN:
			c.clientOut = false
		case errno != 0:
			return false
		default:
			c.out = c.out[n:]
		}
	}
	if len(c.out) == 0 && c.outBuf != nil {
		c.out = nil
		pendingBuffers.Put(c.outBuf)
		c.outBuf = nil
	}
	return true
}

// finish ends an exchange whose response is wholly relayed (the client may not have
// taken all of it yet): the backend connection goes back to the pool when reusable, and
// the next request is read unless the connection must close.
func (c *hconn) finish(reusable bool) {
	l, s, svc, b := c.l, c.l.s, c.svc, c.b
	b.active.Add(-1)
	svc.stats.active.Add(-1)
	b.responses[codeClass(c.code)].Add(1)
	b.bytesOut.Add(uint64(c.relayed))
	svc.stats.bytesOut.Add(uint64(c.relayed))
	if c.req.contentLength > 0 {
		b.bytesIn.Add(uint64(c.req.contentLength))
		svc.stats.bytesIn.Add(uint64(c.req.contentLength))
	}
	s.finish(svc, c.code, c.start)
	if reusable && c.rphase != rUntilClose {
		l.putIdle(b, c.bfd, c.bused+1)
		c.bfd = -1
	} else {
		c.dropBackend()
	}
	c.releaseRin()
	c.svc, c.b = nil, nil
	if c.closeAfter || c.req.close {
		c.phase = hClosing
		c.arm(tmClient, s.cfg.ClientTimeout)
		return
	}
	c.nextRequest()
}

// nextRequest drops the request answered from in and reads the next one.
func (c *hconn) nextRequest() {
	rest := copy(c.in, c.in[c.reqLen:])
	c.in = c.in[:rest]
	c.reqLen, c.bodyAt, c.scanned = 0, 0, 0
	c.phase = hReading
	if rest == 0 {
		c.releaseIn()
	}
}

// backendFailed handles a backend that failed the exchange: before any of the response
// went to the client, a request that may be sent again goes to the goroutine path
// (which tries the backends again and queues for a newer table), any other is answered
// 502 (504 when the backend was silent too long); after, the client's connection ends.
func (c *hconn) backendFailed(err error) {
	s, svc, b := c.l.s, c.svc, c.b
	s.log.Debug("backend failed", "service", svc.def.Name, "backend", b.addr, "err", err)
	if c.sent == len(c.send) {
		b.active.Add(-1)
	}
	b.failures.Add(1)
	c.dropBackend()
	if c.emitted {
		svc.stats.failures.Add(1)
		s.finish(svc, c.code, c.start)
		svc.stats.active.Add(-1)
		c.svc, c.b = nil, nil
		c.closeNow()
		return
	}
	timeout := errors.Is(err, os.ErrDeadlineExceeded)
	if c.req.idempotent() && !timeout {
		c.unbegin()
		c.svc, c.b = nil, nil
		c.handOver()
		return
	}
	code := http.StatusBadGateway
	if timeout {
		code = http.StatusGatewayTimeout
	}
	svc.stats.failures.Add(1)
	svc.stats.active.Add(-1)
	s.finish(svc, code, c.start)
	c.svc, c.b = nil, nil
	out := appendLocal(c.l.obuf[:0], &c.req, code, "", strconv.Itoa(code)+" "+http.StatusText(code)+"\n", c.req.close)
	c.l.obuf = out[:0]
	if !c.emit(out) {
		c.closeNow()
		return
	}
	if c.req.close {
		c.phase = hClosing
		c.arm(tmClient, s.cfg.ClientTimeout)
		return
	}
	c.nextRequest()
}

// abort ends an exchange whose client failed.
func (c *hconn) abort() {
	if c.svc != nil {
		if c.sent == len(c.send) {
			c.b.active.Add(-1)
		}
		c.svc.stats.active.Add(-1)
		c.l.s.finish(c.svc, c.code, c.start)
		c.svc, c.b = nil, nil
	}
	c.closeNow()
}

// expired: a timer of the connection fired.
func (c *hconn) expired() {
	s := c.l.s
	kind := c.tmKind
	c.tmKind = tmNone
	switch kind {
	case tmIdle, tmHead:
		if c.phase == hReading {
			c.close()
		}
	case tmDial:
		if c.phase == hConnecting {
			c.dropBackend()
			s.eject(c.b, errors.New("connect timed out"))
			c.connectNext()
		}
	case tmServer:
		if c.phase == hExchanging {
			c.backendFailed(os.ErrDeadlineExceeded)
		}
	case tmClient:
		switch c.phase {
		case hExchanging:
			c.abort()
		case hReading, hClosing:
			// A client that does not take its response.
			c.close()
		}
	}
	c.run()
}

// closeNow closes the connection at once, with what the client had not taken.
func (c *hconn) closeNow() {
	c.out = c.out[:0]
	c.close()
}

// close closes the client's connection (and a backend connection still in use).
func (c *hconn) close() {
	if c.phase == hClosed {
		return
	}
	c.phase = hClosed
	c.disarm()
	c.l.closeClient(c.fd)
	c.dropBackend()
	c.releaseIn()
	if c.outBuf != nil {
		pendingBuffers.Put(c.outBuf)
		c.outBuf, c.out = nil, nil
	}
}

func (c *hconn) releaseIn() {
	if c.inBuf != nil {
		requestBuffers.Put(c.inBuf)
		c.inBuf, c.in = nil, nil
	}
}

func (c *hconn) releaseRin() {
	c.rin = nil
	if c.rinBuf != nil {
		pendingBuffers.Put(c.rinBuf)
		c.rinBuf = nil
	}
}

// handOver gives the connection, with what was read of it, to the goroutine path.
func (c *hconn) handOver() {
	l, s := c.l, c.l.s
	s.handovers.Add(1)
	pre := append([]byte(nil), c.in...)
	c.disarm()
	l.unregister(c.fd)
	c.dropBackend()
	c.releaseIn()
	if c.outBuf != nil {
		pendingBuffers.Put(c.outBuf)
		c.outBuf, c.out = nil, nil
	}
	c.phase = hClosed
	l.conns.Add(-1)
	f := os.NewFile(uintptr(c.fd), "")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		s.log.Warn("cannot serve an HTTP connection", "port", c.key, "err", err)
		return
	}
	if !s.track(conn) {
		return
	}
	s.wg.Go(func() { s.serveHTTPConnFrom(conn, c.key, false, pre) })
}

// takeIdle takes a pooled connection to b that is still open, and how many requests it
// carried, or returns -1. A connection for a request that cannot be sent again (check)
// is checked for a close by the backend whatever its idle time.
func (l *loop) takeIdle(b *backend, check bool) (fd, used int) {
	conns := l.idle[b]
	for len(conns) > 0 {
		ic := conns[len(conns)-1]
		conns = conns[:len(conns)-1]
		l.idle[b] = conns
		idle := l.now - ic.since
		if idle > int64(l.s.cfg.IdleTimeout) || (check || idle > int64(staleCheckAfter)) && !fdAlive(ic.fd) || b.retired() {
			l.closeFD(ic.fd)
			continue
		}
		return ic.fd, ic.used
	}
	return -1, 0
}

// putIdle pools a backend connection that finished its used-th request, or closes it
// when that was its last request, the pool is full or b left the table (as putConn does
// on the goroutine path).
func (l *loop) putIdle(b *backend, fd, used int) {
	conns := l.idle[b]
	if l.s.spent(used) || len(conns) >= l.s.cfg.MaxIdlePerBackend || b.retired() {
		l.closeFD(fd)
		return
	}
	l.slots[fd] = slot{kind: slotIdle, b: b, gen: l.slots[fd].gen}
	if l.idle == nil {
		l.idle = map[*backend][]idleConn{}
	}
	l.idle[b] = append(conns, idleConn{fd: fd, used: used, since: l.now})
}

// idleEvent: a pooled connection's backend closed it or sent what it should not have
// (the send buffer emptying, which the request's acknowledgement may report late, is
// no reason to close it).
func (l *loop) idleEvent(fd int, b *backend, ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	conns := l.idle[b]
	for i, ic := range conns {
		if ic.fd == fd {
			conns = append(conns[:i], conns[i+1:]...)
			break
		}
	}
	if len(conns) == 0 {
		delete(l.idle, b)
	} else {
		l.idle[b] = conns
	}
	l.closeFD(fd)
}

// dropIdle closes the pooled connections to b (which left the table).
func (l *loop) dropIdle(b *backend) {
	for _, ic := range l.idle[b] {
		l.closeFD(ic.fd)
	}
	delete(l.idle, b)
}

// retired tells whether b left the table.
func (b *backend) retired() bool { return b.pool.closed.Load() }

// fdAlive tells whether an idle connection is still open with nothing to read.
func fdAlive(fd int) bool {
	var buf [1]byte
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), 1, unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN
}

// headFrom parses the message head at the start of p into h (as readHead does from a
// reader, skipping empty lines before it) and returns how many bytes of p it took;
// errIncomplete when p ends within it.
func headFrom(p []byte, h *head) (int, error) {
	h.reset()
	start := 0
	for start < len(p) {
		switch {
		case p[start] == '\n':
			start++
			continue
		case p[start] == '\r' && start+1 < len(p) && p[start+1] == '\n':
			start += 2
			continue
		}
		break
	}
	lineStart := start
	for {
		nl := bytes.IndexByte(p[lineStart:], '\n')
		if nl < 0 {
			break
		}
		i := lineStart + nl
		if i-start >= maxHeadSize {
			return 0, errHeadTooLarge
		}
		line := p[lineStart : i+1]
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			h.buf = append(h.buf, p[start:i+1]...)
			return i + 1, nil
		}
		lineStart = i + 1
	}
	if len(p)-start >= maxHeadSize {
		return 0, errHeadTooLarge
	}
	return 0, errIncomplete
}
