package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/dns"
)

// dnsPort is where every e2e node answers DNS: the production default for root.
const dnsPort = "53"

// dnsAnswer asks h's DNS server for name's records of qtype and returns them as text
// ("A 198.18.0.12"), or the response code when it is not NOERROR.
func dnsAnswer(ctx context.Context, h *Host, name string, qtype uint16) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := dns.Lookup(ctx, net.JoinHostPort(h.IP(), dnsPort), name, qtype)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != mdns.RcodeSuccess {
		return nil, fmt.Errorf("%s %s: %s", name, mdns.TypeToString[qtype], mdns.RcodeToString[resp.Rcode])
	}
	var out []string
	for _, rr := range resp.Answer {
		switch r := rr.(type) {
		case *mdns.A:
			out = append(out, "A "+r.A.String())
		case *mdns.SRV:
			out = append(out, fmt.Sprintf("SRV %s:%d", r.Target, r.Port))
		}
	}
	return out, nil
}

// waitForAnswer asks h's DNS for name's A records every 5 ms until they are want (sorted),
// failing the test once ctx ends.
func waitForAnswer(ctx context.Context, t *testing.T, h *Host, name string, want []string) {
	t.Helper()
	for {
		got, err := dnsAnswer(ctx, h, name, mdns.TypeA)
		slices.Sort(got)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s's DNS: %s = %v, %v; want %v", h.Name(), name, got, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDNSFollowsTasks: every node's DNS follows the leader's event stream. A task that
// reaches RUNNING on one agent is answered (A; without ports it has no SRV name) by the DNS of every
// other node — masters included — within moments (figure dns_running_to_answer); its
// names stay answered on every surviving node while the leading master is killed and a
// new one elected; after the kill they are gone (figure dns_killed_to_gone).
func TestDNSFollowsTasks(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	masters := c.StartMasters(3)
	agents := c.StartAgents(2)
	c.WaitForLeader()
	c.WaitForAgents(2)
	hosts := append(append([]*Host{}, masters...), agents...)

	// Every node's DNS follows the leader before the task starts (it answers for both
	// agents), so that the figure is the steady state's, not that of a DNS server still
	// backing off from the stream it lost in the election.
	var wantAgents []string
	for _, a := range agents {
		wantAgents = append(wantAgents, "A "+a.IP())
	}
	slices.Sort(wantAgents)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	for _, h := range hosts {
		waitForAnswer(ctx, t, h, "slave.mesos.", wantAgents)
	}

	s := startScheduler(t, masters, schedulerOptions{name: "web"})
	s.Want("www")
	v := s.waitUntil(2*time.Minute, "www running", func(v schedView) bool { return v.allRunning([]string{"www"}) })
	running := v.LatestAt["www"]
	var agentIP string
	if cs := v.Latest["www"].ContainerStatus; cs != nil && len(cs.NetworkInfos) == 1 && len(cs.NetworkInfos[0].IPAddresses) == 1 {
		agentIP = cs.NetworkInfos[0].IPAddresses[0].IPAddress
	}
	if !slices.ContainsFunc(agents, func(a *Host) bool { return a.IP() == agentIP }) {
		t.Fatalf("TASK_RUNNING names address %q, not one of the agents'", agentIP)
	}
	wantA := []string{"A " + agentIP}

	var worst time.Duration
	for _, h := range hosts {
		waitForAnswer(ctx, t, h, "www.web.mesos.", wantA)
		worst = max(worst, time.Since(running))
	}
	recordFigure(t, "dns_running_to_answer_all_nodes", milliseconds(worst), "ms", 1)
	for _, h := range hosts {
		// The task has no ports, so (as in Mesos-DNS) it has no SRV name; the dns package's
		// tests cover SRV answers for tasks with ports.
		got, err := dnsAnswer(ctx, h, "_www._tcp.web.mesos.", mdns.TypeSRV)
		if err == nil || err.Error() != "_www._tcp.web.mesos. SRV: NXDOMAIN" {
			t.Errorf("%s's DNS: _www._tcp.web.mesos SRV = %v, %v; want NXDOMAIN", h.Name(), got, err)
		}
	}

	// Leader failover: the names never disappear from any surviving node.
	leader := c.WaitForLeader()
	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	var missing []string
	for _, h := range hosts {
		if h == leader {
			continue
		}
		wg.Go(func() {
			for !stop.Load() {
				got, err := dnsAnswer(ctx, h, "www.web.mesos.", mdns.TypeA)
				if err != nil || fmt.Sprint(got) != fmt.Sprint(wantA) {
					mu.Lock()
					missing = append(missing, fmt.Sprintf("%s at %s: %v, %v", h.Name(), time.Now().Format(time.StampMilli), got, err))
					mu.Unlock()
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	if err := leader.Proc().Kill(); err != nil {
		t.Fatal(err)
	}
	next := c.WaitForLeaderOtherThan(leader)
	// Long enough for every node's DNS to have followed the new leader's stream.
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
	if len(missing) > 0 {
		t.Errorf("during the failover from %s to %s the name was not answered %d times: %q", leader.Name(), next.Name(), len(missing), missing)
	}
	if err := leader.Proc().Restart(); err != nil {
		t.Fatal(err)
	}

	if err := s.Unwant("www"); err != nil {
		t.Fatal(err)
	}
	v = s.waitUntil(time.Minute, "www killed", func(v schedView) bool { return v.Latest["www"].State == api.TaskKilled })
	killed := v.LatestAt["www"]
	worst = 0
	for _, h := range hosts {
		if h == leader {
			continue // restarting
		}
		for {
			_, err := dnsAnswer(ctx, h, "www.web.mesos.", mdns.TypeA)
			if err != nil && err.Error() == "www.web.mesos. A: NXDOMAIN" {
				worst = max(worst, time.Since(killed))
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s's DNS still answers www.web.mesos after the kill: %v", h.Name(), err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	recordFigure(t, "dns_killed_to_gone_all_nodes", milliseconds(worst), "ms", 1)
}
