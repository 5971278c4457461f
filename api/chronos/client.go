package chronos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Prefix is where Chronos 3 serves its API; masters serve it there and, for Chronos 2
// clients, under /scheduler.
const Prefix = "/v1/scheduler"

// DefaultTimeout bounds each request unless WithTimeout says otherwise.
const DefaultTimeout = 30 * time.Second

// maxBody bounds an answer read whole: thousands of jobs fit.
const maxBody = 64 << 20

// maxErrorBody bounds how much of an error answer becomes Error.Message.
const maxErrorBody = 4 << 10

// ErrNoJobsAPI says the server does not serve the Chronos API at all (no jobs framework
// runs there): it answered 404 to a path the API has, not with the API's error JSON.
var ErrNoJobsAPI = errors.New("this master serves no Chronos job API")

// Error is an error answer of the API. Message is the API's {"message": …}, or the body's
// text when the server sent something else.
type Error struct {
	Method, Path string
	Status       int
	Message      string
	// FromChronos says the body was the API's error JSON.
	FromChronos bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// Unwrap is ErrNoJobsAPI for a 404 that did not come from the API.
func (e *Error) Unwrap() error {
	if e.Status == http.StatusNotFound && !e.FromChronos {
		return ErrNoJobsAPI
	}
	return nil
}

// NotFound says the answer was the API's 404: the job does not exist.
func (e *Error) NotFound() bool { return e.Status == http.StatusNotFound && e.FromChronos }

// parseError reads an error answer's body.
func parseError(method, path string, status int, data []byte) *Error {
	e := &Error{Method: method, Path: path, Status: status}
	var body struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(data, &body); err == nil && body.Message != "" {
		e.Message, e.FromChronos = body.Message, true
		return e
	}
	e.Message = strings.TrimSpace(string(data))
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// Client speaks the Chronos API of a master (the jobs framework serves it on the master
// port) or of any Chronos-compatible server. It is safe for concurrent use.
type Client struct {
	baseURL string
	http    *http.Client
	timeout time.Duration
	token   string
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient sends the requests with hc.
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.http = hc } }

// WithTimeout bounds each request.
func WithTimeout(d time.Duration) ClientOption { return func(c *Client) { c.timeout = d } }

// WithToken authenticates every request with "Authorization: Bearer token".
func WithToken(token string) ClientOption { return func(c *Client) { c.token = token } }

// NewClient returns a client for the server at baseURL ("http://host:5050").
func NewClient(baseURL string, opts ...ClientOption) *Client {
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), http: &http.Client{}, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	return c
}

// do sends a request to Prefix+path and returns the body of a 2xx answer; any other
// status is an *Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	path = Prefix + path
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
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, parseError(method, path, resp.StatusCode, data)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("%s %s: the answer is larger than %d MB", method, path, maxBody>>20)
	}
	return data, nil
}

// get GETs path and decodes the answer into a T.
func get[T any](ctx context.Context, c *Client, path string, query url.Values) (T, error) {
	var v T
	data, err := c.do(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("GET %s%s: the answer is not what the Chronos API sends (%d bytes): %w", Prefix, path, len(data), err)
	}
	return v, nil
}

// jobPath is the path of a job under prefix ("/job").
func jobPath(prefix, name string) string { return prefix + "/" + url.PathEscape(name) }

// ListJobs lists every job with its counters, by name.
func (c *Client) ListJobs(ctx context.Context) ([]Job, error) {
	return get[[]Job](ctx, c, "/jobs", nil)
}

// Summaries lists every job's latest outcome and what it does now, by name.
func (c *Client) Summaries(ctx context.Context) ([]Summary, error) {
	wrapped, err := get[struct {
		Jobs []Summary `json:"jobs"`
	}](ctx, c, "/jobs/summary", nil)
	return wrapped.Jobs, err
}

// GetJob reads one job; a missing job is an *Error whose NotFound is true.
func (c *Client) GetJob(ctx context.Context, name string) (Job, error) {
	return get[Job](ctx, c, jobPath("/job", name), nil)
}

// Stat reads a job's runs and the durations of its successful ones.
func (c *Client) Stat(ctx context.Context, name string) (Stat, error) {
	return get[Stat](ctx, c, jobPath("/job/stat", name), nil)
}

// PutJob creates or replaces a job: a job with parents goes to /dependency, any other
// to /iso8601. The job's counters are not sent: the server keeps its own.
func (c *Client) PutJob(ctx context.Context, job Job) error {
	job.Counters = Counters{}
	data, err := json.Marshal(job)
	if err != nil {
		return fmt.Errorf("job %s: %w", job.Name, err)
	}
	path := "/iso8601"
	if len(job.Parents) > 0 {
		path = "/dependency"
	}
	_, err = c.do(ctx, http.MethodPost, path, nil, data)
	return err
}

// SetDisabled disables or enables a job: the API has no call of its own for it, so the
// job is read and posted back with Disabled changed. A change made by someone else in
// between is overwritten.
func (c *Client) SetDisabled(ctx context.Context, name string, disabled bool) error {
	job, err := c.GetJob(ctx, name)
	if err != nil {
		return err
	}
	if job.Disabled == disabled {
		return nil
	}
	job.Disabled = disabled
	return c.PutJob(ctx, job)
}

// RunNow starts a run of the job now; arguments, when given, replace the job's for this
// run (the API splits them at white space, so none may contain any).
func (c *Client) RunNow(ctx context.Context, name string, arguments ...string) error {
	var q url.Values
	if len(arguments) > 0 {
		q = url.Values{"arguments": {strings.Join(arguments, " ")}}
	}
	_, err := c.do(ctx, http.MethodPut, jobPath("/job", name), q, nil)
	return err
}

// MarkSuccess counts a success of the job now, as if a run had succeeded: the jobs that
// depend on it run.
func (c *Client) MarkSuccess(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPut, jobPath("/job/success", name), nil, nil)
	return err
}

// KillTasks kills the job's runs in progress and drops its waiting ones.
func (c *Client) KillTasks(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, jobPath("/task/kill", name), nil, nil)
	return err
}

// DeleteJob removes a job and kills its runs. A job others depend on stays, and the
// error names them.
func (c *Client) DeleteJob(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, jobPath("/job", name), nil, nil)
	return err
}
