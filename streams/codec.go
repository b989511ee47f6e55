package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
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
//
// The body is byte for byte what json.Marshal(ev) returns: compact, with
// <, > and & escaped, and it fails the same way on data that claims to be
// JSON but is not. It is built with less work: the SDK writes the event
// into a pooled buffer, one pass checks that it is valid and compact (the
// data usually is), and only data with white space is compacted.
func Encode(subject string, ev *event.Event, msgID string) (*nats.Msg, error) {
	body, err := marshal(ev)
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

// bufs holds the buffers marshal writes into.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled bounds the buffers kept for reuse, so that one huge event does
// not pin its buffer.
const maxPooled = 64 << 10

func getBuf() *bytes.Buffer {
	b := bufs.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooled {
		bufs.Put(b)
	}
}

// marshal returns json.Marshal(ev). json.Marshal calls ev.MarshalJSON,
// which writes into a fresh buffer, then compacts that with HTML escaping
// into a buffer of its own, validating it on the way, and copies the
// result.
func marshal(ev *event.Event) ([]byte, error) {
	raw := getBuf()
	defer putBuf(raw)
	if err := event.WriteJson(ev, raw); err != nil {
		return nil, fmt.Errorf("json: error calling MarshalJSON for type event.Event: %w", err)
	}
	b := raw.Bytes()
	if valid, compact := scanJSON(b); !valid || !compact {
		// White space to remove, or not JSON: json.Compact says which.
		out := getBuf()
		defer putBuf(out)
		if err := json.Compact(out, b); err != nil {
			return nil, fmt.Errorf("json: error calling MarshalJSON for type event.Event: %w", err)
		}
		b = out.Bytes()
	}
	if needsHTMLEscape(b) {
		esc := bytes.NewBuffer(make([]byte, 0, len(b)+64))
		json.HTMLEscape(esc, b)
		return esc.Bytes(), nil
	}
	return bytes.Clone(b), nil
}

// needsHTMLEscape reports whether b holds a character json.Marshal would
// escape: <, >, &, U+2028 or U+2029.
func needsHTMLEscape(b []byte) bool {
	return bytes.ContainsAny(b, "<>&") || bytes.Contains(b, lineSep) || bytes.Contains(b, paraSep)
}

var (
	lineSep = []byte("\u2028")
	paraSep = []byte("\u2029")
)

// Decode parses the structured-mode CloudEvent in a message body. It
// accepts and rejects exactly what json.Unmarshal(data, &ev) does, and
// returns the same event. The event's data may share memory with data:
// do not modify data while the event is in use.
//
// json.Unmarshal reads the body three times: it validates it, finds the
// end of the object, and lets the SDK parse it, whose parser then walks the
// data a field at a time. Decode validates once, then reads the shape
// Encode writes (specversion 1.0 first, string attributes and extensions
// without escapes, JSON data) in one pass of its own; anything else goes to
// the SDK's parser.
func Decode(data []byte) (event.Event, error) {
	if !validJSON(data) {
		// Slow path, for json.Unmarshal's error message.
		ev := event.New()
		err := json.Unmarshal(data, &ev)
		if err == nil {
			err = errors.New("invalid json")
		}
		return ev, fmt.Errorf("decode cloudevent: %w", err)
	}
	if ev, ok := decodeV1(data); ok {
		return ev, nil
	}
	ev := event.New()
	if err := ev.UnmarshalJSON(data); err != nil {
		return ev, fmt.Errorf("decode cloudevent: %w", err)
	}
	return ev, nil
}

// decodeV1 reads a valid JSON object that starts with "specversion":"1.0"
// and has only plain strings (no escapes) as keys, attributes and
// extensions, and data whose content type is JSON. It gives the event the
// SDK's parser gives (see readJsonFromIterator in sdk-go's
// event/event_unmarshal.go), or false for the SDK to handle the rest: other
// versions, escapes, non-string extensions, data_base64, duplicate keys,
// values the SDK rejects.
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
		if attr == attrData {
			if data, ok = p.value(); !ok {
				return event.Event{}, false
			}
			continue
		}
		vb, ok := p.raw()
		if !ok {
			return event.Event{}, false
		}
		v := string(vb)
		switch {
		case !known:
			k := string(kb)
			if _, dup := ec.Extensions[strings.ToLower(k)]; dup || k == "" || ec.SetExtension(k, v) != nil {
				return event.Event{}, false
			}
		case attr == attrID:
			ec.ID = v
		case attr == attrType:
			ec.Type = v
		case attr == attrSource:
			u, ok := parseSource(v)
			if !ok {
				return event.Event{}, false
			}
			ec.Source = u
		case attr == attrSubject:
			if v != "" {
				ec.Subject = &v
			}
		case attr == attrTime:
			t, err := cetypes.ParseTimestamp(v)
			if err != nil {
				return event.Event{}, false
			}
			ec.Time = t
		case attr == attrDataContentType:
			ec.DataContentType = &v
		case attr == attrDataSchema:
			ec.DataSchema = cetypes.ParseURI(v)
		default: // specversion again, data_base64
			return event.Event{}, false
		}
	}
	if p.ws(); p.i != len(b) {
		return event.Event{}, false
	}
	ev := event.Event{Context: ec}
	if seen&(1<<attrData) != 0 {
		mt, _ := ec.GetDataMediaType()
		switch mt {
		case event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON, "":
		default:
			return event.Event{}, false // a string to unquote: the SDK does it
		}
		// Shared with the body, not copied as the SDK does.
		ev.DataEncoded = data
	}
	return ev, true
}

// sources caches parsed event sources: a stream holds the events of a few
// sources, and parsing the same URL for every event cost more than the
// rest of the attributes together.
var (
	sources     sync.Map // string → cetypes.URIRef
	sourceCount atomic.Int32
)

// maxSources bounds sources: webhook senders choose their sources.
const maxSources = 1024

// parseSource is cetypes.ParseURIRef, cached.
func parseSource(s string) (cetypes.URIRef, bool) {
	if u, ok := sources.Load(s); ok {
		return u.(cetypes.URIRef), true
	}
	u := cetypes.ParseURIRef(s)
	if u == nil {
		return cetypes.URIRef{}, false
	}
	if sourceCount.Add(1) <= maxSources {
		sources.Store(s, *u)
	}
	return *u, true
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
	attrOther // specversion, data_base64: left to the SDK
)

var attrs = map[string]int{
	"id": attrID, "type": attrType, "source": attrSource, "subject": attrSubject, "time": attrTime,
	"datacontenttype": attrDataContentType, "dataschema": attrDataSchema, "data": attrData,
	"specversion": attrOther, "data_base64": attrOther,
}

// scanner reads JSON that json.Valid accepted, so it checks only what
// decodeV1 needs to tell the shapes apart.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

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
		p.i++
	}
	return nil, false
}

// key reads a key without escapes and its colon.
func (p *scanner) key() ([]byte, bool) {
	k, ok := p.raw()
	return k, ok && p.consume(':')
}

// value skips any value and returns it, with the white space before it
// (as the SDK's parser captures it).
func (p *scanner) value() ([]byte, bool) {
	start := p.i
	p.ws()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch p.b[p.i] {
	case '"':
		if !p.skipString() {
			return nil, false
		}
	case '{', '[':
		depth := 0
		for {
			if p.i >= len(p.b) {
				return nil, false
			}
			switch p.b[p.i] {
			case '"':
				if !p.skipString() {
					return nil, false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			p.i++
			if depth == 0 {
				break
			}
		}
	default: // a number, true, false or null
		for p.i < len(p.b) && !isDelim(p.b[p.i]) {
			p.i++
		}
	}
	return p.b[start:p.i], true
}

// skipString skips the string that starts at p.i.
func (p *scanner) skipString() bool {
	p.i++
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case '\\':
			p.i += 2
			continue
		case '"':
			p.i++
			return true
		}
		p.i++
	}
	return false
}

func isDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// maxDepth is encoding/json's limit on nested objects and arrays.
const maxDepth = 10000

// validJSON reports what json.Valid(b) reports: whether b is one JSON
// value with optional white space around it. Like json.Valid it checks the
// grammar and the nesting depth, not the UTF-8 of strings. It is a plain
// loop, about three times faster than encoding/json's scanner, which calls
// a state function per byte.
func validJSON(b []byte) bool {
	valid, _ := scanJSON(b)
	return valid
}

// scanJSON reports whether b is valid JSON, as validJSON, and whether it
// is compact: without white space outside strings, so that json.Compact
// would return it unchanged.
func scanJSON(b []byte) (valid, compact bool) {
	var buf [64]byte
	stack := buf[:0] // the open containers, '{' or '['
	n := len(b)      // bytes not white space outside strings
	i := skipWS(b, 0, &n)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false, false
		}
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) == maxDepth {
				return false, false
			}
			stack = append(stack, c)
			i = skipWS(b, i+1, &n)
			if i < len(b) && b[i] == c+2 { // '}' or ']'
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				if i = skipKey(b, i, &n); i < 0 {
					return false, false
				}
			}
			continue
		case '"':
			if i = skipStr(b, i); i < 0 {
				return false, false
			}
		case 't':
			if i = skipLit(b, i, "true"); i < 0 {
				return false, false
			}
		case 'f':
			if i = skipLit(b, i, "false"); i < 0 {
				return false, false
			}
		case 'n':
			if i = skipLit(b, i, "null"); i < 0 {
				return false, false
			}
		default:
			if i = skipNum(b, i); i < 0 {
				return false, false
			}
		}
		// A value ended at i: close containers until the next value.
		for {
			i = skipWS(b, i, &n)
			if len(stack) == 0 {
				return i == len(b), i == len(b) && n == len(b)
			}
			if i >= len(b) {
				return false, false
			}
			open := stack[len(stack)-1]
			if b[i] == ',' {
				i = skipWS(b, i+1, &n)
				if open == '{' {
					if i = skipKey(b, i, &n); i < 0 {
						return false, false
					}
				}
				break
			}
			if b[i] != open+2 {
				return false, false
			}
			stack = stack[:len(stack)-1]
			i++
		}
	}
}

// skipWS skips white space, taking what it skips off *n.
func skipWS(b []byte, i int, n *int) int {
	start := i
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	*n -= i - start
	return i
}

// skipKey skips `"key" :` and the white space after it, or returns -1.
func skipKey(b []byte, i int, n *int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = skipStr(b, i); i < 0 {
		return -1
	}
	if i = skipWS(b, i, n); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipWS(b, i+1, n)
}

// skipStr skips the string at b[i] == '"', or returns -1.
func skipStr(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		case c < 0x20:
			return -1
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func skipLit(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipNum skips the number at b[i], or returns -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNum(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = skipDigits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = skipDigits(b, i)
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
