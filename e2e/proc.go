package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopTimeout is how long Stop waits after SIGTERM before it kills the process: an agent
// may take a while to hand over, but a node that ignores SIGTERM must not hang the test.
const StopTimeout = 30 * time.Second

// killTimeout bounds the wait for a SIGKILLed process to be reaped.
const killTimeout = 30 * time.Second

// spawnRequest asks the spawner thread to start cmd.
type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// spawner starts processes from one OS thread that never exits. Pdeathsig fires when the
// thread that forked the child ends, not the process (Go issue 27505), and the runtime
// ends any thread whose goroutine exits while locked to it, as code switching namespaces
// does on purpose.
var spawner = sync.OnceValue(func() chan<- spawnRequest {
	requests := make(chan spawnRequest)
	go func() {
		runtime.LockOSThread()
		for req := range requests {
			req.done <- req.cmd.Start()
		}
	}()
	return requests
})

func startFromSpawner(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	spawner() <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

// Proc is an atoll process on a host. Restart runs the same command again under the same
// Proc, so a test can keep one handle across kills. Its methods are safe for concurrent
// use and from any goroutine.
type Proc struct {
	host *Host
	// enter runs its arguments (the binary and args) in the host's namespaces.
	enter   []string
	args    []string
	logPath string

	// restart serializes Restart so two calls never start two processes.
	restart sync.Mutex
	mu      sync.Mutex
	cur     *generation
	starts  int
}

// generation is one run of the command.
type generation struct {
	cmd  *exec.Cmd
	done chan struct{}
	// err is the exit error, set before done is closed.
	err error
}

// Host is the host the process runs on.
func (p *Proc) Host() *Host { return p.host }

// Args are the atoll arguments the process runs with.
func (p *Proc) Args() []string { return append([]string(nil), p.args...) }

// LogPath is the file the process's stdout and stderr go to, across restarts.
func (p *Proc) LogPath() string { return p.logPath }

// PID is the current process's pid (0 before the first start).
func (p *Proc) PID() int {
	if g := p.current(); g != nil {
		return g.cmd.Process.Pid
	}
	return 0
}

// Running reports whether the current process has not exited.
func (p *Proc) Running() bool {
	g := p.current()
	if g == nil {
		return false
	}
	select {
	case <-g.done:
		return false
	default:
		return true
	}
}

func (p *Proc) current() *generation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// start launches the command; the process must not be running.
func (p *Proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.host.c.isClosed() {
		return errors.New("cluster closed")
	}
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	event := "started"
	if p.starts > 0 {
		event = "restarted"
	}
	fmt.Fprintf(log, "=== e2e: %s %s in %s: atoll %s\n", event, time.Now().Format(time.RFC3339Nano), p.host.netns, strings.Join(p.args, " "))
	argv := append(append(slices.Clone(p.enter), p.host.c.bin), p.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	// ip (or nsenter and unshare) execs atoll in place, so the signal reaches atoll
	// itself: nothing outlives a test binary that dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startFromSpawner(cmd); err != nil {
		return fmt.Errorf("start atoll %s: %w", strings.Join(p.args, " "), err)
	}
	g := &generation{cmd: cmd, done: make(chan struct{})}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
	}()
	p.cur = g
	p.starts++
	return nil
}

// Kill sends SIGKILL and waits until the process is gone. It returns nil once the
// process is not running (at once when it had exited already).
func (p *Proc) Kill() error {
	g := p.current()
	if g == nil {
		return nil
	}
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p, err)
	}
	select {
	case <-g.done:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("kill %s: still running %v after SIGKILL", p, killTimeout)
	}
}

// Stop sends SIGTERM and waits for the process to exit, killing it after StopTimeout. It
// returns the exit error, nil for a clean exit (also when it had exited already), or an
// error saying it had to be killed.
func (p *Proc) Stop() error {
	g := p.current()
	if g == nil {
		return nil
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", p, err)
	}
	select {
	case <-g.done:
		if g.err != nil {
			return fmt.Errorf("stop %s: %w", p, g.err)
		}
		return nil
	case <-time.After(StopTimeout):
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("stop %s: no exit within %v of SIGTERM; killed", p, StopTimeout)
}

// Restart starts the process again with the same arguments and log file. A process still
// running is stopped first (SIGTERM); Restart fails only when the old process would not
// stop or the new one could not start.
func (p *Proc) Restart() error {
	p.restart.Lock()
	defer p.restart.Unlock()
	if p.Running() {
		if err := p.Stop(); err != nil && p.Running() {
			return fmt.Errorf("restart: %w", err)
		}
	}
	if err := p.start(); err != nil {
		return fmt.Errorf("restart %s: %w", p, err)
	}
	return nil
}

// Wait waits for the current process to exit and returns its exit error (nil for status
// 0), or ctx's error.
func (p *Proc) Wait(ctx context.Context) error {
	g := p.current()
	if g == nil {
		return errors.New("wait: never started")
	}
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// String names the process for messages: host and command.
func (p *Proc) String() string {
	return fmt.Sprintf("atoll %s on %s", strings.Join(p.args, " "), p.host.name)
}
