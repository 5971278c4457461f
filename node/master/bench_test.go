package master_test

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
)

// BenchmarkLaunchThroughput drives b.N short tasks (`true`) through the real HTTP scheduler
// API, a real master on Raft and a real agent with the process containerizer, as fast as
// offers allow, and reports sustained tasks/s and ACCEPT→TASK_RUNNING latency.
//
//	go test -run XXX -bench LaunchThroughput -benchtime 10000x ./node/master
func BenchmarkLaunchThroughput(b *testing.B) {
	// 50 in flight shows latency under moderate load; 500 saturates the machine.
	for _, inFlight := range []int{50, 500} {
		b.Run(fmt.Sprint("inflight=", inFlight), func(b *testing.B) { benchmarkLaunches(b, inFlight) })
	}
}

func benchmarkLaunches(b *testing.B, inFlight int) {
	ts := master.NewTestServer(b, func(c *master.Config) {
		c.Logger = discardLogger()
	})
	agent.TestAgent(b, ts.Masters, func(c *agent.Config) {
		c.Resources = "cpus:64;mem:65536;disk:10000;ports:[31000-31100]"
		c.Logger = discardLogger()
		// Production resend timing: the tests' 200 ms would resend every update whose
		// acknowledgement is merely queued behind the load.
		c.UpdateRetryInitial, c.UpdateRetryMax = agent.DefaultConfig().UpdateRetryInitial, agent.DefaultConfig().UpdateRetryMax
	})
	f := subscribe(b, ts.URL, frameworkInfo("bench"))

	// Sustained load, not one burst: at most perAccept tasks per ACCEPT and inFlight tasks
	// launched but not yet ended.
	const cpus, mem = 0.01, 4.0
	const perAccept = 100
	var (
		mu       sync.Mutex
		accepted = map[string]time.Time{}
		ended    = map[string]bool{}
		latency  []time.Duration
		finished int
	)
	total := b.N
	done := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	launched := 0
	go func() {
		for ev := range f.events {
			switch ev.Type {
			case api.EventUpdate:
				st := ev.Update.Status
				if len(st.UUID) > 0 {
					go func() { _ = f.stream.Acknowledge(f.ctx, st) }()
				}
				// Delivery is at-least-once: count each task's RUNNING and end once.
				mu.Lock()
				switch {
				case st.State == api.TaskRunning:
					if t0, ok := accepted[st.TaskID.Value]; ok {
						latency = append(latency, time.Since(t0))
						delete(accepted, st.TaskID.Value)
					}
				case st.State.Terminal() && !ended[st.TaskID.Value]:
					ended[st.TaskID.Value] = true
					finished++
					if finished == total {
						close(done)
					}
				}
				mu.Unlock()
			case api.EventOffers:
				for _, o := range ev.Offers.Offers {
					fit := int(min(scalarOf(o.Resources, "cpus")/cpus, scalarOf(o.Resources, "mem")/mem))
					mu.Lock()
					fit = min(fit, perAccept, inFlight-(launched-finished))
					mu.Unlock()
					var tasks []api.TaskInfo
					for i := 0; i < fit && launched < total; i++ {
						id := fmt.Sprintf("t%d", launched)
						launched++
						tasks = append(tasks, shellTask(id, "true", cpus, mem))
					}
					if len(tasks) == 0 {
						// Nothing to launch right now: a short filter, so the next
						// offer comes once tasks ended.
						go func() { _ = f.stream.Decline(f.ctx, []api.OfferID{o.ID}, refuse(0.005)) }()
						continue
					}
					now := time.Now()
					mu.Lock()
					for _, t := range tasks {
						accepted[t.TaskID.Value] = now
					}
					mu.Unlock()
					for i := range tasks {
						tasks[i].AgentID = o.AgentID
					}
					go func() {
						_ = f.stream.Accept(f.ctx, []api.OfferID{o.ID}, []api.OfferOperation{{
							Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: tasks}}}, refuse(0))
					}()
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("only %d of %d tasks finished in 10 minutes", finished, total)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(latency, func(i, j int) bool { return latency[i] < latency[j] })
	b.ReportMetric(float64(total)/elapsed.Seconds(), "tasks/s")
	if n := len(latency); n > 0 {
		b.ReportMetric(float64(latency[n/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(latency[n*99/100].Microseconds())/1000, "p99-ms")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
