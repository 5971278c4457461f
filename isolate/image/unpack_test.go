package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/isolate/image/imagetest"
	"golang.org/x/sys/unix"
)

type file = imagetest.File

// unpackFiles unpacks a tar of files into a fresh directory and returns it.
func unpackFiles(t *testing.T, files ...file) (string, error) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root, unpackLayer(root, bytes.NewReader(imagetest.Tar(t, files...)))
}

func TestUnpackLayer(t *testing.T) {
	requireRoot(t)
	root, err := unpackFiles(t,
		file{Name: "./", Type: tar.TypeDir, Mode: 0o755},
		file{Name: "etc/", Type: tar.TypeDir, Mode: 0o750, Uid: 7, Gid: 8},
		file{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\n", Mode: 0o644},
		file{Name: "usr/bin/su", Body: "ELF", Mode: 0o4755, Uid: 0, Gid: 0},
		file{Name: "/abs/file", Body: "rooted", Uid: 1000, Gid: 1000},
		file{Name: "usr/bin/ping", Body: "ping", Mode: 0o755, Xattrs: map[string]string{"user.note": "kept", "trusted.overlay.opaque": "y"}},
		file{Name: "bin", Type: tar.TypeSymlink, Linkname: "usr/bin"},
		file{Name: "etc/alternatives", Type: tar.TypeSymlink, Linkname: "/usr/bin/ping"},
		file{Name: "usr/bin/hard", Type: tar.TypeLink, Linkname: "usr/bin/ping"},
		file{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666},
		file{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600},
		file{Name: "replaced", Body: "first"},
		file{Name: "replaced", Type: tar.TypeSymlink, Linkname: "etc"},
		file{Name: "data/gone", Body: "x"},
		file{Name: "data/.wh.gone"},
		file{Name: "data/.wh.lower-only"},
		file{Name: "opaque/.wh..wh..opq"},
		file{Name: "opaque/kept", Body: "kept"},
		file{Name: ".wh..wh.plnk/123", Body: "aufs"},
	)
	if err != nil {
		t.Fatalf("unpackLayer: %v", err)
	}
	type want struct {
		mode     fs.FileMode
		uid, gid uint32
		body     string
		link     string
		rdev     uint64
	}
	wants := map[string]want{
		"etc":                 {mode: fs.ModeDir | 0o750, uid: 7, gid: 8},
		"etc/passwd":          {mode: 0o644, body: "root:x:0:0::/root:/bin/sh\n"},
		"usr/bin/su":          {mode: 0o755 | fs.ModeSetuid, body: "ELF"},
		"abs/file":            {mode: 0o644, uid: 1000, gid: 1000, body: "rooted"},
		"usr/bin/ping":        {mode: 0o755, body: "ping"},
		"usr/bin/hard":        {mode: 0o755, body: "ping"},
		"bin":                 {mode: fs.ModeSymlink | 0o777, link: "usr/bin"},
		"etc/alternatives":    {mode: fs.ModeSymlink | 0o777, link: "/usr/bin/ping"},
		"dev/null":            {mode: fs.ModeDevice | fs.ModeCharDevice | 0o666},
		"run/fifo":            {mode: fs.ModeNamedPipe | 0o600},
		"replaced":            {mode: fs.ModeSymlink | 0o777, link: "etc"},
		"data/gone":           {mode: fs.ModeDevice | fs.ModeCharDevice},
		"data/lower-only":     {mode: fs.ModeDevice | fs.ModeCharDevice},
		"opaque/kept":         {mode: 0o644, body: "kept"},
		"usr":                 {mode: fs.ModeDir | 0o755},
		"data/.wh.gone":       {},
		".wh..wh.plnk":        {},
		"opaque/.wh..wh..opq": {},
	}
	for rel, w := range wants {
		fi, err := os.Lstat(filepath.Join(root, rel))
		if w == (want{}) {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s exists (%v), want it absent", rel, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != w.mode || st.Uid != w.uid || st.Gid != w.gid || st.Rdev != w.rdev {
			t.Errorf("%s: mode %v uid %d gid %d rdev %d, want %v %d %d %d", rel, fi.Mode(), st.Uid, st.Gid, st.Rdev, w.mode, w.uid, w.gid, w.rdev)
		}
		if w.body != "" {
			if got, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(got) != w.body {
				t.Errorf("%s holds %q, %v; want %q", rel, got, err, w.body)
			}
		}
		if w.link != "" {
			if got, err := os.Readlink(filepath.Join(root, rel)); err != nil || got != w.link {
				t.Errorf("%s links to %q, %v; want %q", rel, got, err, w.link)
			}
		}
	}
	ping, _ := os.Stat(filepath.Join(root, "usr/bin/ping"))
	hard, _ := os.Stat(filepath.Join(root, "usr/bin/hard"))
	if !os.SameFile(ping, hard) {
		t.Errorf("usr/bin/hard is not a hard link of usr/bin/ping")
	}
	if got := xattr(t, filepath.Join(root, "usr/bin/ping"), "user.note"); got != "kept" {
		t.Errorf("user.note xattr = %q, want kept", got)
	}
	if got := xattr(t, filepath.Join(root, "usr/bin/ping"), "trusted.overlay.opaque"); got != "" {
		t.Errorf("a tar's own trusted.overlay xattr was applied: %q", got)
	}
	if got := xattr(t, filepath.Join(root, "opaque"), opaqueXattr); got != "y" {
		t.Errorf("opaque dir xattr = %q, want y", got)
	}
	if got := xattr(t, filepath.Join(root, "data"), opaqueXattr); got != "" {
		t.Errorf("data dir is opaque (%q), want not", got)
	}
	// Directory times are set after their contents were written.
	etc, _ := os.Stat(filepath.Join(root, "etc"))
	if want := time.Unix(1700000000, 0); !etc.ModTime().Equal(want) {
		t.Errorf("etc mtime %v, want %v", etc.ModTime(), want)
	}
}

func xattr(t *testing.T, path, name string) string {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if errors.Is(err, unix.ENODATA) {
		return ""
	}
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", path, name, err)
	}
	return string(buf[:n])
}

func TestUnpackLayerRefusesEscapes(t *testing.T) {
	requireRoot(t)
	outside := t.TempDir()
	tests := []struct {
		name   string
		files  []file
		err    string
		unsafe bool
	}{
		{
			name:   "dot dot",
			files:  []file{{Name: "../escape", Body: "x"}},
			err:    `unsafe layer entry: "../escape" leaves the layer directory`,
			unsafe: true,
		},
		{
			name:   "dot dot inside",
			files:  []file{{Name: "a/../../escape", Body: "x"}},
			err:    `unsafe layer entry: "a/../../escape" leaves the layer directory`,
			unsafe: true,
		},
		{
			name:   "rooted dot dot",
			files:  []file{{Name: "/../escape", Body: "x"}},
			err:    `unsafe layer entry: "/../escape" leaves the layer directory`,
			unsafe: true,
		},
		{
			name: "write through absolute symlink",
			files: []file{
				{Name: "link", Type: tar.TypeSymlink, Linkname: outside},
				{Name: "link/escape", Body: "x"},
			},
			err:    `unsafe layer entry: "link/escape" goes through the symlink "link"`,
			unsafe: true,
		},
		{
			name: "write through relative symlink",
			files: []file{
				{Name: "a/", Type: tar.TypeDir},
				{Name: "a/up", Type: tar.TypeSymlink, Linkname: "../.."},
				{Name: "a/up/b/escape", Body: "x"},
			},
			err:    `unsafe layer entry: "a/up/b/escape" goes through the symlink "a/up"`,
			unsafe: true,
		},
		{
			name: "directory replaced by symlink",
			files: []file{
				{Name: "d/", Type: tar.TypeDir},
				{Name: "d/one", Body: "1"},
				{Name: "d", Type: tar.TypeSymlink, Linkname: outside},
				{Name: "d/escape", Body: "x"},
			},
			err:    `unsafe layer entry: "d/escape" goes through the symlink "d"`,
			unsafe: true,
		},
		{
			name: "whiteout through symlink",
			files: []file{
				{Name: "link", Type: tar.TypeSymlink, Linkname: outside},
				{Name: "link/.wh.escape"},
			},
			err:    `unsafe layer entry: "link/.wh.escape" goes through the symlink "link"`,
			unsafe: true,
		},
		{
			name:   "hard link out",
			files:  []file{{Name: "passwd", Type: tar.TypeLink, Linkname: "../../../etc/passwd"}},
			err:    `entry "passwd": hard link: unsafe layer entry: "../../../etc/passwd" leaves the layer directory`,
			unsafe: true,
		},
		{
			name: "hard link through symlink",
			files: []file{
				{Name: "link", Type: tar.TypeSymlink, Linkname: "/etc"},
				{Name: "passwd", Type: tar.TypeLink, Linkname: "link/passwd"},
			},
			err:    `entry "passwd": hard link target: unsafe layer entry: "link/passwd" goes through the symlink "link"`,
			unsafe: true,
		},
		{
			name:   "whiteout of dot dot",
			files:  []file{{Name: "a/.wh.."}},
			err:    `unsafe layer entry: whiteout "a/.wh.." names no file`,
			unsafe: true,
		},
		{
			name:   "root replaced",
			files:  []file{{Name: ".", Body: "x"}},
			err:    `unsafe layer entry: "." would replace the layer root with a non-directory`,
			unsafe: true,
		},
		{
			name:  "hard link to a file of another layer",
			files: []file{{Name: "copy", Type: tar.TypeLink, Linkname: "usr/lib/libc.so"}},
			err:   `entry "copy": hard link target "usr/lib/libc.so" is not in this layer`,
		},
		{
			name:  "parent is a file",
			files: []file{{Name: "f", Body: "x"}, {Name: "f/g", Body: "y"}},
			err:   `entry "f/g": parent "f" is not a directory`,
		},
		{
			name:  "unknown type",
			files: []file{{Name: "c", Type: 'Z'}},
			err:   `entry "c": unsupported tar entry type 'Z'`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := unpackFiles(t, tt.files...)
			if err == nil || err.Error() != tt.err {
				t.Fatalf("unpackLayer error = %v, want %q", err, tt.err)
			}
			if errors.Is(err, ErrUnsafeLayer) != tt.unsafe {
				t.Errorf("errors.Is(ErrUnsafeLayer) = %v, want %v", !tt.unsafe, tt.unsafe)
			}
			if entries, _ := os.ReadDir(outside); len(entries) > 0 {
				t.Errorf("written outside the layer: %v", entries)
			}
		})
	}
}

// FuzzUnpackLayer feeds arbitrary tars to the unpacker inside a/b/layer and checks that
// nothing ever appears beside it, however the tar's names and links climb.
func FuzzUnpackLayer(f *testing.F) {
	seeds := [][]file{
		{{Name: "../x", Body: "x"}},
		{{Name: "l", Type: tar.TypeSymlink, Linkname: ".."}, {Name: "l/x", Body: "x"}},
		{{Name: "l", Type: tar.TypeSymlink, Linkname: "../.."}, {Name: "l/.wh.x"}},
		{{Name: "d/", Type: tar.TypeDir}, {Name: "d/../../x", Body: "x"}},
		{{Name: "h", Type: tar.TypeLink, Linkname: "../b"}},
		{{Name: "f", Body: "1"}, {Name: "f", Type: tar.TypeDir}, {Name: "f/x", Body: "2"}},
		{{Name: "d/.wh..wh..opq"}, {Name: ".wh.d"}},
	}
	for _, s := range seeds {
		for i := range s {
			s[i].Uid, s[i].Gid = os.Getuid(), os.Getgid()
		}
		f.Add(imagetest.Tar(f, s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		root := filepath.Join(base, "a", "b", "layer")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		err := unpackLayer(root, bytes.NewReader(data))
		for dir, only := range map[string]string{base: "a", filepath.Join(base, "a"): "b", filepath.Join(base, "a", "b"): "layer"} {
			entries, readErr := os.ReadDir(dir)
			if readErr != nil || len(entries) != 1 || entries[0].Name() != only {
				t.Fatalf("unpack (error %v) left %v beside the layer in %s", err, entries, dir)
			}
		}
		if err != nil && strings.Contains(err.Error(), "leaves") && !errors.Is(err, ErrUnsafeLayer) {
			t.Fatalf("escape error without ErrUnsafeLayer: %v", err)
		}
	})
}
