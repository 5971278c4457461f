package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
)

// Paths of the master APIs the client speaks.
const (
	OperatorPath  = "/api/v1"
	SchedulerPath = "/api/v1/scheduler"
)

// maxRedirects bounds how many 307 answers (non-leading masters pointing at the leader) one
// request follows; a leader election in progress settles well within that.
const maxRedirects = 5

// maxErrorBody bounds how much of an error reply becomes HTTPError.Message.
const maxErrorBody = 4 << 10

// HTTPError is a reply with an unexpected HTTP status. Message is the reply's body text
// (the master's explanation), or the status text when the body is empty.
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string {
	status := fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	if e.Message == "" || e.Message == http.StatusText(e.Status) {
		return status
	}
	return status + ": " + e.Message
}

// Client talks to an Atoll cluster through any of its masters: the operator API, the
// scheduler API and Atoll's extensions. It is safe for concurrent use. Streams live as long
// as the context they were opened with, so the HTTP client must not set a Timeout.
type Client struct {
	baseURL string
	http    *http.Client
	token   string
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient sends requests through h (its transport, TLS settings and cookies); nil
// keeps the default. The client follows redirects itself, so h's CheckRedirect is not used.
func WithHTTPClient(h *http.Client) ClientOption {
	return func(c *Client) {
		if h != nil {
			copied := *h
			c.http = &copied
		}
	}
}

// WithToken authenticates every request with "Authorization: Bearer token".
func WithToken(token string) ClientOption {
	return func(c *Client) { c.token = token }
}

// defaultTransport keeps enough idle connections per master for a framework that calls
// concurrently (ACCEPTs and ACKNOWLEDGEs in flight); net/http's default keeps two, and
// every call beyond them would dial a new connection.
var defaultTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()

// NewClient returns a client for the master at baseURL ("http://host:5050").
func NewClient(baseURL string, opts ...ClientOption) *Client {
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), http: &http.Client{Transport: defaultTransport}}
	for _, opt := range opts {
		opt(c)
	}
	// Redirects are followed by post, which keeps the method, body and Authorization
	// header (net/http drops the latter when the leader is on another host).
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// post sends body as JSON to target (see send).
func (c *Client) post(ctx context.Context, target string, body []byte, header http.Header, follow bool) (*http.Response, error) {
	h := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	return c.send(ctx, http.MethodPost, target, bytes.NewReader(body), int64(len(body)), h, follow)
}

// send makes a request to target with an optional body of size bytes. With follow, it
// follows up to maxRedirects 307/308 answers with the same method, body (rewound) and
// Authorization header; the returned response's Request.URL is where it came from.
func (c *Client) send(ctx context.Context, method, target string, body io.ReadSeeker, size int64, header http.Header, follow bool) (*http.Response, error) {
	for redirects := 0; ; redirects++ {
		req, err := http.NewRequestWithContext(ctx, method, target, nil)
		if err != nil {
			return nil, err
		}
		if body != nil {
			if _, err := body.Seek(0, io.SeekStart); err != nil {
				return nil, fmt.Errorf("%s %s: rewind body: %w", method, target, err)
			}
			req.Body, req.ContentLength = io.NopCloser(body), size
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		if !follow || (resp.StatusCode != http.StatusTemporaryRedirect && resp.StatusCode != http.StatusPermanentRedirect) {
			return resp, nil
		}
		location, err := resp.Location()
		discard(resp)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %d redirect: %w", method, target, resp.StatusCode, err)
		}
		if redirects == maxRedirects {
			return nil, fmt.Errorf("%s %s: more than %d redirects (last to %s)", method, target, maxRedirects, location)
		}
		target = location.String()
	}
}

// PostAction makes an empty POST to path on the master, an action whose route says what
// it does (an admin's: revoke a node, rotate the gossip key), and decodes its JSON answer
// into reply. Another status than 200 is an *HTTPError with the master's explanation.
func (c *Client) PostAction(ctx context.Context, path string, reply any) error {
	resp, err := c.post(ctx, c.baseURL+path, nil, nil, true)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return replyError(resp)
	}
	return decodeReply(resp, reply)
}

// discard drains and closes a response body so the connection can be reused.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

// replyError turns an unexpected reply into an *HTTPError and closes its body.
func replyError(resp *http.Response) error {
	text, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	discard(resp)
	msg := strings.TrimSpace(string(text))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &HTTPError{Status: resp.StatusCode, Message: msg}
}

// decodeReply reads a whole JSON reply into v and closes its body.
func decodeReply(resp *http.Response, v any) error {
	defer discard(resp)
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("reply is not valid JSON (Content-Type %q, %d bytes, starting %q): %w",
			resp.Header.Get("Content-Type"), len(data), prefix(data, 40), err)
	}
	return nil
}

func prefix(data []byte, n int) string {
	if len(data) > n {
		return string(data[:n]) + "…"
	}
	return string(data)
}

// Operator sends one operator call (POST /api/v1) and returns the reply, whose type must
// match the call's.
func (c *Client) Operator(ctx context.Context, call OperatorCall) (*OperatorResponse, error) {
	var reply OperatorResponse
	if err := c.operator(ctx, call.Type, call, &reply); err != nil {
		return nil, err
	}
	if reply.Type != call.Type {
		return nil, fmt.Errorf("%s: reply has type %q", call.Type, reply.Type)
	}
	return &reply, nil
}

// operator posts body to the operator API and decodes a 200 reply into reply (nil: any
// 2xx reply, body ignored).
func (c *Client) operator(ctx context.Context, typ OperatorCallType, body, reply any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	resp, err := c.post(ctx, c.baseURL+OperatorPath, data, nil, true)
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	if reply == nil {
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %w", typ, replyError(resp))
		}
		discard(resp)
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %w", typ, replyError(resp))
	}
	if err := decodeReply(resp, reply); err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	return nil
}

// operatorPart sends a call without arguments and returns the part of the reply that
// answers it, which must be present.
func operatorPart[T any](ctx context.Context, c *Client, typ OperatorCallType, part func(*OperatorResponse) *T) (*T, error) {
	reply, err := c.Operator(ctx, OperatorCall{Type: typ})
	if err != nil {
		return nil, err
	}
	p := part(reply)
	if p == nil {
		return nil, fmt.Errorf("%s: reply lacks %s", typ, strings.ToLower(string(typ)))
	}
	return p, nil
}

// GetState returns the master's tasks, executors, frameworks and agents.
func (c *Client) GetState(ctx context.Context) (*GetState, error) {
	return operatorPart(ctx, c, OpGetState, func(r *OperatorResponse) *GetState { return r.GetState })
}

// GetAgents returns the registered agents.
func (c *Client) GetAgents(ctx context.Context) (*GetAgents, error) {
	return operatorPart(ctx, c, OpGetAgents, func(r *OperatorResponse) *GetAgents { return r.GetAgents })
}

// GetFrameworks returns the frameworks.
func (c *Client) GetFrameworks(ctx context.Context) (*GetFrameworks, error) {
	return operatorPart(ctx, c, OpGetFrameworks, func(r *OperatorResponse) *GetFrameworks { return r.GetFrameworks })
}

// GetTasks returns the tasks.
func (c *Client) GetTasks(ctx context.Context) (*GetTasks, error) {
	return operatorPart(ctx, c, OpGetTasks, func(r *OperatorResponse) *GetTasks { return r.GetTasks })
}

// GetMembers returns the gossip members.
func (c *Client) GetMembers(ctx context.Context) (*GetMembers, error) {
	return operatorPart(ctx, c, OpGetMembers, func(r *OperatorResponse) *GetMembers { return r.GetMembers })
}

// GetHealth returns the master's health.
func (c *Client) GetHealth(ctx context.Context) (*GetHealth, error) {
	return operatorPart(ctx, c, OpGetHealth, func(r *OperatorResponse) *GetHealth { return r.GetHealth })
}

// GetVersion returns the master's version.
func (c *Client) GetVersion(ctx context.Context) (*GetVersion, error) {
	return operatorPart(ctx, c, OpGetVersion, func(r *OperatorResponse) *GetVersion { return r.GetVersion })
}

// KillTask asks the master to kill a task of a framework (operator call KILL_TASK). It
// returns once the master accepted the request; the task's end shows in its state.
func (c *Client) KillTask(ctx context.Context, frameworkID, taskID string) error {
	call := OperatorCall{Type: OpKillTask, KillTask: &KillTaskCall{FrameworkID: FrameworkID{Value: frameworkID}, TaskID: TaskID{Value: taskID}}}
	return c.operator(ctx, OpKillTask, call, nil)
}

// Teardown removes a framework and kills all its tasks (operator call TEARDOWN). A
// framework that subscribes again afterwards is a new framework.
func (c *Client) Teardown(ctx context.Context, frameworkID string) error {
	call := OperatorCall{Type: OpTeardown, Teardown: &TeardownCall{FrameworkID: FrameworkID{Value: frameworkID}}}
	return c.operator(ctx, OpTeardown, call, nil)
}

// eventReader decodes JSON events from a RecordIO response body.
type eventReader struct {
	body    io.ReadCloser
	records *RecordReader
}

// next decodes the next record into ev. It returns io.EOF when the stream ended cleanly
// between records.
func (r *eventReader) next(ev any) error {
	rec, err := r.records.ReadRecord()
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return fmt.Errorf("read event: %w", err)
	}
	if err := json.Unmarshal(rec, ev); err != nil {
		return fmt.Errorf("decode event %q: %w", prefix(rec, 40), err)
	}
	return nil
}

// streamReadBuffer is the receive buffer (SO_RCVBUF; the kernel caps it at
// net.core.rmem_max) of a connection carrying an event stream. A stream comes in bursts:
// a thousand tasks launched at once are half a megabyte of TASK_ADDED events on every
// operator stream. With the kernel's default buffer (128 KiB, grown only as fast as the
// reader has kept up) a reader that falls behind for a moment closes its TCP window, and
// on loopback the sender waited 200 ms (its zero-window probe) to learn it had opened
// again: the DNS's names lagged their tasks by that much (BenchmarkFreshness).
const streamReadBuffer = 4 << 20

// StreamContext has a request made with ctx, one that opens an event stream, give its
// connection streamReadBuffer.
func StreamContext(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		conn := info.Conn
		if tc, ok := conn.(*tls.Conn); ok {
			conn = tc.NetConn()
		}
		if tcp, ok := conn.(*net.TCPConn); ok {
			// Best effort: the stream works with the default buffer too.
			_ = tcp.SetReadBuffer(streamReadBuffer)
		}
	}})
}

// OperatorStream is an operator SUBSCRIBE stream. Next is for one goroutine; Close may be
// called from any.
type OperatorStream struct {
	events eventReader
}

// SubscribeOperator opens the operator event stream; its first event is SUBSCRIBED with
// the full state. ctx bounds the whole stream.
func (c *Client) SubscribeOperator(ctx context.Context) (*OperatorStream, error) {
	data, err := json.Marshal(OperatorCall{Type: OpSubscribe})
	if err != nil {
		return nil, fmt.Errorf("operator SUBSCRIBE: %w", err)
	}
	resp, err := c.post(StreamContext(ctx), c.baseURL+OperatorPath, data, nil, true)
	if err != nil {
		return nil, fmt.Errorf("operator SUBSCRIBE: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("operator SUBSCRIBE: %w", replyError(resp))
	}
	return &OperatorStream{events: eventReader{body: resp.Body, records: NewRecordReader(resp.Body)}}, nil
}

// Next returns the next event; io.EOF when the master ended the stream.
func (s *OperatorStream) Next() (*OperatorEvent, error) {
	var ev OperatorEvent
	if err := s.events.next(&ev); err != nil {
		return nil, err
	}
	if ev.Type == "" {
		return nil, errors.New("decode event: no type")
	}
	return &ev, nil
}

// Close ends the stream.
func (s *OperatorStream) Close() error { return s.events.body.Close() }

// SchedulerStream is a framework's subscription: the event stream from the master that
// accepted SUBSCRIBE, and calls sent to that same master. Next is for one goroutine; Call
// and its helpers may be used from any.
type SchedulerStream struct {
	client   *Client
	callURL  string
	streamID string
	events   eventReader

	mu          sync.Mutex
	frameworkID FrameworkID
}

// Subscribe subscribes a framework (POST /api/v1/scheduler SUBSCRIBE), following non-leading
// masters' redirects to the leader. Set info.ID to resubscribe after a failover. ctx bounds
// the whole subscription.
func (c *Client) Subscribe(ctx context.Context, info FrameworkInfo, suppressedRoles []string) (*SchedulerStream, error) {
	call := Call{Type: CallSubscribe, FrameworkID: info.ID, Subscribe: &Subscribe{FrameworkInfo: info, SuppressedRoles: suppressedRoles}}
	data, err := json.Marshal(call)
	if err != nil {
		return nil, fmt.Errorf("SUBSCRIBE: %w", err)
	}
	resp, err := c.post(StreamContext(ctx), c.baseURL+SchedulerPath, data, nil, true)
	if err != nil {
		return nil, fmt.Errorf("SUBSCRIBE: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("SUBSCRIBE: %w", replyError(resp))
	}
	streamID := resp.Header.Get(StreamIDHeader)
	if streamID == "" {
		discard(resp)
		return nil, fmt.Errorf("SUBSCRIBE: reply from %s has no %s header", resp.Request.URL, StreamIDHeader)
	}
	s := &SchedulerStream{
		client:   c,
		callURL:  resp.Request.URL.String(),
		streamID: streamID,
		events:   eventReader{body: resp.Body, records: NewRecordReader(resp.Body)},
	}
	if info.ID != nil {
		s.frameworkID = *info.ID
	}
	return s, nil
}

// Next returns the next event; io.EOF when the master ended the stream. An ERROR event is
// returned like any other; the master closes the stream after it.
func (s *SchedulerStream) Next() (*Event, error) {
	var ev Event
	if err := s.events.next(&ev); err != nil {
		return nil, err
	}
	switch {
	case ev.Type == "":
		return nil, errors.New("decode event: no type")
	case ev.Type == EventSubscribed && ev.Subscribed == nil:
		return nil, errors.New("decode event: SUBSCRIBED without subscribed")
	case ev.Type == EventSubscribed:
		s.mu.Lock()
		s.frameworkID = ev.Subscribed.FrameworkID
		s.mu.Unlock()
	}
	return &ev, nil
}

// Events reads the stream in a goroutine of its own, so that a framework's loop can
// select on events with its timers: events is closed when reading ends, and err then
// holds why (the stream's error, or ctx's). buffer is how many events may wait unread.
func (s *SchedulerStream) Events(ctx context.Context, buffer int) (events <-chan *Event, err <-chan error) {
	out := make(chan *Event, buffer)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			ev, err := s.Next()
			if err != nil {
				errc <- err
				return
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}

// StreamID is the subscription's Mesos-Stream-Id.
func (s *SchedulerStream) StreamID() string { return s.streamID }

// FrameworkID is the framework's id: from SUBSCRIBED once Next has read it, else the id
// given to Subscribe (empty for a new framework).
func (s *SchedulerStream) FrameworkID() FrameworkID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frameworkID
}

// Close ends the stream. The master then treats the framework as disconnected.
func (s *SchedulerStream) Close() error { return s.events.body.Close() }

// Call sends a call to the master holding the stream, with the framework id (unless the
// call has one) and the stream id. It returns nil once the master accepted it (202).
func (s *SchedulerStream) Call(ctx context.Context, call *Call) error {
	sent := *call
	if sent.FrameworkID == nil {
		id := s.FrameworkID()
		if id.Value == "" {
			return fmt.Errorf("%s: no framework id yet (SUBSCRIBED not read)", call.Type)
		}
		sent.FrameworkID = &id
	}
	data, err := json.Marshal(sent)
	if err != nil {
		return fmt.Errorf("%s: %w", call.Type, err)
	}
	resp, err := s.client.post(ctx, s.callURL, data, http.Header{StreamIDHeader: {s.streamID}}, false)
	if err != nil {
		return fmt.Errorf("%s: %w", call.Type, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("%s: %w", call.Type, replyError(resp))
	}
	discard(resp)
	return nil
}

// Accept accepts offers, applying operations (LAUNCH, …) to their resources.
func (s *SchedulerStream) Accept(ctx context.Context, offerIDs []OfferID, operations []OfferOperation, filters *Filters) error {
	return s.Call(ctx, &Call{Type: CallAccept, Accept: &Accept{OfferIDs: offerIDs, Operations: operations, Filters: filters}})
}

// Decline declines offers; filters say for how long not to offer those resources again.
func (s *SchedulerStream) Decline(ctx context.Context, offerIDs []OfferID, filters *Filters) error {
	return s.Call(ctx, &Call{Type: CallDecline, Decline: &Decline{OfferIDs: offerIDs, Filters: filters}})
}

// Revive clears the framework's filters and resumes offers for roles (all when none given).
func (s *SchedulerStream) Revive(ctx context.Context, roles ...string) error {
	return s.Call(ctx, &Call{Type: CallRevive, Revive: &Revive{Roles: roles}})
}

// Suppress stops offers for roles (all when none given).
func (s *SchedulerStream) Suppress(ctx context.Context, roles ...string) error {
	return s.Call(ctx, &Call{Type: CallSuppress, Suppress: &Suppress{Roles: roles}})
}

// Kill kills a task; agentID may be nil when unknown.
func (s *SchedulerStream) Kill(ctx context.Context, taskID TaskID, agentID *AgentID) error {
	return s.Call(ctx, &Call{Type: CallKill, Kill: &Kill{TaskID: taskID, AgentID: agentID}})
}

// Acknowledge acknowledges a status update. Only updates with a uuid take one; others are
// an error, as the master would reject them.
func (s *SchedulerStream) Acknowledge(ctx context.Context, status TaskStatus) error {
	if len(status.UUID) == 0 {
		return fmt.Errorf("ACKNOWLEDGE: update of task %s has no uuid", status.TaskID.Value)
	}
	if status.AgentID == nil {
		return fmt.Errorf("ACKNOWLEDGE: update of task %s has no agent_id", status.TaskID.Value)
	}
	return s.Call(ctx, &Call{Type: CallAcknowledge, Acknowledge: &Acknowledge{AgentID: *status.AgentID, TaskID: status.TaskID, UUID: status.UUID}})
}

// Reconcile asks for the latest status of tasks; none asks for all of the framework's.
func (s *SchedulerStream) Reconcile(ctx context.Context, tasks ...ReconcileTask) error {
	return s.Call(ctx, &Call{Type: CallReconcile, Reconcile: &Reconcile{Tasks: tasks}})
}

// Teardown removes the framework and kills all its tasks.
func (s *SchedulerStream) Teardown(ctx context.Context) error {
	return s.Call(ctx, &Call{Type: CallTeardown})
}
