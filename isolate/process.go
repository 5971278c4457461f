package isolate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/api"
)

// ProcessKind is State.Kind for containers of the plain-process containerizer.
const ProcessKind = "process"

// DefaultSupervisorIdleTimeout is ProcessConfig.SupervisorIdleTimeout's default.
const DefaultSupervisorIdleTimeout = 10 * time.Second

// maxSocketPath is the longest path a unix socket can be bound to (sun_path, less its NUL).
const maxSocketPath = 107

// ProcessConfig configures the plain-process containerizer.
type ProcessConfig struct {
	// Logger receives the containerizer's logs; nil discards them.
	Logger *slog.Logger
	// StateDir holds what outlives the agent: the supervisor's socket, lock, pid file and
	// log, and its journal of the containers launched and not destroyed yet. Required; the
	// agent passes work_dir/containers. It is created if missing. Its path must be short
	// enough for a unix socket path inside it.
	StateDir string
	// Executable is the binary re-executed as the supervisor. Its main (or TestMain) must
	// call RunShimIfRequested first thing. Empty means os.Executable().
	Executable string
	// SupervisorIdleTimeout is how long the supervisor stays up with no container to run
	// and no agent connected. Zero means DefaultSupervisorIdleTimeout.
	SupervisorIdleTimeout time.Duration
	// TaskLogs rotates the tasks' stdout and stderr files; its zero settings mean the
	// defaults. It applies to tasks launched from then on.
	TaskLogs LogRotation
}

// DefaultProcessConfig returns a config with no StateDir, which the caller must set. Logs
// are discarded, since the containerizer's errors reach the agent as return values, and
// the supervisor is the running binary, which in production is Atoll itself. An idle
// supervisor lingers for ten seconds: long enough for a quickly restarted agent to find
// it, short enough that one left behind by a stopped agent soon goes. Task logs rotate at
// DefaultLogMaxSize, DefaultLogKeep of them kept (the zero TaskLogs).
func DefaultProcessConfig() ProcessConfig {
	return ProcessConfig{
		Logger:                slog.New(slog.DiscardHandler),
		SupervisorIdleTimeout: DefaultSupervisorIdleTimeout,
	}
}

// Validate reports a config NewProcess cannot work with.
func (c ProcessConfig) Validate() error {
	switch {
	case c.StateDir == "":
		return errors.New("process containerizer: StateDir is required")
	case c.SupervisorIdleTimeout < 0:
		return fmt.Errorf("process containerizer: SupervisorIdleTimeout must not be negative, got %v", c.SupervisorIdleTimeout)
	}
	if err := c.TaskLogs.validate(); err != nil {
		return fmt.Errorf("process containerizer: TaskLogs: %w", err)
	}
	return nil
}

// Process is the plain-process containerizer, the unprivileged fallback: each task runs on
// the host, in its own process group and in the agent's filesystem, optionally as another
// user, with no resource limits. Needs Linux 5.3 or later (pidfd).
//
// Tasks are children of a supervisor: this binary re-executed (see RunShimIfRequested) in
// a session of its own, one per StateDir, shared by every Process on that StateDir and
// started by the first Launch that finds none. It survives the agent's exit and restart,
// carries out kill requests even when the agent is gone, and journals each task's launch
// and exit in StateDir, so that a restarted agent learns how its tasks ended: Recover
// reconnects to the supervisor, and the containers it still runs carry on as if nothing
// had happened.
// It exits when asked to through StopSupervisor, once it has run no container and served
// no agent for SupervisorIdleTimeout, or when StateDir is removed (killing its tasks).
//
// The tasks' stdout and stderr are pipes that the supervisor copies to the sandbox's
// files, rotated as ProcessConfig.TaskLogs says. For a task that runs as the agent's own
// user, a file that is not there yet is created at its stream's first output: creating
// files is the costliest step of a launch on some disks, and many short tasks write
// nothing to stderr, or at all. One that runs as another user has both created, and
// given to it, before it starts. A task's exit is reported once its output is copied to
// the end; should a process the task started in a process group of its own still hold
// the pipes, a second after the task exited, and what that process writes afterwards is
// lost.
//
// Should the supervisor die, its tasks run on, unsupervised (until they write to stdout
// or stderr, whose pipes died with it: SIGPIPE ends them); it cannot give them a
// parent-death signal, since Linux ties that to the forking thread. Whoever notices
// first, the connected Process (whose connection breaks) or a later Recover or Kill, kills
// each such task's process group, after checking the task's pid against its start time,
// and Wait reports Code -1 "the task's supervisor died …" for it. A new supervisor never
// adopts them.
//
// When an agent shuts down it calls StopSupervisor if it killed every task, Close
// otherwise.
//
// Process is safe for concurrent use.
type Process struct {
	logger      *slog.Logger
	stateDir    string
	executable  string
	idleTimeout time.Duration
	taskLogs    LogRotation
	// baseEnv is what every task inherits of the agent's environment, as it was when p
	// was made.
	baseEnv []string

	// containers is closed by Close.
	containers *containerTable[*containerEntry]

	connectMu sync.Mutex // serialises connecting to, and starting, the supervisor

	mu   sync.Mutex      // guards conn, and orders its setting with closing containers
	conn *supervisorConn // nil when not connected
}

var _ Containerizer = (*Process)(nil)

// NewProcess returns a plain-process containerizer that keeps its records in cfg.StateDir.
// It does not start the supervisor; the first Launch does, if no Process on the same
// StateDir has.
func NewProcess(cfg ProcessConfig) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := loggerOrDiscard(cfg.Logger)
	idleTimeout := cfg.SupervisorIdleTimeout
	if idleTimeout == 0 {
		idleTimeout = DefaultSupervisorIdleTimeout
	}
	executable, err := helperExecutable(cfg.Executable)
	if err != nil {
		return nil, fmt.Errorf("process containerizer: find own executable for the supervisor: %w", err)
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("process containerizer: state dir: %w", err)
	}
	if socket := filepath.Join(stateDir, supervisorSocket); len(socket) > maxSocketPath {
		return nil, fmt.Errorf("process containerizer: state dir %s is too long: the socket path %s would be longer than %d bytes",
			stateDir, socket, maxSocketPath)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process containerizer: create state dir: %w", err)
	}
	p := &Process{
		logger:      logger,
		stateDir:    stateDir,
		executable:  executable,
		idleTimeout: idleTimeout,
		taskLogs:    cfg.TaskLogs,
		baseEnv:     baseEnv(os.Environ()),
	}
	p.containers = newContainerTable[*containerEntry](logger, connectTimeout, p.Destroy)
	return p, nil
}

// Launch asks the supervisor, starting it if none runs, to start the task, and returns
// once the task runs or with the reason it could not start (an unknown user, a missing
// executable). A shell command that is not found is not a launch error: the shell starts
// and exits with status 127, as in Mesos. If ctx ends after the request was sent, Launch
// returns ctx's error and a task that starts regardless is killed and forgotten.
func (p *Process) Launch(ctx context.Context, spec LaunchSpec) (State, error) {
	st, err := p.launch(ctx, spec)
	if err != nil {
		return State{}, fmt.Errorf("launch %s: %w", spec.ContainerID, err)
	}
	return st, nil
}

func (p *Process) launch(ctx context.Context, spec LaunchSpec) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	if err := checkContainerID(spec.ContainerID); err != nil {
		return State{}, err
	}
	if err := checkContainer(spec.Container); err != nil {
		return State{}, err
	}
	if err := checkSandbox(spec.Sandbox); err != nil {
		return State{}, err
	}
	release, ok := p.containers.reserve(spec.ContainerID)
	if !ok {
		return State{}, errContainerExists
	}
	defer release()
	task, err := buildTaskSpec(spec, p.baseEnv)
	if err != nil {
		return State{}, err
	}
	task.LogMaxSize, task.LogKeep = p.taskLogs.MaxSize, p.taskLogs.Keep
	sc, err := p.connect(ctx, true)
	if err != nil {
		return State{}, err
	}

	var launched *containerEntry
	resp, err := sc.call(ctx, request{Op: opLaunch, Launch: &task}, func(resp response, err error, abandoned bool) {
		if err != nil || resp.Error != "" {
			return
		}
		// Registered here, in the reader, so that the exit event finds the container.
		c := newContainerEntry(State{
			ContainerID: spec.ContainerID,
			Kind:        ProcessKind,
			Sandbox:     spec.Sandbox,
			PID:         resp.PID,
			ShimPID:     sc.pid,
			StartTime:   resp.StartTime,
		})
		c.abandoned = abandoned
		p.containers.add(c)
		if abandoned {
			go p.killAbandoned(c)
		}
		launched = c
	})
	if err == nil && resp.Error != "" {
		err = errors.New(resp.Error)
	}
	if err != nil {
		return State{}, err
	}
	p.logger.Debug("container launched", "container", spec.ContainerID, "task", spec.TaskID,
		"pid", launched.state.PID, "supervisor", launched.state.ShimPID)
	return launched.state, nil
}

// killAbandoned kills a container whose Launch gave up waiting for it.
func (p *Process) killAbandoned(c *containerEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := p.Kill(ctx, c.state.ContainerID, 0); err != nil {
		p.logger.Warn("kill container whose launch was abandoned", "container", c.state.ContainerID, "err", err)
	}
}

// buildTaskSpec resolves what the task runs, as whom and with which environment (base
// and the spec's), and prepares the sandbox for that user.
func buildTaskSpec(spec LaunchSpec, base []string) (taskSpec, error) {
	cmd := spec.Command
	if cmd.Value == nil {
		return taskSpec{}, errors.New("command has no value")
	}
	task := taskSpec{
		ContainerID: spec.ContainerID,
		Dir:         spec.Sandbox,
		Stdout:      filepath.Join(spec.Sandbox, "stdout"),
		Stderr:      filepath.Join(spec.Sandbox, "stderr"),
	}
	if cmd.IsShell() {
		task.Path, task.Args = "/bin/sh", []string{"sh", "-c", *cmd.Value}
	} else {
		task.Path, task.Args = *cmd.Value, cmd.Arguments
		if len(task.Args) == 0 {
			task.Args = []string{*cmd.Value}
		}
	}
	cred, userEnv, err := hostUser(taskUser(spec, ""))
	if err != nil {
		return taskSpec{}, err
	}
	if cred != nil {
		task.Credential = cred
		if err := prepareSandbox(spec.Sandbox, task.Stdout, task.Stderr, cred); err != nil {
			return taskSpec{}, err
		}
	}
	env, err := taskEnv(append(slices.Clip(base), userEnv...), cmd.Environment, spec.Env)
	if err != nil {
		return taskSpec{}, err
	}
	task.Env = env
	if !cmd.IsShell() {
		if task.Path, err = lookPath(task.Path, spec.Sandbox, env); err != nil {
			return taskSpec{}, err
		}
	}
	return task, nil
}

// connect returns the connection to the supervisor, connecting first if need be. With
// start it starts a supervisor when none runs; without, it returns nil, nil then.
func (p *Process) connect(ctx context.Context, start bool) (*supervisorConn, error) {
	if sc, err := p.current(); sc != nil || err != nil {
		return sc, err
	}
	p.connectMu.Lock()
	defer p.connectMu.Unlock()
	if sc, err := p.current(); sc != nil || err != nil {
		return sc, err
	}
	sc, err := p.dial(ctx, start)
	if err != nil || sc == nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.containers.isClosed() {
		sc.close()
		return nil, ErrClosed
	}
	p.conn = sc
	return sc, nil
}

// current returns the working connection to the supervisor, if there is one.
func (p *Process) current() (*supervisorConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.containers.isClosed() {
		return nil, ErrClosed
	}
	if p.conn != nil && !p.conn.alive() {
		p.conn = nil
	}
	return p.conn, nil
}

// containerExited handles an exit event from the supervisor.
func (p *Process) containerExited(ev exitEvent) {
	c, ok := p.containers.find(ev.ContainerID)
	if !ok {
		return // another Process's, or one already destroyed
	}
	status, err := ev.Status.exitStatus()
	if err != nil {
		status = ExitStatus{Code: -1, Message: fmt.Sprintf("the task's exit status is invalid: %v", err)}
	}
	p.containers.finish(c, status)
}

// connectionLost finds out what became of the running containers once the connection to
// the supervisor broke: most likely the supervisor died, leaving them orphaned.
func (p *Process) connectionLost(sc *supervisorConn) {
	p.mu.Lock()
	if p.conn == sc {
		p.conn = nil
	}
	p.mu.Unlock()
	running := p.containers.running()
	if len(running) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		unknown, err := p.reattach(ctx, running, "connection lost")
		if errors.Is(err, ErrClosed) {
			return
		}
		if err != nil {
			p.logger.Error("cannot reach the supervisor; treating its containers as orphaned", "err", err)
			unknown = running
		}
		// The journal records every launch, so these are orphans whose records are lost.
		for _, c := range unknown {
			p.orphaned(c, "connection lost")
		}
	}()
}

// reattach finds out what became of the containers cs. It asks the supervisor, if one
// runs, or else reads the journal. Those still running carry on and report their exits
// through events; those that ended report their recorded exits; those whose supervisor
// died before they ended (reason says how that was found out) are killed, if they still
// run, and reported as failed. Those of which there is no record are returned, untouched.
// The containers must be registered before reattach is called, so that an exit event
// that overtakes the supervisor's answer is not lost. An error means neither the
// supervisor nor the journal could be asked, and nothing was resolved.
func (p *Process) reattach(ctx context.Context, cs []*containerEntry, reason string) ([]*containerEntry, error) {
	fates, err := p.fates(ctx, cs)
	if err != nil {
		return nil, err
	}
	var unknown []*containerEntry
	for _, c := range cs {
		fate, recorded := fates[c.state.ContainerID]
		switch {
		case c.exited() || fate.running:
		case !recorded:
			unknown = append(unknown, c)
		case fate.exit != nil:
			status, err := fate.exit.exitStatus()
			if err != nil {
				status = ExitStatus{Code: -1, Message: fmt.Sprintf("the task's recorded exit is invalid: %v", err)}
			}
			p.containers.finish(c, status)
		default:
			p.orphaned(c, reason)
		}
	}
	return unknown, nil
}

// fate is what became of a container that has a record: it runs, it exited, or, with
// neither, its supervisor died before it ended.
type fate struct {
	running bool
	exit    *statusRecord
}

// fates returns what became of the containers cs that have a record, as the supervisor
// says if one runs, else as the journal does.
func (p *Process) fates(ctx context.Context, cs []*containerEntry) (map[string]fate, error) {
	sc, err := p.connect(ctx, false)
	if err != nil {
		return nil, err
	}
	fates := make(map[string]fate, len(cs))
	if sc == nil {
		records, err := readJournal(filepath.Join(p.stateDir, journalFile))
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		for id, status := range records {
			fates[id] = fate{exit: status}
		}
		return fates, nil
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.state.ContainerID
	}
	resp, err := sc.call(ctx, request{Op: opQuery, ContainerIDs: ids}, nil)
	if err == nil && resp.Error != "" {
		err = errors.New(resp.Error)
	}
	if err != nil {
		return nil, fmt.Errorf("ask the supervisor about its containers: %w", err)
	}
	for _, id := range resp.Running {
		fates[id] = fate{running: true}
	}
	for _, ev := range resp.Exited {
		fates[ev.ContainerID] = fate{exit: &ev.Status}
	}
	for _, id := range resp.Orphaned {
		fates[id] = fate{}
	}
	return fates, nil
}

// orphaned ends a container whose supervisor died before the task ended: the task is
// killed, if it still runs, and reported as failed.
func (p *Process) orphaned(c *containerEntry, reason string) {
	if err := killOrphan(c.state.PID, c.state.StartTime); err != nil {
		p.logger.Warn("kill orphaned task", "container", c.state.ContainerID, "pid", c.state.PID, "err", err)
	}
	p.containers.finish(c, ExitStatus{Code: -1, Message: fmt.Sprintf(
		"the task's supervisor died (%s) without recording the task's exit", reason)})
}

// killOrphan kills the process group of a task whose supervisor is gone, if pid is still
// the task that started at startTime.
func killOrphan(pid int, startTime uint64) error {
	task, err := openProcess(pid, startTime)
	if err != nil || task == nil {
		return err
	}
	defer task.Close()
	groupErr := unix.Kill(-pid, unix.SIGKILL)
	if errors.Is(groupErr, unix.ESRCH) {
		groupErr = nil
	}
	// The group may be gone while the task, which left it, is not.
	raw, err := task.SyscallConn()
	if err != nil {
		return errors.Join(groupErr, err)
	}
	var sigErr error
	if err := raw.Control(func(fd uintptr) { sigErr = unix.PidfdSendSignal(int(fd), unix.SIGKILL, nil, 0) }); err != nil {
		return errors.Join(groupErr, err)
	}
	if errors.Is(sigErr, unix.ESRCH) {
		sigErr = nil
	}
	return errors.Join(groupErr, sigErr)
}

// Wait returns how the container ended, as soon as it has. A container that has already
// ended reports its status even when ctx is done; one still running reports ErrClosed
// once p is closed.
func (p *Process) Wait(ctx context.Context, containerID string) (ExitStatus, error) {
	return p.containers.wait(ctx, containerID)
}

// Kill asks the supervisor to send SIGTERM to the task's process group now and SIGKILL
// after grace (at once when grace is zero or negative). The supervisor carries this out,
// so it completes even if the agent exits meanwhile. A later Kill with a shorter grace
// period brings the SIGKILL forward; a longer one never delays it. Killing a container
// that has exited does nothing. A task whose supervisor is gone is killed at once.
func (p *Process) Kill(ctx context.Context, containerID string, grace time.Duration) error {
	c, err := p.containers.lookup(containerID)
	if err != nil {
		return err
	}
	if c.exited() {
		return nil
	}
	deadline := time.Now().Add(max(grace, 0))
	sc, err := p.connect(ctx, false)
	if err != nil {
		return fmt.Errorf("kill %s: %w", containerID, err)
	}
	if sc == nil {
		unknown, err := p.reattach(ctx, []*containerEntry{c}, "gone when the agent killed the task")
		if err != nil {
			return fmt.Errorf("kill %s: %w", containerID, err)
		}
		for _, c := range unknown {
			p.orphaned(c, "gone when the agent killed the task")
		}
		return nil
	}
	resp, err := sc.call(ctx, request{Op: opKill, ContainerID: containerID, DeadlineUnixNano: deadline.UnixNano()}, nil)
	if err == nil && resp.Error != "" {
		err = errors.New(resp.Error)
	}
	if err != nil {
		return fmt.Errorf("kill %s: %w", containerID, err)
	}
	return nil
}

// Recover re-attaches to containers of kind "process" that an earlier agent process
// launched with the same StateDir, reconnecting to the supervisor. A container the
// supervisor still runs is watched until it exits; one that ended meanwhile reports its
// recorded status at once; one whose supervisor died is killed and reported as failed.
// Containers already known are left alone. Errors for individual containers are joined;
// the others are recovered regardless. If the supervisor cannot be asked, Recover fails
// and registers nothing, so that it can be retried.
func (p *Process) Recover(ctx context.Context, states []State) error {
	var errs []error
	var recovered []*containerEntry
	for _, st := range states {
		c, err := p.register(st)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", st.ContainerID, err))
			continue
		}
		if c != nil {
			recovered = append(recovered, c)
		}
	}
	if len(recovered) == 0 {
		return errors.Join(errs...)
	}
	unknown, err := p.reattach(ctx, recovered, "gone when the agent recovered")
	if err != nil {
		p.containers.forgetRunning(recovered)
		return errors.Join(append(errs, fmt.Errorf("recover: %w", err))...)
	}
	p.containers.forgetRunning(unknown)
	for _, c := range unknown {
		errs = append(errs, fmt.Errorf("recover %s: no record of the container in %s", c.state.ContainerID, p.stateDir))
	}
	for _, c := range recovered {
		p.logger.Debug("container recovered", "container", c.state.ContainerID, "pid", c.state.PID)
	}
	return errors.Join(errs...)
}

// register adds a container to recover, or returns nil if it is known already.
func (p *Process) register(st State) (*containerEntry, error) {
	if st.Kind != ProcessKind {
		return nil, fmt.Errorf("kind %q is not %q", st.Kind, ProcessKind)
	}
	if err := checkContainerID(st.ContainerID); err != nil {
		return nil, err
	}
	if st.PID <= 0 {
		return nil, fmt.Errorf("task pid %d", st.PID)
	}
	c := newContainerEntry(st)
	if !p.containers.addUnknown(c) {
		return nil, nil
	}
	return c, nil
}

// Destroy forgets an exited container and has the supervisor drop its records, starting a
// supervisor if none runs (as after the last one died); the sandbox stays. A running
// container is an error: kill it and wait for it first.
func (p *Process) Destroy(ctx context.Context, containerID string) error {
	return p.containers.destroy(containerID, func(*containerEntry) error {
		sc, err := p.connect(ctx, true)
		if err != nil {
			return err
		}
		resp, err := sc.call(ctx, request{Op: opForget, ContainerID: containerID}, nil)
		if err == nil && resp.Error != "" {
			err = errors.New(resp.Error)
		}
		return err
	})
}

// Close disconnects p from the supervisor, which runs on with the tasks; another Process
// on the same StateDir recovers them. Afterwards Launch, Kill, Recover and Wait on running
// containers fail with ErrClosed. An agent calls it when it shuts down leaving its tasks
// running. Close is idempotent.
func (p *Process) Close() error {
	p.mu.Lock()
	if !p.containers.close() {
		p.mu.Unlock()
		return nil
	}
	sc := p.conn
	p.conn = nil
	p.mu.Unlock()
	if sc != nil {
		sc.close()
	}
	return nil
}

// StopSupervisor closes p, then makes the supervisor exit and waits until it has. It fails,
// leaving the supervisor running, while the supervisor runs containers, this Process's or
// another's on the same StateDir. When no supervisor runs it does nothing more than Close.
// An agent calls it when it shuts down having killed every task and waited for them, so
// that no process of its own is left behind.
func (p *Process) StopSupervisor(ctx context.Context) error {
	p.Close()
	// A connection of its own, since p's is closed; it serves the stop request only.
	sc, err := p.dial(ctx, false)
	if err != nil {
		return fmt.Errorf("stop supervisor: %w", err)
	}
	if sc == nil {
		return nil
	}
	defer sc.close()
	resp, err := sc.call(ctx, request{Op: opStop}, nil)
	if err == nil && resp.Error != "" {
		err = errors.New(resp.Error)
	}
	if err != nil {
		return fmt.Errorf("stop supervisor %d: %w", sc.pid, err)
	}
	if err := sc.waitExit(ctx); err != nil {
		return fmt.Errorf("stop supervisor %d: wait for it to exit: %w", sc.pid, err)
	}
	return nil
}

// Release stops the supervisor once every task was killed, and otherwise only
// disconnects from it so the tasks keep running.
func (p *Process) Release(ctx context.Context, tasksKilled bool) error {
	if tasksKilled {
		if err := p.StopSupervisor(ctx); err != nil {
			return fmt.Errorf("stop the container supervisor: %w", err)
		}
		return nil
	}
	if err := p.Close(); err != nil {
		return fmt.Errorf("disconnect from the container supervisor: %w", err)
	}
	return nil
}

// checkContainerID rejects ids that cannot name a file of their own in StateDir.
func checkContainerID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("container id %q cannot name a file", id)
	}
	return nil
}

// lookPath finds an executable the way execvp(3) does, but in the task's PATH rather than
// the agent's; relative PATH entries are relative to the sandbox dir.
func lookPath(file, dir string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, entry := range filepath.SplitList(envValue(env, "PATH")) {
		candidate := filepath.Join(entry, file)
		if !filepath.IsAbs(candidate) {
			candidate = filepath.Join(dir, candidate)
		}
		if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("%q: executable file not found in PATH", file)
}

// checkContainer rejects container settings the plain-process containerizer cannot honour:
// it has no images, mounts, hostnames or networks of its own.
func checkContainer(ci *api.ContainerInfo) error {
	if ci == nil {
		return nil
	}
	switch {
	case ci.Docker != nil || (ci.Mesos != nil && ci.Mesos.Image != nil):
		return errors.New("the process containerizer cannot run container images")
	case len(ci.Volumes) > 0:
		return errors.New("the process containerizer cannot mount volumes")
	case ci.Hostname != "":
		return errors.New("the process containerizer cannot set a hostname")
	}
	for _, n := range ci.NetworkInfos {
		if n.Name != "" {
			return fmt.Errorf("the process containerizer cannot join network %q", n.Name)
		}
	}
	return nil
}
