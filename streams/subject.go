package streams

import (
	"strings"
	"unicode"
)

// DefaultRoot is the first token of every event subject.
const DefaultRoot = "vmware"

// Token turns s into one valid subject token: '.', '*', '>' and white space
// become '_', and an empty string becomes "_". The CloudEvent keeps the real
// value; the subject only has to be usable by `nats sub`.
func Token(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for _, r := range s {
		if bad(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if bad(r) {
			b.WriteByte('_')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func bad(r rune) bool {
	return r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || r == 0
}

// Subject returns `<root>.<provider>.<source>.<type>` with every token
// sanitised by [Token].
func Subject(root, provider, source, typ string) string {
	return root + "." + Token(provider) + "." + Token(source) + "." + Token(typ)
}

// DLQSubject returns the dead-letter subject of a route, `vrelay.dlq.<route>`.
func DLQSubject(route string) string { return DLQPrefix + Token(route) }

// DLQPrefix is the subject prefix of the dead-letter stream.
const DLQPrefix = "vrelay.dlq."
