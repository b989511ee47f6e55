package streams

import (
	"encoding/json"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// Header names carried by every event message. The Ce-* headers copy the
// CloudEvent attributes of the same name so that a consumer can filter
// without parsing the body; the body stays the source of truth.
const (
	HeaderMsgID   = "Nats-Msg-Id"
	HeaderType    = "Ce-Type"
	HeaderSource  = "Ce-Source"
	HeaderID      = "Ce-Id"
	HeaderSubject = "Ce-Subject"
	// HeaderContentType is the body's media type: always structured-mode
	// CloudEvents JSON.
	HeaderContentType = "Content-Type"
)

// ContentType is the media type of an event message body.
const ContentType = "application/cloudevents+json; charset=UTF-8"

// MsgID returns the default Nats-Msg-Id of an event: its source and id,
// which the CloudEvents spec makes unique together.
func MsgID(ev *event.Event) string { return ev.Source() + ":" + ev.ID() }

// Encode returns the NATS message for ev on subject: the structured-mode
// CloudEvent JSON as body, Ce-* header copies and Nats-Msg-Id set to msgID
// (MsgID(ev) when empty).
func Encode(subject string, ev *event.Event, msgID string) (*nats.Msg, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode cloudevent %q: %w", ev.ID(), err)
	}
	if msgID == "" {
		msgID = MsgID(ev)
	}
	h := make(nats.Header, 6)
	// Assign directly: the keys are already canonical, and Set would
	// canonicalise each one again.
	h[HeaderMsgID] = []string{msgID}
	h[HeaderType] = []string{ev.Type()}
	h[HeaderSource] = []string{ev.Source()}
	h[HeaderID] = []string{ev.ID()}
	if s := ev.Subject(); s != "" {
		h[HeaderSubject] = []string{s}
	}
	h[HeaderContentType] = []string{ContentType}
	return &nats.Msg{Subject: subject, Header: h, Data: body}, nil
}

// Decode parses the structured-mode CloudEvent in a message body.
func Decode(data []byte) (event.Event, error) {
	ev := event.New()
	if err := json.Unmarshal(data, &ev); err != nil {
		return ev, fmt.Errorf("decode cloudevent: %w", err)
	}
	return ev, nil
}
