package pkgs

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/atoll/atoll/api/universe"
)

// syntheticCatalog is a catalog of n packages with 1–3 versions each, descriptions and tags
// drawn from a small vocabulary, a tenth of them selected.
func syntheticCatalog(b *testing.B, n int) *Catalog {
	b.Helper()
	words := []string{"kafka", "spark", "database", "stream", "cache", "web", "proxy", "metrics", "search", "queue", "storage", "ml"}
	var defs []universe.Package
	for i := range n {
		w1, w2 := words[i%len(words)], words[(i*7+3)%len(words)]
		for v := range 1 + i%3 {
			p := pkg(fmt.Sprintf("%s-%s-%d", w1, w2, i), fmt.Sprintf("1.%d.0", v), int64(v),
				fmt.Sprintf("A %s service for %s workloads, packaged for the catalog benchmark (%d).", w1, w2, i), w1, w2, "bench")
			if i%10 == 0 {
				p = selected(p)
			}
			defs = append(defs, p)
		}
	}
	return NewCatalog(indexRepo(b, "bench", defs...))
}

// BenchmarkSearch searches a 200-package catalog and reports the 99th percentile latency
// (target: 20 ms) as p99-ns.
func BenchmarkSearch(b *testing.B) {
	c := syntheticCatalog(b, 200)
	for _, query := range []string{"", "kafka", "STREAM", "*cache*", "nomatch"} {
		b.Run(fmt.Sprintf("query=%q", query), func(b *testing.B) {
			durations := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				c.Search(query)
				durations = append(durations, time.Since(start))
			}
			slices.Sort(durations)
			b.ReportMetric(float64(durations[len(durations)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkRender renders testdata's datastore package, a framework scheduler of real size
// (80 options, sections, arrays, resource assets), with user options.
func BenchmarkRender(b *testing.B) {
	p := resolve(b, "datastore", "")
	options := json.RawMessage(`{"service": {"name": "orders", "cpus": 2, "region": "eu"}, "node": {"count": 5}, "backup": {"enabled": true, "bucket": "s3://b"}}`)
	for b.Loop() {
		if _, err := p.Render(options, ""); err != nil {
			b.Fatal(err)
		}
	}
}
