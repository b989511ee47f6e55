// Package consumers delivers events from JetStream to sinks, one durable
// consumer per route.
//
// A [Dispatcher] owns one route: a durable pull consumer named after the
// route, filtered server-side on the route's subjects, an optional
// expression filter and one [Sink]. It sends up to Delivery.MaxInFlight
// events at once and acks an event only after the sink accepted it.
// Retryable failures come back after an exponential, jittered delay
// (NakWithDelay), honouring a sink's Retry-After; permanent failures and
// events out of attempts are copied to the dead-letter stream
// `vrelay.dlq.<route>`, with headers that say why, before they are termed.
// If the dead-letter stream does not take an event, the event is naked and
// comes back: nothing is dropped.
//
// Sinks classify their own errors: nil for delivered, [Permanent] for "a
// retry cannot help", anything else for "try again", optionally with
// [RetryAfter]. Subpackages hold the sinks (httpsink, logsink) and the
// conformance suite every HTTP sink passes (sinktest).
//
//	d, err := consumers.NewDispatcher(js, consumers.Route{
//		Name:     "vm-powered-on",
//		Subjects: []string{"vmware.vcenter.*.VmPoweredOnEvent"},
//		Filter:   f, // from filters.Compile, or nil
//	}, sink, consumers.WithLogger(log))
//	err = d.Run(ctx) // returns ctx.Err() after a graceful stop
package consumers
