package streams

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/internal/jsonscan"
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
// CloudEvent JSON that [MarshalEvent] writes as body (specversion 1.0, the
// data byte-exact), Ce-* header copies and Nats-Msg-Id set to msgID
// (MsgID(ev) when empty). It fails where MarshalEvent fails: on data that
// claims to be JSON but is not, or a time RFC 3339 cannot write.
func Encode(subject string, ev *event.Event, msgID string) (*nats.Msg, error) {
	return encode(subject, ev, msgID, false)
}

// Decode parses the structured-mode CloudEvent in a message body. The
// event's Data() is exactly the data [MarshalEvent] was given: JSON data
// verbatim, up to the closing brace when "data" is the last member (so a
// trailing newline survives), text unquoted, data_base64 decoded (with
// DataBase64 set). For every other body it accepts and rejects what
// json.Unmarshal(data, &ev) does, and returns the same event, except that
// data of a +json type is read as JSON, which the SDK cannot do. The
// event's data may share memory with data: do not modify data while the
// event is in use.
//
// json.Unmarshal reads the body three times: it validates it, finds the
// end of the object, and lets the SDK parse it, whose parser then walks the
// data a field at a time. Decode reads the shape MarshalEvent writes
// (specversion 1.0 first, string attributes, string, boolean and integer
// extensions, data or data_base64) in one pass of its own that validates
// as it goes; anything else is validated, then goes to the SDK's parser.
func Decode(data []byte) (event.Event, error) {
	// decodeV1 checks all it reads as json.Valid does, so an event it
	// returns comes from valid JSON: the body is read once.
	if ev, ok := decodeV1(data); ok {
		return ev, nil
	}
	if !validJSON(data) {
		// Slow path, for json.Unmarshal's error message.
		ev := event.New()
		err := json.Unmarshal(data, &ev)
		if err == nil {
			err = errors.New("invalid json")
		}
		return ev, fmt.Errorf("decode cloudevent: %w", err)
	}
	ev := event.New()
	if err := ev.UnmarshalJSON(data); err != nil {
		return ev, fmt.Errorf("decode cloudevent: %w", err)
	}
	return ev, nil
}

// decodeV1 reads a JSON object that starts with "specversion":"1.0"
// and has keys without escapes, string attributes, extensions that are
// strings, booleans or small integers, and data or data_base64. It gives
// the event the SDK's parser gives (see readJsonFromIterator in sdk-go's
// event/event_unmarshal.go), but for the data rules of [MarshalEvent], or
// false for the SDK to handle the rest: other versions, escapes it does not
// read, other extension values, duplicate keys, values the SDK rejects.
// It checks everything it reads as json.Valid does (the data with
// [jsonscan.Value]), so it never returns true for a body that is not valid
// JSON.
func decodeV1(b []byte) (event.Event, bool) {
	p := scanner{b: b}
	if !p.consume('{') {
		return event.Event{}, false
	}
	if k, ok := p.key(); !ok || string(k) != "specversion" {
		return event.Event{}, false
	}
	if v, ok := p.raw(); !ok || string(v) != event.CloudEventsVersionV1 {
		return event.Event{}, false
	}
	ec := &event.EventContextV1{}
	var (
		data []byte
		seen uint16 // the attributes read, as bits
	)
	for {
		if p.consume('}') {
			break
		}
		if !p.consume(',') {
			return event.Event{}, false
		}
		kb, ok := p.key()
		if !ok {
			return event.Event{}, false
		}
		attr, known := attrs[string(kb)]
		if known {
			if seen&(1<<attr) != 0 {
				return event.Event{}, false // a duplicate
			}
			seen |= 1 << attr
		}
		switch {
		case attr == attrData || attr == attrDataBase64:
			start := p.i
			p.ws()
			// Nested in the event's object: one level less to go.
			if p.i = jsonscan.Value(b, p.i, 1); p.i < 0 {
				return event.Event{}, false
			}
			end := p.i
			if attr == attrData {
				// The last member: the white space up to the closing brace
				// is the data's, as MarshalEvent wrote it.
				if j := jsonscan.Space(b, end); j < len(b) && b[j] == '}' && jsonscan.Space(b, j+1) == len(b) {
					end = j
				}
			}
			data = b[start:end]
			continue
		case !known:
			k := internString(kb)
			v, ok := p.extension()
			if !ok {
				return event.Event{}, false
			}
			if _, dup := ec.Extensions[strings.ToLower(k)]; dup || k == "" || ec.SetExtension(k, v) != nil {
				return event.Event{}, false
			}
			continue
		}
		v, ok := p.strBytes()
		if !ok {
			return event.Event{}, false
		}
		switch attr {
		case attrID:
			ec.ID = string(v)
		case attrType:
			ec.Type = internString(v)
		case attrSource:
			u, ok := parseSource(v)
			if !ok {
				return event.Event{}, false
			}
			ec.Source = u
		case attrSubject:
			if len(v) > 0 {
				s := string(v)
				ec.Subject = &s
			}
		case attrTime:
			t, err := cetypes.ParseTimestamp(string(v))
			if err != nil {
				return event.Event{}, false
			}
			ec.Time = t
		case attrDataContentType:
			s := internString(v)
			ec.DataContentType = &s
		case attrDataSchema:
			ec.DataSchema = cetypes.ParseURI(string(v))
		default: // specversion again
			return event.Event{}, false
		}
	}
	if p.ws(); p.i != len(b) {
		return event.Event{}, false
	}
	ev := event.Event{Context: ec}
	switch seen & (1<<attrData | 1<<attrDataBase64) {
	case 0:
	case 1 << attrData:
		if dataKind(ec.DataContentType) == dataJSON {
			// Shared with the body, not copied as the SDK does.
			ev.DataEncoded = data
			break
		}
		// Any other type is a string, as the SDK reads it.
		s, ok := unquote(bytes.TrimLeft(data, " \t\r\n"))
		if !ok {
			return event.Event{}, false
		}
		ev.DataEncoded = s
	case 1 << attrDataBase64:
		s, ok := unquote(bytes.TrimLeft(data, " \t\r\n"))
		if !ok {
			return event.Event{}, false
		}
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(dec, s)
		if err != nil {
			return event.Event{}, false
		}
		ev.DataEncoded, ev.DataBase64 = dec[:n], true
	default: // both: the SDK decides
		return event.Event{}, false
	}
	return ev, true
}

// Attribute values that repeat from one event to the next are kept once,
// so that decoding them costs no allocation: sources (parsing the same URL
// for every event cost more than the rest of the attributes together),
// types and content types, extension names and values.
var (
	sources    = internTable[cetypes.URIRef]{max: 1024} // webhook senders choose their sources
	attrValues = internTable[string]{max: 1024}
	extValues  = internTable[any]{max: 1024}
)

// maxInterned bounds the length of a value worth keeping.
const maxInterned = 256

// internTable maps the bytes of a value to what they decode to, for at
// most max values: the first ones seen. Reads take no lock and allocate
// nothing; each new value copies the map, which happens at most max times.
type internTable[T any] struct {
	m   atomic.Pointer[map[string]T]
	mu  sync.Mutex
	max int
}

// get returns what b decodes to, from the table or from decode(string(b)).
func (t *internTable[T]) get(b []byte, decode func(string) (T, bool)) (T, bool) {
	if m := t.m.Load(); m != nil {
		if v, ok := (*m)[string(b)]; ok {
			return v, true
		}
	}
	s := string(b)
	v, ok := decode(s)
	if !ok || len(s) > maxInterned {
		return v, ok
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old == nil {
		old = new(map[string]T)
	}
	if len(*old) >= t.max {
		return v, true
	}
	m := make(map[string]T, len(*old)+1)
	for k, e := range *old {
		m[k] = e
	}
	m[s] = v
	t.m.Store(&m)
	return v, true
}

// parseSource is cetypes.ParseURIRef, kept for the sources seen first.
func parseSource(b []byte) (cetypes.URIRef, bool) {
	return sources.get(b, func(s string) (cetypes.URIRef, bool) {
		u := cetypes.ParseURIRef(s)
		if u == nil {
			return cetypes.URIRef{}, false
		}
		return *u, true
	})
}

// internString returns string(b), kept once for the values seen first.
func internString(b []byte) string {
	s, _ := attrValues.get(b, func(s string) (string, bool) { return s, true })
	return s
}

// The attributes decodeV1 knows; every other key is an extension.
const (
	attrID = iota
	attrType
	attrSource
	attrSubject
	attrTime
	attrDataContentType
	attrDataSchema
	attrData
	attrDataBase64
	attrOther // specversion: left to the SDK
)

var attrs = map[string]int{
	"id": attrID, "type": attrType, "source": attrSource, "subject": attrSubject, "time": attrTime,
	"datacontenttype": attrDataContentType, "dataschema": attrDataSchema, "data": attrData,
	"data_base64": attrDataBase64, "specversion": attrOther,
}

// scanner reads the event object for decodeV1. What it reads it checks
// with jsonscan, as json.Valid would; the shapes it does not read it
// leaves to the SDK.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) ws() { p.i = jsonscan.Space(p.b, p.i) }

// consume skips white space and c, if c comes next.
func (p *scanner) consume(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// raw reads a string without escapes and returns its bytes, unquoted.
func (p *scanner) raw() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '"':
			p.i++
			return p.b[start : p.i-1], true
		case '\\':
			return nil, false
		}
		if p.b[p.i] < 0x20 { // not allowed in a JSON string
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// key reads a key without escapes and its colon.
func (p *scanner) key() ([]byte, bool) {
	k, ok := p.raw()
	return k, ok && p.consume(':')
}

// strBytes reads a string and returns its content, unescaped; without
// escapes it shares the body's memory.
func (p *scanner) strBytes() ([]byte, bool) {
	p.ws()
	start := p.i
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	if p.i = jsonscan.String(p.b, p.i); p.i < 0 {
		return nil, false
	}
	return unquote(p.b[start:p.i])
}

// extension reads an extension value as the SDK's parser does: a string,
// a boolean, or an integer short enough that the SDK's float64 and our
// int64 agree on it (the SDK then truncates it to int32).
func (p *scanner) extension() (any, bool) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch p.b[p.i] {
	case '"':
		v, ok := p.strBytes()
		if !ok {
			return nil, false
		}
		return extValues.get(v, func(s string) (any, bool) { return s, true })
	case 't':
		if p.i = jsonscan.Literal(p.b, p.i, "true"); p.i < 0 {
			return nil, false
		}
		return true, true
	case 'f':
		if p.i = jsonscan.Literal(p.b, p.i, "false"); p.i < 0 {
			return nil, false
		}
		return false, true
	}
	start := p.i
	if p.i = jsonscan.Number(p.b, p.i); p.i < 0 {
		return nil, false
	}
	v := p.b[start:p.i]
	if len(v) > 10 || bytes.ContainsAny(v, ".eE") {
		return nil, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return nil, false
	}
	return n, true
}

// unquote returns the content of the JSON string q (quotes included),
// unescaped; without escapes it shares q's memory. It returns false for
// \u escapes of lone surrogates, where parsers disagree.
func unquote(q []byte) ([]byte, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return nil, false
	}
	q = q[1 : len(q)-1]
	i := bytes.IndexByte(q, '\\')
	if i < 0 {
		return q, true
	}
	out := make([]byte, 0, len(q))
	for i >= 0 {
		out = append(out, q[:i]...)
		if i+1 >= len(q) {
			return nil, false
		}
		switch c := q[i+1]; c {
		case '"', '\\', '/':
			out = append(out, c)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n := unescapeRune(q[i:])
			if n == 0 {
				return nil, false
			}
			out = utf8.AppendRune(out, r)
			q = q[i+n:]
			i = bytes.IndexByte(q, '\\')
			continue
		default:
			return nil, false
		}
		q = q[i+2:]
		i = bytes.IndexByte(q, '\\')
	}
	return append(out, q...), true
}

// unescapeRune reads \uXXXX, or a surrogate pair \uXXXX\uXXXX, at the start
// of q, and returns the rune and the bytes read, or 0 bytes for a lone
// surrogate.
func unescapeRune(q []byte) (rune, int) {
	r, ok := hex4(q)
	if !ok {
		return 0, 0
	}
	if !utf16.IsSurrogate(r) {
		return r, 6
	}
	r2, ok := hex4(q[6:])
	if !ok {
		return 0, 0
	}
	if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
		return d, 12
	}
	return 0, 0
}

// hex4 reads \uXXXX at the start of q.
func hex4(q []byte) (rune, bool) {
	if len(q) < 6 || q[0] != '\\' || q[1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(q[2:6]), 16, 32)
	return rune(n), err == nil
}

// validJSON reports what json.Valid(b) reports (see [jsonscan.Valid]).
func validJSON(b []byte) bool { return jsonscan.Valid(b) }
