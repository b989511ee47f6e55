package eventbridge_test

import (
	"fmt"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers/eventbridge"
	"github.com/vrelay/vrelay/consumers/eventbridge/ebtest"
)

// benchEvents are 1 KB vCenter-like events.
func benchEvents(n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = newEvent(fmt.Sprintf("bench-%d", i), fmt.Sprintf(`{"Key":%d,"Vm":{"Name":"prod-web-%d"},"Pad":"%0900d"}`, i, i, 0))
	}
	return evs
}

// BenchmarkPutEventsBatched sends 10 entries per PutEvents call through
// the fake endpoint (loopback HTTP, SigV4 signing, JSON both ways).
func BenchmarkPutEventsBatched(b *testing.B) {
	srv := ebtest.NewServer(b)
	s := newSink(b, testConfig(b, srv))
	evs := benchEvents(eventbridge.MaxEntries)
	b.ResetTimer()
	for b.Loop() {
		for _, err := range s.SendBatch(b.Context(), evs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPutEventsSingle sends one entry per PutEvents call.
func BenchmarkPutEventsSingle(b *testing.B) {
	srv := ebtest.NewServer(b)
	s := newSink(b, testConfig(b, srv))
	ev := benchEvents(1)[0]
	b.ResetTimer()
	for b.Loop() {
		if err := s.Send(b.Context(), ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
