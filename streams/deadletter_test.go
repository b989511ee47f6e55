package streams_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

func TestDeadLetterRoundTrip(t *testing.T) {
	stored := time.Date(2026, 11, 27, 10, 0, 0, 123, time.UTC)
	failed := stored.Add(time.Minute)
	d := streams.DeadLetter{
		Route:    "vm-on",
		Reason:   strings.Repeat("x", 2000),
		Failure:  streams.FailurePermanent,
		Attempts: 3,
		FailedAt: failed,
		Origin:   streams.Origin{Subject: "vmware.vcenter.vc01.VmPoweredOnEvent", Stream: streams.EventStream, Sequence: 42, StoredAt: stored},
	}
	h := nats.Header{
		streams.HeaderMsgID:            {"uuid:42"},
		streams.HeaderID:               {"42"},
		streams.HeaderType:             {"com.vmware.vsphere.VmPoweredOnEvent.v0"},
		streams.HeaderContentType:      {streams.ContentType},
		jetstream.ExpectedStreamHeader: {streams.EventStream},
		streams.HeaderReplayRoute:      {"old"},
		streams.HeaderReason:           {"an earlier failure"},
	}
	m := d.Msg([]byte(`{}`), h, streams.EventStream, 42)
	if m.Subject != "vrelay.dlq.vm-on" {
		t.Errorf("subject: got %q, want vrelay.dlq.vm-on", m.Subject)
	}
	if got, want := m.Header.Get(streams.HeaderMsgID), "vm-on:VMWARE_EVENTS:42"; got != want {
		t.Errorf("Nats-Msg-Id: got %q, want %q", got, want)
	}
	for _, k := range []string{jetstream.ExpectedStreamHeader, streams.HeaderReplayRoute} {
		if v := m.Header.Get(k); v != "" {
			t.Errorf("header %s: got %q, want it dropped", k, v)
		}
	}
	if got := m.Header.Get(streams.HeaderID); got != "42" {
		t.Errorf("Ce-Id: got %q, want 42", got)
	}
	got, err := streams.ParseDeadLetter(m.Header)
	if err != nil {
		t.Fatal(err)
	}
	want := d
	want.Reason = strings.Repeat("x", 1024) + "…"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseDeadLetter (-want +got):\n%s", diff)
	}

	if _, err := streams.ParseDeadLetter(nats.Header{}); !errors.Is(err, streams.ErrNotDeadLetter) {
		t.Errorf("ParseDeadLetter(no headers): got %v, want ErrNotDeadLetter", err)
	}
}

func TestReplayKeepsOrigin(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	origin := streams.Origin{Subject: "vmware.webhook.hooks.t", Stream: streams.EventStream, Sequence: 7,
		StoredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	d := streams.DeadLetter{Route: "r1", Reason: "boom", Failure: streams.FailureExhausted, Attempts: 5, FailedAt: time.Now(), Origin: origin}
	dl := d.Msg([]byte(`{"id":"1"}`), nats.Header{streams.HeaderID: {"1"}}, streams.EventStream, 7)

	replay := d.ReplayMsg(9, dl.Data, dl.Header)
	if replay.Subject != "vrelay.replay.r1" {
		t.Errorf("replay subject: got %q, want vrelay.replay.r1", replay.Subject)
	}
	if got := replay.Header.Get(streams.HeaderRoute); got != "" {
		t.Errorf("replay carries dead-letter header %s=%q, want none", streams.HeaderRoute, got)
	}
	if _, err := js.PublishMsg(ctx, replay, jetstream.WithExpectStream(streams.ReplayStream)); err != nil {
		t.Fatal(err)
	}
	// The same replay again is a duplicate.
	ack, err := js.PublishMsg(ctx, d.ReplayMsg(9, dl.Data, dl.Header))
	if err != nil || !ack.Duplicate {
		t.Errorf("second replay: got ack %+v, %v; want a duplicate", ack, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, streams.ReplayStream, streams.ReplayConsumerConfig("r1", time.Minute, 100))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next()
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := msg.Metadata()
	if got := streams.OriginOf(msg.Subject(), msg.Headers(), meta); !cmp.Equal(got, origin) {
		t.Errorf("OriginOf(replay): got %+v, want %+v", got, origin)
	}
	// A second failure of the replay is a new dead letter, not a duplicate of the first.
	again := d.Msg(msg.Data(), msg.Headers(), meta.Stream, meta.Sequence.Stream)
	if a, b := again.Header.Get(streams.HeaderMsgID), dl.Header.Get(streams.HeaderMsgID); a == b {
		t.Errorf("dead letter of the replay has the first one's Nats-Msg-Id %q", a)
	}
	if err := msg.DoubleAck(ctx); err != nil { // confirmed, so the count below is not a race
		t.Fatal(err)
	}
	s, _ := js.Stream(ctx, streams.ReplayStream)
	if n := natstest.Count(t, js, streams.ReplayStream); n != 0 {
		info, _ := s.Info(ctx)
		t.Errorf("replay stream holds %d messages after the ack, want 0 (work queue): %+v", n, info.State)
	}
	if n := natstest.Count(t, js, streams.EventStream); n != 0 {
		t.Errorf("event stream holds %d messages, want 0: a replay adds no copy", n)
	}

	// An ordinary message's origin is itself.
	plain := &jetstream.MsgMetadata{Stream: streams.EventStream, Timestamp: origin.StoredAt}
	plain.Sequence.Stream = 3
	if got := streams.OriginOf("vmware.a.b.c", nats.Header{}, plain); got.Sequence != 3 || got.Subject != "vmware.a.b.c" {
		t.Errorf("OriginOf(plain): got %+v", got)
	}
}
