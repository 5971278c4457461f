// Command dnsfixture serves the DNS names of a generated cluster for scripts/bench/dns.sh.
// It makes the state of -apps Marathon apps of -per-app tasks each on -agents agents,
// plays a master to Atoll's DNS server — the operator event stream with a SUBSCRIBED
// holding the whole state, then heartbeats, and the Raft peers for the leader's names — so
// the records arrive the way they do in a cluster, and serves them on -listen (UDP on
// -udp-sockets sockets, by default the default config's number) until killed. Once they
// are served it writes to -out the dnsperf query files of the in-domain A and SRV names
// (a.queries, srv.queries; without the few names whose answers hold more than
// maxQueryRecords records, such as slave.mesos. with every agent) and the records of the
// cluster domain as unbound local-data (unbound-records.conf), and prints "ready".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/dns"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18053", "address the DNS server answers on (UDP and TCP)")
	apps := flag.Int("apps", 2000, "Marathon apps")
	perApp := flag.Int("per-app", 5, "tasks of each app")
	agents := flag.Int("agents", 1000, "agents the tasks are spread over")
	out := flag.String("out", "", "directory for the query files and unbound's records (empty: none)")
	sockets := flag.Int("udp-sockets", dns.DefaultConfig().UDPSockets, "UDP sockets sharing the port (SO_REUSEPORT), each served by a goroutine")
	flag.Parse()
	if err := run(*listen, *apps, *perApp, *agents, *sockets, *out); err != nil {
		fmt.Fprintln(os.Stderr, "dnsfixture:", err)
		os.Exit(1)
	}
}

// syncTimeout bounds the wait for the DNS server's first SUBSCRIBED.
const syncTimeout = time.Minute

func run(listen string, apps, perApp, agents, sockets int, out string) error {
	if apps < 1 || perApp < 1 || agents < 1 || agents > 250*250 {
		return fmt.Errorf("want at least one app, task and agent, and at most %d agents", 250*250)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	masterURL := "http://" + ln.Addr().String()
	master := &http.Server{Handler: fakeMaster(clusterState(apps, perApp, agents)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = master.Serve(ln) }()
	defer master.Close()

	cfg := dns.DefaultConfig()
	cfg.Listen = listen
	cfg.UDPSockets = sockets
	cfg.ResolvConf = ""
	cfg.NSAddr = "127.0.0.1"
	cfg.Masters = func() []string { return []string{masterURL} }
	cfg.Version = "bench"
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := dns.New(cfg)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	start := time.Now()
	go func() { served <- s.Run(ctx) }()
	for s.Stale() {
		select {
		case err := <-served:
			return fmt.Errorf("dns server stopped before it synced: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(start) > syncTimeout {
			return fmt.Errorf("dns server not synced with the fixture master after %v", syncTimeout)
		}
	}
	recs := s.Records()
	fmt.Printf("serving %d records of %d tasks on %s (synced in %v)\n", len(recs.RRs), apps*perApp, s.Addr(), time.Since(start).Round(time.Millisecond))
	if out != "" {
		if err := writeFiles(out, recs); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// clusterState is a GET_STATE of apps × perApp running tasks (/app-<i>, each holding one
// host port) of the framework "marathon", spread over agents agents at 10.2.x.y.
func clusterState(apps, perApp, agents int) *api.GetState {
	st := &api.GetState{GetAgents: &api.GetAgents{}, GetTasks: &api.GetTasks{}, GetFrameworks: &api.GetFrameworks{
		Frameworks: []api.FrameworkState{{FrameworkInfo: api.FrameworkInfo{User: "root", Name: "marathon", ID: &api.FrameworkID{Value: "marathon-0000"}}}}}}
	agentID := func(i int) string { return fmt.Sprintf("bench-agent-S%d", i) }
	for i := range agents {
		st.GetAgents.Agents = append(st.GetAgents.Agents, api.AgentState{
			AgentInfo: api.AgentInfo{Hostname: fmt.Sprintf("node-%d", i), ID: &api.AgentID{Value: agentID(i)}},
			PID:       fmt.Sprintf("slave(1)@10.2.%d.%d:5051", i/250, i%250+1), Active: true})
	}
	for i := range apps {
		for j := range perApp {
			n := i*perApp + j
			port := uint64(31000 + j)
			st.GetTasks.Tasks = append(st.GetTasks.Tasks, api.Task{
				Name: fmt.Sprintf("/app-%d", i), TaskID: api.TaskID{Value: fmt.Sprintf("app-%d.%d", i, j)},
				FrameworkID: api.FrameworkID{Value: "marathon-0000"}, AgentID: api.AgentID{Value: agentID(n % agents)},
				State: api.TaskRunning,
				Resources: []api.Resource{{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{
					Range: []api.ValueRange{{Begin: port, End: port}}}}}})
		}
	}
	return st
}

// heartbeat is the fixture master's heartbeat interval.
const heartbeat = 5 * time.Second

// fakeMaster answers what the DNS server asks a master: the operator SUBSCRIBE (the
// state, then heartbeats until the subscriber leaves) and the Raft peers (itself, leading).
func fakeMaster(st *api.GetState) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.OperatorPath, func(w http.ResponseWriter, r *http.Request) {
		var call api.OperatorCall
		if err := json.NewDecoder(r.Body).Decode(&call); err != nil || call.Type != api.OpSubscribe {
			http.Error(w, "the fixture master answers SUBSCRIBE only", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		send := func(ev api.OperatorEvent) error {
			raw, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if _, err := w.Write(api.AppendRecord(nil, raw)); err != nil {
				return err
			}
			http.NewResponseController(w).Flush()
			return nil
		}
		if send(api.OperatorEvent{Type: api.OpEventSubscribed, Subscribed: &api.OpSubscribed{GetState: st,
			HeartbeatIntervalSeconds: heartbeat.Seconds()}}) != nil {
			return
		}
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				if send(api.OperatorEvent{Type: api.OpEventHeartbeat}) != nil {
					return
				}
			}
		}
	})
	mux.HandleFunc("GET "+api.RaftPeersPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.RaftPeers{Servers: []api.RaftServer{{ID: "bench-master", Address: "127.0.0.1:5052", Leader: true}},
			LeaderID: "bench-master", AnsweredBy: "bench-master"})
	})
	return mux
}

// maxQueryRecords leaves out of the query files the names with more records than a
// 512-byte answer holds: both servers would only truncate them.
const maxQueryRecords = 16

// writeFiles writes the query files of the A and SRV names in the cluster domain and
// the domain's records as unbound local-data.
func writeFiles(dir string, recs *dns.Records) error {
	var conf strings.Builder
	conf.WriteString("local-zone: \"mesos.\" static\n")
	type question struct {
		name   string
		rrtype uint16
	}
	counts := map[question]int{}
	for _, rr := range recs.RRs {
		h := rr.Header()
		if h.Name != "mesos." && !strings.HasSuffix(h.Name, ".mesos.") {
			continue
		}
		fmt.Fprintf(&conf, "local-data: \"%s\"\n", strings.ReplaceAll(rr.String(), "\t", " "))
		counts[question{h.Name, h.Rrtype}]++
	}
	files := map[string]string{"unbound-records.conf": conf.String()}
	for rrtype, file := range map[uint16]string{mdns.TypeA: "a.queries", mdns.TypeSRV: "srv.queries"} {
		var lines []string
		for q, n := range counts {
			if q.rrtype == rrtype && n <= maxQueryRecords {
				lines = append(lines, q.name+" "+mdns.TypeToString[rrtype]+"\n")
			}
		}
		slices.Sort(lines)
		files[file] = strings.Join(lines, "")
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
