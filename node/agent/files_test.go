package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newFilesServer serves the agent's files API over a temporary sandboxes dir holding
// fw/task/stdout ("hello world\n"), and a secret file beside the sandboxes.
func newFilesServer(t *testing.T) (srv *httptest.Server, root, outside string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "sandboxes")
	taskDir := filepath.Join(root, "fw", "task")
	if err := os.MkdirAll(taskDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(taskDir, "stdout"), []byte("hello world\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside = filepath.Join(dir, "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(taskDir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("stdout", filepath.Join(taskDir, "inside")); err != nil {
		t.Fatal(err)
	}
	a := &Agent{sandboxes: root}
	srv = httptest.NewServer(a.handler())
	t.Cleanup(srv.Close)
	return srv, root, outside
}

func get(t *testing.T, srv *httptest.Server, path string, query url.Values) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path + "?" + query.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func TestFilesRead(t *testing.T) {
	srv, root, outside := newFilesServer(t)
	stdout := filepath.Join(root, "fw", "task", "stdout")
	tests := []struct {
		name       string
		query      url.Values
		wantStatus int
		wantBody   string
	}{
		{name: "whole file", query: url.Values{"path": {stdout}, "offset": {"0"}},
			wantStatus: 200, wantBody: `{"data":"hello world\n","offset":0}`},
		{name: "offset and length", query: url.Values{"path": {stdout}, "offset": {"6"}, "length": {"3"}},
			wantStatus: 200, wantBody: `{"data":"wor","offset":6}`},
		{name: "length past end", query: url.Values{"path": {stdout}, "offset": {"10"}, "length": {"100"}},
			wantStatus: 200, wantBody: `{"data":"d\n","offset":10}`},
		{name: "no offset gives the size", query: url.Values{"path": {stdout}},
			wantStatus: 200, wantBody: `{"data":"","offset":12}`},
		{name: "offset -1 gives the size", query: url.Values{"path": {stdout}, "offset": {"-1"}},
			wantStatus: 200, wantBody: `{"data":"","offset":12}`},
		{name: "offset past end", query: url.Values{"path": {stdout}, "offset": {"50"}},
			wantStatus: 200, wantBody: `{"data":"","offset":12}`},
		{name: "symlink inside", query: url.Values{"path": {filepath.Join(root, "fw", "task", "inside")}, "offset": {"0"}, "length": {"5"}},
			wantStatus: 200, wantBody: `{"data":"hello","offset":0}`},
		{name: "traversal", query: url.Values{"path": {root + "/fw/../../secret"}, "offset": {"0"}},
			wantStatus: 403, wantBody: `{"message":"path is outside the sandboxes: ` + root + `/fw/../../secret"}`},
		{name: "outside", query: url.Values{"path": {outside}, "offset": {"0"}},
			wantStatus: 403, wantBody: `{"message":"path is outside the sandboxes: ` + outside + `"}`},
		{name: "symlink escape", query: url.Values{"path": {filepath.Join(root, "fw", "task", "escape")}, "offset": {"0"}},
			wantStatus: 403, wantBody: `{"message":"path leads outside the sandboxes: ` + filepath.Join(root, "fw", "task", "escape") + `"}`},
		{name: "relative", query: url.Values{"path": {"../secret"}},
			wantStatus: 400, wantBody: `{"message":"path must be absolute: ../secret"}`},
		{name: "missing path", query: url.Values{},
			wantStatus: 400, wantBody: `{"message":"expecting 'path=value' in query"}`},
		{name: "not found", query: url.Values{"path": {filepath.Join(root, "nope")}},
			wantStatus: 404, wantBody: `{"message":"no such file or directory: ` + filepath.Join(root, "nope") + `"}`},
		{name: "below a file", query: url.Values{"path": {stdout + "/x"}},
			wantStatus: 404, wantBody: `{"message":"no such file or directory: ` + stdout + `/x"}`},
		// The process containerizer creates a task's stdout and stderr at its first
		// output; until then they read as empty files.
		{name: "stderr not written yet", query: url.Values{"path": {filepath.Join(root, "fw", "task", "stderr")}, "offset": {"0"}},
			wantStatus: 200, wantBody: `{"data":"","offset":0}`},
		{name: "size of stderr not written yet", query: url.Values{"path": {filepath.Join(root, "fw", "task", "stderr")}},
			wantStatus: 200, wantBody: `{"data":"","offset":0}`},
		{name: "offset in stderr not written yet", query: url.Values{"path": {filepath.Join(root, "fw", "task", "stderr")}, "offset": {"7"}},
			wantStatus: 200, wantBody: `{"data":"","offset":0}`},
		{name: "stderr of no sandbox", query: url.Values{"path": {filepath.Join(root, "fw", "nosuchtask", "stderr")}, "offset": {"0"}},
			wantStatus: 404, wantBody: `{"message":"no such file or directory: ` + filepath.Join(root, "fw", "nosuchtask", "stderr") + `"}`},
		{name: "stderr beside the sandboxes", query: url.Values{"path": {filepath.Join(root, "fw", "stderr")}, "offset": {"0"}},
			wantStatus: 404, wantBody: `{"message":"no such file or directory: ` + filepath.Join(root, "fw", "stderr") + `"}`},
		{name: "stderr below a sandbox", query: url.Values{"path": {filepath.Join(root, "fw", "task", "inside", "stderr")}, "offset": {"0"}},
			wantStatus: 404, wantBody: `{"message":"no such file or directory: ` + filepath.Join(root, "fw", "task", "inside", "stderr") + `"}`},
		{name: "other file not written", query: url.Values{"path": {filepath.Join(root, "fw", "task", "stdout.1")}, "offset": {"0"}},
			wantStatus: 404, wantBody: `{"message":"no such file or directory: ` + filepath.Join(root, "fw", "task", "stdout.1") + `"}`},
		{name: "directory", query: url.Values{"path": {filepath.Join(root, "fw")}, "offset": {"0"}},
			wantStatus: 400, wantBody: `{"message":"cannot read a directory"}`},
		{name: "bad offset", query: url.Values{"path": {stdout}, "offset": {"x"}},
			wantStatus: 400, wantBody: `{"message":"failed to parse offset: x"}`},
		{name: "negative offset", query: url.Values{"path": {stdout}, "offset": {"-2"}},
			wantStatus: 400, wantBody: `{"message":"negative offset provided: -2"}`},
		{name: "negative length", query: url.Values{"path": {stdout}, "offset": {"0"}, "length": {"-5"}},
			wantStatus: 400, wantBody: `{"message":"negative length provided: -5"}`},
		{name: "huge offset", query: url.Values{"path": {stdout}, "offset": {"99999999999999999999"}},
			wantStatus: 400, wantBody: `{"message":"failed to parse offset: 99999999999999999999"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, srv, "/files/read", tt.query)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Fatalf("got %d %s\nwant %d %s", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// TestFilesReadCapsLength reads at most 16 pages at once, as Mesos does.
func TestFilesReadCapsLength(t *testing.T) {
	srv, root, _ := newFilesServer(t)
	big := filepath.Join(root, "fw", "task", "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", maxReadLength+100)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, length := range []string{"-1", strconv.Itoa(maxReadLength + 50)} {
		status, body := get(t, srv, "/files/read", url.Values{"path": {big}, "offset": {"0"}, "length": {length}})
		var resp readResponse
		if err := json.Unmarshal([]byte(body), &resp); err != nil || status != 200 {
			t.Fatalf("length %s: %d %v", length, status, err)
		}
		if len(resp.Data) != maxReadLength || resp.Offset != 0 {
			t.Fatalf("length %s: read %d bytes at %d, want %d at 0", length, len(resp.Data), resp.Offset, maxReadLength)
		}
	}
}

func TestFilesBrowse(t *testing.T) {
	srv, root, outside := newFilesServer(t)
	taskDir := filepath.Join(root, "fw", "task")
	mtime := time.Unix(1700000000, 0)
	for _, name := range []string{"stdout", ""} {
		if err := os.Chtimes(filepath.Join(taskDir, name), mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(taskDir, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(taskDir, "sub"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	group, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Fatal(err)
	}
	linkTime := func(name string) int64 {
		info, err := os.Lstat(filepath.Join(taskDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return info.ModTime().Unix()
	}
	want := []fileEntry{
		{Path: taskDir + "/escape", NLink: 1, Size: int64(len(outside)), MTime: linkTime("escape"), Mode: "lrwxrwxrwx", UID: me.Username, GID: group.Name},
		{Path: taskDir + "/inside", NLink: 1, Size: 6, MTime: linkTime("inside"), Mode: "lrwxrwxrwx", UID: me.Username, GID: group.Name},
		{Path: taskDir + "/stdout", NLink: 1, Size: 12, MTime: 1700000000, Mode: "-rw-r--r--", UID: me.Username, GID: group.Name},
		{Path: taskDir + "/sub", NLink: 2, Size: 4096, MTime: 1700000000, Mode: "drwxr-x---", UID: me.Username, GID: group.Name},
	}
	if info, err := os.Stat(filepath.Join(taskDir, "sub")); err == nil {
		want[3].Size = info.Size() // directory sizes depend on the filesystem
	}
	status, body := get(t, srv, "/files/browse", url.Values{"path": {taskDir + "/"}})
	var got []fileEntry
	if err := json.Unmarshal([]byte(body), &got); err != nil || status != 200 {
		t.Fatalf("browse: %d %s (%v)", status, body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("browse:\n got %+v\nwant %+v", got, want)
	}

	errorCases := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{path: filepath.Join(taskDir, "stdout"), wantStatus: 400, wantBody: `{"message":"not a directory: ` + filepath.Join(taskDir, "stdout") + `"}`},
		{path: root + "/..", wantStatus: 403, wantBody: `{"message":"path is outside the sandboxes: ` + root + `/.."}`},
		{path: "/", wantStatus: 403, wantBody: `{"message":"path is outside the sandboxes: /"}`},
		{path: filepath.Join(root, "gone"), wantStatus: 404, wantBody: `{"message":"no such file or directory: ` + filepath.Join(root, "gone") + `"}`},
	}
	for _, tt := range errorCases {
		status, body := get(t, srv, "/files/browse", url.Values{"path": {tt.path}})
		if status != tt.wantStatus || body != tt.wantBody {
			t.Errorf("browse %s: got %d %s\nwant %d %s", tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}
}

func TestHealth(t *testing.T) {
	srv, _, _ := newFilesServer(t)
	status, body := get(t, srv, "/health", nil)
	if status != 200 || body != "ok" {
		t.Fatalf("health: %d %q", status, body)
	}
}

func TestModeString(t *testing.T) {
	tests := []struct {
		mode os.FileMode
		want string
	}{
		{0o644, "-rw-r--r--"},
		{os.ModeDir | 0o755, "drwxr-xr-x"},
		{os.ModeSymlink | 0o777, "lrwxrwxrwx"},
		{os.ModeNamedPipe | 0o600, "prw-------"},
		{os.ModeSocket | 0o700, "srwx------"},
		{os.ModeDevice | os.ModeCharDevice | 0o666, "crw-rw-rw-"},
		{os.ModeDevice | 0o660, "brw-rw----"},
		{os.ModeSetuid | 0o4755, "-rwxr-xr-x"},
	}
	for _, tt := range tests {
		if got := modeString(tt.mode); got != tt.want {
			t.Errorf("modeString(%v) = %q, want %q", tt.mode, got, tt.want)
		}
	}
}

// FuzzFilesRead feeds arbitrary query values to /files/read: it must answer with a known
// status and never panic.
func FuzzFilesRead(f *testing.F) {
	root := f.TempDir()
	if err := os.WriteFile(filepath.Join(root, "stdout"), []byte("hello"), 0o644); err != nil {
		f.Fatal(err)
	}
	handler := (&Agent{sandboxes: root}).handler()
	f.Add(root+"/stdout", "0", "3")
	f.Add(root+"/../x", "-1", "")
	f.Add("relative", "x", "-2")
	f.Fuzz(func(t *testing.T, path, offset, length string) {
		query := url.Values{"path": {path}, "offset": {offset}, "length": {length}}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/files/read?"+query.Encode(), nil))
		switch rec.Code {
		case 200, 400, 403, 404:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, query.Encode(), rec.Body)
		}
	})
}
