// Package fetch puts a task's artifacts (Mesos CommandInfo.uris) into its sandbox before it
// starts: it downloads http(s) URIs and copies file:// URIs and absolute paths, keeps
// artifacts marked cache in a shared cache keyed by URI, makes executables executable and
// extracts archives (.tar, .tar.gz, .tgz, .tar.bz2, .tbz2, .tar.xz, .txz, .zip; .gz is
// gunzipped), refusing any archive entry that would land outside the sandbox.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
)

var (
	// ErrTooLarge: an artifact or what an archive unpacks to exceeds its configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnsafePath: an archive entry or output_file would be written outside the sandbox
	// or through a symlink, or a symlink in an archive leads outside the sandbox.
	ErrUnsafePath = errors.New("unsafe path")
)

// Config configures a Fetcher.
type Config struct {
	// CacheDir keeps artifacts whose URI says cache, under the SHA-256 of the URI; empty
	// disables the cache and such artifacts are downloaded every time.
	CacheDir string
	// CacheMaxBytes bounds the cache; the least recently used artifacts are evicted first.
	CacheMaxBytes int64
	// MaxDownloadBytes bounds the size of one artifact.
	MaxDownloadBytes int64
	// MaxExtractBytes bounds what one archive may unpack to.
	MaxExtractBytes int64
	// Client makes the HTTP(S) requests; nil uses a client on http.DefaultTransport.
	// Requests have no overall timeout (artifacts may be large); the context of Fetch ends
	// them.
	Client *http.Client
	// Progress, if set, is called as an artifact arrives (every MiB and at its end) with
	// the bytes so far and the total (-1 when unknown). It must not block.
	Progress func(uri string, done, total int64)
}

// DefaultConfig caches in cacheDir up to 2 GiB (Mesos's default fetcher_cache_size) and
// lets one artifact be up to 10 GiB and an archive unpack to 20 GiB: room for any JDK or
// Spark distribution, while a runaway stream or a zip bomb still cannot fill an agent's
// disk.
func DefaultConfig(cacheDir string) Config {
	return Config{
		CacheDir:         cacheDir,
		CacheMaxBytes:    2 << 30,
		MaxDownloadBytes: 10 << 30,
		MaxExtractBytes:  20 << 30,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.CacheDir != "" && !filepath.IsAbs(c.CacheDir):
		return fmt.Errorf("fetcher CacheDir %q must be an absolute path", c.CacheDir)
	case c.CacheDir != "" && c.CacheMaxBytes <= 0:
		return fmt.Errorf("fetcher CacheMaxBytes %d must be positive", c.CacheMaxBytes)
	case c.MaxDownloadBytes <= 0:
		return fmt.Errorf("fetcher MaxDownloadBytes %d must be positive", c.MaxDownloadBytes)
	case c.MaxExtractBytes <= 0:
		return fmt.Errorf("fetcher MaxExtractBytes %d must be positive", c.MaxExtractBytes)
	}
	return nil
}

// Result is one fetched artifact.
type Result struct {
	// URI is the artifact's URI with any password removed.
	URI string
	// Path is where the artifact is in the sandbox.
	Path string
	// Size is its size in bytes (compressed, for an archive).
	Size int64
	// FromCache says it was copied from the cache rather than fetched.
	FromCache bool
	// Extracted says it was an archive and was extracted into the sandbox.
	Extracted bool
}

// Fetcher fetches artifacts; it is safe for concurrent use, also by fetches of the same
// cached URI (the first downloads, the others wait and copy).
type Fetcher struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	locks  keyedMutex
}

// New makes a Fetcher, creating the cache directory. A nil logger discards its logs.
func New(cfg Config, logger *slog.Logger) (*Fetcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport}
	}
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("fetcher cache: %w", err)
		}
	}
	return &Fetcher{cfg: cfg, log: logger, client: client}, nil
}

// Fetch puts uris into sandbox, an existing directory, one after the other, and stops at
// the first failure. Each artifact lands in the sandbox under its URI's base name or
// under output_file (a path relative to the sandbox); executable ones are made executable
// and never extracted; archives are extracted into the sandbox unless extract is false,
// and kept. cache applies to http(s) URIs; local files are always copied. A relative
// path, or a scheme other than http, https and file, is refused.
func (f *Fetcher) Fetch(ctx context.Context, sandbox string, uris []api.CommandURI) ([]Result, error) {
	if !filepath.IsAbs(sandbox) {
		return nil, fmt.Errorf("fetch: sandbox %q must be an absolute path", sandbox)
	}
	results := make([]Result, 0, len(uris))
	for i, uri := range uris {
		res, err := f.fetchOne(ctx, sandbox, uri)
		if err != nil {
			return results, fmt.Errorf("fetch uris[%d] %s: %w", i, redact(uri.Value), err)
		}
		results = append(results, res)
	}
	return results, nil
}

func (f *Fetcher) fetchOne(ctx context.Context, sandbox string, uri api.CommandURI) (Result, error) {
	start := time.Now()
	src, err := parseSource(uri.Value)
	if err != nil {
		return Result{}, err
	}
	name := uri.OutputFile
	if name == "" {
		name = src.base
	}
	rel, err := cleanName(name)
	if err != nil {
		return Result{}, fmt.Errorf("output file: %w", err)
	}
	if rel == "." {
		return Result{}, fmt.Errorf("output file %q names the sandbox itself", name)
	}
	// The destination's directories may come from an archive fetched before: never
	// through a symlink.
	if err := makeParents(sandbox, rel, name); err != nil {
		return Result{}, err
	}
	dst := filepath.Join(sandbox, rel)
	res := Result{URI: redact(uri.Value), Path: dst}
	if uri.Cache && f.cfg.CacheDir != "" && src.remote() {
		res.Size, res.FromCache, err = f.fetchCached(ctx, uri.Value, src, dst)
	} else {
		res.Size, err = f.fetchTo(ctx, res.URI, src, dst)
	}
	if err != nil {
		return Result{}, err
	}
	kind := archiveKindOf(rel)
	switch {
	case uri.Executable:
		err = os.Chmod(dst, 0o755)
	case (uri.Extract == nil || *uri.Extract) && kind != notArchive:
		err = extractArchive(ctx, dst, kind, sandbox, f.cfg.MaxExtractBytes)
		res.Extracted = err == nil
	}
	if err != nil {
		return Result{}, err
	}
	f.log.Info("artifact fetched", "uri", res.URI, "path", dst, "bytes", res.Size, "from_cache", res.FromCache,
		"extracted", res.Extracted, "duration", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// source is where an artifact comes from: a URL to GET or a local file.
type source struct {
	url   *url.URL
	local string
	// base is the file name the artifact gets by default.
	base string
}

func (s source) remote() bool { return s.url != nil }

func parseSource(value string) (source, error) {
	if value == "" {
		return source{}, errors.New("uri value is empty")
	}
	if strings.HasPrefix(value, "/") {
		return localSource(value)
	}
	u, err := url.Parse(value)
	if err != nil {
		return source{}, fmt.Errorf("parse uri: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return source{}, errors.New("uri has no host")
		}
		base := path.Base(u.Path)
		if base == "/" || base == "." || u.Path == "" {
			return source{}, errors.New("uri path names no file: set output_file")
		}
		return source{url: u, base: base}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return source{}, fmt.Errorf("file uri names host %q: only local files can be fetched", u.Host)
		}
		return localSource(u.Path)
	case "":
		return source{}, errors.New("relative paths are not supported: use an absolute path or a URL")
	default:
		return source{}, fmt.Errorf("scheme %q is not supported (http, https, file)", u.Scheme)
	}
}

func localSource(p string) (source, error) {
	if !filepath.IsAbs(p) {
		return source{}, fmt.Errorf("local path %q is not absolute", p)
	}
	base := filepath.Base(p)
	if base == "/" || base == "." {
		return source{}, fmt.Errorf("local path %q names no file", p)
	}
	return source{local: filepath.Clean(p), base: base}, nil
}

// redact removes a password from a URL for logs and messages.
func redact(value string) string {
	u, err := url.Parse(value)
	if err != nil || u.User == nil {
		return value
	}
	return u.Redacted()
}

// fetchTo fetches src into dst and returns its size.
func (f *Fetcher) fetchTo(ctx context.Context, display string, src source, dst string) (int64, error) {
	return writeFile(dst, func(w io.Writer) (int64, error) { return f.copyFrom(ctx, display, src, w) })
}

// writeFile writes dst through a temporary file beside it, so that dst is whole or absent.
func writeFile(dst string, fill func(w io.Writer) (int64, error)) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".fetch-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := fill(tmp)
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// copyFrom writes src's content to w, at most MaxDownloadBytes of it.
func (f *Fetcher) copyFrom(ctx context.Context, display string, src source, w io.Writer) (int64, error) {
	var body io.Reader
	total := int64(-1)
	if src.remote() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url.String(), nil)
		if err != nil {
			return 0, err
		}
		resp, err := f.client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET: %s", resp.Status)
		}
		body, total = resp.Body, resp.ContentLength
	} else {
		file, size, err := openRegular(src.local)
		if err != nil {
			return 0, err
		}
		defer file.Close()
		body, total = &contextReader{ctx: ctx, r: file}, size
	}
	limit := f.cfg.MaxDownloadBytes
	if total > limit {
		return 0, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrTooLarge, total, limit)
	}
	counter := &progressWriter{w: w, uri: display, total: total, report: f.cfg.Progress}
	n, err := io.Copy(counter, io.LimitReader(body, limit+1))
	if err != nil {
		return n, err
	}
	if n > limit {
		return n, fmt.Errorf("%w: more than the limit of %d bytes", ErrTooLarge, limit)
	}
	if total >= 0 && n != total {
		return n, fmt.Errorf("got %d bytes of %d", n, total)
	}
	counter.done()
	return n, nil
}

// openRegular opens a local file to copy, which must be a regular file.
func openRegular(name string) (*os.File, int64, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	fi, err := file.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", name)
	}
	if err != nil {
		file.Close()
		return nil, 0, err
	}
	return file, fi.Size(), nil
}

// contextReader stops a copy from a local file when ctx ends (HTTP bodies do by
// themselves).
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// progressWriter counts bytes and reports them every MiB.
type progressWriter struct {
	w        io.Writer
	uri      string
	n, total int64
	reported int64
	report   func(uri string, done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.report != nil && p.n-p.reported >= 1<<20 {
		p.reported = p.n
		p.report(p.uri, p.n, p.total)
	}
	return n, err
}

// done reports the end, unless the last report already said it.
func (p *progressWriter) done() {
	if p.report != nil && (p.n == 0 || p.reported != p.n) {
		p.report(p.uri, p.n, p.total)
	}
}

// fetchCached copies the cached artifact of uri to dst, downloading it into the cache
// first if needed. It reports whether the cache had it.
func (f *Fetcher) fetchCached(ctx context.Context, uri string, src source, dst string) (int64, bool, error) {
	sum := sha256.Sum256([]byte(uri))
	key := hex.EncodeToString(sum[:])
	unlock, err := f.locks.lock(ctx, key)
	if err != nil {
		return 0, false, err
	}
	defer unlock()
	entry := filepath.Join(f.cfg.CacheDir, key)
	hit := true
	if _, err := os.Stat(entry); errors.Is(err, fs.ErrNotExist) {
		hit = false
		if _, err := f.fetchTo(ctx, redact(uri), src, entry); err != nil {
			return 0, false, err
		}
	} else if err != nil {
		return 0, false, fmt.Errorf("cache: %w", err)
	}
	// The mtime orders eviction: least recently used first.
	now := time.Now()
	if err := os.Chtimes(entry, now, now); err != nil {
		return 0, false, fmt.Errorf("cache: %w", err)
	}
	n, err := writeFile(dst, func(w io.Writer) (int64, error) {
		cached, _, err := openRegular(entry)
		if err != nil {
			return 0, err
		}
		defer cached.Close()
		return io.Copy(w, cached)
	})
	if err != nil {
		return 0, false, fmt.Errorf("copy from cache: %w", err)
	}
	if err := f.evict(key, entry); err != nil {
		f.log.Warn("fetcher cache eviction failed", "error", err)
	}
	return n, hit, nil
}

// evict removes least recently used cache entries until the cache fits CacheMaxBytes,
// skipping entries in use; current (whose lock the caller holds) goes only if it alone is
// too big.
func (f *Fetcher) evict(currentKey, current string) error {
	entries, err := os.ReadDir(f.cfg.CacheDir)
	if err != nil {
		return err
	}
	type cached struct {
		key   string
		size  int64
		mtime time.Time
	}
	var all []cached
	var total int64
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a download in progress
		}
		info, err := e.Info()
		if err != nil {
			continue // evicted meanwhile
		}
		all = append(all, cached{key: e.Name(), size: info.Size(), mtime: info.ModTime()})
		total += info.Size()
	}
	slices.SortFunc(all, func(a, b cached) int { return a.mtime.Compare(b.mtime) })
	for _, c := range all {
		if total <= f.cfg.CacheMaxBytes {
			return nil
		}
		if c.key == currentKey {
			continue
		}
		unlock, ok := f.locks.tryLock(c.key)
		if !ok {
			continue
		}
		err := os.Remove(filepath.Join(f.cfg.CacheDir, c.key))
		unlock()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		total -= c.size
	}
	if total > f.cfg.CacheMaxBytes {
		return os.Remove(current)
	}
	return nil
}

// keyedMutex is a set of mutexes by name whose Lock honours a context.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	held chan struct{}
	refs int
}

func (k *keyedMutex) get(key string) *keyLock {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	return l
}

func (k *keyedMutex) lock(ctx context.Context, key string) (unlock func(), err error) {
	l := k.get(key)
	select {
	case l.held <- struct{}{}:
		return func() { <-l.held; k.release(key, l) }, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *keyedMutex) tryLock(key string) (unlock func(), ok bool) {
	l := k.get(key)
	select {
	case l.held <- struct{}{}:
		return func() { <-l.held; k.release(key, l) }, true
	default:
		k.release(key, l)
		return nil, false
	}
}

func (k *keyedMutex) release(key string, l *keyLock) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(k.locks, key)
	}
}
