package isolate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// newTestProcess returns a containerizer keeping its records in stateDir. When the test
// ends, after its containers are stopped, it stops the supervisor and checks that none
// is left running for stateDir.
func newTestProcess(t testing.TB, stateDir string, opts ...func(*ProcessConfig)) *Process {
	t.Helper()
	cfg := DefaultProcessConfig()
	cfg.Logger = testLogger(t)
	cfg.StateDir = stateDir
	for _, opt := range opts {
		opt(&cfg)
	}
	p, err := NewProcess(cfg)
	if err != nil {
		t.Fatalf("NewProcess: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := p.StopSupervisor(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if pids := supervisorPIDs(t, p.stateDir); len(pids) != 0 {
			t.Errorf("cleanup: supervisors %v of %s still running after StopSupervisor", pids, p.stateDir)
		}
	})
	return p
}

// supervisorPIDs returns the running supervisors of stateDir, found by their command
// lines as pgrep -f would. A zombie has no command line, so it is not counted.
func supervisorPIDs(t testing.TB, stateDir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := supervisorName + "\x00" + stateDir + "\x00"
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && string(cmdline) == want {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stateEntries lists what stateDir holds besides the supervisor's files and the journal,
// and what the journal records.
func stateEntries(t testing.TB, stateDir string) (others []string, records containerRecords) {
	t.Helper()
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch e.Name() {
		case supervisorSocket, supervisorLock, supervisorPIDFile, supervisorLog, journalFile:
		default:
			others = append(others, e.Name())
		}
	}
	records, err = readJournal(filepath.Join(stateDir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	return others, records
}

// recordsEqual compares journal records by value.
func recordsEqual(a, b containerRecords) bool {
	return maps.EqualFunc(a, b, func(x, y *statusRecord) bool {
		return x == y || x != nil && y != nil && *x == *y
	})
}

// formatRecords shows journal records by value.
func formatRecords(records containerRecords) string {
	parts := make([]string, 0, len(records))
	for id, status := range records {
		if status == nil {
			parts = append(parts, id+": launched")
		} else {
			parts = append(parts, fmt.Sprintf("%s: %+v", id, *status))
		}
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

// launch starts spec and makes sure the container is gone when the test ends.
func launch(t testing.TB, p *Process, spec LaunchSpec) State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	st, err := p.Launch(ctx, spec)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	stopOnCleanup(t, p, spec.ContainerID)
	return st
}

// stopOnCleanup kills the container through p when the test ends and waits for it.
func stopOnCleanup(t testing.TB, p *Process, containerID string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := p.Kill(ctx, containerID, 0); err != nil && !errors.Is(err, ErrUnknownContainer) && !errors.Is(err, ErrClosed) {
			t.Errorf("cleanup: kill %s: %v", containerID, err)
		}
		if _, err := p.Wait(ctx, containerID); err != nil && !errors.Is(err, ErrUnknownContainer) && !errors.Is(err, ErrClosed) {
			t.Errorf("cleanup: wait %s: %v", containerID, err)
		}
	})
}

// waitForExitRecord polls the journal until it holds containerID's exit.
func waitForExitRecord(t testing.TB, stateDir, containerID string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		if _, records := stateEntries(t, stateDir); records[containerID] != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exit of %s recorded", containerID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readPids reads one pid a line.
func readPids(t testing.TB, path string) []int {
	t.Helper()
	var pids []int
	for _, line := range strings.Fields(readFile(t, path)) {
		pid, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func TestLaunchWait(t *testing.T) {
	tests := []struct {
		name           string
		command        api.CommandInfo
		env            []string
		existingStdout string
		want           ExitStatus
		// $SANDBOX in wantStdout stands for the sandbox path.
		wantStdout string
		wantStderr string
	}{
		{
			name:       "shell",
			command:    api.CommandInfo{Value: ptr("echo hello")},
			want:       ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStdout: "hello\n",
		},
		{
			name:       "plain command found in PATH",
			command:    api.CommandInfo{Shell: ptr(false), Value: ptr("echo"), Arguments: []string{"echo", "a", "b c"}},
			want:       ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStdout: "a b c\n",
		},
		{
			name:       "arguments[0] is argv[0]",
			command:    api.CommandInfo{Shell: ptr(false), Value: ptr("/bin/sh"), Arguments: []string{"custom0", "-c", "echo $0"}},
			want:       ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStdout: "custom0\n",
		},
		{
			name:    "plain command without arguments",
			command: api.CommandInfo{Shell: ptr(false), Value: ptr("pwd")},
			want:    ExitStatus{Code: 0, Message: "exited with status 0"},
			// The working directory is the sandbox.
			wantStdout: "$SANDBOX\n",
		},
		{
			name:    "exit code",
			command: api.CommandInfo{Value: ptr("exit 3")},
			want:    ExitStatus{Code: 3, Message: "exited with status 3"},
		},
		{
			name:       "stderr",
			command:    api.CommandInfo{Value: ptr("echo oops >&2")},
			want:       ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStderr: "oops\n",
		},
		{
			name: "environment, agent's entries win",
			command: api.CommandInfo{
				Value: ptr(`echo "$A $B $C"`),
				Environment: &api.Environment{Variables: []api.EnvironmentVariable{
					{Name: "A", Value: "cmd"}, {Name: "B", Value: "cmd"},
				}},
			},
			env:        []string{"B=spec", "C=spec"},
			want:       ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStdout: "cmd spec spec\n",
		},
		{
			name:       "supervisor's variables stay out of the task",
			command:    api.CommandInfo{Value: ptr(`echo "${ATOLL_ISOLATE_SUPERVISOR-unset} ${ATOLL_ISOLATE_SUPERVISOR_IDLE-unset} ${PATH:+has-path}"`)},
			want:       ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStdout: "unset unset has-path\n",
		},
		{
			name:       "shell command not found exits 127",
			command:    api.CommandInfo{Value: ptr("nosuchcommand-xyz")},
			want:       ExitStatus{Code: 127, Message: "exited with status 127"},
			wantStderr: "sh: 1: nosuchcommand-xyz: not found\n",
		},
		{
			name:    "killed by a signal",
			command: api.CommandInfo{Value: ptr("kill -9 $$")},
			want:    ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"},
		},
		{
			name:           "output is appended",
			command:        api.CommandInfo{Value: ptr("echo after")},
			existingStdout: "before\n",
			want:           ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStdout:     "before\nafter\n",
		},
		{
			name:       "stdin is empty",
			command:    api.CommandInfo{Value: ptr("cat; echo done")},
			want:       ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStdout: "done\n",
		},
	}
	p := newTestProcess(t, t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := shellSpec(t, "")
			spec.Command = tc.command
			spec.Env = tc.env
			if tc.existingStdout != "" {
				if err := os.WriteFile(filepath.Join(spec.Sandbox, "stdout"), []byte(tc.existingStdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			launch(t, p, spec)
			got := waitExit(t, p, spec.ContainerID)
			if got != tc.want {
				t.Errorf("status = %+v, want %+v", got, tc.want)
			}
			// A stream without output has no file: the task runs as the agent's user.
			want := map[string]string{}
			if tc.wantStdout != "" {
				want["stdout"] = strings.ReplaceAll(tc.wantStdout, "$SANDBOX", spec.Sandbox)
			}
			if tc.wantStderr != "" {
				want["stderr"] = tc.wantStderr
			}
			if got := dirFiles(t, spec.Sandbox); !reflect.DeepEqual(got, want) {
				t.Errorf("sandbox files = %q, want %q", got, want)
			}
		})
	}
}

func TestLaunchState(t *testing.T) {
	stateDir := t.TempDir()
	p := newTestProcess(t, stateDir)
	spec := shellSpec(t, "exec sleep 100")
	st := launch(t, p, spec)

	if st.ContainerID != spec.ContainerID || st.Kind != "process" || st.Sandbox != spec.Sandbox {
		t.Errorf("state = %+v, want container %s, kind process, sandbox %s", st, spec.ContainerID, spec.Sandbox)
	}
	startTime, err := readStartTime(st.PID)
	if err != nil {
		t.Fatal(err)
	}
	if st.StartTime != startTime {
		t.Errorf("StartTime = %d, want the task's %d", st.StartTime, startTime)
	}
	// Fields from 3: state, ppid, pgrp, session.
	task := procStat(st.PID)
	if task == nil {
		t.Fatalf("task %d is not running after Launch", st.PID)
	}
	want := []string{strconv.Itoa(st.ShimPID), strconv.Itoa(st.PID), strconv.Itoa(st.ShimPID)}
	if got := task[1:4]; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("task ppid, pgrp, session = %v, want %v (child of the supervisor, own group, supervisor's session)", got, want)
	}
	if supervisor := procStat(st.ShimPID); supervisor[3] != strconv.Itoa(st.ShimPID) {
		t.Errorf("supervisor session = %s, want its own (%d)", supervisor[3], st.ShimPID)
	}
	if pids := supervisorPIDs(t, stateDir); len(pids) != 1 || pids[0] != st.ShimPID {
		t.Errorf("supervisors of the state dir = %v, want [%d]", pids, st.ShimPID)
	}

	supervisorStart, err := readStartTime(st.ShimPID)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := readPIDRecord(filepath.Join(stateDir, supervisorPIDFile))
	if want := (pidRecord{PID: st.ShimPID, StartTime: supervisorStart}); err != nil || rec != want {
		t.Errorf("pid file = %+v, %v, want %+v", rec, err, want)
	}
	fi, err := os.Stat(filepath.Join(stateDir, supervisorSocket))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != os.ModeSocket|0o600 {
		t.Errorf("socket mode = %v, want %v", fi.Mode(), os.ModeSocket|0o600)
	}
	if others, records := stateEntries(t, stateDir); len(others) != 0 || !recordsEqual(records, containerRecords{spec.ContainerID: nil}) {
		t.Errorf("state dir holds %v and records %s while the task runs, want records of its launch only", others, formatRecords(records))
	}
	if err := p.Kill(context.Background(), spec.ContainerID, 0); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p, spec.ContainerID)
	killed := statusRecord{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
	if others, records := stateEntries(t, stateDir); len(others) != 0 || !recordsEqual(records, containerRecords{spec.ContainerID: &killed}) {
		t.Errorf("state dir holds %v and records %s after the task ended, want its exit only", others, formatRecords(records))
	}
}

func TestLaunchErrors(t *testing.T) {
	tests := append(commonLaunchErrors(),
		launchErrorCase{
			name: "plain command not found",
			modify: func(s *LaunchSpec) {
				s.Command = api.CommandInfo{Shell: ptr(false), Value: ptr("no-such-program-xyz")}
			},
			wantErr: `launch $ID: "no-such-program-xyz": executable file not found in PATH`,
		},
		launchErrorCase{
			name: "plain command path does not exist",
			modify: func(s *LaunchSpec) {
				s.Command = api.CommandInfo{Shell: ptr(false), Value: ptr("/nonexistent/prog")}
			},
			wantErr: "launch $ID: start task: fork/exec /nonexistent/prog: no such file or directory",
		},
		launchErrorCase{
			name:    "container id is a path",
			modify:  func(s *LaunchSpec) { s.ContainerID = "../escape" },
			wantErr: `launch ../escape: container id "../escape" cannot name a file`,
		},
		launchErrorCase{
			name: "image",
			modify: func(s *LaunchSpec) {
				s.Container = &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{Type: "DOCKER"}}}
			},
			wantErr: "launch $ID: the process containerizer cannot run container images",
		},
	)
	stateDir := t.TempDir()
	testLaunchErrors(t, newTestProcess(t, stateDir), tests, func(t testing.TB) {
		t.Helper()
		if others, records := stateEntries(t, stateDir); len(others) != 0 || len(records) != 0 {
			t.Errorf("state dir holds %v and records %s after a failed launch, want nothing", others, formatRecords(records))
		}
	})
}

func TestLaunchDuplicate(t *testing.T) {
	p := newTestProcess(t, t.TempDir())
	spec := shellSpec(t, "exec sleep 100")
	launch(t, p, spec)
	checkLaunchDuplicate(t, p, spec)
}

func TestLaunchCancelled(t *testing.T) {
	stateDir := t.TempDir()
	p := newTestProcess(t, stateDir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	spec := shellSpec(t, "exec sleep 100")
	_, err := p.Launch(ctx, spec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Launch with a cancelled context = %v, want context.Canceled", err)
	}
	if others, records := stateEntries(t, stateDir); len(others) != 0 || len(records) != 0 {
		t.Errorf("state dir holds %v and records %s after a cancelled launch, want nothing", others, formatRecords(records))
	}
	if pids := supervisorPIDs(t, stateDir); len(pids) != 0 {
		t.Errorf("a cancelled launch started supervisors %v", pids)
	}
}

func TestKill(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		grace      time.Duration
		want       ExitStatus
		wantStdout string
	}{
		{
			name:       "SIGTERM trapped, exits within grace",
			script:     `trap 'echo term; exit 0' TERM; echo ready; while :; do sleep 0.1; done`,
			grace:      testTimeout,
			want:       ExitStatus{Code: 0, Message: "exited with status 0"},
			wantStdout: "ready\nterm\n",
		},
		{
			name:       "SIGTERM by default",
			script:     "echo ready; sleep 100",
			grace:      testTimeout,
			want:       ExitStatus{Code: -1, Signal: 15, Message: "killed by SIGTERM"},
			wantStdout: "ready\n",
		},
		{
			name:       "SIGTERM ignored, SIGKILL after grace",
			script:     `trap '' TERM; echo ready; while :; do sleep 0.1; done`,
			grace:      300 * time.Millisecond,
			want:       ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"},
			wantStdout: "ready\n",
		},
		{
			name:       "no grace",
			script:     `trap 'echo term; exit 0' TERM; echo ready; while :; do sleep 0.1; done`,
			grace:      0,
			want:       ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"},
			wantStdout: "ready\n",
		},
	}
	p := newTestProcess(t, t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := shellSpec(t, tc.script)
			launch(t, p, spec)
			stdout := filepath.Join(spec.Sandbox, "stdout")
			waitForOutput(t, stdout, "ready\n")
			if err := p.Kill(context.Background(), spec.ContainerID, tc.grace); err != nil {
				t.Fatalf("Kill: %v", err)
			}
			if got := waitExit(t, p, spec.ContainerID); got != tc.want {
				t.Errorf("status = %+v, want %+v", got, tc.want)
			}
			if got := readFile(t, stdout); got != tc.wantStdout {
				t.Errorf("stdout = %q, want %q", got, tc.wantStdout)
			}
			if err := p.Kill(context.Background(), spec.ContainerID, 0); err != nil {
				t.Errorf("Kill after exit = %v, want nil", err)
			}
		})
	}
}

// A second kill request with a shorter grace period brings the SIGKILL forward.
func TestKillShortensGrace(t *testing.T) {
	p := newTestProcess(t, t.TempDir())
	spec := shellSpec(t, `trap '' TERM; echo ready; while :; do sleep 0.1; done`)
	launch(t, p, spec)
	waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "ready\n")
	for _, grace := range []time.Duration{time.Hour, 0, time.Hour} {
		if err := p.Kill(context.Background(), spec.ContainerID, grace); err != nil {
			t.Fatalf("Kill(%v): %v", grace, err)
		}
	}
	want := ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
	if got := waitExit(t, p, spec.ContainerID); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
}

func TestKillReachesEveryProcess(t *testing.T) {
	tests := []struct {
		name   string
		script string
		kill   bool
		want   ExitStatus
	}{
		{
			name:   "children are killed with the task",
			script: `sleep 100 & echo $! >kids; sleep 100 & echo $! >>kids; echo ready; wait`,
			kill:   true,
			want:   ExitStatus{Code: -1, Signal: 15, Message: "killed by SIGTERM"},
		},
		{
			name:   "children ignoring SIGTERM are killed when the task exits",
			script: `sh -c 'trap "" TERM; exec sleep 100' & echo $! >kids; echo ready; wait`,
			kill:   true,
			want:   ExitStatus{Code: -1, Signal: 15, Message: "killed by SIGTERM"},
		},
		{
			name:   "children left behind by an exited task are killed",
			script: `sleep 100 & echo $! >kids; echo ready; exit 4`,
			want:   ExitStatus{Code: 4, Message: "exited with status 4"},
		},
	}
	p := newTestProcess(t, t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := shellSpec(t, tc.script)
			launch(t, p, spec)
			waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "ready\n")
			kids := readPids(t, filepath.Join(spec.Sandbox, "kids"))
			if tc.kill {
				if err := p.Kill(context.Background(), spec.ContainerID, testTimeout); err != nil {
					t.Fatalf("Kill: %v", err)
				}
			}
			if got := waitExit(t, p, spec.ContainerID); got != tc.want {
				t.Errorf("status = %+v, want %+v", got, tc.want)
			}
			waitGone(t, kids...)
		})
	}
}

// Signals sent to the supervisor itself reach the task, whose exit is still recorded; the
// supervisor carries on.
func TestSignalSupervisor(t *testing.T) {
	p := newTestProcess(t, t.TempDir())
	spec := shellSpec(t, `trap 'echo hup' HUP; echo ready; while :; do sleep 0.1; done`)
	st := launch(t, p, spec)
	stdout := filepath.Join(spec.Sandbox, "stdout")
	waitForOutput(t, stdout, "ready\n")
	if err := syscall.Kill(st.ShimPID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForOutput(t, stdout, "ready\nhup\n")
	if err := syscall.Kill(st.ShimPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	want := ExitStatus{Code: -1, Signal: 15, Message: "killed by SIGTERM"}
	if got := waitExit(t, p, spec.ContainerID); got != want {
		t.Errorf("status = %+v, want %+v", got, want)
	}
	if !running(st.ShimPID) {
		t.Errorf("supervisor %d exited on SIGTERM", st.ShimPID)
	}
}

// When the supervisor dies, the connected Process kills its orphaned tasks and reports
// them failed; the next launch starts a new supervisor.
func TestSupervisorDeath(t *testing.T) {
	stateDir := t.TempDir()
	p := newTestProcess(t, stateDir)
	first := launch(t, p, shellSpec(t, "exec sleep 100"))
	second := launch(t, p, shellSpec(t, "exec sleep 100"))
	if err := syscall.Kill(first.ShimPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	want := ExitStatus{Code: -1, Message: "the task's supervisor died (connection lost) without recording the task's exit"}
	for _, st := range []State{first, second} {
		if got := waitExit(t, p, st.ContainerID); got != want {
			t.Errorf("%s: status = %+v, want %+v", st.ContainerID, got, want)
		}
	}
	waitGone(t, first.PID, second.PID)

	spec := shellSpec(t, "exit 5")
	st := launch(t, p, spec)
	if st.ShimPID == first.ShimPID {
		t.Errorf("launched by the dead supervisor %d", st.ShimPID)
	}
	if got, want := waitExit(t, p, spec.ContainerID), (ExitStatus{Code: 5, Message: "exited with status 5"}); got != want {
		t.Errorf("status after a new supervisor started = %+v, want %+v", got, want)
	}
	if pids := supervisorPIDs(t, stateDir); len(pids) != 1 || pids[0] != st.ShimPID {
		t.Errorf("supervisors = %v, want [%d]", pids, st.ShimPID)
	}
}

func TestWaitContext(t *testing.T) {
	p := newTestProcess(t, t.TempDir())
	spec := shellSpec(t, "exec sleep 100")
	launch(t, p, spec)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Wait(cancelled, spec.ContainerID)
	if want := "wait for " + spec.ContainerID + ": context canceled"; !errors.Is(err, context.Canceled) || err.Error() != want {
		t.Errorf("Wait(cancelled) = %v, want %q", err, want)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Wait(short, spec.ContainerID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait(timeout) = %v, want context.DeadlineExceeded", err)
	}
}

func TestConcurrentWaiters(t *testing.T) {
	p := newTestProcess(t, t.TempDir())
	spec := shellSpec(t, "exec sleep 100")
	launch(t, p, spec)
	const waiters = 8
	results := make(chan ExitStatus, waiters)
	errs := make(chan error, waiters)
	for range waiters {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			status, err := p.Wait(ctx, spec.ContainerID)
			results <- status
			errs <- err
		}()
	}
	if err := p.Kill(context.Background(), spec.ContainerID, 0); err != nil {
		t.Fatal(err)
	}
	want := ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
	for range waiters {
		if err := <-errs; err != nil {
			t.Errorf("Wait: %v", err)
		}
		if got := <-results; got != want {
			t.Errorf("status = %+v, want %+v", got, want)
		}
	}
}

func TestUnknownContainer(t *testing.T) {
	checkUnknown(t, newTestProcess(t, t.TempDir()), "nope")
}

func TestDestroy(t *testing.T) {
	stateDir := t.TempDir()
	p := newTestProcess(t, stateDir)
	spec := shellSpec(t, "echo kept; exec sleep 100")
	launch(t, p, spec)
	waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "kept\n")
	ctx := context.Background()

	checkDestroyRunning(t, p, spec.ContainerID)
	if err := p.Kill(ctx, spec.ContainerID, 0); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p, spec.ContainerID)
	// Until it is destroyed, the id stays taken, for every Process on the state dir.
	other := newTestProcess(t, stateDir)
	relaunch := shellSpec(t, "exit 0")
	relaunch.ContainerID = spec.ContainerID
	if _, err := other.Launch(ctx, relaunch); err == nil || err.Error() != "launch "+spec.ContainerID+": container already exists" {
		t.Errorf("Launch of an exited, undestroyed id = %v, want container already exists", err)
	}

	if err := p.Destroy(ctx, spec.ContainerID); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if others, records := stateEntries(t, stateDir); len(others) != 0 || len(records) != 0 {
		t.Errorf("after Destroy: state dir holds %v and records %s, want nothing", others, formatRecords(records))
	}
	if got := readFile(t, filepath.Join(spec.Sandbox, "stdout")); got != "kept\n" {
		t.Errorf("sandbox stdout after Destroy = %q, want %q", got, "kept\n")
	}
	checkUnknown(t, p, spec.ContainerID)
	launch(t, other, relaunch)
	if got, want := waitExit(t, other, relaunch.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
		t.Errorf("relaunched after Destroy: status = %+v, want %+v", got, want)
	}
}

// TestRecover simulates an agent restart: a second Process on the same StateDir, the
// first one closed, takes over containers the first one launched.
func TestRecover(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	supervisorGone := ExitStatus{Code: -1,
		Message: "the task's supervisor died (gone when the agent recovered) without recording the task's exit"}

	t.Run("running task is killed and waited for", func(t *testing.T) {
		stateDir := t.TempDir()
		before := newTestProcess(t, stateDir)
		spec := shellSpec(t, "echo ready; exec sleep 100")
		st := launch(t, before, spec)
		waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "ready\n")
		if err := before.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := before.Wait(context.Background(), st.ContainerID); !errors.Is(err, ErrClosed) {
			t.Errorf("Wait after Close = %v, want ErrClosed", err)
		}

		after := newTestProcess(t, stateDir)
		stopOnCleanup(t, after, st.ContainerID)
		if err := after.Recover(context.Background(), []State{st}); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		if err := after.Recover(context.Background(), []State{st}); err != nil {
			t.Fatalf("second Recover: %v", err)
		}
		if _, err := after.Wait(cancelled, st.ContainerID); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait on the running recovered task = %v, want context.Canceled", err)
		}
		if err := after.Kill(context.Background(), st.ContainerID, testTimeout); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		want := ExitStatus{Code: -1, Signal: 15, Message: "killed by SIGTERM"}
		if got := waitExit(t, after, st.ContainerID); got != want {
			t.Errorf("status = %+v, want %+v", got, want)
		}
		waitGone(t, st.PID)
	})

	t.Run("kill escalates while the agent is down", func(t *testing.T) {
		stateDir := t.TempDir()
		before := newTestProcess(t, stateDir)
		spec := shellSpec(t, `trap '' TERM; echo ready; while :; do sleep 0.1; done`)
		st := launch(t, before, spec)
		waitForOutput(t, filepath.Join(spec.Sandbox, "stdout"), "ready\n")
		if err := before.Kill(context.Background(), st.ContainerID, 200*time.Millisecond); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		if err := before.Close(); err != nil {
			t.Fatal(err)
		}
		waitGone(t, st.PID)

		after := newTestProcess(t, stateDir)
		if err := after.Recover(context.Background(), []State{st}); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		want := ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
		if got := waitExit(t, after, st.ContainerID); got != want {
			t.Errorf("status = %+v, want %+v", got, want)
		}
	})

	t.Run("task exited while the agent was down", func(t *testing.T) {
		stateDir := t.TempDir()
		before := newTestProcess(t, stateDir)
		spec := shellSpec(t, "read line <fifo; exit 7")
		fifo := filepath.Join(spec.Sandbox, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		st := launch(t, before, spec)
		if err := before.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Exited is not enough: the supervisor must have reaped it and recorded its exit.
		waitForExitRecord(t, stateDir, st.ContainerID)

		after := newTestProcess(t, stateDir)
		if err := after.Recover(context.Background(), []State{st}); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		// Already known to have ended, so even a done context gets the status.
		status, err := after.Wait(cancelled, st.ContainerID)
		if want := (ExitStatus{Code: 7, Message: "exited with status 7"}); err != nil || status != want {
			t.Errorf("Wait = %+v, %v, want %+v", status, err, want)
		}
		if err := after.Kill(context.Background(), st.ContainerID, 0); err != nil {
			t.Errorf("Kill after exit = %v, want nil", err)
		}
		if err := after.Destroy(context.Background(), st.ContainerID); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})

	t.Run("orphaned task of a dead supervisor is killed", func(t *testing.T) {
		stateDir := t.TempDir()
		before := newTestProcess(t, stateDir)
		spec := shellSpec(t, "exec sleep 100")
		st := launch(t, before, spec)
		if err := before.Close(); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(st.ShimPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, st.ShimPID)
		if !running(st.PID) {
			t.Fatalf("task %d died with its supervisor, want it orphaned", st.PID)
		}

		after := newTestProcess(t, stateDir)
		if err := after.Recover(context.Background(), []State{st}); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		if status, err := after.Wait(cancelled, st.ContainerID); err != nil || status != supervisorGone {
			t.Errorf("Wait = %+v, %v, want %+v", status, err, supervisorGone)
		}
		waitGone(t, st.PID)
		if pids := supervisorPIDs(t, stateDir); len(pids) != 0 {
			t.Errorf("Recover started supervisors %v, want none (nothing to adopt)", pids)
		}
	})

	t.Run("orphaned task is found out through a new supervisor", func(t *testing.T) {
		stateDir := t.TempDir()
		before := newTestProcess(t, stateDir)
		st := launch(t, before, shellSpec(t, "exec sleep 100"))
		if err := before.Close(); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(st.ShimPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, st.ShimPID)

		// The new agent launches before it recovers; the new supervisor knows the orphan
		// only from the journal, and does not adopt it.
		after := newTestProcess(t, stateDir)
		other := launch(t, after, shellSpec(t, "exec sleep 100"))
		if other.ShimPID == st.ShimPID {
			t.Fatalf("launched by the dead supervisor %d", st.ShimPID)
		}
		if err := after.Recover(context.Background(), []State{st}); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		if status, err := after.Wait(cancelled, st.ContainerID); err != nil || status != supervisorGone {
			t.Errorf("Wait = %+v, %v, want %+v", status, err, supervisorGone)
		}
		waitGone(t, st.PID)
		if !running(other.PID) {
			t.Errorf("the new supervisor's task %d was disturbed", other.PID)
		}
		if err := after.Destroy(context.Background(), st.ContainerID); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		if _, records := stateEntries(t, stateDir); !recordsEqual(records, containerRecords{other.ContainerID: nil}) {
			t.Errorf("records after destroying the orphan = %s, want only %s's launch", formatRecords(records), other.ContainerID)
		}
	})

	t.Run("reused task pid is not mistaken for the task", func(t *testing.T) {
		stateDir := t.TempDir()
		before := newTestProcess(t, stateDir)
		st := launch(t, before, shellSpec(t, "exec sleep 100"))
		if err := before.Close(); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(st.ShimPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, st.ShimPID)
		t.Cleanup(func() { syscall.Kill(st.PID, syscall.SIGKILL) })

		// The same pid with another start time is another process.
		reused := st
		reused.StartTime++
		after := newTestProcess(t, stateDir)
		if err := after.Recover(context.Background(), []State{reused}); err != nil {
			t.Fatalf("Recover: %v", err)
		}
		if status, err := after.Wait(cancelled, st.ContainerID); err != nil || status != supervisorGone {
			t.Errorf("Wait = %+v, %v, want %+v", status, err, supervisorGone)
		}
		if !running(st.PID) {
			t.Errorf("task %d was disturbed by recovering a stale state", st.PID)
		}
	})

	t.Run("bad states", func(t *testing.T) {
		stateDir := t.TempDir()
		p := newTestProcess(t, stateDir)
		err := p.Recover(context.Background(), []State{
			{ContainerID: "a", Kind: "runc", PID: 1},
			{ContainerID: "b", Kind: "process"},
			{ContainerID: "../c", Kind: "process", PID: 1},
			{ContainerID: "d", Kind: "process", PID: 1, StartTime: 1},
		})
		want := `recover a: kind "runc" is not "process"` + "\n" +
			"recover b: task pid 0\n" +
			`recover ../c: container id "../c" cannot name a file` + "\n" +
			"recover d: no record of the container in " + stateDir
		if err == nil || err.Error() != want {
			t.Errorf("Recover error = %v, want %q", err, want)
		}
		for _, id := range []string{"a", "b", "../c", "d"} {
			if _, err := p.Wait(context.Background(), id); !errors.Is(err, ErrUnknownContainer) {
				t.Errorf("Wait(%s) after a failed recovery = %v, want ErrUnknownContainer", id, err)
			}
		}
	})
}

func TestUser(t *testing.T) {
	requireRoot(t, "to run tasks as another user")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	self, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		user string
		// framework names the user as the framework's rather than the command's.
		framework  bool
		wantStdout string
		wantOwner  string
	}{
		{
			name:       "other user",
			user:       "nobody",
			wantStdout: fmt.Sprintf("%s %s %s nobody\n", nobody.Uid, nobody.Gid, nobody.HomeDir),
			wantOwner:  nobody.Uid,
		},
		{
			name:       "framework's user",
			user:       "nobody",
			framework:  true,
			wantStdout: fmt.Sprintf("%s %s %s nobody\n", nobody.Uid, nobody.Gid, nobody.HomeDir),
			wantOwner:  nobody.Uid,
		},
		{
			name:       "own user",
			user:       self.Username,
			wantStdout: fmt.Sprintf("%s %s %s %s\n", self.Uid, self.Gid, os.Getenv("HOME"), os.Getenv("USER")),
			wantOwner:  self.Uid,
		},
	}
	p := newTestProcess(t, t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := shellSpec(t, `echo "$(id -u) $(id -g) $HOME $USER"`)
			if tc.framework {
				spec.FrameworkUser = tc.user
			} else {
				spec.Command.User = &tc.user
			}
			// t.TempDir's parent is private to root; the task's user must reach the sandbox.
			if err := os.Chmod(filepath.Dir(spec.Sandbox), 0o755); err != nil {
				t.Fatal(err)
			}
			launch(t, p, spec)
			if got, want := waitExit(t, p, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
				t.Errorf("status = %+v, want %+v; sandbox files %q", got, want, dirFiles(t, spec.Sandbox))
			}
			// Another user's output files are made, and given to it, before it starts;
			// the agent's own user gets each at its first output.
			want := map[string]string{"stdout": tc.wantStdout}
			if tc.wantOwner != self.Uid {
				want["stderr"] = ""
			}
			if got := dirFiles(t, spec.Sandbox); !reflect.DeepEqual(got, want) {
				t.Errorf("sandbox files = %q, want %q", got, want)
			}
			for _, name := range append(slices.Sorted(maps.Keys(want)), "") {
				fi, err := os.Stat(filepath.Join(spec.Sandbox, name))
				if err != nil {
					t.Fatal(err)
				}
				if got := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); got != tc.wantOwner {
					t.Errorf("owner of sandbox/%s = %s, want %s", name, got, tc.wantOwner)
				}
			}
		})
	}
}

func TestProcessConfigValidate(t *testing.T) {
	cfg := DefaultProcessConfig()
	if err := cfg.Validate(); err == nil || err.Error() != "process containerizer: StateDir is required" {
		t.Errorf("Validate without StateDir = %v", err)
	}
	if _, err := NewProcess(cfg); err == nil {
		t.Error("NewProcess without StateDir succeeded")
	}
	cfg.StateDir = filepath.Join(t.TempDir(), "containers")
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	if _, err := NewProcess(cfg); err != nil {
		t.Fatalf("NewProcess: %v", err)
	}
	if fi, err := os.Stat(cfg.StateDir); err != nil || !fi.IsDir() {
		t.Errorf("state dir not created: %v", err)
	}
	for _, tc := range []struct {
		logs    LogRotation
		wantErr string
	}{
		{logs: LogRotation{MaxSize: 1, Keep: 1}},
		{logs: LogRotation{MaxSize: -1}, wantErr: "process containerizer: TaskLogs: max size must not be negative, got -1"},
		{logs: LogRotation{Keep: -1}, wantErr: "process containerizer: TaskLogs: keep must not be negative, got -1"},
	} {
		cfg.TaskLogs = tc.logs
		if err := cfg.Validate(); errString(err) != tc.wantErr {
			t.Errorf("Validate with TaskLogs %+v = %v, want %q", tc.logs, err, tc.wantErr)
		}
	}
}
