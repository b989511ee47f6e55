package filters

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/expr-lang/expr/ast"

	"github.com/vrelay/vrelay/internal/jsonscan"
)

// A filter that reads a few members of data, such as data.Vm.Name, does not
// need the whole payload decoded. At compile time, dataUse walks the
// expression and collects the member paths under data it reads; at run
// time, [partial.decode] looks those paths up in the JSON bytes and builds a
// tree of only them: maps holding the members on the paths, and, where the
// expression reads a value as a whole, that value decoded exactly as
// encoding/json decodes it. The expression cannot tell the two apart: every
// member it reads has the value it would have in the full tree, and every
// member it reads that the payload lacks is absent from both.
//
// An expression that reads data in any other way (data alone, a computed
// index, $env) decodes the whole payload, as before. The JSON is still
// validated to its end, so a payload that does not parse is a *DataError
// either way.

// pathNode is one member on the paths an expression reads.
type pathNode struct {
	key string
	// whole says the expression reads this value itself, not only members
	// of it: it is decoded in full.
	whole bool
	// children are the members read under this value when it is an object.
	children []*pathNode
	// elem, if not nil, says the value is only read as an array that a
	// predicate (any, all, none, one, count, findIndex, findLastIndex)
	// walks, reading these members of each element. Nothing of an element
	// leaves the predicate, so the elements need hold nothing else.
	elem *pathNode

	// ptrType is the type word of a pointer to a struct of one any field
	// per child, set by layout when the node has children. An object read
	// at the node is decoded into such a struct, from the slab slot of
	// the partial state, not into a map (see object).
	ptrType unsafe.Pointer
	slot    int
}

func (n *pathNode) child(key string) *pathNode {
	for _, c := range n.children {
		if c.key == key {
			return c
		}
	}
	c := &pathNode{key: key}
	n.children = append(n.children, c)
	return c
}

// add records that the expression reads path below n: as a whole, or, if
// elem is not nil, as an array whose elements it reads at elem.
func (n *pathNode) add(path []string, elem *pathNode) {
	for _, k := range path {
		n = n.child(k)
	}
	if elem == nil {
		n.whole = true
		return
	}
	if n.elem == nil {
		n.elem = &pathNode{}
	}
	n.elem.merge(elem)
}

func (n *pathNode) merge(o *pathNode) {
	n.whole = n.whole || o.whole
	for _, c := range o.children {
		n.child(c.key).merge(c)
	}
	if o.elem != nil {
		if n.elem == nil {
			n.elem = &pathNode{}
		}
		n.elem.merge(o.elem)
	}
}

// predicates are the builtins whose closure result says only yes, no or
// how many: none of them hands an element on.
var predicates = map[string]bool{
	"any": true, "all": true, "none": true, "one": true, "count": true,
	"findIndex": true, "findLastIndex": true,
}

// dataPaths returns the paths under data that the expression root reads,
// or nil when it reads data some other way and needs the whole of it.
func dataPaths(root ast.Node) *pathNode {
	c := &pathCollector{root: &pathNode{}}
	c.walk(root, "data", false)
	if c.bail || c.root.whole {
		return nil
	}
	c.root.layout(new(int))
	return c.root
}

// anyType is the type of the fields of the structs objects decode into.
var anyType = reflect.TypeFor[any]()

// layout gives each node under n that has children a struct type and a
// slab slot, counting the slots in *slots.
//
// An expression reads such a node only by its members, by name (data.Vm,
// data["Vm"], data.Vm?.Name), never as a whole: a whole read decodes the
// value in full, as a map. So a struct serves as well as a map: expr
// fetches a field by the name in its `expr` tag as it fetches a key, and
// a member the payload lacks is a nil field as it is a missing key; the
// two differ only in what the expression cannot do with the node. A
// struct costs less: no hashing to fill it, a memclr to reset it, and
// expr fetches a field without the allocation that reading a map by
// reflection costs. A key expr's tags cannot name ("-") keeps a map.
func (n *pathNode) layout(slots *int) {
	for _, c := range n.children {
		c.layout(slots)
	}
	if n.elem != nil {
		n.elem.layout(slots)
	}
	if len(n.children) == 0 || n.whole {
		return
	}
	keys := make(map[string]bool, len(n.children))
	for _, c := range n.children {
		if c.key == "-" {
			return
		}
		keys[c.key] = true
	}
	fields := make([]reflect.StructField, len(n.children))
	for i, c := range n.children {
		// expr matches a field by its tag or by its Go name: a Go name
		// that is no key keeps the match to the tag.
		name := "F" + strconv.Itoa(i)
		for keys[name] {
			name += "_"
		}
		fields[i] = reflect.StructField{
			Name: name,
			Type: anyType,
			Tag:  reflect.StructTag(`expr:` + strconv.Quote(c.key)),
		}
	}
	n.ptrType = typeWord(reflect.New(reflect.StructOf(fields)).Interface())
	n.slot = *slots
	*slots++
}

// pathCollector walks an expression for the uses of one identifier (data)
// or of a closure's element (the pointer #).
type pathCollector struct {
	root *pathNode
	bail bool
}

// memberPath returns the string members read by the chain of member
// accesses n, and the node the chain starts from.
func memberPath(n ast.Node) (base ast.Node, path []string) {
	for {
		switch m := n.(type) {
		case *ast.ChainNode:
			n = m.Node
			continue
		case *ast.MemberNode:
			s, ok := m.Property.(*ast.StringNode)
			if !ok {
				return n, path
			}
			path = append(path, s.Value)
			n = m.Node
			continue
		}
		break
	}
	// Reverse: the chain was read from its end.
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return n, path
}

// isBase reports whether n is the start of the paths collected: the
// identifier data, or, in a closure, the element pointer.
func isBase(n ast.Node, ident string, pointer bool) bool {
	if pointer {
		p, ok := n.(*ast.PointerNode)
		return ok && p.Name == ""
	}
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == ident
}

// walk collects the paths of n. In a closure (pointer true) it collects the
// members read of the element, and gives up on a nested closure, whose
// pointer means another element.
func (c *pathCollector) walk(n ast.Node, ident string, pointer bool) {
	if n == nil || c.bail {
		return
	}
	if isBase(n, ident, pointer) {
		c.root.whole = true // the value read as a whole
		return
	}
	switch m := n.(type) {
	case *ast.MemberNode, *ast.ChainNode:
		base, path := memberPath(n)
		if len(path) > 0 && isBase(base, ident, pointer) {
			c.root.add(path, nil)
			return
		}
	case *ast.BuiltinNode:
		if c.predicate(m, ident, pointer) {
			return
		}
	case *ast.PredicateNode:
		if pointer {
			c.bail = true
			return
		}
	}
	c.children(n, ident, pointer)
}

// predicate handles any(data.X, {...}) and its kind: it reports whether it
// collected the paths of m.
func (c *pathCollector) predicate(m *ast.BuiltinNode, ident string, pointer bool) bool {
	if !predicates[m.Name] || m.Map != nil || len(m.Arguments) != 2 {
		return false
	}
	base, path := memberPath(m.Arguments[0])
	if len(path) == 0 || !isBase(base, ident, pointer) {
		return false
	}
	pred, ok := m.Arguments[1].(*ast.PredicateNode)
	if !ok {
		return false
	}
	inner := &pathCollector{root: &pathNode{}}
	inner.walk(pred.Node, "", true)
	if inner.bail {
		if pointer {
			// A closure in a closure: keep it simple.
			c.bail = true
			return true
		}
		// The closure reads its element in a way we do not follow.
		c.root.add(path, nil)
		// The closure may still read data itself.
		c.walk(pred.Node, ident, pointer)
		return true
	}
	c.root.add(path, inner.root)
	// The closure may read data itself, besides its element.
	if !pointer {
		c.walk(pred.Node, ident, false)
	}
	return true
}

// children walks the nodes under n.
func (c *pathCollector) children(n ast.Node, ident string, pointer bool) {
	switch m := n.(type) {
	case *ast.UnaryNode:
		c.walk(m.Node, ident, pointer)
	case *ast.BinaryNode:
		c.walk(m.Left, ident, pointer)
		c.walk(m.Right, ident, pointer)
	case *ast.ChainNode:
		c.walk(m.Node, ident, pointer)
	case *ast.MemberNode:
		c.walk(m.Node, ident, pointer)
		c.walk(m.Property, ident, pointer)
	case *ast.SliceNode:
		c.walk(m.Node, ident, pointer)
		c.walk(m.From, ident, pointer)
		c.walk(m.To, ident, pointer)
	case *ast.CallNode:
		c.walk(m.Callee, ident, pointer)
		for _, a := range m.Arguments {
			c.walk(a, ident, pointer)
		}
	case *ast.BuiltinNode:
		if m.Map != nil {
			c.bail = true
			return
		}
		for _, a := range m.Arguments {
			c.walk(a, ident, pointer)
		}
	case *ast.PredicateNode:
		c.walk(m.Node, ident, pointer)
	case *ast.VariableDeclaratorNode:
		c.walk(m.Value, ident, pointer)
		c.walk(m.Expr, ident, pointer)
	case *ast.SequenceNode:
		for _, s := range m.Nodes {
			c.walk(s, ident, pointer)
		}
	case *ast.ConditionalNode:
		c.walk(m.Cond, ident, pointer)
		c.walk(m.Exp1, ident, pointer)
		c.walk(m.Exp2, ident, pointer)
	case *ast.ArrayNode:
		for _, s := range m.Nodes {
			c.walk(s, ident, pointer)
		}
	case *ast.MapNode:
		for _, s := range m.Pairs {
			c.walk(s, ident, pointer)
		}
	case *ast.PairNode:
		c.walk(m.Key, ident, pointer)
		c.walk(m.Value, ident, pointer)
	case *ast.NilNode, *ast.IdentifierNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode,
		*ast.StringNode, *ast.BytesNode, *ast.ConstantNode, *ast.PointerNode:
	default:
		// A node this walk does not know: read data whole, to be safe.
		c.bail = true
	}
}

// partial decodes the paths of one expression. It is part of a pooled
// state, and reuses its maps, slices and boxes from one run to the next:
// what it returns is valid until the next reset, and only while the
// payload it decoded is neither modified nor released.
//
// The strings of the tree are views of the payload bytes, and its strings,
// numbers and slices are boxed in interfaces without an allocation each
// (see box.go). That is safe because of how the tree is used: only
// [Filter.Match] decodes paths, the tree lives in the state's environment
// for one run of the expression, whose result is a bool, and the run
// keeps none of it (error messages are formatted copies); put resets the
// state, clearing the environment, the VM's stack and scopes and these
// boxes, before the state goes back to the pool, so that no view of a
// payload outlives the Match that decoded it. [Value.Eval] and transforms,
// whose results leave the run, decode data in full instead.
type partial struct {
	maps   []map[string]any
	nmaps  int
	slices [][]any
	nslice int

	// The boxes, filled from the start on each decode: an interface made
	// by box* points at one of their elements.
	strs   []string
	floats []float64
	heads  [][]any
	// structs holds, for each slot of layout, the fields of the structs
	// decoded at that node, one after the other.
	structs [][]any
}

// reset forgets the tree of the last decode, keeping its storage, and
// drops every view of the payload.
func (d *partial) reset() {
	for _, m := range d.maps[:d.nmaps] {
		clear(m)
	}
	for _, s := range d.slices[:d.nslice] {
		clear(s)
	}
	d.nmaps, d.nslice = 0, 0
	clear(d.strs)
	clear(d.heads)
	d.strs, d.floats, d.heads = d.strs[:0], d.floats[:0], d.heads[:0]
	for i, s := range d.structs {
		clear(s)
		d.structs[i] = s[:0]
	}
}

// fields returns the zeroed fields of a new struct of node n, to be boxed
// with n.ptrType: as a struct of any fields, its layout is that of an
// array of them.
func (d *partial) fields(n *pathNode) []any {
	for len(d.structs) <= n.slot {
		d.structs = append(d.structs, nil)
	}
	s, k := d.structs[n.slot], len(n.children)
	if len(s)+k > cap(s) {
		// A new slab: the structs boxed before keep the old one, which
		// lives as long as they do and which nothing writes again.
		s = make([]any, 0, max(2*cap(s), 4*k))
	}
	s = s[:len(s)+k]
	d.structs[n.slot] = s
	return s[len(s)-k:]
}

func (d *partial) newMap() map[string]any {
	if d.nmaps < len(d.maps) {
		m := d.maps[d.nmaps]
		d.nmaps++
		return m
	}
	m := make(map[string]any, 4)
	d.maps = append(d.maps, m)
	d.nmaps++
	return m
}

// newSlice returns an empty slice to append to, and its number for
// keepSlice.
func (d *partial) newSlice() ([]any, int) {
	k := d.nslice
	d.nslice++
	if k < len(d.slices) {
		return d.slices[k][:0], k
	}
	s := make([]any, 0, 8)
	d.slices = append(d.slices, s)
	return s, k
}

// keepSlice stores s, slice number k grown, so that the next decode
// reuses it. Arrays nest, so k need not be the last one handed out.
func (d *partial) keepSlice(k int, s []any) {
	d.slices[k] = s
}

// str returns s as an any without allocating.
func (d *partial) str(s string) any {
	if s == "" {
		return ""
	}
	// Appending may move the box to a new array: the interfaces made
	// before keep pointing into the old one, which lives as long as they
	// do, and which nothing writes again.
	d.strs = append(d.strs, s)
	return boxString(&d.strs[len(d.strs)-1])
}

// float returns f as an any without allocating.
func (d *partial) float(f float64) any {
	d.floats = append(d.floats, f)
	return boxFloat(&d.floats[len(d.floats)-1])
}

// slice returns s as an any without allocating.
func (d *partial) slice(s []any) any {
	d.heads = append(d.heads, s)
	return boxSlice(&d.heads[len(d.heads)-1])
}

// decode returns the data an expression reading the paths of root sees:
// the members on the paths, with the values it reads whole decoded. It
// checks the whole of b in the same pass, as json.Unmarshal into an any
// would (grammar, nesting depth, numbers that fit a float64), and returns
// false where that would fail; the caller asks encoding/json why.
func (d *partial) decode(b []byte, root *pathNode) (any, bool) {
	i := jsonscan.Space(b, 0)
	if root.whole || i >= len(b) || b[i] != '{' {
		var v any
		err := json.Unmarshal(b, &v)
		return v, err == nil
	}
	v, i := d.value(b, i, 0, root)
	if i < 0 || jsonscan.Space(b, i) != len(b) {
		return nil, false
	}
	return v, true
}

// value reads the JSON value at b[i], inside depth objects and arrays, as
// the node n reads it, and returns it and the index just past it, or -1.
func (d *partial) value(b []byte, i, depth int, n *pathNode) (any, int) {
	if i < len(b) && !n.whole {
		switch {
		case b[i] == '{' && len(n.children) > 0:
			return d.object(b, i, depth, n)
		case b[i] == '[' && n.elem != nil:
			return d.array(b, i, depth, n.elem)
		}
	}
	if i < len(b) && b[i] == '"' {
		end, plain := jsonscan.StringPlain(b, i)
		if plain && end-i > 2 {
			// A view of the payload, valid while it is (see partial).
			return d.str(unsafe.String(&b[i+1], end-i-2)), end
		}
		if end < 0 {
			return nil, -1
		}
		v, ok := d.leaf(b[i:end])
		if !ok {
			return nil, -1
		}
		return v, end
	}
	end := jsonscan.AnyValue(b, i, depth)
	if end < 0 {
		return nil, -1
	}
	v, ok := d.leaf(b[i:end])
	if !ok {
		return nil, -1
	}
	return v, end
}

// object reads the members of the object at b[i] that n reads.
func (d *partial) object(b []byte, i, depth int, n *pathNode) (any, int) {
	if depth >= jsonscan.MaxDepth {
		return nil, -1
	}
	depth++
	var (
		m  map[string]any
		fs []any
		v  any
	)
	if n.ptrType != nil {
		fs = d.fields(n)
		v = box(n.ptrType, unsafe.Pointer(&fs[0]))
	} else {
		m = d.newMap()
		v = m
	}
	if i = jsonscan.Space(b, i+1); i < len(b) && b[i] == '}' {
		return v, i + 1
	}
	for {
		ks := i
		var plain bool
		if i, plain = jsonscan.StringPlain(b, i); i < 0 {
			return nil, -1
		}
		key := b[ks:i]
		if i = jsonscan.Space(b, i); i >= len(b) || b[i] != ':' {
			return nil, -1
		}
		i = jsonscan.Space(b, i+1)
		if c := matchKey(key, plain, n.children); c >= 0 {
			var cv any
			if cv, i = d.value(b, i, depth, n.children[c]); i < 0 {
				return nil, -1
			}
			// A later duplicate wins, as in encoding/json.
			if fs != nil {
				fs[c] = cv
			} else {
				m[n.children[c].key] = cv
			}
		} else if i < len(b) && b[i] == '"' {
			// Most members skipped are strings: no need for AnyValue's
			// container stack.
			if i = jsonscan.String(b, i); i < 0 {
				return nil, -1
			}
		} else if i = jsonscan.AnyValue(b, i, depth); i < 0 {
			return nil, -1
		}
		if i = jsonscan.Space(b, i); i >= len(b) {
			return nil, -1
		}
		switch b[i] {
		case ',':
			i = jsonscan.Space(b, i+1)
		case '}':
			return v, i + 1
		default:
			return nil, -1
		}
	}
}

// array reads the array at b[i], each element as elem reads it.
func (d *partial) array(b []byte, i, depth int, elem *pathNode) (any, int) {
	if depth >= jsonscan.MaxDepth {
		return nil, -1
	}
	depth++
	out, k := d.newSlice()
	if i = jsonscan.Space(b, i+1); i < len(b) && b[i] == ']' {
		return d.slice(out), i + 1
	}
	for {
		var v any
		if v, i = d.value(b, i, depth, elem); i < 0 {
			return nil, -1
		}
		out = append(out, v)
		if i = jsonscan.Space(b, i); i >= len(b) {
			return nil, -1
		}
		switch b[i] {
		case ',':
			i = jsonscan.Space(b, i+1)
		case ']':
			d.keepSlice(k, out)
			return d.slice(out), i + 1
		default:
			return nil, -1
		}
	}
}

// matchKey returns the index of the child named by the JSON string key, or
// -1. plain says key has no escapes and only ASCII bytes.
func matchKey(key []byte, plain bool, children []*pathNode) int {
	raw := key[1 : len(key)-1]
	if !plain {
		// Escapes or non-ASCII: compare what encoding/json makes of it.
		var k string
		if err := json.Unmarshal(key, &k); err != nil {
			return -1
		}
		raw = []byte(k)
	}
	for i, c := range children {
		if c.key == string(raw) {
			return i
		}
	}
	return -1
}

// leaf decodes b, a JSON value that jsonscan.AnyValue accepted, as
// encoding/json decodes it into an any.
func (d *partial) leaf(b []byte) (any, bool) {
	switch b[0] {
	case 'n':
		return nil, true
	case 't':
		return true, true
	case 'f':
		return false, true
	case '"':
		raw := b[1 : len(b)-1]
		if len(raw) == 0 {
			return "", true
		}
		if !plainString(raw) {
			break // escapes or bad UTF-8: encoding/json's rules
		}
		// A view of the payload, valid while it is (see partial).
		return d.str(unsafe.String(&raw[0], len(raw))), true
	case '{', '[':
	default:
		f, ok := parseNumber(b)
		if !ok {
			return nil, false
		}
		return d.float(f), true
	}
	var v any
	err := json.Unmarshal(b, &v)
	return v, err == nil
}

// parseNumber returns the float64 of the JSON number b, as encoding/json
// gives it.
func parseNumber(b []byte) (float64, bool) {
	// Up to 15 digits, an integer is exact in a float64: no rounding to do.
	if len(b) <= 15 {
		var n uint64
		digits := true
		for _, c := range b {
			if c < '0' || c > '9' {
				digits = false
				break
			}
			n = n*10 + uint64(c-'0')
		}
		if digits {
			return float64(n), true
		}
	}
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil
}

// plainString reports whether the contents of a JSON string are their own
// value: no escapes, valid UTF-8.
func plainString(raw []byte) bool {
	if asciiPlain(raw) {
		return true
	}
	return utf8.Valid(raw) && bytes.IndexByte(raw, '\\') < 0
}

// asciiPlain reports whether raw holds only ASCII bytes and no backslash,
// eight bytes at a time.
func asciiPlain(raw []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(raw); i += 8 {
		x := binary.LittleEndian.Uint64(raw[i:])
		bs := x ^ (ones * '\\')
		if (x|(bs-ones)&^bs)&highs != 0 {
			return false
		}
	}
	for ; i < len(raw); i++ {
		if raw[i] == '\\' || raw[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
