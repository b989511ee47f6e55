package filters

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
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
	return c.root
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
// state, and reuses its maps, slices and strings from one run to the next:
// what it returns is valid until the next decode.
type partial struct {
	maps   []map[string]any
	nmaps  int
	slices [][]any
	nslice int
	// strs holds decoded strings already boxed in an interface, which
	// otherwise costs an allocation each: names of arguments, clusters,
	// hosts repeat from one event to the next.
	strs map[string]any
}

const (
	maxInterned    = 1024 // strings a state keeps boxed; then it starts over
	maxInternedLen = 64   // longer strings are not kept
)

// reset forgets the tree of the last decode, keeping its storage.
func (d *partial) reset() {
	for _, m := range d.maps[:d.nmaps] {
		clear(m)
	}
	for _, s := range d.slices[:d.nslice] {
		clear(s)
	}
	d.nmaps, d.nslice = 0, 0
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

func (d *partial) newSlice(n int) []any {
	if d.nslice < len(d.slices) {
		s := d.slices[d.nslice][:0]
		d.nslice++
		return s
	}
	s := make([]any, 0, max(n, 8))
	d.slices = append(d.slices, s)
	d.nslice++
	return s
}

// keepSlice stores the grown s back, so that the next decode reuses it.
func (d *partial) keepSlice(s []any) {
	d.slices[d.nslice-1] = s
}

// decode returns the data an expression reading the paths of root sees:
// the members on the paths, with the values it reads whole decoded. It
// checks the whole of b in the same pass.
func (d *partial) decode(b []byte, root *pathNode) (any, error) {
	s := scanner{b: b}
	s.ws()
	if root.whole || s.i >= len(b) || b[s.i] != '{' {
		var v any
		err := json.Unmarshal(b, &v)
		return v, err
	}
	v, err := d.value(&s, root)
	if err != nil {
		return nil, err
	}
	s.ws()
	if s.i != len(b) {
		return nil, s.errorf("invalid character %q after top-level value", b[s.i])
	}
	return v, nil
}

// value checks the JSON value at s.i, moves past it and returns it as the
// node n reads it.
func (d *partial) value(s *scanner, n *pathNode) (any, error) {
	if s.i < len(s.b) && !n.whole {
		switch {
		case s.b[s.i] == '{' && len(n.children) > 0:
			return d.object(s, n)
		case s.b[s.i] == '[' && n.elem != nil:
			return d.array(s, n.elem)
		}
	}
	vs := s.i
	if err := s.value(); err != nil {
		return nil, err
	}
	return d.leaf(s.b[vs:s.i])
}

// object decodes the members of the object at s.i that n reads.
func (d *partial) object(s *scanner, n *pathNode) (any, error) {
	m := d.newMap()
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return m, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return nil, s.errorf("invalid character looking for beginning of object key string")
		}
		ks := s.i
		if err := s.str(); err != nil {
			return nil, err
		}
		key := s.b[ks:s.i]
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return nil, s.errorf("invalid character after object key")
		}
		s.i++
		s.ws()
		if i := matchKey(key, n.children); i >= 0 {
			v, err := d.value(s, n.children[i])
			if err != nil {
				return nil, err
			}
			m[n.children[i].key] = v // a later duplicate wins, as in encoding/json
		} else if err := s.value(); err != nil {
			return nil, err
		}
		s.ws()
		if s.i >= len(s.b) {
			return nil, errJSONEnd
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return m, nil
		default:
			return nil, s.errorf("invalid character %q after object key:value pair", s.b[s.i])
		}
	}
}

// array decodes the array at s.i, each element as elem reads it.
func (d *partial) array(s *scanner, elem *pathNode) (any, error) {
	out := d.newSlice(0)
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return out, nil
	}
	for {
		s.ws()
		v, err := d.value(s, elem)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		s.ws()
		if s.i >= len(s.b) {
			return nil, errJSONEnd
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			d.keepSlice(out)
			return out, nil
		default:
			return nil, s.errorf("invalid character %q after array element", s.b[s.i])
		}
	}
}

// matchKey returns the index of the child named by the JSON string key, or -1.
func matchKey(key []byte, children []*pathNode) int {
	raw := key[1 : len(key)-1]
	plain := true
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
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

// leaf decodes the valid JSON value b as encoding/json does into an any.
func (d *partial) leaf(b []byte) (any, error) {
	switch b[0] {
	case 'n':
		return nil, nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case '"':
		raw := b[1 : len(b)-1]
		if !plainString(raw) {
			break
		}
		if v, ok := d.strs[string(raw)]; ok {
			return v, nil
		}
		str := string(raw)
		var v any = str
		if len(raw) <= maxInternedLen {
			if d.strs == nil || len(d.strs) >= maxInterned {
				d.strs = make(map[string]any, 64)
			}
			d.strs[str] = v
		}
		return v, nil
	case '{', '[':
	default:
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			break // out of range: let encoding/json say so
		}
		return f, nil
	}
	var v any
	err := json.Unmarshal(b, &v)
	return v, err
}

// plainString reports whether the contents of a JSON string are their own
// value: no escapes, valid UTF-8.
func plainString(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			return utf8.Valid(raw) && !hasByte(raw, '\\')
		}
	}
	return true
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// scanner checks JSON with exactly the grammar of encoding/json, and finds
// where values end.
type scanner struct {
	b []byte
	i int
}

var errJSONEnd = errors.New("unexpected end of JSON input")

func (s *scanner) errorf(format string, args ...any) error {
	if s.i >= len(s.b) {
		return errJSONEnd
	}
	return fmt.Errorf(format+" at offset %d", append(args, s.i)...)
}

// space and plain classify bytes: JSON white space, and bytes that stand
// for themselves in a string.
var space, plain [256]bool

func init() {
	for _, c := range " \t\n\r" {
		space[c] = true
	}
	for c := 0x20; c < 256; c++ {
		plain[c] = c != '"' && c != '\\'
	}
}

func (s *scanner) ws() {
	i, b := s.i, s.b
	for i < len(b) && space[b[i]] {
		i++
	}
	s.i = i
}

// value checks one value from s.i and moves past it.
func (s *scanner) value() error {
	if s.i >= len(s.b) {
		return errJSONEnd
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		return s.str()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	default:
		return s.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (s *scanner) object() error {
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.errorf("invalid character looking for beginning of object key string")
		}
		if err := s.str(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.errorf("invalid character after object key")
		}
		s.i++
		s.ws()
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errJSONEnd
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errorf("invalid character %q after object key:value pair", s.b[s.i])
		}
	}
}

func (s *scanner) array() error {
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errJSONEnd
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errorf("invalid character %q after array element", s.b[s.i])
		}
	}
}

func (s *scanner) str() error {
	s.i++ // '"'
	for s.i < len(s.b) {
		i, b := s.i, s.b
		// Eight bytes at a time while none of them ends the plain run.
		for i+8 <= len(b) && !special(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		s.i = i
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return errJSONEnd
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if s.i >= len(s.b) {
						return errJSONEnd
					}
					if !isHex(s.b[s.i]) {
						return s.errorf("invalid character %q in \\u hexadecimal character escape", s.b[s.i])
					}
					s.i++
				}
			default:
				return s.errorf("invalid character %q in string escape code", s.b[s.i])
			}
		case c < 0x20:
			return s.errorf("invalid character %q in string literal", c)
		default:
			s.i++
		}
	}
	return errJSONEnd
}

// special reports whether any of the eight bytes in x is a quote, a
// backslash or a control character.
func special(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	less := (x - ones*0x20) & ^x & highs // a byte below 0x20
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	return (less | ((q - ones) &^ q & highs) | ((bs - ones) &^ bs & highs)) != 0
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) lit(word string) error {
	for j := 0; j < len(word); j++ {
		if s.i >= len(s.b) {
			return errJSONEnd
		}
		if s.b[s.i] != word[j] {
			return s.errorf("invalid character %q in literal %s", s.b[s.i], word)
		}
		s.i++
	}
	return nil
}

func (s *scanner) number() (err error) {
	b, start := s.b, s.i
	if b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(b) {
		return errJSONEnd
	}
	switch c := b[s.i]; {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	default:
		return s.errorf("invalid character %q in numeric literal", c)
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		if s.i >= len(b) {
			return errJSONEnd
		}
		if b[s.i] < '0' || b[s.i] > '9' {
			return s.errorf("invalid character %q after decimal point in numeric literal", b[s.i])
		}
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		defer func() {
			// encoding/json fails on a number out of float64's range.
			if err == nil {
				if _, perr := strconv.ParseFloat(string(b[start:s.i]), 64); perr != nil {
					err = fmt.Errorf("json: cannot unmarshal number %s into Go value of type float64", b[start:s.i])
				}
			}
		}()
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(b) {
			return errJSONEnd
		}
		if b[s.i] < '0' || b[s.i] > '9' {
			return s.errorf("invalid character %q in exponent of numeric literal", b[s.i])
		}
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	}
	return nil
}
