package isolate

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	task := `{"container_id":"c1","path":"/bin/sh","args":["sh","-c","true"],"env":["PATH=/bin"],` +
		`"dir":"/sb","stdout":"/sb/stdout","stderr":"/sb/stderr"}`
	tests := []struct {
		name    string
		line    string
		want    request
		wantErr string
	}{
		{name: "hello", line: `{"id":1,"op":"hello"}`, want: request{ID: 1, Op: opHello}},
		{name: "stop", line: `{"id":2,"op":"stop"}` + "\n", want: request{ID: 2, Op: opStop}},
		{
			name: "launch",
			line: `{"id":3,"op":"launch","launch":` + task + `}`,
			want: request{ID: 3, Op: opLaunch, Launch: &taskSpec{
				ContainerID: "c1", Path: "/bin/sh", Args: []string{"sh", "-c", "true"}, Env: []string{"PATH=/bin"},
				Dir: "/sb", Stdout: "/sb/stdout", Stderr: "/sb/stderr",
			}},
		},
		{
			name: "launch as another user",
			line: `{"id":3,"op":"launch","launch":{"container_id":"c1","path":"run","args":["run"],"env":null,` +
				`"dir":"/sb","stdout":"/sb/o","stderr":"/sb/e","credential":{"uid":65534,"gid":65534,"groups":[1,2]}}}`,
			want: request{ID: 3, Op: opLaunch, Launch: &taskSpec{
				ContainerID: "c1", Path: "run", Args: []string{"run"}, Dir: "/sb", Stdout: "/sb/o", Stderr: "/sb/e",
				Credential: &taskCredential{UID: 65534, GID: 65534, Groups: []uint32{1, 2}},
			}},
		},
		{
			name: "launch with its logs' rotation",
			line: `{"id":3,"op":"launch","launch":{"container_id":"c1","path":"run","args":["run"],"env":null,` +
				`"dir":"/sb","stdout":"/sb/o","stderr":"/sb/e","log_max_size":65536,"log_keep":2}}`,
			want: request{ID: 3, Op: opLaunch, Launch: &taskSpec{
				ContainerID: "c1", Path: "run", Args: []string{"run"}, Dir: "/sb", Stdout: "/sb/o", Stderr: "/sb/e",
				LogMaxSize: 65536, LogKeep: 2,
			}},
		},
		{
			name: "kill",
			line: `{"id":4,"op":"kill","container_id":"c1","deadline_unix_nano":1700000000123456789}`,
			want: request{ID: 4, Op: opKill, ContainerID: "c1", DeadlineUnixNano: 1700000000123456789},
		},
		{
			name: "query",
			line: `{"id":5,"op":"query","container_ids":["a","b"]}`,
			want: request{ID: 5, Op: opQuery, ContainerIDs: []string{"a", "b"}},
		},
		{name: "forget", line: `{"id":6,"op":"forget","container_id":"a"}`, want: request{ID: 6, Op: opForget, ContainerID: "a"}},
		{name: "empty", line: "", wantErr: "decode request: EOF"},
		{name: "not an object", line: `[1]`, wantErr: "decode request: json: cannot unmarshal array into Go value of type isolate.request"},
		{name: "two requests on a line", line: `{"id":1,"op":"hello"}{"id":2,"op":"hello"}`, wantErr: "decode request: trailing data after the JSON value"},
		{name: "unknown field", line: `{"id":1,"op":"hello","x":1}`, wantErr: `decode request: json: unknown field "x"`},
		{name: "id 0", line: `{"op":"hello"}`, wantErr: "request: id 0"},
		{name: "unknown op", line: `{"id":1,"op":"exec"}`, wantErr: `request 1: unknown operation "exec"`},
		{name: "hello with arguments", line: `{"id":1,"op":"hello","container_id":"c1"}`, wantErr: "request 1: hello: unexpected arguments"},
		{name: "launch without task", line: `{"id":1,"op":"launch"}`, wantErr: "request 1: launch: no task"},
		{name: "kill with a task", line: `{"id":1,"op":"kill","container_id":"c1","deadline_unix_nano":1,"launch":` + task + `}`, wantErr: "request 1: kill: unexpected arguments"},
		{name: "kill without deadline", line: `{"id":1,"op":"kill","container_id":"c1"}`, wantErr: "request 1: kill: deadline 0 is not a time"},
		{name: "kill bad id", line: `{"id":1,"op":"kill","container_id":"..","deadline_unix_nano":1}`, wantErr: `request 1: container id ".." cannot name a file`},
		{name: "query bad id", line: `{"id":1,"op":"query","container_ids":["a/b"]}`, wantErr: `request 1: container id "a/b" cannot name a file`},
		{name: "forget with ids", line: `{"id":1,"op":"forget","container_id":"a","container_ids":[]}`, wantErr: "request 1: forget: unexpected arguments"},
		{
			name:    "task without argv",
			line:    `{"id":1,"op":"launch","launch":{"container_id":"c1","path":"/bin/true","args":[],"env":[],"dir":"/sb","stdout":"/sb/o","stderr":"/sb/e"}}`,
			wantErr: "request 1: task has no argv",
		},
		{
			name:    "task without executable",
			line:    `{"id":1,"op":"launch","launch":{"container_id":"c1","path":"","args":["x"],"env":[],"dir":"/sb","stdout":"/sb/o","stderr":"/sb/e"}}`,
			wantErr: "request 1: task has no executable",
		},
		{
			name:    "task with a relative sandbox",
			line:    `{"id":1,"op":"launch","launch":{"container_id":"c1","path":"x","args":["x"],"env":[],"dir":"sb","stdout":"/sb/o","stderr":"/sb/e"}}`,
			wantErr: `request 1: task paths "sb", "/sb/o", "/sb/e" are not all absolute`,
		},
		{
			name:    "task with a negative log size",
			line:    `{"id":1,"op":"launch","launch":{"container_id":"c1","path":"x","args":["x"],"env":[],"dir":"/sb","stdout":"/sb/o","stderr":"/sb/e","log_max_size":-1}}`,
			wantErr: "request 1: task logs: max size must not be negative, got -1",
		},
		{
			name:    "task with a negative log count",
			line:    `{"id":1,"op":"launch","launch":{"container_id":"c1","path":"x","args":["x"],"env":[],"dir":"/sb","stdout":"/sb/o","stderr":"/sb/e","log_keep":-2}}`,
			wantErr: "request 1: task logs: keep must not be negative, got -2",
		},
		{
			name:    "task with a bad environment",
			line:    `{"id":1,"op":"launch","launch":{"container_id":"c1","path":"x","args":["x"],"env":["=x"],"dir":"/sb","stdout":"/sb/o","stderr":"/sb/e"}}`,
			wantErr: `request 1: environment entry "=x" is not NAME=value`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeRequest([]byte(tc.line))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decodeRequest = %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    response
		wantErr string
	}{
		{name: "hello", line: `{"id":1,"pid":42,"start_time":7}`, want: response{ID: 1, PID: 42, StartTime: 7}},
		{name: "error", line: `{"id":2,"error":"container already exists"}`, want: response{ID: 2, Error: "container already exists"}},
		{
			name: "query",
			line: `{"id":3,"running":["a"],"exited":[{"container_id":"b","status":{"code":1,"signal":0,"message":"exited with status 1"}}],"orphaned":["c"]}`,
			want: response{ID: 3, Running: []string{"a"}, Exited: []exitEvent{{ContainerID: "b", Status: statusRecord{Code: 1, Message: "exited with status 1"}}},
				Orphaned: []string{"c"}},
		},
		{
			name: "exit event",
			line: `{"exit":{"container_id":"c","status":{"code":-1,"signal":9,"message":"killed by SIGKILL"}}}`,
			want: response{Exit: &exitEvent{ContainerID: "c", Status: statusRecord{Code: -1, Signal: 9, Message: "killed by SIGKILL"}}},
		},
		{name: "garbage", line: `{"id":`, wantErr: "decode supervisor message: unexpected EOF"},
		{name: "event without exit", line: `{"pid":4}`, wantErr: "supervisor event is not just an exit"},
		{
			name:    "event with more than an exit",
			line:    `{"error":"x","exit":{"container_id":"c","status":{"code":0,"signal":0,"message":""}}}`,
			wantErr: "supervisor event is not just an exit",
		},
		{
			name:    "response with an exit",
			line:    `{"id":1,"exit":{"container_id":"c","status":{"code":0,"signal":0,"message":""}}}`,
			wantErr: "response 1 carries an exit event",
		},
		{name: "bad running id", line: `{"id":1,"running":[""]}`, wantErr: `response 1: container id "" cannot name a file`},
		{name: "bad orphaned id", line: `{"id":1,"orphaned":["a/b"]}`, wantErr: `response 1: container id "a/b" cannot name a file`},
		{name: "event with orphans", line: `{"orphaned":["a"],"exit":{"container_id":"c","status":{"code":0,"signal":0,"message":""}}}`, wantErr: "supervisor event is not just an exit"},
		{
			name:    "bad exited status",
			line:    `{"id":1,"exited":[{"container_id":"b","status":{"code":300,"signal":0,"message":""}}]}`,
			wantErr: "response 1: exit of b: exit status: code 300 out of range",
		},
		{
			name:    "bad event status",
			line:    `{"exit":{"container_id":"c","status":{"code":0,"signal":9,"message":""}}}`,
			wantErr: "exit of c: exit status: signal 9 with code 0, want -1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeResponse([]byte(tc.line))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decodeResponse = %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":1,"op":"hello"}`))
	f.Add([]byte(`{"id":3,"op":"launch","launch":{"container_id":"c1","path":"/bin/sh","args":["sh","-c","true"],` +
		`"env":["PATH=/bin"],"dir":"/sb","stdout":"/sb/o","stderr":"/sb/e","credential":{"uid":1,"gid":2,"groups":null}}}`))
	f.Add([]byte(`{"id":4,"op":"kill","container_id":"c1","deadline_unix_nano":1700000000123456789}`))
	f.Add([]byte(`{"id":5,"op":"query","container_ids":["a","b"]}`))
	f.Add([]byte(`{"id":5,"op":"query","container_ids":[]}`))
	f.Add([]byte(`{"id":6,"op":"forget","container_id":"a"}`))
	f.Add([]byte(`{"id":7,"op":"kill","container_id":"..","deadline_unix_nano":-1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := decodeRequest(line)
		if err != nil {
			return
		}
		// What decodes is a valid request, and survives the trip through the wire.
		if req.ID == 0 || req.check() != nil {
			t.Fatalf("accepted invalid request %+v", req)
		}
		encoded, err := encodeLine(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeRequest(encoded)
		// An empty list is left out on the wire.
		if len(req.ContainerIDs) == 0 {
			req.ContainerIDs = nil
		}
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip of %+v gave %+v, %v", req, again, err)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"id":1,"pid":42,"start_time":7}`))
	f.Add([]byte(`{"id":2,"error":"container already exists"}`))
	f.Add([]byte(`{"id":3,"running":["a"],"exited":[{"container_id":"b","status":{"code":1,"signal":0,"message":"m"}}],"orphaned":["c"]}`))
	f.Add([]byte(`{"exit":{"container_id":"c","status":{"code":-1,"signal":9,"message":"killed by SIGKILL"}}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		resp, err := decodeResponse(line)
		if err != nil {
			return
		}
		if resp.ID == 0 && resp.Exit == nil {
			t.Fatalf("accepted an event without an exit: %+v", resp)
		}
		encoded, err := json.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeResponse(encoded)
		// Empty lists are left out on the wire.
		if len(resp.Running) == 0 {
			resp.Running = nil
		}
		if len(resp.Exited) == 0 {
			resp.Exited = nil
		}
		if len(resp.Orphaned) == 0 {
			resp.Orphaned = nil
		}
		if err != nil || !reflect.DeepEqual(again, resp) {
			t.Fatalf("round trip of %+v gave %+v, %v", resp, again, err)
		}
	})
}
