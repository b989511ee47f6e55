package consumers_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/natstest"
)

// stallSink blocks each event's first attempt until its context ends and
// records how it ended; later attempts succeed.
type stallSink struct {
	mu       sync.Mutex
	ended    []error
	encoded  []bool
	attempts map[string]int
	done     chan string
}

func (s *stallSink) Send(ctx context.Context, ev event.Event) error {
	s.mu.Lock()
	s.attempts[ev.ID()]++
	n := s.attempts[ev.ID()]
	_, enc := consumers.EncodedFromContext(ctx)
	s.encoded = append(s.encoded, enc)
	s.mu.Unlock()
	if n == 1 {
		<-ctx.Done()
		s.mu.Lock()
		s.ended = append(s.ended, ctx.Err())
		s.mu.Unlock()
		return ctx.Err()
	}
	s.done <- ev.ID()
	return nil
}

// TestSendTimeoutThenRetry checks that a send outlasting sendTimeout ends
// with DeadlineExceeded and is retried, and that the same worker's next
// sends get a live context with the stored body.
func TestSendTimeoutThenRetry(t *testing.T) {
	_, js := natstest.Run(t)
	publish(t, js, "a", "b")
	sink := &stallSink{attempts: map[string]int{}, done: make(chan string, 2)}
	dl := fastDelivery()
	dl.MaxInFlight = 1 // one worker: every send shares its context
	dl.SendTimeout, dl.AckWait = 200*time.Millisecond, 2*time.Second
	start(t, js, consumers.Route{Name: "stall", Delivery: dl}, sink)
	got := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case id := <-sink.done:
			got[id] = true
		case <-timeout:
			t.Fatalf("delivered %v before giving up", got)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.ended) != 2 {
		t.Fatalf("stalled sends: got %d, want 2", len(sink.ended))
	}
	for _, err := range sink.ended {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a stalled send ended with %v, want DeadlineExceeded", err)
		}
	}
	for i, enc := range sink.encoded {
		if !enc {
			t.Errorf("send %d: no stored body in its context", i)
		}
	}
}
