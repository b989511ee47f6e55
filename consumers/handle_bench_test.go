package consumers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
)

type nopSink struct{}

func (nopSink) Send(context.Context, event.Event) error { return nil }

// nopStoredSink does nothing and says it sends the stored body, so that
// the dispatcher takes each message from its headers.
type nopStoredSink struct{ nopSink }

func (nopStoredSink) SendsStoredBody() bool { return true }

// BenchmarkHandle measures what the dispatcher does with one message,
// without NATS: a real message of about 1.5 KB, fetched once from a real
// server, is handled again and again — metadata, decoding, a typical
// filter, a send to a sink that does nothing, metrics, ack (which after the
// first time returns at once, already acked). "decode" parses the body,
// "headers" takes the event from the message headers, as a route whose
// sink sends the stored body does.
func BenchmarkHandle(b *testing.B) {
	_, js := natstest.Run(b)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "bench"})
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("https://vc01.example.com/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetExtension("eventclass", "event")
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte(`{"Key":1,"Vm":{"Name":"prod-web-01","Vm":{"Type":"VirtualMachine","Value":"vm-81"}},"FullFormattedMessage":"` +
		strings.Repeat("x", 1000) + `"}`)
	if err := pub.Publish(b.Context(), producers.Records(ev)...); err != nil {
		b.Fatal(err)
	}
	f, err := filters.Compile(`type endsWith "VmPoweredOnEvent.v0"`)
	if err != nil {
		b.Fatal(err)
	}
	metrics := NewMetrics(prometheus.NewRegistry())
	d, err := NewDispatcher(js, Route{Name: "bench", Filter: f, Delivery: Delivery{StartAt: StartAtAll}},
		nopSink{}, WithMetrics(metrics))
	if err != nil {
		b.Fatal(err)
	}
	dh, err := NewDispatcher(js, Route{Name: "bench", Filter: f, Delivery: Delivery{StartAt: StartAtAll}},
		nopStoredSink{}, WithMetrics(metrics))
	if err != nil {
		b.Fatal(err)
	}
	cons, err := d.Ensure(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	msg := <-batch.Messages()
	if msg == nil {
		b.Fatalf("no message: %v", batch.Error())
	}
	for _, run := range []struct {
		name string
		d    *Dispatcher
	}{{"decode", d}, {"headers", dh}} {
		b.Run(run.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg.Data())))
			b.ReportAllocs()
			sc := newSendContext(b.Context())
			defer sc.close()
			for b.Loop() {
				run.d.handle(b.Context(), msg, &sendSlot{}, sc)
			}
		})
	}
}
