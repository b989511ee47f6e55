package consumers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/vrelay/vrelay/internal/cfgerr"
)

// RateLimit caps how fast a route sends: a token bucket that fills at
// PerSecond tokens a second and holds at most Burst. Each event sent takes
// a token; a batch takes one per event, but at most Burst, so a batch
// larger than Burst waits for a full bucket rather than forever. All the
// workers of a route in one vrelay process share the bucket; with several
// replicas each has its own. A sink's Retry-After still delays the events
// it names, on top of the limit.
type RateLimit struct {
	// PerSecond is the most events a second this route sends, in each
	// vrelay process, shared by all its workers. Fractions are allowed
	// (`0.5` is one event every 2 s). Must be above 0. Each event takes a
	// token; an event of a batch takes one, and a batch at most `burst`. A
	// receiver's `Retry-After` still delays the events it names. See
	// [delivery.md](delivery.md#rate-limits). Required.
	PerSecond float64 `yaml:"perSecond"`
	// Burst is how many events may go at once after a quiet spell: by
	// default about one second's worth. At least 1. Default: `perSecond`
	// rounded up, at least 1.
	Burst int `yaml:"burst"`
}

func (r *RateLimit) setDefaults() {
	if r != nil && r.Burst == 0 {
		r.Burst = max(1, int(math.Ceil(r.PerSecond)))
	}
}

// validate checks r against the rest of the delivery policy d: an event
// that waits for its token longer than its ack wait is sent twice.
func (r *RateLimit) validate(d Delivery) error {
	if r == nil {
		return nil
	}
	var errs []error
	if !(r.PerSecond > 0) || math.IsInf(r.PerSecond, 0) {
		errs = append(errs, cfgerr.New("perSecond", "must be above 0"))
	}
	if r.Burst < 1 {
		errs = append(errs, cfgerr.New("burst", "must be at least 1"))
	}
	if len(errs) == 0 && d.AckWait > 0 {
		// What a process holds at once: a send per worker, and its pull
		// buffer. The last of them waits held/perSecond for its token,
		// with its ack wait running.
		held := d.MaxInFlight*max(1, d.MaxBatch) + max(d.MaxInFlight, 2*d.MaxBatch)
		if wait := time.Duration(float64(held) / r.PerSecond * float64(time.Second)); wait >= d.AckWait {
			errs = append(errs, cfgerr.Newf("perSecond", "%g is too low for the events the route holds at once (%d with maxInFlight %d): the last would wait %s for its turn, beyond ackWait (%s), and be sent twice; lower maxInFlight or raise ackWait",
				r.PerSecond, held, d.MaxInFlight, wait.Round(time.Second), d.AckWait))
		}
	}
	return errors.Join(errs...)
}

// limiter is a route's token bucket.
type limiter struct {
	bucket *rate.Limiter
	burst  int
}

// newLimiter returns nil for no limit.
func newLimiter(r *RateLimit) *limiter {
	if r == nil {
		return nil
	}
	return &limiter{bucket: rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst), burst: r.Burst}
}

// errStopping says that a send did not start because the route is
// stopping: its event goes back to JetStream at once.
var errStopping = errors.New("route stopping: the send did not start")

// stopKey keys, in a send's context, the route's own Done channel: the
// sends run on a context that shutdown does not cancel, so that they may
// finish, but a send still waiting for its turn should not start.
type stopKey struct{}

// withStop returns a context that, unlike ctx, is not cancelled with it,
// but through which [Dispatcher.waitRate] still sees ctx end.
func withStop(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), stopKey{}, ctx.Done())
}

// waitRate waits until the route may send n events (at most burst count).
// It returns errStopping at once when the route stops meanwhile, and
// ctx's error when ctx ends. It counts the time waited.
func (d *Dispatcher) waitRate(ctx context.Context, n int) error {
	l := d.limit
	if l == nil {
		return nil
	}
	now := time.Now()
	r := l.bucket.ReserveN(now, min(n, l.burst))
	if !r.OK() {
		return fmt.Errorf("rate limit: cannot take %d tokens", n)
	}
	delay := r.DelayFrom(now)
	if delay <= 0 {
		return nil
	}
	stop, _ := ctx.Value(stopKey{}).(<-chan struct{})
	t := time.NewTimer(delay)
	defer t.Stop()
	var err error
	select {
	case <-t.C:
	case <-stop:
		err = errStopping
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		// Give the tokens back for the sends that go on.
		r.CancelAt(time.Now())
	}
	d.metrics.rateWait(time.Since(now))
	return err
}
