// Package httpsink delivers events to any HTTP endpoint as CloudEvents,
// following the CloudEvents HTTP binding, in binary mode (ce-* headers, the
// data byte for byte as the body) or structured mode (the event as one JSON
// object, written by [github.com/vrelay/vrelay/streams.MarshalEvent] as
// vrelay stores it: JSON data verbatim, text as a string, anything else as
// data_base64). In structured mode, a stored body the dispatcher hands over
// ([consumers.EncodedFromContext]) is sent as is.
//
// Contract: [Sink.Send] makes exactly one POST per call and never retries;
// JetStream redelivery is the only retry (STYLE.md §4). It returns nil on a
// 2xx; a retryable error on transport failures, timeouts, 408, 429 and 5xx,
// carrying the delay of a Retry-After header through [consumers.RetryAfter];
// and a [consumers.Permanent] error naming the status and quoting the start
// of the body on every other status. Redirects are not followed: a POST
// silently turned into a GET, or re-sent to a place the operator did not
// configure, is worse than a clear dead letter. The CloudEvent id travels
// with the event (ce-id, or "id" in the body) so receivers can dedupe
// redeliveries. Send is safe for concurrent use; the sink keeps up to 256
// idle connections to its receiver so concurrent sends reuse them.
//
// Secrets are read once, in [New], from the environment or mounted files the
// configuration names, and never appear in errors or logs.
//
//	s, err := httpsink.New(httpsink.Config{
//		URL:  "https://receiver.example.com/events",
//		Auth: httpsink.Auth{Bearer: &httpsink.BearerAuth{Token: secret.Ref{FromEnv: "RECEIVER_TOKEN"}}},
//	}, httpsink.WithLogger(log))
//	if err != nil {
//		return cfgerr.Prefix("routes[0].sink.http", err)
//	}
//	err = s.Send(ctx, ev) // nil, retryable, or consumers.IsPermanent(err)
package httpsink
