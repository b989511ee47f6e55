package producers

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what producers publish and how the sources of a [Runner]
// fare. A nil *Metrics counts nothing.
type Metrics struct {
	events     *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	errors     *prometheus.CounterVec
	up         *prometheus.GaugeVec
	restarts   *prometheus.CounterVec
	standby    *prometheus.GaugeVec
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
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vrelay_source_up",
			Help: "1 while a source runs, 0 while it waits to be run again after a failure (or is stopped).",
		}, []string{"provider", "source"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vrelay_source_restarts_total",
			Help: "Times a source was run again after it failed; each failure is logged with its error.",
		}, []string{"provider", "source"}),
		standby: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vrelay_source_standby",
			Help: "1 while a polling source waits because another replica holds its lease, else 0.",
		}, []string{"provider", "source"}),
	}
	reg.MustRegister(m.events, m.duplicates, m.errors, m.up, m.restarts, m.standby)
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

// sourceAdded makes a source's series exist from the start, at 0.
func (m *Metrics) sourceAdded(provider, source string) {
	if m == nil {
		return
	}
	m.up.WithLabelValues(provider, source).Set(0)
	m.restarts.WithLabelValues(provider, source)
	m.standby.WithLabelValues(provider, source).Set(0)
}

func (m *Metrics) sourceStandby(provider, source string, standby bool) {
	if m == nil {
		return
	}
	v := 0.0
	if standby {
		v = 1
	}
	m.standby.WithLabelValues(provider, source).Set(v)
}

func (m *Metrics) sourceUp(provider, source string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.up.WithLabelValues(provider, source).Set(v)
}

func (m *Metrics) sourceRestarted(provider, source string) {
	if m == nil {
		return
	}
	m.restarts.WithLabelValues(provider, source).Inc()
}
