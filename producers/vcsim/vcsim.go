package vcsim

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

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
// source does. A restart reads it to be the same vCenter instance again
// and resume after it (see the package documentation).
func WithCheckpointer(c producers.Checkpointer) Option { return func(o *options) { o.cp = c } }

// WithLastStored is passed to the vCenter source: see
// [vcenter.WithLastStored]. A restart also reads it, as it reads the
// checkpoint, to continue the last run's instance and keys.
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

	prev := s.previous(ctx)
	instance := s.cfg.InstanceUUID
	switch {
	case instance != "":
	case prev.instance != "":
		instance = prev.instance
	default:
		instance = uuid.NewString()
	}
	password := rand.Text()
	model := simulator.VPX()
	model.ServiceContent.About.InstanceUuid = instance
	if err := model.Create(); err != nil {
		return fmt.Errorf("vcsim: create the model: %w", err)
	}
	defer model.Remove()
	if prev.instance == instance && prev.key > 0 {
		// The same simulated vCenter again: its event keys go on from
		// where the last run's stopped, so the source resumes after its
		// checkpoint as it would on a real vCenter.
		if !continueKeys(model.Map().EventManager(), prev.key) {
			s.log.Warn("cannot continue the simulator's event keys; this run's first events reuse old keys", "last_event_key", prev.key)
		}
	}
	host := "127.0.0.1:0"
	if prev.port != "" {
		// Keep the address of the last run (the CloudEvent source of the
		// router format), unless the port is taken now.
		if l, err := net.Listen("tcp", "127.0.0.1:"+prev.port); err == nil {
			l.Close()
			host = "127.0.0.1:" + prev.port
		} else {
			s.log.Info("the last run's port is taken; the simulator listens on a new one", "port", prev.port)
		}
	}
	model.Service.TLS = new(tls.Config)
	model.Service.Listen = &url.URL{Host: host, User: url.UserPassword(Username, password)}
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
		Format:   s.cfg.Format,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("vcsim: %w", err)
	}
	return inner, nil
}

// previousRun is what the last run of this simulator left behind: its
// instance uuid, the key of its last event and its port, read from the
// source's checkpoint (`vcenter.<name>`) and its last event in the stream.
// All zero on a first run, without a checkpointer, or when neither says
// more.
type previousRun struct {
	instance string
	key      int32
	port     string
}

func (s *Source) previous(ctx context.Context) previousRun {
	var p previousRun
	if s.cp != nil {
		if b, err := s.cp.Load(ctx, vcenter.Provider+"."+s.name); err == nil {
			var cp struct {
				VCenter      string `json:"vCenter"`
				LastEventKey int32  `json:"lastEventKey"`
				InstanceUUID string `json:"instanceUuid"`
			}
			if json.Unmarshal(b, &cp) == nil && cp.InstanceUUID != "" {
				p.instance, p.key = cp.InstanceUUID, cp.LastEventKey
				if u, err := url.Parse(cp.VCenter); err == nil && u.Hostname() == "127.0.0.1" {
					p.port = u.Port()
				}
			}
		}
	}
	if s.last != nil {
		// The stream is ahead of the checkpoint after a crash.
		if st, err := s.last.Last(ctx); err == nil {
			id, k, ok := strings.Cut(st.MsgID, ":")
			key, err := strconv.ParseInt(k, 10, 32)
			if ok && err == nil && (p.instance == "" || p.instance == id) {
				p.instance = id
				p.key = max(p.key, int32(key))
			}
		}
	}
	return p
}

// continueKeys makes the simulator's event keys follow last: the events
// the new model already posted (creating its inventory) and every later
// one get keys after last, in their order. govmomi keeps the counter
// (EventManager.key) and the event history unexported and starts both
// afresh with every model, so this reaches them by reflection, once,
// before the simulator serves. It reports false, changing nothing, when
// govmomi no longer has these fields.
func continueKeys(m *simulator.EventManager, last int32) bool {
	if m == nil {
		return false
	}
	v := reflect.ValueOf(m).Elem()
	key := v.FieldByName("key")
	hist := v.FieldByName("history")
	if !key.IsValid() || key.Kind() != reflect.Int32 || !hist.IsValid() || hist.Kind() != reflect.Pointer || hist.IsNil() {
		return false
	}
	page := hist.Elem().FieldByName("page")
	if !page.IsValid() || page.Type() != reflect.TypeFor[*list.List]() {
		return false
	}
	key = reflect.NewAt(key.Type(), unsafe.Pointer(key.UnsafeAddr())).Elem()
	l := reflect.NewAt(page.Type(), unsafe.Pointer(page.UnsafeAddr())).Elem().Interface().(*list.List)
	for e := l.Front(); e != nil; e = e.Next() {
		if be, ok := e.Value.(types.BaseEvent); ok && be.GetEvent() != nil {
			ev := be.GetEvent()
			ev.Key += last
			ev.ChainId = ev.Key
		}
	}
	key.SetInt(key.Int() + int64(last))
	return true
}
