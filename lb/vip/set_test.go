package vip

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/atoll/atoll/api"
)

func port(number uint32, protocol string, labels ...string) api.Port {
	p := api.Port{Number: number, Protocol: protocol}
	if len(labels) > 0 {
		p.Labels = &api.Labels{}
		for i := 0; i+1 < len(labels); i += 2 {
			p.Labels.Labels = append(p.Labels.Labels, api.Label{Key: labels[i], Value: labels[i+1]})
		}
	}
	return p
}

var (
	agent1 = netip.MustParseAddr("127.0.0.11")
	agent2 = netip.MustParseAddr("127.0.0.12")
)

// render prints a table one line per name, service and problem.
func render(t *Table) string {
	var b strings.Builder
	for _, n := range t.Names {
		fmt.Fprintf(&b, "name %s %s\n", n.Name, n.Addr)
	}
	for _, s := range t.Services {
		fmt.Fprintf(&b, "service %q %s/%s %v\n", s.Name, s.Addr, s.Protocol, s.Backends)
	}
	for _, p := range t.Problems {
		fmt.Fprintf(&b, "problem %s\n", p)
	}
	return b.String()
}

// TestSetTable: the table of a set of tasks — their VIPs named with their framework,
// address VIPs as they are, the serving tasks' ports as backends (the container's address
// for network-scope container), VIPs kept by tasks that do not serve, and every label
// that makes no VIP reported.
func TestSetTable(t *testing.T) {
	s := NewSet(testRange)
	s.Put("web.1", Task{Name: "web.grp", Framework: "marathon", AgentIP: agent1, Serving: true,
		Ports: []api.Port{port(31000, "tcp", "VIP_0", "/grp/web:80"), port(31001, "udp,tcp", "VIP_1", "/grp/web:80")}})
	s.Put("web.2", Task{Name: "web.grp", Framework: "marathon", AgentIP: agent2, Serving: true,
		Ports: []api.Port{port(31005, "", "VIP_0", "/grp/web:80", "VIP_1", "grpweb:80")}})
	s.Put("web.3", Task{Name: "web.grp", Framework: "marathon", AgentIP: agent2, Serving: false,
		Ports: []api.Port{port(31006, "tcp", "VIP_0", "/grp/web:80")}})
	s.Put("db.1", Task{Name: "db", Framework: "marathon", AgentIP: agent1, Serving: false,
		Ports: []api.Port{port(31010, "tcp", "VIP_0", "/db:5432")}})
	s.Put("redis.1", Task{Name: "redis", Framework: "marathon", AgentIP: agent1, Serving: true,
		IPs:   []netip.Addr{netip.MustParseAddr("fd00::7"), netip.MustParseAddr("127.0.0.77")},
		Ports: []api.Port{port(6379, "tcp", "VIP_0", "198.18.1.206:6379", "network-scope", "container")}})
	s.Put("broker.1", Task{Name: "broker-0", Framework: "kafka", AgentIP: agent2, Serving: true,
		Ports: []api.Port{port(9092, "tcp", "VIP_BROKER", "broker:9092")}})
	s.Put("bad.1", Task{Name: "bad", Framework: "marathon", AgentIP: agent1, Serving: true,
		Ports: []api.Port{port(31020, "tcp", "VIP_0", "/bad", "VIP_1", "10.0.0.1:80", "VIP_", "/ignored:1", "OTHER", "x"),
			port(31021, "sctp", "VIP_0", "/bad:1"), port(0, "tcp", "VIP_0", "/bad:2")}})
	s.Put("orphan.1", Task{Name: "orphan", AgentIP: agent1, Serving: true,
		Ports: []api.Port{port(31030, "tcp", "VIP_0", "/orphan:80")}})
	s.Put("plain.1", Task{Name: "plain", Framework: "marathon", AgentIP: agent1, Serving: true,
		Ports: []api.Port{port(31040, "tcp", "HAPROXY_GROUP", "external")}})
	want := `name bad.marathon 198.18.1.201
name broker.kafka 198.18.1.245
name db.marathon 198.18.1.232
name grpweb.marathon 198.18.1.195
service "grpweb.marathon" 198.18.1.195:80/tcp [127.0.0.11:31000 127.0.0.11:31001 127.0.0.12:31005]
service "grpweb.marathon" 198.18.1.195:80/udp [127.0.0.11:31001]
service "bad.marathon" 198.18.1.201:2/tcp []
service "" 198.18.1.206:6379/tcp [127.0.0.77:6379]
service "db.marathon" 198.18.1.232:5432/tcp []
service "broker.kafka" 198.18.1.245:9092/tcp [127.0.0.12:9092]
problem task bad: port 0 label VIP_0: port number 0 is not 1-65535, so the task is no backend
problem task bad: port 31020 label VIP_0: VIP "/bad": want /name:port or address:port
problem task bad: port 31020 label VIP_1: address 10.0.0.1 is not in the VIP range 198.18.1.192/26
problem task bad: port 31021 label VIP_0: protocol "sctp" is neither tcp nor udp
problem task orphan: port 31030 label VIP_0: framework name "" has no letters or digits
`
	if !s.Changed() {
		t.Error("a new set with tasks is not changed")
	}
	if got := render(s.Table()); got != want {
		t.Errorf("table\n%s\nwant\n%s", got, want)
	}
	if s.Changed() {
		t.Error("changed right after Table")
	}

	// A status update that changes nothing VIP-related leaves the table as it was.
	s.Put("web.1", Task{Name: "web.grp", Framework: "marathon", AgentIP: agent1, Serving: true,
		Ports: []api.Port{port(31000, "tcp", "VIP_0", "/grp/web:80"), port(31001, "udp,tcp", "VIP_1", "/grp/web:80")}})
	s.Put("plain.1", Task{Name: "plain", Framework: "marathon", AgentIP: agent2, Serving: false})
	if s.Changed() {
		t.Error("changed by updates without VIP changes")
	}

	// The db task becomes healthy: a backend. The bad and orphan tasks go, and so do their
	// names and problems; the redis task no longer serves: its VIP stays, without backends.
	s.Put("db.1", Task{Name: "db", Framework: "marathon", AgentIP: agent1, Serving: true,
		Ports: []api.Port{port(31010, "tcp", "VIP_0", "/db:5432")}})
	s.Remove("bad.1")
	s.Remove("orphan.1")
	s.Remove("never-there")
	s.Put("redis.1", Task{Name: "redis", Framework: "marathon", AgentIP: agent1,
		Ports: []api.Port{port(6379, "tcp", "VIP_0", "198.18.1.206:6379", "network-scope", "container")}})
	s.Put("broker.1", Task{Name: "broker-0", Framework: "kafka"})
	want = `name db.marathon 198.18.1.232
name grpweb.marathon 198.18.1.195
service "grpweb.marathon" 198.18.1.195:80/tcp [127.0.0.11:31000 127.0.0.11:31001 127.0.0.12:31005]
service "grpweb.marathon" 198.18.1.195:80/udp [127.0.0.11:31001]
service "" 198.18.1.206:6379/tcp []
service "db.marathon" 198.18.1.232:5432/tcp [127.0.0.11:31010]
`
	if !s.Changed() {
		t.Error("not changed")
	}
	if got := render(s.Table()); got != want {
		t.Errorf("table\n%s\nwant\n%s", got, want)
	}
}

// TestSetIncremental: for random sequences of tasks coming, changing and going, the
// table of a set kept change by change is the table of a set made from the tasks left.
func TestSetIncremental(t *testing.T) {
	names := []string{"/web:80", "/grp/web:80", "grpweb:80", "/db:5432", "198.18.1.200:80", "/app4:1", "/app6:1", "bad"}
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		randomTask := func() Task {
			tk := Task{Name: "t", Framework: []string{"marathon", "kafka", ""}[rng.IntN(3)], AgentIP: []netip.Addr{agent1, agent2, {}}[rng.IntN(3)],
				Serving: rng.IntN(3) > 0}
			for range rng.IntN(3) {
				tk.Ports = append(tk.Ports, port(uint32(31000+rng.IntN(4)), []string{"tcp", "udp", ""}[rng.IntN(3)],
					fmt.Sprintf("VIP_%d", rng.IntN(2)), names[rng.IntN(len(names))]))
			}
			return tk
		}
		s := NewSet(testRange)
		prev := s.Table()
		live := map[string]Task{}
		for step := range 200 {
			id := fmt.Sprintf("task-%d", rng.IntN(12))
			if rng.IntN(4) == 0 {
				s.Remove(id)
				delete(live, id)
			} else {
				tk := randomTask()
				s.Put(id, tk)
				live[id] = tk
			}
			if rng.IntN(3) > 0 {
				continue
			}
			fresh := NewSet(testRange)
			for id, tk := range live {
				fresh.Put(id, tk)
			}
			changed := s.Changed()
			got, want := s.Table(), fresh.Table()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d: kept\n%s\nmade afresh\n%s", seed, step, render(got), render(want))
			}
			if !changed && !reflect.DeepEqual(prev, got) {
				t.Fatalf("seed %d step %d: not changed, yet the table changed from\n%s", seed, step, render(prev))
			}
			prev = got
		}
	}
}
