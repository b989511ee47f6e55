package streams

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of the dead-letter format (DESIGN.md §2). A dead letter is the
// original message, body and Ce-* headers, with these headers added; a
// replay message carries the origin headers of the event it replays. They
// are a public interface: `nats stream view VRELAY_DLQ` shows them.
const (
	HeaderRoute    = "Vrelay-Route"
	HeaderReason   = "Vrelay-Reason"
	HeaderFailure  = "Vrelay-Failure"
	HeaderAttempts = "Vrelay-Attempts"
	HeaderFailedAt = "Vrelay-Failed-At"
	// HeaderOriginalSubject, HeaderOriginalStream, HeaderOriginalSequence
	// and HeaderStoredAt say where and when the event was first stored.
	HeaderOriginalSubject  = "Vrelay-Original-Subject"
	HeaderOriginalStream   = "Vrelay-Original-Stream"
	HeaderOriginalSequence = "Vrelay-Stream-Sequence"
	HeaderStoredAt         = "Vrelay-Stored-At"
	// HeaderReplayRoute marked events that vrelay before 0.2 replayed into
	// the event stream for one route; every other route acks them
	// unseen. Replays now go to the replay stream and carry no such header.
	HeaderReplayRoute = "Vrelay-Replay-Route"
)

// Failure kinds, the value of [HeaderFailure].
const (
	// FailurePermanent: the sink rejected the event; no retry can help.
	FailurePermanent = "permanent"
	// FailureExhausted: the route's maxAttempts retryable failures.
	FailureExhausted = "attempts-exhausted"
	// FailureDecode: the stored message is not a CloudEvent vrelay can read.
	FailureDecode = "undecodable"
)

// Names of the replay stream: one subject per route, `vrelay.replay.<route>`,
// each read by the durable consumer named after its route.
const (
	ReplayStream = "VRELAY_REPLAY"
	ReplayPrefix = "vrelay.replay."
)

// ReplaySubject returns the replay subject of a route.
func ReplaySubject(route string) string { return ReplayPrefix + Token(route) }

// Origin is where and when an event was first stored.
type Origin struct {
	Subject  string
	Stream   string
	Sequence uint64
	StoredAt time.Time
}

// OriginOf returns the origin of a message a route consumed: for a replay,
// the event's first storage, which the replay message carries; otherwise
// the message itself.
func OriginOf(subject string, h nats.Header, meta *jetstream.MsgMetadata) Origin {
	if o, ok := readOrigin(h); ok {
		return o
	}
	return Origin{Subject: subject, Stream: meta.Stream, Sequence: meta.Sequence.Stream, StoredAt: meta.Timestamp}
}

func readOrigin(h nats.Header) (Origin, bool) {
	subj, stream := h.Get(HeaderOriginalSubject), h.Get(HeaderOriginalStream)
	seq, err := strconv.ParseUint(h.Get(HeaderOriginalSequence), 10, 64)
	if subj == "" || stream == "" || err != nil {
		return Origin{}, false
	}
	o := Origin{Subject: subj, Stream: stream, Sequence: seq}
	o.StoredAt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderStoredAt))
	return o, true
}

func (o Origin) write(h nats.Header) {
	h[HeaderOriginalSubject] = []string{o.Subject}
	h[HeaderOriginalStream] = []string{o.Stream}
	h[HeaderOriginalSequence] = []string{strconv.FormatUint(o.Sequence, 10)}
	if !o.StoredAt.IsZero() {
		h[HeaderStoredAt] = []string{o.StoredAt.UTC().Format(time.RFC3339Nano)}
	}
}

// DeadLetter is what the dead-letter stream records of one event a route
// could not deliver. The dispatcher writes it with [DeadLetter.Msg]; the
// `vrelay dlq` commands and the viewer read it with [ParseDeadLetter].
type DeadLetter struct {
	Route string
	// Reason is the last error, at most 1 KiB.
	Reason string
	// Failure is one of FailurePermanent, FailureExhausted, FailureDecode.
	Failure  string
	Attempts int
	FailedAt time.Time
	Origin   Origin
}

// maxReason bounds the reason header.
const maxReason = 1024

// Msg returns the dead-letter message of the event whose stored message
// (body and headers) a route failed to deliver. failed names the message
// that failed, its stream and sequence (a replay's differ from the
// origin's): its Nats-Msg-Id `<route>:<stream>:<sequence>` makes a second
// copy of the same failure, written when a Term got lost, a duplicate the
// dead-letter stream drops, while the same event failing again after a
// replay is kept.
func (d DeadLetter) Msg(data []byte, h nats.Header, failedStream string, failedSeq uint64) *nats.Msg {
	m := &nats.Msg{Subject: DLQSubject(d.Route), Data: data, Header: make(nats.Header, len(h)+10)}
	for k, v := range h {
		if keepOnCopy(k) {
			m.Header[k] = v
		}
	}
	m.Header[HeaderMsgID] = []string{d.Route + ":" + failedStream + ":" + strconv.FormatUint(failedSeq, 10)}
	m.Header[HeaderRoute] = []string{d.Route}
	m.Header[HeaderReason] = []string{truncate(d.Reason, maxReason)}
	m.Header[HeaderFailure] = []string{d.Failure}
	m.Header[HeaderAttempts] = []string{strconv.Itoa(d.Attempts)}
	m.Header[HeaderFailedAt] = []string{d.FailedAt.UTC().Format(time.RFC3339Nano)}
	d.Origin.write(m.Header)
	return m
}

// ErrNotDeadLetter is returned by [ParseDeadLetter] for a message that
// vrelay did not write as a dead letter.
var ErrNotDeadLetter = errors.New("not a vrelay dead letter: no route or original subject")

// ParseDeadLetter reads the dead-letter headers of a message of the
// dead-letter stream. Fields that are missing or malformed stay zero; only
// a message without route or origin is an error.
func ParseDeadLetter(h nats.Header) (DeadLetter, error) {
	d := DeadLetter{
		Route:   h.Get(HeaderRoute),
		Reason:  h.Get(HeaderReason),
		Failure: h.Get(HeaderFailure),
	}
	d.Attempts, _ = strconv.Atoi(h.Get(HeaderAttempts))
	d.FailedAt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderFailedAt))
	o, ok := readOrigin(h)
	d.Origin = o
	if d.Route == "" || !ok {
		return d, ErrNotDeadLetter
	}
	return d, nil
}

// ReplayMsg returns the message that replays the dead letter stored at
// dlqSeq in the dead-letter stream, with body data and headers h: the
// event's body and Ce-* headers on the route's replay subject, with the
// event's origin, so that a second failure is dead-lettered with the
// event's own history. Its Nats-Msg-Id `replay:<route>:<dlq sequence>`
// makes running the same replay twice within the duplicate window store
// it once. The event stream gets no copy.
func (d DeadLetter) ReplayMsg(dlqSeq uint64, data []byte, h nats.Header) *nats.Msg {
	m := &nats.Msg{Subject: ReplaySubject(d.Route), Data: data, Header: make(nats.Header, 10)}
	for k, v := range h {
		if isEventHeader(k) {
			m.Header[k] = v
		}
	}
	m.Header[HeaderMsgID] = []string{"replay:" + d.Route + ":" + strconv.FormatUint(dlqSeq, 10)}
	d.Origin.write(m.Header)
	return m
}

// keepOnCopy reports whether a header of a consumed message belongs on its
// dead letter: not the publish controls, not the dead-letter headers of an
// earlier failure (a replay's), which the new ones replace.
func keepOnCopy(k string) bool {
	switch k {
	case HeaderMsgID, HeaderReplayRoute, jetstream.ExpectedStreamHeader, jetstream.ExpectedLastSeqHeader,
		jetstream.ExpectedLastSubjSeqHeader, jetstream.ExpectedLastMsgIDHeader:
		return false
	}
	return !strings.HasPrefix(k, "Vrelay-")
}

// isEventHeader reports whether a header describes the event itself: the
// Ce-* copies and the body's content type.
func isEventHeader(k string) bool {
	return k == HeaderContentType || len(k) > 3 && strings.EqualFold(k[:3], "ce-")
}

// truncate cuts s to at most n bytes, on a character boundary, and marks
// the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ReplayStreamConfig is the replay stream: dead letters sent back to their
// route by `vrelay dlq replay`. Work-queue retention removes each one once
// its route acked it (delivered, or dead-lettered again), so the event
// stream, `nats stream view` and new routes never see a replay twice.
func ReplayStreamConfig(c Config) jetstream.StreamConfig {
	sc := DLQStreamConfig(c)
	sc.Name = ReplayStream
	sc.Description = "Dead letters replayed to their route by vrelay dlq replay"
	sc.Subjects = []string{ReplayPrefix + ">"}
	sc.Retention = jetstream.WorkQueuePolicy
	return sc
}

// ReplayConsumerConfig is the durable consumer of route on the replay
// stream, named like the route's consumer of the event stream.
func ReplayConsumerConfig(route string, ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       route,
		Description:   "vrelay route " + route + " (replays)",
		FilterSubject: ReplaySubject(route),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: maxAckPending,
	}
}

// String renders the origin for messages: `VMWARE_EVENTS#42 vmware.vcenter.vc01.VmPoweredOnEvent`.
func (o Origin) String() string { return fmt.Sprintf("%s#%d %s", o.Stream, o.Sequence, o.Subject) }
