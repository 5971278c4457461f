package lb

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixedBackend answers every request on a connection with a 612-byte page (nginx's
// default index), as scripts/bench/lb.sh's backend does.
func fixedBackend(b testing.TB) string {
	b.Helper()
	page := strings.Repeat("a", 612)
	resp := []byte("HTTP/1.1 200 OK\r\nServer: fixed\r\nContent-Type: text/html\r\nContent-Length: " + strconv.Itoa(len(page)) + "\r\n\r\n" + page)
	return scriptBackend(b, func(c *net.TCPConn) {
		_ = c.SetDeadline(time.Time{})
		r := bufio.NewReader(c)
		for {
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

// BenchmarkHTTPKeepAlive: one keep-alive request and response through the HTTP path
// (a service port), as wrk's against lb.sh's fixture.
func BenchmarkHTTPKeepAlive(b *testing.B) {
	s, _ := newTestServer(b)
	port := freePort(b)
	swap(b, s, svcDef("web", port, ModeHTTP, fixedBackend(b)))
	c := dialTCP(b, port)
	_ = c.SetDeadline(time.Time{})
	req := []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n")
	r := bufio.NewReaderSize(c, 4096)
	read := func() {
		n := -1
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
				n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
			if len(line) <= 2 {
				break
			}
		}
		if _, err := r.Discard(n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		read()
	}
}

// BenchmarkTCPConnection: one short connection through the TCP path: connect, a
// request, its response, and both ends closing.
func BenchmarkTCPConnection(b *testing.B) {
	s, _ := newTestServer(b)
	port := freePort(b)
	swap(b, s, svcDef("raw", port, ModeTCP, scriptBackend(b, func(c *net.TCPConn) {
		buf := make([]byte, 64)
		if _, err := c.Read(buf); err == nil {
			_, _ = c.Write([]byte("pong"))
		}
	})))
	addr := "127.0.0.1:" + strconv.Itoa(port)
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			b.Fatal(err)
		}
		if n, err := io.ReadFull(c, buf[:4]); n != 4 || err != nil {
			b.Fatal(n, err)
		}
		c.Close()
	}
}
