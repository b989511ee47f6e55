// Package secret resolves credentials that a configuration names but never
// holds: a secret comes from an environment variable or from a mounted file
// (a Kubernetes Secret volume), never from the YAML itself.
//
//	password:
//	  fromEnv: VCENTER_PASSWORD     # or
//	  fromFile: /var/run/secrets/vcenter/password
//
// A [Ref] prints as "[redacted]" through fmt and log/slog, so passing one to a
// logger by mistake does not leak it.
package secret

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/vrelay/vrelay/internal/cfgerr"
)

// Ref names where a secret lives. Exactly one field is set.
type Ref struct {
	// FromEnv is the name of an environment variable holding the secret.
	FromEnv string `yaml:"fromEnv"`
	// FromFile is the path of a file holding the secret; one trailing newline
	// is removed. The file is read at start-up.
	FromFile string `yaml:"fromFile"`
}

// IsZero reports whether the reference names nothing.
func (r Ref) IsZero() bool { return r.FromEnv == "" && r.FromFile == "" }

// Validate checks that exactly one source is named. It does not read it.
func (r Ref) Validate() error {
	if r.FromEnv != "" && r.FromFile != "" {
		return cfgerr.New("", "set fromEnv or fromFile, not both")
	}
	return nil
}

// Resolve reads the secret. An empty secret is an error: it is almost always
// an unset variable or an empty file, and failing at start-up beats failing
// at the first login.
func (r Ref) Resolve() (string, error) {
	switch {
	case r.FromEnv != "":
		v, ok := os.LookupEnv(r.FromEnv)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", r.FromEnv)
		}
		if v == "" {
			return "", fmt.Errorf("environment variable %s is empty", r.FromEnv)
		}
		return v, nil
	case r.FromFile != "":
		b, err := os.ReadFile(r.FromFile)
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", r.FromFile)
		}
		return v, nil
	default:
		return "", errors.New("no secret configured")
	}
}

// String never shows the secret, only where it comes from.
func (r Ref) String() string {
	switch {
	case r.FromEnv != "":
		return "[redacted env:" + r.FromEnv + "]"
	case r.FromFile != "":
		return "[redacted file:" + r.FromFile + "]"
	}
	return "[unset]"
}

// LogValue implements slog.LogValuer.
func (r Ref) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Value is a resolved secret. It prints as "[redacted]".
type Value string

func (Value) String() string               { return "[redacted]" }
func (Value) GoString() string             { return "[redacted]" }
func (Value) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (Value) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// Reveal returns the secret itself, for the one call that needs it.
func (v Value) Reveal() string { return string(v) }
