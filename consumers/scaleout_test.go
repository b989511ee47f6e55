package consumers_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

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
