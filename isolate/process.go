package isolate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/api"
)

// ProcessKind is State.Kind for containers of the plain-process containerizer.
const ProcessKind = "process"

// ProcessConfig configures the plain-process containerizer.
type ProcessConfig struct {
	// Logger receives the containerizer's logs; nil discards them.
	Logger *slog.Logger
	// StateDir holds one directory per container with the records that outlive the agent:
	// the shim's spec and log, kill requests and the task's exit status. Required; the
	// agent passes work_dir/containers. It is created if missing.
	StateDir string
	// Executable is the binary re-executed as each task's supervisor (the shim). Its main
	// (or TestMain) must call RunShimIfRequested first thing. Empty means os.Executable().
	Executable string
}

// DefaultProcessConfig returns a config with no StateDir, which the caller must set. Logs
// are discarded, since the containerizer's errors reach the agent as return values, and
// the shim is the running binary, which in production is Atoll itself.
func DefaultProcessConfig() ProcessConfig {
	return ProcessConfig{Logger: slog.New(slog.DiscardHandler)}
}

// Validate reports a config NewProcess cannot work with.
func (c ProcessConfig) Validate() error {
	if c.StateDir == "" {
		return errors.New("process containerizer: StateDir is required")
	}
	return nil
}

// Process is the plain-process containerizer, the unprivileged fallback: each task runs on
// the host, in its own process group and in the agent's filesystem, optionally as another
// user, with no resource limits. A shim (this binary re-executed, see RunShimIfRequested)
// in a session of its own is each task's parent, so tasks survive the agent's exit and
// restart; the shim records the task's exit status in StateDir for whichever agent process
// is waiting. It needs Linux 5.3 or later (pidfd) to re-attach after a restart.
//
// Process is safe for concurrent use.
type Process struct {
	logger     *slog.Logger
	stateDir   string
	executable string

	mu         sync.Mutex
	containers map[string]*processContainer
}

var _ Containerizer = (*Process)(nil)

// processContainer is one launched or recovered container.
type processContainer struct {
	state State
	meta  string // its directory in StateDir
	// signalShim signals the shim without risk of pid reuse (through a pidfd); it fails with
	// os.ErrProcessDone or ESRCH once the shim is gone.
	signalShim func(syscall.Signal) error

	killMu sync.Mutex // serialises kill requests

	done   chan struct{} // closed once status is set
	status ExitStatus
}

// exited reports whether the container's shim has exited.
func (c *processContainer) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// NewProcess returns a plain-process containerizer that keeps its records in cfg.StateDir.
func NewProcess(cfg ProcessConfig) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	executable := cfg.Executable
	if executable == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("process containerizer: find own executable for the shim: %w", err)
		}
		executable = self
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("process containerizer: state dir: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process containerizer: create state dir: %w", err)
	}
	return &Process{
		logger:     logger,
		stateDir:   stateDir,
		executable: executable,
		containers: make(map[string]*processContainer),
	}, nil
}

// Launch starts the task's shim and returns once the shim has started the task, or with
// the reason it could not (an unknown user, a missing executable). A shell command that is
// not found is not a launch error: the shell starts and exits with status 127, as in Mesos.
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
	if !filepath.IsAbs(spec.Sandbox) {
		return State{}, fmt.Errorf("sandbox %q is not an absolute path", spec.Sandbox)
	}
	if fi, err := os.Stat(spec.Sandbox); err != nil {
		return State{}, fmt.Errorf("sandbox: %w", err)
	} else if !fi.IsDir() {
		return State{}, fmt.Errorf("sandbox %s is not a directory", spec.Sandbox)
	}
	p.mu.Lock()
	_, known := p.containers[spec.ContainerID]
	p.mu.Unlock()
	if known {
		return State{}, errors.New("container already exists")
	}

	meta := filepath.Join(p.stateDir, spec.ContainerID)
	shim, err := buildShimSpec(spec, meta)
	if err != nil {
		return State{}, err
	}
	if err := os.Mkdir(meta, 0o700); err != nil {
		return State{}, fmt.Errorf("create container records: %w", err)
	}
	st, err := p.startShim(ctx, spec, shim, meta)
	if err != nil {
		os.RemoveAll(meta)
		return State{}, err
	}
	return st, nil
}

// buildShimSpec resolves what the task runs, as whom and with which environment, and prepares
// the sandbox for that user.
func buildShimSpec(spec LaunchSpec, meta string) (shimSpec, error) {
	cmd := spec.Command
	if cmd.Value == nil {
		return shimSpec{}, errors.New("command has no value")
	}
	shim := shimSpec{
		ContainerID: spec.ContainerID,
		Dir:         spec.Sandbox,
		Stdout:      filepath.Join(spec.Sandbox, "stdout"),
		Stderr:      filepath.Join(spec.Sandbox, "stderr"),
		StatusFile:  filepath.Join(meta, statusFile),
		KillFile:    filepath.Join(meta, killFile),
	}
	if cmd.IsShell() {
		shim.Path, shim.Args = "/bin/sh", []string{"sh", "-c", *cmd.Value}
	} else {
		shim.Path, shim.Args = *cmd.Value, cmd.Arguments
		if len(shim.Args) == 0 {
			shim.Args = []string{*cmd.Value}
		}
	}
	base := baseEnv(os.Environ())
	if cmd.User != nil && *cmd.User != "" {
		cred, home, err := lookupUser(*cmd.User)
		if err != nil {
			return shimSpec{}, err
		}
		if cred != nil {
			shim.Credential = cred
			base = append(base, "HOME="+home, "USER="+*cmd.User, "LOGNAME="+*cmd.User)
			if err := prepareSandbox(spec.Sandbox, shim.Stdout, shim.Stderr, cred); err != nil {
				return shimSpec{}, err
			}
		}
	}
	env, err := taskEnv(base, cmd.Environment, spec.Env)
	if err != nil {
		return shimSpec{}, err
	}
	shim.Env = env
	return shim, nil
}

// startShim starts the shim and waits for its report on the task.
func (p *Process) startShim(ctx context.Context, spec LaunchSpec, shim shimSpec, meta string) (State, error) {
	specPath := filepath.Join(meta, specFile)
	data, err := json.Marshal(shim)
	if err != nil {
		return State{}, fmt.Errorf("encode shim spec: %w", err)
	}
	if err := writeFileAtomic(specPath, data); err != nil {
		return State{}, fmt.Errorf("write shim spec: %w", err)
	}
	logPath := filepath.Join(meta, shimLog)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return State{}, fmt.Errorf("open shim log: %w", err)
	}
	defer logFile.Close()
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return State{}, fmt.Errorf("report pipe: %w", err)
	}
	defer reportR.Close()
	cmd := &exec.Cmd{
		Path:       p.executable,
		Args:       []string{"atoll-shim", spec.ContainerID},
		Env:        append(goRuntimeEnv(os.Environ()), shimEnv+"="+specPath),
		Dir:        "/",
		Stderr:     logFile,
		ExtraFiles: []*os.File{reportW},
		// A session of its own: the agent's exit, or a Ctrl-C on the agent's terminal,
		// must not reach the shim or its task.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return State{}, fmt.Errorf("start shim: %w", err)
	}
	// Unreaped, the shim's /proc entry stays readable even if it has already exited.
	startTime, err := readStartTime(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return State{}, fmt.Errorf("shim start time: %w", err)
	}

	type readResult struct {
		data []byte
		err  error
	}
	read := make(chan readResult, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(reportR, 64<<10))
		read <- readResult{data, err}
	}()
	var res readResult
	select {
	case res = <-read:
	case <-ctx.Done():
		cmd.Process.Kill() // the task, if started, follows through its parent-death signal
		cmd.Wait()
		return State{}, ctx.Err()
	}
	var report shimReport
	if res.err == nil && len(res.data) > 0 {
		res.err = json.Unmarshal(res.data, &report)
	}
	if res.err != nil || report.PID <= 0 {
		cmd.Process.Kill()
		cmd.Wait()
		switch {
		case report.Error != "":
			return State{}, errors.New(report.Error)
		case res.err != nil:
			return State{}, fmt.Errorf("read shim report: %w", res.err)
		default:
			return State{}, fmt.Errorf("shim exited (%v) before starting the task: %s", cmd.ProcessState, logTail(logPath))
		}
	}

	st := State{
		ContainerID: spec.ContainerID,
		Kind:        ProcessKind,
		Sandbox:     spec.Sandbox,
		PID:         report.PID,
		ShimPID:     cmd.Process.Pid,
		StartTime:   startTime,
	}
	c := &processContainer{
		state:      st,
		meta:       meta,
		signalShim: func(sig syscall.Signal) error { return cmd.Process.Signal(sig) },
		done:       make(chan struct{}),
	}
	p.mu.Lock()
	p.containers[spec.ContainerID] = c
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		if err != nil && cmd.ProcessState == nil {
			p.finish(c, ExitStatus{Code: -1, Message: fmt.Sprintf("wait for supervisor: %v", err)})
			return
		}
		p.finish(c, exitFromRecords(meta, cmd.ProcessState.String()))
	}()
	p.logger.Info("container launched", "container", st.ContainerID, "task", spec.TaskID,
		"pid", st.PID, "shim_pid", st.ShimPID)
	return st, nil
}

// finish records how the container ended and releases its waiters.
func (p *Process) finish(c *processContainer, status ExitStatus) {
	p.logger.Info("container exited", "container", c.state.ContainerID, "status", status.Message)
	c.status = status
	close(c.done)
}

// exitFromRecords reads the exit status the shim recorded in meta. A shim that ended
// without one (it was SIGKILLed, taking the task with it) is reported as a failure;
// shimEnd says how it ended, as far as is known.
func exitFromRecords(meta, shimEnd string) ExitStatus {
	data, err := os.ReadFile(filepath.Join(meta, statusFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ExitStatus{Code: -1, Message: fmt.Sprintf(
			"the task's supervisor died (%s) without recording the task's exit", shimEnd)}
	}
	if err == nil {
		var status ExitStatus
		if status, err = parseStatus(data); err == nil {
			return status
		}
	}
	return ExitStatus{Code: -1, Message: fmt.Sprintf("the task's exit status is unreadable: %v", err)}
}

// Wait returns how the container ended, as soon as it has. A container that has already
// ended reports its status even when ctx is done.
func (p *Process) Wait(ctx context.Context, containerID string) (ExitStatus, error) {
	c, err := p.lookup(containerID)
	if err != nil {
		return ExitStatus{}, err
	}
	if c.exited() {
		return c.status, nil
	}
	select {
	case <-c.done:
		return c.status, nil
	case <-ctx.Done():
		return ExitStatus{}, fmt.Errorf("wait for %s: %w", containerID, ctx.Err())
	}
}

// Kill asks the container's shim to send SIGTERM to the task's process group now and
// SIGKILL after grace (at once when grace is zero or negative). The shim carries this out,
// so it completes even if the agent exits meanwhile. A later Kill with a shorter grace
// period brings the SIGKILL forward; a longer one never delays it. Killing a container that
// has exited does nothing.
func (p *Process) Kill(ctx context.Context, containerID string, grace time.Duration) error {
	c, err := p.lookup(containerID)
	if err != nil {
		return err
	}
	c.killMu.Lock()
	defer c.killMu.Unlock()
	if c.exited() {
		return nil
	}
	killPath := filepath.Join(c.meta, killFile)
	deadline := time.Now().Add(max(grace, 0))
	if earlier, err := readKillRequest(killPath); err == nil && earlier.Before(deadline) {
		deadline = earlier
	}
	if err := writeKillRequest(killPath, deadline); err != nil {
		return fmt.Errorf("kill %s: %w", containerID, err)
	}
	if err := c.signalShim(unix.SIGUSR1); err != nil {
		if errors.Is(err, os.ErrProcessDone) || errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("kill %s: signal shim %d: %w", containerID, c.state.ShimPID, err)
	}
	return nil
}

// Recover re-attaches to containers of kind "process" that an earlier agent process
// launched with the same StateDir. A container whose shim is still running is watched
// until it exits; one whose shim is gone reports its recorded status at once. Containers
// already known are left alone. Errors for individual containers are joined; the others
// are recovered regardless.
func (p *Process) Recover(ctx context.Context, states []State) error {
	var errs []error
	for _, st := range states {
		if err := p.recover(st); err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", st.ContainerID, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Process) recover(st State) error {
	if st.Kind != ProcessKind {
		return fmt.Errorf("kind %q is not %q", st.Kind, ProcessKind)
	}
	if err := checkContainerID(st.ContainerID); err != nil {
		return err
	}
	if st.ShimPID <= 0 {
		return fmt.Errorf("shim pid %d", st.ShimPID)
	}
	meta := filepath.Join(p.stateDir, st.ContainerID)
	if _, err := os.Stat(meta); err != nil {
		return fmt.Errorf("container records: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, known := p.containers[st.ContainerID]; known {
		return nil
	}
	shim, err := openShim(st.ShimPID, st.StartTime)
	if err != nil {
		return err
	}
	c := &processContainer{state: st, meta: meta, done: make(chan struct{})}
	p.containers[st.ContainerID] = c
	if shim == nil {
		c.signalShim = func(syscall.Signal) error { return os.ErrProcessDone }
		p.finish(c, exitFromRecords(meta, "gone when the agent recovered"))
		return nil
	}
	raw, err := shim.SyscallConn()
	if err != nil {
		shim.Close()
		return fmt.Errorf("shim pidfd: %w", err)
	}
	c.signalShim = func(sig syscall.Signal) error {
		var sigErr error
		if err := raw.Control(func(fd uintptr) {
			sigErr = unix.PidfdSendSignal(int(fd), sig, nil, 0)
		}); err != nil {
			// The watcher closes the pidfd only once the shim has exited.
			return os.ErrProcessDone
		}
		return sigErr
	}
	go func() {
		// The pidfd becomes readable when the shim exits; Read waits for that in the
		// runtime's poller instead of holding a thread.
		err := raw.Read(func(fd uintptr) bool {
			ready, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0)
			return err == nil && ready > 0
		})
		shim.Close()
		if err != nil {
			p.finish(c, ExitStatus{Code: -1, Message: fmt.Sprintf("watch supervisor: %v", err)})
			return
		}
		p.finish(c, exitFromRecords(meta, "exited"))
	}()
	p.logger.Info("container recovered", "container", st.ContainerID, "pid", st.PID, "shim_pid", st.ShimPID)
	return nil
}

// openShim returns a pollable pidfd for the shim pid if it is still the process that
// started at startTime, or nil if that process is gone.
func openShim(pid int, startTime uint64) (*os.File, error) {
	if started, err := readStartTime(pid); err != nil || started != startTime {
		return nil, nil
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	// Checked again now that the pidfd pins the process: the pid may have been reused
	// between the first check and pidfd_open.
	if started, err := readStartTime(pid); err != nil || started != startTime {
		unix.Close(fd)
		return nil, nil
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), nil
}

// Destroy forgets an exited container and removes its records; the sandbox stays. A
// running container is an error: kill it and wait for it first.
func (p *Process) Destroy(ctx context.Context, containerID string) error {
	c, err := p.lookup(containerID)
	if err != nil {
		return err
	}
	if !c.exited() {
		return fmt.Errorf("destroy %s: container is still running", containerID)
	}
	p.mu.Lock()
	if p.containers[containerID] == c {
		delete(p.containers, containerID)
	}
	p.mu.Unlock()
	if err := os.RemoveAll(c.meta); err != nil {
		return fmt.Errorf("destroy %s: %w", containerID, err)
	}
	return nil
}

func (p *Process) lookup(containerID string) (*processContainer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.containers[containerID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownContainer, containerID)
	}
	return c, nil
}

// checkContainerID rejects ids that cannot name a directory in StateDir.
func checkContainerID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("container id %q cannot name a directory", id)
	}
	return nil
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

// goRuntimeEnv picks the Go runtime's settings from the agent's environment for the shim,
// which needs nothing else from it.
func goRuntimeEnv(agentEnv []string) []string {
	var env []string
	for _, kv := range agentEnv {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GODEBUG", "GOTRACEBACK", "GORACE":
			env = append(env, kv)
		}
	}
	return env
}

// defaultPath is the task's PATH when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// baseEnv picks the variables every task inherits from the agent's environment.
func baseEnv(agentEnv []string) []string {
	keep := []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"}
	var env []string
	for _, name := range keep {
		for _, kv := range agentEnv {
			if strings.HasPrefix(kv, name+"=") {
				env = append(env, kv)
				break
			}
		}
	}
	if envValue(env, "PATH") == "" {
		env = append(env, "PATH="+defaultPath)
	}
	return env
}

// taskEnv layers the command's variables and then the agent's (spec.Env) over base; a
// later definition of a name replaces an earlier one in place.
func taskEnv(base []string, cmdEnv *api.Environment, extra []string) ([]string, error) {
	var env []string
	index := make(map[string]int)
	set := func(name, value string) {
		kv := name + "=" + value
		if i, ok := index[name]; ok {
			env[i] = kv
			return
		}
		index[name] = len(env)
		env = append(env, kv)
	}
	for _, kv := range base {
		name, value, _ := strings.Cut(kv, "=")
		set(name, value)
	}
	if cmdEnv != nil {
		for _, v := range cmdEnv.Variables {
			if v.Type != "" && v.Type != "VALUE" {
				return nil, fmt.Errorf("environment variable %q: type %q is not supported", v.Name, v.Type)
			}
			if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") || strings.ContainsRune(v.Value, 0) {
				return nil, fmt.Errorf("environment variable %q: invalid", v.Name)
			}
			set(v.Name, v.Value)
		}
	}
	for _, kv := range extra {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.ContainsRune(kv, 0) {
			return nil, fmt.Errorf("environment entry %q is not NAME=value", kv)
		}
		set(name, value)
	}
	return env, nil
}

// lookupUser resolves the user a task should run as. It returns a nil credential when that
// is the agent's own user, which needs no switch.
func lookupUser(name string) (*shimCredential, string, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, "", fmt.Errorf("user %q: %w", name, err)
	}
	if u.Uid == strconv.Itoa(os.Getuid()) {
		return nil, "", nil
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, "", fmt.Errorf("user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, "", fmt.Errorf("user %q: gid %q: %w", name, u.Gid, err)
	}
	cred := &shimCredential{UID: uint32(uid), GID: uint32(gid)}
	groups, err := u.GroupIds()
	if err != nil {
		return nil, "", fmt.Errorf("user %q: groups: %w", name, err)
	}
	for _, g := range groups {
		id, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, "", fmt.Errorf("user %q: group %q: %w", name, g, err)
		}
		cred.Groups = append(cred.Groups, uint32(id))
	}
	return cred, u.HomeDir, nil
}

// prepareSandbox gives the sandbox, and the output files the shim appends to, to the task's
// user, as Mesos does, so the task can write there.
func prepareSandbox(sandbox, stdout, stderr string, cred *shimCredential) error {
	for _, path := range []string{stdout, stderr} {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		f.Close()
	}
	err := filepath.WalkDir(sandbox, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.UID), int(cred.GID))
	})
	if err != nil {
		return fmt.Errorf("give sandbox to uid %d: %w", cred.UID, err)
	}
	return nil
}

// logTail returns the end of the shim's log for error messages.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(shim log unreadable: %v)", err)
	}
	const limit = 2048
	if len(data) > limit {
		data = data[len(data)-limit:]
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return "(shim log empty)"
	}
	return string(data)
}
