package producers_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vrelay/vrelay/producers"
)

// fakeSource runs script for each call of Run (numbered from 1).
type fakeSource struct {
	script func(ctx context.Context, call int) error

	mu    sync.Mutex
	calls int
	done  int // calls that returned
}

func (s *fakeSource) Run(ctx context.Context, _ producers.Publisher) error {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	err := s.script(ctx, n)
	s.mu.Lock()
	s.done++
	s.mu.Unlock()
	return err
}

func (s *fakeSource) counts() (calls, done int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.done
}

// blocks is a well-behaved source: it runs until ctx is done.
func blocks(ctx context.Context, _ int) error {
	<-ctx.Done()
	return ctx.Err()
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, ...producers.Record) error { return nil }

var errBroken = errors.New("corrupt checkpoint (injected)")

// startRunner runs r until the returned stop, which cancels it and returns
// Run's error.
func startRunner(t *testing.T, r *producers.Runner) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Runner.Run did not return within 10s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func status(r *producers.Runner, name string) producers.SourceStatus {
	for _, s := range r.Status() {
		if s.Name == name {
			return s
		}
	}
	return producers.SourceStatus{}
}

// noLeak fails the test if goroutines started since base are still there.
func noLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("got %d goroutines after Run returned, want at most %d:\n%s",
				runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunnerRestartsFailedSource: a source that fails twice is run again
// with a backoff and then runs; the other source runs once throughout and
// never notices; shutdown waits for both.
func TestRunnerRestartsFailedSource(t *testing.T) {
	base := runtime.NumGoroutine()
	reg := prometheus.NewRegistry()
	r := producers.NewRunner(producers.WithMetrics(producers.NewMetrics(reg)),
		producers.WithRestartBackoff(5*time.Millisecond, 20*time.Millisecond))
	flaky := &fakeSource{script: func(ctx context.Context, call int) error {
		if call <= 2 {
			return errBroken
		}
		return blocks(ctx, call)
	}}
	steady := &fakeSource{script: blocks}
	for _, s := range []struct {
		name string
		src  producers.Source
	}{{"vc01", flaky}, {"hooks", steady}} {
		if err := r.Add("test", s.name, s.src, nopPublisher{}); err != nil {
			t.Fatal(err)
		}
	}
	stop := startRunner(t, r)

	waitFor(t, "the third run of the flaky source", func() bool {
		calls, _ := flaky.counts()
		return calls >= 3 && status(r, "vc01").State == producers.StateRunning
	})
	st := status(r, "vc01")
	if st.Restarts != 2 || !errors.Is(st.LastError, errBroken) {
		t.Errorf("got vc01 restarts %d, last error %v; want 2 and %v", st.Restarts, st.LastError, errBroken)
	}
	if calls, done := steady.counts(); calls != 1 || done != 0 {
		t.Errorf("got the steady source run %d times, returned %d times; want 1 and 0", calls, done)
	}
	if st := status(r, "hooks"); st.State != producers.StateRunning || st.Restarts != 0 || st.LastError != nil {
		t.Errorf("got hooks %+v, want running, 0 restarts, no error", st)
	}
	want := `
# HELP vrelay_source_restarts_total Times a source was run again after it failed; each failure is logged with its error.
# TYPE vrelay_source_restarts_total counter
vrelay_source_restarts_total{provider="test",source="hooks"} 0
vrelay_source_restarts_total{provider="test",source="vc01"} 2
# HELP vrelay_source_up 1 while a source runs, 0 while it waits to be run again after a failure (or is stopped).
# TYPE vrelay_source_up gauge
vrelay_source_up{provider="test",source="hooks"} 1
vrelay_source_up{provider="test",source="vc01"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vrelay_source_restarts_total", "vrelay_source_up"); err != nil {
		t.Error(err)
	}

	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("got Run() = %v, want context.Canceled", err)
	}
	for _, s := range []*fakeSource{flaky, steady} {
		if calls, done := s.counts(); calls != done {
			t.Errorf("Run returned with %d of %d source runs still going", calls-done, calls)
		}
	}
	for _, st := range r.Status() {
		if st.State != producers.StateStopped {
			t.Errorf("got %s %s after shutdown, want stopped", st.Name, st.State)
		}
	}
	noLeak(t, base)
}

// TestRunnerStatusShowsFailure: a source that keeps failing is failed, with
// its error and the time of the next attempt, and the runner still stops
// at once, in the middle of the pause.
func TestRunnerStatusShowsFailure(t *testing.T) {
	tests := []struct {
		name    string
		script  func(context.Context, int) error
		wantErr string
	}{
		{"error", func(context.Context, int) error { return errBroken }, errBroken.Error()},
		{"returns nil early", func(context.Context, int) error { return nil }, "source stopped by itself without an error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			r := producers.NewRunner(producers.WithRestartBackoff(time.Hour, time.Hour))
			if err := r.Add("vcenter", "vc01", &fakeSource{script: tt.script}, nopPublisher{}); err != nil {
				t.Fatal(err)
			}
			if st := r.Status()[0]; st.State != producers.StateStarting {
				t.Errorf("got state %s before Run, want starting", st.State)
			}
			stop := startRunner(t, r)
			waitFor(t, "the failure", func() bool { return r.Status()[0].State == producers.StateFailed })
			st := r.Status()[0]
			if st.LastError == nil || st.LastError.Error() != tt.wantErr {
				t.Errorf("got last error %v, want %q", st.LastError, tt.wantErr)
			}
			if got := st.NextStart.Sub(st.Since); got != time.Hour {
				t.Errorf("got next start %s after the failure, want 1h", got)
			}
			began := time.Now()
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("got Run() = %v, want context.Canceled", err)
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("Run took %s to return, want it to cut the pause short", d)
			}
			if st := r.Status()[0]; st.State != producers.StateStopped || st.LastError == nil {
				t.Errorf("got %+v after shutdown, want stopped with the last error kept", st)
			}
			noLeak(t, base)
		})
	}
}

// TestRunnerBackoff: the pause doubles up to the maximum, and starts again
// at the minimum after a run that lasted at least the maximum. A watcher
// reads each pause from Status while the source waits.
func TestRunnerBackoff(t *testing.T) {
	const lo, hi = 20 * time.Millisecond, 160 * time.Millisecond
	r := producers.NewRunner(producers.WithRestartBackoff(lo, hi))
	src := &fakeSource{script: func(ctx context.Context, call int) error {
		switch {
		case call == 6: // a healthy run, then a failure
			timer := time.NewTimer(hi + 20*time.Millisecond)
			defer timer.Stop()
			<-timer.C
		case call > 6:
			return blocks(ctx, call)
		}
		return errBroken
	}}
	if err := r.Add("vcenter", "vc01", src, nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	var pauses []time.Duration
	stopWatch, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		var last time.Time
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if st := r.Status()[0]; st.State == producers.StateFailed && !st.Since.Equal(last) {
				last = st.Since
				pauses = append(pauses, st.NextStart.Sub(st.Since))
			}
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
		}
	}()
	startRunner(t, r)
	waitFor(t, "the seventh run", func() bool { calls, _ := src.counts(); return calls >= 7 })
	close(stopWatch)
	<-watched
	want := []time.Duration{lo, 2 * lo, 4 * lo, hi, hi, lo}
	if diff := cmp.Diff(want, pauses); diff != "" {
		t.Errorf("pauses differ (-want +got):\n%s", diff)
	}
}

func TestRunnerAdd(t *testing.T) {
	r := producers.NewRunner()
	src := &fakeSource{script: blocks}
	if err := r.Add("webhook", "hooks", src, nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Add("webhook", "hooks", src, nopPublisher{}); err == nil {
		t.Error("got nil error adding a second webhook/hooks, want one")
	}
	if err := r.Add("vcenter", "hooks", src, nopPublisher{}); err != nil {
		t.Errorf("got %v adding vcenter/hooks, want nil: names are per provider", err)
	}
	stop := startRunner(t, r)
	waitFor(t, "the source to run", func() bool { return r.Status()[0].State == producers.StateRunning })
	if err := r.Add("webhook", "late", src, nopPublisher{}); err == nil {
		t.Error("got nil error from Add after Run began, want one")
	}
	if err := r.Run(t.Context()); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("got %v from a second Run, want an error saying it runs already", err)
	}
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("got Run() = %v, want context.Canceled", err)
	}
}

// reportingSource is a running source that says how it reaches its
// upstream.
type reportingSource struct {
	fakeSource
	ok     atomic.Bool
	detail string
}

func (s *reportingSource) Health() (bool, string) { return s.ok.Load(), s.detail }

// TestRunnerStatusDetail: a running source that reports trouble has it in
// its status; once fine again, the detail is gone.
func TestRunnerStatusDetail(t *testing.T) {
	src := &reportingSource{fakeSource: fakeSource{script: blocks}, detail: "vcenter unreachable since 02:31:05: refused (failed attempts: 2)"}
	r := producers.NewRunner()
	if err := r.Add("vcenter", "vc02", src, nopPublisher{}); err != nil {
		t.Fatal(err)
	}
	stop := startRunner(t, r)
	defer func() { _ = stop() }()
	waitFor(t, "the source to run", func() bool { return r.Status()[0].State == producers.StateRunning })
	if got := r.Status()[0].Detail; got != src.detail {
		t.Errorf("got detail %q, want %q", got, src.detail)
	}
	src.ok.Store(true)
	if got := r.Status()[0].Detail; got != "" {
		t.Errorf("got detail %q from a healthy source, want none", got)
	}
}
