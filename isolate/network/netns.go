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
		// The thread enters the new namespace only long enough to bind-mount it, then
		// returns to its own. Were it left there, the runtime could not end it if it were
		// the main thread, which would then run the program inside the task's namespace.
		runtime.LockOSThread()
		own, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open the thread's netns: %w", err)
			return
		}
		defer own.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		mountErr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
			// Still in the new namespace: leave the thread locked, so the runtime ends it
			// with this goroutine rather than reusing it.
			done <- errors.Join(mountErr, fmt.Errorf("return to the thread's netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			done <- fmt.Errorf("bind-mount %s: %w", self, mountErr)
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
