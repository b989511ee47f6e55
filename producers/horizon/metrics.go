package horizon

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one source's series. Several sources may share a
// Registerer: they share the collectors and differ by the source label.
type metrics struct {
	events        prometheus.Counter
	skipped       prometheus.Counter
	convertErrors prometheus.Counter
	connected     prometheus.Gauge
	errors        *prometheus.CounterVec // curried with source; label kind
	logins        prometheus.Counter
	refreshes     prometheus.Counter
	lastEvent     prometheus.Gauge
	saves         *prometheus.CounterVec // curried with source; label result
}

func newMetrics(reg prometheus.Registerer, source string) (*metrics, error) {
	l := prometheus.Labels{"source": source}
	counter := func(name, help string) (prometheus.Counter, error) {
		c, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"source"}))
		if err != nil {
			return nil, err
		}
		return c.With(l), nil
	}
	gauge := func(name, help string) (prometheus.Gauge, error) {
		g, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"source"}))
		if err != nil {
			return nil, err
		}
		return g.With(l), nil
	}
	m := &metrics{}
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	m.events, err = counter("vrelay_horizon_events_total",
		"Horizon audit events read and stored in JetStream, per source.")
	add(err)
	m.skipped, err = counter("vrelay_horizon_events_skipped_total",
		"Horizon audit events read again and skipped because they were already stored: those of the millisecond each read begins at, and the replay after a restart.")
	add(err)
	m.convertErrors, err = counter("vrelay_horizon_convert_errors_total",
		"Horizon audit events dropped because they had no id or time, could not be turned into CloudEvents or stored (too large); each is logged.")
	add(err)
	m.connected, err = gauge("vrelay_horizon_connected",
		"1 while the source's last read of Horizon succeeded, else 0.")
	add(err)
	m.logins, err = counter("vrelay_horizon_logins_total",
		"Logins to the Horizon REST API; a healthy source logs in once and then refreshes its token.")
	add(err)
	m.refreshes, err = counter("vrelay_horizon_token_refreshes_total",
		"Access tokens renewed with the refresh token.")
	add(err)
	m.lastEvent, err = gauge("vrelay_horizon_last_event_timestamp_seconds",
		"Time of the newest Horizon audit event stored in JetStream; time() minus this is the lag.")
	add(err)
	errVec, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_horizon_errors_total",
		Help: "Failed reads of Horizon by kind: login, tls, denied, throttled, conflict, server, network or other; each is followed by a pause and a retry.",
	}, []string{"source", "kind"}))
	add(err)
	saves, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_horizon_checkpoint_saves_total",
		Help: "Checkpoint saves by result: ok, conflict (another writer) or error.",
	}, []string{"source", "result"}))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if m.errors, err = errVec.CurryWith(l); err != nil {
		return nil, fmt.Errorf("register horizon metrics: %w", err)
	}
	if m.saves, err = saves.CurryWith(l); err != nil {
		return nil, fmt.Errorf("register horizon metrics: %w", err)
	}
	// Show zeros rather than gaps.
	for _, k := range []string{kindLogin, kindTLS, kindDenied, kindThrottled, kindConflict, kindServer, kindNetwork, kindOther} {
		m.errors.WithLabelValues(k)
	}
	for _, r := range []string{"ok", "conflict", "error"} {
		m.saves.WithLabelValues(r)
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
		return zero, fmt.Errorf("register horizon metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) stored(n int, lastMs int64) {
	m.events.Add(float64(n))
	m.lastEvent.Set(float64(lastMs) / 1e3)
}
