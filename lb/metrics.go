package lb

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus metrics of a Server. Per-request ones are counted as requests
// finish; the backends' state is read from the current table when scraped.
type metrics struct {
	s        *Server
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	unrouted prometheus.Counter
	// handovers reads Server.handovers when scraped.
	handovers prometheus.CounterFunc

	backendUp     *prometheus.Desc
	backendActive *prometheus.Desc
	backendFailed *prometheus.Desc
	bytes         *prometheus.Desc
	connections   *prometheus.Desc
}

var codeClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func newMetrics(s *Server, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		s: s,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_lb_http_requests_total", Help: "HTTP requests answered, by service and status class.",
		}, []string{"service", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "atoll_lb_http_request_duration_seconds", Help: "Time from a request's arrival to the end of its response, by service.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service"}),
		unrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_lb_http_unrouted_requests_total", Help: "HTTP requests no service routes (answered 503).",
		}),
		handovers: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "atoll_lb_http_handovers_total",
			Help: "HTTP connections the event loops handed to the goroutine path (HTTP/1.0, chunked or large request bodies, upgrades, Expect, access rules, credentials, failed backends).",
		}, func() float64 { return float64(s.handovers.Load()) }),
		backendUp:     prometheus.NewDesc("atoll_lb_backend_up", "1 when the backend takes new work, 0 while it is ejected.", []string{"service", "backend"}, nil),
		backendActive: prometheus.NewDesc("atoll_lb_backend_active", "Open connections (TCP) or requests in flight (HTTP) to the backend.", []string{"service", "backend"}, nil),
		backendFailed: prometheus.NewDesc("atoll_lb_backend_failures_total", "Connections to the backend that failed.", []string{"service", "backend"}, nil),
		bytes:         prometheus.NewDesc("atoll_lb_bytes_total", "Bytes proxied, by service and direction (in: from clients, out: to clients).", []string{"service", "direction"}, nil),
		connections:   prometheus.NewDesc("atoll_lb_sessions_total", "Connections (TCP) or requests (HTTP) a service received.", []string{"service"}, nil),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.unrouted, m.handovers, m} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("lb: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// serviceMetrics are one service's children of the request metrics, looked up as they
// are first needed (so that only the status classes seen are exported).
type serviceMetrics struct {
	requests [6]atomic.Pointer[prometheus.Counter]
	duration prometheus.Observer
}

// observe counts a finished request of svc. Requests racing to look up a child get the
// same one.
func (m *metrics) observe(svc *service, code int, d time.Duration) {
	sm := svc.stats.observed.Load()
	if sm == nil {
		sm = &serviceMetrics{duration: m.duration.WithLabelValues(svc.def.Name)}
		svc.stats.observed.Store(sm)
	}
	class := codeClass(code)
	counter := sm.requests[class].Load()
	if counter == nil {
		c := m.requests.WithLabelValues(svc.def.Name, codeClasses[class])
		counter = &c
		sm.requests[class].Store(counter)
	}
	(*counter).Inc()
	sm.duration.Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.backendUp, m.backendActive, m.backendFailed, m.bytes, m.connections} {
		ch <- d
	}
}

// Collect implements prometheus.Collector from the current table.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	now := time.Now().UnixNano()
	for _, svc := range m.s.routes.Load().services {
		name := svc.def.Name
		ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(svc.stats.bytesIn.Load()), name, "in")
		ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(svc.stats.bytesOut.Load()), name, "out")
		ch <- prometheus.MustNewConstMetric(m.connections, prometheus.CounterValue, float64(svc.stats.sessions.Load()), name)
		for _, b := range svc.backends {
			up := 1.0
			if b.ejected(now) {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(m.backendUp, prometheus.GaugeValue, up, name, b.addr)
			ch <- prometheus.MustNewConstMetric(m.backendActive, prometheus.GaugeValue, float64(b.active.Load()), name, b.addr)
			ch <- prometheus.MustNewConstMetric(m.backendFailed, prometheus.CounterValue, float64(b.failures.Load()), name, b.addr)
		}
	}
}

var _ prometheus.Collector = (*metrics)(nil)
