package master

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestNewFailureUnregistersMetrics: a New that fails because its Raft address is taken
// leaves nothing in the registry it was given, so that New again with the same registry
// (node.Run does so with another port) starts a master instead of panicking on a
// duplicate registration.
func TestNewFailureUnregistersMetrics(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr = taken.Addr().String()
	cfg.APIURL = "http://127.0.0.1:1"
	cfg.Hostname = "localhost"
	cfg.BootstrapSelf = true
	cfg.Registry = reg
	if _, err := New(cfg); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("New on a taken Raft address: %v, want EADDRINUSE", err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("after the failed New the registry holds %d metric families (%v), want none", len(mfs), err)
	}
	cfg.RaftAddr = "127.0.0.1:0"
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New again with the same registry: %v", err)
	}
	defer m.Raft().Close()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) == 0 {
		t.Fatalf("the started master's registry: %d metric families, %v", len(mfs), err)
	}
}
