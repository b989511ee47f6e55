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
	// The watchdog's: see watchdog.go.
	lag         prometheus.Gauge
	gaps        prometheus.Counter
	stalls      prometheus.Counter
	sweeps      prometheus.Counter
	sweptEvents prometheus.Counter
	unknown     prometheus.Counter
	undecodable prometheus.Counter
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
	gauge := func(name, help string) (prometheus.Gauge, error) {
		v, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"source"}))
		if err != nil {
			return nil, err
		}
		return v.With(l), nil
	}
	counter := func(name, help string) (prometheus.Counter, error) {
		v, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"source"}))
		if err != nil {
			return nil, err
		}
		return v.With(l), nil
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
	var errs [7]error
	m.lag, errs[0] = gauge("vrelay_vcenter_lag_seconds",
		"vCenter's latest event time minus the time of the last event stored, at the last stall check (stallCheckInterval).")
	m.gaps, errs[1] = counter("vrelay_vcenter_gaps_total",
		"Ranges of events the collector did not return (a stall, or keys that jumped by more than a page); each is logged and swept.")
	m.stalls, errs[2] = counter("vrelay_vcenter_stalls_total",
		"Times vCenter had newer events than its collector returned; each is swept and the collector made anew.")
	m.sweeps, errs[3] = counter("vrelay_vcenter_sweeps_total",
		"Sweeps: reads of a missed range by time.")
	m.sweptEvents, errs[4] = counter("vrelay_vcenter_swept_events_total",
		"Events in missed ranges that sweeps read (those already stored are dropped as duplicates).")
	m.unknown, errs[5] = counter("vrelay_vcenter_unknown_class_events_total",
		"Events of classes govmomi does not know, published with what could be read.")
	m.undecodable, errs[6] = counter("vrelay_vcenter_undecodable_events_total",
		"Events vCenter sent that could not be decoded at all (no key): they cannot be published; each batch is logged.")
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
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
