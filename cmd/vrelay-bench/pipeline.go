package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// Kinds of delivery compared in the pipeline scenario.
const (
	kindPipeline = "pipeline" // consumers.Dispatcher + filter + httpsink
	kindRelay    = "relay"    // a bare pull-consume → POST loop
)

// delivery is what the pipeline scenario runs a route with: the real
// vrelay route, or the bare relay, to the same receiver.
type delivery struct {
	e        *env
	recv     *receiver
	inFlight int
	filter   *filters.Filter
	metrics  *consumers.Metrics
	sink     *httpsink.Sink // one per scenario, like one per route
	client   *http.Client   // the relay's
	pub      *producers.JetStreamPublisher
	events   *eventFactory
}

// route returns the route of a run.
func (d *delivery) route(name string, inFlight int) consumers.Route {
	return consumers.Route{
		Name:     name,
		Subjects: []string{"vmware.vcenter.>"},
		Filter:   d.filter,
		Delivery: consumers.Delivery{MaxInFlight: inFlight, StartAt: consumers.StartAtAll},
	}
}

// startRoute runs the vrelay route called name; stop ends it and waits.
func (d *delivery) startRoute(ctx context.Context, name string, inFlight int) (stop func() error, err error) {
	disp, err := consumers.NewDispatcher(d.e.js, d.route(name, inFlight), d.sink, consumers.WithMetrics(d.metrics))
	if err != nil {
		return nil, err
	}
	if _, err := disp.Ensure(ctx); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- disp.Run(rctx) }()
	return func() error {
		cancel()
		err := <-done
		d.e.deleteConsumer(context.WithoutCancel(ctx), name)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}, nil
}

// startRelay runs the bare relay: a durable pull consumer with the same
// configuration as the route's, and inFlight workers that each POST a
// message's body as a structured CloudEvent and ack it on 2xx.
// Nothing is decoded, filtered, measured or retried with backoff.
func (d *delivery) startRelay(ctx context.Context, name string) (stop func() error, err error) {
	disp, err := consumers.NewDispatcher(d.e.js, d.route(name, d.inFlight), nil)
	if err != nil {
		return nil, err
	}
	cons, err := d.e.js.CreateOrUpdateConsumer(ctx, streams.EventStream, disp.ConsumerConfig())
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(d.inFlight), jetstream.PullExpiry(consumers.PullExpiry))
	if err != nil {
		return nil, err
	}
	// One goroutine takes messages and hands each to a free worker, and
	// pulls with the same expiry, as the dispatcher does.
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(msgs)
		for {
			msg, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			if err == nil {
				msgs <- msg
			}
		}
	})
	for range d.inFlight {
		wg.Go(func() {
			for msg := range msgs {
				d.relayOne(ctx, msg)
			}
		})
	}
	return func() error {
		it.Stop()
		wg.Wait()
		d.e.deleteConsumer(context.WithoutCancel(ctx), name)
		return nil
	}, nil
}

func (d *delivery) relayOne(ctx context.Context, msg jetstream.Msg) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.recv.url, bytes.NewReader(msg.Data()))
	if err != nil {
		_ = msg.Term()
		return
	}
	req.Header.Set("Content-Type", streams.ContentType)
	resp, err := d.client.Do(req)
	if err != nil {
		_ = msg.Nak()
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_ = msg.Ack()
		return
	}
	_ = msg.Nak()
}

func (d *delivery) start(ctx context.Context, kind, name string) (func() error, error) {
	if kind == kindRelay {
		return d.startRelay(ctx, name)
	}
	return d.startRoute(ctx, name, d.inFlight)
}

// publish stores events [from, to) of run in pages of 1000, as a vCenter
// source does, each stamped just before its page is published.
func (d *delivery) publish(ctx context.Context, run string, from, to int, page []producers.Record) error {
	for i := from; i < to; i += len(page) {
		n := min(len(page), to-i)
		now := time.Now()
		for j := range n {
			page[j] = producers.Record{Event: d.events.make(run, i+j), Token: benchToken}
			stamp(&page[j].Event, i+j, now)
		}
		if err := d.pub.Publish(ctx, page[:n]...); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nil
}

// throughput is the result of one saturated run.
type throughput struct {
	Kind      string  `json:"kind"`
	Round     int     `json:"round"`
	Events    int     `json:"events"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"events_per_s"`
	CPUus     float64 `json:"cpu_us_per_event"`
	PeakMiB   float64 `json:"peak_rss_mib"`
	Dups      int64   `json:"duplicates"`
	MaxGapMS  float64 `json:"max_gap_ms"`
}

// saturate publishes n events as fast as pages can be stored while the
// route (or relay) delivers them, and measures from the first publish to
// the last first arrival at the receiver.
func (d *delivery) saturate(ctx context.Context, kind string, round, n int) (throughput, error) {
	if err := d.e.purge(ctx); err != nil {
		return throughput{}, err
	}
	name := fmt.Sprintf("bench-%s-%d", kind, round)
	t := d.recv.start(n, stampKey)
	stop, err := d.start(ctx, kind, name)
	if err != nil {
		return throughput{}, err
	}
	page := make([]producers.Record, 1000)
	resetOK := resetPeakRSS()
	cpu0 := cpuTime()
	start := time.Now()
	pubErr := d.publish(ctx, name, 0, n, page)
	waitErr := waitUntil(ctx, 30*time.Second, func() bool { return t.count() >= int64(n) }, t.count)
	cpu := cpuTime() - cpu0
	peak, _ := peakRSS()
	stopErr := stop()
	if err := errors.Join(pubErr, waitErr, stopErr); err != nil {
		return throughput{}, fmt.Errorf("%s round %d: %d of %d delivered: %w", kind, round, t.count(), n, err)
	}
	el := t.lastAt().Sub(start)
	r := throughput{
		Kind: kind, Round: round, Events: n,
		Seconds:   el.Seconds(),
		PerSecond: float64(n) / el.Seconds(),
		CPUus:     float64(cpu.Microseconds()) / float64(n),
		Dups:      t.dups.Load(),
		MaxGapMS:  ms(time.Duration(t.maxGap.Load())),
	}
	if resetOK {
		r.PeakMiB = mib(peak)
	}
	return r, nil
}

// paced publishes at rate events/s for dur, in a page every 5 ms, and
// returns the publish→arrival latencies.
func (d *delivery) paced(ctx context.Context, kind string, rate float64, dur time.Duration) ([]time.Duration, error) {
	if err := d.e.purge(ctx); err != nil {
		return nil, err
	}
	n := max(1, int(rate*dur.Seconds()))
	name := "bench-" + kind + "-paced"
	t := d.recv.start(n, stampKey)
	stop, err := d.start(ctx, kind, name)
	if err != nil {
		return nil, err
	}
	page := make([]producers.Record, 1000)
	tick := time.NewTicker(5 * time.Millisecond)
	start := time.Now()
	sent := 0
	var pubErr error
	for sent < n && pubErr == nil {
		due := min(n, int(rate*time.Since(start).Seconds())+1)
		if due > sent {
			pubErr = d.publish(ctx, name, sent, due, page)
			sent = due
		}
		select {
		case <-ctx.Done():
			pubErr = ctx.Err()
		case <-tick.C:
		}
	}
	tick.Stop()
	waitErr := waitUntil(ctx, 30*time.Second, func() bool { return t.count() >= int64(n) }, t.count)
	stopErr := stop()
	if err := errors.Join(pubErr, waitErr, stopErr); err != nil {
		return nil, fmt.Errorf("%s paced: %d of %d delivered: %w", kind, t.count(), n, err)
	}
	return t.latencies(0, n), nil
}

// runPipeline compares the vrelay route with the bare relay: rounds of
// saturated runs in ABBA order, then a paced run of each at half the lower
// of the two best rates for latency.
func (b *bench) runPipeline(ctx context.Context) error {
	e := b.env
	f, err := filters.Compile(b.opt.filter)
	if err != nil {
		return err
	}
	// The relay posts each stored body as a structured CloudEvent; the
	// route sends the same bytes (structured mode, the default here) so that
	// both do the same work at the same receiver. -mode binary measures the
	// route in binary mode.
	sink, err := httpsink.New(httpsink.Config{URL: b.recv.url, Mode: b.opt.mode})
	if err != nil {
		return err
	}
	d := &delivery{
		e: e, recv: b.recv, inFlight: b.opt.inFlight, filter: f,
		metrics: b.consumerMetrics, sink: sink,
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConns: b.opt.inFlight, MaxIdleConnsPerHost: b.opt.inFlight, IdleConnTimeout: 90 * time.Second,
		}},
		pub:    producers.NewPublisher(e.js, benchScope(), producers.WithMetrics(b.producerMetrics)),
		events: b.events,
	}
	defer d.client.CloseIdleConnections()

	var runs []throughput
	best := map[string]throughput{}
	for round := 1; round <= b.opt.rounds; round++ {
		order := []string{kindRelay, kindPipeline}
		if round%2 == 0 {
			order = []string{kindPipeline, kindRelay}
		}
		for _, kind := range order {
			b.logf("%s round %d: %d events", kind, round, b.opt.events)
			r, err := d.saturate(ctx, kind, round, b.opt.events)
			if err != nil {
				return err
			}
			b.logf("%s round %d: %.0f ev/s, %.1f µs CPU/event, longest pause %.0f ms", kind, round, r.PerSecond, r.CPUus, r.MaxGapMS)
			runs = append(runs, r)
			if r.PerSecond > best[kind].PerSecond {
				best[kind] = r
			}
		}
	}
	b.rep.detail("pipeline_runs", runs)
	p, r := best[kindPipeline], best[kindRelay]
	b.rep.add("pipeline_events_per_s", p.PerSecond, "ev/s")
	b.rep.add("relay_events_per_s", r.PerSecond, "ev/s")
	b.rep.addTarget("pipeline_vs_relay", p.PerSecond/r.PerSecond, "ratio", "≥ 1.0", atLeast(1.0))
	b.rep.add("pipeline_cpu_us_per_event", p.CPUus, "µs")
	b.rep.add("relay_cpu_us_per_event", r.CPUus, "µs")
	// The same comparison by CPU time, which other processes on the machine
	// disturb less than the rates.
	b.rep.addTarget("pipeline_vs_relay_cpu", meanCPU(runs, kindRelay)/meanCPU(runs, kindPipeline), "ratio", "≥ 1.0", atLeast(1.0))
	if p.PeakMiB > 0 {
		b.rep.add("pipeline_peak_rss_mib", maxPeak(runs, kindPipeline), "MiB")
		b.rep.add("relay_peak_rss_mib", maxPeak(runs, kindRelay), "MiB")
	} else {
		b.rep.note("peak RSS could not be reset between runs (/proc/self/clear_refs), so it is not reported")
	}

	rate := min(p.PerSecond, r.PerSecond) / 2
	b.rep.add("latency_load_events_per_s", rate, "ev/s")
	p99 := map[string]float64{}
	for _, kind := range []string{kindPipeline, kindRelay} {
		b.logf("%s paced at %.0f ev/s for %s", kind, rate, b.opt.pacedFor)
		lat, err := d.paced(ctx, kind, rate, b.opt.pacedFor)
		if err != nil {
			return err
		}
		p99[kind] = ms(percentile(lat, 99))
		b.rep.add(kind+"_p50_ms", ms(percentile(lat, 50)), "ms")
		b.rep.add(kind+"_p99_ms", p99[kind], "ms")
	}
	// Above 1 the pipeline's p99 is the lower.
	if p99[kindPipeline] > 0 {
		b.rep.addTarget("pipeline_vs_relay_p99", p99[kindRelay]/p99[kindPipeline], "ratio", "≥ 1.0", atLeast(1.0))
	}

	if (b.opt.profile == kindPipeline || b.opt.profile == kindRelay) && (b.opt.cpuProfile != "" || b.opt.memProfile != "") {
		if err := b.profilePipeline(ctx, d, b.opt.profile); err != nil {
			return err
		}
	}
	return nil
}

// profilePipeline runs one more saturated run of kind, not counted, under
// the CPU profiler, and writes the allocations profile after it.
func (b *bench) profilePipeline(ctx context.Context, d *delivery, kind string) error {
	stop, err := startProfile(b.opt.cpuProfile)
	if err != nil {
		return err
	}
	b.logf("%s profiled run: %d events", kind, b.opt.events)
	r, err := d.saturate(ctx, kind, 99, b.opt.events)
	stop()
	if err != nil {
		return err
	}
	b.logf("%s profiled run: %.0f ev/s (profiler on)", kind, r.PerSecond)
	return writeAllocs(b.opt.memProfile)
}

func maxPeak(runs []throughput, kind string) float64 {
	m := 0.0
	for _, r := range runs {
		if r.Kind == kind {
			m = max(m, r.PeakMiB)
		}
	}
	return m
}

// meanCPU is the mean CPU time per event of the runs of kind.
func meanCPU(runs []throughput, kind string) float64 {
	sum, n := 0.0, 0
	for _, r := range runs {
		if r.Kind == kind {
			sum += r.CPUus
			n++
		}
	}
	return sum / float64(n)
}

func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
func atMost(x float64) func(float64) bool  { return func(v float64) bool { return v <= x } }
