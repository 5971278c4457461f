package master

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/atoll/atoll/api"
	"github.com/atoll/atoll/api/universe"
	"github.com/atoll/atoll/node/pki"
)

// roleSet is a set of token roles besides admin, which may make every request.
type roleSet uint8

const (
	byOperator roleSet = 1 << iota
	byReadOnly
	byFramework
	byAgent
	byLB
	byMaster
)

// readers are the roles that may read everything. The lb role reads less: apps, tasks
// and the event streams, what load balancers and the DNS servers beside them follow.
const readers = byOperator | byReadOnly | byFramework | byAgent | byMaster

// roleBits maps each role but admin to its bit.
var roleBits = map[api.TokenRole]roleSet{
	api.RoleOperator:  byOperator,
	api.RoleReadOnly:  byReadOnly,
	api.RoleFramework: byFramework,
	api.RoleAgent:     byAgent,
	api.RoleLB:        byLB,
	api.RoleMaster:    byMaster,
}

// ruleKind says whether a request needs a token and whether it is audited.
type ruleKind uint8

const (
	// public needs no token.
	public ruleKind = iota
	// read needs a token and changes nothing: not audited.
	read
	// write needs a token and is audited: one log line on the master that serves it.
	write
	// agentProtocol needs a token but is not audited: agents' heartbeats and status
	// updates are no one's decision, come every few seconds from every agent, and what
	// they change is in Raft anyway.
	agentProtocol
	// nodeCertificate needs no token: the node certificate the request presents over TLS
	// is its credential, which its handler checks (certs.go).
	nodeCertificate
)

// check is a condition a framework token must meet besides its role.
type check uint8

const (
	noCheck check = iota
	// ownFramework: scheduler calls for a framework of the token's principal only (see
	// checkFramework).
	ownFramework
	// ownNamespace: key-value writes to the namespace named as the token's principal.
	ownNamespace
)

// rule is one row of the policy table.
type rule struct {
	// method is the request's method ("GET" covers HEAD), or "*" for any.
	method string
	// path is a route pattern's path as registered (http.ServeMux syntax); a trailing "*"
	// matches any continuation.
	path string
	// calls are the operator call types the row is for; nil: any.
	calls []api.OperatorCallType
	kind  ruleKind
	// allow are the roles besides admin that may make the request.
	allow roleSet
	check check
}

// Operator API calls that read. lbCalls are those the lb role may make too.
var (
	lbCalls    = []api.OperatorCallType{api.OpSubscribe, api.OpGetTasks, api.OpGetMembers, api.OpGetHealth, api.OpGetVersion}
	stateCalls = []api.OperatorCallType{api.OpGetState, api.OpGetAgents, api.OpGetFrameworks}
)

// policy is who may make which request: for each request, the first row matching the
// route that serves it (its ServeMux pattern), its method and, on the operator API, its
// call type. A route no row covers is for admin tokens only; every route the master
// serves has rows (a test enumerates them).
var policy = []rule{
	// Probes, and what a machine installing a node fetches before it has a token.
	{method: "GET", path: "/health", kind: public},
	{method: "GET", path: "/ping", kind: public},
	{method: "GET", path: "/install.sh", kind: public},
	{method: "GET", path: "/atoll-uninstall.sh", kind: public},
	{method: "GET", path: "/download/*", kind: public},
	// Public until masters carry credentials of their own: a master about to bootstrap
	// asks the others whether a cluster exists (and must not form a second one when it
	// does), and gossip publishes the same servers and addresses anyway.
	{method: "GET", path: api.RaftPeersPath, kind: public},
	// A joining node's first request, and its join, which checks its own token (join.go).
	{method: "GET", path: pki.CAPath, kind: public},
	{method: "POST", path: pki.JoinPath, kind: write, allow: byAgent | byLB | byMaster},
	// A renewal's credential is the node certificate it presents; revocations and gossip
	// key rotations are for admins.
	{method: "POST", path: pki.RenewPath, kind: nodeCertificate},
	{method: "POST", path: pki.NodesPath + "/*", kind: write},
	{method: "POST", path: pki.KeyringRotatePath, kind: write},

	// Any token may ask who it is.
	{method: "GET", path: api.TokenSelfPath, kind: read, allow: readers | byLB},
	// Tokens, and snapshots, which hold them and whose restore would bring back revoked
	// ones: admin only.
	{method: "GET", path: api.TokensPath + "*", kind: read},
	{method: "*", path: api.TokensPath + "*", kind: write},
	{method: "GET", path: api.RaftSnapshotPath, kind: read},
	{method: "*", path: api.RaftSnapshotPath, kind: write},

	// Mesos: scheduler, agent and operator APIs, state and metrics.
	{method: "POST", path: api.SchedulerPath, kind: write, allow: byOperator | byFramework, check: ownFramework},
	// A master's token too: a node running a master and an agent has a master's token
	// (join.go), and a secure master takes agent calls only with an agent certificate.
	{method: "POST", path: api.AgentPath, kind: agentProtocol, allow: byOperator | byAgent | byMaster},
	{method: "POST", path: api.OperatorPath, calls: lbCalls, kind: read, allow: readers | byLB},
	{method: "POST", path: api.OperatorPath, calls: stateCalls, kind: read, allow: readers},
	{method: "POST", path: api.OperatorPath, kind: write, allow: byOperator},
	{method: "POST", path: api.RaftRemovePeerPath, kind: write, allow: byOperator},
	{method: "GET", path: "/master/state*", kind: read, allow: readers},
	{method: "GET", path: "/state.json", kind: read, allow: readers},
	{method: "GET", path: "/metrics", kind: read, allow: readers},

	// The key-value API of the frameworks that run outside the masters.
	{method: "GET", path: KVPath + "*", kind: read, allow: readers},
	{method: "POST", path: KVPath + "*", kind: write, allow: byOperator | byFramework, check: ownNamespace},

	// Marathon.
	{method: "GET", path: "/v2/apps*", kind: read, allow: readers | byLB},
	{method: "GET", path: "/v2/tasks*", kind: read, allow: readers | byLB},
	{method: "GET", path: "/v2/events", kind: read, allow: readers | byLB},
	{method: "GET", path: "/v2/*", kind: read, allow: readers},
	{method: "*", path: "/v2/*", kind: write, allow: byOperator},

	// Chronos 3 (/v1/scheduler) and 2 (/scheduler, /leader), and Mesos-DNS (/v1/…).
	{method: "GET", path: "/v1/*", kind: read, allow: readers},
	{method: "GET", path: "/scheduler/*", kind: read, allow: readers},
	{method: "GET", path: "/leader", kind: read, allow: readers},
	{method: "*", path: "/v1/*", kind: write, allow: byOperator},
	{method: "*", path: "/scheduler/*", kind: write, allow: byOperator},

	// Cosmos: every call is a POST; these read.
	{method: "POST", path: "/package/search", kind: read, allow: readers},
	{method: "POST", path: "/package/describe", kind: read, allow: readers},
	{method: "POST", path: "/package/list", kind: read, allow: readers},
	{method: "POST", path: "/package/list-versions", kind: read, allow: readers},
	{method: "POST", path: "/package/render", kind: read, allow: readers},
	{method: "POST", path: "/package/repository/list", kind: read, allow: readers},
	{method: "*", path: "/package/*", kind: write, allow: byOperator},
	{method: "*", path: "/cosmos/*", kind: write, allow: byOperator},
}

func (r *rule) matchesPath(path string) bool {
	if prefix, ok := strings.CutSuffix(r.path, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return path == r.path
}

func (r *rule) matchesMethod(method string) bool {
	return r.method == "*" || r.method == method || r.method == http.MethodGet && method == http.MethodHead
}

// routePolicy is the rows that can apply to one route, in table order.
type routePolicy struct {
	rules []*rule
	// peek says the decision or the audit line needs the call in the body.
	peek bool
}

// policyFor collects the rows for a route pattern ("POST /api/v1", "/v2/apps/{path...}").
func policyFor(pattern string) *routePolicy {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "", pattern
	}
	p := &routePolicy{}
	for i := range policy {
		r := &policy[i]
		if !r.matchesPath(path) || method != "" && r.method != "*" && !r.matchesMethod(method) {
			continue
		}
		p.rules = append(p.rules, r)
		p.peek = p.peek || r.calls != nil || r.check == ownFramework
	}
	return p
}

// lookup returns the row for a request's method and call type, nil when none covers it.
func (p *routePolicy) lookup(method string, call api.OperatorCallType) *rule {
	for _, r := range p.rules {
		if r.matchesMethod(method) && (r.calls == nil || slices.Contains(r.calls, call)) {
			return r
		}
	}
	return nil
}

// callPeek is the call in a scheduler or operator API request's body, decoded once for
// the policy and the audit line and handed to the handler in the request's context.
type callPeek struct {
	typ       string
	scheduler *api.Call
	operator  *api.OperatorCall
}

// peekCall decodes the call in the body of a request to pattern as the handler would
// (decodeBody: the content type, the size limit, decodeJSON), and leaves the body to be
// read again. A body the handler would refuse gives an empty call: the handler then reads
// it itself and says why.
func peekCall(r *http.Request, pattern string, limit int64) callPeek {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
	if err != nil || int64(len(body)) > limit || checkJSONContent(r) != nil {
		return callPeek{}
	}
	switch pattern {
	case "POST " + api.SchedulerPath:
		var c api.Call
		if decodeJSON(body, &c) == nil {
			return callPeek{typ: string(c.Type), scheduler: &c}
		}
	case "POST " + api.OperatorPath:
		var c api.OperatorCall
		if decodeJSON(body, &c) == nil {
			return callPeek{typ: string(c.Type), operator: &c}
		}
	}
	return callPeek{}
}

// requestAuth is what the token check leaves in a request's context: the token, and the
// call it decoded.
type requestAuth struct {
	token *storedToken
	call  callPeek
}

// authContextKey keys a request's requestAuth.
type authContextKey struct{}

// requestToken is the token a request was authenticated with; nil when authentication
// is off or the request came from this process.
func requestToken(ctx context.Context) *storedToken {
	if a, _ := ctx.Value(authContextKey{}).(*requestAuth); a != nil {
		return a.token
	}
	return nil
}

// takeCheckedCall fills v (an *api.Call or *api.OperatorCall) with the call the token
// check decoded from the request's body, and reports whether there was one: the body is
// then not decoded twice.
func takeCheckedCall(ctx context.Context, v any) bool {
	a, _ := ctx.Value(authContextKey{}).(*requestAuth)
	if a == nil {
		return false
	}
	switch v := v.(type) {
	case *api.Call:
		if a.call.scheduler != nil {
			*v = *a.call.scheduler
			return true
		}
	case *api.OperatorCall:
		if a.call.operator != nil {
			*v = *a.call.operator
			return true
		}
	}
	return false
}

// authHandler checks every request against the policy table before the master's mux
// serves it.
type authHandler struct {
	m      *Master
	mux    *http.ServeMux
	routes map[string]*routePolicy
}

// withAuth wraps mux, which serves routes, in the token check.
func (m *Master) withAuth(mux *http.ServeMux, routes []route) http.Handler {
	h := &authHandler{m: m, mux: mux, routes: make(map[string]*routePolicy, len(routes))}
	for _, rt := range routes {
		h.routes[rt.pattern] = policyFor(rt.pattern)
	}
	return h
}

func (h *authHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if fromThisProcess(r) {
		h.mux.ServeHTTP(w, r)
		return
	}
	// The pattern of the route that will serve the request: the decision is about that
	// route whatever the path looked like. No route (404, 405, a redirect to the clean
	// path): any working token may hear so.
	_, pattern := h.mux.Handler(r)
	route := h.routes[pattern]
	var rl *rule
	if route != nil && !route.peek {
		if rl = route.lookup(r.Method, ""); rl != nil && (rl.kind == public || rl.kind == nodeCertificate) {
			h.mux.ServeHTTP(w, r)
			return
		}
	}
	token, authErr := h.m.authenticate(r)
	if authErr != nil {
		writeAuthError(w, r, authErr)
		return
	}
	var call callPeek
	if route != nil && route.peek {
		if r.Method == http.MethodPost {
			call = peekCall(r, pattern, h.m.cfg.MaxBodyBytes)
		}
		rl = route.lookup(r.Method, api.OperatorCallType(call.typ))
	}
	if authErr := h.authorize(token, r, route, rl, &call); authErr != nil {
		writeAuthError(w, r, authErr)
		return
	}
	// Writes are served by the leader alone; a follower forwards or redirects them, so
	// the leader's line is the one line per request.
	if rl != nil && rl.kind == write && h.m.isLeader() {
		h.auditLine(token, r, call.typ)
	}
	h.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), authContextKey{}, &requestAuth{token, call})))
}

// authorize decides whether token may make request r, which rl covers on route.
func (h *authHandler) authorize(token *storedToken, r *http.Request, route *routePolicy, rl *rule, call *callPeek) *authError {
	if token.Role == api.RoleAdmin || route == nil {
		return nil
	}
	what := r.Method + " " + r.URL.Path
	if call.typ != "" {
		what += " " + call.typ
	}
	if rl == nil {
		return forbidden("no access policy covers %s: only admin tokens may", what)
	}
	if rl.allow&roleBits[token.Role] == 0 {
		return forbidden("role %s may not %s", token.Role, what)
	}
	if token.Role != api.RoleFramework {
		return nil
	}
	switch rl.check {
	case ownFramework:
		return h.checkFramework(token, call)
	case ownNamespace:
		if ns := kvNamespaceOf(r); ns != token.Principal {
			return forbidden("a framework token of principal %q may only write key-value namespace %q, not %q", token.Principal, token.Principal, ns)
		}
	}
	return nil
}

// checkFramework holds a framework token to its principal on the scheduler API: it
// subscribes frameworks whose principal is the token's, in roles that are the
// principal, below it ("<principal>/…") or "*" (which holds no reservation, so it gives
// nothing away), and calls for those frameworks only. A body that does not decode is
// refused here too, whatever the scheduler API would make of it.
func (h *authHandler) checkFramework(token *storedToken, call *callPeek) *authError {
	principal := token.Principal
	if call.scheduler == nil {
		return forbidden("a framework token's scheduler calls must be one JSON call of at most %d bytes", h.m.cfg.MaxBodyBytes)
	}
	frameworkID := call.scheduler.FrameworkID
	if call.scheduler.Type == api.CallSubscribe && call.scheduler.Subscribe != nil {
		info := &call.scheduler.Subscribe.FrameworkInfo
		if info.Principal != principal {
			return forbidden("a framework token of principal %q may not subscribe a framework with principal %q", principal, info.Principal)
		}
		for _, role := range info.AllRoles() {
			if role != "*" && role != principal && !strings.HasPrefix(role, principal+"/") {
				return forbidden("a framework token of principal %q may not subscribe in role %q: only %q, %q and *", principal, role, principal, principal+"/…")
			}
		}
		frameworkID = info.ID
	}
	if frameworkID == nil || frameworkID.Value == "" {
		return nil
	}
	if f, ok := h.m.fsm.Store().Framework(frameworkID.Value); ok && f.Info.Principal != principal {
		return forbidden("framework %s belongs to principal %q, not to this token's %q", frameworkID.Value, f.Info.Principal, principal)
	}
	return nil
}

// kvNamespaceOf is the namespace a key-value API path names, unescaped as the mux does.
func kvNamespaceOf(r *http.Request) string {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), KVPath)
	segment, _, _ := strings.Cut(rest, "/")
	ns, err := url.PathUnescape(segment)
	if err != nil {
		return segment
	}
	return ns
}

// auditLine logs an allowed write: who, what; slog adds when.
func (h *authHandler) auditLine(token *storedToken, r *http.Request, call string) {
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs, slog.String("token", token.ID), slog.String("principal", token.Principal), slog.String("role", string(token.Role)),
		slog.String("method", r.Method), slog.String("path", r.URL.Path))
	if call != "" {
		attrs = append(attrs, slog.String("call", call))
	}
	attrs = append(attrs, slog.String("remote", r.RemoteAddr))
	if by := r.Header.Get(forwardedHeader); by != "" {
		attrs = append(attrs, slog.String("forwarded_by", by))
	}
	h.m.auth.audit.LogAttrs(r.Context(), slog.LevelInfo, "api write", attrs...)
}

// writeAuthError answers a refused request in the shape of the API its path belongs to:
// Marathon's {"message"} on /v2, Cosmos's error JSON on /package and /cosmos, and text
// (as Mesos, Chronos and Atoll's own APIs answer errors) elsewhere.
func writeAuthError(w http.ResponseWriter, r *http.Request, e *authError) {
	if e.status == http.StatusUnauthorized {
		challenge := `Bearer realm="atoll"`
		if r.Header.Get("Authorization") != "" {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	path := r.URL.Path
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	switch {
	case strings.HasPrefix(path, "/v2/"):
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(e.status)
		_ = enc.Encode(map[string]string{"message": e.msg})
	case strings.HasPrefix(path, "/package/") || strings.HasPrefix(path, "/cosmos/"):
		typ := "Unauthorized"
		if e.status == http.StatusForbidden {
			typ = "Forbidden"
		}
		w.Header().Set("Content-Type", universe.MediaTypeError)
		w.WriteHeader(e.status)
		_ = enc.Encode(universe.Error{Type: typ, Message: e.msg})
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(e.status)
		_, _ = io.WriteString(w, e.msg+"\n")
	}
}
