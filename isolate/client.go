package isolate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// connectTimeout bounds how long connecting to the supervisor, starting it if need be,
// may take. It is generous for a loaded machine; a supervisor that holds the lock and
// does not answer for this long is stuck.
const connectTimeout = 30 * time.Second

// errConnectionLost is the error of requests cut short because the connection to the
// supervisor broke.
var errConnectionLost = errors.New("connection to the supervisor lost")

// supervisorConn is the agent's side of a connection to the supervisor. Requests from any
// number of goroutines share it; one reader goroutine matches responses to them and hands
// exit events to onEvent.
type supervisorConn struct {
	conn *net.UnixConn
	// pid is the supervisor's, and process a pidfd for it.
	pid     int
	process *os.File
	onEvent func(exitEvent)

	writeMu sync.Mutex
	mu      sync.Mutex
	// onLost is called, once, when the connection breaks other than through close. It is
	// set only once hello has succeeded: a connection that never worked is lost to no one.
	onLost  func(*supervisorConn)
	nextID  uint64
	pending map[uint64]*pendingCall
	closed  bool  // set by close
	err     error // why the connection ended; no request is sent once it is set
}

// pendingCall is a request waiting for its response.
type pendingCall struct {
	result chan callResult // buffered
	// onDone, when set, runs when the call ends, whether or not the caller still waits
	// (abandoned). For a response it runs in the reader goroutine, before the next message
	// is read, so before any exit event that follows the response.
	onDone    func(resp response, err error, abandoned bool)
	abandoned bool // the caller gave up; guarded by supervisorConn.mu
}

type callResult struct {
	resp response
	err  error
}

func (pc *pendingCall) finish(resp response, err error, abandoned bool) {
	if pc.onDone != nil {
		pc.onDone(resp, err, abandoned)
	}
	pc.result <- callResult{resp, err}
}

// dialSupervisor connects to the socket and says hello, checking that a supervisor serves
// there and is the process it claims to be.
func dialSupervisor(ctx context.Context, socket string, onEvent func(exitEvent), onLost func(*supervisorConn)) (*supervisorConn, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	sc := &supervisorConn{
		conn:    conn.(*net.UnixConn),
		onEvent: onEvent,
		pending: make(map[uint64]*pendingCall),
	}
	go sc.read()
	resp, err := sc.call(ctx, request{Op: opHello}, nil)
	if err == nil && resp.Error != "" {
		err = errors.New(resp.Error)
	}
	if err == nil {
		sc.pid = resp.PID
		sc.process, err = openProcess(resp.PID, resp.StartTime)
		if err == nil && sc.process == nil {
			err = fmt.Errorf("supervisor pid %d started at %d is not running", resp.PID, resp.StartTime)
		}
	}
	if err == nil {
		// A supervisor that is dying (its last threads still hold the socket) may accept
		// the connection and then drop it.
		sc.mu.Lock()
		if err = sc.err; err == nil {
			sc.onLost = onLost
		}
		sc.mu.Unlock()
	}
	if err != nil {
		sc.close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	return sc, nil
}

// call sends req and waits for its response. onDone, if set, runs when the call ends even
// if ctx ends first and call has returned ctx.Err().
func (sc *supervisorConn) call(ctx context.Context, req request, onDone func(response, error, bool)) (response, error) {
	if err := ctx.Err(); err != nil {
		return response{}, err
	}
	pc := &pendingCall{result: make(chan callResult, 1), onDone: onDone}
	sc.mu.Lock()
	if sc.err != nil {
		err := sc.err
		sc.mu.Unlock()
		return response{}, err
	}
	sc.nextID++
	req.ID = sc.nextID
	sc.pending[req.ID] = pc
	sc.mu.Unlock()

	line, err := encodeLine(req)
	if err != nil {
		sc.mu.Lock()
		delete(sc.pending, req.ID)
		sc.mu.Unlock()
		return response{}, fmt.Errorf("encode %s request: %w", req.Op, err)
	}
	sc.writeMu.Lock()
	_, err = sc.conn.Write(line)
	sc.writeMu.Unlock()
	if err != nil {
		// This fails every pending call, this one included.
		sc.fail(fmt.Errorf("%w: %w", errConnectionLost, err))
	}
	select {
	case res := <-pc.result:
		return res.resp, res.err
	case <-ctx.Done():
	}
	sc.mu.Lock()
	if _, waiting := sc.pending[req.ID]; waiting {
		pc.abandoned = true
		sc.mu.Unlock()
		return response{}, ctx.Err()
	}
	sc.mu.Unlock()
	// The response is being delivered: take it, since onDone has acted on it.
	res := <-pc.result
	return res.resp, res.err
}

// read dispatches messages from the supervisor until the connection ends.
func (sc *supervisorConn) read() {
	scanner := bufio.NewScanner(sc.conn)
	scanner.Buffer(make([]byte, 0, 64<<10), maxMessage)
	for scanner.Scan() {
		resp, err := decodeResponse(scanner.Bytes())
		if err != nil {
			sc.fail(err)
			return
		}
		if resp.ID == 0 {
			sc.onEvent(*resp.Exit)
			continue
		}
		sc.mu.Lock()
		pc := sc.pending[resp.ID]
		delete(sc.pending, resp.ID)
		abandoned := pc != nil && pc.abandoned
		sc.mu.Unlock()
		if pc != nil {
			pc.finish(resp, nil, abandoned)
		}
	}
	err := scanner.Err()
	if err == nil {
		err = io.EOF
	}
	sc.fail(fmt.Errorf("%w: %w", errConnectionLost, err))
}

// fail ends the connection for the reason err (ErrClosed after close) and fails the
// calls still waiting.
func (sc *supervisorConn) fail(err error) {
	sc.mu.Lock()
	if sc.err != nil {
		sc.mu.Unlock()
		return
	}
	if sc.closed {
		err = ErrClosed
	}
	sc.err = err
	// No caller marks its call abandoned once it is out of pending.
	pending := sc.pending
	sc.pending = nil
	onLost := sc.onLost
	if sc.closed {
		onLost = nil
	}
	sc.mu.Unlock()
	sc.conn.Close()
	for _, pc := range pending {
		pc.finish(response{}, err, pc.abandoned)
	}
	if onLost != nil {
		onLost(sc)
	}
}

// alive reports whether the connection still works, as far as is known.
func (sc *supervisorConn) alive() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.err == nil
}

// close ends the connection by the agent's choice: onLost is not called.
func (sc *supervisorConn) close() {
	sc.mu.Lock()
	sc.closed = true
	sc.mu.Unlock()
	sc.fail(ErrClosed)
	if sc.process != nil {
		sc.process.Close()
	}
}

// waitExit waits until the supervisor process has exited.
func (sc *supervisorConn) waitExit(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { sc.process.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := waitReadable(sc.process); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return err
	}
	return nil
}

// dial connects to the supervisor serving p's StateDir. With start, it starts one if none
// is running; without, it returns nil, nil when none is. The lock file makes this
// race-free among agent processes: the supervisor holds it for as long as it lives, so
// whoever gets it knows none is running and starts one, handing the lock down to it.
func (p *Process) dial(ctx context.Context, start bool) (*supervisorConn, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	socket := filepath.Join(p.stateDir, supervisorSocket)
	for {
		sc, dialErr := dialSupervisor(ctx, socket, p.containerExited, p.connectionLost)
		if dialErr == nil {
			return sc, nil
		}
		lock, err := tryLock(filepath.Join(p.stateDir, supervisorLock))
		switch {
		case err == nil && !start:
			lock.Close()
			return nil, nil
		case err == nil:
			if err := p.startSupervisor(ctx, lock); err != nil {
				return nil, err
			}
			continue
		case errors.Is(err, fs.ErrNotExist) && !start:
			// StateDir is gone, and with it any supervisor.
			return nil, nil
		case !errors.Is(err, unix.EWOULDBLOCK):
			return nil, fmt.Errorf("lock %s: %w", supervisorLock, err)
		}
		// A supervisor is starting or stopping.
		select {
		case <-ctx.Done():
			holder := "the supervisor"
			if rec, err := readPIDRecord(filepath.Join(p.stateDir, supervisorPIDFile)); err == nil {
				holder = fmt.Sprintf("supervisor pid %d", rec.PID)
			}
			return nil, fmt.Errorf("%s holds %s but does not answer on %s (%v): %w",
				holder, supervisorLock, supervisorSocket, dialErr, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// tryLock opens and locks the lock file at path without waiting; EWOULDBLOCK means it is
// held.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// startSupervisor starts the supervisor, handing it the lock, and returns once it serves.
func (p *Process) startSupervisor(ctx context.Context, lock *os.File) error {
	defer lock.Close()
	logPath := filepath.Join(p.stateDir, supervisorLog)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open supervisor log: %w", err)
	}
	defer logFile.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("supervisor ready pipe: %w", err)
	}
	defer readyR.Close()
	cmd := &exec.Cmd{
		Path: p.executable,
		Args: []string{supervisorName, p.stateDir},
		Env: append(goRuntimeEnv(os.Environ()),
			supervisorEnv+"="+p.stateDir, supervisorIdleEnv+"="+p.idleTimeout.String()),
		Dir:        "/",
		Stderr:     logFile,
		ExtraFiles: []*os.File{lock, readyW}, // descriptors 3 and 4
		// A session of its own: the agent's exit, or a Ctrl-C on the agent's terminal,
		// must not reach the supervisor or its tasks.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start supervisor: %w", err)
	}
	// It is meant to outlive this process; while this one lives, it reaps it.
	go cmd.Wait()

	read := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(io.LimitReader(readyR, 64<<10))
		read <- data
	}()
	select {
	case data := <-read:
		if string(data) == supervisorReady {
			p.logger.Info("supervisor started", "pid", cmd.Process.Pid, "state_dir", p.stateDir)
			return nil
		}
		if len(data) > 0 {
			return errors.New(string(data))
		}
		return fmt.Errorf("supervisor exited before serving: %s", logTail(logPath))
	case <-ctx.Done():
		// Left to exit on its own once idle.
		return fmt.Errorf("wait for the supervisor to serve: %w", ctx.Err())
	}
}

// logTail returns the end of the supervisor's log for error messages.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(supervisor log unreadable: %v)", err)
	}
	const limit = 2048
	if len(data) > limit {
		data = data[len(data)-limit:]
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "(supervisor log empty)"
	}
	return string(data)
}
