package consumers

import (
	"log/slog"
	"time"

	"github.com/vrelay/vrelay/streams"
)

// Option changes what code injects into a [Dispatcher].
type Option func(*options)

type options struct {
	log             *slog.Logger
	metrics         *Metrics
	stream          string
	root            string
	shutdownTimeout time.Duration
	healthInterval  time.Duration
	pinned          pinning // of ordered routes, see WithPinnedTTL
	ephemeral       *ReplayWindow
}

func newOptions(opts []Option) options {
	o := options{log: slog.New(slog.DiscardHandler), stream: streams.EventStream, root: streams.DefaultRoot}
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

// WithMetrics sets where delivery figures are counted. Default: nowhere.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithShutdownTimeout bounds how long Run lets the sends under way finish
// after its context is done; those still running then are cancelled and
// their events redelivered. Default: the route's SendTimeout.
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// WithStream reads events from another stream than streams.EventStream.
func WithStream(name string) Option { return func(o *options) { o.stream = name } }

// WithSubjectRoot sets the subject root of the event stream (the
// configuration's streams.subjectRoot): a route without subjects reads
// `<root>.>`. Default: streams.DefaultRoot.
func WithSubjectRoot(root string) Option {
	return func(o *options) {
		if root != "" {
			o.root = root
		}
	}
}
