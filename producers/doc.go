// Package producers moves events from upstream systems into JetStream.
//
// A [Source] owns one upstream system (one vCenter, one Horizon pod, one
// webhook listener) and turns its events into CloudEvents. A [Publisher]
// stores them: [JetStreamPublisher] publishes a batch asynchronously, waits
// for every PubAck and republishes failures with the same Nats-Msg-Id, so
// that a retry or a replay after a crash is stored once. A [Checkpointer]
// keeps a source's position in the JetStream KV bucket; a source saves its
// position only after Publish returned nil for the events it covers, which
// makes the pipeline at-least-once from upstream to stream and, thanks to
// the duplicate window, exactly-once in the stream.
//
// A source hands each event to Publish as a [Record]: the CloudEvent plus
// what only the source knows, its upstream identity (the Nats-Msg-Id) and
// its subject token. [Records] wraps events whose CloudEvent source and id
// are the identity and whose type is the token, as a webhook's are.
//
// A [Runner] owns the sources of a process: it starts each one, shows its
// state ([Runner.Status], for /readyz), and restarts with a backoff a
// source whose Run returned, while the others go on.
//
// With several replicas on one NATS cluster, a source that polls an
// upstream system is added with [Runner.AddPolling] to a runner built
// [WithLeases]: it runs only on the replica that holds its [Lease] in the
// KV bucket streams.LeaseBucket (acquired with Create, renewed with
// Update on its revision every TTL/3, released with Delete on its last
// revision after the source returned). Elsewhere it shows as
// [StateStandby] with the holder. A lost lease cancels the source's
// context at once with [ErrLeaseLost]; the checkpoint's compare-and-set
// ([ErrCheckpointConflict]) fences whatever a stale holder still writes.
//
//	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "hooks"})
//	err := pub.Publish(ctx, producers.Records(ev)...)
//
//	r := producers.NewRunner(producers.WithLogger(log), producers.WithMetrics(m))
//	if err := r.Add("webhook", "hooks", src, pub); err != nil {
//		return err
//	}
//	err = r.Run(ctx) // returns ctx.Err() once every source returned
//
//	leases, err := producers.NewLeases(ctx, js, producers.Identity())
//	r := producers.NewRunner(producers.WithLeases(leases))
//	err = r.AddPolling("vcenter", "vc01", vc, pub)
//
// Subpackages hold one Source each: webhook (CloudEvents over HTTP),
// vcenter (a vCenter's event history), vcsim (a simulated vCenter) and
// horizon (a Horizon pod's audit events).
package producers
