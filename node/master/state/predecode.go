package state

import (
	"sync"
	"unsafe"

	"github.com/hashicorp/raft"
)

// predecodeMin is the size from which a command is decoded ahead (see predecodeStore):
// smaller ones decode in less time than handing them to another goroutine takes.
const predecodeMin = 16 << 10

// predecodeStore is the Raft log store with a head start for the state machine: the large
// commands it is given to store are decoded at once, on other goroutines, while they are
// written to disk (and, on the leader, replicated), and ApplyBatch takes the result rather
// than decoding them after the commit. A burst of launches (AddTasks commands of thousands
// of tasks) spends as long decoding as writing: this way the two overlap. Decoding depends
// on nothing but the entry's bytes, so every master still applies exactly the same.
type predecodeStore struct {
	raft.LogStore
	fsm *FSM
}

func (s *predecodeStore) StoreLog(entry *raft.Log) error {
	return s.StoreLogs([]*raft.Log{entry})
}

func (s *predecodeStore) StoreLogs(entries []*raft.Log) error {
	s.fsm.predecode(entries)
	return s.LogStore.StoreLogs(entries)
}

// predecoded are the commands being decoded ahead of their commit, by log index.
type predecoded struct {
	mu      sync.Mutex
	entries map[uint64]*decodedEntry
}

// predecode starts decoding the large commands among entries.
func (f *FSM) predecode(entries []*raft.Log) {
	var work []*decodedEntry
	for _, entry := range entries {
		if entry.Type != raft.LogCommand || len(entry.Data) < predecodeMin {
			continue
		}
		d := newDecodedEntry(entry)
		f.ahead.mu.Lock()
		if f.ahead.entries == nil {
			f.ahead.entries = map[uint64]*decodedEntry{}
		}
		// An entry stored again at an index (a follower's log truncated after a new
		// leader's) replaces what was decoded of the old one.
		f.ahead.entries[entry.Index] = d
		f.ahead.mu.Unlock()
		work = append(work, d)
	}
	decodeAll(work)
}

// takeAhead returns the entry's command decoded ahead, if it was from these very bytes
// (not merely equal ones: the entry applied is the one stored, not one read back or
// replaced), and forgets it and anything decoded ahead at lower indexes (entries dropped
// before they were applied).
func (f *FSM) takeAhead(entry *raft.Log) (*decodedEntry, bool) {
	f.ahead.mu.Lock()
	defer f.ahead.mu.Unlock()
	if len(f.ahead.entries) == 0 {
		return nil, false
	}
	d, ok := f.ahead.entries[entry.Index]
	for index := range f.ahead.entries {
		if index <= entry.Index {
			delete(f.ahead.entries, index)
		}
	}
	if !ok || len(d.data) != len(entry.Data) || unsafe.SliceData(d.data) != unsafe.SliceData(entry.Data) {
		return nil, false
	}
	return d, true
}

// forgetAhead drops everything decoded ahead (the state was replaced by a snapshot).
func (f *FSM) forgetAhead() {
	f.ahead.mu.Lock()
	clear(f.ahead.entries)
	f.ahead.mu.Unlock()
}
