package vcenter

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	vmevent "github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// The -update flag rewrites testdata/golden. Another test file of this
// package may define it as well: register it only if nobody has (package
// variables are initialized before init functions run).
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/golden")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// checkGolden compares got with testdata/golden/name byte for byte.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if updateGolden() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func mor(typ, value string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: typ, Value: value}
}

func entity(name string) types.EntityEventArgument {
	return types.EntityEventArgument{Name: name}
}

// tanzuSampleEvent holds the values of testdata/tanzu-DrsVmPoweredOnEvent.json.
func tanzuSampleEvent() *types.DrsVmPoweredOnEvent {
	return &types.DrsVmPoweredOnEvent{VmPoweredOnEvent: types.VmPoweredOnEvent{VmEvent: types.VmEvent{
		Event: types.Event{
			Key:                  16957152,
			ChainId:              16957145,
			CreatedTime:          time.Date(2023, 11, 27, 10, 0, 8, 715999000, time.UTC),
			UserName:             `mydomain.com\Administrator`,
			Datacenter:           &types.DatacenterEventArgument{EntityEventArgument: entity("DC1"), Datacenter: mor("Datacenter", "datacenter-1")},
			ComputeResource:      &types.ComputeResourceEventArgument{EntityEventArgument: entity("Cluster1"), ComputeResource: mor("ClusterComputeResource", "domain-c8")},
			Host:                 &types.HostEventArgument{EntityEventArgument: entity("esx01.mydomain.com"), Host: mor("HostSystem", "host-15")},
			Vm:                   &types.VmEventArgument{EntityEventArgument: entity("vm1"), Vm: mor("VirtualMachine", "vm-81")},
			FullFormattedMessage: "DRS powered on vm1 on esx01.mydomain.com in DC1",
		},
	}}}
}

// routerSampleEvent holds the values of testdata/router-VmPoweredOffEvent.json.
func routerSampleEvent() *types.VmPoweredOffEvent {
	return &types.VmPoweredOffEvent{VmEvent: types.VmEvent{
		Event: types.Event{
			Key:                  9902,
			ChainId:              9895,
			CreatedTime:          time.Date(2020, 2, 11, 21, 28, 23, 677595000, time.UTC),
			UserName:             `VSPHERE.LOCAL\Administrator`,
			Datacenter:           &types.DatacenterEventArgument{EntityEventArgument: entity("testDC"), Datacenter: mor("Datacenter", "datacenter-2")},
			ComputeResource:      &types.ComputeResourceEventArgument{EntityEventArgument: entity("cls"), ComputeResource: mor("ClusterComputeResource", "domain-c7")},
			Host:                 &types.HostEventArgument{EntityEventArgument: entity("10.185.22.74"), Host: mor("HostSystem", "host-21")},
			Vm:                   &types.VmEventArgument{EntityEventArgument: entity("test-01"), Vm: mor("VirtualMachine", "vm-56")},
			FullFormattedMessage: "test-01 on  10.0.0.1 in testDC is powered off",
		},
	}}
}

// simEvent fills what the simulator's EventManager.PostEvent sets.
func simEvent(key int32) types.Event {
	return types.Event{
		Key:         key,
		ChainId:     key,
		CreatedTime: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		UserName:    `VSPHERE.LOCAL\Administrator`,
	}
}

// vmPoweredOnEvent is built the way simulator.VirtualMachine.event does it.
func vmPoweredOnEvent() *types.VmPoweredOnEvent {
	e := simEvent(7)
	e.CreatedTime = time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	e.Datacenter = &types.DatacenterEventArgument{EntityEventArgument: entity("DC0"), Datacenter: mor("Datacenter", "datacenter-2")}
	e.ComputeResource = &types.ComputeResourceEventArgument{EntityEventArgument: entity("DC0_C0"), ComputeResource: mor("ClusterComputeResource", "domain-c29")}
	e.Host = &types.HostEventArgument{EntityEventArgument: entity("DC0_C0_H0"), Host: mor("HostSystem", "host-36")}
	e.Ds = &types.DatastoreEventArgument{EntityEventArgument: entity("LocalDS_0"), Datastore: mor("Datastore", "datastore-60")}
	e.Vm = &types.VmEventArgument{EntityEventArgument: entity("DC0_C0_RP0_VM0"), Vm: mor("VirtualMachine", "vm-66")}
	e.FullFormattedMessage = "DC0_C0_RP0_VM0 on DC0_C0_H0 in DC0 has powered on"
	return &types.VmPoweredOnEvent{VmEvent: types.VmEvent{Event: e}}
}

// eventExHA is an EventEx as govc event.post and vCenter HA post it.
func eventExHA() *types.EventEx {
	e := simEvent(1201)
	e.Datacenter = &types.DatacenterEventArgument{EntityEventArgument: entity("DC1"), Datacenter: mor("Datacenter", "datacenter-1")}
	e.ComputeResource = &types.ComputeResourceEventArgument{EntityEventArgument: entity("Cluster1"), ComputeResource: mor("ClusterComputeResource", "domain-c8")}
	e.FullFormattedMessage = "vSphere HA initiated a failover action on 2 virtual machines in cluster Cluster1 in datacenter DC1"
	return &types.EventEx{
		Event:       e,
		EventTypeId: "com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent",
		Severity:    string(types.EventEventSeverityWarning),
		Arguments: []types.KeyAnyValue{
			{Key: "numVms", Value: int32(2)},
			{Key: "hostName", Value: "esx01.mydomain.com"},
		},
		ObjectId:   "domain-c8",
		ObjectType: "ClusterComputeResource",
		ObjectName: "Cluster1",
	}
}

// eventExFault is an EventEx that carries a fault (an interface in an
// interface) and no arguments.
func eventExFault() *types.EventEx {
	e := simEvent(1202)
	e.FullFormattedMessage = "Failed to create Library lib1"
	return &types.EventEx{
		Event:       e,
		EventTypeId: "com.vmware.cl.CreateLibraryFailEvent",
		Severity:    string(types.EventEventSeverityError),
		Message:     "",
		ObjectId:    "lib-1",
		ObjectType:  "ContentLibrary",
		ObjectName:  "lib1",
		Fault: &types.LocalizedMethodFault{
			Fault: &types.SystemError{
				RuntimeFault: types.RuntimeFault{MethodFault: types.MethodFault{
					FaultMessage: []types.LocalizableMessage{{
						Key:     "com.vmware.cl.disk",
						Arg:     []types.KeyAnyValue{{Key: "path", Value: "/storage/lib1"}},
						Message: "disk full",
					}},
				}},
				Reason: "disk full",
			},
			LocalizedMessage: "A general system error occurred: disk full",
		},
	}
}

// extendedEvent is an ExtendedEvent as an extension (here the AD join) logs it.
func extendedEvent() *types.ExtendedEvent {
	e := simEvent(1301)
	e.FullFormattedMessage = "Import certificate success"
	return &types.ExtendedEvent{
		GeneralEvent:  types.GeneralEvent{Event: e, Message: "Import certificate success"},
		EventTypeId:   "ad.event.ImportCertEvent",
		ManagedObject: mor("Folder", "group-d1"),
		Data: []types.ExtendedEventPair{
			{Key: "domain", Value: "mydomain.com"},
			{Key: "certificate", Value: "CN=dc01"},
		},
	}
}

// structured renders ev as the structured CloudEvent JSON (the message
// body), then parses it back.
func structured(t *testing.T, ev event.Event) map[string]any {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal cloudevent: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("parse cloudevent %s: %v", b, err)
	}
	return m
}

func readSample(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConvertTanzuSample(t *testing.T) {
	c := &Converter{Source: "https://vcsa.mydomain.com/sdk", APIVersion: "8.0.2.0"}
	ev, err := c.Convert(tanzuSampleEvent())
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	want := readSample(t, "tanzu-DrsVmPoweredOnEvent.json")
	delete(want, "knativearrivaltime") // added by the Knative broker
	if diff := cmp.Diff(want, structured(t, ev)); diff != "" {
		t.Errorf("cloudevent (-sample +got):\n%s", diff)
	}
}

func TestConvertRouterSample(t *testing.T) {
	const instance = "a1b2c3d4-0000-4000-8000-000000000001"
	c := &Converter{Source: "https://10.0.0.1:443/sdk", InstanceUUID: instance, Format: FormatRouter, APIVersion: "8.0.2.0"}
	be := routerSampleEvent()
	ev, err := c.Convert(be)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	got := structured(t, ev)
	want := readSample(t, "router-VmPoweredOffEvent.json")
	// The router set id to a random UUID and time to the time it converted
	// the event; ours are derived from the event (checked below).
	for _, k := range []string{"id", "time"} {
		delete(want, k)
		delete(got, k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cloudevent (-sample +got):\n%s", diff)
	}
	if got, want := ev.Time(), be.CreatedTime; !got.Equal(want) {
		t.Errorf("got time %v, want CreatedTime %v", got, want)
	}

	// The id is a name-based UUID of source, instance uuid and key.
	id := ev.ID()
	if u, err := uuid.Parse(id); err != nil || u.Version() != 5 {
		t.Errorf("got id %q (parse error %v), want a version 5 UUID", id, err)
	}
	// Pinned: the id is the dedupe key of an event across versions of vrelay.
	// Python agrees: uuid5(uuid5(NAMESPACE_URL, routerIDNameSpace),
	// "https://10.0.0.1:443/sdk\n"+instance+"\n9902").
	if want := "0a8a5e5f-99ef-52e5-a459-444585d997a9"; id != want {
		t.Errorf("got id %s, want %s", id, want)
	}
	idOf := func(c Converter, key int32) string {
		t.Helper()
		ev := routerSampleEvent()
		ev.Key = key
		ce, err := c.Convert(ev)
		if err != nil {
			t.Fatalf("Convert: %v", err)
		}
		return ce.ID()
	}
	if again := idOf(*c, be.Key); again != id {
		t.Errorf("got id %s for the same event, want %s", again, id)
	}
	others := map[string]string{
		"other key":      idOf(*c, be.Key+1),
		"other source":   idOf(Converter{Source: "https://10.0.0.2:443/sdk", InstanceUUID: instance, Format: FormatRouter}, be.Key),
		"other instance": idOf(Converter{Source: c.Source, InstanceUUID: "other", Format: FormatRouter}, be.Key),
	}
	seen := map[string]string{id: "sample"}
	for what, other := range others {
		if prev, ok := seen[other]; ok {
			t.Errorf("%s: got id %s, the same as %s", what, other, prev)
		}
		seen[other] = what
	}
}

// goldenEvent renders ev for a golden file: the attributes sorted by name,
// the data as the converter wrote it (JSON re-indented, key order kept).
func goldenEvent(t *testing.T, ev event.Event) []byte {
	t.Helper()
	b, err := ev.MarshalJSON() // json.Marshal would escape <, > and &
	if err != nil {
		t.Fatalf("marshal cloudevent: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("parse cloudevent %s: %v", b, err)
	}
	// Like the CE SDK, leave <, > and & alone: XML data stays readable.
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestConvertGolden(t *testing.T) {
	tanzu := Converter{Source: "https://vc01.example.com/sdk", APIVersion: "8.0.3.0", InstanceUUID: "5d9b1c6e-3f0a-4c8e-9b7d-2a1e0f4c6b8a"}
	router := tanzu
	router.Format = FormatRouter
	xmlTanzu := tanzu
	xmlTanzu.Encoding = EncodingXML
	xmlRouter := router
	xmlRouter.Encoding = EncodingXML
	tests := []struct {
		name string
		c    Converter
		ev   types.BaseEvent
	}{
		{name: "tanzu-VmPoweredOnEvent", c: tanzu, ev: vmPoweredOnEvent()},
		{name: "tanzu-EventEx", c: tanzu, ev: eventExHA()},
		{name: "tanzu-EventEx-fault", c: tanzu, ev: eventExFault()},
		{name: "tanzu-ExtendedEvent", c: tanzu, ev: extendedEvent()},
		{name: "router-EventEx", c: router, ev: eventExHA()},
		{name: "router-ExtendedEvent", c: router, ev: extendedEvent()},
		{name: "tanzu-xml-VmPoweredOnEvent", c: xmlTanzu, ev: vmPoweredOnEvent()},
		{name: "tanzu-xml-EventEx-fault", c: xmlTanzu, ev: eventExFault()},
		{name: "router-xml-ExtendedEvent", c: xmlRouter, ev: extendedEvent()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := tt.c.Convert(tt.ev)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			checkGolden(t, tt.name+".json", goldenEvent(t, ev))
			if tt.c.Encoding == EncodingXML {
				checkGolden(t, tt.name+".xml", append(bytes.Clone(ev.Data()), '\n'))
			}
		})
	}
}

func TestConvertXML(t *testing.T) {
	c := &Converter{Source: "https://vc01.example.com/sdk", Encoding: EncodingXML}
	for _, be := range []types.BaseEvent{vmPoweredOnEvent(), eventExHA(), eventExFault(), extendedEvent(), tanzuSampleEvent()} {
		name, _ := EventType(be)
		t.Run(name, func(t *testing.T) {
			ev, err := c.Convert(be)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			if got, want := ev.DataContentType(), EncodingXML; got != want {
				t.Errorf("got datacontenttype %q, want %q", got, want)
			}
			root := typeName(be)
			data := ev.Data()
			if want := "<" + root + "><key>"; !bytes.HasPrefix(data, []byte(want)) {
				t.Errorf("got data %.60s..., want it to start with %s", data, want)
			}

			// Well-formed: the whole document decodes token by token, and
			// its root is the Go type name without a name space.
			dec := xml.NewDecoder(bytes.NewReader(data))
			depth, roots := 0, 0
			for {
				tok, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("got malformed XML: %v\n%s", err, data)
				}
				switch tok := tok.(type) {
				case xml.StartElement:
					if depth == 0 {
						roots++
						if tok.Name.Local != root || tok.Name.Space != "" {
							t.Errorf("got root %+v, want %s without a name space", tok.Name, root)
						}
					}
					depth++
				case xml.EndElement:
					depth--
				}
			}
			if roots != 1 || depth != 0 {
				t.Errorf("got %d roots, depth %d at the end, want 1 and 0", roots, depth)
			}

			// govmomi's decoder reads it back into the same event.
			back := newOf(be)
			dec = xml.NewDecoder(bytes.NewReader(data))
			dec.TypeFunc = types.TypeFunc()
			if err := dec.Decode(back); err != nil {
				t.Fatalf("decode XML: %v", err)
			}
			if diff := cmp.Diff(be, back); diff != "" {
				t.Errorf("XML round trip (-sent +decoded):\n%s", diff)
			}
		})
	}
}

// newOf returns a new zero value of be's type.
func newOf(be types.BaseEvent) types.BaseEvent {
	switch be.(type) {
	case *types.VmPoweredOnEvent:
		return new(types.VmPoweredOnEvent)
	case *types.DrsVmPoweredOnEvent:
		return new(types.DrsVmPoweredOnEvent)
	case *types.EventEx:
		return new(types.EventEx)
	case *types.ExtendedEvent:
		return new(types.ExtendedEvent)
	}
	return nil
}

func TestConvertAttributes(t *testing.T) {
	be := eventExHA()
	be.Key = -2147483000 // keys wrap on long-lived vCenters
	tests := []struct {
		name    string
		c       Converter
		typ     string
		id      string
		subject string
		ext     map[string]any
	}{
		{
			name: "tanzu default",
			c:    Converter{Source: "https://vc/sdk", APIVersion: "7.0.3.0"},
			typ:  "com.vmware.vsphere.com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent.v0",
			id:   "-2147483000",
			ext:  map[string]any{"eventclass": "eventex", "vsphereapiversion": "7.0.3.0"},
		},
		{
			name: "tanzu without api version",
			c:    Converter{Source: "https://vc/sdk", Format: FormatTanzu},
			typ:  "com.vmware.vsphere.com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent.v0",
			id:   "-2147483000",
			ext:  map[string]any{"eventclass": "eventex"},
		},
		{
			name:    "router",
			c:       Converter{Source: "https://vc/sdk", APIVersion: "7.0.3.0", Format: FormatRouter},
			typ:     "com.vmware.event.router/eventex",
			subject: "com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := tt.c.Convert(be)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			if got := ev.Type(); got != tt.typ {
				t.Errorf("got type %q, want %q", got, tt.typ)
			}
			if tt.id != "" && ev.ID() != tt.id {
				t.Errorf("got id %q, want %q", ev.ID(), tt.id)
			}
			if got := ev.Subject(); got != tt.subject {
				t.Errorf("got subject %q, want %q", got, tt.subject)
			}
			if diff := cmp.Diff(tt.ext, ev.Extensions(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("extensions (-want +got):\n%s", diff)
			}
			if got, want := ev.DataContentType(), EncodingJSON; got != want {
				t.Errorf("got datacontenttype %q, want %q", got, want)
			}
			if ev.DataBase64 {
				t.Error("got base64 data, want inline JSON")
			}
			if !ev.Time().Equal(be.CreatedTime) {
				t.Errorf("got time %v, want %v", ev.Time(), be.CreatedTime)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	tests := []struct {
		name string
		c    Converter
		ev   types.BaseEvent
		want string
	}{
		{name: "nil event", c: Converter{Source: "https://vc/sdk"}, ev: nil, want: "nil event"},
		{name: "typed nil", c: Converter{Source: "https://vc/sdk"}, ev: (*types.EventEx)(nil), want: "nil event"},
		{name: "format", c: Converter{Source: "https://vc/sdk", Format: "veba"}, ev: eventExHA(), want: `unknown format "veba"`},
		{name: "encoding", c: Converter{Source: "https://vc/sdk", Encoding: "text/plain"}, ev: eventExHA(), want: `unsupported encoding "text/plain"`},
		{name: "no source", c: Converter{}, ev: eventExHA(), want: "source"},
		{name: "bad data", c: Converter{Source: "https://vc/sdk"}, ev: &nanEvent{F: math.Inf(-1)}, want: "unsupported float"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.Convert(tt.ev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
			if msg := err.Error(); strings.ToLower(msg[:1]) != msg[:1] {
				t.Errorf("got error %q, want it lower-case", msg)
			}
		})
	}
}

func TestEventType(t *testing.T) {
	tests := []struct {
		name      string
		ev        types.BaseEvent
		wantName  string
		wantClass string
	}{
		{name: "plain", ev: &types.VmPoweredOnEvent{}, wantName: "VmPoweredOnEvent", wantClass: "event"},
		{name: "nested plain", ev: &types.DrsVmPoweredOnEvent{}, wantName: "DrsVmPoweredOnEvent", wantClass: "event"},
		{name: "general", ev: &types.GeneralUserEvent{}, wantName: "GeneralUserEvent", wantClass: "event"},
		{name: "base", ev: &types.Event{}, wantName: "Event", wantClass: "event"},
		{name: "typed nil", ev: (*types.VmPoweredOffEvent)(nil), wantName: "VmPoweredOffEvent", wantClass: "event"},
		{name: "eventex", ev: eventExHA(), wantName: "com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent", wantClass: "eventex"},
		{name: "eventex without id", ev: &types.EventEx{}, wantName: "EventEx", wantClass: "eventex"},
		{name: "eventex nil", ev: (*types.EventEx)(nil), wantName: "EventEx", wantClass: "eventex"},
		{name: "extendedevent", ev: extendedEvent(), wantName: "ad.event.ImportCertEvent", wantClass: "extendedevent"},
		{name: "extendedevent without id", ev: &types.ExtendedEvent{}, wantName: "ExtendedEvent", wantClass: "extendedevent"},
		{name: "nil", ev: nil, wantName: "", wantClass: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, class := EventType(tt.ev)
			if name != tt.wantName || class != tt.wantClass {
				t.Errorf("got %q, %q; want %q, %q", name, class, tt.wantName, tt.wantClass)
			}
		})
	}
}

func BenchmarkConvert(b *testing.B) {
	benchmarks := []struct {
		name string
		c    Converter
	}{
		{name: "tanzu-json", c: Converter{Source: "https://vc01.example.com/sdk", APIVersion: "8.0.3.0"}},
		{name: "router-json", c: Converter{Source: "https://vc01.example.com/sdk", InstanceUUID: "5d9b1c6e", Format: FormatRouter}},
		{name: "tanzu-xml", c: Converter{Source: "https://vc01.example.com/sdk", APIVersion: "8.0.3.0", Encoding: EncodingXML}},
	}
	ev := tanzuSampleEvent()
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.c.Convert(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConvertSimulatorEvents converts events as they come out of vcsim's
// event history (decoded from SOAP, as in production): a VM power-off it
// emits itself, and an EventEx and an ExtendedEvent posted to it.
func TestConvertSimulatorEvents(t *testing.T) {
	simulator.Test(func(ctx context.Context, c *vim25.Client) {
		vm, err := find.NewFinder(c).VirtualMachine(ctx, "DC0_H0_VM0")
		if err != nil {
			t.Fatal(err)
		}
		task, err := vm.PowerOff(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		m := vmevent.NewManager(c)
		ex := eventExHA()
		ex.ObjectType, ex.ObjectId = vm.Reference().Type, vm.Reference().Value
		ext := extendedEvent()
		ext.ManagedObject = vm.Reference()
		for _, ev := range []types.BaseEvent{ex, ext} {
			if err := m.PostEvent(ctx, ev); err != nil {
				t.Fatalf("post %T: %v", ev, err)
			}
		}
		// Every event in the history: those vcsim logged while building
		// its inventory convert too.
		evs, err := m.QueryEvents(ctx, types.EventFilterSpec{})
		if err != nil {
			t.Fatal(err)
		}

		about := c.ServiceContent.About
		conv := []*Converter{
			{Source: c.URL().String(), APIVersion: about.ApiVersion, InstanceUUID: about.InstanceUuid},
			{Source: c.URL().String(), InstanceUUID: about.InstanceUuid, Format: FormatRouter},
			{Source: c.URL().String(), APIVersion: about.ApiVersion, Encoding: EncodingXML},
		}
		found := map[string]bool{}
		for _, be := range evs {
			name, _ := EventType(be)
			if e := be.GetEvent(); name == "VmPoweredOffEvent" && (e.Vm == nil || e.Vm.Vm != vm.Reference()) {
				name = "another VM's VmPoweredOffEvent"
			}
			for _, cv := range conv {
				ce, err := cv.Convert(be)
				if err != nil {
					t.Errorf("Convert(%s) as %s/%s: %v", name, cv.Format, cv.Encoding, err)
					continue
				}
				if cv.Encoding == EncodingXML {
					continue
				}
				var data map[string]any
				if err := json.Unmarshal(ce.Data(), &data); err != nil {
					t.Errorf("%s: got invalid JSON data: %v", name, err)
					continue
				}
				if got, want := data["Key"], float64(be.GetEvent().Key); got != want {
					t.Errorf("%s: got data.Key %v, want %v", name, got, want)
				}
				if cv.Format == FormatRouter {
					continue
				}
				found[name] = true
				switch name {
				case "VmPoweredOffEvent":
					vmArg, _ := data["Vm"].(map[string]any)
					if got, want := vmArg["Name"], "DC0_H0_VM0"; got != want {
						t.Errorf("got data.Vm.Name %v, want %v", got, want)
					}
					if got, want := ce.Type(), "com.vmware.vsphere.VmPoweredOffEvent.v0"; got != want {
						t.Errorf("got type %s, want %s", got, want)
					}
				case ex.EventTypeId:
					args, _ := data["Arguments"].([]any)
					if len(args) != 2 {
						t.Errorf("got Arguments %v, want 2", data["Arguments"])
					}
				case ext.EventTypeId:
					if got, want := ce.Extensions()["eventclass"], "extendedevent"; got != want {
						t.Errorf("got eventclass %v, want %v", got, want)
					}
				}
			}
		}
		for _, want := range []string{"VmPoweredOffEvent", ex.EventTypeId, ext.EventTypeId} {
			if !found[want] {
				t.Errorf("got no %s among %d events", want, len(evs))
			}
		}
	})
}
