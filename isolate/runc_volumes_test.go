package isolate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/atoll/atoll/api"
)

// runToExit launches spec, waits for it to exit with status 0, destroys it and returns its
// stdout.
func runToExit(t testing.TB, r *Runc, spec LaunchSpec) string {
	t.Helper()
	runcLaunch(t, r, spec)
	paths := runcCgroupPaths(t, r, spec.ContainerID)
	if got, want := waitExit(t, r, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
		t.Errorf("status = %+v, want %+v (stderr %q)", got, want, readFile(t, filepath.Join(spec.Sandbox, "stderr")))
	}
	runcDestroy(t, r, spec, paths)
	return readFile(t, filepath.Join(spec.Sandbox, "stdout"))
}

// volumeHost is a host directory holding the file "in", for volumes of tests.
func volumeHost(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Volumes of containers on the host's filesystem: host paths and sandbox paths, read-only
// or read-write, at host paths or at paths relative to the sandbox, seen by real runc
// containers.
func TestRuncVolumes(t *testing.T) {
	type hostFile struct{ path, content string }
	tests := []struct {
		name   string
		script string
		// volumes get $HOST (a volumeHost directory) and $TARGET (an empty host
		// directory) replaced in their paths; so does script, through its environment.
		volumes []api.Volume
		user    string
		stdout  string
		// files are files the task wrote, relative to $HOST or the sandbox ($SANDBOX/…).
		files []hostFile
	}{
		{
			name:    "host path read-write at a host path",
			volumes: []api.Volume{{ContainerPath: "$TARGET", HostPath: "$HOST", Mode: api.VolumeRW}},
			script:  `cat $TARGET/in; echo out > $TARGET/out`,
			stdout:  "host\n",
			files:   []hostFile{{"$HOST/out", "out\n"}},
		},
		{
			name:    "host path read-only",
			volumes: []api.Volume{{ContainerPath: "$TARGET", HostPath: "$HOST", Mode: api.VolumeRO}},
			script:  `cat $TARGET/in; if touch $TARGET/x 2>/dev/null; then echo writable; else echo read-only; fi`,
			stdout:  "host\nread-only\n",
		},
		{
			name:    "host path source at a path relative to the sandbox",
			volumes: []api.Volume{{ContainerPath: "data/here", Mode: api.VolumeRW, Source: &api.VolumeSource{Type: api.VolumeSourceHostPath, HostPath: &api.HostPathSource{Path: "$HOST"}}}},
			script:  `cat data/here/in; cat $MESOS_SANDBOX/data/here/in; echo w > data/here/w`,
			stdout:  "host\nhost\n",
			files:   []hostFile{{"$HOST/w", "w\n"}},
		},
		{
			name:    "a host file at a path relative to the sandbox",
			volumes: []api.Volume{{ContainerPath: "conf/app.conf", HostPath: "$HOST/in", Mode: api.VolumeRO}},
			script:  `cat conf/app.conf`,
			stdout:  "host\n",
		},
		{
			name:    "relative host path: a directory of the sandbox, made for the task's user",
			volumes: []api.Volume{{ContainerPath: "$TARGET", HostPath: "cache/x", Mode: api.VolumeRW}},
			user:    "nobody",
			script:  `echo kept > $TARGET/f; ls $MESOS_SANDBOX/cache/x`,
			stdout:  "f\n",
			files:   []hostFile{{"$SANDBOX/cache/x/f", "kept\n"}},
		},
		{
			name:    "sandbox path source of type SELF",
			volumes: []api.Volume{{ContainerPath: "view", Mode: api.VolumeRW, Source: &api.VolumeSource{Type: api.VolumeSourceSandboxPath, SandboxPath: &api.SandboxPathSource{Type: api.SandboxPathSelf, Path: "a/b"}}}},
			script:  `echo v > view/f`,
			files:   []hostFile{{"$SANDBOX/a/b/f", "v\n"}},
		},
	}
	r := newTestRunc(t, t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host, target := volumeHost(t), t.TempDir()
			spec := shellSpec(t, tc.script)
			expand := func(s string) string {
				return os.Expand(s, func(name string) string {
					switch name {
					case "HOST":
						return host
					case "TARGET":
						return target
					case "SANDBOX":
						return spec.Sandbox
					}
					return "$" + name
				})
			}
			spec.Env = []string{"HOST=" + host, "TARGET=" + target}
			if tc.user != "" {
				spec.Command.User = &tc.user
			}
			spec.Container = &api.ContainerInfo{Type: "MESOS"}
			for _, v := range tc.volumes {
				v.ContainerPath, v.HostPath = expand(v.ContainerPath), expand(v.HostPath)
				if v.Source != nil && v.Source.HostPath != nil {
					v.Source.HostPath = &api.HostPathSource{Path: expand(v.Source.HostPath.Path)}
				}
				spec.Container.Volumes = append(spec.Container.Volumes, v)
			}
			if got := runToExit(t, r, spec); got != tc.stdout {
				t.Errorf("stdout = %q, want %q", got, tc.stdout)
			}
			for _, f := range tc.files {
				if got := readFile(t, expand(f.path)); got != f.content {
					t.Errorf("%s = %q, want %q", f.path, got, f.content)
				}
			}
			if entries, err := os.ReadDir(target); err != nil || len(entries) != 0 {
				t.Errorf("the host's mount point %s has %d entries (%v), want it untouched", target, len(entries), err)
			}
		})
	}
}

// A container with an image gets its volumes' mount points made in its root.
func TestRuncImageVolumes(t *testing.T) {
	images, ref := testImages(t, v1.Config{})
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Images = images })
	host := volumeHost(t)
	spec := imageSpec(t, ref, `cat /srv/data/in; echo w > /srv/data/w; cat /etc/app/in; if touch /etc/app/x 2>/dev/null; then echo writable; else echo read-only; fi`)
	spec.Container.Volumes = []api.Volume{
		{ContainerPath: "/srv/data", HostPath: host, Mode: api.VolumeRW},
		{ContainerPath: "/etc/app", HostPath: host, Mode: api.VolumeRO},
	}
	if got, want := runToExit(t, r, spec), "host\nhost\nread-only\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(host, "w")), "w\n"; got != want {
		t.Errorf("written through the volume: %q, want %q", got, want)
	}
}

func TestRuncVolumeErrors(t *testing.T) {
	vol := func(v api.Volume) func(*LaunchSpec) {
		return func(s *LaunchSpec) { s.Container = &api.ContainerInfo{Type: "MESOS", Volumes: []api.Volume{v}} }
	}
	tests := []launchErrorCase{
		{
			name:    "missing host path",
			modify:  vol(api.Volume{ContainerPath: "/srv", HostPath: "/nonexistent-xyz", Mode: api.VolumeRW}),
			wantErr: "launch $ID: volume 0 (/srv): source: stat /nonexistent-xyz: no such file or directory",
		},
		{
			name:    "relative host path leaving the sandbox",
			modify:  vol(api.Volume{ContainerPath: "/srv", HostPath: "../x", Mode: api.VolumeRW}),
			wantErr: `launch $ID: volume 0 (/srv): sandbox path: "../x" is not a path inside the sandbox`,
		},
		{
			name:    "relative container path leaving the sandbox",
			modify:  vol(api.Volume{ContainerPath: "a/../../b", HostPath: "/srv", Mode: api.VolumeRW}),
			wantErr: `launch $ID: volume 0 (a/../../b): container path: "a/../../b" is not a path inside the sandbox`,
		},
		{
			name:    "no mode",
			modify:  vol(api.Volume{ContainerPath: "/srv", HostPath: "/srv"}),
			wantErr: `launch $ID: volume 0 (/srv): mode "" is not RO or RW`,
		},
		{
			name:    "over the root",
			modify:  vol(api.Volume{ContainerPath: "/", HostPath: "/srv", Mode: api.VolumeRO}),
			wantErr: "launch $ID: volume 0 (/): a volume cannot replace the container's root",
		},
		{
			name:    "container path missing on the host without an image",
			modify:  vol(api.Volume{ContainerPath: "/nonexistent-xyz", HostPath: "/srv", Mode: api.VolumeRO}),
			wantErr: "launch $ID: volume 0 (/nonexistent-xyz): a container without an image mounts volumes at paths of the host only: stat /nonexistent-xyz: no such file or directory",
		},
		{
			name:    "no source",
			modify:  vol(api.Volume{ContainerPath: "/srv", Mode: api.VolumeRO}),
			wantErr: "launch $ID: volume 0 (/srv): the volume has no host path and no source",
		},
		{
			name:    "parent sandbox",
			modify:  vol(api.Volume{ContainerPath: "x", Mode: api.VolumeRO, Source: &api.VolumeSource{Type: api.VolumeSourceSandboxPath, SandboxPath: &api.SandboxPathSource{Type: api.SandboxPathParent, Path: "x"}}}),
			wantErr: "launch $ID: volume 0 (x): a PARENT sandbox path needs a parent container, which tasks do not have",
		},
		{
			name:    "image volume",
			modify:  vol(api.Volume{ContainerPath: "/srv", Mode: api.VolumeRO, Image: &api.Image{Type: "DOCKER"}}),
			wantErr: "launch $ID: volume 0 (/srv): image volumes are not supported by the runc containerizer",
		},
	}
	r := newTestRunc(t, t.TempDir())
	testLaunchErrors(t, r, tests, func(t testing.TB) { checkNothingLeft(t, r) })
}

// persistentDisk is a disk resource that is the persistent volume id at containerPath.
func persistentDisk(id, containerPath string) api.Resource {
	return api.Resource{Name: "disk", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 10}, Disk: &api.DiskInfo{
		Persistence: &api.DiskPersistence{ID: id},
		Volume:      &api.Volume{ContainerPath: containerPath, Mode: api.VolumeRW},
	}}
}

// A local persistent volume outlives its container: the next launch with the same
// persistence id sees what the last one wrote, through the volume's own path and through a
// sandbox volume at a path of the host, as Marathon apps mount them; DestroyVolume
// removes it. A volume made for a task's user is that user's.
func TestRuncPersistentVolumes(t *testing.T) {
	volumes := t.TempDir()
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.VolumesDir = volumes })
	target := t.TempDir()
	run := func(user string) string {
		t.Helper()
		spec := shellSpec(t, `echo run >> data/log; echo seen > $TARGET/seen; cat $TARGET/log`)
		spec.Env = []string{"TARGET=" + target}
		if user != "" {
			spec.Command.User = &user
		}
		spec.Resources = []api.Resource{{Name: "cpus", Type: api.Scalar, Scalar: &api.ValueScalar{Value: 1}}, persistentDisk("app#data#1", "data")}
		spec.Container = &api.ContainerInfo{Type: "MESOS", Volumes: []api.Volume{{ContainerPath: target, HostPath: "data", Mode: api.VolumeRW}}}
		return runToExit(t, r, spec)
	}
	if got := run("nobody"); got != "run\n" {
		t.Errorf("first run: %q", got)
	}
	if got := run(""); got != "run\nrun\n" {
		t.Errorf("second run: %q, want what the first wrote too", got)
	}
	dir := filepath.Join(volumes, "persistent", "app#data#1")
	if got := readFile(t, filepath.Join(dir, "seen")); got != "seen\n" {
		t.Errorf("volume's file %q", got)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; strconv.Itoa(int(uid)) != nobodyUID(t) {
		t.Errorf("volume owned by uid %d, want nobody's", uid)
	}
	if err := r.DestroyVolume("app#data#1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("destroyed volume: stat %v", err)
	}
	if err := r.DestroyVolume("../x"); err == nil || err.Error() != `persistence id: "../x" is not a volume name` {
		t.Errorf("DestroyVolume(../x) = %v", err)
	}
}

func nobodyUID(t testing.TB) string {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	return u.Uid
}

// The built-in local volume driver keeps named volumes that containers share; another
// driver is an error naming it.
func TestRuncLocalVolumeDriver(t *testing.T) {
	volumes := t.TempDir()
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.VolumesDir = volumes })
	local := func(driver string) *api.ContainerInfo {
		return &api.ContainerInfo{Type: "MESOS", Volumes: []api.Volume{{ContainerPath: "shared", Mode: api.VolumeRW,
			Source: &api.VolumeSource{Type: api.VolumeSourceDockerVolume, DockerVolume: &api.DockerVolumeSource{Driver: driver, Name: "cache"}}}}}
	}
	for i, driver := range []string{"local", ""} {
		spec := shellSpec(t, fmt.Sprintf(`echo %d >> shared/f; cat shared/f`, i))
		spec.Container = local(driver)
		want := "0\n"
		if i == 1 {
			want = "0\n1\n"
		}
		if got := runToExit(t, r, spec); got != want {
			t.Errorf("run %d: stdout %q, want %q", i, got, want)
		}
	}
	if got := readFile(t, filepath.Join(volumes, "local", "cache", "f")); got != "0\n1\n" {
		t.Errorf("local volume holds %q", got)
	}
	testLaunchErrors(t, r, []launchErrorCase{{
		name:    "another driver",
		modify:  func(s *LaunchSpec) { s.Container = local("pxd") },
		wantErr: `launch $ID: volume 0 (shared): volume driver "pxd" is not available on this agent, which has "local" only`,
	}}, func(t testing.TB) { checkNothingLeft(t, r) })
}

// A secret reaches the task as a variable and as a file only the task's user can read,
// kept outside the sandbox and gone with the container.
func TestRuncSecrets(t *testing.T) {
	r := newTestRunc(t, t.TempDir())
	secret := func(value string) *api.Secret {
		return &api.Secret{Type: api.SecretValueType, Value: &api.SecretValue{Data: []byte(value)}}
	}
	target := t.TempDir()
	spec := shellSpec(t, `echo "$TOKEN"; cat tunnel-secret; stat -c '%a %U' tunnel-secret; cat `+target)
	spec.Command.User = ptr("nobody")
	spec.Command.Environment = &api.Environment{Variables: []api.EnvironmentVariable{{Name: "TOKEN", Type: api.EnvSecret, Secret: secret("t0ken")}}}
	spec.Container = &api.ContainerInfo{Type: "MESOS", Volumes: []api.Volume{
		{ContainerPath: "tunnel-secret", Mode: api.VolumeRO, Source: &api.VolumeSource{Type: api.VolumeSourceSecret, Secret: secret("cert\n")}},
		{ContainerPath: target, Mode: api.VolumeRO, Source: &api.VolumeSource{Type: api.VolumeSourceSecret, Secret: secret("other\n")}},
	}}
	runcLaunch(t, r, spec)
	paths := runcCgroupPaths(t, r, spec.ContainerID)
	if got, want := waitExit(t, r, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
		t.Errorf("status = %+v, want %+v (stderr %q)", got, want, readFile(t, filepath.Join(spec.Sandbox, "stderr")))
	}
	if got, want := readFile(t, filepath.Join(spec.Sandbox, "stdout")), "t0ken\ncert\n400 nobody\nother\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if got := readFile(t, filepath.Join(spec.Sandbox, "tunnel-secret")); got != "" {
		t.Errorf("the sandbox's mount point holds %q, want it empty", got)
	}
	secrets := filepath.Join(r.containerDir(spec.ContainerID), runcSecretsDir)
	if got := readFile(t, filepath.Join(secrets, "0")); got != "cert\n" {
		t.Errorf("secret file %q", got)
	}
	runcDestroy(t, r, spec, paths)
	if _, err := os.Stat(secrets); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("secrets after Destroy: stat %v", err)
	}
}
