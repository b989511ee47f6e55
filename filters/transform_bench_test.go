package filters

import "testing"

// BenchmarkTransformApply measures the Direktiv example on the event it
// renames (a copy of the event, data untouched) and on one it passes.
func BenchmarkTransformApply(b *testing.B) {
	tr := mustTransform(b, direktivSteps...)
	for _, bb := range []struct {
		name string
		typ  string
	}{
		{"rename", "UserLogoutSessionEvent"},
		{"pass", "VmPoweredOnEvent"},
	} {
		ev := sessionEvent(b, bb.typ)
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Apply(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("set-data-field", func(b *testing.B) {
		tr := mustTransform(b, Step{Set: map[string]string{"data.reason": `"logout"`}})
		ev := sessionEvent(b, "UserLogoutSessionEvent")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tr.Apply(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
