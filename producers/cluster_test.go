package producers_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// clusterConn connects to the cluster the way vrelay run does: endless
// reconnects, a 1s ack timeout so that an ack lost in a leader election
// fails fast and is published again.
func clusterConn(t testing.TB, c *natstest.Cluster) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// ensureCluster creates the topology with replicas, retrying while the
// cluster still gathers its peers.
func ensureCluster(t testing.TB, js jetstream.JetStream, replicas int, leaseTTL time.Duration) {
	t.Helper()
	var cfg streams.Config
	cfg.SetDefaults()
	cfg.Replicas, cfg.LeaseTTL = replicas, leaseTTL
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := streams.Ensure(ctx, js, cfg, nil)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ensure topology with %d replicas: %v", replicas, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// storedIDs reads every Nats-Msg-Id the event stream holds, in order.
func storedIDs(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	// Right after a node loss the stream may still be electing a leader
	// or catching a replica up: read again until a whole read succeeds.
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids, err := readIDs(t.Context(), js)
		if err == nil {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("read the stored ids: %v", err)
		}
		t.Logf("reading the stored ids again: %v", err)
		time.Sleep(500 * time.Millisecond)
	}
}

// readIDs reads the Nats-Msg-Id of every message of the event stream.
func readIDs(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.EventStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	n := info.State.Msgs
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, n)
	for uint64(len(ids)) < n {
		msgs, err := cons.Fetch(int(min(n-uint64(len(ids)), 500)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range msgs.Messages() {
			ids = append(ids, m.Headers().Get(streams.HeaderMsgID))
			got++
		}
		if got == 0 {
			return nil, fmt.Errorf("read %d of %d messages: %v", len(ids), n, msgs.Error())
		}
	}
	return ids, nil
}

// checkContiguous fails unless ids are prefix:1 … prefix:n, each once.
func checkContiguous(t *testing.T, ids []string, prefix string, atLeast int) {
	t.Helper()
	seen := make(map[int]int, len(ids))
	maxN := 0
	for _, id := range ids {
		n, err := strconv.Atoi(strings.TrimPrefix(id, prefix))
		if err != nil {
			t.Fatalf("unexpected Nats-Msg-Id %q", id)
		}
		seen[n]++
		maxN = max(maxN, n)
	}
	lost, dups := 0, 0
	for n := 1; n <= maxN; n++ {
		switch c := seen[n]; {
		case c == 0:
			lost++
		case c > 1:
			dups += c - 1
		}
	}
	if lost != 0 || dups != 0 || maxN < atLeast {
		t.Errorf("stream holds ids 1..%d: %d lost, %d duplicates; want 0 and 0 and at least %d", maxN, lost, dups, atLeast)
	}
	t.Logf("stream holds ids 1..%d, 0 lost, 0 duplicates", maxN)
}

func TestClusterPublishSurvivesLeaderLoss(t *testing.T) {
	c := natstest.StartCluster(t)
	_, js := clusterConn(t, c)
	ensureCluster(t, js, 3, 0)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"},
		producers.WithPublishRetry(20, 100*time.Millisecond))

	const total, batch = 3000, 50
	var killed time.Time
	for next := 1; next <= total; next += batch {
		if next == total/2+1 {
			leader := c.StreamLeader(streams.EventStream)
			if leader < 0 {
				t.Fatal("no stream leader")
			}
			killed = time.Now()
			c.Stop(leader)
			t.Logf("stopped node %d, the leader of %s", leader, streams.EventStream)
		}
		recs := make([]producers.Record, batch)
		for i := range recs {
			recs[i] = producers.Record{Event: newEvent(next + i), MsgID: fmt.Sprintf("ctr:%d", next+i), Token: "Tick"}
		}
		if err := pub.Publish(t.Context(), recs...); err != nil {
			t.Fatalf("publish %d..%d: %v", next, next+batch-1, err)
		}
		if next == total/2+1 {
			t.Logf("first batch after the leader loss stored %s after the stop", time.Since(killed).Round(time.Millisecond))
		}
	}
	checkContiguous(t, storedIDs(t, js), "ctr:", total)
}

// counterSource is a polling source in miniature: it resumes after the
// last event the stream holds (as the vCenter source does via
// LastStored) and publishes ids ctr:1, ctr:2, … in batches.
type counterSource struct {
	last  *producers.JetStreamPublisher
	pause time.Duration
}

func (s *counterSource) Run(ctx context.Context, pub producers.Publisher) error {
	next := 1
	last, err := s.last.Last(ctx)
	switch {
	case err == nil:
		n, _ := strconv.Atoi(strings.TrimPrefix(last.MsgID, "ctr:"))
		next = n + 1
	case !errors.Is(err, producers.ErrNoEvent):
		return err
	}
	for {
		recs := make([]producers.Record, 10)
		for i := range recs {
			recs[i] = producers.Record{Event: newEvent(next + i), MsgID: fmt.Sprintf("ctr:%d", next+i), Token: "Tick"}
		}
		if err := pub.Publish(ctx, recs...); err != nil {
			return err
		}
		next += len(recs)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.pause):
		}
	}
}

// replica is one vrelay producer process in miniature: its own
// connection, leases and runner with one polling source.
type replica struct {
	nc     *nats.Conn
	runner *producers.Runner
	cancel context.CancelFunc
	done   chan struct{}
}

func startReplica(t *testing.T, c *natstest.Cluster, holder string) *replica {
	t.Helper()
	nc, js := clusterConn(t, c)
	leases, err := producers.NewLeases(t.Context(), js, holder)
	if err != nil {
		t.Fatal(err)
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"},
		producers.WithPublishRetry(20, 100*time.Millisecond))
	r := producers.NewRunner(producers.WithLeases(leases), producers.WithRestartBackoff(50*time.Millisecond, time.Second))
	if err := r.AddPolling("vcenter", "vc01", &counterSource{last: pub, pause: 5 * time.Millisecond}, pub); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rep := &replica{nc: nc, runner: r, cancel: cancel, done: make(chan struct{})}
	go func() { _ = r.Run(ctx); close(rep.done) }()
	t.Cleanup(rep.stop)
	return rep
}

// stop is SIGTERM: the source stops and the lease is released.
func (r *replica) stop() { r.cancel(); <-r.done }

// kill is a crash: the connection goes first, so nothing is released.
func (r *replica) kill() { r.nc.Close(); r.cancel(); <-r.done }

func (r *replica) state() producers.SourceState { return status(r.runner, "vc01").State }

// TestClusterLeaseFailover: two replicas on an R3 cluster, one polling
// source. A SIGTERM of the holder hands over at once, a crash within
// about one TTL, and the loss of the stream's leader node does not stop
// the holder; the stream holds every id once, without a gap.
func TestClusterLeaseFailover(t *testing.T) {
	const ttl = time.Second
	c := natstest.StartCluster(t)
	_, js := clusterConn(t, c)
	ensureCluster(t, js, 3, ttl)

	a := startReplica(t, c, "a")
	waitFor(t, "a running", func() bool { return a.state() == producers.StateRunning })
	b := startReplica(t, c, "b")
	waitFor(t, "b standby", func() bool { return b.state() == producers.StateStandby })
	time.Sleep(300 * time.Millisecond)

	t0 := time.Now()
	a.stop()
	waitFor(t, "b takes over after a's SIGTERM", func() bool { return b.state() == producers.StateRunning })
	t.Logf("takeover after a stop (lease released): %s", time.Since(t0).Round(time.Millisecond))

	a2 := startReplica(t, c, "a2")
	waitFor(t, "a2 standby", func() bool { return a2.state() == producers.StateStandby })
	time.Sleep(300 * time.Millisecond)
	t0 = time.Now()
	b.kill()
	waitFor(t, "a2 takes over after b's crash", func() bool { return a2.state() == producers.StateRunning })
	t.Logf("takeover after a crash (lease expired, TTL %s): %s", ttl, time.Since(t0).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)

	// The NATS node leading the event stream goes away while a2 publishes.
	leader := c.StreamLeader(streams.EventStream)
	if leader < 0 {
		t.Fatal("no stream leader")
	}
	c.Stop(leader)
	t.Logf("stopped node %d, the leader of %s", leader, streams.EventStream)
	time.Sleep(2 * time.Second)
	if s := a2.state(); s != producers.StateRunning {
		t.Errorf("a2 after the stream leader's loss: %s, want running", s)
	}
	a2.stop()

	checkContiguous(t, storedIDs(t, js), "ctr:", 30)
}

// TestClusterLeaseSurvivesBucketLeaderLoss: the NATS node leading the
// lease bucket goes away while a replica holds a lease; renewals fail for
// the election and then succeed, and the source keeps running, without
// a second run, all the while.
func TestClusterLeaseSurvivesBucketLeaderLoss(t *testing.T) {
	// A TTL well above a leader election and a client reconnect, even on
	// two busy cores: the point is that the holder rides out the loss.
	const ttl = 10 * time.Second
	c := natstest.StartCluster(t)
	_, js := clusterConn(t, c)
	ensureCluster(t, js, 3, ttl)

	_, rjs := clusterConn(t, c)
	leases, err := producers.NewLeases(t.Context(), rjs, "a")
	if err != nil {
		t.Fatal(err)
	}
	src := &ctxSource{}
	r := producers.NewRunner(producers.WithLeases(leases))
	if err := r.AddPolling("vcenter", "vc01", src, nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	waitFor(t, "running", func() bool { return status(r, "vc01").State == producers.StateRunning })

	leader := c.StreamLeader("KV_" + streams.LeaseBucket)
	if leader < 0 {
		t.Fatal("no leader of the lease bucket")
	}
	c.Stop(leader)
	t.Logf("stopped node %d, the leader of the lease bucket", leader)
	waitFor(t, "a new leader of the lease bucket", func() bool {
		l := c.StreamLeader("KV_" + streams.LeaseBucket)
		return l >= 0 && l != leader
	})
	time.Sleep(ttl) // three renewals under the new leader
	runs, causes := src.snapshot()
	if s := status(r, "vc01"); s.State != producers.StateRunning || runs != 1 || len(causes) != 0 {
		t.Errorf("after the bucket's leader loss: state %s, %d runs, causes %v; want running, 1 run, none", s.State, runs, causes)
	}
}
