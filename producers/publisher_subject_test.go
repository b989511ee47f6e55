package producers_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// TestPublisherSubjects: the subjects a publisher keeps per token are its
// own scope's, sanitised, and tokens seen after it keeps MaxSubjects get
// theirs too.
func TestPublisherSubjects(t *testing.T) {
	a := producers.NewPublisher(nil, producers.Scope{Provider: "vcenter", Source: "vc 01"})
	b := producers.NewPublisher(nil, producers.Scope{Root: "r", Provider: "horizon", Source: "hz"})
	for round := range 2 {
		for i := range producers.MaxSubjects + 20 {
			tok := fmt.Sprintf("Type.%d *x", i)
			want := streams.Subject(streams.DefaultRoot, "vcenter", "vc 01", tok)
			if got := a.Subject(&producers.Record{Token: tok}); got != want {
				t.Fatalf("round %d: got %q, want %q", round, got, want)
			}
			want = streams.Subject("r", "horizon", "hz", tok)
			if got := b.Subject(&producers.Record{Token: tok}); got != want {
				t.Fatalf("round %d: got %q, want %q", round, got, want)
			}
		}
	}
	ev := newEvent(1)
	if got, want := a.Subject(&producers.Record{Event: ev}), "vmware.vcenter.vc_01.com_vmware_vsphere_VmPoweredOnEvent_v0"; got != want {
		t.Errorf("default token: got %q, want %q", got, want)
	}
}

// TestPublishTrustedJSON: a record marked TrustedJSON is stored as the
// same record unmarked is.
func TestPublishTrustedJSON(t *testing.T) {
	_, js := natstest.Run(t)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"})
	recs := []producers.Record{
		{Event: newEvent(1), MsgID: "u:1", Token: "VmPoweredOnEvent"},
		{Event: newEvent(2), MsgID: "u:2", Token: "VmPoweredOnEvent", TrustedJSON: true},
	}
	if err := pub.Publish(t.Context(), recs...); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, m.Data)
	}
	ev := newEvent(2)
	want, err := streams.MarshalEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bodies[1], want) {
		t.Errorf("trusted record stored as %s, want %s", bodies[1], want)
	}
}

// TestPublishExpectsEventStream: every message names the event stream it
// must land in, so a subject another stream captures is refused, not
// stored there.
func TestPublishExpectsEventStream(t *testing.T) {
	_, js := natstest.Run(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"elsewhere.>"}}); err != nil {
		t.Fatal(err)
	}
	pub := producers.NewPublisher(js, producers.Scope{Root: "elsewhere", Provider: "vcenter", Source: "vc01"},
		producers.WithPublishRetry(1, time.Millisecond))
	for range 2 { // the second time with the options made once
		if err := pub.Publish(t.Context(), producers.Record{Event: newEvent(1), MsgID: "u:1", Token: "T"}); err == nil {
			t.Fatal("got no error publishing to a subject of another stream")
		}
	}
	s, err := js.Stream(t.Context(), "OTHER")
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("OTHER holds %d messages, want 0", n)
	}
}
