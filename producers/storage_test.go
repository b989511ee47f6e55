package producers_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// TestPublishFailsFastWhileStorageFails: while the storage health says
// JetStream cannot store, Publish fails at once with ErrStorageFailing and
// sends nothing; once it recovers, Publish stores again.
func TestPublishFailsFastWhileStorageFails(t *testing.T) {
	_, js := natstest.Run(t)
	h := streams.NewStorageHealth()
	var failing atomic.Bool
	failing.Store(true)
	w := &streams.StorageWatch{Health: h, Interval: 10 * time.Millisecond, Check: func(context.Context) error {
		if failing.Load() {
			return errors.New("disk full")
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for h.OK() {
		time.Sleep(5 * time.Millisecond)
	}

	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "hooks"},
		producers.WithStorageHealth(h))
	// A context without deadline: only fail-fast can end the call.
	err := pub.Publish(context.Background(), producers.Records(newEvent(1))...)
	if !errors.Is(err, streams.ErrStorageFailing) {
		t.Fatalf("Publish while storage fails: %v, want ErrStorageFailing", err)
	}
	if n := natstest.Count(t, js, streams.EventStream); n != 0 {
		t.Errorf("stream holds %d events, want none sent", n)
	}

	failing.Store(false)
	for !h.OK() {
		time.Sleep(5 * time.Millisecond)
	}
	if err := pub.Publish(t.Context(), producers.Records(newEvent(2))...); err != nil {
		t.Fatalf("Publish after recovery: %v", err)
	}
	if n := natstest.Count(t, js, streams.EventStream); n != 1 {
		t.Errorf("stream holds %d events, want 1", n)
	}
}
