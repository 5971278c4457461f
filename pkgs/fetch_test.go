package pkgs

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api/universe"
)

// indexServer serves handler on loopback.
func indexServer(tb testing.TB, handler http.HandlerFunc) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(handler)
	tb.Cleanup(srv.Close)
	return srv
}

func TestFetchIndex(t *testing.T) {
	index, err := json.Marshal(testRepo(t).Index())
	if err != nil {
		t.Fatal(err)
	}
	var accept string
	srv := indexServer(t, func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", universe.MediaTypeRepositoryV4)
		w.Write(index)
	})
	repo, err := FetchIndex(context.Background(), DefaultFetchConfig(), "remote", srv.URL+"/repo")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"datastore@3.2.1-1.0#3", "hello@1.0.0#0", "hello@1.1.0#1", "webstack@0.1.0#0"}; strings.Join(coordinates(repo.Packages), " ") != strings.Join(want, " ") {
		t.Errorf("packages %v", coordinates(repo.Packages))
	}
	if repo.Name != "remote" || repo.URI != srv.URL+"/repo" || repo.Packages[0].Source != srv.URL+"/repo" {
		t.Errorf("name %q uri %q source %q", repo.Name, repo.URI, repo.Packages[0].Source)
	}
	wantAccept := "application/vnd.dcos.universe.repo+json;charset=utf-8;version=v5," +
		"application/vnd.dcos.universe.repo+json;charset=utf-8;version=v4;q=0.9," +
		"application/vnd.dcos.universe.repo+json;charset=utf-8;version=v3;q=0.8,application/json;q=0.5"
	if accept != wantAccept {
		t.Errorf("Accept %q", accept)
	}
}

func TestFetchIndexErrors(t *testing.T) {
	// A port nothing listens on: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/repo"
	ln.Close()

	// hang answers nothing until the client gives up.
	hang := indexServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	notFound := indexServer(t, http.NotFound)
	garbage := indexServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>hello</html>")) })
	zip := indexServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		w.Write([]byte("PK"))
	})
	large := indexServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"packages": [` + strings.Repeat(" ", 2000) + `]}`))
	})
	invalid := indexServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"packages": [{"name": "x"}]}`))
	})

	small := DefaultFetchConfig()
	small.MaxBytes = 1000
	quick := DefaultFetchConfig()
	quick.Timeout = 100 * time.Millisecond
	tests := []struct {
		name string
		cfg  FetchConfig
		uri  string
		want string
	}{
		{"down", DefaultFetchConfig(), down, "repository r: fetch " + down + ": dial tcp " + down[len("http://"):len(down)-len("/repo")] + ": connect: connection refused"},
		{"timeout", quick, hang.URL, "repository r: fetch " + hang.URL + ": context deadline exceeded"},
		{"not found", DefaultFetchConfig(), notFound.URL + "/x", "repository r: fetch " + notFound.URL + "/x: server answered 404 Not Found"},
		{"garbage", DefaultFetchConfig(), garbage.URL, "repository r: fetch " + garbage.URL + ": index: invalid JSON at offset 1: invalid character '<' looking for beginning of value"},
		{"zip", DefaultFetchConfig(), zip.URL, "repository r: fetch " + zip.URL + ": the server answered a zip (Universe v2) repository, which is not supported: use a v3, v4 or v5 index"},
		{"too large", small, large.URL, "repository r: fetch " + large.URL + ": the index is larger than 1000 bytes"},
		{"invalid index", DefaultFetchConfig(), invalid.URL, "repository r: fetch " + invalid.URL + ": index: packages[0].packagingVersion: missing required field; " +
			"packages[0].version: missing required field; packages[0].maintainer: missing required field; packages[0].description: missing required field; " +
			"packages[0].tags: missing required field; packages[0].releaseVersion: missing required field"},
		{"scheme", DefaultFetchConfig(), "file:///etc/passwd", `repository r: fetch file:///etc/passwd: unsupported URI scheme "file": repositories are fetched over http or https`},
		{"bad URI", DefaultFetchConfig(), "http://[::1", `repository r: fetch http://[::1: parse "http://[::1": missing ']' in host`},
		{"bad config", FetchConfig{Timeout: time.Second}, notFound.URL, "repository r: fetch " + notFound.URL + ": fetch size limit must be positive, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, err := FetchIndex(context.Background(), tt.cfg, "r", tt.uri)
			if err == nil {
				t.Fatalf("fetched %v", coordinates(repo.Packages))
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestFetchIndexCanceled(t *testing.T) {
	hang := indexServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := FetchIndex(ctx, DefaultFetchConfig(), "r", hang.URL)
	if want := "repository r: fetch " + hang.URL + ": context canceled"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestFetchConfigValidate(t *testing.T) {
	if err := DefaultFetchConfig().Validate(); err != nil {
		t.Error(err)
	}
	if err := (FetchConfig{MaxBytes: 1}).Validate(); err == nil || err.Error() != "fetch timeout must be positive, got 0s" {
		t.Errorf("error %v", err)
	}
}
