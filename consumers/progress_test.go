package consumers

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// progressMsg counts InProgress calls; nothing else of it is used.
type progressMsg struct {
	jetstream.Msg
	calls atomic.Int32
}

func (m *progressMsg) InProgress() error {
	m.calls.Add(1)
	return nil
}

func TestProgress(t *testing.T) {
	const every = 200 * time.Millisecond
	p := &progress{every: every}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p.run(stop)
	}()
	defer func() {
		close(stop)
		<-done
	}()

	slow, fast := &progressMsg{}, &progressMsg{}
	s1, s2 := p.slot(), p.slot()
	start := time.Now()
	s1.begin(slow, start)
	s2.begin(fast, start)
	time.Sleep(every / 10)
	s2.end() // a send shorter than half the ack wait: no InProgress
	time.Sleep(3*every + every/2)
	s1.end()
	elapsed := time.Since(start)
	n := slow.calls.Load()
	// A call per `every` of sending, each a little late.
	if hi := int32(elapsed / every); n < 1 || n > hi {
		t.Errorf("InProgress calls during a %s send: got %d, want 1 to %d", elapsed.Round(time.Millisecond), n, hi)
	}
	if n := fast.calls.Load(); n != 0 {
		t.Errorf("InProgress calls for a send that ended before half the ack wait: got %d, want 0", n)
	}
	time.Sleep(every)
	if after := slow.calls.Load(); after != n {
		t.Errorf("InProgress calls after the send ended: got %d more, want 0", after-n)
	}
}

// TestProgressBatch: a batch send keeps every one of its messages in progress.
func TestProgressBatch(t *testing.T) {
	const every = 100 * time.Millisecond
	p := &progress{every: every}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p.run(stop)
	}()
	defer func() {
		close(stop)
		<-done
	}()

	msgs := []*progressMsg{{}, {}, {}}
	batch := []jetstream.Msg{msgs[0], msgs[1], msgs[2]}
	s := p.slot()
	s.beginBatch(batch, time.Now())
	time.Sleep(2*every + every/2)
	s.end()
	for i, m := range msgs {
		if n := m.calls.Load(); n < 1 {
			t.Errorf("InProgress calls on message %d of a batch sent for %s: got %d, want at least 1", i, 2*every+every/2, n)
		}
	}
	if a, b := msgs[0].calls.Load(), msgs[2].calls.Load(); a != b {
		t.Errorf("InProgress calls: got %d on the first message and %d on the last, want the same", a, b)
	}
}
