// Package eventbridge delivers events to an Amazon EventBridge event bus
// with PutEvents (aws-sdk-go-v2). Each event becomes one entry: Detail is
// the structured-mode CloudEvent JSON as vrelay stores it, Source the
// CloudEvent source, DetailType the CloudEvent type (or its subject, for
// the VMware Event Router shape), Time the CloudEvent time, EventBusName
// the configured bus.
//
// Contract: [Sink] is a [consumers.Sink] and a [consumers.BatchSink].
// [Sink.Send] makes exactly one PutEvents call; [Sink.SendBatch] splits its
// events into calls of at most [MaxEntries] entries and [MaxSize] bytes
// ([EntrySize]) and makes one attempt each. The SDK's own retries are off:
// JetStream redelivery is the only retry (STYLE.md §4). A 200 answer with
// FailedEntryCount > 0 is a partial failure, so each event gets the result
// of its own entry: ThrottlingException, InternalFailure and
// InternalException are retryable, every other entry error is permanent
// (an [EntryError] with the entry's code and message). A failed call is
// retryable on transport errors, timeouts, throttling and 5xx (honouring
// Retry-After), and permanent on any other 4xx. An entry that alone exceeds
// [MaxSize] is permanent. With Config.Pattern set, events the pattern does
// not match are not sent and get a nil result.
//
// Credentials come from env or mounted files the configuration names, or
// from the SDK's default chain; they never appear in errors or logs.
//
//	s, err := eventbridge.New(eventbridge.Config{
//		Region:   "eu-west-1",
//		EventBus: "vmware-events",
//	}, eventbridge.WithLogger(log))
//	if err != nil {
//		return cfgerr.Prefix("routes[0].sink.eventbridge", err)
//	}
//	errs := s.SendBatch(ctx, evs) // one result per event
//
// Package [github.com/vrelay/vrelay/consumers/eventbridge/ebtest] is a
// fake endpoint for tests.
package eventbridge
