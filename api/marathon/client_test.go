package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// readEvents reads a whole event stream.
func readEvents(t testing.TB, stream string) ([]Event, error) {
	t.Helper()
	r := newSSEReader(strings.NewReader(stream))
	var out []Event
	for {
		ev, err := r.next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		want   []Event
	}{
		{"marathon's frames", "event: event_stream_attached\ndata: {\"a\":1}\n\nevent: status_update_event\ndata: {\"b\":2}\n\n",
			[]Event{{"event_stream_attached", []byte(`{"a":1}`)}, {"status_update_event", []byte(`{"b":2}`)}}},
		{"comments, other fields and CRLF", ": stream closed: leadership lost\r\nid: 7\r\nretry: 10\r\nevent:x\r\ndata:1\r\n\r\n",
			[]Event{{"x", []byte("1")}}},
		{"data lines joined", "data: a\ndata:\ndata:  b\n\n", []Event{{"message", []byte("a\n\n b")}}},
		{"an event without data is no event", "event: lonely\n\ndata: z\n\n", []Event{{"message", []byte("z")}}},
		{"unterminated last event is dropped", "event: y\ndata: 1\n", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readEvents(t, tt.stream)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("events %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSSEReaderLineTooLong(t *testing.T) {
	stream := "data: " + strings.Repeat("x", maxEventLine) + "\n\n"
	if _, err := readEvents(t, stream); err == nil || !strings.Contains(err.Error(), "token too long") {
		t.Fatalf("a line over %d bytes: err %v, want token too long", maxEventLine, err)
	}
}

// FuzzSSEReader: any stream parses without panicking, and events written as Marathon
// writes them read back unchanged.
func FuzzSSEReader(f *testing.F) {
	f.Add("status_update_event", `{"taskId":"web.1"}`, "event: x\ndata: y\n\n: c\n")
	f.Add("deployment_success", "two\nlines", "data:\r\n\r\n")
	f.Add("", "", "\n\n\n")
	f.Fuzz(func(t *testing.T, typ, data, junk string) {
		if _, err := readEvents(t, junk); err != nil {
			t.Fatalf("stream %q: %v", junk, err)
		}
		if typ == "" || strings.ContainsAny(typ+data, "\r\n") {
			return
		}
		frame := "event: " + typ + "\ndata: " + data + "\n\n"
		got, err := readEvents(t, frame+frame)
		want := Event{typ, []byte(data)}
		if err != nil || len(got) != 2 || got[0].Type != want.Type || !bytes.Equal(got[0].Data, want.Data) || !reflect.DeepEqual(got[0], got[1]) {
			t.Fatalf("frame %q read as %q, %v", frame, got, err)
		}
	})
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   string
	}{
		{422, `{"message":"Object is not valid","details":[{"path":"/cpus","errors":["must be ≥ 0.001"]}]}`,
			"POST /v2/apps: 422 Object is not valid: /cpus: must be ≥ 0.001"},
		{422, `{"message":"Object is not valid","details":[{"path":"/cpus","errors":["a","b"]},{"path":"/id","errors":["c"]}]}`,
			"POST /v2/apps: 422 Object is not valid:\n  /cpus: a, b\n  /id: c"},
		{409, `{"message":"An app with id [/web] already exists."}`, "POST /v2/apps: 409 An app with id [/web] already exists."},
		{502, "bad gateway\n", "POST /v2/apps: 502 bad gateway"},
		{503, "", "POST /v2/apps: 503 Service Unavailable"},
		{500, `{"details":[]}`, `POST /v2/apps: 500 {"details":[]}`},
		{502, strings.Repeat("é", 5000), "POST /v2/apps: 502 " + strings.Repeat("é", 4095) + "…"},
	}
	for _, tt := range tests {
		body, _ := parseErrorBody(tt.status, []byte(tt.body))
		err := error(&APIError{Method: http.MethodPost, Path: "/v2/apps", Body: body})
		if err.Error() != tt.want {
			t.Errorf("%d %s:\n got %q\nwant %q", tt.status, tt.body, err.Error(), tt.want)
		}
		var me *Error
		if !errors.As(err, &me) || me.Status != tt.status {
			t.Errorf("%d %s: errors.As(*Error) = %+v", tt.status, tt.body, me)
		}
	}
}

// FuzzParseErrorBody: any body becomes an error with a message; Marathon's own error
// JSON reads back as it was written.
func FuzzParseErrorBody(f *testing.F) {
	f.Add(422, "Object is not valid", "/cpus", "must be ≥ 0.001", `{"message":1}`)
	f.Add(404, "App '/x' does not exist", "", "", "404 page not found")
	f.Fuzz(func(t *testing.T, status int, message, path, detail, junk string) {
		if body, _ := parseErrorBody(status, []byte(junk)); body.Message == "" && http.StatusText(status) != "" {
			t.Fatalf("body %q: no message", junk)
		}
		if message == "" {
			return
		}
		sent := Error{Message: message, Details: []ErrorDetail{{Path: path, Errors: []string{detail}}}}
		data, err := json.Marshal(sent)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseErrorBody(status, data)
		sent.Status = status
		// JSON replaces invalid UTF-8 with U+FFFD; compare what the wire carried.
		var wire Error
		_ = json.Unmarshal(data, &wire)
		wire.Status = status
		if !ok || !reflect.DeepEqual(*got, wire) {
			t.Fatalf("%s read as %+v (marathon %v), want %+v", data, got, ok, wire)
		}
	})
}

func TestIDPath(t *testing.T) {
	tests := map[string]string{
		"web":          "/web",
		"/web":         "/web",
		"/prod/web/":   "/prod/web",
		"a b/c?d":      "/a%20b/c%3Fd",
		"/":            "/",
		"prod//web":    "/prod//web",
		"%2e%2e/admin": "/%252e%252e/admin",
	}
	for in, want := range tests {
		if got := idPath(in); got != want {
			t.Errorf("idPath(%q) = %q, want %q", in, got, want)
		}
	}
}
