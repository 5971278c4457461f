package cosmos_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/atoll/atoll/api/universe"
)

// BenchmarkInstall measures /package/install to "deployment started": resolve, render,
// check, create the app through the services framework's API and record the installation
// in Raft. Each iteration installs under a new app id; the app has no instances, so the
// agent's work is not measured.
func BenchmarkInstall(b *testing.B) {
	c := newCluster(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		resp, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "portless", AppID: fmt.Sprintf("/bench/s%d", i),
			Options: []byte(`{"service": {"instances": 0}}`)})
		if err != nil || resp.DeploymentID == "" {
			b.Fatalf("install %d: %+v, %v", i, resp, err)
		}
	}
}

// BenchmarkSearch measures /package/search over the HTTP API.
func BenchmarkSearch(b *testing.B) {
	c := newCluster(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.cosmos.Search(ctx, "sleep"); err != nil {
			b.Fatal(err)
		}
	}
}
