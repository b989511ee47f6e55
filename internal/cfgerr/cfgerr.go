// Package cfgerr carries configuration problems with the path of the field
// they concern, so that a message can say "routes[2].sink.http.url: not an
// absolute URL" however deep the component that found it.
//
// A component's Validate returns [New] errors named after its own fields,
// joined with errors.Join; whoever embeds that component calls [Prefix] with
// the path under which it sits.
//
//	err := errors.Join(cfgerr.New("url", "not an absolute URL"), ...)
//	return cfgerr.Prefix("routes[2].sink.http", err)
package cfgerr

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is one problem with one configuration field.
type FieldError struct {
	// Path is the dotted path of the field, such as "routes[2].sink.http.url".
	Path string
	// Reason says what is wrong, lower-case, without final punctuation.
	Reason string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// New returns a [FieldError] for the field at path.
func New(path, reason string) error {
	return &FieldError{Path: path, Reason: reason}
}

// Newf is [New] with a formatted reason.
func Newf(path, format string, args ...any) error {
	return &FieldError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// Prefix returns err with prefix put in front of the path of every
// [FieldError] it holds, through errors.Join trees. Errors that are not
// FieldErrors become FieldErrors at prefix. Prefix(p, nil) is nil.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range Flatten(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			out = append(out, &FieldError{Path: join(prefix, fe.Path), Reason: fe.Reason})
			continue
		}
		out = append(out, &FieldError{Path: prefix, Reason: e.Error()})
	}
	return errors.Join(out...)
}

// Flatten returns the leaves of an errors.Join tree in order.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func join(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	case strings.HasPrefix(path, "["):
		return prefix + path
	default:
		return prefix + "." + path
	}
}
