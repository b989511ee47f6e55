// Package streams owns vrelay's JetStream topology and wire format.
//
// It defines the objects vrelay keeps in JetStream (DESIGN.md §2) — the
// event stream [EventStream] on `vmware.>`, the dead-letter stream
// [DLQStream] on `vrelay.dlq.>`, the work-queue replay stream
// [ReplayStream] on `vrelay.replay.>`, the checkpoint bucket
// [CheckpointBucket] and the lease bucket [LeaseBucket], whose bucket-level
// TTL ([Config].LeaseTTL) lets a dead replica's leases run out — each with
// [Config].Replicas copies and the optional [Placement] — and [Ensure], which creates what is missing and
// updates what JetStream can change in place, idempotently. It defines the
// subject scheme `<root>.<provider>.<source>.<type>` ([Subject], [Token]),
// which is a public interface: `nats sub 'vmware.vcenter.>'` works without
// vrelay. It defines the message codec ([Encode], [Decode]): the body is the
// structured-mode CloudEvent JSON ([MarshalEvent]) with the data carried
// byte-exact (JSON verbatim, text as a string, anything else as
// data_base64), headers carry Nats-Msg-Id and Ce-* copies of the main
// attributes. The dead-letter format ([DeadLetter], [ParseDeadLetter],
// [Origin]) lives here too, one codec for the dispatcher that writes dead
// letters, the `vrelay dlq` commands that read and replay them, and the
// viewer. And it runs nats-server embedded ([StartEmbedded]), whose
// listener requires credentials when [EmbeddedConfig].Auth is set (and must
// have them off loopback) while [Server.Connect] sends them itself, or
// connects to an external cluster ([ExternalConfig.Connect]).
//
// A [StorageWatch] keeps a [StorageHealth] that says whether JetStream can
// store (a full disk makes nats-server keep a write error and answer no
// publish): publishers consult it to fail fast, /readyz reports it. On the
// embedded server it repairs storage once the disk takes writes again, by
// restarting the nats-server in-process ([Server.Repair]); connections
// from [Server.Connect] with reconnects follow the new server.
//
//	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: "data"}, log)
//	nc, err := srv.Connect(streams.ConnOptions(log, "vrelay")...)
//	js, err := jetstream.New(nc)
//	err = streams.Ensure(ctx, js, cfg, log)
package streams
