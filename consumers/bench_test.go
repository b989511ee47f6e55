package consumers_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
)

// countSink accepts every event and closes done at the n-th.
type countSink struct {
	n    int64
	got  atomic.Int64
	done chan struct{}
}

func (s *countSink) Send(context.Context, event.Event) error {
	if s.got.Add(1) == s.n {
		close(s.done)
	}
	return nil
}

// BenchmarkDispatcher measures a route's hot path on a real server: b.N
// events of about 1.5 KB are stored first, then one route with a typical
// filter pulls, decodes, filters, delivers them to a sink that does
// nothing, and acks, 64 at a time. Allocations count the whole process,
// the server's included.
func BenchmarkDispatcher(b *testing.B) {
	_, js := natstest.Run(b)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "bench"})
	data := []byte(`{"Key":0,"Vm":{"Name":"prod-web-01","Vm":{"Type":"VirtualMachine","Value":"vm-81"}},"FullFormattedMessage":"` +
		strings.Repeat("x", 1000) + `"}`)
	evs := make([]event.Event, 0, 1000)
	for i := range b.N {
		ev := event.New()
		ev.SetID(strconv.Itoa(i))
		ev.SetSource("https://vc01.example.com/sdk")
		ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
		ev.SetExtension("eventclass", "event")
		ev.SetDataContentType(event.ApplicationJSON)
		ev.DataEncoded = data
		if evs = append(evs, ev); len(evs) == cap(evs) || i == b.N-1 {
			if err := pub.Publish(b.Context(), producers.Records(evs...)...); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	f, err := filters.Compile(`type endsWith "VmPoweredOnEvent.v0"`)
	if err != nil {
		b.Fatal(err)
	}
	sink := &countSink{n: int64(b.N), done: make(chan struct{})}
	d, err := consumers.NewDispatcher(js, consumers.Route{
		Name:     "bench",
		Filter:   f,
		Delivery: consumers.Delivery{MaxInFlight: 64, StartAt: consumers.StartAtAll},
	}, sink)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	wg.Go(func() { _ = d.Run(ctx) })
	select {
	case <-sink.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("delivered %d of %d", sink.got.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
