package dns

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServer starts a DNS server for tests on 127.0.0.1 with a random port, one UDP
// socket, no upstreams (out-of-domain queries are refused, so a test never reaches a real
// resolver), named VIPs from TestVIPRange, quick reconnects and logs through t.Log, and
// stops it when the test ends.
// opts adjust the config before the server is built (Masters to follow a test master,
// Upstreams to forward to a test resolver).
func TestServer(t testing.TB, opts ...func(*Config)) *Server {
	t.Helper()
	cfg := DevConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ResolvConf = ""
	cfg.UpstreamTimeout = 2 * time.Second
	cfg.ReconnectBackoff = 20 * time.Millisecond
	cfg.ReconnectBackoffMax = 200 * time.Millisecond
	cfg.MasterRefresh = 200 * time.Millisecond
	cfg.Version = "test"
	cfg.VIPRange = TestVIPRange
	w := &testLogWriter{t: t}
	t.Cleanup(w.close)
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, opt := range opts {
		opt(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("new dns server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("dns server: %v", err)
		}
	})
	return s
}

// TestVIPRange is the VIP range of TestServer: the part of the benchmarking range
// (198.18.0.0/15) kept for VIPs in tests.
const TestVIPRange = "198.18.1.192/26"

// testLogWriter passes each log line to t.Log until the test ends.
type testLogWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
