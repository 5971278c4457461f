package lb

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// The goroutine HTTP path: each client connection it serves (TLS once its handshake is
// done, or one the loops' HTTP path handed over, httploop.go) is served by one goroutine that reads a request head, routes it, and forwards it over
// a pooled keep-alive connection to the backend picked, relaying the response as it
// comes; a request body that is not already wholly read is streamed to the backend by a
// second goroutine while the first waits for the response. Bodies are never held whole:
// they pass through fixed buffers. A WebSocket (or any) upgrade the backend accepts
// becomes a tunnel of both connections.

// clientConn is a client's HTTP connection and the state reused by its requests.
type clientConn struct {
	s *Server
	// conn is the connection requests are read from and responses written to (TLS or
	// TCP); dc wraps it with the inactivity deadlines.
	conn     net.Conn
	dc       deadlineConn
	br       *bufio.Reader
	bw       *bufio.Writer
	listener string
	tls      bool
	// addr is the client's address; ip its text, as X-Forwarded-For and source
	// balancing take it.
	addr netip.Addr
	ip   string

	req  request
	resp response
	// reqChunked decodes a chunked request body, respChunked a chunked response's: the
	// two may be read at once.
	reqChunked, respChunked chunkedReader
	// body is a request body already read whole, framed as it is sent on; data and
	// trailers are scratch space for decoding one.
	body, data, trailers []byte
	// hostKey is scratch space for the virtual host looked up.
	hostKey []byte
	tried   []*backend
}

// serveHTTPConn serves a client's connection until it ends or is ended.
func (s *Server) serveHTTPConn(raw net.Conn, listener string, isTLS bool) {
	s.serveHTTPConnFrom(raw, listener, isTLS, nil)
}

// serveHTTPConnFrom serves a client's connection of which pre was read already (by the
// loops' HTTP path, which handed it over).
func (s *Server) serveHTTPConnFrom(raw net.Conn, listener string, isTLS bool, pre []byte) {
	defer s.untrack(raw)
	c := &clientConn{s: s, conn: newSockConn(raw), listener: listener, tls: isTLS}
	if len(pre) > 0 {
		c.conn = &prefixConn{Conn: c.conn, pre: pre}
	}
	if ap, err := netip.ParseAddrPort(raw.RemoteAddr().String()); err == nil {
		c.addr = ap.Addr().Unmap()
		c.ip = c.addr.String()
	}
	if isTLS {
		tc := tls.Server(c.conn, s.tlsConf)
		_ = raw.SetDeadline(time.Now().Add(s.cfg.HeaderTimeout))
		if err := tc.Handshake(); err != nil {
			s.log.Debug("TLS handshake failed", "client", c.ip, "err", err)
			return
		}
		_ = raw.SetDeadline(time.Time{})
		c.conn = tc
	}
	c.dc = deadlineConn{Conn: c.conn, writeTimeout: s.cfg.ClientTimeout}
	c.br, c.bw = getReader(&c.dc), getWriter(&c.dc)
	defer func() { putBuffers(c.br, c.bw) }()
	for c.serveRequest() {
	}
}

// serveRequest serves the next request; false when the connection is done.
func (c *clientConn) serveRequest() bool {
	s, r := c.s, &c.req
	c.dc.readFor(s.cfg.IdleTimeout)
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	start := time.Now()
	if !headBuffered(c.br) {
		// A head that did not come in one piece: the rest of it must come in time.
		c.dc.readUntil(start.Add(s.cfg.HeaderTimeout))
	}
	err := readHead(c.br, &r.head)
	if err == nil {
		if err = r.parseRequest(); err == nil {
			err = r.analyze()
		}
	}
	if err != nil {
		c.refuse(err)
		return false
	}
	if r.hasBody() {
		c.dc.readFor(s.cfg.ClientTimeout)
	}

	rt := s.routes.Load()
	svc := c.route(rt)
	if svc == nil {
		s.metrics.unrouted.Inc()
		return c.local(nil, start, http.StatusServiceUnavailable, "", "503 Service Unavailable: no service routes this request\n")
	}
	svc.stats.sessions.Add(1)
	if c.listener == vhostListener && svc.def.RedirectToHTTPS {
		// As marathon-lb's frontend did, before the backend's access rules.
		location := "Location: https://" + hostOnly(string(r.host)) + s.httpsPort + string(r.uri) + "\r\n"
		return c.local(svc, start, http.StatusMovedPermanently, location, "")
	}
	hsts := c.tls && svc.def.UseHSTS
	var extra string
	if hsts {
		extra = hstsHeader + ": " + hstsValue + "\r\n"
	}
	if !svc.allows(c.addr) {
		svc.stats.denied.Add(1)
		return c.local(svc, start, http.StatusForbidden, extra, "403 Forbidden\n")
	}
	if svc.auth != nil {
		user, password, ok := basicAuth(r)
		if !svc.checkAuth(user, password, ok) {
			extra += `WWW-Authenticate: Basic realm="` + svc.def.Auth.Realm + "\"\r\n"
			return c.local(svc, start, http.StatusUnauthorized, extra, "401 Unauthorized\n")
		}
	}
	return c.forward(svc, start, hsts)
}

// headBuffered tells whether a whole request head is already in br's buffer.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// route finds the service of a request by its listener: the service port's, the
// virtual host and path's, the X-Marathon-App-Id header's.
func (c *clientConn) route(rt *routes) *service {
	var svc *service
	svc, c.hostKey = rt.route(c.listener, &c.req, c.hostKey)
	return svc
}

// route finds the HTTP service of request r on listener (a listener kind, or a service
// port's key), nil for none; hostKey is scratch space for the virtual host, returned for
// reuse.
func (rt *routes) route(listener string, r *request, hostKey []byte) (*service, []byte) {
	switch listener {
	case vhostListener, vhostTLSListener:
		hostKey = appendHostKey(hostKey[:0], r.host)
		return rt.vhost(hostKey, r.path), hostKey
	case appIDListener:
		return rt.appIDs[string(r.value(fieldAppID))], hostKey
	}
	if svc := rt.byListen[listener]; svc != nil && svc.def.Mode == ModeHTTP {
		return svc, hostKey
	}
	return nil, hostKey
}

// value is the first field of kind's value, nil without one.
func (h *head) value(kind fieldKind) []byte {
	for _, f := range h.fields {
		if f.kind == kind {
			return h.bytes(f.value)
		}
	}
	return nil
}

// appendHostKey appends a Host value as the virtual hosts are keyed: without its port
// or a trailing dot, in lower case (hostOnly without allocating).
func appendHostKey(dst, host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		if end := indexByte(host, ']'); end > 0 && end+1 < len(host) && host[end+1] == ':' {
			host = host[1:end]
		}
	} else if i := indexByte(host, ':'); i >= 0 && indexByte(host[i+1:], ':') < 0 {
		host = host[:i]
	}
	if n := len(host); n > 0 && host[n-1] == '.' {
		host = host[:n-1]
	}
	for _, ch := range host {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		dst = append(dst, ch)
	}
	return dst
}

// basicAuth reads the credentials of an "Authorization: Basic" field.
func basicAuth(r *request) (user, password string, ok bool) {
	v := r.value(fieldAuthorization)
	if len(v) < 6 || !equalFold(v[:6], "basic ") {
		return "", "", false
	}
	decoded, err := base64.StdEncoding.DecodeString(string(v[6:]))
	if err != nil {
		return "", "", false
	}
	i := bytes.IndexByte(decoded, ':')
	if i < 0 {
		return "", "", false
	}
	return string(decoded[:i]), string(decoded[i+1:]), true
}

// stickyValue is the request's sticky cookie, "" without one.
func stickyValue(r *request) string {
	for _, f := range r.fields {
		if f.kind != fieldCookie {
			continue
		}
		v := r.bytes(f.value)
		for len(v) > 0 {
			pair := v
			if i := indexByte(v, ';'); i >= 0 {
				pair, v = v[:i], v[i+1:]
			} else {
				v = nil
			}
			pair = trimOWS(pair)
			if name, value, ok := bytes.Cut(pair, []byte("=")); ok && string(name) == stickyCookie {
				return string(bytes.Trim(value, `"`))
			}
		}
	}
	return ""
}

// refuse answers a request that could not be read with its error's status, when it has
// one (a connection that broke or timed out gets nothing).
func (c *clientConn) refuse(err error) {
	var pe *protoError
	if !errors.As(err, &pe) {
		return
	}
	c.s.log.Debug("request refused", "client", c.ip, "status", pe.status, "err", pe.msg)
	c.req.method = span{}
	text := strconv.Itoa(pe.status) + " " + http.StatusText(pe.status)
	if c.writeLocal(pe.status, "", text+": "+pe.msg+"\n", true) == nil {
		c.lingeringClose()
	}
}

// lingerTimeout is how long a connection closed after an error response keeps reading
// what the client still sends: closing with unread bytes would reset the connection,
// and with it the response the client has not read yet.
const lingerTimeout = 500 * time.Millisecond

// lingeringClose ends the sending side and drains the client's until it closes too or
// lingerTimeout passes.
func (c *clientConn) lingeringClose() {
	closeWrite(c.conn)
	c.dc.readUntil(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, c.br)
}

// local answers a request from the load balancer itself and counts it for svc (when
// not nil). The connection goes on unless the client closes it or its body cannot be
// skipped.
func (c *clientConn) local(svc *service, start time.Time, code int, extra, body string) bool {
	keep := !c.req.close && c.skipBody()
	err := c.writeLocal(code, extra, body, !keep)
	if svc != nil {
		c.s.finish(svc, code, start)
	}
	return keep && err == nil
}

// skipBody drops a request body that is wholly in the read buffer; false when there is
// one that is not (the connection must then close).
func (c *clientConn) skipBody() bool {
	r := &c.req
	if !r.hasBody() {
		return true
	}
	p, _ := c.br.Peek(c.br.Buffered())
	if !r.chunked {
		if int64(len(p)) < r.contentLength {
			return false
		}
		_, _ = c.br.Discard(int(r.contentLength))
		return true
	}
	var err error
	var n int
	c.data, c.trailers, n, err = decodeChunked(p, c.data[:0], c.trailers[:0])
	if err != nil {
		return false
	}
	_, _ = c.br.Discard(n)
	return true
}

// writeLocal writes a response of the load balancer's own.
func (c *clientConn) writeLocal(code int, extra, body string, close bool) error {
	_, _ = c.bw.Write(appendLocal(c.bw.AvailableBuffer(), &c.req, code, extra, body, close))
	return c.bw.Flush()
}

// Body modes of a request being forwarded.
const (
	bodyNone = iota
	// bodyBuffered: the body was wholly read already and is sent with the head (and can
	// be sent again to another backend).
	bodyBuffered
	// bodyStreamed: the body is copied from the client to the backend as it comes.
	bodyStreamed
)

// forward sends a request to a backend of svc and relays its response; false when the
// client's connection is done. When every backend refused, it waits up to the queue
// timeout for a newer table with a backend that answers, as HAProxy queued.
func (c *clientConn) forward(svc *service, start time.Time, hsts bool) bool {
	s, r := c.s, &c.req
	var cookie string
	if svc.def.Sticky {
		cookie = stickyValue(r)
	}
	mode := bodyNone
	if r.hasBody() {
		buffered, err := c.bufferBody()
		if err != nil {
			svc.stats.failures.Add(1)
			c.refuse(err)
			s.finish(svc, statusOf(err), start)
			return false
		}
		mode = bodyStreamed
		if buffered {
			mode = bodyBuffered
		}
	}
	svc.stats.active.Add(1)
	defer svc.stats.active.Add(-1)
	queueUntil := start.Add(s.cfg.QueueTimeout)
	for {
		seen := s.routes.Load()
		again, failCode, keep := c.try(svc, cookie, mode, hsts, start)
		if !again {
			return keep
		}
		// Every backend refused the connection or failed the request, which can be sent
		// again: a task was killed before its removal reached this table, and its
		// replacement is on its way.
		if failCode == 0 {
			failCode = http.StatusServiceUnavailable
		}
		for s.routes.Load() == seen {
			if time.Now().After(queueUntil) || s.isClosed() {
				return c.fail(svc, start, failCode, mode)
			}
			time.Sleep(10 * time.Millisecond)
		}
		next := s.routes.Load().byName[svc.def.Name]
		if next == nil {
			return c.fail(svc, start, failCode, mode)
		}
		svc = next
	}
}

// statusOf is the status a client is answered for err.
func statusOf(err error) int {
	var pe *protoError
	if errors.As(err, &pe) {
		return pe.status
	}
	return http.StatusBadRequest
}

// bufferBody takes a request body that is already wholly in the read buffer (the usual
// small POST) off it, framed as it is sent on, into c.body; false for one that is not,
// which is streamed. A chunked body's framing is checked as far as it has arrived (at
// least its first size line, unless the client waits for 100 Continue), so that one
// already invalid is refused before anything is sent on.
func (c *clientConn) bufferBody() (bool, error) {
	r := &c.req
	p, _ := c.br.Peek(c.br.Buffered())
	if !r.chunked {
		if int64(len(p)) < r.contentLength {
			return false, nil
		}
		c.body = append(c.body[:0], p[:r.contentLength]...)
		_, _ = c.br.Discard(int(r.contentLength))
		return true, nil
	}
	for {
		var err error
		var n int
		c.data, c.trailers, n, err = decodeChunked(p, c.data[:0], c.trailers[:0])
		switch {
		case err == nil:
			c.body = c.body[:0]
			if len(c.data) > 0 {
				c.body = strconv.AppendInt(c.body, int64(len(c.data)), 16)
				c.body = append(append(append(c.body, '\r', '\n'), c.data...), '\r', '\n')
			}
			c.body = append(append(append(c.body, "0\r\n"...), c.trailers...), '\r', '\n')
			_, _ = c.br.Discard(n)
			return true, nil
		case !errors.Is(err, errIncomplete):
			return false, err
		case r.expect || bytes.IndexByte(p, '\n') >= 0 || len(p) >= c.br.Size():
			return false, nil
		}
		if _, err := c.br.Peek(len(p) + 1); err != nil {
			return false, err
		}
		p, _ = c.br.Peek(c.br.Buffered())
	}
}

// fail answers a request no backend could take or answer (503 when none took the
// connection, 502 when one failed, 504 when one did not answer in time).
func (c *clientConn) fail(svc *service, start time.Time, code int, mode int) bool {
	svc.stats.failures.Add(1)
	keep := !c.req.close && mode != bodyStreamed
	err := c.writeLocal(code, "", strconv.Itoa(code)+" "+http.StatusText(code)+"\n", !keep)
	c.s.finish(svc, code, start)
	return keep && err == nil
}

// Outcomes of one exchange with a backend.
const (
	// exchanged: a response (whole or in part) went to the client.
	exchanged = iota
	// stale: a reused connection turned out closed before the backend read the request,
	// which may go on another connection.
	stale
	// failed: the backend failed before a response went to the client.
	failed
)

type outcome struct {
	kind int
	// code is the status for a failure (502 or 504).
	code int
	// keep: the client's connection goes on.
	keep bool
	// retry: the request may go to another backend (nothing of it is lost).
	retry bool
}

// try sends the request to up to Attempts backends of svc, skipping those that refuse
// connections (ejecting them) and, for a request that can be sent again, those that fail
// it. again: no backend answered and the request can still be sent (failCode is the
// status of the last failure, 0 when every backend refused); keep: the client's
// connection goes on.
func (c *clientConn) try(svc *service, cookie string, mode int, hsts bool, start time.Time) (again bool, failCode int, keep bool) {
	s, r := c.s, &c.req
	tried := c.tried[:0]
	defer func() { c.tried = tried[:0] }()
	for range s.cfg.Attempts {
		b := svc.pick(c.ip, cookie, tried)
		if b == nil {
			break
		}
		tried = append(tried, b)
		b.sessions.Add(1)
		for {
			bc, reused, err := s.getConn(b, mode == bodyStreamed || !r.idempotent())
			if err != nil {
				if errors.Is(err, errClosed) {
					return false, 0, false
				}
				s.eject(b, err)
				break
			}
			b.active.Add(1)
			out := c.exchange(svc, b, bc, reused, cookie, mode, hsts, start)
			b.active.Add(-1)
			switch out.kind {
			case exchanged:
				return false, 0, out.keep
			case stale:
				continue
			}
			b.failures.Add(1)
			if !out.retry || !r.idempotent() {
				return false, 0, c.fail(svc, start, out.code, mode)
			}
			// A backend that died mid-request (its task killed): the request goes to
			// another one, as HAProxy's retry-on empty-response.
			failCode = out.code
			break
		}
	}
	return true, failCode, false
}

// exchange sends the request over bc and relays the response.
func (c *clientConn) exchange(svc *service, b *backend, bc *backendConn, reused bool, cookie string, mode int, hsts bool, start time.Time) outcome {
	s, r, resp := c.s, &c.req, &c.resp
	c.writeRequestHead(bc.bw, b)
	if mode == bodyBuffered {
		_, _ = bc.bw.Write(c.body)
	}
	if err := bc.bw.Flush(); err != nil {
		s.closeConn(bc)
		if reused {
			return outcome{kind: stale}
		}
		return outcome{kind: failed, code: http.StatusBadGateway, retry: true}
	}
	var body *bodyCopy
	if mode == bodyStreamed {
		body = c.streamBody(bc)
	}
	// The response head, after any interim (1xx) responses, which an HTTP/1.1 client
	// gets as they come.
	for {
		err := readHead(bc.br, &resp.head)
		if err == nil {
			if err = resp.parseResponse(); err == nil {
				err = resp.analyze(r.isHead())
			}
		}
		if err != nil {
			received := len(resp.buf) > 0
			body.abort(c, bc)
			s.closeConn(bc)
			if body != nil {
				if body.readErr != nil {
					// The client's body broke off or was malformed: nothing to retry.
					c.refuse(body.readErr)
					s.finish(svc, statusOf(body.readErr), start)
					svc.stats.failures.Add(1)
					return outcome{kind: exchanged}
				}
				// The client's body went, at least in part: the request is not sent again.
				return outcome{kind: failed, code: failureStatus(err)}
			}
			if !received && reused && r.idempotent() && !isTimeout(err) {
				return outcome{kind: stale}
			}
			s.log.Debug("backend failed", "service", svc.def.Name, "backend", b.addr, "err", err)
			return outcome{kind: failed, code: failureStatus(err), retry: !isTimeout(err)}
		}
		if resp.status >= 200 || resp.status == http.StatusSwitchingProtocols {
			break
		}
		if r.minor == 1 {
			c.writeInterim()
			if err := c.bw.Flush(); err != nil {
				body.abort(c, bc)
				s.closeConn(bc)
				return outcome{kind: exchanged}
			}
		}
	}
	if resp.status == http.StatusSwitchingProtocols {
		if r.upgrade == nil || !bytes.EqualFold(resp.upgrade, r.upgrade) {
			body.abort(c, bc)
			s.closeConn(bc)
			return outcome{kind: failed, code: http.StatusBadGateway}
		}
		c.tunnel(svc, b, bc, hsts, start)
		return outcome{kind: exchanged}
	}

	code := resp.status
	setCookie := svc.def.Sticky && cookie != b.cookie
	chunkedOut, closeAfter := c.writeResponseHead(b, hsts, setCookie)
	n, readErr, writeErr := c.relayBody(bc, chunkedOut)
	if writeErr == nil {
		writeErr = c.bw.Flush()
	}
	reusable := readErr == nil && writeErr == nil && !resp.close
	keep := writeErr == nil && readErr == nil && !closeAfter && !r.close
	if body != nil {
		if !body.finish(c, bc) {
			reusable, keep = false, false
		}
	}
	if reusable {
		s.putConn(b, bc)
	} else {
		s.closeConn(bc)
	}
	if readErr != nil {
		b.failures.Add(1)
		svc.stats.failures.Add(1)
		s.log.Debug("backend failed mid-response", "service", svc.def.Name, "backend", b.addr, "err", readErr)
	}
	class := codeClass(code)
	b.responses[class].Add(1)
	b.bytesOut.Add(uint64(n))
	svc.stats.bytesOut.Add(uint64(n))
	in := uint64(0)
	if mode == bodyBuffered {
		in = uint64(len(c.body))
	} else if body != nil {
		in = uint64(body.n)
	}
	b.bytesIn.Add(in)
	svc.stats.bytesIn.Add(in)
	s.finish(svc, code, start)
	return outcome{kind: exchanged, keep: keep && !s.isClosed()}
}

// failureStatus is the status for a backend that failed with err.
func failureStatus(err error) int {
	if isTimeout(err) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// hopByHop tells whether f is a field Connection lists (not sent on).
func hopByHop(h *head, tokens []span, f field) bool {
	name := h.bytes(f.name)
	for _, t := range tokens {
		if bytes.EqualFold(name, h.bytes(t)) {
			return true
		}
	}
	return false
}

// writeRequestHead writes the request as it goes to backend b (appendRequestHead).
func (c *clientConn) writeRequestHead(w *bufio.Writer, b *backend) {
	_, _ = w.Write(appendRequestHead(w.AvailableBuffer(), &c.req, b, c.ip, c.tls))
}

// writeInterim writes an interim (1xx) response.
func (c *clientConn) writeInterim() {
	_, _ = c.bw.Write(appendInterim(c.bw.AvailableBuffer(), &c.resp))
}

// writeResponseHead writes the final response's head (appendResponseHead).
func (c *clientConn) writeResponseHead(b *backend, hsts, setCookie bool) (chunkedOut, closeAfter bool) {
	var head []byte
	head, chunkedOut, closeAfter = appendResponseHead(c.bw.AvailableBuffer(), &c.req, &c.resp, b, hsts, setCookie)
	_, _ = c.bw.Write(head)
	return chunkedOut, closeAfter
}

// relayBody copies the response body from bc to the client. readErr is the backend's
// failure, writeErr the client's.
func (c *clientConn) relayBody(bc *backendConn, chunkedOut bool) (n int64, readErr, writeErr error) {
	r, resp := &c.req, &c.resp
	switch {
	case resp.bodyless(r.isHead()):
		return 0, nil, nil
	case resp.chunked:
		c.respChunked.reset(bc.br)
		return copyBody(c.bw, &c.respChunked, chunkedOut, c.respChunked.trailersOf)
	case resp.contentLength >= 0:
		return copyN(c.bw, bc.br, resp.contentLength)
	}
	return copyBody(c.bw, bc.br, false, nil)
}

// trailersOf returns the trailer lines read, for copyBody.
func (c *chunkedReader) trailersOf() []byte { return c.trailers }

// copyN copies n bytes from src to dst through src's buffer.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64) (written int64, readErr, writeErr error) {
	for written < n {
		if src.Buffered() == 0 {
			if _, err := src.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return written, err, nil
			}
		}
		p, _ := src.Peek(int(min(int64(src.Buffered()), n-written)))
		m, err := dst.Write(p)
		_, _ = src.Discard(m)
		written += int64(m)
		if err != nil {
			return written, nil, err
		}
	}
	return written, nil, nil
}

// copyBody copies src to its end into dst, as chunks with chunkedOut (ended by the
// last chunk and the trailers trailers returns). A src that is a raw connection's
// reader ends with io.EOF, which is its body's end.
func copyBody(dst *bufio.Writer, src io.Reader, chunkedOut bool, trailers func() []byte) (written int64, readErr, writeErr error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		m, err := src.Read(buf)
		if m > 0 {
			var werr error
			if chunkedOut {
				werr = writeChunk(dst, buf[:m])
			} else {
				_, werr = dst.Write(buf[:m])
			}
			written += int64(m)
			if werr != nil {
				return written, nil, werr
			}
		}
		if errors.Is(err, io.EOF) {
			if chunkedOut {
				var t []byte
				if trailers != nil {
					t = trailers()
				}
				return written, nil, writeLastChunk(dst, t)
			}
			return written, nil, nil
		}
		if err != nil {
			return written, err, nil
		}
	}
}

// bodyCopy is a request body being streamed from the client to a backend by its own
// goroutine.
type bodyCopy struct {
	done chan struct{}
	// read: the body was wholly read from the client.
	read atomic.Bool
	// Set before done is closed.
	n                 int64
	readErr, writeErr error
}

// streamBody starts copying the request body to bc.
func (c *clientConn) streamBody(bc *backendConn) *bodyCopy {
	r := &c.req
	body := &bodyCopy{done: make(chan struct{})}
	go func() {
		defer close(body.done)
		var src io.Reader
		var trailers func() []byte
		if r.chunked {
			c.reqChunked.reset(c.br)
			src, trailers = &c.reqChunked, c.reqChunked.trailersOf
		} else {
			src = io.LimitReader(c.br, r.contentLength)
		}
		n, readErr, writeErr := copyBody(bc.bw, &eofReader{r: src, short: !r.chunked, left: r.contentLength}, r.chunked, trailers)
		if readErr == nil && writeErr == nil {
			body.read.Store(true)
			writeErr = bc.bw.Flush()
		}
		body.n, body.readErr, body.writeErr = n, readErr, writeErr
		if readErr != nil || writeErr != nil {
			// The backend must not wait for the rest of a body that will not come, nor
			// the exchange for its answer.
			bc.conn.Close()
		}
	}()
	return body
}

// eofReader turns the early end of a Content-Length body into io.ErrUnexpectedEOF.
type eofReader struct {
	r     io.Reader
	short bool
	left  int64
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.short && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// finish waits for a body whose response is complete; false when the body was not
// wholly sent (the client's connection cannot go on, nor the backend's). A body still
// being read when the response ended (a backend that answered early, a client that
// waits for a 100 Continue that will not come) is cut off.
func (body *bodyCopy) finish(c *clientConn, bc *backendConn) bool {
	if !body.read.Load() {
		body.abort(c, bc)
		return false
	}
	<-body.done
	return body.readErr == nil && body.writeErr == nil
}

// abort stops the copy and waits for its goroutine; the client's connection can no
// longer be read. A nil body does nothing.
func (body *bodyCopy) abort(c *clientConn, bc *backendConn) {
	if body == nil {
		return
	}
	select {
	case <-body.done:
		return
	default:
	}
	c.dc.abort()
	bc.conn.Close()
	<-body.done
	if body.readErr == nil {
		body.readErr = errAborted
	}
}

// errAborted: a request body cut off because its response ended first.
var errAborted = errors.New("request body cut off")

// tunnel relays an accepted upgrade (101) and then copies both connections both ways
// until both sides are done, as the TCP proxy does.
func (c *clientConn) tunnel(svc *service, b *backend, bc *backendConn, hsts bool, start time.Time) {
	s, resp, w := c.s, &c.resp, c.bw
	defer s.closeConn(bc)
	_, _ = w.Write(appendFields(appendStatusLine(w.AvailableBuffer(), resp), resp, hsts))
	_, _ = w.WriteString("Connection: Upgrade\r\nUpgrade: ")
	_, _ = w.Write(resp.upgrade)
	_, _ = w.WriteString("\r\n\r\n")
	if n := bc.br.Buffered(); n > 0 {
		p, _ := bc.br.Peek(n)
		_, _ = w.Write(p)
	}
	b.responses[1].Add(1)
	s.finish(svc, http.StatusSwitchingProtocols, start)
	if err := w.Flush(); err != nil {
		return
	}
	_ = c.conn.SetDeadline(time.Time{})
	_ = bc.conn.SetDeadline(time.Time{})
	if n := c.br.Buffered(); n > 0 {
		p, _ := c.br.Peek(n)
		if _, err := bc.conn.Write(p); err != nil {
			return
		}
	}
	done := make(chan int64, 1)
	go func() {
		n := pump(bc.conn, c.conn)
		closeWrite(bc.conn)
		done <- n
	}()
	out := pump(c.conn, bc.conn)
	closeWrite(c.conn)
	// The backend is done; the client gets the idle timeout to finish sending.
	_ = c.conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	in := <-done
	b.bytesIn.Add(uint64(in))
	b.bytesOut.Add(uint64(out))
	svc.stats.bytesIn.Add(uint64(in))
	svc.stats.bytesOut.Add(uint64(out))
}

// prefixConn is a connection whose first bytes were read already: its reads return
// them first.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite shuts the sending side down, as the connection wrapped does.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
