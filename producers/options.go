package producers

import (
	"log/slog"
	"time"

	"github.com/vrelay/vrelay/streams"
)

// Option changes what code injects into a publisher, checkpointer or
// [Runner].
type Option func(*options)

type options struct {
	log              *slog.Logger
	metrics          *Metrics
	publishAttempts  int
	publishRetryWait time.Duration
	restartMin       time.Duration
	restartMax       time.Duration
	leases           *Leases
	storage          *streams.StorageHealth
}

func newOptions(opts []Option) options {
	o := options{
		log:              slog.New(slog.DiscardHandler),
		publishAttempts:  5,
		publishRetryWait: 200 * time.Millisecond,
		restartMin:       time.Second,
		restartMax:       time.Minute,
	}
	for _, f := range opts {
		f(&o)
	}
	o.restartMax = max(o.restartMax, o.restartMin)
	return o
}

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithMetrics sets where publish figures and a [Runner]'s source states are
// counted. Default: nowhere.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithPublishRetry sets how many times Publish sends an event whose ack
// failed (default 5) and the first pause between rounds (default 200ms,
// doubling each round).
func WithPublishRetry(attempts int, wait time.Duration) Option {
	return func(o *options) {
		if attempts > 0 {
			o.publishAttempts = attempts
		}
		if wait > 0 {
			o.publishRetryWait = wait
		}
	}
}

// WithRestartBackoff sets the pauses before a [Runner] runs a failed source
// again: initial after the first failure, doubling up to max (default 1s up
// to 1m). A run that lasted at least max starts the pauses again at
// initial. Tests shorten them.
func WithRestartBackoff(initial, max time.Duration) Option {
	return func(o *options) {
		if initial > 0 {
			o.restartMin = initial
		}
		if max > 0 {
			o.restartMax = max
		}
	}
}

// WithLeases makes a [Runner] run each source added with
// [Runner.AddPolling] only while this replica holds its lease, so that of
// several replicas exactly one polls each upstream system. Default: no
// leases (one replica, the embedded server): a polling source runs like
// any other.
func WithLeases(l *Leases) Option { return func(o *options) { o.leases = l } }

// WithStorageHealth makes a publisher fail at once, with an error wrapping
// [streams.ErrStorageFailing], while h says JetStream cannot store, and
// give up waiting for acks when it starts failing. Default: none.
func WithStorageHealth(h *streams.StorageHealth) Option {
	return func(o *options) { o.storage = h }
}
