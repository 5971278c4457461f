package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

const raftPeersJSON = `{"servers":[
 {"id":"m3","address":"198.18.0.3:5052","suffrage":"voter","leader":false,"state":"unreachable"},
 {"id":"m1","address":"198.18.0.1:5052","suffrage":"voter","leader":true,"state":"leader"},
 {"id":"m2","address":"198.18.0.2:5052","suffrage":"nonvoter","leader":false,"state":"follower"}],
 "leader_id":"m1","term":4,"last_index":120,"answered_by":"m1"}`

// operatorMaster is a fake master for the operator Raft API: handler answers, and every
// request is recorded as "METHOD PATH BODY".
type operatorMaster struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []string
}

func newOperatorMaster(t testing.TB, handler func(w http.ResponseWriter, r *http.Request, body []byte)) *operatorMaster {
	t.Helper()
	m := &operatorMaster{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m.mu.Lock()
		m.requests = append(m.requests, r.Method+" "+r.URL.Path+" "+string(body))
		m.mu.Unlock()
		handler(w, r, body)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *operatorMaster) recorded() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.requests...)
}

func TestListPeers(t *testing.T) {
	srv := newOperatorMaster(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		_, _ = io.WriteString(w, raftPeersJSON)
	})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"operator", "raft", "list-peers"}, `
ID  ADDRESS          STATE        VOTER  LEADER
m1  198.18.0.1:5052  leader       yes    yes
m2  198.18.0.2:5052  follower     no     no
m3  198.18.0.3:5052  unreachable  yes    no
`},
		{[]string{"operator", "raft", "list-peers", "-o", "json"}, `
[
  {
    "id": "m1",
    "address": "198.18.0.1:5052",
    "suffrage": "voter",
    "leader": true,
    "state": "leader"
  },
  {
    "id": "m2",
    "address": "198.18.0.2:5052",
    "suffrage": "nonvoter",
    "leader": false,
    "state": "follower"
  },
  {
    "id": "m3",
    "address": "198.18.0.3:5052",
    "suffrage": "voter",
    "leader": false,
    "state": "unreachable"
  }
]
`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			a := newTestApp(t, map[string]string{addrEnv: srv.srv.URL})
			if code := a.runCLI(t, tt.args...); code != 0 {
				t.Fatalf("exit code = %d", code)
			}
			if got, want := a.stdout.String(), strings.TrimPrefix(tt.want, "\n"); got != want {
				t.Fatalf("output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestRemovePeer(t *testing.T) {
	leader := newOperatorMaster(t, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		if string(body) == `{"id":"m1"}` {
			http.Error(w, "refusing to remove m1: it is the leader", http.StatusConflict)
			return
		}
		_, _ = io.WriteString(w, `{"servers":[{"id":"m2","suffrage":"voter"},{"id":"m1","suffrage":"voter"},{"id":"m4","suffrage":"nonvoter"}],"leader_id":"m1"}`)
	})
	follower := newOperatorMaster(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		http.Redirect(w, r, leader.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	tests := []struct {
		name             string
		args             []string
		wantCode         int
		wantOut, wantErr string
	}{
		{"removed", []string{"operator", "raft", "remove-peer", "m3"}, 0,
			"Removed m3 from the Raft configuration. Voters now: m1, m2.\n", ""},
		{"refused", []string{"operator", "raft", "remove-peer", "m1"}, 1,
			"", "atoll: remove raft peer m1: 409 Conflict: refusing to remove m1: it is the leader\n"},
		{"no id", []string{"operator", "raft", "remove-peer"}, 2,
			"", "atoll: operator raft remove-peer takes one server id, got 0 arguments\nRun 'atoll operator raft remove-peer --help' for usage.\n"},
		{"two ids", []string{"operator", "raft", "remove-peer", "m2", "m3"}, 2,
			"", "atoll: operator raft remove-peer takes one server id, got 2 arguments\nRun 'atoll operator raft remove-peer --help' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestApp(t, map[string]string{addrEnv: follower.srv.URL})
			if code := a.runCLI(t, tt.args...); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d", code, tt.wantCode)
			}
			if got := a.stdout.String(); got != tt.wantOut {
				t.Errorf("stdout %q, want %q", got, tt.wantOut)
			}
			if got := a.stderr.String(); got != tt.wantErr {
				t.Errorf("stderr %q, want %q", got, tt.wantErr)
			}
		})
	}
}

var testArchiveMeta = api.SnapshotMeta{Master: "m2", Created: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC), ID: "4-120-1", Index: 120, Term: 4, RaftVersion: 1}

// snapshotArchive returns a valid snapshot archive of size bytes of state.
func snapshotArchive(t testing.TB, size int) []byte {
	t.Helper()
	meta := testArchiveMeta
	meta.Size = int64(size)
	var buf bytes.Buffer
	if err := api.WriteSnapshot(&buf, meta, bytes.NewReader(bytes.Repeat([]byte("x"), size))); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dirEntries lists the names in dir.
func dirEntries(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSnapshotSave(t *testing.T) {
	archive := snapshotArchive(t, 3000)
	tests := []struct {
		name     string
		reply    func(http.ResponseWriter)
		output   string
		wantCode int
		wantOut  string
		wantErr  string
		wantFile []byte
	}{
		{"saved", func(w http.ResponseWriter) { _, _ = w.Write(archive) }, "table", 0,
			fmt.Sprintf("Saved FILE: raft index 120, term 4, taken by m2 at 2026-03-01T11:00:00Z; 2.9 KiB of state, %d B on disk.\n", len(archive)),
			"", archive},
		{"json", func(w http.ResponseWriter) { _, _ = w.Write(archive) }, "json", 0, `{
  "format": "atoll-raft-snapshot",
  "version": 1,
  "master": "m2",
  "created": "2026-03-01T11:00:00Z",
  "id": "4-120-1",
  "index": 120,
  "term": 4,
  "raft_version": 1,
  "size": 3000
}
`, "", archive},
		{"truncated", func(w http.ResponseWriter) { _, _ = w.Write(archive[:len(archive)-40]) }, "table", 1,
			"", "atoll: save snapshot: bad snapshot archive: ", []byte("old backup")},
		{"master error", func(w http.ResponseWriter) { http.Error(w, "no state yet", http.StatusServiceUnavailable) }, "table", 1,
			"", "atoll: save snapshot: 503 Service Unavailable: no state yet\n", []byte("old backup")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newOperatorMaster(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { tt.reply(w) })
			dir := t.TempDir()
			file := filepath.Join(dir, "backup.snap")
			if err := os.WriteFile(file, []byte("old backup"), 0o600); err != nil {
				t.Fatal(err)
			}
			a := newTestApp(t, map[string]string{addrEnv: srv.srv.URL})
			if code := a.runCLI(t, "operator", "snapshot", "save", file, "-o", tt.output); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d", code, tt.wantCode)
			}
			if got := strings.ReplaceAll(a.stdout.String(), file, "FILE"); got != tt.wantOut {
				t.Errorf("stdout %q, want %q", got, tt.wantOut)
			}
			if got := a.stderr.String(); !strings.HasPrefix(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Errorf("stderr %q, want it to start %q", got, tt.wantErr)
			}
			got, err := os.ReadFile(file)
			if err != nil || !bytes.Equal(got, tt.wantFile) {
				t.Errorf("file holds %d bytes (%v), want %d", len(got), err, len(tt.wantFile))
			}
			if names := dirEntries(t, dir); len(names) != 1 || names[0] != "backup.snap" {
				t.Errorf("directory holds %q, want only backup.snap", names)
			}
			if want := []string{"GET /api/v1/raft/snapshot "}; !slices.Equal(srv.recorded(), want) {
				t.Errorf("requests %q, want %q", srv.recorded(), want)
			}
		})
	}
}

func TestSnapshotRestore(t *testing.T) {
	archive := snapshotArchive(t, 5<<20)
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.snap"), filepath.Join(dir, "bad.snap")
	if err := os.WriteFile(good, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, archive[:len(archive)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	replyJSON := `{"format":"atoll-raft-snapshot","version":1,"master":"m2","created":"2026-03-01T11:00:00Z","id":"4-120-1","index":120,"term":4,"raft_version":1,"size":5242880}`
	tests := []struct {
		name      string
		file      string
		status    int
		wantCode  int
		wantOut   string
		wantErr   *regexp.Regexp
		wantBytes int // archive bytes the master received
	}{
		{"restored", good, http.StatusOK, 0,
			"Restored FILE: the cluster state is now the snapshot m2 took at 2026-03-01T11:00:00Z (raft index 120, term 4, 5 MiB of state).\n",
			regexp.MustCompile(`^$`), len(archive)},
		{"refused by the master", good, http.StatusBadRequest, 1, "",
			regexp.MustCompile(`^atoll: restore snapshot: 400 Bad Request: no good\n$`), len(archive)},
		{"bad file", bad, http.StatusOK, 1, "",
			regexp.MustCompile(`^atoll: .*bad\.snap: bad snapshot archive: .*unexpected EOF; nothing was restored\n$`), -1},
		{"no file", filepath.Join(dir, "missing.snap"), http.StatusOK, 1, "",
			regexp.MustCompile(`^atoll: open .*missing\.snap: no such file or directory\n$`), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			received := -1
			leader := newOperatorMaster(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
				received = len(body)
				if !bytes.Equal(body, archive) || r.Header.Get("Content-Type") != "application/gzip" {
					http.Error(w, "not the archive", http.StatusBadRequest)
					return
				}
				if tt.status != http.StatusOK {
					http.Error(w, "no good", tt.status)
					return
				}
				_, _ = io.WriteString(w, replyJSON)
			})
			follower := newOperatorMaster(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				http.Redirect(w, r, leader.srv.URL+r.URL.Path, http.StatusTemporaryRedirect)
			})
			a := newTestApp(t, map[string]string{addrEnv: follower.srv.URL})
			if code := a.runCLI(t, "operator", "snapshot", "restore", tt.file); code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d", code, tt.wantCode)
			}
			if got := strings.ReplaceAll(a.stdout.String(), tt.file, "FILE"); got != tt.wantOut {
				t.Errorf("stdout %q, want %q", got, tt.wantOut)
			}
			if got := a.stderr.String(); !tt.wantErr.MatchString(got) {
				t.Errorf("stderr %q, want it to match %s", got, tt.wantErr)
			}
			if received != tt.wantBytes {
				t.Errorf("the leader received %d bytes, want %d", received, tt.wantBytes)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	tests := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 5 << 20: "5 MiB", 1<<30 + 1<<29: "1.5 GiB", 3 << 40: "3 TiB", 5 << 50: "5120 TiB"}
	for in, want := range tests {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

// TestOperatorCommandsOnARealMaster: list-peers, and a snapshot saved from one master and
// restored into another, through the real API.
func TestOperatorCommandsOnARealMaster(t *testing.T) {
	source := master.NewTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	framework := state.Framework{ID: "fw-1", Info: api.FrameworkInfo{User: "root", Name: "saved", FailoverTimeout: 3600}}
	if _, err := source.Raft().Apply(ctx, state.UpsertFrameworkType, state.UpsertFrameworkRequest{Framework: framework}); err != nil {
		t.Fatal(err)
	}

	a := newTestApp(t, map[string]string{addrEnv: source.URL})
	if code := a.runCLI(t, "operator", "raft", "list-peers"); code != 0 {
		t.Fatalf("list-peers: exit code %d", code)
	}
	want := fmt.Sprintf("ID        ADDRESS          STATE   VOTER  LEADER\nmaster-1  %-15s  leader  yes    yes\n", source.Raft().Addr())
	if got := a.stdout.String(); got != want {
		t.Errorf("list-peers:\n%s\nwant:\n%s", got, want)
	}

	file := filepath.Join(t.TempDir(), "cluster.snap")
	if code := newTestApp(t, map[string]string{addrEnv: source.URL}).runCLI(t, "operator", "snapshot", "save", file); code != 0 {
		t.Fatalf("save: exit code %d", code)
	}
	target := master.NewTestServer(t)
	a = newTestApp(t, map[string]string{addrEnv: target.URL})
	if code := a.runCLI(t, "operator", "snapshot", "restore", file); code != 0 {
		t.Fatalf("restore: exit code %d", code)
	}
	if !strings.HasPrefix(a.stdout.String(), "Restored "+file+": the cluster state is now the snapshot master-1 took at ") {
		t.Errorf("restore printed %q", a.stdout.String())
	}
	got, ok := target.Store().Framework("fw-1")
	if !ok || got.Info.Name != "saved" {
		t.Errorf("restored framework %+v (%v), want fw-1 named saved", got, ok)
	}
}
