package isolate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/opencontainers/cgroups"
	devicesconfig "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/isolate/image"
	"github.com/atoll/atoll/isolate/network"
)

// SandboxMountPoint is where a runc container sees its sandbox, and the value of its
// MESOS_SANDBOX, as in Mesos.
const SandboxMountPoint = "/mnt/mesos/sandbox"

// cpuPeriod is the CFS period the CPU quota is a share of, in microseconds: the kernel's
// default and Mesos's, long enough that the quota's accounting costs nothing measurable.
const cpuPeriod = 100_000

// minCPUQuota is the smallest CFS quota the kernel accepts, in microseconds.
const minCPUQuota = 1_000

// minCPUShares is the smallest cpu.shares value the kernel accepts.
const minCPUShares = 2

// minMemoryMB is the smallest memory limit a runc container gets, as in Mesos: below it the
// container's init, this binary, cannot even start.
const minMemoryMB = 32

// maxMemoryMB keeps the limit in bytes within an int64.
const maxMemoryMB = math.MaxInt64 >> 20

// defaultCapabilities is what a container's processes may do as root: Docker's default set.
var defaultCapabilities = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
	"CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
}

// maskedPaths are hidden from a container (files behind /dev/null, directories behind an
// empty read-only tmpfs): they tell about the host's hardware and kernel or let a task
// disturb it. readonlyPaths stay visible but cannot be written. Both are Docker's defaults.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
		"/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
	}
	readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// hostViewSkipped are the host's top-level directories a container on the host's
// filesystem does not see: it gets fresh ones of its own (/proc, /sys, /dev, a private
// /tmp), /mnt holds its sandbox, and lost+found is nobody's business.
var hostViewSkipped = map[string]bool{
	"dev": true, "lost+found": true, "mnt": true, "proc": true, "sys": true, "tmp": true,
}

// mountNoExec are the flags of the pseudo filesystems nothing is run from.
const mountNoExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// runcProcess is the task's process, as the shim hands it to libcontainer.
type runcProcess struct {
	// Args is argv; Args[0] is looked up in the container's PATH.
	Args   []string `json:"args"`
	Env    []string `json:"env"`
	Cwd    string   `json:"cwd"`
	UID    int      `json:"uid"`
	GID    int      `json:"gid"`
	Groups []int    `json:"groups,omitempty"`
	// Stdout and Stderr are host paths the task's output is appended to.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// LogMaxSize and LogKeep rotate those files (LogRotation); zero means the defaults.
	LogMaxSize int64 `json:"log_max_size,omitempty"`
	LogKeep    int   `json:"log_keep,omitempty"`
}

// runcShimSpec is everything a shim needs to create and run one container. The agent
// builds it; the shim reads it from the descriptor it inherits.
type runcShimSpec struct {
	ID string `json:"id"`
	// Root is libcontainer's state directory, shared by the containers of one Runc.
	Root    string          `json:"root"`
	Config  *configs.Config `json:"config"`
	Process runcProcess     `json:"process"`
	// Image says that Config.Rootfs is an image's, which Destroy releases.
	Image bool `json:"image,omitempty"`
	// Bridge says that the container joined the bridge network, which Destroy leaves.
	Bridge bool `json:"bridge,omitempty"`
}

// parseRuncShimSpec decodes and checks a runcSpecFile.
func parseRuncShimSpec(data []byte) (runcShimSpec, error) {
	var spec runcShimSpec
	if err := decodeStrict(data, &spec); err != nil {
		return runcShimSpec{}, fmt.Errorf("decode the container's spec: %w", err)
	}
	if err := checkRuncID(spec.ID); err != nil {
		return runcShimSpec{}, fmt.Errorf("the container's spec: %w", err)
	}
	if spec.Config == nil || spec.Config.Cgroups == nil {
		return runcShimSpec{}, errors.New("the container's spec has no config")
	}
	if len(spec.Process.Args) == 0 {
		return runcShimSpec{}, errors.New("the container's spec has no command")
	}
	if err := (LogRotation{MaxSize: spec.Process.LogMaxSize, Keep: spec.Process.LogKeep}).validate(); err != nil {
		return runcShimSpec{}, fmt.Errorf("the container's spec: task logs: %w", err)
	}
	return spec, nil
}

// checkRuncID rejects container ids libcontainer cannot take: it allows ASCII letters,
// digits and "_+-." only, which every Mesos container id (a UUID) satisfies.
func checkRuncID(id string) error {
	if id == "" || id == "." || id == ".." {
		return fmt.Errorf("container id %q is not a valid runc container id", id)
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("_+-.", c):
		default:
			return fmt.Errorf("container id %q: only ASCII letters, digits and \"_+-.\" are allowed", id)
		}
	}
	return nil
}

// runcRequest is what a task's ContainerInfo asks of the runc containerizer.
type runcRequest struct {
	// image says the container runs an image.
	image bool
	// bridge says the container joins the agent's bridge, by the name networkName, with
	// portMappings.
	bridge       bool
	networkName  string
	portMappings []network.PortMapping
	// docker are a DOCKER container's privileged flag and parameters.
	docker dockerSettings
}

// checkRuncContainer reads what a task's container asks for, and rejects the settings
// the runc containerizer cannot honour yet. bridgeNames are the bridge's other names.
func checkRuncContainer(ci *api.ContainerInfo, bridgeNames []string) (runcRequest, error) {
	if ci == nil {
		return runcRequest{}, nil
	}
	var req runcRequest
	var err error
	if req.bridge, req.networkName, req.portMappings, err = containerNetwork(ci, bridgeNames); err != nil {
		return runcRequest{}, err
	}
	if d := ci.Docker; d != nil {
		if d.Image == "" {
			return runcRequest{}, errors.New("docker: image is required")
		}
		if req.docker, err = parseDockerSettings(d); err != nil {
			return runcRequest{}, err
		}
		if req.docker.opts.NetHost && req.bridge {
			return runcRequest{}, errors.New("docker: parameter net=host asks for the host's network, but the container joins the bridge")
		}
		if h := req.docker.opts.Hostname; h != "" && ci.Hostname != "" && h != ci.Hostname {
			return runcRequest{}, fmt.Errorf("docker: parameter hostname=%s contradicts the container's hostname %s", h, ci.Hostname)
		}
		req.image = true
		return req, nil
	}
	req.image = ci.Mesos != nil && ci.Mesos.Image != nil
	return req, nil
}

// checkResources rejects limits that are not numbers a cgroup can take.
func checkResources(cpus, memMB float64) error {
	switch {
	case math.IsNaN(cpus) || math.IsInf(cpus, 0) || cpus < 0:
		return fmt.Errorf("cpus %v is not a non-negative number", cpus)
	case math.IsNaN(memMB) || math.IsInf(memMB, 0) || memMB < 0:
		return fmt.Errorf("mem %v is not a non-negative number", memMB)
	case memMB > maxMemoryMB:
		return fmt.Errorf("mem %v MB is too large", memMB)
	}
	return nil
}

// cgroupResources turns a task's resources into cgroup limits: cpu shares (1024 a CPU)
// and a CFS quota of cpus per period, a memory limit with no swap beyond it, and the pids
// limit. A zero resource sets no limit.
func cgroupResources(cpus, memMB float64, pidsLimit int64) *cgroups.Resources {
	res := &cgroups.Resources{Devices: allowedDeviceRules()}
	if cpus > 0 {
		res.CpuShares = max(uint64(cpus*1024), minCPUShares)
		res.CpuPeriod = cpuPeriod
		res.CpuQuota = max(int64(math.Ceil(cpus*cpuPeriod)), minCPUQuota)
	}
	if memMB > 0 {
		limit := int64(max(memMB, minMemoryMB) * (1 << 20))
		res.Memory = limit
		res.MemorySwap = limit
	}
	if pidsLimit > 0 {
		res.PidsLimit = &pidsLimit
	}
	return res
}

// allowedDeviceRules are the device cgroup rules for libcontainer's default devices.
func allowedDeviceRules() []*devicesconfig.Rule {
	rules := make([]*devicesconfig.Rule, 0, len(specconv.AllowedDevices))
	for _, d := range specconv.AllowedDevices {
		rule := d.Rule
		rules = append(rules, &rule)
	}
	return rules
}

// containerMounts are the mounts every container gets, after extra ones (the host's
// directories): fresh /proc, /dev, /sys and cgroup filesystems, a private /tmp, and the
// sandbox, writable, at SandboxMountPoint.
func containerMounts(sandbox string) []*configs.Mount {
	return []*configs.Mount{
		{Source: "proc", Destination: "/proc", Device: "proc", Flags: mountNoExec},
		{Source: "tmpfs", Destination: "/dev", Device: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"},
		{Source: "devpts", Destination: "/dev/pts", Device: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{Source: "shm", Destination: "/dev/shm", Device: "tmpfs", Flags: mountNoExec, Data: "mode=1777,size=65536k"},
		{Source: "mqueue", Destination: "/dev/mqueue", Device: "mqueue", Flags: mountNoExec},
		{Source: "sysfs", Destination: "/sys", Device: "sysfs", Flags: mountNoExec | unix.MS_RDONLY},
		{Source: "cgroup", Destination: "/sys/fs/cgroup", Device: "cgroup", Flags: mountNoExec | unix.MS_RELATIME | unix.MS_RDONLY},
		{Source: "tmpfs", Destination: "/tmp", Device: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777"},
		{Source: sandbox, Destination: SandboxMountPoint, Device: "bind", Flags: unix.MS_BIND | unix.MS_REC},
	}
}

// readOnlyBind shows the host's path at the same place in the container, read-only all
// the way down: mounts below it are read-only too.
func readOnlyBind(path string) *configs.Mount {
	return &configs.Mount{
		Source:      path,
		Destination: path,
		Device:      "bind",
		Flags:       unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY,
		RecAttr:     &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY},
	}
}

// hostView is the host's top level as a container on the host's filesystem sees it:
// each directory, except hostViewSkipped, shown read-only at the same place, and each
// symlink copied (merged /usr's /bin -> usr/bin, say). Other top-level files are left out.
type hostView struct {
	dirs  []string
	links []hostLink
}

// hostLink is a top-level symlink of the host.
type hostLink struct{ name, target string }

// readHostView reads the host's top level.
func readHostView() (hostView, error) {
	entries, err := os.ReadDir("/")
	if err != nil {
		return hostView{}, fmt.Errorf("list the host's root directory: %w", err)
	}
	var v hostView
	for _, e := range entries {
		name := e.Name()
		switch {
		case hostViewSkipped[name]:
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink("/" + name)
			if err != nil {
				return hostView{}, fmt.Errorf("host view: %w", err)
			}
			v.links = append(v.links, hostLink{name, target})
		case e.IsDir():
			v.dirs = append(v.dirs, name)
		}
	}
	return v, nil
}

// mounts show the view's directories read-only.
func (v hostView) mounts() []*configs.Mount {
	mounts := make([]*configs.Mount, 0, len(v.dirs))
	for _, name := range v.dirs {
		mounts = append(mounts, readOnlyBind("/"+name))
	}
	return mounts
}

// id names the view: views with the same directories and symlinks have the same id.
func (v hostView) id() string {
	h := sha256.New()
	for _, name := range v.dirs {
		fmt.Fprintf(h, "d %q\n", name)
	}
	for _, l := range v.links {
		fmt.Fprintf(h, "l %q %q\n", l.name, l.target)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// prepareHostRoot returns the root, in dir, of a read-only view of the host's
// filesystem, and the mounts that show the host's top-level directories in it. Containers
// with the same view share one root, made by the first launch: it holds the host's
// top-level symlinks, and the mount points libcontainer makes in it, which exist after
// the first container (a fresh root would cost each launch's init a dozen directories,
// slow to create on ext4 while the last container's are being deleted). No task can
// change it: it is read-only in every container. A root is never changed or removed,
// since its containers would see that: when the host gains or loses a top-level
// directory or symlink, later containers get a new root, named by the new view's id.
func prepareHostRoot(dir string) (rootfs string, mounts []*configs.Mount, err error) {
	v, err := readHostView()
	if err != nil {
		return "", nil, err
	}
	rootfs = filepath.Join(dir, v.id())
	if fi, err := os.Lstat(rootfs); err == nil && fi.IsDir() {
		return rootfs, v.mounts(), nil
	}
	// Made aside and renamed into place, so that a root is complete once it exists.
	tmp, err := os.MkdirTemp(dir, hostRootTempPrefix)
	if err != nil {
		return "", nil, fmt.Errorf("host view: %w", err)
	}
	if err := v.populate(tmp); err != nil {
		return "", nil, fmt.Errorf("host view: make %s: %w", rootfs, errors.Join(err, removeMountPoints(tmp)))
	}
	switch err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, rootfs, unix.RENAME_NOREPLACE); {
	case errors.Is(err, unix.EEXIST):
		// A concurrent launch made it first.
		if err := removeMountPoints(tmp); err != nil {
			return "", nil, fmt.Errorf("host view: %w", err)
		}
	case err != nil:
		return "", nil, fmt.Errorf("host view: make %s: %w", rootfs, errors.Join(err, removeMountPoints(tmp)))
	}
	return rootfs, v.mounts(), nil
}

// populate makes rootfs, an empty directory, the view's root: readable by all, with
// the view's symlinks.
func (v hostView) populate(rootfs string) error {
	if err := os.Chmod(rootfs, 0o755); err != nil {
		return err
	}
	for _, l := range v.links {
		if err := os.Symlink(l.target, filepath.Join(rootfs, l.name)); err != nil {
			return err
		}
	}
	return nil
}

// hostRootTempPrefix starts the names of host roots being made.
const hostRootTempPrefix = ".tmp-"

// removeHostRootTemps removes the host roots an earlier agent process did not finish
// making, in dir.
func removeHostRootTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), hostRootTempPrefix) {
			if err := removeMountPoints(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// runcConfigParams is what a container's libcontainer configuration is made from.
type runcConfigParams struct {
	// Rootfs is the container's root: an image's root filesystem, or prepareHostRoot's
	// root of the host's view.
	Rootfs string
	// HostMounts are prepareHostRoot's mounts; with them the root is read-only.
	HostMounts []*configs.Mount
	// ReadonlyRoot makes Rootfs itself read-only.
	ReadonlyRoot bool
	// Hidden are host paths masked in the container besides maskedPaths.
	Hidden   []string
	Sandbox  string
	Hostname string
	// CgroupPath is the container's cgroup: absolute from the hierarchies' roots, or
	// relative to the cgroups of whoever creates the container.
	CgroupPath string
	Resources  *cgroups.Resources
	// NetNS is the network namespace the container joins, its endpoint's on the bridge;
	// empty for the host's network.
	NetNS string
	// ResolvConf is a file shown, read-only, as the container's /etc/resolv.conf; empty
	// for none.
	ResolvConf string
	// Volumes are mounted last, over everything else.
	Volumes []volumeMount
	// Docker are a DOCKER container's privileged flag and parameters; Devices and
	// DeviceRules are the devices they ask for (see dockerSettings.devices).
	Docker      dockerSettings
	Devices     []*devicesconfig.Device
	DeviceRules []*devicesconfig.Rule
	// AllCapabilities are those a privileged container, or cap-add=ALL, gets.
	AllCapabilities []string
}

// runcConfig is the libcontainer configuration of a container: its own mount, PID, IPC,
// UTS and cgroup namespaces (and the host's network, or the one at NetNS), Docker's
// default capabilities, no new privileges, masked and read-only /proc paths, the default
// devices, and cgroup limits.
func runcConfig(p runcConfigParams) *configs.Config {
	own := containerMounts(p.Sandbox)
	p.Docker.applyMounts(own)
	mounts := slices.Concat(p.HostMounts, own)
	if p.ResolvConf != "" {
		mounts = append(mounts, &configs.Mount{
			Source:      p.ResolvConf,
			Destination: containerResolvConf,
			Device:      "bind",
			Flags:       unix.MS_BIND | unix.MS_RDONLY | mountNoExec,
		})
	}
	for _, v := range p.Volumes {
		mounts = append(mounts, v.mount())
	}
	namespaces := configs.Namespaces{{Type: configs.NEWNS}}
	opts := p.Docker.opts
	if !opts.PIDHost {
		namespaces = append(namespaces, configs.Namespace{Type: configs.NEWPID})
	}
	if !opts.IPCHost {
		namespaces = append(namespaces, configs.Namespace{Type: configs.NEWIPC})
	}
	namespaces = append(namespaces, configs.Namespace{Type: configs.NEWUTS}, configs.Namespace{Type: configs.NEWCGROUP})
	if p.NetNS != "" {
		namespaces = append(namespaces, configs.Namespace{Type: configs.NEWNET, Path: p.NetNS})
	}
	hostname := p.Hostname
	if opts.Hostname != "" {
		hostname = opts.Hostname
	}
	devices := slices.Clone(specconv.AllowedDevices)
	for _, d := range p.Devices {
		devices = slices.DeleteFunc(devices, func(have *devicesconfig.Device) bool { return have.Path == d.Path })
		devices = append(devices, d)
	}
	resources := *p.Resources
	resources.Devices = slices.Concat(resources.Devices, p.DeviceRules)
	caps := p.Docker.capabilities(p.AllCapabilities)
	masked, readonly := slices.Concat(maskedPaths, p.Hidden), readonlyPaths
	if p.Docker.privileged {
		masked, readonly = slices.Clone(p.Hidden), nil
	}
	return &configs.Config{
		Rootfs:     p.Rootfs,
		Readonlyfs: p.ReadonlyRoot || opts.ReadOnly,
		Mounts:     mounts,
		Devices:    devices,
		Hostname:   hostname,
		Namespaces: namespaces,
		Capabilities: &configs.Capabilities{
			Bounding:  caps,
			Effective: caps,
			Permitted: caps,
		},
		NoNewPrivileges: !p.Docker.privileged,
		MaskPaths:       masked,
		ReadonlyPaths:   readonly,
		Rlimits:         p.Docker.rlimits(),
		Labels:          slices.Clone(opts.Labels),
		Cgroups: &cgroups.Cgroup{
			Path:      p.CgroupPath,
			Resources: &resources,
		},
	}
}

// taskArgs is the task's argv. libcontainer runs argv[0] itself, so a command with
// arguments runs Value with Arguments[1:]: its argv[0] is Value, not Arguments[0]. In a
// container with an image (img not nil), a command without a value runs the image's
// entrypoint followed by Arguments, or by the image's cmd when there are none, as Docker
// does.
func taskArgs(cmd api.CommandInfo, img *image.ImageConfig) ([]string, error) {
	var args []string
	switch {
	case cmd.Value != nil && *cmd.Value != "" && cmd.IsShell():
		args = []string{"/bin/sh", "-c", *cmd.Value}
	case cmd.Value != nil && *cmd.Value != "":
		args = []string{*cmd.Value}
		if len(cmd.Arguments) > 1 {
			args = append(args, cmd.Arguments[1:]...)
		}
	case img == nil:
		return nil, errors.New("command has no value")
	case len(cmd.Arguments) > 0:
		args = slices.Concat(img.Entrypoint, cmd.Arguments)
	default:
		args = slices.Concat(img.Entrypoint, img.Cmd)
	}
	if len(args) == 0 {
		return nil, errors.New("command has no value and the image has no entrypoint or cmd")
	}
	for i, a := range args {
		if strings.ContainsRune(a, 0) {
			return nil, fmt.Errorf("command argument %d contains a NUL byte", i)
		}
	}
	return args, nil
}

// runcProcessOf is the task's process and the credential it runs with (nil for root):
// its argv (see taskArgs), environment, working directory, user, and output files in the
// sandbox. Without an image (img nil), the task runs in the sandbox, as the user its
// command or else its framework names, looked up on the host, with the agent's basic
// variables. With one, whose root filesystem is rootfs, it runs in the image's working
// directory, else the sandbox, as the user its command, else the image, else its
// framework names, looked up in the image, with the image's variables. Either way the
// command's variables come next, then the agent's (spec.Env), then MESOS_SANDBOX,
// pointing at SandboxMountPoint.
func runcProcessOf(spec LaunchSpec, img *image.ImageConfig, rootfs string, docker marathon.DockerOptions) (runcProcess, *taskCredential, error) {
	args, err := taskArgs(spec.Command, img)
	if err != nil {
		return runcProcess{}, nil, err
	}
	var base []string
	var cred *taskCredential
	cwd := SandboxMountPoint
	if img == nil {
		var userEnv []string
		if cred, userEnv, err = hostUser(taskUser(spec, "")); err != nil {
			return runcProcess{}, nil, err
		}
		base = append(baseEnv(os.Environ()), userEnv...)
	} else {
		if err := checkEnvEntries("image environment entry", img.Env); err != nil {
			return runcProcess{}, nil, err
		}
		var userEnv []string
		if cred, userEnv, err = imageUser(rootfs, taskUser(spec, img.User)); err != nil {
			return runcProcess{}, nil, err
		}
		// The image's variables win over the defaults, as in Docker.
		base = slices.Concat([]string{"PATH=" + defaultPath}, userEnv, img.Env)
		if img.WorkingDir != "" {
			cwd = path.Join("/", img.WorkingDir)
		}
	}
	extra := slices.Concat(docker.Env, spec.Env, []string{"MESOS_SANDBOX=" + SandboxMountPoint})
	env, err := taskEnv(base, spec.Command.Environment, extra)
	if err != nil {
		return runcProcess{}, nil, err
	}
	if docker.Workdir != "" {
		cwd = docker.Workdir
	}
	p := runcProcess{
		Args:   args,
		Env:    env,
		Cwd:    cwd,
		Stdout: filepath.Join(spec.Sandbox, "stdout"),
		Stderr: filepath.Join(spec.Sandbox, "stderr"),
	}
	if cred != nil {
		p.UID, p.GID = int(cred.UID), int(cred.GID)
		for _, g := range cred.Groups {
			p.Groups = append(p.Groups, int(g))
		}
	}
	return p, cred, nil
}

// formatMemory says a limit in bytes in MiB, for messages.
func formatMemory(bytes int64) string {
	return strconv.FormatInt(bytes>>20, 10) + " MiB"
}
