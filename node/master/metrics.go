package master

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atoll/atoll/api"
)

// metrics are the master's Prometheus metrics, in a registry of its own so several masters
// can live in one test process.
type metrics struct {
	registry *prometheus.Registry
	// registered are the collectors newMetrics put in registry.
	registered          []prometheus.Collector
	offersSent          prometheus.Counter
	offersDeclined      prometheus.Counter
	offersRescinded     prometheus.Counter
	invalidAccepts      prometheus.Counter
	tasksLaunched       prometheus.Counter
	tasksRefused        *prometheus.CounterVec
	statusUpdates       *prometheus.CounterVec
	acks                prometheus.Counter
	calls               *prometheus.CounterVec
	agentsLost          prometheus.Counter
	elections           prometheus.Counter
	operatorSubscribers prometheus.Gauge
	allocationSeconds   prometheus.Histogram
}

func newMetrics(m *Master) *metrics {
	reg := m.cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	x := &metrics{
		registry:            reg,
		offersSent:          prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_master_offers_sent_total", Help: "Offers sent to frameworks."}),
		offersDeclined:      prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_master_offers_declined_total", Help: "Offers declined by frameworks."}),
		offersRescinded:     prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_master_offers_rescinded_total", Help: "Offers rescinded (timeout, agent or framework gone)."}),
		invalidAccepts:      prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_master_invalid_accepts_total", Help: "ACCEPT calls naming offers that were not valid."}),
		tasksLaunched:       prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_master_tasks_launched_total", Help: "Tasks sent to agents."}),
		tasksRefused:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_master_tasks_refused_total", Help: "Tasks the master refused, by the state it answered."}, []string{"state"}),
		statusUpdates:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_master_status_updates_total", Help: "Status updates received from agents, by state."}, []string{"state"}),
		acks:                prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_master_acknowledgements_total", Help: "Acknowledgements relayed to agents."}),
		calls:               prometheus.NewCounterVec(prometheus.CounterOpts{Name: "atoll_master_scheduler_calls_total", Help: "Scheduler calls, by type."}, []string{"type"}),
		agentsLost:          prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_master_agents_unreachable_total", Help: "Agents marked unreachable."}),
		elections:           prometheus.NewCounter(prometheus.CounterOpts{Name: "atoll_master_elected_total", Help: "Times this master became leader."}),
		operatorSubscribers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "atoll_master_operator_subscribers", Help: "Open operator event streams."}),
		allocationSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "atoll_master_allocation_cycle_seconds", Help: "Duration of one allocation cycle.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
	}
	f := func(c prometheus.Collector) {
		reg.MustRegister(c)
		x.registered = append(x.registered, c)
	}
	for _, c := range []prometheus.Collector{x.offersSent, x.offersDeclined, x.offersRescinded, x.invalidAccepts, x.tasksLaunched, x.tasksRefused,
		x.statusUpdates, x.acks, x.calls, x.agentsLost, x.elections, x.operatorSubscribers, x.allocationSeconds} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(&stateCollector{m: m,
		tasks:      prometheus.NewDesc("atoll_master_tasks", "Tasks by state (live and recently completed).", []string{"state"}, nil),
		agents:     prometheus.NewDesc("atoll_master_agents", "Agents by status.", []string{"status"}, nil),
		frameworks: prometheus.NewDesc("atoll_master_frameworks", "Frameworks by status.", []string{"status"}, nil),
		leader:     prometheus.NewDesc("atoll_master_is_leader", "1 when this master leads.", nil, nil),
	})
	return x
}

// unregister takes the master's collectors out of its registry again, for a New that
// failed: node.Run retries New with the same registry when the Raft port it picked was
// taken meanwhile.
func (x *metrics) unregister() {
	for _, c := range x.registered {
		x.registry.Unregister(c)
	}
	x.registered = nil
}

func (x *metrics) handler() http.Handler {
	return promhttp.HandlerFor(x.registry, promhttp.HandlerOpts{})
}

// stateCollector reads gauges from the replicated store at scrape time.
type stateCollector struct {
	m                                 *Master
	tasks, agents, frameworks, leader *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tasks
	ch <- c.agents
	ch <- c.frameworks
	ch <- c.leader
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	store := c.m.fsm.Store()
	byState := map[api.TaskState]int{}
	for _, t := range store.Tasks() {
		byState[t.State]++
	}
	for _, t := range store.CompletedTasks() {
		byState[t.State]++
	}
	for st, n := range byState {
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(n), string(st))
	}
	var active, unreachable int
	for _, a := range store.Agents() {
		if a.Unreachable {
			unreachable++
		} else {
			active++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.agents, prometheus.GaugeValue, float64(active), "registered")
	ch <- prometheus.MustNewConstMetric(c.agents, prometheus.GaugeValue, float64(unreachable), "unreachable")
	var connected, disconnected, removed int
	for _, f := range store.Frameworks() {
		switch {
		case f.Removed:
			removed++
		case f.Connected:
			connected++
		default:
			disconnected++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.frameworks, prometheus.GaugeValue, float64(connected), "connected")
	ch <- prometheus.MustNewConstMetric(c.frameworks, prometheus.GaugeValue, float64(disconnected), "disconnected")
	ch <- prometheus.MustNewConstMetric(c.frameworks, prometheus.GaugeValue, float64(removed), "removed")
	leader := 0.0
	if c.m.isLeader() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, leader)
}
