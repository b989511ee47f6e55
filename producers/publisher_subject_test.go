package producers_test

import (
	"bytes"
	"fmt"
	"testing"

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
