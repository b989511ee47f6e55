package sinktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
)

// Outcome is how a scripted destination answers one event.
type Outcome int

const (
	// Accept takes the event: the sink must return nil.
	Accept Outcome = iota
	// Reject refuses the event for good (an HTTP 400, an EventBridge
	// ValidationException): the sink must return a [consumers.Permanent] error.
	Reject
	// Fail fails the event in a way a retry may fix (a 503, a throttled
	// entry, a write error): the sink must return a retryable error.
	Fail
	// Hang does not answer until the send's ctx is done: the sink must
	// return promptly then, with an error wrapping ctx's error.
	Hang
)

func (o Outcome) String() string {
	switch o {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Fail:
		return "fail"
	case Hang:
		return "hang"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Destination is a scripted destination of one kind (an HTTP receiver, a
// log stream, an EventBridge bus) together with the sink under test that
// delivers to it. Its methods are called from one test goroutine, while the
// sink's sends may run on others: implementations must be safe for that.
type Destination interface {
	// Sink returns a sink delivering to this destination, its other
	// settings at their defaults. Register any cleanup with t.Cleanup.
	Sink(t *testing.T) consumers.Sink
	// Script sets how the destination answers each event from now on.
	// Until it is called, the destination accepts everything.
	Script(answer func(ev event.Event) Outcome)
	// Received returns the events the destination accepted, in the order
	// they arrived, as a receiver would read them back.
	Received() []event.Event
	// Attempts returns how many delivery attempts reached the destination:
	// requests, writes. A batch sent in one request is one attempt.
	Attempts() int
}

// Features states what the sink under test is meant to do where sinks
// legitimately differ. The zero value describes a sink whose destination
// can accept, reject, fail and hang, and, for [Run], an HTTP sink in binary
// mode for which a 404 is permanent.
type Features struct {
	// CannotReject says the destination has no way to refuse an event for
	// good (a log stream): the suite skips the permanent-failure checks.
	CannotReject bool
	// CannotHang says a send cannot be left waiting on the destination in a
	// way ctx can interrupt (a write to a pipe): the suite skips the check
	// that cancelling ctx stops a hanging send.
	CannotHang bool
	// FailEndsBatch says a failure ends a batch: the events after the first
	// one that failed were not delivered and must get a retryable error (a
	// byte stream, where a short write loses the rest).
	FailEndsBatch bool

	// Structured says the HTTP sink sends structured-mode CloudEvents (the
	// JSON envelope as the body, Content-Type application/cloudevents+json)
	// rather than binary mode (ce-* headers, the data as the body). The
	// suite checks the mode it is told, so a sink sending the wrong one
	// fails. Only [Run] reads it.
	Structured bool

	// Retry404 says an HTTP 404 is retryable, as for Knative, where a
	// revision may not be ready yet (knative SelectiveRetry). Otherwise a 404
	// must be permanent like any other 4xx. Only [Run] reads it.
	Retry404 bool

	// Retry409 says an HTTP 409 is retryable, as Knative's delivery spec
	// has it. Otherwise a 409 must be permanent. Only [Run] reads it.
	Retry409 bool
}

// guard bounds how long the suite waits for something that should happen
// at once. It only stops a broken sink from hanging the test binary; no
// assertion depends on how fast anything is.
const guard = 20 * time.Second

// RunCore runs the checks that every sink passes, whatever its transport,
// against sinks delivering to the destinations newDest returns (a fresh
// one per case). Subtests run in parallel, so newDest must be safe to call
// concurrently. See the package documentation for what is checked.
func RunCore(t *testing.T, newDest func(t *testing.T) Destination, f Features) {
	t.Helper()
	t.Run("Delivered", func(t *testing.T) { t.Parallel(); testDelivered(t, newDest) })
	t.Run("Retryable", func(t *testing.T) { t.Parallel(); testCoreRetryable(t, newDest) })
	if !f.CannotReject {
		t.Run("Rejected", func(t *testing.T) { t.Parallel(); testRejected(t, newDest) })
	}
	if !f.CannotHang {
		t.Run("CancelStopsHangingSend", func(t *testing.T) { t.Parallel(); testCancelHang(t, newDest) })
	}
	t.Run("CancelledBeforeSend", func(t *testing.T) { t.Parallel(); testCancelledBefore(t, newDest) })
	t.Run("Batch", func(t *testing.T) { t.Parallel(); testBatch(t, newDest, f) })
}

// arrivalCases are events whose every attribute and data byte must arrive.
var arrivalCases = []struct {
	name        string
	contentType string
	data        []byte
}{
	{
		name:        "json",
		contentType: event.ApplicationJSON,
		data:        []byte(`{"Key":4242,"Vm":{"Name":"prod-web-01","Vm":{"Type":"VirtualMachine","Value":"vm-42"}},"FullFormattedMessage":"prod-web-01 on esx-01 is powered on \u00e9\u4e16"}`),
	},
	{
		name:        "xml",
		contentType: event.ApplicationXML,
		data:        []byte(`<VmPoweredOnEvent><key>4242</key><fullFormattedMessage>prod-web-01 &amp; co</fullFormattedMessage></VmPoweredOnEvent>`),
	},
}

func testDelivered(t *testing.T, newDest func(*testing.T) Destination) {
	for _, tt := range arrivalCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dest := newDest(t)
			s := dest.Sink(t)
			ev := newEvent("d3b07384-d9a0-4c1e-8f2e-" + tt.name)
			ev.SetExtension("eventclass", "event")
			ev.SetExtension("vsphereapiversion", "8.0.3.0")
			if err := ev.SetData(tt.contentType, tt.data); err != nil {
				t.Fatal(err)
			}
			if err := s.Send(t.Context(), ev); err != nil {
				t.Fatalf("Send() to a destination that accepts: got error %v, want nil", err)
			}
			if n := dest.Attempts(); n != 1 {
				t.Errorf("attempts at the destination: got %d, want 1", n)
			}
			got := dest.Received()
			if len(got) != 1 {
				t.Fatalf("events received: got %d, want 1", len(got))
			}
			checkIntact(t, got[0], ev)
		})
	}
}

// checkIntact compares what arrived with what was sent.
func checkIntact(t *testing.T, got, want event.Event) {
	t.Helper()
	if got.ID() != want.ID() || got.Source() != want.Source() || got.Type() != want.Type() {
		t.Errorf("received id/source/type: got %q/%q/%q, want %q/%q/%q",
			got.ID(), got.Source(), got.Type(), want.ID(), want.Source(), want.Type())
	}
	if got.Subject() != want.Subject() || !got.Time().Equal(want.Time()) {
		t.Errorf("received subject/time: got %q/%s, want %q/%s", got.Subject(), got.Time(), want.Subject(), want.Time())
	}
	if !strings.HasPrefix(got.DataContentType(), want.DataContentType()) {
		t.Errorf("received datacontenttype: got %q, want %q", got.DataContentType(), want.DataContentType())
	}
	for k, v := range want.Extensions() {
		if g := got.Extensions()[k]; fmt.Sprint(g) != fmt.Sprint(v) {
			t.Errorf("received extension %s: got %v, want %q", k, g, v)
		}
	}
	if !bytes.Equal(got.Data(), want.Data()) {
		t.Errorf("received data: got %q, want %q", got.Data(), want.Data())
	}
}

func testCoreRetryable(t *testing.T, newDest func(*testing.T) Destination) {
	dest := newDest(t)
	dest.Script(func(event.Event) Outcome { return Fail })
	s := dest.Sink(t)
	err := s.Send(t.Context(), newEvent("fails"))
	if err == nil {
		t.Fatalf("Send() to a destination that fails: got nil, want a retryable error")
	}
	if consumers.IsPermanent(err) {
		t.Errorf("Send() to a destination that fails: got permanent error %q, want a retryable error", err)
	}
	if n := dest.Attempts(); n != 1 {
		t.Errorf("attempts at the destination: got %d, want 1 (a sink must not retry internally)", n)
	}
	if got := dest.Received(); len(got) != 0 {
		t.Errorf("events received: got %d, want 0", len(got))
	}
}

func testRejected(t *testing.T, newDest func(*testing.T) Destination) {
	dest := newDest(t)
	dest.Script(func(event.Event) Outcome { return Reject })
	s := dest.Sink(t)
	err := s.Send(t.Context(), newEvent("rejected"))
	if err == nil {
		t.Fatalf("Send() to a destination that rejects: got nil, want a permanent error")
	}
	if !consumers.IsPermanent(err) {
		t.Errorf("Send() to a destination that rejects: got retryable error %q, want a permanent error", err)
	}
	if n := dest.Attempts(); n != 1 {
		t.Errorf("attempts at the destination: got %d, want 1", n)
	}
}

func testCancelHang(t *testing.T, newDest func(*testing.T) Destination) {
	dest := newDest(t)
	dest.Script(func(event.Event) Outcome { return Hang })
	s := dest.Sink(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, newEvent("hang")) }()

	deadline := time.Now().Add(guard)
	for dest.Attempts() == 0 {
		select {
		case err := <-done:
			t.Fatalf("Send() returned %v before the destination answered, want it to wait", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the send did not reach the destination within %s", guard)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		checkCancelled(t, "Send() after cancel", err)
	case <-time.After(guard):
		t.Fatalf("Send() did not return within %s of ctx being cancelled", guard)
	}
}

func checkCancelled(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got nil, want a retryable error", what)
	}
	if consumers.IsPermanent(err) {
		t.Errorf("%s: got permanent error %q, want a retryable error", what, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%s: got %q, want an error wrapping context.Canceled", what, err)
	}
}

func testCancelledBefore(t *testing.T, newDest func(*testing.T) Destination) {
	dest := newDest(t)
	s := dest.Sink(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	checkCancelled(t, "Send() with ctx already cancelled", s.Send(ctx, newEvent("too-late")))
	if got := dest.Received(); len(got) != 0 {
		t.Errorf("events received after a send with ctx already cancelled: got %d, want 0", len(got))
	}
}

// testBatch sends one batch whose events the destination accepts, rejects
// and fails in turn, and checks that each event gets its own result.
func testBatch(t *testing.T, newDest func(*testing.T) Destination, f Features) {
	dest := newDest(t)
	s := dest.Sink(t)
	bs, ok := s.(consumers.BatchSink)
	if !ok {
		t.Skip("the sink sends one event per request (not a consumers.BatchSink)")
	}
	script := []Outcome{Accept, Reject, Fail, Accept, Reject, Fail, Accept, Accept}
	if f.CannotReject {
		for i, o := range script {
			if o == Reject {
				script[i] = Accept
			}
		}
	}
	evs := make([]event.Event, len(script))
	answer := map[string]Outcome{}
	for i, o := range script {
		evs[i] = newEvent(fmt.Sprintf("batch-%d-%s", i, o))
		answer[evs[i].ID()] = o
	}
	dest.Script(func(ev event.Event) Outcome { return answer[ev.ID()] })

	errs := bs.SendBatch(t.Context(), slices.Clone(evs))
	if len(errs) != len(evs) {
		t.Fatalf("SendBatch() of %d events: got %d results, want %d", len(evs), len(errs), len(evs))
	}
	if n := dest.Attempts(); n != 1 {
		t.Errorf("attempts at the destination for one batch: got %d, want 1", n)
	}
	var wantIDs []string
	failed := false
	for i, err := range errs {
		want := script[i]
		if failed && f.FailEndsBatch {
			want = Fail // never reached the destination
		}
		if want == Fail {
			failed = true
		}
		switch want {
		case Accept:
			wantIDs = append(wantIDs, evs[i].ID())
			if err != nil {
				t.Errorf("SendBatch() result %d (destination: %s): got error %q, want nil", i, want, err)
			}
		case Reject:
			if !consumers.IsPermanent(err) {
				t.Errorf("SendBatch() result %d (destination: %s): got %v, want a permanent error", i, want, err)
			}
		case Fail:
			if err == nil || consumers.IsPermanent(err) {
				t.Errorf("SendBatch() result %d (destination: %s): got %v, want a retryable error", i, want, err)
			}
		}
	}
	var gotIDs []string
	for _, ev := range dest.Received() {
		gotIDs = append(gotIDs, ev.ID())
	}
	if !slices.Equal(gotIDs, wantIDs) {
		t.Errorf("events received from the batch: got %v, want exactly the accepted ones %v", gotIDs, wantIDs)
	}
	for _, ev := range dest.Received() {
		for _, sent := range evs {
			if sent.ID() == ev.ID() {
				checkIntact(t, ev, sent)
			}
		}
	}
}

func newEvent(id string) event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("/sinktest/vc01")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetSubject("VmPoweredOnEvent")
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte(`{"Key":1}`)
	return ev
}
