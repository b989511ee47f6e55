package vcenter

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
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
func (c *Converter) Convert(be types.BaseEvent) (event.Event, error) {
	if isNilEvent(be) || be.GetEvent() == nil {
		return event.Event{}, fmt.Errorf("convert event: %w", errNilEvent)
	}
	e := be.GetEvent()
	name, class := EventType(be)

	ev := event.New()
	ev.SetSource(c.Source)
	ev.SetTime(e.CreatedTime)
	key := strconv.FormatInt(int64(e.Key), 10)
	switch c.Format {
	case "", FormatTanzu:
		ev.SetID(key)
		ev.SetType(tanzuTypePrefix + name + tanzuTypeSuffix)
		ev.SetExtension(extEventClass, class)
		if c.APIVersion != "" {
			ev.SetExtension(extAPIVersion, c.APIVersion)
		}
	case FormatRouter:
		ev.SetID(routerID(c.Source, c.InstanceUUID, key))
		ev.SetType(routerTypePrefix + class)
		ev.SetSubject(name)
	default:
		return event.Event{}, fmt.Errorf("convert event %s: unknown format %q", key, c.Format)
	}

	var (
		data []byte
		err  error
	)
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
	// Not SetData: given []byte it would mark the data base64.
	ev.SetDataContentType(enc)
	ev.DataEncoded = data
	ev.DataBase64 = false
	if c.Enrich != nil {
		c.Enrich(be, &ev)
	}

	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("convert event %s: %w", key, err)
	}
	return ev, nil
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
