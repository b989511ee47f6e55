package consumers

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/streams"
)

// Ordered delivery (Delivery.OrderBy).
//
// Each event gets a key from the route's orderBy expression. Events of one
// key wait in a lane, sorted by stream sequence; only the head of a lane is
// sent, and the next event of the key goes once the head is settled (its
// ack confirmed by the server, or its dead letter stored and termed). Heads
// of different lanes go in parallel, up to MaxInFlight, oldest first. A
// head that fails is retried in place after the route's backoff, not
// naked: a nak would let later events of its key overtake it. Every event
// a lane holds is kept alive with InProgress, so JetStream does not hand
// it out again while it waits.
//
// Two things could still let a later event of a key overtake an earlier
// one, and the dispatcher rules out both:
//
//   - Events that another process (one that crashed, or the replica that
//     was pinned before) received and never settled come back only after
//     their ack wait, while new events flow at once. So the dispatcher
//     holds every event it receives, sends nothing, until all the events
//     the consumer has outstanding are in its own hands: it compares the
//     consumer's NumAckPending with the events it holds that were
//     delivered before the consumer info was read. It holds at start, and
//     again whenever the consumer sequence of the deliveries it gets jumps,
//     which is when some delivery went elsewhere (or was lost with a
//     connection). After a crash an ordered route thus resumes within an
//     ack wait.
//   - Replicas of vrelay on one external NATS share the route's consumer.
//     The consumer of an ordered route has a priority group with the
//     pinned-client policy, so that only one replica receives; when it
//     goes away, another is pinned after the pinned TTL.

// DefaultPinnedTTL is how long the consumer of an ordered route waits for
// a new pull request of its pinned replica before it pins another one.
const DefaultPinnedTTL = 30 * time.Second

// orderGroup is the priority group of the consumer of an ordered route.
const orderGroup = "ordered"

// barrierPoll is how often a dispatcher that holds events reads its
// consumer's info to learn whether it may go on.
const barrierPoll = 500 * time.Millisecond

type pinning struct {
	ttl time.Duration
	off bool
}

// WithPinnedTTL sets the PinnedTTL of ordered routes' consumers: how long
// after its pinned replica stopped pulling another one takes over.
// Default [DefaultPinnedTTL]. Pull requests of an ordered route expire
// within a quarter of it (at least 1s), so a live replica keeps its pin.
func WithPinnedTTL(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.pinned.ttl = d
		}
	}
}

// WithPinning(false) leaves ordered routes' consumers without a priority
// group. Only for a route that one process consumes, such as vrelay with
// its embedded NATS server: a restarted process then does not wait for the
// pin of its predecessor to time out. Default: pinning on.
func WithPinning(on bool) Option { return func(o *options) { o.pinned.off = !on } }

func (o options) pinnedTTL(ordered bool) time.Duration {
	switch {
	case !ordered || o.pinned.off:
		return 0
	case o.pinned.ttl > 0:
		return o.pinned.ttl
	}
	return DefaultPinnedTTL
}

// pin sets the pinned-client policy on the consumer of an ordered route.
func (d *Dispatcher) pin(cc *jetstream.ConsumerConfig) {
	if d.pinnedTTL <= 0 {
		return
	}
	cc.PriorityPolicy = jetstream.PriorityPolicyPinned
	cc.PriorityGroups = []string{orderGroup}
	cc.PinnedTTL = d.pinnedTTL
}

// orderKey is a route's compiled orderBy.
type orderKey struct {
	value *filters.Value // nil when every event has the one key ""
}

// CheckOrderBy reports whether src compiles as a route's delivery.orderBy:
// nil, or a *[filters.CompileError] with the position.
func CheckOrderBy(src string) error {
	_, err := compileOrder(&src)
	return err
}

func compileOrder(src *string) (*orderKey, error) {
	if src == nil {
		return nil, nil
	}
	if strings.TrimSpace(*src) == "" {
		return &orderKey{}, nil
	}
	v, err := filters.CompileValue(*src)
	if err != nil {
		return nil, err
	}
	return &orderKey{value: v}, nil
}

// laneID names a lane: a key, or the default lane of events without one.
type laneID struct {
	key   string
	unset bool
}

// of returns the lane of ev. An error says why ev has no key; ev then goes
// to the default lane.
func (k *orderKey) of(ev event.Event) (laneID, error) {
	if k.value == nil {
		return laneID{}, nil
	}
	v, err := k.value.Eval(ev)
	if err != nil {
		return laneID{unset: true}, err
	}
	switch v := v.(type) {
	case nil:
		return laneID{unset: true}, nil
	case string:
		return laneID{key: v}, nil
	case bool:
		return laneID{key: strconv.FormatBool(v)}, nil
	case int:
		return laneID{key: strconv.Itoa(v)}, nil
	case int64:
		return laneID{key: strconv.FormatInt(v, 10)}, nil
	case float64:
		return laneID{key: strconv.FormatFloat(v, 'g', -1, 64)}, nil
	case int8, int16, int32, uint, uint8, uint16, uint32, uint64, float32:
		return laneID{key: fmt.Sprint(v)}, nil
	}
	return laneID{unset: true}, fmt.Errorf("orderBy returned %T, want string, number or bool", v)
}

// step is what a lane's head has yet to do.
type step uint8

const (
	stepSend       step = iota // be sent (again)
	stepAck                    // be acked: the sink took it
	stepDeadLetter             // be dead-lettered
)

// item is one event in a lane.
type item struct {
	p      prepared
	lane   *lane
	order  uint64 // stream sequence; 0 for a replay, which goes first
	dseq   uint64 // consumer sequence of its delivery; 0 for a replay
	replay bool
	first  uint64 // NumDelivered when it came
	tries  int    // attempts made by this process

	step    step
	failure string // of stepDeadLetter
	cause   error  // of stepDeadLetter

	busy     bool // given to a worker
	settling bool // acked or termed, or being: no longer pending for us
	touched  time.Time
	timer    *time.Timer // of a retry being waited for
}

// lane is the events of one key, oldest first.
type lane struct {
	id    laneID
	items []*item
	busy  bool // its head is with a worker or waits for a retry
	index int  // in the ready heap; -1 when not in it
}

// readyLanes is a heap of the lanes whose head may be sent, oldest head
// first, so that no key starves the others.
type readyLanes []*lane

func (h readyLanes) Len() int           { return len(h) }
func (h readyLanes) Less(i, j int) bool { return h[i].items[0].order < h[j].items[0].order }
func (h readyLanes) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *readyLanes) Push(x any) {
	l := x.(*lane)
	l.index = len(*h)
	*h = append(*h, l)
}
func (h *readyLanes) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	l.index = -1
	*h = old[:len(old)-1]
	return l
}

// scheduler is the lanes of an ordered route. Its workers take heads with
// next and report with finish or retryLater.
type scheduler struct {
	mu    sync.Mutex
	cond  sync.Cond
	lanes map[laneID]*lane
	ready readyLanes
	bySeq map[uint64]*item // events by stream sequence
	n     int              // items
	busy  int              // items with a worker
	wait  int              // heads waiting for a retry
	// held: send nothing until the events outstanding on the consumer are
	// all ours; lastDseq: the highest consumer sequence received.
	held     bool
	lastDseq uint64
	check    chan struct{} // asks the barrier watcher to look now
	closed   bool
	metrics  *routeMetrics
}

func newScheduler(m *routeMetrics) *scheduler {
	s := &scheduler{
		lanes:   map[laneID]*lane{},
		bySeq:   map[uint64]*item{},
		held:    true, // until the first look at the consumer
		check:   make(chan struct{}, 1),
		metrics: m,
	}
	s.cond.L = &s.mu
	return s
}

// observe notes the consumer sequence of a delivery of the event consumer.
// A jump means a delivery went elsewhere, or was lost: hold until the
// consumer says all that is outstanding is ours. It reports whether the
// scheduler began to hold.
func (s *scheduler) observe(dseq uint64) (began bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dseq > s.lastDseq+1 && !s.held {
		s.held, began = true, true
	}
	s.lastDseq = max(s.lastDseq, dseq)
	return began
}

// add puts it in its lane. A redelivery of an event the lane holds replaces
// the old delivery, unless that one is with a worker: its ack acks both.
func (s *scheduler) add(it *item, id laneID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !it.replay {
		if old := s.bySeq[it.order]; old != nil {
			if !old.busy {
				old.p.msg, old.p.meta, old.p.stored, old.dseq = it.p.msg, it.p.meta, it.p.stored, it.dseq
				old.touched = it.touched
			}
			return
		}
		s.bySeq[it.order] = it
	}
	l := s.lanes[id]
	if l == nil {
		l = &lane{id: id, index: -1}
		s.lanes[id] = l
	}
	it.lane = l
	// Insert by stream sequence among events, after any replay and never
	// before a head that is under way.
	i := len(l.items)
	lo := 0
	if l.busy {
		lo = 1
	}
	if !it.replay {
		for i > lo && !l.items[i-1].replay && l.items[i-1].order > it.order {
			i--
		}
	}
	l.items = append(l.items, nil)
	copy(l.items[i+1:], l.items[i:])
	l.items[i] = it
	s.n++
	switch {
	case l.busy:
	case l.index < 0:
		heap.Push(&s.ready, l)
		s.cond.Signal()
	case i == 0:
		heap.Fix(&s.ready, l.index)
	}
	s.report()
	if s.held && len(s.bySeq) == 1 {
		// The first event to hold: look at the consumer now.
		select {
		case s.check <- struct{}{}:
		default:
		}
	}
}

// next waits for a head to send and gives it to the calling worker; nil
// once the scheduler is closed.
func (s *scheduler) next() *item {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && (s.held || len(s.ready) == 0) {
		s.cond.Wait()
	}
	if s.closed {
		return nil
	}
	l := heap.Pop(&s.ready).(*lane)
	l.busy = true
	it := l.items[0]
	it.busy = true
	s.busy++
	s.report()
	return it
}

// settle marks it as acked or termed, or about to be: the consumer no
// longer counts it as ours.
func (s *scheduler) settle(it *item) {
	s.mu.Lock()
	it.settling = true
	s.mu.Unlock()
}

// finish takes it, its lane's head, out: the next event of its key may go.
func (s *scheduler) finish(it *item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(it)
	l := it.lane
	l.busy = false
	switch {
	case len(l.items) == 0:
		delete(s.lanes, l.id)
	case !s.closed:
		heap.Push(&s.ready, l)
		s.cond.Signal()
	}
	s.report()
}

func (s *scheduler) remove(it *item) {
	l := it.lane
	l.items = l.items[1:]
	if it.busy {
		s.busy--
	}
	s.n--
	if !it.replay {
		delete(s.bySeq, it.order)
	}
}

// retryLater gives it back to its lane after delay, as its head still.
func (s *scheduler) retryLater(it *item, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it.busy = false
	s.busy--
	if s.closed {
		return // handed back on the way out
	}
	s.wait++
	it.timer = time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || it.timer == nil {
			return
		}
		it.timer = nil
		s.wait--
		it.lane.busy = false
		heap.Push(&s.ready, it.lane)
		s.cond.Signal()
		s.report()
	})
	s.report()
}

// holding reports whether the scheduler holds events it could send.
func (s *scheduler) holding() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held && len(s.bySeq) > 0
}

// tryRelease ends the hold when the consumer's outstanding events, read
// with the consumer info (delivered up to consumer sequence delivered),
// are all ours. Events delivered since the info was read do not count:
// they were not in its figure. It reports whether it released.
func (s *scheduler) tryRelease(delivered uint64, ackPending int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.held {
		return false
	}
	ours := 0
	for _, it := range s.bySeq {
		if !it.settling && it.dseq <= delivered {
			ours++
		}
	}
	if ackPending > ours {
		return false
	}
	s.held = false
	s.lastDseq = max(s.lastDseq, delivered)
	s.cond.Broadcast()
	return true
}

// due returns the messages not touched for every, and touches them.
func (s *scheduler) due(now time.Time, every time.Duration, out []jetstream.Msg) []jetstream.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lanes {
		for _, it := range l.items {
			if !it.settling && now.Sub(it.touched) >= every {
				it.touched = now
				out = append(out, it.p.msg)
			}
		}
	}
	return out
}

// close stops handing out heads and waiting for retries.
func (s *scheduler) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cond.Broadcast()
	for _, l := range s.lanes {
		for _, it := range l.items {
			if it.timer != nil {
				it.timer.Stop()
				it.timer = nil
				s.wait--
			}
		}
	}
	s.report()
}

// rest returns the events still pending once the workers are gone.
func (s *scheduler) rest() []*item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var left []*item
	for _, l := range s.lanes {
		for _, it := range l.items {
			if !it.settling {
				left = append(left, it)
			}
		}
	}
	return left
}

// report sets the route's gauges. The lock is held.
func (s *scheduler) report() {
	s.metrics.ordered(s.wait, s.n-s.busy)
}

// runOrdered is [Dispatcher.Run] for a route with Delivery.OrderBy.
func (d *Dispatcher) runOrdered(ctx context.Context, cons, replayCons jetstream.Consumer) error {
	dl := d.route.Delivery
	// Consume, not Messages, for the reason given at [Dispatcher.consume]:
	// a frozen process drops no pulled message when it wakes. The handler
	// never blocks: the lanes take every message at once.
	s := newScheduler(d.metrics)
	errHandler := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		d.log.Warn("pull from consumer", "err", err)
	})
	pull := []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(d.pullSize()), jetstream.PullExpiry(PullExpiry), errHandler}
	evPull := pull
	if d.pinnedTTL > 0 {
		// The pinned replica keeps its pin by pulling within the TTL.
		exp := min(PullExpiry, max(d.pinnedTTL/4, time.Second))
		evPull = []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(d.pullSize()), jetstream.PullExpiry(exp),
			jetstream.PullPriorityGroup(orderGroup), errHandler}
	}
	events, err := cons.Consume(d.orderedIntake(ctx, s, false), evPull...)
	if err != nil {
		return fmt.Errorf("consume %s: %w", d.route.Name, err)
	}
	replays, err := replayCons.Consume(d.orderedIntake(ctx, s, true), pull...)
	if err != nil {
		events.Stop()
		return fmt.Errorf("consume replays of %s: %w", d.route.Name, err)
	}
	d.log.Info("route started", "subjects", d.route.Subjects, "max_in_flight", dl.MaxInFlight,
		"order_by", *dl.OrderBy, "pinned_ttl", d.pinnedTTL)

	sendCtx, cancelSends := context.WithCancel(withStop(ctx))
	defer cancelSends()
	var bg sync.WaitGroup
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	bg.Go(func() { d.watchPending(ctx, cons) })
	bg.Go(func() { d.watchBarrier(bgCtx, cons, s) })
	bg.Go(func() { d.keepAlive(bgCtx, s) })
	defer func() { stopBg(); bg.Wait() }()
	stopping := context.AfterFunc(ctx, func() {
		events.Drain()
		replays.Drain()
	})
	defer stopping()

	var workers sync.WaitGroup
	for range dl.MaxInFlight {
		workers.Go(func() {
			for it := s.next(); it != nil; it = s.next() {
				d.deliverHead(ctx, sendCtx, s, it)
			}
		})
	}
	// Draining hands every message still queued to the intake, which
	// gives it back; Closed comes once the last one went through.
	<-events.Closed()
	replays.Drain() // the event consumer stopped: so do the replays
	<-replays.Closed()

	// Let the sends under way finish, then hand back what is left: the
	// next start, or the next pinned replica, holds until it has it all.
	s.close()
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	t := time.NewTimer(d.shutdownWait())
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.log.Warn("sends still under way at shutdown timeout; they will be redelivered")
		cancelSends()
		<-done
	}
	for _, it := range s.rest() {
		_ = it.p.msg.Nak()
	}
	if d.pinnedTTL > 0 {
		// Hand the pin over now rather than after the TTL.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		if st, err := d.js.Stream(uctx, d.stream); err == nil {
			_ = st.UnpinConsumer(uctx, d.route.Name, orderGroup)
		}
		cancel()
	}
	d.log.Info("route stopped")
	return ctx.Err()
}

// orderedIntake returns the handler that puts the messages of one
// consumer in their lanes.
func (d *Dispatcher) orderedIntake(ctx context.Context, s *scheduler, replay bool) jetstream.MessageHandler {
	keyErrLog := &rateLimited{every: 10 * time.Second}
	return func(msg jetstream.Msg) {
		if ctx.Err() != nil {
			_ = msg.Nak()
			return
		}
		var dseq uint64
		if !replay {
			if meta, err := msg.Metadata(); err == nil {
				dseq = meta.Sequence.Consumer
				if s.observe(dseq) {
					d.log.Info("a delivery of the route went elsewhere or was lost; holding events until the consumer's outstanding events are all here",
						"consumer_seq", dseq)
					select {
					case s.check <- struct{}{}:
					default:
					}
				}
			}
		}
		p, send := d.prepare(msg)
		if !send && p.undecodable == nil {
			return
		}
		var id laneID
		if p.undecodable == nil {
			var kerr error
			if id, kerr = d.order.of(p.ev); kerr != nil {
				keyErrLog.do(func(suppressed int) {
					d.log.Warn("orderBy failed; event goes to the default lane", "err", kerr,
						"event_id", p.ev.ID(), "suppressed", suppressed)
				})
			}
		} else {
			id = laneID{unset: true}
		}
		meta := p.metadata() // a lane reads it for every attempt
		item := &item{p: p, dseq: dseq, replay: replay, first: meta.NumDelivered, touched: time.Now()}
		if !replay {
			item.order = meta.Sequence.Stream
		}
		s.add(item, id)
	}
}

// deliverHead takes a lane's head one step: a send and its settling, or a
// retry of an ack or dead letter that failed. stop is the route's context;
// ctx, the sends'.
func (d *Dispatcher) deliverHead(stop, ctx context.Context, s *scheduler, it *item) {
	dl := d.route.Delivery
	p := &it.p
	if it.step == stepSend && p.undecodable != nil {
		it.step, it.failure, it.cause = stepDeadLetter, p.failureKind(), p.undecodable
	}
	if it.step == stepSend {
		it.tries++
		// Retries in place do not count in NumDelivered: count them here,
		// for maxAttempts and the dead letter's attempts.
		p.meta.NumDelivered = it.first + uint64(it.tries) - 1
		err := d.send(ctx, p, nil, nil)
		switch {
		case err == nil:
			d.health.delivered(d.log)
		case ctx.Err() == nil && stop.Err() == nil:
			d.health.failed(d.log, err)
		}
		switch {
		case err == nil:
			d.metrics.outcome(delivered)
			d.metrics.latency(time.Since(p.meta.Timestamp))
			it.step = stepAck
		case ctx.Err() != nil || stop.Err() != nil:
			d.handBack(s, it)
			return
		case IsPermanent(err):
			it.step, it.failure, it.cause = stepDeadLetter, streams.FailurePermanent, err
		case int(p.meta.NumDelivered) >= dl.MaxAttempts:
			it.step, it.failure, it.cause = stepDeadLetter, streams.FailureExhausted, err
		default:
			delay := d.backoff(int(p.meta.NumDelivered))
			if ra, ok := RetryAfterDelay(err); ok && ra > delay {
				delay = min(ra, dl.Backoff.Max)
			}
			d.metrics.outcome(retry)
			d.log.Debug("delivery failed, will retry in place", "err", err, "event_id", p.ev.ID(),
				"attempt", p.meta.NumDelivered, "retry_in", delay)
			s.retryLater(it, delay)
			return
		}
	}
	switch it.step {
	case stepAck:
		// The next event of the key goes only once the server has the ack:
		// an ack lost with a crash would bring this event back after it.
		s.settle(it)
		actx, cancel := context.WithTimeout(ctx, dl.SendTimeout)
		err := p.msg.DoubleAck(actx)
		cancel()
		if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			if stop.Err() != nil {
				s.finish(it) // redelivered after the ack wait, if the ack was lost
				return
			}
			d.log.Warn("ack failed; trying again before the next event of the key", "err", err)
			s.retryLater(it, d.backoff(1))
			return
		}
		s.finish(it)
	case stepDeadLetter:
		if stop.Err() != nil {
			d.handBack(s, it)
			return
		}
		s.settle(it)
		if !d.deadLetter(ctx, p, it.failure, it.cause) {
			s.mu.Lock()
			it.settling = false
			s.mu.Unlock()
			s.retryLater(it, d.backoff(1))
			return
		}
		// Make sure the term reached the server before the next event of the key goes.
		fctx, cancel := context.WithTimeout(ctx, dl.SendTimeout)
		_ = d.js.Conn().FlushWithContext(fctx)
		cancel()
		s.finish(it)
	}
}

// handBack naks it on the way out.
func (d *Dispatcher) handBack(s *scheduler, it *item) {
	s.settle(it)
	_ = it.p.msg.Nak()
	s.finish(it)
}

// watchBarrier reads the consumer's info while the scheduler holds events,
// and releases them once the outstanding events are all ours.
func (d *Dispatcher) watchBarrier(ctx context.Context, cons jetstream.Consumer, s *scheduler) {
	// While it holds, look again soon, then less and less often: at start
	// the events the server delivered at once come in a few milliseconds.
	const first = 10 * time.Millisecond
	wait := first
	t := time.NewTimer(wait)
	defer t.Stop()
	var errLog rateLimited
	errLog.every = 30 * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.check:
			wait = first
		case <-t.C:
			wait = min(2*wait, barrierPoll)
		}
		t.Reset(wait)
		if !s.holding() {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err != nil {
			errLog.do(func(suppressed int) {
				d.log.Warn("read consumer info to resume ordered delivery", "err", err, "suppressed", suppressed)
			})
			continue
		}
		if s.tryRelease(info.Delivered.Consumer, info.NumAckPending) {
			d.log.Debug("ordered delivery goes on: the consumer's outstanding events are all here",
				"ack_pending", info.NumAckPending)
		}
	}
}

// keepAlive calls InProgress on the events the lanes hold, each at most
// every half ack wait, so that JetStream does not hand them out again.
func (d *Dispatcher) keepAlive(ctx context.Context, s *scheduler) {
	half := d.route.Delivery.AckWait / 2
	t := time.NewTicker(max(half/4, time.Millisecond))
	defer t.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			msgs = s.due(now, half, msgs[:0])
			for _, m := range msgs {
				_ = m.InProgress()
			}
			clear(msgs)
		}
	}
}
