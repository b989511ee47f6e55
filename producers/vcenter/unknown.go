package vcenter

import (
	"reflect"
	"strings"

	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// UnknownEvent is an event of a class govmomi does not know: a vCenter
// newer than govmomi, or an extension's own subclass of Event. govmomi's
// decoder skips an element whose xsi:type it cannot map, which would leave
// a nil in the page; the source's client maps every unknown type whose
// name ends in "Event" to this struct instead, so the event keeps what
// every event has (key, time, user, the inventory arguments, the message)
// and its class name, and the rest is kept as raw XML.
//
// It is published like any other event: its type name ([EventType]) is
// Class, so its subject token and CloudEvent type are those a govmomi that
// knew the class would give.
type UnknownEvent struct {
	types.Event
	// Class is the event's xsi:type, such as "VmFutureThingHappenedEvent".
	Class string
	// Properties are the elements the base Event does not have, in the
	// order vCenter sent them, each with its inner XML as Value.
	Properties []UnknownProperty
}

// UnknownProperty is one element of an [UnknownEvent] that is not a field
// of the base Event.
type UnknownProperty struct {
	Name  string
	Value string
}

// unknownXML is what the decoder fills for an unknown event class: the
// base Event, the attributes (with the xsi:type) and the other elements.
type unknownXML struct {
	types.Event
	Attrs []xml.Attr     `xml:",any,attr"`
	Extra []unknownChild `xml:",any"`
}

type unknownChild struct {
	XMLName xml.Name
	Inner   string `xml:",innerxml"`
}

var unknownXMLType = reflect.TypeFor[unknownXML]()

// eventTypes is the client's type map: govmomi's, plus unknownXML for an
// unknown name ending in "Event". Only such names are mapped, so that an
// unknown type in any other place still decodes as govmomi would.
func eventTypes(known func(string) (reflect.Type, bool)) func(string) (reflect.Type, bool) {
	return func(name string) (reflect.Type, bool) {
		if t, ok := known(name); ok {
			return t, true
		}
		local := name[strings.LastIndexByte(name, ':')+1:]
		if strings.HasSuffix(local, "Event") && !strings.HasPrefix(local, "ArrayOf") {
			return unknownXMLType, true
		}
		return nil, false
	}
}

// useEventTypes installs eventTypes on a SOAP client.
func useEventTypes(sc *soap.Client) { sc.Types = eventTypes(sc.Types) }

// resolveUnknown replaces each decoded unknownXML of page by an
// UnknownEvent, in place, and counts them.
func resolveUnknown(page []types.BaseEvent) (n int) {
	for i, be := range page {
		u, ok := be.(*unknownXML)
		if !ok || u == nil {
			continue
		}
		page[i] = u.resolve()
		n++
	}
	return n
}

func (u *unknownXML) resolve() *UnknownEvent {
	ev := &UnknownEvent{Event: u.Event, Class: "Event"}
	for _, a := range u.Attrs {
		if a.Name.Local == "type" {
			ev.Class = a.Value[strings.LastIndexByte(a.Value, ':')+1:]
		}
	}
	for _, c := range u.Extra {
		ev.Properties = append(ev.Properties, UnknownProperty{Name: c.XMLName.Local, Value: c.Inner})
	}
	return ev
}
