package filters

import (
	"fmt"
	"reflect"
	"testing"
)

// TestBoxes checks that an interface made by the box functions is the one
// the compiler makes: equal, of the same type, seen the same by a type
// switch, reflect and fmt.
func TestBoxes(t *testing.T) {
	s, f, sl := "prod-web-01", -1.5, []any{"a", 2.0}
	tests := []struct {
		name      string
		got, want any
	}{
		{"string", boxString(&s), any("prod-web-01")},
		{"float", boxFloat(&f), any(-1.5)},
		{"slice", boxSlice(&sl), any([]any{"a", 2.0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if reflect.TypeOf(tt.got) != reflect.TypeOf(tt.want) {
				t.Fatalf("type: got %T, want %T", tt.got, tt.want)
			}
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("value: got %#v, want %#v", tt.got, tt.want)
			}
			if g, w := fmt.Sprintf("%v", tt.got), fmt.Sprintf("%v", tt.want); g != w {
				t.Errorf("formatted: got %s, want %s", g, w)
			}
		})
	}
	if v, ok := tests[0].got.(string); !ok || v != s || tests[0].got != any(s) {
		t.Errorf("string box: type switch gives (%q, %t), want (%q, true)", v, ok, s)
	}
	if v, ok := tests[1].got.(float64); !ok || v != f {
		t.Errorf("float box: type switch gives (%v, %t), want (%v, true)", v, ok, f)
	}
	// The interface points at the boxed variable: the reason partial
	// writes a box again only after the run that saw it.
	s = "changed"
	if got := tests[0].got.(string); got != "changed" {
		t.Errorf("string box after the variable changed: got %q, want %q", got, "changed")
	}
}

// TestStructFields checks the struct layout gives a node: expr reads each
// member by its key, whatever the key, and a struct of n any fields is laid
// out as n anys.
func TestStructFields(t *testing.T) {
	f := mustCompile(t, `data.Vm.Name == "x" || data["vm.name"] == 1 || data.F0 == 2 || data[""] == 3 || data["é"] == 4`)
	root := f.p.paths
	if root.ptrType == nil {
		t.Fatal("root has no struct type")
	}
	v := box(root.ptrType, nil)
	typ := reflect.TypeOf(v).Elem()
	if typ.NumField() != len(root.children) {
		t.Fatalf("fields: got %d, want %d", typ.NumField(), len(root.children))
	}
	for i, c := range root.children {
		fld := typ.Field(i)
		if got := fld.Tag.Get("expr"); got != c.key {
			t.Errorf("field %d tag: got %q, want %q", i, got, c.key)
		}
		if want := uintptr(i) * reflect.TypeFor[any]().Size(); fld.Offset != want {
			t.Errorf("field %d offset: got %d, want %d", i, fld.Offset, want)
		}
		for j, o := range root.children {
			if j != i && fld.Name == o.key {
				t.Errorf("field %d is named %q, the key of field %d", i, fld.Name, j)
			}
		}
	}
	// A key expr's tags cannot name keeps a map.
	f = mustCompile(t, `data["-"] == 1 && data.Vm.Name == "x"`)
	if f.p.paths.ptrType != nil {
		t.Errorf(`node with member "-": got a struct, want a map`)
	}
	if f.p.paths.children[1].ptrType == nil {
		t.Errorf("node Vm: got a map, want a struct")
	}
}
