package jobs

import (
	"strings"
	"testing"
	"time"
)

func TestCycleThrough(t *testing.T) {
	graph := map[string][]string{"b": {"a"}, "c": {"b"}, "d": {"c", "x"}, "x": nil}
	parentsOf := func(extra map[string][]string) func(string) []string {
		return func(name string) []string {
			if p, ok := extra[name]; ok {
				return p
			}
			return graph[name]
		}
	}
	tests := []struct {
		job     string
		parents []string
		want    string
	}{
		{"a", nil, ""},
		{"a", []string{"x"}, ""},
		{"a", []string{"d"}, "a b c d a"},
		{"a", []string{"x", "c"}, "a b c a"},
		{"b", []string{"c"}, "b c b"},
		{"e", []string{"d"}, ""},
	}
	for _, tt := range tests {
		got := strings.Join(cycleThrough(tt.job, parentsOf(map[string][]string{tt.job: tt.parents})), " ")
		if got != tt.want {
			t.Errorf("%s with parents %v: cycle %q, want %q", tt.job, tt.parents, got, tt.want)
		}
	}
}

func TestDecodeJobDefaults(t *testing.T) {
	now := time.Date(2024, 5, 5, 10, 20, 0, 0, time.UTC)
	j, err := decodeJob([]byte(`{"name": "x", "command": "true", "schedule": "R5//PT2S", "successCount": 7, "epsilon": "PT5M", "async": true}`), false, now)
	if err != nil {
		t.Fatal(err)
	}
	if *j.Retries != 2 || j.CPUs != 0.1 || j.Mem != 128 || j.Disk != 256 || !*j.Shell || j.SuccessCount != 0 {
		t.Errorf("defaults %+v", j)
	}
	if j.Schedule != "R5/2024-05-05T10:20:00.000Z/PT2S" {
		t.Errorf("a start of now stored as %q", j.Schedule)
	}
	j, err = decodeJob([]byte(`{"name": "y", "command": "true", "parents": ["x"], "retries": 0, "cpus": 1, "mem": 2, "disk": 3, "shell": false,
		"constraints": [["rack", "EQUALS", "r1"], ["host", "LIKE", "a.*"], ["zone", "UNLIKE", "b"]], "container": {"image": "busybox"}}`), true, now)
	if err != nil {
		t.Fatal(err)
	}
	if *j.Retries != 0 || j.CPUs != 1 || j.Mem != 2 || j.Disk != 3 || *j.Shell || j.Container.Type != "DOCKER" {
		t.Errorf("given values %+v", j)
	}
	req, err := jobRequirements(j)
	if err != nil || len(req.Constraints) != 3 || req.Constraints[0].Operator != "CLUSTER" {
		t.Errorf("requirements %+v, %v", req, err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"plain-1.txt": "plain-1.txt", "": "''", "two words": "'two words'", "it's": `'it'\''s'`, "$HOME": "'$HOME'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func FuzzDecodeJob(f *testing.F) {
	f.Add([]byte(`{"name": "x", "command": "true", "schedule": "R5//PT2S"}`), false)
	f.Add([]byte(`{"name": "y", "command": "true", "parents": ["x"], "constraints": [["a", "LIKE", "b"]]}`), true)
	f.Add([]byte(`{"name": "z", "command": "true", "cron": "@daily", "scheduleTimeZone": "Europe/Berlin", "container": {"type": "MESOS", "image": "i"}}`), false)
	f.Fuzz(func(t *testing.T, data []byte, dependent bool) {
		j, err := decodeJob(data, dependent, time.Unix(1700000000, 0))
		if err != nil {
			return
		}
		if _, err := newEntry(j); err != nil {
			t.Fatalf("a valid job %s has no schedule or requirements: %v", data, err)
		}
		if *j.Retries < 0 || j.CPUs <= 0 || j.Mem <= 0 || j.Disk <= 0 {
			t.Fatalf("defaults not applied: %+v", j)
		}
	})
}
