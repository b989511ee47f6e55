package vcenter

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
	"github.com/google/uuid"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"

	"github.com/vrelay/vrelay/producers/internal/memo"
)

// Format of the CloudEvents a source emits.
type Format string

const (
	// FormatTanzu is the shape Tanzu Sources for Knative (VSphereSource)
	// emits, and the default: type com.vmware.vsphere.<EventType>.v0, id the
	// event key, no subject, extensions eventclass and vsphereapiversion.
	FormatTanzu Format = "tanzu"
	// FormatRouter is the shape the VMware Event Router (VEBA) emits: type
	// com.vmware.event.router/<class> (com.vmware.event.router/event for a
	// plain event), subject the event type, no extensions. The router made
	// its id a random UUID; ours is derived from the source, the vCenter
	// instance uuid and the event key, so a replayed event keeps its id.
	FormatRouter Format = "router"
)

// Encodings of the CloudEvent data (payloadEncoding).
const (
	// EncodingJSON is the default: see [MarshalData].
	EncodingJSON = "application/json"
	// EncodingXML renders the event with govmomi's XML encoder, under a root
	// element named after the Go type (<VmPoweredOnEvent><key>7</key>...).
	EncodingXML = "application/xml"
)

// Event classes, the eventclass extension of [FormatTanzu] and the suffix of
// the [FormatRouter] type.
const (
	classEvent         = "event"
	classEventEx       = "eventex"
	classExtendedEvent = "extendedevent"
)

const (
	tanzuTypePrefix   = "com.vmware.vsphere."
	tanzuTypeSuffix   = ".v0"
	routerTypePrefix  = "com.vmware.event.router/"
	extEventClass     = "eventclass"
	extAPIVersion     = "vsphereapiversion"
	routerIDNameSpace = "github.com/vrelay/vrelay/producers/vcenter#router-id"
)

// routerIDSpace is the name space of router-format ids. It must never change:
// the id is the dedupe key of an event across restarts and upgrades.
var routerIDSpace = uuid.NewSHA1(uuid.NameSpaceURL, []byte(routerIDNameSpace))

// Converter turns vSphere events into CloudEvents. Its fields are read-only
// once it is in use; it is safe for concurrent use.
type Converter struct {
	Source       string // CE source: the SDK URL without credentials, e.g. https://vc01.example.com/sdk
	APIVersion   string // vsphereapiversion extension, e.g. "8.0.2.0"; left out when empty
	InstanceUUID string // vCenter instance uuid (feeds the router-format id)
	Format       Format // "" = tanzu
	Encoding     string // "" = application/json
	// Enrich, when set, adds extensions to each event after conversion
	// (inventory enrichment). It must not block.
	Enrich func(be types.BaseEvent, ev *event.Event)
}

// Convert returns the CloudEvent for be. Its time is the event's CreatedTime
// in both formats (the router used the time of conversion; a replay must
// produce the same event). It fails for a nil event, an unknown format or
// encoding, data that cannot be encoded, or an invalid result (an empty
// Source).
//
// The event is built in place rather than with the SDK's setters, which
// parse the source URL and validate every attribute again for each event:
// the parsed source is kept per source string (see sourceRef), and what
// Convert sets itself is valid by construction, so the SDK's Validate runs
// only when Enrich may have added something.
func (c *Converter) Convert(be types.BaseEvent) (event.Event, error) {
	if isNilEvent(be) || be.GetEvent() == nil {
		return event.Event{}, fmt.Errorf("convert event: %w", errNilEvent)
	}
	e := be.GetEvent()
	name, class := EventType(be)
	key := strconv.FormatInt(int64(e.Key), 10)
	src, err := sourceRef(c.Source)
	if err != nil {
		return event.Event{}, fmt.Errorf("convert event %s: %w", key, err)
	}

	// One allocation for the context and what its pointers point at.
	ce := &convertedContext{}
	ec := &ce.ec
	ec.Source = src
	if !e.CreatedTime.IsZero() { // as SetTime: a zero time is no time
		ce.time.Time = e.CreatedTime
		ec.Time = &ce.time
	}
	switch c.Format {
	case "", FormatTanzu:
		ec.ID = key
		ec.Type = tanzuType(name)
		ec.Extensions = make(map[string]any, 2)
		ec.Extensions[extEventClass] = classValue(class)
		if c.APIVersion != "" {
			ec.Extensions[extAPIVersion] = c.APIVersion
		}
	case FormatRouter:
		ec.ID = routerID(c.Source, c.InstanceUUID, key)
		ec.Type = routerTypePrefix + class
		if err := ec.SetSubject(name); err != nil {
			return event.Event{}, fmt.Errorf("convert event %s: subject: %w", key, err)
		}
	default:
		return event.Event{}, fmt.Errorf("convert event %s: unknown format %q", key, c.Format)
	}

	var data []byte
	enc := c.Encoding
	switch enc {
	case "", EncodingJSON:
		enc = EncodingJSON
		data, err = MarshalData(be)
	case EncodingXML:
		data, err = marshalXML(be)
	default:
		return event.Event{}, fmt.Errorf("convert event %s: unsupported encoding %q", key, c.Encoding)
	}
	if err != nil {
		return event.Event{}, fmt.Errorf("convert event %s: %w", key, err)
	}
	ce.contentType = enc
	ec.DataContentType = &ce.contentType
	// Data as bytes, not base64 (SetData given []byte would mark it so).
	ev := event.Event{Context: ec, DataEncoded: data}
	if c.Enrich != nil {
		c.Enrich(be, &ev)
		if err := ev.Validate(); err != nil {
			return event.Event{}, fmt.Errorf("convert event %s: %w", key, err)
		}
	}
	return ev, nil
}

// convertedContext is the context of a converted event together with the
// values its pointer fields point at, allocated at once.
type convertedContext struct {
	ec          event.EventContextV1
	time        cetypes.Timestamp
	contentType string
}

// classValue returns the eventclass extension value, boxed once.
func classValue(class string) any {
	switch class {
	case classEvent:
		return classEventValue
	case classEventEx:
		return classEventExValue
	case classExtendedEvent:
		return classExtendedEventValue
	}
	return class
}

var (
	classEventValue         any = classEvent
	classEventExValue       any = classEventEx
	classExtendedEventValue any = classExtendedEvent
)

// maxCached bounds each conversion cache: the first values seen are kept,
// later ones are computed each time. A source sees one source string and a
// few hundred event types.
const (
	maxCachedSources = 16
	maxCachedTypes   = 1024
)

var (
	sourceRefs = memo.Table[sourceEntry]{Max: maxCachedSources}
	tanzuTypes = memo.Table[string]{Max: maxCachedTypes}
)

type sourceEntry struct {
	ref cetypes.URIRef
	err error
}

// sourceRef returns the CloudEvent source for s: s parsed as a URI
// reference, or an error for a blank or unparsable s (what the SDK's
// SetSource and Validate report).
func sourceRef(s string) (cetypes.URIRef, error) {
	en := sourceRefs.Get(s, func(s string) sourceEntry {
		if strings.TrimSpace(s) == "" {
			return sourceEntry{err: errors.New("source: REQUIRED")}
		}
		u, err := url.Parse(s)
		if err != nil {
			return sourceEntry{err: fmt.Errorf("source: %w", err)}
		}
		return sourceEntry{ref: cetypes.URIRef{URL: *u}}
	})
	return en.ref, en.err
}

// tanzuType is the Tanzu CloudEvent type of the event type name.
func tanzuType(name string) string {
	return tanzuTypes.Get(name, func(name string) string { return tanzuTypePrefix + name + tanzuTypeSuffix })
}

// routerID is a name-based (SHA-1) UUID, so the same event from the same
// vCenter always gets the same id, and JetStream dedupes its replays.
func routerID(source, instanceUUID, key string) string {
	name := make([]byte, 0, len(source)+len(instanceUUID)+len(key)+2)
	name = append(name, source...)
	name = append(name, '\n')
	name = append(name, instanceUUID...)
	name = append(name, '\n')
	name = append(name, key...)
	return uuid.NewSHA1(routerIDSpace, name).String()
}

// EventType returns the event's type name — the Go type name
// (VmPoweredOnEvent) for plain events, the EventTypeId for EventEx and
// ExtendedEvent — and its class: "event", "eventex" or "extendedevent".
// The EventTypeId loses the white space around it, as the CloudEvent
// subject does; an EventEx or ExtendedEvent whose EventTypeId is empty or
// blank is named after its Go type, so the name is never empty for a
// non-nil event. A nil event gives "", "".
func EventType(be types.BaseEvent) (name, class string) {
	switch e := be.(type) {
	case nil:
		return "", ""
	case *types.EventEx:
		if e != nil && strings.TrimSpace(e.EventTypeId) != "" {
			return strings.TrimSpace(e.EventTypeId), classEventEx
		}
		return "EventEx", classEventEx
	case *UnknownEvent:
		if e != nil && e.Class != "" {
			return e.Class, classEvent
		}
	case *types.ExtendedEvent:
		if e != nil && strings.TrimSpace(e.EventTypeId) != "" {
			return strings.TrimSpace(e.EventTypeId), classExtendedEvent
		}
		return "ExtendedEvent", classExtendedEvent
	}
	return typeName(be), classEvent
}

// typeName is the name of be's Go type, behind the pointer.
func typeName(be types.BaseEvent) string {
	t := reflect.TypeOf(be)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

// marshalXML renders be with govmomi's XML encoder, which writes the
// lower-camel element names of the vSphere API and an xsi:type on each
// interface value, under a root element named after the Go type and without
// a name space.
func marshalXML(be types.BaseEvent) ([]byte, error) {
	root := typeName(be)
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	if err := enc.EncodeElement(be, xml.StartElement{Name: xml.Name{Local: root}}); err != nil {
		return nil, fmt.Errorf("marshal %s as xml: %w", root, err)
	}
	if err := enc.Flush(); err != nil {
		return nil, fmt.Errorf("marshal %s as xml: %w", root, err)
	}
	return buf.Bytes(), nil
}
