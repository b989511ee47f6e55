package vcenter

import (
	"bytes"
	"encoding/json"
	stdxml "encoding/xml"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/streams"
)

// fuzzEvent builds one of a few concrete vSphere event types from fuzzed
// fields.
func fuzzEvent(kind uint8, key, chain int32, created time.Time, user, msg, name1, name2, typeID string) types.BaseEvent {
	e := types.Event{
		Key:                  key,
		ChainId:              chain,
		CreatedTime:          created,
		UserName:             user,
		FullFormattedMessage: msg,
		Datacenter:           &types.DatacenterEventArgument{EntityEventArgument: entity(name1), Datacenter: mor("Datacenter", name2)},
	}
	switch kind % 6 {
	case 0:
		e.Vm = &types.VmEventArgument{EntityEventArgument: entity(name2), Vm: mor("VirtualMachine", "vm-"+name1)}
		e.Host = &types.HostEventArgument{EntityEventArgument: entity(name1), Host: mor("HostSystem", "host-1")}
		return &types.VmPoweredOnEvent{VmEvent: types.VmEvent{Event: e}}
	case 1:
		return &types.UserLoginSessionEvent{SessionEvent: types.SessionEvent{Event: e}, IpAddress: name1, UserAgent: name2, Locale: typeID, SessionId: msg}
	case 2:
		return &types.EventEx{Event: e, EventTypeId: typeID, Severity: name2, Message: msg, ObjectName: name1,
			Arguments: []types.KeyAnyValue{{Key: name1, Value: name2}, {Key: "n", Value: key}, {Key: typeID, Value: created}}}
	case 3:
		return &types.ExtendedEvent{GeneralEvent: types.GeneralEvent{Event: e, Message: msg}, EventTypeId: typeID,
			ManagedObject: mor("VirtualMachine", name2), Data: []types.ExtendedEventPair{{Key: name1, Value: name2}}}
	case 4:
		return &types.AlarmStatusChangedEvent{AlarmEvent: types.AlarmEvent{Event: e, Alarm: types.AlarmEventArgument{EntityEventArgument: entity(typeID)}},
			Source: types.ManagedEntityEventArgument{EntityEventArgument: entity(name1)},
			Entity: types.ManagedEntityEventArgument{EntityEventArgument: entity(name2)}, From: "green", To: msg}
	default:
		return &types.DrsVmPoweredOnEvent{VmPoweredOnEvent: types.VmPoweredOnEvent{VmEvent: types.VmEvent{Event: e}}}
	}
}

// FuzzConvert converts events of a few types with fuzzed keys, times,
// names and messages (any bytes, invalid UTF-8 included) in both formats
// and both encodings. Convert must fail or give a valid event whose data is
// valid JSON (or well-formed XML) carrying the event key, and that the
// event codec stores and reads back unchanged.
func FuzzConvert(f *testing.F) {
	ts := tanzuSampleEvent()
	rs := routerSampleEvent()
	for i, e := range []*types.Event{&ts.Event, &rs.Event} {
		f.Add(uint8(5-5*i), e.Key, e.ChainId, e.CreatedTime.Unix(), int64(e.CreatedTime.Nanosecond()), e.UserName,
			e.FullFormattedMessage, e.Datacenter.Name, e.Host.Name, "", i == 1, false)
	}
	ha := eventExHA()
	f.Add(uint8(2), ha.Key, ha.ChainId, ha.CreatedTime.Unix(), int64(0), ha.UserName, ha.FullFormattedMessage,
		"DC1", "warning", ha.EventTypeId, false, true)
	f.Add(uint8(3), int32(-1), int32(0), int64(0), int64(0), "caf\xe9", "a\x00b\u2028c<&>", "]]>", "\xff\xfe", "", true, true)
	f.Add(uint8(1), int32(1<<31-1), int32(-1<<31), int64(253402300799), int64(999999999), "", "", "", "", "\"", false, false)
	f.Add(uint8(4), int32(7), int32(7), int64(253402300800), int64(0), "u", "m", "a", "b", "t", false, true)
	f.Add(uint8(0), int32(7), int32(7), int64(-62135596801), int64(0), "u", "m", "a", "b", "t", true, true)

	const source = "https://vc01.example.com/sdk"
	f.Fuzz(func(t *testing.T, kind uint8, key, chain int32, sec, nsec int64, user, msg, name1, name2, typeID string, router, xmlEnc bool) {
		be := fuzzEvent(kind, key, chain, time.Unix(sec, nsec).UTC(), user, msg, name1, name2, typeID)
		c := &Converter{Source: source, APIVersion: "8.0.3.0", InstanceUUID: "f2ae9e9a-0a6d-4e6e-a4ab-6b1a1d5c2a01"}
		if router {
			c.Format = FormatRouter
		}
		if xmlEnc {
			c.Encoding = EncodingXML
		}
		ev, err := c.Convert(be)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("Convert gave an invalid event: %v", err)
		}
		name, _ := EventType(be)
		k := strconv.FormatInt(int64(key), 10)
		if router {
			if ev.ID() != routerID(source, c.InstanceUUID, k) || ev.Subject() != name {
				t.Errorf("router id %q, subject %q", ev.ID(), ev.Subject())
			}
		} else if ev.ID() != k {
			t.Errorf("id %q, want %q", ev.ID(), k)
		}
		data := ev.Data()
		if xmlEnc {
			if err := wellFormedXML(data); err != nil {
				t.Fatalf("data is not well-formed XML: %v\n%s", err, data)
			}
		} else {
			if !json.Valid(data) || !utf8.Valid(data) {
				t.Fatalf("data is not valid JSON: %q", data)
			}
			var d struct{ Key int32 }
			if err := json.Unmarshal(data, &d); err != nil || d.Key != key {
				t.Fatalf("data Key %d, want %d (%v)", d.Key, key, err)
			}
		}

		m, err := streams.Encode("fuzz", &ev, "")
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := streams.Decode(m.Data)
		if err != nil {
			t.Fatalf("Decode(%q): %v", m.Data, err)
		}
		// The codec writes U+FFFD for each byte of an attribute that is not
		// UTF-8 (an EventTypeId can hold any byte).
		typ := string([]rune(ev.Type()))
		if !bytes.Equal(back.Data(), data) || back.ID() != ev.ID() || back.Type() != typ || !back.Time().Equal(ev.Time()) {
			t.Fatalf("stored and read back as %q, want the converted event", m.Data)
		}
	})
}

// wellFormedXML reads every token of b.
func wellFormedXML(b []byte) error {
	d := stdxml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
