package vcsim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmware/govmomi/simulator"

	"github.com/vrelay/vrelay/internal/names"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/vcenter"
)

// DefaultName is the source name used when [WithName] is not given.
const DefaultName = "simulator"

// Username is the user the simulator accepts; its password is random,
// new each run, and given by [Source.Credentials].
const Username = "vrelay"

// Source runs a simulated vCenter in-process and relays its events through
// a [vcenter.Source]. Create it with [New]. Its methods are safe for
// concurrent use.
type Source struct {
	cfg  Config
	name string
	log  *slog.Logger // with provider and source
	base *slog.Logger // as given, for the vcenter source, which adds them
	cp   producers.Checkpointer
	last vcenter.LastStored
	reg  prometheus.Registerer

	running atomic.Bool

	mu       sync.Mutex
	ready    chan struct{} // closed once the current run serves
	addr     string
	password string
	caFile   string
	instance string
}

var _ producers.Source = (*Source)(nil)

// Option changes how [New] builds a [Source].
type Option func(*options)

type options struct {
	log  *slog.Logger
	cp   producers.Checkpointer
	last vcenter.LastStored
	reg  prometheus.Registerer
	name string
}

// WithLogger sets the logger of the simulator and of its vCenter source.
// Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithCheckpointer keeps the position under `vcenter.<name>`, as a vCenter
// source does. Each run simulates a new vCenter instance (unless
// Config.InstanceUUID is set), so a restart logs that the checkpoint
// belongs to another instance and starts fresh.
func WithCheckpointer(c producers.Checkpointer) Option { return func(o *options) { o.cp = c } }

// WithLastStored is passed to the vCenter source: see
// [vcenter.WithLastStored]. The simulator is a new vCenter instance each
// run, so the stream's last event matters only within one run and with a
// fixed Config.InstanceUUID.
func WithLastStored(ls vcenter.LastStored) Option { return func(o *options) { o.last = ls } }

// WithName sets the source name: the <source> token of subjects
// (`vmware.vcenter.<name>.<type>`), the checkpoint key and the metrics
// label. 1 to 64 letters, digits, '-' and '_'. Default [DefaultName].
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithRegisterer registers the vCenter source's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// New validates cfg. Nothing runs until [Source.Run].
func New(cfg Config, opts ...Option) (*Source, error) {
	o := options{name: DefaultName}
	for _, opt := range opts {
		opt(&o)
	}
	if err := names.Check(o.name); err != nil {
		return nil, fmt.Errorf("vcsim: invalid source name: %w", err)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Source{
		cfg:   cfg,
		name:  o.name,
		log:   o.log.With("provider", vcenter.Provider, "source", o.name),
		base:  o.log,
		cp:    o.cp,
		last:  o.last,
		reg:   o.reg,
		ready: make(chan struct{}),
	}, nil
}

// Ready is closed once the current run serves the simulator, when
// [Source.Address] and [Source.Credentials] are valid.
func (s *Source) Ready() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// Address returns the SDK URL of the running simulator, such as
// https://127.0.0.1:40123/sdk, or "" when it is not running. It serves
// HTTPS with a self-signed certificate: see [Source.CAFile].
func (s *Source) Address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Credentials returns the user and password the running simulator
// accepts, for govc or a test of your own. They are never logged.
func (s *Source) Credentials() (username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Username, s.password
}

// CAFile returns a PEM file of the simulator's certificate while it runs.
func (s *Source) CAFile() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caFile
}

// InstanceUUID returns the simulated vCenter's instance uuid while it
// runs, the first part of every Nats-Msg-Id.
func (s *Source) InstanceUUID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instance
}

// Scope returns where the events go: the same as a [vcenter.Source] named
// like this one, so subjects read `vmware.vcenter.<name>.<type>` and routes
// written against the simulator work against a real vCenter. The records
// the vCenter source publishes bring their subject token and Nats-Msg-Id.
func (s *Source) Scope() producers.Scope {
	return producers.Scope{Provider: vcenter.Provider, Source: s.name}
}

// Run starts the simulator (the govmomi VPX model: a datacenter, a cluster
// of three hosts, a standalone host and four virtual machines) on a free
// port of 127.0.0.1, drives the workload at Config.Rate, and relays the
// events through a vcenter.Source over the real SOAP path: login, event
// history collector, PropertyCollector wait, ReadNextEvents. When ctx is
// done it stops the workload and the source, shuts the simulator down and
// returns ctx.Err(); it returns another error only when the simulator
// cannot start or the vCenter source fails for good (a corrupt
// checkpoint).
func (s *Source) Run(ctx context.Context, pub producers.Publisher) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("vcsim: source is already running")
	}
	defer s.running.Store(false)

	instance := s.cfg.InstanceUUID
	if instance == "" {
		instance = uuid.NewString()
	}
	password := rand.Text()
	model := simulator.VPX()
	model.ServiceContent.About.InstanceUuid = instance
	if err := model.Create(); err != nil {
		return fmt.Errorf("vcsim: create the model: %w", err)
	}
	defer model.Remove()
	model.Service.TLS = new(tls.Config)
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(Username, password)}
	srv := model.Service.NewServer()
	defer srv.Close()
	caFile, err := srv.CertificateFile()
	if err != nil {
		return fmt.Errorf("vcsim: write the certificate: %w", err)
	}
	sdk := *srv.URL
	sdk.User = nil

	inner, err := s.newInner(sdk.String(), password, caFile)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.addr, s.password, s.caFile, s.instance = sdk.String(), password, caFile, instance
	close(s.ready)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.addr, s.password, s.caFile, s.instance = "", "", "", ""
		s.ready = make(chan struct{})
		s.mu.Unlock()
	}()
	s.log.Info("simulated vcenter running", "address", sdk.String(), "instance_uuid", instance,
		"username", Username, "rate", s.cfg.Rate)

	// The workload stops before the source, whose shutdown destroys its
	// event collector: the simulator's PostEvent walks the collectors
	// without the lock DestroyCollector takes, so the two must not overlap.
	wctx, stopWorkload := context.WithCancel(ctx)
	w := &workload{url: sdk, user: Username, password: password, caFile: caFile, rate: s.cfg.Rate, log: s.log}
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		w.run(wctx)
	}()
	ictx, stopInner := context.WithCancel(context.WithoutCancel(ctx))
	defer stopInner()
	innerDone := make(chan error, 1)
	go func() { innerDone <- inner.Run(ictx, pub) }()

	select {
	case <-ctx.Done():
	case err = <-innerDone: // fatal: a corrupt checkpoint
	}
	stopWorkload()
	<-workDone
	if ctx.Err() != nil {
		stopInner()
		<-innerDone
		err = ctx.Err()
	}
	s.log.Info("simulated vcenter stopped", "address", sdk.String())
	return err
}

// newInner builds the vCenter source for the simulator. The password goes
// through a file, the way an operator's would, and the file is gone once
// New has read it.
func (s *Source) newInner(address, password, caFile string) (*vcenter.Source, error) {
	dir, err := os.MkdirTemp("", "vrelay-vcsim-")
	if err != nil {
		return nil, fmt.Errorf("vcsim: %w", err)
	}
	defer os.RemoveAll(dir)
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
		return nil, fmt.Errorf("vcsim: %w", err)
	}
	opts := []vcenter.Option{vcenter.WithName(s.name), vcenter.WithLogger(s.base)}
	if s.cp != nil {
		opts = append(opts, vcenter.WithCheckpointer(s.cp))
	}
	if s.last != nil {
		opts = append(opts, vcenter.WithLastStored(s.last))
	}
	if s.reg != nil {
		opts = append(opts, vcenter.WithRegisterer(s.reg))
	}
	inner, err := vcenter.New(vcenter.Config{
		Address:  address,
		Username: Username,
		Password: secret.Ref{FromFile: pw},
		CAFile:   caFile,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("vcsim: %w", err)
	}
	return inner, nil
}
