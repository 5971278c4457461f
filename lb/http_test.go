package lb

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rawConn is a client connection that writes requests byte for byte.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// dialRaw connects to the load balancer's port.
func dialRaw(t testing.TB, port int) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// response reads one response (to a request with method) and its body.
func (rc *rawConn) response(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.r, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

// closed tells whether the server closed the connection, after reading what is left.
func (rc *rawConn) closed() bool {
	rc.t.Helper()
	_, err := io.ReadAll(rc.r)
	return err == nil
}

// recordingBackend is an HTTP backend that notes "METHOD PATH BODY" of every request it
// gets and the connections it accepts, and answers "ok".
type recordingBackend struct {
	addr  string
	mu    sync.Mutex
	seen  []string
	conns int
}

func newRecordingBackend(t testing.TB) *recordingBackend {
	t.Helper()
	rb := &recordingBackend{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rb.mu.Lock()
		rb.seen = append(rb.seen, r.Method+" "+r.URL.Path+" "+string(body))
		rb.mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			rb.mu.Lock()
			rb.conns++
			rb.mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	rb.addr = strings.TrimPrefix(srv.URL, "http://")
	return rb
}

func (rb *recordingBackend) accepted() int {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.conns
}

func (rb *recordingBackend) requests() []string {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return append([]string(nil), rb.seen...)
}

// TestRequestSmuggling: a request whose framing two parsers could read differently —
// Content-Length with Transfer-Encoding, differing Content-Lengths, a Transfer-Encoding
// that is not exactly "chunked", a malformed chunk — is answered 400 and its connection
// closed, and the backend never sees it; well-framed requests around them go through.
func TestRequestSmuggling(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	backend := newRecordingBackend(t)
	swap(t, s, svcDef("web", port, ModeHTTP, backend.addr))

	const post = "POST /a HTTP/1.1\r\nHost: x\r\n"
	for _, tc := range []struct{ name, request string }{
		{"CL.TE", post + "Content-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n"},
		{"TE.CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"},
		{"CL.TE with an obfuscated TE", post + "Content-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
		{"two differing Content-Lengths", post + "Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc"},
		{"differing Content-Length list", post + "Content-Length: 3, 4\r\n\r\nabcd"},
		{"Content-Length with a sign", post + "Content-Length: +3\r\n\r\nabc"},
		{"negative Content-Length", post + "Content-Length: -1\r\n\r\n"},
		{"hexadecimal Content-Length", post + "Content-Length: 0x3\r\n\r\nabc"},
		{"Content-Length with inner space", post + "Content-Length: 1 2\r\n\r\nabc"},
		{"Content-Length overflowing", post + "Content-Length: 99999999999999999999\r\n\r\n"},
		{"empty Content-Length", post + "Content-Length: \r\n\r\n"},
		{"TE chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
		{"TE identity, chunked", post + "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n"},
		{"TE xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
		{"TE identity", post + "Transfer-Encoding: identity\r\n\r\n"},
		{"TE with extra leading space", post + "Transfer-Encoding:  chunked\r\n\r\n0\r\n\r\n"},
		{"TE with a tab", post + "Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"},
		{"TE with trailing space", post + "Transfer-Encoding: chunked \r\n\r\n0\r\n\r\n"},
		{"TE with a vertical tab", post + "Transfer-Encoding: \vchunked\r\n\r\n0\r\n\r\n"},
		{"two TE fields", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"space before the colon", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
		{"TE folded onto the next line", post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
		{"folded field after TE", post + "Transfer-Encoding: chunked\r\n x\r\n\r\n0\r\n\r\n"},
		{"TE in HTTP/1.0", "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"bare CR in a field", post + "X: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"NUL in a field value", post + "X: a\x00b\r\n\r\n"},
		{"chunk size not hexadecimal", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		{"negative chunk size", post + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"},
		{"chunk size with 0x", post + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"},
		{"chunk size with leading space", post + "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n"},
		{"chunk size with trailing space", post + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"},
		{"empty chunk size", post + "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"},
		{"chunk size overflowing", post + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
		{"chunk size ended by a bare LF", post + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"},
		{"chunk longer than its size", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"},
		{"second chunk size invalid", post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n"},
		{"malformed trailer", post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nno colon\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, port)
			rc.send(tc.request)
			line, err := rc.r.ReadString('\n')
			if line != "HTTP/1.1 400 Bad Request\r\n" || err != nil {
				t.Fatalf("status line %q (%v), want HTTP/1.1 400 Bad Request", line, err)
			}
			head, err := rc.r.ReadString('\n')
			for err == nil && head != "\r\n" && !strings.EqualFold(head, "Connection: close\r\n") {
				head, err = rc.r.ReadString('\n')
			}
			if err != nil || head == "\r\n" {
				t.Errorf("response has no Connection: close (%v)", err)
			}
			if !rc.closed() {
				t.Error("connection left open")
			}
		})
	}
	if got := backend.requests(); len(got) != 0 {
		t.Errorf("backend saw %q, want nothing", got)
	}

	// Well-framed bodies, repeated identical Content-Lengths included, go through, and a
	// pipelined request after each is answered in turn.
	rc := dialRaw(t, port)
	rc.send(post + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc" +
		post + "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n" +
		post + "transfer-encoding: Chunked\r\n\r\n0\r\n\r\n" +
		"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	for i, method := range []string{"POST", "POST", "POST", "GET"} {
		if resp, body := rc.response(method); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("request %d = %d %q, want 200 ok", i, resp.StatusCode, body)
		}
	}
	want := []string{"POST /a abc", "POST /a abcde", "POST /a ", "GET /b "}
	if got := backend.requests(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backend saw %q, want %q", got, want)
	}
}

// TestMalformedRequests: requests the proxy cannot or must not forward get the exact
// status RFC 9112 gives them, and their connection is closed.
func TestMalformedRequests(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	backend := newRecordingBackend(t)
	swap(t, s, svcDef("web", port, ModeHTTP, backend.addr))
	for _, tc := range []struct{ name, request, status string }{
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505 HTTP Version Not Supported"},
		{"HTTP/3", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", "505 HTTP Version Not Supported"},
		{"no version", "GET /\r\n\r\n", "400 Bad Request"},
		{"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"},
		{"control character in target", "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"},
		{"target not a path", "GET a HTTP/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"},
		{"method not a token", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "400 Bad Request"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", "400 Bad Request"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400 Bad Request"},
		{"Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "400 Bad Request"},
		{"field without a colon", "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", "400 Bad Request"},
		{"empty field name", "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", "400 Bad Request"},
		{"CONNECT", "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", "405 Method Not Allowed"},
		{"unknown expectation", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\na", "417 Expectation Failed"},
		{"head too large", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", maxHeadSize) + "\r\n\r\n", "431 Request Header Fields Too Large"},
		{"too many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X: y\r\n", maxFields) + "\r\n", "431 Request Header Fields Too Large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, port)
			rc.send(tc.request)
			if line, err := rc.r.ReadString('\n'); line != "HTTP/1.1 "+tc.status+"\r\n" || err != nil {
				t.Fatalf("status line %q (%v), want HTTP/1.1 %s", line, err, tc.status)
			}
			if !rc.closed() {
				t.Error("connection left open")
			}
		})
	}
	if got := backend.requests(); len(got) != 0 {
		t.Errorf("backend saw %q, want nothing", got)
	}
}

// featureBackend answers the paths the forwarding tests use; its name is in every
// response's X-Backend.
func featureBackend(t testing.TB, name string) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := sha256.Sum256(body)
		fmt.Fprintf(w, "%s len=%d sha=%s te=%q cl=%d trailer=%q xff=%q xfh=%q xfp=%q conn=%q hop=%q", r.Method, len(body), hex.EncodeToString(sum[:4]),
			r.TransferEncoding, r.ContentLength, r.Trailer.Get("X-Trailer"), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Connection"), r.Header.Get("X-Hop"))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		for _, part := range []string{"abc", "def"} {
			io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", "abcdef")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(bigBody)))
		w.Write(bigBody)
	})
	mux.HandleFunc("/deny", func(w http.ResponseWriter, r *http.Request) {
		// Answered without reading the body: a client waiting for 100 Continue gets the
		// final response instead.
		http.Error(w, "denied", http.StatusForbidden)
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Strict-Transport-Security", "max-age=1")
		io.WriteString(w, "hop")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "not an upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString(strings.ToUpper(line))
			brw.Flush()
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// bigBody is a 1 MiB body, larger than any buffer of the proxy.
var bigBody = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}()

func shaPrefix(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

// chunkedBody encodes b as chunks of n bytes.
func chunkedBody(b []byte, n int, trailer string) string {
	var sb strings.Builder
	for len(b) > 0 {
		part := b[:min(n, len(b))]
		b = b[len(part):]
		fmt.Fprintf(&sb, "%x\r\n%s\r\n", len(part), part)
	}
	return sb.String() + "0\r\n" + trailer + "\r\n"
}

// forwardCase is a request of TestForwarding and what its response must be.
type forwardCase struct {
	name    string
	request string
	// parts are written one after the other, reading the interim response in
	// between when interim is set.
	parts   []string
	interim string
	method  string
	status  int
	header  map[string]string
	body    string
	trailer string
	// handover: the request is one the loops hand over to the goroutine path.
	handover bool
}

// TestForwarding: on one keep-alive connection, responses of every framing reach the
// client intact (chunked with trailers, Content-Length, HEAD, 204, 304, an interim 103,
// a 1 MiB body) and request bodies reach the backend intact whether sent with the head
// or streamed (Content-Length and chunked, 1 MiB, with trailers, after Expect:
// 100-continue), with the X-Forwarded-* fields set and hop-by-hop fields dropped both
// ways. Any framing error would desynchronise the requests that follow it.
//
// The requests the loops' HTTP path serves come first, two of them pipelined, and the
// connection stays on the loop for them; the first chunked request body hands it over
// to the goroutine path, which then serves the rest, and the first requests once more.
func TestForwarding(t *testing.T) {
	s, reg := newTestServer(t)
	port := freePort(t)
	swap(t, s, svcDef("web", port, ModeHTTP, featureBackend(t, "f")))
	rc := dialRaw(t, port)
	const host = "Host: web.example\r\n"
	echo := func(method string, te []string, cl int64, body []byte, trailer string) string {
		return fmt.Sprintf("%s len=%d sha=%s te=%q cl=%d trailer=%q xff=%q xfh=%q xfp=%q conn=%q hop=%q", method, len(body), shaPrefix(body),
			te, cl, trailer, "203.0.113.9, 127.0.0.1", "web.example", "http", "", "")
	}
	bigChunked := chunkedBody(bigBody, 7000, "X-Trailer: big\r\n")

	cases := []forwardCase{
		{name: "GET with forwarded fields", request: "GET /echo HTTP/1.1\r\n" + host + "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n\r\n",
			method: "GET", status: 200, body: echo("GET", nil, 0, nil, "")},
		{name: "small POST sent with its head", request: "POST /echo HTTP/1.1\r\n" + host + "X-Forwarded-For: 203.0.113.9\r\nContent-Length: 5\r\n\r\nhello",
			method: "POST", status: 200, body: echo("POST", nil, 5, []byte("hello"), "")},
		{name: "small chunked POST with a trailer", request: "POST /echo HTTP/1.1\r\n" + host + "X-Forwarded-For: 203.0.113.9\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedBody([]byte("hello world"), 4, "X-Trailer: small\r\n"),
			method: "POST", status: 200, body: echo("POST", []string{"chunked"}, -1, []byte("hello world"), "small"), handover: true},
		{name: "1 MiB POST streamed", request: "POST /echo HTTP/1.1\r\n" + host + "X-Forwarded-For: 203.0.113.9\r\nContent-Length: 1048576\r\n\r\n",
			parts: []string{string(bigBody[:1000]), string(bigBody[1000:])}, method: "POST", status: 200, body: echo("POST", nil, 1<<20, bigBody, ""), handover: true},
		{name: "1 MiB chunked POST streamed", request: "POST /echo HTTP/1.1\r\n" + host + "X-Forwarded-For: 203.0.113.9\r\nTransfer-Encoding: chunked\r\n\r\n",
			parts: []string{bigChunked[:3000], bigChunked[3000:]}, method: "POST", status: 200, body: echo("POST", []string{"chunked"}, -1, bigBody, "big"), handover: true},
		{name: "Expect: 100-continue", request: "PUT /echo HTTP/1.1\r\n" + host + "X-Forwarded-For: 203.0.113.9\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
			interim: "100 Continue", parts: []string{"hello"}, method: "PUT", status: 200, body: echo("PUT", nil, 5, []byte("hello"), ""), handover: true},
		{name: "chunked response with a trailer", request: "GET /chunked HTTP/1.1\r\n" + host + "\r\n",
			method: "GET", status: 200, header: map[string]string{"Transfer-Encoding": "chunked"}, body: "abcdef", trailer: "abcdef"},
		{name: "1 MiB response", request: "GET /big HTTP/1.1\r\n" + host + "\r\n",
			method: "GET", status: 200, header: map[string]string{"Content-Length": "1048576"}, body: string(bigBody)},
		{name: "HEAD", request: "HEAD /big HTTP/1.1\r\n" + host + "\r\n",
			method: "HEAD", status: 200, header: map[string]string{"Content-Length": "1048576"}},
		{name: "204", request: "GET /nocontent HTTP/1.1\r\n" + host + "\r\n", method: "GET", status: 204},
		{name: "304", request: "GET /notmodified HTTP/1.1\r\n" + host + "\r\n", method: "GET", status: 304, header: map[string]string{"Etag": `"v1"`}},
		{name: "103 before the response", request: "GET /early HTTP/1.1\r\n" + host + "\r\n",
			interim: "103 Early Hints", method: "GET", status: 200, body: "final"},
		{name: "hop-by-hop response fields", request: "GET /hop HTTP/1.1\r\n" + host + "\r\n",
			method: "GET", status: 200, header: map[string]string{"Connection": "", "X-Private": "", "Keep-Alive": "", "Strict-Transport-Security": "max-age=1"}, body: "hop"},
	}
	var loopCases, handoverCases []forwardCase
	for _, tc := range cases {
		if tc.handover {
			handoverCases = append(handoverCases, tc)
		} else {
			loopCases = append(loopCases, tc)
		}
	}
	// Two requests in one write: each answered, in order.
	rc.send(loopCases[0].request + loopCases[1].request)
	for _, tc := range loopCases[:2] {
		if resp, body := rc.response(tc.method); resp.StatusCode != tc.status || body != tc.body {
			t.Fatalf("pipelined %s: %d %.200q, want %d %.200q", tc.name, resp.StatusCode, body, tc.status, tc.body)
		}
	}
	forward(t, rc, loopCases)
	if n := s.handovers.Load(); n != 0 {
		t.Fatalf("the loops handed %d connections over, want 0", n)
	}
	forward(t, rc, handoverCases)
	if n := s.handovers.Load(); n != 1 {
		t.Fatalf("the loops handed %d connections over, want 1", n)
	}
	if got := gauge(t, reg, "atoll_lb_http_handovers_total"); got != 1 {
		t.Errorf("atoll_lb_http_handovers_total = %v, want 1", got)
	}
	forward(t, rc, loopCases)
}

// forward sends each case's request on rc and checks its response.
func forward(t *testing.T, rc *rawConn, cases []forwardCase) {
	t.Helper()
	for _, tc := range cases {
		rc.send(tc.request)
		if tc.interim != "" {
			if line, err := rc.r.ReadString('\n'); line != "HTTP/1.1 "+tc.interim+"\r\n" || err != nil {
				t.Fatalf("%s: interim status line %q (%v), want %s", tc.name, line, err, tc.interim)
			}
			for line, err := rc.r.ReadString('\n'); line != "\r\n"; line, err = rc.r.ReadString('\n') {
				if err != nil {
					t.Fatalf("%s: interim head: %v", tc.name, err)
				}
			}
		}
		for _, p := range tc.parts {
			rc.send(p)
		}
		resp, body := rc.response(tc.method)
		if resp.StatusCode != tc.status || body != tc.body {
			t.Fatalf("%s: %d %.200q, want %d %.200q", tc.name, resp.StatusCode, body, tc.status, tc.body)
		}
		for k, v := range tc.header {
			got := resp.Header.Get(k)
			if k == "Transfer-Encoding" && len(resp.TransferEncoding) > 0 {
				got = resp.TransferEncoding[0]
			}
			if k == "Content-Length" && resp.ContentLength >= 0 {
				got = strconv.FormatInt(resp.ContentLength, 10)
			}
			if got != v {
				t.Errorf("%s: %s %q, want %q", tc.name, k, got, v)
			}
		}
		if got := resp.Trailer.Get("X-Sum"); got != tc.trailer {
			t.Errorf("%s: trailer X-Sum %q, want %q", tc.name, got, tc.trailer)
		}
		if resp.Close {
			t.Fatalf("%s: the proxy closes the connection", tc.name)
		}
	}
}

// TestKeepAlive: a client's requests share its connection and a pooled backend
// connection; Connection: close and HTTP/1.0 without keep-alive end the connection after
// the response, HTTP/1.0 with keep-alive keeps it; a chunked response to an HTTP/1.0
// client ends with the connection.
func TestKeepAlive(t *testing.T) {
	s, _ := newTestServer(t)
	port, echoPort := freePort(t), freePort(t)
	backend := newRecordingBackend(t)
	swap(t, s, svcDef("web", port, ModeHTTP, backend.addr), svcDef("echo", echoPort, ModeHTTP, featureBackend(t, "f")))

	rc := dialRaw(t, port)
	for range 3 {
		rc.send("GET /k HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "ok" || resp.Close {
			t.Fatalf("= %d %q close=%v, want 200 ok on a kept connection", resp.StatusCode, body, resp.Close)
		}
	}
	rc.send("GET /k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, _ := rc.response("GET"); !resp.Close || !rc.closed() {
		t.Error("Connection: close: response without Connection: close, or the connection left open")
	}
	if got := backend.accepted(); got != 1 {
		t.Errorf("backend accepted %d connections for 4 requests in a row, want 1", got)
	}

	for _, tc := range []struct {
		name, request, connection string
		port                      int
		closed                    bool
		body                      string
	}{
		{"HTTP/1.0", "GET /k HTTP/1.0\r\n\r\n", "", port, true, "ok"},
		{"HTTP/1.0 keep-alive", "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "keep-alive", port, false, "ok"},
		{"HTTP/1.0 chunked response", "GET /chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "", echoPort, true, "abcdef"},
	} {
		// http.ReadResponse takes "Connection: close" out of the header into Close.
		rc := dialRaw(t, tc.port)
		rc.send(tc.request)
		resp, body := rc.response("GET")
		if resp.StatusCode != 200 || body != tc.body || resp.Header.Get("Connection") != tc.connection || resp.Close != tc.closed || len(resp.TransferEncoding) != 0 {
			t.Errorf("%s: %d %q Connection %q close=%v Transfer-Encoding %v, want 200 %q Connection %q close=%v", tc.name, resp.StatusCode, body,
				resp.Header.Get("Connection"), resp.Close, resp.TransferEncoding, tc.body, tc.connection, tc.closed)
		}
		if !tc.closed {
			rc.send(tc.request)
			if resp, _ := rc.response("GET"); resp.StatusCode != 200 {
				t.Errorf("%s: second request = %d", tc.name, resp.StatusCode)
			}
			continue
		}
		if !rc.closed() {
			t.Errorf("%s: connection left open", tc.name)
		}
	}
}

// TestBackendConnectionsRenewed: a backend connection is closed after the request that
// makes MaxRequestsPerBackendConn, once its response is relayed, and the next request
// opens a new one; on the loops' path and on the goroutine path a connection is handed
// over to.
func TestBackendConnectionsRenewed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		max      int
		handover bool
		conns    int
	}{
		{"loop", 3, false, 3},           // 7 requests: 3, 3 and 1
		{"handed over", 3, true, 3},     // the request handing over and 7: 3, 3 and 2
		{"loop, no limit", 0, false, 1}, // 7 on one
		{"handed over, no limit", 0, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, func(c *Config) { c.MaxRequestsPerBackendConn = tc.max })
			port := freePort(t)
			backend := newRecordingBackend(t)
			swap(t, s, svcDef("web", port, ModeHTTP, backend.addr))
			rc := dialRaw(t, port)
			if tc.handover {
				rc.send("POST /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
				if resp, body := rc.response("POST"); resp.StatusCode != 200 || body != "ok" {
					t.Fatalf("handover request = %d %q", resp.StatusCode, body)
				}
			}
			for i := range 7 {
				rc.send("GET /r HTTP/1.1\r\nHost: x\r\n\r\n")
				if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != "ok" || resp.Close {
					t.Fatalf("request %d = %d %q close=%v, want 200 ok on a kept connection", i, resp.StatusCode, body, resp.Close)
				}
			}
			if n := s.handovers.Load(); tc.handover != (n == 1) {
				t.Fatalf("%d connections handed over", n)
			}
			if got := backend.accepted(); got != tc.conns {
				t.Errorf("backend accepted %d connections, want %d", got, tc.conns)
			}
		})
	}
}

// TestExpectRefused: a backend that answers a request waiting for 100 Continue with a
// final status gets that status to the client, and the connection, whose body never
// came, is closed rather than left waiting for it.
func TestExpectRefused(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	swap(t, s, svcDef("web", port, ModeHTTP, featureBackend(t, "f")))
	rc := dialRaw(t, port)
	rc.send("POST /deny HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n")
	if resp, body := rc.response("POST"); resp.StatusCode != 403 || body != "denied\n" {
		t.Errorf("= %d %q, want 403 denied", resp.StatusCode, body)
	}
	if !rc.closed() {
		t.Error("connection left open")
	}
}

// TestUpgrade: a WebSocket handshake the backend accepts becomes a tunnel both ways,
// bytes the client sent right behind its request included.
func TestUpgrade(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	swap(t, s, svcDef("web", port, ModeHTTP, featureBackend(t, "f")))
	rc := dialRaw(t, port)
	rc.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\nfirst\n")
	resp, err := http.ReadResponse(rc.r, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Connection") != "Upgrade" {
		t.Fatalf("= %d Upgrade %q Connection %q, want 101 websocket Upgrade", resp.StatusCode, resp.Header.Get("Upgrade"), resp.Header.Get("Connection"))
	}
	for _, msg := range []string{"", "second"} {
		if msg != "" {
			rc.send(msg + "\n")
		} else {
			msg = "first"
		}
		if line, err := rc.r.ReadString('\n'); line != strings.ToUpper(msg)+"\n" || err != nil {
			t.Fatalf("through the tunnel: %q %v, want %q", line, err, strings.ToUpper(msg))
		}
	}
	// A request naming an upgrade the backend does not take is an ordinary request.
	rc = dialRaw(t, port)
	rc.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	if resp, body := rc.response("GET"); resp.StatusCode != 400 || body != "not an upgrade\n" {
		t.Errorf("refused upgrade = %d %q, want the backend's 400", resp.StatusCode, body)
	}
}

// rawBackend is a TCP backend that reads a request head and then does what act says
// with the connection.
func rawBackend(t testing.TB, act func(c net.Conn)) string {
	t.Helper()
	return scriptBackend(t, func(c *net.TCPConn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		act(c)
	})
}

// TestBackendFailures: a backend that closes without answering is a 502 (a GET is
// first retried on another backend), one that does not answer in time a 504, one that
// refuses connections a 503 once the queue timeout is over, one that answers garbage a
// 502; each with a short body, the client's connection kept. A backend that dies
// mid-body leaves the client a truncated response and a closed connection.
func TestBackendFailures(t *testing.T) {
	s, _ := newTestServer(t, func(c *Config) {
		c.ServerTimeout = 300 * time.Millisecond
		c.QueueTimeout = 100 * time.Millisecond
	})
	closing := rawBackend(t, func(c net.Conn) {})
	hanging := rawBackend(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	garbage := rawBackend(t, func(c net.Conn) { io.WriteString(c, "HTTP/1.1 20x OK\r\n\r\n") })
	truncated := rawBackend(t, func(c net.Conn) { io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..") })
	services := []Service{}
	ports := map[string]int{}
	for _, b := range []struct{ name, addr string }{{"closing", closing}, {"hanging", hanging}, {"refusing", deadAddr(t)}, {"garbage", garbage},
		{"truncated", truncated}, {"retry", closing}} {
		ports[b.name] = freePort(t)
		def := svcDef(b.name, ports[b.name], ModeHTTP, b.addr)
		if b.name == "retry" {
			def = svcDef(b.name, ports[b.name], ModeHTTP, closing, httpBackend(t, "live"))
		}
		services = append(services, def)
	}
	swap(t, s, services...)
	for _, tc := range []struct {
		service, request string
		status           int
		body             string
	}{
		{"closing", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502, "502 Bad Gateway\n"},
		{"closing", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 502, "502 Bad Gateway\n"},
		{"hanging", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 504, "504 Gateway Timeout\n"},
		{"refusing", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 503, "503 Service Unavailable\n"},
		{"garbage", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502, "502 Bad Gateway\n"},
		{"retry", "GET /r HTTP/1.1\r\nHost: x\r\n\r\n", 200, "live /r 127.0.0.1 "},
		{"retry", "GET /r HTTP/1.1\r\nHost: x\r\n\r\n", 200, "live /r 127.0.0.1 "},
	} {
		rc := dialRaw(t, ports[tc.service])
		for range 2 {
			rc.send(tc.request)
			method, _, _ := strings.Cut(tc.request, " ")
			resp, body := rc.response(method)
			if resp.StatusCode != tc.status || body != tc.body || resp.Close {
				t.Errorf("%s: %q = %d %q close=%v, want %d %q on a kept connection", tc.service, tc.request, resp.StatusCode, body, resp.Close, tc.status, tc.body)
			}
		}
	}
	rc := dialRaw(t, ports["truncated"])
	rc.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(rc.r, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("truncated: %v %v", resp, err)
	}
	if body, err := io.ReadAll(resp.Body); string(body) != "only ten.." || err != io.ErrUnexpectedEOF {
		t.Errorf("truncated body %q %v, want the 10 bytes sent and an unexpected EOF", body, err)
	}
}

// TestClientTimeouts: a client that does not finish its request head, or its body, or
// that idles on a kept connection, is disconnected; the backend's request for a body
// that never came is ended too.
func TestClientTimeouts(t *testing.T) {
	s, _ := newTestServer(t, func(c *Config) {
		c.HeaderTimeout = 200 * time.Millisecond
		c.ClientTimeout = 300 * time.Millisecond
		c.IdleTimeout = 400 * time.Millisecond
	})
	port := freePort(t)
	aborted := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		if r.Method == "POST" {
			aborted <- err
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	swap(t, s, svcDef("web", port, ModeHTTP, strings.TrimPrefix(srv.URL, "http://")))

	for _, tc := range []struct{ name, request string }{
		{"partial head", "GET / HTTP/1.1\r\nHost: x\r\n"},
		{"partial body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"},
		{"idle after a request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		rc := dialRaw(t, port)
		rc.send(tc.request)
		if !rc.closed() {
			t.Errorf("%s: connection still open after %v", tc.name, waitTimeout)
		}
	}
	select {
	case err := <-aborted:
		if err == nil {
			t.Error("the backend read a whole body the client never sent")
		}
	case <-time.After(waitTimeout):
		t.Error("the backend's request for the partial body never ended")
	}
}

// TestStaleBackendConnections: a pooled connection the backend closed while it was idle
// is not a failure: a GET goes on a new connection, and a POST (which cannot be sent
// twice) is checked before it is sent.
func TestStaleBackendConnections(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	closedConns := make(chan struct{}, 16)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateClosed {
			closedConns <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	swap(t, s, svcDef("web", port, ModeHTTP, strings.TrimPrefix(srv.URL, "http://")))
	rc := dialRaw(t, port)
	for _, request := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"} {
		for i := range 2 {
			rc.send(request)
			if resp, body := rc.response(request[:4]); resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("%q (%d) = %d %q", request, i, resp.StatusCode, body)
			}
			select {
			case <-closedConns:
			case <-time.After(waitTimeout):
				t.Fatal("the backend never closed its idle connection")
			}
		}
	}
	if f := s.routes.Load().services[0].backends[0].failures.Load(); f != 0 {
		t.Errorf("backend failures %d, want 0", f)
	}
}

// TestHTTP2ClientOverTLS: a client that offers HTTP/2 in its TLS handshake is served
// HTTP/1.1.
func TestHTTP2ClientOverTLS(t *testing.T) {
	s, _ := newTestServer(t)
	web := svcDef("web", freePort(t), ModeHTTP, httpBackend(t, "web"))
	web.VHosts = []string{"web.example"}
	swap(t, s, web)
	client := httpsClient(t, "web.example")
	client.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	req, err := http.NewRequest("GET", "https://"+s.HTTPSAddr().String()+"/h2", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "web.example"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" || string(body) != "web /h2 127.0.0.1 " {
		t.Errorf("= %d %s %q, want 200 HTTP/1.1 %q", resp.StatusCode, resp.Proto, body, "web /h2 127.0.0.1 ")
	}
}

// gauge is the value of the unlabelled counter or gauge name in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name || len(f.GetMetric()) != 1 {
			continue
		}
		m := f.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}
