package producers

import (
	"context"
	"errors"
	"log/slog"

	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/streams"
)

// PublishUntilStored calls pub.Publish for recs until it succeeds or ctx
// ends, pausing after each failed round as retry says. It is how a polling
// source stores a page: the upstream system keeps the events, so waiting
// out a JetStream outage loses nothing, and the source advances its
// position only after this returns nil.
//
// kind names the upstream system in the log messages ("vcenter",
// "horizon"), which operators search for.
//
// A record JetStream can never take (an [EventError]: it cannot be
// encoded, or it exceeds the server's max payload) is logged at error
// level, passed to dropped (for a metric; nil for none) and left out, so
// that it does not hold up every record after it. Other failures are
// logged once per round and retried (while JetStream's storage is known
// to fail, [streams.ErrStorageFailing], only the first round at warn). It returns nil, or ctx.Err().
func PublishUntilStored(ctx context.Context, pub Publisher, recs []Record, kind string, retry backoff.Policy, log *slog.Logger, dropped func(Record, error)) error {
	for attempt := 1; ; attempt++ {
		err := pub.Publish(ctx, recs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var evErr *EventError
		if errors.As(err, &evErr) && evErr.Index < len(recs) {
			bad := recs[evErr.Index]
			log.Error(kind+" event cannot be stored; it is left out", "event_id", evErr.ID, "msg_id", bad.MsgID, "err", evErr.Err)
			if dropped != nil {
				dropped(bad, evErr.Err)
			}
			recs = append(recs[:evErr.Index:evErr.Index], recs[evErr.Index+1:]...)
			if len(recs) == 0 {
				return nil
			}
			attempt = 0
			continue
		}
		wait := retry.Delay(attempt)
		level := slog.LevelWarn
		if errors.Is(err, streams.ErrStorageFailing) && attempt > 1 {
			// The storage watch has said so once, at warn, and says when
			// it recovers: one line per round would only repeat it.
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "cannot publish "+kind+" events; retrying", "count", len(recs), "attempt", attempt, "retry_in", wait, "err", err)
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}
