package pattern

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Pattern is a compiled EventBridge event pattern. It is immutable and safe
// for concurrent use.
type Pattern struct {
	root node
}

// node is one object level of a pattern: every field condition and every
// $or group must match.
type node struct {
	fields []field
	ors    [][]node // each group matches when one of its alternatives does
}

// field is a leaf condition: the values found at path (arrays flattened)
// must satisfy one of the matchers.
type field struct {
	path     []string
	matchers []matcher
}

// Error is a pattern that does not compile. Path locates the bad part, in
// the pattern's own terms ("detail.data.Vm.Name[0]").
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

func errf(path, format string, args ...any) error {
	return &Error{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// Compile parses an EventBridge event pattern (JSON). It refuses what
// EventBridge refuses where that is cheap to tell (an empty pattern, a leaf
// that is not an array, an empty array, an unknown operator, a malformed
// numeric range), naming the path of the bad part.
func Compile(src []byte) (*Pattern, error) {
	v, err := decode(src)
	if err != nil {
		return nil, &Error{Reason: "not JSON: " + err.Error()}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Reason: "must be a JSON object"}
	}
	if len(obj) == 0 {
		return nil, &Error{Reason: "must not be empty"}
	}
	root, err := compileObject(obj, nil, "")
	if err != nil {
		return nil, err
	}
	return &Pattern{root: root}, nil
}

// MustCompile is [Compile] that panics on an error, for tests and examples.
func MustCompile(src string) *Pattern {
	p, err := Compile([]byte(src))
	if err != nil {
		panic(err)
	}
	return p
}

func decode(src []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(src))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func compileObject(obj map[string]any, at []string, path string) (node, error) {
	var n node
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		p := join(path, k)
		if k == "$or" {
			alts, ok := v.([]any)
			if !ok || len(alts) < 2 {
				return n, errf(p, "must be an array of at least two patterns")
			}
			var group []node
			for i, a := range alts {
				ao, ok := a.(map[string]any)
				if !ok || len(ao) == 0 {
					return n, errf(fmt.Sprintf("%s[%d]", p, i), "must be a non-empty object")
				}
				sub, err := compileObject(ao, at, fmt.Sprintf("%s[%d]", p, i))
				if err != nil {
					return n, err
				}
				group = append(group, sub)
			}
			n.ors = append(n.ors, group)
			continue
		}
		fpath := append(slices.Clip(at), k)
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				return n, errf(p, "must not be an empty object")
			}
			sub, err := compileObject(v, fpath, p)
			if err != nil {
				return n, err
			}
			n.fields = append(n.fields, sub.fields...)
			n.ors = append(n.ors, sub.ors...)
		case []any:
			if len(v) == 0 {
				return n, errf(p, "must not be an empty array")
			}
			f := field{path: fpath}
			for i, m := range v {
				mm, err := compileMatcher(m, fmt.Sprintf("%s[%d]", p, i))
				if err != nil {
					return n, err
				}
				f.matchers = append(f.matchers, mm)
			}
			n.fields = append(n.fields, f)
		default:
			return n, errf(p, "must be an object or an array of values to match, got %s", jsonKind(v))
		}
	}
	return n, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	}
	return "an object"
}

// Match reports whether the event (JSON, as EventBridge would see it: see
// the package documentation) matches p. An event that is not a JSON object
// matches nothing.
func (p *Pattern) Match(event []byte) (bool, error) {
	v, err := decode(event)
	if err != nil {
		return false, fmt.Errorf("event is not JSON: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return false, errors.New("event is not a JSON object")
	}
	return p.MatchValue(obj), nil
}

// MatchValue is [Pattern.Match] on an event already decoded with
// encoding/json (numbers as json.Number or float64).
func (p *Pattern) MatchValue(event map[string]any) bool {
	return p.root.match(event)
}

func (n node) match(ev map[string]any) bool {
	for _, f := range n.fields {
		if !f.match(ev) {
			return false
		}
	}
	for _, group := range n.ors {
		if !slices.ContainsFunc(group, func(alt node) bool { return alt.match(ev) }) {
			return false
		}
	}
	return true
}

func (f field) match(ev map[string]any) bool {
	vals, present := lookup(ev, f.path)
	for _, m := range f.matchers {
		if m.exists != nil {
			if *m.exists == present {
				return true
			}
			continue
		}
		for _, v := range vals {
			if m.match(v) {
				return true
			}
		}
	}
	return false
}

// lookup returns the leaf values at path, flattening arrays on the way and
// at the end as EventBridge does. present says a leaf (not an object) was
// found: what "exists" tests.
func lookup(ev map[string]any, path []string) (vals []any, present bool) {
	cur := []any{ev}
	for _, k := range path {
		var next []any
		for _, c := range cur {
			collect(c, k, &next)
		}
		if len(next) == 0 {
			return nil, false
		}
		cur = next
	}
	for _, c := range cur {
		flatten(c, &vals)
	}
	return vals, len(vals) > 0
}

func collect(c any, k string, out *[]any) {
	switch c := c.(type) {
	case map[string]any:
		if v, ok := c[k]; ok {
			*out = append(*out, v)
		}
	case []any:
		for _, e := range c {
			collect(e, k, out)
		}
	}
}

// flatten appends the leaves of v: its elements if it is an array; nothing
// if it is an object (patterns match leaves only).
func flatten(v any, out *[]any) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			flatten(e, out)
		}
	case map[string]any:
	default:
		*out = append(*out, v)
	}
}

// matcher matches one leaf value. Exactly one way is set.
type matcher struct {
	exists *bool
	match  func(v any) bool
}

func compileMatcher(m any, path string) (matcher, error) {
	switch m := m.(type) {
	case nil:
		return matcher{match: func(v any) bool { return v == nil }}, nil
	case bool:
		return matcher{match: func(v any) bool { b, ok := v.(bool); return ok && b == m }}, nil
	case string:
		return matcher{match: func(v any) bool { s, ok := v.(string); return ok && s == m }}, nil
	case json.Number:
		want, err := m.Float64()
		if err != nil {
			return matcher{}, errf(path, "number %s out of range", m)
		}
		return matcher{match: func(v any) bool { f, ok := number(v); return ok && f == want }}, nil
	case []any:
		return matcher{}, errf(path, "nested arrays are not allowed")
	}
	obj := m.(map[string]any)
	if len(obj) != 1 {
		return matcher{}, errf(path, "an operator object must have exactly one key, got %d", len(obj))
	}
	op := sortedKeys(obj)[0]
	arg := obj[op]
	opPath := path + "." + op
	switch op {
	case "exists":
		b, ok := arg.(bool)
		if !ok {
			return matcher{}, errf(opPath, "must be true or false")
		}
		return matcher{exists: &b}, nil
	case "prefix", "suffix":
		f, err := affix(op, arg, opPath)
		return matcher{match: str(f)}, err
	case "equals-ignore-case":
		s, ok := arg.(string)
		if !ok {
			return matcher{}, errf(opPath, "must be a string")
		}
		return matcher{match: str(func(v string) bool { return strings.EqualFold(v, s) })}, nil
	case "wildcard", "shellstyle":
		s, ok := arg.(string)
		if !ok {
			return matcher{}, errf(opPath, "must be a string")
		}
		f, err := wildcard(s, opPath)
		return matcher{match: str(f)}, err
	case "numeric":
		f, err := numeric(arg, opPath)
		return matcher{match: func(v any) bool { n, ok := number(v); return ok && f(n) }}, err
	case "cidr":
		s, ok := arg.(string)
		if !ok {
			return matcher{}, errf(opPath, "must be a string")
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return matcher{}, errf(opPath, "not a CIDR block: %v", err)
		}
		return matcher{match: str(func(v string) bool {
			a, err := netip.ParseAddr(v)
			return err == nil && pfx.Contains(a)
		})}, nil
	case "anything-but":
		f, err := anythingBut(arg, opPath)
		return matcher{match: f}, err
	}
	return matcher{}, errf(path, "unknown operator %q", op)
}

// str lifts a string test to a leaf test: other kinds do not match.
func str(f func(string) bool) func(any) bool {
	return func(v any) bool {
		s, ok := v.(string)
		return ok && f != nil && f(s)
	}
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case float64:
		return v, true
	}
	return 0, false
}

// affix compiles prefix/suffix: a string, or {"equals-ignore-case": s}.
func affix(op string, arg any, path string) (func(string) bool, error) {
	has := strings.HasPrefix
	if op == "suffix" {
		has = strings.HasSuffix
	}
	switch a := arg.(type) {
	case string:
		return func(v string) bool { return has(v, a) }, nil
	case map[string]any:
		s, ok := a["equals-ignore-case"].(string)
		if len(a) != 1 || !ok {
			return nil, errf(path, `must be a string or {"equals-ignore-case": "<string>"}`)
		}
		low := strings.ToLower(s)
		return func(v string) bool { return has(strings.ToLower(v), low) }, nil
	}
	return nil, errf(path, "must be a string")
}

// wildcard compiles a pattern where * matches any run of characters and \*
// a literal star. Like EventBridge, consecutive stars are refused.
func wildcard(s, path string) (func(string) bool, error) {
	var parts []string // literal runs between stars
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '\\'):
			cur.WriteByte(s[i+1])
			i++
		case s[i] == '*':
			if i+1 < len(s) && s[i+1] == '*' {
				return nil, errf(path, "consecutive wildcard characters are not allowed")
			}
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	parts = append(parts, cur.String())
	return func(v string) bool { return globMatch(parts, v) }, nil
}

// globMatch matches v against literal parts separated by stars: the first
// part is a prefix, the last a suffix, the others appear in order.
func globMatch(parts []string, v string) bool {
	if len(parts) == 1 {
		return v == parts[0]
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(v) < len(first)+len(last) || !strings.HasPrefix(v, first) || !strings.HasSuffix(v, last) {
		return false
	}
	mid := v[len(first) : len(v)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(mid, p)
		if i < 0 {
			return false
		}
		mid = mid[i+len(p):]
	}
	return true
}

// numeric compiles ["<", 5], [">", 0, "<=", 5], ["=", 3]: a list of
// operator/number pairs that must all hold.
func numeric(arg any, path string) (func(float64) bool, error) {
	list, ok := arg.([]any)
	if !ok || len(list) == 0 || len(list)%2 != 0 || len(list) > 4 {
		return nil, errf(path, `must be an array of one or two operator/number pairs, such as [">", 0, "<=", 5]`)
	}
	type cond struct {
		op string
		n  float64
	}
	var conds []cond
	for i := 0; i < len(list); i += 2 {
		op, ok := list[i].(string)
		if !ok {
			return nil, errf(fmt.Sprintf("%s[%d]", path, i), "must be an operator: <, <=, =, >=, >")
		}
		num, ok := list[i+1].(json.Number)
		if !ok {
			return nil, errf(fmt.Sprintf("%s[%d]", path, i+1), "must be a number")
		}
		n, err := strconv.ParseFloat(string(num), 64)
		if err != nil || math.IsInf(n, 0) {
			return nil, errf(fmt.Sprintf("%s[%d]", path, i+1), "number %s out of range", num)
		}
		switch op {
		case "<", "<=", "=", ">=", ">":
		default:
			return nil, errf(fmt.Sprintf("%s[%d]", path, i), "unknown numeric operator %q; want <, <=, =, >=, >", op)
		}
		if op == "=" && len(list) > 2 {
			return nil, errf(path, `"=" cannot be combined with another operator`)
		}
		conds = append(conds, cond{op, n})
	}
	if len(conds) == 2 {
		lowOK := conds[0].op == ">" || conds[0].op == ">="
		highOK := conds[1].op == "<" || conds[1].op == "<="
		if !lowOK || !highOK {
			return nil, errf(path, "a range must be a lower bound (>, >=) followed by an upper bound (<, <=)")
		}
		if conds[0].n > conds[1].n {
			return nil, errf(path, "the lower bound exceeds the upper bound")
		}
	}
	return func(v float64) bool {
		for _, c := range conds {
			var ok bool
			switch c.op {
			case "<":
				ok = v < c.n
			case "<=":
				ok = v <= c.n
			case "=":
				ok = v == c.n
			case ">=":
				ok = v >= c.n
			case ">":
				ok = v > c.n
			}
			if !ok {
				return false
			}
		}
		return true
	}, nil
}

// anythingBut compiles {"anything-but": x}: x is a value, a list of values
// (strings or numbers), or {"prefix"|"suffix"|"equals-ignore-case"|
// "wildcard": ...}. It matches a present leaf that the inner test refuses.
func anythingBut(arg any, path string) (func(any) bool, error) {
	var inner []func(any) bool
	switch a := arg.(type) {
	case string, json.Number:
		m, err := compileMatcher(a, path)
		if err != nil {
			return nil, err
		}
		inner = append(inner, m.match)
	case []any:
		if len(a) == 0 {
			return nil, errf(path, "must not be an empty array")
		}
		for i, e := range a {
			switch e.(type) {
			case string, json.Number:
			default:
				return nil, errf(fmt.Sprintf("%s[%d]", path, i), "must be a string or a number")
			}
			m, err := compileMatcher(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			inner = append(inner, m.match)
		}
	case map[string]any:
		if len(a) != 1 {
			return nil, errf(path, "must have exactly one operator")
		}
		op := sortedKeys(a)[0]
		switch op {
		case "prefix", "suffix", "wildcard":
		case "equals-ignore-case":
			if list, ok := a[op].([]any); ok {
				for i, e := range list {
					s, ok := e.(string)
					if !ok {
						return nil, errf(fmt.Sprintf("%s.%s[%d]", path, op, i), "must be a string")
					}
					inner = append(inner, str(func(v string) bool { return strings.EqualFold(v, s) }))
				}
				break
			}
		default:
			return nil, errf(path+"."+op, "not allowed inside anything-but")
		}
		if inner == nil {
			m, err := compileMatcher(a, path)
			if err != nil {
				return nil, err
			}
			inner = append(inner, m.match)
		}
	default:
		return nil, errf(path, "must be a string, a number, a list of them, or a prefix, suffix, equals-ignore-case or wildcard object")
	}
	return func(v any) bool {
		for _, f := range inner {
			if f(v) {
				return false
			}
		}
		return true
	}, nil
}
