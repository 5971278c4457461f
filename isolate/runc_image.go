package isolate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	mobyuser "github.com/moby/sys/user"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/isolate/image"
)

// maxImageUserFile bounds the size of an image's /etc/passwd and /etc/group: far more
// than any real one, little enough to read whole.
const maxImageUserFile = 4 << 20

// ImageRootFS is the RootFS of an image store: each container gets a copy-on-write root
// filesystem of the image its ContainerInfo names (see image.SpecFor), pulled first if
// need be, and the image's config. It is safe for concurrent use, as the Store is.
type ImageRootFS struct {
	Store *image.Store
}

var _ RootFS = ImageRootFS{}

// Prepare pulls spec's image as its ContainerInfo says (Image.cached,
// DockerInfo.force_pull_image) and mounts the container's root filesystem. Its errors
// name the image, as the agent's TASK_FAILED message should.
func (s ImageRootFS) Prepare(ctx context.Context, spec LaunchSpec) (string, image.ImageConfig, error) {
	if s.Store == nil {
		return "", image.ImageConfig{}, errors.New("no image store")
	}
	want, ok, err := image.SpecFor(spec.Container)
	if err != nil {
		return "", image.ImageConfig{}, err
	}
	if !ok {
		return "", image.ImageConfig{}, errors.New("the container names no image")
	}
	rootfs, config, _, err := s.Store.RootFS(ctx, want.Ref, spec.ContainerID, want.Policy)
	if err != nil {
		return "", image.ImageConfig{}, err
	}
	return rootfs, config, nil
}

// Release unmounts the container's root filesystem and deletes what the container wrote
// there. Releasing a container that has none does nothing.
func (s ImageRootFS) Release(_ context.Context, containerID string) error {
	if s.Store == nil {
		return errors.New("no image store")
	}
	return s.Store.Release(containerID)
}

// imageUser resolves the user a task in an image runs as ("user", "uid", "user:group" or
// "uid:gid", "" for root) in the image's /etc/passwd and /etc/group, never the host's,
// and returns its credential (nil for root without supplementary groups) and its
// environment (HOME, "/" when the image does not say).
func imageUser(rootfs, name string) (*taskCredential, []string, error) {
	passwd, err := readImageFile(rootfs, "/etc/passwd")
	if err != nil {
		return nil, nil, err
	}
	group, err := readImageFile(rootfs, "/etc/group")
	if err != nil {
		return nil, nil, err
	}
	cred, home, err := lookupImageUser(name, passwd, group)
	if err != nil {
		return nil, nil, err
	}
	return cred, []string{"HOME=" + home}, nil
}

// lookupImageUser resolves name in the contents of an image's passwd and group files,
// each nil when the image has none. It returns the user's credential, nil for root
// without supplementary groups, and home directory.
func lookupImageUser(name string, passwd, group []byte) (*taskCredential, string, error) {
	// Nil readers, not empty ones, tell GetExecUser that a file is missing.
	var passwdReader, groupReader io.Reader
	if passwd != nil {
		passwdReader = bytes.NewReader(passwd)
	}
	if group != nil {
		groupReader = bytes.NewReader(group)
	}
	u, err := mobyuser.GetExecUser(name, &mobyuser.ExecUser{Home: "/"}, passwdReader, groupReader)
	if err != nil {
		return nil, "", fmt.Errorf("user %q in the image: %w", name, err)
	}
	ids := append([]int{u.Uid, u.Gid}, u.Sgids...)
	for _, id := range ids {
		if id < 0 || id > math.MaxInt32 {
			return nil, "", fmt.Errorf("user %q in the image: id %d is out of range", name, id)
		}
	}
	home := u.Home
	if home == "" {
		home = "/"
	}
	if u.Uid == 0 && u.Gid == 0 && len(u.Sgids) == 0 {
		return nil, home, nil
	}
	cred := &taskCredential{UID: uint32(u.Uid), GID: uint32(u.Gid)}
	for _, g := range u.Sgids {
		cred.Groups = append(cred.Groups, uint32(g))
	}
	return cred, home, nil
}

// readImageFile reads the regular file at path in an image's root filesystem, resolving
// symlinks inside it, or returns nil when there is none.
func readImageFile(rootfs, path string) ([]byte, error) {
	handle, err := pathrs.OpenInRoot(rootfs, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("the image's %s: %w", path, err)
	}
	defer handle.Close()
	fi, err := handle.Stat()
	if err != nil {
		return nil, fmt.Errorf("the image's %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("the image's %s is not a regular file", path)
	}
	f, err := pathrs.Reopen(handle, os.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("the image's %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxImageUserFile+1))
	if err != nil {
		return nil, fmt.Errorf("the image's %s: %w", path, err)
	}
	if len(data) > maxImageUserFile {
		return nil, fmt.Errorf("the image's %s is larger than %d bytes", path, maxImageUserFile)
	}
	return data, nil
}
