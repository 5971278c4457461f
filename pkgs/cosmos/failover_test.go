package cosmos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/frameworks/services"
	"github.com/atoll/atoll/node/agent"
	"github.com/atoll/atoll/node/master"
	"github.com/atoll/atoll/pkgs"
	"github.com/atoll/atoll/pkgs/cosmos"
)

// TestCatalogFailover: with three masters, a repository added (its index uploaded and
// kept in Raft) and a package installed with options survive the leading master's stop:
// the new leader lists the same repositories and installation (options included), serves
// the added repository's packages with its source down, and uninstalls the package.
func TestCatalogFailover(t *testing.T) {
	mc := master.NewTestCluster(t, 3, func(c *master.Config) {
		c.Extensions = append(c.Extensions, func(m *master.Master) {
			services.Attach(m, services.Config{Logger: c.Logger, TickInterval: 100 * time.Millisecond})
			cosmos.Attach(m, cosmos.Config{Logger: c.Logger, Builtin: testRepository()})
		})
	})
	var urls []string
	for _, ts := range mc.Servers {
		urls = append(urls, ts.URL)
	}
	agent.TestAgent(t, func() []string { return urls })
	leader := mc.Leader()
	c := &cluster{t: t, master: leader, cosmos: universe.NewClient(leader.URL), apps: marathon.NewClient(leader.URL)}
	eventually(t, "the agent registered", func() error {
		if n := len(leader.Store().Agents()); n != 1 {
			return fmt.Errorf("%d agents", n)
		}
		return nil
	})
	ctx := context.Background()

	extra, err := pkgs.LoadFS(pkgFiles("extra", "0.1", 0, false, serviceConfig("extra"), `{"id":"/{{service.name}}","cmd":"sleep 1","cpus":0.05,"mem":16}`), "extra", "test")
	if err != nil {
		t.Fatal(err)
	}
	index, err := json.Marshal(extra.Index())
	if err != nil {
		t.Fatal(err)
	}
	source := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(index)
	}))
	if _, err := c.cosmos.RepositoryAdd(ctx, &universe.RepositoryAddRequest{Name: "extra", URI: source.URL}); err != nil {
		t.Fatalf("add repository: %v", err)
	}
	// Its index is in Raft: the source going away changes nothing.
	source.Close()
	options := json.RawMessage(`{"service":{"instances":1}}`)
	if _, err := c.cosmos.Install(ctx, &universe.InstallRequest{PackageName: "sleeper", PackageVersion: "1.0", AppID: "/kept", Options: options}); err != nil {
		t.Fatalf("install: %v", err)
	}
	c.running("/kept", 1)
	before, err := c.cosmos.List(ctx, &universe.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	repos, err := c.cosmos.RepositoryList(ctx)
	if err != nil {
		t.Fatal(err)
	}

	records := leader.Store().KVList("packages", "install/")
	if len(records) != 1 || !strings.Contains(string(records[0].Value), `"instances":1`) {
		t.Fatalf("installation records: %+v, want one with the options installed with", records)
	}
	leader.Stop()
	next := mc.Leader()
	c = &cluster{t: t, master: next, cosmos: universe.NewClient(next.URL), apps: marathon.NewClient(next.URL)}
	var after *universe.ListResponse
	eventually(t, "the new leader's catalog", func() error {
		after, err = c.cosmos.List(ctx, &universe.ListRequest{})
		return err
	})
	if !reflect.DeepEqual(after, before) {
		t.Errorf("installed packages after the failover:\n%+v\nwant as before:\n%+v", after, before)
	}
	if len(after.Packages) != 1 {
		t.Fatalf("%d installed packages, want 1", len(after.Packages))
	}
	// The installation record (options included) is the same entry in Raft.
	if got, want := next.Store().KVList("packages", "install/"), records; !reflect.DeepEqual(got, want) {
		t.Errorf("installation records on the new leader: %+v, want %+v", got, want)
	}
	nextRepos, err := c.cosmos.RepositoryList(ctx)
	if err != nil || !reflect.DeepEqual(nextRepos, repos) {
		t.Errorf("repositories after the failover: %+v, %v; want %+v", nextRepos, err, repos)
	}
	if found, err := c.cosmos.Search(ctx, "extra"); err != nil || len(found.Packages) != 1 {
		t.Errorf("search extra on the new leader, its source down: %+v, %v", found, err)
	}
	c.running("/kept", 1)
	if _, err := c.cosmos.Uninstall(ctx, &universe.UninstallRequest{PackageName: "sleeper", AppID: "/kept"}); err != nil {
		t.Fatalf("uninstall on the new leader: %v", err)
	}
	c.noApps()
	c.leavesNothing("kept")
}
