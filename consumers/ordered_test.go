package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// keyed is the data of the events of the ordered tests: a key and a
// counter that grows per key in publish order.
type keyed struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

func keyedID(key string, n int) string { return fmt.Sprintf("%s-%03d", key, n) }

// publishKeyed publishes events n0..n0+perKey-1 of each key, interleaving
// the keys.
func publishKeyed(t *testing.T, js jetstream.JetStream, keys []string, n0, perKey int) {
	t.Helper()
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "order"})
	var evs []event.Event
	for n := n0; n < n0+perKey; n++ {
		for _, k := range keys {
			ev := event.New()
			ev.SetID(keyedID(k, n))
			ev.SetSource("order")
			ev.SetType("com.example.ordered")
			_ = ev.SetData(event.ApplicationJSON, keyed{Key: k, N: n})
			evs = append(evs, ev)
		}
	}
	if err := pub.Publish(t.Context(), producers.Records(evs...)...); err != nil {
		t.Fatal(err)
	}
}

// orderSink is an HTTP receiver that records the counters it accepted per
// key, in arrival order, and the most requests it had at once, in all and
// per key. It answers 503 to an event as many times as fail says, and 400
// to the events of reject.
type orderSink struct {
	srv   *httptest.Server
	delay time.Duration

	mu        sync.Mutex
	got       map[string][]int // accepted counters by key, in arrival order
	ids       map[string]int   // acceptances by id
	fail      map[string]int   // 503s left by id
	reject    map[string]bool
	now       int
	most      int
	nowKey    map[string]int
	mostKey   int
	delivered chan struct{} // one per first acceptance of an id
}

func newOrderSink(t *testing.T, delay time.Duration) *orderSink {
	s := &orderSink{
		delay: delay, got: map[string][]int{}, ids: map[string]int{}, fail: map[string]int{},
		reject: map[string]bool{}, nowKey: map[string]int{}, delivered: make(chan struct{}, 100000),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *orderSink) serve(w http.ResponseWriter, r *http.Request) {
	ev, err := cehttp.NewEventFromHTTPRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var d keyed
	if err := json.Unmarshal(ev.Data(), &d); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.nowKey[d.Key]++
	s.mostKey = max(s.mostKey, s.nowKey[d.Key])
	s.mu.Unlock()

	time.Sleep(s.delay)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.now--
	s.nowKey[d.Key]--
	switch {
	case s.reject[ev.ID()]:
		http.Error(w, "rejected", http.StatusBadRequest)
	case s.fail[ev.ID()] > 0:
		s.fail[ev.ID()]--
		http.Error(w, "try later", http.StatusServiceUnavailable)
	default:
		s.got[d.Key] = append(s.got[d.Key], d.N)
		s.ids[ev.ID()]++
		if s.ids[ev.ID()] == 1 {
			s.delivered <- struct{}{}
		}
	}
}

// waitFor waits for n distinct events to be accepted.
func (s *orderSink) waitFor(t *testing.T, n int, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for i := 0; i < n; i++ {
		select {
		case <-s.delivered:
		case <-timeout:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("accepted %d of %d distinct events", len(s.ids), n)
		}
	}
}

// checkOrder asserts that no key got an event after a later one of its
// key (a redelivered duplicate may repeat the last one), and that every
// counter below perKey, but those of skip, arrived.
func (s *orderSink) checkOrder(t *testing.T, keys []string, perKey int, skip map[string]bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		got := s.got[k]
		for i := 1; i < len(got); i++ {
			if got[i] < got[i-1] {
				t.Errorf("key %s: event %d arrived after event %d: %v", k, got[i], got[i-1], got)
				break
			}
		}
		for n := 0; n < perKey; n++ {
			if id := keyedID(k, n); !skip[id] && s.ids[id] == 0 {
				t.Errorf("event %s never accepted", id)
			}
		}
	}
}

func httpSink(t *testing.T, url string) consumers.Sink {
	t.Helper()
	s, err := httpsink.New(httpsink.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func orderBy(src string) *string { return &src }

func orderedDelivery() consumers.Delivery {
	d := fastDelivery()
	d.MaxInFlight = 8
	d.MaxAttempts = 10
	d.OrderBy = orderBy("data.key")
	return d
}

func keyNames(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("vm-%d", i)
	}
	return keys
}

// TestOrderedDeliveryPerKey: with orderBy, the events of a key arrive one
// at a time and in stream order, though some fail and are retried and one
// is dead-lettered, while different keys are sent in parallel.
func TestOrderedDeliveryPerKey(t *testing.T) {
	_, js := natstest.Run(t)
	keys := keyNames(8)
	const perKey = 25
	sink := newOrderSink(t, 3*time.Millisecond)
	for i, k := range keys {
		for n := i % 5; n < perKey; n += 6 {
			sink.fail[keyedID(k, n)] = 1 + n%3
		}
	}
	rejected := keyedID(keys[2], 10)
	sink.reject[rejected] = true
	start(t, js, consumers.Route{Name: "ordered", Delivery: orderedDelivery()}, httpSink(t, sink.srv.URL))
	publishKeyed(t, js, keys, 0, perKey)

	sink.waitFor(t, len(keys)*perKey-1, 60*time.Second)
	sink.checkOrder(t, keys, perKey, map[string]bool{rejected: true})
	dl := readDLQ(t, js, "ordered", 1)
	if dl[0].id != rejected {
		t.Errorf("dead letter %s, want %s", dl[0].id, rejected)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.mostKey != 1 {
		t.Errorf("at most %d requests at once for one key, want 1", sink.mostKey)
	}
	if sink.most < 2 {
		t.Errorf("at most %d requests at once over %d keys, want several", sink.most, len(keys))
	}
}

// TestOrderedDefaultLane: events whose key is nil share one lane, in order.
func TestOrderedDefaultLane(t *testing.T) {
	_, js := natstest.Run(t)
	keys := keyNames(3)
	const perKey = 15
	sink := newOrderSink(t, time.Millisecond)
	for _, k := range keys {
		sink.fail[keyedID(k, 4)] = 2
	}
	d := orderedDelivery()
	// No event has a field "missing": every one goes to the default lane.
	d.OrderBy = orderBy("data.missing")
	start(t, js, consumers.Route{Name: "default-lane", Delivery: d}, httpSink(t, sink.srv.URL))
	publishKeyed(t, js, keys, 0, perKey)
	sink.waitFor(t, len(keys)*perKey, 60*time.Second)
	sink.checkOrder(t, keys, perKey, nil)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.most != 1 {
		t.Errorf("at most %d requests at once, want 1: one lane", sink.most)
	}
}

// TestOrderedSurvivesCrash stops a dispatcher by closing its connection, as
// a crash would, while its lanes hold events it never acked; more events of
// the same keys are published, and a new dispatcher must not send any of
// them before the old events come back after their ack wait.
func TestOrderedSurvivesCrash(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), "127.0.0.1:0")
	nc1, js1 := natstest.Connect(t, srv.ClientURL())
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js1, cfg, nil); err != nil {
		t.Fatal(err)
	}
	keys := keyNames(4)
	const half = 30
	sink := newOrderSink(t, 10*time.Millisecond)
	for _, k := range keys {
		sink.fail[keyedID(k, 3)] = 2
		sink.fail[keyedID(k, half+2)] = 1
	}
	d := orderedDelivery()
	d.AckWait = 2 * time.Second
	d.SendTimeout = time.Second
	route := consumers.Route{Name: "crash", Delivery: d}

	// A crashed replica's pin lasts its TTL; the ack wait is what matters here.
	pinTTL := consumers.WithPinnedTTL(time.Second)
	d1, err := consumers.NewDispatcher(js1, route, httpSink(t, sink.srv.URL), consumers.WithShutdownTimeout(100*time.Millisecond), pinTTL)
	if err != nil {
		t.Fatal(err)
	}
	ctx1, cancel1 := context.WithCancel(t.Context())
	done1 := make(chan error, 1)
	go func() { done1 <- d1.Run(ctx1) }()
	publishKeyed(t, js1, keys, 0, half)
	sink.waitFor(t, 20, 30*time.Second)
	nc1.Close() // no ack, no nak: the events it holds stay pending
	cancel1()
	<-done1

	_, js2 := natstest.Connect(t, srv.ClientURL())
	info, err := js2.Consumer(t.Context(), streams.EventStream, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().NumAckPending; n == 0 {
		t.Fatal("no event left pending by the crash: the test proves nothing")
	} else {
		t.Logf("%d events pending after the crash", n)
	}
	publishKeyed(t, js2, keys, half, half)
	d2, err := consumers.NewDispatcher(js2, route, httpSink(t, sink.srv.URL), pinTTL)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan error, 1)
	go func() { done2 <- d2.Run(ctx2) }()
	defer func() { cancel2(); <-done2 }()

	sink.waitFor(t, len(keys)*2*half-20, 60*time.Second)
	sink.checkOrder(t, keys, 2*half, nil)
}

// TestOrderedPinsOneReplica runs two dispatchers of one ordered route on
// two connections: only one receives; when its connection dies, the other
// takes over after the pinned TTL.
func TestOrderedPinsOneReplica(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), "127.0.0.1:0")
	var cfg streams.Config
	cfg.SetDefaults()
	keys := keyNames(4)
	d := orderedDelivery()
	d.AckWait = 2 * time.Second
	d.SendTimeout = time.Second
	route := consumers.Route{Name: "pinned", Delivery: d}

	type replica struct {
		nc   *nats.Conn
		js   jetstream.JetStream
		sink *orderSink
	}
	var reps [2]replica
	for i := range reps {
		r := &reps[i]
		r.nc, r.js = natstest.Connect(t, srv.ClientURL())
		if i == 0 {
			if err := streams.Ensure(t.Context(), r.js, cfg, nil); err != nil {
				t.Fatal(err)
			}
		}
		r.sink = newOrderSink(t, time.Millisecond)
		disp, err := consumers.NewDispatcher(r.js, route, httpSink(t, r.sink.srv.URL), consumers.WithPinnedTTL(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := disp.Ensure(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- disp.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	c, err := reps[0].js.Consumer(t.Context(), streams.EventStream, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	if cc := c.CachedInfo().Config; cc.PriorityPolicy != jetstream.PriorityPolicyPinned || cc.PinnedTTL != 2*time.Second {
		t.Fatalf("consumer priority policy %v, pinned TTL %s; want pinned, 2s", cc.PriorityPolicy, cc.PinnedTTL)
	}
	// Let both pull requests reach the server before events come.
	time.Sleep(300 * time.Millisecond)
	const rounds = 3
	for round := range rounds {
		publishKeyed(t, reps[0].js, keys, 10*round, 10)
	}
	total := len(keys) * 10 * rounds
	count := func(s *orderSink) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.ids)
	}
	deadline := time.After(30 * time.Second)
	for count(reps[0].sink)+count(reps[1].sink) < total {
		select {
		case <-deadline:
			t.Fatalf("delivered %d of %d", count(reps[0].sink)+count(reps[1].sink), total)
		case <-time.After(20 * time.Millisecond):
		}
	}
	a, b := count(reps[0].sink), count(reps[1].sink)
	if a != 0 && b != 0 {
		t.Fatalf("both replicas delivered (%d and %d events), want one", a, b)
	}
	pinned, other := reps[0], reps[1]
	if a == 0 {
		pinned, other = reps[1], reps[0]
	}
	pinned.sink.checkOrder(t, keys, 10*rounds, nil)

	// The pinned replica's connection dies; the other takes over once the
	// pin times out.
	pinned.nc.Close()
	publishKeyed(t, other.js, keys, 10*rounds, 10)
	other.sink.waitFor(t, len(keys)*10, 30*time.Second)
	other.sink.mu.Lock()
	for _, k := range keys {
		for _, n := range other.sink.got[k] {
			if n < 10*rounds {
				t.Errorf("second replica got event %d of %s, delivered before the takeover", n, k)
			}
		}
	}
	other.sink.mu.Unlock()
	if n := count(pinned.sink); n != total {
		t.Errorf("first replica delivered %d events, want %d", n, total)
	}
}

// TestOrderByOnExistingConsumer turns an existing route ordered and back:
// the consumer takes the pinned policy and loses it again.
func TestOrderByOnExistingConsumer(t *testing.T) {
	_, js := natstest.Run(t)
	sink := newScriptSink()
	policy := func() jetstream.PriorityPolicy {
		c, err := js.Consumer(t.Context(), streams.EventStream, "switch")
		if err != nil {
			t.Fatal(err)
		}
		return c.CachedInfo().Config.PriorityPolicy
	}
	for _, tt := range []struct {
		name    string
		orderBy *string
		want    jetstream.PriorityPolicy
	}{
		{"unordered", nil, jetstream.PriorityPolicyNone},
		{"ordered", orderBy("subject"), jetstream.PriorityPolicyPinned},
		{"unordered again", nil, jetstream.PriorityPolicyNone},
	} {
		d := fastDelivery()
		d.OrderBy = tt.orderBy
		disp, err := consumers.NewDispatcher(js, consumers.Route{Name: "switch", Delivery: d}, sink)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := disp.Ensure(t.Context()); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := policy(); got != tt.want {
			t.Errorf("%s: priority policy %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestOrderByRejected(t *testing.T) {
	_, js := natstest.Run(t)
	tests := []struct {
		name string
		d    func(*consumers.Delivery)
		want string
	}{
		{"does not compile", func(d *consumers.Delivery) { d.OrderBy = orderBy("data.Vm.(") }, "delivery.orderBy: line 1, column"},
		{"with batches", func(d *consumers.Delivery) { d.OrderBy = orderBy(""); d.MaxBatch = 10 }, "orderBy: cannot be combined with maxBatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := fastDelivery()
			tt.d(&d)
			_, err := consumers.NewDispatcher(js, consumers.Route{Name: "bad", Delivery: d}, newBatchSink())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	if err := consumers.CheckOrderBy(`data.Vm?.Vm?.Value`); err != nil {
		t.Errorf("CheckOrderBy of a valid key: %v", err)
	}
	var ce *filters.CompileError
	if err := consumers.CheckOrderBy(`data.x +`); !errors.As(err, &ce) || ce.Line != 1 {
		t.Errorf("CheckOrderBy(`data.x +`) = %v, want a *filters.CompileError with its position", err)
	}
}
