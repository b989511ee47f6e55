// Package logsink writes each event as one line to a stream (stdout by
// default), for debugging routes and filters, for `kubectl logs`-driven
// pipelines, and as the sink of a dry run. The line is the structured-mode
// CloudEvent JSON (format json, the default) or the readable line of
// package eventline (format line), as `vrelay tail` prints it.
//
// Contract: [Sink.Send] writes the whole event, newline-terminated, in one
// Write call under a lock, so concurrent sends never interleave lines. It
// returns nil once the writer accepted the line, a retryable error if the
// write failed (a closed pipe may come back), and a [consumers.Permanent]
// error if the event cannot be encoded. A write cannot be interrupted: a
// writer that blocks (a full pipe nobody reads) blocks Send until it drains,
// whatever ctx says.
//
// The sink is a [consumers.BatchSink]: with a route's maxBatch above 1,
// [Sink.SendBatch] writes a whole batch in one Write call. After a short
// write, the events whose lines were written in full count as delivered and
// the rest as retryable; an event that cannot be encoded is permanent on
// its own.
//
//	s, err := logsink.New(logsink.Config{Output: "stderr"})
//	if err != nil {
//		return cfgerr.Prefix("routes[0].sink.log", err)
//	}
//	err = s.Send(ctx, ev) // {"specversion":"1.0","id":"8201",...}\n on stderr
package logsink
