package host

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRemote is a framework run by itself for a test, against a real master over HTTP:
// its API on a random loopback port, quick restarts, logs to t.Log.
type TestRemote struct {
	// URL is the framework's API base URL.
	URL string

	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// StartTestRemote starts a framework keeping its state in namespace, against the master
// at masterURL; attach plugs the framework into the host (services.New, jobs.New) with
// the logger given. It stops when the test ends, or at Stop.
func StartTestRemote(t testing.TB, masterURL, namespace string, attach func(h Host, logger *slog.Logger)) *TestRemote {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs after the framework stopped
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := DefaultRemoteConfig()
	cfg.Master, cfg.Namespace, cfg.Listen, cfg.Logger = masterURL, namespace, "127.0.0.1:0", logger
	cfg.RestartDelay, cfg.MaxRestartDelay = 100*time.Millisecond, time.Second
	h, err := NewRemote(cfg)
	if err != nil {
		t.Fatalf("framework host: %v", err)
	}
	attach(h, logger)
	ctx, cancel := context.WithCancel(context.Background())
	r := &TestRemote{URL: h.APIURL(), t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- h.Serve(ctx) }()
	t.Cleanup(r.Stop)
	return r
}

// Stop stops the framework and waits until it has (idempotent).
func (r *TestRemote) Stop() {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			r.t.Errorf("framework at %s stopped: %v", r.URL, err)
		}
	})
}

// testLogWriter sends log lines to t.Log until the test is over (t.Log must not be
// called after).
type testLogWriter struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}
