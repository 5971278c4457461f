package isolate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

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

func TestDecodeJournalEntry(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    journalEntry
		wantErr string
	}{
		{
			name: "exit",
			line: `{"container_id":"c1","status":{"code":3,"signal":0,"message":"exited with status 3"}}` + "\n",
			want: journalEntry{ContainerID: "c1", Status: &statusRecord{Code: 3, Message: "exited with status 3"}},
		},
		{
			name: "signal",
			line: `{"container_id":"c1","status":{"code":-1,"signal":9,"message":"killed by SIGKILL"}}`,
			want: journalEntry{ContainerID: "c1", Status: &statusRecord{Code: -1, Signal: 9, Message: "killed by SIGKILL"}},
		},
		{name: "launched", line: `{"container_id":"c1","launched":true}`, want: journalEntry{ContainerID: "c1", Launched: true}},
		{name: "forgotten", line: `{"container_id":"c1"}`, want: journalEntry{ContainerID: "c1"}},
		{
			name:    "launched and exited",
			line:    `{"container_id":"c1","launched":true,"status":{"code":0,"signal":0,"message":""}}`,
			wantErr: "journal entry for c1: both a launch and an exit",
		},
		{name: "empty", line: "", wantErr: "decode journal entry: EOF"},
		{name: "torn", line: `{"container_id":"c1","sta`, wantErr: "decode journal entry: unexpected EOF"},
		{name: "two values", line: `{"container_id":"c1"} {}`, wantErr: "decode journal entry: trailing data after the JSON value"},
		{name: "unknown field", line: `{"container_id":"c1","oom":true}`, wantErr: `decode journal entry: json: unknown field "oom"`},
		{name: "bad id", line: `{"container_id":"../x"}`, wantErr: `journal entry: container id "../x" cannot name a file`},
		{
			name:    "signal out of range",
			line:    `{"container_id":"c1","status":{"code":-1,"signal":65}}`,
			wantErr: "journal entry for c1: exit status: signal 65 out of range",
		},
		{
			name:    "signal with code",
			line:    `{"container_id":"c1","status":{"code":0,"signal":9}}`,
			wantErr: "journal entry for c1: exit status: signal 9 with code 0, want -1",
		},
		{
			name:    "code out of range",
			line:    `{"container_id":"c1","status":{"code":256}}`,
			wantErr: "journal entry for c1: exit status: code 256 out of range",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeJournalEntry([]byte(tc.line))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decodeJournalEntry = %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseJournal(t *testing.T) {
	exit3 := statusRecord{Code: 3, Message: "exited with status 3"}
	killed := statusRecord{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
	tests := []struct {
		name        string
		data        string
		want        containerRecords
		wantLines   int
		wantSkipped int
	}{
		{name: "empty", want: containerRecords{}},
		{
			name: "launches, exits, a later one wins, forgotten ones go",
			data: `{"container_id":"a","launched":true}` + "\n" +
				`{"container_id":"a","status":{"code":3,"signal":0,"message":"exited with status 3"}}` + "\n" +
				`{"container_id":"b","launched":true}` + "\n" +
				`{"container_id":"c","launched":true}` + "\n" +
				`{"container_id":"d","launched":true}` + "\n" +
				`{"container_id":"c","status":{"code":-1,"signal":9,"message":"killed by SIGKILL"}}` + "\n" +
				`{"container_id":"d"}` + "\n",
			want:      containerRecords{"a": &exit3, "b": nil, "c": &killed},
			wantLines: 7,
		},
		{
			name: "torn last line is skipped",
			data: `{"container_id":"a","status":{"code":3,"signal":0,"message":"exited with status 3"}}` + "\n" +
				`{"container_id":"b","sta`,
			want:        containerRecords{"a": &exit3},
			wantLines:   2,
			wantSkipped: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, lines, skipped := parseJournal([]byte(tc.data))
			if !recordsEqual(got, tc.want) || lines != tc.wantLines || skipped != tc.wantSkipped {
				t.Errorf("parseJournal = %s, %d lines, %d skipped, want %s, %d, %d",
					formatRecords(got), lines, skipped, formatRecords(tc.want), tc.wantLines, tc.wantSkipped)
			}
		})
	}
}

// The journal records launches and exits and forgets them, survives being reopened by
// another supervisor, even after a torn write, and compacts itself.
func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), journalFile)
	j, skipped, err := openJournal(path)
	if err != nil || skipped != 0 {
		t.Fatalf("openJournal = %v, %d skipped", err, skipped)
	}
	exit0 := statusRecord{Message: "exited with status 0"}
	killed := statusRecord{Code: -1, Signal: 9, Message: "killed by SIGKILL"}
	if err := errors.Join(
		j.launched("a"), j.exited("a", exit0),
		j.launched("b"), j.exited("b", killed),
		j.launched("c"),
		j.launched("d"), j.exited("d", exit0), j.forget("d"),
		j.forget("never-launched"),
	); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id           string
		wantStatus   *statusRecord
		wantLaunched bool
	}{
		{"b", &killed, true},
		{"c", nil, true},
		{"d", nil, false},
	} {
		status, launched := j.record(tc.id)
		if launched != tc.wantLaunched || (status == nil) != (tc.wantStatus == nil) || status != nil && *status != *tc.wantStatus {
			t.Errorf("record(%s) = %v, %v, want %v, %v", tc.id, status, launched, tc.wantStatus, tc.wantLaunched)
		}
	}
	want := containerRecords{"a": &exit0, "b": &killed, "c": nil}
	if got, err := readJournal(path); err != nil || !recordsEqual(got, want) {
		t.Errorf("readJournal = %s, %v, want %s", formatRecords(got), err, formatRecords(want))
	}
	if got := strings.Count(readFile(t, path), "\n"); got != 8 {
		t.Errorf("journal has %d lines, want 8 (nothing for forgetting an unknown id)", got)
	}

	// A crash in the middle of an append leaves a torn line, which the next supervisor
	// skips and compacts away before appending.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"container_id":"e","sta`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	reopened, skipped, err := openJournal(path)
	if err != nil || skipped != 1 {
		t.Fatalf("reopen: %v, %d skipped, want 1", err, skipped)
	}
	if err := reopened.launched("f"); err != nil {
		t.Fatal(err)
	}
	want["f"] = nil
	if got, err := readJournal(path); err != nil || !recordsEqual(got, want) {
		t.Errorf("after reopening: readJournal = %s, %v, want %s", formatRecords(got), err, formatRecords(want))
	}

	// Forgotten containers are compacted away once they make up most of the journal.
	for i := range minCompaction {
		id := fmt.Sprintf("x%d", i)
		if err := errors.Join(reopened.launched(id), reopened.exited(id, exit0), reopened.forget(id)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := readJournal(path); err != nil || !recordsEqual(got, want) {
		t.Errorf("after compactions: readJournal = %s, %v, want %s", formatRecords(got), err, formatRecords(want))
	}
	if lines := strings.Count(readFile(t, path), "\n"); lines >= minCompaction {
		t.Errorf("journal has %d lines after %d forgotten containers, want it compacted below %d", lines, minCompaction, minCompaction)
	}
	if entries, err := os.ReadDir(filepath.Dir(path)); err != nil || len(entries) != 1 {
		t.Errorf("journal dir holds %v (%v), want only the journal (no temporary files)", entries, err)
	}
	if got, err := readJournal(filepath.Join(t.TempDir(), "missing")); err != nil || len(got) != 0 {
		t.Errorf("readJournal(missing) = %s, %v, want empty", formatRecords(got), err)
	}
}

func TestParsePIDRecord(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    pidRecord
		wantErr string
	}{
		{name: "valid", data: `{"pid":42,"start_time":1234567}`, want: pidRecord{PID: 42, StartTime: 1234567}},
		{name: "empty", data: "", wantErr: "decode supervisor pid file: EOF"},
		{name: "no pid", data: `{"start_time":5}`, wantErr: "supervisor pid file: pid 0 started at 5 is not a process"},
		{name: "no start time", data: `{"pid":5}`, wantErr: "supervisor pid file: pid 5 started at 0 is not a process"},
		{name: "trailing data", data: `{"pid":1,"start_time":2} {}`, wantErr: "decode supervisor pid file: trailing data after the JSON value"},
		{name: "unknown field", data: `{"pid":1,"start_time":2,"host":"x"}`, wantErr: `decode supervisor pid file: json: unknown field "host"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePIDRecord([]byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parsePIDRecord = %+v, %v, want %+v", got, err, tc.want)
			}
		})
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

func FuzzParseJournal(f *testing.F) {
	f.Add([]byte(`{"container_id":"a","launched":true}` + "\n" +
		`{"container_id":"a","status":{"code":3,"signal":0,"message":"exited with status 3"}}` + "\n" + `{"container_id":"a"}` + "\n"))
	f.Add([]byte(`{"container_id":"b","status":{"code":-1,"signal":9,"message":"killed by SIGKILL"}}` + "\n" + `{"container_id":"c","sta`))
	f.Add([]byte(`{"container_id":"d","status":{"code":-1,"signal":65}}`))
	f.Add([]byte("null\n\n{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		records, lines, skipped := parseJournal(data)
		wantLines := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			wantLines++
		}
		if lines != wantLines || skipped > lines || len(records) > lines-skipped {
			t.Fatalf("%d lines, %d skipped, %d records, for %d lines", lines, skipped, len(records), wantLines)
		}
		// What replays is valid, and survives compaction: a journal of just those records
		// replays to them again.
		var compacted []byte
		for id, status := range records {
			if checkContainerID(id) != nil {
				t.Fatalf("replayed invalid id %q", id)
			}
			if status != nil {
				if _, err := status.exitStatus(); err != nil {
					t.Fatalf("replayed invalid exit of %q: %+v", id, *status)
				}
			}
			line, err := encodeLine(journalEntry{ContainerID: id, Launched: status == nil, Status: status})
			if err != nil {
				t.Fatal(err)
			}
			compacted = append(compacted, line...)
		}
		again, _, skipped := parseJournal(compacted)
		if skipped != 0 || !recordsEqual(again, records) {
			t.Fatalf("compacted journal replays to %s (%d skipped), want %s", formatRecords(again), skipped, formatRecords(records))
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

func FuzzParsePIDRecord(f *testing.F) {
	f.Add([]byte(`{"pid":42,"start_time":1234567}`))
	f.Add([]byte(`{"pid":-1,"start_time":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := parsePIDRecord(data)
		if err != nil {
			return
		}
		if rec.PID <= 0 || rec.StartTime == 0 {
			t.Fatalf("accepted %+v", rec)
		}
		encoded, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := parsePIDRecord(encoded); err != nil || again != rec {
			t.Fatalf("round trip of %+v gave %+v, %v", rec, again, err)
		}
	})
}
