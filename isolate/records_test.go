package isolate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atoll/atoll/api"
)

// statLine is a real /proc/PID/stat line; its start time (field 22) is 1234567.
const statLine = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 150 0 0 0 1 2 0 0 20 0 1 0 1234567 8630272 186 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

func TestParseStartTime(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    uint64
		wantErr string
	}{
		{name: "command with spaces and parentheses", stat: statLine, want: 1234567},
		{name: "empty", stat: "", wantErr: "stat: no command name"},
		{name: "truncated", stat: "1 (sh) S 1 1 1", wantErr: "stat: 4 fields after the command name, want more than 19"},
		{
			name:    "not a number",
			stat:    "1 (sh) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 soon 0",
			wantErr: `stat: start time: strconv.ParseUint: parsing "soon": invalid syntax`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStartTime([]byte(tc.stat))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStartTime = %d, %v, want %d", got, err, tc.want)
			}
		})
	}
}

func TestReadStartTimeSelf(t *testing.T) {
	first, err := readStartTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	second, err := readStartTime(os.Getpid())
	if err != nil || second != first || first == 0 {
		t.Errorf("start times %d, %d (%v), want one non-zero value", first, second, err)
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    ExitStatus
		wantErr string
	}{
		{
			name: "exit",
			data: `{"code":3,"signal":0,"message":"exited with status 3"}`,
			want: ExitStatus{Code: 3, Message: "exited with status 3"},
		},
		{
			name: "signal",
			data: `{"code":-1,"signal":9,"message":"killed by SIGKILL"}`,
			want: ExitStatus{Code: -1, Signal: 9, Message: "killed by SIGKILL"},
		},
		{name: "empty", data: "", wantErr: "decode exit status: EOF"},
		{name: "unknown field", data: `{"code":0,"oom":true}`, wantErr: `decode exit status: json: unknown field "oom"`},
		{name: "signal out of range", data: `{"code":-1,"signal":65}`, wantErr: "exit status: signal 65 out of range"},
		{name: "signal with code", data: `{"code":0,"signal":9}`, wantErr: "exit status: signal 9 with code 0, want -1"},
		{name: "code out of range", data: `{"code":256}`, wantErr: "exit status: code 256 out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseStatus = %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestStatusRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), statusFile)
	want := ExitStatus{Code: -1, Signal: 15, Message: "killed by SIGTERM"}
	if err := writeStatus(path, want); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := parseStatus(data); err != nil || got != want {
		t.Errorf("read back %+v, %v, want %+v", got, err, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("dir holds %v, want only the status file (no temporary files)", entries)
	}
}

func TestKillRequestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), killFile)
	want := time.Unix(1700000000, 123456789)
	if err := writeKillRequest(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err := readKillRequest(path); err != nil || !got.Equal(want) {
		t.Errorf("read back %v, %v, want %v", got, err, want)
	}
	if _, err := parseKillRequest([]byte(`{"deadline_unix_nano":0}`)); err == nil ||
		err.Error() != "kill request: deadline 0 is not a time" {
		t.Errorf("zero deadline: error = %v", err)
	}
}

func TestTaskEnv(t *testing.T) {
	tests := []struct {
		name    string
		base    []string
		cmdEnv  *api.Environment
		extra   []string
		want    []string
		wantErr string
	}{
		{
			name: "later layers replace in place",
			base: []string{"PATH=/bin", "HOME=/root"},
			cmdEnv: &api.Environment{Variables: []api.EnvironmentVariable{
				{Name: "HOME", Value: "/home/app"}, {Name: "A", Value: "1", Type: "VALUE"},
			}},
			extra: []string{"A=2", "MESOS_SANDBOX=/sb", "EMPTY="},
			want:  []string{"PATH=/bin", "HOME=/home/app", "A=2", "MESOS_SANDBOX=/sb", "EMPTY="},
		},
		{
			name:  "value with equals signs",
			extra: []string{"URL=a=b"},
			want:  []string{"URL=a=b"},
		},
		{
			name:    "variable name with equals",
			cmdEnv:  &api.Environment{Variables: []api.EnvironmentVariable{{Name: "A=B"}}},
			wantErr: `environment variable "A=B": invalid`,
		},
		{
			name:    "empty name",
			extra:   []string{"=x"},
			wantErr: `environment entry "=x" is not NAME=value`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := taskEnv(tc.base, tc.cmdEnv, tc.extra)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("taskEnv = %q, %v, want %q", got, err, tc.want)
			}
		})
	}
}

func TestBaseEnv(t *testing.T) {
	tests := []struct {
		name  string
		agent []string
		want  []string
	}{
		{
			name:  "keeps the basics in a fixed order",
			agent: []string{"SECRET_TOKEN=x", "HOME=/root", "PATH=/usr/bin", "LANG=C.UTF-8", "GOFLAGS=-race"},
			want:  []string{"PATH=/usr/bin", "HOME=/root", "LANG=C.UTF-8"},
		},
		{
			name:  "default PATH",
			agent: []string{"USER=root"},
			want:  []string{"USER=root", "PATH=" + defaultPath},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := baseEnv(tc.agent); !slices.Equal(got, tc.want) {
				t.Errorf("baseEnv = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckContainer(t *testing.T) {
	tests := []struct {
		name    string
		info    *api.ContainerInfo
		wantErr string
	}{
		{name: "none"},
		{name: "mesos without image", info: &api.ContainerInfo{Type: "MESOS", Mesos: &api.MesosInfo{}}},
		{name: "host network", info: &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{}}}},
		{
			name:    "docker",
			info:    &api.ContainerInfo{Type: "DOCKER", Docker: &api.DockerInfo{Image: "nginx"}},
			wantErr: "the process containerizer cannot run container images",
		},
		{
			name:    "volume",
			info:    &api.ContainerInfo{Type: "MESOS", Volumes: []api.Volume{{ContainerPath: "data", HostPath: "/data"}}},
			wantErr: "the process containerizer cannot mount volumes",
		},
		{
			name:    "hostname",
			info:    &api.ContainerInfo{Type: "MESOS", Hostname: "web"},
			wantErr: "the process containerizer cannot set a hostname",
		},
		{
			name:    "named network",
			info:    &api.ContainerInfo{Type: "MESOS", NetworkInfos: []api.NetworkInfo{{Name: "overlay"}}},
			wantErr: `the process containerizer cannot join network "overlay"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkContainer(tc.info)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("checkContainer = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("checkContainer = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestLookPath(t *testing.T) {
	sandbox := t.TempDir()
	bin := filepath.Join(sandbox, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"tool": 0o755, "data": 0o644} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		file    string
		path    string
		want    string
		wantErr string
	}{
		{name: "slash is taken as is", file: "./run", path: "/nowhere", want: "./run"},
		{name: "absolute PATH entry", file: "tool", path: "/nowhere:" + bin, want: filepath.Join(bin, "tool")},
		{name: "relative PATH entry is in the sandbox", file: "tool", path: "bin", want: filepath.Join(bin, "tool")},
		{name: "not executable", file: "data", path: bin, wantErr: `"data": executable file not found in PATH`},
		{name: "directory", file: "bin", path: sandbox, wantErr: `"bin": executable file not found in PATH`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookPath(tc.file, sandbox, []string{"PATH=/ignored", "PATH=" + tc.path})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("lookPath = %q, %v, want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(`{"code":3,"signal":0,"message":"exited with status 3"}`))
	f.Add([]byte(`{"code":-1,"signal":9,"message":"killed by SIGKILL"}`))
	f.Add([]byte(`{"code":-1,"signal":65}`))
	f.Add([]byte(`{"code":1e3}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		status, err := parseStatus(data)
		if err != nil {
			return
		}
		// What parses is a valid status and survives a round trip.
		if status.Signal != 0 && status.Code != -1 || status.Signal == 0 && (status.Code < 0 || status.Code > 255) {
			t.Fatalf("accepted inconsistent status %+v", status)
		}
		encoded, err := json.Marshal(statusRecord{Code: status.Code, Signal: status.Signal, Message: status.Message})
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseStatus(encoded)
		if err != nil || again != status {
			t.Fatalf("round trip of %+v gave %+v, %v", status, again, err)
		}
	})
}

func FuzzParseStartTime(f *testing.F) {
	f.Add([]byte(statLine))
	f.Add([]byte("1 (a) b) S"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, data []byte) {
		start, err := parseStartTime(data)
		if err != nil {
			return
		}
		// Field 22 counted from the last ')' is what was returned.
		field := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))[startTimeField-3]
		want := strings.TrimLeft(field, "0")
		if want == "" {
			want = "0"
		}
		if got := strconv.FormatUint(start, 10); got != want {
			t.Fatalf("start time %s from field %q", got, field)
		}
	})
}

func FuzzParseKillRequest(f *testing.F) {
	f.Add([]byte(`{"deadline_unix_nano":1700000000123456789}`))
	f.Add([]byte(`{"deadline_unix_nano":-5}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		deadline, err := parseKillRequest(data)
		if err == nil && deadline.UnixNano() <= 0 {
			t.Fatalf("accepted deadline %v", deadline)
		}
	})
}
