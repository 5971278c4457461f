// Package imagetest builds OCI images in memory and serves them from an in-process
// registry on loopback, for tests of code that pulls images.
package imagetest

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// File is one entry of a layer.
type File struct {
	Name string
	// Type is a tar type flag; zero means a regular file.
	Type byte
	Body string
	// Mode is the permission bits; zero means 0644, or 0755 for a directory.
	Mode int64
	// Linkname is the target of a symlink or hard link.
	Linkname string
	Uid, Gid int
	// Xattrs are extended attributes ("user.x" → value).
	Xattrs map[string]string
}

// Tar returns an uncompressed tar of files, in order.
func Tar(tb testing.TB, files ...File) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{
			Name:     f.Name,
			Typeflag: f.Type,
			Mode:     f.Mode,
			Linkname: f.Linkname,
			Uid:      f.Uid,
			Gid:      f.Gid,
			ModTime:  time.Unix(1700000000, 0),
			Format:   tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(f.Body))
		}
		for k, v := range f.Xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatalf("tar header %s: %v", f.Name, err)
		}
		if _, err := io.WriteString(tw, f.Body); err != nil {
			tb.Fatalf("tar body %s: %v", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Layer makes a layer of an uncompressed tar, compressed as c (compression.None serves
// the tar as it is). The blob is compressed once, here.
func Layer(tb testing.TB, c compression.Compression, tarData []byte) v1.Layer {
	tb.Helper()
	var blob bytes.Buffer
	var w io.WriteCloser
	switch c {
	case compression.None:
		return static.NewLayer(tarData, types.OCIUncompressedLayer)
	case compression.GZip:
		w, _ = gzip.NewWriterLevel(&blob, gzip.BestSpeed)
	case compression.ZStd:
		zw, err := zstd.NewWriter(&blob, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			tb.Fatalf("zstd: %v", err)
		}
		w = zw
	default:
		tb.Fatalf("layer: unknown compression %q", c)
	}
	if _, err := w.Write(tarData); err != nil {
		tb.Fatalf("layer: %v", err)
	}
	if err := w.Close(); err != nil {
		tb.Fatalf("layer: %v", err)
	}
	compressed := blob.Bytes()
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(compressed)), nil }
	var opts []tarball.LayerOption
	if c == compression.ZStd {
		opts = append(opts, tarball.WithMediaType(types.OCILayerZStd))
	}
	layer, err := tarball.LayerFromOpener(opener, opts...)
	if err != nil {
		tb.Fatalf("layer: %v", err)
	}
	return layer
}

// Files is a gzip-compressed layer of files, the common case.
func Files(tb testing.TB, files ...File) v1.Layer {
	tb.Helper()
	return Layer(tb, compression.GZip, Tar(tb, files...))
}

// Image stacks layers (bottom first) into an image for this machine's platform with the
// given config.
func Image(tb testing.TB, config v1.Config, layers ...v1.Layer) v1.Image {
	tb.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		tb.Fatalf("image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		tb.Fatalf("image config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = config
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		tb.Fatalf("image config: %v", err)
	}
	return img
}

// Registry starts an in-memory registry on 127.0.0.1 for the test and returns its address
// ("127.0.0.1:port"). Each wrap, if given, wraps the registry's handler, outermost last:
// a way to corrupt or delay what it serves.
func Registry(tb testing.TB, wrap ...func(http.Handler) http.Handler) string {
	tb.Helper()
	handler := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	for _, w := range wrap {
		handler = w(handler)
	}
	srv := httptest.NewServer(handler)
	tb.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Push uploads img as ref ("127.0.0.1:port/repo:tag") and returns its manifest digest.
func Push(tb testing.TB, ref string, img v1.Image) string {
	tb.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		tb.Fatalf("push %s: %v", ref, err)
	}
	if err := remote.Write(r, img); err != nil {
		tb.Fatalf("push %s: %v", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		tb.Fatalf("push %s: %v", ref, err)
	}
	return digest.String()
}

// busyboxPath is where Debian's busybox-static installs its static busybox.
const busyboxPath = "/bin/busybox"

// BusyboxApplets are the commands BusyboxLayer links to busybox in /bin.
var BusyboxApplets = []string{
	"cat", "echo", "env", "false", "hostname", "id", "kill", "ls", "mkdir", "ps", "pwd",
	"rm", "sh", "sleep", "test", "touch", "true", "wc",
}

// BusyboxLayer is a layer with the static busybox as /bin/busybox, the BusyboxApplets as
// symlinks to it, and empty /tmp, /etc, /proc, /sys and /dev: enough to run commands in.
// The test skips when busybox-static is not installed, and fails under CI=true.
func BusyboxLayer(tb testing.TB) v1.Layer {
	tb.Helper()
	busybox.mu.Lock()
	defer busybox.mu.Unlock()
	if busybox.layer != nil {
		return busybox.layer
	}
	binary, err := os.ReadFile(busyboxPath)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("busybox-static must be installed for this test under CI (apt-get install busybox-static): %v", err)
		}
		tb.Skipf("busybox-static is not installed (apt-get install busybox-static): %v", err)
	}
	files := []File{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/busybox", Body: string(binary), Mode: 0o755},
	}
	for _, applet := range BusyboxApplets {
		files = append(files, File{Name: "bin/" + applet, Type: tar.TypeSymlink, Linkname: "busybox"})
	}
	for _, dir := range []string{"dev", "etc", "proc", "sys"} {
		files = append(files, File{Name: dir + "/", Type: tar.TypeDir})
	}
	files = append(files, File{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777})
	busybox.layer = Files(tb, files...)
	return busybox.layer
}

// busybox keeps the busybox layer, which is the same for every test and slow to compress.
var busybox struct {
	mu    sync.Mutex
	layer v1.Layer
}
