package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Logger receives the watcher's logs.
	Logger *slog.Logger
	// Masters are the base URLs of the masters' APIs ("http://10.0.0.1:5050"); any one
	// serves (followers forward), and the watcher moves to the next when one fails.
	Masters []string
	// Token authenticates to the API ("Authorization: Bearer"); "" sends none.
	Token string
	// Group is the load balancer group whose table is built.
	Group string
	// Debounce gathers the events of a burst (a deployment sends many) into one refetch.
	Debounce time.Duration
	// Refresh refetches the apps this often even without events, so that a lost event
	// costs at most this much staleness.
	Refresh time.Duration
	// SilenceTimeout ends an event stream that sent nothing (not even a keep-alive
	// comment) for this long: it is dead though TCP has not said so.
	SilenceTimeout time.Duration
	// MaxBackoff caps the wait between reconnection attempts.
	MaxBackoff time.Duration
	// Client makes the requests; nil uses one without an overall timeout (the event
	// stream is long-lived).
	Client *http.Client
}

// DefaultWatcherConfig is the production preset.
func DefaultWatcherConfig() WatcherConfig {
	return WatcherConfig{
		Logger: slog.Default(),
		Group:  "external",
		// Long enough to gather a deployment step's events, short enough not to notice.
		Debounce: 50 * time.Millisecond,
		// marathon-lb's streams died silently; a periodic refetch bounds the damage.
		Refresh: 30 * time.Second,
		// The master sends a keep-alive comment every 15 s: three missed mean it is gone.
		SilenceTimeout: 45 * time.Second,
		MaxBackoff:     5 * time.Second,
	}
}

// Validate reports a config the Watcher cannot run with.
func (c WatcherConfig) Validate() error {
	var errs []error
	if c.Logger == nil {
		errs = append(errs, errors.New("lb watcher: Logger is nil"))
	}
	if len(c.Masters) == 0 {
		errs = append(errs, errors.New("lb watcher: no master URL"))
	}
	for _, m := range c.Masters {
		if u, err := url.Parse(m); err != nil || u.Scheme == "" || u.Host == "" {
			errs = append(errs, fmt.Errorf("lb watcher: master %q is not an http(s) URL", m))
		}
	}
	if c.Group == "" {
		errs = append(errs, errors.New("lb watcher: Group is empty"))
	}
	if c.Debounce < 0 || c.Refresh <= 0 || c.SilenceTimeout <= 0 || c.MaxBackoff <= 0 {
		errs = append(errs, fmt.Errorf("lb watcher: durations must be positive (debounce %v, refresh %v, silence %v, backoff %v)", c.Debounce, c.Refresh, c.SilenceTimeout, c.MaxBackoff))
	}
	return errors.Join(errs...)
}

// watchedEvents are the /v2/events types that can change a routing table.
var watchedEvents = []string{
	"status_update_event", "health_status_changed_event", "instance_health_changed_event",
	"unhealthy_task_kill_event", "deployment_info", "deployment_success", "deployment_failed",
	"deployment_step_success", "deployment_step_failure", "app_terminated_event",
	"api_post_event", "group_change_success",
}

// Watcher keeps a Server's table fresh from a master: the whole app list on every
// (re)connection, then a refetch after each burst of relevant events on /v2/events, and
// one every Refresh in any case.
type Watcher struct {
	cfg    WatcherConfig
	log    *slog.Logger
	client *http.Client
	apply  func(*Table) error
	// tables counts the tables applied.
	tables atomic.Uint64
	last   []Problem
}

// NewWatcher makes a Watcher that hands each new table to apply (Server.Swap).
func NewWatcher(cfg WatcherConfig, apply func(*Table) error) (*Watcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{}
	}
	return &Watcher{cfg: cfg, log: cfg.Logger.With("component", "lb-watcher"), client: client, apply: apply}, nil
}

// Tables is how many tables the watcher has applied.
func (w *Watcher) Tables() uint64 { return w.tables.Load() }

// Run watches until ctx ends, moving through the masters with backoff on failures.
func (w *Watcher) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for i := 0; ; i++ {
		master := strings.TrimSuffix(w.cfg.Masters[i%len(w.cfg.Masters)], "/")
		start := time.Now()
		err := w.session(ctx, master)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > w.cfg.Refresh {
			backoff = 100 * time.Millisecond // it worked for a while: start over
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		w.log.Warn("master connection lost; reconnecting", "master", master, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, w.cfg.MaxBackoff)
	}
}

// session follows one master until something fails.
func (w *Watcher) session(ctx context.Context, master string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The stream first, so that no change falls between the fetch and the stream.
	q := url.Values{"event_type": watchedEvents}
	req, err := w.request(ctx, master+"/v2/events?"+q.Encode())
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("open event stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("open event stream: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := w.refresh(ctx, master); err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	var lastByte atomic.Int64
	lastByte.Store(time.Now().UnixNano())
	streamErr := make(chan error, 1)
	go func() { streamErr <- readEvents(resp.Body, &lastByte, changed) }()

	refresh := time.NewTicker(w.cfg.Refresh)
	defer refresh.Stop()
	silence := time.NewTicker(max(w.cfg.SilenceTimeout/4, 10*time.Millisecond))
	defer silence.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-streamErr:
			return fmt.Errorf("event stream: %w", err)
		case <-changed:
			if debounce == nil {
				debounce = time.After(w.cfg.Debounce)
			}
		case <-debounce:
			debounce = nil
			if err := w.refresh(ctx, master); err != nil {
				return err
			}
		case <-refresh.C:
			if err := w.refresh(ctx, master); err != nil {
				return err
			}
		case <-silence.C:
			if quiet := time.Since(time.Unix(0, lastByte.Load())); quiet > w.cfg.SilenceTimeout {
				return fmt.Errorf("event stream silent for %v", quiet.Round(time.Millisecond))
			}
		}
	}
}

// readEvents reads an SSE stream, noting when bytes arrive and signalling events.
func readEvents(body io.Reader, lastByte *atomic.Int64, changed chan<- struct{}) error {
	r := bufio.NewReaderSize(body, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			lastByte.Store(time.Now().UnixNano())
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a long data line: only its start matters
		}
		if err != nil {
			if err == io.EOF {
				return errors.New("closed by the master")
			}
			return err
		}
		if typ, ok := strings.CutPrefix(string(line), "event: "); ok && slices.Contains(watchedEvents, strings.TrimSpace(typ)) {
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}
}

// refresh fetches every app with its tasks and applies the table.
func (w *Watcher) refresh(ctx context.Context, master string) error {
	req, err := w.request(ctx, master+"/v2/apps?embed=apps.tasks")
	if err != nil {
		return err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch apps: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("fetch apps: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch apps: %s: %s", resp.Status, strings.TrimSpace(string(body[:min(len(body), 512)])))
	}
	apps, problems, err := DecodeApps(body)
	if err != nil {
		return err
	}
	table, tableProblems := BuildTable(apps, TableOptions{Group: w.cfg.Group})
	table.Problems = append(problems, tableProblems...)
	if !slices.Equal(table.Problems, w.last) {
		for _, p := range table.Problems {
			if !slices.Contains(w.last, p) {
				w.log.Warn("label not honoured", "app", p.App, "label", p.Label, "why", p.Why)
			}
		}
		w.last = table.Problems
	}
	if err := w.apply(table); err != nil {
		w.log.Error("routing table applied in part", "err", err)
	}
	w.tables.Add(1)
	return nil
}

func (w *Watcher) request(ctx context.Context, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", u, err)
	}
	if w.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.cfg.Token)
	}
	return req, nil
}
