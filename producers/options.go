package producers

import (
	"log/slog"
	"time"
)

// Option changes what code injects into a publisher or checkpointer.
type Option func(*options)

type options struct {
	log              *slog.Logger
	metrics          *Metrics
	publishAttempts  int
	publishRetryWait time.Duration
}

func newOptions(opts []Option) options {
	o := options{
		log:              slog.New(slog.DiscardHandler),
		publishAttempts:  5,
		publishRetryWait: 200 * time.Millisecond,
	}
	for _, f := range opts {
		f(&o)
	}
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

// WithMetrics sets where publish figures are counted. Default: nowhere.
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
