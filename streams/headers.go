package streams

import (
	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
)

// DecodeHeaders returns the event that the headers of an event message
// describe, without reading its body: a CloudEvents 1.0 event with the id,
// type, source and subject of the Ce-* headers [Encode] writes, and no
// data, time, content type or extensions. ok is false unless the headers
// are those of a message Encode made: Content-Type is [ContentType] and
// Ce-Id, Ce-Type and a Ce-Source that parses as a URI reference are set;
// then the body must be read with [Decode].
//
// The headers copy the body's attributes and the body stays the source of
// truth. A consumer that needs only these attributes and the stored body
// as it is (a filter on type, source, id or subject, delivered as
// structured JSON) can take the message this way and skip Decode, which
// reads and validates the whole body. Such a consumer trusts that the
// body of a message with these headers is the structured-mode event Encode
// wrote; a publisher that sets them over some other body gets it delivered
// as it is.
func DecodeHeaders(h nats.Header) (ev event.Event, ok bool) {
	if !single(h, HeaderContentType, ContentType) {
		return event.Event{}, false
	}
	id, typ, src := one(h, HeaderID), one(h, HeaderType), one(h, HeaderSource)
	if id == "" || typ == "" || src == "" {
		return event.Event{}, false
	}
	source, ok := sourceOf(src)
	if !ok {
		return event.Event{}, false
	}
	ec := &event.EventContextV1{ID: id, Type: typ, Source: source}
	if s := one(h, HeaderSubject); s != "" {
		ec.Subject = &s
	}
	return event.Event{Context: ec}, true
}

// one returns the value of header k when it has exactly one, else "".
func one(h nats.Header, k string) string {
	if v := h[k]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// single reports whether header k has exactly the value want.
func single(h nats.Header, k, want string) bool {
	v := h[k]
	return len(v) == 1 && v[0] == want
}

// sourceOf parses a source, from the table of sources [Decode] keeps when
// it is there.
func sourceOf(s string) (cetypes.URIRef, bool) {
	if m := sources.m.Load(); m != nil {
		if u, ok := (*m)[s]; ok {
			return u, true
		}
	}
	return parseSource([]byte(s))
}
