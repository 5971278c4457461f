package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// This file is the proxy's HTTP/1.1 wire format (RFC 9112): message heads read from a
// bufio.Reader into a reusable buffer, the framing rules of requests and responses, and
// the chunked transfer coding both ways. The parser is strict where leniency lets two
// parsers disagree about where a message ends (request smuggling): a request whose
// framing is in any way ambiguous is refused, never guessed at.

// Limits of what a message head may hold.
const (
	// maxHeadSize bounds a request's or a response's head (start line and fields).
	maxHeadSize = 64 << 10
	// maxFields bounds the header fields of one head (HAProxy's tune.http.maxhdr is 101).
	maxFields = 256
	// maxChunkLine bounds a chunk-size line with its extensions.
	maxChunkLine = 4 << 10
	// maxTrailerSize bounds the trailer section of a chunked body.
	maxTrailerSize = 8 << 10
)

// protoError is a message that breaks HTTP/1.1's grammar or framing rules; status is
// what a client that sent it is answered (responses from backends are answered 502).
type protoError struct {
	status int
	msg    string
}

func (e *protoError) Error() string { return e.msg }

func badRequest(msg string) *protoError { return &protoError{status: 400, msg: msg} }

var (
	errHeadTooLarge   = &protoError{status: 431, msg: "message head too large"}
	errTooManyFields  = &protoError{status: 431, msg: "too many header fields"}
	errVersion        = &protoError{status: 505, msg: "HTTP version not supported"}
	errBareCR         = badRequest("CR not followed by LF")
	errObsFold        = badRequest("header field folded over lines (obs-fold)")
	errFieldName      = badRequest("invalid header field name")
	errFieldValue     = badRequest("invalid character in a header field value")
	errRequestLine    = badRequest("malformed request line")
	errStatusLine     = badRequest("malformed status line")
	errHost           = badRequest("missing, repeated or invalid Host")
	errContentLength  = badRequest("invalid or conflicting Content-Length")
	errTransferCoding = badRequest("Transfer-Encoding other than exactly chunked")
	errCLAndTE        = badRequest("both Content-Length and Transfer-Encoding")
	errTE10           = badRequest("Transfer-Encoding in an HTTP/1.0 message")
	errChunkSize      = badRequest("invalid chunk size line")
	errChunkEnd       = badRequest("chunk data not followed by CRLF")
	errTrailer        = badRequest("invalid trailer section")
	errExpect         = &protoError{status: 417, msg: "unsupported expectation"}
	errMethod         = &protoError{status: 405, msg: "method not allowed by a reverse proxy"}
)

// errIncomplete: a buffer ends before the message part being decoded does.
var errIncomplete = errors.New("incomplete")

// span is the bytes [start, end) of a head's buffer.
type span struct{ start, end int }

// field is a header field: its name and value (without surrounding whitespace).
type field struct {
	name, value span
	kind        fieldKind
}

// fieldKind names the header fields the proxy acts on; any other is fieldOther.
type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldHost
	fieldContentLength
	fieldTransferEncoding
	fieldConnection
	fieldProxyConnection
	fieldKeepAlive
	fieldTE
	fieldUpgrade
	fieldExpect
	fieldXForwardedFor
	fieldXForwardedHost
	fieldXForwardedProto
	fieldForwarded
	fieldCookie
	fieldAuthorization
	fieldProxyAuthorization
	fieldAppID
	fieldHSTS
)

// knownFields are the field names the proxy acts on, lower-case.
var knownFields = [...]struct {
	name string
	kind fieldKind
}{
	{"te", fieldTE},
	{"host", fieldHost},
	{"cookie", fieldCookie},
	{"expect", fieldExpect},
	{"upgrade", fieldUpgrade},
	{"forwarded", fieldForwarded},
	{"connection", fieldConnection},
	{"keep-alive", fieldKeepAlive},
	{"authorization", fieldAuthorization},
	{"content-length", fieldContentLength},
	{"x-forwarded-for", fieldXForwardedFor},
	{"proxy-connection", fieldProxyConnection},
	{"x-forwarded-host", fieldXForwardedHost},
	{"transfer-encoding", fieldTransferEncoding},
	{"x-forwarded-proto", fieldXForwardedProto},
	{"x-marathon-app-id", fieldAppID},
	{"proxy-authorization", fieldProxyAuthorization},
	{"strict-transport-security", fieldHSTS},
}

// knownByLen are knownFields by the length of their names.
var knownByLen = func() [][]int {
	var t [][]int
	for i, f := range knownFields {
		for len(t) <= len(f.name) {
			t = append(t, nil)
		}
		t[len(f.name)] = append(t[len(f.name)], i)
	}
	return t
}()

// kindOf classifies a field name, case-insensitively.
func kindOf(name []byte) fieldKind {
	if len(name) >= len(knownByLen) {
		return fieldOther
	}
	for _, i := range knownByLen[len(name)] {
		if equalFold(name, knownFields[i].name) {
			return knownFields[i].kind
		}
	}
	return fieldOther
}

// equalFold compares b with lower, an ASCII lower-case string, ignoring ASCII case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may be in a token (RFC 9110 §5.6.2): methods, field
// names, coding names.
func isTokenChar(c byte) bool { return tokenChars[c] }

var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

// isFieldValueChar reports whether c may be in a field value: visible ASCII,
// obs-text, space and tab; never a control character.
func isFieldValueChar(c byte) bool { return fieldValueChars[c] }

var fieldValueChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 0x20 && c != 0x7f || c == '\t'
	}
	return t
}()

// head is a message head as read: its bytes, the start line's parts and the header
// fields as spans of buf. Its buffers are reused from message to message.
type head struct {
	buf []byte
	// A request line's method, target and minor version; a status line's minor version,
	// status code and reason (in target).
	method, target span
	minor          int
	status         int
	fields         []field
	lines          []span
}

func (h *head) bytes(s span) []byte { return h.buf[s.start:s.end] }

// reset empties h, keeping its buffers.
func (h *head) reset() {
	h.buf = h.buf[:0]
	h.fields = h.fields[:0]
	h.method, h.target, h.minor, h.status = span{}, span{}, 0, 0
}

// readHead reads a message head, up to and including its empty line, into h.buf (after
// any empty lines before it, which RFC 9112 §2.2 lets a recipient skip). It returns
// io.EOF when the reader ends before any byte of a head, and io.ErrUnexpectedEOF when it
// ends within one.
func readHead(br *bufio.Reader, h *head) error {
	h.reset()
	lineStart := 0
	for {
		frag, err := br.ReadSlice('\n')
		if len(h.buf)+len(frag) > maxHeadSize {
			return errHeadTooLarge
		}
		h.buf = append(h.buf, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(h.buf) == 0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
		line := h.buf[lineStart:]
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			if lineStart == 0 {
				h.buf = h.buf[:0]
				continue
			}
			return nil
		}
		lineStart = len(h.buf)
	}
}

// splitLines splits h.buf into its first line and the others (in h.lines), without
// their line endings or the empty line. A CR anywhere but before an LF is an error.
func (h *head) splitLines() (first span, rest []span, err error) {
	rest = h.lines[:0]
	start := 0
	for start < len(h.buf) {
		nl := bytes.IndexByte(h.buf[start:], '\n')
		if nl < 0 {
			break
		}
		end := start + nl
		if end > start && h.buf[end-1] == '\r' {
			end--
		}
		if bytes.IndexByte(h.buf[start:end], '\r') >= 0 {
			return span{}, nil, errBareCR
		}
		if start == 0 {
			first = span{0, end}
		} else if end > start {
			rest = append(rest, span{start, end})
		}
		start += nl + 1
	}
	h.lines = rest
	return first, rest, nil
}

// parseFields parses the header field lines of h.
func (h *head) parseFields(lines []span) error {
	if len(lines) > maxFields {
		return errTooManyFields
	}
	for _, l := range lines {
		line := h.buf[l.start:l.end]
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
			if !isTokenChar(c) {
				// Whitespace between the name and the colon is how "Transfer-Encoding :
				// chunked" hides from a parser that does not trim it: RFC 9112 §5.1 says
				// reject.
				return errFieldName
			}
		}
		if colon <= 0 {
			return errFieldName
		}
		vs, ve := l.start+colon+1, l.end
		for vs < ve && (h.buf[vs] == ' ' || h.buf[vs] == '\t') {
			vs++
		}
		for ve > vs && (h.buf[ve-1] == ' ' || h.buf[ve-1] == '\t') {
			ve--
		}
		for _, c := range h.buf[vs:ve] {
			if !isFieldValueChar(c) {
				return errFieldValue
			}
		}
		name := span{l.start, l.start + colon}
		h.fields = append(h.fields, field{name: name, value: span{vs, ve}, kind: kindOf(h.bytes(name))})
	}
	return nil
}

// parseRequest parses h.buf as a request head: "method SP target SP HTTP/1.x" and
// fields. Versions other than 1.x are 505; HTTP/1.x with x > 1 is taken as 1.1.
func (h *head) parseRequest() error {
	first, lines, err := h.splitLines()
	if err != nil {
		return err
	}
	line := h.buf[first.start:first.end]
	sp1 := indexByte(line, ' ')
	if sp1 <= 0 {
		return errRequestLine
	}
	for _, c := range line[:sp1] {
		if !isTokenChar(c) {
			return errRequestLine
		}
	}
	rest := line[sp1+1:]
	sp2 := indexByte(rest, ' ')
	if sp2 <= 0 {
		return errRequestLine
	}
	for _, c := range rest[:sp2] {
		if c <= ' ' || c == 0x7f {
			return errRequestLine
		}
	}
	minor, err := parseVersion(rest[sp2+1:])
	if err != nil {
		return err
	}
	h.method = span{first.start, first.start + sp1}
	h.target = span{first.start + sp1 + 1, first.start + sp1 + 1 + sp2}
	h.minor = minor
	return h.parseFields(lines)
}

// parseResponse parses h.buf as a response head: "HTTP/1.x SP 3DIGIT [SP reason]" and
// fields.
func (h *head) parseResponse() error {
	first, lines, err := h.splitLines()
	if err != nil {
		return err
	}
	line := h.buf[first.start:first.end]
	if len(line) < 12 || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return errStatusLine
	}
	minor, err := parseVersion(line[:8])
	if err != nil {
		return err
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errStatusLine
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return errStatusLine
	}
	for _, c := range line[12:] {
		if !isFieldValueChar(c) {
			return errStatusLine
		}
	}
	h.minor, h.status = minor, code
	h.target = span{first.start + min(len(line), 13), first.end}
	return h.parseFields(lines)
}

// parseVersion parses "HTTP/1.x", returning x (at most 1).
func parseVersion(v []byte) (int, error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, errRequestLine
	}
	if v[5] != '1' {
		return 0, errVersion
	}
	return min(int(v[7]-'0'), 1), nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// forEachToken calls fn with each element of a comma-separated list, trimmed of
// whitespace; empty elements are skipped (RFC 9110 §5.6.1).
func forEachToken(list []byte, fn func(tok []byte)) {
	for len(list) > 0 {
		i := indexByte(list, ',')
		tok := list
		if i >= 0 {
			tok, list = list[:i], list[i+1:]
		} else {
			list = nil
		}
		tok = trimOWS(tok)
		if len(tok) > 0 {
			fn(tok)
		}
	}
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseContentLength parses the values of every Content-Length field of a message:
// each a comma-separated list of decimal lengths, all the same (RFC 9110 §8.6). It
// returns -1 without any.
func parseContentLength(h *head) (int64, error) {
	n := int64(-1)
	for _, f := range h.fields {
		if f.kind != fieldContentLength {
			continue
		}
		v := h.bytes(f.value)
		if len(v) == 0 {
			return 0, errContentLength
		}
		for len(v) > 0 {
			i := indexByte(v, ',')
			elem := v
			if i >= 0 {
				elem, v = v[:i], v[i+1:]
				if len(v) == 0 {
					return 0, errContentLength
				}
			} else {
				v = nil
			}
			elem = trimOWS(elem)
			if len(elem) == 0 || len(elem) > 18 {
				return 0, errContentLength
			}
			var m int64
			for _, c := range elem {
				if c < '0' || c > '9' {
					return 0, errContentLength
				}
				m = m*10 + int64(c-'0')
			}
			if n >= 0 && m != n {
				return 0, errContentLength
			}
			n = m
		}
	}
	return n, nil
}

// request is what the proxy knows of a request from its head.
type request struct {
	head
	// host is the Host field's value, or a target's authority in absolute form; nil for
	// an HTTP/1.0 request without either.
	host []byte
	// uri is the target to send on: origin form ("/path?query"), or "*".
	uri []byte
	// path is uri without its query, for routing.
	path []byte
	// contentLength is the body's length; -1 with chunked or without a body.
	contentLength int64
	chunked       bool
	// close: the client's connection ends after the response (Connection: close, or an
	// HTTP/1.0 client without keep-alive).
	close bool
	// expect: the client waits for 100 Continue before sending its body.
	expect bool
	// upgrade is the Upgrade field of an HTTP/1.1 request whose Connection names it
	// (WebSocket's handshake); nil otherwise.
	upgrade []byte
	// connTokens are the field names Connection lists besides close, keep-alive and
	// upgrade: hop-by-hop fields not sent on.
	connTokens []span
}

// hasBody tells whether a request body follows the head.
func (r *request) hasBody() bool { return r.chunked || r.contentLength > 0 }

// idempotent tells whether the request may be sent again after a backend failed it
// (RFC 9110 §9.2.2, for the methods without side effects).
func (r *request) idempotent() bool {
	switch string(r.bytes(r.method)) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

func (r *request) isHead() bool { return string(r.bytes(r.method)) == "HEAD" }

// analyze derives r's routing and framing from its parsed head, refusing what a proxy
// must not forward: ambiguous framing (RFC 9112 §6.3), a missing or repeated Host, a
// CONNECT, an expectation other than 100-continue.
func (r *request) analyze() error {
	r.host, r.uri, r.path, r.upgrade = nil, nil, nil, nil
	r.contentLength, r.chunked, r.close, r.expect = -1, false, r.minor == 0, false
	r.connTokens = r.connTokens[:0]
	if string(r.bytes(r.method)) == "CONNECT" {
		return errMethod
	}
	var hosts, tes int
	var upgrade []byte
	connUpgrade := false
	for _, f := range r.fields {
		v := r.bytes(f.value)
		switch f.kind {
		case fieldHost:
			hosts++
			r.host = v
		case fieldTransferEncoding:
			tes++
			// Only the exact value "chunked" is taken: any other coding, list or spelling
			// ("chunked, identity", "xchunked", "\tchunked", " chunked" after the usual
			// space) is a request some parser along the way may frame differently.
			if !equalFold(v, "chunked") || !plainValue(&r.head, f) {
				return errTransferCoding
			}
			r.chunked = true
		case fieldConnection:
			var err error
			forEachToken(v, func(tok []byte) {
				switch {
				case equalFold(tok, "close"):
					r.close = true
				case equalFold(tok, "keep-alive"):
					if r.minor == 0 {
						r.close = false
					}
				case equalFold(tok, "upgrade"):
					connUpgrade = true
				default:
					for _, c := range tok {
						if !isTokenChar(c) {
							err = errFieldValue
						}
					}
					start := f.value.start + (cap(v) - cap(tok))
					r.connTokens = append(r.connTokens, span{start, start + len(tok)})
				}
			})
			if err != nil {
				return err
			}
		case fieldUpgrade:
			upgrade = v
		case fieldExpect:
			if !equalFold(v, "100-continue") {
				return errExpect
			}
			r.expect = r.minor == 1
		}
	}
	if tes > 1 {
		return errTransferCoding
	}
	cl, err := parseContentLength(&r.head)
	if err != nil {
		return err
	}
	if r.chunked {
		if cl >= 0 {
			return errCLAndTE
		}
		if r.minor == 0 {
			return errTE10
		}
	}
	r.contentLength = cl
	target := r.bytes(r.target)
	if authority, rest, ok := absoluteForm(target); ok {
		// RFC 9112 §3.2.2: the target's authority replaces Host.
		r.host, target = authority, rest
		hosts = 1
	}
	if hosts > 1 || hosts == 0 && r.minor == 1 || r.host != nil && !validHost(r.host) {
		return errHost
	}
	switch {
	case len(target) > 0 && target[0] == '/':
	case string(target) == "*" && string(r.bytes(r.method)) == "OPTIONS":
	default:
		return errRequestLine
	}
	r.uri = target
	r.path = target
	if i := indexByte(target, '?'); i >= 0 {
		r.path = target[:i]
	}
	if connUpgrade && upgrade != nil && r.minor == 1 && !r.hasBody() {
		r.upgrade = upgrade
	}
	return nil
}

// plainValue tells whether field f's value follows its colon directly or after one
// space, with nothing after it: no whitespace games a parser could read differently.
func plainValue(h *head, f field) bool {
	gap := f.value.start - f.name.end - 1
	return (gap == 0 || gap == 1 && h.buf[f.name.end+1] == ' ') && lineEndAt(h.buf, f.value.end)
}

// lineEndAt tells whether a line ending (CRLF or LF) starts at buf[i].
func lineEndAt(buf []byte, i int) bool {
	return i < len(buf) && (buf[i] == '\n' || buf[i] == '\r')
}

// absoluteForm splits an absolute-form target ("http://host:port/path?q") into its
// authority and origin-form rest ("/" when it has no path).
func absoluteForm(target []byte) (authority, rest []byte, ok bool) {
	var after []byte
	switch {
	case len(target) > 7 && equalFold(target[:7], "http://"):
		after = target[7:]
	case len(target) > 8 && equalFold(target[:8], "https://"):
		after = target[8:]
	default:
		return nil, nil, false
	}
	end := len(after)
	for i, c := range after {
		if c == '/' || c == '?' {
			end = i
			break
		}
	}
	authority, rest = after[:end], after[end:]
	if len(rest) == 0 {
		rest = []byte("/")
	} else if rest[0] == '?' {
		return nil, nil, false
	}
	return authority, rest, len(authority) > 0
}

// validHost checks a Host value's characters: those of a host and port (RFC 3986's
// reg-name, an IP literal in brackets, a port).
func validHost(h []byte) bool {
	for _, c := range h {
		if !hostChars[c] {
			return false
		}
	}
	return true
}

var hostChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range []byte("-._~!$&'()*+,;=:[]%") {
		t[c] = true
	}
	return t
}()

// response is what the proxy knows of a backend's response from its head.
type response struct {
	head
	// contentLength is the body's length; -1 with chunked, without a body, or with a
	// body that ends when the backend closes.
	contentLength int64
	chunked       bool
	// untilClose: the body ends when the backend closes the connection.
	untilClose bool
	// close: the backend's connection cannot take another request.
	close bool
	// upgrade is a 101's Upgrade field.
	upgrade    []byte
	connTokens []span
}

// analyze derives a response's framing (RFC 9112 §6.3) given the request it answers.
func (r *response) analyze(headRequest bool) error {
	r.contentLength, r.chunked, r.untilClose, r.close, r.upgrade = -1, false, false, r.minor == 0, nil
	r.connTokens = r.connTokens[:0]
	tes := 0
	for _, f := range r.fields {
		v := r.bytes(f.value)
		switch f.kind {
		case fieldTransferEncoding:
			tes++
			if !equalFold(v, "chunked") {
				return errTransferCoding
			}
			r.chunked = true
		case fieldConnection:
			forEachToken(v, func(tok []byte) {
				switch {
				case equalFold(tok, "close"):
					r.close = true
				case equalFold(tok, "keep-alive"):
					if r.minor == 0 {
						r.close = false
					}
				case equalFold(tok, "upgrade"):
				default:
					start := f.value.start + (cap(v) - cap(tok))
					r.connTokens = append(r.connTokens, span{start, start + len(tok)})
				}
			})
		case fieldUpgrade:
			r.upgrade = v
		}
	}
	if tes > 1 || r.chunked && r.minor == 0 {
		return errTransferCoding
	}
	cl, err := parseContentLength(&r.head)
	if err != nil {
		return err
	}
	if !r.chunked {
		// With chunked, Content-Length is ignored and not sent on (RFC 9112 §6.3).
		r.contentLength = cl
	}
	if r.bodyless(headRequest) {
		return nil
	}
	if !r.chunked && cl < 0 {
		r.untilClose, r.close = true, true
	}
	return nil
}

// bodyless tells whether the response has no body whatever its fields say.
func (r *response) bodyless(headRequest bool) bool {
	return headRequest || r.status < 200 || r.status == 204 || r.status == 304
}

// parseChunkLine parses a chunk-size line without its CRLF: hexadecimal digits, then
// optionally extensions after ";" (which are dropped, never sent on).
func parseChunkLine(line []byte) (int64, error) {
	var size int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, errChunkSize
		}
		size = size<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, errChunkSize
	}
	// Whitespace (BWS) is allowed only before an extension: "5 " is not a size.
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) != len(line)-i && len(rest) == 0 {
		return 0, errChunkSize
	}
	if len(rest) > 0 {
		if rest[0] != ';' {
			return 0, errChunkSize
		}
		for _, c := range rest {
			if !isFieldValueChar(c) {
				return 0, errChunkSize
			}
		}
	}
	return size, nil
}

// validTrailerLine checks a trailer field line without its line ending.
func validTrailerLine(line []byte) bool {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return false
	}
	colon := indexByte(line, ':')
	if colon <= 0 {
		return false
	}
	for _, c := range line[:colon] {
		if !isTokenChar(c) {
			return false
		}
	}
	for _, c := range line[colon+1:] {
		if !isFieldValueChar(c) {
			return false
		}
	}
	return true
}

// cutLine splits b at its first CRLF: the line before, the bytes after. A bare LF or CR
// is an error, as a missing line end within limit bytes is; a line not yet ended within
// b is errIncomplete.
func cutLine(b []byte, limit int, errBad error) (line, rest []byte, err error) {
	for i, c := range b {
		if i >= limit {
			return nil, nil, errBad
		}
		switch c {
		case '\n':
			return nil, nil, errBad
		case '\r':
			if i+1 == len(b) {
				return nil, nil, errIncomplete
			}
			if b[i+1] != '\n' {
				return nil, nil, errBad
			}
			return b[:i], b[i+2:], nil
		}
	}
	if len(b) >= limit {
		return nil, nil, errBad
	}
	return nil, nil, errIncomplete
}

// decodeChunked decodes a whole chunked body at the start of src: its data is appended
// to data, its trailer lines (each with CRLF) to trailers, and n is how many bytes of
// src it took. errIncomplete means src ends before the body does (the bytes it holds so
// far are valid); any other error is invalid framing.
func decodeChunked(src, data, trailers []byte) (outData, outTrailers []byte, n int, err error) {
	rest := src
	for {
		line, after, err := cutLine(rest, maxChunkLine, errChunkSize)
		if err != nil {
			return data, trailers, 0, err
		}
		size, err := parseChunkLine(line)
		if err != nil {
			return data, trailers, 0, err
		}
		rest = after
		if size == 0 {
			break
		}
		if int64(len(rest)) < size+2 {
			if int64(len(rest)) > size && rest[size] != '\r' {
				return data, trailers, 0, errChunkEnd
			}
			return data, trailers, 0, errIncomplete
		}
		if rest[size] != '\r' || rest[size+1] != '\n' {
			return data, trailers, 0, errChunkEnd
		}
		data = append(data, rest[:size]...)
		rest = rest[size+2:]
	}
	size := 0
	for {
		line, after, err := cutLine(rest, maxTrailerSize, errTrailer)
		if err != nil {
			return data, trailers, 0, err
		}
		rest = after
		if len(line) == 0 {
			return data, trailers, len(src) - len(rest), nil
		}
		if !validTrailerLine(line) || size+len(line)+2 > maxTrailerSize {
			return data, trailers, 0, errTrailer
		}
		size += len(line) + 2
		trailers = append(append(trailers, line...), '\r', '\n')
	}
}

// chunkedReader reads the data of a chunked body from a bufio.Reader, strictly: sizes
// in hexadecimal without sign, prefix or whitespace, CRLF line ends, trailer lines
// well-formed. The trailer lines (with their CRLFs) are kept in trailers.
type chunkedReader struct {
	r *bufio.Reader
	// left is what remains of the current chunk's data; -1 before a size line.
	left     int64
	done     bool
	err      error
	trailers []byte
}

func (c *chunkedReader) reset(r *bufio.Reader) {
	c.r, c.left, c.done, c.err, c.trailers = r, -1, false, nil, c.trailers[:0]
}

// readLine reads a line ending in CRLF, without it, by cutLine's rules (as
// decodeChunked does).
func (c *chunkedReader) readLine(limit int, errBad error) ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	content, _, cerr := cutLine(line, limit, errBad)
	if errors.Is(cerr, errIncomplete) {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errBad
		}
		return nil, io.ErrUnexpectedEOF
	}
	return content, cerr
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, io.EOF
	}
	if c.left <= 0 {
		if c.left == 0 {
			// The CRLF after a chunk's data.
			crlf, err := c.r.Peek(2)
			if len(crlf) > 0 && crlf[0] != '\r' || len(crlf) > 1 && crlf[1] != '\n' {
				return 0, c.fail(errChunkEnd)
			}
			if err != nil {
				return 0, c.fail(err)
			}
			_, _ = c.r.Discard(2)
		}
		line, err := c.readLine(maxChunkLine, errChunkSize)
		if err != nil {
			return 0, c.fail(err)
		}
		size, err := parseChunkLine(line)
		if err != nil {
			return 0, c.fail(err)
		}
		if size == 0 {
			for {
				line, err := c.readLine(maxTrailerSize, errTrailer)
				if err != nil {
					return 0, c.fail(err)
				}
				if len(line) == 0 {
					c.done = true
					return 0, io.EOF
				}
				if !validTrailerLine(line) || len(c.trailers)+len(line)+2 > maxTrailerSize {
					return 0, c.fail(errTrailer)
				}
				c.trailers = append(append(c.trailers, line...), '\r', '\n')
			}
		}
		c.left = size
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, c.fail(err)
	}
	return n, nil
}

func (c *chunkedReader) fail(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	c.err = err
	return err
}

// writeChunk writes p as one chunk (nothing for an empty p, which would end the body).
func writeChunk(w *bufio.Writer, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	var size [16]byte
	_, _ = w.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
	_, _ = w.WriteString("\r\n")
	_, _ = w.Write(p)
	_, err := w.WriteString("\r\n")
	return err
}

// writeLastChunk ends a chunked body, with trailer lines (each with its CRLF).
func writeLastChunk(w *bufio.Writer, trailers []byte) error {
	_, _ = w.WriteString("0\r\n")
	_, _ = w.Write(trailers)
	_, err := w.WriteString("\r\n")
	return err
}
