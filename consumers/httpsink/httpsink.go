package httpsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	cetypes "github.com/cloudevents/sdk-go/v2/types"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/internal/tlsfiles"
	"github.com/vrelay/vrelay/streams"
)

const (
	// maxIdleConnsPerHost keeps a warm connection for every concurrent send
	// of a busy route. Go's default of 2 would make all but two of 16-256
	// concurrent sends dial afresh (and leave TIME_WAIT sockets behind).
	maxIdleConnsPerHost = 256
	// maxSnippet bounds the part of an error response body quoted in errors.
	maxSnippet = 200
	// maxDrain bounds how much of a response body is read so the connection
	// can be reused; a receiver that answers with more loses the connection.
	maxDrain = 4 << 10
)

// Option configures what code, not the operator, injects into a [Sink].
type Option func(*options)

type options struct {
	client *http.Client
	logger *slog.Logger
	retry  []int
}

// WithRetryableStatus makes the given 4xx status codes retryable, on top of
// 408 and 429. The Knative sink passes 404 and 409, as Knative's delivery
// spec retries them (a revision or a broker may not be ready yet).
func WithRetryableStatus(codes ...int) Option {
	return func(o *options) { o.retry = append(o.retry, codes...) }
}

// WithHTTPClient makes the sink send through c, for instance to add
// instrumentation. The sink uses a copy of c that never follows redirects.
// Config.TLS then cannot be set: configure TLS on c's transport instead.
// c's Timeout, if any, applies on top of Config.Timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.client = c }
}

// WithLogger sets the logger for start-up warnings. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Sink POSTs each event to one URL as a CloudEvent. It is safe for
// concurrent use.
type Sink struct {
	url        *url.URL
	structured bool
	retry      []int // extra retryable statuses
	header     http.Header
	authz      secret.Value
	scrub      []secret.Value // removed from quoted response bodies
	timeout    time.Duration
	client     *http.Client
}

// New checks cfg, reads the secrets and CA file it names, and returns a sink.
// Every problem found comes back at once as cfgerr field errors relative to
// the sink's configuration, for the caller to [cfgerr.Prefix].
func New(cfg Config, opts ...Option) (*Sink, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}

	u, err := url.Parse(cfg.URL)
	if err != nil { // Validate has parsed it already
		return nil, cfgerr.New("url", "not a URL")
	}
	s := &Sink{
		url:        u,
		structured: cfg.Mode == ModeStructured,
		retry:      o.retry,
		header:     make(http.Header, len(cfg.Headers)),
		timeout:    cfg.Timeout,
	}
	for k, v := range cfg.Headers {
		s.header.Set(k, v)
	}

	var errs []error
	authz, scrub, err := resolveAuth(cfg.Auth)
	errs = append(errs, err)
	s.authz, s.scrub = authz, scrub

	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if o.client != nil {
		if cfg.TLS != (TLS{}) {
			errs = append(errs, cfgerr.New("tls", "cannot be combined with an injected HTTP client; configure TLS on that client"))
		}
		c := *o.client
		c.CheckRedirect = noRedirect
		s.client = &c
	} else {
		tlsCfg, err := loadTLS(cfg.TLS)
		errs = append(errs, err)
		s.client = &http.Client{Transport: newTransport(tlsCfg), CheckRedirect: noRedirect}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.TLS.SkipTLSVerify {
		o.logger.Warn("http sink does not verify the server certificate", "url", redactURL(s.url))
	}
	return s, nil
}

// Send POSTs ev once and classifies the outcome per the [consumers.Sink]
// contract: nil on 2xx; a retryable error on transport failures, timeouts,
// 408, 429, 5xx and the statuses of [WithRetryableStatus], wrapped with [consumers.RetryAfter] when the response
// has a valid Retry-After; [consumers.Permanent] on any other status,
// redirects included. Status failures wrap a [*StatusError]. The attempt is
// bounded by ctx and by Config.Timeout, whichever ends first. Errors never
// hold credentials or the URL's query.
func (s *Sink) Send(ctx context.Context, ev event.Event) error {
	return s.SendTo(ctx, s.url, ev)
}

// SendTo is [Sink.Send] to target instead of Config.URL, with every other
// setting of the sink: for a sink whose address is found at run time (the
// Knative sink resolves it through the Kubernetes API). target must be an
// absolute http or https URL; the caller must not modify it afterwards.
func (s *Sink) SendTo(ctx context.Context, target *url.URL, ev event.Event) error {
	sendCtx, limit := ctx, s.timeout
	// The dispatcher's deadline comes no later than ours (see
	// [Sink.SendTimeout]): then a timer of our own would never fire, and
	// ctx's deadline is the attempt's.
	own := true
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left <= s.timeout {
			own, limit = false, left
		}
	}
	if own {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}

	if target == nil || !target.IsAbs() || target.Host == "" || (target.Scheme != "http" && target.Scheme != "https") {
		return consumers.Permanent(errors.New("target is not an absolute http or https URL"))
	}
	req, err := http.NewRequestWithContext(sendCtx, http.MethodPost, "", nil)
	if err != nil {
		return consumers.Permanent(fmt.Errorf("build request for %s: %w", redactURL(target), err))
	}
	req.URL = target
	if s.structured {
		err = writeStructured(sendCtx, req, &ev)
	} else {
		err = writeBinary(sendCtx, req, &ev)
	}
	if err != nil {
		return consumers.Permanent(fmt.Errorf("encode event %s: %w", ev.ID(), err))
	}
	for k, v := range s.header {
		req.Header[k] = v // nothing appends to these keys, so the slices can be shared
	}
	if s.authz != "" {
		req.Header.Set("Authorization", s.authz.Reveal())
	}

	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(target)
		}
		if errors.Is(err, context.DeadlineExceeded) && (ctx.Err() == nil || !own && errors.Is(ctx.Err(), context.DeadlineExceeded)) {
			return fmt.Errorf("no response within %s: %w", limit.Round(time.Millisecond), err)
		}
		return err
	}
	defer func() {
		if resp.ContentLength != 0 { // an empty answer, the usual one, has nothing to drain
			_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		}
		_ = resp.Body.Close()
	}()

	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	serr := &StatusError{StatusCode: code}
	if code >= 300 && code < 400 {
		serr.Location = redactLocation(resp.Header.Get("Location"))
		return consumers.Permanent(serr)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 2*maxSnippet)) // a short read still makes a snippet
	serr.Body = snippet(b, s.scrub)

	if code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 || slices.Contains(s.retry, code) {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return consumers.RetryAfter(serr, d)
		}
		return serr
	}
	return consumers.Permanent(serr)
}

// SendTimeout is Config.Timeout: the dispatcher ends each send by then, so
// that the sink needs no timer of its own; see [consumers.TimeoutSink].
func (s *Sink) SendTimeout() time.Duration { return s.timeout }

// SendsStoredBody reports whether the sink sends structured mode, in which
// it sends the stored body as it is and reads of the event no more than
// its id (for errors); see [consumers.StoredBodySink].
func (s *Sink) SendsStoredBody() bool { return s.structured }

// writeStructured fills req in the CloudEvents HTTP structured mode: the
// JSON of [streams.MarshalEvent], so the data goes out as vrelay stores it
// (JSON verbatim, text as a string, anything else as data_base64). When ctx
// carries the stored body ([consumers.EncodedFromContext]), that is sent as
// is, without encoding the event again.
func writeStructured(ctx context.Context, req *http.Request, ev *event.Event) error {
	body, ok := consumers.EncodedFromContext(ctx)
	if !ok {
		var err error
		if body, err = streams.MarshalEvent(ev); err != nil {
			return err
		}
	}
	req.Header["Content-Type"] = structuredContentType
	setBody(req, body)
	return nil
}

// structuredContentType is the Content-Type header of structured mode;
// nothing appends to it.
var structuredContentType = []string{streams.ContentType}

// setBody makes body the body of req, which net/http may read again (on
// a kept-alive connection that turned out closed).
//
// The body is an io.NopCloser of a *bytes.Reader, a reader net/http knows
// to be in memory, so that it writes the request line, headers and body
// with one write. For any other reader type it flushes the headers first
// and copies the body through a buffer of its own: one more system call
// and one more allocation per request than the allocation this saves.
func setBody(req *http.Request, body []byte) {
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// writeBinary fills req in the CloudEvents HTTP binary mode exactly as
// cehttp.WriteRequest does, for a CloudEvents 1.0 event (every event vrelay
// stores): the same headers with the same values, the data as the body.
// It skips the SDK's generic path, which boxes every attribute, copies the
// extension map and wraps the body twice. Other spec versions take the
// SDK's path.
func writeBinary(ctx context.Context, req *http.Request, ev *event.Event) error {
	ec, ok := ev.Context.(*event.EventContextV1)
	if !ok {
		e := *ev // so that the caller's event stays on its stack
		return cehttp.WriteRequest(ctx, binding.ToMessage(&e), req)
	}
	h := req.Header
	// One array holds every header's value, as net/http's reader does.
	vals := make([]string, 0, 8+len(ec.Extensions))
	add := func(key, v string) {
		vals = append(vals, v)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	// In the SDK's order (spec.V1's attributes); blank ones are left out.
	for _, a := range [...]struct{ key, value string }{
		{"Ce-Id", ec.ID},
		{"Ce-Source", ec.GetSource()},
		{"Ce-Specversion", ec.GetSpecVersion()},
		{"Ce-Type", ec.Type},
		{"Content-Type", ec.GetDataContentType()},
		{"Ce-Dataschema", ec.GetDataSchema()},
		{"Ce-Subject", ec.GetSubject()},
	} {
		if a.value != "" {
			add(a.key, a.value)
		}
	}
	if t := ec.GetTime(); !t.IsZero() {
		add("Ce-Time", cetypes.FormatTime(t))
	}
	for name, v := range ec.Extensions {
		s, err := cetypes.Format(v)
		if err != nil {
			return err
		}
		add(extensionHeader(name), s)
	}
	if body := ev.Data(); len(body) > 0 {
		setBody(req, body)
	}
	return nil
}

// extensionHeader is the header of extension name: "Ce-" and the name with
// its first letter in upper case, as the SDK writes it. The names of the
// first extensions seen are kept, so that the usual few are not built
// again for every event.
func extensionHeader(name string) string {
	if h, ok := extHeaders.Load(name); ok {
		return h.(string)
	}
	h := "Ce-"
	if name != "" {
		h += string(unicode.ToUpper(rune(name[0]))) + name[1:]
	}
	if extHeaderCount.Add(1) <= maxExtHeaders {
		extHeaders.Store(name, h)
	}
	return h
}

var (
	extHeaders     sync.Map // extension name → header
	extHeaderCount atomic.Int32
)

// maxExtHeaders bounds extHeaders: extension names come from the events.
const maxExtHeaders = 256

// StatusError is a non-2xx answer from the receiver. Send wraps it with
// [consumers.Permanent] or [consumers.RetryAfter] as the status requires;
// use errors.As to read the status.
type StatusError struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// Body is the start of the response body, at most 200 bytes, on one line,
	// with any configured credential removed.
	Body string
	// Location is the target of a redirect, which Send does not follow, with
	// its query redacted.
	Location string
}

func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("http status ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if text := http.StatusText(e.StatusCode); text != "" {
		b.WriteString(" " + text)
	}
	if e.StatusCode >= 300 && e.StatusCode < 400 {
		b.WriteString(": redirects are not followed; set url to the final location")
		if e.Location != "" {
			b.WriteString(" (" + e.Location + ")")
		}
	}
	if e.Body != "" {
		b.WriteString(": " + e.Body)
	}
	return b.String()
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP-date,
// relative to now. A date in the past, or a value it cannot read, gives no
// delay, so the caller's own backoff applies.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 63); err == nil {
		const maxSecs = uint64(1<<63-1) / uint64(time.Second)
		if secs == 0 {
			return 0, false
		}
		return time.Duration(min(secs, maxSecs)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, false
}

// snippet turns the start of a response body into at most maxSnippet bytes
// of printable, single-line text without any of the given secrets.
func snippet(b []byte, scrub []secret.Value) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	for _, v := range scrub {
		if v != "" {
			s = strings.ReplaceAll(s, v.Reveal(), "[redacted]")
		}
	}
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) <= maxSnippet {
		return s
	}
	cut := maxSnippet - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func resolveAuth(a Auth) (secret.Value, []secret.Value, error) {
	switch {
	case a.Basic != nil:
		pw, err := a.Basic.Password.Resolve()
		if err != nil {
			return "", nil, cfgerr.Newf("auth.basic.password", "%v", err)
		}
		cred := base64.StdEncoding.EncodeToString([]byte(a.Basic.Username + ":" + pw))
		return secret.Value("Basic " + cred), []secret.Value{secret.Value(pw), secret.Value(cred)}, nil
	case a.Bearer != nil:
		tok, err := a.Bearer.Token.Resolve()
		if err != nil {
			return "", nil, cfgerr.Newf("auth.bearer.token", "%v", err)
		}
		return secret.Value("Bearer " + tok), []secret.Value{secret.Value(tok)}, nil
	}
	return "", nil, nil
}

func loadTLS(c TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.SkipTLSVerify}
	if c.CAFile == "" {
		return cfg, nil
	}
	pool, err := tlsfiles.LoadCAPool(c.CAFile)
	if err != nil {
		return nil, cfgerr.New("tls.caFile", err.Error())
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// newTransport returns a transport for one receiver under many concurrent
// sends: connections are kept alive and enough of them stay idle. It asks
// for no compressed answers: the sink reads at most a short snippet of an
// answer, for an error, and an Accept-Encoding header on every request
// would cost more than it could save.
func newTransport(tlsCfg *tls.Config) *http.Transport {
	return &http.Transport{
		DisableCompression: true,
		Proxy:              http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxIdleConnsPerHost,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// redactURL renders u for messages: no user info, and no query, which may
// carry an API key (Azure Functions' ?code=, for one).
func redactURL(u *url.URL) string {
	r := *u
	r.User = nil
	r.Fragment, r.RawFragment = "", ""
	if r.RawQuery != "" {
		r.RawQuery = "redacted"
	}
	return r.String()
}

func redactLocation(loc string) string {
	if loc == "" {
		return ""
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "unparsable Location header"
	}
	return redactURL(u)
}
