package master_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

// probeService is a leader service that subscribes a framework through the in-process
// client and records, in the key-value table, which master runs it.
type probeService struct {
	m *master.Master

	mu      sync.Mutex
	running bool
	runs    int
	err     error
}

func (p *probeService) Name() string { return "probe" }

func (p *probeService) Run(ctx context.Context) {
	p.mu.Lock()
	p.running = true
	p.runs++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()
	err := func() error {
		stream, err := p.m.InProcessClient().Subscribe(ctx, frameworkInfo("probe-"+p.m.ID()), nil)
		if err != nil {
			return err
		}
		defer stream.Close()
		value, _ := json.Marshal(p.m.ID())
		if _, err := p.m.WriteKV(ctx, &state.WriteKVRequest{Namespace: "probe", Puts: []state.KVPut{{Key: "runner", Value: value}}}); err != nil {
			return err
		}
		for {
			if _, err := stream.Next(); err != nil {
				return nil
			}
		}
	}()
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	<-ctx.Done()
}

func (p *probeService) state() (running bool, runs int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running, p.runs, p.err
}

func TestLeaderServicesAndRoutes(t *testing.T) {
	probes := map[string]*probeService{}
	var mu sync.Mutex
	c := master.NewTestCluster(t, 3, func(cfg *master.Config) {
		cfg.Extensions = append(cfg.Extensions, func(m *master.Master) {
			p := &probeService{m: m}
			mu.Lock()
			probes[m.ID()] = p
			mu.Unlock()
			m.AddLeaderService(p)
			m.Handle("GET /probe", m.LeaderOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprint(w, m.ID())
			})))
		})
	})
	leader := c.Leader()
	checkRunner := func(leader *master.TestServer) {
		t.Helper()
		eventually(t, "the leader's service runs and writes", func() error {
			for id, p := range probes {
				running, _, err := p.state()
				if err != nil {
					return fmt.Errorf("%s: %v", id, err)
				}
				if running != (id == leader.ID()) {
					return fmt.Errorf("service on %s running %v, leader is %s", id, running, leader.ID())
				}
			}
			for _, ts := range c.Running() {
				entry, ok := ts.Store().KV("probe", "runner")
				if want := `"` + leader.ID() + `"`; !ok || string(entry.Value) != want {
					return fmt.Errorf("%s stores runner %+v, want %s", ts.ID(), entry, want)
				}
			}
			f, ok := frameworkNamed(leader.Store(), "probe-"+leader.ID())
			if !ok || !f.Connected {
				return fmt.Errorf("framework probe-%s: %+v", leader.ID(), f)
			}
			return nil
		})
		for _, ts := range c.Running() {
			resp, err := http.Get(ts.URL + "/probe")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != leader.ID() {
				t.Errorf("GET /probe on %s = %s %q, want the leader's answer %q", ts.ID(), resp.Status, body, leader.ID())
			}
		}
	}
	checkRunner(leader)

	leader.Stop()
	next := c.Leader()
	if next == leader {
		t.Fatal("the stopped master still leads")
	}
	checkRunner(next)
	if _, runs, _ := probes[leader.ID()].state(); runs != 1 {
		t.Errorf("the first leader's service ran %d times, want 1", runs)
	}
}

// frameworkNamed finds a framework by name.
func frameworkNamed(s *state.Store, name string) (*state.Framework, bool) {
	for _, f := range s.Frameworks() {
		if f.Info.Name == name {
			return f, true
		}
	}
	return nil, false
}

func TestWriteKVNeedsTheLeader(t *testing.T) {
	c := master.NewTestCluster(t, 3)
	leader := c.Leader()
	req := &state.WriteKVRequest{Namespace: "n", Puts: []state.KVPut{{Key: "k", Value: []byte(`1`)}}}
	index, err := leader.WriteKV(context.Background(), req)
	if err != nil || index == 0 {
		t.Fatalf("WriteKV on the leader = %d, %v", index, err)
	}
	for _, f := range c.Followers() {
		if _, err := f.WriteKV(context.Background(), req); err == nil || !strings.Contains(err.Error(), "not the leading master") {
			t.Errorf("WriteKV on follower %s = %v, want: not the leading master", f.ID(), err)
		}
	}
	if _, err := leader.WriteKV(context.Background(), &state.WriteKVRequest{Namespace: "n"}); err == nil {
		t.Error("an empty write was accepted")
	}
}
