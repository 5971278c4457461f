package master_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

// patient keeps recovered agents and frameworks in place for the length of a test, so
// that states compare equal before and after a restore.
func patient(c *master.Config) {
	c.AgentTimeout = time.Hour
	c.LeaderChangeGrace = time.Hour
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// populate writes an agent, a live and a removed framework, a running and a finished task
// through Raft, their ids prefixed, and returns the index of the last write.
func populate(t testing.TB, ts *master.TestServer, prefix string) uint64 {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	agentID, live, gone := prefix+"agent", prefix+"fw", prefix+"gone"
	cpus := func(v float64) []api.Resource { return []api.Resource{scalar("cpus", v), scalar("mem", 64*v)} }
	status := func(task string, st api.TaskState, n int) state.TaskStatusUpdate {
		return state.TaskStatusUpdate{FrameworkID: live, TaskID: task, Status: api.TaskStatus{
			TaskID: api.TaskID{Value: task}, State: st, Source: api.SourceExecutor,
			AgentID: &api.AgentID{Value: agentID}, Timestamp: float64(at.Unix() + int64(n)), UUID: []byte{byte(n)}}}
	}
	commands := []struct {
		typ state.MessageType
		req any
	}{
		{state.RegisterAgentType, state.RegisterAgentRequest{Agent: state.Agent{ID: agentID, HTTPAddress: "127.0.0.1:5051",
			Info: api.AgentInfo{Hostname: prefix + "host", Port: 5051, Resources: cpus(4)}, RegisteredTime: at}}},
		// Disconnected: a restored master has no stream for it and records it so.
		{state.UpsertFrameworkType, state.UpsertFrameworkRequest{Framework: state.Framework{ID: live, RegisteredTime: at,
			Info: api.FrameworkInfo{User: "root", Name: prefix + "marathon", FailoverTimeout: 3600}}}},
		{state.UpsertFrameworkType, state.UpsertFrameworkRequest{Framework: state.Framework{ID: gone, RegisteredTime: at,
			Info: api.FrameworkInfo{User: "root", Name: prefix + "spark"}}}},
		{state.RemoveFrameworkType, state.RemoveFrameworkRequest{FrameworkID: gone, Time: at.Add(time.Minute)}},
		{state.AddTasksType, state.AddTasksRequest{Tasks: []state.Task{
			{FrameworkID: live, AgentID: agentID, ID: prefix + "web", Info: api.TaskInfo{Name: "web", Resources: cpus(1)}, LaunchedTime: at},
			{FrameworkID: live, AgentID: agentID, ID: prefix + "batch", Info: api.TaskInfo{Name: "batch", Resources: cpus(0.5)}, LaunchedTime: at},
		}}},
		{state.UpdateTaskStatusesType, state.UpdateTaskStatusesRequest{Updates: []state.TaskStatusUpdate{
			status(prefix+"web", api.TaskRunning, 1), status(prefix+"batch", api.TaskRunning, 2), status(prefix+"batch", api.TaskFinished, 3),
		}}},
	}
	var index uint64
	for _, c := range commands {
		resp, err := ts.Raft().Apply(testContext(t), c.typ, c.req)
		if err != nil {
			t.Fatalf("apply %s: %v", c.typ, err)
		}
		index = resp.(*state.ApplyResult).Index
	}
	return index
}

// getState returns the master's GET_STATE answer as JSON.
func getState(t testing.TB, ts *master.TestServer) string {
	t.Helper()
	st, err := api.NewClient(ts.URL).GetState(testContext(t))
	if err != nil {
		t.Fatalf("GET_STATE: %v", err)
	}
	data, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// storeJSON returns a master's own replica of the records, whichever master it is.
func storeJSON(t testing.TB, ts *master.TestServer) string {
	t.Helper()
	store := ts.Store()
	data, err := json.Marshal(map[string]any{
		"agents": store.Agents(), "frameworks": store.Frameworks(), "tasks": store.Tasks(), "completed": store.CompletedTasks(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// saveSnapshot takes a snapshot archive from ts.
func saveSnapshot(t testing.TB, ts *master.TestServer) ([]byte, *api.SnapshotMeta) {
	t.Helper()
	var archive bytes.Buffer
	meta, err := api.NewClient(ts.URL).SaveSnapshot(testContext(t), &archive)
	if err != nil {
		t.Fatalf("save snapshot: %v", err)
	}
	return archive.Bytes(), meta
}

// waitClosed waits until the framework's event stream ends.
func (f *framework) waitClosed() {
	f.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-f.events:
			if !ok {
				return
			}
		case <-deadline:
			f.t.Fatalf("framework stream still open after %v", waitTimeout)
		}
	}
}

// raw sends a request without following redirects and returns status, Location and body.
func raw(t testing.TB, method, url, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(data)
}

// TestRaftPeersOnEveryMaster: every master lists the three voters and the one leader, and
// knows its own state first hand.
func TestRaftPeersOnEveryMaster(t *testing.T) {
	c := master.NewTestCluster(t, 3)
	leader := c.Leader()
	for _, ts := range c.Servers {
		peers, err := api.NewClient(ts.URL).RaftPeers(testContext(t))
		if err != nil {
			t.Fatalf("%s: %v", ts.ID(), err)
		}
		want := &api.RaftPeers{LeaderID: leader.ID(), Term: leader.Raft().CurrentTerm(), LastIndex: peers.LastIndex, AnsweredBy: ts.ID()}
		for _, member := range c.Servers {
			st := api.RaftFollower
			if member == leader {
				st = api.RaftLeader
			}
			want.Servers = append(want.Servers, api.RaftServer{ID: member.ID(), Address: string(member.Raft().Addr()),
				Suffrage: api.RaftVoter, Leader: member == leader, State: st})
		}
		if !reflect.DeepEqual(peers, want) {
			t.Errorf("peers on %s:\n%+v\nwant\n%+v", ts.ID(), peers, want)
		}
		if peers.LastIndex < 1 { // the bootstrap configuration at least; followers may lag
			t.Errorf("peers on %s: last index %d", ts.ID(), peers.LastIndex)
		}
	}
}

// TestRaftRemovePeer: a dead follower is removed from the leader (reached through the other
// follower's 307), but not the leader itself, not a live follower while another is dead,
// and nothing on bad requests.
func TestRaftRemovePeer(t *testing.T) {
	c := master.NewTestCluster(t, 3)
	leader := c.Leader()
	followers := c.Followers()
	live, dead := followers[0], followers[1]
	removeURL := func(ts *master.TestServer) string { return ts.URL + api.RaftRemovePeerPath }
	body := func(id string) string { return fmt.Sprintf(`{"id":%q}`, id) }

	tests := []struct {
		name       string
		url, body  string
		wantStatus int
		wantBody   string
	}{
		{"no id", removeURL(leader), `{}`, http.StatusBadRequest, "invalid request: expecting 'id' to be present\n"},
		{"not json", removeURL(leader), `{"id":`, http.StatusBadRequest, "failed to parse body into JSON: unexpected EOF\n"},
		{"unknown", removeURL(leader), body("master-9"), http.StatusNotFound,
			"server \"master-9\" is not in the raft configuration (see `atoll operator raft list-peers`)\n"},
		{"leader", removeURL(leader), body(leader.ID()), http.StatusConflict,
			fmt.Sprintf("refusing to remove %s: it is the leader. Stop it, and remove it on the master elected next if it is not coming back\n", leader.ID())},
		{"on a follower", removeURL(live), body(dead.ID()), http.StatusTemporaryRedirect, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, location, got := raw(t, http.MethodPost, tt.url, tt.body)
			if status != tt.wantStatus || got != tt.wantBody {
				t.Fatalf("answer %d %q, want %d %q", status, got, tt.wantStatus, tt.wantBody)
			}
			if status == http.StatusTemporaryRedirect && location != removeURL(leader) {
				t.Fatalf("redirect to %q, want %q", location, removeURL(leader))
			}
		})
	}

	dead.Stop()
	eventually(t, "leader sees the stopped follower unreachable", func() error {
		peers, err := api.NewClient(leader.URL).RaftPeers(context.Background())
		if err != nil {
			return err
		}
		for _, s := range peers.Servers {
			if s.ID == dead.ID() && s.State != api.RaftUnreachable {
				return fmt.Errorf("%s is %s", s.ID, s.State)
			}
		}
		return nil
	})
	status, _, got := raw(t, http.MethodPost, removeURL(leader), body(live.ID()))
	want := fmt.Sprintf("refusing to remove %s: 2 voters would remain, of which only 1 answer the leader (%s do not), short of the 2 a quorum needs. Bring them back, or remove them first\n", live.ID(), dead.ID())
	if status != http.StatusConflict || got != want {
		t.Fatalf("removing a live follower while another is dead: %d %q, want 409 %q", status, got, want)
	}

	peers, err := api.NewClient(live.URL).RaftRemovePeer(testContext(t), dead.ID())
	if err != nil {
		t.Fatalf("remove the dead follower: %v", err)
	}
	wantIDs := []string{leader.ID(), live.ID()}
	slices.Sort(wantIDs)
	serverIDs := func(peers *api.RaftPeers) []string {
		var ids []string
		for _, s := range peers.Servers {
			ids = append(ids, s.ID)
		}
		return ids
	}
	if got := serverIDs(peers); !slices.Equal(got, wantIDs) {
		t.Fatalf("after the removal the leader lists %q, want %q", got, wantIDs)
	}
	eventually(t, live.ID()+" lists two servers", func() error {
		peers, err := api.NewClient(live.URL).RaftPeers(context.Background())
		if err != nil {
			return err
		}
		if got := serverIDs(peers); !slices.Equal(got, wantIDs) {
			return fmt.Errorf("servers %q, want %q", got, wantIDs)
		}
		return nil
	})
	// Two of two voters answer: the cluster still commits.
	populate(t, leader, "after-")
}

// TestSnapshotSaveRestore: a snapshot of one master, restored into another, replaces all
// that master had with exactly the first one's state, and the restored master goes on.
func TestSnapshotSaveRestore(t *testing.T) {
	source := master.NewTestServer(t, patient)
	lastWrite := populate(t, source, "")
	want, wantStore := getState(t, source), storeJSON(t, source)
	archive, meta := saveSnapshot(t, source)
	if meta.Master != source.ID() || meta.Index < lastWrite || meta.Term != source.Raft().CurrentTerm() || meta.Size <= 0 {
		t.Errorf("snapshot meta %+v: want master %s, index ≥ %d, term %d", meta, source.ID(), lastWrite, source.Raft().CurrentTerm())
	}

	target := master.NewTestServer(t, patient)
	populate(t, target, "replaced-")
	connected := subscribe(t, target.URL, frameworkInfo("replaced-framework"))
	restored, err := api.NewClient(target.URL).RestoreSnapshot(testContext(t), bytes.NewReader(archive))
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if *restored != *meta {
		t.Errorf("restore answered %+v, want %+v", *restored, *meta)
	}
	if got := getState(t, target); got != want {
		t.Errorf("GET_STATE after restore:\n%s\nwant:\n%s", got, want)
	}
	if got := storeJSON(t, target); got != wantStore {
		t.Errorf("store after restore:\n%s\nwant:\n%s", got, wantStore)
	}
	if !target.IsLeader() {
		t.Fatalf("target no longer leads after the restore")
	}
	// The leader rebuilt its sessions from the restored state: the stream is gone.
	connected.waitClosed()
	populate(t, target, "after-")
	if _, ok := target.Store().Agent("after-agent"); !ok {
		t.Errorf("a write after the restore is missing")
	}
}

// TestSnapshotRestoreThroughFollower: a restore sent to a follower reaches the leader (307,
// with 100-continue) and every master's replica becomes the snapshot's state.
func TestSnapshotRestoreThroughFollower(t *testing.T) {
	source := master.NewTestServer(t, patient)
	populate(t, source, "")
	want := storeJSON(t, source)
	archive, _ := saveSnapshot(t, source)

	c := master.NewTestCluster(t, 3, patient)
	populate(t, c.Leader(), "replaced-")
	if _, err := api.NewClient(c.Followers()[0].URL).RestoreSnapshot(testContext(t), bytes.NewReader(archive)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for _, ts := range c.Servers {
		eventually(t, ts.ID()+" holds the restored state", func() error {
			if got := storeJSON(t, ts); got != want {
				return fmt.Errorf("store %s", got)
			}
			return nil
		})
	}
	// A follower's snapshot is a snapshot of the same state.
	fromFollower, meta := saveSnapshot(t, c.Followers()[1])
	if meta.Master != c.Followers()[1].ID() || len(fromFollower) == 0 {
		t.Errorf("follower's snapshot meta %+v", meta)
	}
}

// TestSnapshotRestoreRejectsBadArchives: whatever is wrong with an archive, the answer is
// 400 saying what, and the state stays as it was.
func TestSnapshotRestoreRejectsBadArchives(t *testing.T) {
	source := master.NewTestServer(t, patient)
	populate(t, source, "")
	archive, meta := saveSnapshot(t, source)
	flipped := bytes.Clone(archive)
	flipped[len(flipped)/2] ^= 0x40
	archiveOf := func(raftVersion int, state string) string {
		m := *meta
		m.RaftVersion, m.Size = raftVersion, int64(len(state))
		var buf bytes.Buffer
		if err := api.WriteSnapshot(&buf, m, strings.NewReader(state)); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}

	target := master.NewTestServer(t, patient)
	populate(t, target, "kept-")
	before := getState(t, target)
	tests := []struct {
		name, body, wantPrefix string
	}{
		{"empty", "", "bad snapshot archive: not gzip-compressed: EOF"},
		{"wrong format", `{"version":1,"last_index":7}`, "bad snapshot archive: not gzip-compressed: gzip: invalid header"},
		{"truncated", string(archive[:len(archive)/2]), "bad snapshot archive: "},
		{"flipped byte", string(flipped), "bad snapshot archive: "},
		{"state not the fsm's", archiveOf(1, "PK\x03\x04"), "restore snapshot: invalid snapshot: read header: invalid character 'P'"},
		{"raft version", archiveOf(9, `{"version":1,"last_index":7}`), "restore snapshot: invalid snapshot: raft snapshot version 9, this build reads 0 to 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, got := raw(t, http.MethodPost, target.URL+api.RaftSnapshotPath, tt.body)
			if status != http.StatusBadRequest || !strings.HasPrefix(got, tt.wantPrefix) || !strings.HasSuffix(got, "; the cluster's state is unchanged\n") {
				t.Fatalf("answer %d %q, want 400 starting %q", status, got, tt.wantPrefix)
			}
			if after := getState(t, target); after != before {
				t.Fatalf("state changed:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}
