package consumers

import "context"

// encodedKey is the context key of the stored body.
type encodedKey struct{}

// ContextWithEncoded returns a context that carries body: the stored
// structured-mode CloudEvents JSON (as [github.com/vrelay/vrelay/streams.MarshalEvent] writes it) of
// exactly the event being sent. The [Dispatcher] sets it only when nothing
// changed the event since it was read from the stream, so that a sink that
// sends structured JSON may send body as is instead of encoding the event
// again. The body must not be modified.
func ContextWithEncoded(ctx context.Context, body []byte) context.Context {
	return context.WithValue(ctx, encodedKey{}, body)
}

// EncodedFromContext returns the body [ContextWithEncoded] put in ctx, and
// whether there is one. A sink that sends structured-mode JSON may send it
// in place of encoding the event; any other sink ignores it.
func EncodedFromContext(ctx context.Context) ([]byte, bool) {
	body, ok := ctx.Value(encodedKey{}).([]byte)
	return body, ok && len(body) > 0
}
