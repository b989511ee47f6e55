package horizon_test

import (
	"testing"
	"time"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers/horizon/horizontest"
	"github.com/vrelay/vrelay/streams"
)

// BenchmarkHorizonToStream measures events per second from the fake
// Horizon into the stream: a backlog of b.N events, five to a millisecond,
// read over TLS in pages of 1000, ordered, converted, published with their
// PubAcks awaited, and checkpointed after each page; login included.
func BenchmarkHorizonToStream(b *testing.B) {
	nc, js := natstest.Run(b)
	kv, err := js.KeyValue(b.Context(), streams.CheckpointBucket)
	if err != nil {
		b.Fatal(err)
	}
	// No stream watch: its decoding would compete with the source.
	e := &env{hz: horizontest.New(b), nc: nc, js: js, kv: kv, logs: &logs{}}
	evs := e.hz.Backlog(b.N, 5, "VLSI_USERLOGGEDIN")
	e.putCheckpoint(b, evs[0].Time-1)
	cfg := e.config(b)
	maxAge := 24 * time.Hour
	cfg.MaxAge = &maxAge
	src := e.source(b, cfg)
	s, err := js.Stream(b.Context(), streams.EventStream)
	if err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	start := time.Now()
	_, _ = running(b, src, e.publisher(src), e.logs)
	deadline := start.Add(5 * time.Minute)
	for {
		info, err := s.Info(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if info.State.Msgs >= uint64(b.N) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("stream holds %d of %d events", info.State.Msgs, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
