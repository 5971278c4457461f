package isolate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	devicesconfig "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
)

// What a DOCKER container's privileged flag and parameters (Docker CLI options) make of a
// runc container: marathon.DockerOptions reads the parameters, rejecting those without a
// meaning outside Docker, and runcConfig applies them.

// dockerSettings are a container's privileged flag and docker parameters.
type dockerSettings struct {
	// privileged gives the container every capability and the host's devices, with
	// neither masked nor read-only /proc paths nor a read-only /sys, nor no_new_privs.
	privileged bool
	opts       marathon.DockerOptions
}

// parseDockerSettings reads a DockerInfo's privileged flag and parameters.
func parseDockerSettings(d *api.DockerInfo) (dockerSettings, error) {
	s := dockerSettings{privileged: d.Privileged}
	for i, p := range d.Parameters {
		if err := s.opts.Set(p.Key, p.Value); err != nil {
			return dockerSettings{}, fmt.Errorf("docker: parameter %d (%s=%s): %w", i, p.Key, p.Value, err)
		}
	}
	return s, nil
}

// volumes are the parameters' bind mounts, as volumes.
func (s dockerSettings) volumes() []api.Volume {
	vols := make([]api.Volume, 0, len(s.opts.Volumes))
	for _, b := range s.opts.Volumes {
		mode := api.VolumeRW
		if b.ReadOnly {
			mode = api.VolumeRO
		}
		vols = append(vols, api.Volume{ContainerPath: b.ContainerPath, HostPath: b.HostPath, Mode: mode})
	}
	return vols
}

// devices are the device nodes the container gets besides the default ones, and the
// device cgroup rules that let it use them: all the host's devices, and any device, for a
// privileged container; those the device parameters name for the others.
func (s dockerSettings) devices() ([]*devicesconfig.Device, []*devicesconfig.Rule, error) {
	var devs []*devicesconfig.Device
	var rules []*devicesconfig.Rule
	if s.privileged {
		var err error
		if devs, err = hostDevices(); err != nil {
			return nil, nil, fmt.Errorf("privileged: %w", err)
		}
		rules = append(rules, &devicesconfig.Rule{Type: devicesconfig.WildcardDevice, Major: devicesconfig.Wildcard, Minor: devicesconfig.Wildcard, Permissions: "rwm", Allow: true})
	}
	for _, d := range s.opts.Devices {
		dev, err := deviceAt(d.HostPath, d.ContainerPath, devicesconfig.Permissions(d.Permissions))
		if err != nil {
			return nil, nil, fmt.Errorf("docker: device %s: %w", d.HostPath, err)
		}
		devs = slices.DeleteFunc(devs, func(have *devicesconfig.Device) bool { return have.Path == dev.Path })
		devs = append(devs, dev)
		rule := dev.Rule
		rules = append(rules, &rule)
	}
	return devs, rules, nil
}

// deviceAt is the host's device at hostPath, made at containerPath with permissions.
func deviceAt(hostPath, containerPath string, permissions devicesconfig.Permissions) (*devicesconfig.Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(hostPath, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: hostPath, Err: err}
	}
	var kind devicesconfig.Type
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		kind = devicesconfig.CharDevice
	case unix.S_IFBLK:
		kind = devicesconfig.BlockDevice
	default:
		return nil, errors.New("not a device")
	}
	return &devicesconfig.Device{
		Rule: devicesconfig.Rule{
			Type:        kind,
			Major:       int64(unix.Major(st.Rdev)),
			Minor:       int64(unix.Minor(st.Rdev)),
			Permissions: permissions,
			Allow:       true,
		},
		Path:     containerPath,
		FileMode: os.FileMode(st.Mode &^ unix.S_IFMT),
		Uid:      st.Uid,
		Gid:      st.Gid,
	}, nil
}

// hostDevicesSkipped are what a privileged container does not copy from the host's /dev:
// the directories of filesystems it mounts itself, and the nodes libcontainer makes.
var hostDevicesSkipped = map[string]bool{
	"/dev/pts": true, "/dev/shm": true, "/dev/mqueue": true, "/dev/console": true, "/dev/ptmx": true,
	"/dev/fd": true, "/dev/.udev": true,
}

// hostDevices are the device nodes in the host's /dev, for a privileged container.
func hostDevices() ([]*devicesconfig.Device, error) {
	var devs []*devicesconfig.Device
	err := filepath.WalkDir("/dev", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case hostDevicesSkipped[path] && d.IsDir():
			return fs.SkipDir
		case hostDevicesSkipped[path] || d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0:
			return nil
		}
		dev, err := deviceAt(path, path, "rwm")
		if err != nil {
			// Gone since it was listed.
			return nil
		}
		devs = append(devs, dev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the host's devices: %w", err)
	}
	return devs, nil
}

// capabilities are the container's: Docker's default set or, privileged, every one the
// agent may hand out (all), then the parameters' cap-add and cap-drop, in that order.
func (s dockerSettings) capabilities(all []string) []string {
	caps := defaultCapabilities
	if s.privileged {
		caps = all
	}
	caps = slices.Clone(caps)
	for _, c := range s.opts.CapAdd {
		if c == "ALL" {
			caps = slices.Clone(all)
		} else if !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	for _, c := range s.opts.CapDrop {
		if c == "ALL" {
			caps = nil
		} else {
			caps = slices.DeleteFunc(caps, func(have string) bool { return have == c })
		}
	}
	return caps
}

// rlimitTypes are the resources of ulimit parameters.
var rlimitTypes = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU, "data": unix.RLIMIT_DATA,
	"fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS, "memlock": unix.RLIMIT_MEMLOCK,
	"msgqueue": unix.RLIMIT_MSGQUEUE, "nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE,
	"nproc": unix.RLIMIT_NPROC, "rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO,
	"rttime": unix.RLIMIT_RTTIME, "sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// rlimits are the ulimit parameters' limits.
func (s dockerSettings) rlimits() []configs.Rlimit {
	var out []configs.Rlimit
	for _, u := range s.opts.Ulimits {
		out = append(out, configs.Rlimit{Type: rlimitTypes[u.Name], Soft: u.Soft, Hard: u.Hard})
	}
	return out
}

// applyMounts adapts the container's own mounts: /sys and its cgroups writable for a
// privileged container, the host's /dev/shm for one in the host's IPC namespace, else a
// /dev/shm of shm-size.
func (s dockerSettings) applyMounts(mounts []*configs.Mount) {
	for _, m := range mounts {
		switch m.Destination {
		case "/sys", "/sys/fs/cgroup":
			if s.privileged {
				m.Flags &^= unix.MS_RDONLY
			}
		case "/dev/shm":
			switch {
			case s.opts.IPCHost:
				*m = configs.Mount{Source: "/dev/shm", Destination: "/dev/shm", Device: "bind", Flags: unix.MS_BIND | unix.MS_REC}
			case s.opts.ShmSize > 0:
				m.Data = "mode=1777,size=" + strconv.FormatInt(s.opts.ShmSize, 10)
			}
		}
	}
}

// boundingCapabilities are the capabilities in this process's bounding set, which are
// all a container can get: fewer than the kernel has when the agent itself runs
// confined.
func boundingCapabilities() ([]string, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read the agent's capabilities: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		hex, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("read the agent's capabilities: CapBnd %q: %w", strings.TrimSpace(hex), err)
		}
		var caps []string
		for bit, name := range marathon.Capabilities {
			if mask&(1<<bit) != 0 {
				caps = append(caps, name)
			}
		}
		return caps, nil
	}
	return nil, errors.New("read the agent's capabilities: /proc/self/status has no CapBnd")
}
