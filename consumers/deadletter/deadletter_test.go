package deadletter_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/deadletter"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// gateSink rejects permanently while closed and records what it accepts.
type gateSink struct {
	open atomic.Bool
	mu   sync.Mutex
	got  map[string]int
}

func (s *gateSink) Send(_ context.Context, ev event.Event) error {
	if !s.open.Load() {
		return consumers.Permanent(errors.New("status 400: rejected"))
	}
	s.mu.Lock()
	s.got[ev.ID()]++
	s.mu.Unlock()
	return nil
}

func (s *gateSink) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[id]
}

func runRoute(t *testing.T, js jetstream.JetStream, name string, sink consumers.Sink) {
	t.Helper()
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: name, Delivery: consumers.Delivery{
		StartAt: consumers.StartAtAll, SendTimeout: time.Second, AckWait: 5 * time.Second,
		Backoff: consumers.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond},
	}}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestListReplayPurge(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	failing := &gateSink{got: map[string]int{}}
	healthy := &gateSink{got: map[string]int{}}
	healthy.open.Store(true)
	runRoute(t, js, "failing", failing)
	runRoute(t, js, "healthy", healthy)

	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "t"})
	var evs []event.Event
	for i := range 3 {
		ev := event.New()
		ev.SetID("e" + strconv.Itoa(i))
		ev.SetSource("test")
		ev.SetType("com.example.t")
		evs = append(evs, ev)
	}
	if err := pub.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}

	var letters []deadletter.Letter
	eventually(t, "3 dead letters", func() bool {
		var err error
		letters, err = deadletter.List(ctx, js, deadletter.Selector{Route: "failing"}, 0)
		return err == nil && len(letters) == 3
	})
	// The route sends concurrently, so dead letters need not be in event order.
	byID := map[string]deadletter.Letter{}
	for _, l := range letters {
		byID[l.EventID] = l
	}
	l := byID["e0"]
	if l.Route != "failing" || l.Failure != streams.FailurePermanent || l.EventID != "e0" ||
		l.OriginalSubject != "vmware.webhook.t.com_example_t" || l.Attempts != 1 || l.FailedAt.IsZero() {
		t.Errorf("letter = %+v, want route failing, permanent, e0, original subject, 1 attempt, a failure time", l)
	}
	if none, err := deadletter.List(ctx, js, deadletter.Selector{Route: "healthy"}, 0); err != nil || len(none) != 0 {
		t.Errorf("healthy route has %d dead letters (%v), want 0", len(none), err)
	}
	got, err := deadletter.Get(ctx, js, l.Sequence)
	if err != nil || got.EventID != "e0" {
		t.Fatalf("Get(%d) = %+v, %v; want e0", l.Sequence, got, err)
	}

	// Fix the sink, replay two letters: only the failing route delivers them.
	failing.open.Store(true)
	n, err := deadletter.Replay(ctx, js, deadletter.Selector{Route: "failing", Sequences: []uint64{byID["e0"].Sequence, byID["e1"].Sequence}})
	if err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2, nil", n, err)
	}
	eventually(t, "replayed events delivered", func() bool { return failing.count("e0") == 1 && failing.count("e1") == 1 })
	// Give the healthy route a moment to (wrongly) deliver the replays too.
	time.Sleep(200 * time.Millisecond)
	for _, id := range []string{"e0", "e1", "e2"} {
		if c := healthy.count(id); c != 1 {
			t.Errorf("healthy route delivered %s %d times, want 1 (replays are not for it)", id, c)
		}
	}
	left, err := deadletter.List(ctx, js, deadletter.Selector{}, 0)
	if err != nil || len(left) != 1 || left[0].EventID != "e2" {
		t.Fatalf("after replay dead letters = %+v (%v), want only e2", left, err)
	}
	if failing.count("e2") != 0 {
		t.Errorf("e2 delivered without being replayed")
	}

	// Purge the rest.
	n, err = deadletter.Purge(ctx, js, deadletter.Selector{Route: "failing"})
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1, nil", n, err)
	}
	if left, _ := deadletter.List(ctx, js, deadletter.Selector{}, 0); len(left) != 0 {
		t.Errorf("after purge %d dead letters, want 0", len(left))
	}
}
