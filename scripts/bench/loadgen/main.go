// Command loadgen loads a running master for benchmarks: it registers simulated agents that
// speak the agent protocol (answering every LAUNCH with a reliable TASK_RUNNING and keeping
// the task, without starting processes) and one framework that launches long-running tasks
// until the target count runs, acknowledging every update. Like Atoll's agents, a simulated
// agent sends its updates in batches (up to 128 per UPDATE call, 4 calls at a time) over
// kept-alive connections; the framework acknowledges with at most 64 calls at a time, as
// many as its client keeps connections for. It prints launch throughput and
// ACCEPT→TASK_RUNNING latency, then waits (so the master's memory can be read) until killed
// or -hold passes.
//
// It measures the master, Raft and the HTTP APIs alone; BenchmarkLaunchThroughput in
// node/master measures the whole path with real processes.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api"
)

func main() {
	master := flag.String("master", "http://127.0.0.1:5050", "master API URL")
	agents := flag.Int("agents", 100, "simulated agents")
	tasks := flag.Int("tasks", 10000, "tasks to launch and keep running")
	hold := flag.Duration("hold", 0, "how long to keep everything running after the launch (0: until killed)")
	flag.Parse()
	if err := run(*master, *agents, *tasks, *hold); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(master string, agents, tasks int, hold time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range agents {
		a := &simAgent{master: master, name: fmt.Sprintf("sim-%04d", i),
			http:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: maxUpdateCalls}},
			updates: make(chan api.AgentCallUpdate, maxUpdateCalls*maxUpdatesPerCall)}
		if err := a.subscribe(ctx); err != nil {
			return fmt.Errorf("agent %d: %w", i, err)
		}
	}
	fmt.Printf("%d simulated agents registered\n", agents)

	client := api.NewClient(master)
	s, err := client.Subscribe(ctx, api.FrameworkInfo{User: "root", Name: "loadgen"}, nil)
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		accepted = map[string]time.Time{}
		latency  []time.Duration
		running  int
		launched int
	)
	done := make(chan struct{})
	acks := make(chan struct{}, maxAcks)
	start := time.Now()
	for {
		ev, err := s.Next()
		if err != nil {
			return fmt.Errorf("framework stream: %w", err)
		}
		switch ev.Type {
		case api.EventUpdate:
			st := ev.Update.Status
			if len(st.UUID) > 0 {
				acks <- struct{}{}
				go func() {
					defer func() { <-acks }()
					_ = s.Acknowledge(ctx, st)
				}()
			}
			if st.State != api.TaskRunning {
				continue
			}
			mu.Lock()
			if t0, ok := accepted[st.TaskID.Value]; ok {
				delete(accepted, st.TaskID.Value)
				latency = append(latency, time.Since(t0))
				running++
				if running == tasks {
					close(done)
				}
			}
			mu.Unlock()
		case api.EventOffers:
			for _, o := range ev.Offers.Offers {
				var infos []api.TaskInfo
				cpus, mem := scalar(o.Resources, "cpus"), scalar(o.Resources, "mem")
				for cpus >= 0.01 && mem >= 1 && launched < tasks {
					cmd := "sleep 86400"
					infos = append(infos, api.TaskInfo{
						Name: "load", TaskID: api.TaskID{Value: fmt.Sprintf("load-%d", launched)}, AgentID: o.AgentID,
						Resources: []api.Resource{res("cpus", 0.01), res("mem", 1)}, Command: &api.CommandInfo{Value: &cmd},
					})
					cpus, mem = cpus-0.01, mem-1
					launched++
				}
				if len(infos) == 0 {
					go func() { _ = s.Decline(ctx, []api.OfferID{o.ID}, nil) }()
					continue
				}
				now := time.Now()
				mu.Lock()
				for _, t := range infos {
					accepted[t.TaskID.Value] = now
				}
				mu.Unlock()
				go func() {
					_ = s.Accept(ctx, []api.OfferID{o.ID}, []api.OfferOperation{{Type: api.OperationLaunch, Launch: &api.LaunchOperation{TaskInfos: infos}}}, nil)
				}()
			}
		}
		select {
		case <-done:
			elapsed := time.Since(start)
			mu.Lock()
			sort.Slice(latency, func(i, j int) bool { return latency[i] < latency[j] })
			fmt.Printf("%d tasks RUNNING in %v: %.0f tasks/s; ACCEPT→RUNNING p50 %v p99 %v\n", tasks, elapsed.Round(time.Millisecond),
				float64(tasks)/elapsed.Seconds(), latency[len(latency)/2].Round(time.Microsecond), latency[len(latency)*99/100].Round(time.Microsecond))
			mu.Unlock()
			if hold > 0 {
				time.Sleep(hold)
				return nil
			}
			select {}
		default:
		}
	}
}

func scalar(rs []api.Resource, name string) float64 {
	for _, r := range rs {
		if r.Name == name && r.Scalar != nil {
			return r.Scalar.Value
		}
	}
	return 0
}

func res(name string, v float64) api.Resource {
	return api.Resource{Name: name, Type: api.Scalar, Scalar: &api.ValueScalar{Value: v}}
}

// As Atoll's agents (node/agent/updates.go) and client (api.NewClient).
const (
	maxUpdateCalls    = 4
	maxUpdatesPerCall = 128
	maxAcks           = 64
)

// simAgent speaks the agent protocol without running anything.
type simAgent struct {
	master, name string
	http         *http.Client
	id, stream   string
	// updates holds the status updates not sent yet, which maxUpdateCalls senders take
	// in batches. When it is full the agent's stream waits for them, as a TCP window would.
	updates chan api.AgentCallUpdate
}

func (a *simAgent) subscribe(ctx context.Context) error {
	call := api.AgentCall{Type: api.AgentSubscribe, Subscribe: &api.AgentCallSubscribe{
		AgentInfo: api.AgentInfo{Hostname: a.name, Resources: []api.Resource{res("cpus", 64), res("mem", 65536),
			{Name: "ports", Type: api.Ranges, Ranges: &api.ValueRanges{Range: []api.ValueRange{{Begin: 31000, End: 32000}}}}}},
		Version: "loadgen",
	}}
	body, _ := json.Marshal(call)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.master+api.AgentPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return fmt.Errorf("SUBSCRIBE: %s: %s", resp.Status, b)
	}
	a.stream = resp.Header.Get(api.StreamIDHeader)
	records := api.NewRecordReader(resp.Body)
	first, err := a.next(records)
	if err != nil || first.Type != api.AgentSubscribed {
		resp.Body.Close()
		return fmt.Errorf("first event %+v: %v", first, err)
	}
	a.id = first.Subscribed.AgentID.Value
	for range maxUpdateCalls {
		go a.sendUpdates(ctx)
	}
	go func() {
		defer resp.Body.Close()
		for {
			ev, err := a.next(records)
			if err != nil {
				return
			}
			if ev.Type == api.AgentLaunch {
				a.updates <- update(ev.Launch.FrameworkID, ev.Launch.Task.TaskID, api.TaskRunning)
			}
			if ev.Type == api.AgentKill {
				a.updates <- update(ev.Kill.FrameworkID, ev.Kill.TaskID, api.TaskKilled)
			}
		}
	}()
	return nil
}

func (a *simAgent) next(r *api.RecordReader) (*api.AgentEvent, error) {
	rec, err := r.ReadRecord()
	if err != nil {
		return nil, err
	}
	var ev api.AgentEvent
	return &ev, json.Unmarshal(rec, &ev)
}

// update is a new status update of the task.
func update(fid api.FrameworkID, tid api.TaskID, state api.TaskState) api.AgentCallUpdate {
	id := uuid.New()
	return api.AgentCallUpdate{FrameworkID: fid, Status: api.TaskStatus{TaskID: tid, State: state,
		Source: api.SourceExecutor, UUID: id[:], Timestamp: float64(time.Now().UnixNano()) / 1e9}}
}

// sendUpdates sends the queued updates, up to maxUpdatesPerCall per call, until ctx ends.
// A batch that fails is sent again a second later; the master records each update once
// whatever the number of times it gets it.
func (a *simAgent) sendUpdates(ctx context.Context) {
	for {
		var batch []api.AgentCallUpdate
		select {
		case u := <-a.updates:
			batch = append(batch, u)
		case <-ctx.Done():
			return
		}
	fill:
		for len(batch) < maxUpdatesPerCall {
			select {
			case u := <-a.updates:
				batch = append(batch, u)
			default:
				break fill
			}
		}
		for a.post(ctx, batch) != nil {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		}
	}
}

func (a *simAgent) post(ctx context.Context, batch []api.AgentCallUpdate) error {
	body, _ := json.Marshal(api.AgentCall{Type: api.AgentUpdate, AgentID: &api.AgentID{Value: a.id}, Updates: batch})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.master+api.AgentPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.StreamIDHeader, a.stream)
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("UPDATE: %s: %s", resp.Status, msg)
	}
	return nil
}
