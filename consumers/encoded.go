package consumers

import "context"

// encodedKey is the context key of the stored body.
type encodedKey struct{}

// encodedCtx carries the stored body. It answers for encodedKey with
// itself, so that neither setting nor reading the body boxes the slice:
// context.WithValue took two allocations per send, this takes one.
// Everything else, Done and the cancellation parent included, is ctx's.
type encodedCtx struct {
	context.Context
	body []byte
}

func (c *encodedCtx) Value(key any) any {
	if key == (encodedKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// ContextWithEncoded returns a context that carries body: the stored
// structured-mode CloudEvents JSON (as [github.com/vrelay/vrelay/streams.MarshalEvent] writes it) of
// exactly the event being sent. The [Dispatcher] sets it only when nothing
// changed the event since it was read from the stream, so that a sink that
// sends structured JSON may send body as is instead of encoding the event
// again. The body must not be modified.
func ContextWithEncoded(ctx context.Context, body []byte) context.Context {
	return &encodedCtx{Context: ctx, body: body}
}

// EncodedFromContext returns the body [ContextWithEncoded] put in ctx, and
// whether there is one. A sink that sends structured-mode JSON may send it
// in place of encoding the event; any other sink ignores it.
func EncodedFromContext(ctx context.Context) ([]byte, bool) {
	c, ok := ctx.Value(encodedKey{}).(*encodedCtx)
	if !ok {
		return nil, false
	}
	return c.body, len(c.body) > 0
}
