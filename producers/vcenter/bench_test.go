package vcenter_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// benchEnv is an env without the stream watch, whose decoding would
// compete with the source for the CPU.
func benchEnv(b *testing.B) *env {
	b.Helper()
	nc, js := natstest.Run(b)
	return &env{sim: newSim(b, ""), nc: nc, js: js, logs: &logs{}}
}

// storedCount returns how many events the event stream holds.
func storedCount(b *testing.B, e *env) uint64 {
	s, err := e.js.Stream(b.Context(), streams.EventStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}

// BenchmarkSimulatorThroughput measures events per second from vCenter
// into the stream while four workers post events through the simulator's
// EventManager: SOAP posting, ReadNextEvents, conversion, publishing and
// PubAcks, all on this machine.
func BenchmarkSimulatorThroughput(b *testing.B) {
	const workers = 4
	e := benchEnv(b)
	src := e.source(b, e.sim.config(b))
	running(b, src, e.publisher(src), e.logs)
	base := storedCount(b, e)

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < b.N; i += workers {
				e.sim.post(b, e.sim.eventEx(fmt.Sprint("t-", i)))
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(waitTimeout)
	for storedCount(b, e) < base+uint64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("stream holds %d of %d events", storedCount(b, e)-base, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if n := e.logs.count("lost its place"); n > 0 {
		b.Errorf("collector lost its place %d times: the source fell behind", n)
	}
}

// BenchmarkIdleLatency measures, with the source idle (waiting on the
// PropertyCollector), the time from posting one event to its publish on
// the stream's subject, and reports the median and the 99th percentile.
func BenchmarkIdleLatency(b *testing.B) {
	e := benchEnv(b)
	src := e.source(b, e.sim.config(b))
	running(b, src, e.publisher(src), e.logs)
	arrived := make(chan struct{}, 16)
	sub, err := e.nc.Subscribe(subjects, func(*nats.Msg) { arrived <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		time.Sleep(20 * time.Millisecond) // let the source go idle again
		b.StartTimer()
		start := time.Now()
		e.sim.post(b, e.sim.eventEx(fmt.Sprint("l-", i)))
		select {
		case <-arrived:
		case <-time.After(waitTimeout):
			b.Fatalf("event %d never arrived", i)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
}
