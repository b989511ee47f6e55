package filters

import "github.com/cloudevents/sdk-go/v2/event"

// Value is a compiled expression that yields a value rather than a
// verdict, such as the key `data.Vm.Vm.Value` of a route's
// delivery.orderBy. It reads the same environment as a [Filter]. Create
// one with [CompileValue]; it is safe for concurrent use.
type Value struct {
	p *program
}

// CompileValue parses and type-checks src once, as [Compile] does, but
// accepts an expression of any type. It returns a *[CompileError] when src
// is empty or blank, does not parse, or calls a function that expr does
// not define.
func CompileValue(src string) (*Value, error) {
	p, err := compileProgram(src)
	if err != nil {
		return nil, err
	}
	return &Value{p: p}, nil
}

// Eval returns the value of the expression for ev: nil, a string, a bool,
// an int, a float64 (JSON numbers), a time.Time, or a map or slice from the
// event data. It returns a *[DataError] when the data claims to be JSON but
// does not decode, and a *[RuntimeError] when the expression fails.
func (v *Value) Eval(ev event.Event) (any, error) {
	if v == nil {
		return nil, &RuntimeError{Message: "expression is not compiled"}
	}
	var data any
	if v.p.usesData {
		var err error
		if data, err = decodeData(ev); err != nil {
			return nil, err
		}
	}
	return v.p.run(ev, data)
}

// String returns the source of the expression, as given to [CompileValue].
func (v *Value) String() string {
	if v == nil {
		return ""
	}
	return v.p.src
}
