package agent

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/isolate"
)

// TestAgent starts an agent for tests and stops it (killing its tasks) when the test ends.
// It runs in t.TempDir() on 127.0.0.1 with a random port, fixed resources
// "cpus:4;mem:4096;disk:10000;ports:[31000-31100]", fast heartbeats, retries and
// reconnects, logs through t.Log, and the real process containerizer, which re-executes the
// test binary: the calling package's TestMain must call isolate.RunShimIfRequested first.
// opts adjust the config before the agent is built (for example WorkDir, to restart an
// agent on the same work dir after Shutdown).
func TestAgent(t testing.TB, masters func() []string, opts ...func(*Config)) *Agent {
	t.Helper()
	cfg := DefaultConfig()
	cfg.WorkDir = t.TempDir()
	cfg.Hostname = "localhost"
	cfg.Resources = "cpus:4;mem:4096;disk:10000;ports:[31000-31100]"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Masters = masters
	cfg.Logger = TestLogger(t)
	cfg.HeartbeatInterval = 200 * time.Millisecond
	cfg.UpdateRetryInitial = 200 * time.Millisecond
	cfg.UpdateRetryMax = 2 * time.Second
	cfg.ReconnectBackoff = 50 * time.Millisecond
	cfg.ReconnectBackoffMax = 500 * time.Millisecond
	cfg.Version = "test"
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.Containerizer == nil {
		pc := isolate.DefaultProcessConfig()
		pc.StateDir = filepath.Join(cfg.WorkDir, "containers")
		if cfg.Logger != nil {
			pc.Logger = cfg.Logger.With("component", "isolate")
		}
		containerizer, err := isolate.NewProcess(pc)
		if err != nil {
			t.Fatalf("process containerizer: %v", err)
		}
		cfg.Containerizer = containerizer
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	t.Cleanup(func() {
		shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancelShutdown()
		if err := a.Shutdown(shutdownCtx, true); err != nil {
			t.Errorf("agent shutdown: %v", err)
		}
		cancel()
		if err := <-runErr; err != nil && !errors.Is(err, ErrShutdown) {
			t.Errorf("agent run: %v", err)
		}
	})
	return a
}

// TestLogger returns a debug-level logger writing to t.Log, so logs show only for failed
// (or verbose) tests. Lines logged after the test ended are dropped.
func TestLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

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
