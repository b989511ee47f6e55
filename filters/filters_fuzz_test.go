package filters

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
)

// FuzzCompile compiles arbitrary expressions and runs those that compile
// on sample events. Compile must fail with a *CompileError that points
// into the expression ("line L, column C: ..."), or give a filter whose
// Match returns a bool, or false with a *RuntimeError or *DataError, and
// a filter that decodes only the paths it reads agrees with a full decode.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`subject == "VmPoweredOnEvent"`,
		`type endsWith "VmPoweredOnEvent.v0" && data.Vm.Name startsWith "prod-"`,
		`data.UserName not in ["vpxd-extension"]`, `eventclass == "eventex"`, `eventclass == nil`,
		`vsphereapiversion startsWith "8."`, `attempt == 3 && attempt > 2`, `replayed`,
		`data.Ds.Name == "x"`, `data.Ds?.Name == "x"`, `$env.type != ""`, `let x = data.Key; x > 1`,
		`time > date("2020-01-01")`, `type matches "^com\\.vmware"`, `len(data) > 0`, `data.Key / 0 == 1`,
		`type`, `type == 1`, `foo(type)`, "subject == \"x\" &&\n  isProd(data.Vm.Name)", `(`, `"\xff" == type`,
		"é ==\n\n  ", `all(data.Arguments, .Key != "")`, `data[0] == 1`, `int(id) > 0`, `1..3 | sum() == 6`,
	} {
		f.Add(s, []byte(`{"Key":7,"Vm":{"Name":"prod-web-01"},"Ds":null}`), "application/json")
	}
	f.Add(`data == "hello"`, []byte("hello"), "text/plain")
	f.Add(`data.Key == 1`, []byte(`{"Key":`), "application/vnd.x+json")
	f.Add(`data.Key == 1`, []byte{0xff, 0}, "application/octet-stream")

	samples := []event.Event{
		loadEvent(f, "tanzu-DrsVmPoweredOnEvent.json"),
		loadEvent(f, "router-VmPoweredOffEvent.json"),
	}
	f.Fuzz(func(t *testing.T, src string, data []byte, ct string) {
		flt, err := Compile(src)
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile(%q) error %T, want *CompileError: %v", src, err, err)
			}
			lines := strings.Split(src, "\n")
			if ce.Line < 1 || ce.Line > len(lines) || ce.Column < 1 ||
				ce.Column > utf8.RuneCountInString(lines[ce.Line-1])+1 {
				t.Fatalf("Compile(%q) error at line %d, column %d: outside the expression: %v", src, ce.Line, ce.Column, err)
			}
			if prefix := fmt.Sprintf("line %d, column %d: ", ce.Line, ce.Column); !strings.HasPrefix(err.Error(), prefix) || ce.Message == "" {
				t.Fatalf("Compile(%q) error %q, want %q and a message", src, err, prefix)
			}
			return
		}
		ev := event.New()
		ev.SetID("1")
		ev.SetSource("urn:fuzz")
		ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
		ev.SetExtension("eventclass", "event")
		ev.SetDataContentType(ct)
		ev.DataEncoded = data
		for _, ev := range append(samples, ev) {
			if flt.p.paths != nil {
				// Decoding only the paths read must not change the outcome.
				sameMatch(t, flt, ev)
			}
			ok, err := flt.Match(ev)
			if err == nil {
				continue
			}
			if ok {
				t.Fatalf("Compile(%q).Match = true with error %v", src, err)
			}
			var re *RuntimeError
			var de *DataError
			if !errors.As(err, &re) && !errors.As(err, &de) {
				t.Fatalf("Compile(%q).Match error %T, want *RuntimeError or *DataError: %v", src, err, err)
			}
		}
	})
}
