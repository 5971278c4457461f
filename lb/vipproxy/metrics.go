package vipproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// vipStats are one VIP port's counters, kept while the port is balanced (a port that
// leaves the table and comes back starts again from zero, as its series does).
type vipStats struct {
	accepted atomic.Uint64
	active   atomic.Int64
	// failed counts connections no backend took.
	failed   atomic.Uint64
	bytesIn  atomic.Uint64 // from clients
	bytesOut atomic.Uint64 // to clients
	// dialFailures counts failed connection attempts by backend (netip.AddrPort →
	// *atomic.Uint64), across table updates.
	dialFailures sync.Map
}

func (s *vipStats) dialFailed(b netip.AddrPort) {
	c, ok := s.dialFailures.Load(b)
	if !ok {
		c, _ = s.dialFailures.LoadOrStore(b, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
}

// metrics exports the VIP ports' counters to Prometheus, read from the proxy's
// listeners when scraped.
type metrics struct {
	p            *Proxy
	accepted     *prometheus.Desc
	active       *prometheus.Desc
	failed       *prometheus.Desc
	bytes        *prometheus.Desc
	dialFailures *prometheus.Desc
}

func newMetrics(p *Proxy, reg prometheus.Registerer) error {
	m := &metrics{
		p:            p,
		accepted:     prometheus.NewDesc("atoll_vip_connections_accepted_total", "Connections accepted on a VIP port.", []string{"vip"}, nil),
		active:       prometheus.NewDesc("atoll_vip_connections_active", "Connections being proxied through a VIP port.", []string{"vip"}, nil),
		failed:       prometheus.NewDesc("atoll_vip_connections_failed_total", "Connections to a VIP port that no backend took (closed at once).", []string{"vip"}, nil),
		bytes:        prometheus.NewDesc("atoll_vip_bytes_total", "Bytes proxied through a VIP port (in: from clients, out: to clients), counted as each direction of a connection ends.", []string{"vip", "direction"}, nil),
		dialFailures: prometheus.NewDesc("atoll_vip_backend_dial_failures_total", "Connection attempts to a VIP port's backend that failed.", []string{"vip", "backend"}, nil),
	}
	if reg == nil {
		return nil
	}
	if err := reg.Register(m); err != nil {
		return fmt.Errorf("vip proxy: register metrics: %w", err)
	}
	return nil
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.accepted, m.active, m.failed, m.bytes, m.dialFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector from the VIP ports being balanced.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.p.mu.Lock()
	stats := map[netip.AddrPort]*vipStats{}
	for addr, l := range m.p.listeners {
		stats[addr] = l.stats
	}
	m.p.mu.Unlock()
	for addr, s := range stats {
		vip := addr.String()
		ch <- prometheus.MustNewConstMetric(m.accepted, prometheus.CounterValue, float64(s.accepted.Load()), vip)
		ch <- prometheus.MustNewConstMetric(m.active, prometheus.GaugeValue, float64(s.active.Load()), vip)
		ch <- prometheus.MustNewConstMetric(m.failed, prometheus.CounterValue, float64(s.failed.Load()), vip)
		ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(s.bytesIn.Load()), vip, "in")
		ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.CounterValue, float64(s.bytesOut.Load()), vip, "out")
		var backends []netip.AddrPort
		s.dialFailures.Range(func(k, _ any) bool {
			backends = append(backends, k.(netip.AddrPort))
			return true
		})
		slices.SortFunc(backends, netip.AddrPort.Compare)
		for _, b := range backends {
			c, _ := s.dialFailures.Load(b)
			ch <- prometheus.MustNewConstMetric(m.dialFailures, prometheus.CounterValue, float64(c.(*atomic.Uint64).Load()), vip, b.String())
		}
	}
}

var _ prometheus.Collector = (*metrics)(nil)
