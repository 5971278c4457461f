package agent

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate"
)

// The checkpoint is a log in the agent's work dir, meta/agent.log: a header and then one
// record per write (a task's record, a status update queued, an acknowledged update
// removed, a task deleted, the agent or boot id set), each framed with its length and a
// checksum. Reading it replays the records; the first that is incomplete or does not
// check ends it. The file is rewritten with only what it still holds (compacted) when the
// agent opens it and whenever it has grown to several times that.
//
// Writes are group-committed: each is queued in order, and a single committer writes
// everything queued so far at once. A write settles once the kernel has it, which is all
// a restarted agent process needs to find it: a host that crashes reboots, and after a
// reboot the agent drops its checkpoint anyway, its tasks having died with the host (see
// Agent.load). So a status update is sent as soon as it is written, never before, and an
// fdatasync would only delay it. Only the agent's identity is synced, once per start.
// Syncs are the syncer's: one fdatasync makes every write before it durable, and the
// committer writes on meanwhile.
//
// Agents before kept their checkpoint in a bbolt file, meta/agent.db; opening a work dir
// that has one moves its content to the log and removes it.
const (
	checkpointFile       = "agent.log"
	legacyCheckpointFile = "agent.db"
	checkpointLockFile   = "agent.lock"
)

// checkpointMagic starts a checkpoint log, followed by the file's generation.
const checkpointMagic = "ATOLLCP1"

// checkpointHeaderSize is the magic and the 8-byte generation.
const checkpointHeaderSize = len(checkpointMagic) + 8

// recordHeaderSize is a record's frame: its payload's length and checksum.
const recordHeaderSize = 8

// maxRecordSize bounds one record's payload: a task record carries a TaskInfo, which the
// master bounds far below this.
const maxRecordSize = 64 << 20

const (
	// checkpointCompactMin is how large the log grows before it is first compacted, and
	// checkpointCompactRatio how many times its content it may be before it is again.
	checkpointCompactMin   = 8 << 20
	checkpointCompactRatio = 4
	// checkpointPrealloc is how far ahead of its end the log is filled with zeros: a sync
	// then writes data into blocks the file already has, and no metadata, which costs
	// about half of a sync that extends the file.
	checkpointPrealloc = 1 << 20
)

// checkpointLockTimeout bounds the wait for the checkpoint's lock: a second agent on the
// same work dir fails instead of hanging.
const checkpointLockTimeout = 2 * time.Second

// crcTable is CRC-32C's, which CPUs compute in hardware.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// The bbolt buckets of the legacy checkpoint: meta holds the agent id and the boot id;
// tasks one taskRecord per task (JSON, keyed by taskKey); updates a sub-bucket per task
// with its unacknowledged status updates keyed by a big-endian sequence number.
var (
	bucketMeta    = []byte("meta")
	bucketTasks   = []byte("tasks")
	bucketUpdates = []byte("updates")
	keyAgentID    = []byte("agent_id")
	keyBootID     = []byte("boot_id")
)

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
	// encoded is update as JSON, which UPDATE calls carry; nil until first needed for an
	// update read from disk.
	encoded json.RawMessage
	// written settles when the update is written; nil for updates read from disk.
	written *cpOp
}

// checkpointedTask is a task and its unacknowledged updates, oldest first.
type checkpointedTask struct {
	record  taskRecord
	updates []queuedUpdate
}

// logOpKind says what a log record does.
type logOpKind byte

const (
	// opTask writes the task key's record (data).
	opTask logOpKind = iota + 1
	// opUpdate queues update (extra, JSON) as the task key's update seq, and writes its
	// record (data) unless data is empty.
	opUpdate
	// opRemoveUpdate removes the task key's update seq.
	opRemoveUpdate
	// opDeleteTask deletes the task key with its updates.
	opDeleteTask
	// opDropUpdates writes the task key's record (data) and drops all its updates.
	opDropUpdates
	// opAgentID and opBootID set the agent id and the boot id (data).
	opAgentID
	opBootID
	// opReset forgets everything and sets the boot id (data).
	opReset
)

// logOp is one record of the log.
type logOp struct {
	kind        logOpKind
	seq         uint64
	key         string
	data, extra []byte
}

// appendPayload appends op's encoding: its kind, seq and the three fields, each preceded
// by its length, as uvarints.
func (op *logOp) appendPayload(b []byte) []byte {
	b = append(b, byte(op.kind))
	b = binary.AppendUvarint(b, op.seq)
	for _, field := range [][]byte{[]byte(op.key), op.data, op.extra} {
		b = binary.AppendUvarint(b, uint64(len(field)))
		b = append(b, field...)
	}
	return b
}

// parseLogOp decodes and checks one record's payload.
func parseLogOp(p []byte) (logOp, error) {
	if len(p) == 0 {
		return logOp{}, errors.New("empty record")
	}
	op := logOp{kind: logOpKind(p[0])}
	p = p[1:]
	sequence, n := binary.Uvarint(p)
	if n <= 0 {
		return logOp{}, errors.New("bad sequence number")
	}
	op.seq, p = sequence, p[n:]
	var fields [3][]byte
	for i := range fields {
		size, n := binary.Uvarint(p)
		if n <= 0 || size > uint64(len(p)-n) {
			return logOp{}, fmt.Errorf("field %d overruns the record", i)
		}
		fields[i], p = p[n:n+int(size)], p[n+int(size):]
	}
	if len(p) > 0 {
		return logOp{}, fmt.Errorf("%d bytes after the record's fields", len(p))
	}
	op.key, op.data, op.extra = string(fields[0]), fields[1], fields[2]
	// The fields each kind takes, which it must have; the others must be empty. An
	// update's record is optional.
	var key, seq, data, extra bool
	switch op.kind {
	case opTask, opDropUpdates:
		key, data = true, true
	case opUpdate:
		key, seq, data, extra = true, true, len(op.data) > 0, true
	case opRemoveUpdate:
		key, seq = true, true
	case opDeleteTask:
		key = true
	case opAgentID, opBootID, opReset:
		data = true
	default:
		return logOp{}, fmt.Errorf("unknown record kind %d", op.kind)
	}
	if key != (op.key != "") || seq != (op.seq != 0) || data != (len(op.data) > 0) || extra != (len(op.extra) > 0) {
		return logOp{}, fmt.Errorf("record of kind %d lacks a field it needs or has one it does not take", op.kind)
	}
	return op, nil
}

// appendRecord appends op framed as a record of a log of generation gen.
func appendRecord(b []byte, gen uint64, op *logOp) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeaderSize)...)
	b = op.appendPayload(b)
	payload := b[start+recordHeaderSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], recordChecksum(gen, payload))
	return b
}

// recordChecksum covers the payload and the log's generation, so that a record left in a
// block from an earlier log file never passes for one of this file.
func recordChecksum(gen uint64, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, crcTable, binary.LittleEndian.AppendUint64(nil, gen)), crcTable, payload)
}

// loggedTask is what the log holds of a task: its record (JSON; nil when only updates
// were logged for it) and its unacknowledged updates (JSON), by sequence number.
type loggedTask struct {
	record  []byte
	updates []loggedUpdate
}

type loggedUpdate struct {
	seq  uint64
	data []byte
}

// checkpointState is what a log holds, replayed.
type checkpointState struct {
	agentID, bootID string
	tasks           map[string]*loggedTask
}

func newCheckpointState() checkpointState {
	return checkpointState{tasks: map[string]*loggedTask{}}
}

// apply replays op.
func (s *checkpointState) apply(op *logOp) {
	switch op.kind {
	case opTask:
		s.task(op.key).record = op.data
	case opUpdate:
		t := s.task(op.key)
		if len(op.data) > 0 {
			t.record = op.data
		}
		t.updates = append(t.updates, loggedUpdate{seq: op.seq, data: op.extra})
	case opRemoveUpdate:
		if t := s.tasks[op.key]; t != nil {
			t.updates = slices.DeleteFunc(t.updates, func(u loggedUpdate) bool { return u.seq == op.seq })
		}
	case opDeleteTask:
		delete(s.tasks, op.key)
	case opDropUpdates:
		s.tasks[op.key] = &loggedTask{record: op.data}
	case opAgentID:
		s.agentID = string(op.data)
	case opBootID:
		s.bootID = string(op.data)
	case opReset:
		*s = newCheckpointState()
		s.bootID = string(op.data)
	}
}

func (s *checkpointState) task(key string) *loggedTask {
	t := s.tasks[key]
	if t == nil {
		t = &loggedTask{}
		s.tasks[key] = t
	}
	return t
}

// maxSeq is the highest update sequence number held.
func (s *checkpointState) maxSeq() uint64 {
	var highest uint64
	for _, t := range s.tasks {
		for _, u := range t.updates {
			highest = max(highest, u.seq)
		}
	}
	return highest
}

// snapshot encodes the state as a log of generation gen.
func (s *checkpointState) snapshot(gen uint64) []byte {
	b := binary.LittleEndian.AppendUint64([]byte(checkpointMagic), gen)
	if s.bootID != "" {
		b = appendRecord(b, gen, &logOp{kind: opBootID, data: []byte(s.bootID)})
	}
	if s.agentID != "" {
		b = appendRecord(b, gen, &logOp{kind: opAgentID, data: []byte(s.agentID)})
	}
	for _, key := range slices.Sorted(maps.Keys(s.tasks)) {
		t := s.tasks[key]
		if t.record != nil {
			b = appendRecord(b, gen, &logOp{kind: opTask, key: key, data: t.record})
		}
		for _, u := range t.updates {
			b = appendRecord(b, gen, &logOp{kind: opUpdate, seq: u.seq, key: key, extra: u.data})
		}
	}
	return b
}

// replayLog reads a log: it returns what it holds and where its records end. A file too
// short for a header is an empty log; one with another header is not a checkpoint.
func replayLog(data []byte) (checkpointState, int64, error) {
	state := newCheckpointState()
	if len(data) < checkpointHeaderSize {
		return state, 0, nil
	}
	if string(data[:len(checkpointMagic)]) != checkpointMagic {
		return state, 0, errors.New("not an agent checkpoint log")
	}
	gen := binary.LittleEndian.Uint64(data[len(checkpointMagic):])
	end := checkpointHeaderSize
	for len(data)-end >= recordHeaderSize {
		size := binary.LittleEndian.Uint32(data[end:])
		if size == 0 || size > maxRecordSize || int64(size) > int64(len(data)-end-recordHeaderSize) {
			break
		}
		payload := data[end+recordHeaderSize : end+recordHeaderSize+int(size)]
		if binary.LittleEndian.Uint32(data[end+4:]) != recordChecksum(gen, payload) {
			break
		}
		op, err := parseLogOp(payload)
		if err != nil {
			break
		}
		// Copies, so that the state does not hold on to the whole file.
		op.data, op.extra = bytes.Clone(op.data), bytes.Clone(op.extra)
		state.apply(&op)
		end += recordHeaderSize + int(size)
	}
	return state, int64(end), nil
}

// checkpoint is the agent's durable state (see the top of this file). Safe for
// concurrent use.
type checkpoint struct {
	dir  string
	lock *os.File
	// onCommit runs (outside any lock) whenever status updates or durable ops have
	// settled; the agent kicks its sender.
	onCommit func()
	// seq numbers updates; it continues from the highest number in the log.
	seq atomic.Uint64

	// The log file and where it stands; the committer's alone once it runs, except that
	// the syncer syncs file, holding fileMu, which the committer holds to replace it.
	fileMu    sync.Mutex
	file      *os.File
	gen       uint64
	end       int64 // where the next record goes
	allocated int64 // the file is zero-filled up to here
	compactAt int64 // the size that makes the committer compact the log
	// compactMin is the least compactAt (checkpointCompactMin).
	compactMin int64
	// broken is set when a write or sync failed: the next batch first rewrites the log.
	broken atomic.Bool
	buf    []byte

	mu      sync.Mutex
	pending []*cpOp
	closed  bool
	wake    chan struct{}
	stopped chan struct{}

	// syncMu guards the written durable ops the syncer is to sync, and whether it is to
	// stop once it has.
	syncMu      sync.Mutex
	toSync      []*cpOp
	syncDone    bool
	syncWake    chan struct{}
	syncStopped chan struct{}

	// stateMu guards state, which the committer updates as it writes.
	stateMu sync.Mutex
	state   checkpointState
}

// cpOp is one queued write; done closes once it is written (or synced, for a durable
// one), or failed, with err set.
type cpOp struct {
	op      logOp
	durable bool
	done    chan struct{}
	err     error
}

// wait blocks until the write is done and returns its error.
func (o *cpOp) wait() error {
	<-o.done
	return o.err
}

// settled reports whether the write is done, and its error.
func (o *cpOp) settled() (bool, error) {
	select {
	case <-o.done:
		return true, o.err
	default:
		return false, nil
	}
}

func (o *cpOp) settle(err error) {
	o.err = err
	close(o.done)
}

// errCheckpointClosed fails writes queued after close.
var errCheckpointClosed = errors.New("checkpoint closed")

// openCheckpoint opens (creating if needed) the checkpoint in dir, taking over a legacy
// bbolt checkpoint there, and compacts it.
func openCheckpoint(dir string) (*checkpoint, error) {
	return openCompactingAt(dir, checkpointCompactMin)
}

// openCompactingAt is openCheckpoint with the size a log grows to before it is first
// compacted.
func openCompactingAt(dir string, compactMin int64) (*checkpoint, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	lock, err := lockCheckpoint(filepath.Join(dir, checkpointLockFile))
	if err != nil {
		return nil, err
	}
	c := &checkpoint{
		dir: dir, lock: lock, compactMin: compactMin,
		wake: make(chan struct{}, 1), stopped: make(chan struct{}),
		syncWake: make(chan struct{}, 1), syncStopped: make(chan struct{}),
	}
	path := filepath.Join(dir, checkpointFile)
	legacy := filepath.Join(dir, legacyCheckpointFile)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		c.state, _, err = replayLog(data)
	case errors.Is(err, fs.ErrNotExist):
		c.state, err = readLegacyCheckpoint(legacy)
	}
	if err == nil {
		// A fresh file: whatever an interrupted write left after the last record is gone.
		err = c.rewrite()
	}
	if err == nil {
		if err = os.Remove(legacy); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		c.release()
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	c.seq.Store(c.state.maxSeq())
	go c.commit()
	go c.sync()
	return c, nil
}

// lockCheckpoint takes the lock file at path, waiting at most checkpointLockTimeout.
func lockCheckpoint(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("checkpoint lock: %w", err)
	}
	deadline := time.Now().Add(checkpointLockTimeout)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("checkpoint %s: locked by another agent process", filepath.Dir(path))
			}
			return nil, fmt.Errorf("checkpoint lock: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readLegacyCheckpoint reads a bbolt checkpoint, if there is one at path.
func readLegacyCheckpoint(path string) (checkpointState, error) {
	state := newCheckpointState()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return state, nil
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: checkpointLockTimeout, ReadOnly: true})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return state, errors.New("the legacy checkpoint is locked by another agent process")
		}
		return state, fmt.Errorf("legacy checkpoint: %w", err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			state.agentID, state.bootID = string(meta.Get(keyAgentID)), string(meta.Get(keyBootID))
		}
		if tasks := tx.Bucket(bucketTasks); tasks != nil {
			err := tasks.ForEach(func(k, v []byte) error {
				state.task(string(k)).record = bytes.Clone(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		updates := tx.Bucket(bucketUpdates)
		if updates == nil {
			return nil
		}
		return updates.ForEachBucket(func(k []byte) error {
			t := state.tasks[string(k)]
			if t == nil {
				return nil // a queue without its task, which the task list never showed
			}
			return updates.Bucket(k).ForEach(func(sk, sv []byte) error {
				if len(sk) != 8 {
					return fmt.Errorf("update key %x of task %q: want 8 bytes", sk, k)
				}
				t.updates = append(t.updates, loggedUpdate{seq: binary.BigEndian.Uint64(sk), data: bytes.Clone(sv)})
				return nil
			})
		})
	})
	if err != nil {
		return state, fmt.Errorf("legacy checkpoint: %w", err)
	}
	return state, nil
}

// rewrite replaces the log with a fresh one holding the state, synced, and makes it the
// file written to.
func (c *checkpoint) rewrite() error {
	gen := rand.Uint64()
	c.stateMu.Lock()
	data := c.state.snapshot(gen)
	c.stateMu.Unlock()
	end := int64(len(data))
	allocated := end + checkpointPrealloc
	data = append(data, make([]byte, checkpointPrealloc)...)
	path := filepath.Join(c.dir, checkpointFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		return err
	}
	if err := syncDir(c.dir); err != nil {
		f.Close()
		return err
	}
	c.fileMu.Lock()
	if c.file != nil {
		c.file.Close()
	}
	c.file = f
	c.fileMu.Unlock()
	c.gen, c.end, c.allocated = gen, end, allocated
	c.broken.Store(false)
	c.compactAt = max(c.compactMin, checkpointCompactRatio*end)
	return nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// enqueue queues op; writes are applied in the order they were queued. A durable op
// settles once it is synced, the others once they are written.
func (c *checkpoint) enqueue(op logOp, durable bool) *cpOp {
	o := &cpOp{op: op, durable: durable, done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		o.settle(errCheckpointClosed)
		return o
	}
	c.pending = append(c.pending, o)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return o
}

// failed returns an op that has already failed with err.
func failed(err error) *cpOp {
	o := &cpOp{done: make(chan struct{})}
	o.settle(err)
	return o
}

// commit writes queued ops in batches until close.
func (c *checkpoint) commit() {
	defer close(c.stopped)
	for {
		c.mu.Lock()
		batch, closed := c.pending, c.closed
		c.pending = nil
		c.mu.Unlock()
		if len(batch) > 0 {
			c.apply(batch)
			continue
		}
		if closed {
			return
		}
		<-c.wake
	}
}

// apply writes a batch with one write, settles the ops that need no sync and passes
// the others (the agent's identity) on to the syncer.
func (c *checkpoint) apply(batch []*cpOp) {
	err := c.writeBatch(batch)
	var durable []*cpOp
	notify := false
	for _, o := range batch {
		if o.durable && err == nil {
			durable = append(durable, o)
			continue
		}
		o.settle(err)
		// The sender holds each update back until it is written.
		notify = notify || o.durable || o.op.kind == opUpdate
	}
	if notify && c.onCommit != nil {
		c.onCommit()
	}
	if len(durable) == 0 {
		return
	}
	c.syncMu.Lock()
	c.toSync = append(c.toSync, durable...)
	c.syncMu.Unlock()
	select {
	case c.syncWake <- struct{}{}:
	default:
	}
}

// sync makes written durable ops durable, as many at once as have been written by then,
// until stop.
func (c *checkpoint) sync() {
	defer close(c.syncStopped)
	for {
		c.fileMu.Lock()
		c.syncMu.Lock()
		ops, done := c.toSync, c.syncDone
		c.toSync = nil
		c.syncMu.Unlock()
		if len(ops) == 0 {
			c.fileMu.Unlock()
			if done {
				return
			}
			<-c.syncWake
			continue
		}
		// Held, so that the committer does not replace the file meanwhile; a replacement
		// before the sync made the ops durable already, and this sync is then merely
		// redundant.
		err := unix.Fdatasync(int(c.file.Fd()))
		c.fileMu.Unlock()
		if err != nil {
			c.broken.Store(true)
			err = fmt.Errorf("sync: %w", err)
		}
		for _, o := range ops {
			o.settle(err)
		}
		if c.onCommit != nil {
			c.onCommit()
		}
	}
}

// writeBatch writes the batch's records at the log's end and replays them into the
// state; when the log has grown enough, or a write failed before, it is rewritten first.
func (c *checkpoint) writeBatch(batch []*cpOp) error {
	if c.broken.Load() || c.end >= c.compactAt {
		if err := c.rewrite(); err != nil {
			c.broken.Store(true)
			return fmt.Errorf("rewrite: %w", err)
		}
	}
	c.buf = c.buf[:0]
	for _, o := range batch {
		c.buf = appendRecord(c.buf, c.gen, &o.op)
	}
	end := c.end + int64(len(c.buf))
	if end > c.allocated {
		// Zeros past the new end, so that what follows the last record reads as the end
		// of the log.
		c.buf = append(c.buf, make([]byte, checkpointPrealloc)...)
		c.allocated = end + checkpointPrealloc
	}
	if _, err := c.file.WriteAt(c.buf, c.end); err != nil {
		c.broken.Store(true)
		return fmt.Errorf("write: %w", err)
	}
	c.end = end
	c.stateMu.Lock()
	for _, o := range batch {
		c.state.apply(&o.op)
	}
	c.stateMu.Unlock()
	return nil
}

// close writes and syncs what is queued and closes the file. Later calls do nothing.
func (c *checkpoint) close() error {
	if !c.stop() {
		return nil
	}
	err := c.file.Sync()
	return errors.Join(err, c.release())
}

// stop makes the committer write what is queued and the syncer sync it, and both exit;
// writes queued from then on fail. It reports whether this call stopped them.
func (c *checkpoint) stop() bool {
	c.mu.Lock()
	first := !c.closed
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.stopped
	c.syncMu.Lock()
	c.syncDone = true
	c.syncMu.Unlock()
	select {
	case c.syncWake <- struct{}{}:
	default:
	}
	<-c.syncStopped
	return first
}

// release closes the log and gives up the lock.
func (c *checkpoint) release() error {
	var err error
	if c.file != nil {
		err = c.file.Close()
	}
	return errors.Join(err, c.lock.Close())
}

// identity returns the checkpointed agent id and boot id ("" when unset).
func (c *checkpoint) identity() (agentID, bootID string, err error) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.state.agentID, c.state.bootID, nil
}

func (c *checkpoint) setAgentID(id string) error {
	if err := c.enqueue(logOp{kind: opAgentID, data: []byte(id)}, true).wait(); err != nil {
		return fmt.Errorf("checkpoint agent id: %w", err)
	}
	return nil
}

func (c *checkpoint) setBootID(id string) error {
	if err := c.enqueue(logOp{kind: opBootID, data: []byte(id)}, true).wait(); err != nil {
		return fmt.Errorf("checkpoint boot id: %w", err)
	}
	return nil
}

// reset forgets everything (agent id, tasks, updates) and records bootID: the state of a
// previous boot.
func (c *checkpoint) reset(bootID string) error {
	if err := c.enqueue(logOp{kind: opReset, data: []byte(bootID)}, true).wait(); err != nil {
		return fmt.Errorf("reset checkpoint: %w", err)
	}
	return nil
}

// putTask writes rec and waits until it is written.
func (c *checkpoint) putTask(rec *taskRecord) error {
	if err := c.putTaskAsync(rec).wait(); err != nil {
		return fmt.Errorf("checkpoint task %s: %w", rec.Task.TaskID.Value, err)
	}
	return nil
}

// putTaskAsync queues a write of (a copy of) rec.
func (c *checkpoint) putTaskAsync(rec *taskRecord) *cpOp {
	b, err := json.Marshal(rec)
	if err != nil {
		return failed(err)
	}
	return c.enqueue(logOp{kind: opTask, key: rec.key(), data: b}, false)
}

// appendUpdate writes rec and appends u to its update queue in one record, waits until
// both are written, and returns u's sequence number.
func (c *checkpoint) appendUpdate(rec *taskRecord, u api.AgentCallUpdate) (uint64, error) {
	q := c.appendUpdateAsync(rec, u)
	if err := q.written.wait(); err != nil {
		return 0, fmt.Errorf("checkpoint %s update of task %s: %w", u.Status.State, rec.Task.TaskID.Value, err)
	}
	return q.seq, nil
}

// appendUpdateAsync queues the write of rec and u, and returns u as queued: its sequence
// number, its JSON and the op, which settles once both are written. The update must not
// be sent before the op settles without error.
func (c *checkpoint) appendUpdateAsync(rec *taskRecord, u api.AgentCallUpdate) queuedUpdate {
	q := queuedUpdate{seq: c.seq.Add(1), update: u}
	recJSON, recErr := json.Marshal(rec)
	updateJSON, updateErr := json.Marshal(u)
	if err := errors.Join(recErr, updateErr); err != nil {
		q.written = failed(err)
		return q
	}
	q.encoded = updateJSON
	q.written = c.enqueue(logOp{kind: opUpdate, seq: q.seq, key: rec.key(), data: recJSON, extra: updateJSON}, false)
	return q
}

// removeUpdate deletes the update seq of the task key. The agent does not wait for it: an
// acknowledgement lost in a crash only means the update is sent once more.
func (c *checkpoint) removeUpdate(key string, seq uint64) *cpOp {
	return c.enqueue(logOp{kind: opRemoveUpdate, seq: seq, key: key}, false)
}

// dropUpdates writes rec and deletes its whole update queue in one record.
func (c *checkpoint) dropUpdates(rec *taskRecord) error {
	b, err := json.Marshal(rec)
	if err == nil {
		err = c.enqueue(logOp{kind: opDropUpdates, key: rec.key(), data: b}, false).wait()
	}
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
	return c.enqueue(logOp{kind: opDeleteTask, key: key}, false)
}

// tasks returns every checkpointed task with its queued updates in order, ordered by key.
func (c *checkpoint) tasks() ([]checkpointedTask, error) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	var out []checkpointedTask
	for _, key := range slices.Sorted(maps.Keys(c.state.tasks)) {
		t := c.state.tasks[key]
		if t.record == nil {
			continue // updates without their task, which no agent wrote
		}
		var ct checkpointedTask
		if err := json.Unmarshal(t.record, &ct.record); err != nil {
			return nil, fmt.Errorf("read checkpoint: task record %q: %w", key, err)
		}
		updates := slices.SortedFunc(slices.Values(t.updates), func(x, y loggedUpdate) int { return cmp.Compare(x.seq, y.seq) })
		for _, u := range updates {
			q := queuedUpdate{seq: u.seq}
			if err := json.Unmarshal(u.data, &q.update); err != nil {
				return nil, fmt.Errorf("read checkpoint: update %d of task %q: %w", u.seq, key, err)
			}
			ct.updates = append(ct.updates, q)
		}
		out = append(out, ct)
	}
	return out, nil
}
