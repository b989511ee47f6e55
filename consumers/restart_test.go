package consumers_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// slowSink delivers after a short pause, so that a server restart falls in
// the middle of the stream.
type slowSink struct{ *scriptSink }

func (s slowSink) Send(ctx context.Context, ev event.Event) error {
	select {
	case <-time.After(2 * time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.scriptSink.Send(ctx, ev)
}

// TestNATSRestartMidStream restarts the NATS server while a route is
// delivering: every event still arrives.
func TestNATSRestartMidStream(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.Start(t, dir, "127.0.0.1:0")
	addr := srv.ListenAddr()
	_, js := natstest.Connect(t, srv.ClientURL())
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	const n = 600
	ids := make([]string, n)
	evs := make([]event.Event, n)
	for i := range ids {
		ids[i] = "r" + strconv.Itoa(i)
		ev := event.New()
		ev.SetID(ids[i])
		ev.SetSource("restart")
		ev.SetType("com.example.t")
		evs[i] = ev
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "restart"})
	if err := pub.Publish(t.Context(), producers.Records(evs...)...); err != nil {
		t.Fatal(err)
	}

	sink := newScriptSink()
	d := fastDelivery()
	d.MaxInFlight = 4
	d.MaxAttempts = 1000
	start(t, js, consumers.Route{Name: "restart", Delivery: d}, slowSink{sink})

	// Restart once a part has been delivered.
	got := map[string]int{}
	for len(got) < n/4 {
		got[<-sink.notify]++
	}
	srv.Shutdown()
	natstest.Start(t, dir, addr)
	t.Logf("nats-server restarted after %d deliveries", len(got))

	timeout := time.After(60 * time.Second)
	for len(got) < n {
		select {
		case id := <-sink.notify:
			got[id]++
		case <-timeout:
			t.Fatalf("delivered %d of %d distinct events after the restart", len(got), n)
		}
	}
	for _, id := range ids {
		if got[id] < 1 {
			t.Errorf("event %s never delivered", id)
		}
	}
}
