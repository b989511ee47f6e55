package consumers_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// gateSink rejects every event permanently while closed, and counts what
// it accepts once open.
type gateSink struct {
	open atomic.Bool
	mu   sync.Mutex
	got  map[string]int
}

func newGateSink() *gateSink { return &gateSink{got: map[string]int{}} }

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

// replayLast replays the last dead letter of route the way `vrelay dlq
// replay` does: to the route's replay subject, not to the event stream.
func replayLast(t *testing.T, js jetstream.JetStream, route string) {
	t.Helper()
	s, err := js.Stream(t.Context(), streams.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(t.Context(), streams.DLQSubject(route))
	if err != nil {
		t.Fatal(err)
	}
	dl, err := streams.ParseDeadLetter(raw.Header)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), dl.ReplayMsg(raw.Sequence, raw.Data, raw.Header),
		jetstream.WithExpectStream(streams.ReplayStream)); err != nil {
		t.Fatal(err)
	}
}

func TestReplayGoesToTheFailedRouteOnly(t *testing.T) {
	_, js := natstest.Run(t)
	failing, other := newGateSink(), newGateSink()
	other.open.Store(true)
	start(t, js, consumers.Route{Name: "failing", Delivery: fastDelivery()}, failing)
	start(t, js, consumers.Route{Name: "other", Delivery: fastDelivery()}, other)
	publish(t, js, "r1")

	readDLQ(t, js, "failing", 1)
	eventually(t, "the other route delivering r1", func() bool { return other.count("r1") == 1 })
	inStream := natstest.Count(t, js, streams.EventStream)

	failing.open.Store(true)
	replayLast(t, js, "failing")
	eventually(t, "the replay delivered", func() bool { return failing.count("r1") == 1 })
	eventually(t, "the replay stream empty", func() bool { return natstest.Count(t, js, streams.ReplayStream) == 0 })
	// Give the other route a moment to (wrongly) get the replay too.
	time.Sleep(300 * time.Millisecond)
	if n := other.count("r1"); n != 1 {
		t.Errorf("other route delivered r1 %d times, want 1 (the replay is not for it)", n)
	}
	if n := failing.count("r1"); n != 1 {
		t.Errorf("failing route delivered the replay %d times, want 1", n)
	}
	if n := natstest.Count(t, js, streams.EventStream); n != inStream {
		t.Errorf("event stream holds %d messages after the replay, want %d (no copy)", n, inStream)
	}
	if n := dlqCount(t, js); n != 1 {
		t.Errorf("dead letters: got %d, want 1 (the replay succeeded)", n)
	}
}

func TestReplayThatFailsAgainKeepsItsOrigin(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newGateSink() // never opens
	start(t, js, consumers.Route{Name: "again", Delivery: fastDelivery()}, sink)
	publish(t, js, "x1")
	first := readDLQ(t, js, "again", 1)[0]

	replayLast(t, js, "again")
	both := readDLQ(t, js, "again", 2)
	second := both[1]
	if second.id != "x1" {
		t.Fatalf("second dead letter is %q, want x1", second.id)
	}
	for _, h := range []string{streams.HeaderOriginalSubject, streams.HeaderOriginalStream, streams.HeaderOriginalSequence, streams.HeaderStoredAt} {
		if got, want := second.headers[h], first.headers[h]; got != want {
			t.Errorf("header %s of the replay's dead letter: got %q, want %q (the event's origin)", h, got, want)
		}
	}
	want := map[string]string{
		streams.HeaderOriginalStream:   streams.EventStream,
		streams.HeaderOriginalSequence: "1",
		streams.HeaderFailure:          streams.FailurePermanent,
		streams.HeaderAttempts:         "1",
		streams.HeaderRoute:            "again",
	}
	for k, v := range want {
		if got := second.headers[k]; got != v {
			t.Errorf("header %s of the replay's dead letter: got %q, want %q", k, got, v)
		}
	}
	if got, want := first.headers[streams.HeaderMsgID], "again:"+streams.EventStream+":1"; got != want {
		t.Errorf("Nats-Msg-Id of the first dead letter: got %q, want %q", got, want)
	}
	if got, want := second.headers[streams.HeaderMsgID], "again:"+streams.ReplayStream+":1"; got != want {
		t.Errorf("Nats-Msg-Id of the replay's dead letter: got %q, want %q", got, want)
	}
	eventually(t, "the replay stream empty", func() bool { return natstest.Count(t, js, streams.ReplayStream) == 0 })
	if n := natstest.Count(t, js, streams.EventStream); n != 1 {
		t.Errorf("event stream holds %d messages, want 1 (no copy)", n)
	}
}
