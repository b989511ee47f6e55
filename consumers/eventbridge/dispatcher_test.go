package eventbridge_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/eventbridge/ebtest"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// TestDispatcherNothingLostNothingTwice runs a route with maxBatch 10 into
// the fake, which throttles whole calls now and then and fails entries
// (throttled or internal) on their first tries: every event must arrive
// exactly once, in calls of at most 10 entries and 256 KB.
func TestDispatcherNothingLostNothingTwice(t *testing.T) {
	_, js := natstest.Run(t)
	srv := ebtest.NewServer(t)
	var mu sync.Mutex
	tries := map[string]int{}
	srv.Call = func(n int) *ebtest.CallError {
		if n%4 == 2 {
			return ebtest.Throttle()
		}
		return nil
	}
	srv.Entry = func(e ebtest.Entry) ebtest.Answer {
		id := idOf(t, e)
		mu.Lock()
		tries[id]++
		try := tries[id]
		mu.Unlock()
		switch {
		case e.Seq%3 == 0 && try < 3:
			return ebtest.Answer{ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded"}
		case e.Seq%5 == 0 && try < 2:
			return ebtest.Answer{ErrorCode: "InternalFailure", ErrorMessage: "internal"}
		}
		return ebtest.Answer{}
	}

	const n = 120
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"})
	evs := make([]event.Event, n)
	want := map[string]bool{}
	for i := range evs {
		evs[i] = newEvent(fmt.Sprintf("ev-%03d", i), fmt.Sprintf(`{"Key":%d,"Pad":"%0*d"}`, i, 20*1024, i))
		want[evs[i].ID()] = true
	}
	if err := pub.Publish(t.Context(), producers.Records(evs...)...); err != nil {
		t.Fatal(err)
	}

	route := consumers.Route{Name: "eventbridge", Delivery: consumers.Delivery{
		MaxAttempts: 20, MaxInFlight: 4, MaxBatch: 10, BatchWait: 20 * time.Millisecond,
		SendTimeout: 5 * time.Second, AckWait: 10 * time.Second, StartAt: consumers.StartAtAll,
		Backoff: consumers.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	}}
	d, err := consumers.NewDispatcher(js, route, newSink(t, testConfig(t, srv)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	srv.Wait(n, 60*time.Second)
	waitAcked(t, js, route.Name, n) // every event settled: no redelivery can still come
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run(): got %v, want context.Canceled", err)
	}

	got := srv.Accepted()
	seen := map[string]int{}
	for _, e := range got {
		seen[idOf(t, e)]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s accepted %d times, want exactly 1", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("distinct events accepted: got %d, want %d", len(seen), n)
	}
	entries, sizes := srv.Batches()
	for i := range entries {
		if entries[i] > ebtest.MaxEntries || sizes[i] > ebtest.MaxSize {
			t.Errorf("call %d: %d entries, %d bytes; want at most %d and %d", i, entries[i], sizes[i], ebtest.MaxEntries, ebtest.MaxSize)
		}
	}
	mu.Lock()
	retried := 0
	for _, c := range tries {
		if c > 1 {
			retried++
		}
	}
	mu.Unlock()
	if retried == 0 || len(entries) == srv.Calls() {
		t.Errorf("retried events %d, throttled calls %d: want some of each, or the test proves nothing", retried, srv.Calls()-len(entries))
	}
	t.Logf("%d events, %d calls (%d throttled whole), %d events retried per entry", n, srv.Calls(), srv.Calls()-len(entries), retried)
	if natstest.Count(t, js, streams.DLQStream) != 0 {
		t.Errorf("dead letters: got some, want none (every failure was retryable)")
	}
}

// waitAcked waits until the route's consumer acked everything up to
// stream sequence last.
func waitAcked(t *testing.T, js jetstream.JetStream, route string, last int) {
	t.Helper()
	c, err := js.Consumer(t.Context(), streams.EventStream, route)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream >= uint64(last) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s: pending=%d ack_pending=%d ack_floor=%d, want all %d settled",
				route, info.NumPending, info.NumAckPending, info.AckFloor.Stream, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
