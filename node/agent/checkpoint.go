package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
}

func (r *taskRecord) key() string { return taskKey(r.FrameworkID, r.Task.TaskID.Value) }

// taskKey identifies a task on this agent: task ids are unique per framework.
func taskKey(frameworkID, taskID string) string { return frameworkID + "\x00" + taskID }

// queuedUpdate is a checkpointed status update and its position in its task's queue.
type queuedUpdate struct {
	seq    uint64
	update api.AgentCallUpdate
}

// checkpointedTask is a task and its unacknowledged updates, oldest first.
type checkpointedTask struct {
	record  taskRecord
	updates []queuedUpdate
}

// checkpoint is the agent's durable state. Every write is one fsync'd bbolt transaction.
// Safe for concurrent use (bbolt serialises writers).
type checkpoint struct {
	db *bbolt.DB
}

// openCheckpoint opens (creating if needed) the checkpoint at path.
func openCheckpoint(path string) (*checkpoint, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: checkpointLockTimeout})
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
	return &checkpoint{db: db}, nil
}

func (c *checkpoint) close() error { return c.db.Close() }

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
	return c.db.Update(func(tx *bbolt.Tx) error {
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
	err := c.db.Update(func(tx *bbolt.Tx) error {
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

// putTask writes rec.
func (c *checkpoint) putTask(rec *taskRecord) error {
	if err := c.db.Update(func(tx *bbolt.Tx) error { return putRecord(tx, rec) }); err != nil {
		return fmt.Errorf("checkpoint task %s: %w", rec.Task.TaskID.Value, err)
	}
	return nil
}

// appendUpdate writes rec and appends u to its update queue in one transaction, and returns
// u's sequence number.
func (c *checkpoint) appendUpdate(rec *taskRecord, u api.AgentCallUpdate) (uint64, error) {
	var seq uint64
	err := c.db.Update(func(tx *bbolt.Tx) error {
		if err := putRecord(tx, rec); err != nil {
			return err
		}
		queue, err := tx.Bucket(bucketUpdates).CreateBucketIfNotExists([]byte(rec.key()))
		if err != nil {
			return err
		}
		if seq, err = queue.NextSequence(); err != nil {
			return err
		}
		b, err := json.Marshal(u)
		if err != nil {
			return err
		}
		return queue.Put(seqKey(seq), b)
	})
	if err != nil {
		return 0, fmt.Errorf("checkpoint %s update of task %s: %w", u.Status.State, rec.Task.TaskID.Value, err)
	}
	return seq, nil
}

// removeUpdate deletes the update seq of the task key.
func (c *checkpoint) removeUpdate(key string, seq uint64) error {
	err := c.db.Update(func(tx *bbolt.Tx) error {
		queue := tx.Bucket(bucketUpdates).Bucket([]byte(key))
		if queue == nil {
			return nil
		}
		return queue.Delete(seqKey(seq))
	})
	if err != nil {
		return fmt.Errorf("remove acknowledged update: %w", err)
	}
	return nil
}

// dropUpdates writes rec and deletes its whole update queue in one transaction.
func (c *checkpoint) dropUpdates(rec *taskRecord) error {
	err := c.db.Update(func(tx *bbolt.Tx) error {
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

// deleteTask deletes the task key and its update queue.
func (c *checkpoint) deleteTask(key string) error {
	err := c.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketTasks).Delete([]byte(key)); err != nil {
			return err
		}
		return deleteQueue(tx, key)
	})
	if err != nil {
		return fmt.Errorf("delete task from checkpoint: %w", err)
	}
	return nil
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
