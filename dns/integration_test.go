package dns_test

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/dns"
	"github.com/atoll/atoll/isolate"
	"github.com/atoll/atoll/lb/vip"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

func TestMain(m *testing.M) {
	isolate.RunShimIfRequested()
	os.Exit(m.Run())
}

// waitTimeout bounds every wait for the DNS server to catch up; generous for loaded CI.
const waitTimeout = 20 * time.Second

// answers asks s for name's records of qtype and returns the rcode and the records' data.
func answers(t testing.TB, s *dns.Server, name string, qtype uint16) (int, []string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := dns.Lookup(ctx, s.Addr().String(), name, qtype)
	if err != nil {
		return 0, nil, err
	}
	var data []string
	for _, rr := range resp.Answer {
		data = append(data, strings.TrimPrefix(rr.String(), rr.Header().String()))
	}
	slices.Sort(data)
	return resp.Rcode, data, nil
}

// waitFor polls s until name's qtype records are want (nil: NXDOMAIN).
func waitFor(t testing.TB, s *dns.Server, name string, qtype uint16, want []string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		rcode, got, err := answers(t, s, name, qtype)
		if err == nil && (want == nil && rcode == mdns.RcodeNameError || want != nil && rcode == mdns.RcodeSuccess && slices.Equal(got, want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: rcode %s, %q, err %v; want %q within %v", name, mdns.TypeToString[qtype], mdns.RcodeToString[rcode], got, err, want, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scheduler is a framework named marathon driven through the real scheduler API.
type scheduler struct {
	t      testing.TB
	ctx    context.Context
	stream *api.SchedulerStream
	events chan *api.Event
}

func subscribe(t testing.TB, masterURL string) *scheduler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := api.NewClient(masterURL).Subscribe(ctx, api.FrameworkInfo{User: "root", Name: "marathon"}, nil)
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	s := &scheduler{t: t, ctx: ctx, stream: stream, events: make(chan *api.Event, 256)}
	t.Cleanup(func() {
		cancel()
		_ = stream.Close()
	})
	go func() {
		defer close(s.events)
		for {
			ev, err := stream.Next()
			if err != nil {
				return
			}
			s.events <- ev
		}
	}()
	return s
}

// waitEvent returns the first event pred accepts, acknowledging status updates on the way.
func (s *scheduler) waitEvent(what string, pred func(*api.Event) bool) *api.Event {
	s.t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("scheduler stream ended while waiting for %s", what)
			}
			if ev.Type == api.EventUpdate && len(ev.Update.Status.UUID) > 0 {
				if err := s.stream.Acknowledge(s.ctx, ev.Update.Status); err != nil {
					s.t.Fatalf("acknowledge: %v", err)
				}
			}
			if pred(ev) {
				return ev
			}
		case <-timeout:
			s.t.Fatalf("no %s within %v", what, waitTimeout)
		}
	}
}

func (s *scheduler) waitState(taskID string, state api.TaskState) {
	s.t.Helper()
	s.waitEvent(taskID+" "+string(state), func(ev *api.Event) bool {
		return ev.Type == api.EventUpdate && ev.Update.Status.TaskID.Value == taskID && ev.Update.Status.State == state
	})
}

func scalar(name string, v float64) api.Resource {
	return api.Resource{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: v}}
}

// TestFollowsMaster: with a real master and agent on loopback, a task launched through
// the scheduler API gets its A and SRV records within the deadline and loses them when
// killed; when the master goes away the last records keep being served (and the server
// says it is stale), and they follow the master again once it is back.
func TestFollowsMaster(t *testing.T) {
	ms := master.NewTestServer(t)
	agent.TestAgent(t, ms.Masters)
	s := dns.TestServer(t, func(c *dns.Config) { c.Masters = ms.Masters })

	waitFor(t, s, "slave.mesos.", mdns.TypeA, []string{"127.0.0.1"})
	waitFor(t, s, "leader.mesos.", mdns.TypeA, []string{"127.0.0.1"})
	u, err := url.Parse(ms.URL)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "_leader._tcp.mesos.", mdns.TypeSRV, []string{"0 1 " + u.Port() + " leader.mesos."})
	if s.Stale() {
		t.Fatalf("stale while following the master")
	}

	sched := subscribe(t, ms.URL)
	offer := sched.waitEvent("offers", func(ev *api.Event) bool { return ev.Type == api.EventOffers }).Offers.Offers[0]
	sleep := "sleep 300"
	task := api.TaskInfo{
		Name: "/grp/web", TaskID: api.TaskID{Value: "grp_web.1"}, AgentID: offer.AgentID,
		Resources: []api.Resource{scalar("cpus", 0.1), scalar("mem", 32),
			{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31005, End: 31005}}}}},
		Command: &api.CommandInfo{Value: &sleep},
	}
	err = sched.stream.Accept(sched.ctx, []api.OfferID{offer.ID}, []api.OfferOperation{{
		Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: []api.TaskInfo{task}}}}, nil)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	sched.waitState("grp_web.1", api.TaskRunning)
	launched := time.Now()
	waitFor(t, s, "web-grp.marathon.mesos.", mdns.TypeA, []string{"127.0.0.1"})
	t.Logf("A record %v after TASK_RUNNING reached the framework", time.Since(launched))
	canonical := fmt.Sprintf("web-grp-%s-s0.marathon.slave.mesos.", taskHashOf(t, s, "grp_web.1"))
	waitFor(t, s, "_web-grp._tcp.marathon.mesos.", mdns.TypeSRV, []string{"0 1 31005 " + canonical})
	waitFor(t, s, canonical, mdns.TypeA, []string{"127.0.0.1"})

	if err := sched.stream.Kill(sched.ctx, task.TaskID, &offer.AgentID); err != nil {
		t.Fatalf("kill: %v", err)
	}
	sched.waitState("grp_web.1", api.TaskKilled)
	waitFor(t, s, "web-grp.marathon.mesos.", mdns.TypeA, nil)
	waitFor(t, s, "_web-grp._tcp.marathon.mesos.", mdns.TypeSRV, nil)

	ms.Stop()
	waitUntil(t, "stale after the master stopped", s.Stale)
	if _, got, err := answers(t, s, "slave.mesos.", mdns.TypeA); err != nil || !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Fatalf("slave.mesos. while the master is down: %q, %v; want the last known 127.0.0.1", got, err)
	}
	ms.Restart()
	waitUntil(t, "following the restarted master", func() bool { return !s.Stale() })
	u, err = url.Parse(ms.URL)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, "_leader._tcp.mesos.", mdns.TypeSRV, []string{"0 1 " + u.Port() + " leader.mesos."})
	waitFor(t, s, "slave.mesos.", mdns.TypeA, []string{"127.0.0.1"})
}

// taskHashOf finds the hash part of a task's canonical name in the served records.
func taskHashOf(t testing.TB, s *dns.Server, taskID string) string {
	t.Helper()
	for _, tr := range s.Records().Tasks {
		if tr.ID != taskID {
			continue
		}
		for _, rr := range tr.RRs {
			name := rr.Header().Name
			if rest, ok := strings.CutPrefix(name, "web-grp-"); ok && strings.HasSuffix(rest, "-s0.marathon.mesos.") {
				return strings.TrimSuffix(rest, "-s0.marathon.mesos.")
			}
		}
	}
	t.Fatalf("no canonical name for %s in %d task records", taskID, len(s.Records().Tasks))
	return ""
}

// TestLeaderFailover: with three masters, killing the leader moves _leader._tcp to the new
// leader's API port, and the agents' names are served throughout.
func TestLeaderFailover(t *testing.T) {
	cluster := master.NewTestCluster(t, 3)
	var urls []string
	for _, ts := range cluster.Servers {
		urls = append(urls, ts.Masters()...)
	}
	masters := func() []string { return urls }
	agent.TestAgent(t, masters)
	s := dns.TestServer(t, func(c *dns.Config) { c.Masters = masters })

	apiPort := func(ts *master.TestServer) string {
		u, err := url.Parse(ts.Masters()[0])
		if err != nil {
			t.Fatal(err)
		}
		return u.Port()
	}
	leader := cluster.Leader()
	waitFor(t, s, "_leader._tcp.mesos.", mdns.TypeSRV, []string{"0 1 " + apiPort(leader) + " leader.mesos."})
	waitFor(t, s, "slave.mesos.", mdns.TypeA, []string{"127.0.0.1"})
	waitFor(t, s, "master.mesos.", mdns.TypeA, []string{"127.0.0.1"})

	leader.Stop()
	next := cluster.Leader()
	if _, got, err := answers(t, s, "slave.mesos.", mdns.TypeA); err != nil || !slices.Equal(got, []string{"127.0.0.1"}) {
		t.Fatalf("slave.mesos. right after the leader stopped: %q, %v; want 127.0.0.1", got, err)
	}
	waitFor(t, s, "_leader._tcp.mesos.", mdns.TypeSRV, []string{"0 1 " + apiPort(next) + " leader.mesos."})
	waitFor(t, s, "slave.mesos.", mdns.TypeA, []string{"127.0.0.1"})
}

// TestVIPsFollowTasks: a task whose DiscoveryInfo port has a VIP_0 label, launched
// through the scheduler API on a real master and agent, gets its VIP name in the VIP zone
// (the address vip.Allocate gives the name, with its PTR), and the VIP table the node's
// balancers follow gets the task's host port as a backend; when the task is killed the
// name and the VIP go.
func TestVIPsFollowTasks(t *testing.T) {
	ms := master.NewTestServer(t)
	agent.TestAgent(t, ms.Masters)
	s := dns.TestServer(t, func(c *dns.Config) { c.Masters = ms.Masters })
	waitFor(t, s, "slave.mesos.", mdns.TypeA, []string{"127.0.0.1"})

	sched := subscribe(t, ms.URL)
	offer := sched.waitEvent("offers", func(ev *api.Event) bool { return ev.Type == api.EventOffers }).Offers.Offers[0]
	sleep := "sleep 300"
	task := api.TaskInfo{
		Name: "web.grp", TaskID: api.TaskID{Value: "grp_web.1"}, AgentID: offer.AgentID,
		Resources: []api.Resource{scalar("cpus", 0.1), scalar("mem", 32),
			{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31005, End: 31005}}}}},
		Command: &api.CommandInfo{Value: &sleep},
		Discovery: &api.DiscoveryInfo{Visibility: "FRAMEWORK", Name: "web.grp", Ports: &api.Ports{Ports: []api.Port{
			{Number: 31005, Protocol: "tcp", Labels: &api.Labels{Labels: []api.Label{{Key: "VIP_0", Value: "/grp/web:80"}}}}}}},
	}
	err := sched.stream.Accept(sched.ctx, []api.OfferID{offer.ID}, []api.OfferOperation{{
		Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: []api.TaskInfo{task}}}}, nil)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	sched.waitState("grp_web.1", api.TaskRunning)

	addrs, _ := vip.Allocate(netip.MustParsePrefix(dns.TestVIPRange), []string{"grpweb.marathon"}, nil)
	addr := addrs["grpweb.marathon"]
	waitFor(t, s, "grpweb.marathon.l4lb.thisdcos.directory.", mdns.TypeA, []string{addr.String()})
	reverse, err := mdns.ReverseAddr(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, s, reverse, mdns.TypePTR, []string{"grpweb.marathon.l4lb.thisdcos.directory."})
	wantTable := &vip.Table{
		Names:    []vip.Named{{Name: "grpweb.marathon", Addr: addr}},
		Services: []vip.Service{{Name: "grpweb.marathon", Addr: netip.AddrPortFrom(addr, 80), Protocol: "tcp", Backends: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:31005")}}}}
	waitTable(t, s, wantTable)

	if err := sched.stream.Kill(sched.ctx, task.TaskID, &offer.AgentID); err != nil {
		t.Fatalf("kill: %v", err)
	}
	sched.waitState("grp_web.1", api.TaskKilled)
	waitFor(t, s, "grpweb.marathon.l4lb.thisdcos.directory.", mdns.TypeA, nil)
	waitTable(t, s, &vip.Table{})
}

// waitTable waits until the VIP table s publishes is want, following its change channel.
func waitTable(t testing.TB, s *dns.Server, want *vip.Table) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		got, next := s.VIPs()
		if reflect.DeepEqual(got, want) {
			return
		}
		select {
		case <-next:
		case <-timeout:
			t.Fatalf("VIP table %+v, want %+v within %v", got, want, waitTimeout)
		}
	}
}
