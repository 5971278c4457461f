package tui

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/chronos"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// proxy forwards loopback connections to a master whose address may change, and can
// refuse them all: a master that goes away and comes back at one address.
type proxy struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string
	down    bool
	conns   map[net.Conn]bool
}

func newProxy(t testing.TB, backend string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, backend: backend, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go p.serve()
	return p
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down, backend := p.down, p.backend
		if !down {
			p.conns[c] = true
		}
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go p.forward(c, backend)
	}
}

func (p *proxy) forward(c net.Conn, backend string) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	b, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
	<-done
}

// setDown refuses (and cuts) every connection, or lets them through again.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *proxy) setBackend(url string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = strings.TrimPrefix(url, "http://")
}

// TestReconnect: when the master goes away the TUI says it is reconnecting, and when it
// is back the TUI shows the cluster again, read afresh.
func TestReconnect(t *testing.T) {
	c := newTestCluster(t)
	px := newProxy(t, strings.TrimPrefix(c.master.URL, "http://"))
	cfg := c.testConfig()
	cfg.API = api.NewClient(px.url())
	cfg.Marathon = marathon.NewClient(px.url(), marathon.WithTimeout(cfg.RequestTimeout))
	cfg.Chronos = chronos.NewClient(px.url(), chronos.WithTimeout(cfg.RequestTimeout))
	cfg.Universe = universe.NewClient(px.url(), universe.WithTimeout(cfg.RequestTimeout))
	cfg.ReconnectMin, cfg.ReconnectMax = 50*time.Millisecond, 200*time.Millisecond
	u := startTUI(t, cfg, 120, 24)
	u.keys(cmdKeys("apps")...)
	u.waitScreen("connected", "/web", "2/2")

	px.setDown(true)
	u.waitScreen("reconnecting… (")
	c.master.Restart()
	px.setBackend(c.master.URL)
	// While down, an app is removed: the screen must show the state read after the
	// reconnect, not the one from before.
	restarted := marathon.NewClient(c.master.URL)
	eventually(t, "the restarted master serves Marathon", func() error {
		_, err := restarted.ListApps(context.Background())
		return err
	})
	if _, err := restarted.DeleteApp(context.Background(), "/idle", true); err != nil {
		t.Fatal(err)
	}
	px.setDown(false)
	s := u.waitScreen("● connected", "/web", "/big")
	eventually(t, "/idle gone from the screen", func() error {
		if s = u.screen(); strings.Contains(s, "/idle") {
			return fmt.Errorf("still shown:\n%s", s)
		}
		return nil
	})
}

// TestLogsView follows a task's output on a real agent, and switches to its stderr.
func TestLogsView(t *testing.T) {
	epoch := time.Now()
	ts := master.NewTestServer(t, withFrameworks)
	agent.TestAgent(t, ts.Masters, func(cfg *agent.Config) { cfg.Hostname = "host-0" })
	c := &testCluster{t: t, master: ts, marathon: marathon.NewClient(ts.URL), chronos: chronos.NewClient(ts.URL), epoch: epoch}
	eventually(t, "the Marathon API answers", func() error {
		_, err := c.marathon.ListApps(context.Background())
		return err
	})
	def := `{"id": "/talk", "cmd": "for i in 1 2 3; do echo out $i; done; echo oops >&2; sleep 600", "instances": 1, "cpus": 0.1, "mem": 16}`
	if _, err := c.marathon.CreateApp(context.Background(), []byte(def), false); err != nil {
		t.Fatal(err)
	}
	c.waitRunning("/talk", 1)
	u := startTUI(t, c.testConfig(), 100, 20)
	u.keys(cmdKeys("tasks talk")...)
	u.waitScreen("talk.", "RUNNING")
	u.keys("l")
	s := u.waitScreen("out 1\nout 2\nout 3", "stdout · following")
	if !strings.Contains(s, "overview › tasks › logs") {
		t.Errorf("logs page title:\n%s", s)
	}
	u.keys("tab")
	u.waitScreen("oops", "stderr · following")
	u.keys("f")
	u.waitScreen("stderr · paused (f follows)")
	u.keys("esc")
	u.waitScreen("overview › tasks  1/1")
}
