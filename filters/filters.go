package filters

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
)

// attr says where the value of a name in the environment comes from.
type attr uint8

const (
	attrExtension attr = iota
	attrType
	attrSource
	attrSubject
	attrID
	attrSpecVersion
	attrDataContentType
	attrDataSchema
	attrTime
	attrData
	attrExt
)

// attributes maps the names of the CloudEvent context attributes, and data,
// to where their values come from. Every other name is an extension.
var attributes = map[string]attr{
	"type":            attrType,
	"source":          attrSource,
	"subject":         attrSubject,
	"id":              attrID,
	"specversion":     attrSpecVersion,
	"datacontenttype": attrDataContentType,
	"dataschema":      attrDataSchema,
	"time":            attrTime,
	"data":            attrData,
	"ext":             attrExt,
}

// envTypes declares the types of the known names, so that expr rejects
// `type == 1` or `time startsWith "x"` at compile time. Extensions are not
// declared: expr.AllowUndefinedVariables lets them through with type any, and
// they are looked up by name in the run-time map.
//
// We use a map, not the Env struct STYLE.md mentions, because a struct
// cannot resolve an extension by a name that is only known at run time.
var envTypes = types.Map{
	"type":            types.String,
	"source":          types.String,
	"subject":         types.String,
	"id":              types.String,
	"specversion":     types.String,
	"datacontenttype": types.String,
	"dataschema":      types.String,
	"time":            types.TypeOf(time.Time{}),
	"data":            types.Any,
	"ext":             types.Any,
}

// binding is one name that the expression reads and where its value comes from.
type binding struct {
	name string
	attr attr
}

// Filter is a compiled filter expression. Create one with [Compile]. A Filter
// is safe for concurrent use by multiple goroutines.
type Filter struct {
	p *program
}

// program is one compiled expression of the environment, a filter's or a
// transform step's, with what running it needs.
type program struct {
	src  string
	prog *vm.Program

	// bindings lists the names the expression reads, so that run sets only
	// those. When all is true the expression uses $env, and run sets every
	// attribute and every extension instead.
	bindings []binding
	all      bool
	usesData bool
	// paths, if not nil, are the only parts of data the expression reads
	// (see datapath.go): a filter decodes only those.
	paths *pathNode

	// pool holds *state values: a reusable VM and environment map.
	pool sync.Pool
}

// state is what one run needs and a later one can reuse.
type state struct {
	vm      vm.VM
	env     map[string]any
	partial partial
}

// Compile parses and type-checks src once. It returns a *[CompileError] when
// src is empty, does not parse, is not boolean (for example plain `type`),
// compares values of mismatched known types (`type == 1`), or calls a
// function that expr does not define.
func Compile(src string) (*Filter, error) {
	p, err := compileProgram(src, expr.AsBool())
	if err != nil {
		return nil, err
	}
	return &Filter{p: p}, nil
}

// compileProgram compiles src in the event environment with the extra
// options opts, and finds the names it reads.
func compileProgram(src string, opts ...expr.Option) (*program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &CompileError{Line: 1, Column: 1, Message: "empty expression"}
	}
	prog, err := expr.Compile(src, append([]expr.Option{
		expr.Env(envTypes),
		expr.AllowUndefinedVariables(),
	}, opts...)...)
	if err != nil {
		return nil, newCompileError(src, err)
	}

	v := &visitor{names: make(map[string]struct{})}
	root := prog.Node()
	ast.Walk(&root, v)
	if v.unknown != nil {
		fe := &file.Error{
			Location: v.unknown.Location(),
			Message:  fmt.Sprintf("unknown function %s", v.unknown.Value),
		}
		return nil, newCompileError(src, fe.Bind(prog.Source()))
	}

	p := &program{src: src, prog: prog, all: v.env}
	if p.all {
		p.usesData = true
		for name, a := range attributes {
			p.bindings = append(p.bindings, binding{name: name, attr: a})
		}
	} else {
		for name := range v.names {
			a := attributes[name] // attrExtension when absent
			if a == attrData {
				p.usesData = true
			}
			p.bindings = append(p.bindings, binding{name: name, attr: a})
		}
	}
	slices.SortFunc(p.bindings, func(a, b binding) int { return strings.Compare(a.name, b.name) })
	if p.usesData && !p.all {
		p.paths = dataPaths(root)
	}

	size := len(p.bindings)
	p.pool.New = func() any {
		return &state{env: make(map[string]any, size)}
	}
	return p, nil
}

// visitor collects what Compile needs to know about a compiled expression.
type visitor struct {
	names   map[string]struct{} // identifiers the expression reads
	env     bool                // the expression uses $env
	unknown *ast.IdentifierNode // the first call of an unknown function
}

func (v *visitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "$env" {
			v.env = true
			return
		}
		// A name bound by `let` lands here too. Looking it up in the event
		// costs a little and is harmless: the local variable shadows it.
		v.names[n.Value] = struct{}{}
	case *ast.CallNode:
		// With undefined variables allowed, expr compiles foo(x) and only
		// fails at run time with "cannot call nil", so catch it here.
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		if _, ok := builtin.Index[id.Value]; ok {
			return
		}
		if v.unknown == nil || id.Location().From < v.unknown.Location().From {
			v.unknown = id
		}
	}
}

// Match reports whether ev satisfies the filter. It decodes the event data
// only when [Filter.UsesData] is true, and at most once per call.
//
// When the data claims to be JSON but does not decode, Match returns false and
// a *[DataError]. When the expression fails at run time, for example on
// data.Ds.Name where data.Ds is null, Match returns false and a
// *[RuntimeError]. Callers treat both as "no match"; neither can succeed on a
// retry. Match is safe for concurrent use.
func (f *Filter) Match(ev event.Event) (bool, error) {
	if f == nil || f.p == nil {
		return false, &RuntimeError{Message: "filter is not compiled"}
	}
	return f.p.match(ev)
}

// match runs a filter on ev in a pooled state. Its result is a bool, so
// nothing of the run outlives it: the data paths decode into the state's
// storage, and the strings of the environment are boxed in it (see
// partial), which put resets.
func (p *program) match(ev event.Event) (bool, error) {
	st := p.pool.Get().(*state)
	defer p.put(st)
	var data any
	switch {
	case p.paths != nil:
		b := ev.Data()
		if len(b) == 0 {
			break
		}
		ct := ev.DataContentType()
		if !isJSON(ct) {
			data = string(b)
			break
		}
		var ok bool
		if data, ok = st.partial.decode(b, p.paths); !ok {
			// Not valid JSON: let encoding/json say why, as a full
			// decode does.
			var v any
			err := json.Unmarshal(b, &v)
			if err == nil {
				err = errors.New("invalid json")
			}
			return false, &DataError{ContentType: ct, Err: err}
		}
	case p.usesData:
		var err error
		if data, err = decodeData(ev); err != nil {
			return false, err
		}
	}
	out, err := p.runState(st, ev, data, true)
	if err != nil {
		return false, err
	}
	ok, isBool := out.(bool)
	if !isBool {
		return false, &RuntimeError{Message: fmt.Sprintf("expression returned %T, want bool", out)}
	}
	return ok, nil
}

// runBool runs a boolean expression.
func (p *program) runBool(ev event.Event, data any) (bool, error) {
	out, err := p.run(ev, data)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, &RuntimeError{Message: fmt.Sprintf("expression returned %T, want bool", out)}
	}
	return b, nil
}

// run evaluates the expression on ev, whose data decoded is data (unused
// unless p.usesData). Errors are *RuntimeError.
func (p *program) run(ev event.Event, data any) (any, error) {
	st := p.pool.Get().(*state)
	defer p.put(st)
	return p.runState(st, ev, data, false)
}

// runState is run on the state st. With boxed set, the string attributes
// are boxed in st (see match), for a run whose result keeps none of them.
func (p *program) runState(st *state, ev event.Event, data any, boxed bool) (any, error) {
	env := st.env
	box := func(s string) any {
		if boxed {
			return st.partial.str(s)
		}
		return s
	}
	if p.all {
		// Extensions first, so that an attribute always wins a name clash.
		for name, v := range ev.Extensions() {
			env[name] = extensionValue(v)
		}
	}
	for _, b := range p.bindings {
		switch b.attr {
		case attrExtension:
			if v, ok := extension(ev, b.name); ok {
				env[b.name] = extensionValue(v)
			}
		case attrType:
			env[b.name] = box(ev.Type())
		case attrSource:
			env[b.name] = box(ev.Source())
		case attrSubject:
			env[b.name] = box(ev.Subject())
		case attrID:
			env[b.name] = box(ev.ID())
		case attrSpecVersion:
			env[b.name] = box(ev.SpecVersion())
		case attrDataContentType:
			env[b.name] = box(ev.DataContentType())
		case attrDataSchema:
			env[b.name] = box(ev.DataSchema())
		case attrTime:
			env[b.name] = ev.Time()
		case attrData:
			env[b.name] = data
		case attrExt:
			env[b.name] = extensions(ev)
		}
	}

	out, err := st.vm.Run(p.prog, env)
	if err != nil {
		return nil, newRuntimeError(err)
	}
	return out, nil
}

// put clears st, so that the pool pins no event or payload, and returns it.
func (p *program) put(st *state) {
	clear(st.env)
	st.partial.reset()
	clear(st.vm.Stack[:cap(st.vm.Stack)])
	clear(st.vm.Scopes[:cap(st.vm.Scopes)])
	clear(st.vm.Variables)
	p.pool.Put(st)
}

// UsesData reports whether the expression reads data. When it does not,
// [Filter.Match] looks at the context attributes only and never decodes the
// payload, which keeps header-only filters cheap.
func (f *Filter) UsesData() bool {
	return f != nil && f.p != nil && f.p.usesData
}

// Reads returns the names of the event environment the expression reads,
// sorted: context attributes ("type", "source", ...), "data", "ext" and
// extension names. all is true when the expression uses $env and so may
// read any of them. A caller that can supply some attributes more cheaply
// than by decoding the whole event (the Ce-* headers of a stored message)
// uses it to decide whether those suffice.
func (f *Filter) Reads() (names []string, all bool) {
	if f == nil || f.p == nil {
		return nil, false
	}
	if f.p.all {
		return nil, true
	}
	names = make([]string, len(f.p.bindings))
	for i, b := range f.p.bindings {
		names[i] = b.name
	}
	return names, false
}

// String returns the source of the expression, as given to [Compile].
func (f *Filter) String() string {
	if f == nil || f.p == nil {
		return ""
	}
	return f.p.src
}

// extension returns the extension called name without copying the extension
// map, which ev.Extensions() does on every call.
func extension(ev event.Event, name string) (any, bool) {
	var v any
	var ok bool
	switch ec := ev.Context.(type) {
	case nil:
	case *event.EventContextV1:
		v, ok = ec.Extensions[name]
	case *event.EventContextV03:
		v, ok = ec.Extensions[name]
	default:
		v, ok = ev.Extensions()[name]
	}
	return v, ok
}

// extensions returns every extension as an expression sees it, for the
// name ext: ext.vmtags is the same value as vmtags, and nil when absent.
func extensions(ev event.Event) map[string]any {
	m := make(map[string]any)
	var exts map[string]any
	switch ec := ev.Context.(type) {
	case nil:
	case *event.EventContextV1:
		exts = ec.Extensions
	case *event.EventContextV03:
		exts = ec.Extensions
	default:
		exts = ev.Extensions()
	}
	for name, v := range exts {
		m[name] = extensionValue(v)
	}
	return m
}

// extensionValue turns a CloudEvents extension value into the Go value an
// expression sees: strings and booleans as they are, integers as int,
// timestamps as time.Time, and URIs and binary values in their canonical
// string form.
func extensionValue(v any) any {
	switch v := v.(type) {
	case string, bool, time.Time:
		return v
	case int32:
		return int(v)
	case cetypes.Timestamp:
		return v.Time
	case *cetypes.Timestamp:
		if v == nil {
			return nil
		}
		return v.Time
	}
	s, err := cetypes.Format(v)
	if err != nil {
		return v
	}
	return s
}

// decodeData returns the event data as an expression sees it: nil when there
// is none, decoded JSON when the content type is JSON, a string otherwise.
func decodeData(ev event.Event) (any, error) {
	b := ev.Data()
	if len(b) == 0 {
		return nil, nil
	}
	ct := ev.DataContentType()
	if !isJSON(ct) {
		return string(b), nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, &DataError{ContentType: ct, Err: err}
	}
	return v, nil
}

// isJSON reports whether the content type ct says JSON. An absent content
// type means JSON in CloudEvents' structured mode.
func isJSON(ct string) bool {
	if ct == "" || ct == "application/json" { // what vrelay's sources write
		return true
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// CompileError is returned by [Compile] when an expression is not valid.
type CompileError struct {
	// Line is the 1-based line of the error in the expression.
	Line int
	// Column is the 1-based column of the error in Line, counted in
	// characters (runes), as expr displays it in its own messages. An error
	// about the whole expression, such as a non-boolean result, points at
	// line 1, column 1.
	Column int
	// Message says what is wrong, without position or snippet.
	Message string
	// Snippet is expr's excerpt of the offending line with a caret under the
	// column, starting with a newline; it is empty when there is no line to show.
	Snippet string
}

func (e *CompileError) Error() string {
	return positioned(e.Line, e.Column, e.Message)
}

// newCompileError converts an error from expr. When expr gives no position,
// as for "expected bool, but got string", the error concerns the whole
// expression, so it points at the start of src.
func newCompileError(src string, err error) *CompileError {
	var fe *file.Error
	if !errors.As(err, &fe) {
		fe = &file.Error{Message: err.Error()}
	}
	if fe.Line == 0 {
		fe = (&file.Error{Message: fe.Message}).Bind(file.NewSource(src))
	}
	return &CompileError{
		Line:    fe.Line,
		Column:  fe.Column + 1,
		Message: fe.Message,
		Snippet: fe.Snippet,
	}
}

// RuntimeError is returned by [Filter.Match] when the expression fails while
// it runs, for example on member access on nil (data.Ds.Name where data.Ds is
// null: use data.Ds?.Name to get nil instead) or on operands of the wrong type.
type RuntimeError struct {
	// Line and Column give the 1-based position of the failing operation, as
	// in [CompileError]. They are 0 when there is no position.
	Line, Column int
	// Message says what went wrong.
	Message string
	// Err is the cause reported by expr, or nil.
	Err error
}

func (e *RuntimeError) Error() string {
	return positioned(e.Line, e.Column, e.Message)
}

func (e *RuntimeError) Unwrap() error {
	return e.Err
}

func newRuntimeError(err error) *RuntimeError {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &RuntimeError{Message: err.Error(), Err: err}
	}
	re := &RuntimeError{Message: fe.Message, Err: err}
	if fe.Line > 0 {
		re.Line, re.Column = fe.Line, fe.Column+1
	}
	return re
}

// DataError is returned by [Filter.Match] when the event data claims to be
// JSON (datacontenttype absent, application/json, text/json or any +json) but
// does not decode. It is not a [RuntimeError]: the payload is at fault, not
// the expression.
type DataError struct {
	// ContentType is the event's datacontenttype, "" when absent.
	ContentType string
	// Err is the error from encoding/json.
	Err error
}

func (e *DataError) Error() string {
	return fmt.Sprintf("decode event data as json (datacontenttype %q): %v", e.ContentType, e.Err)
}

func (e *DataError) Unwrap() error {
	return e.Err
}

func positioned(line, column int, msg string) string {
	if line == 0 {
		return msg
	}
	return fmt.Sprintf("line %d, column %d: %s", line, column, msg)
}
