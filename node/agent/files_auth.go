package agent

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/atoll/atoll/api"
)

// Who may read which sandbox through the agent's /files API in a secure cluster. The
// agent keeps no tokens: it asks the masters who a request's token is (its role and
// principal) and, for a framework token, which principal the task's framework has.

const (
	// sandboxAuthTTL is how long a decision about a token and a sandbox holds: a
	// followed log (a read every half second) costs the masters a question every few
	// seconds, and a revoked token is refused within seconds.
	sandboxAuthTTL = 3 * time.Second
	// sandboxAuthTimeout bounds the questions to the masters for one request.
	sandboxAuthTimeout = 5 * time.Second
	// maxSandboxDecisions is how many decisions are kept before the expired ones go.
	maxSandboxDecisions = 4096
)

// sandboxAuth decides which /files requests a secure agent serves. Each must carry an
// API token ("Authorization: Bearer"; 401 without one). Admin tokens read every path;
// operator and read-only tokens every task's sandbox; a framework token the sandboxes of
// the tasks of its principal's frameworks; other tokens, and tokens the masters refuse,
// nothing (403, saying why). A path in no task's sandbox (the sandboxes directory, a
// framework's) is for admin tokens only. Safe for concurrent use.
type sandboxAuth struct {
	// root is the sandboxes directory as requests name it; realRoot the same resolved,
	// as resolved paths name it.
	root, realRoot string
	// masters lists the masters to ask, the leader first.
	masters func() []string
	// asCaller calls the masters with the caller's token alone, asAgent with the
	// agent's own.
	asCaller, asAgent *http.Client
	now               func() time.Time

	mu        sync.Mutex
	decisions map[decisionKey]decision
}

// decisionKey names what a decision is about: a token, by its hash, and a task's
// sandbox, or none (empty ids) for a path in no task's sandbox.
type decisionKey struct {
	token               [sha256.Size]byte
	frameworkID, taskID string
}

// decision says whether a token may read a sandbox (a nil err) until expires.
type decision struct {
	err     error
	expires time.Time
}

// newSandboxAuth checks the /files requests of an agent whose sandboxes are in root,
// asking the masters masters lists through asCaller (without a token of its own) and
// asAgent (with the agent's).
func newSandboxAuth(root string, masters func() []string, asCaller, asAgent *http.Client) *sandboxAuth {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		realRoot = root
	}
	return &sandboxAuth{
		root:      filepath.Clean(root),
		realRoot:  realRoot,
		masters:   masters,
		asCaller:  asCaller,
		asAgent:   asAgent,
		now:       time.Now,
		decisions: map[decisionKey]decision{},
	}
}

// allow says whether r's token may read path, as requested or resolved: nil when it may
// or when path is not under the sandboxes directory (which the files API refuses anyway).
func (s *sandboxAuth) allow(r *http.Request, path string) error {
	token, err := bearerToken(r)
	if err != nil {
		return err
	}
	frameworkID, taskID, under := s.sandboxOf(path)
	if !under {
		return nil
	}
	key := decisionKey{token: sha256.Sum256([]byte(token)), frameworkID: frameworkID, taskID: taskID}
	now := s.now()
	s.mu.Lock()
	d, ok := s.decisions[key]
	s.mu.Unlock()
	if ok && now.Before(d.expires) {
		return d.err
	}
	err = s.decide(r.Context(), token, frameworkID, taskID)
	var he *httpError
	if errors.As(err, &he) && he.status == http.StatusServiceUnavailable {
		return err // the masters could not be asked: ask again next time
	}
	s.mu.Lock()
	if len(s.decisions) >= maxSandboxDecisions {
		for k, d := range s.decisions {
			if !now.Before(d.expires) {
				delete(s.decisions, k)
			}
		}
	}
	s.decisions[key] = decision{err: err, expires: now.Add(sandboxAuthTTL)}
	s.mu.Unlock()
	return err
}

// bearerToken is the API token r carries.
func bearerToken(r *http.Request) (string, error) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	switch {
	case scheme == "" || strings.EqualFold(scheme, "Bearer") && token == "":
		return "", &httpError{http.StatusUnauthorized, `authentication required: send the header "Authorization: Bearer <token>" (atoll --token, or ATOLL_TOKEN)`}
	case !strings.EqualFold(scheme, "Bearer"):
		return "", &httpError{http.StatusUnauthorized, fmt.Sprintf(`authorization scheme %q is not supported: send "Authorization: Bearer <token>"`, scheme)}
	}
	return token, nil
}

// sandboxOf names the task whose sandbox (root/<framework>/<task>.<container>, each id
// path-escaped) holds path, and reports whether path is under root at all; the ids are
// empty for a path under root in no task's sandbox.
func (s *sandboxAuth) sandboxOf(path string) (frameworkID, taskID string, under bool) {
	path = filepath.Clean(path)
	rel, ok := relativeTo(s.root, path)
	if !ok {
		if rel, ok = relativeTo(s.realRoot, path); !ok {
			return "", "", false
		}
	}
	parts := strings.SplitN(rel, string(filepath.Separator), 3)
	if len(parts) < 2 {
		return "", "", true
	}
	run := parts[1]
	dot := strings.LastIndexByte(run, '.')
	if dot <= 0 {
		return "", "", true
	}
	frameworkID, errFramework := url.PathUnescape(parts[0])
	taskID, errTask := url.PathUnescape(run[:dot])
	if errFramework != nil || errTask != nil {
		return "", "", true
	}
	return frameworkID, taskID, true
}

// relativeTo is path relative to root, if path is root or below it.
func relativeTo(root, path string) (string, bool) {
	if path == root {
		return ".", true
	}
	return strings.CutPrefix(path, root+string(filepath.Separator))
}

// decide asks the masters whether token may read the sandbox of the framework's task
// (none: a path in no task's sandbox).
func (s *sandboxAuth) decide(ctx context.Context, token, frameworkID, taskID string) error {
	ctx, cancel := context.WithTimeout(ctx, sandboxAuthTimeout)
	defer cancel()
	who, err := s.whoIs(ctx, token)
	if err != nil {
		return err
	}
	switch {
	case who.Role == api.RoleAdmin:
		return nil
	case frameworkID == "":
		return forbiddenf("token %s (role %s) may read the tasks' sandboxes only: this path is in none, and only admin tokens read elsewhere", who.ID, who.Role)
	case who.Role == api.RoleOperator || who.Role == api.RoleReadOnly:
		return nil
	case who.Role != api.RoleFramework:
		return forbiddenf("token %s has role %s, which may not read task sandboxes: admin, operator and read-only tokens may, and framework tokens those of their own frameworks' tasks", who.ID, who.Role)
	}
	principal, known, err := s.principalOf(ctx, frameworkID)
	switch {
	case err != nil:
		return err
	case !known:
		return forbiddenf("token %s is a framework token of principal %q, which may not read the sandbox of task %s: its framework %s is unknown to the masters", who.ID, who.Principal, taskID, frameworkID)
	case principal != who.Principal:
		return forbiddenf("token %s is a framework token of principal %q, which may not read the sandbox of task %s: its framework %s is principal %q's", who.ID, who.Principal, taskID, frameworkID, principal)
	}
	return nil
}

func forbiddenf(format string, args ...any) error {
	return &httpError{http.StatusForbidden, fmt.Sprintf(format, args...)}
}

// mastersUnavailable is the answer when no master could be asked, after lastErr.
func mastersUnavailable(what string, lastErr error) error {
	msg := "cannot " + what + " with the masters"
	if lastErr != nil {
		msg += ": " + lastErr.Error()
	} else {
		msg += ": this agent knows of none"
	}
	return &httpError{http.StatusServiceUnavailable, msg}
}

// whoIs asks the masters, the leader first, to describe token; a token they refuse is
// forbidden here, with their reason.
func (s *sandboxAuth) whoIs(ctx context.Context, token string) (api.Token, error) {
	var lastErr error
	for _, master := range s.masters() {
		who, err := api.NewClient(master, api.WithToken(token), api.WithHTTPClient(s.asCaller)).TokenSelf(ctx)
		var refused *api.HTTPError
		switch {
		case err == nil:
			return *who, nil
		case errors.As(err, &refused) && (refused.Status == http.StatusUnauthorized || refused.Status == http.StatusForbidden):
			return api.Token{}, forbiddenf("the masters refuse this token: %s", refused.Message)
		case errors.As(err, &refused):
			lastErr = fmt.Errorf("%s answered %d %s", master, refused.Status, http.StatusText(refused.Status))
		default:
			lastErr = err
		}
	}
	return api.Token{}, mastersUnavailable("check the token", lastErr)
}

// principalOf asks the masters, the leader first, for the principal of a framework, and
// whether they know it (frameworks that ended included).
func (s *sandboxAuth) principalOf(ctx context.Context, frameworkID string) (principal string, known bool, err error) {
	var lastErr error
	for _, master := range s.masters() {
		frameworks, err := api.NewClient(master, api.WithHTTPClient(s.asAgent)).GetFrameworks(ctx)
		if err != nil {
			lastErr = err
			continue
		}
		for _, f := range slices.Concat(frameworks.Frameworks, frameworks.CompletedFrameworks) {
			if f.FrameworkInfo.ID != nil && f.FrameworkInfo.ID.Value == frameworkID {
				return f.FrameworkInfo.Principal, true, nil
			}
		}
		return "", false, nil
	}
	return "", false, mastersUnavailable("look up framework "+frameworkID, lastErr)
}

// mastersToAsk lists the masters the agent asks about tokens: the one it is registered
// with (the leader) first.
func (a *Agent) mastersToAsk() []string {
	a.mu.Lock()
	var masters []string
	if a.session != nil {
		masters = append(masters, a.session.master)
	}
	a.mu.Unlock()
	return append(masters, a.cfg.Masters()...)
}
