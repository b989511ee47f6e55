package consumers

import (
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
)

// TestAckTimestamp checks the reply subjects ackTimestamp reads as
// nats.go's Metadata does: the two forms, and those Metadata rejects.
func TestAckTimestamp(t *testing.T) {
	const ts = 1764300000123456789
	tests := []struct {
		reply string
		want  int64
		ok    bool
	}{
		{"$JS.ACK.S.C.1.2.3.1764300000123456789.0", ts, true},                    // 9 tokens
		{"$JS.ACK.dom.hash.S.C.1.2.3.1764300000123456789.0.rand", ts, true},      // 12
		{"$JS.ACK.dom.hash.S.C.1.2.3.1764300000123456789.0", ts, true},           // 11
		{"$JS.ACK.dom.hash.S.C.1.2.3.1764300000123456789.0.rand.more", ts, true}, // 13
		{"$JS.ACK.S.C.1.2.3.17x.0", 0, true},                                     // ParseNum reads 0
		{"$JS.ACK.dom.hash.S.C.1.2.3.4", 0, false},                               // 10 tokens
		{"$JS.ACK.S.C.1.2.3.4", 0, false},                                        // 8
		{"$JS.NAK.S.C.1.2.3.1764300000123456789.0", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := ackTimestamp(tt.reply)
		if ok != tt.ok || (ok && got.UnixNano() != tt.want) {
			t.Errorf("ackTimestamp(%q) = %d, %t; want %d, %t", tt.reply, got.UnixNano(), ok, tt.want, tt.ok)
		}
	}
}

// TestAckTimestampMatchesMetadata checks ackTimestamp against nats.go on a
// message of a real server, and that prepare leaves the metadata for later
// and gives the same on demand.
func TestAckTimestampMatchesMetadata(t *testing.T) {
	_, js := natstest.Run(t)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "meta"})
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("urn:meta")
	ev.SetType("t")
	if err := pub.Publish(t.Context(), producers.Records(ev)...); err != nil {
		t.Fatal(err)
	}
	d, err := NewDispatcher(js, Route{Name: "meta", Delivery: Delivery{StartAt: StartAtAll}}, nopSink{})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := d.Ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	msg := <-batch.Messages()
	if msg == nil {
		t.Fatalf("no message: %v", batch.Error())
	}
	want, err := msg.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ackTimestamp(msg.Reply())
	if !ok || !got.Equal(want.Timestamp) {
		t.Errorf("ackTimestamp(%q) = %v, %t; want %v (Metadata)", msg.Reply(), got, ok, want.Timestamp)
	}
	p, send := d.prepare(msg)
	if !send {
		t.Fatal("prepare: not sent")
	}
	if p.meta != nil {
		t.Error("prepare parsed the metadata; want it left for later")
	}
	if m := p.metadata(); *m != *want {
		t.Errorf("metadata(): got %+v, want %+v", *m, *want)
	}
}
