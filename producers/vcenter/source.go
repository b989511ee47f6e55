package vcenter

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
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/names"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/internal/tlsfiles"
	"github.com/vrelay/vrelay/producers"
)

// Provider is the provider token of vCenter subjects and checkpoint keys:
// `vmware.vcenter.<source>.<type>`, `vcenter.<source>`.
const Provider = "vcenter"

// DefaultName is the source name used when [WithName] is not given.
const DefaultName = "vcenter"

// Source reads the events of one vCenter and publishes them. Create it with
// [New]; run it with [Source.Run]. Its methods are safe for concurrent use.
type Source struct {
	cfg      Config
	name     string
	cpKey    string
	sdk      *url.URL // without credentials
	password secret.Value
	roots    *x509.CertPool // nil: system roots
	log      *slog.Logger
	outage   time.Duration          // see WithOutageInterval
	cp       producers.Checkpointer // nil: no checkpoints
	metrics  *metrics
	minWait  time.Duration
	maxWait  time.Duration

	last LastStored // nil: the checkpoint alone
	// health publishes health events; nil publishes none.
	health *producers.HealthEvents
	state  sourceHealth
	// readHook, set by tests only, changes what the collector returned,
	// to play a vCenter whose collector loses events.
	readHook func([]types.BaseEvent) []types.BaseEvent
	// waitHook, set by tests only, changes the newest event a change of
	// the collector's latest page reported.
	waitHook func(types.BaseEvent) types.BaseEvent
	enricher *enricher // nil: enrich is off

	running atomic.Bool
}

var (
	_ producers.Source         = (*Source)(nil)
	_ LastStored               = (*producers.JetStreamPublisher)(nil)
	_ producers.HealthReporter = (*Source)(nil)
)

// LastStored says which event of this source the stream holds last:
// [producers.JetStreamPublisher.Last] of the source's own publisher. Last
// returns [producers.ErrNoEvent] when the stream holds none. It is called
// once per Run, before the first connect, and may block for a JetStream
// round trip.
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
}

// WithLogger sets the logger. The default discards everything. The
// password is never logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithOutageInterval sets how often, while vCenter cannot be reached,
// the source logs that it still cannot: the first failure and the recovery
// are always logged. Default: [producers.DefaultOutageInterval].
func WithOutageInterval(d time.Duration) Option { return func(o *options) { o.outage = d } }

// WithCheckpointer keeps the source's position under the key
// `vcenter.<name>`, so a restart resumes where the last run stopped.
// Without it every run starts at vCenter's current time.
func WithCheckpointer(c producers.Checkpointer) Option { return func(o *options) { o.cp = c } }

// WithLastStored lets the source ask the stream where it stands: on start,
// the last event of the connected vCenter instance in the stream wins over
// the checkpoint (see the package doc). Pass the publisher the source runs
// with, whose scope names this source. Without it the source relies on its
// checkpoint alone, so after a crash it re-reads (and JetStream drops as
// duplicates) what it stored since the last save, and after a power loss
// that cost the stream its last writes it skips the events in between.
func WithLastStored(ls LastStored) Option { return func(o *options) { o.last = ls } }

// WithHealthEvents publishes the source's health events (connection lost
// and restored, stall detected and recovered, gap swept, checkpoint
// conflict) on `vrelay.health.vcenter.<name>` through js; see
// [producers.HealthEvents]. The VRELAY_HEALTH stream must exist
// (streams.Ensure makes it). Without it no health event is published; the
// logs and metrics say the same.
func WithHealthEvents(js jetstream.Publisher) Option { return func(o *options) { o.healthJS = js } }

// WithName sets the source name: the <source> token of subjects, the
// checkpoint key `vcenter.<name>`, and the "source" label of metrics and
// logs. 1 to 64 letters, digits, '-' and '_'. Default [DefaultName].
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithRegisterer registers the source's metrics (vrelay_vcenter_*, labelled
// by source) with r. Several sources may share one Registerer. Without this
// option nothing is registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithBackoff sets the pauses between reconnects and between publish
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

// New validates cfg, reads the password and the CA file, and returns a
// source that has not connected yet: [Source.Run] does.
func New(cfg Config, opts ...Option) (*Source, error) {
	o := options{name: DefaultName, minWait: time.Second, maxWait: time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if err := names.Check(o.name); err != nil {
		return nil, fmt.Errorf("vcenter: invalid source name: %w", err)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.maxWait = max(o.maxWait, o.minWait)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sdk, err := parseAddress(cfg.Address)
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
		sdk:      sdk,
		password: secret.Value(pw),
		log:      o.log.With("provider", Provider, "source", o.name),
		cp:       o.cp,
		last:     o.last,
		minWait:  o.minWait,
		maxWait:  o.maxWait,
		outage:   o.outage,
	}
	if o.healthJS != nil {
		s.health = producers.NewHealthEvents(o.healthJS, Provider, o.name, sdk.String(), s.log)
	}
	if cfg.CAFile != "" {
		if s.roots, err = tlsfiles.LoadCAPool(cfg.CAFile); err != nil {
			return nil, cfgerr.New("caFile", err.Error())
		}
	}
	if s.metrics, err = newMetrics(o.reg, o.name); err != nil {
		return nil, err
	}
	if s.enricher, err = newEnricher(s, o.reg); err != nil {
		return nil, err
	}
	return s, nil
}

// Name returns the source name.
func (s *Source) Name() string { return s.name }

// URL returns the SDK URL, without credentials: the CloudEvent source of
// every event.
func (s *Source) URL() string { return s.sdk.String() }

// CheckpointKey returns the key of the source's position in the checkpoint
// bucket, `vcenter.<name>`.
func (s *Source) CheckpointKey() string { return s.cpKey }

// Scope returns where the source's events go, for producers.NewPublisher:
// provider "vcenter" and the source name. Each record Run publishes brings
// the rest: the vSphere event type as the last subject token
// (`vmware.vcenter.vc01.VmPoweredOnEvent`; an EventEx id such as
// com.vmware.vc.HA.DasHostFailedEvent becomes
// com_vmware_vc_HA_DasHostFailedEvent) and `<instance uuid>:<key>` as the
// Nats-Msg-Id.
func (s *Source) Scope() producers.Scope {
	return producers.Scope{Provider: Provider, Source: s.name}
}

// errAlreadyRunning is returned by Run when the source is running already.
var errAlreadyRunning = errors.New("vcenter: source is already running")
