package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/streams"
)

// Headers a dead letter carries besides the original message's own.
const (
	HeaderRoute       = "Vrelay-Route"
	HeaderReason      = "Vrelay-Reason"
	HeaderAttempts    = "Vrelay-Attempts"
	HeaderSubject     = "Vrelay-Original-Subject"
	HeaderStream      = "Vrelay-Original-Stream"
	HeaderSequence    = "Vrelay-Stream-Sequence"
	HeaderStoredAt    = "Vrelay-Stored-At"
	HeaderFailedAt    = "Vrelay-Failed-At"
	HeaderFailureKind = "Vrelay-Failure"
	// HeaderReplayRoute marks an event replayed from the dead-letter stream
	// for one route: every other route acks it without delivering it.
	HeaderReplayRoute = "Vrelay-Replay-Route"
)

// Failure kinds in the HeaderFailureKind header.
const (
	FailurePermanent = "permanent"
	FailureExhausted = "attempts-exhausted"
	FailureDecode    = "undecodable"
)

// Route is what a [Dispatcher] needs to know of a route.
type Route struct {
	// Name names the route, its durable consumer and its dead-letter subject.
	Name string
	// Subjects are the server-side filter; empty means every event.
	Subjects []string
	// Filter, if not nil, is applied to each event; events that do not match
	// are acked without delivery.
	Filter *filters.Filter
	// Delivery is the delivery policy; zero fields take their defaults.
	Delivery Delivery
}

// Dispatcher delivers one route: it ties a durable JetStream pull consumer
// to a filter and a [Sink] and decides, for each event, to ack, retry later
// or dead-letter.
//
//	| Sink result                         | action                              |
//	|-------------------------------------|-------------------------------------|
//	| nil, or filtered out                | Ack                                 |
//	| Permanent, or undecodable payload   | dead-letter, then Term              |
//	| retryable, attempts left            | NakWithDelay(backoff or Retry-After)|
//	| retryable, last attempt             | dead-letter, then Term              |
//	| dead-letter publish fails           | Nak: tried again, never dropped     |
//
// An event is acked only after the sink accepted it or the dead-letter
// stream stored it. The consumer has no MaxDeliver: the dispatcher counts
// attempts itself, so a crash on the last attempt, or a failed dead-letter
// publish, never lets JetStream give up on an event silently.
type Dispatcher struct {
	js      jetstream.JetStream
	route   Route
	sink    Sink
	log     *slog.Logger
	metrics *routeMetrics
	stream  string
	// shutdownTimeout bounds the wait for sends under way at shutdown.
	shutdownTimeout time.Duration

	filterErrLog rateLimited
}

// NewDispatcher returns the dispatcher of route r delivering to sink.
func NewDispatcher(js jetstream.JetStream, r Route, sink Sink, opts ...Option) (*Dispatcher, error) {
	o := newOptions(opts)
	r.Delivery.SetDefaults()
	if !ValidRouteName(r.Name) {
		return nil, fmt.Errorf("route name %q: only letters, digits, '-' and '_' (at most 64)", r.Name)
	}
	if err := r.Delivery.Validate(); err != nil {
		return nil, fmt.Errorf("route %s: delivery: %w", r.Name, err)
	}
	if len(r.Subjects) == 0 {
		r.Subjects = []string{streams.DefaultRoot + ".>"}
	}
	return &Dispatcher{
		js:              js,
		route:           r,
		sink:            sink,
		log:             o.log.With("route", r.Name),
		metrics:         o.metrics.forRoute(r.Name),
		stream:          o.stream,
		shutdownTimeout: o.shutdownTimeout,
		filterErrLog:    rateLimited{every: 10 * time.Second},
	}, nil
}

// PullExpiry is how long each pull request of a route waits on the server.
// Under CPU contention a busy route was seen to stop receiving now and
// then: the server held no pull request of it, no message waited for an
// ack, yet the client counted a pull as outstanding until it expired and
// the missed heartbeats made it pull again. nats.go's default expiry of
// 30s made that a 30s pause; 5s bounds it, for one small request per 5s
// on an idle route.
const PullExpiry = 5 * time.Second

// ConsumerConfig is the durable consumer of the route.
func (d *Dispatcher) ConsumerConfig() jetstream.ConsumerConfig {
	dl := d.route.Delivery
	policy := jetstream.DeliverNewPolicy
	if dl.StartAt == StartAtAll {
		policy = jetstream.DeliverAllPolicy
	}
	return jetstream.ConsumerConfig{
		Durable:        d.route.Name,
		Description:    "vrelay route " + d.route.Name,
		FilterSubjects: d.route.Subjects,
		DeliverPolicy:  policy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        dl.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  dl.MaxAckPending,
	}
}

// Ensure creates the route's durable consumer, or updates it to the route's
// settings. The start position of an existing consumer is kept.
func (d *Dispatcher) Ensure(ctx context.Context) (jetstream.Consumer, error) {
	cc := d.ConsumerConfig()
	if c, err := d.js.Consumer(ctx, d.stream, cc.Durable); err == nil {
		have := c.CachedInfo().Config
		cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", cc.Durable, err)
	}
	c, err := d.js.CreateOrUpdateConsumer(ctx, d.stream, cc)
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", cc.Durable, d.stream, err)
	}
	return c, nil
}

// Run delivers until ctx is done, then stops pulling, lets the sends under
// way finish (at most shutdownTimeout, see [WithShutdownTimeout]), returns
// events it had not started to JetStream at once, and returns ctx.Err().
// Events whose send was cut short are redelivered: nothing is acked on the
// way out.
func (d *Dispatcher) Run(ctx context.Context) error {
	cons, err := d.Ensure(ctx)
	if err != nil {
		return err
	}
	dl := d.route.Delivery
	it, err := cons.Messages(jetstream.PullMaxMessages(dl.MaxInFlight), jetstream.PullExpiry(PullExpiry))
	if err != nil {
		return fmt.Errorf("consume %s: %w", d.route.Name, err)
	}
	d.log.Info("route started", "subjects", d.route.Subjects, "max_in_flight", dl.MaxInFlight)

	// Sends run on their own context, so that SIGTERM lets them finish.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	var wg sync.WaitGroup
	wg.Go(func() { d.watchPending(ctx, cons) })
	stopping := context.AfterFunc(ctx, it.Drain)
	defer stopping()

	// Up to MaxInFlight workers handle the messages. A worker is started
	// only when none is free, and then stays for the next messages: a
	// goroutine per message would grow a fresh stack for every send, which
	// cost about 4% of the CPU of a busy route.
	work := make(chan jetstream.Msg)
	workers := 0
	prog := &progress{every: dl.AckWait / 2}
	stopProgress, progressDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(progressDone)
		prog.run(stopProgress)
	}()
	defer func() {
		close(stopProgress)
		<-progressDone
	}()
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if err != nil {
			d.log.Warn("pull from consumer", "err", err)
			continue
		}
		if ctx.Err() != nil {
			// Drained after shutdown began: give it back at once.
			_ = msg.Nak()
			continue
		}
		select {
		case work <- msg: // a free worker took it
			continue
		default:
		}
		if workers < dl.MaxInFlight {
			workers++
			wg.Go(func() {
				slot := prog.slot()
				d.handle(sendCtx, msg, slot)
				for msg := range work {
					d.handle(sendCtx, msg, slot)
				}
			})
			continue
		}
		work <- msg // all busy: wait for the first to be free
	}
	close(work)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d.shutdownWait())
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.log.Warn("sends still under way at shutdown timeout; they will be redelivered")
		cancelSends()
		<-done
	}
	d.log.Info("route stopped")
	return ctx.Err()
}

func (d *Dispatcher) shutdownWait() time.Duration {
	if d.shutdownTimeout > 0 {
		return d.shutdownTimeout
	}
	return d.route.Delivery.SendTimeout
}

// handle takes one message to its outcome. It never returns without having
// acked, naked or termed the message, except when the connection is gone, in
// which case JetStream redelivers after AckWait.
func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg, slot *sendSlot) {
	meta, err := msg.Metadata()
	if err != nil {
		d.log.Error("message without jetstream metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	if r := msg.Headers().Get(HeaderReplayRoute); r != "" && r != d.route.Name {
		d.metrics.outcome(filtered)
		d.ack(msg)
		return
	}
	ev, err := streams.Decode(msg.Data())
	if err != nil {
		d.deadLetter(ctx, msg, meta, FailureDecode, err)
		return
	}
	if f := d.route.Filter; f != nil {
		ok, err := f.Match(ev)
		var dataErr *filters.DataError
		switch {
		case errors.As(err, &dataErr):
			d.deadLetter(ctx, msg, meta, FailureDecode, err)
			return
		case err != nil:
			d.metrics.outcome(filterError)
			d.filterErrLog.do(func(suppressed int) {
				d.log.Warn("filter failed at run time; event counted as not matching",
					"err", err, "event_id", ev.ID(), "suppressed", suppressed)
			})
			d.ack(msg)
			return
		case !ok:
			d.metrics.outcome(filtered)
			d.ack(msg)
			return
		}
	}
	err = d.send(ctx, msg, ev, slot)
	switch {
	case err == nil:
		d.metrics.outcome(delivered)
		d.metrics.latency(time.Since(meta.Timestamp))
		d.ack(msg)
	case ctx.Err() != nil:
		// Shutting down: hand the event back for another replica or the next start.
		_ = msg.Nak()
	case IsPermanent(err):
		d.deadLetter(ctx, msg, meta, FailurePermanent, err)
	case int(meta.NumDelivered) >= d.route.Delivery.MaxAttempts:
		d.deadLetter(ctx, msg, meta, FailureExhausted, err)
	default:
		delay := d.backoff(int(meta.NumDelivered))
		if ra, ok := RetryAfterDelay(err); ok && ra > delay {
			delay = min(ra, d.route.Delivery.Backoff.Max)
		}
		d.metrics.outcome(retry)
		d.log.Debug("delivery failed, will retry", "err", err, "event_id", ev.ID(),
			"attempt", meta.NumDelivered, "retry_in", delay)
		if err := msg.NakWithDelay(delay); err != nil {
			d.log.Warn("nak failed; jetstream redelivers after ack wait", "err", err)
		}
	}
}

// send makes one attempt, telling JetStream the event is still being worked
// on when the attempt outlasts half the ack wait (see [progress]).
func (d *Dispatcher) send(ctx context.Context, msg jetstream.Msg, ev event.Event, slot *sendSlot) error {
	ctx, cancel := context.WithTimeout(ctx, d.route.Delivery.SendTimeout)
	defer cancel()
	start := time.Now()
	slot.begin(msg, start)
	err := d.sink.Send(ctx, ev)
	slot.end()
	d.metrics.sendDuration(time.Since(start))
	return err
}

// deadLetter stores the event on the route's dead-letter subject and then
// terms it. If the dead-letter stream does not take it, the event is naked
// and will come back: it is never dropped.
func (d *Dispatcher) deadLetter(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, kind string, cause error) {
	reason := truncate(cause.Error(), 1024)
	dl := nats.NewMsg(streams.DLQSubject(d.route.Name))
	dl.Data = msg.Data()
	for k, v := range msg.Headers() {
		switch k {
		case streams.HeaderMsgID, HeaderReplayRoute, jetstream.ExpectedStreamHeader, jetstream.ExpectedLastSeqHeader,
			jetstream.ExpectedLastSubjSeqHeader, jetstream.ExpectedLastMsgIDHeader:
			continue
		}
		dl.Header[k] = v
	}
	seq := strconv.FormatUint(meta.Sequence.Stream, 10)
	dl.Header.Set(streams.HeaderMsgID, d.route.Name+":"+seq)
	dl.Header.Set(HeaderRoute, d.route.Name)
	dl.Header.Set(HeaderReason, reason)
	dl.Header.Set(HeaderFailureKind, kind)
	dl.Header.Set(HeaderAttempts, strconv.FormatUint(meta.NumDelivered, 10))
	dl.Header.Set(HeaderSubject, msg.Subject())
	dl.Header.Set(HeaderStream, meta.Stream)
	dl.Header.Set(HeaderSequence, seq)
	dl.Header.Set(HeaderStoredAt, meta.Timestamp.UTC().Format(time.RFC3339Nano))
	dl.Header.Set(HeaderFailedAt, time.Now().UTC().Format(time.RFC3339Nano))

	pctx, cancel := context.WithTimeout(ctx, d.route.Delivery.SendTimeout)
	defer cancel()
	if _, err := d.js.PublishMsg(pctx, dl, jetstream.WithExpectStream(streams.DLQStream)); err != nil {
		d.metrics.dlqError()
		d.log.Error("dead-letter publish failed; event will be retried", "err", err, "stream_seq", meta.Sequence.Stream)
		_ = msg.NakWithDelay(d.backoff(1))
		return
	}
	d.metrics.outcome(deadLettered)
	d.log.Warn("event dead-lettered", "failure", kind, "reason", reason,
		"stream_seq", meta.Sequence.Stream, "attempts", meta.NumDelivered, "subject", msg.Subject())
	if err := msg.TermWithReason(kind); err != nil {
		// The dead letter is stored; a redelivery would store it again under
		// the same Nats-Msg-Id, which the DLQ's duplicate window drops.
		d.log.Warn("term after dead-letter failed", "err", err)
	}
}

func (d *Dispatcher) ack(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		d.log.Warn("ack failed; jetstream redelivers after ack wait", "err", err)
	}
}

// backoff returns the pause before attempt n+1: a random time between half
// and all of min(Initial × 2^(n-1), Max).
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.route.Delivery.Backoff
	base := b.Max
	if n < 1 {
		n = 1
	}
	if n <= 32 {
		if v := b.Initial << (n - 1); v > 0 && v < b.Max {
			base = v
		}
	}
	half := base / 2
	return half + rand.N(base-half+1)
}

// watchPending publishes the consumer's backlog as metrics.
func (d *Dispatcher) watchPending(ctx context.Context, cons jetstream.Consumer) {
	if d.metrics == nil {
		return
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			d.metrics.pending(info.NumPending, info.NumAckPending)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// progress tells JetStream that the sends under way are still being worked
// on, so that it does not hand a slow send to another replica: it calls
// InProgress on a send's message once the send (or its last InProgress) is
// every old, checking every eighth of the ack wait, so the call comes at
// most 5/8 of the ack wait after the last one. One goroutine does it for
// all the workers; a timer per send cost more than the rest of the
// dispatcher's own work on a busy route.
type progress struct {
	every time.Duration // half the ack wait
	mu    sync.Mutex
	slots []*sendSlot
}

// sendSlot is a worker's send under way.
type sendSlot struct {
	mu    sync.Mutex
	msg   jetstream.Msg // nil between sends
	since time.Time     // when the send began or InProgress was last called
}

// slot returns a new slot for a worker.
func (p *progress) slot() *sendSlot {
	s := &sendSlot{}
	p.mu.Lock()
	p.slots = append(p.slots, s)
	p.mu.Unlock()
	return s
}

func (s *sendSlot) begin(msg jetstream.Msg, now time.Time) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.msg, s.since = msg, now
	s.mu.Unlock()
}

func (s *sendSlot) end() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.msg = nil
	s.mu.Unlock()
}

// run checks the slots until stop is closed.
func (p *progress) run(stop <-chan struct{}) {
	t := time.NewTicker(max(p.every/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			p.mu.Lock()
			slots := p.slots
			p.mu.Unlock()
			for _, s := range slots {
				s.mu.Lock()
				msg := s.msg
				due := msg != nil && now.Sub(s.since) >= p.every
				if due {
					s.since = now
				}
				s.mu.Unlock()
				if due {
					_ = msg.InProgress()
				}
			}
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// rateLimited runs a log call at most once per period and tells it how many
// calls it swallowed since.
type rateLimited struct {
	every      time.Duration
	last       atomic.Int64
	suppressed atomic.Int64
}

func (r *rateLimited) do(f func(suppressed int)) {
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(r.every) || !r.last.CompareAndSwap(last, now) {
		r.suppressed.Add(1)
		return
	}
	f(int(r.suppressed.Swap(0)))
}
