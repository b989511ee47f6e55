package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/producers"
)

// DefaultName is the source name used when [WithName] is not given.
const DefaultName = "webhook"

// Source is an HTTP listener that publishes the CloudEvents posted to it.
// Create it with [New]. Its methods are safe for concurrent use.
type Source struct {
	cfg      Config
	name     string
	log      *slog.Logger
	auth     *authenticator // nil when no credentials are configured
	cert     *tls.Certificate
	requests *prometheus.CounterVec // curried with source
	counters map[int]prometheus.Counter

	mu      sync.Mutex
	ln      net.Listener
	running bool
}

var _ producers.Source = (*Source)(nil)

// Option changes how [New] builds a [Source].
type Option func(*options)

type options struct {
	log  *slog.Logger
	reg  prometheus.Registerer
	name string
}

// WithLogger sets the logger. The default discards everything. Rejected
// requests are logged at debug level with their reason; bodies and
// credentials are never logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the counter vrelay_webhook_requests_total{source,code}
// with r. Several sources may share one Registerer; they share the counter
// and differ by the source label. Without this option nothing is registered.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithName sets the source name: the "source" label of the metrics and the
// "source" key of the logs. It is the name the configuration gives this
// listener (for example "hooks"), which is why it is an Option and not a
// Config field: the caller owns the naming. Default [DefaultName].
func WithName(name string) Option { return func(o *options) { o.name = name } }

// New validates cfg, resolves its secrets and loads its certificate. It does
// not listen yet: [Source.Listen] or [Source.Run] does.
func New(cfg Config, opts ...Option) (*Source, error) {
	o := options{name: DefaultName}
	for _, opt := range opts {
		opt(&o)
	}
	if o.name == "" {
		return nil, errors.New("webhook: empty source name")
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, name: o.name, log: o.log.With("source", o.name)}

	var err error
	if s.auth, err = newAuthenticator(cfg.Auth); err != nil {
		return nil, err
	}
	if cfg.TLS.enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, cfgerr.New("tls", err.Error())
		}
		s.cert = &cert
	}
	if err := s.initMetrics(o.reg); err != nil {
		return nil, err
	}
	if s.auth == nil && !isLoopback(cfg.Listen) {
		s.log.Warn("webhook accepts unauthenticated events from the network", "listen", cfg.Listen)
	}
	return s, nil
}

// codes are the statuses the handler answers with; their counters exist
// from the start so that a dashboard sees zeros rather than gaps.
var codes = []int{
	http.StatusOK, http.StatusNoContent, http.StatusBadRequest, http.StatusUnauthorized,
	http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
	http.StatusUnsupportedMediaType, http.StatusServiceUnavailable,
}

func (s *Source) initMetrics(reg prometheus.Registerer) error {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vrelay_webhook_requests_total",
		Help: "HTTP requests to a webhook source, by response status code.",
	}, []string{"source", "code"})
	if reg != nil {
		if err := reg.Register(vec); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("register webhook metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return fmt.Errorf("register webhook metrics: %w", err)
			}
			vec = existing
		}
	}
	curried, err := vec.CurryWith(prometheus.Labels{"source": s.name})
	if err != nil {
		return fmt.Errorf("register webhook metrics: %w", err)
	}
	s.requests = curried
	s.counters = make(map[int]prometheus.Counter, len(codes))
	for _, c := range codes {
		s.counters[c] = curried.WithLabelValues(strconv.Itoa(c))
	}
	return nil
}

func (s *Source) count(code int) {
	if c, ok := s.counters[code]; ok {
		c.Inc()
		return
	}
	s.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Listen binds the configured address, so that [Source.Addr] knows the real
// port before [Source.Run] serves; Run calls it when nobody did. Calling it
// again while bound does nothing.
func (s *Source) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("webhook: listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil when the source is not listening:
// before [Source.Listen] and after [Source.Run] returned.
func (s *Source) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Run listens (unless [Source.Listen] already did) and serves [Source.Handler]
// until ctx is done. Then it stops accepting connections, lets in-flight
// requests finish for up to Config.ShutdownTimeout, closes whatever is
// left, waits until no Publish call is running, and returns ctx.Err().
// A request still running at the deadline has its context cancelled, so its
// Publish fails and the sender, if still connected, gets 503 and retries.
//
// Run returns another error only when it cannot listen or serve. A Source
// runs once at a time; it may run again after Run returned.
func (s *Source) Run(ctx context.Context, pub producers.Publisher) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("webhook: source is already running")
	}
	s.running = true
	ln := s.ln
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.ln, s.running = nil, false
		s.mu.Unlock()
	}()

	var track inflight
	srv := &http.Server{
		Handler:           track.wrap(s.Handler(pub)),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures and the like, mostly from scanners.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if s.cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*s.cert}, MinVersion: tls.VersionTLS12}
	}

	s.log.Info("webhook listening", "addr", ln.Addr().String(), "path", s.cfg.Path, "tls", s.cert != nil)
	served := make(chan error, 1)
	go func() {
		if s.cert != nil {
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()

	select {
	case err := <-served:
		// Serve stopped by itself: the listener failed.
		_ = srv.Close()
		track.closeAndWait()
		return fmt.Errorf("webhook: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("webhook shutdown timed out, closing open connections",
			"timeout", s.cfg.ShutdownTimeout.String(), "error", err)
		_ = srv.Close()
	}
	<-served // http.ErrServerClosed
	track.closeAndWait()
	return ctx.Err()
}

// inflight counts running handlers so that Run returns only when none is
// left, even after a forced Close, which does not wait for handlers.
type inflight struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // closed once closed is set and n is zero
}

func (f *inflight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.enter() {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "shutting down, retry later"})
			return
		}
		defer f.leave()
		h.ServeHTTP(w, r)
	})
}

func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.closed && f.n == 0 {
		close(f.idle)
	}
}

func (f *inflight) closeAndWait() {
	f.mu.Lock()
	f.closed = true
	f.idle = make(chan struct{})
	if f.n == 0 {
		close(f.idle)
	}
	idle := f.idle
	f.mu.Unlock()
	<-idle
}

// authenticator holds SHA-256 digests of the expected credentials, never the
// credentials themselves. Comparing fixed-size digests in constant time
// reveals neither the content nor the length of a secret.
type authenticator struct {
	basic          bool
	user, password [sha256.Size]byte
	bearer         bool
	token          [sha256.Size]byte
}

func newAuthenticator(cfg AuthConfig) (*authenticator, error) {
	if !cfg.Basic.enabled() && !cfg.Bearer.enabled() {
		return nil, nil
	}
	var a authenticator
	var errs []error
	if cfg.Basic.enabled() {
		pw, err := cfg.Basic.Password.Resolve()
		if err != nil {
			errs = append(errs, cfgerr.New("auth.basic.password", err.Error()))
		}
		a.basic = true
		a.user = sha256.Sum256([]byte(cfg.Basic.Username))
		a.password = sha256.Sum256([]byte(pw))
	}
	if cfg.Bearer.enabled() {
		tok, err := cfg.Bearer.Token.Resolve()
		if err != nil {
			errs = append(errs, cfgerr.New("auth.bearer.token", err.Error()))
		}
		a.bearer = true
		a.token = sha256.Sum256([]byte(tok))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &a, nil
}
