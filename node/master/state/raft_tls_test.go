package state

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
)

func TestRaftConfigValidateTLS(t *testing.T) {
	cfg := DefaultRaftConfig()
	cfg.NodeID, cfg.DataDir, cfg.BindAddr = "n1", t.TempDir(), "127.0.0.1:0"
	for _, tt := range []struct {
		name string
		tls  *RaftTLS
		err  string
	}{
		{"plain", nil, ""},
		{"both sides", &RaftTLS{Server: &tls.Config{}, Client: &tls.Config{}}, ""},
		{"no client side", &RaftTLS{Server: &tls.Config{}}, "raft config: TLS needs both a Server and a Client configuration"},
		{"no server side", &RaftTLS{Client: &tls.Config{}}, "raft config: TLS needs both a Server and a Client configuration"},
	} {
		c := cfg
		c.TLS = tt.tls
		got := ""
		if err := c.Validate(); err != nil {
			got = err.Error()
		}
		if got != tt.err {
			t.Errorf("%s: Validate() = %q, want %q", tt.name, got, tt.err)
		}
	}
}

// TestListenTLS: the TLS stream layer advertises the address members dial, and refuses
// to advertise one they cannot.
func TestListenTLS(t *testing.T) {
	both := &RaftTLS{Server: &tls.Config{}, Client: &tls.Config{}}
	layer, err := listenTLS("127.0.0.1:0", nil, both)
	if err != nil {
		t.Fatal(err)
	}
	if layer.Addr().String() != layer.Listener.Addr().String() {
		t.Errorf("Addr() = %v, want the bound %v", layer.Addr(), layer.Listener.Addr())
	}
	layer.Close()

	advertise := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5052}
	layer, err = listenTLS("127.0.0.1:0", advertise, both)
	if err != nil {
		t.Fatal(err)
	}
	if layer.Addr() != advertise {
		t.Errorf("Addr() = %v, want %v", layer.Addr(), advertise)
	}
	layer.Close()

	if _, err := listenTLS("0.0.0.0:0", nil, both); err == nil || !strings.HasPrefix(err.Error(), "address ") || !strings.HasSuffix(err.Error(), " is not one other members can dial") {
		t.Errorf("wildcard bind without advertise: %v", err)
	}
	if _, err := listenTLS("256.0.0.1:0", nil, both); !errors.As(err, new(*net.OpError)) {
		t.Errorf("bad bind: %v, want a listen error", err)
	}
}
