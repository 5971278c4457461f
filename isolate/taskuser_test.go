package isolate

import (
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// lookupTestUser resolves a user the tests run tasks as, failing the test without it.
func lookupTestUser(t testing.TB, name string) (*user.User, *taskCredential) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("the tests need the user %s: %v", name, err)
	}
	cred, _, err := lookupUser(name)
	if err != nil || cred == nil {
		t.Fatalf("lookupUser(%s) = %+v, %v; want another user than the test's", name, cred, err)
	}
	return u, cred
}

// statOf is path's owner and permission bits (setuid, setgid and sticky included).
func statOf(t testing.TB, path string) (uid uint32, mode uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Mode & 0o7777
}

// TestGrantSearch: a directory above a sandbox that denies the task's user search
// permission gains the execute bit of the user's class, and nothing else; one that lets
// it search, or that belongs to another user, is left as it is.
func TestGrantSearch(t *testing.T) {
	requireRoot(t, "to give directories to other users")
	_, nobody := lookupTestUser(t, "nobody")
	daemon, _ := lookupTestUser(t, "daemon")
	daemonUID, _ := strconv.Atoi(daemon.Uid)
	tests := []struct {
		name string
		// uid and gid own the directory above the sandbox; -1 keeps root's.
		uid, gid int
		mode     uint32
		want     uint32
	}{
		{name: "others", uid: -1, gid: -1, mode: 0o700, want: 0o701},
		{name: "the user's group", uid: -1, gid: int(nobody.GID), mode: 0o750, want: 0o750},
		{name: "the group without search", uid: -1, gid: int(nobody.GID), mode: 0o740, want: 0o750},
		{name: "the user's own", uid: int(nobody.UID), gid: -1, mode: 0o700, want: 0o700},
		{name: "sticky and setgid kept", uid: -1, gid: -1, mode: 0o3770, want: 0o3771},
		{name: "searchable already", uid: -1, gid: -1, mode: 0o755, want: 0o755},
		{name: "another user's", uid: daemonUID, gid: -1, mode: 0o700, want: 0o700},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			private := filepath.Join(t.TempDir(), "private")
			dir := filepath.Join(private, "work")
			sandbox := filepath.Join(dir, "sandbox")
			if err := os.MkdirAll(sandbox, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(private, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, tc.uid, tc.gid); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := grantSearch(sandbox, nobody); err != nil {
				t.Fatalf("grantSearch: %v", err)
			}
			if _, got := statOf(t, dir); got != tc.want {
				t.Errorf("mode of the directory above the sandbox = %04o, want %04o", got, tc.want)
			}
			// Every directory further up is root's; this one was private.
			if _, got := statOf(t, private); got != 0o701 {
				t.Errorf("mode of a private directory further up = %04o, want 0701", got)
			}
		})
	}
}

// TestTaskUserReachesPrivateSandbox: a plain process task of another user starts in its
// sandbox under directories private to the agent (the node's data dir is 0700), which
// then let that user through and no more; the sandbox and its output are the user's.
func TestTaskUserReachesPrivateSandbox(t *testing.T) {
	requireRoot(t, "to run tasks as another user")
	nobody, cred := lookupTestUser(t, "nobody")
	p := newTestProcess(t, t.TempDir())
	private := filepath.Join(t.TempDir(), "data")
	spec := shellSpec(t, `id -u; pwd; echo written > file`)
	spec.Sandbox = filepath.Join(private, "agent", "sandboxes", "task")
	if err := os.MkdirAll(spec.Sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	spec.FrameworkUser = "nobody"
	launch(t, p, spec)
	if got, want := waitExit(t, p, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
		t.Fatalf("status = %+v, want %+v; sandbox files %q", got, want, dirFiles(t, spec.Sandbox))
	}
	want := map[string]string{"stdout": nobody.Uid + "\n" + spec.Sandbox + "\n", "stderr": "", "file": "written\n"}
	if got := dirFiles(t, spec.Sandbox); !maps.Equal(got, want) {
		t.Errorf("sandbox files = %q, want %q", got, want)
	}
	for _, name := range []string{"", "stdout", "stderr", "file"} {
		if uid, _ := statOf(t, filepath.Join(spec.Sandbox, name)); uid != cred.UID {
			t.Errorf("owner of sandbox/%s = %d, want %d", name, uid, cred.UID)
		}
	}
	if _, mode := statOf(t, private); mode != 0o701 {
		t.Errorf("mode of the private directory = %04o, want 0701", mode)
	}
}
