package producers_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

const leaseTTL = time.Second

// leaseJS starts a server whose lease bucket has a 1s TTL.
func leaseJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Run(t)
	var cfg streams.Config
	cfg.SetDefaults()
	cfg.LeaseTTL = leaseTTL
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	return js
}

func newLeases(t *testing.T, js jetstream.JetStream, holder string) *producers.Leases {
	t.Helper()
	l, err := producers.NewLeases(t.Context(), js, holder)
	if err != nil {
		t.Fatal(err)
	}
	if l.TTL() != leaseTTL {
		t.Fatalf("TTL = %s, want %s", l.TTL(), leaseTTL)
	}
	return l
}

func TestLeaseAcquireRenewRelease(t *testing.T) {
	js := leaseJS(t)
	ctx := t.Context()
	a, b := newLeases(t, js, "a"), newLeases(t, js, "b")
	const key = "vcenter.vc01"

	la, _, err := a.TryAcquire(ctx, key)
	if err != nil || la == nil {
		t.Fatalf("a.TryAcquire = %v, %v; want a lease", la, err)
	}
	lb, cur, err := b.TryAcquire(ctx, key)
	if err != nil || lb != nil || cur.Holder != "a" || cur.AcquiredAt.IsZero() {
		t.Fatalf("b.TryAcquire = %v, %+v, %v; want nil and holder a", lb, cur, err)
	}
	// Renewals keep it past several TTLs.
	for range 4 {
		time.Sleep(leaseTTL / 3)
		if err := la.Renew(ctx); err != nil {
			t.Fatalf("Renew: %v", err)
		}
	}
	if lb, _, _ := b.TryAcquire(ctx, key); lb != nil {
		t.Fatal("b took a lease that a kept renewing")
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	lb, _, err = b.TryAcquire(ctx, key)
	if err != nil || lb == nil {
		t.Fatalf("b.TryAcquire after release = %v, %v; want a lease", lb, err)
	}
	if err := la.Renew(ctx); !errors.Is(err, producers.ErrLeaseLost) {
		t.Errorf("Renew of a released lease: got %v, want ErrLeaseLost", err)
	}
}

// TestLeaseTakeoverAfterExpiry: a holder that stops renewing loses the
// lease after one TTL; the contender takes it, and the old holder's next
// renewal and its checkpoint both fail.
func TestLeaseTakeoverAfterExpiry(t *testing.T) {
	js := leaseJS(t)
	ctx := t.Context()
	a, b := newLeases(t, js, "a"), newLeases(t, js, "b")
	const key = "vcenter.vc01"
	cpA, _ := producers.NewCheckpointer(ctx, js)
	cpB, _ := producers.NewCheckpointer(ctx, js)

	la, _, _ := a.TryAcquire(ctx, key)
	if la == nil {
		t.Fatal("a did not get the lease")
	}
	if _, err := cpA.Load(ctx, key); !errors.Is(err, producers.ErrNoCheckpoint) {
		t.Fatal(err)
	}
	if err := cpA.Save(ctx, key, []byte("1")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var lb *producers.Lease
	for lb == nil {
		if time.Since(start) > 10*leaseTTL {
			t.Fatal("b never took the expired lease")
		}
		time.Sleep(20 * time.Millisecond)
		var err error
		if lb, _, err = b.TryAcquire(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("takeover %s after the last renewal (TTL %s)", time.Since(start).Round(time.Millisecond), leaseTTL)
	if err := la.Renew(ctx); !errors.Is(err, producers.ErrLeaseLost) {
		t.Errorf("stale Renew: got %v, want ErrLeaseLost", err)
	}
	// The new holder reads and advances the checkpoint; the stale one's
	// save is fenced.
	if _, err := cpB.Load(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := cpB.Save(ctx, key, []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := cpA.Save(ctx, key, []byte("stale")); !errors.Is(err, producers.ErrCheckpointConflict) {
		t.Errorf("stale holder's Save: got %v, want ErrCheckpointConflict", err)
	}
}

// ctxSource blocks until its context is done and records the cause.
type ctxSource struct {
	mu     sync.Mutex
	runs   int
	causes []error
}

func (s *ctxSource) Run(ctx context.Context, _ producers.Publisher) error {
	s.mu.Lock()
	s.runs++
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.causes = append(s.causes, context.Cause(ctx))
	s.mu.Unlock()
	return ctx.Err()
}

func (s *ctxSource) snapshot() (int, []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs, append([]error(nil), s.causes...)
}

// TestRunnerLeases: of two runners, one runs the polling source and the
// other shows it standby with the holder; a webhook-like source runs on
// both. Stopping the holder releases the lease, and the other takes over
// long before the TTL would have run out.
func TestRunnerLeases(t *testing.T) {
	js := leaseJS(t)
	var cfg streams.Config
	cfg.SetDefaults()
	cfg.LeaseTTL = time.Hour // a takeover can only come from the release
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	la, _ := producers.NewLeases(t.Context(), js, "a")
	lb, _ := producers.NewLeases(t.Context(), js, "b")
	srcA, srcB := &ctxSource{}, &ctxSource{}
	hookA, hookB := &ctxSource{}, &ctxSource{}
	ra := producers.NewRunner(producers.WithLeases(la))
	reg := prometheus.NewRegistry()
	rb := producers.NewRunner(producers.WithLeases(lb), producers.WithMetrics(producers.NewMetrics(reg)))
	standbyGauge := func() float64 {
		return gaugeValue(t, reg, "vrelay_source_standby")
	}
	for _, err := range []error{
		ra.AddPolling("vcenter", "vc01", srcA, nopPublisher{}), ra.Add("webhook", "hooks", hookA, nopPublisher{}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	stopA := startRunner(t, ra)
	waitFor(t, "a running vc01", func() bool { return status(ra, "vc01").State == producers.StateRunning })
	if err := rb.AddPolling("vcenter", "vc01", srcB, nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	if err := rb.Add("webhook", "hooks", hookB, nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, rb)
	waitFor(t, "b standby", func() bool { return status(rb, "vc01").State == producers.StateStandby })
	if got := status(rb, "vc01").Holder; got != "a" {
		t.Errorf("standby holder: got %q, want a", got)
	}
	if got := standbyGauge(); got != 1 {
		t.Errorf("vrelay_source_standby while standby: got %v, want 1", got)
	}
	waitFor(t, "webhook on both", func() bool {
		return status(ra, "hooks").State == producers.StateRunning && status(rb, "hooks").State == producers.StateRunning
	})
	if runs, _ := srcB.snapshot(); runs != 0 {
		t.Fatalf("standby source ran %d times, want 0", runs)
	}
	_ = stopA()
	waitFor(t, "b takes over after a's release", func() bool { return status(rb, "vc01").State == producers.StateRunning })
	if got := standbyGauge(); got != 0 {
		t.Errorf("vrelay_source_standby after the takeover: got %v, want 0", got)
	}
	if runs, _ := srcA.snapshot(); runs != 1 {
		t.Errorf("a ran vc01 %d times, want 1", runs)
	}
}

// TestRunnerLeaseLostCancelsSource: when another writer takes the key,
// the holder's next renewal fails, the source's context is cancelled
// with ErrLeaseLost at once, and the source goes standby without
// counting a failure.
func TestRunnerLeaseLostCancelsSource(t *testing.T) {
	js := leaseJS(t)
	l, _ := producers.NewLeases(t.Context(), js, "a")
	src := &ctxSource{}
	r := producers.NewRunner(producers.WithLeases(l))
	if err := r.AddPolling("vcenter", "vc01", src, nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, r)
	waitFor(t, "running", func() bool { return status(r, "vc01").State == producers.StateRunning })
	kv, err := js.KeyValue(t.Context(), streams.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "vcenter.vc01", []byte(`{"holder":"intruder"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "standby on intruder", func() bool {
		s := status(r, "vc01")
		return s.State == producers.StateStandby && s.Holder == "intruder"
	})
	_, causes := src.snapshot()
	if len(causes) != 1 || !errors.Is(causes[0], producers.ErrLeaseLost) {
		t.Errorf("source context causes: got %v, want one ErrLeaseLost", causes)
	}
	if s := status(r, "vc01"); s.Restarts != 0 || s.LastError != nil {
		t.Errorf("status after a lost lease: %+v, want no restart and no error", s)
	}
}

// gaugeValue reads the gauge name of the source vc01 from reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == "vc01" {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s series for vc01", name)
	return 0
}
