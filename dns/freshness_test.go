package dns_test

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/dns"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// freshnessBurst is how many tasks BenchmarkFreshness launches at once.
const freshnessBurst = 1000

// launchTimeout bounds the wait for a whole burst to run: a thousand processes take a
// while on a loaded 2-core machine.
const launchTimeout = 5 * time.Minute

// BenchmarkFreshness: a real master and agent on loopback, a DNS server following the
// master's event stream, and a framework that launches 1,000 `sleep 60` tasks in one
// ACCEPT. For each task it measures the time from its TASK_RUNNING until its name
// (fresh-<n>.marathon.mesos.) answers a UDP query: from the agent's timestamp on the
// status (the whole path: agent, master, event stream, record update) and from the
// moment the framework received the update (negative when the DNS answered first: the
// master publishes an agent's report to its event streams before Raft commits it, and
// the framework gets it once committed). Reports the 50th and 99th percentiles and the
// worst, in milliseconds.
//
//	go test -run XXX -bench Freshness -benchtime 1x ./dns
func BenchmarkFreshness(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	ms := master.NewTestServer(b, func(c *master.Config) { c.Logger = quiet })
	agent.TestAgent(b, ms.Masters, func(c *agent.Config) {
		c.Resources = "cpus:64;mem:65536;disk:10000;ports:[31000-31100]"
		c.Logger = quiet
		// Production resend timing: the tests' 200 ms would resend every update whose
		// acknowledgement is merely queued behind the burst.
		c.UpdateRetryInitial, c.UpdateRetryMax = agent.DefaultConfig().UpdateRetryInitial, agent.DefaultConfig().UpdateRetryMax
	})
	s := dns.TestServer(b, func(c *dns.Config) {
		c.Masters = ms.Masters
		c.Logger = quiet
	})
	waitFor(b, s, "slave.mesos.", mdns.TypeA, []string{"127.0.0.1"})
	sched := subscribe(b, ms.URL)

	var fromRunning, fromFramework []time.Duration
	burst, worst := 0, 0.0
	var offer *api.Offer
	for b.Loop() {
		var r, f []time.Duration
		r, f, offer = freshnessRound(b, s, sched, burst, offer)
		fromRunning, fromFramework = append(fromRunning, r...), append(fromFramework, f...)
		p99 := quantileMS(r, 0.99)
		worst = max(worst, p99)
		b.Logf("burst %d: p50 %.1f ms, p99 %.1f ms from the agent's RUNNING stamp; p50 %.1f ms, p99 %.1f ms from the framework's receipt",
			burst, quantileMS(r, 0.50), p99, quantileMS(f, 0.50), quantileMS(f, 0.99))
		burst++
	}
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"running", fromRunning}, {"framework", fromFramework}} {
		b.ReportMetric(quantileMS(m.ds, 0.50), "p50-ms-from-"+m.name)
		b.ReportMetric(quantileMS(m.ds, 0.99), "p99-ms-from-"+m.name)
		b.ReportMetric(quantileMS(m.ds, 1), "max-ms-from-"+m.name)
	}
	// With -benchtime Nx, the worst of the bursts' own p99s (the target is per 1,000).
	b.ReportMetric(worst, "worst-burst-p99-ms-from-running")
}

// quantileMS is the p quantile of ds in milliseconds.
func quantileMS(ds []time.Duration, p float64) float64 {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return float64(sorted[int(p*float64(len(sorted)-1))]) / float64(time.Millisecond)
}

// running is a task's TASK_RUNNING: when the agent stamped it and when the framework got
// it.
type running struct {
	name             string
	stamped, arrived time.Time
}

// freshnessRound launches one burst of tasks on offer (or the next offer, when nil) and
// returns, for each, how long its name took to answer after its TASK_RUNNING was stamped
// and after it reached the framework, and an offer that came meanwhile (nil for none).
func freshnessRound(b *testing.B, s *dns.Server, sched *scheduler, burst int, offer *api.Offer) (fromRunning, fromFramework []time.Duration, next *api.Offer) {
	b.Helper()
	if offer == nil {
		offer = &sched.waitEvent("offers", func(ev *api.Event) bool { return ev.Type == api.EventOffers }).Offers.Offers[0]
	}
	sleep := "sleep 60"
	var infos []api.TaskInfo
	var names []string
	for i := range freshnessBurst {
		name := fmt.Sprintf("fresh-%d-%d", burst, i)
		names = append(names, name+".marathon.mesos.")
		infos = append(infos, api.TaskInfo{Name: name, TaskID: api.TaskID{Value: name}, AgentID: offer.AgentID,
			Resources: []api.Resource{scalar("cpus", 0.01), scalar("mem", 8)}, Command: &api.CommandInfo{Value: &sleep}})
	}
	if err := sched.stream.Accept(sched.ctx, []api.OfferID{offer.ID}, []api.OfferOperation{{
		Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: infos}}}, nil); err != nil {
		b.Fatalf("accept: %v", err)
	}

	queue := make(chan running, freshnessBurst)
	stop := make(chan struct{})
	polled := make(chan []answeredAt, 1)
	go func() { polled <- pollNames(b, s, names, queue, stop) }()
	finished := false
	defer func() {
		if !finished { // the benchmark failed: the poller must not outlive it
			close(stop)
			<-polled
		}
	}()
	// Acknowledged in order by a goroutine of their own, as a framework's driver does: the
	// round trips must not hold up reading the updates, whose arrival times are measured.
	acks := make(chan api.TaskStatus, 2*freshnessBurst)
	acked := make(chan error, 1)
	go func() {
		var err error
		for st := range acks {
			if err == nil {
				err = sched.stream.Acknowledge(sched.ctx, st)
			}
		}
		acked <- err
	}()
	defer func() {
		close(acks)
		if err := <-acked; err != nil {
			b.Errorf("acknowledge: %v", err)
		}
	}()
	timeout := time.After(launchTimeout)
	for seen := 0; seen < freshnessBurst; {
		select {
		case ev, ok := <-sched.events:
			if !ok {
				b.Fatalf("scheduler stream ended after %d of %d tasks ran", seen, freshnessBurst)
			}
			if ev.Type == api.EventOffers && len(ev.Offers.Offers) > 0 {
				next = &ev.Offers.Offers[0] // for the next burst
			}
			if ev.Type != api.EventUpdate {
				continue
			}
			st := ev.Update.Status
			arrived := time.Now()
			if len(st.UUID) > 0 {
				acks <- st
			}
			if st.State != api.TaskRunning {
				continue
			}
			secs, frac := math.Modf(st.Timestamp)
			queue <- running{name: st.TaskID.Value + ".marathon.mesos.", stamped: time.Unix(int64(secs), int64(frac*1e9)), arrived: arrived}
			seen++
		case <-timeout:
			b.Fatalf("only %d of %d tasks running after %v", seen, freshnessBurst, launchTimeout)
		}
	}
	close(queue)
	answered := <-polled
	finished = true
	for _, a := range answered {
		fromRunning = append(fromRunning, a.at.Sub(a.stamped))
		fromFramework = append(fromFramework, a.at.Sub(a.arrived))
	}
	if len(fromRunning) != freshnessBurst {
		b.Fatalf("%d names answered, want %d", len(fromRunning), freshnessBurst)
	}
	return fromRunning, fromFramework, next
}

// answeredAt is when a task's name first answered.
type answeredAt struct {
	running
	at time.Time
}

// pollWait is how long pollNames waits for answers after asking for every pending name.
const pollWait = 2 * time.Millisecond

// pollAhead is how many of the names not yet answered, the first in launch order, each
// round of pollNames asks for besides those the framework has seen RUNNING: the agent
// starts a few tasks at a time, in about that order.
const pollAhead = 16

// pollNames polls the names of a burst until each has answered an A record, and returns
// when each answered. Each round it asks, all at once on one UDP socket, for every name
// whose TASK_RUNNING the framework has had (from queue) and the pollAhead first names (in
// launch order) that have not answered yet, then takes the answers that come within
// pollWait (matched by name, so a late one counts in the next round). Asking ahead, a
// name is seen as soon as the DNS serves it, before the framework has its update if the
// DNS is first, rather than only once the framework has it. It returns when the queue
// is closed and every name from it answered, failing the benchmark for a name that did
// not within waitTimeout of its update, or as soon as stop is closed.
func pollNames(b *testing.B, s *dns.Server, names []string, queue <-chan running, stop <-chan struct{}) []answeredAt {
	conn, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		b.Error(err)
		return nil
	}
	defer conn.Close()
	pending := map[string]running{}
	answered := map[string]time.Time{} // names answered before the framework had them
	var out []answeredAt
	ahead := 0 // names[:ahead] have all answered
	take := func(r running) {
		if at, ok := answered[r.name]; ok {
			out = append(out, answeredAt{r, at})
			return
		}
		pending[r.name] = r
	}
	ask := func(name string) bool {
		req := new(mdns.Msg)
		req.SetQuestion(name, mdns.TypeA)
		packed, err := req.Pack()
		if err == nil {
			_, err = conn.Write(packed)
		}
		if err != nil {
			b.Errorf("ask for %s: %v", name, err)
			return false
		}
		return true
	}
	buf := make([]byte, 4096)
	open := true
	for open || len(pending) > 0 {
		select {
		case <-stop:
			return out
		default:
		}
	drain:
		for open {
			select {
			case r, ok := <-queue:
				if !ok {
					open = false
					break drain
				}
				take(r)
			default:
				break drain
			}
		}
		for name, r := range pending {
			if time.Since(r.arrived) > waitTimeout {
				b.Errorf("%s: no answer %v after its TASK_RUNNING", name, waitTimeout)
				delete(pending, name)
				continue
			}
			if !ask(name) {
				return out
			}
		}
		for ahead < len(names) {
			if _, ok := answered[names[ahead]]; !ok {
				break
			}
			ahead++
		}
		for i, n := ahead, 0; i < len(names) && n < pollAhead; i++ {
			if _, ok := answered[names[i]]; ok {
				continue
			}
			if _, ok := pending[names[i]]; ok {
				continue
			}
			if !ask(names[i]) {
				return out
			}
			n++
		}
		_ = conn.SetReadDeadline(time.Now().Add(pollWait))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			resp := new(mdns.Msg)
			if resp.Unpack(buf[:n]) != nil || len(resp.Question) != 1 || len(resp.Answer) == 0 {
				continue
			}
			name := resp.Question[0].Name
			if _, ok := answered[name]; ok {
				continue
			}
			answered[name] = time.Now()
			if r, ok := pending[name]; ok {
				out = append(out, answeredAt{r, answered[name]})
				delete(pending, name)
			}
		}
	}
	return out
}
