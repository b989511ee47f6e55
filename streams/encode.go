package streams

import (
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// EncodeTrusted is [Encode] for an event whose data vrelay itself
// marshalled: JSON data (by its datacontenttype, see [MarshalEvent]) is
// taken as valid JSON and copied into the body without the scan that
// Encode makes of it. The vCenter converter's data qualifies (MarshalData
// and encoding/json write nothing else); data from outside, such as a
// webhook request's, must go through Encode. Data that is not valid JSON
// given to EncodeTrusted makes a body that is not valid JSON.
func EncodeTrusted(subject string, ev *event.Event, msgID string) (*nats.Msg, error) {
	return encode(subject, ev, msgID, true)
}

func encode(subject string, ev *event.Event, msgID string, trustedJSON bool) (*nats.Msg, error) {
	source := ev.Source()
	body, err := marshalEvent(ev, trustedJSON, source)
	if err != nil {
		return nil, fmt.Errorf("encode cloudevent %q: %w", ev.ID(), err)
	}
	if msgID == "" {
		msgID = source + ":" + ev.ID()
	}
	// One allocation for the values of all headers; each header gets a
	// slice of capacity 1, so that an Add to one copies it rather than
	// overwriting the next. Assign directly: the keys are already
	// canonical, and Set would canonicalise each one again.
	vals := make([]string, 0, 6)
	vals = append(vals, msgID, ev.Type(), source, ev.ID(), ContentType)
	h := make(nats.Header, 6)
	h[HeaderMsgID] = vals[0:1:1]
	h[HeaderType] = vals[1:2:2]
	h[HeaderSource] = vals[2:3:3]
	h[HeaderID] = vals[3:4:4]
	h[HeaderContentType] = vals[4:5:5]
	if s := ev.Subject(); s != "" {
		vals = append(vals, s)
		h[HeaderSubject] = vals[5:6:6]
	}
	return &nats.Msg{Subject: subject, Header: h, Data: body}, nil
}
