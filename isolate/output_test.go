package isolate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dirFiles returns the regular files in dir and their content.
func dirFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string]string)
	for _, e := range entries {
		if e.Type().IsRegular() {
			files[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
		}
	}
	return files
}

// writeFiles creates files with their content in dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// openTestRotatingFile opens dir/stdout as a rotatingFile, closed when the test ends.
func openTestRotatingFile(t testing.TB, dir string, rot LogRotation) *rotatingFile {
	t.Helper()
	r, err := openRotatingFile(filepath.Join(dir, "stdout"), rot.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.close() })
	return r
}

func TestRotatingFile(t *testing.T) {
	tests := []struct {
		name string
		// existing are the files in the directory before, and their content.
		existing map[string]string
		rot      LogRotation
		writes   []string
		want     map[string]string
	}{
		{
			name:   "writes that fit stay in the file",
			rot:    LogRotation{MaxSize: 10, Keep: 2},
			writes: []string{"12345", "67890"},
			want:   map[string]string{"stdout": "1234567890"},
		},
		{
			name:   "a write that would exceed the size goes to a fresh file",
			rot:    LogRotation{MaxSize: 10, Keep: 2},
			writes: []string{"12345", "67890", "a"},
			want:   map[string]string{"stdout": "a", "stdout.1": "1234567890"},
		},
		{
			name:   "Keep rotated files stay, older ones go",
			rot:    LogRotation{MaxSize: 4, Keep: 2},
			writes: []string{"aaaa", "bbbb", "cccc", "dddd", "ee", "ff"},
			want:   map[string]string{"stdout": "eeff", "stdout.1": "dddd", "stdout.2": "cccc"},
		},
		{
			name:   "one rotated file",
			rot:    LogRotation{MaxSize: 4, Keep: 1},
			writes: []string{"aaaa", "bbbb", "cccc"},
			want:   map[string]string{"stdout": "cccc", "stdout.1": "bbbb"},
		},
		{
			name:   "a write larger than the size goes whole to a fresh file",
			rot:    LogRotation{MaxSize: 4, Keep: 2},
			writes: []string{"ab", "123456789", "c"},
			want:   map[string]string{"stdout": "c", "stdout.1": "123456789", "stdout.2": "ab"},
		},
		{
			name:   "a write larger than the size goes whole to an empty file",
			rot:    LogRotation{MaxSize: 4, Keep: 2},
			writes: []string{"123456789"},
			want:   map[string]string{"stdout": "123456789"},
		},
		{
			name:     "the file's content counts",
			existing: map[string]string{"stdout": "xyz"},
			rot:      LogRotation{MaxSize: 4, Keep: 2},
			writes:   []string{"ab"},
			want:     map[string]string{"stdout": "ab", "stdout.1": "xyz"},
		},
		{
			name:     "earlier rotated files shift along",
			existing: map[string]string{"stdout": "xyz", "stdout.1": "old1", "stdout.2": "old2"},
			rot:      LogRotation{MaxSize: 4, Keep: 2},
			writes:   []string{"ab", "cd", "e"},
			want:     map[string]string{"stdout": "e", "stdout.1": "abcd", "stdout.2": "xyz"},
		},
		{
			name:   "defaults",
			writes: []string{strings.Repeat("a", DefaultLogMaxSize-1), "b", "c"},
			want:   map[string]string{"stdout": "c", "stdout.1": strings.Repeat("a", DefaultLogMaxSize-1) + "b"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.existing)
			r := openTestRotatingFile(t, dir, tc.rot)
			for _, w := range tc.writes {
				if err := r.write([]byte(w)); err != nil {
					t.Fatalf("write %q: %v", w, err)
				}
			}
			if got := dirFiles(t, dir); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("files = %q, want %q", got, tc.want)
			}
		})
	}
}

// A sandbox is the task's to change while its output is written there: whatever it does,
// no output is lost to the rotation and none goes through a link out of the sandbox.
func TestRotatingFileDisturbed(t *testing.T) {
	tests := []struct {
		name    string
		disturb func(t *testing.T, dir string)
		wantErr string
		want    map[string]string
		// wantLink is where stdout.1 links to, if it is a symlink.
		wantLink string
	}{
		{
			name:    "the file is removed",
			disturb: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "stdout")) },
			want:    map[string]string{"stdout": "bb"},
		},
		{
			name: "a rotated file cannot be shifted",
			disturb: func(t *testing.T, dir string) {
				writeFiles(t, dir, map[string]string{"stdout.1": "old"})
				if err := os.MkdirAll(filepath.Join(dir, "stdout.2", "x"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "rotate $DIR/stdout: rename $DIR/stdout.1 $DIR/stdout.2: file exists",
			want:    map[string]string{"stdout": "aaaabb", "stdout.1": "old"},
		},
		{
			name: "the file is swapped for a symlink",
			disturb: func(t *testing.T, dir string) {
				if err := os.Rename(filepath.Join(dir, "stdout"), filepath.Join(dir, "moved")); err != nil {
					t.Fatal(err)
				}
				writeFiles(t, dir, map[string]string{"victim": "precious"})
				if err := os.Symlink(filepath.Join(dir, "victim"), filepath.Join(dir, "stdout")); err != nil {
					t.Fatal(err)
				}
			},
			want:     map[string]string{"moved": "aaaa", "victim": "precious", "stdout": "bb"},
			wantLink: "$DIR/victim",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			expand := strings.NewReplacer("$DIR", dir).Replace
			r := openTestRotatingFile(t, dir, LogRotation{MaxSize: 4, Keep: 2})
			if err := r.write([]byte("aaaa")); err != nil {
				t.Fatal(err)
			}
			tc.disturb(t, dir)
			err := r.write([]byte("bb"))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != expand(tc.wantErr)) {
				t.Errorf("write = %v, want error %q", err, expand(tc.wantErr))
			}
			if got := dirFiles(t, dir); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("files = %q, want %q", got, tc.want)
			}
			link, err := os.Readlink(filepath.Join(dir, "stdout.1"))
			if tc.wantLink != "" && (err != nil || link != expand(tc.wantLink)) {
				t.Errorf("stdout.1 links to %q (%v), want %q", link, err, expand(tc.wantLink))
			}
		})
	}
}

// The files of a task that runs as another user are that user's, as Mesos makes them:
// so are the fresh ones.
func TestRotatingFileKeepsOwner(t *testing.T) {
	requireRoot(t, "to give files away")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"stdout": ""})
	if err := os.Chown(filepath.Join(dir, "stdout"), uid, gid); err != nil {
		t.Fatal(err)
	}
	r := openTestRotatingFile(t, dir, LogRotation{MaxSize: 4, Keep: 2})
	for _, w := range []string{"aaaa", "bb"} {
		if err := r.write([]byte(w)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"stdout", "stdout.1"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) != uid || int(st.Gid) != gid || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: owner %d:%d mode %v, want %d:%d -rw-r--r--", name, st.Uid, st.Gid, fi.Mode().Perm(), uid, gid)
		}
	}
}

// FuzzRotatingFile checks the files against a model of rotation for any sequence of
// writes: exact contents, Keep honoured, nothing lost or reordered in what is kept.
func FuzzRotatingFile(f *testing.F) {
	f.Add(uint8(4), uint8(2), []byte("aaaabbbbccccdddd"), []byte{4})
	f.Add(uint8(3), uint8(1), []byte("abcdefghijklmnopq"), []byte{1, 5, 2, 0, 9})
	f.Add(uint8(10), uint8(3), bytes.Repeat([]byte("line\n"), 40), []byte{7, 13, 1})
	f.Fuzz(func(t *testing.T, maxSize, keep uint8, data, cuts []byte) {
		rot := LogRotation{MaxSize: int64(maxSize%64) + 1, Keep: int(keep%6) + 1}
		dir := t.TempDir()
		r := openTestRotatingFile(t, dir, rot)
		model := []string{""} // oldest first; the last is the current file
		for i := 0; len(data) > 0; i++ {
			n := len(data)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])%32+1)
			}
			w := data[:n]
			data = data[n:]
			if err := r.write(w); err != nil {
				t.Fatal(err)
			}
			if cur := model[len(model)-1]; cur != "" && int64(len(cur)+len(w)) > rot.MaxSize {
				model = append(model, "")
				if len(model) > rot.Keep+1 {
					model = model[1:]
				}
			}
			model[len(model)-1] += string(w)
		}
		want := map[string]string{"stdout": model[len(model)-1]}
		for i := 1; i < len(model); i++ {
			want["stdout."+strconv.Itoa(i)] = model[len(model)-1-i]
		}
		if got := dirFiles(t, dir); !reflect.DeepEqual(got, want) {
			t.Errorf("files = %q, want %q", got, want)
		}
	})
}

// seqOutput is what seq(1) prints for first to last.
func seqOutput(first, last int) string {
	var b strings.Builder
	for i := first; i <= last; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	return b.String()
}

// checkRotatedOutput checks the sandbox's output files name, name.1 … name.Keep, each
// at most MaxSize, for rot's Keep and MaxSize: their concatenation, oldest first, must
// be the tail of written, every rotated file must be there, and no older one.
func checkRotatedOutput(t testing.TB, sandbox, name string, rot LogRotation, written string) {
	t.Helper()
	var kept []byte
	for i := rot.Keep + 1; i >= 0; i-- {
		path := filepath.Join(sandbox, name)
		if i > 0 {
			path += "." + strconv.Itoa(i)
		}
		data, err := os.ReadFile(path)
		switch {
		case i == rot.Keep+1:
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %v, want it removed", path, err)
			}
			continue
		case err != nil:
			t.Errorf("%s: %v", path, err)
		case int64(len(data)) > rot.MaxSize:
			t.Errorf("%s: %d bytes, more than %d", path, len(data), rot.MaxSize)
		case i > 0 && len(data) == 0:
			t.Errorf("%s is empty", path)
		}
		kept = append(kept, data...)
	}
	if !strings.HasSuffix(written, string(kept)) {
		t.Errorf("%s: the %d bytes kept are not the tail of the %d written:\n%s", name, len(kept), len(written), firstDifference(written[max(len(written)-len(kept), 0):], string(kept)))
	}
}

// firstDifference shows where got departs from want.
func firstDifference(want, got string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(i-40, 0)
	return fmt.Sprintf("at byte %d: got %q, want %q", i, got[from:min(i+40, len(got))], want[from:min(i+40, len(want))])
}

func TestTaskOutput(t *testing.T) {
	rot := LogRotation{MaxSize: 64 << 10, Keep: 3}

	// run starts script with a taskOutput on dir, lazy or not, and returns once its
	// output is copied.
	run := func(t *testing.T, dir, script string, lazy bool) {
		t.Helper()
		o, err := newTaskOutput(testLogger(t), filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr"), rot, lazy)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", "-c", script)
		cmd.Stdout, cmd.Stderr = o.stdout, o.stderr
		if err := cmd.Start(); err != nil {
			o.close()
			t.Fatal(err)
		}
		o.start()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		o.drain(testTimeout)
	}

	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprint("copies the output to the end, lazy=", lazy), func(t *testing.T) {
			dir := t.TempDir()
			run(t, dir, "seq 1 100000; seq 200001 300000 >&2", lazy)
			checkRotatedOutput(t, dir, "stdout", rot, seqOutput(1, 100000))
			checkRotatedOutput(t, dir, "stderr", rot, seqOutput(200001, 300000))
		})
	}

	// Eager files exist from the start; lazy ones once their stream has output, and
	// are appended to like eager ones when they exist already.
	files := []struct {
		name     string
		script   string
		lazy     bool
		existing map[string]string
		want     map[string]string
	}{
		{name: "eager, no output", script: "true", want: map[string]string{"stdout": "", "stderr": ""}},
		{name: "lazy, no output", script: "true", lazy: true, want: map[string]string{}},
		{name: "lazy, stdout only", script: "echo out", lazy: true, want: map[string]string{"stdout": "out\n"}},
		{name: "lazy, stderr only", script: "echo err >&2", lazy: true, want: map[string]string{"stderr": "err\n"}},
		{
			name: "lazy, appended to existing files", script: "echo out; echo err >&2", lazy: true,
			existing: map[string]string{"stdout": "before\n", "stderr": "before\n"},
			want:     map[string]string{"stdout": "before\nout\n", "stderr": "before\nerr\n"},
		},
	}
	for _, tc := range files {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.existing)
			run(t, dir, tc.script, tc.lazy)
			if got := dirFiles(t, dir); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("files = %q, want %q", got, tc.want)
			}
		})
	}

	// What is at the path is opened at once, lazy or not: what cannot take output fails
	// the launch rather than the first write.
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprint("a directory in the way, lazy=", lazy), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "stderr"), 0o755); err != nil {
				t.Fatal(err)
			}
			o, err := newTaskOutput(testLogger(t), filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr"), rot, lazy)
			if want := "open " + filepath.Join(dir, "stderr") + ": is a directory"; err == nil || err.Error() != want {
				if err == nil {
					o.close()
				}
				t.Fatalf("newTaskOutput = %v, want %q", err, want)
			}
		})
	}

	t.Run("stops at the grace while a writer holds the pipe", func(t *testing.T) {
		dir := t.TempDir()
		o, err := newTaskOutput(testLogger(t), filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr"), rot, false)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(o.stdout.Fd()))
		if err != nil {
			o.close()
			t.Fatal(err)
		}
		held := os.NewFile(uintptr(fd), "held")
		defer held.Close()
		o.start()
		if _, err := held.WriteString("before\n"); err != nil {
			t.Fatal(err)
		}
		// A grace already over: what the pipe holds is copied all the same.
		o.drain(0)
		if got, want := dirFiles(t, dir), map[string]string{"stdout": "before\n", "stderr": ""}; !reflect.DeepEqual(got, want) {
			t.Errorf("files = %q, want %q", got, want)
		}
		if _, err := held.WriteString("after\n"); !errors.Is(err, syscall.EPIPE) {
			t.Errorf("write after the drain = %v, want EPIPE", err)
		}
	})
}

// logTestKinds are the containerizers whose task logs are tested.
var logTestKinds = []string{ProcessKind, RuncKind}

// newLogTestContainerizer returns a containerizer of kind whose task logs rotate as rot,
// keeping its records in stateDir; from, if not nil, is the one it takes over from.
func newLogTestContainerizer(t testing.TB, kind, stateDir string, rot LogRotation, from Containerizer) Containerizer {
	t.Helper()
	if kind == ProcessKind {
		return newTestProcess(t, stateDir, func(c *ProcessConfig) { c.TaskLogs = rot })
	}
	return newTestRunc(t, stateDir, func(c *RuncConfig) {
		c.TaskLogs = rot
		if r, ok := from.(*Runc); ok {
			c.CgroupParent = r.cgroupParent
		}
	})
}

// logTestLaunch launches spec through c and makes sure the container is gone when the
// test ends.
func logTestLaunch(t testing.TB, c Containerizer, spec LaunchSpec) State {
	t.Helper()
	if p, ok := c.(*Process); ok {
		return launch(t, p, spec)
	}
	return runcLaunch(t, c.(*Runc), spec)
}

// logTestRecover has c recover the running container st, launched as spec, and makes
// sure it is gone when the test ends.
func logTestRecover(t testing.TB, c Containerizer, spec LaunchSpec, st State) {
	t.Helper()
	if p, ok := c.(*Process); ok {
		stopOnCleanup(t, p, st.ContainerID)
	} else {
		r := c.(*Runc)
		destroyOnCleanup(t, r, spec, runcCgroupPaths(t, r, st.ContainerID))
	}
	if err := c.Recover(context.Background(), []State{st}); err != nil {
		t.Fatalf("Recover: %v", err)
	}
}

func TestTaskLogRotation(t *testing.T) {
	rot := LogRotation{MaxSize: 64 << 10, Keep: 3}
	for _, kind := range logTestKinds {
		t.Run(kind, func(t *testing.T) {
			c := newLogTestContainerizer(t, kind, t.TempDir(), rot, nil)
			spec := shellSpec(t, "seq 1 100000; seq 200001 300000 >&2")
			logTestLaunch(t, c, spec)
			if got, want := waitExit(t, c, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
				t.Fatalf("status = %+v, want %+v", got, want)
			}
			checkRotatedOutput(t, spec.Sandbox, "stdout", rot, seqOutput(1, 100000))
			checkRotatedOutput(t, spec.Sandbox, "stderr", rot, seqOutput(200001, 300000))
		})
	}
}

// The task's output is all there when its exit is reported, even when processes it
// started outlive it holding its stdout. In a runc container they die with the task.
func TestTaskOutputAfterExit(t *testing.T) {
	tests := []struct {
		name   string
		script string
		// want is the stdout for each kind of containerizer.
		want map[string]string
		// escaped says that a process of the task's is left running by the process
		// containerizer, which stops reading from it at the grace; its pid is in the
		// sandbox's file escaped.
		escaped bool
	}{
		{
			name:   "a background process",
			script: "sleep 1000 & echo done",
			want:   map[string]string{ProcessKind: "done\n", RuncKind: "done\n"},
		},
		{
			name: "a process in a session of its own that writes once the task is reaped",
			script: `setsid sh -c 'echo $$ > started; while kill -0 $1 2>/dev/null; do sleep 0.01; done; echo late' sh $$ &
				while [ ! -s started ]; do sleep 0.01; done; echo done`,
			want: map[string]string{ProcessKind: "done\nlate\n", RuncKind: "done\n"},
		},
		{
			name: "a process in a session of its own that does not end",
			script: `setsid sh -c 'echo $$ > escaped; exec sleep 1000' &
				while [ ! -s escaped ]; do sleep 0.01; done; echo done`,
			want:    map[string]string{ProcessKind: "done\n", RuncKind: "done\n"},
			escaped: true,
		},
	}
	for _, kind := range logTestKinds {
		t.Run(kind, func(t *testing.T) {
			c := newLogTestContainerizer(t, kind, t.TempDir(), LogRotation{}, nil)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					spec := shellSpec(t, tc.script)
					logTestLaunch(t, c, spec)
					status := waitExit(t, c, spec.ContainerID)
					if kind == ProcessKind && tc.escaped {
						escaped := readPids(t, filepath.Join(spec.Sandbox, "escaped"))[0]
						t.Cleanup(func() {
							syscall.Kill(escaped, syscall.SIGKILL)
							waitGone(t, escaped)
						})
						if !running(escaped) {
							t.Errorf("the escaped process %d is not running: the test proves nothing", escaped)
						}
					}
					if want := (ExitStatus{Message: "exited with status 0"}); status != want {
						t.Errorf("status = %+v, want %+v", status, want)
					}
					if got := dirFiles(t, spec.Sandbox)["stdout"]; got != tc.want[kind] {
						t.Errorf("stdout = %q, want %q", got, tc.want[kind])
					}
				})
			}
		})
	}
}

// lastLine polls path until it holds a complete line after its first, which a rotation
// may have cut, and returns the number on its last.
func lastLine(t testing.TB, path string) int {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		data, _ := os.ReadFile(path)
		lines := strings.Split(string(data), "\n")
		if len(lines) >= 3 {
			n, err := strconv.Atoi(lines[len(lines)-2])
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no complete line in %q", path, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRotatedPast polls until path's first complete line is a number above n: the file
// that held line n then has been rotated further than path.
func waitRotatedPast(t testing.TB, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		data, _ := os.ReadFile(path)
		if _, rest, ok := strings.Cut(string(data), "\n"); ok {
			if first, _, ok := strings.Cut(rest, "\n"); ok {
				if m, err := strconv.Atoi(first); err == nil && m > n {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never began past line %d", path, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Rotation is the shim's or the supervisor's, so it goes on while no agent runs and after
// another recovers the task, which writes all along.
func TestTaskLogRotationAcrossRestart(t *testing.T) {
	rot := LogRotation{MaxSize: 64 << 10, Keep: 3}
	// Each round writes about half a file to each stream, so that few rounds do, and
	// the test stays quick on a loaded machine, where each process started is slow.
	script := `i=0
		while [ ! -e stop ]; do
			seq $((i*5000+1)) $((i*5000+5000))
			seq $((i*5000+1)) $((i*5000+5000)) >&2
			i=$((i+1))
			sleep 0.01
		done
		echo $i > count`
	for _, kind := range logTestKinds {
		t.Run(kind, func(t *testing.T) {
			stateDir := t.TempDir()
			before := newLogTestContainerizer(t, kind, stateDir, rot, nil)
			spec := shellSpec(t, script)
			st := logTestLaunch(t, before, spec)
			stdout := filepath.Join(spec.Sandbox, "stdout")
			waitForFile(t, stdout+".1")
			if err := before.Release(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			// Two rotations while no agent runs, then Keep+1 after the next one recovers.
			waitRotatedPast(t, stdout+".1", lastLine(t, stdout))
			after := newLogTestContainerizer(t, kind, stateDir, rot, before)
			logTestRecover(t, after, spec, st)
			waitRotatedPast(t, stdout+"."+strconv.Itoa(rot.Keep), lastLine(t, stdout))
			if err := os.WriteFile(filepath.Join(spec.Sandbox, "stop"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if got, want := waitExit(t, after, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
				t.Fatalf("status = %+v, want %+v", got, want)
			}
			count := readPids(t, filepath.Join(spec.Sandbox, "count"))[0]
			checkRotatedOutput(t, spec.Sandbox, "stdout", rot, seqOutput(1, count*5000))
			checkRotatedOutput(t, spec.Sandbox, "stderr", rot, seqOutput(1, count*5000))
		})
	}
}
