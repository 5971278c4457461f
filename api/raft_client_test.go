package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testSnapshotMeta = SnapshotMeta{
	Master:      "master-2",
	Created:     time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	ID:          "3-42-1772366400000",
	Index:       42,
	Term:        3,
	RaftVersion: 1,
}

const testSnapshotState = `{"version":1,"last_index":42}` + "\n" + `{"agent":{"id":"a1"}}` + "\n"

// testArchive is a valid snapshot archive of testSnapshotState.
func testArchive(t testing.TB) []byte {
	t.Helper()
	meta := testSnapshotMeta
	meta.Size = int64(len(testSnapshotState))
	var buf bytes.Buffer
	if err := WriteSnapshot(&buf, meta, strings.NewReader(testSnapshotState)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// archiveEntry is one tar entry of a hand-made archive.
type archiveEntry struct {
	name     string
	typeflag byte
	content  string
}

// makeArchive builds a gzipped tar of entries, as a snapshot archive or a broken one.
func makeArchive(t testing.TB, entries ...archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typeflag := e.typeflag
		if typeflag == 0 {
			typeflag = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typeflag, Mode: 0o600}
		if typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.content))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func metaJSON(t testing.TB, edit func(*SnapshotMeta)) string {
	t.Helper()
	meta := testSnapshotMeta
	meta.Format, meta.Version, meta.Size = SnapshotFormat, SnapshotFormatVersion, int64(len(testSnapshotState))
	if edit != nil {
		edit(&meta)
	}
	data, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func sumsOf(meta, state string) string {
	return fmt.Sprintf("%x  meta.json\n%x  state.bin\n", sha256.Sum256([]byte(meta)), sha256.Sum256([]byte(state)))
}

// TestSnapshotRoundTrip: an archive holds meta.json, state.bin and a SHA256SUMS that
// sha256sum would check, and reads back as written.
func TestSnapshotRoundTrip(t *testing.T) {
	for _, state := range []string{testSnapshotState, ""} {
		t.Run(fmt.Sprintf("%d bytes", len(state)), func(t *testing.T) {
			meta := testSnapshotMeta
			meta.Size = int64(len(state))
			var archive bytes.Buffer
			if err := WriteSnapshot(&archive, meta, strings.NewReader(state)); err != nil {
				t.Fatal(err)
			}

			gz, err := gzip.NewReader(bytes.NewReader(archive.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(gz)
			var names, contents []string
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				content, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				if !hdr.ModTime.Equal(meta.Created) || hdr.Mode != 0o600 {
					t.Errorf("%s: mtime %v mode %o, want %v and 600", hdr.Name, hdr.ModTime, hdr.Mode, meta.Created)
				}
				names = append(names, hdr.Name)
				contents = append(contents, string(content))
			}
			if want := []string{"meta.json", "state.bin", "SHA256SUMS"}; !reflect.DeepEqual(names, want) {
				t.Fatalf("entries %q, want %q", names, want)
			}
			wantMeta := fmt.Sprintf(`{
  "format": "atoll-raft-snapshot",
  "version": 1,
  "master": "master-2",
  "created": "2026-03-01T12:00:00Z",
  "id": "3-42-1772366400000",
  "index": 42,
  "term": 3,
  "raft_version": 1,
  "size": %d
}
`, len(state))
			if contents[0] != wantMeta {
				t.Errorf("meta.json:\n%s\nwant:\n%s", contents[0], wantMeta)
			}
			if contents[1] != state {
				t.Errorf("state.bin %q, want %q", contents[1], state)
			}
			if want := sumsOf(wantMeta, state); contents[2] != want {
				t.Errorf("SHA256SUMS:\n%s\nwant:\n%s", contents[2], want)
			}

			var gotState bytes.Buffer
			got, err := ReadSnapshot(bytes.NewReader(archive.Bytes()), &gotState)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			meta.Format, meta.Version = SnapshotFormat, SnapshotFormatVersion
			if got != meta {
				t.Errorf("meta %+v, want %+v", got, meta)
			}
			if gotState.String() != state {
				t.Errorf("state %q, want %q", gotState.String(), state)
			}
		})
	}
}

func TestReadSnapshotRejects(t *testing.T) {
	meta := metaJSON(t, nil)
	sums := sumsOf(meta, testSnapshotState)
	valid := testArchive(t)
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-6] ^= 0x01 // in gzip's CRC-32 trailer
	withMeta := func(edit func(*SnapshotMeta)) []byte {
		m := metaJSON(t, edit)
		return makeArchive(t, archiveEntry{name: "meta.json", content: m}, archiveEntry{name: "state.bin", content: testSnapshotState},
			archiveEntry{name: "SHA256SUMS", content: sumsOf(m, testSnapshotState)})
	}
	withSums := func(sums string) []byte {
		return makeArchive(t, archiveEntry{name: "meta.json", content: meta}, archiveEntry{name: "state.bin", content: testSnapshotState},
			archiveEntry{name: "SHA256SUMS", content: sums})
	}
	stateSum := fmt.Sprintf("%x", sha256.Sum256([]byte(testSnapshotState)))
	changedState := strings.Replace(testSnapshotState, "a1", "a2", 1)

	tests := []struct {
		name    string
		archive []byte
		wantErr string
	}{
		{"empty", nil, "not gzip-compressed: EOF"},
		{"not gzip", []byte(`{"version":1,"last_index":42}`), "not gzip-compressed: gzip: invalid header"},
		{"gzip of no tar", gzipped(t, "hello"), "reading the entry for meta.json: unexpected EOF"},
		{"truncated", valid[:len(valid)/2], "unexpected EOF"},
		{"flipped byte", flipped, "after the archive: gzip: invalid checksum"},
		{"trailing garbage", append(bytes.Clone(valid), "junk after the archive"...), "after the archive: gzip: invalid header"},
		{"short trailing garbage", append(bytes.Clone(valid), "junk"...), "after the archive: unexpected EOF"},
		{"no entries", makeArchive(t), "archive ends before meta.json"},
		{"state first", makeArchive(t, archiveEntry{name: "state.bin", content: testSnapshotState}), `entry "state.bin" where meta.json belongs`},
		{"meta is a directory", makeArchive(t, archiveEntry{name: "meta.json", typeflag: tar.TypeDir}), `meta.json is not a regular file (type '5')`},
		{"meta too large", makeArchive(t, archiveEntry{name: "meta.json", content: strings.Repeat(" ", 64<<10+1)}), "meta.json holds 65537 bytes, at most 65536 allowed"},
		{"meta not json", makeArchive(t, archiveEntry{name: "meta.json", content: "nope"}), "meta.json: invalid character 'o' in literal null (expecting 'u')"},
		{"other format", withMeta(func(m *SnapshotMeta) { m.Format = "consul" }), `meta.json: format "consul", want "atoll-raft-snapshot"`},
		{"newer version", withMeta(func(m *SnapshotMeta) { m.Version = 2 }), "meta.json: archive version 2, this build reads version 1"},
		{"index 0", withMeta(func(m *SnapshotMeta) { m.Index = 0 }), "meta.json: raft index 0, term 3: want both above 0"},
		{"negative size", withMeta(func(m *SnapshotMeta) { m.Size = -1 }), "meta.json: state size -1, want 0 to 17179869184"},
		{"size mismatch", withMeta(func(m *SnapshotMeta) { m.Size = 5 }), "state.bin holds 52 bytes, meta.json says 5"},
		{"no state", makeArchive(t, archiveEntry{name: "meta.json", content: meta}), "archive ends before state.bin"},
		{"no sums", makeArchive(t, archiveEntry{name: "meta.json", content: meta}, archiveEntry{name: "state.bin", content: testSnapshotState}), "archive ends before SHA256SUMS"},
		{"state corrupt", makeArchive(t, archiveEntry{name: "meta.json", content: meta}, archiveEntry{name: "state.bin", content: changedState},
			archiveEntry{name: "SHA256SUMS", content: sums}),
			fmt.Sprintf("state.bin is corrupt: its SHA-256 is %x, SHA256SUMS says %s", sha256.Sum256([]byte(changedState)), stateSum)},
		{"meta corrupt", makeArchive(t, archiveEntry{name: "meta.json", content: metaJSON(t, func(m *SnapshotMeta) { m.Index = 43 })},
			archiveEntry{name: "state.bin", content: testSnapshotState}, archiveEntry{name: "SHA256SUMS", content: sums}),
			"meta.json is corrupt"},
		{"sums lack state", withSums(sums[:strings.Index(sums, "\n")+1]), "SHA256SUMS lacks state.bin"},
		{"sums list twice", withSums(sums + stateSum + "  state.bin\n"), "SHA256SUMS lists state.bin twice"},
		{"sums unknown file", withSums(sums + stateSum + "  other\n"), `SHA256SUMS line 3: unknown file "other"`},
		{"sums garbage", withSums("garbage\n"), `SHA256SUMS line 1: "garbage" is not "SUM  NAME"`},
		{"sums short", withSums("abcd  meta.json\n"), `SHA256SUMS line 1: "abcd" is not a SHA-256 sum`},
		{"entry after sums", makeArchive(t, archiveEntry{name: "meta.json", content: meta}, archiveEntry{name: "state.bin", content: testSnapshotState},
			archiveEntry{name: "SHA256SUMS", content: sums}, archiveEntry{name: "extra"}), `unexpected entry "extra" after SHA256SUMS`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadSnapshot(bytes.NewReader(tt.archive), io.Discard)
			if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want ErrBadSnapshot with %q", err, tt.wantErr)
			}
		})
	}
}

func gzipped(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := io.WriteString(gz, s); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSnapshotSumsBinaryMode: SHA256SUMS written by `sha256sum -b` is accepted too.
func TestSnapshotSumsBinaryMode(t *testing.T) {
	meta := metaJSON(t, nil)
	sums := strings.ReplaceAll(sumsOf(meta, testSnapshotState), "  ", " *")
	archive := makeArchive(t, archiveEntry{name: "meta.json", content: meta}, archiveEntry{name: "state.bin", content: testSnapshotState},
		archiveEntry{name: "SHA256SUMS", content: sums})
	if _, err := ReadSnapshot(bytes.NewReader(archive), io.Discard); err != nil {
		t.Fatal(err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestReadSnapshotStateWriteError(t *testing.T) {
	_, err := ReadSnapshot(bytes.NewReader(testArchive(t)), failingWriter{})
	if err == nil || errors.Is(err, ErrBadSnapshot) || err.Error() != "copy state.bin: disk full" {
		t.Fatalf("error %v, want the writer's, not ErrBadSnapshot", err)
	}
}

func TestWriteSnapshotErrors(t *testing.T) {
	meta := testSnapshotMeta
	meta.Size = 5
	err := WriteSnapshot(io.Discard, meta, strings.NewReader("abc"))
	if err == nil || err.Error() != "write snapshot state.bin: content ended after 3 of 5 bytes" {
		t.Errorf("short state: %v", err)
	}
	meta.Index = 0
	err = WriteSnapshot(io.Discard, meta, strings.NewReader("abcde"))
	if err == nil || err.Error() != "write snapshot: raft index 0, term 3: want both above 0" {
		t.Errorf("index 0: %v", err)
	}
}

func FuzzReadSnapshot(f *testing.F) {
	meta := metaJSON(f, nil)
	f.Add(testArchive(f))
	f.Add(makeArchive(f, archiveEntry{name: "meta.json", content: meta}, archiveEntry{name: "state.bin", content: testSnapshotState},
		archiveEntry{name: "SHA256SUMS", content: sumsOf(meta, testSnapshotState)}))
	f.Add([]byte{})
	f.Add(gzipped(f, "meta.json"))
	f.Fuzz(func(t *testing.T, archive []byte) {
		var state bytes.Buffer
		meta, err := ReadSnapshot(bytes.NewReader(archive), &state)
		if err != nil {
			return
		}
		if int64(state.Len()) != meta.Size {
			t.Fatalf("read %d bytes of state, meta says %d", state.Len(), meta.Size)
		}
		// What was accepted writes back to an archive that reads the same.
		var again bytes.Buffer
		if err := WriteSnapshot(&again, meta, bytes.NewReader(state.Bytes())); err != nil {
			t.Fatalf("rewrite accepted snapshot: %v", err)
		}
		var state2 bytes.Buffer
		meta2, err := ReadSnapshot(&again, &state2)
		if err != nil {
			t.Fatalf("reread: %v", err)
		}
		if meta2.Index != meta.Index || meta2.Term != meta.Term || meta2.ID != meta.ID || !bytes.Equal(state.Bytes(), state2.Bytes()) {
			t.Fatalf("reread %+v, want %+v", meta2, meta)
		}
	})
}

// raftMaster answers the operator Raft API the way a master does, recording requests.
type raftMaster struct {
	*httptest.Server
	requests []string
	bodies   [][]byte
}

func newRaftMaster(t testing.TB, handler func(w http.ResponseWriter, r *http.Request, body []byte)) *raftMaster {
	t.Helper()
	m := &raftMaster{}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m.requests = append(m.requests, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		m.bodies = append(m.bodies, body)
		handler(w, r, body)
	}))
	t.Cleanup(m.Close)
	return m
}

const peersJSON = `{"servers":[{"id":"m1","address":"127.0.0.1:5052","suffrage":"voter","leader":true,"state":"leader"}],"leader_id":"m1","term":2,"last_index":9,"answered_by":"m1"}`

func TestRaftPeersAndRemovePeer(t *testing.T) {
	leader := newRaftMaster(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.URL.Path == RaftRemovePeerPath && string(body) != `{"id":"m3"}` {
			http.Error(w, "server \"x\" is not in the raft configuration", http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, peersJSON)
	})
	follower := newRaftMaster(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, peersJSON)
			return
		}
		http.Redirect(w, r, leader.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	want := &RaftPeers{Servers: []RaftServer{{ID: "m1", Address: "127.0.0.1:5052", Suffrage: RaftVoter, Leader: true, State: RaftLeader}},
		LeaderID: "m1", Term: 2, LastIndex: 9, AnsweredBy: "m1"}
	client := NewClient(follower.URL)

	got, err := client.RaftPeers(testContext(t))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("peers %+v, %v; want %+v", got, err, want)
	}
	got, err = client.RaftRemovePeer(testContext(t), "m3")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("remove-peer %+v, %v; want %+v", got, err, want)
	}
	if want := []string{"POST /api/v1/raft/remove-peer application/json"}; !reflect.DeepEqual(leader.requests, want) {
		t.Errorf("leader got %q, want %q", leader.requests, want)
	}
	_, err = client.RaftRemovePeer(testContext(t), "x")
	var httpErr *HTTPError
	if !errors.As(err, &httpErr) || err.Error() != `remove raft peer x: 404 Not Found: server "x" is not in the raft configuration` {
		t.Errorf("error %v, want a 404 HTTPError", err)
	}
}

func TestSaveSnapshot(t *testing.T) {
	archive := testArchive(t)
	tests := []struct {
		name    string
		reply   []byte
		wantErr string
	}{
		{"valid", archive, ""},
		{"truncated", archive[:len(archive)-10], "save snapshot: bad snapshot archive: after the archive: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRaftMaster(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
				w.Header().Set("Content-Type", "application/gzip")
				_, _ = w.Write(tt.reply)
			})
			var saved bytes.Buffer
			meta, err := NewClient(srv.URL).SaveSnapshot(testContext(t), &saved)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(saved.Bytes(), archive) {
				t.Errorf("saved %d bytes differing from the %d sent", saved.Len(), len(archive))
			}
			if meta.Index != 42 || meta.Term != 3 || meta.Size != int64(len(testSnapshotState)) {
				t.Errorf("meta %+v", meta)
			}
		})
	}
	srv := newRaftMaster(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		http.Error(w, "master m1 has no state to snapshot yet", http.StatusServiceUnavailable)
	})
	_, err := NewClient(srv.URL).SaveSnapshot(testContext(t), io.Discard)
	if err == nil || err.Error() != "save snapshot: 503 Service Unavailable: master m1 has no state to snapshot yet" {
		t.Errorf("error %v", err)
	}
}

type failAfter struct {
	n int
}

func (w *failAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return w.n, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestSaveSnapshotWriteError(t *testing.T) {
	archive := testArchive(t)
	srv := newRaftMaster(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { _, _ = w.Write(archive) })
	_, err := NewClient(srv.URL).SaveSnapshot(testContext(t), &failAfter{n: 10})
	if err == nil || err.Error() != "save snapshot: disk full" {
		t.Errorf("error %v, want the writer's", err)
	}
}

// TestRestoreSnapshotFollowsRedirect: the archive reaches the leader whole after a
// follower's 307, as a POST of application/gzip.
func TestRestoreSnapshotFollowsRedirect(t *testing.T) {
	archive := testArchive(t)
	leader := newRaftMaster(t, func(w http.ResponseWriter, _ *http.Request, body []byte) {
		meta, err := ReadSnapshot(bytes.NewReader(body), io.Discard)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(meta)
	})
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, leader.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer follower.Close()
	meta, err := NewClient(follower.URL).RestoreSnapshot(testContext(t), bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	want := testSnapshotMeta
	want.Format, want.Version, want.Size = SnapshotFormat, SnapshotFormatVersion, int64(len(testSnapshotState))
	if *meta != want {
		t.Errorf("meta %+v, want %+v", *meta, want)
	}
	if want := []string{"POST /api/v1/raft/snapshot application/gzip"}; !reflect.DeepEqual(leader.requests, want) || !bytes.Equal(leader.bodies[0], archive) {
		t.Errorf("leader got %q (%d bytes), want %q with the archive", leader.requests, len(leader.bodies[0]), want)
	}

	_, err = NewClient(leader.URL).RestoreSnapshot(testContext(t), bytes.NewReader(archive[:20]))
	if err == nil || !strings.HasPrefix(err.Error(), "restore snapshot: 400 Bad Request: bad snapshot archive") {
		t.Errorf("error %v, want the master's 400", err)
	}
}
