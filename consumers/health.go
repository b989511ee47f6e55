package consumers

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHealthInterval is how often a route that keeps failing says so
// again.
const DefaultHealthInterval = time.Minute

// health turns a route's stream of delivery results into a few log lines
// an operator sees at the default level: a warning when the route starts
// failing (with the reason), another at most once per interval while it
// keeps failing (with the attempts that failed since the last line), and
// an info line when a delivery succeeds again (with how long the route
// failed and how many attempts failed in all). Per-attempt detail stays at
// debug level.
//
// Warnings come at most once per interval whatever the pattern: a route
// whose sink rejects one event now and then (a 400, dead-lettered) fails
// and recovers many times a minute, and each short outage that starts
// within an interval of the last warning is folded into the next line
// instead of announced; its recovery is then not announced either. It is
// safe for concurrent use: the workers of a route settle in parallel.
type health struct {
	every time.Duration
	now   func() time.Time

	// down mirrors failing for the delivery path, which then takes no lock
	// while the route is healthy.
	down      atomic.Bool
	mu        sync.Mutex
	failing   bool
	announced bool      // the current outage was logged
	since     time.Time // first failure of the current outage
	lastLine  time.Time // last warning, of this outage or an earlier one
	total     int       // failed attempts in the current outage
	unlogged  int       // failed attempts since the last warning
}

func newHealth(every time.Duration) *health {
	if every <= 0 {
		every = DefaultHealthInterval
	}
	return &health{every: every, now: time.Now}
}

// failed records a failed delivery attempt and logs when it must.
func (h *health) failed(log *slog.Logger, err error) {
	h.mu.Lock()
	now := h.now()
	h.total++
	h.unlogged++
	if !h.failing {
		h.failing, h.announced, h.since = true, false, now
		h.down.Store(true)
	}
	if !h.lastLine.IsZero() && now.Sub(h.lastLine) < h.every {
		h.mu.Unlock()
		return
	}
	first := !h.announced
	n, total, since := h.unlogged, h.total, h.since
	h.lastLine, h.unlogged, h.announced = now, 0, true
	h.mu.Unlock()

	reason := truncate(err.Error(), 1024)
	if first {
		log.Warn("route is failing: its sink does not take deliveries; retrying",
			"reason", reason, "failed_attempts", n)
		return
	}
	log.Warn("route still failing; retrying", "reason", reason,
		"failed_attempts", n, "failed_attempts_total", total, "failing_for", now.Sub(since).Round(time.Millisecond))
}

// delivered records a successful delivery and says so once after an
// outage that was announced.
func (h *health) delivered(log *slog.Logger) {
	if !h.down.Load() {
		return
	}
	h.mu.Lock()
	if !h.failing {
		h.mu.Unlock()
		return
	}
	announced, total, d := h.announced, h.total, h.now().Sub(h.since)
	h.failing, h.announced, h.total = false, false, 0
	h.down.Store(false)
	h.mu.Unlock()
	if announced {
		log.Info("route recovered: its sink takes deliveries again",
			"failed_for", d.Round(time.Millisecond), "failed_attempts", total)
	}
}

// WithHealthInterval sets how often a route that keeps failing logs that
// it still fails. Default: [DefaultHealthInterval].
func WithHealthInterval(d time.Duration) Option { return func(o *options) { o.healthInterval = d } }
