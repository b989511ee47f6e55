// Package pattern matches events against Amazon EventBridge event patterns,
// locally, with EventBridge's content-filtering semantics, so that an
// operator moving from an EventBridge rule (or the VMware Event Router's
// rulePattern) keeps the patterns it has.
//
// A pattern is a JSON object shaped like the events it matches. A nested
// object descends into the event; an array at a leaf lists what the value
// there may be, and matches when any entry does. Every field of a pattern
// must match (AND); "$or" lists alternative sub-patterns. Where the event
// holds an array, the pattern matches when any element does. Supported:
//
//   - exact values: strings, numbers (compared as numbers), true, false, null
//   - {"prefix": "prod-"}, {"prefix": {"equals-ignore-case": "PROD-"}}
//   - {"suffix": ".png"}, {"suffix": {"equals-ignore-case": ".PNG"}}
//   - {"equals-ignore-case": "vmpoweredonevent"}
//   - {"anything-but": "x"}, {"anything-but": ["x", "y"]}, {"anything-but": 5},
//     {"anything-but": {"prefix"|"suffix"|"wildcard": "..."}},
//     {"anything-but": {"equals-ignore-case": ["x", "y"]}}
//   - {"numeric": [">", 0, "<=", 5]}, {"numeric": ["=", 3]}
//   - {"exists": true}, {"exists": false} (leaves only, as in EventBridge)
//   - {"wildcard": "Vm*Event"} (\* is a literal star); {"shellstyle": "Vm*"},
//     the Event Ruler spelling, is the same
//   - {"cidr": "10.0.0.0/24"} on IPv4 and IPv6 address strings
//   - {"$or": [{...}, {...}]} at any level
//
// Not modelled: EventBridge's limits on pattern size and number of
// combinations, its 15-digit precision bound on numbers, and the array
// consistency of Event Ruler (two fields of one pattern may match in
// different elements of an array of objects, as in EventBridge).
//
// What an event may be matched on is decided by the caller, which builds
// the JSON; the EventBridge sink matches the entry it is about to send:
//
//	p, err := pattern.Compile([]byte(`{"detail": {"subject": ["VmPoweredOnEvent"]}}`))
//	ok, err := p.Match([]byte(`{"source": "...", "detail": {"subject": "VmPoweredOnEvent"}}`))
package pattern
