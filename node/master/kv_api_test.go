package master_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/node/master/state"
)

// kvCall sends one key-value API request and returns the status and body.
func kvCall(t *testing.T, method, target, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, target, err)
	}
	return resp.StatusCode, string(data)
}

// TestKVAPI: a namespace of its own is written, read by key (keys with slashes,
// path-escaped) and by prefix, and deleted from; each answer is exact.
func TestKVAPI(t *testing.T) {
	ts := master.NewTestServer(t)
	base := ts.URL + master.KVPath
	status, body := kvCall(t, "POST", base+"fw.one", `{"puts": [{"key": "app//web", "value": {"id": "/web"}}, {"key": "app//db", "value": 1}, {"key": "framework-id", "value": "f-1"}]}`)
	if status != http.StatusOK {
		t.Fatalf("write: %d %s", status, body)
	}
	var written master.KVWritten
	if err := json.Unmarshal([]byte(body), &written); err != nil || written.Index == 0 {
		t.Fatalf("write answered %s (%v), want a Raft index", body, err)
	}
	entry := func(key, value string) string {
		data, _ := json.Marshal(state.KVEntry{Namespace: "fw.one", Key: key, Value: json.RawMessage(value), Index: written.Index})
		return string(data)
	}
	tests := []struct {
		name, path string
		status     int
		body       string
	}{
		{"one key", "fw.one/" + url.PathEscape("app//web"), http.StatusOK, entry("app//web", `{"id":"/web"}`)},
		{"plain key", "fw.one/framework-id", http.StatusOK, entry("framework-id", `"f-1"`)},
		{"missing key", "fw.one/app%2F%2Fnone", http.StatusNotFound, `key "app//none" is not in key-value namespace "fw.one"`},
		{"empty key", "fw.one/", http.StatusBadRequest, `key-value read in "fw.one": empty key`},
		{"prefix", "fw.one?prefix=app/", http.StatusOK, `{"entries":[` + entry("app//db", "1") + "," + entry("app//web", `{"id":"/web"}`) + "]}"},
		{"whole namespace", "fw.one", http.StatusOK, `{"entries":[` + entry("app//db", "1") + "," + entry("app//web", `{"id":"/web"}`) + "," + entry("framework-id", `"f-1"`) + "]}"},
		{"no match", "fw.one?prefix=group/", http.StatusOK, `{"entries":[]}`},
		{"another namespace", "fw.two", http.StatusOK, `{"entries":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := kvCall(t, "GET", base+tt.path, "")
			if status != tt.status || strings.TrimSpace(body) != tt.body {
				t.Errorf("GET %s = %d %s, want %d %s", tt.path, status, body, tt.status, tt.body)
			}
		})
	}

	status, body = kvCall(t, "POST", base+"fw.one", `{"namespace": "fw.one", "deletes": ["framework-id"], "delete_prefixes": ["app//w"]}`)
	if status != http.StatusOK {
		t.Fatalf("delete: %d %s", status, body)
	}
	status, body = kvCall(t, "GET", base+"fw.one", "")
	if want := `{"entries":[` + entry("app//db", "1") + "]}"; status != http.StatusOK || strings.TrimSpace(body) != want {
		t.Errorf("after the deletes: %d %s, want %s", status, body, want)
	}
}

// TestKVAPIRefuses: the built-in frameworks' namespaces, malformed names and bad writes
// are refused with 400 and the reason, and change nothing.
func TestKVAPIRefuses(t *testing.T) {
	ts := master.NewTestServer(t)
	base := ts.URL + master.KVPath
	const put = `{"puts": [{"key": "framework-id", "value": "stolen"}]}`
	reserved := func(ns, owner string) string {
		return `key-value namespace "` + ns + `" belongs to ` + owner + ` and cannot be used through the key-value API: give the framework a namespace of its own`
	}
	const badName = `: want 1 to 63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit`
	tests := []struct {
		name, method, path, body string
		want                     string
	}{
		{"write services", "POST", "services", put, reserved("services", "the built-in services framework")},
		{"read services", "GET", "services", "", reserved("services", "the built-in services framework")},
		{"read a services key", "GET", "services/framework-id", "", reserved("services", "the built-in services framework")},
		{"write jobs", "POST", "jobs", put, reserved("jobs", "the built-in jobs framework")},
		{"read jobs", "GET", "jobs?prefix=job/", "", reserved("jobs", "the built-in jobs framework")},
		{"upper case", "POST", "Marathon", put, `key-value namespace "Marathon"` + badName},
		{"leading dot", "POST", ".hidden", put, `key-value namespace ".hidden"` + badName},
		{"space", "GET", "a%20b", "", `key-value namespace "a b"` + badName},
		{"too long", "POST", strings.Repeat("x", 64), put, `key-value namespace "` + strings.Repeat("x", 64) + `"` + badName},
		{"body names another namespace", "POST", "fw.one", `{"namespace": "services", "puts": [{"key": "k", "value": 1}]}`, `key-value write to "fw.one": the body names namespace "services"`},
		{"nothing to write", "POST", "fw.one", `{}`, `key-value write to "fw.one": nothing to write`},
		{"empty delete key", "POST", "fw.one", `{"puts": [{"key": "k", "value": "a"}], "deletes": [""]}`, `key-value write to "fw.one": delete 0: empty key`},
		{"not JSON", "POST", "fw.one", `{"puts": [`, `failed to parse body into JSON: unexpected EOF`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := kvCall(t, tt.method, base+tt.path, tt.body)
			if status != http.StatusBadRequest || strings.TrimSpace(body) != tt.want {
				t.Errorf("%s %s = %d %s, want 400 %s", tt.method, tt.path, status, body, tt.want)
			}
		})
	}
	for _, ns := range []string{"services", "jobs", "fw.one"} {
		if entries := ts.Store().KVList(ns, ""); len(entries) != 0 {
			t.Errorf("namespace %s holds %d entries after refused writes, want none", ns, len(entries))
		}
	}
}

// TestKVAPIOnFollowers: a follower forwards writes and reads to the leader, so a write
// through one follower is read at once through another.
func TestKVAPIOnFollowers(t *testing.T) {
	c := master.NewTestCluster(t, 3)
	followers := c.Followers()
	status, body := kvCall(t, "POST", followers[0].URL+master.KVPath+"fw.one", `{"puts": [{"key": "k", "value": 7}]}`)
	if status != http.StatusOK {
		t.Fatalf("write through a follower: %d %s", status, body)
	}
	status, body = kvCall(t, "GET", followers[1].URL+master.KVPath+"fw.one/k", "")
	var got state.KVEntry
	if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil || string(got.Value) != "7" {
		t.Fatalf("read through the other follower: %d %s (%v), want the value 7", status, body, err)
	}
}

// FuzzCheckKVNamespace: a namespace passes exactly when it is a short lower-case name
// that no built-in framework owns.
func FuzzCheckKVNamespace(f *testing.F) {
	for _, seed := range []string{"services", "jobs", "services.marathon-user", "a", "", "-a", "A", "a/b", strings.Repeat("a", 63), strings.Repeat("a", 64)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ns string) {
		ok := ns != "services" && ns != "jobs" && len(ns) >= 1 && len(ns) <= 63 && ns[0] != '.' && ns[0] != '_' && ns[0] != '-'
		for _, r := range ns {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				ok = false
			}
		}
		if err := master.CheckKVNamespace(ns); (err == nil) != ok {
			t.Errorf("CheckKVNamespace(%q) = %v, want ok=%v", ns, err, ok)
		}
	})
}
