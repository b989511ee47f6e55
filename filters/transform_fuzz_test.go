package filters

import (
	"errors"
	"testing"
)

// FuzzTransformCompile checks that compiling arbitrary step expressions
// and targets never panics, that every compile error is a *StepError that
// names its step, and that expression errors carry a position.
func FuzzTransformCompile(f *testing.F) {
	f.Add(`type == "com.vmware.vsphere.UserLoginSessionEvent.v0"`, `"vmware-logout"`, "type")
	f.Add(`data.Vm?.Name startsWith "prod-"`, `data.Vm.Name`, "data.VmName")
	f.Add(`type ==`, `1`, "type")
	f.Add(`isProd(x)`, `{"a": [1, 2]}`, "data")
	f.Add("", `date("2024-01-01T00:00:00Z")`, "time")
	f.Add(`true`, `"x"`, "MyExt")
	f.Add(`$env.type`, `let x = 1; x + 1`, "data..x")
	ev := sessionEvent(f, "UserLogoutSessionEvent")
	f.Fuzz(func(t *testing.T, cond, value, target string) {
		steps := []Step{
			{Drop: cond},
			{When: cond, Set: map[string]string{target: value}, Remove: []string{target + "x"}},
		}
		tr, err := CompileTransform(steps)
		if err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var se *StepError
				if !errors.As(e, &se) {
					t.Fatalf("compile error %q is %T, want *StepError", e, e)
				}
				if se.Step < 0 || se.Step > 1 {
					t.Fatalf("error %q names step %d", e, se.Step)
				}
				var ce *CompileError
				if errors.As(e, &ce) && (ce.Line < 1 || ce.Column < 1) {
					t.Fatalf("compile error %q has no position (line %d, column %d)", e, ce.Line, ce.Column)
				}
			}
			return
		}
		// What compiles must run without panicking, and fail only with a *StepError.
		if _, err := tr.Apply(ev); err != nil {
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("Apply error %q is %T, want *StepError", err, err)
			}
		}
	})
}
