package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestStreamReadBuffer: the connection an event stream opens has streamReadBuffer as its
// receive buffer (as far as net.core.rmem_max lets it), over plain HTTP and TLS alike,
// and one that makes ordinary calls keeps the kernel's own.
func TestStreamReadBuffer(t *testing.T) {
	raw, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("no rmem_max to compare with: %v", err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("rmem_max %q: %v", raw, err)
	}
	want := 2 * min(streamReadBuffer, rmemMax) // the kernel doubles what it is given
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(string(body), string(OpSubscribe)) {
			_, _ = w.Write(AppendRecord(nil, []byte(`{"type":"SUBSCRIBED","subscribed":{}}`)))
			return
		}
		_, _ = w.Write([]byte(`{"type":"GET_STATE","get_state":{}}`))
	})
	for _, tlsOn := range []bool{false, true} {
		name := "http"
		srv := httptest.NewUnstartedServer(handler)
		if tlsOn {
			name = "https"
			srv.StartTLS()
		} else {
			srv.Start()
		}
		t.Run(name, func(t *testing.T) {
			defer srv.Close()
			dialed := make(chan *net.TCPConn, 4)
			transport := srv.Client().Transport.(*http.Transport).Clone()
			defer transport.CloseIdleConnections()
			transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					dialed <- c.(*net.TCPConn)
				}
				return c, err
			}
			client := NewClient(srv.URL, WithHTTPClient(&http.Client{Transport: transport}))
			stream, err := client.SubscribeOperator(testContext(t))
			if err != nil {
				t.Fatalf("SubscribeOperator: %v", err)
			}
			defer stream.Close()
			if got := receiveBuffer(t, <-dialed); got != want {
				t.Errorf("the stream's connection has SO_RCVBUF %d, want %d", got, want)
			}
			if _, err := client.GetState(testContext(t)); err != nil {
				t.Fatalf("GET_STATE: %v", err)
			}
			if got := receiveBuffer(t, <-dialed); got == want {
				t.Errorf("a call's connection has SO_RCVBUF %d too, want the kernel's default", got)
			}
		})
	}
}

func receiveBuffer(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var size int
	var serr error
	if err := rc.Control(func(fd uintptr) { size, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return size
}
