// Package state is the master's replicated state: the Raft FSM, its commands and snapshots,
// and the indexed in-memory store (go-memdb) of agents, frameworks and tasks that every
// master reads.
package state

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/atoll/atoll/api"
	"github.com/hashicorp/raft"
)

// FSMConfig configures an FSM. The bounds must be the same on every master: they decide
// which history records a snapshot carries.
type FSMConfig struct {
	// Logger receives the FSM's own logs; nil discards them.
	Logger *slog.Logger
	// MaxCompletedTasks bounds the completed-task ring, shared by all frameworks. Default
	// 1000 (what Mesos keeps per framework): enough history for GET_TASKS and debugging,
	// while memory stays flat however many frameworks and short tasks run.
	MaxCompletedTasks int
	// MaxCompletedFrameworks bounds how many removed frameworks are kept. Default 50, as
	// Mesos's --max_completed_frameworks.
	MaxCompletedFrameworks int
}

// DefaultFSMConfig returns the configuration every master uses unless told otherwise.
func DefaultFSMConfig() FSMConfig {
	return FSMConfig{MaxCompletedTasks: 1000, MaxCompletedFrameworks: 50}
}

// Validate reports the first invalid field.
func (c FSMConfig) Validate() error {
	if c.MaxCompletedTasks < 1 {
		return fmt.Errorf("fsm config: MaxCompletedTasks is %d, want at least 1", c.MaxCompletedTasks)
	}
	if c.MaxCompletedFrameworks < 1 {
		return fmt.Errorf("fsm config: MaxCompletedFrameworks is %d, want at least 1", c.MaxCompletedFrameworks)
	}
	return nil
}

// ErrNotFound is wrapped in an ApplyResult.Err when a command names an agent or framework
// the store does not hold.
var ErrNotFound = errors.New("not found")

// ChangeKind says what a Change did.
type ChangeKind uint8

// Change kinds.
const (
	AgentAdded ChangeKind = iota + 1
	AgentUpdated
	AgentRemoved
	FrameworkAdded
	FrameworkUpdated
	// FrameworkRemoved carries the framework marked Removed.
	FrameworkRemoved
	// TaskAdded carries a new task (already in the completed ring if its state is terminal).
	TaskAdded
	// TaskUpdated carries the task after a status update, and the status. A terminal state
	// means the task has moved to the completed ring.
	TaskUpdated
	// TaskRemoved carries a task that left the live set without a terminal status update:
	// by RemoveTasks, or with its framework or agent.
	TaskRemoved
	// Restored says the whole store was replaced from a snapshot: subscribers must resync.
	Restored
	// KVWritten carries a key-value entry as written.
	KVWritten
	// KVDeleted carries a key-value entry as it was before it was deleted.
	KVDeleted
)

var changeKindNames = [...]string{
	AgentAdded:       "AgentAdded",
	AgentUpdated:     "AgentUpdated",
	AgentRemoved:     "AgentRemoved",
	FrameworkAdded:   "FrameworkAdded",
	FrameworkUpdated: "FrameworkUpdated",
	FrameworkRemoved: "FrameworkRemoved",
	TaskAdded:        "TaskAdded",
	TaskUpdated:      "TaskUpdated",
	TaskRemoved:      "TaskRemoved",
	Restored:         "Restored",
	KVWritten:        "KVWritten",
	KVDeleted:        "KVDeleted",
}

func (k ChangeKind) String() string {
	if int(k) < len(changeKindNames) && changeKindNames[k] != "" {
		return changeKindNames[k]
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// Change is one applied change to the store. The record pointers are the store's own
// read-only records; only the ones the kind names are set.
type Change struct {
	Kind      ChangeKind
	Agent     *Agent
	Framework *Framework
	Task      *Task
	// Status is the status that a TaskUpdated applied, as stored (without Data).
	Status *api.TaskStatus
	// KV is the entry a KVWritten or KVDeleted names.
	KV *KVEntry
	// Index is the Raft index of the command (or of the snapshot, for Restored).
	Index uint64
}

// ApplyResult is what FSM.Apply returns for every entry, as a *ApplyResult: the master
// reads it from raft.ApplyFuture.Response (Raft.Apply does that for it).
type ApplyResult struct {
	// Index is the entry's Raft index.
	Index uint64
	// Err says why the command changed nothing: it wraps ErrBadCommand or ErrNotFound.
	Err error
	// Skipped lists the tasks that AddTasks found already live, or that UpdateTaskStatuses
	// or RemoveTasks found not live. The rest of the command was applied.
	Skipped []TaskKey
}

// FSM applies committed commands to its Store. Raft calls Apply, Snapshot and Restore from
// one goroutine (ApplyBatch instead of Apply: FSM is a raft.BatchingFSM); Store reads and
// OnChange are safe from any goroutine.
type FSM struct {
	logger *slog.Logger
	cfg    FSMConfig
	store  *Store

	observersMu sync.Mutex
	observers   []func(Change)

	// ahead holds the commands decoded ahead of their commit (predecodeStore).
	ahead predecoded
}

var _ raft.BatchingFSM = (*FSM)(nil)

// NewFSM returns an FSM over an empty store with DefaultFSMConfig.
func NewFSM(logger *slog.Logger) *FSM {
	cfg := DefaultFSMConfig()
	cfg.Logger = logger
	return newFSM(cfg)
}

// NewFSMWithConfig returns an FSM over an empty store.
func NewFSMWithConfig(cfg FSMConfig) (*FSM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newFSM(cfg), nil
}

func newFSM(cfg FSMConfig) *FSM {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FSM{logger: logger, cfg: cfg, store: newStore()}
}

// Store returns the store the FSM writes.
func (f *FSM) Store() *Store { return f.store }

// OnChange registers fn to be called for each applied change, on every master, in log
// order, on Raft's FSM goroutine and without any store lock held. The calls for a command
// come after its transaction committed: the store already reflects the whole command, and
// possibly the rest of its batch. fn must return quickly and must not wait for Raft (no
// Raft.Apply): the FSM waits for it. Register observers before opening Raft so that none
// misses the changes replayed at start.
func (f *FSM) OnChange(fn func(Change)) {
	f.observersMu.Lock()
	defer f.observersMu.Unlock()
	// A fresh backing array, so notify can range over the old slice without the lock.
	f.observers = append(f.observers[:len(f.observers):len(f.observers)], fn)
}

func (f *FSM) notify(changes []Change) {
	if len(changes) == 0 {
		return
	}
	f.observersMu.Lock()
	observers := f.observers
	f.observersMu.Unlock()
	for _, change := range changes {
		for _, fn := range observers {
			fn(change)
		}
	}
}

// Apply applies one committed command in its own transaction and returns its
// *ApplyResult. A command is applied whole or not at all: a malformed or rejected one
// changes nothing but the last index.
func (f *FSM) Apply(entry *raft.Log) any {
	return f.applyAlone(entry)
}

// ApplyBatch applies the commands among a batch of committed entries (Raft batches what is
// submitted concurrently) in one transaction, which costs far less than one each. If any
// command is rejected, the transaction is dropped and each entry is applied alone, so that
// a rejected command never leaves part of itself behind. Other entries get a nil response.
func (f *FSM) ApplyBatch(entries []*raft.Log) []any {
	responses := make([]any, len(entries))
	decoded := f.decodeBatch(entries)
	w := f.newWriter()
	for i, entry := range entries {
		if entry.Type != raft.LogCommand {
			continue
		}
		result := &ApplyResult{Index: entry.Index}
		<-decoded[i].done
		req, err := decoded[i].req, decoded[i].err
		if err == nil {
			w.index, w.result = entry.Index, result
			err = w.apply(req)
		}
		if err != nil {
			w.txn.Abort()
			return f.applyEach(entries)
		}
		responses[i] = result
	}
	if w.index == 0 {
		w.txn.Abort()
		return responses
	}
	if err := w.setLastIndex(); err != nil {
		w.txn.Abort()
		return f.applyEach(entries)
	}
	w.txn.Commit()
	f.notify(w.changes)
	return responses
}

// decodedEntry is a command being decoded: data is the entry's bytes (nil for an entry
// that is not a command), and req and err are set once done is closed.
type decodedEntry struct {
	data []byte
	req  any
	err  error
	done chan struct{}
}

func newDecodedEntry(entry *raft.Log) *decodedEntry {
	d := &decodedEntry{done: make(chan struct{})}
	if entry.Type == raft.LogCommand {
		d.data = entry.Data
	}
	return d
}

// decode decodes the command, if it is one, and closes done.
func (d *decodedEntry) decode() {
	if d.data != nil {
		_, d.req, d.err = Decode(d.data)
	}
	close(d.done)
}

// decodeAll decodes the entries on up to GOMAXPROCS goroutines, in their order, so that
// the first can be used while the others are decoded. It returns at once.
func decodeAll(work []*decodedEntry) {
	var next atomic.Int64
	decode := func() {
		for {
			k := int(next.Add(1)) - 1
			if k >= len(work) {
				return
			}
			work[k].decode()
		}
	}
	for range min(runtime.GOMAXPROCS(0), len(work)) {
		go decode()
	}
}

// decodeBatch decodes the commands of a batch (decodeAll): decoding (JSON) is most of
// the cost of applying, and a burst of launches comes as a batch of large AddTasks
// commands. Commands decoded ahead (predecodeStore) are taken as they are. Decoding
// depends on nothing but the entry, so every master still applies the same. A batch of
// one is decoded at once.
func (f *FSM) decodeBatch(entries []*raft.Log) []*decodedEntry {
	decoded := make([]*decodedEntry, len(entries))
	var todo []*decodedEntry
	for i, entry := range entries {
		if entry.Type == raft.LogCommand {
			if d, ok := f.takeAhead(entry); ok {
				decoded[i] = d
				continue
			}
		}
		decoded[i] = newDecodedEntry(entry)
		todo = append(todo, decoded[i])
	}
	if len(todo) == 1 {
		todo[0].decode()
	} else {
		decodeAll(todo)
	}
	return decoded
}

func (f *FSM) applyEach(entries []*raft.Log) []any {
	responses := make([]any, len(entries))
	for i, entry := range entries {
		if entry.Type == raft.LogCommand {
			responses[i] = f.applyAlone(entry)
		}
	}
	return responses
}

func (f *FSM) applyAlone(entry *raft.Log) *ApplyResult {
	result := &ApplyResult{Index: entry.Index}
	t, req, err := Decode(entry.Data)
	if err != nil {
		// Only a defect or a newer master's command type gets here: worth an operator's eye.
		f.logger.Error("raft entry not applied", "index", entry.Index, "error", err)
		result.Err = err
		f.commitIndexOnly(entry.Index)
		return result
	}
	w := f.newWriter()
	w.index, w.result = entry.Index, result
	if err := w.apply(req); err != nil {
		w.txn.Abort()
		result.Err = fmt.Errorf("%s: %w", t, err)
		result.Skipped = nil
		f.logger.Debug("raft command rejected", "index", entry.Index, "error", result.Err)
		f.commitIndexOnly(entry.Index)
		return result
	}
	if err := w.setLastIndex(); err != nil {
		w.txn.Abort()
		result.Err = fmt.Errorf("%s: %w", t, err)
		return result
	}
	w.txn.Commit()
	f.notify(w.changes)
	return result
}

// commitIndexOnly records that entry index was applied without changing anything else.
func (f *FSM) commitIndexOnly(index uint64) {
	w := f.newWriter()
	w.index = index
	if err := w.setLastIndex(); err != nil {
		w.txn.Abort()
		f.logger.Error("recording applied index", "index", index, "error", err)
		return
	}
	w.txn.Commit()
}
