package names

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error; "" for a valid name
	}{
		{name: "letters and digits", in: "vc01"},
		{name: "dash and underscore", in: "vm-on_prod"},
		{name: "one character", in: "a"},
		{name: "64 characters", in: strings.Repeat("x", 64)},
		{name: "empty", in: "", want: "empty name"},
		{name: "65 characters", in: strings.Repeat("x", 65), want: "is 65 characters long, more than 64"},
		{name: "dot", in: "vc.01", want: `"vc.01" contains '.'`},
		{name: "wildcard", in: "a*", want: `contains '*'`},
		{name: "space", in: "a b", want: `contains ' '`},
		{name: "non-ASCII letter", in: "vcé", want: `contains 'é'`},
		{name: "too long and a bad character", in: strings.Repeat("x", 70) + ".", want: `contains '.'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.in)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check(%q): got %v, want nil", tt.in, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check(%q): got %v, want an error containing %q", tt.in, err, tt.want)
			}
			if got, want := Valid(tt.in), tt.want == ""; got != want {
				t.Errorf("Valid(%q): got %v, want %v", tt.in, got, want)
			}
		})
	}
}
