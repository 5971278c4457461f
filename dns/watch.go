package dns

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll/atoll/api"
)

// subscribeTimeout bounds connecting to a master and reading its SUBSCRIBED event (the
// whole state, megabytes in a big cluster).
const subscribeTimeout = 30 * time.Second

// defaultHeartbeat is the operator stream's heartbeat interval when SUBSCRIBED gives none.
const defaultHeartbeat = 15 * time.Second

// missedHeartbeats is how many heartbeat intervals without any event end a stream that
// went silent (a master that hung, or a network that drops packets without resetting).
const missedHeartbeats = 3

// maxBatch bounds how many queued events are applied before the table is swapped, so a
// burst is one new table rather than thousands, yet the table never lags far behind.
const maxBatch = 4096

// Gossip tags of master nodes (node.TagID, node.TagAPI and node.TagRole; node imports this
// package, so they are repeated here).
const (
	memberTagID   = "id"
	memberTagAPI  = "api"
	memberTagRole = "role"
)

// watch follows the masters' operator event stream until ctx ends: it subscribes to one
// master after another (each of Config.Masters in turn, backing off while none answers),
// and keeps serving the last records while it is not connected.
func (s *Server) watch(ctx context.Context) {
	backoff := s.cfg.ReconnectBackoff
	attempt := 0
	for ctx.Err() == nil {
		urls := s.cfg.Masters()
		var err error
		synced := false
		if len(urls) == 0 {
			err = errors.New("no master address known")
		} else {
			target := urls[attempt%len(urls)]
			attempt++
			s.metrics.reconnects.Inc()
			synced, err = s.follow(ctx, target)
			err = fmt.Errorf("%s: %w", target, err)
		}
		s.stale.Store(true)
		s.metrics.stale.Set(1)
		if ctx.Err() != nil {
			return
		}
		if synced {
			backoff = s.cfg.ReconnectBackoff
			s.log.Warn("master event stream ended; serving the last known records", "err", err)
		} else {
			s.log.Debug("cannot follow master events", "err", err, "retry_in", backoff)
		}
		// Jitter keeps the DNS servers of a whole cluster from reconnecting in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, s.cfg.ReconnectBackoffMax)
	}
}

// follow subscribes to the master at target and applies its events until the stream
// ends. It reports whether the records were synced from the stream (so the failure came
// after a working connection).
func (s *Server) follow(ctx context.Context, target string) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	connecting := time.AfterFunc(subscribeTimeout, cancel)
	client := s.masterClient(target)
	stream, err := client.SubscribeOperator(ctx)
	if err != nil {
		connecting.Stop()
		return false, err
	}
	defer stream.Close()
	events := make(chan *api.OperatorEvent, maxBatch)
	readErr := make(chan error, 1)
	go func() {
		for {
			ev, err := stream.Next()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()

	var first *api.OperatorEvent
	select {
	case first = <-events:
	case err := <-readErr:
		connecting.Stop()
		return false, fmt.Errorf("read SUBSCRIBED: %w", err)
	case <-ctx.Done():
		return false, errors.New("no SUBSCRIBED event in time")
	}
	if first.Type != api.OpEventSubscribed || first.Subscribed == nil {
		connecting.Stop()
		return false, fmt.Errorf("first event is %s, want SUBSCRIBED", first.Type)
	}
	masters, err := s.readMasters(ctx, client, target, s.cfg.Masters())
	connecting.Stop()
	if err != nil {
		// The stream is good; the master names keep their last known values.
		s.log.Warn("cannot read the masters; keeping the last known", "master", target, "err", err)
		masters = s.currentMasters()
	}
	heartbeat := defaultHeartbeat
	if secs := first.Subscribed.HeartbeatIntervalSeconds; secs > 0 {
		heartbeat = time.Duration(secs * float64(time.Second))
	}
	s.mu.Lock()
	cluster := NewCluster(masters, first.Subscribed.GetState)
	cluster.keepReported(s.cluster)
	s.cluster = cluster
	s.refreshLocked()
	s.mu.Unlock()
	s.stale.Store(false)
	s.metrics.stale.Set(0)
	s.metrics.lastSync.SetToCurrentTime()
	s.log.Info("following master events", "master", target, "records", len(s.Records().RRs))

	silence := time.NewTimer(missedHeartbeats * heartbeat)
	defer silence.Stop()
	refresh := time.NewTicker(s.cfg.MasterRefresh)
	defer refresh.Stop()
	mastersRead := make(chan []Master, 1)
	reading := false
	for {
		select {
		case ev := <-events:
			silence.Reset(missedHeartbeats * heartbeat)
			s.metrics.lastSync.SetToCurrentTime()
			s.apply(ev, events)
		case err := <-readErr:
			return true, err
		case <-silence.C:
			return true, fmt.Errorf("no event or heartbeat for %v", missedHeartbeats*heartbeat)
		case <-refresh.C:
			if !reading {
				reading = true
				go func() {
					readCtx, done := context.WithTimeout(ctx, s.cfg.MasterRefresh)
					defer done()
					ms, err := s.readMasters(readCtx, client, target, s.cfg.Masters())
					if err != nil {
						s.log.Debug("cannot refresh the masters", "master", target, "err", err)
						ms = nil
					}
					mastersRead <- ms
				}()
			}
		case ms := <-mastersRead:
			reading = false
			if ms != nil {
				s.setMasters(ms)
			}
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// apply applies ev and every event already queued behind it (up to maxBatch), then
// updates the records once if any could have changed a name.
func (s *Server) apply(ev *api.OperatorEvent, queued <-chan *api.OperatorEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.cluster.Apply(ev)
drain:
	for range maxBatch - 1 {
		select {
		case ev := <-queued:
			changed = s.cluster.Apply(ev) || changed
		default:
			break drain
		}
	}
	if changed {
		s.refreshLocked()
	}
}

func (s *Server) currentMasters() []Master {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cluster.Masters()
}

// setMasters swaps in records with new masters when they changed.
func (s *Server) setMasters(ms []Master) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(ms, s.cluster.Masters()) {
		return
	}
	s.cluster.SetMasters(ms)
	s.refreshLocked()
}

// askTimeout bounds each question to another master about its own id.
const askTimeout = 2 * time.Second

// readMasters asks the master at target for the Raft configuration (ids, addresses, the
// leader) and the gossip members (each master's API URL, for its port). The API URL of a
// master that gossip does not name is found by asking each of urls which master it is;
// one still unknown gets no port.
func (s *Server) readMasters(ctx context.Context, client *api.Client, target string, urls []string) ([]Master, error) {
	peers, err := client.RaftPeers(ctx)
	if err != nil {
		return nil, err
	}
	apis := map[string]string{}
	if members, err := client.GetMembers(ctx); err == nil {
		for _, m := range members.Members {
			if hasRole(m.Tags[memberTagRole], "master") && m.Tags[memberTagID] != "" {
				apis[m.Tags[memberTagID]] = m.Tags[memberTagAPI]
			}
		}
	}
	if _, known := apis[peers.AnsweredBy]; !known && peers.AnsweredBy != "" {
		apis[peers.AnsweredBy] = target
	}
	unnamed := func() bool {
		return slices.ContainsFunc(peers.Servers, func(srv api.RaftServer) bool { return apis[srv.ID] == "" })
	}
	for _, u := range urls {
		if !unnamed() {
			break
		}
		if slices.Contains(slices.Collect(maps.Values(apis)), u) {
			continue
		}
		askCtx, cancel := context.WithTimeout(ctx, askTimeout)
		other, err := s.masterClient(u).RaftPeers(askCtx)
		cancel()
		if err == nil && other.AnsweredBy != "" {
			if _, known := apis[other.AnsweredBy]; !known {
				apis[other.AnsweredBy] = u
			}
		}
	}
	var out []Master
	for _, srv := range peers.Servers {
		m := Master{ID: srv.ID, Leader: srv.Leader || srv.ID == peers.LeaderID && peers.LeaderID != ""}
		if host, _, err := net.SplitHostPort(srv.Address); err == nil {
			if ip, err := netip.ParseAddr(host); err == nil {
				m.IP = ip.Unmap()
			}
		}
		if u, err := url.Parse(apis[srv.ID]); err == nil && u.Port() != "" {
			if port, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
				m.APIPort = uint16(port)
			}
			if !m.IP.IsValid() {
				if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
					m.IP = ip.Unmap()
				}
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func hasRole(roles, role string) bool {
	for r := range strings.SplitSeq(roles, ",") {
		if strings.TrimSpace(r) == role {
			return true
		}
	}
	return false
}

// masterClient is an API client of the master at url, with the configured HTTP client
// and token.
func (s *Server) masterClient(url string) *api.Client {
	return api.NewClient(url, api.WithHTTPClient(s.cfg.HTTPClient), api.WithToken(s.cfg.Token))
}
