package horizon

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/producers"
)

const (
	// saveTimeout bounds one checkpoint save, the last one on shutdown
	// included.
	saveTimeout = 5 * time.Second
	// cleanupTimeout bounds the logout on shutdown.
	cleanupTimeout = 5 * time.Second
)

// Run reads the pod's audit events and publishes them, in (time, id)
// order, until ctx is done; then it logs out and returns ctx.Err().
//
// Run loads the checkpoint first. A checkpoint that cannot be decoded is
// the one error Run returns ([ErrCorruptCheckpoint]): it needs an operator.
// Everything else — Horizon unreachable, rejected credentials, an untrusted
// certificate, 409, 429, 5xx, JetStream not answering — is logged once per
// attempt and retried with a backoff from 1s doubling to 60s (or as long
// as a 429 asks), resuming after the last event JetStream stored.
//
// Each read asks for the events from the position's millisecond up to
// Horizon's current time, page by page, orders them oldest first and
// publishes them in batches of pageSize; after each batch's PubAcks the
// position advances and the checkpoint is saved. Once caught up, Run reads
// again every pollInterval.
//
// A Source runs once at a time; it may run again after Run returned.
func (s *Source) Run(ctx context.Context, pub producers.Publisher) error {
	if !s.running.CompareAndSwap(false, true) {
		return errAlreadyRunning
	}
	defer s.running.Store(false)

	r := &reader{s: s, pub: pub, log: s.log, conv: Converter{Source: s.URL(), Format: s.cfg.Format}}
	r.outage.Every = s.outage
	if err := r.load(ctx); err != nil {
		return err
	}
	if s.base.Scheme == "http" {
		r.log.Warn("horizon address uses plain http: the password and the tokens cross the network unencrypted; use https outside a lab",
			"horizon", s.URL())
	}
	c := s.newClient()
	err := r.loop(ctx, c)
	s.metrics.connected.Set(0)
	r.save()
	cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	c.logout(cctx)
	cancel()
	return err
}

// reader is the state of one Run. Only Run's goroutine uses it.
type reader struct {
	s    *Source
	pub  producers.Publisher
	log  *slog.Logger
	conv Converter
	// outage decides which failures to log: see [producers.Outage].
	outage producers.Outage

	loaded  *checkpoint // what the bucket held at start; nil: nothing
	started bool        // pos is valid
	pos     position
	saved   position // what the checkpoint holds
	// span, when narrowed, bounds a read to [pos.time, pos.time+span] ms:
	// the backlog is too large to read at once.
	span     int64
	narrowed bool
	// badSeen holds the records without an id or time already reported.
	badSeen map[string]struct{}
}

// load reads the checkpoint, retrying while the bucket does not answer.
func (r *reader) load(ctx context.Context) error {
	if r.s.cp == nil {
		return nil
	}
	key := r.s.cpKey
	for attempt := 1; ; attempt++ {
		b, err := r.s.cp.Load(ctx, key)
		if errors.Is(err, producers.ErrNoCheckpoint) {
			return nil
		}
		if err == nil {
			cp, err := parseCheckpoint(b)
			if err != nil {
				return corruptCheckpoint(key, err)
			}
			r.loaded = &cp
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := r.s.backoff(attempt)
		r.log.Warn("cannot load the checkpoint; retrying", "checkpoint_key", key, "attempt", attempt, "retry_in", wait, "err", err)
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// loop polls until ctx is done, with a backoff after failures.
func (r *reader) loop(ctx context.Context, c *client) error {
	failures := 0
	for {
		more, err := r.poll(ctx, c)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			if down, n, ok := r.outage.Restored(); ok {
				r.log.Info("horizon answers again; reading resumes", "horizon", r.s.URL(),
					"failed_for", down.Round(time.Millisecond), "failed_attempts", n)
				r.s.health.Emit(ctx, producers.HealthConnectionRestored, map[string]any{
					"failedFor": down.Round(time.Millisecond).String(), "failedAttempts": n,
				})
			}
			failures = 0
			r.s.metrics.connected.Set(1)
			if more {
				continue
			}
			if !backoff.Sleep(ctx, r.s.cfg.PollInterval) {
				return ctx.Err()
			}
			continue
		}
		failures++
		r.s.metrics.connected.Set(0)
		kind := errorKind(err)
		r.s.metrics.errors.WithLabelValues(kind).Inc()
		wait := r.s.backoff(failures)
		if ra := retryAfter(err); ra > 0 {
			wait = ra
		}
		if log, n, total := r.outage.Failed(); log {
			r.logFailure(kind, wait, err, "attempt", failures, "failed_attempts", n, "failed_attempts_total", total)
			if total == 1 {
				r.s.health.Emit(ctx, producers.HealthConnectionLost, map[string]any{"error": err.Error(), "kind": kind})
			}
		}
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// logFailure says what went wrong and what an operator can do about it:
// on the first failure of an outage, then at most once per outage
// interval, counting the attempts that failed since the last line.
func (r *reader) logFailure(kind string, wait time.Duration, err error, counts ...any) {
	args := append([]any{"horizon", r.s.URL(), "retry_in", wait, "err", err}, counts...)
	switch kind {
	case kindLogin:
		r.log.Error("horizon rejected the login; check domain, username and password. Retrying",
			append(args, "domain", r.s.cfg.Domain, "username", r.s.cfg.Username)...)
	case kindTLS:
		r.log.Error("horizon certificate is not trusted; set caFile to the CA that signed it (or skipTLSVerify in a lab). Retrying", args...)
	case kindDenied:
		r.log.Error("horizon denied reading audit events; give the user a role with the Collect Operation Logs privilege. Retrying",
			append(args, "username", r.s.cfg.Username)...)
	case kindThrottled:
		r.log.Warn("horizon is throttling API requests (HTTP 429); waiting as long as it asks", args...)
	case kindConflict:
		r.log.Warn("horizon answered 409 Conflict to reading audit events (is an event database configured?); retrying", args...)
	case kindServer:
		r.log.Warn("horizon server error; retrying", args...)
	case kindNetwork:
		r.log.Warn("cannot reach horizon; retrying", args...)
	default:
		r.log.Error("reading horizon events failed; retrying", args...)
	}
}

// poll reads what Horizon holds after the position and publishes it. more
// says that a narrowed read left events to read at once.
func (r *reader) poll(ctx context.Context, c *client) (more bool, err error) {
	if !r.started {
		if !c.loggedIn() {
			if err := c.login(ctx); err != nil {
				return false, err
			}
		}
		r.start(ctx, c.now())
	}
	from := r.pos.time
	now := c.now().UnixMilli()
	to, narrowed := now, false
	if r.narrowed && from+r.span < now {
		to, narrowed = from+r.span, true
	}
	if to < from {
		return false, nil // Horizon's clock is behind the position
	}
	evs, bad, err := c.readWindow(ctx, from, to, r.s.cfg.PageSize, r.s.maxRead)
	if errors.Is(err, errReadTooLarge) {
		r.span, r.narrowed = (to-from)/2, true
		r.log.Info("too many horizon events to read at once; reading an earlier span first",
			"from", msTime(from), "to", msTime(from+r.span), "max_read", r.s.maxRead)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	for _, b := range bad {
		// Reads overlap at their first millisecond: report a record once.
		if _, seen := r.badSeen[string(b.raw)]; seen {
			continue
		}
		if r.badSeen == nil || len(r.badSeen) >= 1000 {
			r.badSeen = make(map[string]struct{})
		}
		r.badSeen[string(b.raw)] = struct{}{}
		r.s.metrics.convertErrors.Inc()
		r.log.Error("horizon returned a record without an id or time; it is dropped",
			"record", truncate(string(b.raw), 300), "err", b.err)
	}
	fresh := evs[:0]
	skipped := 0
	for i := range evs {
		if r.pos.covers(&evs[i]) {
			skipped++
			continue
		}
		fresh = append(fresh, evs[i])
	}
	r.s.metrics.skipped.Add(float64(skipped))
	if err := r.publish(ctx, fresh); err != nil {
		return false, err
	}
	if !narrowed {
		r.narrowed = false
		return false, nil
	}
	r.span *= 2
	if r.span == 0 {
		r.span = 1
	}
	return true, nil
}

// start decides where reading begins, on the first successful login of a
// Run, with now Horizon's current time:
//
//   - after the last event of this source in the stream, when there is
//     one: the stream is the truth. After a crash it is ahead of the
//     checkpoint; after a power loss on one node it may be behind, and the
//     events in between are read again;
//   - else after the checkpoint;
//   - never earlier than maxAge before now (maxAge 0s: at now);
//   - at now when there is no position.
//
// A position is a millisecond plus the ids stored at it. The stream knows
// only its last id: the other events of that millisecond are read and
// published again, and JetStream drops them as duplicates.
func (r *reader) start(ctx context.Context, now time.Time) {
	nowMs := now.UnixMilli()
	last := r.lastStored(ctx)
	cp := r.loaded
	key := r.s.cpKey
	var pos position
	resumed := true
	switch {
	case last != nil && cp != nil && cp.LastEventTime == last.time:
		pos = cp.position()
		if pos.time == last.time {
			for id := range last.ids {
				pos.ids[id] = struct{}{}
			}
		}
		r.log.Info("resuming after the checkpoint", "checkpoint_key", key, "last_event_time", msTime(pos.time), "stored_ids", len(pos.ids))
	case last != nil && cp != nil && cp.LastEventTime > last.time:
		r.log.Warn("checkpoint is ahead of the stream (stream writes lost in a power failure?); resuming after the last stored event to recover the events in between",
			"checkpoint_key", key, "checkpoint_time", msTime(cp.LastEventTime), "last_event_time", msTime(last.time))
		pos = *last
	case last != nil:
		r.log.Info("resuming after the last event of this source in the stream", "checkpoint_key", key, "last_event_time", msTime(last.time))
		pos = *last
	case cp != nil:
		pos = cp.position()
		r.log.Info("resuming after the checkpoint", "checkpoint_key", key, "last_event_time", msTime(pos.time), "stored_ids", len(pos.ids))
	default:
		r.log.Info("no checkpoint; starting at horizon's current time", "begin", msTime(nowMs))
		pos, resumed = newPosition(nowMs), false
	}
	if cp != nil && cp.Host != "" && cp.Host != r.s.host {
		r.log.Warn("checkpoint was saved for another horizon address; resuming at its time",
			"checkpoint_key", key, "checkpoint_host", cp.Host, "host", r.s.host)
	}
	if resumed {
		maxAge := *r.s.cfg.MaxAge
		oldest := nowMs - maxAge.Milliseconds()
		switch {
		case maxAge == 0:
			r.log.Info("maxAge is 0s: not replaying, starting at the current time",
				"checkpoint_key", key, "last_event_time", msTime(pos.time), "begin", msTime(nowMs))
			pos = newPosition(nowMs)
		case pos.time < oldest:
			r.log.Warn("checkpoint is older than maxAge; events in between are skipped",
				"checkpoint_key", key, "skipped_from", msTime(pos.time), "skipped_to", msTime(oldest),
				"skipped", time.Duration(oldest-pos.time)*time.Millisecond, "max_age", maxAge)
			pos = newPosition(oldest)
		}
	}
	r.pos = pos
	r.saved = pos.clone()
	if cp != nil {
		r.saved = cp.position()
	}
	r.started = true
	r.log.Info("reading horizon events", "horizon", r.s.URL(), "begin", msTime(pos.time), "stored_ids", len(pos.ids))
}

// lastStored returns the position of the last event of this source in the
// stream, or nil without [WithLastStored] or when the stream holds none.
func (r *reader) lastStored(ctx context.Context) *position {
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
	var id int64
	if i >= 0 {
		id, err = strconv.ParseInt(st.MsgID[i+1:], 10, 64)
	}
	if i < 0 || err != nil || st.Event.Time().IsZero() {
		r.log.Warn("the last stored event has no horizon event id; relying on the checkpoint", "msg_id", st.MsgID)
		return nil
	}
	p := newPosition(st.Event.Time().UnixMilli(), id)
	p.typ = storedType(&st.Event)
	return &p
}

// storedType is the Horizon event type of a CloudEvent this source made.
func storedType(ev *event.Event) string {
	t := ev.Type()
	for _, prefix := range []string{tanzuTypePrefix, routerTypePrefix} {
		if rest, ok := strings.CutPrefix(t, prefix); ok {
			return strings.ToUpper(strings.TrimSuffix(rest, typeSuffix))
		}
	}
	return ""
}

// publish stores evs, which come in ascending (time, id) order, in batches
// of pageSize; after each batch it advances the position and saves the
// checkpoint. An event that cannot be converted is logged and skipped: no
// retry would change it.
func (r *reader) publish(ctx context.Context, evs []auditEvent) error {
	size := r.s.cfg.PageSize
	for len(evs) > 0 {
		chunk := evs[:min(len(evs), size)]
		evs = evs[len(chunk):]
		recs := make([]producers.Record, 0, len(chunk))
		for i := range chunk {
			ev := &chunk[i]
			ce, err := r.conv.convert(ev)
			if err != nil {
				r.s.metrics.convertErrors.Inc()
				r.log.Error("cannot convert a horizon event; it is dropped", "event_id", ev.ID, "type", ev.Type, "err", err)
				continue
			}
			// The Nats-Msg-Id names the pod and the event, whatever the
			// format; the token is the type as Horizon spells it.
			recs = append(recs, producers.Record{
				Event: ce,
				MsgID: r.s.host + ":" + strconv.FormatInt(ev.ID, 10),
				Token: ev.token(),
			})
		}
		if len(recs) > 0 {
			if err := r.publishRetry(ctx, recs); err != nil {
				return err
			}
		}
		for i := range chunk {
			if !r.pos.advance(&chunk[i]) {
				r.log.Warn("more horizon events share one millisecond than a checkpoint keeps; moving past it, so an event Horizon adds to it later is not read",
					"time", msTime(chunk[i].Time), "max_ids", maxIDs)
			}
		}
		r.s.metrics.stored(len(recs), chunk[len(chunk)-1].Time)
		r.save()
	}
	return nil
}

// publishRetry stores recs, retrying until it succeeds or ctx ends (see
// producers.PublishUntilStored); an event JetStream can never take is
// counted as a conversion error and left out.
func (r *reader) publishRetry(ctx context.Context, recs []producers.Record) error {
	return producers.PublishUntilStored(ctx, r.pub, recs, "horizon", backoff.Policy{Initial: r.s.minWait, Max: r.s.maxWait}, r.log,
		func(producers.Record, error) { r.s.metrics.convertErrors.Inc() })
}

// save writes the position if it moved since the last save. It runs on a
// fresh context, so the save on shutdown happens although Run's context
// is done.
func (r *reader) save() {
	if r.s.cp == nil || !r.started || r.pos.same(r.saved) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	key := r.s.cpKey
	b, err := json.Marshal(r.pos.checkpoint(r.s.URL(), r.s.host, time.Now()))
	if err != nil { // cannot happen: plain fields
		r.log.Error("cannot encode the checkpoint", "checkpoint_key", key, "err", err)
		return
	}
	err = r.s.cp.Save(ctx, key, b)
	switch {
	case err == nil:
		r.saved = r.pos.clone()
		r.s.metrics.saves.WithLabelValues("ok").Inc()
	case errors.Is(err, producers.ErrCheckpointConflict):
		r.s.metrics.saves.WithLabelValues("conflict").Inc()
		r.log.Error("checkpoint was changed by another writer: is another vrelay replica reading the same Horizon pod? Keeping this position",
			"checkpoint_key", key, "last_event_time", msTime(r.pos.time))
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

// msTime renders epoch milliseconds for logs.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
