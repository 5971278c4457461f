package lb

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzHeadFrom: parsing a head from a buffer (headFrom, the loops' HTTP path) never
// panics and agrees with reading it from a stream (readHead, the goroutine path): the
// same head bytes, or both waiting for more (the stream ended within it), or both too
// large.
func FuzzHeadFrom(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"\r\n\nGET / HTTP/1.1\nHost: x\n\nbody",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"GET / HTTP/1.1\r\nHost: x\r\n",
		"\r\n\r\n",
		"GET / HTTP/1.1\r\nA: \r\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var fromBuf, fromStream head
		n, err := headFrom(p, &fromBuf)
		serr := readHead(bufio.NewReaderSize(bytes.NewReader(p), 64), &fromStream)
		switch {
		case err == nil:
			if serr != nil || !bytes.Equal(fromBuf.buf, fromStream.buf) {
				t.Fatalf("headFrom: %q (%d bytes); readHead: %q %v", fromBuf.buf, n, fromStream.buf, serr)
			}
			if n > len(p) || !bytes.HasSuffix(p[:n], fromBuf.buf) {
				t.Fatalf("headFrom took %d bytes of %q for %q", n, p, fromBuf.buf)
			}
		case errors.Is(err, errIncomplete):
			if !errors.Is(serr, io.EOF) && !errors.Is(serr, io.ErrUnexpectedEOF) {
				t.Fatalf("headFrom: incomplete; readHead: %q %v", fromStream.buf, serr)
			}
		case errors.Is(err, errHeadTooLarge):
			if !errors.Is(serr, errHeadTooLarge) && !(len(p) >= maxHeadSize && errors.Is(serr, io.ErrUnexpectedEOF)) {
				t.Fatalf("headFrom: too large; readHead: %v", serr)
			}
		default:
			t.Fatalf("headFrom: unexpected error %v", err)
		}
	})
}

// FuzzLoopChunked: the loops' relay of a chunked response body, fed in two pieces split
// anywhere, never panics and agrees with decodeChunked: what it sends on decodes to the
// same data and trailers, or both wait for more, or both find the framing invalid.
func FuzzLoopChunked(f *testing.F) {
	for _, seed := range []struct {
		body  string
		split uint16
	}{
		{"0\r\n\r\n", 1},
		{"3\r\nabc\r\n0\r\n\r\n", 5},
		{"3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n", 20},
		{"5\r\nab", 3},
		{"zz\r\n", 0},
		{"3\r\nabcd\r\n", 7},
		{"0\r\nno colon\r\n\r\n", 4},
	} {
		f.Add([]byte(seed.body), seed.split)
	}
	f.Fuzz(func(t *testing.T, body []byte, split uint16) {
		data, trailers, n, derr := decodeChunked(body, nil, nil)
		cut := int(split) % (len(body) + 1)
		c := &hconn{rphase: rChunkSize}
		var out, pending []byte
		consumed, done := 0, false
		var rerr error
		for _, piece := range [][]byte{body[:cut], body[cut:]} {
			if done || rerr != nil {
				break
			}
			pending = append(pending, piece...)
			var used int
			used, done, rerr = c.relay(pending, &out)
			if used > len(pending) {
				t.Fatalf("relay used %d of %d bytes", used, len(pending))
			}
			pending = pending[used:]
			consumed += used
		}
		switch {
		case derr == nil:
			if rerr != nil || !done {
				t.Fatalf("decodeChunked: %q %q; relay: done=%v %v", data, trailers, done, rerr)
			}
			if consumed != n {
				t.Fatalf("relay took %d bytes, decodeChunked %d", consumed, n)
			}
			again, againTrailers, _, err := decodeChunked(out, nil, nil)
			if err != nil || !bytes.Equal(again, data) || !bytes.Equal(againTrailers, trailers) {
				t.Fatalf("relayed %q decodes to %q %q %v, want %q %q", out, again, againTrailers, err, data, trailers)
			}
		case errors.Is(derr, errIncomplete):
			if rerr != nil || done {
				t.Fatalf("decodeChunked: incomplete; relay: done=%v %v", done, rerr)
			}
		default:
			if rerr == nil {
				t.Fatalf("decodeChunked: %v; relay: done=%v, no error", derr, done)
			}
		}
	})
}

// TestLoopLargeResponse: a response far larger than what a connection may relay in one
// turn of its loop (transferBudget reads) reaches the client whole over the loop, also
// when the backend has written all of it before the loop reads any: a connection that
// spent its turn is served again without waiting for another event.
func TestLoopLargeResponse(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	swap(t, s, svcDef("web", port, ModeHTTP, strings.TrimPrefix(srv.URL, "http://")))
	rc := dialRaw(t, port)
	for range 3 {
		rc.send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // the backend writes ahead into the socket buffers
		// A stalled relay waits for the backend inactivity timeout (seconds); 8 MiB
		// over loopback takes milliseconds.
		_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, got := rc.response("GET")
		if resp.StatusCode != 200 || got != string(body) {
			t.Fatalf("= %d, %d bytes, want 200 and %d bytes", resp.StatusCode, len(got), len(body))
		}
	}
	if n := s.handovers.Load(); n != 0 {
		t.Errorf("the loops handed %d connections over, want 0", n)
	}
}

// TestLoopHandsOverLargeRequests: a request larger than the loop's request buffer (a
// 30 KB head, a 40 KB body sent with it) is handed over with what was read of it and
// answered whole by the goroutine path.
func TestLoopHandsOverLargeRequests(t *testing.T) {
	s, _ := newTestServer(t)
	port := freePort(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, strconv.Itoa(len(r.Header.Get("X-Big")))+" "+strconv.Itoa(len(body)))
	}))
	t.Cleanup(srv.Close)
	swap(t, s, svcDef("web", port, ModeHTTP, strings.TrimPrefix(srv.URL, "http://")))
	big := strings.Repeat("b", 30000)
	for i, tc := range []struct{ request, want string }{
		{"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", "30000 0"},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\n" + strings.Repeat("p", 40000), "0 40000"},
	} {
		rc := dialRaw(t, port)
		rc.send(tc.request)
		if resp, body := rc.response("GET"); resp.StatusCode != 200 || body != tc.want {
			t.Fatalf("request %d = %d %q, want 200 %q", i, resp.StatusCode, body, tc.want)
		}
		if n := s.handovers.Load(); n != uint64(i+1) {
			t.Errorf("after request %d the loops handed %d connections over, want %d", i, n, i+1)
		}
	}
}
