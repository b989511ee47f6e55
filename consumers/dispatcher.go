package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/internal/names"
	"github.com/vrelay/vrelay/streams"
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
	// Transform, if not nil, is applied to each event the filter let
	// through: an event it drops is acked without delivery and counted as
	// filtered; an event it fails on is dead-lettered as permanent.
	Transform *filters.Transform
	// Delivery is the delivery policy; zero fields take their defaults.
	Delivery Delivery
}

// Dispatcher delivers one route: it ties a durable JetStream pull consumer
// to a filter and a [Sink] and decides, for each event, to ack, retry later
// or dead-letter.
//
// Each message is first prepared (decoded, filtered, transformed), then sent, alone or
// in a batch of up to Delivery.MaxBatch events to a [BatchSink], and then
// settled on its own result:
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
// publish, never lets JetStream give up on an event silently. In a batch,
// each event counts its own attempts: a partial failure retries only the
// events that failed.
//
// Besides the event stream, the dispatcher reads the route's replay
// consumer on [streams.ReplayStream]: dead letters that `vrelay dlq replay`
// sent back to this route, and to no other. A replay goes through the same
// filter, sink and settling; if it fails again, its dead letter keeps the
// event's original subject and sequence.
type Dispatcher struct {
	js      jetstream.JetStream
	route   Route
	sink    Sink
	batch   BatchSink // the sink, when the route sends batches
	log     *slog.Logger
	metrics *routeMetrics
	stream  string
	start   startPosition // from Delivery.StartAt
	limit   *limiter      // nil: no rate limit
	// ephemeral, if not nil, is a replay of a window (see WithEphemeral).
	ephemeral *ephemeral
	// shutdownTimeout bounds the wait for sends under way at shutdown.
	shutdownTimeout time.Duration

	filterErrLog rateLimited
	health       *health // says when deliveries start and stop failing

	// order, if not nil, keys the route's events for ordered delivery
	// (lanes.go); pinnedTTL > 0 pins its consumer to one replica.
	order     *orderKey
	pinnedTTL time.Duration
	// headersOnly: the route needs only the attributes the message headers
	// copy and the stored body (see [StoredBodySink]).
	headersOnly bool
	// sendTimeout bounds each send: Delivery.SendTimeout, or the sink's
	// own timeout when that is shorter (see [TimeoutSink]).
	sendTimeout time.Duration
}

// NewDispatcher returns the dispatcher of route r delivering to sink. A
// route with Delivery.MaxBatch above 1 needs a sink that is a [BatchSink].
func NewDispatcher(js jetstream.JetStream, r Route, sink Sink, opts ...Option) (*Dispatcher, error) {
	o := newOptions(opts)
	r.Delivery.SetDefaults()
	// The name becomes a durable consumer name and a subject token.
	if err := names.Check(r.Name); err != nil {
		return nil, fmt.Errorf("route name: %w", err)
	}
	if err := r.Delivery.Validate(); err != nil {
		return nil, fmt.Errorf("route %s: delivery: %w", r.Name, err)
	}
	var batch BatchSink
	if r.Delivery.MaxBatch > 1 {
		var ok bool
		if batch, ok = sink.(BatchSink); !ok {
			return nil, fmt.Errorf("route %s: delivery.maxBatch is %d, but its sink sends one event per request; set maxBatch to 1",
				r.Name, r.Delivery.MaxBatch)
		}
	}
	if len(r.Subjects) == 0 {
		r.Subjects = []string{o.root + ".>"}
	}
	order, err := compileOrder(r.Delivery.OrderBy)
	if err != nil {
		return nil, fmt.Errorf("route %s: delivery.orderBy: %w", r.Name, err)
	}
	start, _ := parseStartAt(r.Delivery.StartAt) // validated
	d := &Dispatcher{
		order:           order,
		pinnedTTL:       o.pinnedTTL(order != nil),
		start:           start,
		limit:           newLimiter(r.Delivery.RateLimit),
		js:              js,
		route:           r,
		sink:            sink,
		batch:           batch,
		log:             o.log.With("route", r.Name),
		metrics:         o.metrics.forRoute(r.Name),
		stream:          streamFor(o.stream, r.Subjects),
		shutdownTimeout: o.shutdownTimeout,
		filterErrLog:    rateLimited{every: 10 * time.Second},
		health:          newHealth(o.healthInterval),
		headersOnly:     headersSuffice(r, sink),
		sendTimeout:     r.Delivery.SendTimeout,
	}
	if ts, ok := sink.(TimeoutSink); ok {
		if t := ts.SendTimeout(); t > 0 && t < d.sendTimeout {
			d.sendTimeout = t
		}
	}
	if o.ephemeral != nil {
		// A replay has its own consumer, which no replica shares.
		d.pinnedTTL = 0
		d.metrics = ephemeralMetrics(o.metrics).forRoute(r.Name)
		d.ephemeral = newEphemeral(o.ephemeral, d.metrics)
	}
	return d, nil
}

// headerAttributes are the attributes the headers of a stored message copy
// (streams.DecodeHeaders).
var headerAttributes = []string{"id", "source", "subject", "type"}

// headersSuffice reports whether route r delivering to sink needs no more
// of an event than the attributes its message headers copy and its stored
// body: the sink sends the stored body as it is, nothing changes or keys
// the event, and the filter, if any, reads only those attributes.
func headersSuffice(r Route, sink Sink) bool {
	s, ok := sink.(StoredBodySink)
	if !ok || !s.SendsStoredBody() || r.Transform != nil || r.Delivery.OrderBy != nil || r.Delivery.MaxBatch > 1 {
		return false
	}
	if r.Filter == nil {
		return true
	}
	names, all := r.Filter.Reads()
	if all {
		return false
	}
	for _, n := range names {
		if !slices.Contains(headerAttributes, n) {
			return false
		}
	}
	return true
}

// PullExpiry is how long each pull request of a route waits on the server.
// Under CPU contention a busy route was seen to stop receiving now and
// then: the server held no pull request of it, no message waited for an
// ack, yet the client counted a pull as outstanding until it expired and
// the missed heartbeats made it pull again. nats.go's default expiry of
// 30s made that a 30s pause; 5s bounds it, for one small request per 5s
// on an idle route.
const PullExpiry = 5 * time.Second

// ConsumerConfig is the durable consumer of the route. A start position
// that reaches back a duration is computed from now.
func (d *Dispatcher) ConsumerConfig() jetstream.ConsumerConfig {
	dl := d.route.Delivery
	cc := jetstream.ConsumerConfig{
		Durable:        d.route.Name,
		Description:    "vrelay route " + d.route.Name,
		FilterSubjects: d.route.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        dl.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  dl.MaxAckPending,
		Metadata:       map[string]string{startAtMetadata: dl.StartAt},
	}
	d.pin(&cc)
	d.start.apply(&cc, time.Now())
	return cc
}

// ReplayConsumerConfig is the route's durable consumer of its replays on
// [streams.ReplayStream].
func (d *Dispatcher) ReplayConsumerConfig() jetstream.ConsumerConfig {
	dl := d.route.Delivery
	return streams.ReplayConsumerConfig(d.route.Name, dl.AckWait, dl.MaxAckPending)
}

// Ensure creates the route's durable consumers, of the event stream and of
// the replay stream, or updates them to the route's settings, and returns
// the first. The start position of an existing consumer is kept.
func (d *Dispatcher) Ensure(ctx context.Context) (jetstream.Consumer, error) {
	c, _, err := d.ensure(ctx)
	return c, err
}

func (d *Dispatcher) ensure(ctx context.Context) (events, replays jetstream.Consumer, err error) {
	if d.ephemeral != nil {
		return d.ephemeral.ensure(ctx, d)
	}
	cc := d.ConsumerConfig()
	if c, err := d.js.Consumer(ctx, d.stream, cc.Durable); err == nil {
		d.keepPosition(&cc, c.CachedInfo().Config)
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil, fmt.Errorf("look up consumer %s: %w", cc.Durable, err)
	}
	events, err = d.js.CreateOrUpdateConsumer(ctx, d.stream, cc)
	if err != nil {
		return nil, nil, fmt.Errorf("ensure consumer %s on %s: %w", cc.Durable, d.stream, err)
	}
	rc := d.ReplayConsumerConfig()
	replays, err = d.js.CreateOrUpdateConsumer(ctx, streams.ReplayStream, rc)
	if err != nil {
		return nil, nil, fmt.Errorf("ensure consumer %s on %s: %w", rc.Durable, streams.ReplayStream, err)
	}
	return events, replays, nil
}

// streamFor is the stream a route reads: the health stream when every
// subject of the route lies under streams.HealthPrefix and the stream is
// the default one, else stream.
func streamFor(stream string, subjects []string) string {
	if stream != streams.EventStream {
		return stream
	}
	for _, s := range subjects {
		if !strings.HasPrefix(s, streams.HealthPrefix) {
			return stream
		}
	}
	return streams.HealthStream
}

// pullSize is how many messages each consumer of the route buffers ahead
// of the sends: enough to start the next send at once, and for a batch to
// fill while the one before is being sent.
func (d *Dispatcher) pullSize() int {
	dl := d.route.Delivery
	n := dl.MaxInFlight
	if dl.MaxBatch > 1 {
		n = max(n, 2*dl.MaxBatch)
	}
	return min(n, dl.MaxAckPending)
}

// Run delivers until ctx is done, then stops pulling, lets the sends under
// way finish (at most shutdownTimeout, see [WithShutdownTimeout]), returns
// events it had not started to send to JetStream at once, a batch still
// filling included, and returns ctx.Err(). Events whose send was cut short
// are redelivered: nothing is acked on the way out.
//
// Pulled messages wait for a worker in the subscription's own queue (see
// [Dispatcher.consume]), which nothing overflows: a process that was
// frozen (SIGSTOP, a paused VM) drops none of them when it wakes, and none
// waits out the ack wait.
func (d *Dispatcher) Run(ctx context.Context) error {
	cons, replayCons, err := d.ensure(ctx)
	if err != nil {
		return err
	}
	if d.order != nil {
		return d.runOrdered(ctx, cons, replayCons)
	}
	dl := d.route.Delivery

	// Sends run on their own context, so that SIGTERM lets them finish.
	sendCtx, cancelSends := context.WithCancel(withStop(ctx))
	defer cancelSends()
	var wg sync.WaitGroup

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

	// Up to MaxInFlight workers each make one send at a time, of one event
	// or of one batch, so MaxInFlight bounds the sends under way either way.
	// A worker is started only when none is free, and then stays for the
	// next messages: a goroutine per message would grow a fresh stack for
	// every send, which cost about 4% of the CPU of a busy route.
	p := &pool{work: make(chan jetstream.Msg), max: dl.MaxInFlight, wg: &wg}
	if dl.MaxBatch > 1 {
		// One worker at a time fills a batch; the others send theirs.
		filling := make(chan struct{}, 1)
		p.batches = true
		p.run = func(jetstream.Msg) { d.batchWorker(ctx, sendCtx, p.work, filling, prog.slot()) }
	} else {
		p.run = func(first jetstream.Msg) {
			slot, sc := prog.slot(), newSendContext(sendCtx)
			defer sc.close()
			d.handle(sendCtx, first, slot, sc)
			for msg := range p.work {
				d.handle(sendCtx, msg, slot, sc)
			}
		}
	}

	// Both consumers feed the same workers.
	events, err := d.consume(ctx, cons, p)
	if err != nil {
		close(p.work)
		return fmt.Errorf("consume %s: %w", d.route.Name, err)
	}
	replays, err := d.consume(ctx, replayCons, p)
	if err != nil {
		events.Drain()
		<-events.Closed()
		close(p.work)
		return fmt.Errorf("consume replays of %s: %w", d.route.Name, err)
	}
	d.log.Info("route started", "subjects", d.route.Subjects, "max_in_flight", dl.MaxInFlight, "max_batch", dl.MaxBatch)
	wg.Go(func() { d.watchPending(ctx, cons) })
	stopping := context.AfterFunc(ctx, func() {
		events.Drain()
		replays.Drain()
	})
	defer stopping()

	// Draining hands every message still queued to intake, which gives it
	// back; Closed comes once the last one went through.
	<-events.Closed()
	replays.Drain() // the event consumer stopped: so do the replays
	<-replays.Closed()
	close(p.work)

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

// consume starts pulling from cons into the workers of p.
//
// It uses nats.go's Consume, whose messages wait for the handler in the
// subscription's pending queue (nats.go's default limits: 512Ki messages,
// 64 MiB), while the handler blocks until a worker is free. Messages, the
// iterator used before, queues them in a channel of PullMaxMessages, and a
// missed heartbeat (every pull of a frozen process misses one when it
// wakes) resets the client's count of what it asked for and pulls that
// much again while the first pull is still served: the channel overflowed
// ("slow consumer, messages dropped"), and the messages dropped were
// redelivered only after the ack wait. The server never hands out more
// than MaxAckPending unacknowledged messages, so the queue cannot grow
// past that count however often a pull is repeated. A blocked handler
// also misses no heartbeat: nats.go pauses the check while it runs.
func (d *Dispatcher) consume(ctx context.Context, cons jetstream.Consumer, p *pool) (jetstream.ConsumeContext, error) {
	return cons.Consume(func(msg jetstream.Msg) { d.intake(ctx, msg, p) },
		jetstream.PullMaxMessages(d.pullSize()),
		jetstream.PullExpiry(PullExpiry),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// Missed heartbeats, a pull that failed, a consumer that
			// changed leader: nats.go pulls again by itself.
			d.log.Warn("pull from consumer", "err", err)
		}))
}

// intake hands one pulled message to the workers, or, once shutdown began,
// gives it back at once.
func (d *Dispatcher) intake(ctx context.Context, msg jetstream.Msg, p *pool) {
	if ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	p.submit(msg)
}

// pool is a route's workers, started on demand up to max.
type pool struct {
	work    chan jetstream.Msg
	max     int
	wg      *sync.WaitGroup
	run     func(first jetstream.Msg) // a worker, from its first message on (nil for batches)
	batches bool
	mu      sync.Mutex
	workers int
}

// submit hands msg to a free worker, starts one if none is free and the
// limit allows, or else waits for the first to be free.
func (p *pool) submit(msg jetstream.Msg) {
	select {
	case p.work <- msg:
		return
	default:
	}
	p.mu.Lock()
	if p.workers < p.max {
		p.workers++
		p.mu.Unlock()
		if p.batches {
			// The batch being filled takes msg, whichever worker fills it.
			p.wg.Go(func() { p.run(nil) })
			p.work <- msg
			return
		}
		p.wg.Go(func() { p.run(msg) })
		return
	}
	p.mu.Unlock()
	p.work <- msg
}

func (d *Dispatcher) shutdownWait() time.Duration {
	if d.shutdownTimeout > 0 {
		return d.shutdownTimeout
	}
	return d.route.Delivery.SendTimeout
}

// prepared is a message on its way to the sink.
type prepared struct {
	msg jetstream.Msg
	// meta is msg's metadata once [prepared.metadata] parsed it: a delivery
	// that succeeds at once needs only stored, which costs no allocation.
	meta *jetstream.MsgMetadata
	// stored is when the server stored the message.
	stored time.Time
	ev     event.Event
	// undecodable, if not nil, says why the message cannot be sent: it is
	// to be dead-lettered as failure, FailureDecode when that is empty.
	undecodable error
	failure     string
	// changed reports that the transform changed ev: the stored body is
	// not its encoding any more.
	changed bool
	// sent is when the send ended (zero if not known): the delivery
	// latency is measured up to then, without reading the clock again.
	sent time.Time
}

// metadata returns the message's metadata, parsing it on first use.
// prepare checked the reply subject it is parsed from.
func (p *prepared) metadata() *jetstream.MsgMetadata {
	if p.meta == nil {
		meta, err := p.msg.Metadata()
		if err != nil { // not after prepare's check
			meta = &jetstream.MsgMetadata{Timestamp: p.stored}
		}
		p.meta = meta
	}
	return p.meta
}

// ackTimestamp reads the time the server stored a message from its reply
// subject, and reports whether the subject is one nats.go's Metadata
// reads: "$JS.ACK." and 9 tokens, or at least 11 (see nats.go's
// parser.GetMetadataFields), the timestamp being the 8th token, or the
// 10th of the longer form. It allocates nothing.
func ackTimestamp(reply string) (time.Time, bool) {
	const prefix = "$JS.ACK."
	if !strings.HasPrefix(reply, prefix) {
		return time.Time{}, false
	}
	n := strings.Count(reply, ".") + 1
	var pos int // of the timestamp's token
	switch {
	case n == 9:
		pos = 7
	case n >= 11:
		pos = 9
	default:
		return time.Time{}, false
	}
	rest := reply
	for range pos {
		_, rest, _ = strings.Cut(rest, ".")
	}
	tok, _, _ := strings.Cut(rest, ".")
	// As nats.go's parser.ParseNum: anything but digits reads as 0.
	var ns uint64
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < '0' || c > '9' {
			ns = 0
			break
		}
		ns = ns*10 + uint64(c-'0')
	}
	return time.Unix(0, int64(ns)), true
}

// failureKind is the dead-letter failure of an unsendable message.
func (p *prepared) failureKind() string {
	if p.failure != "" {
		return p.failure
	}
	return streams.FailureDecode
}

// prepare reads msg and tells whether its event is to be sent. If not, it
// has acked or termed msg itself, or p.undecodable says why msg is to be
// dead-lettered; the caller does that, so that a batch being filled does
// not wait for the dead-letter stream.
func (d *Dispatcher) prepare(msg jetstream.Msg) (p prepared, send bool) {
	p.msg = msg
	stored, ok := ackTimestamp(msg.Reply())
	if !ok {
		_, err := msg.Metadata() // for its reason
		d.log.Error("message without jetstream metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return p, false
	}
	p.stored = stored
	var err error
	// Replays of vrelay before 0.2 came through the event stream, marked
	// for their route.
	if r := msg.Headers().Get(streams.HeaderReplayRoute); r != "" && r != d.route.Name {
		d.metrics.outcome(filtered)
		d.ack(msg)
		return p, false
	}
	headers := false
	if d.headersOnly {
		p.ev, headers = streams.DecodeHeaders(msg.Headers())
	}
	if !headers {
		if p.ev, err = streams.Decode(msg.Data()); err != nil {
			p.undecodable = err
			return p, false
		}
	}
	if f := d.route.Filter; f != nil {
		ok, err := f.Match(p.ev)
		var dataErr *filters.DataError
		switch {
		case errors.As(err, &dataErr):
			p.undecodable = err
			return p, false
		case err != nil:
			d.metrics.outcome(filterError)
			d.filterErrLog.do(func(suppressed int) {
				d.log.Warn("filter failed at run time; event counted as not matching",
					"err", err, "event_id", p.ev.ID(), "suppressed", suppressed)
			})
			d.ack(msg)
			return p, false
		case !ok:
			d.metrics.outcome(filtered)
			d.ack(msg)
			return p, false
		}
	}
	if t := d.route.Transform; t != nil {
		res, err := t.Apply(p.ev)
		var dataErr *filters.DataError
		switch {
		case errors.As(err, &dataErr):
			p.undecodable = fmt.Errorf("route %q: %w", d.route.Name, err)
			return p, false
		case err != nil:
			// The same transform fails the same way on a retry.
			p.undecodable, p.failure = fmt.Errorf("route %q: %w", d.route.Name, err), streams.FailurePermanent
			return p, false
		case res.Dropped:
			d.metrics.outcome(filtered)
			d.ack(msg)
			return p, false
		}
		p.ev, p.changed = res.Event, res.Changed
	}
	return p, true
}

// handle takes one message to its outcome, sending it alone. It never
// returns without having acked, naked or termed the message, except when
// the connection is gone, in which case JetStream redelivers after AckWait.
// sc, if not nil, is the worker's context for its sends.
func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg, slot *sendSlot, sc *sendContext) {
	p, send := d.prepare(msg)
	if !send {
		if p.undecodable != nil {
			d.deadLetter(ctx, &p, p.failureKind(), p.undecodable)
		}
		return
	}
	d.settle(ctx, &p, d.send(ctx, &p, slot, sc))
}

// settle acks, naks or dead-letters one sent message on its own result.
func (d *Dispatcher) settle(ctx context.Context, p *prepared, err error) {
	switch {
	case err == nil:
		d.health.delivered(d.log)
	case ctx.Err() == nil:
		d.health.failed(d.log, err)
	}
	switch {
	case err == nil:
		d.metrics.outcome(delivered)
		end := p.sent
		if end.IsZero() {
			end = time.Now()
		}
		d.metrics.latency(end.Sub(p.stored))
		d.ack(p.msg)
	case ctx.Err() != nil || errors.Is(err, errStopping):
		// Shutting down: hand the event back for another replica or the next start.
		_ = p.msg.Nak()
	case IsPermanent(err):
		d.deadLetter(ctx, p, streams.FailurePermanent, err)
	case int(p.metadata().NumDelivered) >= d.route.Delivery.MaxAttempts:
		d.deadLetter(ctx, p, streams.FailureExhausted, err)
	default:
		delay := d.backoff(int(p.meta.NumDelivered))
		if ra, ok := RetryAfterDelay(err); ok && ra > delay {
			delay = min(ra, d.route.Delivery.Backoff.Max)
		}
		d.metrics.outcome(retry)
		d.log.Debug("delivery failed, will retry", "err", err, "event_id", p.ev.ID(),
			"attempt", p.meta.NumDelivered, "retry_in", delay)
		if err := p.msg.NakWithDelay(delay); err != nil {
			d.log.Warn("nak failed; jetstream redelivers after ack wait", "err", err)
		}
	}
}

// send makes one attempt, telling JetStream the event is still being worked
// on when the attempt outlasts half the ack wait (see [progress]). sc, if
// not nil, is the worker's context for its sends, which ctx must be the
// parent of.
func (d *Dispatcher) send(ctx context.Context, p *prepared, slot *sendSlot, sc *sendContext) error {
	start := time.Now()
	slot.begin(p.msg, start)
	if d.limit != nil {
		if err := d.waitRate(ctx, 1); err != nil {
			slot.end()
			return err
		}
		start = time.Now()
	}
	// Unless a transform changed the event, a sink that sends structured
	// JSON may send the stored body as it is.
	var body []byte
	if !p.changed {
		body = p.msg.Data()
	}
	var err error
	if sc != nil {
		err = d.sink.Send(sc.begin(start, d.sendTimeout, body), p.ev)
		sc.end()
	} else {
		sctx, cancel := context.WithTimeout(ctx, d.sendTimeout)
		if body != nil {
			sctx = ContextWithEncoded(sctx, body)
		}
		err = d.sink.Send(sctx, p.ev)
		cancel()
	}
	slot.end()
	p.sent = time.Now()
	d.metrics.sendDuration(p.sent.Sub(start))
	return err
}

// batch is what one worker collects for one send to a [BatchSink]. Its
// slices are reused from one batch to the next.
type batch struct {
	items       []prepared // to send
	undecodable []prepared // to dead-letter
	evs         []event.Event
	msgs        []jetstream.Msg
	timer       *time.Timer
	since       time.Time // when the first message came
}

// batchWorker fills a batch, while no other worker fills one, sends it and
// settles each of its events, until the work channel is closed. stop is
// the route's context: once it is done, a batch that has not been sent yet
// is handed back at once. Sends and settling run on ctx.
func (d *Dispatcher) batchWorker(stop, ctx context.Context, work <-chan jetstream.Msg, filling chan struct{}, slot *sendSlot) {
	n := d.route.Delivery.MaxBatch
	b := &batch{
		items: make([]prepared, 0, n),
		evs:   make([]event.Event, 0, n),
		msgs:  make([]jetstream.Msg, 0, n),
		timer: time.NewTimer(time.Hour),
	}
	b.timer.Stop()
	for {
		filling <- struct{}{}
		open := d.fill(stop, work, b)
		<-filling
		d.flush(stop, ctx, b, slot)
		if !open {
			return
		}
	}
}

// fill collects prepared messages into b until it holds MaxBatch events to
// send, BatchWait has passed since its first message, or work is closed.
// Once stop is done it returns as soon as b holds anything, for flush to
// hand it back. It reports whether work is still open.
func (d *Dispatcher) fill(stop context.Context, work <-chan jetstream.Msg, b *batch) (open bool) {
	dl := d.route.Delivery
	var wait <-chan time.Time
	defer b.timer.Stop()
	done := stop.Done()
	for len(b.items) < dl.MaxBatch {
		pending := len(b.items) > 0 || len(b.undecodable) > 0
		if stop.Err() != nil {
			if pending {
				return true
			}
			done = nil // nothing to hand back: wait for work to close
		} else if wait == nil && pending {
			// An undecodable message starts the clock too: it must not
			// wait for a sendable one while its ack wait runs.
			b.since = time.Now()
			b.timer.Reset(dl.BatchWait)
			wait = b.timer.C
		}
		select {
		case msg, ok := <-work:
			if !ok {
				return false
			}
			d.add(b, msg)
		case <-wait:
			return true
		case <-done:
		}
	}
	return true
}

func (d *Dispatcher) add(b *batch, msg jetstream.Msg) {
	p, send := d.prepare(msg)
	switch {
	case send:
		b.items = append(b.items, p)
	case p.undecodable != nil:
		b.undecodable = append(b.undecodable, p)
	}
}

// flush sends b's events in one request and settles each on its own result,
// dead-letters its undecodable messages, and empties b.
func (d *Dispatcher) flush(stop, ctx context.Context, b *batch, slot *sendSlot) {
	for i := range b.undecodable {
		d.deadLetter(ctx, &b.undecodable[i], b.undecodable[i].failureKind(), b.undecodable[i].undecodable)
	}
	switch {
	case len(b.items) == 0:
	case stop.Err() != nil:
		// Shutting down before the send began: hand the events back at once.
		for i := range b.items {
			_ = b.items[i].msg.Nak()
		}
	default:
		errs := d.sendBatch(ctx, b, slot)
		for i := range b.items {
			d.settle(ctx, &b.items[i], errs[i])
		}
	}
	clear(b.items)
	clear(b.undecodable)
	clear(b.evs)
	clear(b.msgs)
	b.items, b.undecodable, b.evs, b.msgs = b.items[:0], b.undecodable[:0], b.evs[:0], b.msgs[:0]
}

// sendBatch makes one attempt for the whole batch and returns one result
// per event. A sink that answers with a wrong number of results failed the
// whole batch, retryably.
func (d *Dispatcher) sendBatch(ctx context.Context, b *batch, slot *sendSlot) []error {
	for i := range b.items {
		b.evs = append(b.evs, b.items[i].ev)
		b.msgs = append(b.msgs, b.items[i].msg)
	}
	// The first message's ack wait runs since it came: count progress from then.
	slot.beginBatch(b.msgs, b.since)
	if err := d.waitRate(ctx, len(b.evs)); err != nil {
		slot.end()
		errs := make([]error, len(b.items))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	ctx, cancel := context.WithTimeout(ctx, d.route.Delivery.SendTimeout)
	defer cancel()
	start := time.Now()
	errs := d.batch.SendBatch(ctx, b.evs)
	slot.end()
	d.metrics.sendDuration(time.Since(start))
	if len(errs) != len(b.items) {
		d.log.Error("sink returned a wrong number of results; the whole batch will be retried",
			"results", len(errs), "events", len(b.items))
		err := fmt.Errorf("sink returned %d results for a batch of %d events", len(errs), len(b.items))
		errs = make([]error, len(b.items))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// deadLetter stores the event on the route's dead-letter subject and then
// terms it. If the dead-letter stream does not take it, the event is naked
// and will come back: it is never dropped. An ordered route is not naked:
// its lane tries again in place. It reports whether the dead letter was stored.
func (d *Dispatcher) deadLetter(ctx context.Context, p *prepared, kind string, cause error) bool {
	msg, meta := p.msg, p.metadata()
	dl := streams.DeadLetter{
		Route:    d.route.Name,
		Reason:   cause.Error(),
		Failure:  kind,
		Attempts: int(meta.NumDelivered),
		FailedAt: time.Now(),
		Origin:   streams.OriginOf(msg.Subject(), msg.Headers(), meta),
	}
	m := dl.Msg(msg.Data(), msg.Headers(), meta.Stream, meta.Sequence.Stream)

	pctx, cancel := context.WithTimeout(ctx, d.route.Delivery.SendTimeout)
	defer cancel()
	if _, err := d.js.PublishMsg(pctx, m, jetstream.WithExpectStream(streams.DLQStream)); err != nil {
		d.metrics.dlqError()
		d.log.Error("dead-letter publish failed; event will be retried", "err", err,
			"stream", meta.Stream, "stream_seq", meta.Sequence.Stream)
		if d.order == nil {
			_ = msg.NakWithDelay(d.backoff(1))
		}
		return false
	}
	d.metrics.outcome(deadLettered)
	d.log.Warn("event dead-lettered", "failure", kind, "reason", truncate(dl.Reason, 1024),
		"stream", meta.Stream, "stream_seq", meta.Sequence.Stream, "attempts", meta.NumDelivered,
		"subject", dl.Origin.Subject, "origin_seq", dl.Origin.Sequence)
	if err := msg.TermWithReason(kind); err != nil {
		// The dead letter is stored; a redelivery would store it again under
		// the same Nats-Msg-Id, which the DLQ's duplicate window drops.
		d.log.Warn("term after dead-letter failed", "err", err)
	}
	return true
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
	return backoff.Policy{Initial: b.Initial, Max: b.Max, Jitter: true}.Delay(n)
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
// InProgress on each message of a send (one event, or every event of a
// batch) once the send (or its last InProgress) is every old, checking
// every eighth of the ack wait, so the call comes at most 5/8 of the ack
// wait after the last one. One goroutine does it for all the workers; a
// timer per send cost more than the rest of the dispatcher's own work on a
// busy route.
type progress struct {
	every time.Duration // half the ack wait
	mu    sync.Mutex
	slots []*sendSlot
}

// sendSlot is a worker's send under way.
type sendSlot struct {
	mu    sync.Mutex
	msgs  []jetstream.Msg  // the send's messages; nil between sends
	one   [1]jetstream.Msg // holds the message of a single send, which then costs no allocation
	since time.Time        // when the send began or InProgress was last called
}

// slot returns a new slot for a worker.
func (p *progress) slot() *sendSlot {
	s := &sendSlot{}
	p.mu.Lock()
	p.slots = append(p.slots, s)
	p.mu.Unlock()
	return s
}

// begin marks the send of one message.
func (s *sendSlot) begin(msg jetstream.Msg, now time.Time) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.one[0] = msg
	s.msgs, s.since = s.one[:], now
	s.mu.Unlock()
}

// beginBatch marks the send of a batch. The slot reads msgs until end.
func (s *sendSlot) beginBatch(msgs []jetstream.Msg, now time.Time) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.msgs, s.since = msgs, now
	s.mu.Unlock()
}

func (s *sendSlot) end() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.msgs, s.one[0] = nil, nil
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
				s.tick(now, p.every)
			}
		}
	}
}

// tick calls InProgress on the slot's messages if they are due. It holds
// the slot's lock meanwhile, so that the worker does not reuse the batch
// under it; InProgress only queues a publish.
func (s *sendSlot) tick(now time.Time, every time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.msgs == nil || now.Sub(s.since) < every {
		return
	}
	s.since = now
	for _, m := range s.msgs {
		_ = m.InProgress()
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
