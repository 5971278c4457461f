package master

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestCluster is n masters on loopback bootstrapped into one Raft group, as
// --bootstrap-expect n does: real Raft on disk in temp dirs, dev timings, each master's
// HTTP API on its own port and 307s between them. Stop members to fail them; Restart is
// for single masters only (it waits for the restarted master to lead).
type TestCluster struct {
	Servers []*TestServer

	t    testing.TB
	mu   sync.Mutex
	apis map[string]string // server id → API URL
}

// NewTestCluster starts n masters named master-1 … master-n and waits until one leads and
// all agree on it. opts adjust every master's config before start.
func NewTestCluster(t testing.TB, n int, opts ...func(*Config)) *TestCluster {
	t.Helper()
	c := &TestCluster{t: t, apis: map[string]string{}}
	tw := &testWriter{t: t}
	t.Cleanup(tw.stop) // registered first, so it runs after the masters stopped
	logger := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	servers := make([]raft.Server, 0, n)
	listeners := make([]net.Listener, 0, n)
	for i := range n {
		cfg := DefaultConfig()
		cfg.ID = fmt.Sprintf("master-%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.RaftAddr = "127.0.0.1:0"
		cfg.Hostname = "localhost"
		cfg.Dev = true
		cfg.HeartbeatInterval = 500 * time.Millisecond
		cfg.AgentTimeout = 2 * time.Second
		cfg.AllocationInterval = 100 * time.Millisecond
		cfg.AllocationBatch = time.Millisecond
		cfg.Logger = logger.With("master", cfg.ID)
		cfg.LeaderAPI = c.apiURL
		for _, o := range opts {
			o(&cfg)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		ts := &TestServer{t: t, DataDir: cfg.DataDir, URL: "http://" + ln.Addr().String()}
		cfg.APIURL = ts.URL
		ts.cfg = cfg
		m, err := New(cfg)
		if err != nil {
			ln.Close()
			t.Fatalf("new master %s: %v", cfg.ID, err)
		}
		ts.Master = m
		t.Cleanup(func() {
			if ts.done == nil { // failed before it ran: Stop has nothing to stop
				ln.Close()
				m.Raft().Close()
			}
		})
		c.mu.Lock()
		c.apis[cfg.ID] = ts.URL
		c.mu.Unlock()
		c.Servers = append(c.Servers, ts)
		listeners = append(listeners, ln)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(cfg.ID), Address: m.Raft().Addr()})
	}
	for i, ts := range c.Servers {
		if err := ts.Raft().Bootstrap(servers); err != nil {
			t.Fatalf("bootstrap %s: %v", ts.cfg.ID, err)
		}
		ts.srv = &http.Server{Handler: ts.Handler()}
		ln := listeners[i]
		go func() { _ = ts.srv.Serve(ln) }()
		ctx, cancel := context.WithCancel(context.Background())
		ts.cancel = cancel
		ts.done = make(chan error, 1)
		go func() { ts.done <- ts.Run(ctx) }()
		t.Cleanup(ts.Stop)
	}
	c.Leader()
	return c
}

func (c *TestCluster) apiURL(serverID string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apis[serverID]
}

// Running returns the members not stopped.
func (c *TestCluster) Running() []*TestServer {
	var out []*TestServer
	for _, ts := range c.Servers {
		if ts.cancel != nil {
			out = append(out, ts)
		}
	}
	return out
}

// Leader waits until exactly one running member leads, with its leader state built, and
// every running member names it as leader; then it returns it.
func (c *TestCluster) Leader() *TestServer {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		leader, why := c.agreedLeader()
		if leader != nil {
			return leader
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no agreed leader within 20s: %s", why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *TestCluster) agreedLeader() (*TestServer, string) {
	var leader *TestServer
	running := c.Running()
	for _, ts := range running {
		ts.mu.Lock()
		ready := ts.leader != nil
		ts.mu.Unlock()
		if ts.IsLeader() && ready {
			if leader != nil {
				return nil, fmt.Sprintf("both %s and %s lead", leader.cfg.ID, ts.cfg.ID)
			}
			leader = ts
		}
	}
	if leader == nil {
		return nil, "no member leads"
	}
	for _, ts := range running {
		if id := ts.leaderID(); id != leader.cfg.ID {
			return nil, fmt.Sprintf("%s names %q as leader, not %s", ts.cfg.ID, id, leader.cfg.ID)
		}
	}
	return leader, ""
}

// Followers returns the running members other than the leader (waiting for one).
func (c *TestCluster) Followers() []*TestServer {
	c.t.Helper()
	leader := c.Leader()
	var out []*TestServer
	for _, ts := range c.Running() {
		if ts != leader {
			out = append(out, ts)
		}
	}
	return out
}

// ID returns the member's server id.
func (ts *TestServer) ID() string { return ts.cfg.ID }
