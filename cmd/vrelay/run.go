package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/auth"
	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/internal/netaddr"
	"github.com/vrelay/vrelay/internal/ui"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

const (
	roleAll       = "all"
	roleProducers = "producers"
	roleConsumers = "consumers"
)

// runVrelay runs until ctx is done or a component fails for good. The
// order of start-up is: NATS, topology, routes, then sources, so that no
// route misses the first events; shutdown runs in reverse.
func runVrelay(ctx context.Context, path, role string, log *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	log.Info("starting vrelay", "version", versionString(), "config", path, "role", role,
		"sources", len(cfg.Sources), "routes", len(cfg.Routes))

	nc, storage, shutdownNATS, err := connectNATS(cfg, log)
	if err != nil {
		return err
	}
	defer shutdownNATS()

	// An ack that does not come is given up after this and the event sent
	// again with its Nats-Msg-Id. On a cluster, a publish sent to a stream
	// leader that just went away is never answered, while the election
	// takes about a second: wait less there, so that a rolling restart of
	// NATS stalls the sources for seconds, not tens of seconds. A retry of
	// an event that was stored after all is dropped as a duplicate.
	ackTimeout := 10 * time.Second
	if cfg.NATS.External != nil {
		ackTimeout = 3 * time.Second
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(ackTimeout),
		jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := ensureTopology(ctx, js, cfg.Streams, log); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	storage.register(reg)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { storage.run(gctx, js, log); return nil })
	ready := &readiness{nc: nc, js: js, storage: storage.health, started: make(chan struct{})}
	if cfg.HTTP.Listen != netaddr.Off {
		var viewer *ui.Viewer
		if cfg.HTTP.UI {
			viewer = newViewer(cfg, js, reg, log)
			g.Go(func() error { _ = viewer.Run(gctx); return nil })
		}
		srv, ln, err := opsServer(cfg.HTTP, reg, ready, viewer, defaultOpsTimeouts)
		if err != nil {
			return err
		}
		log.Info("operations endpoint listening", "addr", ln.Addr().String())
		g.Go(func() error { return serveUntil(gctx, srv, ln, cfg.ShutdownTimeout*3/5) })
	}

	if role != roleProducers {
		metrics := consumers.NewMetrics(reg)
		for i, r := range cfg.Routes {
			sink, err := r.Sink.New(config.SinkDeps{Log: log.With("route", r.Name), NATS: nc,
				SubjectRoot: cfg.Streams.SubjectRoot})
			if err != nil {
				return &config.FileError{File: path, Err: cfgerr.Prefix(fmt.Sprintf("routes[%d].sink.%s", i, r.Sink.Type), err)}
			}
			// A sink with a connection of its own (nats with a url) closes
			// it when vrelay stops.
			if c, ok := sink.(io.Closer); ok {
				defer c.Close()
			}
			filter, err := r.CompileFilter()
			if err != nil {
				return err
			}
			transform, err := r.CompileTransform()
			if err != nil {
				return err
			}
			d, err := consumers.NewDispatcher(js, consumers.Route{
				Name:      r.Name,
				Subjects:  r.Subjects,
				Filter:    filter,
				Transform: transform,
				Delivery:  r.Delivery,
			}, sink, consumers.WithLogger(log), consumers.WithMetrics(metrics),
				consumers.WithSubjectRoot(cfg.Streams.SubjectRoot),
				// Leave part of the budget for draining NATS and stopping the server.
				consumers.WithShutdownTimeout(cfg.ShutdownTimeout*3/5),
				// Only on an external NATS can replicas share a route: an
				// ordered route on the embedded server needs no pinned
				// replica, and a restart need not wait out its predecessor's pin.
				consumers.WithPinning(cfg.NATS.External != nil))
			if err != nil {
				return err
			}
			// Create the consumer before any source starts, so a new route
			// with startAt "new" sees the first events.
			if _, err := d.Ensure(ctx); err != nil {
				return err
			}
			g.Go(func() error { return d.Run(gctx) })
		}
	}

	if role != roleConsumers {
		metrics := producers.NewMetrics(reg)
		cp, err := producers.NewCheckpointer(ctx, js)
		if err != nil {
			return err
		}
		// The runner restarts a source that fails (a corrupt checkpoint, a
		// port taken) while the other sources and the routes go on.
		ropts := []producers.Option{producers.WithLogger(log), producers.WithMetrics(metrics)}
		if cfg.NATS.External != nil {
			// Several replicas may share an external NATS: of them, only
			// the holder of a polling source's lease runs it. The embedded
			// server has one replica, which needs no lease (and a
			// restarted process need not wait out its predecessor's).
			leases, err := producers.NewLeases(ctx, js, producers.Identity())
			if err != nil {
				return err
			}
			log.Info("polling sources run under leases", "holder", leases.Holder(), "ttl", leases.TTL())
			ropts = append(ropts, producers.WithLeases(leases))
		}
		runner := producers.NewRunner(ropts...)
		for i, s := range cfg.Sources {
			scope := producers.Scope{Root: cfg.Streams.SubjectRoot, Provider: s.Provider(), Source: s.Name}
			pub := producers.NewPublisher(js, scope, producers.WithLogger(log), producers.WithMetrics(metrics),
				producers.WithStorageHealth(storage.health))
			src, err := s.New(config.SourceDeps{Log: log, Registerer: reg, Checkpoints: cp, LastStored: pub, Health: js})
			if err != nil {
				return &config.FileError{File: path, Err: cfgerr.Prefix(fmt.Sprintf("sources[%d].%s", i, s.Type), err)}
			}
			add := runner.Add
			if s.Polling() {
				add = runner.AddPolling
			}
			if err := add(scope.Provider, scope.Source, src, pub); err != nil {
				return err
			}
		}
		ready.sources = runner
		g.Go(func() error { return runner.Run(gctx) })
	}
	ready.set()
	log.Info("vrelay running")

	err = g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		log.Info("vrelay stopped")
		return ctx.Err()
	}
	return err
}

// connectNATS starts the embedded server or dials the external one, and
// returns what watches its storage. The returned function closes the
// connection and stops the embedded server.
func connectNATS(cfg *config.Config, log *slog.Logger) (*nats.Conn, *storageWatch, func(), error) {
	if ext := cfg.NATS.External; ext != nil {
		nc, err := ext.Connect(log.With("component", "nats"), "vrelay")
		if err != nil {
			return nil, nil, nil, err
		}
		return nc, newStorageWatch(nil), func() { drain(nc, cfg.ShutdownTimeout*2/5, log) }, nil
	}
	srv, err := streams.StartEmbedded(*cfg.NATS.Embedded, log)
	if err != nil {
		return nil, nil, nil, err
	}
	nc, err := srv.Connect(streams.ConnOptions(log.With("component", "nats"), "vrelay")...)
	if err != nil {
		srv.Shutdown()
		return nil, nil, nil, err
	}
	return nc, newStorageWatch(srv), func() {
		drain(nc, cfg.ShutdownTimeout*2/5, log)
		srv.Shutdown()
		log.Info("embedded nats-server stopped")
	}, nil
}

// drain flushes what the connection still has to send (acks, naks) and
// closes it.
func drain(nc *nats.Conn, timeout time.Duration, log *slog.Logger) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		log.Warn("nats drain timed out")
		nc.Close()
	}
}

// ensureTopology creates the streams and buckets, retrying while NATS is
// still coming up (a clustered NATS may start after vrelay).
func ensureTopology(ctx context.Context, js jetstream.JetStream, cfg streams.Config, log *slog.Logger) error {
	wait := backoff.Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second}
	for attempt := 1; ; attempt++ {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := streams.Ensure(ectx, js, cfg, log)
		cancel()
		if err == nil {
			return nil
		}
		if !retryableEnsure(err) || attempt >= 20 {
			return fmt.Errorf("set up jetstream: %w", err)
		}
		log.Warn("jetstream not ready, retrying", "err", err, "attempt", attempt)
		if !backoff.Sleep(ctx, wait.Delay(attempt)) {
			return ctx.Err()
		}
	}
}

func retryableEnsure(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrNoServers) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) {
		return true
	}
	// A cluster that is forming, or restarting a node, places no
	// replicated stream until every peer it needs is back ("no suitable
	// peers for placement, peer offline"), or answers that JetStream is
	// temporarily unavailable. Too few servers for the replicas asked
	// ("insufficient resources") is a configuration error: no retry.
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeClusterNoPeers:
			return strings.Contains(apiErr.Description, "offline")
		case errCodeClusterNotAvailable:
			return true
		}
	}
	return false
}

// JetStream API error codes that nats.go does not name (nats-server's
// JSClusterNoPeersErrF and JSClusterNotAvailErr).
const (
	errCodeClusterNoPeers      jetstream.ErrorCode = 10005
	errCodeClusterNotAvailable jetstream.ErrorCode = 10008
)

// readiness answers /readyz: started, connected, JetStream answering, and
// its storage taking writes.
type readiness struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	storage *streams.StorageHealth
	started chan struct{}
	// sources is set before started is closed; nil without sources
	// (-role consumers).
	sources interface {
		Status() []producers.SourceStatus
	}
}

func (r *readiness) set() { close(r.started) }

func (r *readiness) check(ctx context.Context) error {
	select {
	case <-r.started:
	default:
		return errors.New("starting")
	}
	if err := r.storage.Err(); err != nil {
		return err
	}
	if !r.nc.IsConnected() {
		return fmt.Errorf("nats %s", r.nc.Status())
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := r.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// sourceLines describes each source on a line of its own:
//
//	source webhook/hooks: running
//	source vcenter/vc02: standby (lease held by vrelay-1-5f3a9c01)
//	source vcenter/vc01: failed (restarts: 3): vcenter: checkpoint vcenter.vc01: corrupt checkpoint: ...
//	source vcenter/vc03: running, vcenter unreachable since 02:31:05: ... (failed attempts: 12)
//
// A failed source does not make vrelay unready: the others, and the
// routes, still work, and a Kubernetes Service must keep sending to the
// webhook. The errors come from our code, which never puts a secret in
// one (a vCenter URL is kept without its credentials).
func (r *readiness) sourceLines() string {
	select {
	case <-r.started:
	default:
		return ""
	}
	if r.sources == nil {
		return ""
	}
	var b strings.Builder
	for _, st := range r.sources.Status() {
		fmt.Fprintf(&b, "source %s/%s: %s", st.Provider, st.Name, st.State)
		if st.State == producers.StateStandby {
			fmt.Fprintf(&b, " (lease held by %s)", strings.Join(strings.Fields(st.Holder), " "))
		}
		if st.Restarts > 0 {
			fmt.Fprintf(&b, " (restarts: %d)", st.Restarts)
		}
		if st.Detail != "" {
			fmt.Fprintf(&b, ", %s", strings.Join(strings.Fields(st.Detail), " "))
		}
		if st.State == producers.StateFailed && st.LastError != nil {
			// One line per source, whatever the error holds.
			fmt.Fprintf(&b, ": %s", strings.Join(strings.Fields(st.LastError.Error()), " "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// opsTimeouts bound each connection to the operations endpoint, so that
// idle or slow clients do not hold connections open for ever.
type opsTimeouts struct {
	readHeader, read, write, idle time.Duration
}

// defaultOpsTimeouts leave room for a large scrape and for /readyz, which
// waits up to 2 s for JetStream.
var defaultOpsTimeouts = opsTimeouts{readHeader: 5 * time.Second, read: 10 * time.Second, write: 30 * time.Second, idle: 2 * time.Minute}

// opsServer serves /healthz and /readyz to anyone (the kubelet's probes
// carry no credentials), and /metrics and the viewer's /ui (when viewer is
// not nil) to whoever has cfg.Auth, when set. / lists them.
func opsServer(cfg config.HTTP, reg *prometheus.Registry, ready *readiness, viewer *ui.Viewer, to opsTimeouts) (*http.Server, net.Listener, error) {
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	var creds *auth.Credentials
	if cfg.Auth != nil {
		var err error
		if creds, err = cfg.Auth.Resolve(); err != nil {
			return nil, nil, fmt.Errorf("http.auth.%w", err)
		}
		metrics = creds.Require(metrics)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /{$}", opsIndex(viewer != nil))
	if viewer != nil {
		h := viewer.Handler(creds)
		mux.Handle("/ui", h)
		mux.Handle("/ui/", h)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err := ready.check(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n%s", err, ready.sourceLines())
			return
		}
		fmt.Fprintf(w, "ok\n%s", ready.sourceLines())
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("http.listen: %w", err)
	}
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.write,
		IdleTimeout:       to.idle,
		MaxHeaderBytes:    64 << 10,
	}, ln, nil
}

// serveUntil serves until ctx is done, then shuts the server down.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("operations endpoint: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return ctx.Err()
}
