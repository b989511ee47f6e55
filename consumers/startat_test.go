package consumers_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// idSink records the ids it accepts, in order.
type idSink struct {
	mu  sync.Mutex
	ids []string
}

func (s *idSink) Send(_ context.Context, ev event.Event) error {
	s.mu.Lock()
	s.ids = append(s.ids, ev.ID())
	s.mu.Unlock()
	return nil
}

func (s *idSink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ids)
}

// waitIDs waits until s holds n ids and returns them sorted.
func waitIDs(t *testing.T, s *idSink, n int) []string {
	t.Helper()
	eventually(t, "deliveries", func() bool { return len(s.got()) >= n })
	got := s.got()
	slices.Sort(got)
	return got
}

func TestStartAtPositions(t *testing.T) {
	_, js := natstest.Run(t)
	publish(t, js, "a1", "a2", "a3") // sequences 1 to 3
	// The stream's clock, not the test's, stamps the events: wait well
	// clear of the cut on both sides.
	time.Sleep(300 * time.Millisecond)
	cut := time.Now()
	time.Sleep(300 * time.Millisecond)
	publish(t, js, "b1", "b2") // sequences 4 and 5

	tests := []struct {
		name    string
		startAt func() string // computed just before the route is created
		want    []string      // after c1 is published
	}{
		{"new", func() string { return "new" }, []string{"c1"}},
		{"all", func() string { return "all" }, []string{"a1", "a2", "a3", "b1", "b2", "c1"}},
		{"time", func() string { return cut.UTC().Format(time.RFC3339Nano) }, []string{"b1", "b2", "c1"}},
		// The duration reaches back from when the consumer is created.
		{"ago", func() string { return time.Since(cut).Round(time.Millisecond).String() }, []string{"b1", "b2", "c1"}},
		{"seq", func() string { return "seq:5" }, []string{"b2", "c1"}},
	}
	sinks := make([]*idSink, len(tests))
	for i, tt := range tests {
		d, err := consumers.NewDispatcher(js, consumers.Route{Name: "start-" + tt.name,
			Delivery: consumers.Delivery{StartAt: tt.startAt()}}, nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if _, err := d.Ensure(t.Context()); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		sinks[i] = &idSink{}
	}
	publish(t, js, "c1")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := fastDelivery()
			d.StartAt = "new" // the consumer exists: this changes nothing
			start(t, js, consumers.Route{Name: "start-" + tt.name, Delivery: d}, sinks[i])
			waitIDs(t, sinks[i], len(tt.want))
			// Let a wrong start show with more events.
			time.Sleep(200 * time.Millisecond)
			if got := waitIDs(t, sinks[i], len(tt.want)); !slices.Equal(got, tt.want) {
				t.Errorf("delivered %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStartAtOfExistingRouteKeepsItsPosition(t *testing.T) {
	_, js := natstest.Run(t)
	publish(t, js, "old")
	first := fastDelivery()
	first.StartAt = "new"
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: "kept", Delivery: first}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	again := fastDelivery()
	again.StartAt = "all"
	sink := &idSink{}
	d2, err := consumers.NewDispatcher(js, consumers.Route{Name: "kept", Delivery: again}, sink, consumers.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d2.Run(ctx) }()
	publish(t, js, "next")
	if got := waitIDs(t, sink, 1); !slices.Equal(got, []string{"next"}) {
		t.Errorf("delivered %v, want [next]: the consumer was created with startAt new", got)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if got := sink.got(); !slices.Equal(got, []string{"next"}) {
		t.Errorf("delivered %v, want [next]", got)
	}
	c, err := js.Consumer(t.Context(), streams.EventStream, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if p := c.CachedInfo().Config.DeliverPolicy; p != jetstream.DeliverNewPolicy {
		t.Errorf("deliver policy %s, want new (kept)", p)
	}
	out := logs.String()
	for _, want := range []string{"level=INFO", "keeps its position", "start_at=all", "created_with=new", "vrelay route replay"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// syncWriter serializes writes of concurrent log calls.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestDeliveryValidateStartAtAndRateLimit(t *testing.T) {
	tests := []struct {
		name string
		edit func(*consumers.Delivery)
		want string // "" for valid
	}{
		{"new", func(d *consumers.Delivery) { d.StartAt = "new" }, ""},
		{"all", func(d *consumers.Delivery) { d.StartAt = "all" }, ""},
		{"rfc3339", func(d *consumers.Delivery) { d.StartAt = "2026-11-27T08:00:00Z" }, ""},
		{"rfc3339 with offset and fraction", func(d *consumers.Delivery) { d.StartAt = "2026-11-27T08:00:00.5+01:00" }, ""},
		{"duration", func(d *consumers.Delivery) { d.StartAt = "90m" }, ""},
		{"days", func(d *consumers.Delivery) { d.StartAt = "7d" }, ""},
		{"seq", func(d *consumers.Delivery) { d.StartAt = "seq:42" }, ""},
		{"unknown word", func(d *consumers.Delivery) { d.StartAt = "beginning" },
			`startAt: "beginning" is not one of new, all, an RFC 3339 time`},
		{"date only", func(d *consumers.Delivery) { d.StartAt = "2026-11-27" }, `startAt: "2026-11-27" is not one of`},
		{"negative duration", func(d *consumers.Delivery) { d.StartAt = "-2h" }, `startAt: "-2h" is not one of`},
		{"zero days", func(d *consumers.Delivery) { d.StartAt = "0d" }, `startAt: "0d" is not one of`},
		{"seq zero", func(d *consumers.Delivery) { d.StartAt = "seq:0" }, `startAt: "seq:0": the sequence after seq: must be a whole number of at least 1`},
		{"seq word", func(d *consumers.Delivery) { d.StartAt = "seq:x" }, `startAt: "seq:x": the sequence after seq:`},
		{"rate", func(d *consumers.Delivery) { d.RateLimit = &consumers.RateLimit{PerSecond: 20} }, ""},
		{"rate fraction", func(d *consumers.Delivery) {
			d.MaxInFlight = 1
			d.RateLimit = &consumers.RateLimit{PerSecond: 0.5, Burst: 2}
		}, ""},
		{"rate zero", func(d *consumers.Delivery) { d.RateLimit = &consumers.RateLimit{} }, "rateLimit.perSecond: must be above 0"},
		{"rate negative burst", func(d *consumers.Delivery) { d.RateLimit = &consumers.RateLimit{PerSecond: 5, Burst: -1} },
			"rateLimit.burst: must be at least 1"},
		{"rate too low for the ack wait", func(d *consumers.Delivery) { d.RateLimit = &consumers.RateLimit{PerSecond: 0.1} },
			"rateLimit.perSecond: 0.1 is too low for the events the route holds at once (32 with maxInFlight 16)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d consumers.Delivery
			tt.edit(&d)
			d.SetDefaults()
			err := d.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	d := consumers.Delivery{RateLimit: &consumers.RateLimit{PerSecond: 2.5}}
	d.SetDefaults()
	if d.RateLimit.Burst != 3 {
		t.Errorf("default burst for 2.5/s: got %d, want 3", d.RateLimit.Burst)
	}
	d = consumers.Delivery{RateLimit: &consumers.RateLimit{PerSecond: 0.2}}
	d.SetDefaults()
	if d.RateLimit.Burst != 1 {
		t.Errorf("default burst for 0.2/s: got %d, want 1", d.RateLimit.Burst)
	}
}
