package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// A snapshot is a stream of JSON values: a snapshotHeader, then one snapshotRecord per
// record. Streaming keeps memory flat while tens of thousands of tasks are written or read.

// snapshotVersion is bumped on any change a reader of the old format would misread.
const snapshotVersion = 1

type snapshotHeader struct {
	Version   int    `json:"version"`
	LastIndex uint64 `json:"last_index"`
}

// snapshotRecord holds exactly one record.
type snapshotRecord struct {
	Agent     *Agent         `json:"agent,omitempty"`
	Framework *Framework     `json:"framework,omitempty"`
	Task      *Task          `json:"task,omitempty"`
	Completed *completedTask `json:"completed,omitempty"`
	KV        *KVEntry       `json:"kv,omitempty"`
}

// fsmSnapshot is a point-in-time read transaction; Persist may run concurrently with Apply.
type fsmSnapshot struct {
	txn *memdb.Txn
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Snapshot captures the store at the last applied entry. It costs no copying: memdb's
// trees are immutable, so the read transaction is the snapshot.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{txn: f.store.db.Load().Txn(false)}, nil
}

// Persist writes the snapshot to sink, cancelling the sink on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		if cancelErr := sink.Cancel(); cancelErr != nil {
			err = errors.Join(err, fmt.Errorf("cancel snapshot: %w", cancelErr))
		}
		return err
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close snapshot: %w", err)
	}
	return nil
}

func (s *fsmSnapshot) write(w io.Writer) error {
	buffered := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(buffered)
	view := Snapshot{txn: s.txn}
	if err := enc.Encode(snapshotHeader{Version: snapshotVersion, LastIndex: view.LastIndex()}); err != nil {
		return fmt.Errorf("write snapshot header: %w", err)
	}
	for _, agent := range view.Agents() {
		if err := enc.Encode(snapshotRecord{Agent: agent}); err != nil {
			return fmt.Errorf("write agent %s: %w", agent.ID, err)
		}
	}
	for _, framework := range view.Frameworks() {
		if err := enc.Encode(snapshotRecord{Framework: framework}); err != nil {
			return fmt.Errorf("write framework %s: %w", framework.ID, err)
		}
	}
	for _, task := range view.Tasks() {
		if err := enc.Encode(snapshotRecord{Task: task}); err != nil {
			return fmt.Errorf("write task %s: %w", task.ID, err)
		}
	}
	for _, completed := range all[*completedTask](s.txn, tableCompleted, indexID) {
		if err := enc.Encode(snapshotRecord{Completed: completed}); err != nil {
			return fmt.Errorf("write completed task %s: %w", completed.Task.ID, err)
		}
	}
	for _, entry := range all[*KVEntry](s.txn, tableKV, indexID) {
		if err := enc.Encode(snapshotRecord{KV: entry}); err != nil {
			return fmt.Errorf("write key %s/%s: %w", entry.Namespace, entry.Key, err)
		}
	}
	if err := buffered.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Release is a no-op: the read transaction holds nothing that needs freeing.
func (s *fsmSnapshot) Release() {}

// Restore replaces the store with the snapshot's contents and emits Restored. On error the
// store is left as it was.
func (f *FSM) Restore(snapshot io.ReadCloser) error {
	defer snapshot.Close()
	db, index, err := readSnapshot(snapshot, f.cfg.MaxCompletedTasks)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.store.db.Store(db)
	f.forgetAhead()
	f.logger.Info("state restored from snapshot", "index", index)
	f.notify([]Change{{Kind: Restored, Index: index}})
	return nil
}

// readSnapshot builds a new database from a snapshot stream, evicting completed tasks
// beyond maxCompleted (the writer's cap may have been larger).
func readSnapshot(r io.Reader, maxCompleted int) (*memdb.MemDB, uint64, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var header snapshotHeader
	if err := dec.Decode(&header); err != nil {
		return nil, 0, fmt.Errorf("read header: %w", err)
	}
	if header.Version != snapshotVersion {
		return nil, 0, fmt.Errorf("snapshot version %d, want %d", header.Version, snapshotVersion)
	}
	db := newMemDB()
	txn := db.Txn(true)
	defer txn.Abort()
	for n := 1; ; n++ {
		var record snapshotRecord
		err := dec.Decode(&record)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read record %d: %w", n, err)
		}
		if err := insertSnapshotRecord(txn, &record); err != nil {
			return nil, 0, fmt.Errorf("record %d: %w", n, err)
		}
	}
	if err := trimCompleted(txn, maxCompleted); err != nil {
		return nil, 0, err
	}
	if err := txn.Insert(tableMeta, &meta{LastIndex: header.LastIndex}); err != nil {
		return nil, 0, fmt.Errorf("set last index: %w", err)
	}
	txn.Commit()
	return db, header.LastIndex, nil
}

func insertSnapshotRecord(txn *memdb.Txn, record *snapshotRecord) error {
	var table string
	var obj any
	set := 0
	if record.Agent != nil {
		table, obj, set = tableAgents, record.Agent, set+1
	}
	if record.Framework != nil {
		table, obj, set = tableFrameworks, record.Framework, set+1
	}
	if record.Task != nil {
		table, obj, set = tableTasks, record.Task, set+1
	}
	if record.Completed != nil {
		if record.Completed.Task == nil {
			return errors.New("completed record without a task")
		}
		table, obj, set = tableCompleted, record.Completed, set+1
	}
	if record.KV != nil {
		table, obj, set = tableKV, record.KV, set+1
	}
	if set != 1 {
		return fmt.Errorf("holds %d records, want 1", set)
	}
	if err := txn.Insert(table, obj); err != nil {
		return fmt.Errorf("insert into %s: %w", table, err)
	}
	return nil
}
