// Package consumers delivers events from JetStream to sinks, one durable
// consumer per route.
//
// A [Dispatcher] owns one route: a durable pull consumer named after the
// route, filtered server-side on the route's subjects, an optional
// expression filter and one [Sink]. It prepares each message (decode,
// filter), sends it, and settles it on its own result: it acks an event
// only after the sink accepted it. Retryable failures come back after an
// exponential, jittered delay (NakWithDelay), honouring a sink's
// Retry-After; permanent failures and events out of attempts are copied to
// the dead-letter stream `vrelay.dlq.<route>` in the format of
// [streams.DeadLetter] before they are termed. If the dead-letter stream
// does not take an event, the event is naked and comes back: nothing is
// dropped.
//
// Up to Delivery.MaxInFlight sends run at once. With Delivery.MaxBatch
// above 1 the sink must be a [BatchSink]: the dispatcher collects up to
// MaxBatch prepared events, or what arrived within Delivery.BatchWait of
// the first, sends them in one request, and still settles each event on its
// own result, so a partial failure retries only the events that failed. A
// batch counts as one send against MaxInFlight.
//
// With Delivery.OrderBy the route keeps the order of each key: events
// whose orderBy expression yields the same key are sent one at a time, in
// stream order, different keys in parallel up to MaxInFlight. A failed
// event is retried in place, holding back only its key, instead of being
// naked. After a restart, or when a delivery went elsewhere, the
// dispatcher holds the events it receives until the consumer's outstanding
// events are all in hand; on an external NATS the consumer pins one
// replica (a JetStream priority group). See lanes.go and docs/delivery.md.
//
// Each route also reads its replays: dead letters that `vrelay dlq replay`
// published to `vrelay.replay.<route>` in [streams.ReplayStream], read by a
// second durable consumer named after the route. Replays share the route's
// workers and in-flight limit, reach no other route and add no copy to the
// event stream; one that fails again is dead-lettered with the event's
// original subject and sequence.
//
// Delivery.StartAt places a new route's consumer (new, all, a time, a
// duration ago, a stream sequence); an existing consumer keeps its
// position. Delivery.RateLimit is a token bucket that all the route's
// workers draw from before each send; a send still waiting for its token
// when the route stops hands its event back.
//
// A dispatcher made [WithEphemeral] replays a time window of the event
// stream to its route once ([Dispatcher.Replay], behind `vrelay route
// replay`): through an ephemeral consumer it deletes when done, with the
// same filter, sink, retries and dead letters, and without touching the
// route's durable consumer.
//
// Sinks classify their own errors: nil for delivered, [Permanent] for "a
// retry cannot help", anything else for "try again", optionally with
// [RetryAfter]. Subpackages hold the sinks (httpsink, logsink) and the
// conformance suite every sink passes (sinktest).
//
//	d, err := consumers.NewDispatcher(js, consumers.Route{
//		Name:     "vm-powered-on",
//		Subjects: []string{"vmware.vcenter.*.VmPoweredOnEvent"},
//		Filter:   f, // from filters.Compile, or nil
//	}, sink, consumers.WithLogger(log), consumers.WithSubjectRoot(cfg.Streams.SubjectRoot))
//	err = d.Run(ctx) // returns ctx.Err() after a graceful stop
package consumers
