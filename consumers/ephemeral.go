package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ReplayWindow is what [WithEphemeral] replays: the events stored from
// Since up to and including Until.
type ReplayWindow struct {
	// Since is the time of the first event to replay.
	Since time.Time
	// Until bounds the replay; zero means when the replay starts. Events
	// stored after the replay starts are never part of it.
	Until time.Time
	// Progress, if set, is called about four times a second while the
	// replay runs, from one goroutine.
	Progress func(ReplayStats)
}

// ReplayStats counts what a replay did. Every event of the window that the
// route's subjects select counts once in Total and, once settled, once in
// Delivered, Filtered or DeadLettered.
type ReplayStats struct {
	// Total is how many events the window holds for the route. While the
	// replay runs it is the count taken when it started; at the end, the
	// events that came.
	Total int
	// Delivered, Filtered (by the route's filter, or failing it) and
	// DeadLettered are the events settled so far.
	Delivered, Filtered, DeadLettered int
}

// Settled is how many events of the window are done with.
func (s ReplayStats) Settled() int { return s.Delivered + s.Filtered + s.DeadLettered }

// WithEphemeral makes the dispatcher replay a window of the event stream
// to its route once, for [Dispatcher.Replay], instead of following its
// durable consumer: it reads through an ephemeral consumer that starts at
// w.Since, and reads no replays of dead letters. The route's filter, sink,
// retries and dead-lettering apply as they do for the durable consumer;
// nothing is copied into the event stream and the route's durable consumer
// is neither created nor moved. Such a dispatcher is for Replay only: its
// Run and Ensure would leave the ephemeral consumer to the server's
// inactivity timeout.
func WithEphemeral(w ReplayWindow) Option {
	return func(o *options) { o.ephemeral = &w }
}

// ephemeralInactive is how long the server keeps a replay's consumer after
// its last pull, should the replay die without deleting it.
const ephemeralInactive = time.Minute

// ephemeral is the state of a replay.
type ephemeral struct {
	win     ReplayWindow
	done    chan struct{} // closed when the replay returns
	watcher sync.WaitGroup

	mu          sync.Mutex
	stop        context.CancelFunc // ends the dispatcher's Run
	cons        jetstream.Consumer
	lastSeq     uint64              // the last stream sequence of the window
	outstanding map[uint64]struct{} // received, not settled yet
	seen        int                 // distinct events of the window received
	reachedEnd  bool                // an event beyond the window came
	finished    bool
	stats       ReplayStats
}

// Replay delivers the window of a dispatcher made [WithEphemeral] and
// returns once every event of it is settled (delivered, filtered out or
// dead-lettered), or ctx is done. It deletes its consumer on the way out.
// A failing event is retried on the route's backoff up to its maxAttempts,
// so a replay to a sink that is down lasts as long as the route's retries.
func (d *Dispatcher) Replay(ctx context.Context) (ReplayStats, error) {
	e := d.ephemeral
	if e == nil {
		return ReplayStats{}, errors.New("replay needs a dispatcher made WithEphemeral")
	}
	// Run stops when its context ends: the replay ends it once done.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	e.stop = cancel
	e.mu.Unlock()
	err := d.Run(rctx)
	close(e.done)
	e.watcher.Wait()
	e.mu.Lock()
	cons, finished := e.cons, e.finished
	stats := e.stats
	stats.Total = e.seen
	e.mu.Unlock()
	if finished && errors.Is(err, context.Canceled) && ctx.Err() == nil {
		err = nil
	}
	if cons != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		name := cons.CachedInfo().Name
		if derr := d.js.DeleteConsumer(dctx, d.stream, name); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
			err = errors.Join(err, fmt.Errorf("delete replay consumer %s (the server removes it after %s): %w", name, ephemeralInactive, derr))
		}
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return stats, err
}

func newEphemeral(w *ReplayWindow, m *routeMetrics) *ephemeral {
	e := &ephemeral{win: *w, done: make(chan struct{}), outstanding: map[uint64]struct{}{}}
	m.observe = e.count
	return e
}

// ephemeralMetrics returns m, or metrics nobody reads: a replay counts its
// outcomes through them.
func ephemeralMetrics(m *Metrics) *Metrics {
	if m != nil {
		return m
	}
	return NewMetrics(prometheus.NewRegistry())
}

func (e *ephemeral) count(o outcome) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch o {
	case delivered:
		e.stats.Delivered++
	case filtered, filterError:
		e.stats.Filtered++
	case deadLettered:
		e.stats.DeadLettered++
	}
}

// ensure creates the replay's consumer and finds the end of its window.
// The second consumer it returns has no messages: a replay reads no
// replays of dead letters.
func (e *ephemeral) ensure(ctx context.Context, d *Dispatcher) (events, replays jetstream.Consumer, err error) {
	s, err := d.js.Stream(ctx, d.stream)
	if err != nil {
		return nil, nil, fmt.Errorf("stream %s: %w", d.stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	if !e.win.Until.IsZero() {
		// The first event after Until ends the window.
		next, found, err := seqAtOrAfter(ctx, d.js, d.stream, e.win.Until.Add(time.Nanosecond))
		if err != nil {
			return nil, nil, err
		}
		if found {
			last = min(last, next-1)
		}
	}
	dl := d.route.Delivery
	since := e.win.Since
	cc := jetstream.ConsumerConfig{
		Description:       "vrelay route replay " + d.route.Name,
		FilterSubjects:    d.route.Subjects,
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &since,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           dl.AckWait,
		MaxDeliver:        -1,
		MaxAckPending:     dl.MaxAckPending,
		InactiveThreshold: ephemeralInactive,
		MemoryStorage:     true,
	}
	c, err := d.js.CreateConsumer(ctx, d.stream, cc)
	if err != nil {
		return nil, nil, fmt.Errorf("create replay consumer on %s: %w", d.stream, err)
	}
	total := c.CachedInfo().NumPending
	if beyond, err := e.pendingAfter(ctx, d, last); err == nil {
		total -= min(total, beyond)
	}
	e.mu.Lock()
	e.cons, e.lastSeq, e.stats.Total = c, last, int(total)
	e.mu.Unlock()
	return &ephemeralConsumer{Consumer: c, e: e}, idleConsumer{}, nil
}

// pendingAfter counts the events of the route's subjects stored after
// stream sequence seq.
func (e *ephemeral) pendingAfter(ctx context.Context, d *Dispatcher, seq uint64) (uint64, error) {
	c, err := d.js.CreateConsumer(ctx, d.stream, jetstream.ConsumerConfig{
		Description:       "vrelay route replay count " + d.route.Name,
		FilterSubjects:    d.route.Subjects,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       seq + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: ephemeralInactive,
		MemoryStorage:     true,
	})
	if err != nil {
		return 0, err
	}
	n := c.CachedInfo().NumPending
	_ = d.js.DeleteConsumer(ctx, d.stream, c.CachedInfo().Name)
	return n, nil
}

// seqAtOrAfter returns the sequence of the first message of stream stored
// at t or later. The JetStream API can look a message up by time, which
// nats.go does not offer yet.
func seqAtOrAfter(ctx context.Context, js jetstream.JetStream, stream string, t time.Time) (uint64, bool, error) {
	req, err := json.Marshal(struct {
		StartTime time.Time `json:"start_time"`
		NoHeaders bool      `json:"no_hdr"`
	}{t.UTC(), true})
	if err != nil {
		return 0, false, err
	}
	msg, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return 0, false, fmt.Errorf("find the first event after %s: %w", t.Format(time.RFC3339), err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, false, fmt.Errorf("find the first event after %s: %w", t.Format(time.RFC3339), err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == int(jetstream.JSErrCodeMessageNotFound):
		return 0, false, nil
	case resp.Error != nil:
		return 0, false, fmt.Errorf("find the first event after %s: %s (%d)", t.Format(time.RFC3339), resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return 0, false, nil
	}
	return resp.Message.Seq, true, nil
}

// receive tracks a message of the replay's consumer. It reports false for
// a message beyond the window, which is acked and not delivered.
func (e *ephemeral) receive(msg jetstream.Msg) (jetstream.Msg, bool) {
	meta, err := msg.Metadata()
	if err != nil {
		return msg, true // the dispatcher terms it
	}
	seq := meta.Sequence.Stream
	e.mu.Lock()
	defer e.mu.Unlock()
	if seq > e.lastSeq {
		_ = msg.Ack()
		// Events come in order of sequence, redeliveries aside: every event
		// of the window came before this one.
		e.reachedEnd = true
		e.finishLocked()
		return nil, false
	}
	if _, ok := e.outstanding[seq]; !ok {
		e.outstanding[seq] = struct{}{}
		e.seen++
	}
	return &ephemeralMsg{Msg: msg, e: e, seq: seq}, true
}

// settled records that the event at seq is done with.
func (e *ephemeral) settled(seq uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.outstanding, seq)
	e.finishLocked()
}

// finishLocked stops the replay once every event of the window came and
// is settled.
func (e *ephemeral) finishLocked() {
	if e.finished || !e.reachedEnd || len(e.outstanding) > 0 {
		return
	}
	e.finished = true
	if e.stop != nil {
		e.stop()
	}
}

// watch ends the replay when the consumer has nothing left, which the
// messages alone cannot tell when no event follows the window, and
// reports progress.
func (e *ephemeral) watch(cons jetstream.Consumer) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-e.done:
			// The last word: what the replay did.
			e.mu.Lock()
			stats := e.stats
			if e.finished {
				stats.Total = e.seen
			}
			e.mu.Unlock()
			if e.win.Progress != nil {
				e.win.Progress(stats)
			}
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		info, err := cons.Info(ctx)
		cancel()
		e.mu.Lock()
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			// Every event was received and acked or termed.
			e.reachedEnd = true
			e.finishLocked()
		}
		stats, finished := e.stats, e.finished
		e.mu.Unlock()
		if e.win.Progress != nil && !finished {
			e.win.Progress(stats)
		}
	}
}

// ephemeralConsumer is the replay's consumer, whose messages are tracked.
type ephemeralConsumer struct {
	jetstream.Consumer
	e *ephemeral
}

func (c *ephemeralConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	it, err := c.Consumer.Messages(opts...)
	if err != nil {
		return nil, err
	}
	c.e.watcher.Go(func() { c.e.watch(c.Consumer) })
	return &ephemeralIter{MessagesContext: it, e: c.e}, nil
}

// Consume is what the unordered dispatcher pulls with: the handler sees
// the window's events only, each tracked until it is settled.
func (c *ephemeralConsumer) Consume(handler jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	cc, err := c.Consumer.Consume(func(msg jetstream.Msg) {
		if m, ok := c.e.receive(msg); ok {
			handler(m)
		}
	}, opts...)
	if err != nil {
		return nil, err
	}
	c.e.watcher.Go(func() { c.e.watch(c.Consumer) })
	return cc, nil
}

type ephemeralIter struct {
	jetstream.MessagesContext
	e *ephemeral
}

func (it *ephemeralIter) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	for {
		msg, err := it.MessagesContext.Next(opts...)
		if err != nil {
			return nil, err
		}
		if m, ok := it.e.receive(msg); ok {
			return m, nil
		}
	}
}

// ephemeralMsg tells the replay when its event is settled: acked or
// termed. A nak leaves it outstanding: it comes back.
type ephemeralMsg struct {
	jetstream.Msg
	e   *ephemeral
	seq uint64
}

func (m *ephemeralMsg) Ack() error { return m.settle(m.Msg.Ack()) }

func (m *ephemeralMsg) DoubleAck(ctx context.Context) error { return m.settle(m.Msg.DoubleAck(ctx)) }

func (m *ephemeralMsg) Term() error { return m.settle(m.Msg.Term()) }

func (m *ephemeralMsg) TermWithReason(reason string) error {
	return m.settle(m.Msg.TermWithReason(reason))
}

func (m *ephemeralMsg) settle(err error) error {
	if err == nil {
		m.e.settled(m.seq)
	}
	return err
}

// idleConsumer has no messages: its iterator waits until it is stopped.
type idleConsumer struct{ jetstream.Consumer }

func (idleConsumer) Messages(...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	return &idleIter{closed: make(chan struct{})}, nil
}

func (idleConsumer) Consume(jetstream.MessageHandler, ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	return &idleIter{closed: make(chan struct{})}, nil
}

// idleIter is both an iterator and a consume context without messages.
type idleIter struct {
	once   sync.Once
	closed chan struct{}
}

func (i *idleIter) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	<-i.closed
	return nil, jetstream.ErrMsgIteratorClosed
}

func (i *idleIter) Stop()  { i.once.Do(func() { close(i.closed) }) }
func (i *idleIter) Drain() { i.Stop() }

func (i *idleIter) Closed() <-chan struct{} { return i.closed }
