package consumers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// sendContext is a worker's context for its sends, one at a time: the
// route's send context with the send's deadline and, unless a transform
// changed the event, its stored body (see [ContextWithEncoded]). A worker
// keeps one for all its sends, with one timer: a context.WithTimeout and
// a context.WithValue per send cost five allocations and a timer of their
// own for every event.
//
// Done is the channel of a context.CancelCauseFunc child of the route's
// send context, which the timer cancels with cause DeadlineExceeded when a
// send outlasts its deadline; the next send then starts from a new child.
// So a context derived from a sendContext (net/http derives one per
// request) joins that child as a child of its own, with no goroutine, and
// is cancelled with the same cause.
type sendContext struct {
	parent context.Context
	cur    atomic.Pointer[cancelChild]
	timer  *time.Timer

	mu       sync.Mutex
	deadline time.Time
	armed    bool // a send is under way
	enc      encodedCtx
}

// cancelChild is a cancellable child of the route's send context.
type cancelChild struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func newSendContext(parent context.Context) *sendContext {
	c := &sendContext{parent: parent}
	c.enc.Context = c
	c.renew()
	c.timer = time.AfterFunc(time.Hour, c.expire)
	c.timer.Stop()
	return c
}

func (c *sendContext) renew() {
	ctx, cancel := context.WithCancelCause(c.parent)
	c.cur.Store(&cancelChild{ctx: ctx, cancel: cancel})
}

// begin starts a send that may last until deadline (timeout from now);
// body, if not nil, is its stored body.
func (c *sendContext) begin(now time.Time, timeout time.Duration, body []byte) context.Context {
	if c.cur.Load().ctx.Err() != nil && c.parent.Err() == nil {
		c.renew() // the last send timed out
	}
	c.mu.Lock()
	c.deadline, c.armed, c.enc.body = now.Add(timeout), true, body
	c.mu.Unlock()
	c.timer.Reset(timeout)
	return c
}

// end ends the send.
func (c *sendContext) end() {
	c.timer.Stop()
	c.mu.Lock()
	c.armed, c.enc.body = false, nil
	c.mu.Unlock()
}

// close releases the context once the worker is done with it.
func (c *sendContext) close() {
	c.timer.Stop()
	c.cur.Load().cancel(context.Canceled)
}

// expire cancels the send under way if it outlasted its deadline. A timer
// of an earlier send that fires late finds a later deadline, or none.
func (c *sendContext) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed && !time.Now().Before(c.deadline) {
		c.cur.Load().cancel(context.DeadlineExceeded)
	}
}

func (c *sendContext) Deadline() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, true
}

func (c *sendContext) Done() <-chan struct{} { return c.cur.Load().ctx.Done() }

// Err is DeadlineExceeded once the send outlasted its deadline, else the
// route's send context's error.
func (c *sendContext) Err() error {
	cur := c.cur.Load().ctx
	err := cur.Err()
	if err == nil {
		return nil
	}
	if perr := c.parent.Err(); perr != nil {
		return perr
	}
	return context.Cause(cur)
}

func (c *sendContext) Value(key any) any {
	if key == (encodedKey{}) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.enc.body == nil {
			return nil
		}
		return &c.enc
	}
	return c.cur.Load().ctx.Value(key)
}
