package marathon

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
)

func TestDockerOptionsSet(t *testing.T) {
	tests := []struct {
		key, value string
		want       DockerOptions
	}{
		{"env", "A=b=c", DockerOptions{Env: []string{"A=b=c"}}},
		{"e", "A=", DockerOptions{Env: []string{"A="}}},
		{"label", "k=v", DockerOptions{Labels: []string{"k=v"}}},
		{"l", "flag", DockerOptions{Labels: []string{"flag="}}},
		{"hostname", "box", DockerOptions{Hostname: "box"}},
		{"h", "box", DockerOptions{Hostname: "box"}},
		{"pid", "host", DockerOptions{PIDHost: true}},
		{"ipc", "host", DockerOptions{IPCHost: true}},
		{"net", "host", DockerOptions{NetHost: true}},
		{"network", "host", DockerOptions{NetHost: true}},
		{"shm-size", "350m", DockerOptions{ShmSize: 350 << 20}},
		{"shm-size", "1G", DockerOptions{ShmSize: 1 << 30}},
		{"shm-size", "64k", DockerOptions{ShmSize: 64 << 10}},
		{"shm-size", "4096b", DockerOptions{ShmSize: 4096}},
		{"shm-size", "4096", DockerOptions{ShmSize: 4096}},
		{"cap-add", "sys_admin", DockerOptions{CapAdd: []string{"CAP_SYS_ADMIN"}}},
		{"cap-add", "all", DockerOptions{CapAdd: []string{"ALL"}}},
		{"cap-drop", "CAP_NET_RAW", DockerOptions{CapDrop: []string{"CAP_NET_RAW"}}},
		{"ulimit", "nofile=1024:2048", DockerOptions{Ulimits: []Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}}},
		{"ulimit", "memlock=-1", DockerOptions{Ulimits: []Ulimit{{Name: "memlock", Soft: math.MaxUint64, Hard: math.MaxUint64}}}},
		{"ulimit", "core=0", DockerOptions{Ulimits: []Ulimit{{Name: "core"}}}},
		{"volume", "/srv:/data", DockerOptions{Volumes: []DockerBind{{HostPath: "/srv", ContainerPath: "/data"}}}},
		{"v", "/srv:/data:ro", DockerOptions{Volumes: []DockerBind{{HostPath: "/srv", ContainerPath: "/data", ReadOnly: true}}}},
		{"device", "/dev/fuse", DockerOptions{Devices: []DockerDevice{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rwm"}}}},
		{"device", "/dev/fuse:rw", DockerOptions{Devices: []DockerDevice{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rw"}}}},
		{"device", "/dev/sda:/dev/xvda", DockerOptions{Devices: []DockerDevice{{HostPath: "/dev/sda", ContainerPath: "/dev/xvda", Permissions: "rwm"}}}},
		{"device", "/dev/sda:/dev/xvda:r", DockerOptions{Devices: []DockerDevice{{HostPath: "/dev/sda", ContainerPath: "/dev/xvda", Permissions: "r"}}}},
		{"workdir", "/app/./x", DockerOptions{Workdir: "/app/x"}},
		{"w", "/", DockerOptions{Workdir: "/"}},
		{"read-only", "true", DockerOptions{ReadOnly: true}},
	}
	for _, tc := range tests {
		var got DockerOptions
		if err := got.Set(tc.key, tc.value); err != nil {
			t.Errorf("Set(%q, %q) = %v", tc.key, tc.value, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Set(%q, %q): %+v, want %+v", tc.key, tc.value, got, tc.want)
		}
	}
}

func TestDockerOptionsSetRejects(t *testing.T) {
	tests := []struct{ key, value, want string }{
		{"memory", "1g", "is not supported by Atoll, which runs containers with runc, not the Docker CLI: supported are cap-add, cap-drop, device, e, env, h, hostname, ipc, l, label, net, network, pid, read-only, shm-size, ulimit, v, volume, w, workdir"},
		{"--pid", "host", errUnsupportedParameter.Error()},
		{"env", "=x", `"=x" is not NAME=value`},
		{"label", "", `"" is not key=value`},
		{"hostname", "", `"" is not a host name`},
		{"net", "bridge", `"bridge" is not supported: only host is`},
		{"shm-size", "9999999999999g", `"9999999999999g" is not a size (a positive number with an optional unit b, k, m or g)`},
		{"shm-size", "m", `"m" is not a size (a positive number with an optional unit b, k, m or g)`},
		{"cap-add", "CAP_", `"CAP_" is not a capability`},
		{"cap-drop", "FLY", `"FLY" is not a capability`},
		{"ulimit", "nofile=x", `"nofile=x": limit "x" is not a number`},
		{"ulimit", "nofile=1:x", `"nofile=1:x": limit "x" is not a number`},
		{"volume", "/a:/b:rx", `"/a:/b:rx" is not host-path:container-path[:ro|rw] with absolute paths`},
		{"volume", "/a", `"/a" is not host-path:container-path[:ro|rw] with absolute paths`},
		{"device", "/a:/b:rwx", `"/a:/b:rwx" is not host-path[:container-path][:permissions] with absolute paths and permissions of r, w, m`},
		{"device", "/a:/b:r:w", `"/a:/b:r:w" is not host-path[:container-path][:permissions] with absolute paths and permissions of r, w, m`},
		{"read-only", "", `"" is not true or false`},
	}
	for _, tc := range tests {
		var o DockerOptions
		err := o.Set(tc.key, tc.value)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Set(%q, %q) = %v, want %q", tc.key, tc.value, err, tc.want)
		}
		if !reflect.DeepEqual(o, DockerOptions{}) {
			t.Errorf("Set(%q, %q) changed the options: %+v", tc.key, tc.value, o)
		}
	}
}

// FuzzDockerOptionsSet: Set never panics; a key it does not take is the only reason for
// errUnsupportedParameter; a refused value leaves the options as they were.
func FuzzDockerOptionsSet(f *testing.F) {
	for _, seed := range [][2]string{
		{"env", "A=1"}, {"shm-size", "350m"}, {"ulimit", "nofile=1:2"}, {"volume", "/a:/b:ro"},
		{"device", "/dev/x:/dev/y:rw"}, {"cap-add", "ALL"}, {"memory", "1g"}, {"pid", "host"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		var o DockerOptions
		err := o.Set(key, value)
		if errors.Is(err, errUnsupportedParameter) == slices.Contains(SupportedDockerParameters, key) {
			t.Fatalf("Set(%q, %q) = %v for a key supported: %v", key, value, err, slices.Contains(SupportedDockerParameters, key))
		}
		if err != nil && !reflect.DeepEqual(o, DockerOptions{}) {
			t.Fatalf("Set(%q, %q) = %v and changed the options: %+v", key, value, err, o)
		}
	})
}
