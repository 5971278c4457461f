package state

import (
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Table and index names of the memdb schema.
const (
	tableAgents     = "agents"
	tableFrameworks = "frameworks"
	tableTasks      = "tasks"
	tableCompleted  = "completed"
	tableMeta       = "meta"
	tableKV         = "kv"

	indexID        = "id"
	indexAgent     = "agent"
	indexFramework = "framework"
	indexRemoved   = "removed"
)

// schema returns the memdb schema. Indexers are written out rather than built from memdb's
// reflection-based ones: they are typed, allocate less, and encode keys so that ids with any
// bytes in them (frameworks choose task ids) can neither collide nor match another's prefix.
func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableAgents: {Name: tableAgents, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: stringIndex[*Agent](func(a *Agent) string { return a.ID })},
		}},
		tableFrameworks: {Name: tableFrameworks, Indexes: map[string]*memdb.IndexSchema{
			indexID:      {Name: indexID, Unique: true, Indexer: stringIndex[*Framework](func(f *Framework) string { return f.ID })},
			indexRemoved: {Name: indexRemoved, AllowMissing: true, Indexer: removedIndex{}},
		}},
		tableTasks: {Name: tableTasks, Indexes: map[string]*memdb.IndexSchema{
			indexID:        {Name: indexID, Unique: true, Indexer: taskKeyIndex{}},
			indexAgent:     {Name: indexAgent, Indexer: stringIndex[*Task](func(t *Task) string { return t.AgentID })},
			indexFramework: {Name: indexFramework, Indexer: stringIndex[*Task](func(t *Task) string { return t.FrameworkID })},
		}},
		tableCompleted: {Name: tableCompleted, Indexes: map[string]*memdb.IndexSchema{
			indexID:        {Name: indexID, Unique: true, Indexer: seqIndex{}},
			indexFramework: {Name: indexFramework, Indexer: stringIndex[*completedTask](func(c *completedTask) string { return c.Task.FrameworkID })},
		}},
		tableKV: {Name: tableKV, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: kvKeyIndex{}},
		}},
		tableMeta: {Name: tableMeta, Indexes: map[string]*memdb.IndexSchema{
			indexID: {Name: indexID, Unique: true, Indexer: singletonIndex{}},
		}},
	}}
}

// appendKey appends s so that encoded keys sort like their strings and none is a prefix of
// another: each 0x00 byte is escaped as 0x00 0xff and the key ends with 0x00 0x01.
func appendKey(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, s[i])
		if s[i] == 0 {
			dst = append(dst, 0xff)
		}
	}
	return append(dst, 0, 1)
}

// stringArg returns the single string argument of a lookup.
func stringArg(args []any) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("index: want 1 argument, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return "", fmt.Errorf("index: argument is %T, want string", args[0])
	}
	return s, nil
}

// stringIndex indexes records of type T by one string field. Empty values are missing.
type stringIndex[T any] func(T) string

func (field stringIndex[T]) FromObject(obj any) (bool, []byte, error) {
	record, ok := obj.(T)
	if !ok {
		return false, nil, fmt.Errorf("index: object is %T", obj)
	}
	s := field(record)
	if s == "" {
		return false, nil, nil
	}
	return true, appendKey(nil, s), nil
}

func (stringIndex[T]) FromArgs(args ...any) ([]byte, error) {
	s, err := stringArg(args)
	if err != nil {
		return nil, err
	}
	return appendKey(nil, s), nil
}

// taskKeyIndex indexes tasks by (framework id, task id).
type taskKeyIndex struct{}

func (taskKeyIndex) FromObject(obj any) (bool, []byte, error) {
	task, ok := obj.(*Task)
	if !ok {
		return false, nil, fmt.Errorf("index: object is %T", obj)
	}
	return true, appendKey(appendKey(nil, task.FrameworkID), task.ID), nil
}

func (taskKeyIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index: want 1 argument, got %d", len(args))
	}
	key, ok := args[0].(TaskKey)
	if !ok {
		return nil, fmt.Errorf("index: argument is %T, want TaskKey", args[0])
	}
	return appendKey(appendKey(nil, key.FrameworkID), key.TaskID), nil
}

// seqIndex indexes the completed ring by sequence number, big-endian so that memdb's
// iteration order is ring order.
type seqIndex struct{}

func (seqIndex) FromObject(obj any) (bool, []byte, error) {
	completed, ok := obj.(*completedTask)
	if !ok {
		return false, nil, fmt.Errorf("index: object is %T", obj)
	}
	return true, binary.BigEndian.AppendUint64(nil, completed.Seq), nil
}

func (seqIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index: want 1 argument, got %d", len(args))
	}
	seq, ok := args[0].(uint64)
	if !ok {
		return nil, fmt.Errorf("index: argument is %T, want uint64", args[0])
	}
	return binary.BigEndian.AppendUint64(nil, seq), nil
}

// removedIndex holds only removed frameworks, so trimming them never scans live ones.
type removedIndex struct{}

func (removedIndex) FromObject(obj any) (bool, []byte, error) {
	framework, ok := obj.(*Framework)
	if !ok {
		return false, nil, fmt.Errorf("index: object is %T", obj)
	}
	return framework.Removed, []byte{1}, nil
}

func (removedIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 0 {
		return nil, fmt.Errorf("index: want no arguments, got %d", len(args))
	}
	return []byte{1}, nil
}

// singletonIndex keys the one record of the meta table.
type singletonIndex struct{}

func (singletonIndex) FromObject(obj any) (bool, []byte, error) {
	if _, ok := obj.(*meta); !ok {
		return false, nil, fmt.Errorf("index: object is %T", obj)
	}
	return true, []byte{0}, nil
}

func (singletonIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 0 {
		return nil, fmt.Errorf("index: want no arguments, got %d", len(args))
	}
	return []byte{0}, nil
}
