package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
)

// pollInterval spaces the harness's polls of the cluster.
const pollInterval = 100 * time.Millisecond

// stateTimeout bounds one /master/state request in Leader, so a partitioned or unplugged
// master costs a poll round no more than that.
const stateTimeout = 2 * time.Second

// StartMasters adds hosts m1 … mn and starts a master on each:
//
//	atoll master --name mI --bind IP --join IP1,…,IPn --bootstrap-expect n --data-dir DIR
//
// plus WithMasterArgs. Every master joins all of them, so any one of them restarts into
// the cluster while the others are up. It returns at once; see WaitForLeader.
func (c *Cluster) StartMasters(n int) []*Host {
	c.t.Helper()
	if n < 1 || len(c.Masters()) > 0 {
		c.t.Fatalf("e2e: StartMasters(%d): want n ≥ 1, once per cluster", n)
	}
	hosts := make([]*Host, n)
	ips := make([]string, n)
	for i := range hosts {
		hosts[i] = c.AddHost("m" + strconv.Itoa(i+1))
		ips[i] = hosts[i].IP()
	}
	c.mu.Lock()
	c.masters = hosts
	c.mu.Unlock()
	for _, h := range hosts {
		// Plain clusters: the secure ones are e2e/secure_test.go's and install's.
		args := []string{"master", "--secure=false", "--name", h.name, "--bind", h.IP(), "--join", strings.Join(ips, ","),
			"--bootstrap-expect", strconv.Itoa(n), "--data-dir", h.DataDir()}
		h.Start(append(args, c.opts.masterArgs...)...)
	}
	return append([]*Host(nil), hosts...)
}

// StartAgents adds n more agent hosts (a1, a2, … numbered on from earlier calls) and starts
// an agent on each, joined to every master:
//
//	atoll agent --name aK --bind IP --join MASTER-IPS --data-dir DIR --containerizer process
//
// plus WithAgentArgs. Tasks are plain processes, quick to start on a loaded machine; under
// WithRuncAgents they are runc containers instead (--containerizer runc --bridge-subnet
// Host.BridgeSubnet), which Close kills and removes as it does the hosts. It needs
// StartMasters first and returns at once; see WaitForAgents.
func (c *Cluster) StartAgents(n int) []*Host {
	c.t.Helper()
	masters := c.Masters()
	if n < 1 || len(masters) == 0 {
		c.t.Fatalf("e2e: StartAgents(%d): want n ≥ 1, after StartMasters", n)
	}
	ips := make([]string, len(masters))
	for i, m := range masters {
		ips[i] = m.IP()
	}
	first := len(c.Agents()) + 1
	hosts := make([]*Host, n)
	for i := range hosts {
		hosts[i] = c.AddHost("a" + strconv.Itoa(first+i))
	}
	c.mu.Lock()
	c.agents = append(c.agents, hosts...)
	c.mu.Unlock()
	for _, h := range hosts {
		args := []string{"agent", "--name", h.name, "--bind", h.IP(), "--join", strings.Join(ips, ","), "--data-dir", h.DataDir()}
		if c.opts.runc {
			h.startWithCgroups(slices.Concat(args, []string{"--containerizer", "runc", "--bridge-subnet", h.BridgeSubnet().String()}, c.opts.agentArgs)...)
			continue
		}
		h.Start(slices.Concat(args, []string{"--containerizer", "process"}, c.opts.agentArgs)...)
	}
	return hosts
}

// masterView is what one master's /master/state says about leadership.
type masterView struct {
	// leader is "master@IP:port", empty when the master knows no leader.
	leader string
	// self is set when the master says it leads.
	self bool
	err  error
}

// Leader returns the master that leads with the agreement of a majority of StartMasters's
// masters: it says it leads, and at least ⌊n/2⌋+1 masters (itself included) name it in the
// leader field of their own /master/state?stale=true. Right after a leader is cut off
// from the others, all of them may still name it for a moment (until its lease and their
// failure timeouts run out); WaitForLeaderOtherThan waits past that. Leader polls until
// there is such a master or ctx ends; masters whose process is not running are not asked.
func (c *Cluster) Leader(ctx context.Context) (*Host, error) {
	masters := c.Masters()
	if len(masters) == 0 {
		return nil, errors.New("leader: no masters (StartMasters first)")
	}
	quorum := len(masters)/2 + 1
	httpClient := &http.Client{Timeout: stateTimeout}
	for {
		views := c.masterViews(ctx, httpClient, masters)
		votes := map[string]int{}
		for _, v := range views {
			if v.leader != "" {
				votes[v.leader]++
			}
		}
		for i, m := range masters {
			if views[i].self && views[i].leader == "master@"+m.Addr(APIPort) && votes[views[i].leader] >= quorum {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			var seen []string
			for i, m := range masters {
				switch v := views[i]; {
				case v.err != nil:
					seen = append(seen, fmt.Sprintf("%s: %v", m.name, v.err))
				default:
					seen = append(seen, fmt.Sprintf("%s: leader %q (self %t)", m.name, v.leader, v.self))
				}
			}
			return nil, fmt.Errorf("leader: none agreed on by %d of %d masters: %w (%s)", quorum, len(masters), ctx.Err(), strings.Join(seen, "; "))
		case <-time.After(pollInterval):
		}
	}
}

// masterViews asks every running master for its view of the leader, in parallel.
func (c *Cluster) masterViews(ctx context.Context, httpClient *http.Client, masters []*Host) []masterView {
	views := make([]masterView, len(masters))
	var wg sync.WaitGroup
	for i, m := range masters {
		if p := m.Proc(); p == nil || !p.Running() {
			views[i].err = errors.New("not running")
			continue
		}
		wg.Go(func() { views[i] = fetchView(ctx, httpClient, m) })
	}
	wg.Wait()
	return views
}

func fetchView(ctx context.Context, httpClient *http.Client, m *Host) masterView {
	// Each master's own view: a follower would forward a plain read to whom it believes
	// leads, which right after a cut is the unreachable old leader.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.APIURL()+"/master/state?stale=true", nil)
	if err != nil {
		return masterView{err: err}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return masterView{err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return masterView{err: fmt.Errorf("/master/state?stale=true: %s", resp.Status)}
	}
	var doc struct {
		Leader     string          `json:"leader"`
		LeaderInfo json.RawMessage `json:"leader_info"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return masterView{err: fmt.Errorf("/master/state?stale=true: %w", err)}
	}
	return masterView{leader: doc.Leader, self: len(doc.LeaderInfo) > 0 && string(doc.LeaderInfo) != "null"}
}

// WaitForLeaderOtherThan waits up to the wait timeout for Leader to name a master other
// than old, and returns it. Right after old was cut off, the others still name it until
// their failure timeout runs out, and old itself until its lease does.
func (c *Cluster) WaitForLeaderOtherThan(old *Host) *Host {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.waitTimeout)
	defer cancel()
	for {
		h, err := c.Leader(ctx)
		if err != nil {
			c.t.Fatalf("e2e: a leader other than %s: %v", old.Name(), err)
		}
		if h != old {
			return h
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("e2e: %s still leads after %v", old.Name(), c.opts.waitTimeout)
		case <-time.After(pollInterval):
		}
	}
}

// WaitForLeader waits up to the wait timeout for Leader and returns it.
func (c *Cluster) WaitForLeader() *Host {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.waitTimeout)
	defer cancel()
	h, err := c.Leader(ctx)
	if err != nil {
		c.t.Fatalf("e2e: %v", err)
	}
	return h
}

// WaitForAgents waits up to the wait timeout until the leader (asked through any running
// master) lists exactly n active agents, and returns them sorted by hostname (the agent's
// IP).
func (c *Cluster) WaitForAgents(n int) []api.AgentState {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.waitTimeout)
	defer cancel()
	var last string
	for {
		for _, m := range c.Masters() {
			if p := m.Proc(); p == nil || !p.Running() {
				continue
			}
			active, err := c.activeAgents(ctx, m)
			if err != nil {
				last = fmt.Sprintf("%s: %v", m.name, err)
				continue
			}
			if len(active) == n {
				return active
			}
			last = fmt.Sprintf("%s: %d active agents", m.name, len(active))
			break
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("e2e: no %d active agents within %v (last: %s)", n, c.opts.waitTimeout, last)
		case <-time.After(pollInterval):
		}
	}
}

func (c *Cluster) activeAgents(ctx context.Context, m *Host) ([]api.AgentState, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	agents, err := c.Client(m).GetAgents(ctx)
	if err != nil {
		return nil, err
	}
	var active []api.AgentState
	for _, a := range agents.Agents {
		if a.Active {
			active = append(active, a)
		}
	}
	slices.SortFunc(active, func(x, y api.AgentState) int { return strings.Compare(x.AgentInfo.Hostname, y.AgentInfo.Hostname) })
	return active, nil
}
