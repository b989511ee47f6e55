package producers_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// BenchmarkPublishBatch publishes pages of 1000 events of about 1.5 KB, as
// a vCenter source does with each ReadNextEvents page, and waits for their
// PubAcks: one op is one page, stored on the file store of a real server.
func BenchmarkPublishBatch(b *testing.B) {
	_, js := natstest.Run(b)
	benchPublish(b, js)
}

// BenchmarkPublishR1 and BenchmarkPublishR3 publish the same pages to a
// 3-node cluster on loopback, to a stream of one replica and of three:
// what the replication costs a source.
func BenchmarkPublishR1(b *testing.B) { benchPublishCluster(b, 1) }
func BenchmarkPublishR3(b *testing.B) { benchPublishCluster(b, 3) }

func benchPublishCluster(b *testing.B, replicas int) {
	c := natstest.StartCluster(b)
	_, js := clusterConn(b, c)
	ensureCluster(b, js, replicas, 0)
	benchPublish(b, js)
}

// BenchmarkLeaseTakeover: the time from a holder's last write of its
// lease (it then crashes) until a contender polling every 10ms holds it,
// with a 1s TTL on one server. One op is one takeover.
func BenchmarkLeaseTakeover(b *testing.B) {
	_, js := natstest.Run(b)
	var cfg streams.Config
	cfg.SetDefaults()
	cfg.LeaseTTL = time.Second
	if err := streams.Ensure(b.Context(), js, cfg, nil); err != nil {
		b.Fatal(err)
	}
	holder, _ := producers.NewLeases(b.Context(), js, "a")
	contender, _ := producers.NewLeases(b.Context(), js, "b")
	var total time.Duration
	n := 0
	for b.Loop() {
		key := "vcenter.bench" + strconv.Itoa(n)
		if l, _, err := holder.TryAcquire(b.Context(), key); l == nil || err != nil {
			b.Fatalf("acquire: %v", err)
		}
		start := time.Now()
		for {
			l, _, err := contender.TryAcquire(b.Context(), key)
			if err != nil {
				b.Fatal(err)
			}
			if l != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		total += time.Since(start)
		n++
	}
	b.ReportMetric(total.Seconds()/float64(n), "takeover-s/op")
	b.ReportMetric(time.Second.Seconds(), "ttl-s")
}

func benchPublish(b *testing.B, js jetstream.JetStream) {
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
