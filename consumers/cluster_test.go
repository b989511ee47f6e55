package consumers_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// TestReplicasShareRouteConsumerOnCluster is TestReplicasShareRouteConsumer
// on a 3-node cluster with R3 streams: two dispatchers of one route, each
// on its own connection, bind to the route's replicated durable consumer;
// every event is delivered exactly once in all, both replicas deliver,
// and the consumer is fully acknowledged at the end.
func TestReplicasShareRouteConsumerOnCluster(t *testing.T) {
	c := natstest.StartCluster(t)
	_, js := natstest.Connect(t, c.URL())
	var cfg streams.Config
	cfg.SetDefaults()
	cfg.Replicas = natstest.ClusterSize
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := streams.Ensure(ctx, js, cfg, nil)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ensure topology with %d replicas: %v", cfg.Replicas, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	shared := newScriptSink()
	a, b := &replicaSink{shared: shared}, &replicaSink{shared: shared}
	r := consumers.Route{Name: "shared", Delivery: fastDelivery()}
	_, jsA := natstest.Connect(t, c.URL())
	_, jsB := natstest.Connect(t, c.URL())
	start(t, jsA, r, a)
	start(t, jsB, r, b)
	// Publish once both replicas have a pull request waiting, so that the
	// share does not depend on which one a busy machine starts first.
	waiting := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		var nw int
		cons, err := js.Consumer(ctx, streams.EventStream, r.Name)
		if err == nil {
			var ci *jetstream.ConsumerInfo
			if ci, err = cons.Info(ctx); err == nil {
				nw = ci.NumWaiting
			}
		}
		cancel()
		if nw >= 2 {
			break
		}
		if time.Now().After(waiting) {
			t.Fatalf("both replicas never pulled from %s: %d pull requests waiting, err %v", r.Name, nw, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	for i := 0; i < n; i += 100 {
		publish(t, js, ids[i:i+100]...)
	}
	got := waitDelivered(t, shared, n)
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want 1", id, got[id])
		}
		if k := len(shared.attemptsOf(id)); k != 1 {
			t.Errorf("event %s sent %d times, want 1", id, k)
		}
	}
	if a.n.Load() == 0 || b.n.Load() == 0 {
		t.Errorf("replicas delivered %d and %d events: want both to share the route", a.n.Load(), b.n.Load())
	}

	// Acks are asynchronous: wait until the consumer has them all.
	var info *jetstream.ConsumerInfo
	guard := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		cons, err := js.Consumer(ctx, streams.EventStream, r.Name)
		if err == nil {
			info, err = cons.Info(ctx)
		}
		cancel()
		if err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream >= n {
			break
		}
		if time.Now().After(guard) {
			t.Fatalf("consumer %s not fully acknowledged: info %+v, err %v", r.Name, info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != natstest.ClusterSize-1 {
		t.Errorf("consumer %s cluster info %+v: want a leader and %d replicas", r.Name, info.Cluster, natstest.ClusterSize-1)
	}
	// Nothing more comes: no late redelivery after the acks.
	select {
	case id := <-shared.notify:
		t.Errorf("event %s delivered again after the consumer was fully acknowledged", id)
	case <-time.After(time.Second):
	}
	t.Logf("replica a delivered %d, replica b %d; consumer ack floor %d, 0 pending", a.n.Load(), b.n.Load(), info.AckFloor.Stream)
}
