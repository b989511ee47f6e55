package vcenter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/producers"
)

// saveTimeout bounds one checkpoint save, the last one on shutdown
// included.
const saveTimeout = 5 * time.Second

// flowPause is the pause between two drains while events flow. It bounds
// the delay it adds to an event that arrives while events flow (an event
// after a quiet spell wakes a wait at once), and lets each read return a
// page of the events of the pause rather than one or two.
const flowPause = 20 * time.Millisecond

// unwatchAfter is how many drains in a row must read events before the
// reader drops the property collector: events flow, not trickle in, so
// the calls to make a new one when they stop are worth it.
const unwatchAfter = 3

// errCollectorStale means vCenter reported events that the collector will
// not return: it lost its place, which the simulator does when a reader
// falls more than 1000 events behind. The watchdog (watchdog.go) then
// sweeps the missed range and makes a new collector.
var errCollectorStale = errors.New("event collector lost its place")

// Run connects to vCenter and publishes its events, in order, until ctx is
// done; then it saves the position and returns ctx.Err().
//
// Run loads the checkpoint first. A checkpoint that cannot be decoded is
// the one error Run returns ([ErrCorruptCheckpoint]): it needs an operator.
// Everything else — vCenter unreachable, rejected credentials, an untrusted
// certificate, a lost session, JetStream not answering — is logged once per
// attempt and retried with a backoff from 1s doubling to 60s, resuming after
// the last event JetStream stored.
//
// Each ReadNextEvents page is published with one pub.Publish call; the
// position advances only when it returned nil, and the checkpoint, saved
// every checkpoint.period and on shutdown, only ever holds an advanced
// position. When idle, Run waits on vCenter's PropertyCollector for the
// collector's latest page to change, so a new event is read at once; the
// wait ends after pollInterval anyway and Run reads again. While events
// flow, Run does not wait: it reads again flowPause after a drain that
// read events, until one reads none.
//
// A Source runs once at a time; it may run again after Run returned.
func (s *Source) Run(ctx context.Context, pub producers.Publisher) error {
	if !s.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	defer s.running.Store(false)

	r := &reader{s: s, pub: pub, log: s.log}
	r.outage.Every = s.outage
	cp, err := r.load(ctx)
	if err != nil {
		return err
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		r.checkpoints(stop)
	}()
	err = r.loop(ctx, cp)
	close(stop)
	<-stopped
	return err
}

// reader is the state of one Run.
type reader struct {
	s   *Source
	pub producers.Publisher
	log *slog.Logger
	// outage decides which failures to log: see [producers.Outage].
	outage producers.Outage

	mu      sync.Mutex
	pos     position
	started bool     // pos is valid
	saved   position // what the checkpoint holds
}

func (r *reader) position() position {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pos
}

// load reads the checkpoint, retrying while the bucket does not answer.
// It returns nil when there is none.
func (r *reader) load(ctx context.Context) (*checkpoint, error) {
	if r.s.cp == nil {
		return nil, nil
	}
	key := r.s.cpKey
	for attempt := 1; ; attempt++ {
		b, err := r.s.cp.Load(ctx, key)
		if errors.Is(err, producers.ErrNoCheckpoint) {
			return nil, nil
		}
		if err == nil {
			cp, err := parseCheckpoint(b)
			if err != nil {
				return nil, corruptCheckpoint(key, err)
			}
			return &cp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		wait := r.s.backoff(attempt)
		r.log.Warn("cannot load the checkpoint; retrying", "checkpoint_key", key, "attempt", attempt, "retry_in", wait, "err", err)
		if !backoff.Sleep(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// loop runs sessions until ctx is done, with a backoff between failures.
func (r *reader) loop(ctx context.Context, cp *checkpoint) error {
	failures := 0
	for {
		progressed, err := r.session(ctx, &cp)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if progressed {
			failures = 0
		}
		failures++
		r.s.metrics.disconnects.Inc()
		wait := r.s.backoff(failures)
		if first, since := r.s.failed(err); first {
			r.s.health.Emit(ctx, producers.HealthConnectionLost, map[string]any{
				"error": r.s.state.lastErrorLine(), "since": since.UTC(),
			})
		}
		log, n, total := r.outage.Failed()
		if !log {
			if !backoff.Sleep(ctx, wait) {
				return ctx.Err()
			}
			continue
		}
		// The first failure of an outage, or the first after the outage
		// interval: say what went wrong and how often since the last line.
		args := []any{"vcenter", r.s.sdk.String(), "attempt", failures, "retry_in", wait, "err", err,
			"failed_attempts", n, "failed_attempts_total", total}
		switch {
		case isBadLogin(err):
			r.log.Error("vcenter rejected the username or password; fix the credentials. Retrying",
				append(args, "username", r.s.cfg.Username)...)
		case isUntrusted(err):
			r.log.Error("vcenter certificate is not trusted; set caFile to the CA that signed it (or skipTLSVerify on a lab vCenter). Retrying", args...)
		case isSessionLost(err):
			r.log.Warn("vcenter session lost; reconnecting", args...)
		case errors.Is(err, errCollectorStale):
			r.log.Warn("vcenter event collector lost its place, some events may be missing; reconnecting", args...)
		default:
			r.log.Error("vcenter connection failed; retrying", args...)
		}
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// session connects, positions a collector and publishes until an error.
// progressed says whether it got as far as reading events.
func (r *reader) session(ctx context.Context, cp **checkpoint) (progressed bool, err error) {
	c, err := r.s.dial(ctx)
	if err != nil {
		return false, err
	}
	defer c.close()
	uuid := c.about.InstanceUuid

	var last *checkpoint
	if !r.started {
		last = r.lastStored(ctx)
	}
	begin := r.start(c, cp, last)
	if err := c.follow(ctx, begin); err != nil {
		return false, err
	}
	r.s.metrics.connected.Set(1)
	defer r.s.metrics.connected.Set(0)
	if down, n, ok := r.outage.Restored(); ok {
		r.log.Info("vcenter answers again; reading resumes", "vcenter", r.s.sdk.String(),
			"failed_for", down.Round(time.Millisecond), "failed_attempts", n)
	}
	if since, n, ok := r.s.restored(); ok {
		r.s.health.Emit(ctx, producers.HealthConnectionRestored, map[string]any{
			"since": since.UTC(), "failedFor": time.Since(since).Round(time.Millisecond).String(), "failedAttempts": n,
		})
	}
	r.log.Info("reading vcenter events", "vcenter", r.s.sdk.String(), "instance_uuid", uuid,
		"api_version", c.about.ApiVersion, "begin", begin)

	conv := &Converter{
		Source:       r.s.sdk.String(),
		APIVersion:   c.about.ApiVersion,
		InstanceUUID: uuid,
		Format:       r.s.cfg.Format,
		Encoding:     r.s.cfg.PayloadEncoding,
	}
	if e := r.s.enricher; e != nil {
		defer e.start(ctx, c)()
		conv.Enrich = e.enrich
	}
	// Reading and publishing overlap: while one page waits for its
	// PubAcks, the next is read from vCenter. A busy vCenter outruns a
	// reader that does one after the other, and vCenter (or the simulator,
	// with its 1000 events) drops what a collector has not read in time.
	// One goroutine publishes the pages in order and advances the
	// position; the channel holds one page, so a stalled JetStream stops
	// the reading too.
	pages := make(chan batch, 1)
	pubErr := make(chan error, 1)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for page := range pages {
			if err := r.publish(ctx, conv, page.events, page.gap); err != nil {
				pubErr <- err
				return
			}
		}
	}()
	progressed, err = r.readLoop(ctx, c, begin, pages, pubDone)
	close(pages)
	<-pubDone
	select {
	case perr := <-pubErr:
		if err == nil || errors.Is(err, errPublisherStopped) {
			err = perr
		}
	default:
	}
	return progressed, err
}

// errPublisherStopped ends a read loop whose publisher gave up; the
// publisher's own error says why.
var errPublisherStopped = errors.New("publisher stopped")

// readLoop reads pages and hands them to the publisher until an error of
// its own, or the publisher stopped. progressed says whether any read
// succeeded.
func (r *reader) readLoop(ctx context.Context, c *conn, begin time.Time, pages chan<- batch, pubDone <-chan struct{}) (progressed bool, err error) {
	var (
		st staleness
		m  mark
	)
	if pos := r.position(); pos.hasKey {
		m = mark{key: pos.key, time: pos.begin, valid: true}
	}
	send := func(b batch) error {
		select {
		case pages <- b:
			return nil
		case <-pubDone:
			return errPublisherStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// drain reads the collector to its end; read says how many events
	// its pages held.
	drain := func() (read int, err error) {
		for {
			page, err := c.read(ctx)
			if err != nil {
				return read, err
			}
			progressed = true
			if r.s.readHook != nil {
				page = r.s.readHook(page)
			}
			read += len(page)
			r.resolve(page)
			gaps := jumps(m, page, r.s.cfg.PageSize)
			st.read(page)
			m.advance(page)
			if err := send(batch{events: page}); err != nil {
				return read, err
			}
			for _, g := range gaps {
				if err := r.sweepJump(ctx, c, g, send); err != nil {
					return read, err
				}
			}
			if len(page) < r.s.cfg.PageSize {
				return read, nil
			}
		}
	}
	// reported takes in the newest event a change of the latest page
	// reported (nil: none, or the wait timed out). unread says whether
	// it is one not read yet.
	reported := func(newest types.BaseEvent) (none, unread bool) {
		if r.s.waitHook != nil {
			newest = r.s.waitHook(newest)
		}
		st.reported(newest, r.position())
		if newest == nil {
			return true, false
		}
		return false, !m.covers(newest.GetEvent(), begin)
	}
	nextCheck := time.Now().Add(r.s.cfg.StallCheckInterval)
	flowing := 0 // drains in a row that read events
	for {
		read, err := drain()
		if err != nil {
			return progressed, err
		}
		// A collector that lost its place is a stall the watchdog can
		// see at once: check now rather than at the next interval.
		stale := st.check()
		if stale != nil {
			r.log.Warn("vcenter event collector lost its place, some events may be missing; checking vcenter's latest event", "err", stale)
		}
		if now := time.Now(); stale != nil || st.suspect() || !now.Before(nextCheck) {
			nextCheck = now.Add(r.s.cfg.StallCheckInterval)
			if err := r.check(ctx, c, &m, begin, func() error { _, err := drain(); return err }, send); err != nil {
				return progressed, err
			}
			// A new collector may have been made: start over.
			st = staleness{lastRead: m.key, haveRead: m.valid}
		}
		// While events flow, the next one is most likely there already
		// when a drain ends: read again after a short pause rather than
		// wait for a change that has happened. From the unwatchAfter-th
		// drain in a row that read events, nothing watches the latest page
		// (see conn.unwatch); the first empty drain watches it again.
		if read > 0 {
			if flowing++; flowing >= unwatchAfter {
				if err := c.unwatch(ctx); err != nil {
					return progressed, err
				}
			}
			if !backoff.Sleep(ctx, flowPause) {
				return progressed, ctx.Err()
			}
			continue
		}
		flowing = 0
		if !c.watching() {
			newest, err := c.watch(ctx)
			if err != nil {
				return progressed, err
			}
			if _, unread := reported(newest); unread {
				// It came between the last read and the watch, so no
				// wait would report it.
				continue
			}
		}
		// Wait until vCenter reports an event not read yet, the wait
		// times out (then read anyway), or the watchdog is due. A change
		// that reports an event already read needs no read.
		for {
			newest, err := c.wait(ctx)
			if err != nil {
				return progressed, err
			}
			if none, unread := reported(newest); none || unread || !time.Now().Before(nextCheck) {
				break
			}
		}
	}
}

// staleness notices a collector that lost its place: vCenter reported an
// event (as the collector's latest page) that the collector did not return
// in the two drains that followed.
type staleness struct {
	lastRead int32 // newest key the collector returned
	haveRead bool
	expect   int32 // newest key vCenter reported and not read yet
	expected bool
	misses   int
}

func (s *staleness) read(page []types.BaseEvent) {
	if n := len(page); n > 0 && !isNilEvent(page[n-1]) {
		s.lastRead, s.haveRead = page[n-1].GetEvent().Key, true
	}
}

func (s *staleness) reported(newest types.BaseEvent, pos position) {
	if newest == nil {
		return
	}
	k := newest.GetEvent().Key
	if (!s.haveRead && !pos.covers(k)) || (s.haveRead && keyAfter(k, s.lastRead)) {
		s.expect, s.expected = k, true
	}
}

// suspect reports whether a drain missed the event vCenter reported:
// worth a look at vCenter's latest event (which drains once more before it
// calls it a stall).
func (s *staleness) suspect() bool { return s.expected && s.misses > 0 }

// check is called after a drain.
func (s *staleness) check() error {
	if !s.expected {
		return nil
	}
	if s.haveRead && !keyAfter(s.expect, s.lastRead) {
		s.expected, s.misses = false, 0
		return nil
	}
	if s.misses++; s.misses < 2 {
		return nil
	}
	return fmt.Errorf("%w: vcenter reported event %d, the collector returns nothing after %d",
		errCollectorStale, s.expect, s.lastRead)
}

// lastStored returns the position of the last event of this source in the
// stream, or nil without [WithLastStored] or when the stream holds none.
func (r *reader) lastStored(ctx context.Context) *checkpoint {
	if r.s.last == nil {
		return nil
	}
	st, err := r.s.last.Last(ctx)
	if errors.Is(err, producers.ErrNoEvent) {
		return nil
	}
	if err != nil {
		r.log.Warn("cannot read the last stored event; relying on the checkpoint", "err", err)
		return nil
	}
	i := strings.LastIndexByte(st.MsgID, ':')
	key, perr := strconv.ParseInt(st.MsgID[i+1:], 10, 32)
	if i < 0 || perr != nil || st.Event.Time().IsZero() {
		r.log.Warn("the last stored event has no vcenter key; relying on the checkpoint", "msg_id", st.MsgID)
		return nil
	}
	return &checkpoint{
		InstanceUUID:          st.MsgID[:i],
		LastEventKey:          int32(key),
		LastEventType:         storedType(&st.Event),
		LastEventKeyTimestamp: st.Event.Time(),
	}
}

// storedType is the vSphere event type of a CloudEvent this source made:
// the middle of a tanzu type, the subject of a router event.
func storedType(ev *event.Event) string {
	if t, ok := strings.CutPrefix(ev.Type(), tanzuTypePrefix); ok {
		return strings.TrimSuffix(t, tanzuTypeSuffix)
	}
	if ev.Subject() != "" {
		return ev.Subject()
	}
	return ev.Type()
}

// start decides where a new collector begins and sets the position:
// after the last published event while running; on the first connect,
// after the last event of this vCenter instance in the stream (last) or,
// failing that, after the checkpoint, bounded by checkpoint.maxAge; at
// vCenter's current time when there is no position, or the position belongs
// to another vCenter instance.
//
// The stream wins over the checkpoint because it is the truth: after a
// crash it is ahead of the checkpoint, which is saved only every
// checkpoint.period; after a power loss on a single node it can be behind
// it, if the stream lost its last writes and the bucket did not.
func (r *reader) start(c *conn, cp **checkpoint, last *checkpoint) time.Time {
	uuid, now := c.about.InstanceUuid, c.now
	r.mu.Lock()
	defer r.mu.Unlock()
	fresh := position{instance: uuid, begin: now}
	if !r.started && last != nil && last.InstanceUUID == uuid {
		switch prev := *cp; {
		case prev == nil || prev.InstanceUUID != uuid:
			r.log.Info("resuming after the last event of this vcenter in the stream",
				"checkpoint_key", r.s.cpKey, "last_event_key", last.LastEventKey)
		case keyAfter(prev.LastEventKey, last.LastEventKey):
			r.log.Warn("checkpoint is ahead of the stream (stream writes lost in a power failure?); resuming after the last stored event to recover the events in between",
				"checkpoint_key", r.s.cpKey, "checkpoint_event_key", prev.LastEventKey, "last_event_key", last.LastEventKey)
		}
		last.VCenter = r.s.sdk.String()
		*cp = last
	}
	switch {
	case r.started && r.pos.instance == uuid:
		// Resume after the last published event.
	case r.started:
		r.log.Warn("vcenter instance changed (replaced or restored?); starting at its current time",
			"instance_uuid", uuid, "previous_instance_uuid", r.pos.instance, "begin", now)
		r.pos = fresh
	case *cp != nil && (*cp).InstanceUUID != "" && (*cp).InstanceUUID != uuid:
		r.log.Warn("checkpoint belongs to another vcenter instance (replaced, restored, or a restarted simulator); ignoring it and starting at the current time",
			"checkpoint_key", r.s.cpKey, "checkpoint_instance_uuid", (*cp).InstanceUUID, "instance_uuid", uuid, "begin", now)
		r.pos = fresh
	case *cp != nil:
		p := *cp
		r.pos = position{instance: uuid, begin: p.LastEventKeyTimestamp, key: p.LastEventKey, typ: p.LastEventType, hasKey: true}
		r.saved = r.pos
		maxAge := *r.s.cfg.Checkpoint.MaxAge
		oldest := now.Add(-maxAge)
		switch {
		case maxAge == 0:
			r.log.Info("checkpoint.maxAge is 0s: not replaying, starting at the current time",
				"checkpoint_key", r.s.cpKey, "last_event_key", p.LastEventKey, "begin", now)
			r.pos.begin = now
		case r.pos.begin.Before(oldest):
			r.log.Warn("checkpoint is older than checkpoint.maxAge; events in between are skipped",
				"checkpoint_key", r.s.cpKey, "last_event_key", p.LastEventKey,
				"skipped_from", r.pos.begin, "skipped_to", oldest, "skipped", oldest.Sub(r.pos.begin).Round(time.Second),
				"max_age", maxAge)
			r.pos.begin = oldest
		default:
			r.log.Info("resuming after the checkpoint", "checkpoint_key", r.s.cpKey,
				"last_event_key", p.LastEventKey, "begin", r.pos.begin)
		}
	default:
		r.log.Info("no checkpoint; starting at vcenter's current time", "begin", now)
		r.pos = fresh
	}
	*cp = nil
	r.started = true
	return r.pos.begin
}

// publish stores the events of page that come after the position, in one
// Publish call retried until it succeeds or ctx ends, then advances the
// position. An event that cannot be converted is logged and skipped: no
// retry would change it.
//
// A page of a sweep (g not nil) stores the events whose keys lie in g,
// whatever the position, and advances the position only past its end.
func (r *reader) publish(ctx context.Context, conv *Converter, page []types.BaseEvent, g *gap) error {
	pos := r.position()
	recs := make([]producers.Record, 0, len(page))
	var last types.BaseEvent
	skipped := 0
	for _, be := range page {
		if isNilEvent(be) || be.GetEvent() == nil {
			continue
		}
		e := be.GetEvent()
		if g != nil {
			if !g.contains(e.Key) {
				continue
			}
		} else if pos.covers(e.Key) && pos.hasKey && e.CreatedTime.After(pos.begin) {
			// Keys grow with time. An event newer than the last stored one
			// with a key not after it means the keys went back: a vCenter
			// restored from a backup under the same instance uuid. Skipping
			// would drop every new event until the keys pass the old ones.
			r.s.metrics.keyRegressions.Inc()
			r.log.Warn("vcenter event keys went back (restored from a backup?): publishing the new events; those that reuse a key stored within the stream's duplicate window are dropped as duplicates",
				"event_key", e.Key, "event_time", e.CreatedTime, "last_event_key", pos.key, "last_event_time", pos.begin)
			pos.hasKey = false
		}
		if g == nil && pos.covers(e.Key) {
			skipped++
			continue
		}
		if g == nil || !pos.covers(e.Key) {
			last = be
		}
		name, _ := EventType(be)
		ce, err := conv.Convert(be)
		if err != nil {
			r.s.metrics.convertErrors.Inc()
			r.log.Error("cannot convert a vcenter event; it is dropped", "key", e.Key, "type", name, "err", err)
			continue
		}
		// The Nats-Msg-Id is the key, which a router CloudEvent (a UUID
		// id) does not carry; the token is the vSphere type, which the
		// CloudEvent type holds only lower-cased or not at all.
		// Its data is MarshalData's JSON or XML (text, never scanned as
		// JSON): nothing to check again.
		recs = append(recs, producers.Record{
			Event:       ce,
			MsgID:       conv.InstanceUUID + ":" + strconv.FormatInt(int64(e.Key), 10),
			Token:       name,
			TrustedJSON: true,
		})
	}
	if skipped > 0 {
		r.s.metrics.skipped.Add(float64(skipped))
		r.log.Debug("skipped events already stored", "count", skipped, "last_event_key", pos.key)
	}
	if len(recs) > 0 {
		if err := r.publishRetry(ctx, recs); err != nil {
			return err
		}
	}
	if last == nil {
		r.s.metrics.events.Add(float64(len(recs)))
		return nil
	}
	e := last.GetEvent()
	name, _ := EventType(last)
	r.mu.Lock()
	r.pos = position{instance: conv.InstanceUUID, begin: e.CreatedTime, key: e.Key, typ: name, hasKey: true}
	r.mu.Unlock()
	r.s.metrics.stored(len(recs), e.CreatedTime)
	return nil
}

// publishRetry stores recs, retrying until it succeeds or ctx ends (see
// producers.PublishUntilStored); an event JetStream can never take is
// counted as a conversion error and left out.
func (r *reader) publishRetry(ctx context.Context, recs []producers.Record) error {
	return producers.PublishUntilStored(ctx, r.pub, recs, "vcenter", backoff.Policy{Initial: r.s.minWait, Max: r.s.maxWait}, r.log,
		func(producers.Record, error) { r.s.metrics.convertErrors.Inc() })
}

// checkpoints saves the position every checkpoint.period while it
// changes, and once more when stop is closed (after the reader stopped).
func (r *reader) checkpoints(stop <-chan struct{}) {
	if r.s.cp == nil {
		<-stop
		return
	}
	t := time.NewTicker(r.s.cfg.Checkpoint.Period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.save()
		case <-stop:
			r.save()
			return
		}
	}
}

// save writes the position if it moved since the last save. It runs on a
// fresh context, so the save on shutdown happens although Run's context
// is done.
func (r *reader) save() {
	r.mu.Lock()
	pos, saved := r.pos, r.saved
	r.mu.Unlock()
	if !pos.hasKey || pos.same(saved) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	key := r.s.cpKey
	b, err := json.Marshal(pos.checkpoint(r.s.sdk.String(), time.Now()))
	if err != nil { // cannot happen: plain fields
		r.log.Error("cannot encode the checkpoint", "checkpoint_key", key, "err", err)
		return
	}
	err = r.s.cp.Save(ctx, key, b)
	switch {
	case err == nil:
		r.mu.Lock()
		r.saved = pos
		r.mu.Unlock()
		r.s.metrics.saves.WithLabelValues("ok").Inc()
	case errors.Is(err, producers.ErrCheckpointConflict):
		r.s.metrics.saves.WithLabelValues("conflict").Inc()
		r.s.health.Emit(ctx, producers.HealthCheckpointConflict, map[string]any{
			"checkpointKey": key, "lastEventKey": pos.key,
		})
		r.log.Error("checkpoint was changed by another writer: is another vrelay replica reading the same vCenter? Keeping this position",
			"checkpoint_key", key, "last_event_key", pos.key)
		// Take in the other writer's revision, so that the next save
		// succeeds; the position stays this reader's own.
		if _, err := r.s.cp.Load(ctx, key); err != nil && !errors.Is(err, producers.ErrNoCheckpoint) {
			r.log.Warn("cannot reload the checkpoint", "checkpoint_key", key, "err", err)
		}
	default:
		r.s.metrics.saves.WithLabelValues("error").Inc()
		r.log.Warn("cannot save the checkpoint; will retry", "checkpoint_key", key, "err", err)
	}
}

// backoff is the pause before attempt n+1 after n failures: minWait
// doubling, capped at maxWait.
func (s *Source) backoff(n int) time.Duration {
	return backoff.Policy{Initial: s.minWait, Max: s.maxWait}.Delay(n)
}
