package producers

import "context"

// Source reads events from one upstream system and hands them to a
// [Publisher].
//
// Run blocks until ctx is done, when it returns ctx.Err(), or until a fatal
// error that a restart of the source cannot fix. Transient upstream failures
// are retried inside Run with backoff and logged, not returned. A Source that
// keeps a position may advance it only after pub.Publish returned nil for
// every event the position covers.
type Source interface {
	Run(ctx context.Context, pub Publisher) error
}

// Publisher stores events in JetStream.
//
// Publish returns nil only after JetStream acknowledged every record (one
// PubAck each): they are then durable and will be delivered. It publishes
// the batch asynchronously and waits once, so a page of 1000 events costs one
// round of acks. A [Record] carries the event plus what only its source
// knows (the upstream identity used as Nats-Msg-Id, the subject token), so
// no source needs callbacks from the publisher. Records that failed are
// published again with the same Nats-Msg-Id, so a retry never stores an
// event twice. When Publish returns an error, any subset of the batch may be
// stored; publishing the whole batch again is safe. An [EventError] names a
// record that can never be stored (its Index is into recs). Publish blocks
// until then or until ctx is done, and is safe for concurrent use.
type Publisher interface {
	Publish(ctx context.Context, recs ...Record) error
}

// Checkpointer keeps a source's position in the upstream system.
//
// Load returns the last saved value for key, or [ErrNoCheckpoint]. Save
// stores value for key. Save is compare-and-set against what this
// Checkpointer last loaded or saved for key; if another writer changed it in
// between, Save fails with [ErrCheckpointConflict] and writes nothing.
// A Checkpointer is safe for concurrent use on different keys.
type Checkpointer interface {
	Load(ctx context.Context, key string) ([]byte, error)
	Save(ctx context.Context, key string, value []byte) error
}
