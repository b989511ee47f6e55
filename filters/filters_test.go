package filters

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// loadEvent reads a structured-mode CloudEvent from testdata.
func loadEvent(t testing.TB, name string) event.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev event.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("unmarshal %s: %v", name, err)
	}
	return ev
}

// vmEvent builds a Tanzu-shaped vCenter event the way a producer does.
func vmEvent(t testing.TB, eventType string, data any, exts map[string]any) event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("42")
	ev.SetSource("https://vcsa.example.com/sdk")
	ev.SetType("com.vmware.vsphere." + eventType + ".v0")
	ev.SetTime(time.Now())
	ev.SetExtension("eventclass", "event")
	ev.SetExtension("vsphereapiversion", "8.0.3.0")
	for k, v := range exts {
		ev.SetExtension(k, v)
	}
	if data != nil {
		if err := ev.SetData(event.ApplicationJSON, data); err != nil {
			t.Fatal(err)
		}
	}
	return ev
}

// routerEvent builds a VMware Event Router-shaped event: the event type is the subject.
func routerEvent(t testing.TB, eventType string) event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("08179137-b8e0-4973-b05f-8f212bf5003b")
	ev.SetSource("https://10.0.0.1:443/sdk")
	ev.SetType("com.vmware.event.router/event")
	ev.SetSubject(eventType)
	return ev
}

// rawEvent builds an event whose data is taken as is.
func rawEvent(t testing.TB, contentType, data string) event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("test")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	if err := ev.SetData(contentType, []byte(data)); err != nil {
		t.Fatal(err)
	}
	return ev
}

func mustCompile(t testing.TB, src string) *Filter {
	t.Helper()
	f, err := Compile(src)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	return f
}

func TestMatch(t *testing.T) {
	tanzu := loadEvent(t, "tanzu-DrsVmPoweredOnEvent.json")
	router := loadEvent(t, "router-VmPoweredOffEvent.json")
	prod := vmEvent(t, "VmPoweredOnEvent", map[string]any{
		"Key":      7,
		"UserName": "vpxd-extension",
		"Vm":       map[string]any{"Name": "prod-web-01"},
	}, nil)
	eventEx := vmEvent(t, "com.vmware.vc.HA.ClusterFailoverActionInitiatedEvent", map[string]any{
		"Key": 3,
		"Vm":  nil,
	}, map[string]any{"eventclass": "eventex", "attempt": 3, "replayed": true})
	noData := vmEvent(t, "VmPoweredOnEvent", nil, nil)
	tagged := vmEvent(t, "VmPoweredOnEvent", map[string]any{"Key": 10},
		map[string]any{"vmtags": "env:prod,tier:web", "vmpath": "/DC0/vm/web/prod-web-01"})
	text := rawEvent(t, "text/plain", "hello world")
	withParams := rawEvent(t, "application/json; charset=utf-8", `{"Key": 8}`)
	vendorJSON := rawEvent(t, "application/vnd.vmware.event+json", `{"Key": 9}`)

	tests := []struct {
		name string
		src  string
		ev   event.Event
		want bool
	}{
		{"subject matches", `subject == "VmPoweredOnEvent"`, routerEvent(t, "VmPoweredOnEvent"), true},
		{"subject differs", `subject == "VmPoweredOnEvent"`, router, false},
		{"subject absent", `subject == "VmPoweredOnEvent"`, tanzu, false},
		{"router sample", `type == "com.vmware.event.router/event" && subject == "VmPoweredOffEvent"`, router, true},

		{"endsWith and vm name", `type endsWith "VmPoweredOnEvent.v0" && data.Vm.Name startsWith "prod-"`, prod, true},
		{"endsWith but other vm", `type endsWith "VmPoweredOnEvent.v0" && data.Vm.Name startsWith "prod-"`, tanzu, false},
		{"endsWith short-circuits data", `type endsWith "VmPoweredOnEvent.v0" && data.Vm.Name startsWith "prod-"`, router, false},

		{"user not in list", `data.UserName not in ["vpxd-extension"]`, tanzu, true},
		{"user in list", `data.UserName not in ["vpxd-extension"]`, prod, false},

		{"eventclass eventex", `eventclass == "eventex"`, eventEx, true},
		{"eventclass event", `eventclass == "eventex"`, tanzu, false},
		{"eventclass absent", `eventclass == "eventex"`, router, false},
		{"absent extension is nil", `eventclass == nil`, router, true},
		{"present extension is not nil", `eventclass == nil`, tanzu, false},
		{"extension from sample", `vsphereapiversion startsWith "8."`, tanzu, true},
		{"integer extension", `attempt == 3 && attempt > 2`, eventEx, true},
		{"boolean extension", `replayed`, eventEx, true},
		{"boolean extension absent", `replayed == true`, prod, false},

		{"ext map", `ext.eventclass == "eventex" && ext.attempt == 3`, eventEx, true},
		{"ext map absent extension", `ext.vmtags == nil && !(ext.vmtags contains "prod")`, eventEx, true},
		{"ext map keys", `"replayed" in keys(ext)`, eventEx, true},
		{"tags contain", `vmtags contains "env:prod"`, tagged, true},
		{"tags contain via ext", `ext.vmtags contains "env:prod"`, tagged, true},
		{"tags contain other", `ext.vmtags contains "env:test"`, tagged, false},
		{"tag in list", `"tier:web" in split(vmtags, ",")`, tagged, true},
		{"tag prefix not in list", `"env:pro" in split(vmtags, ",")`, tagged, false},
		{"tags absent", `vmtags contains "env:prod"`, prod, false},
		{"path prefix", `ext.vmpath startsWith "/DC0/vm/web/"`, tagged, true},
		{"path absent", `ext.vmpath startsWith "/DC0/vm/web/"`, prod, false},
		{"tag in list, absent tags", `"env:prod" in split(vmtags ?? "", ",")`, prod, false},
		{"tag in list, nil-safe", `"env:prod" in split(vmtags ?? "", ",")`, tagged, true},

		{"key greater", `data.Key > 5`, tanzu, true},
		{"key not greater", `data.Key > 5`, eventEx, false},
		{"key equals int literal", `data.Key == 7`, prod, true},
		{"key equals sample", `data.Key == 16957152`, tanzu, true},

		{"type matches regexp", `type matches "^com\\.vmware\\.vsphere\\..*\\.v0$"`, tanzu, true},
		{"type does not match regexp", `type matches "^com\\.vmware\\.vsphere\\..*\\.v0$"`, router, false},

		{"vm present", `"Vm" in data && data.Vm != nil`, tanzu, true},
		{"vm null", `"Vm" in data && data.Vm != nil`, eventEx, false},
		{"vm missing", `"Vm" in data && data.Vm != nil`, rawEvent(t, "application/json", `{"Key": 1}`), false},
		{"optional chain on null", `data.Ds?.Name == nil`, tanzu, true},
		{"missing key is nil", `data.NoSuchField == nil`, tanzu, true},
		{"nested key", `data.Vm.Vm.Value == "vm-81"`, tanzu, true},

		{"recent time", `time > now() - duration("1h")`, prod, true},
		{"old time", `time > now() - duration("1h")`, tanzu, false},
		{"absent time is zero", `time.IsZero()`, routerEvent(t, "VmPoweredOnEvent"), true},
		{"present time is not zero", `time.IsZero()`, router, false},

		{"attributes", `source == "https://vcsa.mydomain.com/sdk" && id == "16957152" && specversion == "1.0"`, tanzu, true},
		{"datacontenttype", `datacontenttype == "application/json" && dataschema == ""`, tanzu, true},

		{"no data is nil", `data == nil`, noData, true},
		{"text data is a string", `data contains "world"`, text, true},
		{"json with parameters", `data.Key == 8`, withParams, true},
		{"json suffix", `data.Key == 9`, vendorJSON, true},

		{"env by name", `$env.subject == "VmPoweredOffEvent"`, router, true},
		{"env index extension", `$env["eventclass"] == "event" && $env.data.Key > 5`, tanzu, true},
		{"let binding", `let n = data.Vm.Name; n startsWith "vm"`, tanzu, true},
		{"predicate over data", `any(data.Arguments ?? [], {.Key == "vm"})`, tanzu, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustCompile(t, tt.src)
			got, err := f.Match(tt.ev)
			if err != nil {
				t.Fatalf("Match(%q): got error %v, want nil", tt.src, err)
			}
			if got != tt.want {
				t.Errorf("Match(%q): got %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestMatchErrors(t *testing.T) {
	tanzu := loadEvent(t, "tanzu-DrsVmPoweredOnEvent.json")
	badJSON := rawEvent(t, "application/json", `{"Key": 7`)
	ignoreCause := cmpopts.IgnoreFields(RuntimeError{}, "Err")

	tests := []struct {
		name        string
		src         string
		ev          event.Event
		wantRuntime *RuntimeError // nil unless a *RuntimeError is expected
		wantData    *DataError    // nil unless a *DataError is expected
	}{
		{
			name:        "member access on null",
			src:         `data.Ds.Name == "ds1"`,
			ev:          tanzu,
			wantRuntime: &RuntimeError{Line: 1, Column: 9, Message: "cannot fetch Name from <nil>"},
		},
		{
			name:        "member access on absent extension",
			src:         `eventclass.Name == "x"`,
			ev:          routerEvent(t, "VmPoweredOnEvent"),
			wantRuntime: &RuntimeError{Line: 1, Column: 12, Message: "cannot fetch Name from <nil>"},
		},
		{
			name:        "non-boolean extension",
			src:         `eventclass`,
			ev:          tanzu,
			wantRuntime: &RuntimeError{Line: 1, Column: 1, Message: "invalid operation: bool(string)"},
		},
		{
			name:        "in on a string",
			src:         `type in data.UserName`,
			ev:          tanzu,
			wantRuntime: &RuntimeError{Line: 1, Column: 6, Message: `operator "in" not defined on string`},
		},
		{
			name:     "invalid json",
			src:      `data.Key == 7`,
			ev:       badJSON,
			wantData: &DataError{ContentType: "application/json"},
		},
		{
			name:     "invalid json with suffix type",
			src:      `data == nil`,
			ev:       rawEvent(t, "application/cloudevents+json", `not json`),
			wantData: &DataError{ContentType: "application/cloudevents+json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustCompile(t, tt.src)
			got, err := f.Match(tt.ev)
			if got {
				t.Errorf("Match(%q): got true, want false", tt.src)
			}
			var re *RuntimeError
			var de *DataError
			switch {
			case tt.wantRuntime != nil:
				if !errors.As(err, &re) {
					t.Fatalf("Match(%q): got error %v (%T), want *RuntimeError", tt.src, err, err)
				}
				if diff := cmp.Diff(tt.wantRuntime, re, ignoreCause); diff != "" {
					t.Errorf("Match(%q): RuntimeError mismatch (-want +got):\n%s", tt.src, diff)
				}
				if re.Err == nil {
					t.Errorf("Match(%q): got RuntimeError.Err nil, want the cause from expr", tt.src)
				}
				if errors.As(err, &de) {
					t.Errorf("Match(%q): got a *DataError, want none", tt.src)
				}
			case tt.wantData != nil:
				if !errors.As(err, &de) {
					t.Fatalf("Match(%q): got error %v (%T), want *DataError", tt.src, err, err)
				}
				if de.ContentType != tt.wantData.ContentType {
					t.Errorf("Match(%q): got ContentType %q, want %q", tt.src, de.ContentType, tt.wantData.ContentType)
				}
				var se *json.SyntaxError
				if !errors.As(err, &se) {
					t.Errorf("Match(%q): got cause %v, want a *json.SyntaxError", tt.src, de.Err)
				}
				if errors.As(err, &re) {
					t.Errorf("Match(%q): got a *RuntimeError, want none", tt.src)
				}
			}
		})
	}
}

func TestRuntimeErrorString(t *testing.T) {
	f := mustCompile(t, `data.Ds.Name == "ds1"`)
	_, err := f.Match(loadEvent(t, "tanzu-DrsVmPoweredOnEvent.json"))
	want := "line 1, column 9: cannot fetch Name from <nil>"
	if err == nil || err.Error() != want {
		t.Errorf("got error %v, want %q", err, want)
	}
}

func TestHeaderFilterDoesNotDecodeData(t *testing.T) {
	// The data is broken JSON: a filter that does not read data must not notice.
	ev := rawEvent(t, "application/json", `{broken`)
	f := mustCompile(t, `type endsWith "VmPoweredOnEvent.v0"`)
	if f.UsesData() {
		t.Fatalf("UsesData(): got true, want false")
	}
	got, err := f.Match(ev)
	if err != nil || !got {
		t.Errorf("Match: got (%v, %v), want (true, nil)", got, err)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want *CompileError
	}{
		{"empty", ``, &CompileError{Line: 1, Column: 1, Message: "empty expression"}},
		{"blank", " \n\t", &CompileError{Line: 1, Column: 1, Message: "empty expression"}},
		{
			name: "not boolean",
			src:  `type`,
			want: &CompileError{Line: 1, Column: 1, Message: "expected bool, but got string", Snippet: "\n | type\n | ^"},
		},
		{
			name: "string compared with int",
			src:  `type == 1`,
			want: &CompileError{Line: 1, Column: 6, Message: "invalid operation: == (mismatched types string and int)", Snippet: "\n | type == 1\n | .....^"},
		},
		{
			name: "time used as string",
			src:  `time startsWith "2023"`,
			want: &CompileError{Line: 1, Column: 6, Message: "invalid operation: startsWith (mismatched types time.Time and string)", Snippet: "\n | time startsWith \"2023\"\n | .....^"},
		},
		{
			name: "unknown function",
			src:  `foo(type)`,
			want: &CompileError{Line: 1, Column: 1, Message: "unknown function foo", Snippet: "\n | foo(type)\n | ^"},
		},
		{
			name: "unknown function on second line",
			src:  "subject == \"VmPoweredOnEvent\" &&\n  isProd(data.Vm.Name)",
			want: &CompileError{Line: 2, Column: 3, Message: "unknown function isProd", Snippet: "\n |   isProd(data.Vm.Name)\n | ..^"},
		},
		{
			name: "extension called as function",
			src:  `eventclass("x")`,
			want: &CompileError{Line: 1, Column: 1, Message: "unknown function eventclass", Snippet: "\n | eventclass(\"x\")\n | ^"},
		},
		{
			name: "syntax error",
			src:  `type ==`,
			want: &CompileError{Line: 1, Column: 7, Message: "unexpected token EOF", Snippet: "\n | type ==\n | ......^"},
		},
		{
			name: "columns count characters",
			src:  `"é" == subject && type == 1`,
			want: &CompileError{Line: 1, Column: 24, Message: "invalid operation: == (mismatched types string and int)", Snippet: "\n | \"é\" == subject && type == 1\n | .......................^"},
		},
		{
			name: "bad regexp",
			src:  `type matches "("`,
			want: &CompileError{Line: 1, Column: 6, Message: "error parsing regexp: missing closing ): `(`", Snippet: "\n | type matches \"(\"\n | .....^"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.src)
			if f != nil {
				t.Errorf("Compile(%q): got filter %v, want nil", tt.src, f)
			}
			var got *CompileError
			if !errors.As(err, &got) {
				t.Fatalf("Compile(%q): got error %v (%T), want *CompileError", tt.src, err, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Compile(%q): CompileError mismatch (-want +got):\n%s", tt.src, diff)
			}
			wantMsg := fmt.Sprintf("line %d, column %d: %s", tt.want.Line, tt.want.Column, tt.want.Message)
			if err.Error() != wantMsg {
				t.Errorf("Compile(%q).Error(): got %q, want %q", tt.src, err.Error(), wantMsg)
			}
		})
	}
}

func TestUsesData(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want bool
	}{
		{"subject only", `subject == "VmPoweredOnEvent"`, false},
		{"type and extension", `type endsWith "VmPoweredOnEvent.v0" && eventclass == "event"`, false},
		{"data in a string literal", `type == "data" || subject contains "data"`, false},
		{"data in a predicate literal", `all(["a"], {# != "data"})`, false},
		{"similar name", `datacontenttype == "application/json"`, false},
		{"member access", `data.Key > 5`, true},
		{"in operator", `"Vm" in data`, true},
		{"inside a predicate", `any(["prod-"], {data.Vm.Name startsWith #})`, true},
		{"whole env", `$env.type == "x"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustCompile(t, tt.src).UsesData(); got != tt.want {
				t.Errorf("UsesData() for %q: got %v, want %v", tt.src, got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	src := "subject == \"VmPoweredOnEvent\" &&\n  data.Vm != nil"
	if got := mustCompile(t, src).String(); got != src {
		t.Errorf("got %q, want %q", got, src)
	}
}

func TestNilFilter(t *testing.T) {
	var f *Filter
	got, err := f.Match(event.New())
	var re *RuntimeError
	if got || !errors.As(err, &re) {
		t.Errorf("Match on nil filter: got (%v, %v), want (false, *RuntimeError)", got, err)
	}
	if f.UsesData() || f.String() != "" {
		t.Errorf("nil filter: got UsesData %v, String %q, want false and \"\"", f.UsesData(), f.String())
	}
}

// TestPooledEnvIsCleared checks that a value set for one event does not
// leak into the next one through the reused environment.
func TestPooledEnvIsCleared(t *testing.T) {
	f := mustCompile(t, `eventclass == nil && subject == ""`)
	with := loadEvent(t, "tanzu-DrsVmPoweredOnEvent.json")
	with.SetSubject("VmPoweredOnEvent")
	without := vmEvent(t, "VmPoweredOnEvent", nil, nil)
	without.SetExtension("eventclass", nil) // removes it
	for i := range 100 {
		if got, err := f.Match(with); got || err != nil {
			t.Fatalf("round %d, with eventclass: got (%v, %v), want (false, nil)", i, got, err)
		}
		if got, err := f.Match(without); !got || err != nil {
			t.Fatalf("round %d, without eventclass: got (%v, %v), want (true, nil)", i, got, err)
		}
	}
}

func TestMatchConcurrent(t *testing.T) {
	f := mustCompile(t, `type endsWith "VmPoweredOnEvent.v0" && data.Vm.Name startsWith "prod-"`)
	evs := []struct {
		ev   event.Event
		want bool
	}{
		{vmEvent(t, "VmPoweredOnEvent", map[string]any{"Vm": map[string]any{"Name": "prod-1"}}, nil), true},
		{vmEvent(t, "VmPoweredOnEvent", map[string]any{"Vm": map[string]any{"Name": "dev-1"}}, nil), false},
		{loadEvent(t, "router-VmPoweredOffEvent.json"), false},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				e := evs[(g+i)%len(evs)]
				got, err := f.Match(e.ev)
				if err != nil || got != e.want {
					errs <- fmt.Errorf("goroutine %d, event %s: got (%v, %v), want (%v, nil)", g, e.ev.ID(), got, err, e.want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
