// Package sinktest is the conformance suite that every HTTP-speaking
// [consumers.Sink] must pass, in the style of watermill's pubsub/tests: one
// [Run] call, driven by a [Features] value that states what the sink under
// test is meant to do, so the same assertions hold for httpsink, knative and
// whatever comes next.
//
// The suite starts its own httptest servers on 127.0.0.1 (port 0) that answer
// with scripted statuses, and calls newSink once per case with the URL to
// deliver to. It checks the contract of [consumers.Sink] as STYLE.md §4 and
// §6 define it:
//
//   - 200, 201, 202 and 204 give nil, after exactly one POST.
//   - 408, 429, 500, 502, 503 and 504 give an error that is not
//     [consumers.IsPermanent], after exactly one request (JetStream redelivery
//     is the only retry, so a sink must not retry internally).
//   - 429 and 503 with Retry-After, as seconds and as an HTTP-date, give an
//     error for which [consumers.RetryAfterDelay] reports the delay.
//   - 400, 401, 403, 409, 413 and 422, and 404 unless [Features.Retry404],
//     give [consumers.IsPermanent].
//   - Every non-2xx error names the status code, so dead letters say why.
//   - Connection refused gives a retryable error.
//   - Against a server that never answers, Send returns once ctx is
//     cancelled with a retryable error that wraps [context.Canceled].
//   - The CloudEvent id reaches the receiver (the ce-id header in binary mode,
//     "id" in the JSON body in structured mode) so receivers can dedupe, and
//     the event's data arrives byte for byte.
//
// newSink must return a sink that delivers to url with its other settings at
// their defaults; register any cleanup with t.Cleanup. Run's subtests run in
// parallel, so newSink must be safe to call concurrently.
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, func(t *testing.T, url string) consumers.Sink {
//			s, err := httpsink.New(httpsink.Config{URL: url})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		}, sinktest.Features{})
//	}
package sinktest
