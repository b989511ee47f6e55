package producers

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what producers publish. A nil *Metrics counts nothing.
type Metrics struct {
	events     *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	errors     *prometheus.CounterVec
}

// NewMetrics registers the producer metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrelay_events_published_total",
			Help: "Events JetStream acknowledged, per source (duplicates included).",
		}, []string{"provider", "source"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrelay_events_duplicate_total",
			Help: "Published events JetStream dropped as duplicates of stored ones (replays after a crash, client retries).",
		}, []string{"provider", "source"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrelay_publish_errors_total",
			Help: "Event publishes that failed and were retried or reported.",
		}, []string{"provider", "source"}),
	}
	reg.MustRegister(m.events, m.duplicates, m.errors)
	return m
}

func (m *Metrics) published(s Scope, n, dups int) {
	if m == nil || n == 0 {
		return
	}
	m.events.WithLabelValues(s.Provider, s.Source).Add(float64(n))
	if dups > 0 {
		m.duplicates.WithLabelValues(s.Provider, s.Source).Add(float64(dups))
	}
}

func (m *Metrics) failed(s Scope, n int) {
	if m == nil {
		return
	}
	m.errors.WithLabelValues(s.Provider, s.Source).Add(float64(n))
}
