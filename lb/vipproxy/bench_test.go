package vipproxy

import (
	"io"
	"net"
	"testing"
)

// BenchmarkConnect: new connections per second through a VIP port on loopback, each
// reading its backend's greeting.
func BenchmarkConnect(b *testing.B) {
	p := newProxy(b, Local{})
	addr := freePort(b, "127.0.0.207")
	if err := p.Update(table(tcpService(addr, echoServer(b, "a"), echoServer(b, "b")))); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 2)
	for b.Loop() {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkThroughput: bytes per second echoed through a VIP port on loopback, 64 KiB
// at a time on one connection.
func BenchmarkThroughput(b *testing.B) {
	p := newProxy(b, Local{})
	addr := freePort(b, "127.0.0.208")
	if err := p.Update(table(tcpService(addr, echoServer(b, "a")))); err != nil {
		b.Fatal(err)
	}
	c, _ := dial(b, addr)
	chunk := make([]byte, 64<<10)
	back := make([]byte, len(chunk))
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := c.c.Write(chunk); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c.r, back); err != nil {
			b.Fatal(err)
		}
	}
}
