package vcenter

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/producers/internal/memo"
	"github.com/vrelay/vrelay/streams"
)

// sdkConvert is the conversion as the SDK's setters and Validate do it,
// which Convert must match.
func sdkConvert(t *testing.T, c Converter, be types.BaseEvent) event.Event {
	t.Helper()
	e := be.GetEvent()
	name, class := EventType(be)
	key := strconv.FormatInt(int64(e.Key), 10)
	ev := event.New()
	ev.SetSource(c.Source)
	ev.SetTime(e.CreatedTime)
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
	}
	data, err := MarshalData(be)
	if err != nil {
		t.Fatal(err)
	}
	ev.SetDataContentType(EncodingJSON)
	ev.DataEncoded = data
	if err := ev.Validate(); err != nil {
		t.Fatalf("sdk conversion: %v", err)
	}
	return ev
}

// sameEvent fails unless got and want encode alike and got validates.
func sameEvent(t *testing.T, got, want event.Event) {
	t.Helper()
	if err := got.Validate(); err != nil {
		t.Fatalf("converted event does not validate: %v", err)
	}
	g, err := streams.MarshalEvent(&got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := streams.MarshalEvent(&want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Fatalf("got  %s\nwant %s", g, w)
	}
}

// TestConvertMatchesSDK: the event Convert builds in place is the one the
// SDK's setters build, in both formats, with and without an API version,
// for every event class, and for a zero time.
func TestConvertMatchesSDK(t *testing.T) {
	zeroTime := eventExHA()
	zeroTime.CreatedTime = time.Time{}
	events := map[string]types.BaseEvent{
		"eventex":       eventExHA(),
		"zero time":     zeroTime,
		"plain":         &types.VmPoweredOnEvent{VmEvent: types.VmEvent{Event: types.Event{Key: 7, CreatedTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}}},
		"extended":      &types.ExtendedEvent{GeneralEvent: types.GeneralEvent{Event: types.Event{Key: 8}}, EventTypeId: "com.example.thing"},
		"unknown class": &UnknownEvent{Event: types.Event{Key: 9}, Class: "VmFutureEvent"},
	}
	convs := map[string]Converter{
		"tanzu":          {Source: "https://vc01.example.com/sdk", APIVersion: "8.0.3.0"},
		"tanzu no api":   {Source: "https://vc02.example.com/sdk", Format: FormatTanzu},
		"router":         {Source: "https://vc01.example.com/sdk", InstanceUUID: "5d9b1c6e", Format: FormatRouter},
		"path and query": {Source: "https://vc03.example.com:8443/a%20b/sdk?x=1#f"},
	}
	for cn, c := range convs {
		for en, be := range events {
			t.Run(cn+"/"+en, func(t *testing.T) {
				for range 2 { // the second time from the caches
					got, err := c.Convert(be)
					if err != nil {
						t.Fatal(err)
					}
					sameEvent(t, got, sdkConvert(t, c, be))
				}
			})
		}
	}
}

// TestConvertSourceCacheFull: sources seen after the cache of parsed
// sources is full are parsed each time, and every event gets its own
// converter's source; a bad source fails whether it is cached or not.
func TestConvertSourceCacheFull(t *testing.T) {
	be := eventExHA()
	for i := range maxCachedSources + 8 {
		c := Converter{Source: fmt.Sprintf("https://vc%d.example.com/sdk", i)}
		for range 2 {
			ev, err := c.Convert(be)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Source() != c.Source {
				t.Fatalf("got source %q, want %q", ev.Source(), c.Source)
			}
			sameEvent(t, ev, sdkConvert(t, c, be))
		}
	}
	for _, bad := range []string{"", "  ", "https://vc/%zz", "https://[::1"} {
		for range 2 {
			_, err := (&Converter{Source: bad}).Convert(be)
			if err == nil || !strings.Contains(err.Error(), "source") {
				t.Fatalf("source %q: got error %v, want one about the source", bad, err)
			}
		}
	}
	long := "https://vc.example.com/" + strings.Repeat("a", memo.MaxKeyLen) + "/sdk"
	ev, err := (&Converter{Source: long}).Convert(be)
	if err != nil || ev.Source() != long {
		t.Fatalf("long source: got %q, %v", ev.Source(), err)
	}
}

// TestConvertTypeCacheFull: event types seen after the cache of CloudEvent
// types is full still get their own type.
func TestConvertTypeCacheFull(t *testing.T) {
	c := Converter{Source: "https://vc/sdk"}
	for i := range maxCachedTypes + 16 {
		be := eventExHA()
		be.EventTypeId = fmt.Sprintf("com.example.type%d", i)
		for range 2 {
			ev, err := c.Convert(be)
			if err != nil {
				t.Fatal(err)
			}
			if want := "com.vmware.vsphere.com.example.type" + strconv.Itoa(i) + ".v0"; ev.Type() != want {
				t.Fatalf("got type %q, want %q", ev.Type(), want)
			}
		}
	}
}

// TestConvertEnrichValidated: an extension Enrich cannot set fails the
// conversion, as the SDK's Validate reports it.
func TestConvertEnrichValidated(t *testing.T) {
	c := Converter{Source: "https://vc/sdk", Enrich: func(_ types.BaseEvent, ev *event.Event) {
		ev.SetExtension("not-valid!", "x")
	}}
	if _, err := c.Convert(eventExHA()); err == nil {
		t.Fatal("got no error for an invalid extension name")
	}
}
