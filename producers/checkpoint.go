package producers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/streams"
)

var (
	// ErrNoCheckpoint is returned by [Checkpointer.Load] for a key that has
	// never been saved (or was deleted).
	ErrNoCheckpoint = errors.New("no checkpoint")
	// ErrCheckpointConflict is returned by [Checkpointer.Save] when someone
	// else wrote the key since this checkpointer last read or wrote it: two
	// vrelay replicas are polling the same upstream system.
	ErrCheckpointConflict = errors.New("checkpoint changed by another writer")
)

// KVCheckpointer is a [Checkpointer] on the JetStream KV bucket
// streams.CheckpointBucket. Every Save is compare-and-set on the revision
// this checkpointer last saw.
type KVCheckpointer struct {
	kv   jetstream.KeyValue
	mu   sync.Mutex
	revs map[string]uint64 // 0: seen absent
}

// NewCheckpointer opens the checkpoint bucket, which streams.Ensure creates.
func NewCheckpointer(ctx context.Context, js jetstream.JetStream) (*KVCheckpointer, error) {
	kv, err := js.KeyValue(ctx, streams.CheckpointBucket)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint bucket %s: %w", streams.CheckpointBucket, err)
	}
	return &KVCheckpointer{kv: kv, revs: make(map[string]uint64)}, nil
}

// Load implements [Checkpointer].
func (c *KVCheckpointer) Load(ctx context.Context, key string) ([]byte, error) {
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		c.setRev(key, 0)
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", key, err)
	}
	c.setRev(key, e.Revision())
	return e.Value(), nil
}

// Save implements [Checkpointer]. Saving a key that was not loaded first
// succeeds only if the key is absent.
func (c *KVCheckpointer) Save(ctx context.Context, key string, value []byte) error {
	c.mu.Lock()
	rev := c.revs[key]
	c.mu.Unlock()
	var (
		next uint64
		err  error
	)
	if rev == 0 {
		next, err = c.kv.Create(ctx, key, value)
	} else {
		next, err = c.kv.Update(ctx, key, value, rev)
	}
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) ||
			(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return fmt.Errorf("save checkpoint %s: %w", key, ErrCheckpointConflict)
		}
		return fmt.Errorf("save checkpoint %s: %w", key, err)
	}
	c.setRev(key, next)
	return nil
}

func (c *KVCheckpointer) setRev(key string, rev uint64) {
	c.mu.Lock()
	c.revs[key] = rev
	c.mu.Unlock()
}
