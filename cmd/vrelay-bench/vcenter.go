package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/vcenter"
)

const simUser = "vrelay"

// sim is govmomi's simulator (the VPX model) served over HTTPS on
// 127.0.0.1, with an admin session that posts events through its
// EventManager, as vCenter extensions do.
type sim struct {
	model    *simulator.Model
	srv      *simulator.Server
	url      string // SDK URL without credentials
	caFile   string
	password string
	admin    *vim25.Client
	// handshakes counts TLS handshakes: connections the clients opened.
	handshakes atomic.Int64
	// calls counts the SOAP calls of a reader, by method (see countCalls).
	calls map[string]*atomic.Int64
}

// readerMethods are the SOAP methods of the vCenter source's read loop
// that the split run counts per event; the posters call none of them.
var readerMethods = []string{"ReadNextEvents", "WaitForUpdatesEx", "RetrievePropertiesEx", "QueryEvents", "CreateCollectorForEvents"}

// countCalls counts the calls of methods in s.calls. The simulator has no
// method hook; a fault rule's inclusion filter is asked about every call
// of its method and, answering false, injects nothing.
func (s *sim) countCalls(methods ...string) {
	s.calls = map[string]*atomic.Int64{}
	for _, m := range methods {
		n := new(atomic.Int64)
		s.calls[m] = n
		s.model.Service.AddFaultRule(&simulator.FaultInjectionRule{
			MethodName: m, ObjectType: "*", ObjectName: "*", Enabled: true, Probability: 1,
			InclusionPropertyFilter: func(mo.Reference) bool { n.Add(1); return false },
		})
	}
}

// callCounts returns the counts of countCalls.
func (s *sim) callCounts() map[string]int64 {
	out := make(map[string]int64, len(s.calls))
	for m, n := range s.calls {
		out[m] = n.Load()
	}
	return out
}

func startSim(ctx context.Context) (*sim, error) {
	m := simulator.VPX()
	m.ServiceContent.About.InstanceUuid = uuid.NewString()
	if err := m.Create(); err != nil {
		return nil, fmt.Errorf("create simulator model: %w", err)
	}
	s := &sim{model: m, password: "bench-" + uuid.NewString()}
	m.Service.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		s.handshakes.Add(1)
		return nil, nil
	}}
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(simUser, s.password)}
	s.srv = m.Service.NewServer()
	u := *s.srv.URL
	u.User = nil
	s.url = u.String()
	var err error
	if s.caFile, err = s.srv.CertificateFile(); err != nil {
		s.close()
		return nil, err
	}
	sc := soap.NewClient(&u, false)
	// Keep a connection per poster: with Go's default of 2 idle connections
	// the posters would redo TLS handshakes all the time.
	sc.DefaultTransport().MaxIdleConnsPerHost = 64
	if err := sc.SetRootCAs(s.caFile); err != nil {
		s.close()
		return nil, err
	}
	if s.admin, err = vim25.NewClient(ctx, sc); err != nil {
		s.close()
		return nil, err
	}
	if err := session.NewManager(s.admin).Login(ctx, url.UserPassword(simUser, s.password)); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *sim) close() {
	if s.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = session.NewManager(s.admin).Logout(ctx)
		cancel()
		s.admin.CloseIdleConnections()
	}
	s.srv.Close()
	s.model.Remove()
}

// post posts the HA EventEx whose Message is nonce.
func (s *sim) post(ctx context.Context, nonce string) error {
	root := s.admin.ServiceContent.RootFolder
	_, err := methods.PostEvent(ctx, s.admin, &types.PostEvent{
		This: *s.admin.ServiceContent.EventManager,
		EventToPost: &types.EventEx{
			EventTypeId: "com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent",
			Severity:    "warning",
			Message:     nonce,
			Arguments: []types.KeyAnyValue{
				{Key: "computeResource.name", Value: "cluster-prod-01"},
				{Key: "datacenter.name", Value: "dc-frankfurt-01"},
				{Key: "reason", Value: "host failure detected by the master agent after the heartbeat timeout"},
			},
			ObjectType: root.Type,
			ObjectId:   root.Value,
		},
	})
	return err
}

// postAll posts events [from, to) with workers concurrent posters,
// stamping each in at just before its post.
func (s *sim) postAll(ctx context.Context, from, to, workers int, at []atomic.Int64) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to || ctx.Err() != nil {
					return
				}
				if at != nil {
					at[i].Store(time.Now().UnixNano())
				}
				if err := s.post(ctx, "vc-"+strconv.Itoa(i)); err != nil {
					errs[w] = fmt.Errorf("post event %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// vcKey finds the event's index in its Message, "vc-<i>", and its post time.
func vcKey(at []atomic.Int64) keyFunc {
	return func(_ http.Header, body []byte) (int, int64, bool) {
		v, ok := jsonString(body, `"Message":"vc-`)
		if !ok {
			return 0, 0, false
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 || i >= len(at) {
			return 0, 0, false
		}
		return i, at[i].Load(), true
	}
}

// logWatch counts the vCenter source's log lines that the scenario needs.
type logWatch struct {
	reading atomic.Int64 // "reading vcenter events": a session started
	lost    atomic.Int64 // the collector lost its place: events lost in the simulator
	warns   atomic.Int64
}

func (l *logWatch) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelInfo }
func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	switch {
	case strings.Contains(r.Message, "reading vcenter events"):
		l.reading.Add(1)
	case strings.Contains(r.Message, "lost its place"):
		l.lost.Add(1)
	}
	if r.Level >= slog.LevelWarn {
		l.warns.Add(1)
	}
	return nil
}
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logWatch) WithGroup(string) slog.Handler      { return l }

// runVCenter measures the vCenter path. First the generation ceiling: the
// simulator alone, posting as fast as the workers can. Then a fresh
// simulator read by the real vcenter.Source over SOAP, published to the
// stream and delivered by a route to the receiver, while the same workers
// post as fast as they can: the end-to-end rate, and the loss (events
// posted but never stored, which happens when the reader falls more than
// the simulator's 1000-event history behind). Last, single events posted
// one at a time to the idle source: the post→receiver latency.
func (b *bench) runVCenter(ctx context.Context) error {
	if b.opt.vcSplitOnly {
		return b.runVCenterSplitOnly(ctx)
	}
	n, workers := b.opt.vcEvents, b.opt.vcWorkers

	ceil, err := startSim(ctx)
	if err != nil {
		return err
	}
	b.logf("vcenter ceiling: %d events, %d posters, nothing reading", n, workers)
	start := time.Now()
	err = ceil.postAll(ctx, 0, n, workers, nil)
	ceiling := float64(n) / time.Since(start).Seconds()
	ceilHandshakes := ceil.handshakes.Load()
	ceil.close()
	if err != nil {
		return err
	}

	e := b.env
	if err := e.purge(ctx); err != nil {
		return err
	}
	s, err := startSim(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	dir, err := os.MkdirTemp("", "vrelay-bench-vc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(s.password), 0o600); err != nil {
		return err
	}
	cp, err := producers.NewCheckpointer(ctx, e.js)
	if err != nil {
		return err
	}
	watch := &logWatch{}
	src, err := vcenter.New(vcenter.Config{
		Address:  s.url,
		Username: simUser,
		Password: secret.Ref{FromFile: pw},
		CAFile:   s.caFile,
	}, vcenter.WithName("benchvc"), vcenter.WithLogger(slog.New(watch)),
		vcenter.WithCheckpointer(cp), vcenter.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		return err
	}
	f, err := filters.Compile(typicalFilter)
	if err != nil {
		return err
	}
	sink, err := httpsink.New(httpsink.Config{URL: b.recv.url})
	if err != nil {
		return err
	}
	d := &delivery{e: e, recv: b.recv, filter: f, metrics: b.consumerMetrics, sink: sink}
	total := n + b.opt.vcIdle
	at := make([]atomic.Int64, total)
	t := b.recv.start(total, vcKey(at))
	stopRoute, err := d.startRoute(ctx, "bench-vcenter", b.opt.inFlight)
	if err != nil {
		return err
	}
	defer func() { _ = stopRoute() }()
	sctx, cancel := context.WithCancel(ctx)
	srcDone := make(chan error, 1)
	go func() {
		srcDone <- src.Run(sctx, producers.NewPublisher(e.js, src.Scope(), producers.WithMetrics(b.producerMetrics)))
	}()
	defer func() {
		cancel()
		<-srcDone
	}()
	if err := waitUntil(ctx, 30*time.Second, func() bool { return watch.reading.Load() > 0 }, watch.warns.Load); err != nil {
		return fmt.Errorf("vcenter source did not start reading: %w", err)
	}

	b.logf("vcenter end to end: %d events, %d posters", n, workers)
	start = time.Now()
	if err := s.postAll(ctx, 0, n, workers, at); err != nil {
		return err
	}
	posting := float64(n) / time.Since(start).Seconds()
	// Lost events never come: stop waiting when nothing moved for a while.
	_ = waitUntil(ctx, 15*time.Second, func() bool { return t.count() >= int64(n) }, t.count)
	delivered := t.count()
	rate := float64(delivered) / t.lastAt().Sub(start).Seconds()
	stored, err := e.storedCount(ctx, "vmware.vcenter.benchvc.>")
	if err != nil {
		return err
	}
	lost := int64(n) - int64(stored)
	b.rep.add("vcenter_ceiling_events_per_s", ceiling, "ev/s")
	b.rep.add("vcenter_events_per_s", rate, "ev/s")
	// The simulator shares this process and both cores with vrelay here:
	// vcenter_vs_ceiling comes from the split run below.
	b.rep.add("vcenter_shared_vs_ceiling", rate/ceiling, "ratio")
	// What the reader kept up with: the rate the simulator generated while
	// it was read, on the same two cores.
	b.rep.addTarget("vcenter_vs_posted", rate/posting, "ratio", "≥ 0.95", atLeast(0.95))
	b.rep.addTarget("vcenter_lost", float64(lost), "events", "0", func(v float64) bool { return v == 0 })
	b.rep.detail("vcenter", map[string]any{
		"posted": n, "stored": stored, "delivered": delivered, "posting_rate_while_read": posting,
		"collector_lost_its_place": watch.lost.Load(), "warnings": watch.warns.Load(),
		"tls_handshakes": s.handshakes.Load(), "ceiling_tls_handshakes": ceilHandshakes,
	})
	if delivered < int64(stored) {
		b.rep.note("vcenter: %d events stored but only %d delivered", stored, delivered)
	}

	// Idle latency: one event at a time, the source waiting on vCenter.
	b.logf("vcenter idle latency: %d single events", b.opt.vcIdle)
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	var lat []time.Duration
	for i := n; i < total; i++ {
		if err := s.postAll(ctx, i, i+1, 1, at); err != nil {
			return err
		}
		if err := waitUntil(ctx, 10*time.Second, func() bool { return t.lat[i].Load() > 0 }, t.count); err != nil {
			return fmt.Errorf("idle event %d: %w", i-n, err)
		}
		lat = append(lat, time.Duration(t.lat[i].Load()))
		if err := sleep(ctx, 100*time.Millisecond+time.Duration(i%7)*10*time.Millisecond); err != nil {
			return err
		}
	}
	b.rep.addTarget("vcenter_idle_p50_ms", ms(percentile(lat, 50)), "ms", "≤ 100", atMost(100))
	b.rep.add("vcenter_idle_p99_ms", ms(percentile(lat, 99)), "ms")

	return b.runVCenterSplitOnly(ctx)
}

// runVCenterSplitOnly runs the split part: vrelay and the simulator, each
// in its own process on its own CPU.
func (b *bench) runVCenterSplitOnly(ctx context.Context) error {
	var (
		bin string
		err error
	)
	if b.opt.vcProfile != "" {
		dir, derr := os.MkdirTemp("", "vrelay-bench-prof-")
		if derr != nil {
			return derr
		}
		defer os.RemoveAll(dir)
		bin, err = b.vrelayProfiledBinary(ctx, dir)
	} else {
		bin, err = b.vrelayBinary(ctx)
	}
	if err != nil {
		return err
	}
	return b.runVCenterSplit(ctx, bin)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
