// Package sinktest is the conformance suite that every [consumers.Sink]
// must pass, in the style of watermill's pubsub/tests: one call, driven by a
// [Features] value that states what the sink under test is meant to do, so
// the same assertions hold for every sink.
//
// The suite has two parts.
//
// [RunCore] is transport-neutral and every sink runs it. It drives a
// [Destination]: the sink under test plus a scripted destination of its
// kind (an HTTP receiver, a log stream, an EventBridge bus) that answers
// each event with an [Outcome] (Accept, Reject, Fail, Hang) and reports
// what it received. It checks the contract of [consumers.Sink] as STYLE.md
// §4 and §6 define it:
//
//   - Accept gives nil after exactly one attempt, and the event arrives
//     intact: id, source, type, subject, time, content type, extensions and
//     data bytes.
//   - Fail gives an error that is not [consumers.IsPermanent], after exactly
//     one attempt (JetStream redelivery is the only retry, so a sink must not
//     retry internally).
//   - Reject gives [consumers.IsPermanent], unless [Features.CannotReject].
//   - Against a destination that hangs, cancelling ctx makes Send return
//     promptly with a retryable error that wraps [context.Canceled], unless
//     [Features.CannotHang]. With ctx cancelled before the call, Send
//     returns such an error and nothing arrives.
//   - If the sink is a [consumers.BatchSink]: one SendBatch of events that
//     the destination accepts, rejects and fails in turn makes one attempt
//     and returns one result per event, in order, each of the right class,
//     and exactly the accepted events arrive. With [Features.FailEndsBatch]
//     (a byte stream) the events after the first failure count as failed.
//
// [Run] is the suite of HTTP sinks. It runs RunCore against a scripted
// httptest receiver on 127.0.0.1 (Accept 202, Reject 400, Fail 503, Hang
// until the client gives up), then the HTTP checks, against servers that
// answer with scripted statuses:
//
//   - 200, 201, 202 and 204 give nil, after exactly one POST.
//   - 408, 429, 500, 502, 503 and 504 give an error that is not
//     [consumers.IsPermanent], after exactly one request.
//   - 429 and 503 with Retry-After, as seconds and as an HTTP-date, give an
//     error for which [consumers.RetryAfterDelay] reports the delay.
//   - 400, 401, 403, 413 and 422, 404 unless [Features.Retry404] and 409
//     unless [Features.Retry409], give [consumers.IsPermanent]; with those
//     features, 404 and 409 give a retryable error.
//   - Every non-2xx error names the status code, so dead letters say why.
//   - Connection refused gives a retryable error.
//   - The CloudEvent id reaches the receiver (the ce-id header in binary mode,
//     "id" in the JSON body in structured mode, as [Features.Structured]
//     says) so receivers can dedupe, and the event's data arrives byte for
//     byte.
//
// An HTTP sink:
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
//
// Any other sink implements [Destination] in its tests (logsink: an
// io.Writer that reads back each line and fails the write at a scripted
// line) and calls:
//
//	sinktest.RunCore(t, func(*testing.T) sinktest.Destination { return &scriptWriter{} },
//		sinktest.Features{CannotReject: true, CannotHang: true, FailEndsBatch: true})
package sinktest
