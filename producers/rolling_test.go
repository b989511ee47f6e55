package producers_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// rollGuard bounds every wait of the rolling restart tests: generous, as
// a guard against a hang, not a measure of speed.
const rollGuard = 60 * time.Second

func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(rollGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", rollGuard, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// msgCount is how many messages the event stream holds, or 0 while the
// cluster cannot say.
func msgCount(js jetstream.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.EventStream)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// waitGrowth waits until the event stream holds more than n messages
// beyond what it holds now: the source is producing.
func waitGrowth(t *testing.T, js jetstream.JetStream, what string, n uint64) {
	t.Helper()
	base := msgCount(js)
	waitLong(t, what, func() bool { return msgCount(js) >= base+n })
}

// TestClusterRollingRestartReplicas: a rolling restart of two producer
// replicas on an R3 cluster. a holds the lease; a stops (SIGTERM, the
// lease released) and b takes over; a starts again as a new process
// (a new identity, as producers.Identity gives a restarted pod) and
// stands by; b stops and a takes over. The source produces in every
// phase, and the stream holds every id once, without a gap.
func TestClusterRollingRestartReplicas(t *testing.T) {
	c := natstest.StartCluster(t)
	_, js := clusterConn(t, c)
	ensureCluster(t, js, 3, time.Second)

	a := startReplica(t, c, producers.Identity())
	waitLong(t, "a running", func() bool { return a.state() == producers.StateRunning })
	b := startReplica(t, c, producers.Identity())
	waitLong(t, "b standby", func() bool { return b.state() == producers.StateStandby })
	waitGrowth(t, js, "a producing", 50)

	a.stop()
	if s := a.state(); s != producers.StateStopped {
		t.Errorf("a after its SIGTERM: %s, want stopped", s)
	}
	waitLong(t, "b takes over after a's SIGTERM", func() bool { return b.state() == producers.StateRunning })
	waitGrowth(t, js, "b producing", 50)

	a = startReplica(t, c, producers.Identity())
	waitLong(t, "restarted a standby", func() bool { return a.state() == producers.StateStandby })
	waitGrowth(t, js, "b producing while a stands by", 50)

	b.stop()
	if s := b.state(); s != producers.StateStopped {
		t.Errorf("b after its SIGTERM: %s, want stopped", s)
	}
	waitLong(t, "restarted a takes over after b's SIGTERM", func() bool { return a.state() == producers.StateRunning })
	waitGrowth(t, js, "restarted a producing", 50)
	a.stop()

	checkContiguous(t, storedIDs(t, js), "ctr:", 200)
}

// runTracker counts the runs of a source across replicas, and how many
// were running at once at most.
type runTracker struct {
	active, maxActive, runs atomic.Int32
}

type trackedSource struct {
	src producers.Source
	tr  *runTracker
}

func (s *trackedSource) Run(ctx context.Context, pub producers.Publisher) error {
	n := s.tr.active.Add(1)
	s.tr.runs.Add(1)
	for {
		m := s.tr.maxActive.Load()
		if n <= m || s.tr.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	defer s.tr.active.Add(-1)
	return s.src.Run(ctx, pub)
}

// startTrackedReplica is startReplica with the counter source tracked,
// and slower (about 400 events a second) to keep the test bounded.
func startTrackedReplica(t *testing.T, c *natstest.Cluster, holder string, tr *runTracker) *replica {
	t.Helper()
	nc, js := clusterConn(t, c)
	leases, err := producers.NewLeases(t.Context(), js, holder)
	if err != nil {
		t.Fatal(err)
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"},
		producers.WithPublishRetry(20, 100*time.Millisecond))
	r := producers.NewRunner(producers.WithLeases(leases), producers.WithRestartBackoff(50*time.Millisecond, time.Second))
	src := &trackedSource{src: &counterSource{last: pub, pause: 25 * time.Millisecond}, tr: tr}
	if err := r.AddPolling("vcenter", "vc01", src, pub); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rep := &replica{nc: nc, runner: r, cancel: cancel, done: make(chan struct{})}
	go func() { _ = r.Run(ctx); close(rep.done) }()
	t.Cleanup(rep.stop)
	return rep
}

// streamsCurrent reports whether every stream of the topology has a
// leader and all its peers online and current.
func streamsCurrent(js jetstream.JetStream) bool {
	for _, name := range []string{streams.EventStream, "KV_" + streams.LeaseBucket} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, name)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		cancel()
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != natstest.ClusterSize-1 {
			return false
		}
		for _, p := range info.Cluster.Replicas {
			if !p.Current || p.Offline {
				return false
			}
		}
	}
	return true
}

// TestClusterRollingRestartNATSNodes: the three NATS nodes restart one
// after the other while a leased source publishes, each node current
// again before the next goes. The stream holds every id once, without a
// gap; the source kept producing through every restart, and no two
// replicas ran it at once.
func TestClusterRollingRestartNATSNodes(t *testing.T) {
	c := natstest.StartCluster(t)
	_, js := clusterConn(t, c)
	ensureCluster(t, js, 3, 3*time.Second)

	var tr runTracker
	a := startTrackedReplica(t, c, producers.Identity(), &tr)
	waitLong(t, "a running", func() bool { return a.state() == producers.StateRunning })
	b := startTrackedReplica(t, c, producers.Identity(), &tr)
	waitLong(t, "b standby", func() bool { return b.state() == producers.StateStandby })
	waitLong(t, "streams current", func() bool { return streamsCurrent(js) })
	waitGrowth(t, js, "producing", 50)

	for i := range natstest.ClusterSize {
		c.Stop(i)
		t.Logf("stopped node %d", i)
		waitGrowth(t, js, "producing with a node down", 50)
		c.Restart(i)
		waitLong(t, "every stream current after the restart", func() bool { return streamsCurrent(js) })
		t.Logf("node %d restarted and current", i)
		waitGrowth(t, js, "producing after the restart", 50)
	}

	running := 0
	for _, r := range []*replica{a, b} {
		if r.state() == producers.StateRunning {
			running++
		}
	}
	if running != 1 {
		t.Errorf("%d replicas running the source after the rolling restart, want 1", running)
	}
	a.stop()
	b.stop()
	if m := tr.maxActive.Load(); m != 1 {
		t.Errorf("the source ran on %d replicas at once, want 1", m)
	}
	t.Logf("the source ran %d times (1: the lease held by one replica throughout)", tr.runs.Load())
	checkContiguous(t, storedIDs(t, js), "ctr:", 350)
}
