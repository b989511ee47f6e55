package logsink_test

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/logsink"
	"github.com/vrelay/vrelay/consumers/sinktest"
)

// scriptWriter is a log stream that reads back each line it is given and
// answers each event as scripted: Fail makes the write fail at the start
// of that line, as a full disk or a closed pipe would. A stream can neither
// reject an event nor hang in a way ctx can interrupt.
type scriptWriter struct {
	mu       sync.Mutex
	answer   func(event.Event) sinktest.Outcome
	received []event.Event
	writes   int
}

var errWrite = errors.New("write /dev/stdout: broken pipe")

func (w *scriptWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	n := 0
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, errors.New("line without newline")
		}
		var ev event.Event
		if err := format.JSON.Unmarshal(p[:i], &ev); err != nil {
			return n, err
		}
		if w.answer != nil && w.answer(ev) != sinktest.Accept {
			return n, errWrite
		}
		w.received = append(w.received, ev)
		n += i + 1
		p = p[i+1:]
	}
	return n, nil
}

func (w *scriptWriter) Sink(t *testing.T) consumers.Sink { return newSink(t, logsink.WithWriter(w)) }

func (w *scriptWriter) Script(answer func(event.Event) sinktest.Outcome) {
	w.mu.Lock()
	w.answer = answer
	w.mu.Unlock()
}

func (w *scriptWriter) Received() []event.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.received)
}

func (w *scriptWriter) Attempts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

func TestConformance(t *testing.T) {
	sinktest.RunCore(t, func(*testing.T) sinktest.Destination { return &scriptWriter{} },
		sinktest.Features{CannotReject: true, CannotHang: true, FailEndsBatch: true})
}
