package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// scriptSink answers each event's attempts from a script; past its end it
// accepts. It records every attempt.
type scriptSink struct {
	mu       sync.Mutex
	script   map[string][]error // by event id
	attempts map[string][]time.Time
	notify   chan string // receives the id of each delivered event
}

func newScriptSink() *scriptSink {
	return &scriptSink{script: map[string][]error{}, attempts: map[string][]time.Time{}, notify: make(chan string, 1000)}
}

func (s *scriptSink) Send(_ context.Context, ev event.Event) error {
	s.mu.Lock()
	id := ev.ID()
	n := len(s.attempts[id])
	s.attempts[id] = append(s.attempts[id], time.Now())
	var err error
	if n < len(s.script[id]) {
		err = s.script[id][n]
	}
	s.mu.Unlock()
	if err == nil {
		s.notify <- id
	}
	return err
}

func (s *scriptSink) attemptsOf(id string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.attempts[id]...)
}

func publish(t *testing.T, js jetstream.JetStream, ids ...string) {
	t.Helper()
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "test"})
	evs := make([]event.Event, len(ids))
	for i, id := range ids {
		ev := event.New()
		ev.SetID(id)
		ev.SetSource("test")
		ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
		ev.SetSubject("VmPoweredOnEvent")
		_ = ev.SetData(event.ApplicationJSON, map[string]any{"Vm": map[string]any{"Name": "prod-" + id}})
		evs[i] = ev
	}
	if err := pub.Publish(t.Context(), producers.Records(evs...)...); err != nil {
		t.Fatal(err)
	}
}

func fastDelivery() consumers.Delivery {
	return consumers.Delivery{
		MaxAttempts: 5,
		SendTimeout: 2 * time.Second,
		AckWait:     5 * time.Second,
		Backoff:     consumers.Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond},
		StartAt:     consumers.StartAtAll,
	}
}

// start runs a dispatcher until the test ends.
func start(t *testing.T, js jetstream.JetStream, r consumers.Route, sink consumers.Sink) context.CancelFunc {
	t.Helper()
	d, err := consumers.NewDispatcher(js, r, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
	return cancel
}

func waitDelivered(t *testing.T, s *scriptSink, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	timeout := time.After(30 * time.Second)
	for total := 0; total < n; total++ {
		select {
		case id := <-s.notify:
			got[id]++
		case <-timeout:
			t.Fatalf("delivered %d of %d events before giving up: %v", total, n, got)
		}
	}
	return got
}

type deadLetter struct {
	id      string
	headers map[string]string
}

func readDLQ(t *testing.T, js jetstream.JetStream, route string, n int) []deadLetter {
	t.Helper()
	c, err := js.OrderedConsumer(t.Context(), streams.DLQStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{streams.DLQSubject(route)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []deadLetter
	for len(out) < n {
		msg, err := c.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil {
			t.Fatalf("read dead letter %d of %d: %v", len(out)+1, n, err)
		}
		ev, err := streams.Decode(msg.Data())
		if err != nil {
			t.Fatalf("dead letter body: %v", err)
		}
		h := map[string]string{}
		for k := range msg.Headers() {
			h[k] = msg.Headers().Get(k)
		}
		out = append(out, deadLetter{id: ev.ID(), headers: h})
	}
	return out
}

func dlqCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	return natstest.Count(t, js, streams.DLQStream)
}

func TestRetryThenDeliver(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newScriptSink()
	unavailable := errors.New("503 service unavailable")
	sink.script["e1"] = []error{unavailable, unavailable}
	start(t, js, consumers.Route{Name: "retry", Delivery: fastDelivery()}, sink)
	publish(t, js, "e1", "e2")

	got := waitDelivered(t, sink, 2)
	if got["e1"] != 1 || got["e2"] != 1 {
		t.Fatalf("deliveries = %v, want e1 and e2 once each", got)
	}
	at := sink.attemptsOf("e1")
	if len(at) != 3 {
		t.Fatalf("attempts on e1 = %d, want 3", len(at))
	}
	// Backoff, not a hot loop: each pause is at least half the initial delay.
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 50*time.Millisecond {
			t.Errorf("pause before attempt %d = %s, want >= 50ms (backoff)", i+1, gap)
		}
	}
	if n := dlqCount(t, js); n != 0 {
		t.Errorf("dead letters = %d, want 0", n)
	}
}

func TestPermanentGoesToDLQOnce(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newScriptSink()
	sink.script["bad"] = []error{consumers.Permanent(errors.New("status 400: missing field Vm"))}
	start(t, js, consumers.Route{Name: "perm", Delivery: fastDelivery()}, sink)
	publish(t, js, "bad", "good")

	waitDelivered(t, sink, 1)
	dl := readDLQ(t, js, "perm", 1)
	if dl[0].id != "bad" {
		t.Fatalf("dead letter id = %q, want bad", dl[0].id)
	}
	h := dl[0].headers
	want := map[string]string{
		streams.HeaderRoute:            "perm",
		streams.HeaderFailure:          streams.FailurePermanent,
		streams.HeaderAttempts:         "1",
		streams.HeaderOriginalSubject:  "vmware.webhook.test.com_vmware_vsphere_VmPoweredOnEvent_v0",
		streams.HeaderOriginalStream:   streams.EventStream,
		streams.HeaderOriginalSequence: "1",
		streams.HeaderType:             "com.vmware.vsphere.VmPoweredOnEvent.v0",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("dead letter header %s = %q, want %q", k, h[k], v)
		}
	}
	if h[streams.HeaderReason] != "permanent: status 400: missing field Vm" {
		t.Errorf("reason = %q, want the sink's error", h[streams.HeaderReason])
	}
	if _, err := time.Parse(time.RFC3339Nano, h[streams.HeaderFailedAt]); err != nil {
		t.Errorf("failed-at header %q: %v", h[streams.HeaderFailedAt], err)
	}
	if n := len(sink.attemptsOf("bad")); n != 1 {
		t.Errorf("attempts on a permanent failure = %d, want 1 (no retry)", n)
	}
}

func TestAttemptsExhaustedGoToDLQ(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newScriptSink()
	down := errors.New("connection refused")
	sink.script["x"] = []error{down, down, down, down, down, down, down}
	d := fastDelivery()
	d.MaxAttempts = 3
	start(t, js, consumers.Route{Name: "exhaust", Delivery: d}, sink)
	publish(t, js, "x")

	dl := readDLQ(t, js, "exhaust", 1)
	if got := dl[0].headers[streams.HeaderFailure]; got != streams.FailureExhausted {
		t.Errorf("failure kind = %q, want %q", got, streams.FailureExhausted)
	}
	if got := dl[0].headers[streams.HeaderAttempts]; got != "3" {
		t.Errorf("attempts header = %q, want 3", got)
	}
	if n := len(sink.attemptsOf("x")); n != 3 {
		t.Errorf("attempts = %d, want 3", n)
	}
}

func TestFilterAcksNonMatching(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newScriptSink()
	f, err := filters.Compile(`data.Vm.Name endsWith "-keep"`)
	if err != nil {
		t.Fatal(err)
	}
	start(t, js, consumers.Route{Name: "filtered", Filter: f, Delivery: fastDelivery()}, sink)
	publish(t, js, "drop1", "keep", "drop2")

	got := waitDelivered(t, sink, 1)
	if got["keep"] != 1 {
		t.Fatalf("delivered %v, want only keep", got)
	}
	// Wait until the consumer has nothing pending: filtered events are acked.
	c, err := js.Consumer(t.Context(), streams.EventStream, "filtered")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer state pending=%d ack_pending=%d ack_floor=%d, want all 3 acked",
				info.NumPending, info.NumAckPending, info.AckFloor.Stream)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, id := range []string{"drop1", "drop2"} {
		if n := len(sink.attemptsOf(id)); n != 0 {
			t.Errorf("filtered-out %s sent %d times, want 0", id, n)
		}
	}
}

func TestRestartResumesWhereItStopped(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newScriptSink()
	r := consumers.Route{Name: "resume", Delivery: fastDelivery()}
	stop := start(t, js, r, sink)
	publish(t, js, "a1", "a2", "a3")
	waitDelivered(t, sink, 3)
	stop()

	publish(t, js, "b1", "b2")
	start(t, js, r, sink)
	got := waitDelivered(t, sink, 2)
	if got["b1"] != 1 || got["b2"] != 1 {
		t.Fatalf("after restart delivered %v, want b1 and b2", got)
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		if n := len(sink.attemptsOf(id)); n != 1 {
			t.Errorf("%s sent %d times across the restart, want 1", id, n)
		}
	}
}

func TestDLQOutageNeverDrops(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	if err := js.DeleteStream(ctx, streams.DLQStream); err != nil {
		t.Fatal(err)
	}
	sink := newScriptSink()
	perm := consumers.Permanent(errors.New("status 422"))
	sink.script["p"] = []error{perm, perm, perm, perm, perm, perm, perm, perm, perm, perm, perm, perm, perm, perm, perm, perm}
	start(t, js, consumers.Route{Name: "dlqdown", Delivery: fastDelivery()}, sink)
	publish(t, js, "p")

	// While the DLQ is missing, the event keeps coming back.
	deadline := time.Now().Add(20 * time.Second)
	for len(sink.attemptsOf("p")) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("event was not retried while the dead-letter stream was down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(ctx, js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	dl := readDLQ(t, js, "dlqdown", 1)
	if dl[0].id != "p" {
		t.Fatalf("dead letter = %q, want p", dl[0].id)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newScriptSink()
	sink.script["r"] = []error{consumers.RetryAfter(errors.New("429 too many requests"), 300*time.Millisecond)}
	d := fastDelivery()
	d.Backoff = consumers.Backoff{Initial: 10 * time.Millisecond, Max: time.Second}
	start(t, js, consumers.Route{Name: "retryafter", Delivery: d}, sink)
	publish(t, js, "r")
	waitDelivered(t, sink, 1)
	at := sink.attemptsOf("r")
	if len(at) != 2 {
		t.Fatalf("attempts = %d, want 2", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 300*time.Millisecond {
		t.Errorf("retry came %s after a Retry-After of 300ms, want >= 300ms", gap)
	}
}

func TestManyEventsConcurrently(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newScriptSink()
	ids := make([]string, 500)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
		if i%10 == 0 {
			sink.script[ids[i]] = []error{fmt.Errorf("transient %d", i)}
		}
	}
	start(t, js, consumers.Route{Name: "many", Delivery: fastDelivery()}, sink)
	publish(t, js, ids...)
	got := waitDelivered(t, sink, len(ids))
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want 1", id, got[id])
		}
	}
}

func TestNewDispatcherRejects(t *testing.T) {
	_, js := natstest.Run(t)
	tests := []struct {
		name  string
		route consumers.Route
		sink  consumers.Sink
		want  string // in the error
	}{
		{name: "bad name", route: consumers.Route{Name: "has.dot"}},
		{name: "ack wait not above send timeout", route: consumers.Route{Name: "ok", Delivery: consumers.Delivery{SendTimeout: time.Minute, AckWait: time.Minute}}},
		{name: "batches for a sink of single events", route: consumers.Route{Name: "single", Delivery: consumers.Delivery{MaxBatch: 10}},
			want: "route single: delivery.maxBatch is 10, but its sink sends one event per request"},
		{name: "maxBatch above 1000", route: consumers.Route{Name: "big", Delivery: consumers.Delivery{MaxBatch: 1001, MaxAckPending: 5000}},
			sink: newBatchSink(), want: "maxBatch: must be between 1 and 1000"},
		{name: "maxBatch above maxAckPending", route: consumers.Route{Name: "pending", Delivery: consumers.Delivery{MaxBatch: 200, MaxAckPending: 100}},
			sink: newBatchSink(), want: "maxBatch: must not exceed maxAckPending (100)"},
		{name: "batchWait not below sendTimeout", route: consumers.Route{Name: "wait", Delivery: consumers.Delivery{MaxBatch: 10, BatchWait: time.Second, SendTimeout: time.Second}},
			sink: newBatchSink(), want: "batchWait: must be shorter than sendTimeout (1s)"},
		{name: "negative batchWait", route: consumers.Route{Name: "neg", Delivery: consumers.Delivery{BatchWait: -time.Second}},
			want: "batchWait: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := tt.sink
			if sink == nil {
				sink = newScriptSink()
			}
			_, err := consumers.NewDispatcher(js, tt.route, sink)
			if err == nil {
				t.Fatal("NewDispatcher got nil error, want one")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewDispatcher: got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDefaultSubjects(t *testing.T) {
	_, js := natstest.Run(t)
	tests := []struct {
		name string
		opts []consumers.Option
		want []string
	}{
		{name: "default root", want: []string{"vmware.>"}},
		{name: "configured root", opts: []consumers.Option{consumers.WithSubjectRoot("lab")}, want: []string{"lab.>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := consumers.NewDispatcher(js, consumers.Route{Name: "all"}, newScriptSink(), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := d.ConsumerConfig().FilterSubjects; !slices.Equal(got, tt.want) {
				t.Errorf("filter subjects: got %v, want %v", got, tt.want)
			}
		})
	}
}
