package isolate

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer/configs"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
	"github.com/atoll/atoll/isolate/image"
	"github.com/atoll/atoll/isolate/network"
)

func TestCgroupResources(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name      string
		cpus, mem float64
		pidsLimit int64
		want      cgroups.Resources
	}{
		{name: "no limits", pidsLimit: -1, want: cgroups.Resources{}},
		{
			name: "quarter of a CPU, 64 MB", cpus: 0.25, mem: 64, pidsLimit: 4096,
			want: cgroups.Resources{CpuShares: 256, CpuPeriod: 100000, CpuQuota: 25000, Memory: 64 * mib, MemorySwap: 64 * mib, PidsLimit: ptr[int64](4096)},
		},
		{
			name: "fractional MB", cpus: 1.5, mem: 100.5,
			want: cgroups.Resources{CpuShares: 1536, CpuPeriod: 100000, CpuQuota: 150000, Memory: 100.5 * mib, MemorySwap: 100.5 * mib},
		},
		{
			name: "below the kernel's and Mesos's minimums", cpus: 0.001, mem: 8,
			want: cgroups.Resources{CpuShares: 2, CpuPeriod: 100000, CpuQuota: 1000, Memory: 32 * mib, MemorySwap: 32 * mib},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := cgroupResources(tc.cpus, tc.mem, tc.pidsLimit)
			if len(got.Devices) != len(allowedDeviceRules()) || len(got.Devices) == 0 {
				t.Errorf("%d device rules, want libcontainer's %d defaults", len(got.Devices), len(allowedDeviceRules()))
			}
			got.Devices = nil
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("resources = %+v, want %+v", *got, tc.want)
			}
		})
	}
}

func TestCheckResources(t *testing.T) {
	tests := []struct {
		cpus, mem float64
		wantErr   string
	}{
		{cpus: 0, mem: 0},
		{cpus: 2, mem: 1024},
		{cpus: -0.5, wantErr: "cpus -0.5 is not a non-negative number"},
		{cpus: math.Inf(1), wantErr: "cpus +Inf is not a non-negative number"},
		{mem: math.NaN(), wantErr: "mem NaN is not a non-negative number"},
		{mem: -1, wantErr: "mem -1 is not a non-negative number"},
		{mem: 1e300, wantErr: "mem 1e+300 MB is too large"},
	}
	for _, tc := range tests {
		err := checkResources(tc.cpus, tc.mem)
		if got := errString(err); got != tc.wantErr {
			t.Errorf("checkResources(%v, %v) = %q, want %q", tc.cpus, tc.mem, got, tc.wantErr)
		}
	}
}

// errString is err's message, or "" for nil.
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCheckRuncID(t *testing.T) {
	for _, id := range []string{"c1", "0c5d3f9e-1d2b-4c43-9b53-5a0a2c1ab4ce", "a_b+c.d"} {
		if err := checkRuncID(id); err != nil {
			t.Errorf("checkRuncID(%q) = %v, want nil", id, err)
		}
	}
	for _, tc := range []struct{ id, wantErr string }{
		{"", `container id "" is not a valid runc container id`},
		{"..", `container id ".." is not a valid runc container id`},
		{"a/b", `container id "a/b": only ASCII letters, digits and "_+-." are allowed`},
		{"a b", `container id "a b": only ASCII letters, digits and "_+-." are allowed`},
		{"é", `container id "é": only ASCII letters, digits and "_+-." are allowed`},
	} {
		if got := errString(checkRuncID(tc.id)); got != tc.wantErr {
			t.Errorf("checkRuncID(%q) = %q, want %q", tc.id, got, tc.wantErr)
		}
	}
}

func TestCheckRuncContainer(t *testing.T) {
	image := &api.Image{Type: "DOCKER", Docker: &api.ImageDocker{Name: "busybox"}}
	docker := func(network string, mappings ...api.DockerPortMapping) *api.DockerInfo {
		return &api.DockerInfo{Image: "busybox", Network: network, PortMappings: mappings}
	}
	web := []network.PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: network.TCP}}
	tests := []struct {
		name string
		ci   *api.ContainerInfo
		// names are the bridge's other names.
		names   []string
		want    runcRequest
		wantErr string
	}{
		{name: "none"},
		{
			name:  "a named network that is the bridge",
			ci:    &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: "dcos", PortMappings: []api.PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: "tcp"}}}}},
			names: []string{"overlay", "dcos"},
			want:  runcRequest{bridge: true, networkName: "dcos", portMappings: web},
		},
		{
			name:    "a named network the agent does not have",
			ci:      &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: "calico"}}},
			names:   []string{"overlay", "dcos"},
			wantErr: `the runc containerizer cannot join network "calico": only "mesos-bridge", the agent's bridge, also named "overlay", "dcos"`,
		},
		{name: "hostname only", ci: &api.ContainerInfo{Type: "MESOS", Hostname: "h"}},
		{name: "mesos image", ci: &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: image}}, want: runcRequest{image: true}},
		{name: "docker image", ci: &api.ContainerInfo{Type: "DOCKER", Docker: docker("HOST")}, want: runcRequest{image: true}},
		{name: "docker default network", ci: &api.ContainerInfo{Type: "DOCKER", Docker: docker("")}, want: runcRequest{image: true}},
		{name: "docker without image", ci: &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{}}, wantErr: "docker: image is required"},
		{
			name: "docker bridge network",
			ci:   &api.ContainerInfo{Type: "DOCKER", Docker: docker("BRIDGE", api.DockerPortMapping{HostPort: 31000, ContainerPort: 80})},
			want: runcRequest{image: true, bridge: true, networkName: BridgeNetwork, portMappings: web},
		},
		{
			name: "docker bridge network, tcp and udp",
			ci:   &api.ContainerInfo{Type: "DOCKER", Docker: docker("BRIDGE", api.DockerPortMapping{HostPort: 31000, ContainerPort: 53, Protocol: "udp,tcp"})},
			want: runcRequest{image: true, bridge: true, networkName: BridgeNetwork, portMappings: []network.PortMapping{
				{HostPort: 31000, ContainerPort: 53, Protocol: network.UDP}, {HostPort: 31000, ContainerPort: 53, Protocol: network.TCP}}},
		},
		{
			name: "docker bridge network without port mappings",
			ci:   &api.ContainerInfo{Type: "DOCKER", Docker: docker("BRIDGE")},
			want: runcRequest{image: true, bridge: true, networkName: BridgeNetwork, portMappings: []network.PortMapping{}},
		},
		{
			name:    "docker bridge network with an invalid port mapping",
			ci:      &api.ContainerInfo{Type: "DOCKER", Docker: docker("BRIDGE", api.DockerPortMapping{HostPort: 31000, ContainerPort: 80}, api.DockerPortMapping{HostPort: 0, ContainerPort: 81})},
			wantErr: `docker: invalid port mapping 1 (host port 0, container port 81, protocol ""): host port 0 is out of range 1-65535`,
		},
		{
			name:    "docker port mappings on the host network",
			ci:      &api.ContainerInfo{Type: "DOCKER", Docker: docker("HOST", api.DockerPortMapping{HostPort: 31000, ContainerPort: 80})},
			wantErr: "docker: port mappings need network BRIDGE",
		},
		{
			name:    "docker none network",
			ci:      &api.ContainerInfo{Type: "DOCKER", Docker: docker("NONE")},
			wantErr: `docker: network "NONE" is not supported: use HOST or BRIDGE`,
		},
		{
			name:    "docker user network without a network_info",
			ci:      &api.ContainerInfo{Type: "DOCKER", Docker: docker("USER")},
			wantErr: `docker: network USER needs a network_info naming the network, and only "mesos-bridge", the agent's bridge, is supported`,
		},
		{
			name: "docker user network naming the bridge",
			ci: &api.ContainerInfo{Type: "DOCKER", Docker: docker("USER"), NetworkInfos: []api.NetworkInfo{
				{Name: BridgeNetwork, PortMappings: []api.PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: "tcp"}}}}},
			want: runcRequest{image: true, bridge: true, networkName: BridgeNetwork, portMappings: web},
		},
		{
			name:    "docker user network naming another network",
			ci:      &api.ContainerInfo{Type: "DOCKER", Docker: docker("USER"), NetworkInfos: []api.NetworkInfo{{Name: "overlay"}}},
			wantErr: `the runc containerizer cannot join network "overlay": only "mesos-bridge", the agent's bridge`,
		},
		{
			name:    "docker host network and the bridge",
			ci:      &api.ContainerInfo{Type: "DOCKER", Docker: docker("HOST"), NetworkInfos: []api.NetworkInfo{{Name: BridgeNetwork}}},
			wantErr: `docker: network HOST conflicts with network "mesos-bridge" in network_infos`,
		},
		{
			name: "docker port mappings in two places",
			ci: &api.ContainerInfo{Type: "DOCKER", Docker: docker("BRIDGE", api.DockerPortMapping{HostPort: 31000, ContainerPort: 80}),
				NetworkInfos: []api.NetworkInfo{{Name: BridgeNetwork, PortMappings: []api.PortMapping{{HostPort: 31001, ContainerPort: 80}}}}},
			wantErr: `docker: port mappings are given both here and in network "mesos-bridge": give them once`,
		},
		{
			name: "mesos bridge network, as Marathon sends for container/bridge",
			ci: &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{
				{Name: BridgeNetwork, PortMappings: []api.PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: "tcp"}}}}},
			want: runcRequest{bridge: true, networkName: BridgeNetwork, portMappings: web},
		},
		{
			name: "mesos bridge network with an image",
			ci:   &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: image}, NetworkInfos: []api.NetworkInfo{{Name: BridgeNetwork}}},
			want: runcRequest{image: true, bridge: true, networkName: BridgeNetwork, portMappings: []network.PortMapping{}},
		},
		{
			name: "mesos bridge network with a port mapped twice",
			ci: &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: BridgeNetwork, PortMappings: []api.PortMapping{
				{HostPort: 31000, ContainerPort: 80}, {HostPort: 31000, ContainerPort: 81}}}}},
			wantErr: `network mesos-bridge: invalid port mapping 1 (host port 31000, container port 81, protocol ""): host port 31000/tcp is already mapped by mapping 0`,
		},
		{
			name:    "bridge network joined twice",
			ci:      &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: BridgeNetwork}, {Name: BridgeNetwork}}},
			wantErr: `network_infos 1: network "mesos-bridge" is joined twice`,
		},
		{
			name:    "port mappings on an unnamed network",
			ci:      &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{PortMappings: []api.PortMapping{{HostPort: 31000, ContainerPort: 80}}}}},
			wantErr: `network_infos 0: port mappings need network "mesos-bridge"`,
		},
		{name: "unnamed network", ci: &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{}}}},
		{
			name: "privileged",
			ci:   &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: "busybox", Privileged: true}},
			want: runcRequest{image: true, docker: dockerSettings{privileged: true}},
		},
		{
			name: "docker parameters",
			ci: &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: "busybox", Parameters: []api.Parameter{
				{Key: "cap-add", Value: "ALL"}, {Key: "pid", Value: "host"}, {Key: "shm-size", Value: "1m"}}}},
			want: runcRequest{image: true, docker: dockerSettings{opts: marathon.DockerOptions{CapAdd: []string{"ALL"}, PIDHost: true, ShmSize: 1 << 20}}},
		},
		{
			name:    "unsupported docker parameter",
			ci:      &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: "busybox", Parameters: []api.Parameter{{Key: "log-driver", Value: "journald"}}}},
			wantErr: "docker: parameter 0 (log-driver=journald): is not supported by Atoll, which runs containers with runc, not the Docker CLI: supported are " + strings.Join(marathon.SupportedDockerParameters, ", "),
		},
		{
			name:    "net=host on the bridge",
			ci:      &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: "busybox", Network: "BRIDGE", Parameters: []api.Parameter{{Key: "net", Value: "host"}}}},
			wantErr: "docker: parameter net=host asks for the host's network, but the container joins the bridge",
		},
		{
			name:    "two hostnames",
			ci:      &api.ContainerInfo{Type: "DOCKER", Hostname: "a", Docker: &api.DockerInfo{Image: "busybox", Parameters: []api.Parameter{{Key: "hostname", Value: "b"}}}},
			wantErr: "docker: parameter hostname=b contradicts the container's hostname a",
		},
		{name: "volumes", ci: &api.ContainerInfo{Type: "MESOS", Volumes: []api.Volume{{ContainerPath: "/d"}}}},
		{
			name:    "named network",
			ci:      &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: "overlay"}}},
			wantErr: `the runc containerizer cannot join network "overlay": only "mesos-bridge", the agent's bridge`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkRuncContainer(tc.ci, tc.names)
			if errString(err) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("checkRuncContainer = %+v, %q; want %+v, %q", got, errString(err), tc.want, tc.wantErr)
			}
			if err != nil && strings.Contains(tc.wantErr, "port mapping ") && !errors.Is(err, network.ErrInvalidPortMapping) {
				t.Errorf("error %v does not wrap ErrInvalidPortMapping", err)
			}
		})
	}
}

func TestTaskArgs(t *testing.T) {
	img := &image.ImageConfig{Entrypoint: []string{"/bin/busybox", "echo"}, Cmd: []string{"from-image"}}
	tests := []struct {
		name    string
		cmd     api.CommandInfo
		img     *image.ImageConfig
		want    []string
		wantErr string
	}{
		{name: "shell", cmd: api.CommandInfo{Value: ptr("echo hi")}, want: []string{"/bin/sh", "-c", "echo hi"}},
		{name: "plain", cmd: api.CommandInfo{Shell: ptr(false), Value: ptr("/bin/true")}, want: []string{"/bin/true"}},
		{
			name: "plain with argv",
			cmd:  api.CommandInfo{Shell: ptr(false), Value: ptr("/bin/echo"), Arguments: []string{"echo", "a", "b"}},
			want: []string{"/bin/echo", "a", "b"},
		},
		{name: "no value", cmd: api.CommandInfo{}, wantErr: "command has no value"},
		{name: "empty value", cmd: api.CommandInfo{Value: ptr("")}, wantErr: "command has no value"},
		{
			name:    "NUL in an argument",
			cmd:     api.CommandInfo{Shell: ptr(false), Value: ptr("echo"), Arguments: []string{"echo", "a\x00b"}},
			wantErr: "command argument 1 contains a NUL byte",
		},
		{name: "image: shell command", cmd: api.CommandInfo{Value: ptr("echo hi")}, img: img, want: []string{"/bin/sh", "-c", "echo hi"}},
		{
			name: "image: plain command replaces entrypoint and cmd",
			cmd:  api.CommandInfo{Shell: ptr(false), Value: ptr("/bin/ls"), Arguments: []string{"ls", "/"}},
			img:  img,
			want: []string{"/bin/ls", "/"},
		},
		{name: "image: no value runs entrypoint and cmd", cmd: api.CommandInfo{Shell: ptr(false)}, img: img, want: []string{"/bin/busybox", "echo", "from-image"}},
		{name: "image: no value, shell by default", cmd: api.CommandInfo{}, img: img, want: []string{"/bin/busybox", "echo", "from-image"}},
		{
			name: "image: arguments replace cmd",
			cmd:  api.CommandInfo{Shell: ptr(false), Arguments: []string{"a", "b"}},
			img:  img,
			want: []string{"/bin/busybox", "echo", "a", "b"},
		},
		{
			name: "image without entrypoint: arguments are the command",
			cmd:  api.CommandInfo{Shell: ptr(false), Arguments: []string{"/bin/true"}},
			img:  &image.ImageConfig{Cmd: []string{"/bin/false"}},
			want: []string{"/bin/true"},
		},
		{name: "image: cmd only", cmd: api.CommandInfo{Shell: ptr(false)}, img: &image.ImageConfig{Cmd: []string{"/bin/sh"}}, want: []string{"/bin/sh"}},
		{
			name:    "image without entrypoint or cmd",
			cmd:     api.CommandInfo{Shell: ptr(false)},
			img:     &image.ImageConfig{},
			wantErr: "command has no value and the image has no entrypoint or cmd",
		},
		{
			name:    "image: NUL in the entrypoint",
			cmd:     api.CommandInfo{},
			img:     &image.ImageConfig{Entrypoint: []string{"/bin/x\x00"}},
			wantErr: "command argument 0 contains a NUL byte",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := taskArgs(tc.cmd, tc.img)
			if errString(err) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Errorf("taskArgs = %q, %v; want %q, %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestTaskUser(t *testing.T) {
	tests := []struct {
		name                      string
		command, image, framework string
		want                      string
	}{
		{name: "nobody names one"},
		{name: "framework", framework: "fw", want: "fw"},
		{name: "image over framework", image: "img", framework: "fw", want: "img"},
		{name: "command over image", command: "cmd", image: "img", framework: "fw", want: "cmd"},
		{name: "command over framework", command: "cmd", framework: "fw", want: "cmd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := LaunchSpec{FrameworkUser: tc.framework}
			if tc.command != "" {
				spec.Command.User = &tc.command
			}
			if got := taskUser(spec, tc.image); got != tc.want {
				t.Errorf("taskUser = %q, want %q", got, tc.want)
			}
		})
	}
}

// testImagePasswd and testImageGroup are an image's /etc/passwd and /etc/group.
const (
	testImagePasswd = "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:app:/home/app:/bin/sh\nneg:x:-5:0::/:/bin/sh\n"
	testImageGroup  = "root:x:0:\napp:x:2345:\nextra:x:3456:app\n"
)

// imageRoot returns a directory standing for an image's root filesystem, holding
// testImagePasswd and testImageGroup.
func imageRoot(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"passwd": testImagePasswd, "group": testImageGroup} {
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRuncProcessOf(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	nobodyCred, _, err := lookupUser("nobody")
	if err != nil || nobodyCred == nil {
		t.Fatalf("lookupUser(nobody) = %+v, %v; want another user than the test's", nobodyCred, err)
	}
	commandEnv := &api.Environment{Variables: []api.EnvironmentVariable{{Name: "A", Value: "1"}, {Name: "MESOS_SANDBOX", Value: "/elsewhere"}}}
	img := &image.ImageConfig{
		Entrypoint: []string{"/bin/busybox", "echo"},
		Cmd:        []string{"from-image"},
		Env:        []string{"PATH=/img/bin", "IMG=1", "A=img"},
		WorkingDir: "work",
		User:       "app",
	}
	appCred := &taskCredential{UID: 1234, GID: 2345, Groups: []uint32{3456}}
	tests := []struct {
		name   string
		modify func(*LaunchSpec)
		img    *image.ImageConfig
		// rootfs is the image's root filesystem, by default imageRoot's.
		rootfs   string
		want     runcProcess
		wantCred *taskCredential
		// wantEnv is the whole environment when set; otherwise the process's environment
		// must hold each of hasEnv once.
		wantEnv []string
		hasEnv  []string
		wantErr string
	}{
		{
			name:   "host: the command's user",
			modify: func(s *LaunchSpec) { s.Command.User = ptr("nobody") },
			want: runcProcess{
				Args: []string{"/bin/sh", "-c", "true"}, Cwd: SandboxMountPoint,
				UID: int(nobodyCred.UID), GID: int(nobodyCred.GID), Groups: intIDs(nobodyCred.Groups),
			},
			wantCred: nobodyCred,
			hasEnv:   []string{"A=1", "B=2", "MESOS_SANDBOX=" + SandboxMountPoint, "HOME=" + nobody.HomeDir, "USER=nobody", "LOGNAME=nobody"},
		},
		{
			name:     "host: the framework's user",
			modify:   func(s *LaunchSpec) { s.FrameworkUser = "nobody" },
			want:     runcProcess{Args: []string{"/bin/sh", "-c", "true"}, Cwd: SandboxMountPoint, UID: int(nobodyCred.UID), GID: int(nobodyCred.GID), Groups: intIDs(nobodyCred.Groups)},
			wantCred: nobodyCred,
			hasEnv:   []string{"A=1", "USER=nobody"},
		},
		{
			name:   "image: entrypoint and cmd, working directory, user and variables",
			modify: func(s *LaunchSpec) { s.Command.Value = nil },
			img:    img,
			want: runcProcess{
				Args: []string{"/bin/busybox", "echo", "from-image"}, Cwd: "/work",
				UID: 1234, GID: 2345, Groups: []int{3456},
			},
			wantCred: appCred,
			wantEnv:  []string{"PATH=/img/bin", "HOME=/home/app", "IMG=1", "A=1", "MESOS_SANDBOX=" + SandboxMountPoint, "B=2"},
		},
		{
			name:    "image: the command's user, without working directory or PATH",
			modify:  func(s *LaunchSpec) { s.Command.User = ptr("0") },
			img:     &image.ImageConfig{User: "app"},
			want:    runcProcess{Args: []string{"/bin/sh", "-c", "true"}, Cwd: SandboxMountPoint},
			wantEnv: []string{"PATH=" + defaultPath, "HOME=/root", "A=1", "MESOS_SANDBOX=" + SandboxMountPoint, "B=2"},
		},
		{
			name:     "image: the framework's user",
			modify:   func(s *LaunchSpec) { s.FrameworkUser = "app" },
			img:      &image.ImageConfig{},
			want:     runcProcess{Args: []string{"/bin/sh", "-c", "true"}, Cwd: SandboxMountPoint, UID: 1234, GID: 2345, Groups: []int{3456}},
			wantCred: appCred,
			hasEnv:   []string{"HOME=/home/app"},
		},
		{
			name:    "image: a user it does not have",
			img:     img,
			rootfs:  "empty",
			wantErr: `user "app" in the image: unable to find user app: no matching entries in passwd file`,
		},
		{
			name:    "image: a malformed variable",
			img:     &image.ImageConfig{Env: []string{"NOEQUALS"}},
			wantErr: `image environment entry "NOEQUALS" is not NAME=value`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := LaunchSpec{
				ContainerID: "c",
				Sandbox:     "/var/sandbox",
				Command:     api.CommandInfo{Value: ptr("true"), Environment: commandEnv},
				Env:         []string{"B=2", "MESOS_SANDBOX=/var/sandbox"},
			}
			if tc.modify != nil {
				tc.modify(&spec)
			}
			rootfs := imageRoot(t)
			if tc.rootfs == "empty" {
				rootfs = t.TempDir()
			}
			p, cred, err := runcProcessOf(spec, tc.img, rootfs, marathon.DockerOptions{})
			if errString(err) != tc.wantErr {
				t.Fatalf("runcProcessOf error = %v, want %q", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			env := p.Env
			p.Env = nil
			want := tc.want
			want.Stdout, want.Stderr = "/var/sandbox/stdout", "/var/sandbox/stderr"
			if !reflect.DeepEqual(p, want) {
				t.Errorf("process = %+v, want %+v", p, want)
			}
			if !reflect.DeepEqual(cred, tc.wantCred) {
				t.Errorf("credential = %+v, want %+v", cred, tc.wantCred)
			}
			if tc.wantEnv != nil && !slices.Equal(env, tc.wantEnv) {
				t.Errorf("environment = %q, want %q", env, tc.wantEnv)
			}
			for _, kv := range tc.hasEnv {
				name, _, _ := strings.Cut(kv, "=")
				if got := envValue(env, name); name+"="+got != kv || slices.IndexFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") }) != slices.Index(env, kv) {
					t.Errorf("environment %q: want %s once", env, kv)
				}
			}
			if len(spec.Env) != 2 {
				t.Errorf("runcProcessOf changed the spec's environment to %q", spec.Env)
			}
		})
	}
}

// intIDs converts ids for comparison with runcProcess's.
func intIDs(ids []uint32) []int {
	var out []int
	for _, id := range ids {
		out = append(out, int(id))
	}
	return out
}

func TestLookupImageUser(t *testing.T) {
	tests := []struct {
		name string
		user string
		// noFiles leaves out the image's passwd and group files.
		noFiles  bool
		wantCred *taskCredential
		wantHome string
		wantErr  string
	}{
		{name: "root by default", wantHome: "/root"},
		{name: "root without passwd", noFiles: true, wantHome: "/"},
		{name: "uid without passwd", user: "7", noFiles: true, wantCred: &taskCredential{UID: 7}, wantHome: "/"},
		{name: "user without passwd", user: "app", noFiles: true, wantErr: `user "app" in the image: unable to find user app: no matching entries in passwd file`},
		{name: "user with supplementary groups", user: "app", wantCred: &taskCredential{UID: 1234, GID: 2345, Groups: []uint32{3456}}, wantHome: "/home/app"},
		{name: "uid of a user", user: "1234", wantCred: &taskCredential{UID: 1234, GID: 2345, Groups: []uint32{3456}}, wantHome: "/home/app"},
		{name: "user and group", user: "app:extra", wantCred: &taskCredential{UID: 1234, GID: 3456}, wantHome: "/home/app"},
		{name: "uid and gid unknown to the image", user: "5000:6000", wantCred: &taskCredential{UID: 5000, GID: 6000}, wantHome: "/"},
		{name: "root by uid and gid", user: "0:0", wantHome: "/root"},
		{name: "unknown user", user: "nobody", wantErr: `user "nobody" in the image: unable to find user nobody: no matching entries in passwd file`},
		{name: "unknown group", user: "app:staff", wantErr: `user "app:staff" in the image: unable to find group staff: no matching entries in group file`},
		{name: "negative uid in passwd", user: "neg", wantErr: `user "neg" in the image: id -5 is out of range`},
		{name: "uid out of range", user: "4294967296", wantErr: `user "4294967296" in the image: uids and gids must be in range 0-2147483647`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			passwd, group := []byte(testImagePasswd), []byte(testImageGroup)
			if tc.noFiles {
				passwd, group = nil, nil
			}
			cred, home, err := lookupImageUser(tc.user, passwd, group)
			if errString(err) != tc.wantErr || !reflect.DeepEqual(cred, tc.wantCred) || home != tc.wantHome {
				t.Errorf("lookupImageUser(%q) = %+v, %q, %v; want %+v, %q, %q", tc.user, cred, home, err, tc.wantCred, tc.wantHome, tc.wantErr)
			}
		})
	}
}

func FuzzLookupImageUser(f *testing.F) {
	f.Add("app", []byte(testImagePasswd), []byte(testImageGroup))
	f.Add("1234:extra", []byte(testImagePasswd), []byte(testImageGroup))
	f.Add("", []byte("root:x:0:0::/:/bin/sh"), []byte(""))
	f.Add("x:y:z", []byte("x:x:1:2\n::::"), []byte("y:x:-1:x,x"))
	f.Fuzz(func(t *testing.T, name string, passwd, group []byte) {
		cred, home, err := lookupImageUser(name, passwd, group)
		if err != nil {
			return
		}
		if home == "" {
			t.Errorf("lookupImageUser(%q): empty home", name)
		}
		if cred != nil {
			for _, id := range append([]uint32{cred.UID, cred.GID}, cred.Groups...) {
				if id > math.MaxInt32 {
					t.Errorf("lookupImageUser(%q): id %d out of range", name, id)
				}
			}
		}
	})
}

func TestReadImageFile(t *testing.T) {
	root := imageRoot(t)
	host := filepath.Join(t.TempDir(), "host-passwd")
	if err := os.WriteFile(host, []byte("host's"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"etc/absolute": "/etc/passwd",
		"etc/relative": "../etc/group",
		"etc/escape":   "../../../../../../../../" + strings.TrimPrefix(host, "/"),
		"etc/dir":      "/etc",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "etc", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "big"), make([]byte, maxImageUserFile+1), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path    string
		want    []byte
		wantErr string
	}{
		{path: "/etc/passwd", want: []byte(testImagePasswd)},
		{path: "/etc/absolute", want: []byte(testImagePasswd)},
		{path: "/etc/relative", want: []byte(testImageGroup)},
		{path: "/etc/missing"},
		// Resolved inside the image, the link leads nowhere.
		{path: "/etc/escape"},
		{path: "/etc/dir", wantErr: "the image's /etc/dir is not a regular file"},
		{path: "/etc/fifo", wantErr: "the image's /etc/fifo is not a regular file"},
		{path: "/etc/big", wantErr: "the image's /etc/big is larger than 4194304 bytes"},
	}
	for _, tc := range tests {
		got, err := readImageFile(root, tc.path)
		if errString(err) != tc.wantErr || !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("readImageFile(%s) = %q, %v; want %q, %q", tc.path, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRuncConfig(t *testing.T) {
	usr := readOnlyBind("/usr")
	cfg := runcConfig(runcConfigParams{
		Rootfs:       "/state/containers/c/rootfs",
		HostMounts:   []*configs.Mount{usr},
		ReadonlyRoot: true,
		Hidden:       []string{"/var/lib/atoll"},
		Sandbox:      "/var/sandbox",
		Hostname:     "h",
		CgroupPath:   "/atoll/c",
		Resources:    cgroupResources(1, 64, 4096),
	})
	var namespaces []configs.NamespaceType
	for _, ns := range cfg.Namespaces {
		namespaces = append(namespaces, ns.Type)
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s, want a new one", ns.Type, ns.Path)
		}
	}
	if want := []configs.NamespaceType{configs.NEWNS, configs.NEWPID, configs.NEWIPC, configs.NEWUTS, configs.NEWCGROUP}; !slices.Equal(namespaces, want) {
		t.Errorf("namespaces = %v, want %v", namespaces, want)
	}
	var destinations []string
	for _, m := range cfg.Mounts {
		destinations = append(destinations, m.Destination)
	}
	wantDestinations := []string{"/usr", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/tmp", SandboxMountPoint}
	if !slices.Equal(destinations, wantDestinations) {
		t.Errorf("mounts = %v, want %v", destinations, wantDestinations)
	}
	sandbox := cfg.Mounts[len(cfg.Mounts)-1]
	if sandbox.Source != "/var/sandbox" || sandbox.Flags != unix.MS_BIND|unix.MS_REC {
		t.Errorf("sandbox mount = %+v, want a writable bind of /var/sandbox", sandbox)
	}
	if usr.Flags != unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY || usr.RecAttr == nil || usr.RecAttr.Attr_set != unix.MOUNT_ATTR_RDONLY {
		t.Errorf("host mount = %+v, want a recursive read-only bind", usr)
	}
	switch {
	case cfg.Rootfs != "/state/containers/c/rootfs" || !cfg.Readonlyfs:
		t.Errorf("root %s read-only %v, want /state/containers/c/rootfs read-only", cfg.Rootfs, cfg.Readonlyfs)
	case !cfg.NoNewPrivileges:
		t.Error("new privileges allowed")
	case cfg.Hostname != "h":
		t.Errorf("hostname %q, want h", cfg.Hostname)
	case cfg.Cgroups.Path != "/atoll/c" || cfg.Cgroups.Resources.Memory != 64<<20:
		t.Errorf("cgroup %+v, want /atoll/c with the resources", cfg.Cgroups)
	case !slices.Equal(cfg.Capabilities.Bounding, defaultCapabilities) || !slices.Equal(cfg.Capabilities.Effective, defaultCapabilities) ||
		!slices.Equal(cfg.Capabilities.Permitted, defaultCapabilities) || len(cfg.Capabilities.Inheritable) != 0 || len(cfg.Capabilities.Ambient) != 0:
		t.Errorf("capabilities %+v, want the defaults bounding, effective and permitted only", cfg.Capabilities)
	case !slices.Equal(cfg.MaskPaths, append(slices.Clone(maskedPaths), "/var/lib/atoll")) || !slices.Equal(cfg.ReadonlyPaths, readonlyPaths):
		t.Errorf("masked %v, read-only %v", cfg.MaskPaths, cfg.ReadonlyPaths)
	}
	// The shim gets the config through JSON.
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var decoded configs.Config
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decoded.Mounts, cfg.Mounts) || !reflect.DeepEqual(decoded.Cgroups.Resources, cfg.Cgroups.Resources) {
		t.Errorf("config does not survive JSON: mounts %+v, resources %+v", decoded.Mounts, decoded.Cgroups.Resources)
	}
}

// A container on the bridge joins its endpoint's namespace, and one with a resolv.conf of
// its own sees it, read-only, over the image's or the host's.
func TestRuncConfigNetwork(t *testing.T) {
	cfg := runcConfig(runcConfigParams{
		Rootfs:     "/images/c",
		Sandbox:    "/var/sandbox",
		CgroupPath: "/atoll/c",
		Resources:  cgroupResources(1, 64, 4096),
		NetNS:      "/network/netns/c",
		ResolvConf: "/state/containers/c/resolv.conf",
	})
	wantNamespaces := configs.Namespaces{
		{Type: configs.NEWNS}, {Type: configs.NEWPID}, {Type: configs.NEWIPC}, {Type: configs.NEWUTS}, {Type: configs.NEWCGROUP},
		{Type: configs.NEWNET, Path: "/network/netns/c"},
	}
	if !reflect.DeepEqual(cfg.Namespaces, wantNamespaces) {
		t.Errorf("namespaces = %+v, want %+v", cfg.Namespaces, wantNamespaces)
	}
	wantResolv := &configs.Mount{
		Source:      "/state/containers/c/resolv.conf",
		Destination: "/etc/resolv.conf",
		Device:      "bind",
		Flags:       unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC,
	}
	if last := cfg.Mounts[len(cfg.Mounts)-1]; !reflect.DeepEqual(last, wantResolv) {
		t.Errorf("last mount = %+v, want %+v", last, wantResolv)
	}
}

func TestPrepareHostRoot(t *testing.T) {
	dir := t.TempDir()
	rootfs, mounts, err := prepareHostRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	bound := make(map[string]bool)
	for _, m := range mounts {
		if m.Source != m.Destination || !reflect.DeepEqual(m, readOnlyBind(m.Source)) {
			t.Errorf("mount %+v is not a read-only bind of the same host path", m)
		}
		bound[m.Destination] = true
	}
	entries, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var wantLinks []string
	for _, e := range entries {
		path := "/" + e.Name()
		switch {
		case hostViewSkipped[e.Name()]:
		case e.Type()&os.ModeSymlink != 0:
			wantLinks = append(wantLinks, e.Name())
			want, _ := os.Readlink(path)
			if got, err := os.Readlink(filepath.Join(rootfs, e.Name())); err != nil || got != want {
				t.Errorf("symlink %s -> %q (%v) in the view, want -> %q", path, got, err, want)
			}
		case e.IsDir():
			if !bound[path] {
				t.Errorf("host directory %s is not bound", path)
			}
		}
	}
	if !bound["/usr"] || !bound["/etc"] || bound["/proc"] || bound["/tmp"] {
		t.Errorf("bound %v, want /usr and /etc and not /proc or /tmp", bound)
	}
	if got := dirNames(t, rootfs); !slices.Equal(got, wantLinks) {
		t.Errorf("root holds %q, want the host's symlinks %q", got, wantLinks)
	}
	if fi, err := os.Stat(rootfs); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("root: %v, %v; want mode 0755", fi, err)
	}

	// Later launches, concurrent ones too, share the root.
	roots := make(chan string, 8)
	for range cap(roots) {
		go func() {
			again, againMounts, err := prepareHostRoot(dir)
			if err != nil || !reflect.DeepEqual(againMounts, mounts) {
				t.Errorf("prepareHostRoot again = %v, mounts %v; want %v", err, againMounts, mounts)
			}
			roots <- again
		}()
	}
	for range cap(roots) {
		if got := <-roots; got != rootfs {
			t.Errorf("prepareHostRoot again = %s, want %s", got, rootfs)
		}
	}

	fresh := t.TempDir()
	for range cap(roots) {
		go func() {
			root, _, err := prepareHostRoot(fresh)
			if err != nil {
				t.Errorf("concurrent prepareHostRoot: %v", err)
			}
			roots <- root
		}()
	}
	for range cap(roots) {
		if got, want := <-roots, filepath.Join(fresh, filepath.Base(rootfs)); got != want {
			t.Errorf("concurrent prepareHostRoot = %s, want %s", got, want)
		}
	}
	if got, want := dirNames(t, fresh), []string{filepath.Base(rootfs)}; !slices.Equal(got, want) {
		t.Errorf("after concurrent makes the dir holds %q, want %q", got, want)
	}
}

// dirNames lists the names in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestHostViewID(t *testing.T) {
	views := []hostView{
		{},
		{dirs: []string{"usr"}},
		{dirs: []string{"usr", "etc"}},
		{dirs: []string{"usr"}, links: []hostLink{{"bin", "usr/bin"}}},
		{dirs: []string{"usr"}, links: []hostLink{{"bin", "usr/sbin"}}},
		{dirs: []string{"usr"}, links: []hostLink{{"sbin", "usr/bin"}}},
		{links: []hostLink{{"usr", "bin"}}},
		{dirs: []string{"usr\"\nd \"etc"}},
	}
	seen := make(map[string]int)
	for i, v := range views {
		id := v.id()
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("view %d: id %q is not 32 hex digits", i, id)
		}
		if again := (hostView{dirs: slices.Clone(v.dirs), links: slices.Clone(v.links)}).id(); again != id {
			t.Errorf("view %d: id %q, then %q", i, id, again)
		}
		if j, ok := seen[id]; ok {
			t.Errorf("views %d and %d have the same id %q", j, i, id)
		}
		seen[id] = i
	}
}

func TestRemoveHostRootTemps(t *testing.T) {
	dir := t.TempDir()
	rootfs, _, err := prepareHostRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	unfinished := filepath.Join(dir, hostRootTempPrefix+"123")
	if err := os.MkdirAll(filepath.Join(unfinished, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(unfinished, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := removeHostRootTemps(dir); err != nil {
		t.Fatal(err)
	}
	if got, want := dirNames(t, dir), []string{filepath.Base(rootfs)}; !slices.Equal(got, want) {
		t.Errorf("host roots after removing the unfinished = %q, want %q", got, want)
	}
}

func TestRemoveMountPoints(t *testing.T) {
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, dir := range []string{"usr", "mnt/mesos/sandbox"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := removeMountPoints(root); err != nil {
		t.Fatalf("removeMountPoints: %v", err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("root still there: %v", err)
	}
	if err := removeMountPoints(root); err != nil {
		t.Errorf("removeMountPoints of a missing root = %v, want nil", err)
	}

	// A file in the root means a mount leaked: it is not deleted.
	leaked := filepath.Join(root, "usr", "lib", "file")
	if err := os.MkdirAll(filepath.Dir(leaked), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leaked, []byte("host data"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := leaked + " in the container's root is neither a mount point nor a symlink: is a mount left behind?"
	if err := removeMountPoints(root); errString(err) != want {
		t.Errorf("removeMountPoints = %v, want %q", err, want)
	}
	if got := readFile(t, leaked); got != "host data" {
		t.Errorf("leaked file = %q", got)
	}
}

func TestRuncConfigValidate(t *testing.T) {
	cfg := DefaultRuncConfig()
	if err := cfg.Validate(); errString(err) != "runc containerizer: StateDir is required" {
		t.Errorf("Validate without StateDir = %v", err)
	}
	if _, err := NewRunc(cfg); errString(err) != "runc containerizer: StateDir is required" {
		t.Errorf("NewRunc without StateDir = %v", err)
	}
	cfg.StateDir = t.TempDir()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	cfg.HiddenPaths = []string{"/srv", "work"}
	if err := cfg.Validate(); errString(err) != `runc containerizer: hidden path "work" is not absolute` {
		t.Errorf("Validate with a relative hidden path = %v", err)
	}
	cfg.HiddenPaths = nil
	for _, tc := range []struct {
		dns, search []string
		wantErr     string
	}{
		{dns: []string{"198.18.0.53", "::1", "fe80::1%eth0"}, search: []string{"mesos", "marathon.mesos"}},
		{dns: []string{"dns.example"}, wantErr: `runc containerizer: DNS nameserver "dns.example" is not an IP address`},
		{dns: []string{"198.18.0.53:53"}, wantErr: `runc containerizer: DNS nameserver "198.18.0.53:53" is not an IP address`},
		{search: []string{"mesos"}, wantErr: "runc containerizer: DNS search domains need DNS nameservers"},
		{dns: []string{"127.0.0.1"}, search: []string{"a b"}, wantErr: `runc containerizer: DNS search domain "a b": want 1 to 253 characters, no white space, "#" or ";"`},
		{dns: []string{"127.0.0.1"}, search: []string{""}, wantErr: `runc containerizer: DNS search domain "": want 1 to 253 characters, no white space, "#" or ";"`},
		{dns: []string{"127.0.0.1"}, search: []string{"a\nnameserver 1.2.3.4"}, wantErr: `runc containerizer: DNS search domain "a\nnameserver 1.2.3.4": want 1 to 253 characters, no white space, "#" or ";"`},
	} {
		cfg.DNS, cfg.DNSSearch = tc.dns, tc.search
		if err := cfg.Validate(); errString(err) != tc.wantErr {
			t.Errorf("Validate with DNS %q, search %q = %v, want %q", tc.dns, tc.search, err, tc.wantErr)
		}
	}
	cfg.DNS, cfg.DNSSearch = nil, nil
	for _, tc := range []struct {
		logs    LogRotation
		wantErr string
	}{
		{logs: LogRotation{MaxSize: 1, Keep: 1}},
		{logs: LogRotation{MaxSize: -1}, wantErr: "runc containerizer: TaskLogs: max size must not be negative, got -1"},
		{logs: LogRotation{Keep: -1}, wantErr: "runc containerizer: TaskLogs: keep must not be negative, got -1"},
	} {
		cfg.TaskLogs = tc.logs
		if err := cfg.Validate(); errString(err) != tc.wantErr {
			t.Errorf("Validate with TaskLogs %+v = %v, want %q", tc.logs, err, tc.wantErr)
		}
	}
}

func TestParseRuncRecords(t *testing.T) {
	tests := []struct {
		name    string
		parse   func([]byte) (any, error)
		data    string
		want    any
		wantErr string
	}{
		{
			name: "shim", parse: anyParser(parseRuncShimRecord),
			data: `{"shim_pid":10,"shim_start_time":5,"pid":11,"start_time":6,"boot_id":"b"}`,
			want: runcShimRecord{ShimPID: 10, ShimStartTime: 5, PID: 11, StartTime: 6, BootID: "b"},
		},
		{
			name: "shim without boot id", parse: anyParser(parseRuncShimRecord),
			data: `{"shim_pid":10,"shim_start_time":5,"pid":11,"start_time":6}`, wantErr: "shim record: no boot id",
		},
		{
			name: "shim without container", parse: anyParser(parseRuncShimRecord),
			data:    `{"shim_pid":10,"shim_start_time":5,"boot_id":"b"}`,
			wantErr: "shim record: container pid 0 started at 0 is not a process",
		},
		{
			name: "shim with unknown field", parse: anyParser(parseRuncShimRecord),
			data: `{"shim_pid":10,"x":1}`, wantErr: `decode shim record: json: unknown field "x"`,
		},
		{
			name: "exit", parse: anyParser(parseRuncExitRecord),
			data: `{"code":3,"signal":0,"message":"exited with status 3"}`,
			want: ExitStatus{Code: 3, Message: "exited with status 3"},
		},
		{
			name: "OOM", parse: anyParser(parseRuncExitRecord),
			data: `{"code":-1,"signal":9,"message":"m","oom_killed":true}`,
			want: ExitStatus{Code: -1, Signal: 9, OOMKilled: true, Message: "m"},
		},
		{
			name: "exit with a bad signal", parse: anyParser(parseRuncExitRecord),
			data: `{"code":-1,"signal":99,"message":"m"}`, wantErr: "exit status: signal 99 out of range",
		},
		{
			name: "exit with trailing data", parse: anyParser(parseRuncExitRecord),
			data: `{"code":0,"signal":0,"message":"m"} {}`, wantErr: "decode exit record: trailing data after the JSON value",
		},
		{
			name: "kill", parse: anyParser(parseRuncKillRecord),
			data: `{"deadline_unix_nano":1000}`, want: time.Unix(0, 1000),
		},
		{
			name: "kill without deadline", parse: anyParser(parseRuncKillRecord),
			data: `{}`, wantErr: "kill record: deadline 0 is not a time",
		},
		{
			name: "ready", parse: anyParser(parseRuncReady),
			data: `{"pid":7,"start_time":8}`, want: runcReady{PID: 7, StartTime: 8},
		},
		{
			name: "ready with an error", parse: anyParser(parseRuncReady),
			data: `{"error":"no"}`, want: runcReady{Error: "no"},
		},
		{
			name: "ready with both", parse: anyParser(parseRuncReady),
			data: `{"pid":7,"start_time":8,"error":"no"}`, wantErr: "the shim's report has both an error and a process",
		},
		{
			name: "ready with neither", parse: anyParser(parseRuncReady),
			data: `{}`, wantErr: "the shim's report: pid 0 started at 0 is not a process",
		},
		{
			name: "empty ready", parse: anyParser(parseRuncReady),
			data: ``, wantErr: "decode the shim's report: EOF",
		},
		{
			name: "spec without config", parse: anyParser(parseRuncShimSpec),
			data:    `{"id":"c","root":"/r","config":null,"process":{"args":["true"],"env":null,"cwd":"/","uid":0,"gid":0,"stdout":"","stderr":""}}`,
			wantErr: "the container's spec has no config",
		},
		{
			name: "spec with a bad id", parse: anyParser(parseRuncShimSpec),
			data: `{"id":"../x"}`, wantErr: `the container's spec: container id "../x": only ASCII letters, digits and "_+-." are allowed`,
		},
		{
			name: "spec with a negative log size", parse: anyParser(parseRuncShimSpec),
			data:    `{"id":"c","root":"/r","config":{"cgroups":{}},"process":{"args":["true"],"env":null,"cwd":"/","uid":0,"gid":0,"stdout":"","stderr":"","log_max_size":-5}}`,
			wantErr: "the container's spec: task logs: max size must not be negative, got -5",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse([]byte(tc.data))
			if errString(err) != tc.wantErr {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parsed %+v, want %+v", got, tc.want)
			}
		})
	}
}

// anyParser adapts a parser to the table's type.
func anyParser[T any](parse func([]byte) (T, error)) func([]byte) (any, error) {
	return func(data []byte) (any, error) { return parse(data) }
}

func TestRuncShimSpecRoundTrip(t *testing.T) {
	spec := runcShimSpec{
		ID:   "c",
		Root: "/state/libcontainer",
		Config: runcConfig(runcConfigParams{
			Rootfs: "/r", Sandbox: "/s", CgroupPath: "/atoll/c", Resources: cgroupResources(1, 64, 4096),
		}),
		Process: runcProcess{Args: []string{"true"}, Cwd: SandboxMountPoint, Stdout: "/s/stdout", Stderr: "/s/stderr",
			LogMaxSize: 1 << 20, LogKeep: 3},
	}
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRuncShimSpec(data)
	if err != nil {
		t.Fatalf("parseRuncShimSpec: %v", err)
	}
	if !reflect.DeepEqual(got.Process, spec.Process) || got.Config.Cgroups.Path != "/atoll/c" || len(got.Config.Mounts) != len(spec.Config.Mounts) {
		t.Errorf("spec does not survive JSON: %+v", got)
	}
}

func FuzzParseRuncRecords(f *testing.F) {
	for _, seed := range []string{
		`{"shim_pid":10,"shim_start_time":5,"pid":11,"start_time":6,"boot_id":"b"}`,
		`{"code":-1,"signal":9,"message":"m","oom_killed":true}`,
		`{"deadline_unix_nano":1000}`,
		`{"pid":7,"start_time":8}`,
		`{"error":"no"}`,
		`{"id":"c","root":"/r","config":{"cgroups":{}},"process":{"args":["true"]}}`,
		``, `null`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if rec, err := parseRuncShimRecord(data); err == nil {
			again, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := parseRuncShimRecord(again); err != nil || back != rec {
				t.Errorf("shim record %+v does not round-trip: %+v, %v", rec, back, err)
			}
		}
		if status, err := parseRuncExitRecord(data); err == nil {
			if status.Signal != 0 && status.Code != -1 {
				t.Errorf("exit record accepted with signal %d and code %d", status.Signal, status.Code)
			}
		}
		if deadline, err := parseRuncKillRecord(data); err == nil && deadline.UnixNano() <= 0 {
			t.Errorf("kill record accepted with deadline %v", deadline)
		}
		if msg, err := parseRuncReady(data); err == nil && (msg.Error == "") == (msg.PID <= 0) {
			t.Errorf("ready message accepted: %+v", msg)
		}
		if spec, err := parseRuncShimSpec(data); err == nil {
			if checkRuncID(spec.ID) != nil || spec.Config == nil || spec.Config.Cgroups == nil || len(spec.Process.Args) == 0 ||
				spec.Process.LogMaxSize < 0 || spec.Process.LogKeep < 0 {
				t.Errorf("spec accepted: %+v", spec)
			}
		}
	})
}
