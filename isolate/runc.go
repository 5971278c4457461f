package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate/image"
	"github.com/atoll/atoll/isolate/network"
)

// RuncKind is State.Kind for containers of the runc containerizer.
const RuncKind = "runc"

// DefaultCgroupParent is RuncConfig.CgroupParent's default.
const DefaultCgroupParent = "/atoll"

// DefaultTaskPidsLimit is RuncConfig.PidsLimit's default.
const DefaultTaskPidsLimit = 4096

// stopPoll is how often Destroy checks whether a killed container has stopped.
const stopPoll = 10 * time.Millisecond

// cleanupTimeout bounds the cleanup after a failed or abandoned launch, which no caller
// waits for.
const cleanupTimeout = time.Minute

// RootFS makes root filesystems from container images. Implementations are safe for
// concurrent use.
type RootFS interface {
	// Prepare returns the root filesystem of spec's image, a directory the container
	// may write to and that stays until Release, and the image's config, which says what
	// the task runs, where and as whom unless its command does (see Runc). Its errors
	// name the image.
	Prepare(ctx context.Context, spec LaunchSpec) (rootfs string, config image.ImageConfig, err error)
	// Release frees what Prepare made for the container. Destroy calls it, possibly in a
	// later agent process than the one that launched the container, and so does a failed
	// launch, even when Prepare failed.
	Release(ctx context.Context, containerID string) error
}

// RuncConfig configures the runc containerizer.
type RuncConfig struct {
	// Logger receives the containerizer's logs; nil discards them.
	Logger *slog.Logger
	// StateDir holds what outlives the agent: for each container its records and its
	// shim's log, libcontainer's state, and the roots of the containers on the host's
	// filesystem, mount points and symlinks that they share. Required; the agent passes
	// work_dir/runc. It is created if missing.
	StateDir string
	// Executable is the binary re-executed as each container's shim and init. Its main
	// (or the test binary) must call RunContainerInitIfRequested first thing. Empty means
	// os.Executable().
	Executable string
	// CgroupParent is the cgroup the containers' cgroups are made in, in every hierarchy:
	// an absolute path is from the hierarchies' roots, a relative one from the agent's
	// own cgroups. Empty means DefaultCgroupParent.
	CgroupParent string
	// PidsLimit caps the number of processes and threads of each container; zero means
	// DefaultTaskPidsLimit, a negative value no limit.
	PidsLimit int64
	// Images makes the root filesystems of containers with an image; nil rejects them.
	// A container without one runs on a read-only view of the host's filesystem.
	Images RootFS
	// HiddenPaths are absolute host paths that containers on the host's filesystem must
	// not see, such as the agent's work dir with the other tasks' sandboxes; StateDir is
	// always hidden. Each shows as an empty directory (or file).
	HiddenPaths []string
	// Network is the agent's bridge, which the containers of tasks that ask for bridge
	// networking join (see Runc); nil fails their launch. It must serve this Runc alone:
	// NewRunc removes the endpoints of containers that StateDir does not have.
	Network *network.Bridge
	// BridgeNames are other names of the bridge network: a task that asks for a network
	// of one of these names (Marathon's named container networks, like DC/OS's "dcos")
	// joins the bridge. The agent advertises them (api.AttributeNetworks) so that only
	// tasks of networks it has come to it.
	BridgeNames []string
	// VolumesDir holds the volumes that outlive their tasks: local persistent volumes
	// (persistent/<persistence id>) and the named volumes of the built-in "local" volume
	// driver (local/<name>). Empty means the directory "volumes" beside StateDir, in the
	// agent's work dir. It is created if missing.
	VolumesDir string
	// DNS are the nameservers, IP addresses, of the /etc/resolv.conf every container
	// gets, and DNSSearch its search domains (which need DNS). Without DNS, containers on
	// the host's filesystem see the host's /etc/resolv.conf and those with an image get a
	// copy of it. Either way a container on the bridge, in a network namespace of its
	// own, cannot reach a nameserver on loopback: it gets the bridge's gateway address
	// (Network.Gateway()) instead, so a DNS server the agent runs on loopback must listen
	// on the gateway address too.
	DNS       []string
	DNSSearch []string
	// TaskLogs rotates the tasks' stdout and stderr files; its zero settings mean the
	// defaults. It applies to containers launched from then on.
	TaskLogs LogRotation
}

// DefaultRuncConfig returns a config with no StateDir, which the caller must set. Logs are
// discarded, since the containerizer's errors reach the agent as return values. The
// containers' cgroups go to /atoll, outside the agent's own: a service manager stopping
// the agent must not take its containers along, and on cgroup v2 a cgroup that holds the
// agent cannot have limited children. 4096 processes are more than any task needs, and
// few enough that a fork bomb cannot starve the host. Task logs rotate at
// DefaultLogMaxSize, DefaultLogKeep of them kept (the zero TaskLogs).
func DefaultRuncConfig() RuncConfig {
	return RuncConfig{
		Logger:       slog.New(slog.DiscardHandler),
		CgroupParent: DefaultCgroupParent,
		PidsLimit:    DefaultTaskPidsLimit,
	}
}

// Validate reports a config NewRunc cannot work with.
func (c RuncConfig) Validate() error {
	if c.StateDir == "" {
		return errors.New("runc containerizer: StateDir is required")
	}
	for _, path := range c.HiddenPaths {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("runc containerizer: hidden path %q is not absolute", path)
		}
	}
	for _, name := range c.BridgeNames {
		if name == "" || name == BridgeNetwork {
			return fmt.Errorf("runc containerizer: bridge name %q: a name must be given, and other than %q", name, BridgeNetwork)
		}
	}
	if err := checkDNS(c.DNS, c.DNSSearch); err != nil {
		return fmt.Errorf("runc containerizer: %w", err)
	}
	if err := c.TaskLogs.validate(); err != nil {
		return fmt.Errorf("runc containerizer: TaskLogs: %w", err)
	}
	return nil
}

// Runc is the runc containerizer: each task runs in a container made with libcontainer,
// in its own mount, PID, IPC, UTS and cgroup namespaces, with Docker's default
// capabilities, no new privileges, masked /proc paths, and cgroup limits from its
// resources: cpu shares and a CFS quota from cpus, a memory limit (without swap) from
// mem, and RuncConfig.PidsLimit. A memory limit that kills the task is reported as
// ExitStatus.OOMKilled. Every container sees its sandbox, writable, at SandboxMountPoint
// (MESOS_SANDBOX). Needs root, cgroups (v1 or v2) and Linux 5.12 or later (recursive
// read-only mounts).
//
// Without an image the container sees the host's filesystem, read-only and without
// StateDir and RuncConfig.HiddenPaths, with a private /tmp; the task runs in the sandbox,
// as the user its command or else its framework names, with the agent's basic variables
// (PATH, LANG, …). With an image (from RuncConfig.Images) the container's root is the
// image's, writable, and the image's config applies as in Docker and Mesos: a command
// with a value runs it (through /bin/sh -c for a shell command), one without runs the
// image's entrypoint followed by the command's arguments, or by the image's cmd when it
// has none; the image's variables come first, the command's over them; the task runs in
// the image's working directory, else the sandbox, as the user its command, else the
// image, else its framework names, looked up in the image's /etc/passwd and /etc/group.
//
// A DOCKER container may be privileged (every capability the agent has, the host's
// devices, no masked paths, /sys writable, no no_new_privs) and take the docker
// parameters marathon.DockerOptions reads (env, label, hostname, pid=host, ipc=host,
// net=host, shm-size, cap-add, cap-drop, ulimit, volume, device, workdir, read-only);
// others fail its launch, naming them. Its volumes (see prepareVolumes and
// Runc.prepareVolumes) are bind mounts of host paths, of paths of its sandbox, of its
// local persistent volumes (RuncConfig.VolumesDir), of the local volume driver's named
// volumes, and of its secrets, as files only its user can read.
//
// A container is on the host's network unless its task asks for the agent's bridge
// (RuncConfig.Network): Docker's network BRIDGE, with the DockerInfo's port mappings, or a
// network_info named BridgeNetwork, with its own, as Marathon sends for networks mode
// "container/bridge". It then runs in a network namespace of its own with an address on
// the bridge, which State.NetworkInfos reports with the port mappings; Destroy takes the
// endpoint down. Its /etc/resolv.conf is as RuncConfig.DNS says.
//
// Each container has a shim: this binary re-executed (see RunContainerInitIfRequested)
// in a session of its own, the parent of the container's init. It outlives the agent,
// carries out kill requests even when the agent is gone and records how the container
// ended, so that a restarted agent's Recover finds the containers still running and
// learns how the others ended. Containers from before a reboot are reported gone.
// Should a shim die, its container runs on until the agent notices, kills it and reports
// it failed (or until the task writes to stdout or stderr, whose pipes died with the
// shim: SIGPIPE ends it).
//
// The task's stdout and stderr are pipes that the shim copies to the sandbox's files,
// rotated as RuncConfig.TaskLogs says. The container's exit is reported once its output
// is copied to the end: the init's exit ends every process of the container, and with
// them the pipes' write ends.
//
// Runc is safe for concurrent use.
type Runc struct {
	logger       *slog.Logger
	stateDir     string
	executable   string
	cgroupParent string
	pidsLimit    int64
	images       RootFS
	hidden       []string // HiddenPaths and StateDir, cleaned
	network      *network.Bridge
	bridgeNames  []string
	volumesDir   string
	dns          []string
	dnsSearch    []string
	taskLogs     LogRotation
	// bootID is the current boot's; containers recorded under another are gone.
	bootID string
	// containers is closed by Release.
	containers *containerTable[*runcContainer]

	// spareMu guards spare, a shim started ahead of the next launch, which then does not
	// wait for a shim to start (for the Go runtime's and the packages' initialization,
	// a good part of a launch); spareStarting says one is being started, spareClosed
	// that Release discarded the spare.
	spareMu       sync.Mutex
	spare         *runcShimProcess
	spareStarting bool
	spareClosed   bool
}

var _ Containerizer = (*Runc)(nil)

// runcContainer is one launched or recovered container.
type runcContainer struct {
	*containerEntry
	dir string
	// shimMu guards shim, a pidfd for the container's shim while it may run; watch polls
	// it. Release closes it for shims this process did not start; one it started is
	// watched on, to be reaped. Kill requests are sent under shimMu, one at a time.
	shimMu sync.Mutex
	shim   *os.File
	// child is the shim's command when this process started it.
	child *exec.Cmd
	// rebooted marks a container of an earlier boot: its pids may be anybody's now.
	rebooted bool
}

// NewRunc returns a runc containerizer that keeps its records in cfg.StateDir. With a
// cfg.Network, it first reconciles the bridge with StateDir: the endpoints of containers
// that started and were not destroyed stay, put back on the bridge if need be, and the
// others go (those of destroyed containers, of launches an earlier agent process did not
// finish, of other users of the bridge).
func NewRunc(cfg RuncConfig) (*Runc, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := loggerOrDiscard(cfg.Logger)
	executable, err := helperExecutable(cfg.Executable)
	if err != nil {
		return nil, fmt.Errorf("runc containerizer: find own executable for the shims: %w", err)
	}
	cgroupParent := cfg.CgroupParent
	if cgroupParent == "" {
		cgroupParent = DefaultCgroupParent
	}
	pidsLimit := cfg.PidsLimit
	if pidsLimit == 0 {
		pidsLimit = DefaultTaskPidsLimit
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("runc containerizer: state dir: %w", err)
	}
	r := &Runc{
		logger:       logger,
		stateDir:     stateDir,
		executable:   executable,
		cgroupParent: cgroupParent,
		pidsLimit:    pidsLimit,
		images:       cfg.Images,
		hidden:       []string{stateDir},
		network:      cfg.Network,
		bridgeNames:  slices.Clone(cfg.BridgeNames),
		volumesDir:   cfg.VolumesDir,
		dns:          slices.Clone(cfg.DNS),
		dnsSearch:    slices.Clone(cfg.DNSSearch),
		taskLogs:     cfg.TaskLogs,
	}
	if r.volumesDir == "" {
		r.volumesDir = filepath.Join(filepath.Dir(stateDir), "volumes")
	}
	if r.volumesDir, err = filepath.Abs(r.volumesDir); err != nil {
		return nil, fmt.Errorf("runc containerizer: volumes dir: %w", err)
	}
	r.containers = newContainerTable[*runcContainer](logger, cleanupTimeout, r.Destroy)
	for _, path := range cfg.HiddenPaths {
		r.hidden = append(r.hidden, filepath.Clean(path))
	}
	for _, dir := range []string{r.containersDir(), r.libcontainerRoot(), r.hostRootsDir(), r.volumesDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("runc containerizer: create state dir: %w", err)
		}
	}
	if err := removeHostRootTemps(r.hostRootsDir()); err != nil {
		return nil, fmt.Errorf("runc containerizer: remove unfinished host roots: %w", err)
	}
	if r.bootID, err = readBootID(); err != nil {
		return nil, fmt.Errorf("runc containerizer: %w", err)
	}
	if r.network != nil {
		r.recoverNetwork()
	}
	return r, nil
}

func (r *Runc) containersDir() string    { return filepath.Join(r.stateDir, "containers") }
func (r *Runc) libcontainerRoot() string { return filepath.Join(r.stateDir, "libcontainer") }
func (r *Runc) hostRootsDir() string     { return filepath.Join(r.stateDir, "hostroots") }
func (r *Runc) containerDir(id string) string {
	return filepath.Join(r.containersDir(), id)
}

// Launch creates the container and starts its task, and returns once the task runs or
// with the reason it could not start (an invalid command, a missing executable, an
// unknown user), having left nothing behind. A shell command that is not found is not a
// launch error: the shell starts and exits with status 127, as in Mesos. If ctx ends
// while the container is being created, Launch returns ctx's error and the container,
// should it start regardless, is killed and destroyed.
func (r *Runc) Launch(ctx context.Context, spec LaunchSpec) (State, error) {
	st, err := r.launch(ctx, spec)
	if err != nil {
		return State{}, fmt.Errorf("launch %s: %w", spec.ContainerID, err)
	}
	return st, nil
}

func (r *Runc) launch(ctx context.Context, spec LaunchSpec) (State, error) {
	if r.containers.isClosed() {
		return State{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	if err := checkRuncID(spec.ContainerID); err != nil {
		return State{}, err
	}
	req, err := checkRuncContainer(spec.Container, r.bridgeNames)
	if err != nil {
		return State{}, err
	}
	if req.image && r.images == nil {
		return State{}, errors.New("the container has an image and the runc containerizer has no image store")
	}
	if req.bridge && r.network == nil {
		return State{}, errBridgeDisabled
	}
	if err := checkResources(spec.CPUs, spec.MemMB); err != nil {
		return State{}, err
	}
	if err := checkSandbox(spec.Sandbox); err != nil {
		return State{}, err
	}

	id := spec.ContainerID
	release, ok := r.containers.reserve(id)
	if !ok {
		return State{}, errContainerExists
	}
	defer release()
	dir := r.containerDir(id)
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		return State{}, fmt.Errorf("%w: %s was not destroyed", errContainerExists, dir)
	} else if err != nil {
		return State{}, fmt.Errorf("create the container's directory: %w", err)
	}
	started := false
	defer func() {
		if started {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := r.cleanup(ctx, id, req, false); err != nil {
			r.logger.Warn("clean up after a failed launch", "container", id, "err", err)
		}
	}()

	params := runcConfigParams{
		Sandbox:    spec.Sandbox,
		CgroupPath: filepath.Join(r.cgroupParent, id),
		Resources:  cgroupResources(spec.CPUs, spec.MemMB, r.pidsLimit),
	}
	if spec.Container != nil {
		params.Hostname = spec.Container.Hostname
	}
	params.Docker = req.docker
	if req.docker.privileged || slices.Contains(req.docker.opts.CapAdd, "ALL") {
		if params.AllCapabilities, err = boundingCapabilities(); err != nil {
			return State{}, err
		}
	}
	if params.Devices, params.DeviceRules, err = req.docker.devices(); err != nil {
		return State{}, err
	}
	var imageConfig *image.ImageConfig
	if req.image {
		rootfs, config, err := r.images.Prepare(ctx, spec)
		if err != nil {
			return State{}, fmt.Errorf("prepare the image's root filesystem: %w", err)
		}
		params.Rootfs, imageConfig = rootfs, &config
	} else {
		params.ReadonlyRoot = true
		params.Hidden = r.hidden
		if params.Rootfs, params.HostMounts, err = prepareHostRoot(r.hostRootsDir()); err != nil {
			return State{}, err
		}
	}
	process, cred, err := runcProcessOf(spec, imageConfig, params.Rootfs, req.docker.opts)
	if err != nil {
		return State{}, err
	}
	process.LogMaxSize, process.LogKeep = r.taskLogs.MaxSize, r.taskLogs.Keep
	// Before the sandbox is the task user's, so that what the volumes make there is too.
	if params.Volumes, err = r.prepareVolumes(spec, req, cred); err != nil {
		return State{}, err
	}
	if cred != nil {
		if err := prepareSandbox(spec.Sandbox, process.Stdout, process.Stderr, cred); err != nil {
			return State{}, err
		}
	}
	resolvConf, err := r.resolvConf(req.image, req.bridge)
	if err != nil {
		return State{}, err
	}
	if resolvConf != nil {
		params.ResolvConf = filepath.Join(dir, runcResolvConf)
		if err := os.WriteFile(params.ResolvConf, resolvConf, 0o644); err != nil {
			return State{}, fmt.Errorf("write the container's resolv.conf: %w", err)
		}
	}
	var networks []api.NetworkInfo
	if req.bridge {
		if params.NetNS, networks, err = r.joinBridge(ctx, id, req.networkName, req.portMappings); err != nil {
			return State{}, err
		}
	}
	shimSpec := runcShimSpec{
		ID:      id,
		Root:    r.libcontainerRoot(),
		Config:  runcConfig(params),
		Process: process,
		Image:   req.image,
		Bridge:  req.bridge,
	}
	specData, err := json.Marshal(shimSpec)
	if err != nil {
		return State{}, fmt.Errorf("encode the container's spec: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, runcSpecFile), specData); err != nil {
		return State{}, fmt.Errorf("write the container's spec: %w", err)
	}
	c, err := r.startShim(ctx, spec, dir, specData, networks)
	if err != nil {
		return State{}, err
	}
	started = true
	if c.abandoned {
		return State{}, ctx.Err()
	}
	r.logger.Debug("container launched", "container", id, "task", spec.TaskID,
		"pid", c.state.PID, "shim", c.state.ShimPID)
	return c.state, nil
}

// startShim hands the container to a shim, the spare if there is one, and waits for its
// report. It returns the container, registered and watched, once it runs; if ctx ended
// first, the container is registered as abandoned, to be killed and destroyed, and
// returned so. specData is the container's spec, encoded; networks are its
// State.NetworkInfos.
func (r *Runc) startShim(ctx context.Context, spec LaunchSpec, dir string, specData []byte, networks []api.NetworkInfo) (*runcContainer, error) {
	shim, err := r.shimFor(dir, specData)
	if err != nil {
		return nil, err
	}
	defer shim.ready.Close()
	// The next launch's shim starts once this one's container runs, not to slow it down.
	defer r.replenishSpare()
	cmd := shim.cmd
	c := &runcContainer{
		containerEntry: newContainerEntry(State{
			ContainerID:  spec.ContainerID,
			Kind:         RuncKind,
			Sandbox:      spec.Sandbox,
			ShimPID:      cmd.Process.Pid,
			NetworkInfos: networks,
		}),
		dir:   dir,
		shim:  shim.pidfd,
		child: cmd,
	}
	reported := make(chan runcReady, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(shim.ready, 64<<10))
		msg, parseErr := parseRuncReady(data)
		switch {
		case err != nil:
			msg = runcReady{Error: fmt.Sprintf("read the shim's report: %v", err)}
		case len(data) == 0:
			msg = runcReady{Error: "the shim exited without reporting: " + logTail(filepath.Join(dir, runcShimLog))}
		case parseErr != nil:
			msg = runcReady{Error: parseErr.Error()}
		}
		reported <- msg
	}()
	select {
	case msg := <-reported:
		if msg.Error != "" {
			// It has destroyed what it created, or the cleanup will.
			shim.discard()
			return nil, errors.New(msg.Error)
		}
		c.state.PID, c.state.StartTime = msg.PID, msg.StartTime
	case <-ctx.Done():
		c.abandoned = true
	}
	r.containers.add(c)
	go r.watch(c, c.shim)
	if c.abandoned {
		if err := r.requestKill(c, time.Now()); err != nil {
			r.logger.Warn("kill a container whose launch was abandoned", "container", spec.ContainerID, "err", err)
		}
	}
	return c, nil
}

// runcShimProcess is a shim that waits for its container: it reads the container's
// directory and spec from input, until EOF, and reports on ready (runcReady).
type runcShimProcess struct {
	cmd   *exec.Cmd
	pidfd *os.File
	input *os.File
	ready *os.File
}

// startShimProcess starts a shim, in a session of its own, with args; its stderr is
// log, or nothing for nil, until it opens its container's log.
func (r *Runc) startShimProcess(args []string, log *os.File) (*runcShimProcess, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("shim report pipe: %w", err)
	}
	defer readyW.Close()
	inputR, inputW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		return nil, fmt.Errorf("shim input pipe: %w", err)
	}
	defer inputR.Close()
	pidfd := -1
	cmd := &exec.Cmd{
		Path:       r.executable,
		Args:       args,
		Env:        append(goRuntimeEnv(os.Environ()), runcShimEnv+"=1"),
		Dir:        "/",
		ExtraFiles: []*os.File{readyW, inputR}, // descriptors 3 and 4
		// A session of its own: the agent's exit, or a Ctrl-C on the agent's terminal,
		// must not reach the shim or its container.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd},
	}
	if log != nil {
		cmd.Stderr = log
	}
	err = cmd.Start()
	if err == nil && pidfd < 0 {
		cmd.Process.Kill()
		cmd.Wait()
		err = errors.New("no pidfd (Linux 5.3 or later is needed)")
	}
	if err == nil {
		// Non-blocking, it is polled by the runtime rather than holding a thread.
		if err = unix.SetNonblock(pidfd, true); err != nil {
			unix.Close(pidfd)
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	if err != nil {
		readyR.Close()
		inputW.Close()
		return nil, fmt.Errorf("start the shim: %w", err)
	}
	return &runcShimProcess{cmd: cmd, pidfd: os.NewFile(uintptr(pidfd), "pidfd"), input: inputW, ready: readyR}, nil
}

// handOff gives the shim its container: the container's directory and its spec, encoded.
func (p *runcShimProcess) handOff(dir string, specData []byte) error {
	_, err := p.input.Write(slices.Concat([]byte(dir), []byte{0}, specData))
	if closeErr := p.input.Close(); err == nil {
		err = closeErr
	}
	return err
}

// discard kills and reaps a shim that has no container, or failed to start it.
func (p *runcShimProcess) discard() {
	if raw, err := p.pidfd.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			unix.PidfdSendSignal(int(fd), unix.SIGKILL, nil, 0)
			// Wait uses a duplicate of the pidfd: non-blocking, it would fail rather than
			// wait for the exit.
			unix.SetNonblock(int(fd), false)
		})
	}
	p.input.Close()
	p.ready.Close()
	p.pidfd.Close()
	// Killed, it exited with an error.
	p.cmd.Wait()
}

// shimFor returns a shim for the container in dir, handed its directory and spec: the
// spare, or a new one.
func (r *Runc) shimFor(dir string, specData []byte) (*runcShimProcess, error) {
	r.spareMu.Lock()
	spare := r.spare
	r.spare = nil
	r.spareMu.Unlock()
	if spare != nil {
		err := spare.handOff(dir, specData)
		if err == nil {
			return spare, nil
		}
		r.logger.Warn("the spare shim is gone; starting another", "err", err)
		spare.discard()
	}
	log, err := os.OpenFile(filepath.Join(dir, runcShimLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the shim's log: %w", err)
	}
	defer log.Close()
	// Its directory in its arguments shows in ps which container it serves; a spare's
	// cannot.
	shim, err := r.startShimProcess([]string{runcShimName, dir}, log)
	if err != nil {
		return nil, err
	}
	if err := shim.handOff(dir, specData); err != nil {
		shim.discard()
		return nil, fmt.Errorf("hand the shim its container: %w", err)
	}
	return shim, nil
}

// replenishSpare starts a spare shim, unless there is one or Release discarded it.
func (r *Runc) replenishSpare() {
	r.spareMu.Lock()
	defer r.spareMu.Unlock()
	if r.spare != nil || r.spareStarting || r.spareClosed {
		return
	}
	r.spareStarting = true
	go func() {
		shim, err := r.startShimProcess([]string{runcShimName}, nil)
		r.spareMu.Lock()
		defer r.spareMu.Unlock()
		r.spareStarting = false
		switch {
		case err != nil:
			r.logger.Warn("cannot start a spare shim", "err", err)
		case r.spareClosed:
			shim.discard()
		default:
			r.spare = shim
		}
	}()
}

// watch waits for the container's shim to exit, reaps it if this process started it, and
// finishes the container with the exit the shim recorded. It returns early, leaving the
// container running, when Release closes the pidfd.
func (r *Runc) watch(c *runcContainer, shim *os.File) {
	err := waitReadable(shim)
	if err != nil && c.child == nil && r.containers.isClosed() {
		return
	}
	if err != nil {
		r.logger.Error("cannot wait for the shim to exit", "container", c.state.ContainerID, "err", err)
	}
	c.shimMu.Lock()
	if c.shim != nil {
		c.shim.Close()
		c.shim = nil
	}
	c.shimMu.Unlock()
	if c.child != nil {
		// Its exit status says nothing the exit record does not.
		c.child.Wait()
	}
	r.settle(c, "the shim exited")
}

// settle finishes a container whose shim is gone with the exit the shim recorded, or, if
// it recorded none, kills the container and finishes it as failed; when says how the
// shim was found gone.
func (r *Runc) settle(c *runcContainer, when string) {
	status, err := readRecord(c.dir, runcExitFile, parseRuncExitRecord)
	if err == nil {
		r.containers.finish(c, status)
		return
	}
	if !errors.Is(err, fs.ErrNotExist) {
		r.containers.finish(c, ExitStatus{Code: -1, Message: fmt.Sprintf("the container's exit record is unreadable: %v", err)})
		return
	}
	if err := r.killOrphan(c.state.ContainerID); err != nil {
		r.logger.Warn("kill a container whose shim died", "container", c.state.ContainerID, "err", err)
	}
	r.containers.finish(c, ExitStatus{Code: -1, Message: fmt.Sprintf(
		"the container's shim died without recording the task's exit (%s)", when)})
}

// killOrphan kills a container whose shim died, if libcontainer finds it still running.
func (r *Runc) killOrphan(id string) error {
	lc, err := libcontainer.Load(r.libcontainerRoot(), id)
	if errors.Is(err, libcontainer.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = lc.Signal(unix.SIGKILL)
	if errors.Is(err, libcontainer.ErrNotRunning) {
		return nil
	}
	return err
}

// Wait returns how the container ended, as soon as it has. A container that has already
// ended reports its status even when ctx is done; one still running reports ErrClosed
// once r is released.
func (r *Runc) Wait(ctx context.Context, containerID string) (ExitStatus, error) {
	return r.containers.wait(ctx, containerID)
}

// Kill has the container's shim send SIGTERM to the container's init now and SIGKILL,
// which ends every process of the container, after grace (at once when grace is zero or
// negative). The shim carries this out, so it completes even if the agent exits
// meanwhile. A later Kill with a shorter grace period brings the SIGKILL forward; a
// longer one never delays it. Killing a container that has exited does nothing. As in
// Docker, an init that installed no handler for SIGTERM does not get it, and ends at the
// SIGKILL.
func (r *Runc) Kill(ctx context.Context, containerID string, grace time.Duration) error {
	if r.containers.isClosed() {
		return fmt.Errorf("kill %s: %w", containerID, ErrClosed)
	}
	c, err := r.containers.lookup(containerID)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kill %s: %w", containerID, err)
	}
	if c.exited() {
		return nil
	}
	deadline := time.Now().Add(max(grace, 0))
	if latest := time.Unix(0, math.MaxInt64); deadline.After(latest) {
		deadline = latest
	}
	if err := r.requestKill(c, deadline); err != nil {
		return fmt.Errorf("kill %s: %w", containerID, err)
	}
	return nil
}

// requestKill records the kill deadline, unless an earlier one is recorded, and tells the
// shim to carry it out.
func (r *Runc) requestKill(c *runcContainer, deadline time.Time) error {
	c.shimMu.Lock()
	defer c.shimMu.Unlock()
	if c.shim == nil {
		// The shim has exited, so has the container; or r was released.
		return nil
	}
	if recorded, err := readRecord(c.dir, runcKillFile, parseRuncKillRecord); err == nil && recorded.Before(deadline) {
		deadline = recorded
	}
	if err := writeRecord(c.dir, runcKillFile, runcKillRecord{DeadlineUnixNano: deadline.UnixNano()}); err != nil {
		return fmt.Errorf("record the kill request: %w", err)
	}
	raw, err := c.shim.SyscallConn()
	if err != nil {
		return err
	}
	var sigErr error
	if err := raw.Control(func(fd uintptr) { sigErr = unix.PidfdSendSignal(int(fd), unix.SIGTERM, nil, 0) }); err != nil {
		return err
	}
	if sigErr != nil && !errors.Is(sigErr, unix.ESRCH) {
		return fmt.Errorf("signal the shim: %w", sigErr)
	}
	// ESRCH: the shim has just exited, and so has the container.
	return nil
}

// Recover re-attaches to containers of kind "runc" that an earlier agent process launched
// with the same StateDir. A container whose shim still runs is watched until it exits;
// one that ended meanwhile reports its recorded status at once; one whose shim died
// without recording its exit is killed and reported as failed; one from before the host
// rebooted is reported gone, and its pids, anybody's now, are left alone; one running
// that joined the bridge and lost its endpoint there (see NewRunc) is killed. Containers
// already known are left alone. Errors for individual containers are joined; the others
// are recovered regardless.
func (r *Runc) Recover(ctx context.Context, states []State) error {
	if r.containers.isClosed() {
		return fmt.Errorf("recover: %w", ErrClosed)
	}
	var errs []error
	for _, st := range states {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, fmt.Errorf("recover: %w", err))...)
		}
		if err := r.recoverOne(st); err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", st.ContainerID, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Runc) recoverOne(st State) error {
	if st.Kind != RuncKind {
		return fmt.Errorf("kind %q is not %q", st.Kind, RuncKind)
	}
	if err := checkRuncID(st.ContainerID); err != nil {
		return err
	}
	id := st.ContainerID
	release, ok := r.containers.reserve(id)
	if !ok {
		return nil
	}
	defer release()

	dir := r.containerDir(id)
	rec, err := readRecord(dir, runcShimFile, parseRuncShimRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no record of the container in %s", dir)
	}
	if err != nil {
		return err
	}
	if rec.PID != st.PID || rec.StartTime != st.StartTime {
		return fmt.Errorf("the checkpoint's pid %d (started at %d) is not the recorded %d (started at %d)",
			st.PID, st.StartTime, rec.PID, rec.StartTime)
	}
	spec, err := readRecord(dir, runcSpecFile, parseRuncShimSpec)
	if err != nil {
		return err
	}
	c := &runcContainer{
		containerEntry: newContainerEntry(State{
			ContainerID:  id,
			Kind:         RuncKind,
			Sandbox:      st.Sandbox,
			PID:          rec.PID,
			ShimPID:      rec.ShimPID,
			StartTime:    rec.StartTime,
			NetworkInfos: st.NetworkInfos,
		}),
		dir:      dir,
		rebooted: rec.BootID != r.bootID,
	}
	switch {
	case c.rebooted:
		r.containers.finish(c, ExitStatus{Code: -1, Message: "the host rebooted since the container started; it is gone"})
	default:
		shim, err := openProcess(rec.ShimPID, rec.ShimStartTime)
		if err != nil {
			return fmt.Errorf("watch the shim: %w", err)
		}
		if shim == nil {
			r.settle(c, "gone when the agent recovered")
		} else {
			c.shim = shim
			go r.watch(c, shim)
			r.killIfCutOff(c, spec)
		}
	}
	r.containers.add(c)
	r.logger.Debug("container recovered", "container", id, "pid", rec.PID, "shim", rec.ShimPID, "exited", c.exited())
	return nil
}

// killIfCutOff kills a recovered container that joined the bridge and has no endpoint
// there any more: NewRunc found it incomplete (its veth gone, say) and took it down. The
// task would run on without a network, reported running.
func (r *Runc) killIfCutOff(c *runcContainer, spec runcShimSpec) {
	if !spec.Bridge || r.network == nil {
		return
	}
	_, err := r.network.Endpoint(spec.ID)
	if err == nil {
		return
	}
	r.logger.Warn("killing a recovered container that lost its endpoint on the bridge", "container", spec.ID, "reason", err)
	if err := r.requestKill(c, time.Now()); err != nil {
		r.logger.Error("cannot kill a container that lost its endpoint on the bridge", "container", spec.ID, "err", err)
	}
}

// Destroy releases what is left of an exited container: its cgroups, libcontainer's
// state, its records, its endpoint on the bridge and its image's root filesystem; the
// sandbox stays, and so does the root of the host's view, which containers share. A
// running container is an error: kill it and wait for it first.
func (r *Runc) Destroy(ctx context.Context, containerID string) error {
	return r.containers.destroy(containerID, func(c *runcContainer) error {
		return r.cleanup(ctx, containerID, runcRequest{}, c.rebooted)
	})
}

// cleanup removes everything a container left: its cgroups and libcontainer state
// (after killing what still runs in them, unless the container is from an earlier boot),
// its endpoint on the bridge, its image's root filesystem and its directory. Its spec
// says whether it joined the bridge and ran an image; req says so for a launch that
// failed before the spec was written.
func (r *Runc) cleanup(ctx context.Context, id string, req runcRequest, rebooted bool) error {
	dir := r.containerDir(id)
	hasImage, bridge := req.image, req.bridge
	spec, err := readRecord(dir, runcSpecFile, parseRuncShimSpec)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		hasImage, bridge = hasImage || spec.Image, bridge || spec.Bridge
		if err := r.destroyContainer(ctx, spec, rebooted); err != nil {
			return err
		}
	}
	if bridge && r.network == nil {
		return errors.New("the container joined the bridge network and the runc containerizer has no bridge to take its endpoint down")
	}
	if bridge {
		if err := r.network.Detach(ctx, id); err != nil {
			return fmt.Errorf("leave the bridge network: %w", err)
		}
	}
	if hasImage && r.images == nil {
		return errors.New("the container ran an image and the runc containerizer has no image store to release it")
	}
	if hasImage {
		if err := r.images.Release(ctx, id); err != nil {
			return fmt.Errorf("release the image's root filesystem: %w", err)
		}
	}
	return removeContainerDir(dir)
}

// destroyContainer removes the container's cgroups and libcontainer state, killing
// whatever still runs in them. A container of an earlier boot has no processes or
// cgroups left, and the pids in its state may be others' now: only its files go.
func (r *Runc) destroyContainer(ctx context.Context, spec runcShimSpec, rebooted bool) error {
	if rebooted {
		if err := os.RemoveAll(filepath.Join(r.libcontainerRoot(), spec.ID)); err != nil {
			return fmt.Errorf("remove libcontainer's state: %w", err)
		}
		m, err := cgroupManager(spec.Config.Cgroups, nil)
		if err != nil {
			return err
		}
		return m.Destroy()
	}
	lc, err := libcontainer.Load(r.libcontainerRoot(), spec.ID)
	if errors.Is(err, libcontainer.ErrNotExist) {
		// Its init died before libcontainer recorded it, if it ever started.
		if err := destroyCgroups(ctx, spec.Config.Cgroups); err != nil {
			return err
		}
		if err := os.RemoveAll(filepath.Join(r.libcontainerRoot(), spec.ID)); err != nil {
			return fmt.Errorf("remove libcontainer's state: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("load the container: %w", err)
	}
	for {
		status, err := lc.Status()
		if err != nil {
			return fmt.Errorf("container status: %w", err)
		}
		if status == libcontainer.Stopped {
			break
		}
		if err := lc.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("kill the container: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the container to stop: %w", ctx.Err())
		case <-time.After(stopPoll):
		}
	}
	if err := lc.Destroy(); err != nil {
		return err
	}
	return nil
}

// removeContainerDir removes a container's directory. A container on the host's
// filesystem launched before the roots were shared (see prepareHostRoot) has its own
// there, removed without following anything: it should hold only mount points, empty
// outside the container, and symlinks, and anything else there means a mount leaked to
// the host, whose files must not be deleted.
func removeContainerDir(dir string) error {
	if err := removeMountPoints(filepath.Join(dir, runcRootfsDir)); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the container's directory: %w", err)
	}
	return nil
}

// removeMountPoints removes the tree at path if it holds only directories and symlinks.
func removeMountPoints(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := removeMountPoints(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	} else if fi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s in the container's root is neither a mount point nor a symlink: is a mount left behind?", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove the container's root: %w", err)
	}
	return nil
}

// Release lets go of the containerizer when the agent stops: the containers and their
// shims run on, for the next agent process to recover. Afterwards Launch, Kill and
// Recover fail and Wait on running containers returns ErrClosed. Shims this process
// started are still reaped when they exit. Release is idempotent; tasksKilled changes
// nothing, since no helper serves more than one container.
func (r *Runc) Release(ctx context.Context, tasksKilled bool) error {
	if !r.containers.close() {
		return nil
	}
	r.spareMu.Lock()
	spare := r.spare
	r.spare, r.spareClosed = nil, true
	r.spareMu.Unlock()
	if spare != nil {
		spare.discard()
	}
	for _, c := range r.containers.all() {
		if c.child != nil {
			continue
		}
		c.shimMu.Lock()
		if c.shim != nil {
			c.shim.Close()
			c.shim = nil
		}
		c.shimMu.Unlock()
	}
	return nil
}
