package streams

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
)

// MarshalEvent returns the structured-mode CloudEvents JSON of ev, as
// vrelay stores it and as a sink that sends structured mode should send it.
// The JSON is compact and always specversion 1.0 (a 0.3 event is upgraded
// first, see [UpgradeV1]). Members come in a fixed order: specversion, id,
// source, type, then subject, datacontenttype, dataschema and time when
// set, then the extensions sorted by name, and the data last.
//
// The data is carried byte-exact; which member holds it depends on the
// data's media type only:
//
//   - JSON (datacontenttype absent, application/json, text/json or any
//     +json type): "data" holds the bytes exactly as they are, white space
//     and a trailing newline included. Data that claims JSON but is not
//     valid JSON is an error, unless the event was marked as base64 data
//     (event.Event.DataBase64, as a sender's data_base64 gives), which then
//     goes to "data_base64".
//   - text (text/*, application/xml, any +xml type, and the other textual
//     types of isText) that is valid UTF-8: "data" holds a JSON string.
//   - anything else, and text that is not valid UTF-8: "data_base64" holds
//     the standard base64 of the bytes.
//
// Empty data is left out. A time outside the years 0000 to 9999, which
// RFC 3339 cannot write, is an error, and so is an extension named as one
// of the members above (the SDK reads a member "Data" or "ID" of a body as
// such an extension), which would stand for that member. String attributes that are not valid UTF-8 get
// U+FFFD in place of each bad byte, as encoding/json does, so the result is
// always valid JSON. [Decode] gives back an event whose Data() is exactly
// ev.Data(). MarshalEvent does not modify ev.
func MarshalEvent(ev *event.Event) ([]byte, error) {
	return marshalEvent(ev, false, "")
}

// marshalEvent is MarshalEvent; with trustedJSON, JSON data is taken as
// valid without checking it (see [EncodeTrusted]). source, when not empty,
// is ev.Source(), which the caller has already.
func marshalEvent(ev *event.Event, trustedJSON bool, source string) ([]byte, error) {
	ec, ok := ev.Context.(*event.EventContextV1)
	data := ev.DataEncoded
	base64Marked := ev.DataBase64
	if !ok {
		up, err := UpgradeV1(*ev)
		if err != nil {
			return nil, err
		}
		ec = up.Context.(*event.EventContextV1)
		data, base64Marked = up.DataEncoded, up.DataBase64
	}

	kind := dataNone
	if len(data) > 0 {
		kind = dataKind(ec.DataContentType)
		switch kind {
		case dataJSON:
			// Trusted data is vrelay's own, never a sender's base64.
			if (!trustedJSON || base64Marked) && !validJSON(data) {
				if !base64Marked {
					return nil, fmt.Errorf("data of content type %q is not valid JSON", ec.GetDataContentType())
				}
				kind = dataBinary
			}
		case dataText:
			if !utf8.Valid(data) {
				kind = dataBinary
			}
		}
	}

	size := 160 + len(ec.ID) + len(ec.Type) + len(ec.Extensions)*48
	switch kind {
	case dataJSON:
		size += len(data)
	case dataText:
		size += len(data) + len(data)/8
	case dataBinary:
		size += base64.StdEncoding.EncodedLen(len(data))
	}
	b := make([]byte, 0, size)

	b = append(b, `{"specversion":"1.0","id":`...)
	b = AppendString(b, ec.ID)
	b = append(b, `,"source":`...)
	if source == "" || !ok {
		source = ec.Source.String()
	}
	b = AppendString(b, source)
	b = append(b, `,"type":`...)
	b = AppendString(b, ec.Type)
	if ec.Subject != nil {
		b = append(b, `,"subject":`...)
		b = AppendString(b, *ec.Subject)
	}
	if ec.DataContentType != nil {
		b = append(b, `,"datacontenttype":`...)
		b = AppendString(b, *ec.DataContentType)
	}
	if ec.DataSchema != nil {
		b = append(b, `,"dataschema":`...)
		b = AppendString(b, ec.DataSchema.String())
	}
	if ec.Time != nil {
		t := ec.Time.UTC()
		if y := t.Year(); y < 0 || y > 9999 {
			// Go would write it, but no RFC 3339 parser reads it back.
			return nil, fmt.Errorf("time in year %d: RFC 3339 has four-digit years only", y)
		}
		b = append(b, `,"time":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if len(ec.Extensions) > 0 {
		var err error
		if b, err = appendExtensions(b, ec.Extensions); err != nil {
			return nil, err
		}
	}
	switch kind {
	case dataJSON:
		b = append(b, `,"data":`...)
		b = append(b, data...)
	case dataText:
		b = append(b, `,"data":`...)
		b = AppendString(b, string(data))
	case dataBinary:
		b = append(b, `,"data_base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	}
	return append(b, '}'), nil
}

// members are the names of the members MarshalEvent writes, which no
// extension may take.
var members = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"datacontenttype": true, "dataschema": true, "time": true, "data": true, "data_base64": true,
}

var errMemberName = errors.New("named as a member of the structured event")

// appendExtensions writes the extensions sorted by name. The SDK keeps
// extension values as bool, int32, string, []byte, URI, URIRef or
// Timestamp; all but the first two are written as their canonical string.
func appendExtensions(b []byte, exts map[string]any) ([]byte, error) {
	var arr [8]string
	names := arr[:0]
	for name := range exts {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if members[name] {
			// An extension read from "Data" or "ID": written as it is
			// named, it would stand for the member itself.
			return nil, fmt.Errorf("extension %q: %w", name, errMemberName)
		}
		b = append(b, ',')
		b = AppendString(b, name)
		b = append(b, ':')
		switch v := exts[name].(type) {
		case string:
			b = AppendString(b, v)
		case bool:
			b = strconv.AppendBool(b, v)
		case int32:
			b = strconv.AppendInt(b, int64(v), 10)
		default:
			s, err := cetypes.Format(v)
			if err != nil {
				return nil, fmt.Errorf("extension %q: %w", name, err)
			}
			b = AppendString(b, s)
		}
	}
	return b, nil
}

// UpgradeV1 returns ev as a CloudEvents 1.0 event with the same data bytes.
// A 1.0 event comes back unchanged. A 0.3 event gets the 1.0 context the
// SDK's AsV1 gives, without the datacontentencoding extension AsV1 keeps:
// with datacontentencoding "base64", data that the SDK's JSON parser has
// already decoded (DataBase64 set) stays as it is, and data still encoded
// (a binary-mode body) is decoded; data that is not valid base64 is an
// error, and so is an extension name that 1.0 does not allow. The result is marked DataBase64 then, as a 1.0 event read from
// data_base64 is. ev itself is not modified.
func UpgradeV1(ev event.Event) (event.Event, error) {
	ec03, ok := ev.Context.(*event.EventContextV03)
	if !ok {
		if _, ok := ev.Context.(*event.EventContextV1); ok {
			return ev, nil
		}
		return ev, errors.New("event without a CloudEvents 0.3 or 1.0 context")
	}
	ec := ec03.AsV1()
	delete(ec.Extensions, event.DataContentEncodingKey)
	for name := range ec.Extensions {
		// The 0.3 reader takes any name; the 1.0 reader, Decode's, does not.
		if !event.IsExtensionNameValid(name) {
			return ev, fmt.Errorf("extension %q is not a CloudEvents 1.0 attribute name (ASCII letters and digits)", name)
		}
	}
	if len(ec.Extensions) == 0 {
		ec.Extensions = nil
	}
	out := event.Event{Context: ec, DataEncoded: ev.DataEncoded, DataBase64: ev.DataBase64}
	if enc := ec03.DataContentEncoding; enc != nil && strings.EqualFold(*enc, event.Base64) {
		if !ev.DataBase64 && len(ev.DataEncoded) > 0 {
			data, err := base64.StdEncoding.AppendDecode(nil, ev.DataEncoded)
			if err != nil {
				return ev, fmt.Errorf("data with datacontentencoding base64 is not valid base64: %w", err)
			}
			out.DataEncoded = data
		}
		out.DataBase64 = true
	}
	return out, nil
}

// Kinds of data, by media type.
const (
	dataNone = iota
	dataJSON
	dataText
	dataBinary
)

// dataKind classifies a datacontenttype.
func dataKind(dct *string) int {
	if dct == nil {
		return dataJSON
	}
	switch *dct { // the usual spellings, without parsing
	case event.ApplicationJSON:
		return dataJSON
	case event.ApplicationXML, event.TextPlain:
		return dataText
	}
	mt := mediaType(*dct)
	switch {
	case isJSONType(mt):
		return dataJSON
	case isText(mt):
		return dataText
	}
	return dataBinary
}

// mediaType returns the lower-cased media type of a content type, without
// parameters.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// isJSONType reports whether the media type mt says JSON: absent,
// application/json, text/json or any +json type. The SDK knows only the
// first three and the CloudEvents formats; filters agree with this list.
func isJSONType(mt string) bool {
	return mt == "" || mt == event.ApplicationJSON || mt == event.TextJSON || strings.HasSuffix(mt, "+json")
}

// isText reports whether the media type mt is text, to be carried as a
// JSON string when it is valid UTF-8.
func isText(mt string) bool {
	if strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "+xml") || strings.HasSuffix(mt, "+yaml") {
		return true
	}
	switch mt {
	case "application/xml", "application/xml-dtd", "application/javascript", "application/ecmascript",
		"application/x-www-form-urlencoded", "application/yaml", "application/x-yaml", "application/toml",
		"application/x-ndjson", "application/sql", "application/graphql", "application/x-sh":
		return true
	}
	return false
}

// AppendString appends s as a JSON string and returns the extended
// buffer. Unlike encoding/json it leaves <, > and & alone (vrelay's JSON is
// not embedded in HTML); like it, it replaces bytes that are not UTF-8 with
// U+FFFD and escapes U+2028 and U+2029, so the result is valid JSON and
// valid JavaScript. The event codec and the vCenter data encoder share it.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"
