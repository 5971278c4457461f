package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

// The checkpoint is one bbolt file. Bucket meta holds the agent id and the boot id; bucket
// tasks holds one taskRecord per task (JSON, keyed by taskKey); bucket updates holds a
// sub-bucket per task with its unacknowledged status updates keyed by a big-endian sequence
// number, so iteration order is the order they were made.
var (
	bucketMeta    = []byte("meta")
	bucketTasks   = []byte("tasks")
	bucketUpdates = []byte("updates")
	keyAgentID    = []byte("agent_id")
	keyBootID     = []byte("boot_id")
)

// checkpointLockTimeout bounds the wait for the checkpoint's file lock: a second agent on
// the same work dir fails instead of hanging.
const checkpointLockTimeout = 2 * time.Second

// taskRecord is what the agent checkpoints about a task.
type taskRecord struct {
	FrameworkID string            `json:"framework_id"`
	Framework   api.FrameworkInfo `json:"framework"`
	Task        api.TaskInfo      `json:"task"`
	ContainerID string            `json:"container_id,omitempty"`
	Sandbox     string            `json:"sandbox,omitempty"`
	// Container is set once the container was launched.
	Container *isolate.State `json:"container,omitempty"`
	// State is the state of the latest status update made for the task.
	State api.TaskState `json:"state"`
	// Killing records a kill request, so the exit is reported as TASK_KILLED.
	Killing bool `json:"killing,omitempty"`
	// FrameworkRemoved records SHUTDOWN_FRAMEWORK: the task is killed and forgotten, and no
	// update is sent for it.
	FrameworkRemoved bool `json:"framework_removed,omitempty"`
	// Unknown marks a record made only to carry the TASK_LOST answer to a KILL of a task
	// this agent never had.
	Unknown bool `json:"unknown,omitempty"`
	// Started is when the container was launched: a restarted agent counts the health
	// check's delay and grace period from it.
	Started time.Time `json:"started,omitzero"`
	// Healthy is the health last reported for the task; nil until its health check first
	// concluded.
	Healthy *bool `json:"healthy,omitempty"`
	// CheckStatus is the check status last reported for the task; nil until its first
	// update made by the executor side.
	CheckStatus *api.CheckStatusInfo `json:"check_status,omitempty"`
	// UnhealthyKill, set when the agent kills the task for failing its health check, says
	// why; the terminal update carries it.
	UnhealthyKill string `json:"unhealthy_kill,omitempty"`
}

func (r *taskRecord) key() string { return taskKey(r.FrameworkID, r.Task.TaskID.Value) }

// taskKey identifies a task on this agent: task ids are unique per framework.
func taskKey(frameworkID, taskID string) string { return frameworkID + "\x00" + taskID }

// queuedUpdate is a checkpointed status update and its position in its task's queue.
type queuedUpdate struct {
	seq    uint64
	update api.AgentCallUpdate
	// written settles when the update is on disk; nil for updates read from disk.
	written *cpOp
}

// checkpointedTask is a task and its unacknowledged updates, oldest first.
type checkpointedTask struct {
	record  taskRecord
	updates []queuedUpdate
}

// checkpoint is the agent's durable state. Writes are group-committed: each is queued in
// order and a single committer applies everything queued so far in one fsync'd bbolt
// transaction, so a thousand status updates a second cost tens of fsyncs, not thousands.
// Callers that must not act before a write is on disk wait on its op. Safe for concurrent
// use.
type checkpoint struct {
	db *bbolt.DB
	// onCommit runs after every batch (outside any lock); the agent kicks its sender.
	onCommit func()
	// seq numbers updates; it continues from the highest number on disk.
	seq atomic.Uint64

	mu      sync.Mutex
	pending []*cpOp
	closed  bool
	wake    chan struct{}
	stopped chan struct{}
}

// cpOp is one queued write; done closes once it is on disk (or failed, with err set).
type cpOp struct {
	fn   func(tx *bbolt.Tx) error
	done chan struct{}
	err  error
}

// wait blocks until the write is on disk and returns its error.
func (o *cpOp) wait() error {
	<-o.done
	return o.err
}

// settled reports whether the write finished, and its error.
func (o *cpOp) settled() (bool, error) {
	select {
	case <-o.done:
		return true, o.err
	default:
		return false, nil
	}
}

// errCheckpointClosed fails writes queued after close.
var errCheckpointClosed = errors.New("checkpoint closed")

// enqueue queues fn; writes are applied in the order they were queued.
func (c *checkpoint) enqueue(fn func(tx *bbolt.Tx) error) *cpOp {
	op := &cpOp{fn: fn, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		op.err = errCheckpointClosed
		close(op.done)
		return op
	}
	c.pending = append(c.pending, op)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return op
}

// update queues fn and waits until it is on disk.
func (c *checkpoint) update(fn func(tx *bbolt.Tx) error) error {
	return c.enqueue(fn).wait()
}

// commit applies queued writes in batches until close.
func (c *checkpoint) commit() {
	defer close(c.stopped)
	for {
		c.mu.Lock()
		batch, closed := c.pending, c.closed
		c.pending = nil
		c.mu.Unlock()
		if len(batch) > 0 {
			c.apply(batch)
			if c.onCommit != nil {
				c.onCommit()
			}
			continue
		}
		if closed {
			return
		}
		<-c.wake
	}
}

// apply writes a batch in one transaction; if that fails, each write is retried alone so
// one bad write fails only itself.
func (c *checkpoint) apply(batch []*cpOp) {
	err := c.db.Update(func(tx *bbolt.Tx) error {
		for _, op := range batch {
			if err := op.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	for _, op := range batch {
		if err != nil && len(batch) > 1 {
			op.err = c.db.Update(op.fn)
		} else {
			op.err = err
		}
		close(op.done)
	}
}

// checkpointOptions are the checkpoint's bbolt options. The free page list is not written
// with every commit (bbolt rebuilds it by scanning the file when it opens it, which for an
// agent's few thousand pages is quick), which spares each commit a page write; files
// written with the list, as agents before did, open all the same.
func checkpointOptions() *bbolt.Options {
	return &bbolt.Options{Timeout: checkpointLockTimeout, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
}

// openCheckpoint opens (creating if needed) the checkpoint at path.
func openCheckpoint(path string) (*checkpoint, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, checkpointOptions())
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("checkpoint %s: locked by another agent process", path)
		}
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketTasks, bucketUpdates} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	c := &checkpoint{db: db, wake: make(chan struct{}, 1), stopped: make(chan struct{})}
	maxSeq, err := c.maxSeq()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	c.seq.Store(maxSeq)
	go c.commit()
	return c, nil
}

// maxSeq is the highest update sequence number on disk.
func (c *checkpoint) maxSeq() (uint64, error) {
	var highest uint64
	err := c.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketUpdates).ForEachBucket(func(k []byte) error {
			if last, _ := tx.Bucket(bucketUpdates).Bucket(k).Cursor().Last(); len(last) == 8 {
				highest = max(highest, binary.BigEndian.Uint64(last))
			}
			return nil
		})
	})
	return highest, err
}

// close writes what is queued and closes the file.
func (c *checkpoint) close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.stopped
	return c.db.Close()
}

// identity returns the checkpointed agent id and boot id ("" when unset).
func (c *checkpoint) identity() (agentID, bootID string, err error) {
	err = c.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		agentID = string(meta.Get(keyAgentID))
		bootID = string(meta.Get(keyBootID))
		return nil
	})
	return agentID, bootID, err
}

func (c *checkpoint) setMeta(key []byte, value string) error {
	return c.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(key, []byte(value))
	})
}

func (c *checkpoint) setAgentID(id string) error {
	if err := c.setMeta(keyAgentID, id); err != nil {
		return fmt.Errorf("checkpoint agent id: %w", err)
	}
	return nil
}

func (c *checkpoint) setBootID(id string) error {
	if err := c.setMeta(keyBootID, id); err != nil {
		return fmt.Errorf("checkpoint boot id: %w", err)
	}
	return nil
}

// reset forgets everything (agent id, tasks, updates) and records bootID: the state of a
// previous boot.
func (c *checkpoint) reset(bootID string) error {
	err := c.update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketTasks, bucketUpdates} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyBootID, []byte(bootID))
	})
	if err != nil {
		return fmt.Errorf("reset checkpoint: %w", err)
	}
	return nil
}

func putRecord(tx *bbolt.Tx, rec *taskRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketTasks).Put([]byte(rec.key()), b)
}

// putTask writes rec and waits until it is on disk.
func (c *checkpoint) putTask(rec *taskRecord) error {
	if err := c.putTaskAsync(rec).wait(); err != nil {
		return fmt.Errorf("checkpoint task %s: %w", rec.Task.TaskID.Value, err)
	}
	return nil
}

// putTaskAsync queues a write of (a copy of) rec.
func (c *checkpoint) putTaskAsync(rec *taskRecord) *cpOp {
	b, err := json.Marshal(rec)
	key := []byte(rec.key())
	return c.enqueue(func(tx *bbolt.Tx) error {
		if err != nil {
			return err
		}
		return tx.Bucket(bucketTasks).Put(key, b)
	})
}

// appendUpdate writes rec and appends u to its update queue in one transaction, waits
// until both are on disk, and returns u's sequence number.
func (c *checkpoint) appendUpdate(rec *taskRecord, u api.AgentCallUpdate) (uint64, error) {
	seq, op := c.appendUpdateAsync(rec, u)
	if err := op.wait(); err != nil {
		return 0, fmt.Errorf("checkpoint %s update of task %s: %w", u.Status.State, rec.Task.TaskID.Value, err)
	}
	return seq, nil
}

// appendUpdateAsync queues the write of rec and u, and returns u's sequence number; the
// update must not be sent before the op settles without error.
func (c *checkpoint) appendUpdateAsync(rec *taskRecord, u api.AgentCallUpdate) (uint64, *cpOp) {
	seq := c.seq.Add(1)
	recJSON, recErr := json.Marshal(rec)
	updateJSON, updateErr := json.Marshal(u)
	key := []byte(rec.key())
	return seq, c.enqueue(func(tx *bbolt.Tx) error {
		if err := errors.Join(recErr, updateErr); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTasks).Put(key, recJSON); err != nil {
			return err
		}
		queue, err := tx.Bucket(bucketUpdates).CreateBucketIfNotExists(key)
		if err != nil {
			return err
		}
		return queue.Put(seqKey(seq), updateJSON)
	})
}

// removeUpdate deletes the update seq of the task key. The agent does not wait for it: an
// acknowledgement lost in a crash only means the update is sent once more.
func (c *checkpoint) removeUpdate(key string, seq uint64) *cpOp {
	return c.enqueue(func(tx *bbolt.Tx) error {
		queue := tx.Bucket(bucketUpdates).Bucket([]byte(key))
		if queue == nil {
			return nil
		}
		return queue.Delete(seqKey(seq))
	})
}

// dropUpdates writes rec and deletes its whole update queue in one transaction.
func (c *checkpoint) dropUpdates(rec *taskRecord) error {
	err := c.update(func(tx *bbolt.Tx) error {
		if err := putRecord(tx, rec); err != nil {
			return err
		}
		return deleteQueue(tx, rec.key())
	})
	if err != nil {
		return fmt.Errorf("drop updates of task %s: %w", rec.Task.TaskID.Value, err)
	}
	return nil
}

// deleteTask queues the deletion of the task key and its update queue. The agent does not
// wait for it: should the deletion be lost in a crash, the restarted agent finds the task
// ended and either resends its last update or, with none left, deletes it then (see
// Agent.recoverContainers).
func (c *checkpoint) deleteTask(key string) *cpOp {
	return c.enqueue(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketTasks).Delete([]byte(key)); err != nil {
			return err
		}
		return deleteQueue(tx, key)
	})
}

func deleteQueue(tx *bbolt.Tx, key string) error {
	err := tx.Bucket(bucketUpdates).DeleteBucket([]byte(key))
	if errors.Is(err, bolterrors.ErrBucketNotFound) {
		return nil
	}
	return err
}

// tasks returns every checkpointed task with its queued updates in order.
func (c *checkpoint) tasks() ([]checkpointedTask, error) {
	var out []checkpointedTask
	err := c.db.View(func(tx *bbolt.Tx) error {
		updates := tx.Bucket(bucketUpdates)
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			var ct checkpointedTask
			if err := json.Unmarshal(v, &ct.record); err != nil {
				return fmt.Errorf("task record %q: %w", k, err)
			}
			if queue := updates.Bucket(k); queue != nil {
				err := queue.ForEach(func(sk, sv []byte) error {
					if len(sk) != 8 {
						return fmt.Errorf("update key %x of task %q: want 8 bytes", sk, k)
					}
					q := queuedUpdate{seq: binary.BigEndian.Uint64(sk)}
					if err := json.Unmarshal(sv, &q.update); err != nil {
						return fmt.Errorf("update %d of task %q: %w", q.seq, k, err)
					}
					ct.updates = append(ct.updates, q)
					return nil
				})
				if err != nil {
					return err
				}
			}
			out = append(out, ct)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	return out, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
