package dns

import (
	"github.com/prometheus/client_golang/prometheus"
)

// outcome is what became of one query, the label of atoll_dns_queries_total.
type outcome int

const (
	outAnswer outcome = iota
	outNoData
	outNXDomain
	outForwarded
	outRefused
	outFormErr
	outNotImp
	outServFail
	outBadVers
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"answer", "nodata", "nxdomain", "forwarded", "refused", "formerr", "notimp", "servfail", "badvers"}

// metrics are the server's Prometheus metrics. The query counters are resolved once, so
// counting a query is one atomic add.
type metrics struct {
	queries      [numOutcomes]prometheus.Counter
	truncated    prometheus.Counter
	upstreamErrs prometheus.Counter
	records      prometheus.Gauge
	stale        prometheus.Gauge
	lastSync     prometheus.Gauge
	swaps        prometheus.Counter
	buildSeconds prometheus.Histogram
	reconnects   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	queries := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_dns_queries_total",
		Help: "DNS queries, by outcome (answer, nodata, nxdomain, forwarded, refused, formerr, notimp, servfail, badvers)."}, []string{"outcome"})
	m := &metrics{
		truncated:    prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_dns_truncated_total", Help: "UDP answers sent with TC set because they did not fit."}),
		upstreamErrs: prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_dns_upstream_errors_total", Help: "Failed exchanges with upstream resolvers."}),
		records:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "atoll_dns_records", Help: "Records in the served record set."}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{Name: "atoll_dns_stale",
			Help: "1 while no master's event stream is followed and the last known records are served."}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{Name: "atoll_dns_last_event_timestamp_seconds",
			Help: "When the last event (or heartbeat) arrived from the master, in seconds since the epoch."}),
		swaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_dns_record_sets_total", Help: "Answer tables with changed records swapped in."}),
		buildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "atoll_dns_record_set_build_seconds",
			Help: "Time to apply a batch of changes to the records and swap in the answer table.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_dns_stream_connects_total", Help: "Connection attempts to a master's event stream."}),
	}
	for i, name := range outcomeNames {
		m.queries[i] = queries.WithLabelValues(name)
	}
	m.stale.Set(1)
	if reg != nil {
		for _, c := range []prometheus.Collector{queries, m.truncated, m.upstreamErrs, m.records, m.stale, m.lastSync, m.swaps, m.buildSeconds, m.reconnects} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
