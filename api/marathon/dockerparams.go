package marathon

import (
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
)

// DockerOptions are what container.docker.parameters ask of a container, for the
// parameters (Docker CLI options) with a meaning outside Docker, which Atoll's runc
// containerizer honours: Set reads one. Other parameters are rejected by name.
type DockerOptions struct {
	// Env are "NAME=value" variables (env, e).
	Env []string
	// Labels are "key=value" labels of the container (label, l).
	Labels []string
	// Hostname is the container's host name (hostname, h).
	Hostname string
	// PIDHost and IPCHost share the host's PID and IPC namespaces (pid=host, ipc=host).
	PIDHost bool
	IPCHost bool
	// NetHost asks for the host's network (net=host, network=host), the default.
	NetHost bool
	// ShmSize is the size of /dev/shm in bytes, 0 for the default (shm-size).
	ShmSize int64
	// CapAdd and CapDrop change the container's capabilities: CAP_ names, or ALL
	// (cap-add, cap-drop).
	CapAdd  []string
	CapDrop []string
	// Ulimits set resource limits of the container's processes (ulimit).
	Ulimits []Ulimit
	// Volumes are host paths bound into the container (volume, v).
	Volumes []DockerBind
	// Devices are host devices made in the container (device).
	Devices []DockerDevice
	// Workdir is the task's working directory, absolute in the container (workdir, w).
	Workdir string
	// ReadOnly makes the container's root filesystem read-only (read-only).
	ReadOnly bool
}

// Ulimit is a resource limit: Name is ulimit's (nofile, nproc, …).
type Ulimit struct {
	Name       string
	Soft, Hard uint64
}

// DockerBind is a host path shown in the container.
type DockerBind struct {
	HostPath, ContainerPath string
	ReadOnly                bool
}

// DockerDevice is a host device made in the container with Permissions (of r, w, m).
type DockerDevice struct {
	HostPath, ContainerPath, Permissions string
}

// SupportedDockerParameters are the keys DockerOptions.Set takes.
var SupportedDockerParameters = []string{
	"cap-add", "cap-drop", "device", "e", "env", "h", "hostname", "ipc", "l", "label", "net",
	"network", "pid", "read-only", "shm-size", "ulimit", "v", "volume", "w", "workdir",
}

// UlimitNames are the resources a ulimit parameter may name.
var UlimitNames = []string{
	"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
	"nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
}

// errUnsupportedParameter is Set's error for a key it does not take.
var errUnsupportedParameter = errors.New("is not supported by Atoll, which runs containers with runc, not the Docker CLI: supported are " +
	strings.Join(SupportedDockerParameters, ", "))

// Set reads the docker parameter key with value into o. Its errors say what is wrong with
// the value, or that the key is not supported, without naming the key.
func (o *DockerOptions) Set(key, value string) error {
	switch key {
	case "env", "e":
		name, _, ok := strings.Cut(value, "=")
		if !ok || name == "" || strings.ContainsRune(value, 0) {
			return fmt.Errorf("%q is not NAME=value", value)
		}
		o.Env = append(o.Env, value)
	case "label", "l":
		if k, _, _ := strings.Cut(value, "="); k == "" {
			return fmt.Errorf("%q is not key=value", value)
		}
		if !strings.Contains(value, "=") {
			value += "="
		}
		o.Labels = append(o.Labels, value)
	case "hostname", "h":
		if value == "" || len(value) > 64 || strings.ContainsAny(value, "/ \x00") {
			return fmt.Errorf("%q is not a host name", value)
		}
		o.Hostname = value
	case "pid", "ipc", "net", "network":
		if value != "host" {
			return fmt.Errorf("%q is not supported: only host is", value)
		}
		switch key {
		case "pid":
			o.PIDHost = true
		case "ipc":
			o.IPCHost = true
		default:
			o.NetHost = true
		}
	case "shm-size":
		size, err := parseByteSize(value)
		if err != nil {
			return err
		}
		o.ShmSize = size
	case "cap-add", "cap-drop":
		name, err := capabilityName(value)
		if err != nil {
			return err
		}
		if key == "cap-add" {
			o.CapAdd = append(o.CapAdd, name)
		} else {
			o.CapDrop = append(o.CapDrop, name)
		}
	case "ulimit":
		u, err := parseUlimit(value)
		if err != nil {
			return err
		}
		o.Ulimits = append(o.Ulimits, u)
	case "volume", "v":
		b, err := parseBind(value)
		if err != nil {
			return err
		}
		o.Volumes = append(o.Volumes, b)
	case "device":
		d, err := parseDevice(value)
		if err != nil {
			return err
		}
		o.Devices = append(o.Devices, d)
	case "workdir", "w":
		if !path.IsAbs(value) || strings.ContainsRune(value, 0) {
			return fmt.Errorf("%q is not an absolute path", value)
		}
		o.Workdir = path.Clean(value)
	case "read-only":
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("%q is not true or false", value)
		}
		o.ReadOnly = b
	default:
		return errUnsupportedParameter
	}
	return nil
}

// parseByteSize reads Docker's sizes: a number of bytes with an optional unit b, k, m or
// g (powers of 1024), in either case.
func parseByteSize(s string) (int64, error) {
	number, unit := s, int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'b', 'B':
			number = s[:n-1]
		case 'k', 'K':
			number, unit = s[:n-1], 1<<10
		case 'm', 'M':
			number, unit = s[:n-1], 1<<20
		case 'g', 'G':
			number, unit = s[:n-1], 1<<30
		}
	}
	n, err := strconv.ParseInt(number, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/unit {
		return 0, fmt.Errorf("%q is not a size (a positive number with an optional unit b, k, m or g)", s)
	}
	return n * unit, nil
}

// capabilityName is a capability's CAP_ name, upper case, or ALL.
func capabilityName(s string) (string, error) {
	name := strings.ToUpper(s)
	if name == "ALL" {
		return name, nil
	}
	if !strings.HasPrefix(name, "CAP_") {
		name = "CAP_" + name
	}
	if !slices.Contains(Capabilities, name) {
		return "", fmt.Errorf("%q is not a capability", s)
	}
	return name, nil
}

// parseUlimit reads name=soft[:hard]; a single number is both limits, -1 unlimited.
func parseUlimit(s string) (Ulimit, error) {
	name, limits, ok := strings.Cut(s, "=")
	if !ok || !slices.Contains(UlimitNames, name) {
		return Ulimit{}, fmt.Errorf("%q is not name=soft[:hard] with a name of %s", s, strings.Join(UlimitNames, ", "))
	}
	soft, hard, hasHard := strings.Cut(limits, ":")
	if !hasHard {
		hard = soft
	}
	limit := func(v string) (uint64, error) {
		if v == "-1" || v == "unlimited" {
			return math.MaxUint64, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q: limit %q is not a number", s, v)
		}
		return n, nil
	}
	u := Ulimit{Name: name}
	var err error
	if u.Soft, err = limit(soft); err != nil {
		return Ulimit{}, err
	}
	if u.Hard, err = limit(hard); err != nil {
		return Ulimit{}, err
	}
	if u.Soft > u.Hard {
		return Ulimit{}, fmt.Errorf("%q: the soft limit is above the hard limit", s)
	}
	return u, nil
}

// parseBind reads host:container[:ro|rw], both paths absolute.
func parseBind(s string) (DockerBind, error) {
	parts := strings.Split(s, ":")
	bad := fmt.Errorf("%q is not host-path:container-path[:ro|rw] with absolute paths", s)
	if len(parts) < 2 || len(parts) > 3 || !path.IsAbs(parts[0]) || !path.IsAbs(parts[1]) || strings.ContainsRune(s, 0) {
		return DockerBind{}, bad
	}
	b := DockerBind{HostPath: parts[0], ContainerPath: parts[1]}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			b.ReadOnly = true
		case "rw":
		default:
			return DockerBind{}, bad
		}
	}
	return b, nil
}

// parseDevice reads host[:container][:permissions], paths absolute, permissions of r, w
// and m (default rwm).
func parseDevice(s string) (DockerDevice, error) {
	parts := strings.Split(s, ":")
	bad := fmt.Errorf("%q is not host-path[:container-path][:permissions] with absolute paths and permissions of r, w, m", s)
	if len(parts) > 3 || !path.IsAbs(parts[0]) || strings.ContainsRune(s, 0) {
		return DockerDevice{}, bad
	}
	d := DockerDevice{HostPath: parts[0], ContainerPath: parts[0], Permissions: "rwm"}
	validPerms := func(p string) bool { return p != "" && strings.Trim(p, "rwm") == "" }
	switch {
	case len(parts) == 2 && path.IsAbs(parts[1]):
		d.ContainerPath = parts[1]
	case len(parts) == 2 && validPerms(parts[1]):
		d.Permissions = parts[1]
	case len(parts) == 3 && path.IsAbs(parts[1]) && validPerms(parts[2]):
		d.ContainerPath, d.Permissions = parts[1], parts[2]
	case len(parts) != 1:
		return DockerDevice{}, bad
	}
	return d, nil
}

// Capabilities are the Linux capabilities, by their CAP_ names in the order of their
// numbers (linux/capability.h), that cap-add and cap-drop take besides ALL.
var Capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
	"CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}
