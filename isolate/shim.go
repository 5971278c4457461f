package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// shimEnv, when set in a process's environment, makes RunShimIfRequested run the shim with
// the spec file it names instead of returning.
const shimEnv = "ATOLL_ISOLATE_SHIM"

// shimReportFD is the descriptor on which the shim tells its launcher the task's pid, or why
// the task could not be started: the write end of a pipe passed as the first extra file.
const shimReportFD = 3

// shimSpec is everything the shim needs to start and supervise one task. Launch resolves the
// user, environment and argv so that the shim stays small.
type shimSpec struct {
	ContainerID string `json:"container_id"`
	// Path is the executable; without a slash it is looked up in the PATH of Env.
	Path string   `json:"path"`
	Args []string `json:"args"`
	Env  []string `json:"env"`
	// Dir is the sandbox: the task's working directory.
	Dir    string `json:"dir"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// StatusFile receives the task's exit status; KillFile holds kill requests.
	StatusFile string `json:"status_file"`
	KillFile   string `json:"kill_file"`
	// Credential, when set, is the user the task runs as.
	Credential *shimCredential `json:"credential,omitempty"`
}

// shimCredential is a user to switch to.
type shimCredential struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// shimReport is the shim's one message to its launcher.
type shimReport struct {
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// RunShimIfRequested runs the task supervisor ("shim") and exits when this process was
// started as one by the Process containerizer; otherwise it returns at once. The
// containerizer re-executes the current binary as the shim, so main and every TestMain of
// a package that launches containers must call it before doing anything else.
func RunShimIfRequested() {
	specPath := os.Getenv(shimEnv)
	if specPath == "" {
		return
	}
	os.Exit(runShim(specPath))
}

// runShim starts the task described by the spec at specPath, reports its pid on
// shimReportFD, carries out kill requests, records the exit status and returns the shim's
// own exit code. Diagnostics go to stderr, which the launcher points at the shim log.
func runShim(specPath string) int {
	// The task's parent-death signal fires when the thread that forked it exits, so keep
	// that thread for the shim's whole life.
	runtime.LockOSThread()
	syscall.CloseOnExec(shimReportFD)
	report := os.NewFile(shimReportFD, "report")

	spec, err := readShimSpec(specPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shim: %v\n", err)
		sendReport(report, shimReport{Error: err.Error()})
		return 1
	}
	cmd, err := spec.command()
	if err != nil {
		fmt.Fprintf(os.Stderr, "shim %s: %v\n", spec.ContainerID, err)
		sendReport(report, shimReport{Error: err.Error()})
		return 1
	}
	// Catch these before the launcher learns the pid: an uncaught SIGUSR1 (a kill request)
	// would end the shim instead of the task. Caught signals revert to their defaults in
	// the task on exec, ignored ones would not.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, unix.SIGUSR1, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	err = cmd.Start()
	closeFiles(cmd.Stdout, cmd.Stderr)
	if err != nil {
		err = fmt.Errorf("start task: %w", err)
		fmt.Fprintf(os.Stderr, "shim %s: %v\n", spec.ContainerID, err)
		sendReport(report, shimReport{Error: err.Error()})
		return 1
	}
	pid := cmd.Process.Pid
	sendReport(report, shimReport{PID: pid})

	supervise(spec, pid, signals)
	// The task's pid is not reaped yet, so its process group cannot have been reused:
	// sweep up whatever the task left running, then reap it.
	if err := signalGroup(pid, unix.SIGKILL); err != nil {
		fmt.Fprintf(os.Stderr, "shim %s: kill leftover processes: %v\n", spec.ContainerID, err)
	}
	_ = cmd.Wait() // the exit status is read from ProcessState; a non-zero exit is not a shim error
	status := exitStatusOf(cmd.ProcessState.Sys().(syscall.WaitStatus))
	if err := writeStatus(spec.StatusFile, status); err != nil {
		fmt.Fprintf(os.Stderr, "shim %s: record exit status: %v\n", spec.ContainerID, err)
		return 1
	}
	return 0
}

// supervise returns once the task's main process pid has exited, without reaping it. In the
// meantime it forwards SIGTERM, SIGINT and SIGHUP sent to the shim to the task's process
// group and carries out kill requests (SIGUSR1): SIGTERM while the deadline is ahead, then
// SIGKILL at the earliest deadline asked for.
func supervise(spec shimSpec, pid int, signals <-chan os.Signal) {
	exited := make(chan error, 1)
	go func() { exited <- waitExited(pid) }()
	var (
		deadline time.Time
		escalate <-chan time.Time
		timer    *time.Timer
		termSent bool
	)
	for {
		select {
		case err := <-exited:
			if err != nil {
				fmt.Fprintf(os.Stderr, "shim %s: wait for task: %v\n", spec.ContainerID, err)
			}
			return
		case sig := <-signals:
			if sig != unix.SIGUSR1 {
				if err := signalGroup(pid, sig.(syscall.Signal)); err != nil {
					fmt.Fprintf(os.Stderr, "shim %s: forward %v: %v\n", spec.ContainerID, sig, err)
				}
				continue
			}
			requested, err := readKillRequest(spec.KillFile)
			if err != nil {
				fmt.Fprintf(os.Stderr, "shim %s: kill request unreadable, killing at once: %v\n", spec.ContainerID, err)
				requested = time.Now()
			}
			if !termSent && time.Now().Before(requested) {
				termSent = true
				if err := signalGroup(pid, unix.SIGTERM); err != nil {
					fmt.Fprintf(os.Stderr, "shim %s: SIGTERM: %v\n", spec.ContainerID, err)
				}
			}
			if deadline.IsZero() || requested.Before(deadline) {
				deadline = requested
				if timer != nil {
					timer.Stop()
				}
				timer = time.NewTimer(time.Until(deadline))
				escalate = timer.C
			}
		case <-escalate:
			escalate = nil
			if err := signalGroup(pid, unix.SIGKILL); err != nil {
				fmt.Fprintf(os.Stderr, "shim %s: SIGKILL: %v\n", spec.ContainerID, err)
			}
		}
	}
}

// waitExited blocks until child pid has exited, leaving it unreaped (a zombie) so that its
// pid, which is also its process group id, stays reserved.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// signalGroup sends sig to the process group led by pid, and to pid itself when it has left
// that group. SIGKILL goes to both, so that a task that moved to a group of its own dies too.
func signalGroup(pid int, sig syscall.Signal) error {
	groupErr := unix.Kill(-pid, sig)
	if groupErr == nil && sig != unix.SIGKILL {
		return nil
	}
	err := unix.Kill(pid, sig)
	if errors.Is(err, unix.ESRCH) {
		err = nil
	}
	if groupErr != nil && !errors.Is(groupErr, unix.ESRCH) {
		return errors.Join(groupErr, err)
	}
	return err
}

// readShimSpec loads the shim's spec.
func readShimSpec(path string) (shimSpec, error) {
	var spec shimSpec
	data, err := os.ReadFile(path)
	if err != nil {
		return spec, fmt.Errorf("read spec: %w", err)
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		return spec, fmt.Errorf("decode spec %s: %w", path, err)
	}
	if len(spec.Args) == 0 {
		return spec, fmt.Errorf("spec %s: no argv", path)
	}
	return spec, nil
}

// command builds the task's process: its own process group, so that it and its children
// can be signalled together, killed when the shim dies, stdout and stderr appended to the
// sandbox's files.
func (s shimSpec) command() (*exec.Cmd, error) {
	path, err := lookPath(s.Path, s.Dir, s.Env)
	if err != nil {
		return nil, err
	}
	stdout, err := os.OpenFile(s.Stdout, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open stdout: %w", err)
	}
	stderr, err := os.OpenFile(s.Stderr, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("open stderr: %w", err)
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	if c := s.Credential; c != nil {
		attr.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups}
	}
	return &exec.Cmd{
		Path:        path,
		Args:        s.Args,
		Env:         s.Env,
		Dir:         s.Dir,
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: attr,
	}, nil
}

// lookPath finds an executable the way execvp(3) does, but in the task's PATH rather than
// the shim's; relative PATH entries are relative to the sandbox dir.
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

// envValue returns the value of the last "name=value" entry for name in env.
func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if value, ok := strings.CutPrefix(env[i], name+"="); ok {
			return value
		}
	}
	return ""
}

// sendReport writes the shim's message to the launcher and closes the pipe. A launcher that
// has gone away is no reason to stop: the task runs on and its exit is still recorded.
func sendReport(w io.WriteCloser, r shimReport) {
	data, err := json.Marshal(r)
	if err == nil {
		_, err = w.Write(data)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "shim: report to launcher: %v\n", err)
	}
	w.Close()
}

// closeFiles closes the shim's copies of the task's output files.
func closeFiles(files ...io.Writer) {
	for _, f := range files {
		if c, ok := f.(io.Closer); ok {
			c.Close()
		}
	}
}
