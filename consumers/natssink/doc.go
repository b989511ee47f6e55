// Package natssink republishes events to a NATS subject, for systems that
// read NATS directly rather than through an HTTP endpoint. Each event goes
// out as vrelay stores it (DESIGN.md §4): the structured-mode CloudEvent
// JSON as the body (the stored bytes as they are when the dispatcher hands
// them over, [consumers.EncodedFromContext]), Ce-Type, Ce-Source, Ce-Id and
// Ce-Subject header copies, Content-Type application/cloudevents+json, and
// Nats-Msg-Id set to the CloudEvent source and id, so that a JetStream
// stream on the target subject drops the copies a redelivery sends.
//
// The subject may hold {type} and {source}, filled per event with the
// attribute made into a valid token ([streams.Token]). A subject inside the
// event stream's own subjects (`vmware.>`) or vrelay's (`vrelay.>`) is
// refused: republishing there would loop.
//
// Contract: [Sink.Send] publishes exactly once per call and never retries;
// JetStream redelivery of the route is the only retry (STYLE.md §4).
//
//   - Core NATS (jetstream: false): nil once the server has processed the
//     publish (a flush round trip), whether or not anyone subscribes, as
//     core NATS promises no more. A closed or disconnected connection, or a
//     flush that times out, is retryable.
//   - JetStream (jetstream: true): nil once a stream stored the event (its
//     PubAck; a duplicate the stream already held counts as stored). No
//     stream on the subject (no responders) is retryable, so that events
//     wait on the route until the operator creates the stream; a refusal
//     of the message itself (a 4xx API error such as "message size exceeds
//     maximum allowed") is [consumers.Permanent]; other API errors are
//     retryable.
//   - Either way, an event larger than the server's max payload, or whose
//     filled subject is not valid, is [consumers.Permanent]; a cancelled
//     ctx gives an error wrapping ctx's error.
//
// Send is safe for concurrent use.
//
//	s, err := natssink.New(natssink.Config{Subject: "republished.{type}", JetStream: true},
//		natssink.WithConn(nc), natssink.WithLogger(log))
//	if err != nil {
//		return cfgerr.Prefix("routes[0].sink.nats", err)
//	}
//	err = s.Send(ctx, ev) // nil, retryable, or consumers.IsPermanent(err)
package natssink
