package knative

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/internal/cfgerr"
)

// DefaultResolveInterval is the least time between two resolutions of a
// ref after a failure, so that a failing destination does not turn every
// delivery attempt into a call to the API server.
const DefaultResolveInterval = time.Second

// inClusterNamespaceFile holds the pod's namespace in a cluster.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Option configures what code, not the operator, injects into a [Sink].
type Option func(*options)

type options struct {
	logger   *slog.Logger
	resolver Resolver
	rest     *rest.Config
	client   *http.Client
	interval time.Duration
}

// WithLogger sets the logger for start-up warnings and resolutions.
// Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithResolver resolves refs with r instead of the Kubernetes API. The
// ref's namespace must then be set, or it is "default".
func WithResolver(r Resolver) Option { return func(o *options) { o.resolver = r } }

// WithRESTConfig resolves refs through the API server c names, instead of
// Config.Kubeconfig or the in-cluster configuration.
func WithRESTConfig(c *rest.Config) Option { return func(o *options) { o.rest = c } }

// WithHTTPClient sends through c, as [httpsink.WithHTTPClient].
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// WithResolveInterval sets the least time between resolutions after a
// failure. Default [DefaultResolveInterval].
func WithResolveInterval(d time.Duration) Option { return func(o *options) { o.interval = d } }

// Sink delivers events to a Knative Destination through an
// [httpsink.Sink]. It is safe for concurrent use.
type Sink struct {
	http     *httpsink.Sink
	ref      *Ref     // nil: uri alone
	uri      *url.URL // absolute alone, relative with ref
	resolver Resolver
	timeout  time.Duration
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	// sem is a lock that a waiting send can give up on when its ctx ends.
	sem      chan struct{}
	addr     *url.URL // the resolved target, nil until resolved
	stale    bool     // resolve again at the next send
	resolved time.Time
	lastErr  error
}

// New checks cfg, reads the secrets and files it names and, for a ref,
// prepares the Kubernetes client; it makes no network call. The ref is
// resolved by the first send and cached, and resolved again after a
// delivery or resolution failure (at most once per resolve interval).
// Configuration problems come back at once as cfgerr field errors relative
// to the sink's configuration.
func New(cfg Config, opts ...Option) (*Sink, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{interval: DefaultResolveInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}

	s := &Sink{
		timeout:  cfg.Timeout,
		interval: o.interval,
		log:      o.logger,
		now:      time.Now,
		sem:      make(chan struct{}, 1),
	}
	target := placeholderURL
	if cfg.URI != "" {
		u, err := url.Parse(cfg.URI)
		if err != nil { // Validate parsed it already
			return nil, cfgerr.New("uri", "not a URI")
		}
		s.uri = u
		if cfg.Ref == nil {
			s.addr = u
			target = cfg.URI
		}
	}
	hopts := []httpsink.Option{
		httpsink.WithLogger(o.logger),
		httpsink.WithRetryableStatus(http.StatusNotFound, http.StatusConflict),
	}
	if o.client != nil {
		hopts = append(hopts, httpsink.WithHTTPClient(o.client))
	}
	h, err := httpsink.New(cfg.httpConfig(target), hopts...)
	if err != nil {
		return nil, err
	}
	s.http = h
	if cfg.Ref == nil {
		return s, nil
	}

	ref := *cfg.Ref
	s.ref = &ref
	s.resolver = o.resolver
	if s.resolver == nil {
		rc, ns, err := restConfig(cfg.Kubeconfig, o.rest)
		if err != nil {
			return nil, cfgerr.Newf("kubeconfig", "%v", err)
		}
		if s.ref.Namespace == "" {
			s.ref.Namespace = ns
		}
		kr, err := NewKubeResolver(rc)
		if err != nil {
			return nil, cfgerr.Newf("ref", "%v", err)
		}
		s.resolver = kr
	}
	if s.ref.Namespace == "" {
		s.ref.Namespace = "default"
	}
	return s, nil
}

// restConfig finds how to reach the API server and the default namespace:
// an injected config, the kubeconfig file at path, the in-cluster service
// account, then $KUBECONFIG or ~/.kube/config.
func restConfig(path string, injected *rest.Config) (*rest.Config, string, error) {
	if injected != nil {
		return injected, "default", nil
	}
	if path == "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			ns := "default"
			if b, err := os.ReadFile(inClusterNamespaceFile); err == nil && strings.TrimSpace(string(b)) != "" {
				ns = strings.TrimSpace(string(b))
			}
			return rc, ns, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		if path == "" {
			return nil, "", fmt.Errorf("not in a cluster and no usable kubeconfig ($KUBECONFIG or ~/.kube/config): %w", err)
		}
		return nil, "", fmt.Errorf("load %s: %w", path, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	return rc, ns, nil
}

// Ref returns the sink's ref with its namespace defaulted, or nil when the
// sink sends to an absolute uri.
func (s *Sink) Ref() *Ref {
	if s.ref == nil {
		return nil
	}
	r := *s.ref
	return &r
}

// Send makes one delivery attempt to the destination's address, resolving
// the ref first when it is not resolved yet or a failure made it stale. It
// classifies the outcome as Knative's delivery spec does: nil on 2xx; a
// retryable error on transport failures, 404, 408, 409, 429 and 5xx (with
// [consumers.RetryAfter] when the response says so); [consumers.Permanent]
// on any other status. A ref that does not resolve (its object is missing
// or has no address yet) is a retryable error that says why.
func (s *Sink) Send(ctx context.Context, ev event.Event) error {
	target, err := s.target(ctx)
	if err != nil {
		return err
	}
	err = s.http.SendTo(ctx, target, ev)
	if err != nil && s.ref != nil && !consumers.IsPermanent(err) && ctx.Err() == nil {
		s.markStale(target)
	}
	return err
}

// SendTimeout is the http sink's timeout; see [consumers.TimeoutSink].
func (s *Sink) SendTimeout() time.Duration { return s.http.SendTimeout() }

// SendsStoredBody reports whether the destination gets structured mode,
// which sends the stored body as it is; see [consumers.StoredBodySink].
func (s *Sink) SendsStoredBody() bool { return s.http.SendsStoredBody() }

// target returns the cached address or resolves it.
func (s *Sink) target(ctx context.Context) (*url.URL, error) {
	if s.ref == nil {
		return s.addr, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the address of %s: %w", s.ref, ctx.Err())
	}
	defer func() { <-s.sem }()

	if s.addr != nil && !s.stale {
		return s.addr, nil
	}
	if !s.resolved.IsZero() && s.now().Sub(s.resolved) < s.interval {
		// Resolved a moment ago: keep what that gave.
		if s.addr != nil {
			return s.addr, nil
		}
		return nil, s.lastErr
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	base, err := s.resolver.Resolve(rctx, *s.ref)
	s.resolved = s.now()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("resolve %s: %w", s.ref, ctx.Err())
		}
		// The object is gone or lost its address: stop sending to the old
		// one. Any other failure (the API server unreachable, forbidden)
		// says nothing about the object: keep sending to the last address
		// until the ref resolves again.
		s.lastErr = err
		if IsNotResolved(err) {
			s.addr = nil
		}
		if s.addr != nil {
			s.log.Warn("knative ref does not resolve; keeping its last address", "ref", s.ref.String(), "error", err)
			return s.addr, nil
		}
		return nil, err
	}
	u := base
	if s.uri != nil {
		u = base.ResolveReference(s.uri)
	}
	if s.addr == nil || s.addr.String() != u.String() {
		s.log.Info("knative ref resolved", "ref", s.ref.String(), "address", redact(u))
	}
	s.addr, s.stale, s.lastErr = u, false, nil
	return u, nil
}

// markStale makes the next send resolve the ref again, unless the address
// has changed since target was used.
func (s *Sink) markStale(target *url.URL) {
	s.sem <- struct{}{}
	if s.addr == target {
		s.stale = true
	}
	<-s.sem
}

// redact renders u without its query, which may carry a key.
func redact(u *url.URL) string {
	r := *u
	r.User = nil
	if r.RawQuery != "" {
		r.RawQuery = "redacted"
	}
	return r.String()
}

// IsNotResolved reports whether err is a failure to resolve a ref: its
// object is missing or has no address yet.
func IsNotResolved(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotReady)
}
