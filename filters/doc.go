// Package filters compiles and runs the filter expression of a route.
//
// A filter is an [expr-lang] expression over one CloudEvent. [Compile] parses
// and type-checks it once at start-up; a *[CompileError] names the line and
// column, so a bad filter stops start-up instead of dropping events later.
// [Filter.Match] then runs it for each event and is safe for concurrent use.
//
// # Environment
//
// An expression sees these names, all lower-case:
//
//   - type, source, subject, id, specversion, datacontenttype, dataschema:
//     strings; an absent optional attribute is "".
//   - time: a time.Time (the zero time when absent), so
//     `time > now() - duration("1h")` works.
//   - every extension by its own name, for example eventclass or
//     vsphereapiversion. An absent extension is nil, not an error. Strings and
//     booleans keep their type, integers are int, timestamps time.Time, URIs
//     and binary values their canonical string form.
//   - data: the event data, decoded at most once per Match call and only when
//     the expression mentions data (see [Filter.UsesData]). JSON data
//     (datacontenttype absent, application/json, text/json or any +json) is
//     decoded with encoding/json into map[string]any, []any, string, bool and
//     float64, so data.Key == 7 and data.Key > 5 compare as numbers (integers
//     above 2^53 lose precision; vCenter keys are int32). Any other content
//     type gives the data as a string; no data gives nil.
//
// # Errors
//
// Match returns (false, err) when it cannot decide, and callers count that as
// "no match"; neither error can succeed on a retry:
//
//   - *[DataError]: the data claims to be JSON but does not decode.
//   - *[RuntimeError]: the expression failed while it ran, for example
//     data.Ds.Name where data.Ds is null. Write data.Ds?.Name to get nil
//     instead, or test with `"Vm" in data && data.Vm != nil` first. A missing
//     key is nil: data.Missing == nil is true.
//
// Type errors between known names (`type == 1`), non-boolean expressions
// (`type`) and calls of unknown functions (`foo(type)`) fail at compile time.
// Names expr cannot type, extensions and the fields of data, are only checked
// when the expression runs.
//
// # Example
//
//	f, err := filters.Compile(`type endsWith "VmPoweredOnEvent.v0" && data.Vm.Name startsWith "prod-"`)
//	if err != nil {
//		return fmt.Errorf("route %s: compile filter: %w", name, err)
//	}
//	ok, err := f.Match(ev)
//	if err != nil || !ok {
//		// filtered out: ack, and count err if there is one
//	}
//
// [expr-lang]: https://expr-lang.org/docs/language-definition
package filters
