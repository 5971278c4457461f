package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// parseRequestBytes reads, parses and analyzes one request head from b.
func parseRequestBytes(b []byte) (*request, *bufio.Reader, error) {
	br := bufio.NewReaderSize(bytes.NewReader(b), readBufferSize)
	r := &request{}
	if err := readHead(br, &r.head); err != nil {
		return nil, br, err
	}
	if err := r.parseRequest(); err != nil {
		return nil, br, err
	}
	return r, br, r.analyze()
}

// TestParseRequest: what the parser derives from valid heads, and the status of the
// error for invalid ones.
func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name, head string
		// want is "method uri host path cl chunked close expect upgrade fields", or the
		// error's status.
		want string
	}{
		{"simple", "GET /a?b=1 HTTP/1.1\r\nHost: x.example\r\n\r\n", "GET /a?b=1 x.example /a -1 false false false  1"},
		{"leading empty lines and bare LFs", "\r\n\n\r\nGET / HTTP/1.1\nHost: x\n\n", "GET / x / -1 false false false  1"},
		{"absolute form", "GET http://Other.example:8080/p?q HTTP/1.1\r\nHost: x\r\n\r\n", "GET /p?q Other.example:8080 /p -1 false false false  1"},
		{"absolute form without a path", "GET https://o.example HTTP/1.1\r\nHost: x\r\n\r\n", "GET / o.example / -1 false false false  1"},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "OPTIONS * x * -1 false false false  1"},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", "GET /  / -1 false true false  0"},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET /  / -1 false false false  1"},
		{"HTTP/1.1 close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", "GET / x / -1 false true false  2"},
		{"HTTP/1.9 is 1.1", "GET / HTTP/1.9\r\nHost: x\r\n\r\n", "GET / x / -1 false false false  1"},
		{"Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n", "POST / x / 12 false false false  2"},
		{"repeated equal Content-Lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\ncontent-length: 2\r\n\r\n", "POST / x / 2 false false false  3"},
		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:chunked\r\n\r\n", "POST / x / -1 true false false  2"},
		{"expect", "PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", "PUT / x / 1 false false true  3"},
		{"upgrade", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", "GET / x / -1 false false false websocket 3"},
		{"upgrade without Connection naming it", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", "GET / x / -1 false false false  2"},
		{"field value trimmed", "GET / HTTP/1.1\r\nHost: \t x \t\r\n\r\n", "GET / x / -1 false false false  1"},
		{"empty field value", "GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n", "GET / x / -1 false false false  2"},
		{"obs-text in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n", "GET / x / -1 false false false  2"},
		{"HTTP/2", "PRI * HTTP/2.0\r\n\r\n", "505"},
		{"absolute form with only a query", "GET http://x?q HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", "400"},
		{"CONNECT", "CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n", "405"},
		{"bad Connection token", "GET / HTTP/1.1\r\nHost: x\r\nConnection: a b\r\n\r\n", "400"},
		{"field name with a space", "GET / HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n", "400"},
		{"DEL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX: \x7f\r\n\r\n", "400"},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: x\r\nExpect: x\r\n\r\n", "417"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, err := parseRequestBytes([]byte(tc.head))
			var got string
			if err != nil {
				var pe *protoError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v is not a protocol error", err)
				}
				got = strconv.Itoa(pe.status)
			} else {
				got = strings.Join([]string{string(r.bytes(r.method)), string(r.uri), string(r.host), string(r.path), strconv.FormatInt(r.contentLength, 10),
					strconv.FormatBool(r.chunked), strconv.FormatBool(r.close), strconv.FormatBool(r.expect), string(r.upgrade), strconv.Itoa(len(r.fields))}, " ")
			}
			if got != tc.want {
				t.Errorf("= %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDecodeChunked: whole chunked bodies decode to their data and trailers, partial
// ones are incomplete, and malformed ones are errors, from a buffer and from a stream
// alike.
func TestDecodeChunked(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		// data and trailers when whole; err "incomplete", or "invalid".
		data, trailers, err string
	}{
		{"empty", "0\r\n\r\n", "", "", ""},
		{"two chunks", "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", "abc0123456789", "", ""},
		{"extensions", "3;a=b;c=\"d e\"\r\nabc\r\n0;last\r\n\r\n", "abc", "", ""},
		{"space before an extension", "3 ;a\r\nabc\r\n0\r\n\r\n", "abc", "", ""},
		{"trailers", "1\r\nx\r\n0\r\nA: 1\r\nB:2\r\n\r\n", "x", "A: 1\r\nB:2\r\n", ""},
		{"upper-case hex", "B\r\nhello world\r\n0\r\n\r\n", "hello world", "", ""},
		{"no last chunk", "3\r\nabc\r\n", "", "", "incomplete"},
		{"no end of trailers", "0\r\nA: 1\r\n", "", "", "incomplete"},
		{"data cut", "5\r\nab", "", "", "incomplete"},
		{"size line cut", "5", "", "", "incomplete"},
		{"CR cut", "0\r", "", "", "incomplete"},
		{"bad size", "g\r\n", "", "", "invalid"},
		{"trailing space", "0 \r\n\r\n", "", "", "invalid"},
		{"bare LF", "0\n\r\n", "", "", "invalid"},
		{"bare CR", "0\rx\n", "", "", "invalid"},
		{"data too long", "1\r\nab\r\n0\r\n\r\n", "", "", "invalid"},
		{"16 digits", "0000000000000001\r\na\r\n0\r\n\r\n", "", "", "invalid"},
		{"control character in an extension", "1;\x01\r\na\r\n0\r\n\r\n", "", "", "invalid"},
		{"folded trailer", "0\r\nA: 1\r\n 2\r\n\r\n", "", "", "invalid"},
		{"size line too long", "1;" + strings.Repeat("x", maxChunkLine) + "\r\na\r\n0\r\n\r\n", "", "", "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, trailers, n, err := decodeChunked([]byte(tc.body), nil, nil)
			if got := chunkOutcome(string(data), string(trailers), err); got != chunkOutcome(tc.data, tc.trailers, errorOf(tc.err)) {
				t.Errorf("decodeChunked = %s, want %s", got, chunkOutcome(tc.data, tc.trailers, errorOf(tc.err)))
			}
			if err == nil && n != len(tc.body) {
				t.Errorf("decodeChunked took %d bytes of %d", n, len(tc.body))
			}
			sData, sTrailers, sErr := readChunked([]byte(tc.body))
			if got, want := chunkOutcome(sData, sTrailers, sErr), chunkOutcome(tc.data, tc.trailers, errorOf(tc.err)); got != want {
				t.Errorf("chunkedReader = %s, want %s", got, want)
			}
		})
	}
}

func errorOf(kind string) error {
	switch kind {
	case "incomplete":
		return errIncomplete
	case "invalid":
		return errChunkSize
	}
	return nil
}

// chunkOutcome describes a decoding: its data and trailers, or the kind of its error
// (a stream that ends early is incomplete).
func chunkOutcome(data, trailers string, err error) string {
	var pe *protoError
	switch {
	case err == nil:
		return "data " + data + " trailers " + trailers
	case errors.Is(err, errIncomplete), errors.Is(err, io.ErrUnexpectedEOF):
		return "incomplete"
	case errors.As(err, &pe):
		return "invalid"
	}
	return "error " + err.Error()
}

// readChunked decodes a chunked body with chunkedReader.
func readChunked(b []byte) (data, trailers string, err error) {
	var cr chunkedReader
	cr.reset(bufio.NewReaderSize(bytes.NewReader(b), readBufferSize))
	out, err := io.ReadAll(&cr)
	return string(out), string(cr.trailers), err
}

// FuzzRequestHead: any bytes either parse into a request head or are an error (never a
// panic); a request that parses has unambiguous framing, and the head the proxy sends on
// for it parses again to the same method, target and framing.
func FuzzRequestHead(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n0\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://h:1/p?q HTTP/1.0\r\nConnection: keep-alive\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n",
		"\r\nGET / HTTP/1.1\nHost: x\n\n",
		"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := parseRequestBytes(data)
		if err != nil {
			return
		}
		if r.chunked && r.contentLength >= 0 {
			t.Fatalf("both chunked and Content-Length %d", r.contentLength)
		}
		if r.chunked && r.minor == 0 {
			t.Fatal("chunked HTTP/1.0 request")
		}
		if r.host != nil && !validHost(r.host) || len(r.uri) == 0 {
			t.Fatalf("host %q uri %q", r.host, r.uri)
		}
		c := &clientConn{ip: "192.0.2.1", req: *r}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		c.writeRequestHead(w, &backend{addr: "192.0.2.2:80"})
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		again, _, err := parseRequestBytes(out.Bytes())
		if err != nil {
			t.Fatalf("the head sent on does not parse: %v\n%s", err, out.Bytes())
		}
		if string(again.bytes(again.method)) != string(r.bytes(r.method)) || string(again.uri) != string(r.uri) ||
			again.chunked != r.chunked || again.contentLength != r.contentLength || string(again.upgrade) != string(r.upgrade) {
			t.Fatalf("sent on as %q, parsed as %q %q chunked=%v cl=%d", out.Bytes(), again.bytes(again.method), again.uri, again.chunked, again.contentLength)
		}
	})
}

// FuzzResponseHead: any bytes either parse into a response head with its framing or are
// an error, never a panic.
func FuzzResponseHead(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.0 304 Not Modified\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	} {
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, headRequest bool) {
		r := &response{}
		if err := readHead(bufio.NewReader(bytes.NewReader(data)), &r.head); err != nil {
			return
		}
		if err := r.parseResponse(); err != nil {
			return
		}
		if err := r.analyze(headRequest); err != nil {
			return
		}
		if r.status < 100 || r.status > 999 {
			t.Fatalf("status %d", r.status)
		}
		if r.chunked && r.contentLength >= 0 || r.untilClose && (r.chunked || r.contentLength >= 0 || !r.close) {
			t.Fatalf("framing chunked=%v cl=%d untilClose=%v close=%v", r.chunked, r.contentLength, r.untilClose, r.close)
		}
	})
}

// FuzzChunked: decoding a chunked body from a buffer (decodeChunked, which checks
// bodies already read) and from a stream (chunkedReader, which forwards them) never
// panics and always agrees: the same data and trailers, or both incomplete, or both
// invalid; and data re-encoded decodes to itself.
func FuzzChunked(f *testing.F) {
	for _, seed := range []string{
		"0\r\n\r\n",
		"3\r\nabc\r\n0\r\n\r\n",
		"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\nrest",
		"5\r\nab",
		"zz\r\n",
		"3\r\nabcd\r\n",
		"0\r\nno colon\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		data, trailers, n, err := decodeChunked(body, nil, nil)
		sData, sTrailers, sErr := readChunked(body)
		buffered, streamed := chunkOutcome(string(data), string(trailers), err), chunkOutcome(sData, sTrailers, sErr)
		if buffered != streamed {
			t.Fatalf("decodeChunked: %.200s; chunkedReader: %.200s", buffered, streamed)
		}
		if err != nil {
			return
		}
		if n <= 0 || n > len(body) {
			t.Fatalf("took %d bytes of %d", n, len(body))
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := writeChunk(w, data); err != nil {
			t.Fatal(err)
		}
		if err := writeLastChunk(w, trailers); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		again, againTrailers, _, err := decodeChunked(out.Bytes(), nil, nil)
		if err != nil || !bytes.Equal(again, data) || !bytes.Equal(againTrailers, trailers) {
			t.Fatalf("re-encoded %q decodes to %q %q %v", out.Bytes(), again, againTrailers, err)
		}
	})
}

// BenchmarkParseHeads: the loops' parsing of a request head as wrk sends it and of
// nginx's response head (scripts/bench/lb.sh's L7 test), per request.
func BenchmarkParseHeads(b *testing.B) {
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:18180\r\n\r\n")
	resp := []byte("HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 05:00:00 GMT\r\n" +
		"Content-Type: text/html\r\nContent-Length: 612\r\nLast-Modified: Tue, 24 Nov 2026 04:00:00 GMT\r\n" +
		"Connection: keep-alive\r\nETag: \"6563f0a0-264\"\r\nAccept-Ranges: bytes\r\n\r\n<html>")
	var h head
	for b.Loop() {
		if n, err := headFrom(req, &h); err != nil || n != len(req) {
			b.Fatal(n, err)
		}
		if err := h.parseRequest(); err != nil {
			b.Fatal(err)
		}
		if n, err := headFrom(resp, &h); err != nil || n != len(resp)-len("<html>") {
			b.Fatal(n, err)
		}
		if err := h.parseResponse(); err != nil || len(h.fields) != 8 {
			b.Fatal(len(h.fields), err)
		}
	}
}
