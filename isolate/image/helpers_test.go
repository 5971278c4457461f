package image

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// requireRoot skips a test that needs root, except under CI, which must run it.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root and CI must run it: run the tests as root")
	}
	t.Skip("needs root for overlay mounts, whiteout devices and file owners")
}

// testStore opens a Store in a fresh directory, pulling anonymously; it is closed and
// checked for leftover mounts when the test ends.
func testStore(t testing.TB, edit ...func(*Config)) *Store {
	t.Helper()
	cfg := DefaultConfig(t.TempDir())
	cfg.Keychain = nil
	for _, e := range edit {
		e(&cfg)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	unmountAtEnd(t, cfg.Dir)
	return s
}

// unmountAtEnd fails the test if anything is still mounted below dir when it ends, and
// unmounts it so that nothing stays behind.
func unmountAtEnd(t testing.TB, dir string) {
	t.Helper()
	t.Cleanup(func() {
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("still mounted after the test: %v", m)
			for _, p := range m {
				unmountAll(p)
			}
		}
	})
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mountPoint := fields[4]
		if mountPoint == dir || strings.HasPrefix(mountPoint, dir+"/") {
			found = append(found, mountPoint)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return found
}
