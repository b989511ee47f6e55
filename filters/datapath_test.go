package filters

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// fullDecode returns a copy of f that decodes the whole payload, as every
// filter did before paths were collected.
func fullDecode(f *Filter) *Filter {
	p := &program{src: f.p.src, prog: f.p.prog, bindings: f.p.bindings, all: f.p.all, usesData: f.p.usesData}
	p.pool.New = f.p.pool.New
	return &Filter{p: p}
}

// sameMatch fails t unless f and the same filter decoding the whole payload
// agree on ev: the same result, and errors of the same kind (with the same
// message for a *RuntimeError).
func sameMatch(t *testing.T, f *Filter, ev event.Event) {
	t.Helper()
	got, gotErr := f.Match(ev)
	want, wantErr := fullDecode(f).Match(ev)
	if got != want {
		t.Fatalf("Match(%q) on %s: %v (err %v), full decode: %v (err %v)", f, ev.Data(), got, gotErr, want, wantErr)
	}
	var gotRE, wantRE *RuntimeError
	var gotDE, wantDE *DataError
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("Match(%q) on %s: error %v, full decode: %v", f, ev.Data(), gotErr, wantErr)
	case errors.As(wantErr, &wantRE):
		if !errors.As(gotErr, &gotRE) || gotRE.Error() != wantRE.Error() {
			t.Fatalf("Match(%q) on %s: error %v, full decode: %v", f, ev.Data(), gotErr, wantErr)
		}
	case errors.As(wantErr, &wantDE):
		if !errors.As(gotErr, &gotDE) || gotDE.ContentType != wantDE.ContentType {
			t.Fatalf("Match(%q) on %s: error %v, full decode: %v", f, ev.Data(), gotErr, wantErr)
		}
	}
}

func TestDataPaths(t *testing.T) {
	tests := []struct {
		src  string
		want string // the paths, "" for a full decode
	}{
		{`data.Vm.Name startsWith "prod-"`, "{Vm{Name*}}"},
		{`data.Key > 100`, "{Key*}"},
		{`data.Vm?.Name == "x" && data.Vm.Vm.Value == "vm-1"`, "{Vm{Name* Vm{Value*}}}"},
		{`data.Vm.Name == "x" && data.Vm != nil`, "{Vm*{Name*}}"},
		{`data["Vm"].Name == "x"`, "{Vm{Name*}}"},
		{`data.Arguments[0].Value == "x"`, "{Arguments*}"},
		{`any(data.Arguments, {.Key == "vm.name" && .Value startsWith "prod-"})`, "{Arguments[{Key* Value*}]}"},
		{`any(data.Arguments, # != nil)`, "{Arguments[*]}"},
		{`filter(data.Arguments, .Key == "x")[0].Value == "y"`, "{Arguments*}"},
		{`any(data.Arguments, .Key == data.Vm.Name)`, "{Arguments[{Key*}] Vm{Name*}}"},
		{`any(data.A, any(.B, .C == 1))`, "{A[{B[{C*}]}]}"},
		{`len(data) > 0`, ""},
		{`data == nil`, ""},
		{`data[type] == 1`, ""},
		{`$env.data.Key == 1`, ""},
		{`let x = data; x.Key == 1`, ""},
	}
	for _, tt := range tests {
		f := mustCompile(t, tt.src)
		if got := f.p.paths.String(); got != tt.want {
			t.Errorf("Compile(%q): paths %s, want %s", tt.src, got, tt.want)
		}
	}
}

// String shows the paths: {a b{c*}} reads a (as a whole, *) and b.c; [x]
// is what a predicate reads of each element. "" is nil: a full decode.
func (n *pathNode) String() string {
	if n == nil {
		return ""
	}
	s := ""
	if n.whole {
		s = "*"
	}
	if len(n.children) > 0 {
		s += "{"
		for i, c := range n.children {
			if i > 0 {
				s += " "
			}
			s += c.key + c.String()
		}
		s += "}"
	}
	if n.elem != nil {
		s += "[" + n.elem.String() + "]"
	}
	return s
}

// TestMatchPathsAsFullDecode runs filters that read parts of data on
// payloads of many shapes: each must give what the full decode gives.
func TestMatchPathsAsFullDecode(t *testing.T) {
	exprs := []string{
		`data.Vm.Name startsWith "prod-"`,
		`data.Vm?.Name startsWith "prod-"`,
		`data.Vm?.Name == nil`,
		`data.Key > 100`,
		`data.Vm.Name == "x" && data.Vm != nil`,
		`data.Vm.Vm.Value == "vm-81"`,
		`any(data.Arguments, {.Key == "vm.name" && .Value startsWith "prod-"})`,
		`count(data.Arguments, .Key != "") > 1`,
		`all(data.Arguments, .Value != nil)`,
		`any(data.Arguments, .Key == data.Vm?.Name)`,
		`data.Arguments[1].Value == "b"`,
		`data["é"] == 1 || data["a\"b"] == 2`,
		`data.Name == "x\u00e9"`,
		// Keys that are no Go names, or the names layout gives fields.
		`data["-"] == 1 || data[""] == 2 || data.F0 == 3 || data["F0_"] == 4 || data["vm.name"] == 5`,
		`data.F1.F0 == "x" && data.F1["-"] == nil`,
		// A predicate in a predicate, over nested arrays.
		`any(data.A, any(.B, .C == 1))`,
		`all(data.A, all(.B, .C != nil))`,
		`data.Key == 1.5 || data.Key == -0 || data.Key == 123456789012345678`,
	}
	payloads := []string{
		vcenterPayload,
		`{"Key":7,"Vm":{"Name":"prod-web-01"},"Ds":null}`,
		`{"Key":101}`,
		`{"Key":"101"}`,
		`{"Key":1e400}`,
		`{"Key":1,"Key":200}`,
		`{"Vm":{"Name":"a"},"Vm":{"Name":"prod-b"}}`,
		`{"Vm":"prod-x"}`,
		`{"Vm":null}`,
		`{"Vm":[1,2]}`,
		`{"Vm":{}}`,
		`{}`,
		`[]`,
		`"prod-"`,
		`12`,
		`null`,
		` { "Vm" : { "Name" : "prod-\u0041" } } `,
		`{"V\u006d":{"Name":"prod-escaped-key"}}`,
		`{"é":1,"a\"b":2,"Name":"x\u00e9"}`,
		"{\"Name\":\"x\xff\"}",
		`{"Arguments":[{"Key":"vm.name","Value":"prod-1"},{"Key":"b","Value":"b"}]}`,
		`{"Arguments":[1,"x",null,{"Key":"vm.name","Value":"prod-1"}]}`,
		`{"Arguments":[{"Key":"vm.name","Key":"x","Value":"prod-1"}]}`,
		`{"Arguments":{"Key":"vm.name"}}`,
		`{"Arguments":[]}`,
		`{"Key":1,}`,
		`{"Key":1} x`,
		`{"Key":01}`,
		`{"Key":1,"Other":[1,2,}`,
		`{"Key":1,"Other":"\x"}`,
		"{\"Key\":1,\"Other\":\"\x01\"}",
		`{"Key":1,"Other":tru}`,
		`{"Key":1,"Other":-}`,
		`{"Key":1,"Other":1.}`,
		`{"Key":1,"Other":1e}`,
		// A full decode fails on numbers a float64 cannot hold, and on
		// nesting deeper than encoding/json's limit, wherever they are.
		`{"Key":1,"Other":` + strings.Repeat("9", 400) + `}`,
		`{"Key":1,"Other":[` + strings.Repeat("9", 400) + `]}`,
		`{"Key":1,"Other":-` + strings.Repeat("9", 320) + `.5}`,
		`{"Key":1,"Other":` + strings.Repeat("9", 300) + `}`,
		`{"Key":1,"Other":1e308,"More":-1e-400}`,
		`{"Key":1,"Other":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`,
		`{"Key":1,"Other":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
		`{"Vm":{"Name":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`,
		`{"Vm":{"Name":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}}`,
		`{"Arguments":[{"Key":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}]}`,
		`{"Arguments":[{"Key":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}]}`,
		// Numbers as a float64 holds them.
		`{"Key":123456789012345678}`,
		`{"Key":123456789012345}`,
		`{"Key":1.5}`,
		`{"Key":-0}`,
		`{"Key":0.0000001e7}`,
		// Keys and strings, plain, escaped and not UTF-8.
		`{"-":1,"":2,"F0":3,"F0_":4,"vm.name":5}`,
		`{"F1":{"F0":"x","-":null}}`,
		`{"F1":{"F0":"x","-":1}}`,
		`{"F1":{"F\u0030":"x"}}`,
		"{\"Vm\":{\"Name\":\"prod-\xff\"}}",
		"{\"Vm\":{\"Name\":\"prod-\xc3\xa9\u00e9\"}}",
		`{"Vm":{"Name":"prod-\ud800"}}`,
		`{"Vm":{"Name":"prod-\ud83d\ude00"}}`,
		`{"Vm":{"Name":"prod-\n\t\"\\\/"}}`,
		"{\"V\xffm\":{\"Name\":\"prod-1\"}}",
		`{"Vm":{"Name":"prod-1","Name":"x","Name":"prod-2"}}`,
		`{"Vm":{"Name":"prod-1"},"Vm":{"Other":1}}`,
		// Nested arrays.
		`{"A":[{"B":[{"C":1}]}]}`,
		`{"A":[{"B":[{"C":2},{"C":1}]},{"B":[]}]}`,
		`{"A":[{"B":[{"C":null}]},{"B":[[1]]}]}`,
		`{"A":[{"B":{"C":1}}]}`,
		`{"A":[[],{}]}`,
		`{"A":[{"B":[{"C":1},]}]}`,
		`{"Key":1`,
		`{"Key"`,
		`{`,
	}
	for _, src := range exprs {
		f := mustCompile(t, src)
		if f.p.paths == nil {
			t.Fatalf("Compile(%q) decodes the whole payload; the test wants paths", src)
		}
		for _, ct := range []string{"application/json", "text/plain"} {
			for _, p := range payloads {
				ev := event.New()
				ev.SetID("1")
				ev.SetSource("urn:test")
				ev.SetType("t")
				ev.SetDataContentType(ct)
				ev.DataEncoded = []byte(p)
				sameMatch(t, f, ev)
				sameMatch(t, f, ev) // the second run reuses the pooled state
			}
		}
	}
}

// TestMatchPathsBoxesReused matches many events, each written over the
// same buffer, with one filter: the strings and numbers boxed in the
// pooled state for one event, and the views of its payload, must not show
// through in the next.
func TestMatchPathsBoxesReused(t *testing.T) {
	f := mustCompile(t, `data.Vm.Name == "prod-2" && data.Key == 2 && any(data.Arguments, .Value == "prod-2") && type == "t2"`)
	buf := make([]byte, 0, 256)
	for i := range 3000 {
		ev := event.New()
		ev.SetID("1")
		ev.SetSource("urn:test")
		ev.SetType(fmt.Sprintf("t%d", i%1500))
		name := fmt.Sprintf("prod-%d", i%1500)
		buf = fmt.Appendf(buf[:0], `{"Key":%d,"Vm":{"Name":%q},"Arguments":[{"Value":"x"},{"Value":%q}]}`, i%1500, name, name)
		ev.DataEncoded = buf
		ok, err := f.Match(ev)
		if want := i%1500 == 2; err != nil || ok != want {
			t.Fatalf("Match on %s: got (%v, %v), want (%v, nil)", buf, ok, err, want)
		}
	}
}

// TestPartialReset checks that a reset state holds nothing of the payload
// it decoded, so that the pool pins no event.
func TestPartialReset(t *testing.T) {
	f := mustCompile(t, `any(data.Arguments, {.Key == "vm.name" && .Value startsWith "prod-"}) && data.Key > 1 && data.Vm.Name != ""`)
	var d partial
	for range 3 { // the slabs grow, then are reused
		if _, ok := d.decode([]byte(vcenterPayload), f.p.paths); !ok {
			t.Fatal("decode: got false, want true")
		}
		if len(d.strs) == 0 || len(d.floats) == 0 || len(d.heads) == 0 || len(d.structs) == 0 {
			t.Fatalf("decode used no boxes: %d strings, %d floats, %d slices, %d struct slabs",
				len(d.strs), len(d.floats), len(d.heads), len(d.structs))
		}
		d.reset()
		for i, s := range d.strs[:cap(d.strs)] {
			if s != "" {
				t.Fatalf("after reset, string box %d holds %q", i, s)
			}
		}
		for i, h := range d.heads[:cap(d.heads)] {
			if h != nil {
				t.Fatalf("after reset, slice box %d holds %v", i, h)
			}
		}
		for slot, fs := range d.structs {
			for i, v := range fs[:cap(fs)] {
				if v != nil {
					t.Fatalf("after reset, struct slab %d field %d holds %v", slot, i, v)
				}
			}
		}
		for i, s := range d.slices {
			for j, v := range s[:cap(s)] {
				if v != nil {
					t.Fatalf("after reset, slice %d element %d holds %v", i, j, v)
				}
			}
		}
	}
}

// FuzzMatchPaths runs filters that read parts of data on arbitrary payloads:
// they must agree with the full decode.
func FuzzMatchPaths(f *testing.F) {
	for _, p := range []string{
		vcenterPayload, `{"Key":1,"Vm":{"Name":"prod-1"}}`, `{"Arguments":[{"Key":"vm.name","Value":"prod-1"}]}`, `[1]`, `{"Key":1e400}`,
		`{"A":[{"B":[{"C":1}]},{"B":[{"C":2}]}]}`, `{"F0":{"-":1,"":2},"Key":"\u00e9"}`, `{"Key":` + strings.Repeat("1", 320) + `}`,
	} {
		f.Add([]byte(p))
	}
	filters := []*Filter{}
	for _, src := range []string{
		`data.Vm.Name startsWith "prod-"`, `data.Vm?.Name == nil`, `data.Key > 100`,
		`any(data.Arguments, {.Key == "vm.name" && .Value startsWith "prod-"})`,
		`data.Vm.Name == "x" && data.Vm != nil`, `count(data.Arguments, .Key != "") > 1`,
		`any(data.A, any(.B, .C == 1))`, `data.F0["-"] == 1 || data.F0[""] == 2 || data.Key == "é"`,
	} {
		filters = append(filters, mustCompile(f, src))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := event.New()
		ev.SetID("1")
		ev.SetSource("urn:fuzz")
		ev.SetType("t")
		ev.SetDataContentType("application/json")
		ev.DataEncoded = data
		for _, flt := range filters {
			sameMatch(t, flt, ev)
		}
	})
}

// TestMatchPathsConcurrent matches events with one filter from several
// goroutines: each run has its own pooled state (run with -race).
func TestMatchPathsConcurrent(t *testing.T) {
	f := mustCompile(t, `any(data.Arguments, {.Key == "vm.name" && .Value == data.Vm.Name})`)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				name := fmt.Sprintf("vm-%d-%d", g, i)
				other := name
				if i%2 == 1 {
					other = "someone-else"
				}
				ev := event.New()
				ev.SetID("1")
				ev.SetSource("urn:test")
				ev.SetType("t")
				ev.DataEncoded = []byte(`{"Vm":{"Name":"` + name + `"},"Arguments":[{"Key":"vm.name","Value":"` + other + `"}]}`)
				ok, err := f.Match(ev)
				if err != nil || ok != (i%2 == 0) {
					t.Errorf("Match on %s: (%v, %v), want (%v, nil)", ev.Data(), ok, err, i%2 == 0)
					return
				}
			}
		})
	}
	wg.Wait()
}
