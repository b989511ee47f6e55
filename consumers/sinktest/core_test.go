package sinktest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/sinktest"
)

// memDest is a destination in memory. Its sink, memSink, follows the
// contract of consumers.Sink and consumers.BatchSink, with switches that
// break it one way at a time, to prove that RunCore passes a correct sink
// and that each of its assertions can fail.
type memDest struct {
	fault    string
	mu       sync.Mutex
	answer   func(event.Event) sinktest.Outcome
	received []event.Event
	attempts int
}

func (d *memDest) Sink(*testing.T) consumers.Sink { return &memSink{d: d} }

func (d *memDest) Script(answer func(event.Event) sinktest.Outcome) {
	d.mu.Lock()
	d.answer = answer
	d.mu.Unlock()
}

func (d *memDest) Received() []event.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.received)
}

func (d *memDest) Attempts() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attempts
}

// attempt is one request carrying evs; it returns the answer to each.
func (d *memDest) attempt(evs ...event.Event) []sinktest.Outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attempts++
	out := make([]sinktest.Outcome, len(evs))
	for i, ev := range evs {
		if d.answer != nil {
			out[i] = d.answer(ev)
		}
		if out[i] == sinktest.Accept {
			ev = ev.Clone()
			if d.fault == "drop-extension" {
				ev.SetExtension("eventclass", nil)
			}
			d.received = append(d.received, ev)
		}
	}
	return out
}

type memSink struct{ d *memDest }

func (s *memSink) Send(ctx context.Context, ev event.Event) error {
	if err := ctx.Err(); err != nil && s.d.fault != "ignore-ctx" {
		return fmt.Errorf("send %s: %w", ev.ID(), err)
	}
	err := s.result(ctx, s.d.attempt(ev)[0])
	if s.d.fault == "retry-internally" && err != nil && !consumers.IsPermanent(err) {
		err = s.result(ctx, s.d.attempt(ev)[0])
	}
	return err
}

func (s *memSink) result(ctx context.Context, o sinktest.Outcome) error {
	switch o {
	case sinktest.Reject:
		if s.d.fault == "reject-retryable" {
			return errors.New("rejected")
		}
		return consumers.Permanent(errors.New("rejected"))
	case sinktest.Fail:
		return errors.New("unavailable")
	case sinktest.Hang:
		if s.d.fault == "ignore-ctx" {
			return errors.New("gave up")
		}
		<-ctx.Done()
		return fmt.Errorf("hang: %w", ctx.Err())
	}
	return nil
}

func (s *memSink) SendBatch(ctx context.Context, evs []event.Event) []error {
	errs := make([]error, len(evs))
	for i, o := range s.d.attempt(evs...) {
		errs[i] = s.result(ctx, o)
	}
	switch s.d.fault {
	case "batch-short":
		return errs[:len(errs)-1]
	case "batch-reversed":
		slices.Reverse(errs)
	case "batch-all-or-nothing":
		for _, err := range errs {
			if err != nil {
				for i := range errs {
					errs[i] = errors.New("batch failed")
				}
				break
			}
		}
	}
	return errs
}

// singleSink hides SendBatch.
type singleSink struct{ consumers.Sink }

func TestRunCore(t *testing.T) {
	t.Run("batch sink", func(t *testing.T) {
		sinktest.RunCore(t, func(*testing.T) sinktest.Destination { return &memDest{} }, sinktest.Features{})
	})
	t.Run("single sink", func(t *testing.T) {
		sinktest.RunCore(t, func(*testing.T) sinktest.Destination { return singleDest{&memDest{}} }, sinktest.Features{})
	})
}

type singleDest struct{ *memDest }

func (d singleDest) Sink(t *testing.T) consumers.Sink { return singleSink{d.memDest.Sink(t)} }

const envCoreFault = "SINKTEST_CORE_FAULT"

// TestFaultyCoreSink runs RunCore against a broken sink. It only runs in
// the child process that TestRunCoreCatchesFaults starts.
func TestFaultyCoreSink(t *testing.T) {
	fault, ok := os.LookupEnv(envCoreFault)
	if !ok {
		t.Skip("runs only as a child of TestRunCoreCatchesFaults")
	}
	sinktest.RunCore(t, func(*testing.T) sinktest.Destination { return &memDest{fault: fault} }, sinktest.Features{})
}

func TestRunCoreCatchesFaults(t *testing.T) {
	if _, ok := os.LookupEnv(envCoreFault); ok {
		t.Skip("already a child process")
	}
	tests := []struct {
		name  string
		fault string
		want  []string
	}{
		{name: "retries internally", fault: "retry-internally", want: []string{"attempts at the destination: got 2, want 1 (a sink must not retry internally)"}},
		{name: "rejection retryable", fault: "reject-retryable", want: []string{
			"Send() to a destination that rejects: got retryable error",
			"SendBatch() result 1 (destination: reject): got rejected, want a permanent error",
		}},
		{name: "ctx ignored", fault: "ignore-ctx", want: []string{
			"Send() after cancel: got \"gave up\", want an error wrapping context.Canceled",
			"Send() with ctx already cancelled: got nil, want a retryable error",
		}},
		{name: "extension dropped", fault: "drop-extension", want: []string{"received extension eventclass: got <nil>, want \"event\""}},
		{name: "batch result missing", fault: "batch-short", want: []string{"SendBatch() of 8 events: got 7 results, want 8"}},
		{name: "batch results reversed", fault: "batch-reversed", want: []string{"SendBatch() result 1 (destination: reject): got <nil>, want a permanent error"}},
		{name: "batch all or nothing", fault: "batch-all-or-nothing", want: []string{
			"SendBatch() result 0 (destination: accept): got error \"batch failed\", want nil",
			"SendBatch() result 1 (destination: reject): got batch failed, want a permanent error",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFaultyCoreSink$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), envCoreFault+"="+tt.fault)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("suite against a broken sink: got error %v, want a failing exit status; output:\n%s", err, out)
			}
			for _, w := range tt.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("suite output: got no %q, want it; output:\n%s", w, out)
				}
			}
		})
	}
}
