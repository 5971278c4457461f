package state

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestRaftOpenAndRestoreSnapshot: a snapshot Raft takes on request reads back as the
// store's contents, and RestoreSnapshot installs one through Raft in place of everything
// the member held.
func TestRaftOpenAndRestoreSnapshot(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	r := openTestRaft(t, t.TempDir(), "127.0.0.1:0", fsm)
	if err := r.BootstrapSelf(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, r)
	mustApply(t, r, RegisterAgentType, RegisterAgentRequest{Agent: testAgent("replaced")})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	meta, snapshot, err := r.OpenSnapshot(ctx)
	if err != nil {
		t.Fatalf("open snapshot: %v", err)
	}
	data, err := io.ReadAll(snapshot)
	snapshot.Close()
	if err != nil {
		t.Fatal(err)
	}
	if meta.Index != r.AppliedIndex() || meta.Size != int64(len(data)) {
		t.Errorf("snapshot meta index %d size %d, want %d and %d", meta.Index, meta.Size, r.AppliedIndex(), len(data))
	}
	check := NewFSM(testLogger(t))
	if err := check.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("the snapshot does not restore: %v", err)
	}
	assertContents(t, dump(check.Store()), dump(fsm.Store()))

	source := populatedFSM(t, DefaultFSMConfig())
	want := dump(source.Store())
	state := persist(t, source)
	restoreMeta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: 7, Term: 1, Size: int64(len(state))}
	if err := r.RestoreSnapshot(ctx, restoreMeta, bytes.NewReader(state)); err != nil {
		t.Fatalf("restore snapshot: %v", err)
	}
	assertContents(t, dump(fsm.Store()), want)
	// The member goes on applying after the restore.
	mustApply(t, r, RegisterAgentType, RegisterAgentRequest{Agent: testAgent("after")})
	if _, ok := fsm.Store().Agent("after"); !ok {
		t.Errorf("agent applied after the restore is missing")
	}
}

// TestRaftRestoreSnapshotRejectsWhatTheFSMWouldNot: a snapshot the FSM would refuse never
// reaches Raft (whose FSM failure would panic) and leaves the state as it was.
func TestRaftRestoreSnapshotRejectsWhatTheFSMWouldNot(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	r := openTestRaft(t, t.TempDir(), "127.0.0.1:0", fsm)
	if err := r.BootstrapSelf(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, r)
	mustApply(t, r, RegisterAgentType, RegisterAgentRequest{Agent: testAgent("kept")})
	want := dump(fsm.Store())
	good := string(persist(t, populatedFSM(t, DefaultFSMConfig())))
	header, _, _ := strings.Cut(good, "\n")

	tests := []struct {
		name    string
		version raft.SnapshotVersion
		data    string
		wantErr string
	}{
		{"raft version", 7, good, "restore snapshot: invalid snapshot: raft snapshot version 7, this build reads 0 to 1"},
		{"not json", 1, "PK\x03\x04", "restore snapshot: invalid snapshot: read header: invalid character 'P' looking for beginning of value"},
		{"fsm version", 1, `{"version":2,"last_index":1}`, "restore snapshot: invalid snapshot: snapshot version 2, want 1"},
		{"bad record", 1, header + "\n" + `{"agent":{"id":""}}`, "restore snapshot: invalid snapshot: record 1: insert into agents: object missing primary index"},
		{"truncated", 1, good[:len(good)-20], "restore snapshot: invalid snapshot: read record 12: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := &raft.SnapshotMeta{Version: tt.version, Index: 7, Term: 1, Size: int64(len(tt.data))}
			err := r.RestoreSnapshot(context.Background(), meta, strings.NewReader(tt.data))
			if !errors.Is(err, ErrInvalidSnapshot) || err.Error() != tt.wantErr {
				t.Errorf("error %v, want %q wrapping ErrInvalidSnapshot", err, tt.wantErr)
			}
			assertContents(t, dump(fsm.Store()), want)
		})
	}
}

// TestRaftUnreachableOnlyOnLeader: a member that does not lead reports no unreachable
// peers (it sends no heartbeats), whatever it observed while it led.
func TestRaftUnreachableOnlyOnLeader(t *testing.T) {
	r := openTestRaft(t, t.TempDir(), "127.0.0.1:0", NewFSM(testLogger(t)))
	r.contacts.observe(&raft.Observation{Raft: r.Raft, Data: raft.FailedHeartbeatObservation{PeerID: "gone"}})
	if got := r.Unreachable(); len(got) != 0 {
		t.Errorf("unreachable on a follower: %v, want none", got)
	}
	if err := r.BootstrapSelf(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, r)
	lastContact := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	steps := []struct {
		observation any
		want        map[raft.ServerID]time.Time
	}{
		{raft.FailedHeartbeatObservation{PeerID: "b", LastContact: lastContact}, map[raft.ServerID]time.Time{"b": lastContact}},
		{raft.FailedHeartbeatObservation{PeerID: "c"}, map[raft.ServerID]time.Time{"b": lastContact, "c": {}}},
		{raft.ResumedHeartbeatObservation{PeerID: "b"}, map[raft.ServerID]time.Time{"c": {}}},
		{raft.PeerObservation{Removed: true, Peer: raft.Server{ID: "c"}}, map[raft.ServerID]time.Time{}},
		{raft.FailedHeartbeatObservation{PeerID: "d"}, map[raft.ServerID]time.Time{"d": {}}},
		{raft.Follower, map[raft.ServerID]time.Time{}},
	}
	for i, step := range steps {
		if passed := r.contacts.observe(&raft.Observation{Raft: r.Raft, Data: step.observation}); passed {
			t.Fatalf("step %d: the observation was passed on", i)
		}
		got := r.Unreachable()
		if len(got) != len(step.want) {
			t.Fatalf("step %d (%T): unreachable %v, want %v", i, step.observation, got, step.want)
		}
		for id, at := range step.want {
			if got[id] != at {
				t.Fatalf("step %d (%T): unreachable %v, want %v", i, step.observation, got, step.want)
			}
		}
	}
}
