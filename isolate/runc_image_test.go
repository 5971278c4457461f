package isolate

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/isolate/image"
	"github.com/atoll/atoll/isolate/image/imagetest"
)

// testImages starts a registry on loopback serving an image of busybox, the passwd and
// group files testImagePasswd and testImageGroup, and config, and returns a RootFS of an
// image store in a fresh directory and the image's reference. When the test ends, after
// its containers are destroyed, it checks that nothing is left mounted in the store.
func testImages(t testing.TB, config v1.Config) (ImageRootFS, string) {
	t.Helper()
	requireRoot(t, "for overlay mounts")
	users := imagetest.Files(t,
		imagetest.File{Name: "etc/passwd", Body: testImagePasswd},
		imagetest.File{Name: "etc/group", Body: testImageGroup},
		imagetest.File{Name: "home/app/", Type: tar.TypeDir, Uid: 1234, Gid: 2345},
	)
	ref := imagetest.Registry(t) + "/app:1"
	imagetest.Push(t, ref, imagetest.Image(t, config, imagetest.BusyboxLayer(t), users))
	cfg := image.DefaultConfig(t.TempDir())
	cfg.Keychain = nil
	store, err := image.New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("image store: %v", err)
	}
	t.Cleanup(func() {
		store.Close()
		for _, line := range strings.Split(readFile(t, "/proc/self/mountinfo"), "\n") {
			if strings.Contains(line, cfg.Dir) {
				t.Errorf("mount left behind: %s", line)
			}
		}
	})
	return ImageRootFS{Store: store}, ref
}

// imageSpec is a launch of script in the image ref.
func imageSpec(t testing.TB, ref, script string) LaunchSpec {
	t.Helper()
	spec := shellSpec(t, script)
	spec.Container = &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{Image: &api.Image{
		Type: "DOCKER", Docker: &api.ImageDocker{Name: ref}}}}
	return spec
}

// checkRootFSes fails the test unless the store holds root filesystems for exactly the
// containers ids.
func checkRootFSes(t testing.TB, images ImageRootFS, ids ...string) {
	t.Helper()
	got, err := images.Store.Containers()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("root filesystems of containers %v, want %v", got, ids)
	}
}

func TestRuncImage(t *testing.T) {
	images, ref := testImages(t, v1.Config{})
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Images = images })
	spec := imageSpec(t, ref, `test -e /usr || echo no host /usr; echo $$ > written; touch /image-is-writable && echo image writable`)
	runcLaunch(t, r, spec)
	paths := runcCgroupPaths(t, r, spec.ContainerID)
	if got, want := waitExit(t, r, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
		t.Errorf("status = %+v, want %+v (stderr %q)", got, want, readFile(t, filepath.Join(spec.Sandbox, "stderr")))
	}
	if got, want := readFile(t, filepath.Join(spec.Sandbox, "stdout")), "no host /usr\nimage writable\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := readFile(t, filepath.Join(spec.Sandbox, "written")), "1\n"; got != want {
		t.Errorf("sandbox file = %q, want %q", got, want)
	}
	checkRootFSes(t, images, spec.ContainerID)
	runcDestroy(t, r, spec, paths)
	checkRootFSes(t, images)
}

// The image's config says what runs, where, as whom and with which variables, unless
// the task's command says otherwise.
func TestRuncImageConfig(t *testing.T) {
	images, ref := testImages(t, v1.Config{
		Entrypoint: []string{"/bin/busybox", "echo"},
		Cmd:        []string{"from-image"},
		Env:        []string{"IMG=1"},
		WorkingDir: "/work",
		User:       "app",
	})
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Images = images })
	tests := []struct {
		name    string
		command api.CommandInfo
		docker  bool
		stdout  string
		// owner, if set, is the uid of the file "owned" the task writes in the sandbox.
		owner uint32
	}{
		{
			name:    "no command value: the entrypoint and cmd",
			command: api.CommandInfo{Shell: ptr(false)},
			stdout:  "from-image\n",
		},
		{
			name:    "no command value in a DOCKER container",
			command: api.CommandInfo{Shell: ptr(false)},
			docker:  true,
			stdout:  "from-image\n",
		},
		{
			name:    "arguments replace the cmd",
			command: api.CommandInfo{Shell: ptr(false), Arguments: []string{"a", "b c"}},
			stdout:  "a b c\n",
		},
		{
			name:    "shell command in the image's working directory, as its user, with its variables",
			command: api.CommandInfo{Value: ptr(`echo "$IMG $(pwd) $(id -u) $(id -g) $HOME $MESOS_SANDBOX"; echo x > $MESOS_SANDBOX/owned`)},
			stdout:  "1 /work 1234 2345 /home/app /mnt/mesos/sandbox\n",
			owner:   1234,
		},
		{
			name:    "the command's user, looked up in the image",
			command: api.CommandInfo{Value: ptr(`echo "$(id -u) $HOME"`), User: ptr("root")},
			stdout:  "0 /root\n",
		},
		{
			name: "plain command with arguments, with the command's variables over the image's",
			command: api.CommandInfo{Shell: ptr(false), Value: ptr("/bin/sh"), Arguments: []string{"sh", "-c", `echo "$IMG"`},
				Environment: &api.Environment{Variables: []api.EnvironmentVariable{{Name: "IMG", Value: "2"}}}},
			stdout: "2\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := imageSpec(t, ref, "")
			spec.Command = tc.command
			if tc.docker {
				spec.Container = &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: ref, Network: "HOST"}}
			}
			runcLaunch(t, r, spec)
			if got, want := waitExit(t, r, spec.ContainerID), (ExitStatus{Message: "exited with status 0"}); got != want {
				t.Errorf("status = %+v, want %+v (stderr %q)", got, want, readFile(t, filepath.Join(spec.Sandbox, "stderr")))
			}
			if got := readFile(t, filepath.Join(spec.Sandbox, "stdout")); got != tc.stdout {
				t.Errorf("stdout = %q, want %q", got, tc.stdout)
			}
			if tc.owner != 0 {
				fi, err := os.Stat(filepath.Join(spec.Sandbox, "owned"))
				if err != nil {
					t.Fatal(err)
				}
				if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != tc.owner {
					t.Errorf("file written in the sandbox is uid %d's, want %d's", uid, tc.owner)
				}
			}
		})
	}
}

// A launch whose image cannot be had fails with an error that names the image, leaving
// nothing behind.
func TestRuncImageErrors(t *testing.T) {
	images, ref := testImages(t, v1.Config{})
	registry, _, _ := strings.Cut(ref, "/")
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Images = images })
	tests := []struct {
		name, ref string
		// wantErr is the error's beginning; $ID stands for the container id.
		wantErr string
		is      error
	}{
		{
			name:    "no such image",
			ref:     registry + "/nope:1",
			wantErr: "launch $ID: prepare the image's root filesystem: pull " + registry + "/nope:1: image not found in registry " + registry + ": ",
			is:      image.ErrNotFound,
		},
		{
			name:    "no such tag",
			ref:     registry + "/app:2",
			wantErr: "launch $ID: prepare the image's root filesystem: pull " + registry + "/app:2: image not found in registry " + registry + ": ",
			is:      image.ErrNotFound,
		},
		{
			// Nothing listens on port 1 of the loopback address.
			name:    "unreachable registry",
			ref:     "127.0.0.1:1/app:1",
			wantErr: "launch $ID: prepare the image's root filesystem: pull 127.0.0.1:1/app:1: registry unreachable: 127.0.0.1:1: ",
			is:      image.ErrUnreachable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := imageSpec(t, tc.ref, "echo should not run")
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			_, err := r.Launch(ctx, spec)
			want := strings.ReplaceAll(tc.wantErr, "$ID", spec.ContainerID)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, tc.is) {
				t.Fatalf("Launch error = %v, want %q… wrapping %v", err, want, tc.is)
			}
			t.Logf("Launch error: %v", err)
			checkNothingLeft(t, r)
			checkRootFSes(t, images)
			checkUnknown(t, r, spec.ContainerID)
		})
	}
}

// rootFSHook is a RootFS that calls prepared once the root filesystem is ready.
type rootFSHook struct {
	RootFS
	prepared func()
}

func (h rootFSHook) Prepare(ctx context.Context, spec LaunchSpec) (string, image.ImageConfig, error) {
	rootfs, config, err := h.RootFS.Prepare(ctx, spec)
	if err == nil {
		h.prepared()
	}
	return rootfs, config, err
}

func TestRuncLaunchAbandoned(t *testing.T) {
	images, ref := testImages(t, v1.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	// The launch is given up once the container is being made.
	hook := rootFSHook{RootFS: images, prepared: cancel}
	r := newTestRunc(t, t.TempDir(), func(c *RuncConfig) { c.Images = hook })
	spec := imageSpec(t, ref, "exec sleep 1000")
	if _, err := r.Launch(ctx, spec); !errors.Is(err, context.Canceled) {
		t.Fatalf("Launch = %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(testTimeout)
	for {
		if _, known := r.containers.find(spec.ContainerID); !known {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned container was not destroyed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkNothingLeft(t, r)
	checkRootFSes(t, images)
}
