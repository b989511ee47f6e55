package producers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/backoff"
	"github.com/vrelay/vrelay/producers/internal/memo"
	"github.com/vrelay/vrelay/streams"
)

// Scope says where a source's events go: subjects
// `<root>.<provider>.<source>.<token>`, where each [Record] brings its own
// token.
type Scope struct {
	// Root is the subject root; default streams.DefaultRoot.
	Root string
	// Provider is "vcenter", "horizon" or "webhook".
	Provider string
	// Source is the source's name from the configuration.
	Source string
}

// Record is one event as its source hands it to a [Publisher]: the
// CloudEvent plus what only the source knows. A record whose MsgID and
// Token are empty is published under the defaults, which suit a source
// whose CloudEvents carry their upstream identity (the webhook); see
// [Records].
type Record struct {
	Event event.Event
	// MsgID is the upstream identity, the Nats-Msg-Id JetStream
	// de-duplicates on: the same upstream event must get the same MsgID
	// whenever it is published again. Default streams.MsgID(&Event), the
	// CloudEvent source + ":" + id. vCenter uses `<instance uuid>:<key>`.
	MsgID string
	// Token is the last subject token before sanitising (a '.', '*', '>'
	// or white space becomes '_'). Default: the CloudEvent type. vCenter
	// uses the vSphere event type (`VmPoweredOnEvent`), Horizon its event
	// type as Horizon spells it (`VLSI_USERLOGGEDIN_REST`).
	Token string
	// TrustedJSON says that the event's data, when its content type says
	// JSON, is valid JSON that vrelay marshalled itself (the vCenter
	// converter's): it is published without being scanned again (see
	// streams.EncodeTrusted). Never set it for data from outside, such as
	// a webhook request's.
	TrustedJSON bool
}

// Records wraps events in records with the default MsgID and Token.
func Records(evs ...event.Event) []Record {
	recs := make([]Record, len(evs))
	for i := range evs {
		recs[i].Event = evs[i]
	}
	return recs
}

func (r *Record) msgID() string {
	if r.MsgID != "" {
		return r.MsgID
	}
	return streams.MsgID(&r.Event)
}

func (r *Record) token() string {
	if r.Token != "" {
		return r.Token
	}
	return r.Event.Type()
}

// EventError is an event that can never be stored as it is: it cannot be
// encoded, or it is larger than the server accepts. Publish returns it
// before sending anything, so nothing of the batch is stored; retrying the
// same batch cannot help.
type EventError struct {
	// Index is the record's position in the batch (an index into the
	// records given to Publish), ID its CloudEvent id.
	Index int
	ID    string
	Err   error
}

func (e *EventError) Error() string {
	return fmt.Sprintf("event %d (id %q): %v", e.Index, e.ID, e.Err)
}

func (e *EventError) Unwrap() error { return e.Err }

// JetStreamPublisher is the [Publisher] of one source.
type JetStreamPublisher struct {
	js          jetstream.JetStream
	scope       Scope
	log         *slog.Logger
	metrics     *Metrics
	maxAttempts int
	retryWait   time.Duration
	storage     *streams.StorageHealth
	// subjects keeps the subject of each token seen first; a source
	// publishes a few hundred event types.
	subjects memo.Table[string]
	// pubOpts are the options of every PublishMsgAsync, made once.
	pubOpts []jetstream.PublishOpt
}

// maxSubjects bounds the subjects a publisher keeps.
const maxSubjects = 1024

// NewPublisher returns a publisher of the source named in scope. js should
// have been created with jetstream.WithPublishAsyncTimeout, so that an ack
// lost with a connection fails and is retried rather than awaited until
// ctx ends.
func NewPublisher(js jetstream.JetStream, scope Scope, opts ...Option) *JetStreamPublisher {
	o := newOptions(opts)
	if scope.Root == "" {
		scope.Root = streams.DefaultRoot
	}
	return &JetStreamPublisher{
		subjects:    memo.Table[string]{Max: maxSubjects},
		pubOpts:     []jetstream.PublishOpt{jetstream.WithExpectStream(streams.EventStream)},
		js:          js,
		scope:       scope,
		log:         o.log.With("provider", scope.Provider, "source", scope.Source),
		metrics:     o.metrics,
		maxAttempts: o.publishAttempts,
		retryWait:   o.publishRetryWait,
		storage:     o.storage,
	}
}

// Subject returns the subject rec is published on.
func (p *JetStreamPublisher) Subject(rec *Record) string {
	return p.subjects.Get(rec.token(), func(token string) string {
		return streams.Subject(p.scope.Root, p.scope.Provider, p.scope.Source, token)
	})
}

// Publish implements [Publisher]. Every record is encoded before the first
// is sent, so an event that cannot be encoded, or that exceeds the
// server's max payload, fails the call with an [EventError] and nothing
// published. Events whose ack failed are sent again, with the same
// Nats-Msg-Id, up to the publisher's attempts (default 5) with a growing
// pause; JetStream drops those of them it already stored.
func (p *JetStreamPublisher) Publish(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]*nats.Msg, len(recs))
	maxPayload := p.js.Conn().MaxPayload()
	for i := range recs {
		rec := &recs[i]
		encode := streams.Encode
		if rec.TrustedJSON {
			encode = streams.EncodeTrusted
		}
		m, err := encode(p.Subject(rec), &rec.Event, rec.msgID())
		if err != nil {
			return &EventError{Index: i, ID: rec.Event.ID(), Err: err}
		}
		if maxPayload > 0 && int64(len(m.Data)) > maxPayload {
			return &EventError{Index: i, ID: rec.Event.ID(), Err: fmt.Errorf("%d bytes exceed the server's max payload of %d: %w", len(m.Data), maxPayload, nats.ErrMaxPayload)}
		}
		msgs[i] = m
	}
	pending := msgs
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for attempt := 1; ; attempt++ {
		// While storage is known to fail, an ack would not come: say so
		// now instead of after the ack timeout.
		if err := p.storage.Err(); err != nil {
			p.metrics.failed(p.scope, len(pending))
			return fmt.Errorf("publish %d of %d events: %w", len(pending), len(recs), err)
		}
		storageFailing := p.storage.Failing()
		var sendErr error
		for i, m := range pending {
			f, err := p.js.PublishMsgAsync(m, p.pubOpts...)
			if err != nil {
				sendErr = err
			}
			futures[i] = f
		}
		var failed []*nats.Msg
		var lastErr error
		stored, dups := 0, 0
		for i, f := range futures[:len(pending)] {
			if f == nil {
				failed = append(failed, pending[i])
				lastErr = sendErr
				continue
			}
			select {
			case ack := <-f.Ok():
				stored++
				if ack.Duplicate {
					dups++
				}
			case err := <-f.Err():
				failed = append(failed, pending[i])
				lastErr = err
			case <-ctx.Done():
				return ctx.Err()
			case <-storageFailing:
				// Events still unacked are sent again with their
				// Nats-Msg-Id by the caller; JetStream drops those it
				// stored after all.
				p.metrics.published(p.scope, stored, dups)
				p.metrics.failed(p.scope, len(pending)-stored)
				err := p.storage.Err()
				if err == nil { // it recovered meanwhile
					err = streams.ErrStorageFailing
				}
				return fmt.Errorf("publish %d of %d events: %w", len(pending)-stored, len(recs), err)
			}
		}
		p.metrics.published(p.scope, stored, dups)
		if len(failed) == 0 {
			return nil
		}
		p.metrics.failed(p.scope, len(failed))
		if errors.Is(lastErr, nats.ErrMaxPayload) || attempt >= p.maxAttempts {
			return fmt.Errorf("publish %d of %d events to jetstream after %d attempts: %w", len(failed), len(recs), attempt, lastErr)
		}
		p.log.Debug("republishing events whose ack failed", "count", len(failed), "attempt", attempt, "err", lastErr)
		if !backoff.Sleep(ctx, backoff.Policy{Initial: p.retryWait}.Delay(attempt)) {
			return ctx.Err()
		}
		pending = failed
	}
}

// Stored is an event as the stream holds it.
type Stored struct {
	Event event.Event
	// MsgID is its Nats-Msg-Id, the upstream identity it was stored under.
	MsgID string
}

// Last returns the last event this source stored in the stream, or
// [ErrNoEvent]. A polling source consults it at start, because the stream,
// not the checkpoint, is the truth: the checkpoint is saved only every few
// seconds, so after a crash the stream is usually ahead of it; and on a
// single node a power loss can lose the last second of stream writes while
// the checkpoint bucket kept a later position.
func (p *JetStreamPublisher) Last(ctx context.Context) (Stored, error) {
	s, err := p.js.Stream(ctx, streams.EventStream)
	if err != nil {
		return Stored{}, fmt.Errorf("open %s: %w", streams.EventStream, err)
	}
	filter := p.scope.Root + "." + streams.Token(p.scope.Provider) + "." + streams.Token(p.scope.Source) + ".>"
	raw, err := s.GetLastMsgForSubject(ctx, filter)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Stored{}, ErrNoEvent
	}
	if err != nil {
		return Stored{}, fmt.Errorf("read last event of %s: %w", filter, err)
	}
	ev, err := streams.Decode(raw.Data)
	if err != nil {
		return Stored{}, err
	}
	return Stored{Event: ev, MsgID: raw.Header.Get(streams.HeaderMsgID)}, nil
}

// ErrNoEvent is returned by [JetStreamPublisher.Last] when the stream holds
// no event of the source.
var ErrNoEvent = errors.New("no event of this source in the stream")
