// Package backoff computes the pauses between retries: exponential, from
// an initial delay doubling up to a cap, optionally jittered so that many
// retrying clients (route workers, sources after a NATS restart) do not
// all come back at the same instant.
//
//	p := backoff.Policy{Initial: time.Second, Max: time.Minute}
//	for attempt := 1; ; attempt++ {
//		if err := try(ctx); err == nil {
//			return nil
//		}
//		if !backoff.Sleep(ctx, p.Delay(attempt)) {
//			return ctx.Err()
//		}
//	}
//
// It only computes and waits; whether to retry at all is the caller's call.
// A consumer that retries through JetStream redelivery passes Delay to
// NakWithDelay instead of sleeping.
package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff.
type Policy struct {
	// Initial is the delay after the first failure. Zero or negative: no
	// delay at all.
	Initial time.Duration
	// Max caps the delay. Zero: no cap (the delay saturates at the longest
	// time.Duration). A Max below Initial caps every delay at Max.
	Max time.Duration
	// Jitter picks each delay at random between half and all of the
	// exponential value, so clients that failed together spread out.
	Jitter bool
}

// Delay returns the pause after attempt failed attempts, counting from 1:
// min(Initial × 2^(attempt-1), Max), jittered if the policy says so. An
// attempt below 1 counts as 1. Delay is safe for concurrent use.
func (p Policy) Delay(attempt int) time.Duration {
	if p.Initial <= 0 {
		return 0
	}
	limit := p.Max
	if limit <= 0 {
		limit = math.MaxInt64
	}
	d := min(p.Initial, limit)
	for i := 1; i < attempt && d < limit; i++ {
		if d > limit/2 {
			d = limit
			break
		}
		d *= 2
	}
	if p.Jitter {
		half := d / 2
		d = half + rand.N(d-half+1)
	}
	return d
}

// Sleep waits for d or until ctx is done, whichever comes first, and
// reports whether the whole of d elapsed with ctx still live. Loops use it
// in place of time.Sleep so that shutdown does not wait out a backoff.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return ctx.Err() == nil
	}
}
