package vcenter

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmware/govmomi/vim25/types"
)

// testEvent is a BaseEvent (through the embedded Event) with fields that no
// govmomi event has, to reach every branch of the encoder.
type testEvent struct {
	types.Event

	Any      any
	Ptr      *types.ManagedObjectReference
	Times    []time.Time
	Empty    []string
	Nil      []string
	Bytes    []byte
	Map      map[string]int
	Float    float64
	Small    float32
	Uint     uint16
	Array    [2]int8
	Power    types.VirtualMachinePowerState
	Shadow   string // deeper shadow below, which must lose
	unexport string
	inner
	*Promoted
}

type inner struct {
	Shadow string
	Inner  string
}

type Promoted struct {
	FromPtr string
}

// Two fields named Twin at the same depth cancel each other out.
type twinA struct{ Twin string }
type twinB struct{ Twin string }
type twinEvent struct {
	types.Event
	twinA
	twinB
}

// cyclicEvent can hold a reference to itself.
type cyclicEvent struct {
	types.Event
	Next *cyclicEvent
}

type funcEvent struct {
	types.Event
	F func()
}

type selfSlice []selfSlice

type nanEvent struct {
	types.Event
	F float64
}

// decodeOrdered parses data and returns its top-level keys in order.
func topLevelKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		t.Fatalf("got first token %v (err %v), want {", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("read key: %v", err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("read value of %s: %v", tok, err)
		}
	}
	return keys
}

func TestMarshalDataFieldOrder(t *testing.T) {
	data, err := MarshalData(&types.DrsVmPoweredOnEvent{})
	if err != nil {
		t.Fatalf("MarshalData: %v", err)
	}
	want := []string{"Key", "ChainId", "CreatedTime", "UserName", "Datacenter", "ComputeResource", "Host", "Vm",
		"Ds", "Net", "Dvs", "FullFormattedMessage", "ChangeTag", "Template"}
	if diff := cmp.Diff(want, topLevelKeys(t, data)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}

	data, err = MarshalData(&types.EventEx{})
	if err != nil {
		t.Fatalf("MarshalData: %v", err)
	}
	want = []string{"Key", "ChainId", "CreatedTime", "UserName", "Datacenter", "ComputeResource", "Host", "Vm",
		"Ds", "Net", "Dvs", "FullFormattedMessage", "ChangeTag",
		"EventTypeId", "Severity", "Message", "Arguments", "ObjectId", "ObjectType", "ObjectName", "Fault"}
	if diff := cmp.Diff(want, topLevelKeys(t, data)); diff != "" {
		t.Errorf("EventEx keys (-want +got):\n%s", diff)
	}

	data, err = MarshalData(&types.ExtendedEvent{})
	if err != nil {
		t.Fatalf("MarshalData: %v", err)
	}
	want = []string{"Key", "ChainId", "CreatedTime", "UserName", "Datacenter", "ComputeResource", "Host", "Vm",
		"Ds", "Net", "Dvs", "FullFormattedMessage", "ChangeTag",
		"Message", "EventTypeId", "ManagedObject", "Data"}
	if diff := cmp.Diff(want, topLevelKeys(t, data)); diff != "" {
		t.Errorf("ExtendedEvent keys (-want +got):\n%s", diff)
	}
}

func TestMarshalDataShapes(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	ev := &testEvent{
		Event: types.Event{
			Key:         -5, // keys wrap on long-lived vCenters
			CreatedTime: time.Date(2024, 3, 1, 13, 0, 0, 120000000, cet),
			UserName:    `DOM\u "q" <a&b>` + "\n\t\x01\u2028\xff",
			Vm: &types.VmEventArgument{
				EntityEventArgument: types.EntityEventArgument{Name: "vm1"},
				Vm:                  types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-1", ServerGUID: "guid"},
			},
		},
		Any:      &types.LocalizedMethodFault{Fault: &types.SystemError{Reason: "disk full"}, LocalizedMessage: "m"},
		Ptr:      &types.ManagedObjectReference{Type: "Folder", Value: "group-d1"},
		Times:    []time.Time{{}, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)},
		Empty:    []string{},
		Bytes:    []byte("hi"),
		Map:      map[string]int{"b": 2, "a": 1},
		Float:    1e-7,
		Small:    1.5,
		Uint:     65535,
		Array:    [2]int8{-1, 1},
		Power:    types.VirtualMachinePowerStatePoweredOn,
		Shadow:   "outer",
		unexport: "hidden",
		inner:    inner{Shadow: "inner", Inner: "in"},
	}
	data, err := MarshalData(ev)
	if err != nil {
		t.Fatalf("MarshalData: %v", err)
	}
	want := `{"Key":-5,"ChainId":0,"CreatedTime":"2024-03-01T12:00:00.12Z","UserName":"DOM\\u \"q\" <a&b>\n\t\u0001\u2028\ufffd",` +
		`"Datacenter":null,"ComputeResource":null,"Host":null,` +
		`"Vm":{"Name":"vm1","Vm":{"Type":"VirtualMachine","Value":"vm-1"}},"Ds":null,"Net":null,"Dvs":null,` +
		`"FullFormattedMessage":"","ChangeTag":"",` +
		`"Any":{"Fault":{"FaultCause":null,"FaultMessage":null,"Reason":"disk full"},"LocalizedMessage":"m"},` +
		`"Ptr":{"Type":"Folder","Value":"group-d1"},` +
		`"Times":["0001-01-01T00:00:00Z","2024-03-01T00:00:00Z"],"Empty":[],"Nil":null,"Bytes":"aGk=",` +
		`"Map":{"a":1,"b":2},"Float":1e-7,"Small":1.5,"Uint":65535,"Array":[-1,1],"Power":"poweredOn",` +
		`"Shadow":"outer","Inner":"in"}`
	if got := string(data); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(data) {
		t.Errorf("got invalid JSON %s", data)
	}

	// A non-nil embedded pointer promotes its fields.
	ev.Promoted = &Promoted{FromPtr: "p"}
	data, err = MarshalData(ev)
	if err != nil {
		t.Fatalf("MarshalData: %v", err)
	}
	if !bytes.HasSuffix(data, []byte(`"Inner":"in","FromPtr":"p"}`)) {
		t.Errorf("got %s, want it to end with FromPtr", data)
	}
}

// TestMarshalDataMatchesEncodingJSON checks the string and number encodings
// against encoding/json, the encoder the PascalCase shape came from.
func TestMarshalDataMatchesEncodingJSON(t *testing.T) {
	type plain struct {
		types.Event
		S string
		F float64
		G float32
	}
	strs := []string{"", "plain", "\b\f", "tab\tnl\nquote\"back\\", "\x00\x1f\x7f", "ünï©ødé ✓ 😀", "bad\xffutf8\xc3", "\u2028\u2029"}
	floats := []float64{0, math.Copysign(0, -1), 1, -1.5, 1e20, 1e21, 123456789e-15, 1e-6, 9.99e-7, 3.4e38, math.SmallestNonzeroFloat64}
	for _, s := range strs {
		for _, f := range floats {
			v := &plain{S: s, F: f, G: float32(f)}
			got, err := MarshalData(v)
			if err != nil {
				t.Fatalf("MarshalData(%q, %g): %v", s, f, err)
			}
			var enc bytes.Buffer
			je := json.NewEncoder(&enc)
			je.SetEscapeHTML(false)
			if err := je.Encode(struct {
				S string
				F float64
				G float32
			}{s, f, float32(f)}); err != nil {
				t.Fatal(err)
			}
			want := strings.TrimSuffix(enc.String(), "\n")
			i := bytes.Index(got, []byte(`,"S":`))
			if g := "{" + string(got[i+1:]); g != want {
				t.Errorf("got %s, want %s", g, want)
			}
		}
	}
}

func TestMarshalDataErrors(t *testing.T) {
	loop := &cyclicEvent{}
	loop.Next = loop
	tests := []struct {
		name string
		ev   types.BaseEvent
		want string
	}{
		{name: "nil", ev: nil, want: "nil event"},
		{name: "typed nil", ev: (*types.VmPoweredOnEvent)(nil), want: "nil event"},
		{name: "cycle", ev: loop, want: "nested deeper"},
		{name: "func", ev: &funcEvent{F: func() {}}, want: "unsupported type func()"},
		{name: "NaN", ev: &nanEvent{F: math.NaN()}, want: "unsupported float value NaN"},
		{name: "year", ev: &types.VmPoweredOnEvent{VmEvent: types.VmEvent{Event: types.Event{
			CreatedTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}, want: "year outside of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := MarshalData(tt.ev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %s, %v; want an error containing %q", data, err, tt.want)
			}
		})
	}

	// A slice that contains itself is caught too.
	s := selfSlice{nil}
	s[0] = s
	e := &encodeState{}
	if err := typeEncoder(reflect.TypeOf(s))(e, reflect.ValueOf(s)); err == nil {
		t.Errorf("got nil error for a cyclic slice, want one")
	}
}

func TestMarshalDataTwins(t *testing.T) {
	data, err := MarshalData(&twinEvent{twinA: twinA{"a"}, twinB: twinB{"b"}})
	if err != nil {
		t.Fatalf("MarshalData: %v", err)
	}
	if bytes.Contains(data, []byte("Twin")) {
		t.Errorf("got %s, want no Twin key (ambiguous at one depth)", data)
	}
}

// TestMarshalDataConcurrent builds the encoders of many types at once; run
// with -race.
func TestMarshalDataConcurrent(t *testing.T) {
	evs := []types.BaseEvent{
		&types.EventEx{Fault: &types.LocalizedMethodFault{Fault: &types.SystemError{}}},
		&types.ExtendedEvent{Data: []types.ExtendedEventPair{{Key: "k", Value: "v"}}},
		&types.VmReconfiguredEvent{}, &types.HostConnectionLostEvent{}, &types.AlarmStatusChangedEvent{},
		&types.VmFailedToPowerOnEvent{Reason: types.LocalizedMethodFault{Fault: &types.InvalidState{}}},
	}
	var wg sync.WaitGroup
	for range 8 {
		for _, ev := range evs {
			wg.Go(func() {
				if _, err := MarshalData(ev); err != nil {
					t.Errorf("MarshalData(%T): %v", ev, err)
				}
			})
		}
	}
	wg.Wait()
}

// TestMarshalDataEveryStandardType marshals a zero value of every Standard
// event type vCenter 8.0u3 lists that govmomi knows.
func TestMarshalDataEveryStandardType(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "vcenter-event-types-8.0u3.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	typeOf := types.TypeFunc()
	var checked, missing int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 2 || cols[1] != "Standard" {
			continue
		}
		name := cols[0]
		rt, ok := typeOf(name)
		if !ok || rt.Kind() != reflect.Struct {
			missing++
			t.Logf("%s: not a govmomi type", name)
			continue
		}
		be, ok := reflect.New(rt).Interface().(types.BaseEvent)
		if !ok {
			t.Errorf("%s: *%s is not a types.BaseEvent", name, rt)
			continue
		}
		checked++
		data, err := MarshalData(be)
		if err != nil {
			t.Errorf("MarshalData(%s): %v", name, err)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Errorf("%s: got invalid JSON %s: %v", name, data, err)
			continue
		}
		if _, ok := m["Key"]; !ok {
			t.Errorf("%s: got %s, want a Key", name, data)
		}
		if gotName, class := EventType(be); gotName != name {
			t.Errorf("EventType(%s) = %s, %s; want %s", name, gotName, class, name)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if checked < 400 {
		t.Errorf("checked %d types (%d not in govmomi), want at least 400", checked, missing)
	}
	t.Logf("checked %d Standard event types, %d not in govmomi", checked, missing)
}

func BenchmarkMarshalData(b *testing.B) {
	benchmarks := []struct {
		name string
		ev   types.BaseEvent
	}{
		{name: "DrsVmPoweredOnEvent", ev: tanzuSampleEvent()},
		{name: "EventEx", ev: eventExFault()},
		{name: "ExtendedEvent", ev: extendedEvent()},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := MarshalData(bm.ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodingJSON is the baseline: encoding/json on the same event
// (camelCase, omitempty: the shape we must not emit).
func BenchmarkEncodingJSON(b *testing.B) {
	ev := tanzuSampleEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}
