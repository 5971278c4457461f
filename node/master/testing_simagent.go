package master

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/atoll/atoll/api"
)

// SimulatedAgent speaks the agent protocol without running anything: it answers each
// LAUNCH with TASK_RUNNING and each KILL with TASK_KILLED, for benchmarks of the master
// and its frameworks at sizes no real agent on one machine reaches.
type SimulatedAgent struct {
	ID string
	// Stop ends the agent's stream and heartbeats, as if its host died.
	Stop context.CancelFunc

	master, stream string
	token          string
	http           *http.Client
}

// StartSimulatedAgent registers a simulated agent named hostname with the given
// resources at the master's base URL; it stops when the test ends.
func StartSimulatedAgent(t testing.TB, masterURL, hostname string, resources []api.Resource) *SimulatedAgent {
	t.Helper()
	return StartSimulatedAgentWithToken(t, masterURL, "", hostname, resources)
}

// StartSimulatedAgentWithToken is StartSimulatedAgent for a master that requires API
// tokens: every call carries token (an agent token; "" sends none).
func StartSimulatedAgentWithToken(t testing.TB, masterURL, token, hostname string, resources []api.Resource) *SimulatedAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := &SimulatedAgent{Stop: cancel, master: masterURL, token: token, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	call := api.AgentCall{Type: api.AgentSubscribe, Subscribe: &api.AgentCallSubscribe{
		AgentInfo: api.AgentInfo{Hostname: hostname, Resources: resources},
		Version:   "simulated",
	}}
	resp, err := a.post(ctx, call)
	if err != nil {
		t.Fatalf("simulated agent %s: SUBSCRIBE: %v", hostname, err)
	}
	a.stream = resp.Header.Get(api.StreamIDHeader)
	records := api.NewRecordReader(resp.Body)
	first, err := nextAgentEvent(records)
	if err != nil || first.Type != api.AgentSubscribed {
		resp.Body.Close()
		t.Fatalf("simulated agent %s: first event %+v: %v", hostname, first, err)
	}
	a.ID = first.Subscribed.AgentID.Value
	updates := make(chan api.AgentCallUpdate, 1<<16)
	go func() {
		defer resp.Body.Close()
		for {
			rec, err := records.ReadRecord()
			if err != nil {
				return
			}
			// The task runs, or ends, the moment its event arrives.
			at := time.Now()
			var ev simEvent
			if err := json.Unmarshal(rec, &ev); err != nil {
				return
			}
			switch {
			case ev.Type == api.AgentLaunch && ev.Launch != nil:
				updates <- statusUpdate(ev.Launch.FrameworkID, ev.Launch.Task.TaskID, api.TaskRunning, at)
			case ev.Type == api.AgentKill && ev.Kill != nil:
				updates <- statusUpdate(ev.Kill.FrameworkID, ev.Kill.TaskID, api.TaskKilled, at)
			}
		}
	}()
	// Heartbeats keep the master from taking the agent for gone.
	go func() {
		ticker := time.NewTicker(200 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				if resp, err := a.post(ctx, api.AgentCall{Type: api.AgentHeartbeat, AgentID: &api.AgentID{Value: a.ID}}); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}()
	// Updates go in batches, as a real agent sends them.
	for range 4 {
		go func() {
			for {
				var batch []api.AgentCallUpdate
				select {
				case <-ctx.Done():
					return
				case u := <-updates:
					batch = append(batch, u)
				}
			more:
				for len(batch) < 128 {
					select {
					case u := <-updates:
						batch = append(batch, u)
					default:
						break more
					}
				}
				a.send(ctx, batch)
			}
		}()
	}
	return a
}

// statusUpdate is a task's update to state, stamped at.
func statusUpdate(fid api.FrameworkID, tid api.TaskID, state api.TaskState, at time.Time) api.AgentCallUpdate {
	id := uuid.New()
	return api.AgentCallUpdate{FrameworkID: fid, Status: api.TaskStatus{TaskID: tid, State: state, Source: api.SourceExecutor, UUID: id[:],
		Timestamp: float64(at.UnixNano()) / 1e9}}
}

func (a *SimulatedAgent) post(ctx context.Context, call api.AgentCall) (*http.Response, error) {
	body, err := json.Marshal(call)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.master+api.AgentPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if a.stream != "" {
		req.Header.Set(api.StreamIDHeader, a.stream)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", resp.Status, data)
	}
	return resp, nil
}

func nextAgentEvent(r *api.RecordReader) (*api.AgentEvent, error) {
	rec, err := r.ReadRecord()
	if err != nil {
		return nil, err
	}
	var ev api.AgentEvent
	return &ev, json.Unmarshal(rec, &ev)
}

// simEvent is what the simulated agent reads of an event: a real agent's work on the rest
// (the framework info, the command, the resources) is what it simulates away.
type simEvent struct {
	Type   api.AgentEventType `json:"type"`
	Launch *struct {
		FrameworkID api.FrameworkID `json:"framework_id"`
		Task        struct {
			TaskID api.TaskID `json:"task_id"`
		} `json:"task"`
	} `json:"launch"`
	Kill *struct {
		FrameworkID api.FrameworkID `json:"framework_id"`
		TaskID      api.TaskID      `json:"task_id"`
	} `json:"kill"`
}

// send sends status updates in one UPDATE call.
func (a *SimulatedAgent) send(ctx context.Context, batch []api.AgentCallUpdate) {
	resp, err := a.post(ctx, api.AgentCall{Type: api.AgentUpdate, AgentID: &api.AgentID{Value: a.ID}, Updates: batch})
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
