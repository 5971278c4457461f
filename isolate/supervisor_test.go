package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The supervisor and its tasks outlive the agent process that started them, even when a
// Ctrl-C on the agent's terminal interrupts its whole process group; the next agent
// process recovers the task.
func TestSupervisorOutlivesAgent(t *testing.T) {
	stateDir := t.TempDir()
	sandbox := t.TempDir()
	agent, st := startTestAgent(t, ProcessKind, stateDir, sandbox, "")
	after := newTestProcess(t, stateDir)
	stopOnCleanup(t, after, st.ContainerID)

	if err := syscall.Kill(-agent.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(); err == nil || err.Error() != "signal: interrupt" {
		t.Fatalf("agent ended with %v, want signal: interrupt", err)
	}
	waitForOutput(t, filepath.Join(sandbox, "stdout"), "ready\n")
	if !running(st.ShimPID) || !running(st.PID) {
		t.Fatalf("supervisor %d running %v, task %d running %v, want both running", st.ShimPID, running(st.ShimPID), st.PID, running(st.PID))
	}

	if err := after.Recover(context.Background(), []State{st}); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if err := after.Kill(context.Background(), st.ContainerID, testTimeout); err != nil {
		t.Fatal(err)
	}
	if got, want := waitExit(t, after, st.ContainerID), (ExitStatus{Code: -1, Signal: 15, Message: "killed by SIGTERM"}); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
}

// Agents on the same state dir share one supervisor, however many start at once.
func TestSupervisorShared(t *testing.T) {
	stateDir := t.TempDir()
	const agents = 4
	states := make([]State, agents)
	errs := make([]error, agents)
	procs := make([]*Process, agents)
	for i := range procs {
		procs[i] = newTestProcess(t, stateDir)
	}
	var wg sync.WaitGroup
	for i, p := range procs {
		spec := shellSpec(t, "exec sleep 100")
		// Registered after every Process's, so this cleanup runs before any stops the
		// supervisor.
		stopOnCleanup(t, p, spec.ContainerID)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			states[i], errs[i] = p.Launch(ctx, spec)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, st := range states[1:] {
		if st.ShimPID != states[0].ShimPID {
			t.Errorf("supervisors %d and %d for one state dir", states[0].ShimPID, st.ShimPID)
		}
	}
	if pids := supervisorPIDs(t, stateDir); len(pids) != 1 || pids[0] != states[0].ShimPID {
		t.Errorf("supervisors running = %v, want [%d]", pids, states[0].ShimPID)
	}
}

func TestStopSupervisor(t *testing.T) {
	stateDir := t.TempDir()
	ctx := context.Background()
	idle := newTestProcess(t, stateDir)
	if err := idle.StopSupervisor(ctx); err != nil {
		t.Errorf("StopSupervisor with none running = %v, want nil", err)
	}
	if pids := supervisorPIDs(t, stateDir); len(pids) != 0 {
		t.Errorf("StopSupervisor with none running started %v", pids)
	}

	p := newTestProcess(t, stateDir)
	spec := shellSpec(t, "exec sleep 100")
	st := launch(t, p, spec)
	other := newTestProcess(t, stateDir)
	err := other.StopSupervisor(ctx)
	if want := fmt.Sprintf("stop supervisor %d: 1 containers still running", st.ShimPID); err == nil || err.Error() != want {
		t.Errorf("StopSupervisor with a container running = %v, want %q", err, want)
	}
	if !running(st.ShimPID) || !running(st.PID) {
		t.Fatal("a refused StopSupervisor stopped the supervisor or its task")
	}

	if err := p.Kill(ctx, spec.ContainerID, 0); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p, spec.ContainerID)
	if err := p.StopSupervisor(ctx); err != nil {
		t.Fatalf("StopSupervisor: %v", err)
	}
	if running(st.ShimPID) {
		t.Errorf("supervisor %d still running after StopSupervisor", st.ShimPID)
	}
	for _, name := range []string{supervisorSocket, supervisorPIDFile} {
		if _, err := os.Stat(filepath.Join(stateDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after StopSupervisor: stat = %v, want not exist", name, err)
		}
	}
	// Stopped means closed, but what is known of ended containers stays.
	if _, err := p.Launch(ctx, shellSpec(t, "true")); !errors.Is(err, ErrClosed) {
		t.Errorf("Launch after StopSupervisor = %v, want ErrClosed", err)
	}
	if got, want := waitExit(t, p, spec.ContainerID), (ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}); got != want {
		t.Errorf("Wait after StopSupervisor = %+v, want %+v", got, want)
	}
}

// Close leaves the tasks running, for the next agent process to recover.
func TestClose(t *testing.T) {
	stateDir := t.TempDir()
	ctx := context.Background()
	p := newTestProcess(t, stateDir)
	sleeper := shellSpec(t, "exec sleep 100")
	st := launch(t, p, sleeper)
	exiter := shellSpec(t, "exit 4")
	launch(t, p, exiter)
	exited := waitExit(t, p, exiter.ContainerID)
	for range 2 {
		if err := p.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	tests := []struct {
		name string
		err  error
	}{
		{"Wait on a running container", func() error { _, err := p.Wait(ctx, sleeper.ContainerID); return err }()},
		{"Kill", p.Kill(ctx, sleeper.ContainerID, 0)},
		{"Launch", func() error { _, err := p.Launch(ctx, shellSpec(t, "true")); return err }()},
		{"Recover", p.Recover(ctx, []State{{ContainerID: "other", Kind: ProcessKind, PID: 1}})},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", tc.name, tc.err)
		}
	}
	if got, err := p.Wait(ctx, exiter.ContainerID); err != nil || got != exited {
		t.Errorf("Wait on an exited container after Close = %+v, %v, want %+v", got, err, exited)
	}
	if !running(st.PID) || !running(st.ShimPID) {
		t.Fatal("Close stopped the task or the supervisor")
	}

	after := newTestProcess(t, stateDir)
	stopOnCleanup(t, after, st.ContainerID)
	if err := after.Recover(ctx, []State{st}); err != nil {
		t.Fatal(err)
	}
	if err := after.Kill(ctx, st.ContainerID, 0); err != nil {
		t.Fatal(err)
	}
	if got, want := waitExit(t, after, st.ContainerID), (ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
}

// An idle supervisor, with no container and no agent, exits by itself.
func TestSupervisorIdleExit(t *testing.T) {
	stateDir := t.TempDir()
	const idle = 100 * time.Millisecond
	p := newTestProcess(t, stateDir, func(c *ProcessConfig) { c.SupervisorIdleTimeout = idle })
	spec := shellSpec(t, "exit 0")
	st := launch(t, p, spec)
	waitExit(t, p, spec.ContainerID)
	// An agent is connected: however long it has nothing to run, it stays.
	time.Sleep(5 * idle)
	if !running(st.ShimPID) {
		t.Fatal("supervisor exited while an agent was connected")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st.ShimPID)
	if _, err := os.Stat(filepath.Join(stateDir, supervisorSocket)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after idle exit: stat = %v, want not exist", err)
	}
}

// A supervisor whose state dir is removed kills its tasks and exits: no one could learn
// how they end.
func TestSupervisorStateDirRemoved(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "s")
	p := newTestProcess(t, stateDir)
	spec := shellSpec(t, "exec sleep 100")
	st := launch(t, p, spec)
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	waitGone(t, st.ShimPID, st.PID)
	want := ExitStatus{Code: -1, Message: "the task's supervisor died (connection lost) without recording the task's exit"}
	if got := waitExit(t, p, spec.ContainerID); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
}

// waitBlockedOnFIFO waits until a thread of process pid blocks opening a FIFO that has no
// reader.
func waitBlockedOnFIFO(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		threads, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
		for _, wchan := range threads {
			if data, _ := os.ReadFile(wchan); string(data) == "wait_for_partner" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d is not opening a FIFO", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fifoSpec is a launch whose stdout is a FIFO: the supervisor blocks opening it until
// the FIFO is opened for reading.
func fifoSpec(t testing.TB, script string) (LaunchSpec, string) {
	t.Helper()
	spec := shellSpec(t, script)
	fifo := filepath.Join(spec.Sandbox, "stdout")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	return spec, fifo
}

// One slow request does not hold up the others.
func TestSupervisorServesConcurrently(t *testing.T) {
	p := newTestProcess(t, t.TempDir())
	ctx := context.Background()
	first := launch(t, p, shellSpec(t, "exit 0"))
	blocked, fifo := fifoSpec(t, "echo hello")
	stopOnCleanup(t, p, blocked.ContainerID)
	done := make(chan error, 1)
	go func() { _, err := p.Launch(ctx, blocked); done <- err }()
	waitBlockedOnFIFO(t, first.ShimPID)

	spec := shellSpec(t, "exit 3")
	launch(t, p, spec)
	if got, want := waitExit(t, p, spec.ContainerID), (ExitStatus{Code: 3, Message: "exited with status 3"}); got != want {
		t.Errorf("status of the launch served meanwhile = %+v, want %+v", got, want)
	}
	select {
	case err := <-done:
		t.Fatalf("the blocked launch returned before its output was opened: %v", err)
	default:
	}

	out, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := <-done; err != nil {
		t.Fatalf("blocked launch: %v", err)
	}
	if got, err := io.ReadAll(out); err != nil || string(got) != "hello\n" {
		t.Errorf("output = %q, %v, want %q", got, err, "hello\n")
	}
	if got, want := waitExit(t, p, blocked.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
		t.Errorf("status of the blocked launch = %+v, want %+v", got, want)
	}
}

// A launch whose context ends while the supervisor is starting the task returns the
// context's error; the task, started regardless, is killed and forgotten.
func TestLaunchAbandoned(t *testing.T) {
	stateDir := t.TempDir()
	p := newTestProcess(t, stateDir)
	first := launch(t, p, shellSpec(t, "exit 0"))
	spec, fifo := fifoSpec(t, "exec sleep 100")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := p.Launch(ctx, spec); done <- err }()
	waitBlockedOnFIFO(t, first.ShimPID)
	cancel()
	err := <-done
	if want := "launch " + spec.ContainerID + ": context canceled"; !errors.Is(err, context.Canceled) || err.Error() != want {
		t.Fatalf("Launch = %v, want %q", err, want)
	}

	out, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// Destroyed, it is forgotten in the journal, which is only after it was reaped, and
	// then in the table (Destroy drops it once the supervisor's answer is in).
	forgotten := fmt.Sprintf("{%q:%q}\n", "container_id", spec.ContainerID)
	deadline := time.Now().Add(testTimeout)
	for {
		data, _ := os.ReadFile(filepath.Join(stateDir, journalFile))
		var waitErr error
		if strings.Contains(string(data), forgotten) {
			// Reaped by now: Wait does not block.
			if _, waitErr = p.Wait(context.Background(), spec.ContainerID); errors.Is(waitErr, ErrUnknownContainer) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned container was not destroyed: forgotten in the journal %t, Wait = %v, want ErrUnknownContainer", strings.Contains(string(data), forgotten), waitErr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pids := processesIn(t, spec.Sandbox); len(pids) != 0 {
		t.Errorf("processes %v still run in the abandoned container's sandbox", pids)
	}
}

// processesIn lists the running processes whose working directory is dir.
func processesIn(t testing.TB, dir string) []int {
	t.Helper()
	cwds, err := filepath.Glob("/proc/[0-9]*/cwd")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, cwd := range cwds {
		if target, err := os.Readlink(cwd); err == nil && target == dir {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(cwd)))
			if running(pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// A start that fails is worded as os/exec words it: by the sandbox when that has gone,
// else by the executable.
func TestForkExecError(t *testing.T) {
	sandbox := t.TempDir()
	gone := filepath.Join(sandbox, "gone")
	tests := []struct {
		name string
		dir  string
		err  error
		want string
	}{
		{name: "executable missing", dir: sandbox, err: syscall.ENOENT, want: "fork/exec /no/such/prog: no such file or directory"},
		{name: "not executable", dir: sandbox, err: syscall.EACCES, want: "fork/exec /no/such/prog: permission denied"},
		{name: "sandbox gone", dir: gone, err: syscall.ENOENT, want: "chdir " + gone + ": no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := forkExecError(&taskSpec{Path: "/no/such/prog", Dir: tc.dir}, tc.err)
			if got.Error() != tc.want {
				t.Errorf("forkExecError = %q, want %q", got, tc.want)
			}
		})
	}
}
