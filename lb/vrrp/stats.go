package vrrp

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the router's running totals, written by Run's goroutines.
type counters struct {
	sent, received                         atomic.Uint64
	priorityZeroSent, priorityZeroReceived atomic.Uint64
	becameMaster, garpSent, sendErrors     atomic.Uint64
	badTTL, badVersion, badType            atomic.Uint64
	badChecksum, badLength, badInterval    atomic.Uint64
	otherVRID, addrMismatch, queueFull     atomic.Uint64
}

// Stats is a snapshot of a router's state and counters.
type Stats struct {
	State State
	// AdvertsSent and AdvertsReceived count advertisements sent and accepted, the
	// priority-0 ones included.
	AdvertsSent, AdvertsReceived uint64
	// PriorityZeroSent and PriorityZeroReceived count resignations.
	PriorityZeroSent, PriorityZeroReceived uint64
	// BecameMaster counts transitions to Master.
	BecameMaster uint64
	// GARPSent counts gratuitous ARPs sent.
	GARPSent uint64
	// SendErrors counts advertisements and gratuitous ARPs that could not be sent.
	SendErrors uint64
	// Dropped counts received packets dropped, by reason (the Drop constants).
	Dropped map[string]uint64
}

// The reasons a received packet is dropped, the keys of Stats.Dropped and the values of
// the reason label of atoll_vrrp_dropped_total.
const (
	// DropTTL: TTL not 255, so it may have crossed a router.
	DropTTL = "ttl"
	// DropVersion: not VRRP version 3.
	DropVersion = "version"
	// DropType: not an ADVERTISEMENT.
	DropType = "type"
	// DropChecksum: checksum wrong.
	DropChecksum = "checksum"
	// DropLength: shorter than its header, or length and address count disagree.
	DropLength = "length"
	// DropInterval: advertisement interval 0.
	DropInterval = "interval"
	// DropVRID: another virtual router's advertisement.
	DropVRID = "vrid"
	// DropAddresses: the address list differs from the configured one.
	DropAddresses = "addresses"
	// DropQueueFull: the state machine fell a whole queue behind.
	DropQueueFull = "queue_full"
)

// Stats returns a snapshot of the router's state and counters.
func (r *Router) Stats() Stats {
	c := &r.c
	return Stats{
		State:                r.State(),
		AdvertsSent:          c.sent.Load(),
		AdvertsReceived:      c.received.Load(),
		PriorityZeroSent:     c.priorityZeroSent.Load(),
		PriorityZeroReceived: c.priorityZeroReceived.Load(),
		BecameMaster:         c.becameMaster.Load(),
		GARPSent:             c.garpSent.Load(),
		SendErrors:           c.sendErrors.Load(),
		Dropped: map[string]uint64{
			DropTTL:       c.badTTL.Load(),
			DropVersion:   c.badVersion.Load(),
			DropType:      c.badType.Load(),
			DropChecksum:  c.badChecksum.Load(),
			DropLength:    c.badLength.Load(),
			DropInterval:  c.badInterval.Load(),
			DropVRID:      c.otherVRID.Load(),
			DropAddresses: c.addrMismatch.Load(),
			DropQueueFull: c.queueFull.Load(),
		},
	}
}

// Collector exports the router's Stats to Prometheus as atoll_vrrp_state (gauge: 0
// initialize, 1 backup, 2 master), atoll_vrrp_{adverts_sent,adverts_received,
// priority_zero_sent,priority_zero_received,became_master,garp_sent,send_errors}_total
// and atoll_vrrp_dropped_total{reason}, each labelled with vrid and interface so that
// several routers register side by side.
func (r *Router) Collector() prometheus.Collector {
	labels := prometheus.Labels{"vrid": strconv.Itoa(int(r.cfg.VRID)), "interface": r.cfg.Interface}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("atoll_vrrp_"+name, help, variable, labels)
	}
	return &collector{
		r:            r,
		state:        desc("state", "VRRP state: 0 initialize, 1 backup, 2 master."),
		sent:         desc("adverts_sent_total", "VRRP advertisements sent."),
		received:     desc("adverts_received_total", "VRRP advertisements accepted."),
		zeroSent:     desc("priority_zero_sent_total", "VRRP advertisements of priority 0 (resignations) sent."),
		zeroReceived: desc("priority_zero_received_total", "VRRP advertisements of priority 0 (resignations) accepted."),
		becameMaster: desc("became_master_total", "Transitions to VRRP master."),
		garp:         desc("garp_sent_total", "Gratuitous ARPs sent for virtual addresses."),
		sendErrors:   desc("send_errors_total", "VRRP advertisements and gratuitous ARPs that could not be sent."),
		dropped:      desc("dropped_total", "Received VRRP packets dropped, by reason.", "reason"),
	}
}

type collector struct {
	r                                                                             *Router
	state, sent, received, zeroSent, zeroReceived, becameMaster, garp, sendErrors *prometheus.Desc
	dropped                                                                       *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.sent, c.received, c.zeroSent, c.zeroReceived, c.becameMaster, c.garp, c.sendErrors, c.dropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(s.State))
	for d, v := range map[*prometheus.Desc]uint64{
		c.sent: s.AdvertsSent, c.received: s.AdvertsReceived, c.zeroSent: s.PriorityZeroSent,
		c.zeroReceived: s.PriorityZeroReceived, c.becameMaster: s.BecameMaster, c.garp: s.GARPSent,
		c.sendErrors: s.SendErrors,
	} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	for reason, v := range s.Dropped {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(v), reason)
	}
}
