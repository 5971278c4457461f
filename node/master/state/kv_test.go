package state

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func TestWriteKV(t *testing.T) {
	fsm := NewFSM(testLogger(t))
	var changes []string
	fsm.OnChange(func(c Change) {
		changes = append(changes, c.Kind.String()+" "+c.KV.Namespace+" "+c.KV.Key+" "+string(c.KV.Value))
	})
	put := func(key, value string) KVPut { return KVPut{Key: key, Value: json.RawMessage(value)} }
	results := applyAll(t, fsm, 1,
		command{WriteKVType, WriteKVRequest{Namespace: "apps", Puts: []KVPut{
			put("/g/a", `{"id":"/g/a"}`), put("/g/b", `{"id":"/g/b"}`), put("/g2/c", `1`), put("/h", `true`),
		}}},
		command{WriteKVType, WriteKVRequest{Namespace: "jobs", Puts: []KVPut{put("/g/a", `"job"`)}}},
		// Deletes apply before puts: the prefix delete removes /g/a and /g/b, the put
		// brings /g/b back, and /g2/c is not under "/g/".
		command{WriteKVType, WriteKVRequest{Namespace: "apps", Puts: []KVPut{put("/g/b", `2`)}, Deletes: []string{"/h", "/missing"}, DeletePrefixes: []string{"/g/"}}},
	)
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("command %d: %v", i, r.Err)
		}
	}
	wantChanges := []string{
		`KVWritten apps /g/a {"id":"/g/a"}`, `KVWritten apps /g/b {"id":"/g/b"}`, `KVWritten apps /g2/c 1`, `KVWritten apps /h true`,
		`KVWritten jobs /g/a "job"`,
		`KVDeleted apps /h true`, `KVDeleted apps /g/a {"id":"/g/a"}`, `KVDeleted apps /g/b {"id":"/g/b"}`, `KVWritten apps /g/b 2`,
	}
	if !reflect.DeepEqual(changes, wantChanges) {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(changes, "\n"), strings.Join(wantChanges, "\n"))
	}
	store := fsm.Store()
	want := []*KVEntry{
		{Namespace: "apps", Key: "/g/b", Value: json.RawMessage(`2`), Index: 3},
		{Namespace: "apps", Key: "/g2/c", Value: json.RawMessage(`1`), Index: 1},
	}
	if got := store.KVList("apps", ""); !reflect.DeepEqual(got, want) {
		t.Errorf("KVList(apps) = %s, want %s", toJSON(t, got), toJSON(t, want))
	}
	if got := store.KVList("apps", "/g"); !reflect.DeepEqual(got, want) {
		t.Errorf("KVList(apps, /g) = %s, want %s", toJSON(t, got), toJSON(t, want))
	}
	if got := store.KVList("apps", "/g/"); !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("KVList(apps, /g/) = %s, want %s", toJSON(t, got), toJSON(t, want[:1]))
	}
	if got, ok := store.KV("jobs", "/g/a"); !ok || string(got.Value) != `"job"` {
		t.Errorf("KV(jobs, /g/a) = %+v, %v", got, ok)
	}
	if got, ok := store.KV("apps", "/g/a"); ok {
		t.Errorf("KV(apps, /g/a) = %+v after its delete", got)
	}
	// A namespace is not a prefix of another.
	applyAll(t, fsm, 4, command{WriteKVType, WriteKVRequest{Namespace: "app", Puts: []KVPut{put("s", `0`)}}})
	if got := store.KVList("apps", ""); len(got) != 2 {
		t.Errorf("KVList(apps) holds %d entries after a write to namespace app, want 2", len(got))
	}
	if got := store.KVList("app", ""); len(got) != 1 || got[0].Key != "s" {
		t.Errorf("KVList(app) = %s", toJSON(t, got))
	}
}

func TestWriteKVRejectsBadRequests(t *testing.T) {
	tests := []struct {
		req  WriteKVRequest
		want string
	}{
		{WriteKVRequest{Puts: []KVPut{{Key: "k", Value: json.RawMessage(`1`)}}}, "empty namespace"},
		{WriteKVRequest{Namespace: "apps"}, `key-value write to "apps": nothing to write`},
		{WriteKVRequest{Namespace: "apps", Puts: []KVPut{{Value: json.RawMessage(`1`)}}}, "put 0: empty key"},
		{WriteKVRequest{Namespace: "apps", Puts: []KVPut{{Key: strings.Repeat("k", maxKVKey+1), Value: json.RawMessage(`1`)}}}, "key of 1025 bytes, at most 1024"},
		{WriteKVRequest{Namespace: "apps", Puts: []KVPut{{Key: "k"}}}, `key "k" has no value`},
		{WriteKVRequest{Namespace: "apps", Deletes: []string{""}}, "delete 0: empty key"},
	}
	if err := (&WriteKVRequest{Namespace: "apps", Puts: []KVPut{{Key: "k", Value: json.RawMessage(`{`)}}}).Validate(); err == nil || !strings.Contains(err.Error(), `key "k": the value is not JSON`) {
		t.Errorf("Validate of a value that is not JSON = %v", err)
	}
	for i, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if err := tt.req.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an error containing %q", err, tt.want)
			}
			body, err := json.Marshal(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if tt.req.Puts != nil && tt.req.Puts[0].Value == nil {
				// Marshalled, a missing value would be null; an entry may lack it.
				body = []byte(`{"namespace":"apps","puts":[{"key":"k"}]}`)
			}
			fsm := NewFSM(testLogger(t))
			result, _ := fsm.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: append([]byte{byte(WriteKVType)}, body...)}).(*ApplyResult)
			if result == nil || !errors.Is(result.Err, ErrBadCommand) || !strings.Contains(result.Err.Error(), tt.want) {
				t.Errorf("apply = %+v, want an ErrBadCommand containing %q", result, tt.want)
			}
			if got := fsm.Store().KVList("apps", ""); len(got) != 0 {
				t.Errorf("a rejected write stored %s", toJSON(t, got))
			}
		})
	}
}
