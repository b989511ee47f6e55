package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/producers"
)

// runSlowSink measures a route whose receiver takes slowDelay per request,
// with in-flight limits 1, 16 and 256. The events are stored first; the
// rate counts from the route's start to the last answer. The ideal is
// limit ÷ delay.
func (b *bench) runSlowSink(ctx context.Context) error {
	f, err := filters.Compile(typicalFilter)
	if err != nil {
		return err
	}
	sink, err := httpsink.New(httpsink.Config{URL: b.recv.url})
	if err != nil {
		return err
	}
	d := &delivery{
		e: b.env, recv: b.recv, filter: f, metrics: b.consumerMetrics, sink: sink,
		pub:    producers.NewPublisher(b.env.js, benchScope(), producers.WithMetrics(b.producerMetrics)),
		events: b.events,
	}
	b.recv.delay.Store(int64(b.opt.slowDelay))
	defer b.recv.delay.Store(0)
	per := b.opt.slowDelay.Seconds()
	for _, limit := range []int{1, 16, 256} {
		ideal := float64(limit) / per
		n := max(limit, int(ideal*b.opt.slowFor.Seconds()))
		if err := b.env.purge(ctx); err != nil {
			return err
		}
		name := fmt.Sprintf("bench-slow-%d", limit)
		if err := d.publish(ctx, name, 0, n, make([]producers.Record, 1000)); err != nil {
			return err
		}
		b.logf("slow sink, %d in flight: %d events", limit, n)
		t := b.recv.start(n, stampKey)
		start := time.Now()
		stop, err := d.startRoute(ctx, name, limit)
		if err != nil {
			return err
		}
		waitErr := waitUntil(ctx, 30*time.Second, func() bool { return t.count() >= int64(n) }, t.count)
		if err := errors.Join(waitErr, stop()); err != nil {
			return fmt.Errorf("%d in flight: %d of %d delivered: %w", limit, t.count(), n, err)
		}
		rate := float64(n) / t.lastAt().Sub(start).Seconds()
		name = fmt.Sprintf("slowsink%d_events_per_s", limit)
		if limit == 1 {
			b.rep.add(name, rate, "ev/s")
			continue
		}
		want := 0.9 * ideal
		b.rep.addTarget(name, rate, "ev/s", fmt.Sprintf("≥ %.0f (90%% of %d ÷ %s)", want, limit, b.opt.slowDelay), atLeast(want))
	}
	return nil
}
