package state

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/hashicorp/raft"
)

// openTestRaft opens a dev-timed Raft member in dir listening on addr and closes it at the
// end of the test unless the test closed it first.
func openTestRaft(t testing.TB, dir, addr string, fsm *FSM) *Raft {
	t.Helper()
	r, err := OpenRaft(RaftConfig{
		NodeID:            "node-1",
		BindAddr:          addr,
		DataDir:           dir,
		Logger:            testLogger(t),
		Dev:               true,
		SnapshotThreshold: 1 << 20, // snapshots only when a test asks
		TrailingLogs:      16,
		SnapshotInterval:  time.Hour,
	}, fsm)
	if err != nil {
		t.Fatalf("open raft: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// waitLeader waits until r leads, polling with a deadline generous for a loaded machine.
func waitLeader(t testing.TB, r *Raft) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatalf("no leader after 20s (state %s)", r.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitIndex(t testing.TB, store *Store, index uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for store.LastIndex() < index {
		if time.Now().After(deadline) {
			t.Fatalf("store at index %d after 20s, want %d", store.LastIndex(), index)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustApply(t testing.TB, r *Raft, mt MessageType, req any) *ApplyResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	response, err := r.Apply(ctx, mt, req)
	if err != nil {
		t.Fatalf("apply %s: %v", mt, err)
	}
	result, ok := response.(*ApplyResult)
	if !ok {
		t.Fatalf("apply %s returned %T, want *ApplyResult", mt, response)
	}
	return result
}

func TestRaftSingleNodeRecoversState(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			dir := t.TempDir()
			fsm := NewFSM(testLogger(t))
			r := openTestRaft(t, dir, "127.0.0.1:0", fsm)
			if r.HasState() {
				t.Fatal("HasState on a fresh data dir")
			}
			if err := r.BootstrapSelf(); err != nil {
				t.Fatalf("bootstrap: %v", err)
			}
			if !r.HasState() {
				t.Fatal("no state after bootstrap")
			}
			waitLeader(t, r)

			mustApply(t, r, RegisterAgentType, RegisterAgentRequest{Agent: testAgent("a1")})
			mustApply(t, r, UpsertFrameworkType, &UpsertFrameworkRequest{Framework: testFramework("f1")})
			mustApply(t, r, AddTasksType, AddTasksRequest{Tasks: []Task{testTask("f1", "a1", "t1"), testTask("f1", "a1", "t2")}})
			if snapshot {
				if err := r.Snapshot().Error(); err != nil {
					t.Fatalf("snapshot: %v", err)
				}
			}
			result := mustApply(t, r, UpdateTaskStatusesType, UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{
				statusUpdate("f1", "t1", testStatus(api.TaskRunning, 1)),
				statusUpdate("f1", "t2", testStatus(api.TaskFinished, 2)),
				statusUpdate("f1", "t9", testStatus(api.TaskRunning, 3)),
			}})
			if want := []TaskKey{{"f1", "t9"}}; !reflect.DeepEqual(result.Skipped, want) {
				t.Errorf("skipped %v, want %v", result.Skipped, want)
			}
			// A rejected command comes back as an error with its result.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			response, err := r.Apply(ctx, RemoveAgentType, RemoveAgentRequest{AgentID: "a9"})
			if res, ok := response.(*ApplyResult); !errors.Is(err, ErrNotFound) || !ok || !errors.Is(res.Err, ErrNotFound) {
				t.Errorf("apply of a missing agent's removal = %v, %v; want ErrNotFound", response, err)
			}

			want := dump(fsm.Store())
			if len(want.Tasks) != 1 || len(want.Completed) != 1 {
				t.Fatalf("unexpected state before restart: %s", toJSON(t, want))
			}
			addr := string(r.Addr())
			if err := r.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}

			reopened := NewFSM(testLogger(t))
			var restoredAt []uint64
			var mu sync.Mutex
			reopened.OnChange(func(c Change) {
				if c.Kind == Restored {
					mu.Lock()
					restoredAt = append(restoredAt, c.Index)
					mu.Unlock()
				}
			})
			r = openTestRaft(t, dir, addr, reopened)
			if !r.HasState() {
				t.Fatal("HasState false after reopening")
			}
			if err := r.BootstrapSelf(); err != nil {
				t.Fatalf("bootstrap on reopen: %v", err)
			}
			waitLeader(t, r)
			waitIndex(t, reopened.Store(), want.LastIndex)
			assertContents(t, dump(reopened.Store()), want)

			mu.Lock()
			defer mu.Unlock()
			var wantRestored []uint64
			if snapshot {
				wantRestored = []uint64{5} // after bootstrap config (1), no-op (2) and three commands
			}
			if !reflect.DeepEqual(restoredAt, wantRestored) {
				t.Errorf("restored at %v, want %v", restoredAt, wantRestored)
			}
			config := r.GetConfiguration()
			if err := config.Error(); err != nil {
				t.Fatal(err)
			}
			wantServers := []raft.Server{{Suffrage: raft.Voter, ID: "node-1", Address: raft.ServerAddress(addr)}}
			if got := config.Configuration().Servers; !reflect.DeepEqual(got, wantServers) {
				t.Errorf("servers after reopen %+v, want %+v", got, wantServers)
			}
		})
	}
}

func TestRaftApplyErrors(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	// Never bootstrapped: a follower without peers, never a leader.
	r := openTestRaft(t, t.TempDir(), "127.0.0.1:0", fsm)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.Apply(ctx, RemoveAgentType, RemoveAgentRequest{AgentID: "a1"}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("apply on a follower: %v, want ErrNotLeader", err)
	}
	if _, err := r.Apply(ctx, RemoveAgentType, AddTasksRequest{}); !errors.Is(err, ErrBadCommand) {
		t.Errorf("apply with a mismatched request: %v, want ErrBadCommand", err)
	}
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := r.Apply(done, RemoveAgentType, RemoveAgentRequest{AgentID: "a1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("apply with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestOpenRaftRefusesLockedDataDir(t *testing.T) {
	dir := t.TempDir()
	openTestRaft(t, dir, "127.0.0.1:0", NewFSM(testLogger(t)))
	_, err := OpenRaft(RaftConfig{
		NodeID: "node-2", BindAddr: "127.0.0.1:0", DataDir: dir, Dev: true,
		SnapshotThreshold: 1, SnapshotInterval: time.Second,
	}, NewFSM(testLogger(t)))
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second open of one data dir: %v, want an in-use error", err)
	}
}

func TestRaftConfigValidate(t *testing.T) {
	valid := DefaultRaftConfig()
	valid.NodeID = "n1"
	valid.DataDir = "/var/lib/atoll"
	valid.AdvertiseAddr = "192.0.2.1:5052"
	tests := []struct {
		name    string
		modify  func(*RaftConfig)
		wantErr string
	}{
		{"valid", func(*RaftConfig) {}, ""},
		{"dev", func(c *RaftConfig) { c.Dev = true }, ""},
		{"specific bind needs no advertise", func(c *RaftConfig) { c.BindAddr, c.AdvertiseAddr = "127.0.0.1:0", "" }, ""},
		{"no node id", func(c *RaftConfig) { c.NodeID = "" }, "NodeID is empty"},
		{"no data dir", func(c *RaftConfig) { c.DataDir = "" }, "DataDir is empty"},
		{"bad bind", func(c *RaftConfig) { c.BindAddr = "5052" }, "BindAddr: address 5052: missing port in address"},
		{"bad port", func(c *RaftConfig) { c.BindAddr = "127.0.0.1:99999" }, `BindAddr: port "99999"`},
		{"wildcard without advertise", func(c *RaftConfig) { c.AdvertiseAddr = "" }, `AdvertiseAddr is required when BindAddr "0.0.0.0:5052" is not a specific IP`},
		{"hostname advertise", func(c *RaftConfig) { c.AdvertiseAddr = "master-1:5052" }, `AdvertiseAddr "master-1:5052" must name a specific IP`},
		{"no snapshot threshold", func(c *RaftConfig) { c.SnapshotThreshold = 0 }, "SnapshotThreshold is 0"},
		{"failure timeout too short", func(c *RaftConfig) { c.FailureTimeout = 50 * time.Millisecond }, "FailureTimeout is 50ms, want at least 100ms"},
		{"dev ignores failure timeout", func(c *RaftConfig) { c.Dev, c.FailureTimeout = true, 0 }, ""},
		{"no snapshot interval", func(c *RaftConfig) { c.SnapshotInterval = 0 }, "SnapshotInterval is 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.modify(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFSMConfigValidate(t *testing.T) {
	if err := DefaultFSMConfig().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	if _, err := NewFSMWithConfig(FSMConfig{MaxCompletedTasks: 0, MaxCompletedFrameworks: 1}); err == nil || !strings.Contains(err.Error(), "MaxCompletedTasks is 0") {
		t.Errorf("zero MaxCompletedTasks: %v", err)
	}
	if _, err := NewFSMWithConfig(FSMConfig{MaxCompletedTasks: 1, MaxCompletedFrameworks: -1}); err == nil || !strings.Contains(err.Error(), "MaxCompletedFrameworks is -1") {
		t.Errorf("negative MaxCompletedFrameworks: %v", err)
	}
}

// BenchmarkRaftApplyStatusUpdates measures concurrent single status updates through a real
// single-node Raft on disk, as the master's many connection goroutines submit them. Raft
// batches what is submitted while the previous batch is on disk, so the rate grows with
// the number of concurrent callers until the CPU, not the disk, is the limit.
func BenchmarkRaftApplyStatusUpdates(b *testing.B) {
	for _, goroutines := range []int{64, 256} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			benchmarkRaftApplyStatusUpdates(b, goroutines)
		})
	}
}

func benchmarkRaftApplyStatusUpdates(b *testing.B, goroutines int) {
	const tasks = 1000
	fsm := NewFSM(nil)
	r, err := OpenRaft(RaftConfig{
		NodeID: "bench", BindAddr: "127.0.0.1:0", DataDir: b.TempDir(), Dev: true,
		SnapshotThreshold: 16384, TrailingLogs: 10240, SnapshotInterval: 2 * time.Minute,
	}, fsm)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	if err := r.BootstrapSelf(); err != nil {
		b.Fatal(err)
	}
	waitLeader(b, r)
	var batch []Task
	for i := range tasks {
		batch = append(batch, testTask("f1", "a1", fmt.Sprintf("t%d", i)))
	}
	mustApply(b, r, AddTasksType, AddTasksRequest{Tasks: batch})

	var next atomic.Uint64
	b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			n := next.Add(1)
			update := UpdateTaskStatusesRequest{Updates: []TaskStatusUpdate{
				statusUpdate("f1", fmt.Sprintf("t%d", n%tasks), testStatus(api.TaskRunning, int(n))),
			}}
			if _, err := r.Apply(ctx, UpdateTaskStatusesType, &update); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
}
