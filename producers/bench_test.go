package producers_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
)

// BenchmarkPublishBatch publishes pages of 1000 events of about 1.5 KB, as
// a vCenter source does with each ReadNextEvents page, and waits for their
// PubAcks: one op is one page, stored on the file store of a real server.
func BenchmarkPublishBatch(b *testing.B) {
	_, js := natstest.Run(b)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "bench"})
	const page = 1000
	data := []byte(`{"Key":0,"Vm":{"Name":"prod-web-01","Vm":{"Type":"VirtualMachine","Value":"vm-81"}},"FullFormattedMessage":"` +
		strings.Repeat("x", 1000) + `"}`)
	recs := make([]producers.Record, page)
	next := 0
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		for i := range recs {
			ev := event.New()
			ev.SetID(strconv.Itoa(next))
			ev.SetSource("https://vc01.example.com/sdk")
			ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
			ev.SetDataContentType(event.ApplicationJSON)
			ev.DataEncoded = data
			recs[i] = producers.Record{Event: ev}
			next++
		}
		if err := pub.Publish(b.Context(), recs...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(next)/time.Since(start).Seconds(), "events/s")
}
