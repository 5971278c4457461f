package network

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// createNetNS makes a new network namespace and bind-mounts it on path, a new empty file,
// so the namespace lives with no process in it until removeNetNS, and a runc container can
// join it by path.
func createNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("netns mount point: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("netns mount point: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		// The thread moves to the new namespace and never comes back: the goroutine ends
		// without unlocking it, so the runtime ends the thread instead of reusing it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			done <- fmt.Errorf("bind-mount %s: %w", self, err)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		return errors.Join(fmt.Errorf("create netns: %w", err), removeNetNS(path))
	}
	return nil
}

// removeNetNS unmounts and deletes a namespace's mount point; the namespace goes once no
// process is left in it. A path that is not mounted or does not exist is not an error.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// isNetNS reports whether path is a mounted network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
