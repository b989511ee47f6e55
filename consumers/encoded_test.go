package consumers

import (
	"context"
	"errors"
	"testing"
)

type otherKey struct{}

// TestContextWithEncoded checks that the body's context is its parent in
// every other way: values, cancellation, and contexts derived from it.
func TestContextWithEncoded(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(t.Context(), otherKey{}, "v"))
	ctx := ContextWithEncoded(parent, []byte(`{"a":1}`))
	if b, ok := EncodedFromContext(ctx); !ok || string(b) != `{"a":1}` {
		t.Errorf("EncodedFromContext: got %q, %t; want the body", b, ok)
	}
	if v := ctx.Value(otherKey{}); v != "v" {
		t.Errorf("Value(otherKey): got %v, want the parent's", v)
	}
	if b, ok := EncodedFromContext(ContextWithEncoded(ctx, []byte(`2`))); !ok || string(b) != `2` {
		t.Errorf("inner body: got %q, %t; want 2", b, ok)
	}
	if _, ok := EncodedFromContext(ContextWithEncoded(ctx, nil)); ok {
		t.Error("an empty body: got ok")
	}
	child, stop := context.WithCancel(ctx)
	defer stop()
	cancel()
	<-child.Done()
	if !errors.Is(ctx.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Errorf("after the parent's cancel: Err %v, child %v; want Canceled", ctx.Err(), child.Err())
	}
}

func BenchmarkContextWithEncoded(b *testing.B) {
	body := []byte(`{}`)
	b.ReportAllocs()
	for b.Loop() {
		ctx := ContextWithEncoded(b.Context(), body)
		if _, ok := EncodedFromContext(ctx); !ok {
			b.Fatal("no body")
		}
	}
}
