package dns

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
)

// The benchmarks use a cluster of 10,000 tasks (100 apps of 100 tasks on 1,000 agents),
// the size the lead compares against unbound.

func benchCluster(t testing.TB) *Cluster {
	t.Helper()
	return bigApps(100, 100, 1000)
}

// BenchmarkBuildRecords: building the whole record set of 10,000 tasks, what the HTTP
// API's /v1/enumerate costs after a change.
func BenchmarkBuildRecords(b *testing.B) {
	c := benchCluster(b)
	b.ReportAllocs()
	var recs *Records
	for b.Loop() {
		recs = BuildRecords(c, nil, testZone)
	}
	b.ReportMetric(float64(len(recs.RRs)), "records")
}

// BenchmarkIndexCluster: indexing the records of 10,000 tasks and publishing their first
// answer table, what a SUBSCRIBED (a new connection to a master) costs.
func BenchmarkIndexCluster(b *testing.B) {
	c := benchCluster(b)
	b.ReportAllocs()
	var ix *recordIndex
	for b.Loop() {
		ix = newRecordIndex(c, nil, "mesos.", 60, testZone.NSAddr, testZone.VIPRange)
		ix.publish(1)
	}
	b.ReportMetric(float64(ix.count), "records")
}

// BenchmarkApplyEvent: one task event applied to the 10,000 tasks through the watcher's
// path (Cluster.Apply, the index update, the table swap), alternately taking a task's
// names away (TASK_KILLING) and giving them back (TASK_RUNNING). Each task is one of 100
// of its app, so the app's shared names (100 A and SRV records) are remade every time.
func BenchmarkApplyEvent(b *testing.B) {
	s := serveCluster(b, benchCluster(b), nil, discardLogs)
	none := make(chan *api.OperatorEvent)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		state := api.TaskKilling
		if i%2 == 1 {
			state = api.TaskRunning
		}
		task := fmt.Sprintf("task-%d-%d", i/2%100, i/200%100)
		s.apply(taskUpdate("fw", task, state), none)
		i++
	}
}

// BenchmarkApplyToAnswer: the time from a TASK_RUNNING event of a new task reaching the
// watcher's apply until a UDP query of the task's name answers, for new tasks one after
// the other in the 10,000-task cluster. Reports the 50th and 99th percentiles.
func BenchmarkApplyToAnswer(b *testing.B) {
	s := serveCluster(b, benchCluster(b), nil, discardLogs)
	client := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
	conn, err := client.Dial(s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	none := make(chan *api.OperatorEvent)
	var latencies []time.Duration
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("fresh-%d", i)
		ev := &api.OperatorEvent{Type: api.OpEventTaskAdded, TaskAdded: &api.OpTaskAdded{Task: api.Task{
			Name: name, TaskID: api.TaskID{Value: name + ".1"}, FrameworkID: api.FrameworkID{Value: "fw"},
			AgentID: api.AgentID{Value: fmt.Sprintf("agent-%d-S%d", i%1000, i%1000)}, State: api.TaskRunning}}}
		req := new(mdns.Msg)
		req.SetQuestion(name+".marathon.mesos.", mdns.TypeA)
		start := time.Now()
		s.apply(ev, none)
		resp, _, err := client.ExchangeWithConn(req, conn)
		if err != nil || len(resp.Answer) != 1 {
			b.Fatalf("%s: %v, %v; want one answer", name, resp, err)
		}
		latencies = append(latencies, time.Since(start))
		i++
	}
	reportPercentiles(b, latencies)
}

// reportPercentiles reports the 50th and 99th percentiles of ds in milliseconds.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	b.Helper()
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkMemory: the heap the records of 10,000 tasks take (the index and its answer
// table; the cluster state they are made from is not counted), measured as the growth of
// the live heap (HeapAlloc after a GC) and of the heap in use (HeapInuse) across building
// them, in all and per 10,000 records.
func BenchmarkMemory(b *testing.B) {
	c := benchCluster(b)
	var inuse, live, records float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix := newRecordIndex(c, nil, "mesos.", 60, testZone.NSAddr, testZone.VIPRange)
		ix.publish(1)
		runtime.GC()
		runtime.ReadMemStats(&after)
		inuse = float64(after.HeapInuse) - float64(before.HeapInuse)
		live = float64(after.HeapAlloc) - float64(before.HeapAlloc)
		records = float64(ix.count)
		runtime.KeepAlive(ix)
	}
	b.ReportMetric(inuse/1e6, "heap-inuse-MB")
	b.ReportMetric(live/1e6, "heap-live-MB")
	b.ReportMetric(inuse/records*1e4/1e6, "inuse-MB/10k-records")
	b.ReportMetric(records, "records")
}

func discardLogs(c *Config) { c.Logger = slog.New(slog.DiscardHandler) }

func taskUpdate(framework, task string, state api.TaskState) *api.OperatorEvent {
	return &api.OperatorEvent{Type: api.OpEventTaskUpdated, TaskUpdated: &api.OpTaskUpdated{
		FrameworkID: api.FrameworkID{Value: framework}, Status: api.TaskStatus{TaskID: api.TaskID{Value: task}, State: state}, State: state}}
}

// BenchmarkServeDNS: the answer path alone (no sockets), for an A query of an app with
// 100 tasks and a name with one record.
func BenchmarkServeDNS(b *testing.B) {
	s := serveCluster(b, benchCluster(b), nil)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"app-7.marathon.mesos.", mdns.TypeA},
		{"leader.mesos.", mdns.TypeA},
		{"nope.marathon.mesos.", mdns.TypeA},
	} {
		b.Run(q.name, func(b *testing.B) {
			req := new(mdns.Msg)
			req.SetQuestion(q.name, q.qtype)
			req.SetEdns0(1232, false)
			w := &discardWriter{}
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, req)
			}
		})
	}
}

// BenchmarkAnswerWire: the UDP fast path alone (no sockets), for an A query of a task's
// canonical name, of a name with 1,000 records (agent.mesos., with a client taking
// 64 KiB answers), and an SRV query with its target's address.
func BenchmarkAnswerWire(b *testing.B) {
	s := serveCluster(b, benchCluster(b), nil, func(c *Config) { c.UDPSize = 65000 })
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{canonicalLabel("app-3", taskHash("task-3-3"), "s303") + ".marathon.mesos.", mdns.TypeA},
		{"agent.mesos.", mdns.TypeA},
		{"_leader._tcp.mesos.", mdns.TypeSRV},
	} {
		b.Run(q.name, func(b *testing.B) {
			req := new(mdns.Msg)
			req.SetQuestion(q.name, q.qtype)
			req.SetEdns0(65000, false)
			raw, err := req.Pack()
			if err != nil {
				b.Fatal(err)
			}
			var scratch wireScratch
			buf := make([]byte, 0, 65535)
			b.ReportAllocs()
			for b.Loop() {
				if _, ok := s.answerWire(raw, buf, &scratch); !ok {
					b.Fatal("not taken by the fast path")
				}
			}
		})
	}
}

// BenchmarkQueryUDP: A queries of one task's canonical name (task-3-3 runs on agent 303)
// over loopback UDP to a running server, in parallel, the client's work included.
func BenchmarkQueryUDP(b *testing.B) {
	s := serveCluster(b, benchCluster(b), nil)
	req := new(mdns.Msg)
	req.SetQuestion(canonicalLabel("app-3", taskHash("task-3-3"), "s303")+".marathon.mesos.", mdns.TypeA)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := &mdns.Client{Net: "udp"}
		conn, err := c.Dial(s.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		for pb.Next() {
			resp, _, err := c.ExchangeWithConn(req, conn)
			if err != nil || len(resp.Answer) != 1 {
				b.Errorf("%v, %v", resp, err)
				return
			}
		}
	})
}

// discardWriter is a UDP ResponseWriter that drops what is written.
type discardWriter struct{ recorder }

func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// bigApps has apps × perApp tasks named app-<i> (task ids task-<i>-<j>) on agents
// 10.2.x.y, each with a host port.
func bigApps(apps, perApp, agents int) *Cluster {
	c := NewCluster([]Master{{ID: "m1", IP: testZone.NSAddr, APIPort: 5050, Leader: true}}, nil)
	c.frameworks["fw"] = Framework{ID: "fw", Name: "marathon"}
	for i := range agents {
		id := fmt.Sprintf("agent-%d-S%d", i, i)
		c.agents[id] = Agent{ID: id, Hostname: fmt.Sprintf("node-%d", i), IP: netip.MustParseAddr(fmt.Sprintf("10.2.%d.%d", i/250, i%250+1))}
	}
	for i := range apps {
		for j := range perApp {
			id := fmt.Sprintf("task-%d-%d", i, j)
			c.tasks[taskKey{"fw", id}] = &Task{ID: id, Name: fmt.Sprintf("/app-%d", i), FrameworkID: "fw",
				AgentID: fmt.Sprintf("agent-%d-S%d", (i*perApp+j)%agents, (i*perApp+j)%agents), State: api.TaskRunning,
				Ports: []api.ValueRange{{Begin: uint64(31000 + j), End: uint64(31000 + j)}}}
		}
	}
	return c
}
