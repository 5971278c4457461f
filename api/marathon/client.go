package marathon

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Client speaks the Marathon v2 API of a master (the services framework serves it on the
// master port) or of any Marathon-compatible server: what the CLI and the terminal UI
// call. It is safe for concurrent use.
type Client struct {
	baseURL string
	// http has no Timeout: the event stream lives as long as its context. Every other
	// request is bounded by timeout.
	http    *http.Client
	timeout time.Duration
	token   string
}

// MaxBody bounds an API answer read whole: a group of thousands of apps fits.
const MaxBody = 64 << 20

// maxEventLine bounds one line of /v2/events; an event with a large app definition fits.
const maxEventLine = 16 << 20

// DefaultTimeout bounds each request but the event stream, unless WithTimeout says otherwise.
const DefaultTimeout = 30 * time.Second

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient sends the requests with hc (its Timeout should be 0: the event stream
// is long-lived).
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.http = hc } }

// WithTimeout bounds each request but the event stream.
func WithTimeout(d time.Duration) ClientOption { return func(c *Client) { c.timeout = d } }

// WithToken authenticates every request with "Authorization: Bearer token"; "" sends none.
func WithToken(token string) ClientOption { return func(c *Client) { c.token = token } }

// authorize adds the client's token to req.
func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// NewClient returns a client for the server at baseURL ("http://host:5050").
func NewClient(baseURL string, opts ...ClientOption) *Client {
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), http: &http.Client{}, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL is the server's address the client was made with.
func (c *Client) BaseURL() string { return c.baseURL }

// Object is an object of an API answer: decoded, and its JSON as the API sent it.
type Object[T any] struct {
	Value T
	Raw   json.RawMessage
}

// APIError is an error answer of the API: the request, and the body as Marathon writes
// errors, {"message": …, "details": [{"path": …, "errors": […]}]}.
type APIError struct {
	Method, Path string
	Body         *Error
	// FromMarathon says the body was Marathon's error JSON, not some other server's text.
	FromMarathon bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.Path, e.Body.Status, e.Body.Message)
	details := e.Body.Details
	if len(details) == 1 {
		fmt.Fprintf(&b, ": %s: %s", details[0].Path, strings.Join(details[0].Errors, ", "))
		return b.String()
	}
	if len(details) > 0 {
		b.WriteString(":")
	}
	for _, d := range details {
		fmt.Fprintf(&b, "\n  %s: %s", d.Path, strings.Join(d.Errors, ", "))
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.Body }

// parseErrorBody reads an error answer's body: Marathon's error JSON, or else its text
// as the message. ok says it was Marathon's JSON.
func parseErrorBody(status int, data []byte) (body *Error, ok bool) {
	var me Error
	if err := json.Unmarshal(data, &me); err == nil && me.Message != "" {
		me.Status = status
		return &me, true
	}
	msg := shorten(strings.TrimSpace(string(data)), 4<<10)
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &Error{Status: status, Message: msg}, false
}

// transportError drops the method and URL net/http puts around a failed request's
// error: the caller names the request.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Reply is an API answer with a success status.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends a request with an optional JSON body to path on the server and reads the
// whole answer; an error status is an *APIError. It is for the calls the typed methods
// do not cover, such as the Chronos API the same master serves.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body []byte) (*Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.baseURL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, reader)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, transportError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if len(data) > MaxBody {
		return nil, fmt.Errorf("%s %s: the answer is larger than %d MB", method, path, MaxBody>>20)
	}
	if resp.StatusCode >= 300 {
		me, ok := parseErrorBody(resp.StatusCode, data)
		return nil, &APIError{Method: method, Path: path, Body: me, FromMarathon: ok}
	}
	return &Reply{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// decodeAs decodes an answer's JSON into a T.
func decodeAs[T any](method, path string, data []byte) (T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%s %s: the answer is not what the Marathon API sends (%d bytes): %w", method, path, len(data), err)
	}
	return v, nil
}

// decodeEach decodes the raw objects of a list.
func decodeEach[T any](method, path string, raws []json.RawMessage) ([]Object[T], error) {
	out := make([]Object[T], 0, len(raws))
	for _, raw := range raws {
		v, err := decodeAs[T](method, path, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, Object[T]{Value: v, Raw: raw})
	}
	return out, nil
}

// getList GETs a list that the API wraps in an object under key ({"apps": […]}), or
// sends bare when key is "".
func getList[T any](ctx context.Context, c *Client, path, key string, query url.Values) ([]Object[T], error) {
	r, err := c.Do(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if key == "" {
		raws, err = decodeAs[[]json.RawMessage](http.MethodGet, path, r.Body)
	} else {
		var wrapped map[string][]json.RawMessage
		wrapped, err = decodeAs[map[string][]json.RawMessage](http.MethodGet, path, r.Body)
		raws = wrapped[key]
	}
	if err != nil {
		return nil, err
	}
	return decodeEach[T](http.MethodGet, path, raws)
}

// idPath makes an app or group id a URL path: absolute, each segment escaped.
func idPath(id string) string {
	segments := strings.Split(strings.Trim(id, "/"), "/")
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	return "/" + strings.Join(segments, "/")
}

// forceQuery is ?force=true when force is set.
func forceQuery(force bool) url.Values {
	if !force {
		return nil
	}
	return url.Values{"force": {"true"}}
}

// Started is the answer of a call that started a deployment.
type Started struct {
	// Status is the HTTP status: 201 when an app or group was created.
	Status int
	// DeploymentID is "" when the call changed nothing, so started no deployment.
	DeploymentID string
	Version      string
	// Raw is the API's JSON answer.
	Raw json.RawMessage
}

// deploymentStarted reads the answer of a call that started a deployment: the
// {"deploymentId", "version"} body, the id also in a header. A group change that changes
// no app starts none: its deploymentId is "".
func deploymentStarted(method, path string, r *Reply) (Started, error) {
	body, err := decodeAs[DeploymentResult](method, path, r.Body)
	if err != nil {
		return Started{}, err
	}
	s := Started{
		Status:       r.Status,
		DeploymentID: cmp.Or(body.DeploymentID, r.Header.Get(DeploymentIDHeader)),
		Version:      body.Version,
		Raw:          r.Body,
	}
	return s, nil
}

// ListApps lists every app with its task counts and deployments.
func (c *Client) ListApps(ctx context.Context) ([]Object[AppInfo], error) {
	return getList[AppInfo](ctx, c, "/v2/apps", "apps", url.Values{"embed": {"apps.counts", "apps.deployments"}})
}

// GetApp reads one app by id.
func (c *Client) GetApp(ctx context.Context, id string) (Object[AppInfo], error) {
	path := "/v2/apps" + idPath(id)
	r, err := c.Do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return Object[AppInfo]{}, err
	}
	wrapped, err := decodeAs[struct {
		App json.RawMessage `json:"app"`
	}](http.MethodGet, path, r.Body)
	if err != nil {
		return Object[AppInfo]{}, err
	}
	info, err := decodeAs[AppInfo](http.MethodGet, path, wrapped.App)
	if err != nil {
		return Object[AppInfo]{}, err
	}
	return Object[AppInfo]{Value: info, Raw: wrapped.App}, nil
}

// AppTasks lists an app's tasks.
func (c *Client) AppTasks(ctx context.Context, id string) ([]Object[Task], error) {
	return getList[Task](ctx, c, "/v2/apps"+idPath(id)+"/tasks", "tasks", nil)
}

// ListTasks lists the tasks of every app.
func (c *Client) ListTasks(ctx context.Context) ([]Object[Task], error) {
	return getList[Task](ctx, c, "/v2/tasks", "tasks", nil)
}

// CreateApp POSTs an app definition; the answer is the app and names the deployment.
func (c *Client) CreateApp(ctx context.Context, def []byte, force bool) (Started, error) {
	r, err := c.Do(ctx, http.MethodPost, "/v2/apps", forceQuery(force), def)
	if err != nil {
		return Started{}, err
	}
	app, err := decodeAs[AppInfo](http.MethodPost, "/v2/apps", r.Body)
	if err != nil {
		return Started{}, err
	}
	id := r.Header.Get(DeploymentIDHeader)
	if id == "" {
		return Started{}, errors.New("POST /v2/apps: the answer names no deployment")
	}
	return Started{Status: r.Status, DeploymentID: id, Version: app.Version, Raw: r.Body}, nil
}

// PutApp changes (creating if missing) an app: with partial, the fields of def replace
// the app's; without, def is the whole new definition.
func (c *Client) PutApp(ctx context.Context, id string, def []byte, force, partial bool) (Started, error) {
	path := "/v2/apps" + idPath(id)
	q := forceQuery(force)
	if !partial {
		if q == nil {
			q = url.Values{}
		}
		q.Set("partialUpdate", "false")
	}
	return c.startDeployment(ctx, http.MethodPut, path, q, def)
}

// PatchApp changes the fields of def in an app.
func (c *Client) PatchApp(ctx context.Context, id string, def []byte, force bool) (Started, error) {
	return c.startDeployment(ctx, http.MethodPatch, "/v2/apps"+idPath(id), forceQuery(force), def)
}

// RestartApp replaces an app's tasks, honouring its upgrade strategy.
func (c *Client) RestartApp(ctx context.Context, id string, force bool) (Started, error) {
	return c.startDeployment(ctx, http.MethodPost, "/v2/apps"+idPath(id)+"/restart", forceQuery(force), nil)
}

// DeleteApp destroys an app and kills its tasks.
func (c *Client) DeleteApp(ctx context.Context, id string, force bool) (Started, error) {
	return c.startDeployment(ctx, http.MethodDelete, "/v2/apps"+idPath(id), forceQuery(force), nil)
}

// startDeployment sends a call whose answer names the deployment it started (none when
// the call changed nothing).
func (c *Client) startDeployment(ctx context.Context, method, path string, q url.Values, body []byte) (Started, error) {
	r, err := c.Do(ctx, method, path, q, body)
	if err != nil {
		return Started{}, err
	}
	return deploymentStarted(method, path, r)
}

// ListDeployments lists the deployments in progress.
func (c *Client) ListDeployments(ctx context.Context) ([]Object[Deployment], error) {
	return getList[Deployment](ctx, c, "/v2/deployments", "", nil)
}

// RollbackDeployment starts a deployment back to the apps' definitions before id.
func (c *Client) RollbackDeployment(ctx context.Context, id string) (Started, error) {
	return c.startDeployment(ctx, http.MethodDelete, "/v2/deployments/"+url.PathEscape(id), nil, nil)
}

// StopDeployment ends a deployment where it is, changing nothing back.
func (c *Client) StopDeployment(ctx context.Context, id string) error {
	_, err := c.Do(ctx, http.MethodDelete, "/v2/deployments/"+url.PathEscape(id), forceQuery(true), nil)
	return err
}

// Queue lists the apps waiting for offers, and why offers did not fit them.
func (c *Client) Queue(ctx context.Context) ([]Object[QueueItem], error) {
	return getList[QueueItem](ctx, c, "/v2/queue", "queue", nil)
}

// ErrNoGroupsAPI says the master does not serve /v2/groups at all.
var ErrNoGroupsAPI = errors.New("this master serves no Marathon group API; deploy the apps one by one with atoll app add")

// groupCall sends a /v2/groups request; a 404 that is not Marathon's own error JSON (a
// missing group) means the master has no group API.
func (c *Client) groupCall(ctx context.Context, method, path string, q url.Values, body []byte) (*Reply, error) {
	r, err := c.Do(ctx, method, path, q, body)
	var ae *APIError
	if errors.As(err, &ae) && ae.Body.Status == http.StatusNotFound && !ae.FromMarathon {
		return nil, fmt.Errorf("%s %s: %w (it answers %q)", method, path, ErrNoGroupsAPI, ae.Body.Message)
	}
	return r, err
}

// groupEmbed asks for the whole tree: subgroups and apps.
var groupEmbed = url.Values{"embed": {"group.groups", "group.apps"}}

// GetGroup reads a group ("" or "/" for the root) with its subgroups and apps.
func (c *Client) GetGroup(ctx context.Context, id string) (Object[Group], error) {
	path := "/v2/groups"
	if strings.Trim(id, "/") != "" {
		path += idPath(id)
	}
	r, err := c.groupCall(ctx, http.MethodGet, path, groupEmbed, nil)
	if err != nil {
		return Object[Group]{}, err
	}
	g, err := decodeAs[Group](http.MethodGet, path, r.Body)
	if err != nil {
		return Object[Group]{}, err
	}
	return Object[Group]{Value: g, Raw: r.Body}, nil
}

// GroupChange sends a group change and reads the deployment it started.
func (c *Client) GroupChange(ctx context.Context, method, id string, def []byte, force bool) (Started, error) {
	path := "/v2/groups"
	if id != "" {
		path += idPath(id)
	}
	r, err := c.groupCall(ctx, method, path, forceQuery(force), def)
	if err != nil {
		return Started{}, err
	}
	return deploymentStarted(method, path, r)
}

// Event is one Server-Sent Event of /v2/events: its type ("message" when the stream
// names none) and its data lines joined by "\n".
type Event struct {
	Type string
	Data []byte
}

// sseReader parses a text/event-stream.
type sseReader struct {
	lines *bufio.Scanner
}

func newSSEReader(r io.Reader) *sseReader {
	lines := bufio.NewScanner(r)
	lines.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	return &sseReader{lines: lines}
}

// next returns the next event with data; io.EOF at the end of the stream.
func (r *sseReader) next() (Event, error) {
	var ev Event
	var data [][]byte
	for r.lines.Scan() {
		line := r.lines.Bytes()
		if len(line) == 0 {
			if data != nil {
				ev.Data = bytes.Join(data, []byte("\n"))
				if ev.Type == "" {
					ev.Type = "message"
				}
				return ev, nil
			}
			ev = Event{}
			continue
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.Type = string(value)
		case "data":
			data = append(data, bytes.Clone(value))
		}
	}
	if err := r.lines.Err(); err != nil {
		return Event{}, fmt.Errorf("read /v2/events: %w", err)
	}
	return Event{}, io.EOF
}

// EventStream is an open /v2/events stream.
type EventStream struct {
	body   io.Closer
	events *sseReader
}

// Events subscribes to /v2/events for the event types; the stream lasts until ctx ends or
// Close.
func (c *Client) Events(ctx context.Context, types ...string) (*EventStream, error) {
	q := url.Values{"event_type": types}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/v2/events?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET /v2/events: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v2/events: %w", transportError(err))
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		me, ok := parseErrorBody(resp.StatusCode, data)
		return nil, &APIError{Method: http.MethodGet, Path: "/v2/events", Body: me, FromMarathon: ok}
	}
	return &EventStream{body: resp.Body, events: newSSEReader(resp.Body)}, nil
}

// Next returns the next event; io.EOF when the server ended the stream.
func (s *EventStream) Next() (Event, error) { return s.events.next() }

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// shorten cuts s to n runes, marking the cut with "…".
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
