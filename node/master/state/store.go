package state

import (
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
)

// Store is the indexed in-memory state that the FSM writes and every part of the master
// reads. Reads are lock-free and each sees one consistent point in time; methods are safe
// for concurrent use.
//
// Records are returned as the store's own pointers, shared with every other reader and
// with later versions of the store (and with each other: consecutive task statuses share
// equal sub-values). Callers must treat them, and every slice and pointer inside them, as
// read-only; to change a record, copy it and submit the copy in a command.
type Store struct {
	// db is replaced whole when a snapshot is restored.
	db atomic.Pointer[memdb.MemDB]
}

func newStore() *Store {
	s := &Store{}
	s.db.Store(newMemDB())
	return s
}

// newMemDB returns an empty database. The schema is a constant of this package, so an
// error here is a defect that every test would hit, not a condition to handle.
func newMemDB() *memdb.MemDB {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic(fmt.Sprintf("state: invalid memdb schema: %v", err))
	}
	return db
}

// Snapshot returns a read-only view of the store at the current point in time. It stays
// consistent however long it is held; holding it keeps that version's records alive.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{txn: s.db.Load().Txn(false)}
}

// Agent returns the agent with the given id.
func (s *Store) Agent(id string) (*Agent, bool) { return s.Snapshot().Agent(id) }

// Agents returns every agent, ordered by id.
func (s *Store) Agents() []*Agent { return s.Snapshot().Agents() }

// Framework returns the framework with the given id, removed or not.
func (s *Store) Framework(id string) (*Framework, bool) { return s.Snapshot().Framework(id) }

// Frameworks returns every framework, ordered by id, including removed ones (Removed set).
func (s *Store) Frameworks() []*Framework { return s.Snapshot().Frameworks() }

// Task returns the live task with the given key.
func (s *Store) Task(frameworkID, taskID string) (*Task, bool) {
	return s.Snapshot().Task(frameworkID, taskID)
}

// Tasks returns every live task, ordered by framework id, then task id.
func (s *Store) Tasks() []*Task { return s.Snapshot().Tasks() }

// TasksByAgent returns the live tasks on one agent.
func (s *Store) TasksByAgent(agentID string) []*Task { return s.Snapshot().TasksByAgent(agentID) }

// TasksByFramework returns the live tasks of one framework.
func (s *Store) TasksByFramework(frameworkID string) []*Task {
	return s.Snapshot().TasksByFramework(frameworkID)
}

// CompletedTasks returns the completed ring, oldest first.
func (s *Store) CompletedTasks() []*Task { return s.Snapshot().CompletedTasks() }

// CompletedTasksByFramework returns one framework's tasks in the completed ring, oldest
// first.
func (s *Store) CompletedTasksByFramework(frameworkID string) []*Task {
	return s.Snapshot().CompletedTasksByFramework(frameworkID)
}

// LastIndex returns the Raft index of the last command applied (0 for an empty store).
func (s *Store) LastIndex() uint64 { return s.Snapshot().LastIndex() }

// Snapshot is a read-only view of the store at one point in time, for reads that must agree
// with each other (GET_STATE, /master/state). Its methods are those of Store.
type Snapshot struct {
	txn *memdb.Txn
}

// Agent returns the agent with the given id.
func (s *Snapshot) Agent(id string) (*Agent, bool) {
	return first[*Agent](s.txn, tableAgents, indexID, id)
}

// Agents returns every agent, ordered by id.
func (s *Snapshot) Agents() []*Agent {
	return all[*Agent](s.txn, tableAgents, indexID)
}

// Framework returns the framework with the given id, removed or not.
func (s *Snapshot) Framework(id string) (*Framework, bool) {
	return first[*Framework](s.txn, tableFrameworks, indexID, id)
}

// Frameworks returns every framework, ordered by id, including removed ones.
func (s *Snapshot) Frameworks() []*Framework {
	return all[*Framework](s.txn, tableFrameworks, indexID)
}

// Task returns the live task with the given key.
func (s *Snapshot) Task(frameworkID, taskID string) (*Task, bool) {
	return first[*Task](s.txn, tableTasks, indexID, TaskKey{FrameworkID: frameworkID, TaskID: taskID})
}

// Tasks returns every live task, ordered by framework id, then task id.
func (s *Snapshot) Tasks() []*Task {
	return all[*Task](s.txn, tableTasks, indexID)
}

// TasksByAgent returns the live tasks on one agent.
func (s *Snapshot) TasksByAgent(agentID string) []*Task {
	return all[*Task](s.txn, tableTasks, indexAgent, agentID)
}

// TasksByFramework returns the live tasks of one framework.
func (s *Snapshot) TasksByFramework(frameworkID string) []*Task {
	return all[*Task](s.txn, tableTasks, indexFramework, frameworkID)
}

// CompletedTasks returns the completed ring, oldest first.
func (s *Snapshot) CompletedTasks() []*Task {
	return completedTasks(all[*completedTask](s.txn, tableCompleted, indexID))
}

// CompletedTasksByFramework returns one framework's tasks in the completed ring, oldest
// first.
func (s *Snapshot) CompletedTasksByFramework(frameworkID string) []*Task {
	return completedTasks(all[*completedTask](s.txn, tableCompleted, indexFramework, frameworkID))
}

// LastIndex returns the Raft index of the last command applied (0 for an empty store).
func (s *Snapshot) LastIndex() uint64 {
	m, ok := first[*meta](s.txn, tableMeta, indexID)
	if !ok {
		return 0
	}
	return m.LastIndex
}

func completedTasks(ring []*completedTask) []*Task {
	if len(ring) == 0 {
		return nil
	}
	tasks := make([]*Task, len(ring))
	for i, c := range ring {
		tasks[i] = c.Task
	}
	return tasks
}

// first returns the first record matching a lookup. Lookups only fail for an unknown table
// or index or a mistyped argument, all fixed in this package's code: that is a defect.
func first[T any](txn *memdb.Txn, table, index string, args ...any) (T, bool) {
	obj, err := txn.First(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("state: lookup %s.%s: %v", table, index, err))
	}
	record, ok := obj.(T)
	return record, ok
}

// last returns the last record matching a lookup (see first about errors).
func last[T any](txn *memdb.Txn, table, index string, args ...any) (T, bool) {
	obj, err := txn.Last(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("state: lookup %s.%s: %v", table, index, err))
	}
	record, ok := obj.(T)
	return record, ok
}

// all returns every record matching a lookup, in index order (see first about errors).
func all[T any](txn *memdb.Txn, table, index string, args ...any) []T {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		panic(fmt.Sprintf("state: lookup %s.%s: %v", table, index, err))
	}
	var records []T
	for obj := it.Next(); obj != nil; obj = it.Next() {
		records = append(records, obj.(T))
	}
	return records
}
