package deadletter_test

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers/deadletter"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// stored is an event of the event stream and its dead letter.
type stored struct {
	id     string
	data   []byte
	origin streams.Origin
	dlqSeq uint64
}

// deadLetters stores one event per id in the event stream and writes its
// dead letter for route with the shared codec, as the dispatcher does.
func deadLetters(t *testing.T, js jetstream.JetStream, route string, ids ...string) []stored {
	t.Helper()
	ctx := t.Context()
	var out []stored
	for _, id := range ids {
		ev := nats.NewMsg("vmware.webhook.t.com_example_t")
		ev.Data = []byte(`{"specversion":"1.0","id":"` + id + `","source":"test","type":"com.example.t","data":{"n":1}}`)
		ev.Header.Set(streams.HeaderMsgID, "test:"+id)
		ev.Header.Set(streams.HeaderID, id)
		ev.Header.Set(streams.HeaderType, "com.example.t")
		ev.Header.Set(streams.HeaderSource, "test")
		ev.Header.Set(streams.HeaderContentType, streams.ContentType)
		ack, err := js.PublishMsg(ctx, ev, jetstream.WithExpectStream(streams.EventStream))
		if err != nil {
			t.Fatal(err)
		}
		origin := streams.Origin{Subject: ev.Subject, Stream: ack.Stream, Sequence: ack.Sequence,
			StoredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		d := streams.DeadLetter{Route: route, Reason: "status 400: rejected " + id, Failure: streams.FailurePermanent,
			Attempts: 1, FailedAt: time.Now().UTC(), Origin: origin}
		dack, err := js.PublishMsg(ctx, d.Msg(ev.Data, ev.Header, ack.Stream, ack.Sequence), jetstream.WithExpectStream(streams.DLQStream))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, stored{id: id, data: ev.Data, origin: origin, dlqSeq: dack.Sequence})
	}
	return out
}

// foreign stores a message on route's dead-letter subject that vrelay did
// not write: h lacks some of the dead-letter headers.
func foreign(t *testing.T, js jetstream.JetStream, route string, h nats.Header) uint64 {
	t.Helper()
	m := &nats.Msg{Subject: streams.DLQSubject(route), Data: []byte(`{}`), Header: h}
	ack, err := js.PublishMsg(t.Context(), m, jetstream.WithExpectStream(streams.DLQStream))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// onSubject returns how many messages stream holds on subject.
func onSubject(t *testing.T, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

func ids(letters []deadletter.Letter) []string {
	out := []string{}
	for _, l := range letters {
		out = append(out, l.EventID)
	}
	return out
}

func TestListGetPurge(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	failing := deadLetters(t, js, "failing", "e0", "e1", "e2")
	deadLetters(t, js, "other", "o0")

	letters, err := deadletter.List(ctx, js, deadletter.Selector{Route: "failing"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(letters), []string{"e0", "e1", "e2"}; !cmp.Equal(got, want) {
		t.Fatalf("List(failing): got %v, want %v", got, want)
	}
	l := letters[0]
	want := streams.DeadLetter{Route: "failing", Reason: "status 400: rejected e0", Failure: streams.FailurePermanent,
		Attempts: 1, FailedAt: l.FailedAt, Origin: failing[0].origin}
	if diff := cmp.Diff(want, l.DeadLetter); diff != "" || l.FailedAt.IsZero() {
		t.Errorf("List(failing)[0].DeadLetter (-want +got):\n%s", diff)
	}
	if l.Sequence != failing[0].dlqSeq || l.EventType != "com.example.t" || string(l.Data) != string(failing[0].data) {
		t.Errorf("List(failing)[0]: got sequence %d, type %q, data %s; want %d, com.example.t, the event's", l.Sequence, l.EventType, l.Data, failing[0].dlqSeq)
	}
	if err := l.Check(); err != nil {
		t.Errorf("Check(): got %v, want nil", err)
	}

	tests := []struct {
		name  string
		sel   deadletter.Selector
		limit int
		want  []string
	}{
		{name: "everything", want: []string{"e0", "e1", "e2", "o0"}},
		{name: "limit", limit: 2, want: []string{"e0", "e1"}},
		{name: "other route", sel: deadletter.Selector{Route: "other"}, want: []string{"o0"}},
		{name: "unknown route", sel: deadletter.Selector{Route: "nobody"}, want: []string{}},
		{name: "sequences", sel: deadletter.Selector{Sequences: []uint64{failing[2].dlqSeq, failing[0].dlqSeq}}, want: []string{"e0", "e2"}},
		{name: "sequence of another route", sel: deadletter.Selector{Route: "other", Sequences: []uint64{failing[0].dlqSeq}}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := deadletter.List(ctx, js, tt.sel, tt.limit)
			if err != nil || !cmp.Equal(ids(got), tt.want) {
				t.Errorf("List(%+v, %d): got %v, %v; want %v", tt.sel, tt.limit, ids(got), err, tt.want)
			}
			// Count ignores the limit: it says how many List would give without one.
			all, _ := deadletter.List(ctx, js, tt.sel, 0)
			if n, err := deadletter.Count(ctx, js, tt.sel); err != nil || n != len(all) {
				t.Errorf("Count(%+v): got %d, %v; want %d", tt.sel, n, err, len(all))
			}
		})
	}

	got, err := deadletter.Get(ctx, js, failing[1].dlqSeq)
	if err != nil || got.EventID != "e1" || got.Route != "failing" || got.Origin != failing[1].origin {
		t.Errorf("Get(%d): got %+v, %v; want e1 of route failing", failing[1].dlqSeq, got, err)
	}
	if _, err := deadletter.Get(ctx, js, 999); err == nil {
		t.Error("Get(999): got nil error, want one")
	}

	n, err := deadletter.Purge(ctx, js, deadletter.Selector{Sequences: []uint64{failing[1].dlqSeq}})
	if err != nil || n != 1 {
		t.Fatalf("Purge(e1): got %d, %v; want 1, nil", n, err)
	}
	n, err = deadletter.Purge(ctx, js, deadletter.Selector{Route: "failing"})
	if err != nil || n != 2 {
		t.Fatalf("Purge(failing): got %d, %v; want 2, nil", n, err)
	}
	if left, err := deadletter.List(ctx, js, deadletter.Selector{}, 0); err != nil || !cmp.Equal(ids(left), []string{"o0"}) {
		t.Errorf("after purging failing: got %v, %v; want [o0]", ids(left), err)
	}
	if n, err := deadletter.Purge(ctx, js, deadletter.Selector{}); err != nil || n != 1 {
		t.Errorf("Purge(all): got %d, %v; want 1, nil", n, err)
	}
	if events := natstest.Count(t, js, streams.EventStream); events != 4 {
		t.Errorf("event stream holds %d messages after purging, want 4", events)
	}
}

func TestReplay(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	failing := deadLetters(t, js, "failing", "e0", "e1", "e2")
	deadLetters(t, js, "other", "o0")
	events := natstest.Count(t, js, streams.EventStream)

	done, err := deadletter.Replay(ctx, js, deadletter.Selector{Route: "failing", Sequences: []uint64{failing[0].dlqSeq, failing[1].dlqSeq}})
	if err != nil {
		t.Fatal(err)
	}
	want := []deadletter.Replayed{
		{Sequence: failing[0].dlqSeq, Route: "failing", Subject: "vrelay.replay.failing", ReplaySequence: 1},
		{Sequence: failing[1].dlqSeq, Route: "failing", Subject: "vrelay.replay.failing", ReplaySequence: 2},
	}
	if diff := cmp.Diff(want, done); diff != "" {
		t.Errorf("Replay (-want +got):\n%s", diff)
	}

	if got := natstest.Count(t, js, streams.EventStream); got != events {
		t.Errorf("event stream holds %d messages after the replay, want %d: a replay adds no copy", got, events)
	}
	if got := natstest.Count(t, js, streams.ReplayStream); got != 2 {
		t.Errorf("replay stream holds %d messages, want 2", got)
	}
	if got := onSubject(t, js, streams.ReplayStream, "vrelay.replay.failing"); got != 2 {
		t.Errorf("vrelay.replay.failing holds %d messages, want 2 (only the failed route gets them)", got)
	}
	left, err := deadletter.List(ctx, js, deadletter.Selector{}, 0)
	if err != nil || !cmp.Equal(ids(left), []string{"e2", "o0"}) {
		t.Errorf("dead letters after the replay: got %v, %v; want [e2 o0]", ids(left), err)
	}

	// What the route will read: the event as stored, its origin, no
	// dead-letter headers.
	s, err := js.Stream(ctx, streams.ReplayStream)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range failing[:2] {
		raw, err := s.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if string(raw.Data) != string(want.data) {
			t.Errorf("replay %d data: got %s, want %s", i+1, raw.Data, want.data)
		}
		if got := raw.Header.Get(streams.HeaderID); got != want.id {
			t.Errorf("replay %d Ce-Id: got %q, want %q", i+1, got, want.id)
		}
		meta := &jetstream.MsgMetadata{Stream: streams.ReplayStream}
		if got := streams.OriginOf(raw.Subject, raw.Header, meta); got != want.origin {
			t.Errorf("replay %d origin: got %+v, want %+v", i+1, got, want.origin)
		}
		for _, k := range []string{streams.HeaderRoute, streams.HeaderReason, streams.HeaderReplayRoute} {
			if v := raw.Header.Get(k); v != "" {
				t.Errorf("replay %d header %s: got %q, want none", i+1, k, v)
			}
		}
	}

	// Nothing selected: nothing to do.
	if done, err := deadletter.Replay(ctx, js, deadletter.Selector{Route: "nobody"}); err != nil || len(done) != 0 {
		t.Errorf("Replay(nobody): got %v, %v; want nothing", done, err)
	}
}

func TestReplayTwiceStoresOnce(t *testing.T) {
	t.Run("after a replay that did not delete", func(t *testing.T) {
		_, js := natstest.Run(t)
		ctx := t.Context()
		letters := deadLetters(t, js, "failing", "e0")
		// An earlier replay stored the event and stopped before deleting the
		// dead letter.
		l, err := deadletter.Get(ctx, js, letters[0].dlqSeq)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, l.ReplayMsg(l.Sequence, l.Data, l.Header)); err != nil {
			t.Fatal(err)
		}

		done, err := deadletter.Replay(ctx, js, deadletter.Selector{Route: "failing"})
		if err != nil || len(done) != 1 || !done[0].Duplicate {
			t.Fatalf("Replay: got %+v, %v; want one duplicate", done, err)
		}
		if got := natstest.Count(t, js, streams.ReplayStream); got != 1 {
			t.Errorf("replay stream holds %d messages, want 1", got)
		}
		if got := natstest.Count(t, js, streams.DLQStream); got != 0 {
			t.Errorf("dead-letter stream holds %d messages, want 0", got)
		}
		if done, err := deadletter.Replay(ctx, js, deadletter.Selector{Route: "failing"}); err != nil || len(done) != 0 {
			t.Errorf("Replay once more: got %+v, %v; want nothing (the dead letter is gone)", done, err)
		}
	})

	t.Run("two at once", func(t *testing.T) {
		_, js := natstest.Run(t)
		deadLetters(t, js, "failing", "e0", "e1")
		events := natstest.Count(t, js, streams.EventStream)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() { _, errs[i] = deadletter.Replay(t.Context(), js, deadletter.Selector{Route: "failing"}) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if got := natstest.Count(t, js, streams.ReplayStream); got != 2 {
			t.Errorf("replay stream holds %d messages, want 2 (each dead letter once)", got)
		}
		if got := natstest.Count(t, js, streams.DLQStream); got != 0 {
			t.Errorf("dead-letter stream holds %d messages, want 0", got)
		}
		if got := natstest.Count(t, js, streams.EventStream); got != events {
			t.Errorf("event stream holds %d messages, want %d", got, events)
		}
	})
}

func TestReplayRefusesForeignLetters(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	good := deadLetters(t, js, "failing", "e0")
	noHeaders := foreign(t, js, "failing", nats.Header{streams.HeaderID: {"x1"}})
	noOrigin := foreign(t, js, "failing", nats.Header{streams.HeaderID: {"x2"}, streams.HeaderRoute: {"failing"}})
	noRoute := foreign(t, js, "failing", nats.Header{
		streams.HeaderID:               {"x3"},
		streams.HeaderOriginalSubject:  {"vmware.a.b.c"},
		streams.HeaderOriginalStream:   {streams.EventStream},
		streams.HeaderOriginalSequence: {"1"},
	})
	events := natstest.Count(t, js, streams.EventStream)

	tests := []struct {
		name string
		sel  deadletter.Selector
		bad  []uint64
	}{
		{name: "whole route", sel: deadletter.Selector{Route: "failing"}, bad: []uint64{noHeaders, noOrigin, noRoute}},
		{name: "every route", sel: deadletter.Selector{}, bad: []uint64{noHeaders, noOrigin, noRoute}},
		{name: "by sequence", sel: deadletter.Selector{Sequences: []uint64{good[0].dlqSeq, noOrigin}}, bad: []uint64{noOrigin}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done, err := deadletter.Replay(ctx, js, tt.sel)
			if !errors.Is(err, streams.ErrNotDeadLetter) || len(done) != 0 {
				t.Fatalf("Replay: got %+v, %v; want nothing and ErrNotDeadLetter", done, err)
			}
			for _, seq := range tt.bad {
				if !strings.Contains(err.Error(), strconv.FormatUint(seq, 10)) {
					t.Errorf("error %q does not name dead letter %d", err, seq)
				}
			}
			if !strings.Contains(err.Error(), "nothing was replayed") {
				t.Errorf("error %q does not say that nothing was replayed", err)
			}
			if got := natstest.Count(t, js, streams.DLQStream); got != 4 {
				t.Errorf("dead-letter stream holds %d messages, want all 4", got)
			}
			if got := natstest.Count(t, js, streams.ReplayStream); got != 0 {
				t.Errorf("replay stream holds %d messages, want 0", got)
			}
			if got := natstest.Count(t, js, streams.EventStream); got != events {
				t.Errorf("event stream holds %d messages, want %d", got, events)
			}
		})
	}

	// Foreign letters are listed, and the good one still replays by sequence.
	letters, err := deadletter.List(ctx, js, deadletter.Selector{Route: "failing"}, 0)
	if err != nil || len(letters) != 4 {
		t.Fatalf("List: got %d letters, %v; want 4", len(letters), err)
	}
	if err := letters[1].Check(); !errors.Is(err, streams.ErrNotDeadLetter) {
		t.Errorf("Check(foreign letter): got %v, want ErrNotDeadLetter", err)
	}
	done, err := deadletter.Replay(ctx, js, deadletter.Selector{Sequences: []uint64{good[0].dlqSeq}})
	if err != nil || len(done) != 1 {
		t.Errorf("Replay(good letter): got %+v, %v; want it replayed", done, err)
	}
}

func TestReplayWithoutReplayStream(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	deadLetters(t, js, "failing", "e0")
	if err := js.DeleteStream(ctx, streams.ReplayStream); err != nil {
		t.Fatal(err)
	}
	done, err := deadletter.Replay(ctx, js, deadletter.Selector{Route: "failing"})
	if err == nil || !strings.Contains(err.Error(), streams.ReplayStream) || len(done) != 0 {
		t.Fatalf("Replay: got %+v, %v; want nothing and an error naming %s", done, err, streams.ReplayStream)
	}
	if got := natstest.Count(t, js, streams.DLQStream); got != 1 {
		t.Errorf("dead-letter stream holds %d messages, want 1", got)
	}
}
