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
//	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "hooks"})
//	err := src.Run(ctx, pub) // returns ctx.Err() on shutdown
//
// Subpackages hold one Source each: webhook (CloudEvents over HTTP);
// vcenter and horizon follow.
package producers
