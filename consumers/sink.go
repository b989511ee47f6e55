package consumers

import (
	"context"
	"errors"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Sink delivers one event to one destination.
//
// Send makes exactly one delivery attempt and blocks until the destination
// answered, ctx is done or the attempt failed. It returns nil when the
// destination accepted the event, an error wrapped with [Permanent] when a
// retry cannot help (the destination rejected the event), and any other
// error when a retry may help. A [RetryAfter] error asks for a minimum delay
// before the next attempt. Send must return promptly once ctx is done.
//
// Send is called concurrently from up to the route's in-flight limit of
// goroutines. It never acks: the [Dispatcher] acks, naks or dead-letters on
// the strength of the returned error. It must not retry internally: JetStream
// redelivery is the only retry, so that attempts survive restarts and are
// counted once.
type Sink interface {
	Send(ctx context.Context, ev event.Event) error
}

// BatchSink is an optional capability of a [Sink] that sends many events
// per request (EventBridge PutEvents). A route whose Delivery.MaxBatch is
// above 1 needs one; [NewDispatcher] refuses a sink without it.
//
// SendBatch makes one attempt for the whole batch and returns exactly one
// classified error per event, in the order of evs: nil when the destination
// accepted that event, an error wrapped with [Permanent] when it rejected
// it, any other error (optionally [RetryAfter]) when a retry may help. A
// failure of the whole request (a timeout, a 503) is that error for every
// event. The [Dispatcher] settles each event on its own result, so a
// partial failure retries only the events that failed. A result slice of
// another length counts as a retryable failure of the whole batch.
//
// SendBatch blocks like Send, returns promptly once ctx is done, never
// retries internally and is called concurrently from up to the route's
// in-flight limit of goroutines. evs is the dispatcher's: the sink must not
// keep it after returning.
type BatchSink interface {
	SendBatch(ctx context.Context, evs []event.Event) []error
}

// StoredBodySink is an optional capability of a [Sink] that sends the
// stored body as it is. SendsStoredBody reports whether Send needs nothing
// of the event but its id, type, source and subject, and the body that
// [EncodedFromContext] returns (structured-mode JSON: httpsink in
// structured mode, natssink).
//
// For such a sink, a route with no transform and no orderBy, whose filter
// reads no other attribute (or that has none), takes each message that
// carries the headers vrelay's encoding writes without decoding its body:
// the event it sends is made from those headers
// ([github.com/vrelay/vrelay/streams.DecodeHeaders]), and the context
// always carries the stored body. Any other message is decoded as usual.
type StoredBodySink interface {
	SendsStoredBody() bool
}

// TimeoutSink is an optional capability of a [Sink] that bounds each
// attempt by a timeout of its own (an http sink's timeout). The
// [Dispatcher] then ends each send by the earlier of that and the route's
// Delivery.SendTimeout, so that the sink finds its bound in ctx's deadline
// and needs no timer of its own per send.
type TimeoutSink interface {
	SendTimeout() time.Duration
}

// PermanentError marks a delivery failure that a retry cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as a failure that no retry can fix, such as a 400 from
// the destination. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// [Permanent]. Unclassified errors are retryable.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError is a retryable failure for which the destination named the
// earliest time to try again (HTTP Retry-After).
type RetryAfterError struct {
	Err   error
	Delay time.Duration
}

func (e *RetryAfterError) Error() string {
	return e.Err.Error() + " (retry after " + e.Delay.String() + ")"
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter marks err as retryable no sooner than d from now.
// RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryAfterError{Err: err, Delay: d}
}

// RetryAfterDelay returns the delay requested through [RetryAfter], if any.
func RetryAfterDelay(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.Delay, true
	}
	return 0, false
}
