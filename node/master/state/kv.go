package state

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// The key-value table holds what the built-in frameworks keep in the replicated state
// (apps, groups and deployments of the services framework, jobs, installed packages):
// values are JSON documents the master does not interpret, under keys in a namespace of
// the framework's own. One WriteKV command changes any number of keys of one namespace
// at once, so a group of a thousand apps is one Raft entry, applied whole or not at all.

// KVEntry is one stored value.
type KVEntry struct {
	Namespace string          `json:"namespace"`
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	// Index is the Raft index of the command that last wrote the value.
	Index uint64 `json:"index"`
}

// KVPut sets one key's value.
type KVPut struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// WriteKVRequest changes keys of one namespace: the deletes apply first (keys, then every
// key under each prefix), then the puts. Deleting a key that is not there is no error.
type WriteKVRequest struct {
	Namespace      string   `json:"namespace"`
	Puts           []KVPut  `json:"puts,omitempty"`
	Deletes        []string `json:"deletes,omitempty"`
	DeletePrefixes []string `json:"delete_prefixes,omitempty"`
}

// maxKVKey bounds a key's length: keys are ids and paths, not data.
const maxKVKey = 1024

// Validate reports the first thing wrong with the request.
func (r *WriteKVRequest) Validate() error {
	if r.Namespace == "" {
		return errors.New("key-value write: empty namespace")
	}
	if len(r.Puts)+len(r.Deletes)+len(r.DeletePrefixes) == 0 {
		return fmt.Errorf("key-value write to %q: nothing to write", r.Namespace)
	}
	for i, put := range r.Puts {
		switch {
		case put.Key == "":
			return fmt.Errorf("key-value write to %q: put %d: empty key", r.Namespace, i)
		case len(put.Key) > maxKVKey:
			return fmt.Errorf("key-value write to %q: put %d: key of %d bytes, at most %d", r.Namespace, i, len(put.Key), maxKVKey)
		case len(put.Value) == 0:
			return fmt.Errorf("key-value write to %q: key %q has no value", r.Namespace, put.Key)
		case !json.Valid(put.Value):
			return fmt.Errorf("key-value write to %q: key %q: the value is not JSON", r.Namespace, put.Key)
		}
	}
	for i, key := range r.Deletes {
		if key == "" {
			return fmt.Errorf("key-value write to %q: delete %d: empty key", r.Namespace, i)
		}
	}
	return nil
}

func (w *writer) writeKV(req *WriteKVRequest) error {
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCommand, err)
	}
	for _, key := range req.Deletes {
		existing, err := w.txn.First(tableKV, indexID, req.Namespace, key)
		if err != nil {
			return fmt.Errorf("look up %s/%s: %w", req.Namespace, key, err)
		}
		if existing == nil {
			continue
		}
		if err := w.txn.Delete(tableKV, existing); err != nil {
			return fmt.Errorf("delete %s/%s: %w", req.Namespace, key, err)
		}
		w.emit(Change{Kind: KVDeleted, KV: existing.(*KVEntry)})
	}
	for _, prefix := range req.DeletePrefixes {
		for _, entry := range all[*KVEntry](w.txn, tableKV, indexID+"_prefix", req.Namespace, prefix) {
			if err := w.txn.Delete(tableKV, entry); err != nil {
				return fmt.Errorf("delete %s/%s: %w", req.Namespace, entry.Key, err)
			}
			w.emit(Change{Kind: KVDeleted, KV: entry})
		}
	}
	for _, put := range req.Puts {
		entry := &KVEntry{Namespace: req.Namespace, Key: put.Key, Value: put.Value, Index: w.index}
		if err := w.txn.Insert(tableKV, entry); err != nil {
			return fmt.Errorf("put %s/%s: %w", req.Namespace, put.Key, err)
		}
		w.emit(Change{Kind: KVWritten, KV: entry})
	}
	return nil
}

// KV returns the value of one key.
func (s *Snapshot) KV(namespace, key string) (*KVEntry, bool) {
	return first[*KVEntry](s.txn, tableKV, indexID, namespace, key)
}

// KVList returns the entries of a namespace whose keys start with prefix, ordered by key.
func (s *Snapshot) KVList(namespace, prefix string) []*KVEntry {
	return all[*KVEntry](s.txn, tableKV, indexID+"_prefix", namespace, prefix)
}

// KV returns the value of one key.
func (s *Store) KV(namespace, key string) (*KVEntry, bool) { return s.Snapshot().KV(namespace, key) }

// KVList returns the entries of a namespace whose keys start with prefix, ordered by key.
func (s *Store) KVList(namespace, prefix string) []*KVEntry {
	return s.Snapshot().KVList(namespace, prefix)
}

// kvKeyIndex indexes entries by (namespace, key), and looks them up by namespace and key
// prefix: the namespace is encoded as appendKey does, the key raw, so that a prefix of the
// key is a prefix of the index key, and keys sort by their bytes within a namespace.
type kvKeyIndex struct{}

var _ memdb.PrefixIndexer = kvKeyIndex{}

func (kvKeyIndex) FromObject(obj any) (bool, []byte, error) {
	entry, ok := obj.(*KVEntry)
	if !ok {
		return false, nil, fmt.Errorf("index: object is %T", obj)
	}
	return true, append(appendKey(nil, entry.Namespace), entry.Key...), nil
}

func (kvKeyIndex) FromArgs(args ...any) ([]byte, error) {
	namespace, key, err := kvArgs(args)
	if err != nil {
		return nil, err
	}
	return append(appendKey(nil, namespace), key...), nil
}

func (i kvKeyIndex) PrefixFromArgs(args ...any) ([]byte, error) { return i.FromArgs(args...) }

// kvArgs returns a lookup's namespace and key (or key prefix).
func kvArgs(args []any) (namespace, key string, err error) {
	if len(args) != 2 {
		return "", "", fmt.Errorf("index: want 2 arguments, got %d", len(args))
	}
	namespace, ok1 := args[0].(string)
	key, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return "", "", fmt.Errorf("index: arguments are %T, %T, want strings", args[0], args[1])
	}
	return namespace, key, nil
}
