package universe

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

// Client calls the Cosmos API (/package/*) of a master: what `atoll pkg` and the terminal
// UI use. It is safe for concurrent use.
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

// WithTimeout bounds each request (default 60 s: an install waits for the app to be
// created, and a repository add for its index to be fetched).
func WithTimeout(d time.Duration) ClientOption { return func(c *Client) { c.timeout = d } }

// WithToken authenticates every request with "Authorization: Bearer token"; "" sends none.
func WithToken(token string) ClientOption { return func(c *Client) { c.token = token } }

// NewClient returns a client for the master at baseURL ("http://host:5050").
func NewClient(baseURL string, opts ...ClientOption) *Client {
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), http: &http.Client{}, timeout: 60 * time.Second}
	for _, o := range opts {
		o(c)
	}
	return c
}

// maxAnswer bounds an answer read whole: a describe of a large package fits.
const maxAnswer = 32 << 20

// ResponseError is an error answer of the Cosmos API: the path, the HTTP status and
// Cosmos's error body (or, from a server that is not Cosmos, its text as the message).
type ResponseError struct {
	Path   string
	Status int
	Body   Error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("POST %s: %d %s", e.Path, e.Status, e.Body.Message)
}

// Unwrap gives the Cosmos error body, so errors.As finds its Type.
func (e *ResponseError) Unwrap() error { return &e.Body }

// call POSTs req as reqType to path and decodes the answer, asked for as respType, into resp.
func (c *Client) call(ctx context.Context, path, reqType, respType string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("POST %s: encode the request: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	hr.Header.Set("Content-Type", reqType)
	hr.Header.Set("Accept", respType)
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	r, err := c.http.Do(hr)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer r.Body.Close()
	data, err := io.ReadAll(io.LimitReader(r.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("POST %s: read the answer: %w", path, err)
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("POST %s: the answer is larger than %d MB", path, maxAnswer>>20)
	}
	if r.StatusCode >= 300 {
		re := &ResponseError{Path: path, Status: r.StatusCode}
		if err := json.Unmarshal(data, &re.Body); err != nil || re.Body.Message == "" {
			re.Body = Error{Type: http.StatusText(r.StatusCode), Message: strings.TrimSpace(string(data))}
			if re.Body.Message == "" {
				re.Body.Message = http.StatusText(r.StatusCode)
			}
		}
		return re
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("POST %s: the answer is not a Cosmos answer (%d bytes): %w", path, len(data), err)
	}
	return nil
}

// Search lists the packages matching query ("" lists every package).
func (c *Client) Search(ctx context.Context, query string) (*SearchResponse, error) {
	var resp SearchResponse
	err := c.call(ctx, "/package/search", MediaTypeSearchRequest, MediaTypeSearchResponse, SearchRequest{Query: query}, &resp)
	return &resp, err
}

// Describe reads a package; version "" is its current version.
func (c *Client) Describe(ctx context.Context, name, version string) (*DescribeResponse, error) {
	var resp DescribeResponse
	req := DescribeRequest{PackageName: name, PackageVersion: version}
	err := c.call(ctx, "/package/describe", MediaTypeDescribeRequest, MediaTypeDescribeResponseV3, req, &resp)
	return &resp, err
}

// Render renders a package with options into the app or group an install would create.
func (c *Client) Render(ctx context.Context, req *RenderRequest) (*RenderResponse, error) {
	var resp RenderResponse
	err := c.call(ctx, "/package/render", MediaTypeRenderRequest, MediaTypeRenderResponse, req, &resp)
	return &resp, err
}

// Install installs a package: its app or group is created and its deployment started.
func (c *Client) Install(ctx context.Context, req *InstallRequest) (*InstallResponse, error) {
	var resp InstallResponse
	err := c.call(ctx, "/package/install", MediaTypeInstallRequest, MediaTypeInstallResponseV2, req, &resp)
	return &resp, err
}

// List lists the installed packages, optionally only those of a name or app id.
func (c *Client) List(ctx context.Context, req *ListRequest) (*ListResponse, error) {
	var resp ListResponse
	err := c.call(ctx, "/package/list", MediaTypeListRequest, MediaTypeListResponse, req, &resp)
	return &resp, err
}

// Uninstall removes installed packages and everything they created.
func (c *Client) Uninstall(ctx context.Context, req *UninstallRequest) (*UninstallResponse, error) {
	var resp UninstallResponse
	err := c.call(ctx, "/package/uninstall", MediaTypeUninstallRequest, MediaTypeUninstallResponse, req, &resp)
	return &resp, err
}

// ListVersions lists a package's versions with their release versions.
func (c *Client) ListVersions(ctx context.Context, name string) (*ListVersionsResponse, error) {
	var resp ListVersionsResponse
	req := ListVersionsRequest{PackageName: name, IncludePackageVersions: true}
	err := c.call(ctx, "/package/list-versions", MediaTypeListVersionsRequest, MediaTypeListVersionsResponse, req, &resp)
	return &resp, err
}

// RepositoryList lists the repositories in search order.
func (c *Client) RepositoryList(ctx context.Context) (*RepositoryListResponse, error) {
	var resp RepositoryListResponse
	err := c.call(ctx, "/package/repository/list", MediaTypeRepositoryListRequest, MediaTypeRepositoryListResponse, RepositoryListRequest{}, &resp)
	return &resp, err
}

// RepositoryAdd adds a repository; the master fetches and checks it first.
func (c *Client) RepositoryAdd(ctx context.Context, req *RepositoryAddRequest) (*RepositoryListResponse, error) {
	var resp RepositoryListResponse
	err := c.call(ctx, "/package/repository/add", MediaTypeRepositoryAddRequest, MediaTypeRepositoryAddResponse, req, &resp)
	return &resp, err
}

// RepositoryDelete removes a repository by name or URI.
func (c *Client) RepositoryDelete(ctx context.Context, req *RepositoryDeleteRequest) (*RepositoryListResponse, error) {
	var resp RepositoryListResponse
	err := c.call(ctx, "/package/repository/delete", MediaTypeRepositoryDeleteRequest, MediaTypeRepositoryDeleteResponse, req, &resp)
	return &resp, err
}

// UpdateService moves an installed package to another version or changes its options.
func (c *Client) UpdateService(ctx context.Context, req *ServiceUpdateRequest) (*ServiceUpdateResponse, error) {
	var resp ServiceUpdateResponse
	err := c.call(ctx, "/cosmos/service/update", MediaTypeServiceUpdateRequest, MediaTypeServiceUpdateResponse, req, &resp)
	return &resp, err
}
