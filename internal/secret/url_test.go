package secret

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{name: "no credentials", raw: "nats://host:4222", want: "nats://host:4222"},
		{name: "user and password", raw: "nats://u:pw@host:4222", want: "nats://[redacted]@host:4222"},
		{name: "bad port", raw: "nats://u:pw@host:x", want: "nats://[redacted]@host:x"},
		{name: "bad escape", raw: "https://u:p%zz@host/path?q=1", want: "https://[redacted]@host/path?q=1"},
		{name: "no scheme", raw: "u:pw@host", want: "[redacted]@host"},
		{name: "at sign in password", raw: "nats://u:p@w@host", want: "nats://[redacted]@host"},
		{name: "at sign in path only", raw: "https://host/a@b", want: "https://host/a@b"},
		{name: "empty", raw: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURL(tt.raw); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}
