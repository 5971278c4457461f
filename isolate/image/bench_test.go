package image

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/atoll/atoll/isolate/image/imagetest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// benchImage pushes an image of 5 layers × 10 MiB (40 files of 256 KiB, half random and
// so incompressible, half text) to a loopback registry and returns its reference and
// uncompressed size.
func benchImage(b *testing.B) (string, int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var layers []v1.Layer
	var size int64
	for l := range 5 {
		var files []file
		for f := range 40 {
			body := make([]byte, 256<<10)
			if f%2 == 0 {
				for i := range body {
					body[i] = byte(rng.Uint32())
				}
			} else {
				for i := range body {
					body[i] = "abcdefghij\n"[(i*7+f)%11]
				}
			}
			files = append(files, file{Name: fmt.Sprintf("layer%d/dir%d/file%d", l, f%4, f), Body: string(body)})
			size += int64(len(body))
		}
		layers = append(layers, imagetest.Files(b, files...))
	}
	ref := imagetest.Registry(b) + "/bench/app:1"
	imagetest.Push(b, ref, imagetest.Image(b, v1.Config{Cmd: []string{"true"}}, layers...))
	return ref, size
}

// BenchmarkPull: a cold pull of the 50 MiB image from the loopback registry into an empty
// store: download, digest checks, gunzip and unpack. MB/s is of unpacked content.
func BenchmarkPull(b *testing.B) {
	requireRoot(b)
	ref, size := benchImage(b)
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dir, err := os.MkdirTemp(b.TempDir(), "store")
		if err != nil {
			b.Fatal(err)
		}
		cfg := DefaultConfig(dir)
		cfg.Keychain = nil
		s, err := New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Pull(context.Background(), ref, PullAlways); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}

// BenchmarkRootFSCached: a container's root filesystem from an image already in the cache:
// overlay mount plus cleanup. layers-unpacked/op shows that nothing is copied.
func BenchmarkRootFSCached(b *testing.B) {
	requireRoot(b)
	ref, _ := benchImage(b)
	cfg := DefaultConfig(b.TempDir())
	cfg.Keychain = nil
	s, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Pull(ctx, ref, PullAlways); err != nil {
		b.Fatal(err)
	}
	before := s.Stats().LayersUnpacked
	b.ResetTimer()
	for i := range b.N {
		_, _, cleanup, err := s.RootFS(ctx, ref, fmt.Sprintf("c%d", i), PullIfMissing)
		if err != nil {
			b.Fatal(err)
		}
		if err := cleanup(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.Stats().LayersUnpacked-before)/float64(b.N), "layers-unpacked/op")
}
