package consumers

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery outcomes, the values of the `outcome` label.
const (
	outcomeDelivered    = "delivered"
	outcomeFiltered     = "filtered"
	outcomeFilterError  = "filter_error"
	outcomeRetry        = "retry"
	outcomeDeadLettered = "dead_lettered"
)

// Metrics counts what routes deliver. A nil *Metrics counts nothing.
type Metrics struct {
	outcomes   *prometheus.CounterVec
	dlqErrors  *prometheus.CounterVec
	sendDur    *prometheus.HistogramVec
	endToEnd   *prometheus.HistogramVec
	pendingG   *prometheus.GaugeVec
	ackPending *prometheus.GaugeVec
	keysBlock  *prometheus.GaugeVec
	eventsHeld *prometheus.GaugeVec
	rateWaitC  *prometheus.CounterVec
}

// NewMetrics registers the delivery metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrelay_deliveries_total",
			Help: "Events handled per route and outcome: delivered, filtered, filter_error, retry, dead_lettered.",
		}, []string{"route", "outcome"}),
		dlqErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrelay_dlq_publish_errors_total",
			Help: "Dead-letter publishes that failed (the event is retried, not dropped).",
		}, []string{"route"}),
		sendDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vrelay_send_duration_seconds",
			Help:    "Duration of one delivery attempt to the sink.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"route"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vrelay_delivery_latency_seconds",
			Help:    "Time from an event's storage in JetStream to its acceptance by the sink, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 14),
		}, []string{"route"}),
		pendingG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vrelay_consumer_pending",
			Help: "Events in the stream the route has not received yet.",
		}, []string{"route"}),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vrelay_consumer_ack_pending",
			Help: "Events the route received and has not finished (in flight or waiting for a retry).",
		}, []string{"route"}),
		keysBlock: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vrelay_ordered_keys_blocked",
			Help: "Keys of an ordered route whose oldest event failed and waits to be tried again, holding back the later events of its key.",
		}, []string{"route"}),
		eventsHeld: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vrelay_ordered_events_held",
			Help: "Events an ordered route received and is not sending: behind an earlier event of their key, waiting for a retry, or held after a restart until earlier events come back.",
		}, []string{"route"}),
		rateWaitC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrelay_route_rate_limit_wait_seconds_total",
			Help: "Time sends of a route waited for their turn under delivery.rateLimit, summed over its workers.",
		}, []string{"route"}),
	}
	reg.MustRegister(m.outcomes, m.dlqErrors, m.sendDur, m.endToEnd, m.pendingG, m.ackPending, m.keysBlock, m.eventsHeld, m.rateWaitC)
	return m
}

// routeMetrics are the series of one route. Each is looked up once, on
// first use, rather than by label values on every event: a lookup hashes
// the values and takes a lock. A nil *routeMetrics counts nothing.
type routeMetrics struct {
	m        *Metrics
	route    string
	outcomes [len(outcomeNames)]atomic.Pointer[prometheus.Counter]
	sendDur  atomic.Pointer[prometheus.Observer]
	endToEnd atomic.Pointer[prometheus.Observer]
	blocked  atomic.Pointer[prometheus.Gauge]
	held     atomic.Pointer[prometheus.Gauge]
	waited   atomic.Pointer[prometheus.Counter]
	// observe, if set, sees every outcome (the ephemeral mode counts them).
	observe func(outcome)
}

// outcome is a delivery outcome, an index into outcomeNames.
type outcome int

const (
	delivered outcome = iota
	filtered
	filterError
	retry
	deadLettered
)

var outcomeNames = [...]string{
	delivered:    outcomeDelivered,
	filtered:     outcomeFiltered,
	filterError:  outcomeFilterError,
	retry:        outcomeRetry,
	deadLettered: outcomeDeadLettered,
}

func (m *Metrics) forRoute(route string) *routeMetrics {
	if m == nil {
		return nil
	}
	return &routeMetrics{m: m, route: route}
}

// series returns what p holds, or stores and returns what get returns.
// Racing callers get the same series from the vector.
func series[T any](p *atomic.Pointer[T], get func() T) T {
	if v := p.Load(); v != nil {
		return *v
	}
	v := get()
	p.Store(&v)
	return v
}

func (r *routeMetrics) outcome(o outcome) {
	if r == nil {
		return
	}
	if r.observe != nil {
		r.observe(o)
	}
	series(&r.outcomes[o], func() prometheus.Counter { return r.m.outcomes.WithLabelValues(r.route, outcomeNames[o]) }).Inc()
}

func (r *routeMetrics) dlqError() {
	if r != nil {
		r.m.dlqErrors.WithLabelValues(r.route).Inc()
	}
}

func (r *routeMetrics) sendDuration(d time.Duration) {
	if r != nil {
		series(&r.sendDur, func() prometheus.Observer { return r.m.sendDur.WithLabelValues(r.route) }).Observe(d.Seconds())
	}
}

func (r *routeMetrics) latency(d time.Duration) {
	if r != nil {
		series(&r.endToEnd, func() prometheus.Observer { return r.m.endToEnd.WithLabelValues(r.route) }).Observe(d.Seconds())
	}
}

func (r *routeMetrics) pending(pending uint64, ackPending int) {
	if r != nil {
		r.m.pendingG.WithLabelValues(r.route).Set(float64(pending))
		r.m.ackPending.WithLabelValues(r.route).Set(float64(ackPending))
	}
}

// ordered sets the gauges of an ordered route.
func (r *routeMetrics) ordered(blocked, held int) {
	if r != nil {
		series(&r.blocked, func() prometheus.Gauge { return r.m.keysBlock.WithLabelValues(r.route) }).Set(float64(blocked))
		series(&r.held, func() prometheus.Gauge { return r.m.eventsHeld.WithLabelValues(r.route) }).Set(float64(held))
	}
}

func (r *routeMetrics) rateWait(d time.Duration) {
	if r != nil {
		series(&r.waited, func() prometheus.Counter { return r.m.rateWaitC.WithLabelValues(r.route) }).Add(d.Seconds())
	}
}
