package master

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master/state"
)

// brokerStates reads the TASK_UPDATED states queued on s (and empties its queue).
func brokerStates(t *testing.T, s *stream) string {
	t.Helper()
	s.mu.Lock()
	queue := s.queue
	s.queue = nil
	s.mu.Unlock()
	var states []string
	for _, rec := range queue {
		_, body, ok := bytes.Cut(rec, []byte("\n"))
		if !ok {
			t.Fatalf("record %q has no length line", rec)
		}
		var ev api.OperatorEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatalf("record %q: %v", body, err)
		}
		if ev.Type != api.OpEventTaskUpdated || ev.TaskUpdated.Status.State != ev.TaskUpdated.State ||
			ev.TaskUpdated.FrameworkID.Value != "f1" || ev.TaskUpdated.Status.TaskID.Value != "t1" || ev.TaskUpdated.Status.Data != nil {
			t.Fatalf("event %s", body)
		}
		states = append(states, strings.TrimPrefix(string(ev.TaskUpdated.State), "TASK_"))
	}
	return fmt.Sprint(states)
}

// TestBrokerEarlyStates: the states an agent reports reach the streams as they arrive;
// a commit reaches only the streams that saw neither it nor a later state early.
func TestBrokerEarlyStates(t *testing.T) {
	b := &broker{subs: map[*stream]uint64{}, early: map[earlyKey][]earlyState{}}
	join := func() *stream {
		s := newStream("s")
		b.joined++
		b.subs[s] = b.joined
		return s
	}
	task := func(st api.TaskState) *state.Task {
		return &state.Task{ID: "t1", FrameworkID: "f1", State: st}
	}
	status := func(st api.TaskState) api.TaskStatus {
		return api.TaskStatus{TaskID: api.TaskID{Value: "t1"}, State: st, Data: []byte("big")}
	}
	commit := func(st api.TaskState) {
		committed := status(st)
		committed.Data = nil
		b.publish(state.Change{Kind: state.TaskUpdated, Task: task(st), Status: &committed})
	}

	s1 := join()
	b.publishEarly("f1", status(api.TaskStarting), api.TaskStaging)
	s2 := join()
	b.publishEarly("f1", status(api.TaskRunning), api.TaskStaging)
	b.publishEarly("f1", status(api.TaskRunning), api.TaskStaging) // no change: not published
	s3 := join()
	if got := brokerStates(t, s1); got != "[STARTING RUNNING]" {
		t.Fatalf("first stream got %s early", got)
	}
	if got := brokerStates(t, s2); got != "[RUNNING]" {
		t.Fatalf("second stream got %s early", got)
	}
	// expect checks what each of s1, s2 and s3 got since the last call.
	expect := func(what string, want ...string) {
		t.Helper()
		for i, s := range []*stream{s1, s2, s3} {
			if got := brokerStates(t, s); got != want[i] {
				t.Fatalf("stream %d got %s for %s, want %s", i+1, got, what, want[i])
			}
		}
	}
	commit(api.TaskStarting)
	// s2 saw RUNNING already: STARTING would take it back.
	expect("the commit of STARTING", "[]", "[]", "[STARTING]")
	commit(api.TaskRunning)
	expect("the commit of RUNNING", "[]", "[]", "[RUNNING]")
	if len(b.early) != 0 {
		t.Fatalf("early states left after their commits: %v", b.early)
	}

	// A state the master decided (no early state matches) goes to everyone, and a
	// terminal one ends the task's early states.
	b.publishEarly("f1", status(api.TaskFinished), api.TaskRunning)
	commit(api.TaskLost)
	expect("a state the master decided", "[FINISHED LOST]", "[FINISHED LOST]", "[FINISHED LOST]")
	if len(b.early) != 0 {
		t.Fatalf("early states left after a terminal commit: %v", b.early)
	}

	// A state the master decided, committed between an early state and its commit: the
	// early state's commit is news again, or streams would be left with the master's.
	b.publishEarly("f1", status(api.TaskRunning), api.TaskStaging)
	commit(api.TaskUnreachable)
	commit(api.TaskRunning)
	expect("a commit after a state the master decided", "[RUNNING UNREACHABLE RUNNING]", "[RUNNING UNREACHABLE RUNNING]", "[RUNNING UNREACHABLE RUNNING]")
	commit(api.TaskFinished)
	expect("the task's end", "[FINISHED]", "[FINISHED]", "[FINISHED]")

	// An early state never committed is forgotten after earlyTTL; its late commit is
	// then published again.
	b.publishEarly("f1", status(api.TaskKilling), api.TaskRunning)
	b.forgetEarlyLocked(time.Now().Add(-earlyTTL))
	if len(b.early) != 1 {
		t.Fatalf("a fresh early state was forgotten: %v", b.early)
	}
	b.forgetEarlyLocked(time.Now().Add(time.Second))
	if len(b.early) != 0 {
		t.Fatalf("an early state outlived earlyTTL: %v", b.early)
	}
	commit(api.TaskKilling)
	expect("a commit after its early state was forgotten", "[KILLING KILLING]", "[KILLING KILLING]", "[KILLING KILLING]")

	// Without streams nothing is kept.
	b2 := &broker{subs: map[*stream]uint64{}, early: map[earlyKey][]earlyState{}}
	b2.publishEarly("f1", status(api.TaskRunning), api.TaskStaging)
	if len(b2.early) != 0 {
		t.Fatalf("early state kept with no stream: %v", b2.early)
	}
}
