package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/streams"
)

// storageWatch keeps the health of JetStream's storage for the
// publishers and /readyz. On the embedded server it also repairs storage
// (a restart of the nats-server in-process) once the disk takes writes
// again; on an external NATS it only detects and reports.
type storageWatch struct {
	health   *streams.StorageHealth
	embedded *streams.Server // nil on an external NATS
}

func newStorageWatch(embedded *streams.Server) *storageWatch {
	return &storageWatch{health: streams.NewStorageHealth(), embedded: embedded}
}

// run checks until ctx is done.
func (w *storageWatch) run(ctx context.Context, js jetstream.JetStream, log *slog.Logger) {
	sw := &streams.StorageWatch{Health: w.health, Log: log}
	if w.embedded != nil {
		sw.Check, sw.Repair, sw.Interval = w.embedded.CheckStorage, w.embedded.Repair, time.Second
	} else {
		sw.Check, sw.Interval = streams.CheckJetStream(js), 5*time.Second
	}
	sw.Run(ctx)
}

// register adds vrelay_storage_ok and, on the embedded server,
// vrelay_embedded_server_restarts_total.
func (w *storageWatch) register(reg prometheus.Registerer) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vrelay_storage_ok",
		Help: "1 while JetStream stores what vrelay publishes, 0 while storage fails (a full disk, JetStream disabled); /readyz gives the reason.",
	}, func() float64 {
		if w.health.OK() {
			return 1
		}
		return 0
	}))
	if w.embedded != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vrelay_embedded_server_restarts_total",
			Help: "Times vrelay restarted its embedded nats-server in-process to recover from a storage failure.",
		}, func() float64 { return float64(w.embedded.Restarts()) }))
	}
}
