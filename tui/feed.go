package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
)

// The feed keeps the TUI's picture of the cluster current from two event streams, the
// operator API's SUBSCRIBE (agents, frameworks, tasks) and Marathon's /v2/events (apps,
// deployments), each in a goroutine of its own that reconnects with backoff whenever its
// stream ends. A stream starts with the full state (SUBSCRIBED; a read of the apps after
// /v2/events is open), so a reconnect is the only full refresh. Messages reach the
// bubbletea loop through one channel, in batches, so that a burst of events costs one
// render.

// connState is the state of a stream's connection.
type connState int

const (
	connConnecting connState = iota
	connConnected
	connReconnecting
	// connMissing: the master does not serve the stream's API.
	connMissing
)

// streamName names a stream.
type streamName string

const (
	streamOperator streamName = "operator"
	streamMarathon streamName = "marathon"
)

// connMsg reports a stream's connection state; err is why it is reconnecting or missing.
type connMsg struct {
	stream  streamName
	state   connState
	attempt int
	err     error
}

// operatorEventMsg is an operator event (SUBSCRIBED with the full state first).
type operatorEventMsg struct{ ev *api.OperatorEvent }

// marathonSnapshotMsg is the Marathon state read when /v2/events (re)connected.
type marathonSnapshotMsg struct {
	apps        []marathon.AppInfo
	deployments []marathon.Deployment
	queue       []marathon.QueueItem
}

// marathonEventMsg is one /v2/events event.
type marathonEventMsg struct{ ev marathon.Event }

// feedBatch is the messages the feed had ready at once.
type feedBatch []tea.Msg

// maxBatch bounds one batch: the UI stays responsive to keys during a flood of events.
const maxBatch = 1024

type feed struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	out    chan tea.Msg
}

func newFeed(ctx context.Context, cfg Config) *feed {
	ctx, cancel := context.WithCancel(ctx)
	return &feed{cfg: cfg, ctx: ctx, cancel: cancel, out: make(chan tea.Msg, 4*maxBatch)}
}

// start runs both streams until close.
func (f *feed) start() {
	go f.loop(streamOperator, f.operatorSession)
	go f.loop(streamMarathon, f.marathonSession)
}

func (f *feed) close() { f.cancel() }

// send hands a message to the UI; false when ctx ended first.
func (f *feed) send(ctx context.Context, msg tea.Msg) bool {
	select {
	case f.out <- msg:
		return true
	case <-ctx.Done():
		return false
	}
}

// wait is the command that delivers the feed's next batch.
func (f *feed) wait() tea.Cmd {
	return func() tea.Msg {
		var batch feedBatch
		select {
		case msg := <-f.out:
			batch = append(batch, msg)
		case <-f.ctx.Done():
			return nil
		}
		for len(batch) < maxBatch {
			select {
			case msg := <-f.out:
				batch = append(batch, msg)
			default:
				return batch
			}
		}
		return batch
	}
}

// errMissing is returned by a session whose API the master does not serve.
var errMissing = errors.New("not served by this master")

// loop runs sessions of a stream until the feed closes, waiting between them with
// exponential backoff (reset by a session that got connected).
func (f *feed) loop(name streamName, session func(context.Context) (bool, error)) {
	delay := f.cfg.ReconnectMin
	for attempt := 1; ; attempt++ {
		connected, err := session(f.ctx)
		if f.ctx.Err() != nil {
			return
		}
		if connected {
			attempt, delay = 1, f.cfg.ReconnectMin
		}
		state := connReconnecting
		if errors.Is(err, errMissing) {
			state, delay = connMissing, f.cfg.ReconnectMax
		}
		if !f.send(f.ctx, connMsg{stream: name, state: state, attempt: attempt, err: err}) {
			return
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, f.cfg.ReconnectMax)
	}
}

// operatorSession subscribes to the operator stream and relays its events until it ends
// or falls silent for three heartbeats. connected says SUBSCRIBED arrived.
func (f *feed) operatorSession(parent context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	watchdog := time.AfterFunc(f.cfg.ConnectTimeout, cancel)
	defer watchdog.Stop()
	stream, err := f.cfg.API.SubscribeOperator(ctx)
	if err != nil {
		return false, connectError(ctx, f.cfg.ConnectTimeout, err)
	}
	defer stream.Close()
	first, err := stream.Next()
	if err != nil {
		return false, connectError(ctx, f.cfg.ConnectTimeout, fmt.Errorf("operator stream: %w", err))
	}
	if first.Type != api.OpEventSubscribed || first.Subscribed == nil {
		return false, fmt.Errorf("operator stream: began with %s, not SUBSCRIBED", first.Type)
	}
	watchdog.Stop()
	if !f.send(ctx, operatorEventMsg{first}) || !f.send(ctx, connMsg{stream: streamOperator, state: connConnected}) {
		return true, ctx.Err()
	}
	// A master that promises heartbeats and sends nothing for three of them is gone, even
	// if no connection error says so (a partition); one that promises none is trusted.
	heartbeat := time.Duration(first.Subscribed.HeartbeatIntervalSeconds * float64(time.Second))
	return true, f.relay(ctx, 3*heartbeat, func() (tea.Msg, error) {
		ev, err := stream.Next()
		if err != nil {
			return nil, streamError("operator stream", err)
		}
		if ev.Type == api.OpEventHeartbeat {
			return nil, nil
		}
		return operatorEventMsg{ev}, nil
	})
}

// marathonSession opens /v2/events, reads the apps, deployments and queue, and relays the
// events until the stream ends.
func (f *feed) marathonSession(parent context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	watchdog := time.AfterFunc(f.cfg.ConnectTimeout, cancel)
	defer watchdog.Stop()
	stream, err := f.cfg.Marathon.Events(ctx)
	if err != nil {
		var ae *marathon.APIError
		if errors.As(err, &ae) && ae.Body.Status == http.StatusNotFound && !ae.FromMarathon {
			return false, fmt.Errorf("the Marathon API is %w", errMissing)
		}
		return false, connectError(ctx, f.cfg.ConnectTimeout, err)
	}
	defer stream.Close()
	watchdog.Stop()
	// The stream is open before the state is read, so no change falls in between.
	snapshot, err := f.marathonSnapshot(ctx)
	if err != nil {
		return false, err
	}
	if !f.send(ctx, snapshot) || !f.send(ctx, connMsg{stream: streamMarathon, state: connConnected}) {
		return true, ctx.Err()
	}
	// /v2/events has no heartbeat; the operator stream's watchdog notices a master gone
	// silent, and a closed connection ends this one.
	return true, f.relay(ctx, 0, func() (tea.Msg, error) {
		ev, err := stream.Next()
		if err != nil {
			return nil, streamError("/v2/events", err)
		}
		return marathonEventMsg{ev}, nil
	})
}

// marathonSnapshot reads the apps, deployments and launch queue.
func (f *feed) marathonSnapshot(ctx context.Context) (marathonSnapshotMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.RequestTimeout)
	defer cancel()
	var snap marathonSnapshotMsg
	apps, err := f.cfg.Marathon.ListApps(ctx)
	if err != nil {
		return snap, err
	}
	for _, a := range apps {
		snap.apps = append(snap.apps, a.Value)
	}
	deployments, err := f.cfg.Marathon.ListDeployments(ctx)
	if err != nil {
		return snap, err
	}
	for _, d := range deployments {
		snap.deployments = append(snap.deployments, d.Value)
	}
	queue, err := f.cfg.Marathon.Queue(ctx)
	if err != nil {
		return snap, err
	}
	for _, q := range queue {
		snap.queue = append(snap.queue, q.Value)
	}
	return snap, nil
}

// relay reads a stream with next (a nil message is skipped) and hands its messages to the
// UI until it fails, ctx ends or, with silence above 0, nothing arrives for that long.
func (f *feed) relay(ctx context.Context, silence time.Duration, next func() (tea.Msg, error)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	alive := make(chan struct{}, 1)
	go func() {
		for {
			msg, err := next()
			if err != nil {
				cancel(err)
				return
			}
			select {
			case alive <- struct{}{}:
			default:
			}
			if msg != nil && !f.send(ctx, msg) {
				return
			}
		}
	}()
	var quiet <-chan time.Time
	var timer *time.Timer
	if silence > 0 {
		timer = time.NewTimer(silence)
		defer timer.Stop()
		quiet = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-alive:
			if timer != nil {
				timer.Reset(silence)
			}
		case <-quiet:
			return fmt.Errorf("the master sent nothing for %v", silence)
		}
	}
}

// connectError names a connection attempt cut short by its watchdog.
func connectError(ctx context.Context, timeout time.Duration, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("no answer within %v: %w", timeout, err)
	}
	return err
}

// streamError names how a stream ended.
func streamError(name string, err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: the master ended it", name)
	}
	return fmt.Errorf("%s: %w", name, err)
}
