package cli

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

	"github.com/atoll/atoll/api/marathon"
)

// The services framework serves the Marathon v2 API on the master port; marathonClient
// speaks it for the app, deployment and group commands.

// maxMarathonBody bounds an API answer read whole: a group of thousands of apps fits.
const maxMarathonBody = 64 << 20

// maxEventLine bounds one line of /v2/events; an event with a large app definition fits.
const maxEventLine = 16 << 20

// marathonClient calls the Marathon v2 API of a master. It is safe for concurrent use.
type marathonClient struct {
	baseURL string
	// http has no Timeout: the event stream lives as long as its context. Every other
	// request is bounded by timeout.
	http    *http.Client
	timeout time.Duration
}

// newMarathonClient returns a client for the master at baseURL ("http://host:5050").
func newMarathonClient(baseURL string) *marathonClient {
	return &marathonClient{baseURL: strings.TrimRight(baseURL, "/"), http: &http.Client{}, timeout: requestTimeout}
}

// marathon returns a client for the master address the flags and environment name.
func (a *app) marathon() (*marathonClient, error) {
	addr, err := resolveAddr(a.addrFlag, a.addrSet, a.getenv(addrEnv))
	if err != nil {
		return nil, &usageError{err}
	}
	a.addr = addr
	return newMarathonClient(addr), nil
}

// apiObject is an object of an API answer: decoded, and its JSON as the API sent it,
// which -o json prints.
type apiObject[T any] struct {
	v   T
	raw json.RawMessage
}

// apiError is an error answer of the API: the request, and the body as Marathon writes
// errors, {"message": …, "details": [{"path": …, "errors": […]}]}.
type apiError struct {
	method, path string
	body         *marathon.Error
	// fromMarathon says the body was Marathon's error JSON, not some other server's text.
	fromMarathon bool
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.method, e.path, e.body.Status, e.body.Message)
	details := e.body.Details
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

func (e *apiError) Unwrap() error { return e.body }

// parseErrorBody reads an error answer's body: Marathon's error JSON, or else its text
// as the message. ok says it was Marathon's JSON.
func parseErrorBody(status int, data []byte) (body *marathon.Error, ok bool) {
	var me marathon.Error
	if err := json.Unmarshal(data, &me); err == nil && me.Message != "" {
		me.Status = status
		return &me, true
	}
	msg := truncate(strings.TrimSpace(string(data)), 4<<10)
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &marathon.Error{Status: status, Message: msg}, false
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

// reply is an API answer with a success status.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with an optional JSON body and reads the whole answer; an error
// status is an *apiError.
func (c *marathonClient) do(ctx context.Context, method, path string, query url.Values, body []byte) (*reply, error) {
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
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, transportError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMarathonBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if len(data) > maxMarathonBody {
		return nil, fmt.Errorf("%s %s: the answer is larger than %d MB", method, path, maxMarathonBody>>20)
	}
	if resp.StatusCode >= 300 {
		me, ok := parseErrorBody(resp.StatusCode, data)
		return nil, &apiError{method: method, path: path, body: me, fromMarathon: ok}
	}
	return &reply{status: resp.StatusCode, header: resp.Header, body: data}, nil
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
func decodeEach[T any](method, path string, raws []json.RawMessage) ([]apiObject[T], error) {
	out := make([]apiObject[T], 0, len(raws))
	for _, raw := range raws {
		v, err := decodeAs[T](method, path, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, apiObject[T]{v: v, raw: raw})
	}
	return out, nil
}

// getList GETs a list that the API wraps in an object under key ({"apps": […]}), or
// sends bare when key is "".
func getList[T any](ctx context.Context, c *marathonClient, path, key string, query url.Values) ([]apiObject[T], error) {
	r, err := c.do(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if key == "" {
		raws, err = decodeAs[[]json.RawMessage](http.MethodGet, path, r.body)
	} else {
		var wrapped map[string][]json.RawMessage
		wrapped, err = decodeAs[map[string][]json.RawMessage](http.MethodGet, path, r.body)
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

// canonicalID is an id as the API writes it: "/a/b".
func canonicalID(id string) string { return "/" + strings.Trim(id, "/") }

// forceQuery is ?force=true when force is set.
func forceQuery(force bool) url.Values {
	if !force {
		return nil
	}
	return url.Values{"force": {"true"}}
}

// started is the answer of a call that started a deployment.
type started struct {
	// status is the HTTP status: 201 when an app or group was created.
	status       int
	deploymentID string
	version      string
	// raw is the API's JSON answer.
	raw json.RawMessage
}

// deploymentStarted reads the answer of a call that started a deployment: the
// {"deploymentId", "version"} body, the id also in a header. A group change that changes
// no app starts none: its deploymentId is "".
func deploymentStarted(method, path string, r *reply) (started, error) {
	body, err := decodeAs[marathon.DeploymentResult](method, path, r.body)
	if err != nil {
		return started{}, err
	}
	s := started{
		status:       r.status,
		deploymentID: cmp.Or(body.DeploymentID, r.header.Get(marathon.DeploymentIDHeader)),
		version:      body.Version,
		raw:          r.body,
	}
	return s, nil
}

func (c *marathonClient) listApps(ctx context.Context) ([]apiObject[marathon.AppInfo], error) {
	return getList[marathon.AppInfo](ctx, c, "/v2/apps", "apps", url.Values{"embed": {"apps.counts", "apps.deployments"}})
}

func (c *marathonClient) getApp(ctx context.Context, id string) (apiObject[marathon.AppInfo], error) {
	path := "/v2/apps" + idPath(id)
	r, err := c.do(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return apiObject[marathon.AppInfo]{}, err
	}
	wrapped, err := decodeAs[struct {
		App json.RawMessage `json:"app"`
	}](http.MethodGet, path, r.body)
	if err != nil {
		return apiObject[marathon.AppInfo]{}, err
	}
	info, err := decodeAs[marathon.AppInfo](http.MethodGet, path, wrapped.App)
	if err != nil {
		return apiObject[marathon.AppInfo]{}, err
	}
	return apiObject[marathon.AppInfo]{v: info, raw: wrapped.App}, nil
}

func (c *marathonClient) appTasks(ctx context.Context, id string) ([]apiObject[marathon.Task], error) {
	return getList[marathon.Task](ctx, c, "/v2/apps"+idPath(id)+"/tasks", "tasks", nil)
}

func (c *marathonClient) listTasks(ctx context.Context) ([]apiObject[marathon.Task], error) {
	return getList[marathon.Task](ctx, c, "/v2/tasks", "tasks", nil)
}

// createApp POSTs an app definition; the answer is the app and names the deployment.
func (c *marathonClient) createApp(ctx context.Context, def []byte, force bool) (started, error) {
	r, err := c.do(ctx, http.MethodPost, "/v2/apps", forceQuery(force), def)
	if err != nil {
		return started{}, err
	}
	app, err := decodeAs[marathon.AppInfo](http.MethodPost, "/v2/apps", r.body)
	if err != nil {
		return started{}, err
	}
	id := r.header.Get(marathon.DeploymentIDHeader)
	if id == "" {
		return started{}, errors.New("POST /v2/apps: the answer names no deployment")
	}
	return started{status: r.status, deploymentID: id, version: app.Version, raw: r.body}, nil
}

// putApp changes (creating if missing) an app: with partial, the fields of def replace
// the app's; without, def is the whole new definition.
func (c *marathonClient) putApp(ctx context.Context, id string, def []byte, force, partial bool) (started, error) {
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

// patchApp changes the fields of def in an app.
func (c *marathonClient) patchApp(ctx context.Context, id string, def []byte, force bool) (started, error) {
	return c.startDeployment(ctx, http.MethodPatch, "/v2/apps"+idPath(id), forceQuery(force), def)
}

func (c *marathonClient) restartApp(ctx context.Context, id string, force bool) (started, error) {
	return c.startDeployment(ctx, http.MethodPost, "/v2/apps"+idPath(id)+"/restart", forceQuery(force), nil)
}

func (c *marathonClient) deleteApp(ctx context.Context, id string, force bool) (started, error) {
	return c.startDeployment(ctx, http.MethodDelete, "/v2/apps"+idPath(id), forceQuery(force), nil)
}

// startDeployment sends a call whose answer names the deployment it started (none when
// the call changed nothing).
func (c *marathonClient) startDeployment(ctx context.Context, method, path string, q url.Values, body []byte) (started, error) {
	r, err := c.do(ctx, method, path, q, body)
	if err != nil {
		return started{}, err
	}
	return deploymentStarted(method, path, r)
}

func (c *marathonClient) listDeployments(ctx context.Context) ([]apiObject[marathon.Deployment], error) {
	return getList[marathon.Deployment](ctx, c, "/v2/deployments", "", nil)
}

// rollbackDeployment starts a deployment back to the apps' definitions before id.
func (c *marathonClient) rollbackDeployment(ctx context.Context, id string) (started, error) {
	return c.startDeployment(ctx, http.MethodDelete, "/v2/deployments/"+url.PathEscape(id), nil, nil)
}

// stopDeployment ends a deployment where it is, changing nothing back.
func (c *marathonClient) stopDeployment(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v2/deployments/"+url.PathEscape(id), forceQuery(true), nil)
	return err
}

// queueItem is an entry of /v2/queue, with the app's last task failure the API adds.
type queueItem struct {
	marathon.QueueItem
	LastTaskFailure *marathon.TaskFailure `json:"lastTaskFailure,omitempty"`
}

func (c *marathonClient) queue(ctx context.Context) ([]apiObject[queueItem], error) {
	return getList[queueItem](ctx, c, "/v2/queue", "queue", nil)
}

// errNoGroupsAPI says the master does not serve /v2/groups at all.
var errNoGroupsAPI = errors.New("this master serves no Marathon group API; deploy the apps one by one with atoll app add")

// groupCall sends a /v2/groups request; a 404 that is not Marathon's own error JSON (a
// missing group) means the master has no group API.
func (c *marathonClient) groupCall(ctx context.Context, method, path string, q url.Values, body []byte) (*reply, error) {
	r, err := c.do(ctx, method, path, q, body)
	var ae *apiError
	if errors.As(err, &ae) && ae.body.Status == http.StatusNotFound && !ae.fromMarathon {
		return nil, fmt.Errorf("%s %s: %w (it answers %q)", method, path, errNoGroupsAPI, ae.body.Message)
	}
	return r, err
}

// groupEmbed asks for the whole tree: subgroups and apps.
var groupEmbed = url.Values{"embed": {"group.groups", "group.apps"}}

func (c *marathonClient) getGroup(ctx context.Context, id string) (apiObject[marathon.Group], error) {
	path := "/v2/groups"
	if strings.Trim(id, "/") != "" {
		path += idPath(id)
	}
	r, err := c.groupCall(ctx, http.MethodGet, path, groupEmbed, nil)
	if err != nil {
		return apiObject[marathon.Group]{}, err
	}
	g, err := decodeAs[marathon.Group](http.MethodGet, path, r.body)
	if err != nil {
		return apiObject[marathon.Group]{}, err
	}
	return apiObject[marathon.Group]{v: g, raw: r.body}, nil
}

// groupChange sends a group change and reads the deployment it started.
func (c *marathonClient) groupChange(ctx context.Context, method, id string, def []byte, force bool) (started, error) {
	path := "/v2/groups"
	if id != "" {
		path += idPath(id)
	}
	r, err := c.groupCall(ctx, method, path, forceQuery(force), def)
	if err != nil {
		return started{}, err
	}
	return deploymentStarted(method, path, r)
}

// sseEvent is one Server-Sent Event: its type ("message" when the stream names none)
// and its data lines joined by "\n".
type sseEvent struct {
	typ  string
	data []byte
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
func (r *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data [][]byte
	for r.lines.Scan() {
		line := r.lines.Bytes()
		if len(line) == 0 {
			if data != nil {
				ev.data = bytes.Join(data, []byte("\n"))
				if ev.typ == "" {
					ev.typ = "message"
				}
				return ev, nil
			}
			ev = sseEvent{}
			continue
		}
		if line[0] == ':' {
			continue // a comment
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.typ = string(value)
		case "data":
			data = append(data, bytes.Clone(value))
		}
	}
	if err := r.lines.Err(); err != nil {
		return sseEvent{}, fmt.Errorf("read /v2/events: %w", err)
	}
	return sseEvent{}, io.EOF
}

// eventStream is an open /v2/events stream.
type eventStream struct {
	body   io.Closer
	events *sseReader
}

// events subscribes to /v2/events for the event types; the stream lasts until ctx ends or
// Close.
func (c *marathonClient) events(ctx context.Context, types ...string) (*eventStream, error) {
	q := url.Values{"event_type": types}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/v2/events?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET /v2/events: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /v2/events: %w", transportError(err))
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		me, ok := parseErrorBody(resp.StatusCode, data)
		return nil, &apiError{method: http.MethodGet, path: "/v2/events", body: me, fromMarathon: ok}
	}
	return &eventStream{body: resp.Body, events: newSSEReader(resp.Body)}, nil
}

func (s *eventStream) next() (sseEvent, error) { return s.events.next() }

func (s *eventStream) Close() error { return s.body.Close() }
