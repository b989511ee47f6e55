package filters

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
)

// direktivSteps is the documented example (docs/transforms.md): vCenter
// logouts renamed to vmware-logout, logins dropped, the rest passed.
var direktivSteps = []Step{
	{Drop: `type == "com.vmware.vsphere.UserLoginSessionEvent.v0"`},
	{
		When: `type == "com.vmware.vsphere.UserLogoutSessionEvent.v0"`,
		Set:  map[string]string{"type": `"vmware-logout"`},
	},
}

func mustTransform(t testing.TB, steps ...Step) *Transform {
	t.Helper()
	tr, err := CompileTransform(steps)
	if err != nil {
		t.Fatalf("CompileTransform: %v", err)
	}
	return tr
}

// sessionEvent is a vCenter user session event in the Tanzu shape.
func sessionEvent(t testing.TB, eventType string) event.Event {
	return rawEvent2(t, "com.vmware.vsphere."+eventType+".v0", event.ApplicationJSON,
		`{"Key": 9007199254740993, "UserName": "VSPHERE.LOCAL\\alice", "IpAddress": "10.0.0.7", "SessionId": "52a1"}`)
}

func rawEvent2(t testing.TB, typ, ct, data string) event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("16957160")
	ev.SetSource("https://vcsa.example.com/sdk")
	ev.SetType(typ)
	ev.SetTime(time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC))
	ev.SetExtension("eventclass", "event")
	if data != "" {
		if err := ev.SetData(ct, []byte(data)); err != nil {
			t.Fatal(err)
		}
		ev.DataBase64 = false // as streams.Decode gives "data" (not data_base64)
	}
	return ev
}

func TestTransformDirektivExample(t *testing.T) {
	tr := mustTransform(t, direktivSteps...)
	tests := []struct {
		name        string
		ev          event.Event
		wantDropped bool
		wantChanged bool
		wantType    string
	}{
		{"logout renamed", sessionEvent(t, "UserLogoutSessionEvent"), false, true, "vmware-logout"},
		{"login dropped", sessionEvent(t, "UserLoginSessionEvent"), true, false, "com.vmware.vsphere.UserLoginSessionEvent.v0"},
		{"other passed", sessionEvent(t, "VmPoweredOnEvent"), false, false, "com.vmware.vsphere.VmPoweredOnEvent.v0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.ev.Clone()
			res, err := tr.Apply(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			if res.Dropped != tt.wantDropped || res.Changed != tt.wantChanged {
				t.Errorf("dropped %v, changed %v; want %v, %v", res.Dropped, res.Changed, tt.wantDropped, tt.wantChanged)
			}
			if got := res.Event.Type(); got != tt.wantType {
				t.Errorf("type %q, want %q", got, tt.wantType)
			}
			if string(res.Event.Data()) != string(before.Data()) {
				t.Errorf("data changed:\n%s\nwant byte-exact\n%s", res.Event.Data(), before.Data())
			}
			if tt.ev.Type() != before.Type() {
				t.Errorf("Apply modified its input: type %q, was %q", tt.ev.Type(), before.Type())
			}
		})
	}
}

func TestTransformApply(t *testing.T) {
	logout := sessionEvent(t, "UserLogoutSessionEvent")
	text := rawEvent2(t, "t", "text/plain", "hello")
	noData := rawEvent2(t, "t", "", "")
	nested := rawEvent2(t, "t", event.ApplicationJSON, `{"Vm":{"Name":"prod-1","Id":7},"Ds":null,"Big":9007199254740993,"Html":"<a&b>"}`)

	tests := []struct {
		name  string
		steps []Step
		ev    event.Event
		check func(t *testing.T, ev event.Event)
	}{
		{
			name:  "set a data field, numbers kept as written",
			steps: []Step{{Set: map[string]string{"data.reason": `"logout"`}}},
			ev:    logout,
			check: wantData(`{"IpAddress":"10.0.0.7","Key":9007199254740993,"SessionId":"52a1","UserName":"VSPHERE.LOCAL\\alice","reason":"logout"}`),
		},
		{
			name:  "remove a data field and an extension",
			steps: []Step{{Remove: []string{"data.IpAddress", "eventclass", "data.Missing.Deep"}}},
			ev:    logout,
			check: func(t *testing.T, ev event.Event) {
				wantData(`{"Key":9007199254740993,"SessionId":"52a1","UserName":"VSPHERE.LOCAL\\alice"}`)(t, ev)
				if _, ok := ev.Extensions()["eventclass"]; ok {
					t.Error("eventclass still there")
				}
			},
		},
		{
			name:  "nested field created, html kept",
			steps: []Step{{Set: map[string]string{"data.Vm.Tags.env": `"prod"`}}},
			ev:    nested,
			check: wantData(`{"Big":9007199254740993,"Ds":null,"Html":"<a&b>","Vm":{"Id":7,"Name":"prod-1","Tags":{"env":"prod"}}}`),
		},
		{
			name: "rename a data field and an extension in one step",
			steps: []Step{{
				Set:    map[string]string{"data.VmName": "data.Vm.Name", "class": "eventclass"},
				Remove: []string{"data.Vm", "eventclass"},
			}},
			ev: nested,
			check: func(t *testing.T, ev event.Event) {
				wantData(`{"Big":9007199254740993,"Ds":null,"Html":"<a&b>","VmName":"prod-1"}`)(t, ev)
				wantExt(t, ev, map[string]any{"class": "event"})
			},
		},
		{
			name: "each step sees the previous one",
			steps: []Step{
				{Set: map[string]string{"type": `"vmware-logout"`}},
				{When: `type == "vmware-logout"`, Set: map[string]string{"subject": `data.UserName`}},
			},
			ev: logout,
			check: func(t *testing.T, ev event.Event) {
				if ev.Subject() != `VSPHERE.LOCAL\alice` || ev.Type() != "vmware-logout" {
					t.Errorf("subject %q type %q", ev.Subject(), ev.Type())
				}
			},
		},
		{
			name: "set values see the event before the step",
			steps: []Step{{Set: map[string]string{
				"type":     `"new"`,
				"oldtype":  `type`,
				"attempts": `3`,
				"checked":  `true`,
				"at":       `date("2026-01-02T03:04:05Z")`,
			}}},
			ev: logout,
			check: func(t *testing.T, ev event.Event) {
				wantExt(t, ev, map[string]any{
					"eventclass": "event", "oldtype": "com.vmware.vsphere.UserLogoutSessionEvent.v0",
					"attempts": 3, "checked": true, "at": "2026-01-02T03:04:05Z",
				})
			},
		},
		{
			name:  "a data step sees data changed by the one before",
			steps: []Step{{Set: map[string]string{"data.n": `1`}}, {Set: map[string]string{"data.m": `data.n + 1`}}},
			ev:    noData,
			check: func(t *testing.T, ev event.Event) {
				wantData(`{"m":2,"n":1}`)(t, ev)
				if ev.DataContentType() != event.ApplicationJSON {
					t.Errorf("datacontenttype %q, want application/json", ev.DataContentType())
				}
			},
		},
		{
			name:  "time from a string, subject removed with nil",
			steps: []Step{{Set: map[string]string{"time": `"2024-05-06T07:08:09Z"`, "subject": `data.NoSuchField`}}},
			ev:    logout,
			check: func(t *testing.T, ev event.Event) {
				if want := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC); !ev.Time().Equal(want) {
					t.Errorf("time %v, want %v", ev.Time(), want)
				}
			},
		},
		{
			name:  "whole data replaced",
			steps: []Step{{Set: map[string]string{"data": `{"user": data.UserName, "ip": data.IpAddress}`}}},
			ev:    logout,
			check: wantData(`{"ip":"10.0.0.7","user":"VSPHERE.LOCAL\\alice"}`),
		},
		{
			name:  "guard false changes nothing",
			steps: []Step{{When: `false`, Set: map[string]string{"type": `"x"`}}},
			ev:    logout,
			check: func(t *testing.T, ev event.Event) {
				if ev.Type() != logout.Type() {
					t.Errorf("type %q", ev.Type())
				}
			},
		},
		{
			name:  "remove data.field of text data does nothing",
			steps: []Step{{Remove: []string{"data.x"}}},
			ev:    text,
			check: wantData(`hello`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustTransform(t, tt.steps...)
			res, err := tr.Apply(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			if res.Dropped {
				t.Fatal("dropped")
			}
			tt.check(t, res.Event)
		})
	}
}

func wantData(want string) func(t *testing.T, ev event.Event) {
	return func(t *testing.T, ev event.Event) {
		t.Helper()
		if got := string(ev.Data()); got != want {
			t.Errorf("data\n%s\nwant\n%s", got, want)
		}
	}
}

func wantExt(t *testing.T, ev event.Event, want map[string]any) {
	t.Helper()
	got := map[string]any{}
	for k, v := range ev.Extensions() {
		got[k] = extensionValue(v)
		if tm, ok := got[k].(time.Time); ok {
			got[k] = tm.UTC().Format(time.RFC3339)
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("extensions (-want +got):\n%s", d)
	}
}

func TestTransformApplyErrors(t *testing.T) {
	logout := sessionEvent(t, "UserLogoutSessionEvent")
	text := rawEvent2(t, "t", "text/plain", "hello")
	array := rawEvent2(t, "t", event.ApplicationJSON, `[1,2]`)
	broken := rawEvent2(t, "t", "", "")
	broken.DataEncoded = []byte(`{"a":`)
	nullVm := rawEvent2(t, "t", event.ApplicationJSON, `{"Vm":null}`)

	tests := []struct {
		name      string
		steps     []Step
		ev        event.Event
		wantPath  string
		wantInErr string
	}{
		{"type not a string", []Step{{Drop: "false"}, {Set: map[string]string{"type": "data.Key"}}}, logout, "transform[1].set.type", "type must be a string, got float64"},
		{"type empty", []Step{{Set: map[string]string{"type": `data.Missing ?? ""`}}}, logout, "transform[0].set.type", "type must be a non-empty string"},
		{"id empty", []Step{{Set: map[string]string{"id": `" "`}}}, logout, "transform[0].set.id", "id must be a non-empty string"},
		{"extension value a map", []Step{{Set: map[string]string{"ext": `data`}}}, logout, "transform[0].set.ext", "an extension value must be"},
		{"extension value too big", []Step{{Set: map[string]string{"ext": `data.Key`}}}, logout, "transform[0].set.ext", "32-bit integer"},
		{"data field on text", []Step{{Set: map[string]string{"data.x": `1`}}}, text, "transform[0].set.data.x", "not a JSON object"},
		{"data field on an array", []Step{{Set: map[string]string{"data.x": `1`}}}, array, "transform[0].set.data.x", "the data is an array, not an object"},
		{"data field under null", []Step{{Set: map[string]string{"data.Vm.Name": `"x"`}}}, nullVm, "transform[0].set.data.Vm.Name", "Vm is null, not an object"},
		{"expression fails", []Step{{When: `data.Vm.Name == "x"`, Set: map[string]string{"type": `"x"`}}}, nullVm, "transform[0].when", "cannot fetch Name"},
		{"drop fails", []Step{{Drop: `data.Vm.Name == "x"`}}, nullVm, "transform[0].drop", "cannot fetch Name"},
		{"time not a time", []Step{{Set: map[string]string{"time": `"yesterday"`}}}, logout, "transform[0].set.time", "RFC 3339"},
		{"json type over text", []Step{{Set: map[string]string{"datacontenttype": `"application/json"`}}}, text, "transform[0]", "says JSON, but the data is not JSON"},
		{"undecodable data", []Step{{Drop: `data.a == 1`}}, broken, "transform[0]", "decode event data as json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustTransform(t, tt.steps...)
			res, err := tr.Apply(tt.ev)
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("got %v (%T), want a *StepError", err, err)
			}
			if se.Path() != tt.wantPath || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("got %q (path %s), want path %s and %q", err, se.Path(), tt.wantPath, tt.wantInErr)
			}
			if res.Event.Type() != tt.ev.Type() || string(res.Event.Data()) != string(tt.ev.Data()) {
				t.Error("a failed Apply returned a changed event")
			}
		})
	}

	var de *DataError
	_, err := mustTransform(t, Step{Drop: `data.a == 1`}).Apply(broken)
	if !errors.As(err, &de) {
		t.Errorf("undecodable data: got %T, want a *DataError inside", err)
	}
}

func TestCompileTransformErrors(t *testing.T) {
	tests := []struct {
		name  string
		steps []Step
		want  []string // each error, in order
	}{
		{"bad expression", []Step{{Drop: "true"}, {Set: map[string]string{"type": `"a" +`}}},
			[]string{"transform[1].set.type: line 1, column 5: unexpected token EOF"}},
		{"known non-string type", []Step{{Set: map[string]string{"type": `1`}}},
			[]string{"transform[0].set.type: line 1, column 1: expected string, but got int"}},
		{"time of a wrong type", []Step{{Set: map[string]string{"time": `true`}}},
			[]string{"transform[0].set.time: line 1, column 1: expected a time or an RFC 3339 string, but got bool"}},
		{"drop not boolean", []Step{{Drop: `type`}},
			[]string{"transform[0].drop: line 1, column 1: expected bool, but got string"}},
		{"unknown function", []Step{{When: `isProd(type)`, Remove: []string{"subject"}}},
			[]string{"transform[0].when: line 1, column 1: unknown function isProd"}},
		{"empty step", []Step{{}}, []string{"transform[0]: empty step: give drop, or set and/or remove"}},
		{"drop with set", []Step{{Drop: "true", Set: map[string]string{"type": `"x"`}}},
			[]string{"transform[0]: a step either drops"}},
		{"when alone", []Step{{When: "true"}}, []string{"transform[0].when: guards set and remove"}},
		{"bad extension name", []Step{{Set: map[string]string{"MyExt": `"x"`, "my_ext": `"y"`}}},
			[]string{`transform[0].set.MyExt: "MyExt" is neither`, `transform[0].set.my_ext: "my_ext" is neither`}},
		{"specversion", []Step{{Set: map[string]string{"specversion": `"0.3"`}}},
			[]string{"transform[0].set.specversion: specversion cannot be changed"}},
		{"remove required", []Step{{Remove: []string{"subject", "type"}}},
			[]string{"transform[0].remove[1]: type is a required attribute and cannot be removed"}},
		{"overlap", []Step{{Set: map[string]string{"data.Vm": `1`}, Remove: []string{"data.Vm.Name"}}},
			[]string{"transform[0].remove[0]: data.Vm.Name overlaps set.data.Vm"}},
		{"empty path part", []Step{{Remove: []string{"data..x"}}},
			[]string{`transform[0].remove[0]: "data..x": a data path has an empty part`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := CompileTransform(tt.steps)
			if tr != nil || err == nil {
				t.Fatalf("got %v, %v; want an error", tr, err)
			}
			errs := err.(interface{ Unwrap() []error }).Unwrap()
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors (%v), want %d", len(errs), err, len(tt.want))
			}
			for i, e := range errs {
				var se *StepError
				if !errors.As(e, &se) {
					t.Errorf("error %d is %T, want *StepError", i, e)
				}
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("error %d:\n got %q\nwant prefix %q", i, e, tt.want[i])
				}
			}
		})
	}
	if tr, err := CompileTransform(nil); tr != nil || err != nil {
		t.Errorf("no steps: got %v, %v; want nil, nil", tr, err)
	}
	var nilT *Transform
	ev := sessionEvent(t, "UserLogoutSessionEvent")
	if res, err := nilT.Apply(ev); err != nil || res.Changed || res.Dropped || res.Event.ID() != ev.ID() {
		t.Errorf("nil transform: got %+v, %v; want the event unchanged", res, err)
	}
}
