// Package names checks the names an operator gives to routes and sources.
// A name becomes a subject token (`vmware.vcenter.<source>.…`,
// `vrelay.dlq.<route>`), a durable consumer name, a checkpoint key and a
// metrics label, so it may hold only ASCII letters, digits, '-' and '_',
// 1 to [MaxLen] of them.
//
//	if err := names.Check(route); err != nil {
//		return cfgerr.New("name", err.Error())
//	}
package names

import "fmt"

// MaxLen is the longest name allowed, in bytes.
const MaxLen = 64

// Valid reports whether name is a valid name.
func Valid(name string) bool {
	if name == "" || len(name) > MaxLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !allowed(name[i]) {
			return false
		}
	}
	return true
}

// Check returns nil for a valid name, or an error saying what is wrong with
// it; the message quotes the name, so callers need not repeat it.
func Check(name string) error {
	if name == "" {
		return fmt.Errorf("empty name: use 1 to %d letters, digits, '-' or '_'", MaxLen)
	}
	for _, r := range name {
		if r > 0x7f || !allowed(byte(r)) {
			return fmt.Errorf("%q contains %q: use only letters, digits, '-' and '_'", name, r)
		}
	}
	if len(name) > MaxLen {
		return fmt.Errorf("%q is %d characters long, more than %d", name, len(name), MaxLen)
	}
	return nil
}

func allowed(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
