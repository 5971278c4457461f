package services

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/atoll/atoll/api/marathon"
)

// Readiness checks, as Marathon ran them: during a deployment a new instance replaces an
// old one only once it is ready, its app's readiness check having answered one of the
// ready statuses. Unlike health checks they are the framework's own (Marathon's were
// too): they matter only while the leader deploys, and only the leader acts on them.

// readinessSpec is an app's readiness check, with the index of the port it probes.
type readinessSpec struct {
	check     marathon.ReadinessCheck
	portIndex int
}

// readinessOf returns the app's first readiness check, nil for none; its port is the
// port definition or mapping named by portName (the first port when none is named so).
func readinessOf(app *marathon.App, portNames []string) *readinessSpec {
	if len(app.ReadinessChecks) == 0 {
		return nil
	}
	rc := app.ReadinessChecks[0]
	index := slices.Index(portNames, rc.PortName)
	if index < 0 {
		index = 0
	}
	return &readinessSpec{check: rc, portIndex: index}
}

// readinessResult is an instance's latest readiness probe, for /v2/deployments.
type readinessResult struct {
	Name         string           `json:"name"`
	TaskID       string           `json:"taskId"`
	Ready        bool             `json:"ready"`
	LastResponse *readinessAnswer `json:"lastResponse,omitempty"`
	// probing stops the probe.
	probing context.CancelFunc
}

// readinessAnswer is what the probe last got.
type readinessAnswer struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType,omitempty"`
	Body        string `json:"body,omitempty"`
}

// ready says the instance may count as deployed: it has passed its app's readiness
// check, or the app has none.
func (in *instance) ready(spec *appSpec) bool {
	return spec.readiness == nil || (in.readiness != nil && in.readiness.Ready)
}

// probeReadiness starts, for each running instance of the app at its target version that
// is not ready, a probe until it is (or the instance ends, or leadership does). s.mu is
// held.
func (s *Service) probeReadiness(ctx context.Context, a *app) {
	spec := a.spec
	if spec.readiness == nil {
		return
	}
	for _, in := range s.byApp[spec.id] {
		if in.version != spec.configVersion || !in.running() || in.killing || in.readiness != nil {
			continue
		}
		host := s.agentHost(ctx, in.agentID)
		if host == "" || spec.readiness.portIndex >= len(in.hostPorts) {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		in.readiness = &readinessResult{Name: spec.readiness.check.Name, TaskID: in.taskID, probing: cancel}
		url := fmt.Sprintf("%s://%s%s", schemeOf(spec.readiness.check.Protocol), net.JoinHostPort(host, strconv.Itoa(int(in.hostPorts[spec.readiness.portIndex]))), spec.readiness.check.Path)
		go s.probe(pctx, in, spec.readiness.check, url)
	}
}

func schemeOf(protocol string) string {
	if protocol == marathon.HealthHTTPS {
		return "https"
	}
	return "http"
}

// agentHost is the address the agent serves on, which its tasks' host ports share; ""
// while it cannot be told (the probe waits for a later pass).
func (s *Service) agentHost(ctx context.Context, agentID string) string {
	agent, ok, err := s.host.Agent(ctx, agentID)
	if err != nil {
		s.log.Warn("cannot look the agent up for a readiness check", "agent", agentID, "err", err)
		return ""
	}
	if !ok {
		return ""
	}
	host, _, err := net.SplitHostPort(agent.HTTPAddress)
	if err != nil {
		return ""
	}
	return host
}

// probe asks url every interval until an answer has a ready status.
func (s *Service) probe(ctx context.Context, in *instance, rc marathon.ReadinessCheck, url string) {
	client := &http.Client{Timeout: time.Duration(rc.TimeoutSeconds) * time.Second}
	ready := rc.HTTPStatusCodesForReady
	if len(ready) == 0 {
		ready = []int{http.StatusOK}
	}
	interval := time.Duration(rc.IntervalSeconds) * time.Second
	for {
		answer, err := probeOnce(ctx, client, url, rc.PreserveLastResponse)
		s.mu.Lock()
		if in.readiness != nil {
			if err == nil {
				in.readiness.LastResponse = answer
				in.readiness.Ready = slices.Contains(ready, answer.Status)
			}
			if in.readiness.Ready {
				s.mu.Unlock()
				s.trigger()
				return
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// probeOnce sends one GET; the body is kept when asked (at most 4 KiB).
func probeOnce(ctx context.Context, client *http.Client, url string, keepBody bool) (*readinessAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer := &readinessAnswer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	if keepBody {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		answer.Body = string(body)
	}
	return answer, nil
}
