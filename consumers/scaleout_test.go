package consumers_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/natstest"
)

// replicaSink counts what one replica delivered into a sink all replicas
// share.
type replicaSink struct {
	shared *scriptSink
	n      atomic.Int64
}

func (s *replicaSink) Send(ctx context.Context, ev event.Event) error {
	s.n.Add(1)
	return s.shared.Send(ctx, ev)
}

// TestReplicasShareRouteConsumer: two dispatchers of one route (two vrelay
// replicas) bind to the same durable consumer and share its messages:
// each event is delivered once in all, also when one replica stops
// (SIGTERM) half-way and the other takes the rest.
func TestReplicasShareRouteConsumer(t *testing.T) {
	_, js := natstest.Run(t)
	shared := newScriptSink()
	a, b := &replicaSink{shared: shared}, &replicaSink{shared: shared}
	r := consumers.Route{Name: "shared", Delivery: fastDelivery()}
	stopA := start(t, js, r, a)
	start(t, js, r, b)

	ids := make([]string, 400)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	publish(t, js, ids[:200]...)
	got := waitDelivered(t, shared, 200)
	stopA()
	publish(t, js, ids[200:]...)
	for id, n := range waitDelivered(t, shared, 200) {
		got[id] += n
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want 1", id, got[id])
		}
	}
	for _, id := range ids {
		if n := len(shared.attemptsOf(id)); n != 1 {
			t.Errorf("event %s sent %d times, want 1", id, n)
		}
	}
	if a.n.Load() == 0 || b.n.Load() == 0 {
		t.Errorf("replicas delivered %d and %d events: want both to share the route", a.n.Load(), b.n.Load())
	}
	t.Logf("replica a delivered %d, replica b %d", a.n.Load(), b.n.Load())
}

// TestKilledReplicaRedeliversOnlyItsInFlight: one of two replicas of a
// route dies (its connection drops mid-stream). Every event is delivered;
// an event delivered twice is one the dead replica had sent without
// acknowledging, which the other gets after AckWait.
func TestKilledReplicaRedeliversOnlyItsInFlight(t *testing.T) {
	nc, js := natstest.Run(t)
	_, jsA := natstest.Connect(t, nc.ConnectedUrl())
	ncA := jsA.Conn()
	shared := newScriptSink()
	a, b := &replicaSink{shared: shared}, &replicaSink{shared: shared}
	var sentByA sync.Map
	aSink := sinkFunc(func(ctx context.Context, ev event.Event) error {
		sentByA.Store(ev.ID(), true)
		return a.Send(ctx, ev)
	})
	d := fastDelivery()
	d.SendTimeout, d.AckWait = 500*time.Millisecond, time.Second
	r := consumers.Route{Name: "shared", Delivery: d}
	da, err := consumers.NewDispatcher(jsA, r, aSink)
	if err != nil {
		t.Fatal(err)
	}
	ctxA, cancelA := context.WithCancel(t.Context())
	doneA := make(chan struct{})
	go func() { _ = da.Run(ctxA); close(doneA) }()
	start(t, js, r, b)

	ids := make([]string, 400)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	publish(t, js, ids...)
	got := waitDelivered(t, shared, 150)
	ncA.Close() // the crash mid-stream: no ack, no drain
	cancelA()
	<-doneA
	// The rest, plus any redelivery of what a had in flight.
	deadline := time.After(30 * time.Second)
	for missing := func() bool {
		for _, id := range ids {
			if got[id] == 0 {
				return true
			}
		}
		return false
	}; missing(); {
		select {
		case id := <-shared.notify:
			got[id]++
		case <-deadline:
			t.Fatalf("not every event delivered after the crash: %v", got)
		}
	}
	time.Sleep(2 * d.AckWait) // let any late redelivery show
	for drained := false; !drained; {
		select {
		case id := <-shared.notify:
			got[id]++
		default:
			drained = true
		}
	}
	dups := 0
	for id, n := range got {
		if n > 1 {
			dups += n - 1
			if _, ok := sentByA.Load(id); !ok {
				t.Errorf("event %s delivered %d times but the dead replica never sent it", id, n)
			}
		}
	}
	t.Logf("replica a delivered %d before its crash, b %d; %d duplicates, all from a's in-flight window", a.n.Load(), b.n.Load(), dups)
}

type sinkFunc func(context.Context, event.Event) error

func (f sinkFunc) Send(ctx context.Context, ev event.Event) error { return f(ctx, ev) }
