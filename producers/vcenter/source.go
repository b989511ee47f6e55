package vcenter

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

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
	cp       producers.Checkpointer // nil: no checkpoints
	metrics  *metrics
	minWait  time.Duration
	maxWait  time.Duration

	running  atomic.Bool
	instance atomic.Pointer[string] // uuid of the connected vCenter

	mu       sync.Mutex
	inflight map[string]inflight // CE id -> identity, for the batch being published
}

// inflight is what Scope needs to know about an event being published and
// cannot read from the CloudEvent: its key (the router format's id is a
// UUID) and its vSphere type.
type inflight struct {
	msgID string
	typ   string
}

var _ producers.Source = (*Source)(nil)

// Option changes how [New] builds a [Source].
type Option func(*options)

type options struct {
	log     *slog.Logger
	cp      producers.Checkpointer
	name    string
	reg     prometheus.Registerer
	minWait time.Duration
	maxWait time.Duration
}

// WithLogger sets the logger. The default discards everything. The
// password is never logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithCheckpointer keeps the source's position under the key
// `vcenter.<name>`, so a restart resumes where the last run stopped.
// Without it every run starts at vCenter's current time.
func WithCheckpointer(c producers.Checkpointer) Option { return func(o *options) { o.cp = c } }

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
		minWait:  o.minWait,
		maxWait:  o.maxWait,
		inflight: make(map[string]inflight),
	}
	if cfg.CAFile != "" {
		if s.roots, err = tlsfiles.LoadCAPool(cfg.CAFile); err != nil {
			return nil, cfgerr.New("caFile", err.Error())
		}
	}
	if s.metrics, err = newMetrics(o.reg, o.name); err != nil {
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
// provider "vcenter", the source name, the vSphere event type as the last
// subject token (`vmware.vcenter.vc01.VmPoweredOnEvent`; an EventEx id such
// as com.vmware.vc.HA.DasHostFailedEvent becomes
// com_vmware_vc_HA_DasHostFailedEvent), and `<instance uuid>:<key>` as the
// Nats-Msg-Id.
//
// The Nats-Msg-Id names the vCenter by its instance uuid, which is known
// only once Run has connected, and the event by its key, which a router
// format CloudEvent does not carry. So the Scope's functions ask the Source:
// Run registers each batch before it calls Publish and forgets it after.
// For an event Run is not publishing they fall back to the uuid of the
// vCenter last connected to and the CloudEvent id, which is the key in the
// tanzu format.
func (s *Source) Scope() producers.Scope {
	return producers.Scope{
		Provider:  Provider,
		Source:    s.name,
		TypeToken: s.typeToken,
		MsgID:     s.msgID,
	}
}

func (s *Source) msgID(ev *event.Event) string {
	s.mu.Lock()
	f, ok := s.inflight[ev.ID()]
	s.mu.Unlock()
	if ok {
		return f.msgID
	}
	return s.instanceUUID() + ":" + ev.ID()
}

func (s *Source) typeToken(ev *event.Event) string {
	s.mu.Lock()
	f, ok := s.inflight[ev.ID()]
	s.mu.Unlock()
	if ok {
		return f.typ
	}
	if t, ok := strings.CutPrefix(ev.Type(), tanzuTypePrefix); ok {
		return strings.TrimSuffix(t, tanzuTypeSuffix)
	}
	if ev.Subject() != "" {
		return ev.Subject()
	}
	return ev.Type()
}

func (s *Source) instanceUUID() string {
	if p := s.instance.Load(); p != nil {
		return *p
	}
	return ""
}

// track registers a batch for Scope; the returned func forgets it.
func (s *Source) track(ids []string, f []inflight) func() {
	s.mu.Lock()
	for i, id := range ids {
		s.inflight[id] = f[i]
	}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		clear(s.inflight)
		s.mu.Unlock()
	}
}

// errAlreadyRunning is returned by Run when the source is running already.
var errAlreadyRunning = errors.New("vcenter: source is already running")
