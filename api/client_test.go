package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait in these tests; generous for a loaded machine.
const testTimeout = 30 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// schedulerMaster speaks the scheduler API literally: SUBSCRIBE gets a RecordIO stream of
// the given events (each record written in two chunks, since chunk boundaries carry no
// meaning), which stays open until release is closed; other calls need the stream id and
// are recorded.
type schedulerMaster struct {
	srv      *httptest.Server
	streamID string
	events   []string
	release  chan struct{}

	mu    sync.Mutex
	calls []recordedCall
}

type recordedCall struct {
	streamID      string
	authorization string
	body          string
}

func newSchedulerMaster(t testing.TB, events ...string) *schedulerMaster {
	t.Helper()
	m := &schedulerMaster{streamID: "stream-1", events: events, release: make(chan struct{})}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(func() {
		select {
		case <-m.release:
		default:
			close(m.release)
		}
		m.srv.Close()
	})
	return m
}

func (m *schedulerMaster) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != SchedulerPath || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var call Call
	if err := json.Unmarshal(body, &call); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if call.Type == CallSubscribe {
		if r.Header.Get(StreamIDHeader) != "" {
			http.Error(w, "SUBSCRIBE must not carry a stream id", http.StatusBadRequest)
			return
		}
		w.Header().Set(StreamIDHeader, m.streamID)
		w.WriteHeader(http.StatusOK)
		flusher := w.(http.Flusher)
		for _, ev := range m.events {
			rec := AppendRecord(nil, []byte(ev))
			half := len(rec) / 2
			_, _ = w.Write(rec[:half])
			flusher.Flush()
			_, _ = w.Write(rec[half:])
			flusher.Flush()
		}
		select {
		case <-m.release:
		case <-r.Context().Done():
		}
		return
	}
	if got := r.Header.Get(StreamIDHeader); got != m.streamID {
		http.Error(w, "stream id "+got+" is not the subscription's", http.StatusForbidden)
		return
	}
	m.mu.Lock()
	m.calls = append(m.calls, recordedCall{streamID: r.Header.Get(StreamIDHeader), authorization: r.Header.Get("Authorization"), body: string(body)})
	m.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (m *schedulerMaster) recorded() []recordedCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]recordedCall(nil), m.calls...)
}

// redirector answers every request with 307 to location, counting requests.
type redirector struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests int
}

func newRedirector(t testing.TB, location func() string) *redirector {
	t.Helper()
	r := &redirector{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests++
		r.mu.Unlock()
		w.Header().Set("Location", location())
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *redirector) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

const (
	subscribedEvent = `{"type":"SUBSCRIBED","subscribed":{"framework_id":{"value":"fw-1"},"heartbeat_interval_seconds":15}}`
	offersEvent     = `{"type":"OFFERS","offers":{"offers":[{"id":{"value":"o1"},"framework_id":{"value":"fw-1"},"agent_id":{"value":"a1"},"hostname":"h1","resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":2}}]}]}}`
	heartbeatEvent  = `{"type":"HEARTBEAT"}`
)

func TestSubscribeFollowsRedirectsAndReadsStream(t *testing.T) {
	ctx := testContext(t)
	leader := newSchedulerMaster(t, subscribedEvent, offersEvent, heartbeatEvent)
	// Mesos answers with a scheme-relative Location; the second hop uses an absolute one.
	second := newRedirector(t, func() string { return leader.srv.URL + SchedulerPath })
	first := newRedirector(t, func() string { return "//" + strings.TrimPrefix(second.srv.URL, "http://") + SchedulerPath })

	client := NewClient(first.srv.URL, WithToken("secret"))
	stream, err := client.Subscribe(ctx, FrameworkInfo{User: "root", Name: "test"}, nil)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer stream.Close()
	if first.count() != 1 || second.count() != 1 {
		t.Fatalf("redirector requests = %d, %d; want 1, 1", first.count(), second.count())
	}
	if got := stream.StreamID(); got != "stream-1" {
		t.Fatalf("StreamID = %q, want stream-1", got)
	}
	if got := stream.FrameworkID(); got.Value != "" {
		t.Fatalf("FrameworkID before SUBSCRIBED = %q, want empty", got.Value)
	}

	var types []EventType
	for range 3 {
		ev, err := stream.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		types = append(types, ev.Type)
		if ev.Type == EventOffers {
			want := Offer{ID: OfferID{"o1"}, FrameworkID: FrameworkID{"fw-1"}, AgentID: AgentID{"a1"}, Hostname: "h1",
				Resources: []Resource{{Name: "cpus", Type: Scalar, Scalar: &ValueScalar{2}}}}
			if len(ev.Offers.Offers) != 1 || !reflect.DeepEqual(ev.Offers.Offers[0], want) {
				t.Fatalf("offers = %+v, want [%+v]", ev.Offers.Offers, want)
			}
		}
	}
	if want := []EventType{EventSubscribed, EventOffers, EventHeartbeat}; !reflect.DeepEqual(types, want) {
		t.Fatalf("events = %v, want %v", types, want)
	}
	if got := stream.FrameworkID(); got.Value != "fw-1" {
		t.Fatalf("FrameworkID = %q, want fw-1", got.Value)
	}

	// Calls go straight to the master holding the stream, not through the redirectors.
	if err := stream.Revive(ctx); err != nil {
		t.Fatalf("Revive: %v", err)
	}
	want := []recordedCall{{streamID: "stream-1", authorization: "Bearer secret", body: `{"framework_id":{"value":"fw-1"},"type":"REVIVE","revive":{}}`}}
	if got := leader.recorded(); !reflect.DeepEqual(got, want) {
		t.Fatalf("calls = %+v, want %+v", got, want)
	}
	if first.count() != 1 || second.count() != 1 {
		t.Fatalf("redirector requests after call = %d, %d; want 1, 1", first.count(), second.count())
	}

	close(leader.release)
	if _, err := stream.Next(); err != io.EOF {
		t.Fatalf("Next at end of stream: err = %v, want io.EOF", err)
	}
}

func TestSubscribeSendsFrameworkInfo(t *testing.T) {
	ctx := testContext(t)
	bodies := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		bodies <- string(body)
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	info := FrameworkInfo{User: "alice", Name: "spark", ID: &FrameworkID{"fw-9"}, FailoverTimeout: 60, Roles: []string{"a"}}
	_, err := NewClient(srv.URL).Subscribe(ctx, info, []string{"a"})
	var httpErr *HTTPError
	if !errors.As(err, &httpErr) || *httpErr != (HTTPError{Status: 503, Message: "no"}) {
		t.Fatalf("err = %v, want HTTPError{503, no}", err)
	}
	want := `{"framework_id":{"value":"fw-9"},"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"alice","name":"spark","id":{"value":"fw-9"},"failover_timeout":60,"roles":["a"]},"suppressed_roles":["a"]}}`
	if got := <-bodies; got != want {
		t.Fatalf("SUBSCRIBE body:\n got %s\nwant %s", got, want)
	}
}

func TestSubscribeRedirectLimit(t *testing.T) {
	ctx := testContext(t)
	var loop *redirector
	loop = newRedirector(t, func() string { return loop.srv.URL + SchedulerPath })
	_, err := NewClient(loop.srv.URL).Subscribe(ctx, FrameworkInfo{User: "root", Name: "test"}, nil)
	if err == nil || !strings.Contains(err.Error(), "more than 5 redirects") {
		t.Fatalf("err = %v, want more than 5 redirects", err)
	}
	if got := loop.count(); got != 6 {
		t.Fatalf("requests = %d, want 6 (the first and 5 redirects)", got)
	}
}

func TestSubscribeErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    *HTTPError
		wantMsg string
	}{
		{
			name: "forbidden",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "framework principal 'x' is not authorized", http.StatusForbidden)
			},
			want: &HTTPError{Status: 403, Message: "framework principal 'x' is not authorized"},
		},
		{
			name:    "empty error body",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadRequest) },
			want:    &HTTPError{Status: 400, Message: "Bad Request"},
		},
		{
			name:    "redirect without location",
			handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTemporaryRedirect) },
			wantMsg: "307 redirect: http: no Location header in response",
		},
		{
			name: "no stream id",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write(AppendRecord(nil, []byte(subscribedEvent)))
			},
			wantMsg: "has no Mesos-Stream-Id header",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			_, err := NewClient(srv.URL).Subscribe(testContext(t), FrameworkInfo{User: "root", Name: "test"}, nil)
			if err == nil {
				t.Fatal("Subscribe succeeded, want an error")
			}
			var httpErr *HTTPError
			if tt.want != nil {
				if !errors.As(err, &httpErr) || *httpErr != *tt.want {
					t.Fatalf("err = %v, want %+v", err, *tt.want)
				}
				return
			}
			if errors.As(err, &httpErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want a non-HTTP error containing %q", err, tt.wantMsg)
			}
		})
	}
}

// streamOf returns a stream reading body, as Subscribe would after the handshake.
func streamOf(body []byte) *SchedulerStream {
	r := bytes.NewReader(body)
	return &SchedulerStream{events: eventReader{body: io.NopCloser(r), records: NewRecordReader(r)}}
}

func TestSchedulerStreamEnd(t *testing.T) {
	good := AppendRecord(nil, []byte(heartbeatEvent))
	tests := []struct {
		name    string
		body    []byte
		wantErr string // "" means io.EOF after the heartbeat
	}{
		{"clean end", good, ""},
		{"cut inside a record", append(append([]byte{}, good...), "30\n{\"type\""...), "read event: unexpected EOF"},
		{"not JSON", AppendRecord(append([]byte{}, good...), []byte("<html>")), `decode event "<html>": invalid character '<'`},
		{"no type", AppendRecord(append([]byte{}, good...), []byte(`{"offers":{}}`)), "decode event: no type"},
		{"subscribed without body", AppendRecord(append([]byte{}, good...), []byte(`{"type":"SUBSCRIBED"}`)), "decode event: SUBSCRIBED without subscribed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := streamOf(tt.body)
			ev, err := s.Next()
			if err != nil || ev.Type != EventHeartbeat {
				t.Fatalf("first Next = %+v, %v; want HEARTBEAT", ev, err)
			}
			_, err = s.Next()
			if tt.wantErr == "" {
				if err != io.EOF {
					t.Fatalf("err = %v, want io.EOF", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
			}
		})
	}
}

func TestSchedulerCalls(t *testing.T) {
	refuse := 5.0
	status := TaskStatus{TaskID: TaskID{"t1"}, State: TaskRunning, AgentID: &AgentID{"a1"}, UUID: []byte{1, 2, 3}}
	tests := []struct {
		name string
		send func(context.Context, *SchedulerStream) error
		want string
	}{
		{"accept", func(ctx context.Context, s *SchedulerStream) error {
			ops := []OfferOperation{{Type: OperationLaunch, Launch: &LaunchOperation{TaskInfos: []TaskInfo{{Name: "n", TaskID: TaskID{"t1"}, AgentID: AgentID{"a1"}}}}}}
			return s.Accept(ctx, []OfferID{{"o1"}}, ops, &Filters{RefuseSeconds: &refuse})
		}, `{"framework_id":{"value":"fw-1"},"type":"ACCEPT","accept":{"offer_ids":[{"value":"o1"}],"operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"n","task_id":{"value":"t1"},"agent_id":{"value":"a1"}}]}}],"filters":{"refuse_seconds":5}}}`},
		{"decline", func(ctx context.Context, s *SchedulerStream) error {
			return s.Decline(ctx, []OfferID{{"o1"}, {"o2"}}, &Filters{RefuseSeconds: &refuse})
		}, `{"framework_id":{"value":"fw-1"},"type":"DECLINE","decline":{"offer_ids":[{"value":"o1"},{"value":"o2"}],"filters":{"refuse_seconds":5}}}`},
		{"revive roles", func(ctx context.Context, s *SchedulerStream) error { return s.Revive(ctx, "a", "b") },
			`{"framework_id":{"value":"fw-1"},"type":"REVIVE","revive":{"roles":["a","b"]}}`},
		{"suppress", func(ctx context.Context, s *SchedulerStream) error { return s.Suppress(ctx) },
			`{"framework_id":{"value":"fw-1"},"type":"SUPPRESS","suppress":{}}`},
		{"kill", func(ctx context.Context, s *SchedulerStream) error { return s.Kill(ctx, TaskID{"t1"}, &AgentID{"a1"}) },
			`{"framework_id":{"value":"fw-1"},"type":"KILL","kill":{"task_id":{"value":"t1"},"agent_id":{"value":"a1"}}}`},
		{"acknowledge", func(ctx context.Context, s *SchedulerStream) error { return s.Acknowledge(ctx, status) },
			`{"framework_id":{"value":"fw-1"},"type":"ACKNOWLEDGE","acknowledge":{"agent_id":{"value":"a1"},"task_id":{"value":"t1"},"uuid":"AQID"}}`},
		{"reconcile", func(ctx context.Context, s *SchedulerStream) error {
			return s.Reconcile(ctx, ReconcileTask{TaskID: TaskID{"t1"}})
		}, `{"framework_id":{"value":"fw-1"},"type":"RECONCILE","reconcile":{"tasks":[{"task_id":{"value":"t1"}}]}}`},
		{"teardown", func(ctx context.Context, s *SchedulerStream) error { return s.Teardown(ctx) },
			`{"framework_id":{"value":"fw-1"},"type":"TEARDOWN"}`},
		{"explicit framework id kept", func(ctx context.Context, s *SchedulerStream) error {
			return s.Call(ctx, &Call{Type: CallTeardown, FrameworkID: &FrameworkID{"other"}})
		}, `{"framework_id":{"value":"other"},"type":"TEARDOWN"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			master := newSchedulerMaster(t, subscribedEvent)
			stream, err := NewClient(master.srv.URL).Subscribe(ctx, FrameworkInfo{User: "root", Name: "test"}, nil)
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			defer stream.Close()
			if _, err := stream.Next(); err != nil {
				t.Fatalf("Next: %v", err)
			}
			if err := tt.send(ctx, stream); err != nil {
				t.Fatalf("call: %v", err)
			}
			want := []recordedCall{{streamID: "stream-1", body: tt.want}}
			if got := master.recorded(); !reflect.DeepEqual(got, want) {
				t.Fatalf("calls:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestSchedulerCallErrors(t *testing.T) {
	ctx := testContext(t)
	master := newSchedulerMaster(t, subscribedEvent)
	stream, err := NewClient(master.srv.URL).Subscribe(ctx, FrameworkInfo{User: "root", Name: "test"}, nil)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer stream.Close()

	if err := stream.Teardown(ctx); err == nil || err.Error() != "TEARDOWN: no framework id yet (SUBSCRIBED not read)" {
		t.Fatalf("call before SUBSCRIBED: err = %v", err)
	}
	if _, err := stream.Next(); err != nil {
		t.Fatalf("Next: %v", err)
	}
	noUUID := TaskStatus{TaskID: TaskID{"t1"}, State: TaskRunning, AgentID: &AgentID{"a1"}}
	if err := stream.Acknowledge(ctx, noUUID); err == nil || err.Error() != "ACKNOWLEDGE: update of task t1 has no uuid" {
		t.Fatalf("acknowledge without uuid: err = %v", err)
	}
	noAgent := TaskStatus{TaskID: TaskID{"t1"}, State: TaskRunning, UUID: []byte{1}}
	if err := stream.Acknowledge(ctx, noAgent); err == nil || err.Error() != "ACKNOWLEDGE: update of task t1 has no agent_id" {
		t.Fatalf("acknowledge without agent: err = %v", err)
	}
	if got := master.recorded(); len(got) != 0 {
		t.Fatalf("calls sent = %+v, want none", got)
	}

	// A stream id the master does not know is answered 403 with its reason.
	stream.streamID = "stale"
	err = stream.Revive(ctx)
	var httpErr *HTTPError
	if !errors.As(err, &httpErr) || *httpErr != (HTTPError{Status: 403, Message: "stream id stale is not the subscription's"}) {
		t.Fatalf("err = %v, want HTTPError 403", err)
	}
	if got, want := err.Error(), "REVIVE: 403 Forbidden: stream id stale is not the subscription's"; got != want {
		t.Fatalf("err = %q, want %q", got, want)
	}
}

// operatorMaster answers operator calls with fixed replies by call type, after checking the
// request, and records the bodies it got.
func operatorMaster(t testing.TB, replies map[string]func(http.ResponseWriter)) (srv *httptest.Server, received func() []string) {
	t.Helper()
	var mu sync.Mutex
	var bodies []string
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != OperatorPath || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(body))
		mu.Unlock()
		var call struct{ Type string }
		if err := json.Unmarshal(body, &call); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply, ok := replies[call.Type]
		if !ok {
			http.Error(w, "unknown call "+call.Type, http.StatusBadRequest)
			return
		}
		reply(w)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), bodies...)
	}
}

func jsonReply(body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func TestOperator(t *testing.T) {
	srv, bodies := operatorMaster(t, map[string]func(http.ResponseWriter){
		"GET_HEALTH":  jsonReply(`{"type":"GET_HEALTH","get_health":{"healthy":true}}`),
		"GET_VERSION": jsonReply(`{"type":"GET_VERSION","get_version":{"version_info":{"version":"1.2.3"}}}`),
		"GET_MEMBERS": jsonReply(`{"type":"GET_MEMBERS","get_members":{"members":[{"name":"n1","addr":"127.0.0.1","port":7946,"status":"alive","tags":{"role":"master"}}]}}`),
		"GET_TASKS":   jsonReply(`{"type":"GET_TASKS","get_tasks":{"tasks":[{"name":"web","task_id":{"value":"t1"},"framework_id":{"value":"f1"},"agent_id":{"value":"a1"},"state":"TASK_RUNNING"}]}}`),
		"GET_STATE":   jsonReply(`{"type":"GET_STATE","get_state":{"get_tasks":{"tasks":[]},"get_frameworks":{"frameworks":[{"framework_info":{"user":"u","name":"f"},"active":true,"connected":true,"recovered":false}]},"get_agents":{"agents":[]},"get_executors":{"executors":[]}}}`),
		"GET_AGENTS":  jsonReply(`{"type":"GET_AGENTS","get_agents":{"agents":[{"agent_info":{"hostname":"h1","id":{"value":"a1"}},"active":true}]}}`),
		"GET_FRAMEWORKS": jsonReply(`{"type":"GET_FRAMEWORKS","get_frameworks":{"frameworks":[{"framework_info":{"user":"u","name":"f","id":{"value":"f1"}},` +
			`"active":true,"connected":false,"recovered":false}]}}`),
	})
	ctx := testContext(t)
	c := NewClient(srv.URL + "/")

	health, err := c.GetHealth(ctx)
	if err != nil || !health.Healthy {
		t.Fatalf("GetHealth = %+v, %v", health, err)
	}
	version, err := c.GetVersion(ctx)
	if err != nil || version.VersionInfo.Version != "1.2.3" {
		t.Fatalf("GetVersion = %+v, %v", version, err)
	}
	members, err := c.GetMembers(ctx)
	wantMembers := &GetMembers{Members: []Member{{Name: "n1", Addr: "127.0.0.1", Port: 7946, Status: "alive", Tags: map[string]string{"role": "master"}}}}
	if err != nil || !reflect.DeepEqual(members, wantMembers) {
		t.Fatalf("GetMembers = %+v, %v", members, err)
	}
	tasks, err := c.GetTasks(ctx)
	wantTasks := &GetTasks{Tasks: []Task{{Name: "web", TaskID: TaskID{"t1"}, FrameworkID: FrameworkID{"f1"}, AgentID: AgentID{"a1"}, State: TaskRunning}}}
	if err != nil || !reflect.DeepEqual(tasks, wantTasks) {
		t.Fatalf("GetTasks = %+v, %v", tasks, err)
	}
	state, err := c.GetState(ctx)
	if err != nil || len(state.GetFrameworks.Frameworks) != 1 || state.GetFrameworks.Frameworks[0].FrameworkInfo.Name != "f" || len(state.GetTasks.Tasks) != 0 {
		t.Fatalf("GetState = %+v, %v", state, err)
	}
	agents, err := c.GetAgents(ctx)
	if err != nil || len(agents.Agents) != 1 || agents.Agents[0].AgentInfo.ID.Value != "a1" || !agents.Agents[0].Active {
		t.Fatalf("GetAgents = %+v, %v", agents, err)
	}
	frameworks, err := c.GetFrameworks(ctx)
	if err != nil || len(frameworks.Frameworks) != 1 || frameworks.Frameworks[0].FrameworkInfo.ID.Value != "f1" || frameworks.Frameworks[0].Connected {
		t.Fatalf("GetFrameworks = %+v, %v", frameworks, err)
	}
	want := []string{`{"type":"GET_HEALTH"}`, `{"type":"GET_VERSION"}`, `{"type":"GET_MEMBERS"}`, `{"type":"GET_TASKS"}`,
		`{"type":"GET_STATE"}`, `{"type":"GET_AGENTS"}`, `{"type":"GET_FRAMEWORKS"}`}
	if !reflect.DeepEqual(bodies(), want) {
		t.Fatalf("request bodies = %q, want %q", bodies(), want)
	}
}

func TestOperatorErrors(t *testing.T) {
	tests := []struct {
		name    string
		reply   func(http.ResponseWriter)
		want    *HTTPError
		wantErr string
	}{
		{"forbidden", func(w http.ResponseWriter) { http.Error(w, "missing token", http.StatusForbidden) },
			&HTTPError{Status: 403, Message: "missing token"}, "GET_STATE: 403 Forbidden: missing token"},
		{"server error", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) },
			&HTTPError{Status: 503, Message: "Service Unavailable"}, "GET_STATE: 503 Service Unavailable"},
		{"accepted is not an answer", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) },
			&HTTPError{Status: 202, Message: "Accepted"}, "GET_STATE: 202 Accepted"},
		{"html", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<html>hello</html>")
		}, nil, `GET_STATE: reply is not valid JSON (Content-Type "text/html", 18 bytes, starting "<html>hello</html>"): invalid character '<' looking for beginning of value`},
		{"truncated JSON", jsonReply(`{"type":"GET_STATE","get_st`), nil,
			`GET_STATE: reply is not valid JSON (Content-Type "application/json", 27 bytes, starting "{\"type\":\"GET_STATE\",\"get_st"): unexpected end of JSON input`},
		{"connection cut", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, `{"type":`)
		}, nil, "GET_STATE: read reply: unexpected EOF"},
		{"wrong type", jsonReply(`{"type":"GET_HEALTH","get_health":{"healthy":true}}`), nil, `GET_STATE: reply has type "GET_HEALTH"`},
		{"missing part", jsonReply(`{"type":"GET_STATE"}`), nil, "GET_STATE: reply lacks get_state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := operatorMaster(t, map[string]func(http.ResponseWriter){"GET_STATE": tt.reply})
			_, err := NewClient(srv.URL).GetState(testContext(t))
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			var httpErr *HTTPError
			if got := errors.As(err, &httpErr); got != (tt.want != nil) || (got && *httpErr != *tt.want) {
				t.Fatalf("err = %#v, want HTTPError %+v", err, tt.want)
			}
		})
	}
}

func TestOperatorFollowsRedirectWithToken(t *testing.T) {
	auth := make(chan string, 1)
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth <- r.Header.Get("Authorization")
		jsonReply(`{"type":"GET_HEALTH","get_health":{"healthy":true}}`)(w)
	}))
	defer leader.Close()
	// "localhost" makes the redirect cross hosts, where net/http alone would drop the token.
	follower := newRedirector(t, func() string { return strings.Replace(leader.URL, "127.0.0.1", "localhost", 1) + OperatorPath })
	health, err := NewClient(follower.srv.URL, WithToken("t0ken")).GetHealth(testContext(t))
	if err != nil || !health.Healthy {
		t.Fatalf("GetHealth = %+v, %v", health, err)
	}
	if got := <-auth; got != "Bearer t0ken" {
		t.Fatalf("Authorization at the leader = %q, want Bearer t0ken", got)
	}
}

func TestKillTask(t *testing.T) {
	tests := []struct {
		name    string
		reply   func(http.ResponseWriter)
		wantErr string
	}{
		{"accepted", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }, ""},
		{"ok", func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) }, ""},
		{"unknown task", func(w http.ResponseWriter) { http.Error(w, "task t1 of framework f1 not found", http.StatusNotFound) },
			"KILL_TASK: 404 Not Found: task t1 of framework f1 not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, bodies := operatorMaster(t, map[string]func(http.ResponseWriter){"KILL_TASK": tt.reply})
			err := NewClient(srv.URL).KillTask(testContext(t), "f1", "t1")
			if (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			want := []string{`{"type":"KILL_TASK","kill_task":{"framework_id":{"value":"f1"},"task_id":{"value":"t1"}}}`}
			if !reflect.DeepEqual(bodies(), want) {
				t.Fatalf("request bodies = %q, want %q", bodies(), want)
			}
		})
	}
}

func TestSubscribeOperator(t *testing.T) {
	events := []string{
		`{"type":"SUBSCRIBED","subscribed":{"get_state":{"get_tasks":{"tasks":[]},"get_executors":null,"get_frameworks":null,"get_agents":null},"heartbeat_interval_seconds":15}}`,
		`{"type":"TASK_ADDED","task_added":{"task":{"name":"web","task_id":{"value":"t1"},"framework_id":{"value":"f1"},"agent_id":{"value":"a1"},"state":"TASK_STAGING"}}}`,
		`{"type":"HEARTBEAT"}`,
	}
	srv, bodies := operatorMaster(t, map[string]func(http.ResponseWriter){"SUBSCRIBE": func(w http.ResponseWriter) {
		for _, ev := range events {
			_, _ = w.Write(AppendRecord(nil, []byte(ev)))
		}
	}})
	stream, err := NewClient(srv.URL).SubscribeOperator(testContext(t))
	if err != nil {
		t.Fatalf("SubscribeOperator: %v", err)
	}
	defer stream.Close()
	var types []OperatorEventType
	for {
		ev, err := stream.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		types = append(types, ev.Type)
		if ev.Type == OpEventTaskAdded && ev.TaskAdded.Task.TaskID.Value != "t1" {
			t.Fatalf("TASK_ADDED task = %+v", ev.TaskAdded.Task)
		}
	}
	if want := []OperatorEventType{OpEventSubscribed, OpEventTaskAdded, OpEventHeartbeat}; !reflect.DeepEqual(types, want) {
		t.Fatalf("events = %v, want %v", types, want)
	}
	if want := []string{`{"type":"SUBSCRIBE"}`}; !reflect.DeepEqual(bodies(), want) {
		t.Fatalf("request bodies = %q, want %q", bodies(), want)
	}
}

func TestNewClientOptions(t *testing.T) {
	custom := &http.Client{Transport: http.DefaultTransport}
	c := NewClient("http://127.0.0.1:1", WithHTTPClient(custom), WithHTTPClient(nil))
	if c.http == custom || c.http.Transport != http.DefaultTransport {
		t.Fatalf("client uses %p (transport %v), want a copy of %p", c.http, c.http.Transport, custom)
	}
	if custom.CheckRedirect != nil {
		t.Fatal("NewClient changed the caller's http.Client")
	}
}

// FuzzSchedulerStream feeds arbitrary bytes as a subscription stream: Next must return
// events or an error, never panic, and every event it returns has a type.
func FuzzSchedulerStream(f *testing.F) {
	for _, ev := range []string{subscribedEvent, offersEvent, heartbeatEvent, `{"type":"SUBSCRIBED"}`, `{}`, `[`} {
		f.Add(AppendRecord(nil, []byte(ev)))
	}
	f.Add([]byte("3\n{}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := streamOf(data)
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			if ev.Type == "" || (ev.Type == EventSubscribed && s.FrameworkID() != ev.Subscribed.FrameworkID) {
				t.Fatalf("event %+v accepted; framework id %q", ev, s.FrameworkID().Value)
			}
		}
	})
}

// FuzzOperatorStream does the same for the operator event stream.
func FuzzOperatorStream(f *testing.F) {
	f.Add(AppendRecord(nil, []byte(`{"type":"HEARTBEAT"}`)))
	f.Add(AppendRecord(nil, []byte(`{"type":"TASK_ADDED","task_added":{"task":{}}}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		s := &OperatorStream{events: eventReader{body: io.NopCloser(r), records: NewRecordReader(r)}}
		for {
			ev, err := s.Next()
			if err != nil {
				return
			}
			if ev.Type == "" {
				t.Fatalf("event %+v without type accepted", ev)
			}
		}
	})
}

func TestSchedulerStreamEvents(t *testing.T) {
	ctx := testContext(t)
	leader := newSchedulerMaster(t, subscribedEvent, offersEvent, heartbeatEvent)
	stream, err := NewClient(leader.srv.URL).Subscribe(ctx, FrameworkInfo{User: "root", Name: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	events, errc := stream.Events(ctx, 1)
	var types []EventType
	for range 3 {
		types = append(types, (<-events).Type)
	}
	if want := []EventType{EventSubscribed, EventOffers, EventHeartbeat}; !reflect.DeepEqual(types, want) {
		t.Fatalf("events = %v, want %v", types, want)
	}
	close(leader.release)
	if ev, ok := <-events; ok {
		t.Fatalf("event %+v after the end of the stream", ev)
	}
	if err := <-errc; err != io.EOF {
		t.Fatalf("error at the end of the stream = %v, want io.EOF", err)
	}
}
