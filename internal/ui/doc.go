// Package ui is vrelay's event viewer: a small web page, served at /ui on
// the operations listener when `http.ui` is true, for looking at events
// before writing a route filter, and at what the routes did with them.
//
// The page (plain HTML, CSS and JavaScript embedded in the binary, no
// external libraries) shows:
//
//   - live events of the event stream, over Server-Sent Events
//     (GET /ui/api/events), read with a JetStream ordered consumer: no
//     durable state, nothing to clean up, and no route sees a difference;
//   - a filter box that takes the expressions of a route's `filter`,
//     compiled with [filters.Compile] on the server, so a compile error
//     comes back with its line and column;
//   - the sources found in the stream's subjects (<root>.<provider>.<source>.<type>),
//     several of which can be shown side by side;
//   - each route's pending, delivered, retried and dead-lettered counts, and
//     its dead letters with show and replay ([deadletter.List],
//     [deadletter.Get], [deadletter.Replay]: what `vrelay dlq` does);
//   - a chart of events per second per source and of delivery outcomes per
//     route over the last minutes, sampled by [Viewer.Run].
//
// # API
//
// Every API path answers JSON except the event stream; errors are
// {"error": "..."} with a 4xx or 5xx status.
//
//	GET  /ui/api/events?filter=EXPR&sources=P.S,...&last=N&after=SEQ
//	     text/event-stream: "event: event" with {seq, subject, provider,
//	     source, event} per matching event (id: the stream sequence, so an
//	     EventSource that reconnects resumes after the last one it got);
//	     "event: ready" once the backlog (the last N) was sent; "event:
//	     filter_error" when the filter fails on an event (it then counts as
//	     no match, as in a route). A filter that does not compile is a 400
//	     with {error, line, column, message, snippet}.
//	GET  /ui/api/filter?filter=EXPR  the same check, without a stream
//	GET  /ui/api/sources             [{provider, source, events}]
//	GET  /ui/api/routes              per route: pending, ackPending, counts, deadLetters
//	GET  /ui/api/chart               the sampled series
//	GET  /ui/api/dlq?route=R&limit=N dead letters, oldest first, and their total
//	GET  /ui/api/dlq/{seq}           one dead letter: headers and the event
//	POST /ui/api/dlq/{seq}/replay    replays it to its route
//
// "last" counts the stored events of the chosen sources; with a filter, the
// last N matches among the last [MaxScan] stored events. "after" starts
// right after a stream sequence instead (Last-Event-ID does the same).
//
// # Contract
//
// [Viewer.Handler] serves every path under /ui, behind the credentials it
// is given (nil: none; the configuration requires them off loopback), and
// refuses cross-origin POSTs (a replay), since a browser would send basic
// credentials along. An event stream writes with a moving deadline, so the
// listener's write timeout does not cut it, and ends when [Viewer.Run]
// returns, so a graceful shutdown does not wait for open pages. Counters of
// routes (delivered, retried, ...) come from the Prometheus registry of
// this process: with several replicas, each shows its own; pending and the
// dead letters come from JetStream and are the same everywhere.
//
//	v := ui.New(js, ui.WithRoutes(routes), ui.WithGatherer(reg))
//	mux.Handle("/ui/", v.Handler(creds))
//	go v.Run(ctx)
package ui
