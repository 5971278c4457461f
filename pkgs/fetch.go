package pkgs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atoll/atoll/api/universe"
)

// FetchConfig says how FetchIndex reaches a repository.
type FetchConfig struct {
	// Client sends the request; nil means http.DefaultClient. Timeout applies either way.
	Client *http.Client
	// Timeout bounds the whole fetch: connecting, the answer and reading the index.
	Timeout time.Duration
	// MaxBytes bounds the size of the index.
	MaxBytes int64
}

// DefaultFetchConfig is the configuration for fetching public indexes.
func DefaultFetchConfig() FetchConfig {
	return FetchConfig{
		// A full Universe index is tens of megabytes: a slow link needs time, but an add or
		// refresh must not hang forever on a server that stopped answering.
		Timeout: 60 * time.Second,
		// The largest Universe index (every revision of every package) was about 30 MB;
		// twice that leaves room and still bounds the memory one fetch can take.
		MaxBytes: 64 << 20,
	}
}

// Validate reports a configuration FetchIndex cannot use.
func (c FetchConfig) Validate() error {
	if c.Timeout <= 0 {
		return fmt.Errorf("fetch timeout must be positive, got %s", c.Timeout)
	}
	if c.MaxBytes <= 0 {
		return fmt.Errorf("fetch size limit must be positive, got %d", c.MaxBytes)
	}
	return nil
}

// indexAccept asks a Universe server for the newest index format first; plain JSON is
// accepted from static file servers.
var indexAccept = strings.Join([]string{
	universe.MediaTypeRepositoryV5,
	universe.MediaTypeRepositoryV4 + ";q=0.9",
	universe.MediaTypeRepositoryV3 + ";q=0.8",
	"application/json;q=0.5",
}, ",")

// FetchIndex fetches a repository index over HTTP(S) and loads it (see LoadIndex). Every
// error names the URI and says what was wrong: an unreachable server, an HTTP error status,
// a zip (Universe v2) repository, an index larger than cfg.MaxBytes, or an invalid index.
func FetchIndex(ctx context.Context, cfg FetchConfig, name, uri string) (*Repository, error) {
	fail := func(err error) error {
		return fmt.Errorf("repository %s: fetch %s: %w", name, uri, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fail(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fail(err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fail(fmt.Errorf("unsupported URI scheme %q: repositories are fetched over http or https", u.Scheme))
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fail(err)
	}
	req.Header.Set("Accept", indexAccept)
	client := cfg.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fail(fmt.Errorf("server answered %s", resp.Status))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/zip" {
		return nil, fail(errors.New("the server answered a zip (Universe v2) repository, which is not supported: use a v3, v4 or v5 index"))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, cfg.MaxBytes+1))
	if err != nil {
		return nil, fail(fmt.Errorf("reading the index: %w", err))
	}
	if int64(len(data)) > cfg.MaxBytes {
		return nil, fail(fmt.Errorf("the index is larger than %d bytes", cfg.MaxBytes))
	}
	pkgs, err := loadIndex(data, uri)
	if err != nil {
		return nil, fail(err)
	}
	return &Repository{Name: name, URI: uri, Packages: pkgs}, nil
}
