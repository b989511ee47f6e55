package producers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/streams"
)

// Health event kinds: the middle of the CloudEvent type
// `com.vrelay.health.<kind>.v0`.
const (
	HealthConnectionLost     = "connection.lost"
	HealthConnectionRestored = "connection.restored"
	HealthStallDetected      = "stall.detected"
	HealthStallRecovered     = "stall.recovered"
	HealthGapSwept           = "gap.swept"
	HealthCheckpointConflict = "checkpoint.conflict"
	HealthUnknownEvent       = "event.unknown"
)

// HealthTypePrefix and HealthTypeSuffix frame a health event's kind in its
// CloudEvent type.
const (
	HealthTypePrefix = "com.vrelay.health."
	HealthTypeSuffix = ".v0"
)

// healthTimeout bounds one health publish: a health event must never hold
// up the source that reports it.
const healthTimeout = 5 * time.Second

// HealthEvents publishes one source's health events as CloudEvents on
// `vrelay.health.<provider>.<source>` (the VRELAY_HEALTH stream, see
// [streams.HealthStreamConfig]): type `com.vrelay.health.<kind>.v0`, source
// the upstream's URL without credentials, subject the source name, data a
// JSON object with the details of the kind.
//
// Emit is best effort: a health event that JetStream does not take is
// logged and dropped, and never stops or slows the source more than
// healthTimeout. A nil *HealthEvents emits nothing, so a source built
// without one needs no checks. It is safe for concurrent use.
type HealthEvents struct {
	js      jetstream.Publisher
	subject string
	source  string // CloudEvent source
	name    string // CloudEvent subject
	log     *slog.Logger
	now     func() time.Time
}

// NewHealthEvents returns the health publisher of the source name of
// provider, whose upstream is ceSource (a URL without credentials). A nil
// log discards.
func NewHealthEvents(js jetstream.Publisher, provider, name, ceSource string, log *slog.Logger) *HealthEvents {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HealthEvents{js: js, subject: streams.HealthSubject(provider, name), source: ceSource,
		name: name, log: log, now: time.Now}
}

// Subject returns the subject the events go to.
func (h *HealthEvents) Subject() string {
	if h == nil {
		return ""
	}
	return h.subject
}

// Emit publishes one health event of kind with data (a value encoding/json
// can render, normally a map or a struct with json tags) and waits for the
// PubAck, at most healthTimeout. It logs a failure and returns nothing.
func (h *HealthEvents) Emit(ctx context.Context, kind string, data any) {
	if h == nil || h.js == nil {
		return
	}
	ev, err := h.event(kind, data)
	if err != nil {
		h.log.Error("cannot build a health event", "kind", kind, "err", err)
		return
	}
	msg, err := streams.Encode(h.subject, &ev, ev.ID())
	if err != nil {
		h.log.Error("cannot encode a health event", "kind", kind, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healthTimeout)
	defer cancel()
	if _, err := h.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(streams.HealthStream)); err != nil {
		h.log.Warn("cannot publish a health event; it is dropped", "kind", kind, "subject", h.subject, "err", err)
	}
}

func (h *HealthEvents) event(kind string, data any) (event.Event, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return event.Event{}, fmt.Errorf("health event %s: %w", kind, err)
	}
	ev := event.New()
	ev.SetID(uuid.NewString())
	ev.SetSource(h.source)
	ev.SetType(HealthTypePrefix + kind + HealthTypeSuffix)
	ev.SetSubject(h.name)
	ev.SetTime(h.now().UTC())
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = b
	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("health event %s: %w", kind, err)
	}
	return ev, nil
}
