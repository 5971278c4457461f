package isolate

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// supervisorEnv, when set in a process's environment, makes RunShimIfRequested run the
// supervisor for the state directory it names instead of returning; supervisorIdleEnv
// carries its idle timeout.
const (
	supervisorEnv     = "ATOLL_ISOLATE_SUPERVISOR"
	supervisorIdleEnv = "ATOLL_ISOLATE_SUPERVISOR_IDLE"
)

// supervisorName is the supervisor's argv[0], followed by its StateDir, so that ps shows
// what it is and for which agent.
const supervisorName = "atoll-isolate-supervisor"

// The descriptors a starting supervisor inherits: the lock file, already locked by the
// agent that starts it, and the write end of a pipe on which it reports supervisorReady,
// or why it cannot serve.
const (
	supervisorLockFD  = 3
	supervisorReadyFD = 4
	supervisorReady   = "ready"
)

// stateDirPoll is how often the supervisor checks that its StateDir still exists.
const stateDirPoll = time.Second

// connQueue is how many messages may wait for an agent that reads slowly before the
// supervisor gives up on it and drops its connection (the agent then reconnects and
// asks what is still running).
const connQueue = 4096

// RunShimIfRequested runs the task supervisor and exits when this process was started as
// one by the Process containerizer; otherwise it returns at once. The containerizer
// re-executes the current binary as the supervisor, so main and every TestMain of a
// package that launches containers must call it before doing anything else.
func RunShimIfRequested() {
	stateDir := os.Getenv(supervisorEnv)
	if stateDir == "" {
		return
	}
	os.Exit(runSupervisor(stateDir, os.Getenv(supervisorIdleEnv)))
}

// runSupervisor serves StateDir's containers until it is stopped, idle or its StateDir is
// removed, and returns the supervisor's exit code. Its logs go to stderr, which the agent
// points at StateDir/supervisor.log.
func runSupervisor(stateDir, idleTimeout string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("supervisor", os.Getpid())
	closeInherited()
	// Neither descriptor may leak into the tasks: a task holding the lock would keep every
	// later supervisor from starting.
	syscall.CloseOnExec(supervisorLockFD)
	syscall.CloseOnExec(supervisorReadyFD)
	ready := os.NewFile(supervisorReadyFD, "ready")
	s, err := newSupervisor(logger, stateDir, idleTimeout)
	if err != nil {
		logger.Error("cannot serve", "err", err)
		fmt.Fprintf(ready, "supervisor: %v", err)
		ready.Close()
		return 1
	}
	if _, err := ready.WriteString(supervisorReady); err != nil {
		logger.Warn("report to the agent that started it", "err", err)
	}
	ready.Close()
	logger.Info("serving", "state_dir", stateDir, "idle_timeout", s.idleTimeout)
	reason := s.run()
	logger.Info("exiting", "reason", reason)
	return 0
}

// closeInherited closes the descriptors the supervisor inherited besides its standard ones,
// the lock and the ready pipe: whatever the agent itself inherited without close-on-exec,
// such as the pipe its output goes to, which the supervisor would otherwise hold open for
// as long as it lives and pass on to every task. Those are told apart from the Go
// runtime's own descriptors by not being close-on-exec.
func closeInherited() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= supervisorReadyFD {
			continue
		}
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd)
		}
	}
}

// supervisor is the parent of every task of one StateDir: it starts them on the agent's
// request, copies their output to their sandboxes, carries out kill requests, reaps them
// and records their exits. It lives in a session of its own, so the agent's exit or a
// Ctrl-C on its terminal does not reach it.
type supervisor struct {
	logger      *slog.Logger
	stateDir    string
	dirInfo     os.FileInfo // the StateDir it serves, to notice its removal
	pid         int
	startTime   uint64
	idleTimeout time.Duration
	devNull     *os.File // every task's stdin
	journal     *journal
	listener    *net.UnixListener
	signals     chan os.Signal
	exit        chan string // why the supervisor stops; buffered

	// mu is taken before journal.mu when both are needed.
	mu    sync.Mutex
	tasks map[string]*task // running, or starting
	conns map[*serverConn]struct{}
	// idleSince is when the supervisor last ran no task and had no connection; zero
	// while it has either.
	idleSince time.Time
	closing   bool // set once it stops serving; no task or connection is added after
	writers   sync.WaitGroup
}

// newSupervisor takes over the lock the agent passed down and starts listening.
func newSupervisor(logger *slog.Logger, stateDir, idle string) (*supervisor, error) {
	idleTimeout, err := time.ParseDuration(idle)
	if err != nil || idleTimeout <= 0 {
		return nil, fmt.Errorf("idle timeout %q is not a positive duration", idle)
	}
	// The agent locked this open file description before passing it down; locking it
	// again succeeds only if that is what descriptor 3 is.
	if err := unix.Flock(supervisorLockFD, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("hold %s (descriptor %d): %w", supervisorLock, supervisorLockFD, err)
	}
	dirInfo, err := os.Stat(stateDir)
	if err != nil {
		return nil, err
	}
	startTime, err := readStartTime(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("own start time: %w", err)
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	journal, skipped, err := openJournal(filepath.Join(stateDir, journalFile))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if skipped > 0 {
		logger.Warn("skipped journal lines that do not decode", "lines", skipped)
	}
	s := &supervisor{
		logger:      logger,
		stateDir:    stateDir,
		dirInfo:     dirInfo,
		pid:         os.Getpid(),
		startTime:   startTime,
		idleTimeout: idleTimeout,
		devNull:     devNull,
		journal:     journal,
		signals:     make(chan os.Signal, 8),
		exit:        make(chan string, 1),
		tasks:       make(map[string]*task),
		conns:       make(map[*serverConn]struct{}),
		idleSince:   time.Now(),
	}
	pidData, err := json.Marshal(pidRecord{PID: s.pid, StartTime: startTime})
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(s.path(supervisorPIDFile), pidData); err != nil {
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	// Holding the lock, this is the only supervisor: a socket left behind is stale.
	socket := s.path(supervisorSocket)
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket: %w", err)
	}
	s.listener, err = net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// The socket is removed by shutdown, and only while the StateDir is still the one served.
	s.listener.SetUnlinkOnClose(false)
	// StateDir is private to its owner already; this keeps the socket so if it is not.
	if err := os.Chmod(socket, 0o600); err != nil {
		s.listener.Close()
		return nil, err
	}
	// Caught, these are forwarded to the tasks rather than ending the supervisor. Caught
	// signals revert to their defaults in a task on exec; ignored ones would not.
	signal.Notify(s.signals, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	return s, nil
}

func (s *supervisor) path(name string) string { return filepath.Join(s.stateDir, name) }

// run serves until the supervisor is told to stop, has been idle for idleTimeout or finds
// its StateDir gone, and says which.
func (s *supervisor) run() string {
	go s.accept()
	poll := time.NewTicker(stateDirPoll)
	defer poll.Stop()
	idle := time.NewTimer(s.idleTimeout)
	defer idle.Stop()
	for {
		select {
		case reason := <-s.exit:
			s.shutdown(false)
			return reason
		case sig := <-s.signals:
			s.forward(sig.(syscall.Signal))
		case <-poll.C:
			if fi, err := os.Stat(s.stateDir); err != nil || !os.SameFile(fi, s.dirInfo) {
				// Nobody can learn how the tasks end any more, so they end now.
				s.shutdown(true)
				return "state dir removed"
			}
		case <-idle.C:
			wait := s.idleWait()
			if wait <= 0 {
				s.shutdown(false)
				return "idle"
			}
			idle.Reset(wait)
		}
	}
}

// idleWait returns how much longer the supervisor must stay idle before it exits, or
// zero when it has been idle long enough, in which case it stops accepting connections.
func (s *supervisor) idleWait() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idleSince.IsZero() {
		return s.idleTimeout
	}
	if wait := s.idleTimeout - time.Since(s.idleSince); wait > 0 {
		return wait
	}
	s.closing = true
	return 0
}

// markIdleLocked starts the idle clock if the supervisor has become idle.
func (s *supervisor) markIdleLocked() {
	if len(s.tasks) == 0 && len(s.conns) == 0 && s.idleSince.IsZero() {
		s.idleSince = time.Now()
	}
}

// shutdown stops serving: it closes the listener, removes the socket and pid file (unless
// the StateDir is gone, when it kills every task instead) and closes every connection
// once what was queued for it is written.
func (s *supervisor) shutdown(stateDirGone bool) {
	s.mu.Lock()
	s.closing = true
	tasks := make([]*task, 0, len(s.tasks))
	for _, t := range s.tasks {
		tasks = append(tasks, t)
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.listener.Close()
	if stateDirGone {
		for _, t := range tasks {
			if err := t.signal(unix.SIGKILL); err != nil {
				s.logger.Warn("kill task", "container", t.id, "err", err)
			}
		}
	} else {
		// The lock is still held, so these are this supervisor's, not a successor's.
		for _, name := range []string{supervisorSocket, supervisorPIDFile} {
			if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.logger.Warn("remove "+name, "err", err)
			}
		}
	}
	for _, c := range conns {
		c.close()
	}
	s.writers.Wait()
}

// accept registers each agent connection and serves it.
func (s *supervisor) accept() {
	for {
		conn, err := s.listener.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of descriptors, most likely: wait for some to be released.
			s.logger.Warn("accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c := &serverConn{conn: conn, out: make(chan []byte, connQueue), done: make(chan struct{})}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.idleSince = time.Time{}
		s.writers.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.writers.Done()
			if err := c.writeLoop(); err != nil {
				s.logger.Warn("write to agent", "err", err)
			}
		}()
		go s.serve(c)
	}
}

// serve reads c's requests and handles each in a goroutine of its own, so that a slow
// launch does not hold up the others. A request that does not decode ends the connection:
// the stream cannot be trusted after it.
func (s *supervisor) serve(c *serverConn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.markIdleLocked()
		s.mu.Unlock()
		c.close()
	}()
	scanner := bufio.NewScanner(c.conn)
	scanner.Buffer(make([]byte, 0, 64<<10), maxMessage)
	for scanner.Scan() {
		req, err := decodeRequest(scanner.Bytes())
		if err != nil {
			s.logger.Warn("dropping an agent connection", "err", err)
			return
		}
		go s.handle(c, req)
	}
}

// handle carries out one request and queues its response.
func (s *supervisor) handle(c *serverConn, req request) {
	resp := response{ID: req.ID}
	var then func()
	switch req.Op {
	case opHello:
		resp.PID, resp.StartTime = s.pid, s.startTime
	case opLaunch:
		t, pidfd, err := s.launch(req.Launch)
		if err != nil {
			resp.Error = err.Error()
			break
		}
		resp.PID, resp.StartTime = t.pid, t.startTime
		// Watched only once the response is queued, so that the exit event follows it.
		then = func() { go s.watch(t, pidfd) }
	case opKill:
		if err := s.kill(req.ContainerID, time.Unix(0, req.DeadlineUnixNano)); err != nil {
			resp.Error = err.Error()
		}
	case opQuery:
		resp.Running, resp.Exited, resp.Orphaned = s.query(req.ContainerIDs)
	case opForget:
		if err := s.journal.forget(req.ContainerID); err != nil {
			resp.Error = err.Error()
		}
	case opStop:
		first, err := s.stop()
		if err != nil {
			resp.Error = err.Error()
		} else if first {
			then = func() { s.exit <- "stopped" }
		}
	}
	line, err := encodeLine(resp)
	if err != nil {
		s.logger.Error("encode response", "op", req.Op, "err", err)
	} else {
		c.send(line)
	}
	if then != nil {
		then()
	}
}

// stop makes the supervisor stop serving, if it runs no task, and reports whether it was
// serving until then.
func (s *supervisor) stop() (first bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.tasks); n > 0 {
		return false, fmt.Errorf("%d containers still running", n)
	}
	first = !s.closing
	s.closing = true
	return first, nil
}

// query sorts containers into those still running, those that ended, with their exits,
// and those an earlier supervisor launched and died before they ended; of the others
// there is no record.
func (s *supervisor) query(ids []string) (running []string, exited []exitEvent, orphaned []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		status, launched := s.journal.record(id)
		switch {
		case s.tasks[id] != nil:
			running = append(running, id)
		case status != nil:
			exited = append(exited, exitEvent{ContainerID: id, Status: *status})
		case launched:
			orphaned = append(orphaned, id)
		}
	}
	return running, exited, orphaned
}

// forward passes a signal sent to the supervisor on to every task's process group.
func (s *supervisor) forward(sig syscall.Signal) {
	s.mu.Lock()
	tasks := make([]*task, 0, len(s.tasks))
	for _, t := range s.tasks {
		tasks = append(tasks, t)
	}
	s.mu.Unlock()
	for _, t := range tasks {
		if err := t.signal(sig); err != nil {
			s.logger.Warn("forward signal", "container", t.id, "signal", sig, "err", err)
		}
	}
}

// task is one container's process, from its start until it is reaped.
type task struct {
	id string

	// mu is held while the task starts, so that signals wait for its pid.
	mu        sync.Mutex
	output    *taskOutput
	pid       int // 0 until started
	startTime uint64
	// exited is set once the task has exited; its pid is about to be reaped and must not
	// be signalled any more.
	exited   bool
	termSent bool
	deadline time.Time // the earliest SIGKILL deadline asked for
	timer    *time.Timer
}

// launch starts the task and returns it with a pollable pidfd for it.
func (s *supervisor) launch(spec *taskSpec) (*task, *os.File, error) {
	t := &task{id: spec.ContainerID}
	t.mu.Lock()
	defer t.mu.Unlock()
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, nil, errors.New("the supervisor is stopping")
	}
	// Records kept for the id would be mistaken for the new container's.
	if _, recorded := s.journal.record(t.id); recorded || s.tasks[t.id] != nil {
		s.mu.Unlock()
		return nil, nil, errors.New("container already exists")
	}
	s.tasks[t.id] = t
	s.idleSince = time.Time{}
	s.mu.Unlock()

	pidfd, err := t.start(spec, s.devNull, s.logger)
	if err != nil {
		s.mu.Lock()
		delete(s.tasks, t.id)
		s.markIdleLocked()
		s.mu.Unlock()
		return nil, nil, err
	}
	// Should this supervisor die before the task ends, the record tells the agent that
	// the task was orphaned rather than never launched. Without it the container still
	// runs; only that would be lost.
	if err := s.journal.launched(t.id); err != nil {
		s.logger.Error("record launch", "container", t.id, "err", err)
	}
	return t, pidfd, nil
}

// start forks the task in a process group of its own, so that it and its children can be
// signalled together, with its output going through pipes to the sandbox's files (see
// taskOutput), which, unless they are there already, are created at the task's first
// output when it runs as the supervisor's own user (for another user, the agent has
// created them). There is no parent-death signal: it would fire when the forking thread,
// not the supervisor, exits, and locking a thread per task costs too much. Tasks whose
// supervisor dies run on until the agent notices and kills them (see Process).
func (t *task) start(spec *taskSpec, devNull *os.File, logger *slog.Logger) (*os.File, error) {
	rot := LogRotation{MaxSize: spec.LogMaxSize, Keep: spec.LogKeep}
	output, err := newTaskOutput(logger, spec.Stdout, spec.Stderr, rot, spec.Credential == nil)
	if err != nil {
		return nil, err
	}
	pidfd := -1
	attr := &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd}
	if c := spec.Credential; c != nil {
		attr.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups}
	}
	before, beforeErr := bootTicks()
	// syscall.ForkExec rather than os/exec, which would make an os.Process the
	// supervisor has no use for, with a duplicate of the pidfd to make and close.
	pid, err := syscall.ForkExec(spec.Path, spec.Args, &syscall.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: []uintptr{devNull.Fd(), output.stdout.Fd(), output.stderr.Fd()},
		Sys:   attr,
	})
	after, afterErr := bootTicks()
	if err != nil {
		output.close()
		return nil, fmt.Errorf("start task: %w", forkExecError(spec, err))
	}
	output.start()
	t.pid, t.output = pid, output
	// The kernel stamps the task's start time at fork, on the boot-time clock: when the
	// clock showed the same tick before and after, that tick is the start time, and
	// reading it from /proc, which costs more than the rest of the launch's own work, is
	// not needed. Otherwise it is read there: unreaped, the task's /proc entry stays
	// readable even if it has already exited.
	startTime, err := before, errors.Join(beforeErr, afterErr)
	if err != nil || before != after {
		startTime, err = readStartTime(t.pid)
	}
	if err == nil && pidfd < 0 {
		err = errors.New("no pidfd (Linux 5.3 or later is needed)")
	}
	if err == nil {
		// A pidfd has no other status flag to keep.
		_, err = unix.FcntlInt(uintptr(pidfd), unix.F_SETFL, unix.O_NONBLOCK)
	}
	if err != nil {
		signalGroup(t.pid, unix.SIGKILL)
		reap(t.pid)
		output.drain(outputDrainGrace)
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return nil, fmt.Errorf("watch task: %w", err)
	}
	t.startTime = startTime
	return os.NewFile(uintptr(pidfd), "pidfd"), nil
}

// forkExecError words a failed start as os/exec would: a sandbox that has gone is
// "chdir", anything else "fork/exec" of the executable.
func forkExecError(spec *taskSpec, err error) error {
	if _, statErr := os.Stat(spec.Dir); statErr != nil {
		var pathErr *fs.PathError
		if errors.As(statErr, &pathErr) {
			return &fs.PathError{Op: "chdir", Path: spec.Dir, Err: pathErr.Err}
		}
	}
	return &fs.PathError{Op: "fork/exec", Path: spec.Path, Err: err}
}

// reap waits for the child pid to exit, which it has or is about to, and returns how it
// ended.
func reap(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, syscall.EINTR) {
			return ws, err
		}
	}
}

// watch waits for the task to exit, sweeps up whatever it left running, reaps it, copies
// the rest of its output, records its exit in the journal and tells every connected
// agent: whoever learns of the exit finds the task's output complete.
func (s *supervisor) watch(t *task, pidfd *os.File) {
	// Until it is reaped below, the task's pid, which is also its process group id,
	// cannot be reused.
	if err := waitReadable(pidfd); err != nil {
		s.logger.Error("cannot wait for the task to exit; killing it", "container", t.id, "err", err)
	}
	pidfd.Close()
	t.mu.Lock()
	// The task itself has exited; what is left of its process group goes too.
	if err := unix.Kill(-t.pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		s.logger.Warn("kill leftover processes", "container", t.id, "err", err)
	}
	t.exited = true
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
	status := statusRecord{Code: -1}
	if ws, err := reap(t.pid); err != nil {
		status.Message = fmt.Sprintf("reap the task: %v", err)
	} else {
		status = recordOf(exitStatusOf(ws))
	}
	t.output.drain(outputDrainGrace)
	// Recorded before the task leaves the running ones, so that a query finds it in one
	// or the other.
	if err := s.journal.exited(t.id, status); err != nil {
		s.logger.Error("record exit", "container", t.id, "err", err)
	}
	event, err := encodeLine(response{Exit: &exitEvent{ContainerID: t.id, Status: status}})
	s.mu.Lock()
	delete(s.tasks, t.id)
	s.markIdleLocked()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if err != nil {
		s.logger.Error("encode exit event", "container", t.id, "err", err)
		return
	}
	for _, c := range conns {
		c.send(event)
	}
}

// kill carries out a kill request for a container; one that is not running is left alone.
func (s *supervisor) kill(containerID string, deadline time.Time) error {
	s.mu.Lock()
	t := s.tasks[containerID]
	s.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.kill(deadline, s.logger)
}

// kill sends SIGTERM to the task's process group now, once and only while the deadline is
// still ahead, and arranges SIGKILL at the earliest deadline asked for.
func (t *task) kill(deadline time.Time, logger *slog.Logger) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exited || t.pid == 0 {
		return nil
	}
	var err error
	if !t.termSent && time.Now().Before(deadline) {
		t.termSent = true
		err = signalGroup(t.pid, unix.SIGTERM)
	}
	if t.deadline.IsZero() || deadline.Before(t.deadline) {
		t.deadline = deadline
		if t.timer != nil {
			t.timer.Stop()
		}
		t.timer = time.AfterFunc(time.Until(deadline), func() {
			if err := t.signal(unix.SIGKILL); err != nil {
				logger.Warn("kill at the deadline", "container", t.id, "err", err)
			}
		})
	}
	return err
}

// signal sends sig to the task's process group, unless it has exited.
func (t *task) signal(sig syscall.Signal) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.exited || t.pid == 0 {
		return nil
	}
	return signalGroup(t.pid, sig)
}

// waitReadable blocks until the pollable pidfd f becomes readable, which it does when its
// process exits. It waits in the runtime's poller rather than holding a thread.
func waitReadable(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var pollErr error
	err = raw.Read(func(fd uintptr) bool {
		for {
			ready, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			pollErr = err
			return err != nil || ready > 0
		}
	})
	if err != nil {
		return err
	}
	return pollErr
}

// serverConn is the supervisor's side of one agent connection. Messages are queued and
// written by one goroutine, so that a slow agent holds up neither the tasks' watchers nor
// the other agents.
type serverConn struct {
	conn *net.UnixConn
	out  chan []byte
	done chan struct{} // closed by close
	once sync.Once
}

// send queues a message. An agent that has let connQueue messages pile up is dropped.
func (c *serverConn) send(line []byte) {
	select {
	case c.out <- line:
	case <-c.done:
	default:
		c.close()
	}
}

// close makes the writer flush what is queued and close the connection.
func (c *serverConn) close() { c.once.Do(func() { close(c.done) }) }

// writeLoop writes queued messages, several at a time when they pile up, until close.
func (c *serverConn) writeLoop() error {
	defer c.conn.Close()
	var buf []byte
	for {
		select {
		case line := <-c.out:
			buf = drain(append(buf[:0], line...), c.out)
			if _, err := c.conn.Write(buf); err != nil {
				c.close()
				return err
			}
		case <-c.done:
			// Flush what is left, such as the response to a stop request, but do not wait
			// long for an agent that does not read.
			c.conn.SetWriteDeadline(time.Now().Add(time.Second))
			if buf = drain(buf[:0], c.out); len(buf) > 0 {
				if _, err := c.conn.Write(buf); err != nil {
					return err
				}
			}
			return nil
		}
	}
}

// drain appends the messages queued in out to buf, up to a write's worth.
func drain(buf []byte, out <-chan []byte) []byte {
	for len(buf) < 256<<10 {
		select {
		case line := <-out:
			buf = append(buf, line...)
		default:
			return buf
		}
	}
	return buf
}
