package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"
)

// request is a proxied request's routing state, shared by the handler, the round tripper
// and the response hook.
type request struct {
	svc     *service
	client  string
	cookie  string
	backend *backend
	// hsts: the response gets Strict-Transport-Security (a TLS request to a service
	// with HAPROXY_{n}_USE_HSTS).
	hsts bool
}

type requestKey struct{}

// errNoBackend: the service has no backend left to try.
var errNoBackend = errors.New("no backend available")

// serveHTTP routes a request by its listener: a service port's service, the virtual host
// and path on the virtual host ports, the X-Marathon-App-Id header on the app id port.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt := s.routes.Load()
	var svc *service
	key, _ := r.Context().Value(listenerKey{}).(string)
	switch key {
	case vhostListener, vhostTLSListener:
		svc = rt.vhost(r.Host, r.URL.Path)
	case appIDListener:
		svc = rt.appIDs[r.Header.Get(AppIDHeader)]
	default:
		if svc = rt.byListen[key]; svc != nil && svc.def.Mode != ModeHTTP {
			svc = nil
		}
	}
	if svc == nil {
		s.metrics.unrouted.Inc()
		http.Error(w, "503 Service Unavailable: no service routes this request", http.StatusServiceUnavailable)
		return
	}
	svc.stats.sessions.Add(1)
	if key == vhostListener && svc.def.RedirectToHTTPS {
		// As marathon-lb's frontend did, before the backend's access rules.
		w.Header().Set("Location", "https://"+hostOnly(r.Host)+s.httpsPort+r.URL.RequestURI())
		s.finish(svc, http.StatusMovedPermanently, start)
		w.WriteHeader(http.StatusMovedPermanently)
		return
	}
	hsts := r.TLS != nil && svc.def.UseHSTS
	if hsts {
		w.Header().Set(hstsHeader, hstsValue)
	}
	if !svc.allows(remoteAddr(r)) {
		svc.stats.denied.Add(1)
		s.finish(svc, http.StatusForbidden, start)
		http.Error(w, "403 Forbidden", http.StatusForbidden)
		return
	}
	if svc.auth != nil {
		user, password, ok := r.BasicAuth()
		if !svc.checkAuth(user, password, ok) {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+svc.def.Auth.Realm+`"`)
			s.finish(svc, http.StatusUnauthorized, start)
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
	}
	req := &request{svc: svc, hsts: hsts, client: clientHost(remoteAddr(r))}
	if svc.def.Sticky {
		if c, err := r.Cookie(stickyCookie); err == nil {
			req.cookie = c.Value
		}
	}
	if r.ContentLength > 0 {
		svc.stats.bytesIn.Add(uint64(r.ContentLength))
	}
	cw := &codeWriter{ResponseWriter: w, code: http.StatusOK}
	svc.stats.active.Add(1)
	s.proxy.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), requestKey{}, req)))
	svc.stats.active.Add(-1)
	if b := req.backend; b != nil {
		b.active.Add(-1)
		b.responses[codeClass(cw.code)].Add(1)
		b.bytesOut.Add(uint64(cw.written))
		if r.ContentLength > 0 {
			b.bytesIn.Add(uint64(r.ContentLength))
		}
	}
	svc.stats.bytesOut.Add(uint64(cw.written))
	s.finish(svc, cw.code, start)
}

// finish counts a finished request.
func (s *Server) finish(svc *service, code int, start time.Time) {
	svc.stats.responses[codeClass(code)].Add(1)
	s.metrics.observe(svc.def.Name, code, time.Since(start))
}

// codeClass maps a status to HAProxy's hrsp_1xx..hrsp_5xx (index 1-5) or other (0).
func codeClass(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code / 100
}

func remoteAddr(r *http.Request) net.Addr {
	if ap, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
		return ap
	}
	return &net.TCPAddr{}
}

// rewrite makes the outgoing request: X-Forwarded-For as HAProxy's forwardfor option did
// (appended to the client's), X-Forwarded-Host, X-Forwarded-Proto "https" or "http" as
// the client connected, the client's Host kept; the round tripper picks the address.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = pr.In.Host
	pr.Out.Host = pr.In.Host
	if xff, ok := pr.In.Header["X-Forwarded-For"]; ok {
		pr.Out.Header["X-Forwarded-For"] = xff
	}
	pr.SetXForwarded()
}

// modifyResponse keeps the load balancer's Strict-Transport-Security the only one, and
// sets the sticky cookie when the request was not already pinned to the backend that
// answered.
func (s *Server) modifyResponse(resp *http.Response) error {
	req, _ := resp.Request.Context().Value(requestKey{}).(*request)
	if req == nil {
		return nil
	}
	if req.hsts {
		resp.Header.Del(hstsHeader)
	}
	if req.backend == nil || !req.svc.def.Sticky || req.cookie == req.backend.cookie {
		return nil
	}
	resp.Header.Add("Set-Cookie", (&http.Cookie{Name: stickyCookie, Value: req.backend.cookie, Path: "/", HttpOnly: true}).String())
	resp.Header.Add("Cache-Control", `no-cache="set-cookie"`)
	return nil
}

// proxyError answers a request no backend could take: 503 when no backend was reachable
// (HAProxy's "no server available"), 502 when one failed mid-way.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	req, _ := r.Context().Value(requestKey{}).(*request)
	code := http.StatusBadGateway
	if errors.Is(err, errNoBackend) || isDialError(err) {
		code = http.StatusServiceUnavailable
	}
	if req != nil {
		req.svc.stats.failures.Add(1)
		s.log.Debug("proxy error", "service", req.svc.def.Name, "err", err)
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, strconv.Itoa(code)+" "+http.StatusText(code)+"\n")
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// roundTripper sends a request to the backend its service picks, and on a refused
// connection ejects that backend and tries another (a request with a body only when its
// body can be sent again).
type roundTripper struct{ s *Server }

func (rt roundTripper) RoundTrip(out *http.Request) (*http.Response, error) {
	req, _ := out.Context().Value(requestKey{}).(*request)
	if req == nil {
		return nil, errNoBackend
	}
	deadline := time.Now().Add(rt.s.cfg.QueueTimeout)
	for {
		seen := rt.s.routes.Load()
		resp, err := rt.try(out, req)
		if !errors.Is(err, errNoBackend) || out.Body != nil && out.Body != http.NoBody {
			return resp, err
		}
		// Every backend refused: a task was killed before its removal reached this table,
		// and its replacement is on its way. Wait for the next table, as HAProxy queued.
		for rt.s.routes.Load() == seen {
			if time.Now().After(deadline) || out.Context().Err() != nil {
				return nil, err
			}
			time.Sleep(10 * time.Millisecond)
		}
		next := rt.s.routes.Load().byName[req.svc.def.Name]
		if next == nil {
			return nil, err
		}
		req.svc = next
	}
}

// try sends the request to up to Attempts backends of its service.
func (rt roundTripper) try(out *http.Request, req *request) (*http.Response, error) {
	var tried []*backend
	for attempt := range rt.s.cfg.Attempts {
		b := req.svc.pick(req.client, req.cookie, tried)
		if b == nil {
			break
		}
		tried = append(tried, b)
		out.URL.Host = b.addr
		b.active.Add(1)
		b.sessions.Add(1)
		resp, err := rt.s.transport.RoundTrip(out)
		if err == nil {
			req.backend = b
			return resp, nil
		}
		b.active.Add(-1)
		if !isDialError(err) {
			b.failures.Add(1)
			// A backend that died mid-request (its task killed): an idempotent request
			// without a body goes to another one, as HAProxy's retry-on empty-response.
			if out.Body == nil || out.Body == http.NoBody {
				if m := out.Method; m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions {
					continue
				}
			}
			return nil, err
		}
		rt.s.eject(b, err)
		if out.Body != nil && out.Body != http.NoBody {
			if out.GetBody == nil || attempt == rt.s.cfg.Attempts-1 {
				return nil, err
			}
			body, gerr := out.GetBody()
			if gerr != nil {
				return nil, err
			}
			out.Body = body
		}
	}
	return nil, errNoBackend
}

// codeWriter notes the status and the body bytes written.
type codeWriter struct {
	http.ResponseWriter
	code    int
	written int64
}

func (w *codeWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *codeWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

func (w *codeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets streamed responses through as they come.
func (w *codeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
