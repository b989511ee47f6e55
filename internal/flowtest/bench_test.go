package flowtest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/producers"
)

// BenchmarkWebhookToSink measures the whole path: HTTP clients post single
// structured CloudEvents to the webhook (each answered after the PubAck),
// a route with a typical filter delivers them in binary mode to a local
// receiver. Reports events/s from first post to last delivery.
func BenchmarkWebhookToSink(b *testing.B) {
	target := int64(b.N)
	url, delivered, done := countingReceiver(b, target)
	p := startPipelineB(b, `type endsWith "VmPoweredOnEvent.v0"`, url)

	body := func(i int) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"%d","source":"https://vc01.example.com/sdk","type":"com.vmware.vsphere.VmPoweredOnEvent.v0","datacontenttype":"application/json","data":{"Key":%d,"Vm":{"Name":"prod-%d"},"FullFormattedMessage":"%s"}}`, i, i, i, strings.Repeat("x", 900))
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const clients = 16
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= target {
					return
				}
				resp, err := client.Post(p.hookURL, "application/cloudevents+json", strings.NewReader(body(int(i))))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("delivered %d of %d", delivered.Load(), target)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkStreamToSink measures delivery alone: events already stored in
// JetStream (published in pages of 1000, as a vCenter source does) are
// filtered and delivered to a local receiver by one route with 64 in flight.
func BenchmarkStreamToSink(b *testing.B) {
	target := int64(b.N)
	url, delivered, done := countingReceiver(b, target)
	p := startPipelineB(b, `type endsWith "VmPoweredOnEvent.v0"`, url)
	pub := producers.NewPublisher(p.js, producers.Scope{Provider: "vcenter", Source: "bench"})
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += 1000 {
		n := min(1000, b.N-i)
		evs := make([]event.Event, n)
		for j := range evs {
			ev := event.New()
			ev.SetID(strconv.Itoa(i + j))
			ev.SetSource("https://vc01.example.com/sdk")
			ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
			_ = ev.SetData(event.ApplicationJSON, map[string]any{"Key": i + j, "Vm": map[string]any{"Name": "prod"}, "FullFormattedMessage": strings.Repeat("x", 900)})
			evs[j] = ev
		}
		if err := pub.Publish(b.Context(), producers.Records(evs...)...); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("delivered %d of %d", delivered.Load(), target)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// countingReceiver is a sink endpoint that accepts everything and closes
// done once it has received target events.
func countingReceiver(b *testing.B, target int64) (url string, delivered *atomic.Int64, done chan struct{}) {
	b.Helper()
	delivered = new(atomic.Int64)
	done = make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if delivered.Add(1) == target {
			once.Do(func() { close(done) })
		}
	}))
	b.Cleanup(srv.Close)
	return srv.URL, delivered, done
}
