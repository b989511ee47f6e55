package natssink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/tlsfiles"
	"github.com/vrelay/vrelay/streams"
)

// flushTimeout bounds the wait for a core publish to reach the server when
// the caller's ctx has no deadline (the dispatcher always sets one).
const flushTimeout = 10 * time.Second

// Option configures what code, not the operator, injects into a [Sink].
type Option func(*options)

type options struct {
	conn   *nats.Conn
	logger *slog.Logger
	root   string
}

// WithConn makes the sink publish on nc, the connection vrelay itself uses,
// when Config.URL is empty. The sink never closes nc.
func WithConn(nc *nats.Conn) Option { return func(o *options) { o.conn = nc } }

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithSubjectRoot names the first token of the event stream's subjects
// when it is not [streams.DefaultRoot], so that the sink refuses to
// republish into the event stream. Default streams.DefaultRoot.
func WithSubjectRoot(root string) Option { return func(o *options) { o.root = root } }

// Sink republishes events to a NATS subject. See the package documentation.
type Sink struct {
	cfg  Config
	nc   *nats.Conn
	own  bool // nc was dialled by New and is closed by Close
	js   jetstream.JetStream
	root string
	log  *slog.Logger
}

// New checks cfg and returns a sink publishing on the connection of
// [WithConn], or, when cfg.URL is set, on a connection of its own, dialled
// now: secrets are read here. A server at URL that is not up yet is retried
// in the background, so vrelay and that server may start in any order.
func New(cfg Config, opts ...Option) (*Sink, error) {
	o := options{root: streams.DefaultRoot}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := checkTemplate(cfg.Subject, o.root); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	s := &Sink{cfg: cfg, nc: o.conn, root: o.root, log: o.logger}
	if cfg.URL != "" {
		nc, err := cfg.connect(o.logger)
		if err != nil {
			return nil, err
		}
		s.nc, s.own = nc, true
	}
	if s.nc == nil {
		return nil, errors.New("no NATS connection: set url, or build the sink with WithConn")
	}
	if cfg.JetStream {
		js, err := jetstream.New(s.nc)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		s.js = js
	}
	return s, nil
}

// connect dials c.URL with the credentials c names.
func (c Config) connect(log *slog.Logger) (*nats.Conn, error) {
	opts := append(streams.ConnOptions(log.With("component", "natssink"), "vrelay-natssink"),
		nats.RetryOnFailedConnect(true))
	switch {
	case c.User != "":
		pw, err := c.Password.Resolve()
		if err != nil {
			return nil, fmt.Errorf("password: %w", err)
		}
		opts = append(opts, nats.UserInfo(c.User, pw))
	case !c.Token.IsZero():
		tok, err := c.Token.Resolve()
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		opts = append(opts, nats.Token(tok))
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.TLS.CAFile != "" {
		pool, err := tlsfiles.LoadCAPool(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.caFile: %w", err)
		}
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(c.URL), err)
	}
	return nc, nil
}

// redact keeps the host list of a URL list; Validate refused credentials in
// it, so this only guards log lines against a future change.
func redact(urls string) string {
	if strings.Contains(urls, "@") {
		return "[redacted url]"
	}
	return urls
}

// Close closes the connection New dialled for Config.URL; a connection
// given with [WithConn] stays open. Close is safe to call more than once.
func (s *Sink) Close() error {
	if s.own {
		s.nc.Close()
	}
	return nil
}

// Send publishes ev once and blocks until the server took it (core NATS)
// or a stream stored it (JetStream). See the package documentation for
// the errors. Send is safe for concurrent use.
func (s *Sink) Send(ctx context.Context, ev event.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish event %q: %w", ev.ID(), err)
	}
	msg, err := s.message(ctx, &ev)
	if err != nil {
		return consumers.Permanent(err)
	}
	if s.js != nil {
		return s.sendJetStream(ctx, msg)
	}
	return s.sendCore(ctx, msg)
}

// SendsStoredBody is true: the sink publishes the stored body with the
// event's id, type, source and subject as headers (the subject template
// names only type and source); see [consumers.StoredBodySink].
func (s *Sink) SendsStoredBody() bool { return true }

// message builds the NATS message of ev: the stored structured JSON when
// the dispatcher handed it over, the Ce-* header copies and Content-Type
// [streams.Encode] writes, and Nats-Msg-Id = source:id so a stream on the
// subject drops redeliveries.
func (s *Sink) message(ctx context.Context, ev *event.Event) (*nats.Msg, error) {
	subj := s.subject(ev)
	if err := checkSubject(subj, s.root); err != nil {
		return nil, fmt.Errorf("event %q: subject: %w", ev.ID(), err)
	}
	if body, ok := consumers.EncodedFromContext(ctx); ok {
		h := make(nats.Header, 6)
		h[streams.HeaderMsgID] = []string{streams.MsgID(ev)}
		h[streams.HeaderType] = []string{ev.Type()}
		h[streams.HeaderSource] = []string{ev.Source()}
		h[streams.HeaderID] = []string{ev.ID()}
		if sub := ev.Subject(); sub != "" {
			h[streams.HeaderSubject] = []string{sub}
		}
		h[streams.HeaderContentType] = []string{streams.ContentType}
		return &nats.Msg{Subject: subj, Header: h, Data: body}, nil
	}
	return streams.Encode(subj, ev, "")
}

// subject fills the template for ev.
func (s *Sink) subject(ev *event.Event) string {
	subj := s.cfg.Subject
	if strings.Contains(subj, PlaceholderType) {
		subj = strings.ReplaceAll(subj, PlaceholderType, streams.Token(ev.Type()))
	}
	if strings.Contains(subj, PlaceholderSource) {
		subj = strings.ReplaceAll(subj, PlaceholderSource, streams.Token(ev.Source()))
	}
	return subj
}

func (s *Sink) sendCore(ctx context.Context, msg *nats.Msg) error {
	if err := s.nc.PublishMsg(msg); err != nil {
		return s.classify(msg, err)
	}
	// The server answers the flush's PING after it processed the publish.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return s.classify(msg, err)
	}
	return nil
}

func (s *Sink) sendJetStream(ctx context.Context, msg *nats.Msg) error {
	// No retry on "no responders": JetStream redelivery is the only retry.
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithRetryAttempts(0))
	if err != nil {
		return s.classify(msg, err)
	}
	if ack.Duplicate {
		s.log.Debug("stream already held the event", "subject", msg.Subject, "stream", ack.Stream,
			"msg_id", msg.Header.Get(streams.HeaderMsgID))
	}
	return nil
}

// classify turns a publish error into a Permanent or retryable error.
func (s *Sink) classify(msg *nats.Msg, err error) error {
	id := msg.Header.Get(streams.HeaderID)
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return consumers.Permanent(fmt.Errorf("publish event %q to %s: %d bytes exceed the server's max payload of %d: %w",
			id, msg.Subject, len(msg.Data), s.nc.MaxPayload(), err))
	case errors.Is(err, nats.ErrBadSubject):
		return consumers.Permanent(fmt.Errorf("publish event %q to %q: %w", id, msg.Subject, err))
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("publish event %q to %s: no stream stores this subject (create one, or set jetstream: false): %w",
			id, msg.Subject, err)
	case errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500:
		// The stream refused this message as it is (too large, a wrong
		// expected sequence): sending it again gets the same answer.
		return consumers.Permanent(fmt.Errorf("publish event %q to %s: stream refused it: %w", id, msg.Subject, err))
	}
	return fmt.Errorf("publish event %q to %s: %w", id, msg.Subject, err)
}
