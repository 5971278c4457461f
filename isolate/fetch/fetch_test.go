package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/atoll/atoll/api"
)

// helloEntries is the content of testdata/hello.tar.bz2 (made with GNU tar and bzip2, as
// Go has no bzip2 writer), which every archive test serves in its own format.
var helloEntries = []entry{
	{name: "hello/", typ: tar.TypeDir},
	{name: "hello/bin/", typ: tar.TypeDir},
	{name: "hello/bin/run.sh", body: "#!/bin/sh\necho run\n", mode: 0o755},
	{name: "hello/world.txt", body: "hello world\n"},
}

var helloTree = []string{
	"hello drwxr-xr-x",
	"hello/bin drwxr-xr-x",
	"hello/bin/run.sh -rwxr-xr-x #!/bin/sh\necho run\n",
	"hello/world.txt -rw-r--r-- hello world\n",
}

func TestFetchArchives(t *testing.T) {
	helloTar := tarOf(t, helloEntries...)
	bz2, err := os.ReadFile("testdata/hello.tar.bz2")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"/a.tar":          helloTar,
		"/a.tar.gz":       gzipOf(t, helloTar),
		"/a.tgz":          gzipOf(t, helloTar),
		"/a.tar.xz":       xzOf(t, helloTar),
		"/a.txz":          xzOf(t, helloTar),
		"/a.tar.bz2":      bz2,
		"/a.tbz2":         bz2,
		"/a.zip":          zipOf(t, helloEntries...),
		"/UPPER.TAR.GZ":   gzipOf(t, helloTar),
		"/download/v1.2/": nil,
	}
	srv := serveFiles(t, files)
	f := testFetcher(t)
	for name, body := range files {
		if body == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			sandbox := t.TempDir()
			res, err := f.Fetch(context.Background(), sandbox, []api.CommandURI{{Value: srv.URL + name}})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := Result{URI: srv.URL + name, Path: filepath.Join(sandbox, name[1:]), Size: int64(len(body)), Extracted: true}
			if len(res) != 1 || res[0] != want {
				t.Errorf("results = %+v, want [%+v]", res, want)
			}
			got := tree(t, sandbox)
			wantTree := append([]string{name[1:] + " -rw-r--r-- " + string(body)}, helloTree...)
			slices.Sort(wantTree)
			if !slices.Equal(got, wantTree) {
				t.Errorf("sandbox:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantTree, "\n"))
			}
		})
	}
}

func TestFetchOptions(t *testing.T) {
	helloTgz := gzipOf(t, tarOf(t, helloEntries...))
	local := filepath.Join(t.TempDir(), "local.txt")
	if err := os.WriteFile(local, []byte("local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := serveFiles(t, map[string][]byte{
		"/tool.tar.gz":   helloTgz,
		"/notes.txt":     []byte("notes\n"),
		"/data.json.gz":  gzipOf(t, []byte(`{"a":1}`)),
		"/download":      helloTgz,
		"/with space.sh": []byte("echo\n"),
	})
	no := false
	tests := []struct {
		name      string
		uri       api.CommandURI
		tree      []string
		extracted bool
	}{
		{
			name: "plain file",
			uri:  api.CommandURI{Value: srv.URL + "/notes.txt"},
			tree: []string{"notes.txt -rw-r--r-- notes\n"},
		},
		{
			name: "executable is never extracted",
			uri:  api.CommandURI{Value: srv.URL + "/tool.tar.gz", Executable: true},
			tree: []string{"tool.tar.gz -rwxr-xr-x " + string(helloTgz)},
		},
		{
			name: "extract false",
			uri:  api.CommandURI{Value: srv.URL + "/tool.tar.gz", Extract: &no},
			tree: []string{"tool.tar.gz -rw-r--r-- " + string(helloTgz)},
		},
		{
			name: "output file in a subdirectory",
			uri:  api.CommandURI{Value: srv.URL + "/notes.txt", OutputFile: "sub/dir/renamed"},
			tree: []string{"sub drwxr-xr-x", "sub/dir drwxr-xr-x", "sub/dir/renamed -rw-r--r-- notes\n"},
		},
		{
			name:      "output file names the archive type",
			uri:       api.CommandURI{Value: srv.URL + "/download", OutputFile: "app.tgz"},
			tree:      append([]string{"app.tgz -rw-r--r-- " + string(helloTgz)}, helloTree...),
			extracted: true,
		},
		{
			name:      "gzipped file",
			uri:       api.CommandURI{Value: srv.URL + "/data.json.gz"},
			tree:      []string{"data.json -rw-r--r-- {\"a\":1}", "data.json.gz -rw-r--r-- " + string(gzipOf(t, []byte(`{"a":1}`)))},
			extracted: true,
		},
		{
			name: "escaped name",
			uri:  api.CommandURI{Value: srv.URL + "/with%20space.sh", Executable: true},
			tree: []string{"with space.sh -rwxr-xr-x echo\n"},
		},
		{
			name: "file uri",
			uri:  api.CommandURI{Value: "file://" + local},
			tree: []string{"local.txt -rw-r--r-- local\n"},
		},
		{
			name: "absolute path, cache ignored",
			uri:  api.CommandURI{Value: local, Cache: true, OutputFile: "copy"},
			tree: []string{"copy -rw-r--r-- local\n"},
		},
	}
	f := testFetcher(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sandbox := t.TempDir()
			res, err := f.Fetch(context.Background(), sandbox, []api.CommandURI{tt.uri})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if len(res) != 1 || res[0].Extracted != tt.extracted || res[0].FromCache {
				t.Errorf("results = %+v, want extracted %v, not from cache", res, tt.extracted)
			}
			want := slices.Sorted(slices.Values(tt.tree))
			if got := tree(t, sandbox); !slices.Equal(got, want) {
				t.Errorf("sandbox:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestFetchErrors(t *testing.T) {
	srv := serveFiles(t, map[string][]byte{"/big": make([]byte, 2000), "/bad.tgz": []byte("not gzip")})
	stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Chunked, no Content-Length: the limit is found while reading.
		for range 3 {
			w.Write(make([]byte, 800))
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(stream.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	closed := closedPort(t)
	tests := []struct {
		name     string
		uri      api.CommandURI
		err      string
		sentinel error
	}{
		{name: "not found", uri: api.CommandURI{Value: srv.URL + "/missing.txt"}, err: "fetch uris[0] " + srv.URL + "/missing.txt: GET: 404 Not Found"},
		{
			name: "password redacted",
			uri:  api.CommandURI{Value: "http://user:secret@" + host + "/missing.txt"},
			err:  "fetch uris[0] http://user:xxxxx@" + host + "/missing.txt: GET: 404 Not Found",
		},
		{name: "unsupported scheme", uri: api.CommandURI{Value: "hdfs://namenode/x.jar"}, err: `fetch uris[0] hdfs://namenode/x.jar: scheme "hdfs" is not supported (http, https, file)`},
		{name: "relative path", uri: api.CommandURI{Value: "lib/x.jar"}, err: "fetch uris[0] lib/x.jar: relative paths are not supported: use an absolute path or a URL"},
		{name: "remote file uri", uri: api.CommandURI{Value: "file://other/etc/passwd"}, err: `fetch uris[0] file://other/etc/passwd: file uri names host "other": only local files can be fetched`},
		{name: "no file name", uri: api.CommandURI{Value: srv.URL + "/"}, err: "fetch uris[0] " + srv.URL + "/: uri path names no file: set output_file"},
		{name: "empty", uri: api.CommandURI{}, err: "fetch uris[0] : uri value is empty"},
		{
			name:     "output file climbs out",
			uri:      api.CommandURI{Value: srv.URL + "/big", OutputFile: "../x"},
			err:      "fetch uris[0] " + srv.URL + `/big: output file: unsafe path: "../x" leaves the sandbox`,
			sentinel: ErrUnsafePath,
		},
		{
			name:     "output file absolute",
			uri:      api.CommandURI{Value: srv.URL + "/big", OutputFile: "/etc/x"},
			err:      "fetch uris[0] " + srv.URL + `/big: output file: unsafe path: "/etc/x" is an absolute path`,
			sentinel: ErrUnsafePath,
		},
		{
			name:     "too large by content length",
			uri:      api.CommandURI{Value: srv.URL + "/big"},
			err:      "fetch uris[0] " + srv.URL + "/big: too large: 2000 bytes, more than the limit of 1000",
			sentinel: ErrTooLarge,
		},
		{
			name:     "too large while streaming",
			uri:      api.CommandURI{Value: stream.URL + "/stream"},
			err:      "fetch uris[0] " + stream.URL + "/stream: too large: more than the limit of 1000 bytes",
			sentinel: ErrTooLarge,
		},
		{name: "local file missing", uri: api.CommandURI{Value: "/no/such/file"}, err: "fetch uris[0] /no/such/file: open /no/such/file: no such file or directory"},
		{name: "local directory", uri: api.CommandURI{Value: "/tmp"}, err: "fetch uris[0] /tmp: /tmp is not a regular file"},
		{name: "corrupt archive", uri: api.CommandURI{Value: srv.URL + "/bad.tgz"}, err: "fetch uris[0] " + srv.URL + "/bad.tgz: extract bad.tgz: gzip: unexpected EOF"},
	}
	f := testFetcher(t, func(c *Config) { c.MaxDownloadBytes = 1000 })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sandbox := t.TempDir()
			_, err := f.Fetch(context.Background(), sandbox, []api.CommandURI{tt.uri})
			if err == nil || err.Error() != tt.err {
				t.Fatalf("Fetch error = %v\nwant %s", err, tt.err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v) = false", tt.sentinel)
			}
			if got := tree(t, sandbox); len(got) != 0 && tt.name != "corrupt archive" {
				t.Errorf("sandbox holds %v after a failed fetch", got)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		_, err := f.Fetch(context.Background(), t.TempDir(), []api.CommandURI{{Value: "http://" + closed + "/x"}})
		if err == nil || !strings.HasPrefix(err.Error(), "fetch uris[0] http://"+closed+"/x: Get ") || !strings.HasSuffix(err.Error(), "connect: connection refused") {
			t.Errorf("Fetch error = %v", err)
		}
	})
	t.Run("stops at the first failure", func(t *testing.T) {
		sandbox := t.TempDir()
		res, err := f.Fetch(context.Background(), sandbox, []api.CommandURI{{Value: srv.URL + "/missing"}, {Value: srv.URL + "/bad.tgz"}})
		if err == nil || len(res) != 0 || srv.requests("/bad.tgz") != 1 {
			t.Errorf("Fetch = %v, %v; the second uri was fetched %d times before, want once (by the test above)", res, err, srv.requests("/bad.tgz"))
		}
	})
}

func TestExtractRefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		entries []entry
		err     string
		// zipToo runs the case as a zip as well (zips have no hard links or devices).
		zipToo bool
	}{
		{name: "dot dot", entries: []entry{{name: "../evil", body: "x"}}, err: `unsafe path: "../evil" leaves the sandbox`, zipToo: true},
		{name: "dot dot inside", entries: []entry{{name: "a/../../evil", body: "x"}}, err: `unsafe path: "a/../../evil" leaves the sandbox`, zipToo: true},
		{name: "absolute", entries: []entry{{name: "/etc/evil", body: "x"}}, err: `unsafe path: "/etc/evil" is an absolute path`, zipToo: true},
		{
			name:    "absolute symlink",
			entries: []entry{{name: "l", typ: tar.TypeSymlink, link: outside}},
			err:     fmt.Sprintf(`unsafe path: symlink "l" points to the absolute path %q`, outside), zipToo: true,
		},
		{
			name:    "symlink up",
			entries: []entry{{name: "a/l", typ: tar.TypeSymlink, link: "../.."}},
			err:     `unsafe path: symlink "a/l" points outside the sandbox ("../..")`, zipToo: true,
		},
		{
			name: "write through a symlink",
			entries: []entry{
				{name: "sub/", typ: tar.TypeDir},
				{name: "l", typ: tar.TypeSymlink, link: "sub"},
				{name: "l/x", body: "x"},
			},
			err: `unsafe path: "l/x" goes through the symlink "l"`, zipToo: true,
		},
		{
			name: "chain of symlinks",
			entries: []entry{
				{name: "a", typ: tar.TypeSymlink, link: "."},
				{name: "b", typ: tar.TypeSymlink, link: "a/../evil"},
			},
			err: `unsafe path: symlink "b" leads outside the sandbox`, zipToo: true,
		},
		{
			name: "symlink loop",
			entries: []entry{
				{name: "a", typ: tar.TypeSymlink, link: "b"},
				{name: "b", typ: tar.TypeSymlink, link: "a"},
			},
			err: `symlink "a": too many levels of symlinks`, zipToo: true,
		},
		{name: "hard link out", entries: []entry{{name: "h", typ: tar.TypeLink, link: "../x"}}, err: `entry "h": hard link: unsafe path: "../x" leaves the sandbox`},
		{
			name: "hard link through symlink",
			entries: []entry{
				{name: "sub/f", body: "f"},
				{name: "l", typ: tar.TypeSymlink, link: "sub"},
				{name: "h", typ: tar.TypeLink, link: "l/f"},
			},
			err: `unsafe path: hard link "h" must point to a regular file without symlinks, not "l/f"`,
		},
		{name: "device", entries: []entry{{name: "mem", typ: tar.TypeChar}}, err: `entry "mem": only files, directories and links may be extracted, not type '3'`},
		{name: "replace the sandbox", entries: []entry{{name: ".", body: "x"}}, err: `unsafe path: "." would replace the sandbox`},
	}
	for _, tt := range tests {
		for _, format := range []string{"tar", "zip"} {
			if format == "zip" && !tt.zipToo {
				continue
			}
			t.Run(tt.name+" "+format, func(t *testing.T) {
				data := tarOf(t, tt.entries...)
				if format == "zip" {
					data = zipOf(t, tt.entries...)
				}
				archive := filepath.Join(t.TempDir(), "a."+format)
				if err := os.WriteFile(archive, data, 0o644); err != nil {
					t.Fatal(err)
				}
				sandbox := t.TempDir()
				err := extractArchive(context.Background(), archive, archiveKindOf(archive), sandbox, 1<<20)
				want := "extract a." + format + ": " + tt.err
				if err == nil || err.Error() != want {
					t.Fatalf("extract error = %v\nwant %s", err, want)
				}
				if strings.Contains(tt.err, "unsafe path") != errors.Is(err, ErrUnsafePath) {
					t.Errorf("errors.Is(ErrUnsafePath) wrong for %v", err)
				}
				if entries, _ := os.ReadDir(outside); len(entries) != 0 {
					t.Errorf("written outside the sandbox: %v", entries)
				}
			})
		}
	}
}

// TestSymlinkFromEarlierArtifact: a later artifact's output_file cannot be written through
// a symlink an earlier archive left in the sandbox.
func TestSymlinkFromEarlierArtifact(t *testing.T) {
	srv := serveFiles(t, map[string][]byte{
		"/links.tar": tarOf(t, entry{name: "sub/", typ: tar.TypeDir}, entry{name: "lnk", typ: tar.TypeSymlink, link: "sub"}),
		"/f":         []byte("f"),
	})
	f := testFetcher(t)
	_, err := f.Fetch(context.Background(), t.TempDir(), []api.CommandURI{{Value: srv.URL + "/links.tar"}, {Value: srv.URL + "/f", OutputFile: "lnk/f"}})
	want := "fetch uris[1] " + srv.URL + `/f: unsafe path: "lnk/f" goes through the symlink "lnk"`
	if err == nil || err.Error() != want {
		t.Errorf("Fetch error = %v\nwant %s", err, want)
	}
}

func TestExtractLimit(t *testing.T) {
	for _, format := range []string{"tar", "zip"} {
		t.Run(format, func(t *testing.T) {
			entries := []entry{{name: "a", body: strings.Repeat("a", 600)}, {name: "b", body: strings.Repeat("b", 600)}}
			data := tarOf(t, entries...)
			if format == "zip" {
				data = zipOf(t, entries...)
			}
			archive := filepath.Join(t.TempDir(), "bomb."+format)
			os.WriteFile(archive, data, 0o644)
			err := extractArchive(context.Background(), archive, archiveKindOf(archive), t.TempDir(), 1000)
			want := "extract bomb." + format + `: entry "b": too large: the archive unpacks to more than 1000 bytes`
			if err == nil || err.Error() != want || !errors.Is(err, ErrTooLarge) {
				t.Errorf("extract error = %v\nwant %s", err, want)
			}
		})
	}
}

func TestCache(t *testing.T) {
	srv := serveFiles(t, map[string][]byte{
		"/a.tgz": gzipOf(t, tarOf(t, helloEntries...)),
		"/600a":  []byte(strings.Repeat("a", 600)),
		"/600b":  []byte(strings.Repeat("b", 600)),
		"/1500":  []byte(strings.Repeat("c", 1500)),
	})
	f := testFetcher(t, func(c *Config) { c.CacheMaxBytes = 2500 })
	ctx := context.Background()
	fetch := func(path string, cache bool) Result {
		t.Helper()
		sandbox := t.TempDir()
		res, err := f.Fetch(ctx, sandbox, []api.CommandURI{{Value: srv.URL + path, Cache: cache}})
		if err != nil {
			t.Fatalf("Fetch %s: %v", path, err)
		}
		return res[0]
	}
	for i, wantFromCache := range []bool{false, true, true} {
		if res := fetch("/a.tgz", true); res.FromCache != wantFromCache || !res.Extracted {
			t.Errorf("fetch %d: %+v, want FromCache %v, extracted", i, res, wantFromCache)
		}
	}
	if n := srv.requests("/a.tgz"); n != 1 {
		t.Errorf("a.tgz downloaded %d times, want once", n)
	}
	if res := fetch("/a.tgz", false); res.FromCache {
		t.Errorf("uncached fetch came from the cache")
	}
	if n := srv.requests("/a.tgz"); n != 2 {
		t.Errorf("a.tgz downloaded %d times, want twice (cache=false downloads)", n)
	}

	// Eviction, least recently used first: a.tgz (a few hundred bytes), 600a and 600b fit;
	// 1500 then pushes out a.tgz and 600b (600a was used after 600b), and 600b coming back
	// pushes out 1500.
	fetch("/600a", true)
	fetch("/600b", true)
	fetch("/600a", true)
	fetch("/1500", true)
	fetch("/600a", true)
	fetch("/600b", true)
	for path, want := range map[string]int{"/600a": 1, "/600b": 2, "/1500": 1} {
		if n := srv.requests(path); n != want {
			t.Errorf("%s downloaded %d times, want %d", path, n, want)
		}
	}
	if size := cacheSize(t, f.cfg.CacheDir); size != 1200 {
		t.Errorf("cache holds %d bytes, want 1200 (600a and 600b)", size)
	}

	// Bigger than the whole cache: served, never kept.
	g := testFetcher(t, func(c *Config) { c.CacheMaxBytes = 1000 })
	for range 2 {
		if _, err := g.Fetch(ctx, t.TempDir(), []api.CommandURI{{Value: srv.URL + "/1500", Cache: true}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.requests("/1500"); n != 3 {
		t.Errorf("1500 downloaded %d times in all, want 3", n)
	}
	if size := cacheSize(t, g.cfg.CacheDir); size != 0 {
		t.Errorf("small cache holds %d bytes, want 0", size)
	}
}

func cacheSize(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left in the cache", e.Name())
		}
		total += info.Size()
	}
	return total
}

func TestCacheConcurrentFetchesDownloadOnce(t *testing.T) {
	srv := serveFiles(t, map[string][]byte{"/a.tgz": gzipOf(t, tarOf(t, helloEntries...))})
	f := testFetcher(t)
	const fetches = 8
	var wg sync.WaitGroup
	errs := make([]error, fetches)
	for i := range fetches {
		wg.Go(func() {
			_, errs[i] = f.Fetch(context.Background(), t.TempDir(), []api.CommandURI{{Value: srv.URL + "/a.tgz", Cache: true}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("fetch %d: %v", i, err)
		}
	}
	if n := srv.requests("/a.tgz"); n != 1 {
		t.Errorf("downloaded %d times by %d concurrent fetches, want once", n, fetches)
	}
}

func TestProgress(t *testing.T) {
	const size = 3<<20 + 5
	srv := serveFiles(t, map[string][]byte{"/big.bin": make([]byte, size)})
	var mu sync.Mutex
	var reports [][2]int64
	f := testFetcher(t, func(c *Config) {
		c.Progress = func(uri string, done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			if uri != srv.URL+"/big.bin" {
				t.Errorf("progress for %q", uri)
			}
			reports = append(reports, [2]int64{done, total})
		}
	})
	if _, err := f.Fetch(context.Background(), t.TempDir(), []api.CommandURI{{Value: srv.URL + "/big.bin"}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) < 3 || reports[len(reports)-1] != [2]int64{size, size} {
		t.Fatalf("reports = %v, want one per MiB and [%d %d] last", reports, size, size)
	}
	for i := 1; i < len(reports); i++ {
		if reports[i][0] <= reports[i-1][0] || reports[i][1] != size {
			t.Errorf("report %d %v after %v: not increasing or wrong total", i, reports[i], reports[i-1])
		}
	}
}

func TestFetchHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secure")) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	f := testFetcher(t, func(c *Config) { c.Client = srv.Client() })
	sandbox := t.TempDir()
	if _, err := f.Fetch(context.Background(), sandbox, []api.CommandURI{{Value: srv.URL + "/s.txt"}}); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, sandbox); !slices.Equal(got, []string{"s.txt -rw-r--r-- secure"}) {
		t.Errorf("sandbox = %v", got)
	}
	// Without the test server's certificate in the client, TLS verification fails.
	g := testFetcher(t)
	_, err := g.Fetch(context.Background(), t.TempDir(), []api.CommandURI{{Value: srv.URL + "/s.txt"}})
	if err == nil || !strings.Contains(err.Error(), "tls: failed to verify certificate") {
		t.Errorf("Fetch with an untrusted certificate = %v", err)
	}
}

func TestFetchCancelled(t *testing.T) {
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	f := testFetcher(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	sandbox := t.TempDir()
	_, err := f.Fetch(ctx, sandbox, []api.CommandURI{{Value: srv.URL + "/slow"}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch after cancel = %v, want context.Canceled", err)
	}
	if got := tree(t, sandbox); len(got) != 0 {
		t.Errorf("sandbox holds %v after a cancelled fetch", got)
	}
}

func TestArchiveKindOf(t *testing.T) {
	tests := map[string]archiveKind{
		"a.tar": tarPlain, "a.tar.gz": tarGzip, "a.tgz": tarGzip, "A.TGZ": tarGzip, "a.tar.bz2": tarBzip2,
		"a.tbz2": tarBzip2, "a.tar.xz": tarXz, "a.txz": tarXz, "a.zip": zipArchive, "a.gz": gzipFile,
		"a.jar": notArchive, "a.txt": notArchive, ".tar": notArchive, ".gz": notArchive, "tar": notArchive,
	}
	for name, want := range tests {
		if got := archiveKindOf(name); got != want {
			t.Errorf("archiveKindOf(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{name: "default", edit: func(*Config) {}},
		{name: "no cache", edit: func(c *Config) { c.CacheDir, c.CacheMaxBytes = "", 0 }},
		{name: "relative cache", edit: func(c *Config) { c.CacheDir = "cache" }, err: `fetcher CacheDir "cache" must be an absolute path`},
		{name: "cache size", edit: func(c *Config) { c.CacheMaxBytes = 0 }, err: "fetcher CacheMaxBytes 0 must be positive"},
		{name: "download limit", edit: func(c *Config) { c.MaxDownloadBytes = -1 }, err: "fetcher MaxDownloadBytes -1 must be positive"},
		{name: "extract limit", edit: func(c *Config) { c.MaxExtractBytes = 0 }, err: "fetcher MaxExtractBytes 0 must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig("/var/lib/atoll/fetch")
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || err.Error() != tt.err) {
				t.Errorf("Validate = %v, want %q", err, tt.err)
			}
		})
	}
}
