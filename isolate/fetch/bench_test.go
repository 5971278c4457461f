package fetch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/atoll/atoll/api"
)

// BenchmarkFetchExtract: download a 32 MiB .tar.gz (half random, half text, 64 files) from
// loopback and extract it into a fresh sandbox. MB/s is of unpacked content.
func BenchmarkFetchExtract(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	var entries []entry
	var size int64
	for i := range 64 {
		body := make([]byte, 512<<10)
		for j := range body {
			if i%2 == 0 {
				body[j] = byte(rng.Uint32())
			} else {
				body[j] = "0123456789\n"[(i+j)%11]
			}
		}
		entries = append(entries, entry{name: fmt.Sprintf("dir%d/file%d", i%8, i), body: string(body)})
		size += int64(len(body))
	}
	srv := serveFiles(b, map[string][]byte{"/app.tar.gz": gzipOf(b, tarOf(b, entries...))})
	f, err := New(DefaultConfig(b.TempDir()), nil)
	if err != nil {
		b.Fatal(err)
	}
	uris := []api.CommandURI{{Value: srv.URL + "/app.tar.gz"}}
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		sandbox := b.TempDir()
		b.StartTimer()
		if _, err := f.Fetch(context.Background(), sandbox, uris); err != nil {
			b.Fatal(err)
		}
	}
}
