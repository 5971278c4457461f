package state

import (
	"testing"
	"time"
)

// TestRemovedFrameworkStaysRemoved: an upsert written from a read made before the removal
// (a disconnect recorded after a TEARDOWN committed) does not bring the framework back.
func TestRemovedFrameworkStaysRemoved(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	fw := testFramework("fw")
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	stale := fw
	stale.Connected = false
	results := applyAll(t, fsm, 1,
		command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: fw}},
		command{RemoveFrameworkType, RemoveFrameworkRequest{FrameworkID: "fw", Time: at}},
		command{UpsertFrameworkType, UpsertFrameworkRequest{Framework: stale}},
	)
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	got, ok := fsm.Store().Framework("fw")
	if !ok || !got.Removed || !got.RemovedTime.Equal(at) {
		t.Fatalf("framework after a stale upsert: %+v (found %v), want it still removed at %v", got, ok, at)
	}
}
