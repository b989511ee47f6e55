package consumers_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// publishSpans stores a1..a3, b1..b3 and c1..c2 with pauses between the
// groups, and returns a time between a and b and one between b and c.
func publishSpans(t *testing.T, js jetstream.JetStream) (afterA, afterB time.Time) {
	t.Helper()
	pause := func() time.Time {
		time.Sleep(200 * time.Millisecond)
		at := time.Now()
		time.Sleep(200 * time.Millisecond)
		return at
	}
	publish(t, js, "a1", "a2", "a3")
	afterA = pause()
	publish(t, js, "b1", "b2", "b3")
	afterB = pause()
	publish(t, js, "c1", "c2")
	return afterA, afterB
}

func consumerNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	s, err := js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	l := s.ConsumerNames(t.Context())
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

func TestReplayWindow(t *testing.T) {
	_, js := natstest.Run(t)
	since, until := publishSpans(t, js)

	sink := newScriptSink()
	sink.script["b1"] = []error{errors.New("503 service unavailable")} // then delivered
	sink.script["b2"] = []error{consumers.Permanent(errors.New("status 400: rejected"))}
	f, err := filters.Compile(`id != "b3"`)
	if err != nil {
		t.Fatal(err)
	}
	var reports []consumers.ReplayStats
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: "win", Filter: f, Delivery: fastDelivery()}, sink,
		consumers.WithEphemeral(consumers.ReplayWindow{Since: since, Until: until,
			Progress: func(s consumers.ReplayStats) { reports = append(reports, s) }}))
	if err != nil {
		t.Fatal(err)
	}
	stats, err := d.Replay(t.Context())
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	want := consumers.ReplayStats{Total: 3, Delivered: 1, Filtered: 1, DeadLettered: 1}
	if stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
	if n := len(sink.attemptsOf("b1")); n != 2 {
		t.Errorf("b1 sent %d times, want 2 (a retry)", n)
	}
	for _, id := range []string{"a1", "a3", "b3", "c1", "c2"} {
		if n := len(sink.attemptsOf(id)); n != 0 {
			t.Errorf("%s sent %d times, want 0: outside the window or filtered out", id, n)
		}
	}
	dl := readDLQ(t, js, "win", 1)
	if dl[0].id != "b2" || dl[0].headers[streams.HeaderFailure] != streams.FailurePermanent ||
		dl[0].headers[streams.HeaderOriginalSequence] != "5" {
		t.Errorf("dead letter %s %v, want b2, permanent, sequence 5", dl[0].id, dl[0].headers)
	}
	if names := consumerNames(t, js); len(names) != 0 {
		t.Errorf("consumers left on the stream: %v, want none", names)
	}
	if len(reports) > 0 && reports[0].Total != 3 {
		t.Errorf("progress total %d, want 3 from the start", reports[0].Total)
	}
	if n := natstest.Count(t, js, streams.EventStream); n != 8 {
		t.Errorf("event stream holds %d, want 8: a replay copies nothing", n)
	}
}

func TestReplayUntilNowIgnoresLaterEvents(t *testing.T) {
	_, js := natstest.Run(t)
	since, _ := publishSpans(t, js)
	sink := newScriptSink()
	// b1 fails until the test publishes more events, so they come while
	// the replay still runs.
	sink.script["b1"] = []error{errors.New("503"), errors.New("503"), errors.New("503")}
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: "now", Delivery: fastDelivery()}, sink,
		consumers.WithEphemeral(consumers.ReplayWindow{Since: since}))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		stats consumers.ReplayStats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		s, err := d.Replay(t.Context())
		done <- result{s, err}
	}()
	eventually(t, "a first attempt on b1", func() bool { return len(sink.attemptsOf("b1")) > 0 })
	publish(t, js, "later")
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := (consumers.ReplayStats{Total: 5, Delivered: 5}); r.stats != want {
		t.Errorf("stats %+v, want %+v", r.stats, want)
	}
	var sent []string
	for _, id := range []string{"a1", "b1", "b2", "b3", "c1", "c2", "later"} {
		if len(sink.attemptsOf(id)) > 0 {
			sent = append(sent, id)
		}
	}
	if want := []string{"b1", "b2", "b3", "c1", "c2"}; !slices.Equal(sent, want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
	if names := consumerNames(t, js); len(names) != 0 {
		t.Errorf("consumers left on the stream: %v, want none", names)
	}
}
