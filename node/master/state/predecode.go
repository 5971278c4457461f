package state

import (
	"runtime"
	"sync"
	"sync/atomic"
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
	entries map[uint64]*aheadEntry
}

// aheadEntry is a command decoded ahead: data is the entry's bytes it was decoded from
// (taken only for an entry with those very bytes), the result is set once done is closed.
type aheadEntry struct {
	data []byte
	decodedEntry
}

// predecode starts decoding the large commands among entries.
func (f *FSM) predecode(entries []*raft.Log) {
	var work []*aheadEntry
	for _, entry := range entries {
		if entry.Type != raft.LogCommand || len(entry.Data) < predecodeMin {
			continue
		}
		a := &aheadEntry{data: entry.Data, decodedEntry: decodedEntry{done: make(chan struct{})}}
		f.ahead.mu.Lock()
		if f.ahead.entries == nil {
			f.ahead.entries = map[uint64]*aheadEntry{}
		}
		// An entry stored again at an index (a follower's log truncated after a new
		// leader's) replaces what was decoded of the old one.
		f.ahead.entries[entry.Index] = a
		f.ahead.mu.Unlock()
		work = append(work, a)
	}
	if len(work) == 0 {
		return
	}
	var next atomic.Int64
	decode := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(work) {
				return
			}
			a := work[i]
			_, a.req, a.err = Decode(a.data)
			close(a.done)
		}
	}
	for range min(runtime.GOMAXPROCS(0), len(work)) {
		go decode()
	}
}

// takeAhead returns the entry's command decoded ahead, if it was, and forgets it and
// anything decoded ahead at lower indexes (entries dropped before they were applied).
func (f *FSM) takeAhead(entry *raft.Log) (*decodedEntry, bool) {
	f.ahead.mu.Lock()
	defer f.ahead.mu.Unlock()
	if len(f.ahead.entries) == 0 {
		return nil, false
	}
	a, ok := f.ahead.entries[entry.Index]
	for index := range f.ahead.entries {
		if index <= entry.Index {
			delete(f.ahead.entries, index)
		}
	}
	if !ok || !sameBytes(a.data, entry.Data) {
		return nil, false
	}
	return &a.decodedEntry, true
}

// forgetAhead drops everything decoded ahead (the state was replaced by a snapshot).
func (f *FSM) forgetAhead() {
	f.ahead.mu.Lock()
	clear(f.ahead.entries)
	f.ahead.mu.Unlock()
}

// sameBytes reports whether a and b are the same bytes in memory (not merely equal):
// the entry applied is the very one that was stored, not one read back or replaced.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && unsafe.SliceData(a) == unsafe.SliceData(b)
}
