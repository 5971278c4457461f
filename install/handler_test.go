package install_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/atoll/atoll/install"
)

// TestHandler: each path answers with its content type and content: the installer with
// the URL it was fetched from and the master's join address baked in (or the request's
// host when the master has none), the uninstaller with the shared functions spliced in,
// the executable with its length (GET and HEAD), its checksum, computed once, and its
// platform. A Host header the script cannot carry, another method and an unreadable
// executable are refused.
func TestHandler(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "atoll")
	const binary = "\x7fELF pretend atoll\n"
	if err := os.WriteFile(exe, []byte(binary), 0o755); err != nil {
		t.Fatal(err)
	}
	withJoin := install.NewHandler(install.Config{Join: "10.0.0.1:7946", Executable: exe, GOOS: "linux", GOARCH: "riscv64"})
	noJoin := install.NewHandler(install.Config{Executable: exe})
	missing := install.NewHandler(install.Config{Executable: filepath.Join(dir, "gone")})
	for _, tc := range []struct {
		name    string
		h       http.Handler
		method  string
		path    string
		host    string
		status  int
		ctype   string
		headers map[string]string
		// body is the exact body, or, for the scripts, lines it must have.
		body  string
		lines []string
	}{
		{name: "script", h: withJoin, method: "GET", path: install.ScriptPath, host: "m1.example:5050", status: 200, ctype: "text/x-shellscript; charset=utf-8",
			lines: []string{"served_url='http://m1.example:5050'", "served_join='10.0.0.1:7946'", "stop_background() {", "main \"$@\""}},
		{name: "script without a join address", h: noJoin, method: "GET", path: install.ScriptPath, host: "[fd00::1]:5050", status: 200, ctype: "text/x-shellscript; charset=utf-8",
			lines: []string{"served_url='http://[fd00::1]:5050'", "served_join='[fd00::1]'"}},
		{name: "script for a host without port", h: noJoin, method: "GET", path: install.ScriptPath, host: "m1", status: 200, ctype: "text/x-shellscript; charset=utf-8",
			lines: []string{"served_url='http://m1'", "served_join='m1'"}},
		{name: "script for a host a shell would run", h: withJoin, method: "GET", path: install.ScriptPath, host: "m1';reboot;'", status: 400, ctype: "text/plain; charset=utf-8",
			body: "install.sh: the Host header \"m1';reboot;'\" is not a host[:port] the script can carry\n"},
		{name: "uninstaller", h: withJoin, method: "GET", path: install.UninstallPath, host: "m1", status: 200, ctype: "text/x-shellscript; charset=utf-8",
			lines: []string{settingsLine, "stop_background() {", "main \"$@\""}},
		{name: "binary", h: withJoin, method: "GET", path: install.BinaryPath, host: "m1", status: 200, ctype: "application/octet-stream",
			headers: map[string]string{"Content-Length": strconv.Itoa(len(binary))}, body: binary},
		{name: "binary, HEAD", h: withJoin, method: "HEAD", path: install.BinaryPath, host: "m1", status: 200, ctype: "application/octet-stream",
			headers: map[string]string{"Content-Length": strconv.Itoa(len(binary))}},
		{name: "checksum", h: withJoin, method: "GET", path: install.ChecksumPath, host: "m1", status: 200, ctype: "text/plain; charset=utf-8",
			body: sum(binary) + "  atoll\n"},
		{name: "platform", h: withJoin, method: "GET", path: install.PlatformPath, host: "m1", status: 200, ctype: "text/plain; charset=utf-8",
			body: "linux/riscv64\n"},
		{name: "POST", h: withJoin, method: "POST", path: install.ScriptPath, host: "m1", status: 405, ctype: "text/plain; charset=utf-8",
			body: "Method Not Allowed\n"},
		{name: "unreadable binary", h: missing, method: "GET", path: install.BinaryPath, host: "m1", status: 500, ctype: "text/plain; charset=utf-8",
			body: "the master cannot read its atoll executable: open " + filepath.Join(dir, "gone") + ": no such file or directory\n"},
		{name: "unreadable binary's checksum", h: missing, method: "GET", path: install.ChecksumPath, host: "m1", status: 500, ctype: "text/plain; charset=utf-8",
			body: "the master cannot read its atoll executable: open " + filepath.Join(dir, "gone") + ": no such file or directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://m1"+tc.path, nil)
			req.Host = tc.host
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, req)
			resp := rec.Result()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.ctype {
				t.Fatalf("%d %q, want %d %q; body:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), tc.status, tc.ctype, body)
			}
			for k, v := range tc.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if tc.lines == nil {
				if string(body) != tc.body {
					t.Errorf("body %q, want %q", body, tc.body)
				}
				return
			}
			lines := strings.Split(string(body), "\n")
			for _, want := range tc.lines {
				if !contains(lines, want) {
					t.Errorf("no line %q in:\n%s", want, body)
				}
			}
			if strings.Contains(string(body), "@ATOLL_") || strings.Contains(string(body), "# @lib.sh") {
				t.Errorf("placeholders left in:\n%s", body)
			}
		})
	}

	// The checksum is the one of the executable when first asked, even once the file
	// changes (a master's own executable never does).
	if err := os.WriteFile(exe, []byte("changed\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	withJoin.ServeHTTP(rec, httptest.NewRequest("GET", install.ChecksumPath, nil))
	if got, want := rec.Body.String(), sum(binary)+"  atoll\n"; got != want {
		t.Errorf("checksum after the file changed: %q, want the cached %q", got, want)
	}
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// TestRegister: Register serves every path of Paths on the mux and nothing else, and
// the default executable is the running one.
func TestRegister(t *testing.T) {
	mux := http.NewServeMux()
	install.Register(mux, install.Config{Join: "10.0.0.1:7946"})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Skipf("no /proc/self/exe: %v", err)
	}
	for _, p := range install.Paths {
		get(t, srv.URL+p)
	}
	if got := get(t, srv.URL+install.ChecksumPath); string(got) != sum(string(self))+"  atoll\n" {
		t.Errorf("checksum %q, want the test binary's", got)
	}
	resp, err := http.Get(srv.URL + "/download/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/download/other: %s, want 404", resp.Status)
	}
}

var servedURL = regexp.MustCompile(`(?m)^served_url='(.*)'$`)

// FuzzScriptHost: whatever the Host header, the installer is refused or carries the URL
// as a single-quoted shell word of letters, digits and . : [ ] - alone.
func FuzzScriptHost(f *testing.F) {
	for _, s := range []string{"m1:5050", "[::1]:5050", "m1", "m1';reboot;'", "m1\nx", "a b", "", "[", "m1:99999", "$(id)"} {
		f.Add(s)
	}
	h := install.NewHandler(install.Config{Join: "10.0.0.1:7946", Executable: os.DevNull})
	safe := regexp.MustCompile(`^http://[A-Za-z0-9.:\[\]-]+$`)
	f.Fuzz(func(t *testing.T, host string) {
		req := httptest.NewRequest("GET", install.ScriptPath, nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest:
			return
		case http.StatusOK:
		default:
			t.Fatalf("Host %q: status %d", host, rec.Code)
		}
		m := servedURL.FindAllStringSubmatch(rec.Body.String(), -1)
		if len(m) != 1 || m[0][1] != "http://"+host || !safe.MatchString(m[0][1]) {
			t.Fatalf("Host %q: served_url lines %q", host, m)
		}
	})
}
