// Package filters compiles and runs the filter expression and the
// transform steps of a route.
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
//   - ext: a map of every extension by name, as above, so ext.vmtags is
//     vmtags (nil when absent). It reads better where an extension's name
//     could be mistaken for an attribute, and lists extensions with
//     keys(ext). An extension called "ext" is read as ext.ext.
//   - data: the event data, decoded at most once per Match call and only when
//     the expression mentions data (see [Filter.UsesData]). JSON data
//     (datacontenttype absent, application/json, text/json or any +json) is
//     decoded with encoding/json into map[string]any, []any, string, bool and
//     float64, so data.Key == 7 and data.Key > 5 compare as numbers (integers
//     above 2^53 lose precision; vCenter keys are int32). Any other content
//     type gives the data as a string; no data gives nil. A filter whose
//     expression reads data only through constant member paths (data.Vm.Name,
//     data["Key"], a predicate such as any(data.Arguments, {.Key == "x"}))
//     decodes only those members, after checking that the whole payload is
//     JSON as a full decode would; the expression sees the same values
//     either way (an object it reads only member by member may be held in
//     a struct rather than a map, which it cannot tell apart). Transforms
//     and [Value.Eval] decode the whole payload.
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
// # Transforms
//
// [CompileTransform] compiles a route's `transform:` list, a []Step, once
// at start-up, in the same environment as filters, so the same names
// exist. Each [Step] either drops (Drop: a boolean expression; true drops
// the event) or changes the event (Set and/or Remove, guarded by an
// optional boolean When). [Transform.Apply] runs the steps in order, each
// on the event as the steps before left it; the expressions of one Set all
// see the event as it was before that step, and Remove comes after Set.
// Set targets are the attributes type, source, id, subject, time,
// datacontenttype and dataschema, extensions by name (lower-case letters
// and digits), data as a whole, and data fields as data.Dotted.Path;
// Remove takes the same but type, source and id.
//
// The contract:
//
//   - Apply never modifies its argument. An event that no step changed comes
//     back as it went in (Result.Changed is false), its data byte for byte;
//     data a step changed is encoded again as compact JSON, numbers as
//     written.
//   - A dropped event (Result.Dropped) is to be acked without delivery and
//     counted as filtered.
//   - Every failure is a *[StepError] naming the step and field
//     (transform[1].set.type), at compile time wrapping a *[CompileError]
//     with line and column, at run time a *[DataError] (the payload claims
//     JSON and is not), a *[RuntimeError] (an expression failed) or an
//     error saying why a result is unusable (an empty type, a map as an
//     extension, a data field on data that is not a JSON object). None can
//     succeed on a retry: the route dead-letters the event.
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
