package consumers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
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

// BenchmarkOrderedDelivery compares an ordered route (orderBy over 64 keys)
// with an unordered one, both sending 16 at a time to an HTTP receiver
// that takes 50 ms per event. Each op delivers 640 events; events/s is the
// figure. Ordered delivery should keep about min(keys, maxInFlight) ÷ 50 ms
// = 320 events/s, as unordered does.
func BenchmarkOrderedDelivery(b *testing.B) {
	for _, tt := range []struct {
		name    string
		orderBy *string
	}{
		{"unordered", nil},
		{"ordered", func() *string { s := "data.key"; return &s }()},
	} {
		b.Run(tt.name, func(b *testing.B) { benchOrdered(b, tt.orderBy) })
	}
}

func benchOrdered(b *testing.B, orderBy *string) {
	const keys, perOp, sinkDelay = 64, 640, 50 * time.Millisecond
	_, js := natstest.Run(b)
	total := perOp * b.N
	var got atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(sinkDelay)
		if got.Add(1) == int64(total) {
			close(done)
		}
	}))
	defer srv.Close()
	sink, err := httpsink.New(httpsink.Config{URL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "bench"})
	evs := make([]event.Event, 0, perOp)
	for i := range total {
		ev := event.New()
		ev.SetID(strconv.Itoa(i))
		ev.SetSource("bench")
		ev.SetType("com.example.bench")
		_ = ev.SetData(event.ApplicationJSON, map[string]any{"key": "vm-" + strconv.Itoa(i%keys), "n": i / keys})
		if evs = append(evs, ev); len(evs) == cap(evs) {
			if err := pub.Publish(b.Context(), producers.Records(evs...)...); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	d, err := consumers.NewDispatcher(js, consumers.Route{
		Name: "bench",
		Delivery: consumers.Delivery{MaxInFlight: 16, StartAt: consumers.StartAtAll, OrderBy: orderBy,
			SendTimeout: 5 * time.Second},
	}, sink)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	b.ResetTimer()
	start := time.Now()
	wg.Go(func() { _ = d.Run(ctx) })
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("delivered %d of %d", got.Load(), total)
	}
	b.StopTimer()
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkRateLimit shows that a route holds its delivery.rateLimit: 400
// events stored ahead go to a receiver that answers at once, through a
// route limited to 200 events/s with a burst of 10. It reports the rate
// achieved after the burst over the rate configured (1 is exact) and the
// events per second. One iteration takes about 2 s.
func BenchmarkRateLimit(b *testing.B) {
	const perSecond, burst, n = 200, 10, 400
	var ratio, rate float64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		_, js := natstest.Run(b)
		recv := &arrivals{}
		srv := httptest.NewServer(recv)
		evs := make([]event.Event, n)
		for k := range evs {
			ev := event.New()
			ev.SetID(strconv.Itoa(k))
			ev.SetSource("bench")
			ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
			evs[k] = ev
		}
		pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "bench"})
		if err := pub.Publish(b.Context(), producers.Records(evs...)...); err != nil {
			b.Fatal(err)
		}
		d, err := consumers.NewDispatcher(js, consumers.Route{
			Name: "limited",
			Delivery: consumers.Delivery{MaxInFlight: 16, StartAt: consumers.StartAtAll,
				RateLimit: &consumers.RateLimit{PerSecond: perSecond, Burst: burst}},
		}, newHTTPSink(b, srv.URL))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		var wg sync.WaitGroup
		b.StartTimer()
		wg.Go(func() { _ = d.Run(ctx) })
		deadline := time.Now().Add(time.Minute)
		for recv.count() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		cancel()
		wg.Wait()
		srv.Close()
		times, _ := recv.snapshot()
		if len(times) < n {
			b.Fatalf("delivered %d of %d", len(times), n)
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		// The burst goes at once; the rest at the rate.
		span := times[n-1].Sub(times[0]).Seconds()
		rate = float64(n-burst) / span
		ratio = rate / perSecond
		b.StartTimer()
	}
	b.ReportMetric(ratio, "achieved/configured")
	b.ReportMetric(rate, "events/s")
}
