package natssink_test

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/natssink"
	"github.com/vrelay/vrelay/consumers/sinktest"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// ackDestination answers JetStream publishes on its subject the way a
// stream does, on a real embedded server, but as scripted: Accept is a
// PubAck, Reject the API error a stream gives a message above its
// MaxMsgSize (400), Fail the error of a stream that cannot store (503),
// Hang no answer at all. The real-stream cases are in natssink_test.go.
type ackDestination struct {
	nc *nats.Conn

	mu       sync.Mutex
	answer   func(event.Event) sinktest.Outcome
	received []event.Event
	attempts int
}

const ackSubject = "conformance.events"

func newAckDestination(t *testing.T) sinktest.Destination {
	nc, _ := natstest.Run(t)
	d := &ackDestination{nc: nc}
	sub, err := nc.Subscribe(ackSubject, d.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *ackDestination) handle(m *nats.Msg) {
	ev, err := streams.Decode(m.Data)
	d.mu.Lock()
	d.attempts++
	outcome := sinktest.Accept
	if err != nil {
		outcome = sinktest.Reject
	} else if d.answer != nil {
		outcome = d.answer(ev)
	}
	if outcome == sinktest.Accept {
		d.received = append(d.received, ev)
	}
	n := len(d.received)
	d.mu.Unlock()

	var reply any
	switch outcome {
	case sinktest.Accept:
		reply = map[string]any{"stream": "CONFORMANCE", "seq": n}
	case sinktest.Reject:
		reply = map[string]any{"error": map[string]any{"code": 400, "err_code": 10054, "description": "message size exceeds maximum allowed"}}
	case sinktest.Fail:
		reply = map[string]any{"error": map[string]any{"code": 503, "err_code": 10077, "description": "resource limits exceeded for account"}}
	case sinktest.Hang:
		return
	}
	b, _ := json.Marshal(reply)
	_ = m.Respond(b)
}

func (d *ackDestination) Sink(t *testing.T) consumers.Sink {
	s, err := natssink.New(natssink.Config{Subject: ackSubject, JetStream: true}, natssink.WithConn(d.nc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (d *ackDestination) Script(answer func(event.Event) sinktest.Outcome) {
	d.mu.Lock()
	d.answer = answer
	d.mu.Unlock()
}

func (d *ackDestination) Received() []event.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.received)
}

func (d *ackDestination) Attempts() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attempts
}

func TestConformance(t *testing.T) {
	sinktest.RunCore(t, newAckDestination, sinktest.Features{})
}
