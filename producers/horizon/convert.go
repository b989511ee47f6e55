package horizon

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

const (
	tanzuTypePrefix  = "com.vmware.horizon."
	routerTypePrefix = "com.vmware.event.router/horizon."
	typeSuffix       = ".v0"
	// unknownType names an event whose record has no type.
	unknownType = "UNKNOWN"
	contentType = "application/json"
)

// auditEvent is one AuditEventSummary: the fields the source orders and
// names events by, and the record exactly as Horizon returned it.
type auditEvent struct {
	ID   int64
	Time int64 // epoch milliseconds
	Type string
	Raw  []byte
}

// errNoID and errNoTime: a record the source cannot place.
var (
	errNoID   = errors.New("record has no integer id")
	errNoTime = errors.New("record has no integer time")
)

// parseRecord reads the id, time and type of one record. The record
// itself is kept as it is, to become the CloudEvent data byte for byte.
func parseRecord(raw []byte) (auditEvent, error) {
	var f struct {
		ID   *int64 `json:"id"`
		Time *int64 `json:"time"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "id":
			return auditEvent{}, errNoID
		case errors.As(err, &te) && te.Field == "time":
			return auditEvent{}, errNoTime
		}
		return auditEvent{}, fmt.Errorf("record is not an AuditEventSummary object: %w", err)
	}
	switch {
	case f.ID == nil:
		return auditEvent{}, errNoID
	case f.Time == nil:
		return auditEvent{}, errNoTime
	}
	return auditEvent{ID: *f.ID, Time: *f.Time, Type: f.Type, Raw: raw}, nil
}

// token is the event's subject token: its Horizon type as Horizon spells
// it (VLSI_USERLOGGEDIN_REST), or UNKNOWN.
func (ev *auditEvent) token() string {
	if ev.Type == "" {
		return unknownType
	}
	return ev.Type
}

// Converter turns Horizon audit events into CloudEvents. Its fields are
// read-only once in use; it is safe for concurrent use.
type Converter struct {
	// Source is the CloudEvent source: the pod's base URL, such as
	// https://horizon.example.com.
	Source string
	// Format is the shape; "" means FormatTanzu.
	Format Format
}

// Convert returns the CloudEvent of one AuditEventSummary record, as the
// audit-events endpoint returned it (one element of its JSON array):
//
//   - id: the event id;
//   - source: c.Source;
//   - type: com.vmware.horizon.<type>.v0 (tanzu) or
//     com.vmware.event.router/horizon.<type>.v0 (router), <type> being the
//     record's type lower-cased, or unknown when it has none;
//   - time: the record's time, to the millisecond;
//   - datacontenttype application/json, and the record as data, byte for
//     byte.
//
// It fails for a record without an integer id or time, a time outside
// the years 0000 to 9999, an unknown format, or a result that is not a
// valid CloudEvent (an empty Source).
func (c Converter) Convert(record []byte) (event.Event, error) {
	ev, err := parseRecord(record)
	if err != nil {
		return event.Event{}, fmt.Errorf("convert horizon event: %w", err)
	}
	return c.convert(&ev)
}

func (c Converter) convert(ae *auditEvent) (event.Event, error) {
	id := strconv.FormatInt(ae.ID, 10)
	var prefix string
	switch c.Format {
	case "", FormatTanzu:
		prefix = tanzuTypePrefix
	case FormatRouter:
		prefix = routerTypePrefix
	default:
		return event.Event{}, fmt.Errorf("convert horizon event %s: unknown format %q", id, c.Format)
	}
	t := time.UnixMilli(ae.Time).UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		// The event codec could not store it: RFC 3339 has four-digit years.
		return event.Event{}, fmt.Errorf("convert horizon event %s: time %d ms is in year %d", id, ae.Time, y)
	}
	ev := event.New()
	ev.SetID(id)
	ev.SetSource(c.Source)
	ev.SetType(prefix + strings.ToLower(ae.token()) + typeSuffix)
	ev.SetTime(t)
	// Not SetData: given []byte it would mark the data base64.
	ev.SetDataContentType(contentType)
	ev.DataEncoded = ae.Raw
	ev.DataBase64 = false
	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("convert horizon event %s: %w", id, err)
	}
	return ev, nil
}
