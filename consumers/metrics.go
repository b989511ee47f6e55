package consumers

import (
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
	}
	reg.MustRegister(m.outcomes, m.dlqErrors, m.sendDur, m.endToEnd, m.pendingG, m.ackPending)
	return m
}

func (m *Metrics) outcome(route, outcome string) {
	if m != nil {
		m.outcomes.WithLabelValues(route, outcome).Inc()
	}
}

func (m *Metrics) dlqError(route string) {
	if m != nil {
		m.dlqErrors.WithLabelValues(route).Inc()
	}
}

func (m *Metrics) sendDuration(route string, d time.Duration) {
	if m != nil {
		m.sendDur.WithLabelValues(route).Observe(d.Seconds())
	}
}

func (m *Metrics) latency(route string, d time.Duration) {
	if m != nil {
		m.endToEnd.WithLabelValues(route).Observe(d.Seconds())
	}
}

func (m *Metrics) pending(route string, pending uint64, ackPending int) {
	if m != nil {
		m.pendingG.WithLabelValues(route).Set(float64(pending))
		m.ackPending.WithLabelValues(route).Set(float64(ackPending))
	}
}
