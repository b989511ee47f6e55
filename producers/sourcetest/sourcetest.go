// Package sourcetest is the conformance suite every [producers.Source]
// passes. It drives a source through a [Harness] and checks the contract
// of producers.Source from the outside:
//
//   - the events it publishes are valid CloudEvents (specversion 1.0, id,
//     source, type), distinct by source and id, and distinct by the
//     record's Nats-Msg-Id (its MsgID, or the default CE source and id);
//   - Run returns context.Canceled promptly once its context is cancelled;
//   - a failing Publisher loses nothing: once Publish works again every
//     event the upstream system produced is published (a pull source
//     retries; a push source fails the request and its sender retries);
//   - with [Features].Resumes, a source restarted on the same position
//     publishes what upstream produced while it was down, and nothing it
//     had published before.
//
// The Publisher the suite hands to the source is a recording one (our own
// interface, not a NATS mock): the suite is about the source's side of the
// contract; the JetStream side is tested in package producers.
//
//	sourcetest.Run(t, sourcetest.Harness{
//		New: func(t *testing.T) (producers.Source, func(n int)) { ... },
//		Features: sourcetest.Features{Resumes: true},
//	})
package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// Harness builds the source under test.
type Harness struct {
	// New returns a fresh source and a function that makes its upstream
	// system produce n new events. emit is called while the source runs; it
	// must itself wait until the source is ready to see new events (a pull
	// source must have connected), and a push harness must retry what the
	// source refused, as a real sender does. Successive calls of New share
	// the upstream system and the position store, so that a second source
	// resumes where the first stopped.
	New func(t *testing.T) (src producers.Source, emit func(n int))
	// Features says which optional behaviour the source has.
	Features Features
	// Timeout bounds each wait of the suite. Default 30s.
	Timeout time.Duration
}

// Features of a source.
type Features struct {
	// Resumes: the source keeps a position; a new source on the same
	// position store publishes what upstream produced while none ran, and
	// nothing the previous one published.
	Resumes bool
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	t.Run("PublishesValidDistinctEvents", func(t *testing.T) { testPublishes(t, h) })
	t.Run("StopsOnCancel", func(t *testing.T) { testStops(t, h) })
	t.Run("PublisherFailureLosesNothing", func(t *testing.T) { testPublisherFailure(t, h) })
	if h.Features.Resumes {
		t.Run("ResumesWithoutRepublishing", func(t *testing.T) { testResumes(t, h) })
	}
}

// Recorder is a [producers.Publisher] that records what it was given and
// can be told to fail.
type Recorder struct {
	mu    sync.Mutex
	recs  []producers.Record
	fails int
	calls int
	added chan struct{}
}

// NewRecorder returns a Recorder that fails its first failFirst calls.
func NewRecorder(failFirst int) *Recorder {
	return &Recorder{fails: failFirst, added: make(chan struct{}, 1)}
}

// Publish implements producers.Publisher.
func (r *Recorder) Publish(ctx context.Context, recs ...producers.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fails > 0 {
		r.fails--
		return errors.New("sourcetest: jetstream unavailable (injected)")
	}
	r.recs = append(r.recs, recs...)
	select {
	case r.added <- struct{}{}:
	default:
	}
	return nil
}

// Records returns a copy of what was published.
func (r *Recorder) Records() []producers.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]producers.Record(nil), r.recs...)
}

// Events returns the events of what was published.
func (r *Recorder) Events() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := make([]event.Event, len(r.recs))
	for i := range r.recs {
		evs[i] = r.recs[i].Event
	}
	return evs
}

// Calls returns how many times Publish was called.
func (r *Recorder) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// waitFor waits until at least n events were published.
func (r *Recorder) waitFor(t *testing.T, n int, timeout time.Duration) []event.Event {
	t.Helper()
	recs := r.waitForRecords(t, n, timeout)
	evs := make([]event.Event, len(recs))
	for i := range recs {
		evs[i] = recs[i].Event
	}
	return evs
}

// waitForRecords waits until at least n records were published.
func (r *Recorder) waitForRecords(t *testing.T, n int, timeout time.Duration) []producers.Record {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if recs := r.Records(); len(recs) >= n {
			return recs
		}
		select {
		case <-r.added:
		case <-deadline:
			t.Fatalf("got %d published events, want at least %d", len(r.Records()), n)
		}
	}
}

// start runs src with pub until the test ends, and returns a function that
// cancels it and returns Run's error.
func start(t *testing.T, src producers.Source, pub producers.Publisher) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, pub) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func key(ev event.Event) string { return ev.Source() + "\x00" + ev.ID() }

func testPublishes(t *testing.T, h Harness) {
	src, emit := h.New(t)
	rec := NewRecorder(0)
	start(t, src, rec)
	emit(5)
	recs := rec.waitForRecords(t, 5, h.Timeout)
	seen, msgIDs := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		ev := r.Event
		if err := ev.Validate(); err != nil {
			t.Errorf("event %q is not a valid CloudEvent: %v", ev.ID(), err)
		}
		if ev.SpecVersion() != event.CloudEventsVersionV1 {
			t.Errorf("event %q has specversion %q, want 1.0", ev.ID(), ev.SpecVersion())
		}
		if seen[key(ev)] {
			t.Errorf("event source %q id %q published twice", ev.Source(), ev.ID())
		}
		seen[key(ev)] = true
		id := r.MsgID
		if id == "" {
			id = streams.MsgID(&ev)
		}
		if msgIDs[id] {
			t.Errorf("Nats-Msg-Id %q published for two events: JetStream would drop the second as a duplicate", id)
		}
		msgIDs[id] = true
	}
}

func testStops(t *testing.T, h Harness) {
	src, emit := h.New(t)
	rec := NewRecorder(0)
	stop := start(t, src, rec)
	emit(1)
	rec.waitFor(t, 1, h.Timeout)
	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v after cancel, want context.Canceled", err)
		}
	case <-time.After(h.Timeout):
		t.Fatalf("Run did not return within %s of cancel", h.Timeout)
	}
}

func testPublisherFailure(t *testing.T, h Harness) {
	src, emit := h.New(t)
	rec := NewRecorder(3)
	start(t, src, rec)
	emit(5)
	evs := rec.waitFor(t, 5, h.Timeout)
	if rec.Calls() < 4 {
		t.Errorf("Publish called %d times, want the 3 injected failures and a success", rec.Calls())
	}
	ids := map[string]bool{}
	for _, ev := range evs {
		ids[key(ev)] = true
	}
	if len(ids) < 5 {
		t.Errorf("got %d distinct events after publisher failures, want 5", len(ids))
	}
}

func testResumes(t *testing.T, h Harness) {
	src, emit := h.New(t)
	first := NewRecorder(0)
	stop := start(t, src, first)
	emit(3)
	before := first.waitFor(t, 3, h.Timeout)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("first Run returned %v, want context.Canceled", err)
	}
	old := map[string]bool{}
	for _, ev := range before {
		old[key(ev)] = true
	}
	// Upstream goes on while no source runs; the next source must pick
	// these up, without publishing the first three again.
	emit(2)

	src2, emit2 := h.New(t)
	second := NewRecorder(0)
	start(t, src2, second)
	emit2(1)
	after := second.waitFor(t, 3, h.Timeout)
	fresh := map[string]bool{}
	for _, ev := range after {
		if old[key(ev)] {
			t.Errorf("restarted source published %s again", describe(ev))
		}
		fresh[key(ev)] = true
	}
	if len(fresh) < 3 {
		t.Errorf("restarted source published %d distinct new events, want the 2 produced while it was down and 1 after", len(fresh))
	}
}

func describe(ev event.Event) string {
	return fmt.Sprintf("event %q (%s from %s)", ev.ID(), ev.Type(), ev.Source())
}
