package dns

import (
	"fmt"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
)

// The benchmarks use a cluster of 10,000 tasks (100 apps of 100 tasks on 1,000 agents),
// the size the lead compares against unbound.

func benchCluster(b *testing.B) *Cluster {
	b.Helper()
	return bigApps(100, 100, 1000)
}

// BenchmarkBuildRecords: building the record set and answer table of 10,000 tasks, what
// every batch of events costs.
func BenchmarkBuildRecords(b *testing.B) {
	c := benchCluster(b)
	b.ReportAllocs()
	var recs *Records
	for b.Loop() {
		recs = BuildRecords(c, nil, testZone)
		newTable(recs)
	}
	b.ReportMetric(float64(len(recs.RRs)), "records")
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
