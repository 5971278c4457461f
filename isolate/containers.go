package isolate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// errContainerExists is a launch's error for a container id in use: launched, recovered,
// or being launched or recovered, and not destroyed yet.
var errContainerExists = errors.New("container already exists")

// containerEntry is what a containerizer knows of every container, whatever runs it: its
// state and, once it has ended, how.
type containerEntry struct {
	state State
	// abandoned marks a container whose Launch gave up before it knew the container ran:
	// it is killed, and destroyed once it has exited. It is set before the container is
	// registered and never changes.
	abandoned bool

	finishOnce sync.Once
	done       chan struct{} // closed once status is set
	status     ExitStatus
}

// newContainerEntry is the entry of a container in st that has not ended.
func newContainerEntry(st State) *containerEntry {
	return &containerEntry{state: st, done: make(chan struct{})}
}

// entry gives containerTable the entry of a containerizer's own container type, which
// embeds it, or of the entry itself.
func (e *containerEntry) entry() *containerEntry { return e }

// exited reports whether the container has ended.
func (e *containerEntry) exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// tableEntry is a containerizer's container type: *containerEntry, or a pointer to a
// struct embedding one.
type tableEntry interface {
	entry() *containerEntry
}

// containerTable is the bookkeeping every containerizer shares: the containers it
// launched or recovered and has not destroyed, the ids reserved by launches and
// recoveries under way, how each container ended, and whether the containerizer was let
// go of (closed). Its methods are safe for concurrent use.
type containerTable[C tableEntry] struct {
	logger *slog.Logger
	// destroyAbandoned destroys a container whose launch was abandoned, once it has
	// exited, within abandonedTimeout.
	destroyAbandoned func(ctx context.Context, containerID string) error
	abandonedTimeout time.Duration

	mu         sync.Mutex
	containers map[string]C
	reserved   map[string]bool
	closed     chan struct{}
}

// newContainerTable returns an empty, open table. destroyAbandoned is the containerizer's
// Destroy.
func newContainerTable[C tableEntry](logger *slog.Logger, abandonedTimeout time.Duration,
	destroyAbandoned func(ctx context.Context, containerID string) error) *containerTable[C] {
	return &containerTable[C]{
		logger:           logger,
		destroyAbandoned: destroyAbandoned,
		abandonedTimeout: abandonedTimeout,
		containers:       make(map[string]C),
		reserved:         make(map[string]bool),
		closed:           make(chan struct{}),
	}
}

// reserve takes containerID for a launch or a recovery until release is called; ok is
// false when it is in use, registered or reserved.
func (t *containerTable[C]) reserve(containerID string) (release func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, known := t.containers[containerID]; known || t.reserved[containerID] {
		return nil, false
	}
	t.reserved[containerID] = true
	return func() {
		t.mu.Lock()
		delete(t.reserved, containerID)
		t.mu.Unlock()
	}, true
}

// add registers c under its container id.
func (t *containerTable[C]) add(c C) {
	t.mu.Lock()
	t.containers[c.entry().state.ContainerID] = c
	t.mu.Unlock()
}

// addUnknown registers c unless its id is in use, and reports whether it did.
func (t *containerTable[C]) addUnknown(c C) bool {
	id := c.entry().state.ContainerID
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, known := t.containers[id]; known || t.reserved[id] {
		return false
	}
	t.containers[id] = c
	return true
}

// find returns the container registered under containerID, if any.
func (t *containerTable[C]) find(containerID string) (C, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.containers[containerID]
	return c, ok
}

// lookup returns the container registered under containerID, or ErrUnknownContainer.
func (t *containerTable[C]) lookup(containerID string) (C, error) {
	c, ok := t.find(containerID)
	if !ok {
		return c, fmt.Errorf("%w: %q", ErrUnknownContainer, containerID)
	}
	return c, nil
}

// all lists the registered containers.
func (t *containerTable[C]) all() []C {
	t.mu.Lock()
	defer t.mu.Unlock()
	cs := make([]C, 0, len(t.containers))
	for _, c := range t.containers {
		cs = append(cs, c)
	}
	return cs
}

// running lists the registered containers not known to have ended.
func (t *containerTable[C]) running() []C {
	t.mu.Lock()
	defer t.mu.Unlock()
	var running []C
	for _, c := range t.containers {
		if !c.entry().exited() {
			running = append(running, c)
		}
	}
	return running
}

// forgetRunning unregisters those of cs that have not ended, as a recovery that failed
// for them does.
func (t *containerTable[C]) forgetRunning(cs []C) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range cs {
		e := c.entry()
		if registered, ok := t.containers[e.state.ContainerID]; ok && !e.exited() && registered.entry() == e {
			delete(t.containers, e.state.ContainerID)
		}
	}
}

// finish records how the container ended and releases its waiters; it acts only once. A
// container whose launch was abandoned is destroyed at once.
func (t *containerTable[C]) finish(c C, status ExitStatus) {
	e := c.entry()
	e.finishOnce.Do(func() {
		t.logger.Debug("container exited", "container", e.state.ContainerID, "status", status.Message)
		e.status = status
		close(e.done)
		if !e.abandoned {
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), t.abandonedTimeout)
			defer cancel()
			if err := t.destroyAbandoned(ctx, e.state.ContainerID); err != nil {
				t.logger.Warn("destroy a container whose launch was abandoned", "container", e.state.ContainerID, "err", err)
			}
		}()
	})
}

// wait returns how the container ended, as soon as it has. A container that has already
// ended reports its status even when ctx is done; one still running reports ErrClosed
// once the table is closed.
func (t *containerTable[C]) wait(ctx context.Context, containerID string) (ExitStatus, error) {
	c, err := t.lookup(containerID)
	if err != nil {
		return ExitStatus{}, err
	}
	e := c.entry()
	if e.exited() {
		return e.status, nil
	}
	select {
	case <-e.done:
		return e.status, nil
	case <-ctx.Done():
		return ExitStatus{}, fmt.Errorf("wait for %s: %w", containerID, ctx.Err())
	case <-t.closed:
		return ExitStatus{}, fmt.Errorf("wait for %s: %w", containerID, ErrClosed)
	}
}

// destroy unregisters an exited container once release has freed what is left of it. A
// running container is an error, and so is release's.
func (t *containerTable[C]) destroy(containerID string, release func(C) error) error {
	c, err := t.lookup(containerID)
	if err != nil {
		return err
	}
	e := c.entry()
	if !e.exited() {
		return fmt.Errorf("destroy %s: container is still running", containerID)
	}
	if err := release(c); err != nil {
		return fmt.Errorf("destroy %s: %w", containerID, err)
	}
	t.mu.Lock()
	if registered, ok := t.containers[containerID]; ok && registered.entry() == e {
		delete(t.containers, containerID)
	}
	t.mu.Unlock()
	return nil
}

// close marks the table closed and reports whether this call did; it is idempotent.
func (t *containerTable[C]) close() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isClosed() {
		return false
	}
	close(t.closed)
	return true
}

// isClosed reports whether close was called.
func (t *containerTable[C]) isClosed() bool {
	select {
	case <-t.closed:
		return true
	default:
		return false
	}
}
