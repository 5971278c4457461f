package isolate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/api"
)

// volumeMount is a volume of a container: a host path shown at a path of the container.
type volumeMount struct {
	// source is the host's path, a directory or a file.
	source string
	// destination is the absolute path in the container.
	destination string
	readOnly    bool
}

// mount is the bind mount that shows the volume, read-only all the way down for RO.
func (v volumeMount) mount() *configs.Mount {
	m := &configs.Mount{
		Source:      v.source,
		Destination: v.destination,
		Device:      "bind",
		Flags:       unix.MS_BIND | unix.MS_REC,
	}
	if v.readOnly {
		m.Flags |= unix.MS_RDONLY
		m.RecAttr = &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	}
	return m
}

// volumeSources resolve the sources a volume's host path does not say.
type volumeSources struct {
	// docker returns the host directory of an external volume; nil rejects them.
	docker func(src api.DockerVolumeSource) (string, error)
	// persistent maps the sandbox paths where persistent volumes are (clean, relative) to
	// their directories: a sandbox path at or below one of them is in the volume.
	persistent map[string]string
	// secret writes a secret's value to a file only the task's user can read, and returns
	// its path; nil rejects secret volumes.
	secret func(index int, s *api.Secret) (string, error)
}

// prepareVolumes reads a container's volumes as Mesos defines them and makes what they
// need in the sandbox. A volume's source is a host path (HostPath absolute, or
// Source HOST_PATH), a path in the sandbox (HostPath relative, or Source SANDBOX_PATH
// of type SELF), made as a directory if missing, or an external volume (Source
// DOCKER_VOLUME). Its ContainerPath is absolute in the container, or relative to the
// sandbox, where its mount point is made; without an image (on the host's read-only
// filesystem) an absolute ContainerPath must exist on the host. Mode is RO or RW. A host path that does not
// exist, a path that leaves the sandbox, and sources the runc containerizer has no
// means for are errors naming the volume.
func prepareVolumes(vols []api.Volume, sandbox string, image bool, sources volumeSources) ([]volumeMount, error) {
	if len(vols) == 0 {
		return nil, nil
	}
	root, err := os.OpenRoot(sandbox)
	if err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	defer root.Close()
	mounts := make([]volumeMount, 0, len(vols))
	for i, v := range vols {
		m, err := prepareVolume(i, v, sandbox, image, root, sources)
		if err != nil {
			return nil, fmt.Errorf("volume %d (%s): %w", i, v.ContainerPath, err)
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

func prepareVolume(index int, v api.Volume, sandbox string, image bool, root *os.Root, sources volumeSources) (volumeMount, error) {
	var m volumeMount
	switch v.Mode {
	case api.VolumeRW:
	case api.VolumeRO:
		m.readOnly = true
	default:
		return volumeMount{}, fmt.Errorf("mode %q is not RO or RW", v.Mode)
	}
	source, err := volumeSource(index, v, sandbox, root, sources)
	if err != nil {
		return volumeMount{}, err
	}
	fi, err := os.Stat(source)
	if err != nil {
		return volumeMount{}, fmt.Errorf("source: %w", err)
	}
	m.source = source
	switch cp := v.ContainerPath; {
	case cp == "":
		return volumeMount{}, errors.New("container path is empty")
	case strings.ContainsRune(cp, 0):
		return volumeMount{}, errors.New("container path contains a NUL byte")
	case path.IsAbs(cp):
		m.destination = path.Clean(cp)
		if m.destination == "/" {
			return volumeMount{}, errors.New("a volume cannot replace the container's root")
		}
		if !image {
			// The host's filesystem is read-only in the container: no mount point can be
			// made there, as in Mesos for containers without an image.
			if _, err := os.Stat(m.destination); err != nil {
				return volumeMount{}, fmt.Errorf("a container without an image mounts volumes at paths of the host only: %w", err)
			}
		}
	default:
		rel, err := sandboxRelative(cp)
		if err != nil {
			return volumeMount{}, fmt.Errorf("container path: %w", err)
		}
		// The mount point is made now, so that it is the task's when the sandbox is.
		if err := makeMountPoint(root, rel, fi.IsDir()); err != nil {
			return volumeMount{}, fmt.Errorf("make the mount point in the sandbox: %w", err)
		}
		m.destination = path.Join(SandboxMountPoint, rel)
	}
	return m, nil
}

// volumeSource is the host path a volume shows.
func volumeSource(index int, v api.Volume, sandbox string, root *os.Root, sources volumeSources) (string, error) {
	if v.Image != nil {
		return "", errors.New("image volumes are not supported by the runc containerizer")
	}
	inSandbox := func(p string) (string, error) {
		rel, err := sandboxRelative(p)
		if err != nil {
			return "", fmt.Errorf("sandbox path: %w", err)
		}
		for at, dir := range sources.persistent {
			if below, ok := strings.CutPrefix(rel, at); ok && (below == "" || below[0] == filepath.Separator) {
				vroot, err := os.OpenRoot(dir)
				if err != nil {
					return "", fmt.Errorf("persistent volume at %s: %w", at, err)
				}
				defer vroot.Close()
				if below != "" {
					if err := vroot.MkdirAll(below[1:], 0o755); err != nil {
						return "", fmt.Errorf("make the path in the persistent volume at %s: %w", at, err)
					}
				}
				return filepath.Join(dir, below), nil
			}
		}
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return "", fmt.Errorf("make the sandbox path: %w", err)
		}
		return filepath.Join(sandbox, rel), nil
	}
	hostPath := func(p string) (string, error) {
		if strings.ContainsRune(p, 0) {
			return "", errors.New("host path contains a NUL byte")
		}
		return filepath.Clean(p), nil
	}
	if v.HostPath != "" {
		if v.Source != nil {
			return "", errors.New("both host_path and source are set")
		}
		if filepath.IsAbs(v.HostPath) {
			return hostPath(v.HostPath)
		}
		return inSandbox(v.HostPath)
	}
	s := v.Source
	if s == nil {
		return "", errors.New("the volume has no host path and no source")
	}
	switch s.Type {
	case api.VolumeSourceHostPath:
		if s.HostPath == nil || !filepath.IsAbs(s.HostPath.Path) {
			return "", errors.New("a HOST_PATH source needs an absolute host_path.path")
		}
		return hostPath(s.HostPath.Path)
	case api.VolumeSourceSandboxPath:
		switch {
		case s.SandboxPath == nil:
			return "", errors.New("a SANDBOX_PATH source needs sandbox_path")
		case s.SandboxPath.Type == api.SandboxPathParent:
			return "", errors.New("a PARENT sandbox path needs a parent container, which tasks do not have")
		case s.SandboxPath.Type != "" && s.SandboxPath.Type != api.SandboxPathSelf:
			return "", fmt.Errorf("sandbox path type %q is not SELF or PARENT", s.SandboxPath.Type)
		}
		return inSandbox(s.SandboxPath.Path)
	case api.VolumeSourceSecret:
		if sources.secret == nil {
			return "", errors.New("secret volumes are not supported here")
		}
		return sources.secret(index, s.Secret)
	case api.VolumeSourceDockerVolume:
		switch {
		case s.DockerVolume == nil || s.DockerVolume.Name == "":
			return "", errors.New("a DOCKER_VOLUME source needs docker_volume.name")
		case sources.docker == nil:
			return "", errors.New("external (DOCKER_VOLUME) volumes are not supported here")
		}
		return sources.docker(*s.DockerVolume)
	default:
		return "", fmt.Errorf("source type %q is not supported by the runc containerizer", s.Type)
	}
}

// sandboxRelative checks that p, relative to the sandbox, stays in it, and cleans it.
func sandboxRelative(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("the path is empty")
	case strings.ContainsRune(p, 0):
		return "", errors.New("the path contains a NUL byte")
	case !filepath.IsLocal(p):
		return "", fmt.Errorf("%q is not a path inside the sandbox", p)
	}
	return filepath.Clean(p), nil
}

// makeMountPoint makes rel in the sandbox root, a directory or an empty file, unless it
// exists; the root keeps it from leaving the sandbox through a symlink.
func makeMountPoint(root *os.Root, rel string, dir bool) error {
	if dir {
		return root.MkdirAll(rel, 0o755)
	}
	if parent := filepath.Dir(rel); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// prepareVolumes makes the container's volumes: its ContainerInfo's, then its docker
// parameters', after its local persistent volumes (see persistentVolumes), which come
// first so that the others can show paths in them. cred is the task's user, nil for the
// agent's.
func (r *Runc) prepareVolumes(spec LaunchSpec, req runcRequest, cred *taskCredential) ([]volumeMount, error) {
	persistent, sources, err := r.persistentVolumes(spec.Resources, cred)
	if err != nil {
		return nil, err
	}
	sources.docker = r.localVolume
	sources.secret = func(index int, s *api.Secret) (string, error) {
		return writeSecretFile(filepath.Join(r.containerDir(spec.ContainerID), runcSecretsDir), index, s, cred)
	}
	var vols []api.Volume
	if spec.Container != nil {
		vols = spec.Container.Volumes
	}
	return prepareVolumes(slices.Concat(persistent, vols, req.docker.volumes()), spec.Sandbox, req.image, sources)
}

// persistentVolumes reads the local persistent volumes among a task's resources: disk
// resources with a persistence id and a volume (a container path, relative to the
// sandbox as Marathon's are, or absolute, and a mode). Each is the directory
// VolumesDir/persistent/<id>, made the first time, for the task's user, and kept across
// the task's launches until DestroyVolume. It returns them as volumes, and the sources
// that resolve sandbox paths into them.
func (r *Runc) persistentVolumes(resources []api.Resource, cred *taskCredential) ([]api.Volume, volumeSources, error) {
	var vols []api.Volume
	sources := volumeSources{persistent: map[string]string{}}
	for i, res := range resources {
		d := res.Disk
		if d == nil || d.Persistence == nil {
			continue
		}
		if res.Name != "disk" || d.Volume == nil {
			return nil, volumeSources{}, fmt.Errorf("resource %d (%s): a persistent volume is a disk resource with a volume", i, res.Name)
		}
		dir, err := r.persistentDir(d.Persistence.ID)
		if err != nil {
			return nil, volumeSources{}, fmt.Errorf("resource %d: %w", i, err)
		}
		switch err := os.Mkdir(dir, 0o755); {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
				return nil, volumeSources{}, fmt.Errorf("persistent volume %s: %w", d.Persistence.ID, err)
			}
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, volumeSources{}, fmt.Errorf("persistent volume %s: %w", d.Persistence.ID, err)
			}
			fallthrough
		case err == nil:
			if cred != nil {
				if err := os.Chown(dir, int(cred.UID), int(cred.GID)); err != nil {
					return nil, volumeSources{}, fmt.Errorf("persistent volume %s: give it to the task's user: %w", d.Persistence.ID, err)
				}
			}
		case !errors.Is(err, fs.ErrExist):
			return nil, volumeSources{}, fmt.Errorf("persistent volume %s: %w", d.Persistence.ID, err)
		}
		v := *d.Volume
		v.HostPath, v.Image = "", nil
		v.Source = &api.VolumeSource{Type: api.VolumeSourceHostPath, HostPath: &api.HostPathSource{Path: dir}}
		vols = append(vols, v)
		if rel, err := sandboxRelative(v.ContainerPath); err == nil && !path.IsAbs(v.ContainerPath) {
			sources.persistent[rel] = dir
		}
	}
	return vols, sources, nil
}

// persistentDir is the directory of the persistent volume id.
func (r *Runc) persistentDir(id string) (string, error) {
	if err := checkVolumeName(id); err != nil {
		return "", fmt.Errorf("persistence id: %w", err)
	}
	return filepath.Join(r.volumesDir, "persistent", id), nil
}

// DestroyVolume removes the local persistent volume id and what it holds, as Mesos's
// DESTROY operation does: its app is gone. Removing a volume that does not exist is not
// an error.
func (r *Runc) DestroyVolume(id string) error {
	dir, err := r.persistentDir(id)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy persistent volume %s: %w", id, err)
	}
	return nil
}

// LocalVolumeDriver is the volume driver every runc agent has: its volumes are
// directories in VolumesDir/local, made when first used and kept.
const LocalVolumeDriver = api.LocalVolumeDriver

// localVolume is the directory of an external volume of the local driver.
func (r *Runc) localVolume(src api.DockerVolumeSource) (string, error) {
	if src.Driver != "" && src.Driver != LocalVolumeDriver {
		return "", fmt.Errorf("volume driver %q is not available on this agent, which has %q only", src.Driver, LocalVolumeDriver)
	}
	if err := checkVolumeName(src.Name); err != nil {
		return "", fmt.Errorf("volume name: %w", err)
	}
	dir := filepath.Join(r.volumesDir, LocalVolumeDriver, src.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("local volume %s: %w", src.Name, err)
	}
	return dir, nil
}

// checkVolumeName accepts names that are one path component: not empty, . or .., and
// without / or NUL.
func checkVolumeName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q is not a volume name", name)
	}
	return nil
}

// runcSecretsDir holds, in a container's directory, the files of its secret volumes,
// which go with the container.
const runcSecretsDir = "secrets"

// writeSecretFile writes the value of the secret of volume index to a file in dir, readable
// by the task's user (cred, nil for the agent's) alone, for a read-only bind mount. The
// file is outside the sandbox, which the agent serves to anyone who may read the task's
// logs.
func writeSecretFile(dir string, index int, s *api.Secret, cred *taskCredential) (string, error) {
	data, err := secretValue(s)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	file := filepath.Join(dir, strconv.Itoa(index))
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	_, err = f.Write(data)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil && cred != nil {
		err = os.Chown(file, int(cred.UID), int(cred.GID))
	}
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	return file, nil
}
