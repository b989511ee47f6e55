package filters

import "unsafe"

// Putting a string, a float64 or a slice in an interface copies the value
// to a new allocation, which costs more than decoding it: a filter on the
// arguments of a vCenter event boxed a dozen strings per event. The box*
// functions below make the interface point at a value the caller keeps
// instead (an element of the pooled boxes in partial), as the compiler
// does for a value it knows never changes. The caller must not change
// that value while the interface is in use; partial changes it only after
// the run of the expression that saw it (see partial).
//
// This relies on the layout of an empty interface in the gc toolchain (a
// type word, then a pointer to the value for any type that is not
// pointer-shaped), which has not changed since Go 1.4 and which
// TestBoxes checks.

// eface is the layout of an empty interface.
type eface struct {
	typ  unsafe.Pointer
	data unsafe.Pointer
}

// typeWord returns the type word of v's dynamic type.
func typeWord(v any) unsafe.Pointer {
	return (*eface)(unsafe.Pointer(&v)).typ
}

var (
	stringType = typeWord("")
	floatType  = typeWord(float64(0))
	sliceType  = typeWord([]any(nil))
)

func box(typ, p unsafe.Pointer) any {
	var v any
	e := (*eface)(unsafe.Pointer(&v))
	e.typ, e.data = typ, p
	return v
}

func boxString(p *string) any { return box(stringType, unsafe.Pointer(p)) }
func boxFloat(p *float64) any { return box(floatType, unsafe.Pointer(p)) }
func boxSlice(p *[]any) any   { return box(sliceType, unsafe.Pointer(p)) }
