package vcenter

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/producers"
)

// The stall watchdog. vCenter's event stream can stop without an error:
// a collector returns empty pages while newer events exist (an API user
// that cannot see all inventory leaves key gaps, and a gap larger than a
// page has been seen to stop ReadNextEvents), or it skips a range. Two
// checks catch both:
//
//   - a jump: a page whose keys jump by more than a page from the last
//     event read. The range in between is swept by time.
//   - a stall: every stallCheckInterval, vCenter's own latest event
//     (EventManager.latestEvent) is compared with the last event read. If
//     it is newer, the collector is drained once more; if it still does
//     not return it, the range from the last event read to vCenter's
//     latest is swept by time and the collector is made anew there.
//
// A sweep reads a collector bounded by time (begin and end included) and
// publishes the events whose keys lie in the gap; the Nats-Msg-Id
// (<instance uuid>:<key>) drops what was stored already.
//
// A sweep that finds no event in the gap means the range holds only events
// this user cannot read: no warning, no health event, and the range is not
// looked at again.

// gap is a range of keys the collector did not return: after fromKey (the
// last event read, created at from) up to toKey included (created at to).
type gap struct {
	fromKey, toKey int32
	from, to       time.Time
	// open: nothing was read before the gap, so fromKey is unknown and
	// every key up to toKey is in it (the sweep is bounded by time).
	open bool
}

// contains reports whether key k lies in the gap.
func (g *gap) contains(k int32) bool {
	return (g.open || keyAfter(k, g.fromKey)) && !keyAfter(k, g.toKey)
}

// batch is what the read loop hands to the publisher: a page of the
// collector, or a page of a sweep of gap.
type batch struct {
	events []types.BaseEvent
	gap    *gap
}

// mark is the newest event the read loop has read.
type mark struct {
	key   int32
	time  time.Time
	valid bool
}

func (m *mark) advance(page []types.BaseEvent) {
	for _, be := range page {
		if be == nil || be.GetEvent() == nil {
			continue
		}
		e := be.GetEvent()
		if !m.valid || keyAfter(e.Key, m.key) {
			*m = mark{key: e.Key, time: e.CreatedTime, valid: true}
		}
	}
}

// covers reports whether e was read, or comes before what was read. begin
// is where the collector began, for a reader that has read nothing yet.
func (m *mark) covers(e *types.Event, begin time.Time) bool {
	if m.valid {
		return !keyAfter(e.Key, m.key)
	}
	return !e.CreatedTime.After(begin)
}

// jumps returns the gaps in page: where a key follows the one before it
// (or the mark) by more than pageSize.
func jumps(m mark, page []types.BaseEvent, pageSize int) []gap {
	var gaps []gap
	for _, be := range page {
		if be == nil || be.GetEvent() == nil {
			continue
		}
		e := be.GetEvent()
		if m.valid && keyAfter(e.Key, m.key) && e.Key-m.key > int32(pageSize) {
			gaps = append(gaps, gap{fromKey: m.key, from: m.time, toKey: e.Key - 1, to: e.CreatedTime})
		}
		if !m.valid || keyAfter(e.Key, m.key) {
			m = mark{key: e.Key, time: e.CreatedTime, valid: true}
		}
	}
	return gaps
}

// sweep reads the events of g by time and hands them to send, marked as a
// sweep of g. It returns how many events in the gap it read.
func (r *reader) sweep(ctx context.Context, c *conn, g gap, send func(batch) error) (int, error) {
	r.s.metrics.sweeps.Inc()
	// One second more on each side: vCenter keeps times to the
	// millisecond, and the keys decide what is in the gap.
	coll, err := c.sweepCollector(ctx, g.from.Add(-time.Second), g.to.Add(time.Second))
	if err != nil {
		return 0, err
	}
	defer c.destroy(coll)
	n := 0
	for {
		page, err := c.readFrom(ctx, coll)
		if err != nil {
			return n, err
		}
		r.resolve(page)
		if len(page) == 0 {
			break
		}
		for _, be := range page {
			if be != nil && be.GetEvent() != nil && g.contains(be.GetEvent().Key) {
				n++
			}
		}
		if err := send(batch{events: page, gap: &g}); err != nil {
			return n, err
		}
	}
	r.s.metrics.sweptEvents.Add(float64(n))
	return n, nil
}

// sweepJump sweeps a key jump the read loop saw. A sweep that finds
// nothing is a range this user cannot see (events on objects it has no
// permission on leave gaps in the keys): logged at debug level only.
func (r *reader) sweepJump(ctx context.Context, c *conn, g gap, send func(batch) error) error {
	n, err := r.sweep(ctx, c, g, send)
	if err != nil {
		return err
	}
	if n == 0 {
		r.log.Debug("vcenter event keys jumped by more than a page; a sweep found no event in between (not visible to this user?)",
			"from_key", g.fromKey, "to_key", g.toKey)
		return nil
	}
	r.s.metrics.gaps.Inc()
	r.log.Warn("vcenter event keys jumped by more than a page and the collector skipped events; swept the range by time",
		"from_key", g.fromKey, "to_key", g.toKey, "from_time", g.from, "to_time", g.to, "events", n)
	r.s.health.Emit(ctx, producers.HealthGapSwept, map[string]any{
		"reason": "jump", "fromKey": g.fromKey, "toKey": g.toKey, "fromTime": g.from.UTC(), "toTime": g.to.UTC(), "events": n,
	})
	return nil
}

// check compares vCenter's latest event with what was read; see the top
// of this file. drain reads the collector to its end, advancing m.
func (r *reader) check(ctx context.Context, c *conn, m *mark, begin time.Time, drain func() error, send func(batch) error) error {
	latest, err := c.latest(ctx)
	if err != nil || latest == nil {
		return err
	}
	pos := r.position()
	if pos.hasKey || !pos.begin.IsZero() {
		lag := latest.CreatedTime.Sub(pos.begin)
		r.s.metrics.lag.Set(max(0, lag.Seconds()))
	}
	if m.covers(latest, begin) {
		return nil
	}
	// vCenter has a newer event than the last read: it may just have
	// arrived. Read once more before calling it a stall.
	if err := drain(); err != nil {
		return err
	}
	if m.covers(latest, begin) {
		return nil
	}
	g := gap{fromKey: m.key, from: m.time, toKey: latest.Key, to: latest.CreatedTime, open: !m.valid}
	if !m.valid {
		g.from = begin
	}
	published := "nothing"
	if pos.hasKey {
		published = fmt.Sprint(pos.key)
	}
	r.s.setStalled(fmt.Sprintf("stalled: vCenter at key %d, published up to %s, sweeping", latest.Key, published))
	defer r.s.setStalled("")
	n, err := r.sweep(ctx, c, g, send)
	if err != nil {
		return err
	}
	if n == 0 {
		// vCenter's latest event is one this user cannot read: nothing
		// was missed. Do not look at it again.
		r.log.Debug("vcenter's latest event is not returned by a sweep either (not visible to this user?)",
			"latest_key", latest.Key, "last_read_key", m.key)
		*m = mark{key: latest.Key, time: latest.CreatedTime, valid: true}
		return nil
	}
	r.s.metrics.stalls.Inc()
	r.s.metrics.gaps.Inc()
	r.log.Warn("vcenter has newer events than its collector returns (stalled collector); swept the range by time, making a new collector",
		"from_key", g.fromKey, "to_key", g.toKey, "from_time", g.from, "to_time", g.to, "published_key", published, "events", n)
	r.s.health.Emit(ctx, producers.HealthStallDetected, map[string]any{
		"fromKey": g.fromKey, "toKey": g.toKey, "fromTime": g.from.UTC(), "toTime": g.to.UTC(), "publishedKey": published, "events": n,
	})
	if err := c.refollow(ctx, latest.CreatedTime); err != nil {
		return err
	}
	*m = mark{key: latest.Key, time: latest.CreatedTime, valid: true}
	r.log.Info("vcenter stall recovered: swept the missed range and made a new collector",
		"from_key", g.fromKey, "to_key", g.toKey, "events", n)
	r.s.health.Emit(ctx, producers.HealthStallRecovered, map[string]any{
		"fromKey": g.fromKey, "toKey": g.toKey, "fromTime": g.from.UTC(), "toTime": g.to.UTC(), "events": n,
	})
	return nil
}

// resolve turns the unknown event classes of page into UnknownEvents and
// says so, and counts what govmomi still could not decode (a nil).
func (r *reader) resolve(page []types.BaseEvent) {
	if n := resolveUnknown(page); n > 0 {
		r.s.metrics.unknown.Add(float64(n))
		var classes []string
		for _, be := range page {
			if u, ok := be.(*UnknownEvent); ok {
				classes = append(classes, u.Class)
			}
		}
		r.log.Debug("vcenter sent events of classes govmomi does not know; publishing what can be read",
			"count", n, "classes", strings.Join(classes, ","))
	}
	nils := 0
	for _, be := range page {
		if isNilEvent(be) {
			nils++
		}
	}
	if nils > 0 {
		r.s.metrics.undecodable.Add(float64(nils))
		r.log.Error("vcenter sent events that could not be decoded at all; they have no key and cannot be published",
			"count", nils)
	}
}

// sourceHealth is what [Source.Health] reports.
type sourceHealth struct {
	mu       sync.Mutex
	down     bool
	since    time.Time
	lastErr  string
	failures int
	stalled  string
}

func (h *sourceHealth) lastErrorLine() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastErr
}

func (s *Source) setStalled(detail string) {
	s.state.mu.Lock()
	s.state.stalled = detail
	s.state.mu.Unlock()
}

// failed records a failed connection attempt; first reports whether it
// began an outage.
func (s *Source) failed(err error) (first bool, since time.Time) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if !s.state.down {
		s.state.down, s.state.since, s.state.failures = true, time.Now(), 0
		first = true
	}
	s.state.failures++
	s.state.lastErr = strings.Join(strings.Fields(err.Error()), " ")
	return first, s.state.since
}

// restored ends an outage; ok reports whether one was going on.
func (s *Source) restored() (since time.Time, failures int, ok bool) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if !s.state.down {
		return time.Time{}, 0, false
	}
	since, failures = s.state.since, s.state.failures
	s.state.down, s.state.failures, s.state.lastErr = false, 0, ""
	return since, failures, true
}

// Health implements [producers.HealthReporter]: not ok while vCenter
// cannot be reached or the collector is stalled, with a line that says so.
func (s *Source) Health() (ok bool, detail string) {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	switch {
	case s.state.down:
		return false, fmt.Sprintf("vcenter unreachable since %s: %s (failed attempts: %d)",
			s.state.since.UTC().Format(time.TimeOnly), s.state.lastErr, s.state.failures)
	case s.state.stalled != "":
		return false, s.state.stalled
	}
	return true, ""
}
