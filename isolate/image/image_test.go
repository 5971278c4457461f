package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate/image/imagetest"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// testConfig is the image config of testImage.
var testConfig = v1.Config{
	Entrypoint: []string{"/bin/sh", "-c"},
	Cmd:        []string{"cat /etc/motd"},
	Env:        []string{"PATH=/bin", "GREETING=hello"},
	WorkingDir: "/data",
	User:       "1000:1000",
}

var wantConfig = ImageConfig{
	Entrypoint: []string{"/bin/sh", "-c"},
	Cmd:        []string{"cat /etc/motd"},
	Env:        []string{"PATH=/bin", "GREETING=hello"},
	WorkingDir: "/data",
	User:       "1000:1000",
}

// testImage is busybox, a layer of files, and a layer deleting some of them: data/gone by
// a whiteout, everything under opaque/ by an opaque marker (which keeps the new file of
// its own layer).
func testImage(t testing.TB) v1.Image {
	t.Helper()
	return imagetest.Image(t, testConfig,
		imagetest.BusyboxLayer(t),
		imagetest.Files(t,
			file{Name: "etc/motd", Body: "one\n"},
			file{Name: "data/", Type: tar.TypeDir, Uid: 1000, Gid: 1000},
			file{Name: "data/keep", Body: "keep"},
			file{Name: "data/gone", Body: "gone"},
			file{Name: "opaque/old", Body: "old"},
			file{Name: "opaque/sub/older", Body: "older"},
		),
		imagetest.Files(t,
			file{Name: "etc/motd", Body: "two\n"},
			file{Name: "data/.wh.gone"},
			file{Name: "opaque/.wh..wh..opq"},
			file{Name: "opaque/new", Body: "new"},
		),
	)
}

// pushTestImage serves testImage from a fresh registry and returns its reference.
func pushTestImage(t testing.TB) string {
	t.Helper()
	ref := imagetest.Registry(t) + "/test/app:v1"
	imagetest.Push(t, ref, testImage(t))
	return ref
}

func TestRootFS(t *testing.T) {
	requireRoot(t)
	ref := pushTestImage(t)
	s := testStore(t)
	ctx := context.Background()

	rootfs, config, cleanup, err := s.RootFS(ctx, ref, "c1", PullIfMissing)
	if err != nil {
		t.Fatalf("RootFS: %v", err)
	}
	if !equalConfig(config, wantConfig) {
		t.Errorf("config = %+v, want %+v", config, wantConfig)
	}
	if got := mountsUnder(t, rootfs); len(got) != 1 || got[0] != rootfs {
		t.Errorf("mounts under rootfs = %v, want [%s]", got, rootfs)
	}
	checkFile(t, rootfs, "etc/motd", "two\n")
	checkFile(t, rootfs, "data/keep", "keep")
	checkAbsent(t, rootfs, "data/gone")
	if got := dirNames(t, filepath.Join(rootfs, "opaque")); !slices.Equal(got, []string{"new"}) {
		t.Errorf("opaque/ holds %v, want [new]", got)
	}
	if got := dirNames(t, filepath.Join(rootfs, "data")); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("data/ holds %v, want [keep]", got)
	}
	// The rootfs works as one: busybox runs in it and sees the top layer's file.
	if out := inRootFS(t, rootfs, "cat", "/etc/motd"); out != "two\n" {
		t.Errorf("cat /etc/motd in the rootfs = %q, want two", out)
	}
	inRootFS(t, rootfs, "sh", "-c", "echo written > /data/new && rm /data/keep")
	upper := filepath.Join(s.cfg.Dir, "containers", "c1", "upper")
	checkFile(t, upper, "data/new", "written\n")
	if st := s.Stats(); st != (Stats{LayersUnpacked: 3, BytesDownloaded: st.BytesDownloaded}) || st.BytesDownloaded == 0 {
		t.Errorf("Stats = %+v, want 3 layers unpacked", st)
	}
	// Writes stay in the container's upper directory; the cached layers are untouched.
	img, _ := s.Pull(ctx, ref, PullIfMissing)
	for _, d := range img.Layers {
		h, _ := layerHash(d)
		checkAbsent(t, s.layerDir(h), "data/new")
	}
	h, _ := layerHash(img.Layers[1])
	checkFile(t, s.layerDir(h), "data/keep", "keep")

	if err := cleanup(); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if got := mountsUnder(t, s.cfg.Dir); len(got) != 0 {
		t.Errorf("still mounted after cleanup: %v", got)
	}
	checkAbsent(t, s.cfg.Dir, "containers/c1")
	if err := cleanup(); err != nil {
		t.Errorf("second cleanup: %v", err)
	}
	if ids, err := s.Containers(); err != nil || len(ids) != 0 {
		t.Errorf("Containers after cleanup = %v, %v; want none", ids, err)
	}
}

func TestRootFSSecondContainerCopiesNothing(t *testing.T) {
	requireRoot(t)
	ref := pushTestImage(t)
	s := testStore(t)
	ctx := context.Background()
	rootfs1, _, cleanup1, err := s.RootFS(ctx, ref, "c1", PullIfMissing)
	if err != nil {
		t.Fatalf("RootFS c1: %v", err)
	}
	defer cleanup1()
	img, err := s.Pull(ctx, ref, PullIfMissing)
	if err != nil {
		t.Fatal(err)
	}
	inodes := layerInodes(t, s, img)
	before := s.Stats()

	for _, policy := range []PullPolicy{PullIfMissing, PullAlways} {
		id := fmt.Sprintf("c2-%d", policy)
		rootfs2, _, cleanup2, err := s.RootFS(ctx, ref, id, policy)
		if err != nil {
			t.Fatalf("RootFS %s: %v", id, err)
		}
		if n := countEntries(t, filepath.Join(s.cfg.Dir, "containers", id, "upper")); n != 0 {
			t.Errorf("%s: upper dir holds %d entries at start, want 0", id, n)
		}
		// Containers do not see each other's writes.
		if err := os.WriteFile(filepath.Join(rootfs1, "etc/motd"), []byte("c1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		checkFile(t, rootfs2, "etc/motd", "two\n")
		if err := cleanup2(); err != nil {
			t.Fatalf("cleanup %s: %v", id, err)
		}
	}
	after := s.Stats()
	want := Stats{LayersUnpacked: before.LayersUnpacked, LayerCacheHits: before.LayerCacheHits + 3, BytesDownloaded: before.BytesDownloaded}
	if after != want {
		t.Errorf("Stats after two more containers = %+v, want %+v (no layer unpacked again; PullAlways finds all 3 cached)", after, want)
	}
	if got := layerInodes(t, s, img); !slices.Equal(got, inodes) {
		t.Errorf("layer directories were replaced: inodes %v, were %v", got, inodes)
	}
}

func TestConcurrentPullsUnpackOnce(t *testing.T) {
	requireRoot(t)
	ref := pushTestImage(t)
	s := testStore(t)
	const pulls = 6
	var wg sync.WaitGroup
	errs := make([]error, pulls)
	digests := make([]string, pulls)
	for i := range pulls {
		wg.Go(func() {
			img, err := s.Pull(context.Background(), ref, PullAlways)
			errs[i], digests[i] = err, img.Digest
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if digests[i] != digests[0] {
			t.Errorf("pull %d got %s, pull 0 %s", i, digests[i], digests[0])
		}
	}
	if st := s.Stats(); st.LayersUnpacked != 3 || st.LayerCacheHits != 3*(pulls-1) {
		t.Errorf("Stats = %+v, want 3 layers unpacked and %d cache hits", st, 3*(pulls-1))
	}
	if entries, _ := os.ReadDir(s.tmpDir()); len(entries) != 0 {
		t.Errorf("tmp holds %v after the pulls", entries)
	}
}

func TestPullPolicy(t *testing.T) {
	requireRoot(t)
	var requests atomic.Int64
	host := imagetest.Registry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			next.ServeHTTP(w, r)
		})
	})
	ref := host + "/test/app:v1"
	first := imagetest.Push(t, ref, testImage(t))
	s := testStore(t)
	ctx := context.Background()
	img, err := s.Pull(ctx, ref, PullIfMissing)
	if err != nil || img.Digest != first {
		t.Fatalf("first pull = %s, %v; want %s", img.Digest, err, first)
	}

	// The tag moves on; an image of one more layer is pushed under it.
	second := imagetest.Push(t, ref, imagetest.Image(t, testConfig, imagetest.BusyboxLayer(t), imagetest.Files(t, file{Name: "v2", Body: "2"})))
	requests.Store(0)
	img, err = s.Pull(ctx, ref, PullIfMissing)
	if err != nil || img.Digest != first || requests.Load() != 0 {
		t.Errorf("PullIfMissing = %s, %v after %d requests; want the cached %s without asking the registry", img.Digest, err, requests.Load(), first)
	}
	img, err = s.Pull(ctx, ref, PullAlways)
	if err != nil || img.Digest != second || requests.Load() == 0 {
		t.Errorf("PullAlways = %s, %v after %d requests; want %s from the registry", img.Digest, err, requests.Load(), second)
	}
	if st := s.Stats(); st.LayersUnpacked != 4 || st.LayerCacheHits != 1 {
		t.Errorf("Stats = %+v, want 4 layers unpacked (busybox shared) and 1 cache hit", st)
	}
	img, err = s.Pull(ctx, ref, PullIfMissing)
	if err != nil || img.Digest != second {
		t.Errorf("PullIfMissing after PullAlways = %s, %v; want %s", img.Digest, err, second)
	}
}

func TestLayerCompressions(t *testing.T) {
	requireRoot(t)
	host := imagetest.Registry(t)
	s := testStore(t)
	for _, c := range []compression.Compression{compression.GZip, compression.ZStd, compression.None} {
		t.Run(string(c), func(t *testing.T) {
			ref := host + "/compressed/" + string(c) + ":1"
			body := "compressed with " + string(c)
			layer := imagetest.Layer(t, c, imagetest.Tar(t, file{Name: "f", Body: body}, file{Name: "d/.wh..wh..opq"}))
			imagetest.Push(t, ref, imagetest.Image(t, v1.Config{}, layer))
			img, err := s.Pull(context.Background(), ref, PullIfMissing)
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			h, _ := layerHash(img.Layers[0])
			checkFile(t, s.layerDir(h), "f", body)
		})
	}
}

func TestPullErrors(t *testing.T) {
	requireRoot(t)
	img := testImage(t)
	layers, _ := img.Layers()
	tampered, _ := layers[1].Digest()
	// A registry that flips one byte in the middle of one layer blob.
	host := imagetest.Registry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+tampered.String()) {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[len(body)/2] ^= 0xff
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	})
	imagetest.Push(t, host+"/test/app:v1", img)
	closed := closedPort(t)

	tests := []struct {
		name     string
		ref      string
		sentinel error
		prefix   string
		contains string
	}{
		{
			name:     "tag not found",
			ref:      host + "/test/app:nope",
			sentinel: ErrNotFound,
			prefix:   "pull " + host + "/test/app:nope: image not found in registry " + host + ": ",
			contains: "MANIFEST_UNKNOWN",
		},
		{
			name:     "repository not found",
			ref:      host + "/no/such:1",
			sentinel: ErrNotFound,
			prefix:   "pull " + host + "/no/such:1: image not found in registry " + host + ": ",
			contains: "NAME_UNKNOWN",
		},
		{
			name:     "registry unreachable",
			ref:      closed + "/test/app:v1",
			sentinel: ErrUnreachable,
			prefix:   "pull " + closed + "/test/app:v1: registry unreachable: " + closed + ": ",
			contains: "connection refused",
		},
		{
			name:     "digest mismatch",
			ref:      host + "/test/app:v1",
			sentinel: ErrDigestMismatch,
			prefix:   "pull " + host + "/test/app:v1: layer " + tampered.String() + ": digest mismatch: blob hashes to sha256:",
			contains: ", want " + tampered.String() + " (corrupt or tampered)",
		},
		{
			name:   "bad reference",
			ref:    host + "/Test/App",
			prefix: `image reference "` + host + `/Test/App": `,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testStore(t)
			_, _, _, err := s.RootFS(context.Background(), tt.ref, "c1", PullIfMissing)
			if err == nil {
				t.Fatal("RootFS succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error = %q\nwant prefix %q containing %q", err, tt.prefix, tt.contains)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v) = false", tt.sentinel)
			}
			if ids, _ := s.Containers(); len(ids) != 0 {
				t.Errorf("containers left after a failed RootFS: %v", ids)
			}
			if entries, _ := os.ReadDir(s.tmpDir()); len(entries) != 0 {
				t.Errorf("unfinished unpacks left: %v", entries)
			}
			h := tampered.Hex
			if _, err := os.Lstat(s.layerDir(h)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("tampered layer is in the cache (%v)", err)
			}
		})
	}
}

func TestRootFSContainerIDs(t *testing.T) {
	requireRoot(t)
	ref := pushTestImage(t)
	s := testStore(t)
	ctx := context.Background()
	_, _, cleanup, err := s.RootFS(ctx, ref, "c1", PullIfMissing)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	_, _, _, err = s.RootFS(ctx, ref, "c1", PullIfMissing)
	if err == nil || !errors.Is(err, fs.ErrExist) || !strings.HasPrefix(err.Error(), "container c1 already has a root filesystem: ") {
		t.Errorf("second RootFS of c1 = %v, want already has a root filesystem", err)
	}
	// A launch whose RootFS failed is released like any other.
	if err := s.Release("never-made"); err != nil {
		t.Errorf("Release of a container without a root filesystem = %v", err)
	}
	for _, id := range []string{"", ".", "..", "a/b", "a,b", "a:b", strings.Repeat("x", 129)} {
		_, _, _, err := s.RootFS(ctx, ref, id, PullIfMissing)
		if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("container id %q ", id)) {
			t.Errorf("RootFS with id %q = %v, want an invalid id error", id, err)
		}
		if err := s.Release(id); err == nil {
			t.Errorf("Release(%q) succeeded", id)
		}
	}
}

// TestReleaseAfterRestart: a new Store on the same directory (an agent that restarted)
// finds the container and releases it.
func TestReleaseAfterRestart(t *testing.T) {
	requireRoot(t)
	ref := pushTestImage(t)
	dir := t.TempDir()
	unmountAtEnd(t, dir)
	open := func() *Store {
		cfg := DefaultConfig(dir)
		cfg.Keychain = nil
		s, err := New(cfg, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	}
	s := open()
	rootfs, _, _, err := s.RootFS(context.Background(), ref, "c1", PullIfMissing)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(s.cfg, nil); err == nil || !strings.HasPrefix(err.Error(), "image store "+dir+" is in use by another store: ") {
		t.Errorf("second New on a held directory = %v", err)
	}
	s.Close()
	s = open()
	defer s.Close()
	if ids, err := s.Containers(); err != nil || !slices.Equal(ids, []string{"c1"}) {
		t.Fatalf("Containers = %v, %v; want [c1]", ids, err)
	}
	if err := s.Release("c1"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if got := mountsUnder(t, dir); len(got) != 0 {
		t.Errorf("still mounted: %v", got)
	}
	checkAbsent(t, filepath.Dir(rootfs), "")
}

func TestRootFSOfImageWithoutLayers(t *testing.T) {
	requireRoot(t)
	ref := imagetest.Registry(t) + "/empty:1"
	imagetest.Push(t, ref, imagetest.Image(t, v1.Config{Cmd: []string{"x"}}))
	s := testStore(t)
	rootfs, config, cleanup, err := s.RootFS(context.Background(), ref, "c1", PullIfMissing)
	if err != nil {
		t.Fatalf("RootFS: %v", err)
	}
	defer cleanup()
	if n := countEntries(t, rootfs); n != 0 || !slices.Equal(config.Cmd, []string{"x"}) {
		t.Errorf("rootfs holds %d entries, config %+v; want empty with Cmd [x]", n, config)
	}
}

func TestEmptyLayerIsTheEmptyTar(t *testing.T) {
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	if got := hex.EncodeToString(sum[:]); got != emptyLayer {
		t.Errorf("sha256 of the empty tar = %s, emptyLayer = %s", got, emptyLayer)
	}
}

// TestMountOverlayLegacy covers the mount(2) path taken on kernels without lowerdir+.
func TestMountOverlayLegacy(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	unmountAtEnd(t, dir)
	for _, d := range []string{"lower1", "lower2", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "lower1", "f"), []byte("bottom"), 0o644)
	os.WriteFile(filepath.Join(dir, "lower2", "f"), []byte("top"), 0o644)
	os.WriteFile(filepath.Join(dir, "lower1", "g"), []byte("g"), 0o644)
	merged := filepath.Join(dir, "merged")
	lowers := []string{filepath.Join(dir, "lower2"), filepath.Join(dir, "lower1")}
	if err := mountOverlayLegacy(merged, lowers, filepath.Join(dir, "upper"), filepath.Join(dir, "work")); err != nil {
		t.Fatalf("mountOverlayLegacy: %v", err)
	}
	checkFile(t, merged, "f", "top")
	checkFile(t, merged, "g", "g")
	if err := unmountAll(merged); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, dir); len(got) != 0 {
		t.Errorf("still mounted: %v", got)
	}

	many := slices.Repeat([]string{filepath.Join(dir, strings.Repeat("l", 200))}, 30)
	err := mountOverlayLegacy(merged, many, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if err == nil || !strings.HasPrefix(err.Error(), "overlay options are ") || !strings.HasSuffix(err.Error(), "too many layers for a kernel without lowerdir+ (Linux 6.8)") {
		t.Errorf("mountOverlayLegacy with 30 long layers = %v", err)
	}
}

func TestPlainHTTPAllowed(t *testing.T) {
	s := &Store{cfg: Config{InsecureRegistries: []string{"registry.lan:5000", "mirror"}}}
	tests := map[string]bool{
		"127.0.0.1:5000":    true,
		"127.9.9.9":         true,
		"[::1]:5000":        true,
		"localhost:5000":    true,
		"reg.localhost":     true,
		"registry.lan:5000": true,
		"registry.lan:5001": false,
		"mirror:443":        true,
		"mirror":            true,
		"10.0.0.1:5000":     false,
		"192.168.1.1":       false,
		"docker.io":         false,
	}
	for host, want := range tests {
		if got := s.plainHTTPAllowed(host); got != want {
			t.Errorf("plainHTTPAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	// The guard refuses before anything is sent.
	guard := &plainHTTPGuard{next: failingTransport{t}, allowed: s.plainHTTPAllowed}
	req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1:5000/v2/", nil)
	if _, err := guard.RoundTrip(req); err == nil || err.Error() != "plain HTTP to 10.0.0.1:5000 refused: only loopback registries and configured insecure registries may be reached without TLS" {
		t.Errorf("RoundTrip = %v", err)
	}
}

type failingTransport struct{ t *testing.T }

func (f failingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f.t.Errorf("request to %s went through", req.URL)
	return nil, errors.New("unexpected")
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{name: "default", edit: func(*Config) {}},
		{name: "relative dir", edit: func(c *Config) { c.Dir = "images" }, err: `image store Dir "images" must be an absolute path`},
		{name: "comma", edit: func(c *Config) { c.Dir = "/a,b" }, err: `image store Dir "/a,b" must not contain ',' or ':' (overlay mount options)`},
		{name: "downloads", edit: func(c *Config) { c.MaxConcurrentDownloads = 0 }, err: "image store MaxConcurrentDownloads 0 must be at least 1"},
		{name: "platform", edit: func(c *Config) { c.Platform = "" }, err: `image store Platform "" must be os/arch[/variant]`},
		{name: "insecure", edit: func(c *Config) { c.InsecureRegistries = []string{"http://x"} }, err: `image store InsecureRegistries entry "http://x" must be host or host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig("/var/lib/atoll/images")
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || err.Error() != tt.err) {
				t.Errorf("Validate = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestSpecFor(t *testing.T) {
	no := false
	tests := []struct {
		name string
		ci   *api.ContainerInfo
		want Spec
		ok   bool
		err  string
	}{
		{name: "none"},
		{name: "mesos without image", ci: &api.ContainerInfo{Type: "MESOS"}},
		{
			name: "mesos docker image",
			ci:   &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{Type: "DOCKER", Docker: &api.ImageDocker{Name: "redis"}}}},
			want: Spec{Ref: "redis", Policy: PullIfMissing}, ok: true,
		},
		{
			name: "mesos image not cached",
			ci:   &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{Type: "DOCKER", Docker: &api.ImageDocker{Name: "redis"}, Cached: &no}}},
			want: Spec{Ref: "redis", Policy: PullAlways}, ok: true,
		},
		{
			name: "docker",
			ci:   &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: "nginx:1", ForcePullImage: true}},
			want: Spec{Ref: "nginx:1", Policy: PullAlways}, ok: true,
		},
		{name: "docker without image", ci: &api.ContainerInfo{Type: "DOCKER"}, err: "container.docker.image is required for a DOCKER container"},
		{
			name: "appc",
			ci:   &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{Type: "APPC"}}},
			err:  `container.mesos.image.type "APPC" is not supported (only DOCKER)`,
		},
		{
			name: "docker image without name",
			ci:   &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{Type: "DOCKER"}}},
			err:  "container.mesos.image.docker.name is required for a DOCKER image",
		},
		{name: "unknown type", ci: &api.ContainerInfo{Type: "LXC"}, err: `container.type "LXC" is not supported (MESOS or DOCKER)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := SpecFor(tt.ci)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("SpecFor error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || ok != tt.ok || got != tt.want {
				t.Errorf("SpecFor = %+v, %v, %v; want %+v, %v", got, ok, err, tt.want, tt.ok)
			}
		})
	}
}

func equalConfig(a, b ImageConfig) bool {
	return slices.Equal(a.Entrypoint, b.Entrypoint) && slices.Equal(a.Cmd, b.Cmd) && slices.Equal(a.Env, b.Env) &&
		a.WorkingDir == b.WorkingDir && a.User == b.User
}

func checkFile(t testing.TB, root, rel, want string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil || string(got) != want {
		t.Errorf("%s holds %q, %v; want %q", filepath.Join(root, rel), got, err, want)
	}
}

func checkAbsent(t testing.TB, root, rel string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, rel)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (%v), want it absent", filepath.Join(root, rel), err)
	}
}

func dirNames(t testing.TB, dir string) []string {
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

func countEntries(t testing.TB, dir string) int {
	t.Helper()
	n := -1 // not dir itself
	err := filepath.WalkDir(dir, func(string, fs.DirEntry, error) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func layerInodes(t testing.TB, s *Store, img Image) []uint64 {
	t.Helper()
	var inodes []uint64
	for _, d := range img.Layers {
		h, _ := layerHash(d)
		fi, err := os.Stat(s.layerDir(h))
		if err != nil {
			t.Fatal(err)
		}
		inodes = append(inodes, fi.Sys().(*syscall.Stat_t).Ino)
	}
	return inodes
}

// inRootFS runs a busybox applet chrooted into rootfs and returns its output.
func inRootFS(t testing.TB, rootfs string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/busybox", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v in rootfs: %v: %s", args, err, out)
	}
	return string(out)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
