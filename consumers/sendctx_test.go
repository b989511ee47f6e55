package consumers

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestSendContextTimeout checks a send that outlasts its deadline: its
// context and those derived from it end with DeadlineExceeded, and the
// worker's next send starts afresh.
func TestSendContextTimeout(t *testing.T) {
	sc := newSendContext(t.Context())
	defer sc.close()
	ctx := sc.begin(time.Now(), 20*time.Millisecond, []byte(`{}`))
	if dl, ok := ctx.Deadline(); !ok || dl.IsZero() {
		t.Errorf("Deadline: got %v, %t; want the send's", dl, ok)
	}
	child, stop := context.WithCancel(ctx)
	defer stop()
	<-ctx.Done()
	<-child.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("Err after the deadline: got %v, want DeadlineExceeded", ctx.Err())
	}
	if !errors.Is(context.Cause(child), context.DeadlineExceeded) {
		t.Errorf("derived context's cause: got %v, want DeadlineExceeded", context.Cause(child))
	}
	sc.end()

	ctx = sc.begin(time.Now(), time.Hour, nil)
	if ctx.Err() != nil {
		t.Fatalf("next send: Err %v, want nil", ctx.Err())
	}
	select {
	case <-ctx.Done():
		t.Fatal("next send: Done closed")
	default:
	}
	if _, ok := EncodedFromContext(ctx); ok {
		t.Error("a send without a stored body: EncodedFromContext got one")
	}
	sc.end()
}

// TestSendContextStaleTimer checks that the deadline of a send that ended
// in time does not cut the next one short.
func TestSendContextStaleTimer(t *testing.T) {
	sc := newSendContext(t.Context())
	defer sc.close()
	sc.begin(time.Now(), 10*time.Millisecond, nil)
	sc.end()
	ctx := sc.begin(time.Now(), time.Hour, []byte(`{"a":1}`))
	time.Sleep(50 * time.Millisecond) // past the first send's deadline
	if err := ctx.Err(); err != nil {
		t.Fatalf("second send: Err %v after the first one's deadline passed, want nil", err)
	}
	if b, ok := EncodedFromContext(ctx); !ok || string(b) != `{"a":1}` {
		t.Errorf("EncodedFromContext: got %q, %t; want the body", b, ok)
	}
	sc.end()
}

// TestSendContextParent checks that the route's send context ending ends
// the send, with its error, and that a context derived from a send's joins
// the parent's cancellation without a goroutine of its own.
func TestSendContextParent(t *testing.T) {
	parent, cancel := context.WithCancel(t.Context())
	sc := newSendContext(parent)
	defer sc.close()
	ctx := sc.begin(time.Now(), time.Hour, nil)

	before := runtime.NumGoroutine()
	var stops []context.CancelFunc
	for range 50 {
		_, stop := context.WithCancel(ctx)
		stops = append(stops, stop)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("50 derived contexts started %d goroutines, want none", n-before)
	}
	for _, stop := range stops {
		stop()
	}

	cancel()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("Err after the parent's cancel: got %v, want Canceled", ctx.Err())
	}
	sc.end()
	if ctx := sc.begin(time.Now(), time.Hour, nil); ctx.Err() == nil {
		t.Error("a send after the parent ended: Err nil, want Canceled")
	}
	sc.end()
}
