package master

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServer is a real master on loopback for tests: Raft on disk in a temp dir, the HTTP
// API on a random port, dev timings.
type TestServer struct {
	*Master
	URL     string
	DataDir string
	urlMu   sync.Mutex

	t      testing.TB
	cfg    Config
	cancel context.CancelFunc
	done   chan error
	srv    *http.Server
}

// NewTestServer starts a single master and waits until it leads. opts adjust the config
// before start (the data dir stays the same across Restart).
func NewTestServer(t testing.TB, opts ...func(*Config)) *TestServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.RaftAddr = "127.0.0.1:0"
	cfg.Hostname = "localhost"
	cfg.Dev = true
	cfg.BootstrapSelf = true
	cfg.HeartbeatInterval = 500 * time.Millisecond
	cfg.AgentTimeout = 2 * time.Second
	cfg.AllocationInterval = 100 * time.Millisecond
	cfg.AllocationBatch = time.Millisecond
	tw := &testWriter{t: t}
	t.Cleanup(tw.stop) // registered first, so it runs after the master stopped
	cfg.Logger = slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, o := range opts {
		o(&cfg)
	}
	ts := &TestServer{t: t, cfg: cfg, DataDir: cfg.DataDir}
	ts.start()
	t.Cleanup(ts.Stop)
	return ts
}

func (ts *TestServer) start() {
	ts.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ts.t.Fatalf("listen: %v", err)
	}
	ts.urlMu.Lock()
	ts.URL = "http://" + ln.Addr().String()
	ts.urlMu.Unlock()
	cfg := ts.cfg
	cfg.APIURL = ts.URL
	m, err := New(cfg)
	if err != nil {
		ln.Close()
		ts.t.Fatalf("new master: %v", err)
	}
	ts.Master = m
	ts.srv = &http.Server{Handler: m.Handler()}
	go func() { _ = ts.srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ts.done = make(chan error, 1)
	go func() { ts.done <- m.Run(ctx) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m.mu.Lock()
		ready := m.leader != nil
		m.mu.Unlock()
		if ready {
			return
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("master did not become leader within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop shuts the master down (idempotent).
func (ts *TestServer) Stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Streams end when Run closes them; Shutdown then finds no active handlers.
	if err := <-ts.done; err != nil && !errors.Is(err, context.Canceled) {
		ts.t.Logf("master stopped: %v", err)
	}
	_ = ts.srv.Shutdown(ctx)
	ts.cancel = nil
}

// Restart stops the master and starts a new one on the same data dir (and a new port).
func (ts *TestServer) Restart() {
	ts.t.Helper()
	ts.Stop()
	ts.start()
}

// Masters returns the master's current API URL, for agents that must follow restarts.
func (ts *TestServer) Masters() []string {
	ts.urlMu.Lock()
	defer ts.urlMu.Unlock()
	return []string{ts.URL}
}

// testWriter sends log lines to t.Log so they show only for failing tests; it goes quiet
// once the test is over, as t.Log must not be called then.
type testWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
