package master

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// forwardedHeader marks a request a follower forwarded, so a master that is not the leader
// after all answers 503 instead of forwarding it on (no loops during an election).
const forwardedHeader = "X-Atoll-Forwarded-By"

// errNoLeader explains a 503 while no leader is known.
var errNoLeader = errors.New("no leading master is elected: a majority of the masters must be up and reach each other; the API answers again once they elect a leader")

// forwardTransport carries forwarded reads. A leader that does not answer is most likely
// cut off or dead and about to be replaced, so the request fails within seconds (and the
// client retries, by then against the new leader) instead of hanging on it.
var forwardTransport = &http.Transport{
	DialContext:           (&net.Dialer{Timeout: forwardDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConnsPerHost:   32,
	IdleConnTimeout:       90 * time.Second,
	ResponseHeaderTimeout: forwardHeaderTimeout,
}

// A LAN dial takes well under a millisecond; reads answer in milliseconds and event
// streams send their headers as soon as they are subscribed.
const (
	forwardDialTimeout   = 2 * time.Second
	forwardHeaderTimeout = 5 * time.Second
)

// forwardToLeader serves a read on a follower by proxying it to the leader, so every master
// answers with the leader's current view; `?stale=true` asks for this master's own replica
// instead (cheaper, possibly behind). It reports whether it answered.
func (m *Master) forwardToLeader(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Query().Get("stale") == "true" {
		return false
	}
	if m.isLeader() {
		if m.awaitLeaderState(r.Context()) {
			return false
		}
		if m.isLeader() {
			writeError(w, errorf(http.StatusServiceUnavailable, "master %s was elected leader but has not yet applied everything its predecessor committed; retry shortly", m.cfg.ID))
			return true
		}
	}
	if by := r.Header.Get(forwardedHeader); by != "" {
		writeError(w, errorf(http.StatusServiceUnavailable, "master %s forwarded this request here, but %s is not the leader either: %v", by, m.cfg.ID, errNoLeader))
		return true
	}
	leader := m.leaderURL()
	if leader == "" || leader == m.cfg.APIURL {
		writeError(w, errorf(http.StatusServiceUnavailable, "%v", errNoLeader))
		return true
	}
	target, err := url.Parse(leader)
	if err != nil {
		writeError(w, errorf(http.StatusBadGateway, "leader address %q: %v", leader, err))
		return true
	}
	proxy := &httputil.ReverseProxy{
		Transport: m.forward,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(forwardedHeader, m.cfg.ID)
		},
		// Event streams pass through as they are written.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, errorf(http.StatusBadGateway, "forward to the leader %s: %v", strings.TrimPrefix(leader, "http://"), err))
		},
	}
	proxy.ServeHTTP(w, r)
	return true
}

// holdsLeaderState reports whether this master holds leader state (becomeLeader ran).
func (m *Master) holdsLeaderState() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leader != nil
}

// leaderStateWait bounds how long a read waits for a newly elected leader to apply its
// predecessor's log (becomeLeader's barrier, normally milliseconds).
const leaderStateWait = 5 * time.Second

// awaitLeaderState waits until this master, which Raft made leader, holds leader state:
// only then has it applied every entry its predecessor committed. Until then its replica
// may lack the last changes, and a snapshot served from it (an operator SUBSCRIBE, a
// GET_STATE) would take back what subscribers were already told. It reports false when
// leadership ends, ctx ends or leaderStateWait passes first.
func (m *Master) awaitLeaderState(ctx context.Context) bool {
	if m.holdsLeaderState() {
		return true
	}
	deadline := time.NewTimer(leaderStateWait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
			if m.holdsLeaderState() {
				return true
			}
			if !m.isLeader() {
				return false
			}
		}
	}
}
