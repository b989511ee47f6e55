package vcenter

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/streams"
)

// MarshalData renders the data of a vSphere event as JSON in the PascalCase
// shape that VEBA and Tanzu Sources functions read (data.Vm.Name,
// data.FullFormattedMessage). It is the shape encoding/json gave govmomi
// structs before they had JSON tags:
//
//   - keys are Go field names, never govmomi's camelCase json tags;
//   - embedded structs are flattened in declaration order (Key, ChainId, ...,
//     ChangeTag, then Template for a VmEvent), and of two promoted fields with
//     one name the shallower wins, as in encoding/json;
//   - nothing is omitted: nil pointers, interfaces, maps and slices are null,
//     empty strings and false are kept, an empty non-nil slice is [];
//   - a ManagedObjectReference is {"Type","Value"} (ServerGUID is dropped);
//   - a time.Time is an RFC 3339 string in UTC with as many fractional digits
//     as it needs (time.RFC3339Nano);
//   - DynamicData contributes no fields;
//   - an interface (a Fault's BaseMethodFault, a KeyAnyValue's Value) is
//     rendered as its dynamic value in the same shape, without a type name;
//   - a []byte is a base64 string.
//
// MarshalData is safe for concurrent use. It returns an error for a nil event
// and for values JSON cannot hold (NaN, a year outside 0-9999, a func).
func MarshalData(be types.BaseEvent) ([]byte, error) {
	if isNilEvent(be) {
		return nil, errNilEvent
	}
	v := reflect.ValueOf(be)
	e := encodeStatePool.Get().(*encodeState)
	e.buf = e.buf[:0]
	e.depth = 0
	err := typeEncoder(v.Type())(e, v)
	var out []byte
	if err == nil {
		out = slices.Clone(e.buf)
	}
	if cap(e.buf) <= maxPooledBuf {
		encodeStatePool.Put(e)
	}
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", typeName(be), err)
	}
	return out, nil
}

var errNilEvent = errors.New("nil event")

// isNilEvent reports whether be is nil or a nil pointer: calling GetEvent on
// either would panic.
func isNilEvent(be types.BaseEvent) bool {
	if be == nil {
		return true
	}
	v := reflect.ValueOf(be)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

const (
	// maxPooledBuf keeps one huge event from pinning its buffer in the pool.
	maxPooledBuf = 64 << 10
	// maxDepth bounds pointer, interface and container nesting, so that a
	// cyclic value ends in an error instead of a stack overflow. govmomi event
	// trees are a few levels deep.
	maxDepth = 256
)

type encodeState struct {
	buf   []byte
	depth int
}

var encodeStatePool = sync.Pool{New: func() any { return &encodeState{buf: make([]byte, 0, 2048)} }}

// enter and leave bracket every step that follows a reference.
func (e *encodeState) enter() error {
	e.depth++
	if e.depth > maxDepth {
		return fmt.Errorf("value nested deeper than %d levels (cyclic?)", maxDepth)
	}
	return nil
}

func (e *encodeState) leave() { e.depth-- }

// encoderFunc appends the JSON for v to e.buf.
type encoderFunc func(e *encodeState, v reflect.Value) error

// encoders caches one encoderFunc per type: the field plan of a struct is
// worked out once, so an event costs only the walk over its values.
var encoders sync.Map // reflect.Type -> encoderFunc

func typeEncoder(t reflect.Type) encoderFunc {
	if f, ok := encoders.Load(t); ok {
		return f.(encoderFunc)
	}
	// A recursive type (LocalizedMethodFault -> MethodFault -> FaultCause
	// *LocalizedMethodFault) reaches itself while its encoder is built. Store an
	// indirect func first that waits for the real one, as encoding/json does.
	var (
		wg sync.WaitGroup
		f  encoderFunc
	)
	wg.Add(1)
	fi, loaded := encoders.LoadOrStore(t, encoderFunc(func(e *encodeState, v reflect.Value) error {
		wg.Wait()
		return f(e, v)
	}))
	if loaded {
		return fi.(encoderFunc)
	}
	f = newTypeEncoder(t)
	wg.Done()
	encoders.Store(t, f)
	return f
}

var (
	timeType = reflect.TypeFor[time.Time]()
	morType  = reflect.TypeFor[types.ManagedObjectReference]()
	dynType  = reflect.TypeFor[types.DynamicData]()
)

func newTypeEncoder(t reflect.Type) encoderFunc {
	switch t {
	case timeType:
		return encodeTime
	case morType:
		return encodeMOR
	}
	switch t.Kind() {
	case reflect.Bool:
		return encodeBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return encodeInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return encodeUint
	case reflect.Float32:
		return encodeFloat32
	case reflect.Float64:
		return encodeFloat64
	case reflect.String:
		return encodeString
	case reflect.Interface:
		return encodeInterface
	case reflect.Pointer:
		return newPtrEncoder(t)
	case reflect.Struct:
		return newStructEncoder(t)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return encodeBytes
		}
		return newSliceEncoder(t)
	case reflect.Array:
		return newArrayEncoder(t)
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			return newMapEncoder(t)
		}
	}
	return func(*encodeState, reflect.Value) error {
		return fmt.Errorf("unsupported type %s", t)
	}
}

func encodeBool(e *encodeState, v reflect.Value) error {
	e.buf = strconv.AppendBool(e.buf, v.Bool())
	return nil
}

func encodeInt(e *encodeState, v reflect.Value) error {
	e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
	return nil
}

func encodeUint(e *encodeState, v reflect.Value) error {
	e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
	return nil
}

func encodeFloat32(e *encodeState, v reflect.Value) error { return appendFloat(e, v.Float(), 32) }
func encodeFloat64(e *encodeState, v reflect.Value) error { return appendFloat(e, v.Float(), 64) }

// appendFloat formats like encoding/json: plain decimals, exponents only for
// very small or very large magnitudes.
func appendFloat(e *encodeState, f float64, bits int) error {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("unsupported float value %s", strconv.FormatFloat(f, 'g', -1, bits))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b := strconv.AppendFloat(e.buf, f, format, -1, bits)
	if format == 'e' {
		// 1e-07 becomes 1e-7.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	e.buf = b
	return nil
}

func encodeString(e *encodeState, v reflect.Value) error {
	e.buf = streams.AppendString(e.buf, v.String())
	return nil
}

func encodeBytes(e *encodeState, v reflect.Value) error {
	if v.IsNil() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	b := v.Bytes()
	e.buf = append(e.buf, '"')
	e.buf = base64.StdEncoding.AppendEncode(e.buf, b)
	e.buf = append(e.buf, '"')
	return nil
}

func encodeTime(e *encodeState, v reflect.Value) error {
	t, _ := reflect.TypeAssert[time.Time](v)
	if y := t.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("time %v: year outside of range [0,9999]", t)
	}
	e.buf = append(e.buf, '"')
	e.buf = t.UTC().AppendFormat(e.buf, time.RFC3339Nano)
	e.buf = append(e.buf, '"')
	return nil
}

var (
	morTypeIndex  = fieldIndex(morType, "Type")
	morValueIndex = fieldIndex(morType, "Value")
)

func fieldIndex(t reflect.Type, name string) int {
	f, _ := t.FieldByName(name)
	return f.Index[0]
}

// encodeMOR drops ServerGUID: the samples, and the functions written
// against them, know only Type and Value.
func encodeMOR(e *encodeState, v reflect.Value) error {
	e.buf = append(e.buf, `{"Type":`...)
	e.buf = streams.AppendString(e.buf, v.Field(morTypeIndex).String())
	e.buf = append(e.buf, `,"Value":`...)
	e.buf = streams.AppendString(e.buf, v.Field(morValueIndex).String())
	e.buf = append(e.buf, '}')
	return nil
}

func encodeInterface(e *encodeState, v reflect.Value) error {
	if v.IsNil() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	if err := e.enter(); err != nil {
		return err
	}
	el := v.Elem()
	err := typeEncoder(el.Type())(e, el)
	e.leave()
	return err
}

func newPtrEncoder(t reflect.Type) encoderFunc {
	elem := typeEncoder(t.Elem())
	return func(e *encodeState, v reflect.Value) error {
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if err := e.enter(); err != nil {
			return err
		}
		err := elem(e, v.Elem())
		e.leave()
		return err
	}
}

func newSliceEncoder(t reflect.Type) encoderFunc {
	elem := typeEncoder(t.Elem())
	return func(e *encodeState, v reflect.Value) error {
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if err := e.enter(); err != nil {
			return err
		}
		err := encodeElems(e, v, elem)
		e.leave()
		return err
	}
}

func newArrayEncoder(t reflect.Type) encoderFunc {
	elem := typeEncoder(t.Elem())
	return func(e *encodeState, v reflect.Value) error {
		return encodeElems(e, v, elem)
	}
}

func encodeElems(e *encodeState, v reflect.Value, elem encoderFunc) error {
	e.buf = append(e.buf, '[')
	for i := range v.Len() {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		if err := elem(e, v.Index(i)); err != nil {
			return err
		}
	}
	e.buf = append(e.buf, ']')
	return nil
}

// newMapEncoder handles maps with string keys, in sorted key order. govmomi
// types hold none; an AnyType value might.
func newMapEncoder(t reflect.Type) encoderFunc {
	elem := typeEncoder(t.Elem())
	return func(e *encodeState, v reflect.Value) error {
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if err := e.enter(); err != nil {
			return err
		}
		defer e.leave()
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = streams.AppendString(e.buf, k.String())
			e.buf = append(e.buf, ':')
			if err := elem(e, v.MapIndex(k)); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
		return nil
	}
}

// structField is one key of a struct's JSON object: a field reached through
// index, possibly through embedded structs.
type structField struct {
	key   string // `,"Name":`; the first field drops the comma
	index []int
	typ   reflect.Type
	enc   encoderFunc
}

func newStructEncoder(t reflect.Type) encoderFunc {
	fields := structFields(t)
	// A field type that leads back to t (FaultCause *LocalizedMethodFault)
	// gets t's placeholder from typeEncoder.
	for i := range fields {
		fields[i].enc = typeEncoder(fields[i].typ)
	}
	return func(e *encodeState, v reflect.Value) error {
		e.buf = append(e.buf, '{')
		first := true
	fields:
		for i := range fields {
			f := &fields[i]
			fv := v
			for _, x := range f.index[:len(f.index)-1] {
				fv = fv.Field(x)
				if fv.Kind() == reflect.Pointer {
					if fv.IsNil() {
						// Fields promoted through a nil embedded
						// pointer are left out, as in encoding/json.
						continue fields
					}
					fv = fv.Elem()
				}
			}
			fv = fv.Field(f.index[len(f.index)-1])
			key := f.key
			if first {
				key = key[1:]
				first = false
			}
			e.buf = append(e.buf, key...)
			if err := f.enc(e, fv); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
		return nil
	}
}

// structFields lists the JSON keys of t in field order, flattening embedded
// structs. Names are Go field names, struct tags are ignored. When a name
// occurs at several depths the shallowest field wins; when it occurs more
// than once at that depth it is left out. These are encoding/json's rules for
// untagged fields, which made the shape the samples show.
func structFields(t reflect.Type) []structField {
	type candidate struct {
		name  string
		index []int
		typ   reflect.Type
	}
	var all []candidate
	var walk func(t reflect.Type, index []int, seen []reflect.Type)
	walk = func(t reflect.Type, index []int, seen []reflect.Type) {
		for i := range t.NumField() {
			sf := t.Field(i)
			idx := append(slices.Clip(index), i)
			if sf.Anonymous {
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				switch {
				case ft == dynType, slices.Contains(seen, ft):
					// DynamicData carries no event data (older govmomi
					// put DynamicType and DynamicProperty there).
					continue
				case ft.Kind() == reflect.Struct && ft != timeType && ft != morType:
					walk(ft, idx, append(slices.Clip(seen), ft))
					continue
				}
				// Anything else embedded is a field named after its type.
			}
			if !sf.IsExported() {
				continue
			}
			all = append(all, candidate{name: sf.Name, index: idx, typ: sf.Type})
		}
	}
	walk(t, nil, []reflect.Type{t})

	// Of the fields sharing a name keep the shallowest, if it is the only
	// one at its depth.
	type rank struct{ depth, count int }
	ranks := make(map[string]rank, len(all))
	for _, c := range all {
		r, ok := ranks[c.name]
		switch d := len(c.index); {
		case !ok || d < r.depth:
			ranks[c.name] = rank{depth: d, count: 1}
		case d == r.depth:
			r.count++
			ranks[c.name] = r
		}
	}
	fields := make([]structField, 0, len(all))
	for _, c := range all {
		if r := ranks[c.name]; r.count != 1 || r.depth != len(c.index) {
			continue
		}
		fields = append(fields, structField{
			key:   "," + string(streams.AppendString(nil, c.name)) + ":",
			index: c.index,
			typ:   c.typ,
		})
	}
	return fields
}
