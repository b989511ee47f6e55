package horizon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/names"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/internal/tlsfiles"
	"github.com/vrelay/vrelay/producers"
)

// Provider is the provider token of Horizon subjects and checkpoint keys:
// `vmware.horizon.<source>.<TYPE>`, `horizon.<source>`.
const Provider = "horizon"

// DefaultName is the source name used when [WithName] is not given.
const DefaultName = "horizon"

// DefaultTimeout bounds one HTTP request to Horizon unless [WithTimeout]
// says otherwise.
const DefaultTimeout = 60 * time.Second

// Source reads the audit events of one Horizon pod and publishes them.
// Create it with [New]; run it with [Source.Run]. Its methods are safe for
// concurrent use.
type Source struct {
	cfg      Config
	name     string
	cpKey    string
	base     *url.URL // scheme://host[:port]
	host     string   // base.Host: the first half of every Nats-Msg-Id
	password secret.Value
	roots    *x509.CertPool // nil: system roots
	log      *slog.Logger
	outage   time.Duration           // see WithOutageInterval
	health   *producers.HealthEvents // nil: no health events
	cp       producers.Checkpointer  // nil: no checkpoints
	last     LastStored              // nil: the checkpoint alone
	metrics  *metrics
	minWait  time.Duration
	maxWait  time.Duration
	timeout  time.Duration

	// maxRead bounds the events one read holds in memory; see readWindow.
	maxRead int

	running atomic.Bool
}

var (
	_ producers.Source = (*Source)(nil)
	_ LastStored       = (*producers.JetStreamPublisher)(nil)
)

// LastStored says which event of this source the stream holds last:
// [producers.JetStreamPublisher.Last] of the source's own publisher. Last
// returns [producers.ErrNoEvent] when the stream holds none. It is called
// once per Run, before the first read, and may block for a JetStream round
// trip.
type LastStored interface {
	Last(ctx context.Context) (producers.Stored, error)
}

// Option changes how [New] builds a [Source].
type Option func(*options)

type options struct {
	log      *slog.Logger
	cp       producers.Checkpointer
	last     LastStored
	name     string
	reg      prometheus.Registerer
	minWait  time.Duration
	maxWait  time.Duration
	outage   time.Duration
	healthJS jetstream.Publisher
	timeout  time.Duration
}

// WithLogger sets the logger. The default discards everything. The
// password and the tokens are never logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithOutageInterval sets how often, while Horizon cannot be reached,
// the source logs that it still cannot: the first failure and the recovery
// are always logged. Default: [producers.DefaultOutageInterval].
func WithOutageInterval(d time.Duration) Option { return func(o *options) { o.outage = d } }

// WithHealthEvents publishes the source's health events (connection lost
// and restored) on `vrelay.health.horizon.<name>` through js; see
// [producers.HealthEvents]. Without it none are published.
func WithHealthEvents(js jetstream.Publisher) Option { return func(o *options) { o.healthJS = js } }

// WithCheckpointer keeps the source's position under the key
// `horizon.<name>`, so a restart resumes where the last run stopped.
// Without it every run starts at Horizon's current time.
func WithCheckpointer(c producers.Checkpointer) Option { return func(o *options) { o.cp = c } }

// WithLastStored lets the source ask the stream where it stands: on start,
// the last event of this source in the stream wins over the checkpoint
// (see the package doc). Pass the publisher the source runs with, whose
// scope names this source. Without it the source relies on its checkpoint
// alone.
func WithLastStored(ls LastStored) Option { return func(o *options) { o.last = ls } }

// WithName sets the source name: the <source> token of subjects, the
// checkpoint key `horizon.<name>`, and the "source" label of metrics and
// logs. 1 to 64 letters, digits, '-' and '_'. Default [DefaultName].
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithRegisterer registers the source's metrics (vrelay_horizon_*,
// labelled by source) with r. Several sources may share one Registerer.
// Without this option nothing is registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithBackoff sets the pauses after failed reads and between publish
// retries: the first is initial, each next one doubles, up to max. Default
// 1s up to 60s. Tests shorten it.
func WithBackoff(initial, max time.Duration) Option {
	return func(o *options) {
		if initial > 0 {
			o.minWait = initial
		}
		if max > 0 {
			o.maxWait = max
		}
	}
}

// WithTimeout bounds each HTTP request to Horizon, the reading of the
// answer included. Default [DefaultTimeout].
func WithTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// New validates cfg, reads the password and the CA file, and returns a
// source that has not connected yet: [Source.Run] does.
func New(cfg Config, opts ...Option) (*Source, error) {
	o := options{name: DefaultName, minWait: time.Second, maxWait: time.Minute, timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if err := names.Check(o.name); err != nil {
		return nil, fmt.Errorf("horizon: invalid source name: %w", err)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.maxWait = max(o.maxWait, o.minWait)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, err := parseAddress(cfg.Address)
	if err != nil {
		return nil, cfgerr.New("address", err.Error())
	}
	pw, err := cfg.Password.Resolve()
	if err != nil {
		return nil, cfgerr.New("password", err.Error())
	}
	s := &Source{
		cfg:      cfg,
		name:     o.name,
		cpKey:    Provider + "." + o.name,
		base:     base,
		host:     base.Host,
		password: secret.Value(pw),
		log:      o.log.With("provider", Provider, "source", o.name),
		cp:       o.cp,
		last:     o.last,
		minWait:  o.minWait,
		maxWait:  o.maxWait,
		outage:   o.outage,
		timeout:  o.timeout,
		maxRead:  defaultMaxRead,
	}
	if cfg.CAFile != "" {
		if s.roots, err = tlsfiles.LoadCAPool(cfg.CAFile); err != nil {
			return nil, cfgerr.New("caFile", err.Error())
		}
	}
	if s.metrics, err = newMetrics(o.reg, o.name); err != nil {
		return nil, err
	}
	if o.healthJS != nil {
		s.health = producers.NewHealthEvents(o.healthJS, Provider, s.name, s.URL(), s.log)
	}
	return s, nil
}

// Name returns the source name.
func (s *Source) Name() string { return s.name }

// URL returns the pod's base URL, such as https://horizon.example.com: the
// CloudEvent source of every event.
func (s *Source) URL() string { return s.base.String() }

// CheckpointKey returns the key of the source's position in the checkpoint
// bucket, `horizon.<name>`.
func (s *Source) CheckpointKey() string { return s.cpKey }

// Scope returns where the source's events go, for producers.NewPublisher:
// provider "horizon" and the source name. Each record Run publishes brings
// the rest: the Horizon event type as the last subject token
// (`vmware.horizon.hz01.VLSI_USERLOGGEDIN_REST`) and `<host>:<event id>` as
// the Nats-Msg-Id, host being the address's host[:port].
func (s *Source) Scope() producers.Scope {
	return producers.Scope{Provider: Provider, Source: s.name}
}

// backoff is the pause after n failures in a row: minWait doubling,
// capped at maxWait.
func (s *Source) backoff(n int) time.Duration {
	return backoff.Policy{Initial: s.minWait, Max: s.maxWait}.Delay(n)
}

// errAlreadyRunning is returned by Run when the source is running already.
var errAlreadyRunning = errors.New("horizon: source is already running")
