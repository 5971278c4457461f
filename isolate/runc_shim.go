package isolate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	// Device rules need the cgroup device controller's implementation.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	// nsexec, in C, sets up the namespaces of a container's init before Go starts.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// runcShimEnv, when set in a process's environment, makes RunContainerInitIfRequested run
// a shim.
const runcShimEnv = "ATOLL_RUNC_SHIM"

// runcShimName is the shim's argv[0], so that ps shows what it is. A shim started for a
// container has the container's directory as its argument; a spare, started before its
// container was known (see Runc), has none.
const runcShimName = "atoll-runc-shim"

// The descriptors a shim inherits besides its standard ones: the write end of a pipe on
// which it reports the container running (runcReady), and the read end of one that gives
// it its container: the container's directory, a NUL and its spec (runcShimSpec), until
// EOF. EOF without a container, when the agent discards a spare or exits, makes it exit.
const (
	runcReadyFD = 3
	runcInputFD = 4
)

// libcontainerInitArg is the argument libcontainer re-executes this binary with to make
// it a container's init; libcontainerInitEnv is always set for it.
const (
	libcontainerInitArg = "init"
	libcontainerInitEnv = "_LIBCONTAINER_INITPIPE"
)

// RunContainerInitIfRequested turns this process into what the runc containerizer started
// it as, and never returns then: a container's init (libcontainer's, which sets the
// container up and executes the task) or a container's shim. Otherwise it returns at
// once. The containerizer re-executes the current binary for both, so main and every
// test binary of a package that launches runc containers must call it first thing.
func RunContainerInitIfRequested() {
	if len(os.Args) > 1 && os.Args[1] == libcontainerInitArg && os.Getenv(libcontainerInitEnv) != "" {
		libcontainer.Init()
	}
	if os.Getenv(runcShimEnv) != "" {
		os.Exit(runRuncShim())
	}
}

// runcShim is the parent of one container's init, from its start to its end: it copies
// the container's output to the sandbox, carries out the agent's kill requests, reaps the
// init and records how the container ended. It runs in a session of its own, so it
// outlives the agent. It leaves the container's cgroups and libcontainer state for
// Destroy, so that they can still be read.
type runcShim struct {
	logger    *slog.Logger
	dir       string
	spec      runcShimSpec
	container *libcontainer.Container
	process   *libcontainer.Process
	output    *taskOutput
	// cgroupPaths are the container's cgroups, one for each hierarchy.
	cgroupPaths map[string]string

	termSent bool
	// deadline is the earliest SIGKILL deadline asked for; zero until a kill request.
	deadline time.Time
	killer   *time.Timer
}

// runRuncShim waits for its container, starts it, reports it running to the agent, and
// supervises it until it ends. It returns the shim's exit code.
func runRuncShim() int {
	closeInherited()
	syscall.CloseOnExec(runcReadyFD)
	syscall.CloseOnExec(runcInputFD)
	warmJSON()
	ready := os.NewFile(runcReadyFD, "ready")
	input := os.NewFile(runcInputFD, "input")
	data, err := io.ReadAll(input)
	input.Close()
	if err == nil && len(data) == 0 {
		// A spare the agent discarded, or whose agent exited.
		return 0
	}
	// Kill requests may come as soon as the agent hears from the shim, or earlier if the
	// agent gives up on the launch. Caught rather than ignored, the other signals revert
	// to their defaults in the container on exec.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	var s *runcShim
	var msg runcReady
	dir, specData, ok := bytes.Cut(data, []byte{0})
	switch {
	case err != nil:
		msg = runcReady{Error: fmt.Sprintf("read the container: %v", err)}
	case !ok:
		msg = runcReady{Error: "the container's directory has no end"}
	default:
		err = openShimLog(string(dir))
		if err != nil {
			msg = runcReady{Error: err.Error()}
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("shim", os.Getpid())
	if msg.Error == "" {
		s, msg = startRuncShim(logger, string(dir), specData)
	}
	if data, err := json.Marshal(msg); err != nil {
		logger.Error("encode the report to the agent", "err", err)
	} else if _, err := ready.Write(data); err != nil {
		// The agent gave up on the launch; it asked for a kill too.
		logger.Warn("report to the agent", "err", err)
	}
	ready.Close()
	if s == nil {
		logger.Error("container did not start", "err", msg.Error)
		return 1
	}
	logger.Info("container running", "container", s.spec.ID, "pid", msg.PID)
	return s.supervise(signals)
}

// warmJSON builds encoding/json's codecs for the container's spec, which the shim decodes,
// and for libcontainer's state, which libcontainer encodes while it starts the container:
// a spare builds them before its launch comes.
func warmJSON() {
	json.Marshal(runcShimSpec{})
	json.Marshal(libcontainer.State{})
}

// openShimLog makes the shim's log in the container's directory its stderr, where its
// own logs and libcontainer's go. A shim started for its container already has it there.
func openShimLog(dir string) error {
	log, err := os.OpenFile(filepath.Join(dir, runcShimLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open the shim's log: %w", err)
	}
	defer log.Close()
	if err := unix.Dup3(int(log.Fd()), 2, 0); err != nil {
		return fmt.Errorf("open the shim's log: %w", err)
	}
	return nil
}

// startRuncShim creates and starts the container whose directory is dir and spec
// specData. It returns nil and the error to report if it could not, having destroyed
// whatever it created.
func startRuncShim(logger *slog.Logger, dir string, specData []byte) (*runcShim, runcReady) {
	s := &runcShim{logger: logger, dir: dir}
	if err := s.start(specData); err != nil {
		return nil, runcReady{Error: err.Error()}
	}
	state, err := s.container.State()
	if err == nil {
		s.cgroupPaths = state.CgroupPaths
		err = s.record(state.InitProcessPid, state.InitProcessStartTime)
	}
	if err != nil {
		s.abort()
		return nil, runcReady{Error: err.Error()}
	}
	return s, runcReady{PID: state.InitProcessPid, StartTime: state.InitProcessStartTime}
}

// start decodes the spec and runs the container's init, its output going through pipes
// to the sandbox's files (see taskOutput).
func (s *runcShim) start(specData []byte) error {
	var err error
	if s.spec, err = parseRuncShimSpec(specData); err != nil {
		return err
	}
	p := s.spec.Process
	// Created now: the shim runs as root, and the container's user may not be.
	output, err := newTaskOutput(s.logger, p.Stdout, p.Stderr, LogRotation{MaxSize: p.LogMaxSize, Keep: p.LogKeep}, false)
	if err != nil {
		return err
	}
	s.container, err = libcontainer.Create(s.spec.Root, s.spec.ID, s.spec.Config)
	if err != nil {
		output.close()
		return fmt.Errorf("create container: %w", err)
	}
	s.process = &libcontainer.Process{
		Args:             p.Args,
		Env:              p.Env,
		Cwd:              p.Cwd,
		UID:              p.UID,
		GID:              p.GID,
		AdditionalGroups: p.Groups,
		Stdout:           output.stdout,
		Stderr:           output.stderr,
		Init:             true,
	}
	if err := s.container.Run(s.process); err != nil {
		output.close()
		if destroyErr := s.container.Destroy(); destroyErr != nil {
			s.logger.Warn("destroy the container that did not start", "err", destroyErr)
		}
		return err
	}
	output.start()
	s.output = output
	return nil
}

// record writes runcShimFile.
func (s *runcShim) record(pid int, startTime uint64) error {
	shimStart, err := readStartTime(os.Getpid())
	if err != nil {
		return fmt.Errorf("own start time: %w", err)
	}
	bootID, err := readBootID()
	if err != nil {
		return err
	}
	return writeRecord(s.dir, runcShimFile, runcShimRecord{
		ShimPID:       os.Getpid(),
		ShimStartTime: shimStart,
		PID:           pid,
		StartTime:     startTime,
		BootID:        bootID,
	})
}

// abort kills a container that started but cannot be supervised, and destroys it.
func (s *runcShim) abort() {
	if err := s.container.Signal(unix.SIGKILL); err != nil {
		s.logger.Warn("kill the container", "err", err)
	}
	if _, err := s.process.Wait(); err != nil {
		s.logger.Warn("reap the container", "err", err)
	}
	s.output.drain(outputDrainGrace)
	if err := s.container.Destroy(); err != nil {
		s.logger.Warn("destroy the container", "err", err)
	}
}

// supervise carries out kill requests, and forwards other signals sent to the shim to
// the container's init, until the init exits; then, once the container's output is
// copied to the end, it records how the container ended and returns the shim's exit
// code.
func (s *runcShim) supervise(signals <-chan os.Signal) int {
	exited := make(chan *os.ProcessState, 1)
	go func() {
		// A non-zero exit is an error here; the state tells how it ended regardless.
		state, err := s.process.Wait()
		if state == nil {
			s.logger.Error("wait for the container", "err", err)
		}
		exited <- state
	}()
	s.killer = time.NewTimer(time.Hour)
	s.killer.Stop()
	for {
		select {
		case sig := <-signals:
			if sig == unix.SIGTERM {
				s.killRequested()
			} else {
				s.signal(sig.(unix.Signal))
			}
		case <-s.killer.C:
			s.signal(unix.SIGKILL)
		case state := <-exited:
			s.killer.Stop()
			s.output.drain(outputDrainGrace)
			status := s.exitStatus(state)
			if err := writeRecord(s.dir, runcExitFile, runcExitRecord{statusRecord: recordOf(status), OOMKilled: status.OOMKilled}); err != nil {
				s.logger.Error("record the container's exit", "err", err)
				return 1
			}
			s.logger.Info("container exited", "status", status.Message)
			return 0
		}
	}
}

// killRequested carries out the kill request in runcKillFile: SIGTERM now, once and only
// while the deadline is ahead, and SIGKILL at the earliest deadline asked for. A SIGTERM
// that comes with no request, from someone other than the agent, is forwarded.
func (s *runcShim) killRequested() {
	deadline, err := readRecord(s.dir, runcKillFile, parseRuncKillRecord)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.logger.Error("read the kill request", "err", err)
		}
		s.signal(unix.SIGTERM)
		return
	}
	if !s.termSent && time.Now().Before(deadline) {
		s.termSent = true
		s.signal(unix.SIGTERM)
	}
	if s.deadline.IsZero() || deadline.Before(s.deadline) {
		s.deadline = deadline
		s.killer.Reset(max(time.Until(deadline), 0))
	}
}

// signal sends sig to the container's init. SIGKILL ends the whole container: the init of
// a PID namespace takes every other process in it along.
func (s *runcShim) signal(sig unix.Signal) {
	if err := s.container.Signal(sig); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
		s.logger.Warn("signal the container", "signal", signalName(sig), "err", err)
	}
}

// exitStatus describes how the container's init ended, and whether the memory limit
// ended it: the container's memory cgroup counted an OOM kill and the task failed.
func (s *runcShim) exitStatus(state *os.ProcessState) ExitStatus {
	if state == nil {
		return ExitStatus{Code: -1, Message: "the shim could not wait for the container's init"}
	}
	status := exitStatusOf(state.Sys().(syscall.WaitStatus))
	if status.Succeeded() {
		return status
	}
	kills, err := oomKillCount(s.spec.Config.Cgroups, s.cgroupPaths)
	if err != nil {
		s.logger.Warn("read the container's OOM kills", "err", err)
		return status
	}
	if kills > 0 {
		status.OOMKilled = true
		status.Message += fmt.Sprintf(" after running out of memory (limit %s)",
			formatMemory(s.spec.Config.Cgroups.Resources.Memory))
	}
	return status
}
