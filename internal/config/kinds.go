package config

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/eventbridge"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/consumers/knative"
	"github.com/vrelay/vrelay/consumers/logsink"
	"github.com/vrelay/vrelay/consumers/natssink"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/horizon"
	"github.com/vrelay/vrelay/producers/vcenter"
	"github.com/vrelay/vrelay/producers/vcsim"
	"github.com/vrelay/vrelay/producers/webhook"
)

// This file is the one table of component kinds. Defaults, validation,
// construction (and later the config schema and `vrelay migrate`) read it;
// nothing else in vrelay switches on a source or sink type. Adding a kind
// takes its package, its section field in Source or Sink below, and one
// entry in sourceKinds or sinkKinds.

// Source is one upstream system. Type selects which of the sections below
// applies; the others stay empty.
type Source struct {
	// Name is the source's name in subjects
	// (`vmware.<provider>.<name>.<type>`), checkpoint keys
	// (`<provider>.<name>`), metrics and logs. Letters, digits, `-` and `_`.
	// It must be unique among the sources of the same provider. Required.
	Name string `yaml:"name"`
	// Type selects the kind of source, and so its section. Required.
	Type string `yaml:"type"`
	// Webhook is the settings of a `webhook` source, which receives
	// CloudEvents over HTTP. See [Webhook source](#webhook-source).
	Webhook *webhook.Config `yaml:"webhook"`
	// VCenter is the settings of a `vcenter` source, which reads a
	// vCenter's events. See [vCenter source](#vcenter-source).
	VCenter *vcenter.Config `yaml:"vcenter"`
	// Horizon is the settings of a `horizon` source, which reads a Horizon
	// pod's audit events. See [Horizon source](#horizon-source).
	Horizon *horizon.Config `yaml:"horizon"`
	// Simulator is the settings of a `simulator` source, an in-process
	// vCenter simulator that vrelay reads, for trying vrelay. See
	// [Simulator source](#simulator-source).
	Simulator *vcsim.Config `yaml:"simulator"`
}

// Sink selects the destination of a route.
type Sink struct {
	// Type selects the kind of sink, and so its section. Required.
	Type string `yaml:"type"`
	// HTTP posts each event to a URL. See [HTTP sink](#http-sink).
	HTTP *httpsink.Config `yaml:"http"`
	// Log writes each event as a line to stdout or stderr. See
	// [Log sink](#log-sink).
	Log *logsink.Config `yaml:"log"`
	// Knative delivers to a Knative Destination: a ref resolved through
	// the Kubernetes API, a URI, or both. See [Knative sink](#knative-sink).
	Knative *knative.Config `yaml:"knative"`
	// EventBridge puts events on an Amazon EventBridge bus (PutEvents). See
	// [EventBridge sink](#eventbridge-sink).
	EventBridge *eventbridge.Config `yaml:"eventbridge"`
	// NATS republishes events to a NATS subject. See
	// [NATS sink](#nats-sink).
	NATS *natssink.Config `yaml:"nats"`
}

// SourceDeps is what building a source takes besides its configuration.
type SourceDeps struct {
	Log *slog.Logger
	// Registerer receives the source's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Checkpoints keeps positions; nil keeps none.
	Checkpoints producers.Checkpointer
	// LastStored tells a polling source which of its events the stream
	// holds last (the source's own publisher, whose Last does this); nil:
	// the checkpoint alone.
	LastStored interface {
		Last(ctx context.Context) (producers.Stored, error)
	}
	// Health publishes the source's health events on the VRELAY_HEALTH
	// stream; nil publishes none.
	Health jetstream.Publisher
}

// SinkDeps is what building a sink takes besides its configuration.
type SinkDeps struct {
	Log *slog.Logger
	// NATS is the process's own connection, which a nats sink without a
	// url publishes on.
	NATS *nats.Conn
	// SubjectRoot is the event stream's root, which a nats sink must not
	// publish under; "" is the default root.
	SubjectRoot string
}

// section is what every component's Config implements: SetDefaults fills
// unset fields, Validate reports every problem with paths relative to the
// section, without side effects.
type section interface {
	SetDefaults()
	Validate() error
}

// SourceKind is one entry of the table of source kinds.
type SourceKind struct {
	// Type is the value of `type:` and the name of the section.
	Type string
	// Provider is the second subject token and the checkpoint key prefix:
	// a simulator publishes as a vCenter.
	Provider string
	// required says the section must be written (it has no usable
	// defaults); otherwise an absent section is defaulted.
	required bool
	// polling says the source polls an upstream system: with several
	// replicas exactly one runs it, under a lease. A source that receives
	// (webhook) runs on every replica.
	polling bool
	// section returns the kind's section of s, creating it when create is
	// set and it is absent; nil when absent.
	section func(s *Source, create bool) section
	// listen returns the address the source binds, or "".
	listen func(s *Source) string
	build  func(s Source, d SourceDeps) (producers.Source, error)
}

// SinkKind is one entry of the table of sink kinds.
type SinkKind struct {
	// Type is the value of `type:` and the name of the section.
	Type     string
	required bool
	// batches says the sink implements consumers.BatchSink, so that
	// delivery.maxBatch may exceed 1.
	batches bool
	section func(s *Sink, create bool) section
	// check validates what spans the sink and the route's delivery.
	check func(s Sink, d consumers.Delivery) error
	build func(s Sink, d SinkDeps) (consumers.Sink, error)
}

var sourceKinds = []SourceKind{
	{
		Type:     "webhook",
		Provider: "webhook",
		section:  field(func(s *Source) **webhook.Config { return &s.Webhook }),
		listen:   func(s *Source) string { return s.Webhook.Listen },
		build: func(s Source, d SourceDeps) (producers.Source, error) {
			return webhook.New(*s.Webhook, webhook.WithName(s.Name), webhook.WithLogger(d.Log),
				webhook.WithRegisterer(d.Registerer))
		},
	},
	{
		Type:     "vcenter",
		polling:  true,
		Provider: vcenter.Provider,
		required: true,
		section:  field(func(s *Source) **vcenter.Config { return &s.VCenter }),
		build: func(s Source, d SourceDeps) (producers.Source, error) {
			return vcenter.New(*s.VCenter, vcenter.WithName(s.Name), vcenter.WithLogger(d.Log),
				vcenter.WithCheckpointer(d.Checkpoints), vcenter.WithRegisterer(d.Registerer),
				vcenter.WithLastStored(d.LastStored), vcenter.WithHealthEvents(d.Health))
		},
	},
	{
		Type:     "horizon",
		polling:  true,
		Provider: horizon.Provider,
		required: true,
		section:  field(func(s *Source) **horizon.Config { return &s.Horizon }),
		build: func(s Source, d SourceDeps) (producers.Source, error) {
			return horizon.New(*s.Horizon, horizon.WithName(s.Name), horizon.WithLogger(d.Log),
				horizon.WithCheckpointer(d.Checkpoints), horizon.WithRegisterer(d.Registerer),
				horizon.WithLastStored(d.LastStored), horizon.WithHealthEvents(d.Health))
		},
	},
	{
		Type:     "simulator",
		polling:  true,
		Provider: vcenter.Provider,
		section:  field(func(s *Source) **vcsim.Config { return &s.Simulator }),
		build: func(s Source, d SourceDeps) (producers.Source, error) {
			return vcsim.New(*s.Simulator, vcsim.WithName(s.Name), vcsim.WithLogger(d.Log),
				vcsim.WithCheckpointer(d.Checkpoints), vcsim.WithRegisterer(d.Registerer),
				vcsim.WithLastStored(d.LastStored))
		},
	},
}

var sinkKinds = []SinkKind{
	{
		Type:     "http",
		required: true,
		section:  field(func(s *Sink) **httpsink.Config { return &s.HTTP }),
		check:    func(s Sink, d consumers.Delivery) error { return timeoutWithin(s.HTTP.Timeout, d) },
		build: func(s Sink, d SinkDeps) (consumers.Sink, error) {
			return httpsink.New(*s.HTTP, httpsink.WithLogger(d.Log))
		},
	},
	{
		Type:    "log",
		batches: true,
		section: field(func(s *Sink) **logsink.Config { return &s.Log }),
		build: func(s Sink, _ SinkDeps) (consumers.Sink, error) {
			return logsink.New(*s.Log)
		},
	},
	{
		Type:     "knative",
		required: true,
		section:  field(func(s *Sink) **knative.Config { return &s.Knative }),
		check:    func(s Sink, d consumers.Delivery) error { return timeoutWithin(s.Knative.Timeout, d) },
		build: func(s Sink, d SinkDeps) (consumers.Sink, error) {
			return knative.New(*s.Knative, knative.WithLogger(d.Log))
		},
	},
	{
		Type:     "eventbridge",
		required: true,
		batches:  true,
		section:  field(func(s *Sink) **eventbridge.Config { return &s.EventBridge }),
		check:    func(s Sink, d consumers.Delivery) error { return timeoutWithin(s.EventBridge.Timeout, d) },
		build: func(s Sink, d SinkDeps) (consumers.Sink, error) {
			return eventbridge.New(*s.EventBridge, eventbridge.WithLogger(d.Log))
		},
	},
	{
		Type:     "nats",
		required: true,
		section:  field(func(s *Sink) **natssink.Config { return &s.NATS }),
		build: func(s Sink, d SinkDeps) (consumers.Sink, error) {
			opts := []natssink.Option{natssink.WithConn(d.NATS), natssink.WithLogger(d.Log)}
			if d.SubjectRoot != "" {
				opts = append(opts, natssink.WithSubjectRoot(d.SubjectRoot))
			}
			return natssink.New(*s.NATS, opts...)
		},
	},
}

// timeoutWithin checks a sink's own timeout against the route's
// sendTimeout, which bounds every attempt anyway.
func timeoutWithin(t time.Duration, d consumers.Delivery) error {
	if t > d.SendTimeout {
		return cfgerr.Newf("timeout", "%s exceeds delivery.sendTimeout (%s), which bounds every attempt", t, d.SendTimeout)
	}
	return nil
}

// field binds a kind to its section field of type *T.
func field[O, T any, P interface {
	*T
	section
}](get func(*O) **T) func(*O, bool) section {
	return func(o *O, create bool) section {
		p := get(o)
		if *p == nil {
			if !create {
				return nil
			}
			*p = new(T)
		}
		return P(*p)
	}
}

// SourceKinds returns the table of source kinds, for docs and schema.
func SourceKinds() []SourceKind { return slices.Clone(sourceKinds) }

// SinkKinds returns the table of sink kinds.
func SinkKinds() []SinkKind { return slices.Clone(sinkKinds) }

func sourceKind(typ string) (SourceKind, bool) {
	i := slices.IndexFunc(sourceKinds, func(k SourceKind) bool { return k.Type == typ })
	if i < 0 {
		return SourceKind{}, false
	}
	return sourceKinds[i], true
}

func sinkKind(typ string) (SinkKind, bool) {
	i := slices.IndexFunc(sinkKinds, func(k SinkKind) bool { return k.Type == typ })
	if i < 0 {
		return SinkKind{}, false
	}
	return sinkKinds[i], true
}

func sourceTypes() string { return typeList(sourceKinds, func(k SourceKind) string { return k.Type }) }
func sinkTypes() string   { return typeList(sinkKinds, func(k SinkKind) string { return k.Type }) }

// typeList names the kinds of a table, for messages: "http, log".
func typeList[K any](kinds []K, typ func(K) string) string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = typ(k)
	}
	return strings.Join(names, ", ")
}

// Provider is the provider of the source: the second token of its
// subjects and the prefix of its checkpoint key. "" for an unknown type.
func (s Source) Provider() string {
	k, _ := sourceKind(s.Type)
	return k.Provider
}

// Polling reports whether the source polls an upstream system (vCenter,
// Horizon, the simulator), so that of several replicas only the one
// holding its lease runs it. False for a webhook and an unknown type.
func (s Source) Polling() bool {
	k, _ := sourceKind(s.Type)
	return k.polling
}

// New builds the source of a loaded (defaulted and validated) entry.
func (s Source) New(d SourceDeps) (producers.Source, error) {
	k, ok := sourceKind(s.Type)
	if !ok || k.section(&s, false) == nil {
		return nil, fmt.Errorf("source %q: type %q is not configured", s.Name, s.Type)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return k.build(s, d)
}

// New builds the sink of a loaded (defaulted and validated) route.
func (s Sink) New(d SinkDeps) (consumers.Sink, error) {
	k, ok := sinkKind(s.Type)
	if !ok || k.section(&s, false) == nil {
		return nil, fmt.Errorf("sink type %q is not configured", s.Type)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return k.build(s, d)
}
