package consumers_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// batchSink is a [consumers.BatchSink] that answers each event of a batch
// from that event's script, like scriptSink; past its end it accepts. It
// records every batch it was sent.
type batchSink struct {
	*scriptSink
	mu      sync.Mutex
	batches [][]string // ids of each batch, in order of the calls
	// short, while positive, makes that many calls answer one result too few.
	short int
}

func newBatchSink() *batchSink { return &batchSink{scriptSink: newScriptSink()} }

func (s *batchSink) SendBatch(ctx context.Context, evs []event.Event) []error {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID()
	}
	s.mu.Lock()
	s.batches = append(s.batches, ids)
	short := s.short > 0
	if short {
		s.short--
	}
	s.mu.Unlock()
	errs := make([]error, len(evs))
	for i, ev := range evs {
		errs[i] = s.scriptSink.Send(ctx, ev)
	}
	if short {
		return errs[:len(errs)-1]
	}
	return errs
}

func (s *batchSink) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n []int
	for _, b := range s.batches {
		n = append(n, len(b))
	}
	return n
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// waitSettled waits until the route's consumer has acked (or termed)
// everything: nothing outstanding, nothing pending, the ack floor at the
// stream's last sequence.
func waitSettled(t *testing.T, js jetstream.JetStream, route string, last uint64) {
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
		if info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s: pending=%d ack_pending=%d ack_floor=%d, want everything up to %d settled",
				route, info.NumPending, info.NumAckPending, info.AckFloor.Stream, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBatchesFormUpToMaxBatch(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newBatchSink()
	all := ids("b", 25)
	publish(t, js, all...)
	d := fastDelivery()
	d.MaxInFlight = 1
	d.MaxBatch = 10
	d.BatchWait = time.Second
	start(t, js, consumers.Route{Name: "batches", Delivery: d}, sink)

	got := waitDelivered(t, sink.scriptSink, len(all))
	for _, id := range all {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want 1", id, got[id])
		}
	}
	sizes := sink.sizes()
	if slices.Max(sizes) != 10 {
		t.Errorf("batch sizes %v: got largest %d, want 10 (events were waiting, batches should fill)", sizes, slices.Max(sizes))
	}
	for _, n := range sizes {
		if n > 10 {
			t.Errorf("batch sizes %v: got a batch of %d, want at most maxBatch 10", sizes, n)
		}
	}
	waitSettled(t, js, "batches", 25)
}

func TestBatchWaitSendsAPartialBatch(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newBatchSink()
	publish(t, js, "p0", "p1", "p2")
	d := fastDelivery()
	d.MaxBatch = 100
	d.BatchWait = 300 * time.Millisecond
	start(t, js, consumers.Route{Name: "partial", Delivery: d}, sink)

	waitDelivered(t, sink.scriptSink, 3)
	if got := sink.sizes(); !slices.Equal(got, []int{3}) {
		t.Errorf("batch sizes: got %v, want one batch of 3 sent after batchWait", got)
	}
}

func TestBatchPartialFailure(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newBatchSink()
	down := errors.New("entry failed: ThrottlingException")
	all := ids("e", 10)
	sink.script["e1"] = []error{down, down}
	sink.script["e2"] = []error{consumers.Permanent(errors.New("entry failed: ValidationException"))}
	sink.script["e4"] = []error{down, down}
	sink.script["e5"] = []error{down, down, down, down, down, down}
	sink.script["e7"] = []error{consumers.RetryAfter(down, 200*time.Millisecond)}
	publish(t, js, all...)
	d := fastDelivery()
	d.MaxAttempts = 3
	d.MaxBatch = 10
	d.BatchWait = 200 * time.Millisecond
	start(t, js, consumers.Route{Name: "partialfail", Delivery: d}, sink)

	delivered := waitDelivered(t, sink.scriptSink, 8)
	dls := readDLQ(t, js, "partialfail", 2)
	waitSettled(t, js, "partialfail", 10)

	wantAttempts := map[string]int{"e1": 3, "e2": 1, "e4": 3, "e5": 3, "e7": 2}
	for _, id := range all {
		want := wantAttempts[id]
		if want == 0 {
			want = 1
		}
		if got := len(sink.attemptsOf(id)); got != want {
			t.Errorf("attempts on %s: got %d, want %d", id, got, want)
		}
		wantDelivered := 1
		if id == "e2" || id == "e5" {
			wantDelivered = 0
		}
		if delivered[id] != wantDelivered {
			t.Errorf("%s delivered %d times, want %d", id, delivered[id], wantDelivered)
		}
	}
	kinds := map[string]string{}
	for _, dl := range dls {
		kinds[dl.id] = dl.headers[streams.HeaderFailure]
	}
	if want := map[string]string{"e2": streams.FailurePermanent, "e5": streams.FailureExhausted}; !mapsEqual(kinds, want) {
		t.Errorf("dead letters: got %v, want %v", kinds, want)
	}
	if n := dlqCount(t, js); n != 2 {
		t.Errorf("dead letters: got %d, want 2", n)
	}
	// The first batch held all ten; later ones only what failed.
	sizes := sink.sizes()
	if len(sizes) == 0 || sizes[0] != 10 {
		t.Errorf("batch sizes %v: want a first batch of 10", sizes)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestBatchWrongResultCountIsRetried(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newBatchSink()
	sink.short = 1
	all := ids("w", 4)
	publish(t, js, all...)
	d := fastDelivery()
	d.MaxBatch = 4
	start(t, js, consumers.Route{Name: "wrongcount", Delivery: d}, sink)

	// The first, malformed answer fails the whole batch; the sink itself
	// accepted the events then, so each arrives twice.
	got := waitDelivered(t, sink.scriptSink, 8)
	waitSettled(t, js, "wrongcount", 4)
	for _, id := range all {
		if got[id] != 2 || len(sink.attemptsOf(id)) != 2 {
			t.Errorf("%s: got %d deliveries in %d attempts, want 2 attempts (the first batch retried whole)",
				id, got[id], len(sink.attemptsOf(id)))
		}
	}
	if n := dlqCount(t, js); n != 0 {
		t.Errorf("dead letters: got %d, want 0", n)
	}
}

// TestShutdownHandsBackAFillingBatch stops a route while its batch waits
// to fill: the events are handed back at once, not sent, not acked, and
// the next run delivers them long before their ack wait ends.
func TestShutdownHandsBackAFillingBatch(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newBatchSink()
	publish(t, js, "s0", "s1", "s2")
	d := fastDelivery()
	d.MaxBatch = 100
	d.BatchWait = 10 * time.Second
	d.SendTimeout = 20 * time.Second
	d.AckWait = time.Minute
	r := consumers.Route{Name: "shutdown", Delivery: d}
	disp, err := consumers.NewDispatcher(js, r, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- disp.Run(ctx) }()
	c, err := js.Consumer(t.Context(), streams.EventStream, "shutdown")
	for err != nil || c.CachedInfo().NumAckPending < 3 {
		time.Sleep(20 * time.Millisecond)
		c, err = js.Consumer(t.Context(), streams.EventStream, "shutdown")
	}
	began := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel while a batch was filling")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Run took %s to stop, want well under batchWait (10s)", took)
	}
	if n := len(sink.sizes()); n != 0 {
		t.Fatalf("sends before shutdown: got %d, want 0", n)
	}

	d.BatchWait = 50 * time.Millisecond
	start(t, js, consumers.Route{Name: "shutdown", Delivery: d}, sink)
	got := waitDelivered(t, sink.scriptSink, 3)
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("events came back after %s, want at once (naked), not after the ack wait", took)
	}
	for _, id := range []string{"s0", "s1", "s2"} {
		if got[id] != 1 {
			t.Errorf("%s delivered %d times, want 1", id, got[id])
		}
	}
}

// TestBatchUndecodable: a message that is not a CloudEvent is dead-lettered
// on its own, without holding up the batch, and without waiting for a
// sendable event on an otherwise idle route.
func TestBatchUndecodable(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newBatchSink()
	if _, err := js.Publish(t.Context(), "vmware.webhook.test.garbage", []byte("not a cloudevent")); err != nil {
		t.Fatal(err)
	}
	d := fastDelivery()
	d.MaxBatch = 10
	d.BatchWait = 100 * time.Millisecond
	start(t, js, consumers.Route{Name: "undecodable", Delivery: d}, sink)

	c, err := js.OrderedConsumer(t.Context(), streams.DLQStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter for the undecodable message: %v", err)
	}
	if got := msg.Headers().Get(streams.HeaderFailure); got != streams.FailureDecode {
		t.Errorf("failure kind: got %q, want %q", got, streams.FailureDecode)
	}
	publish(t, js, "u1", "u2")
	got := waitDelivered(t, sink.scriptSink, 2)
	waitSettled(t, js, "undecodable", 3)
	if got["u1"] != 1 || got["u2"] != 1 {
		t.Errorf("delivered %v, want u1 and u2 once", got)
	}
	if n := dlqCount(t, js); n != 1 {
		t.Errorf("dead letters: got %d, want 1", n)
	}
}
