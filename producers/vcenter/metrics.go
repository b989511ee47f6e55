package vcenter

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one source's series. Several sources may share a
// Registerer: they share the collectors and differ by the source label.
type metrics struct {
	events        prometheus.Counter
	skipped       prometheus.Counter
	convertErrors prometheus.Counter
	// keyRegressions counts events whose key went back: a restored vCenter.
	keyRegressions prometheus.Counter
	connected      prometheus.Gauge
	disconnects    prometheus.Counter
	lastEvent      prometheus.Gauge
	saves          *prometheus.CounterVec // curried with source; label result
}

func newMetrics(reg prometheus.Registerer, source string) (*metrics, error) {
	l := prometheus.Labels{"source": source}
	events, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_vcenter_events_total",
		Help: "vCenter events read and stored in JetStream, per source.",
	}, []string{"source"}))
	if err != nil {
		return nil, err
	}
	skipped, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_vcenter_events_skipped_total",
		Help: "vCenter events read again after a restart or reconnect and skipped because they were already stored.",
	}, []string{"source"}))
	if err != nil {
		return nil, err
	}
	regress, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_vcenter_key_regressions_total",
		Help: "Times a vCenter's event keys went back under the same instance uuid (restored from a backup); each is logged.",
	}, []string{"source"}))
	if err != nil {
		return nil, err
	}
	convErr, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_vcenter_convert_errors_total",
		Help: "vCenter events dropped because they could not be turned into CloudEvents or stored (too large); each is logged.",
	}, []string{"source"}))
	if err != nil {
		return nil, err
	}
	connected, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vrelay_vcenter_connected",
		Help: "1 while the source has a vCenter session and reads events, else 0.",
	}, []string{"source"}))
	if err != nil {
		return nil, err
	}
	disconnects, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_vcenter_connection_failures_total",
		Help: "Failed connection attempts and lost sessions; each is followed by a backoff and a reconnect.",
	}, []string{"source"}))
	if err != nil {
		return nil, err
	}
	lastEvent, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vrelay_vcenter_last_event_timestamp_seconds",
		Help: "CreatedTime of the newest vCenter event stored in JetStream; time() minus this is the lag.",
	}, []string{"source"}))
	if err != nil {
		return nil, err
	}
	saves, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_vcenter_checkpoint_saves_total",
		Help: "Checkpoint saves by result: ok, conflict (another writer) or error.",
	}, []string{"source", "result"}))
	if err != nil {
		return nil, err
	}
	m := &metrics{
		events:         events.With(l),
		skipped:        skipped.With(l),
		convertErrors:  convErr.With(l),
		keyRegressions: regress.With(l),
		connected:      connected.With(l),
		disconnects:    disconnects.With(l),
		lastEvent:      lastEvent.With(l),
	}
	if m.saves, err = saves.CurryWith(l); err != nil {
		return nil, fmt.Errorf("register vcenter metrics: %w", err)
	}
	for _, r := range []string{"ok", "conflict", "error"} {
		m.saves.WithLabelValues(r) // show zeros rather than gaps
	}
	return m, nil
}

// register registers c with reg, or returns the collector registered
// before under the same name. A nil reg registers nothing.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		var zero C
		return zero, fmt.Errorf("register vcenter metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) stored(n int, last time.Time) {
	m.events.Add(float64(n))
	m.lastEvent.Set(float64(last.UnixNano()) / 1e9)
}
