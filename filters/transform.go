package filters

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
	"github.com/expr-lang/expr"
)

// Step is one step of a route's transform, as the configuration writes it
// (the route's `transform:` list). A step either drops events (Drop, alone)
// or changes them (Set and/or Remove, with an optional When guard).
type Step struct {
	// Drop is a boolean expression: when it is true the event is dropped,
	// acked without delivery and counted as filtered. No later step runs.
	Drop string `yaml:"drop"`
	// When is an optional boolean expression that guards Set and Remove:
	// they apply only when it is true. Empty: always.
	When string `yaml:"when"`
	// Set maps a target (an attribute such as type, an extension by name,
	// data, or a field of the data as data.Dotted.Path) to an expression
	// whose result becomes its value. Every expression of one Set sees the
	// event as it was before the step.
	Set map[string]string `yaml:"set"`
	// Remove lists targets to remove, after Set: optional attributes
	// (subject, time, datacontenttype, dataschema), extensions, data, or
	// fields of the data. Removing what is not there does nothing.
	Remove []string `yaml:"remove"`
}

// Transform is a compiled list of steps. Create one with
// [CompileTransform]. A Transform is safe for concurrent use; a nil
// *Transform changes nothing.
type Transform struct {
	steps []compiledStep
}

type compiledStep struct {
	drop     *program
	when     *program
	sets     []setter // sorted by target
	removes  []target
	usesData bool // an expression of the step reads data
}

// targetKind says what a Set or Remove target names.
type targetKind uint8

const (
	targetAttr      targetKind = iota // a context attribute (attr says which)
	targetExtension                   // an extension, by name
	targetData                        // the whole data
	targetDataPath                    // a field of JSON object data
)

type target struct {
	kind  targetKind
	attr  attr
	name  string   // as written: "type", "myext", "data.Vm.Name"
	path  []string // of a data field
	field string   // where it sits in the step, for errors: "set.type", "remove[1]"
}

type setter struct {
	target
	prog *program
}

// Result is what [Transform.Apply] did to one event.
type Result struct {
	// Event is the event to deliver. It is the event given to Apply, not a
	// copy, when Changed is false.
	Event event.Event
	// Changed reports that a step set or removed something. When it is
	// false the event, its data included, is byte for byte what was read.
	Changed bool
	// Dropped reports that a drop step matched; Step is its index.
	Dropped bool
	Step    int
}

// StepError is a problem with one step of a transform: from
// [CompileTransform], Err is a *[CompileError] or a plain error; from
// [Transform.Apply], a *[RuntimeError], a *[DataError] or a plain error
// saying why a result cannot be used.
type StepError struct {
	// Step is the 0-based index of the step.
	Step int
	// Field is where in the step: "drop", "when", "set.<target>",
	// "remove[<i>]", or "" for the step as a whole.
	Field string
	Err   error
}

// Path is the step's field as the configuration names it under the route,
// such as transform[1].set.type.
func (e *StepError) Path() string {
	p := fmt.Sprintf("transform[%d]", e.Step)
	if e.Field != "" {
		p += "." + e.Field
	}
	return p
}

func (e *StepError) Error() string { return e.Path() + ": " + e.Err.Error() }

func (e *StepError) Unwrap() error { return e.Err }

// attributes a Set may change, and whether they are required (so a
// Remove may not drop them).
var settable = map[string]bool{
	"type": true, "source": true, "id": true,
	"subject": false, "time": false, "datacontenttype": false, "dataschema": false,
}

// CompileTransform compiles steps once, at start-up. It returns nil, nil
// for no steps, and otherwise every problem at once, each a *[StepError]
// joined with errors.Join: an expression that does not compile (with its
// line and column), a known non-string result for a string attribute
// (`type: '1'`), a target that cannot be set (specversion) or removed
// (type, source, id), an extension name outside the CloudEvents rules
// (lower-case letters a-z and digits), targets of one step that overlap
// (data.Vm and data.Vm.Name), or a step that is not one of the two shapes.
func CompileTransform(steps []Step) (*Transform, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	t := &Transform{steps: make([]compiledStep, len(steps))}
	var errs []error
	for i, s := range steps {
		cs, err := compileStep(i, s)
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = append(errs, j.Unwrap()...)
		}
		t.steps[i] = cs
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func compileStep(i int, s Step) (compiledStep, error) {
	var cs compiledStep
	var errs []error
	fail := func(field string, err error) {
		errs = append(errs, &StepError{Step: i, Field: field, Err: err})
	}
	changes := len(s.Set) > 0 || len(s.Remove) > 0
	switch {
	case s.Drop != "" && (changes || s.When != ""):
		fail("", errors.New("a step either drops (drop alone) or changes the event (set, remove, with an optional when): split it in two"))
		return cs, errors.Join(errs...)
	case s.Drop == "" && !changes && s.When != "":
		fail("when", errors.New("guards set and remove, and the step has neither"))
		return cs, errors.Join(errs...)
	case s.Drop == "" && !changes:
		fail("", errors.New("empty step: give drop, or set and/or remove"))
		return cs, errors.Join(errs...)
	}
	if s.Drop != "" {
		p, err := compileProgram(s.Drop, expr.AsBool())
		if err != nil {
			fail("drop", err)
		}
		cs.drop = p
	}
	if s.When != "" {
		p, err := compileProgram(s.When, expr.AsBool())
		if err != nil {
			fail("when", err)
		}
		cs.when = p
	}
	names := make([]string, 0, len(s.Set))
	for name := range s.Set {
		names = append(names, name)
	}
	slices.Sort(names)
	var all []target
	for _, name := range names {
		field := "set." + name
		tg, err := parseTarget(name, field, false)
		if err != nil {
			fail(field, err)
			continue
		}
		var opts []expr.Option
		if tg.kind == targetAttr && tg.attr != attrTime {
			// Strings: expr rejects a known non-string result (`type: '1'`).
			opts = append(opts, expr.AsKind(reflect.String))
		}
		p, err := compileProgram(s.Set[name], opts...)
		if err != nil {
			fail(field, err)
			continue
		}
		if tg.kind == targetAttr && tg.attr == attrTime {
			if rt := p.prog.Node().Type(); rt.Kind() != reflect.Interface && rt.Kind() != reflect.String && rt != timeType {
				fail(field, &CompileError{Line: 1, Column: 1, Message: fmt.Sprintf("expected a time or an RFC 3339 string, but got %v", rt)})
				continue
			}
		}
		cs.sets = append(cs.sets, setter{target: tg, prog: p})
		all = append(all, tg)
	}
	for j, name := range s.Remove {
		field := fmt.Sprintf("remove[%d]", j)
		tg, err := parseTarget(name, field, true)
		if err != nil {
			fail(field, err)
			continue
		}
		cs.removes = append(cs.removes, tg)
		all = append(all, tg)
	}
	for a := range all {
		for b := a + 1; b < len(all); b++ {
			if overlaps(all[a], all[b]) {
				fail(all[b].field, fmt.Errorf("%s overlaps %s of the same step (%s): use two steps", all[b].name, all[a].field, all[a].name))
			}
		}
	}
	for _, p := range []*program{cs.drop, cs.when} {
		cs.usesData = cs.usesData || (p != nil && p.usesData)
	}
	for _, st := range cs.sets {
		cs.usesData = cs.usesData || st.prog.usesData
	}
	return cs, errors.Join(errs...)
}

var timeType = reflect.TypeOf(time.Time{})

// parseTarget reads the name of a Set or Remove target.
func parseTarget(name, field string, remove bool) (target, error) {
	tg := target{name: name, field: field}
	if name == "data" {
		tg.kind = targetData
		return tg, nil
	}
	if rest, ok := strings.CutPrefix(name, "data."); ok {
		tg.kind = targetDataPath
		tg.path = strings.Split(rest, ".")
		if slices.Contains(tg.path, "") {
			return tg, fmt.Errorf("%q: a data path has an empty part", name)
		}
		return tg, nil
	}
	if name == "specversion" {
		return tg, errors.New("specversion cannot be changed")
	}
	if required, ok := settable[name]; ok {
		if remove && required {
			return tg, fmt.Errorf("%s is a required attribute and cannot be removed", name)
		}
		tg.kind, tg.attr = targetAttr, attributes[name]
		return tg, nil
	}
	if !validExtensionName(name) {
		return tg, fmt.Errorf("%q is neither an attribute, data nor data.<field>, nor a valid extension name (CloudEvents: lower-case letters a-z and digits only)", name)
	}
	tg.kind = targetExtension
	return tg, nil
}

func validExtensionName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// overlaps reports whether two targets of one step touch the same thing.
func overlaps(a, b target) bool {
	switch {
	case a.kind == targetData && (b.kind == targetData || b.kind == targetDataPath),
		b.kind == targetData && a.kind == targetDataPath:
		return true
	case a.kind == targetDataPath && b.kind == targetDataPath:
		n := min(len(a.path), len(b.path))
		return slices.Equal(a.path[:n], b.path[:n])
	}
	return a.kind == b.kind && a.name == b.name
}

// Apply runs the steps in order on ev, each on the event as the previous
// steps left it, and returns the result. ev itself is never modified: the
// first step that changes something works on a copy. Data that no step
// touches keeps its exact bytes; data a step changes is encoded again as
// compact JSON (object members sorted by name, numbers kept as written).
//
// A step that fails returns a *[StepError]; the event is then to be
// dead-lettered, as a retry would fail the same way. It wraps a
// *[DataError] when the data claims to be JSON but does not decode (the
// payload is at fault), a *[RuntimeError] when an expression fails, or a
// plain error when a result cannot be used: a non-string or empty type,
// source or id, an extension value that is not a string, boolean, 32-bit
// integer or time, a data field set on data that is not a JSON object.
// Apply is safe for concurrent use.
func (t *Transform) Apply(ev event.Event) (Result, error) {
	res := Result{Event: ev}
	if t == nil {
		return res, nil
	}
	cur := ev
	var data any // cur's data as expressions see it, once decoded
	decoded := false
	for i := range t.steps {
		s := &t.steps[i]
		if s.usesData && !decoded {
			d, err := decodeData(cur)
			if err != nil {
				return Result{Event: ev}, &StepError{Step: i, Err: err}
			}
			data, decoded = d, true
		}
		if s.drop != nil {
			ok, err := s.drop.runBool(cur, data)
			if err != nil {
				return Result{Event: ev}, &StepError{Step: i, Field: "drop", Err: err}
			}
			if ok {
				return Result{Event: ev, Dropped: true, Step: i}, nil
			}
			continue
		}
		if s.when != nil {
			ok, err := s.when.runBool(cur, data)
			if err != nil {
				return Result{Event: ev}, &StepError{Step: i, Field: "when", Err: err}
			}
			if !ok {
				continue
			}
		}
		vals := make([]any, len(s.sets))
		for j, st := range s.sets {
			v, err := st.prog.run(cur, data)
			if err != nil {
				return Result{Event: ev}, &StepError{Step: i, Field: st.field, Err: err}
			}
			vals[j] = v
		}
		if !res.Changed {
			cur = ev.Clone()
			res.Changed = true
		}
		c := change{ev: &cur}
		for j, st := range s.sets {
			if err := c.set(st.target, vals[j]); err != nil {
				return Result{Event: ev}, &StepError{Step: i, Field: st.field, Err: err}
			}
		}
		for _, tg := range s.removes {
			if err := c.remove(tg); err != nil {
				return Result{Event: ev}, &StepError{Step: i, Field: tg.field, Err: err}
			}
		}
		if err := c.finish(); err != nil {
			return Result{Event: ev}, &StepError{Step: i, Err: err}
		}
		if c.dataTouched || c.typeTouched {
			decoded = false
		}
	}
	res.Event = cur
	return res, nil
}

// change applies the sets and removes of one step to an event.
type change struct {
	ev          *event.Event
	tree        map[string]any // the JSON object data, once decoded for a field change
	dataTouched bool           // tree or the data bytes changed
	typeTouched bool           // datacontenttype changed
}

func (c *change) set(tg target, v any) error {
	ec := c.ev.Context
	switch tg.kind {
	case targetExtension:
		ext, err := extensionOf(v)
		if err != nil {
			return err
		}
		if err := ec.SetExtension(tg.name, ext); err != nil {
			return fmt.Errorf("extension %s: %w", tg.name, err)
		}
		return nil
	case targetData:
		if err := c.flushTree(); err != nil {
			return err
		}
		if v == nil {
			c.ev.DataEncoded, c.ev.DataBase64 = nil, false
			c.dataTouched = true
			return nil
		}
		if ct := c.ev.DataContentType(); !isJSON(ct) {
			return fmt.Errorf("the data is %s, not JSON: set datacontenttype to application/json in an earlier step first", ct)
		}
		b, err := encodeJSON(v)
		if err != nil {
			return err
		}
		c.ev.DataEncoded, c.ev.DataBase64 = b, false
		c.dataTouched = true
		return nil
	case targetDataPath:
		obj, err := c.object(true)
		if err != nil {
			return err
		}
		for _, k := range tg.path[:len(tg.path)-1] {
			next, ok := obj[k]
			if !ok {
				m := map[string]any{}
				obj[k] = m
				obj = m
				continue
			}
			if obj, ok = next.(map[string]any); !ok {
				return fmt.Errorf("cannot set %s: %s is %s, not an object", tg.name, k, jsonKind(next))
			}
		}
		jv, err := jsonValue(v)
		if err != nil {
			return err
		}
		obj[tg.path[len(tg.path)-1]] = jv
		c.dataTouched = true
		return nil
	}

	if tg.attr == attrTime {
		var t time.Time
		switch v := v.(type) {
		case nil:
		case time.Time:
			t = v
		case string:
			var err error
			if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return fmt.Errorf("time must be a time or an RFC 3339 string: %w", err)
			}
		default:
			return fmt.Errorf("time must be a time or an RFC 3339 string, got %T", v)
		}
		return ec.SetTime(t)
	}
	s, ok := v.(string)
	if !ok && v != nil {
		return fmt.Errorf("%s must be a string, got %T", tg.name, v)
	}
	s = strings.TrimSpace(s)
	switch tg.attr {
	case attrType:
		if s == "" {
			return errors.New("type must be a non-empty string")
		}
		return ec.SetType(s)
	case attrID:
		if s == "" {
			return errors.New("id must be a non-empty string")
		}
		return ec.SetID(s)
	case attrSource:
		if s == "" {
			return errors.New("source must be a non-empty string")
		}
		if err := ec.SetSource(s); err != nil {
			return fmt.Errorf("source must be a URI reference: %w", err)
		}
		return nil
	case attrSubject:
		return ec.SetSubject(s)
	case attrDataSchema:
		if err := ec.SetDataSchema(s); err != nil {
			return fmt.Errorf("dataschema must be a URI: %w", err)
		}
		return nil
	case attrDataContentType:
		if err := c.flushTree(); err != nil {
			return err
		}
		c.typeTouched = true
		return ec.SetDataContentType(s)
	}
	return fmt.Errorf("%s cannot be set", tg.name)
}

func (c *change) remove(tg target) error {
	ec := c.ev.Context
	switch tg.kind {
	case targetExtension:
		return ec.SetExtension(tg.name, nil)
	case targetData:
		c.tree = nil
		c.ev.DataEncoded, c.ev.DataBase64 = nil, false
		c.dataTouched = true
		return nil
	case targetDataPath:
		obj, err := c.object(false)
		if err != nil || obj == nil {
			return err
		}
		for _, k := range tg.path[:len(tg.path)-1] {
			next, ok := obj[k].(map[string]any)
			if !ok {
				return nil // not there
			}
			obj = next
		}
		last := tg.path[len(tg.path)-1]
		if _, ok := obj[last]; ok {
			delete(obj, last)
			c.dataTouched = true
		}
		return nil
	}
	switch tg.attr {
	case attrSubject:
		return ec.SetSubject("")
	case attrTime:
		return ec.SetTime(time.Time{})
	case attrDataSchema:
		return ec.SetDataSchema("")
	case attrDataContentType:
		if err := c.flushTree(); err != nil {
			return err
		}
		c.typeTouched = true
		return ec.SetDataContentType("")
	}
	return fmt.Errorf("%s cannot be removed", tg.name)
}

// object returns the data as a JSON object to change, decoding it on first
// use with numbers kept as written. With create, an event without data
// gets an empty object (and datacontenttype application/json when it had
// none); without, it gives nil, as does data that is not JSON.
func (c *change) object(create bool) (map[string]any, error) {
	if c.tree != nil {
		return c.tree, nil
	}
	ct := c.ev.DataContentType()
	if len(c.ev.Data()) == 0 {
		if !create {
			return nil, nil
		}
		if !isJSON(ct) {
			return nil, fmt.Errorf("the event has no data and datacontenttype %s, not JSON", ct)
		}
		if ct == "" {
			_ = c.ev.Context.SetDataContentType(event.ApplicationJSON)
		}
		c.tree = map[string]any{}
		return c.tree, nil
	}
	if !isJSON(ct) {
		if !create {
			return nil, nil
		}
		return nil, fmt.Errorf("the data is %s, not a JSON object", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(c.ev.Data()))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &DataError{ContentType: ct, Err: err}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if !create {
			return nil, nil
		}
		return nil, fmt.Errorf("the data is %s, not an object", jsonKind(v))
	}
	c.tree = obj
	return obj, nil
}

// flushTree encodes the changed object back into the event's data.
func (c *change) flushTree() error {
	if c.tree == nil {
		return nil
	}
	b, err := encodeJSON(c.tree)
	if err != nil {
		return err
	}
	c.tree = nil
	c.ev.DataEncoded, c.ev.DataBase64 = b, false
	return nil
}

// finish writes the data back and checks that the event can be encoded:
// JSON data under a JSON content type must be valid JSON.
func (c *change) finish() error {
	if err := c.flushTree(); err != nil {
		return err
	}
	if c.typeTouched && !c.ev.DataBase64 && len(c.ev.Data()) > 0 && isJSON(c.ev.DataContentType()) && !json.Valid(c.ev.Data()) {
		return fmt.Errorf("datacontenttype %q says JSON, but the data is not JSON", c.ev.DataContentType())
	}
	return nil
}

// encodeJSON encodes v compactly, without escaping <, > and &.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode data as json: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// jsonValue checks that an expression's result can go into JSON data.
func jsonValue(v any) (any, error) {
	if _, err := encodeJSON(v); err != nil {
		return nil, fmt.Errorf("the value (%T) cannot be written as JSON: %w", v, err)
	}
	return v, nil
}

// extensionOf converts an expression's result to a CloudEvents extension
// value; nil removes the extension.
func extensionOf(v any) (any, error) {
	switch v := v.(type) {
	case nil, string, bool:
		return v, nil
	case int:
		if int64(v) == int64(int32(v)) {
			return int32(v), nil
		}
	case float64:
		if v == float64(int32(v)) {
			return int32(v), nil
		}
	case time.Time:
		return cetypes.Timestamp{Time: v}, nil
	}
	return nil, fmt.Errorf("an extension value must be a string, a boolean, a 32-bit integer or a time, got %T (%v)", v, v)
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}
