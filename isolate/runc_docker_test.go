package isolate

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	devicesconfig "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/specconv"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/marathon"
)

// capMask is the capability mask of /proc/PID/status for the named capabilities.
func capMask(t testing.TB, names []string) string {
	t.Helper()
	var mask uint64
	for _, name := range names {
		// marathon.Capabilities are in the order of their numbers.
		bit := slices.Index(marathon.Capabilities, name)
		if bit < 0 {
			t.Fatalf("no bit for %s", name)
		}
		mask |= 1 << bit
	}
	return fmt.Sprintf("%016x", mask)
}

// boundingMask is the test process's capability bounding set, as /proc/PID/status shows it.
func boundingMask(t testing.TB) string {
	t.Helper()
	for line := range strings.Lines(readFile(t, "/proc/self/status")) {
		if mask, ok := strings.CutPrefix(line, "CapBnd:\t"); ok {
			return strings.TrimSpace(mask)
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return ""
}

// extraHostDevice is a device of the host's /dev that containers do not get by default.
func extraHostDevice(t testing.TB) string {
	t.Helper()
	devs, err := hostDevices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if !slices.ContainsFunc(specconv.AllowedDevices, func(a *devicesconfig.Device) bool { return a.Path == d.Path }) {
			return d.Path
		}
	}
	t.Fatal("the host has no device besides the default ones")
	return ""
}

// A DOCKER container's privileged flag and docker parameters, seen from inside real runc
// containers.
func TestRuncDockerSettings(t *testing.T) {
	images, ref := testImages(t, v1.Config{})
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Images = images })
	hostPID1 := strings.TrimSpace(readFile(t, "/proc/1/comm"))
	hostIPC, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	device := extraHostDevice(t)
	host := volumeHost(t)
	withDefault := func(add, drop string) []string {
		caps := slices.DeleteFunc(slices.Clone(defaultCapabilities), func(c string) bool { return c == drop })
		return append(caps, add)
	}
	tests := []struct {
		name       string
		privileged bool
		params     []api.Parameter
		volumes    []api.Volume
		script     string
		stdout     string
	}{
		{
			name:       "privileged: every capability, the host's devices, /sys writable, nothing masked",
			privileged: true,
			script: `grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; test -e ` + device + ` && echo device;
				grep -E '^sysfs /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; awk '$2 == "/proc/timer_list"' /proc/mounts | wc -l`,
			stdout: "CapEff:\t" + boundingMask(t) + "\nNoNewPrivs:\t0\ndevice\nrw\n0\n",
		},
		{
			name:       "privileged with the host's /dev and /sys as volumes, as monitoring agents have them",
			privileged: true,
			volumes: []api.Volume{
				{ContainerPath: "/dev", HostPath: "/dev", Mode: api.VolumeRO},
				{ContainerPath: "/sys", HostPath: "/sys", Mode: api.VolumeRO},
				{ContainerPath: "/host/proc", HostPath: "/proc", Mode: api.VolumeRO},
			},
			script: `test -e ` + device + ` && echo device; awk '$2 == "/dev" || $2 == "/sys" {print $2, substr($4, 1, 2)}' /proc/mounts; test -e /host/proc/1/comm && echo host proc`,
			// The container's own /dev and /sys stay below the volumes.
			stdout: "device\n/dev rw\n/sys rw\n/dev ro\n/sys ro\nhost proc\n",
		},
		{
			name:   "not privileged: default capabilities, no host devices, /sys read-only, masked paths",
			script: `grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; test -e ` + device + ` || echo no device; grep -E '^sysfs /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; awk '$2 == "/proc/timer_list"' /proc/mounts | wc -l`,
			stdout: "CapEff:\t" + capMask(t, defaultCapabilities) + "\nNoNewPrivs:\t1\nno device\nro\n1\n",
		},
		{
			name:   "cap-add and cap-drop",
			params: []api.Parameter{{Key: "cap-add", Value: "sys_admin"}, {Key: "cap-drop", Value: "CAP_CHOWN"}},
			script: `grep '^CapEff:' /proc/self/status`,
			stdout: "CapEff:\t" + capMask(t, withDefault("CAP_SYS_ADMIN", "CAP_CHOWN")) + "\n",
		},
		{
			name:   "pid=host and ipc=host: the host's namespaces",
			params: []api.Parameter{{Key: "pid", Value: "host"}, {Key: "ipc", Value: "host"}},
			script: `cat /proc/1/comm; readlink /proc/self/ns/ipc`,
			stdout: hostPID1 + "\n" + hostIPC + "\n",
		},
		{
			name: "env, hostname, workdir, shm-size, ulimit",
			params: []api.Parameter{{Key: "env", Value: "FROM_PARAM=p"}, {Key: "hostname", Value: "box"}, {Key: "workdir", Value: "/tmp"},
				{Key: "shm-size", Value: "2m"}, {Key: "ulimit", Value: "nofile=100:200"}},
			script: `echo $FROM_PARAM; hostname; pwd; grep ' /dev/shm ' /proc/mounts | grep -o 'size=[0-9]*k'; ulimit -n; ulimit -Hn`,
			stdout: "p\nbox\n/tmp\nsize=2048k\n100\n200\n",
		},
		{
			name:   "volume, device and read-only",
			params: []api.Parameter{{Key: "volume", Value: host + ":/srv/v:ro"}, {Key: "device", Value: "/dev/null:/dev/mynull:rw"}, {Key: "read-only", Value: "true"}},
			script: `cat /srv/v/in; echo x > /dev/mynull && echo device writable; if touch /x 2>/dev/null; then echo root writable; else echo root read-only; fi`,
			stdout: "host\ndevice writable\nroot read-only\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := imageSpec(t, ref, tc.script)
			spec.Container = &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: ref, Network: "HOST", Privileged: tc.privileged, Parameters: tc.params}, Volumes: tc.volumes}
			if got := runToExit(t, r, spec); got != tc.stdout {
				t.Errorf("stdout = %q, want %q", got, tc.stdout)
			}
		})
	}
}
