package image

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// errNoLowerdirPlus means the kernel's new mount API cannot take lower layers one by one
// ("lowerdir+" needs Linux 6.8), so the classic mount(2) option string has to do.
var errNoLowerdirPlus = errors.New("overlayfs lowerdir+ not supported")

// mountOverlay mounts an overlayfs at target; lowers are listed top layer first.
func mountOverlay(target string, lowers []string, upper, work string) error {
	err := mountOverlayFsconfig(target, lowers, upper, work)
	if errors.Is(err, errNoLowerdirPlus) {
		err = mountOverlayLegacy(target, lowers, upper, work)
	}
	if err != nil {
		return fmt.Errorf("mount overlay at %s (%d layers): %w", target, len(lowers), err)
	}
	return nil
}

// mountOverlayFsconfig uses fsopen/fsconfig, which has no limit on the number of layers
// (mount(2) options must fit in one page).
func mountOverlayFsconfig(target string, lowers []string, upper, work string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return errNoLowerdirPlus
	}
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fsfd)
	for i, lower := range lowers {
		err := unix.FsconfigSetString(fsfd, "lowerdir+", lower)
		if i == 0 && errors.Is(err, unix.EINVAL) {
			return errNoLowerdirPlus
		}
		if err != nil {
			return fsconfigError(fsfd, "lowerdir+ "+lower, err)
		}
	}
	if err := unix.FsconfigSetString(fsfd, "upperdir", upper); err != nil {
		return fsconfigError(fsfd, "upperdir "+upper, err)
	}
	if err := unix.FsconfigSetString(fsfd, "workdir", work); err != nil {
		return fsconfigError(fsfd, "workdir "+work, err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fsconfigError(fsfd, "create", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fsconfigError(fsfd, "fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// fsconfigError adds the messages the kernel left on the fs context, which say what
// overlayfs disliked far better than the errno does.
func fsconfigError(fsfd int, step string, err error) error {
	var msgs []string
	buf := make([]byte, 1024)
	for {
		n, readErr := unix.Read(fsfd, buf)
		if readErr != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return fmt.Errorf("fsconfig %s: %w", step, err)
	}
	return fmt.Errorf("fsconfig %s: %w (%s)", step, err, strings.Join(msgs, "; "))
}

// mountOverlayLegacy mounts with mount(2), whose option string must fit in one page.
func mountOverlayLegacy(target string, lowers []string, upper, work string) error {
	opts := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	if limit := unix.Getpagesize() - 1; len(opts) > limit {
		return fmt.Errorf("overlay options are %d bytes, beyond the kernel's limit of %d: too many layers for a kernel without lowerdir+ (Linux 6.8)", len(opts), limit)
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	return nil
}

// unmountAll unmounts everything stacked on target until it is no longer a mount point;
// a busy mount is detached and goes away once its last user does.
func unmountAll(target string) error {
	for {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
