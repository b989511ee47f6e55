package consumers_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/internal/natstest"
)

// arrivals is an httptest receiver that records when each request came.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
	ids   []string
}

func (a *arrivals) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.times = append(a.times, time.Now())
	a.ids = append(a.ids, r.Header.Get("Ce-Id"))
	a.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.times)
}

func (a *arrivals) snapshot() ([]time.Time, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.times), slices.Clone(a.ids)
}

// maxInWindow is the most arrivals within any half-open window [t, t+w).
func maxInWindow(times []time.Time, w time.Duration) int {
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	most, j := 0, 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < w {
			j++
		}
		most = max(most, j-i)
	}
	return most
}

func newHTTPSink(t testing.TB, url string) consumers.Sink {
	t.Helper()
	s, err := httpsink.New(httpsink.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRateLimitHoldsTheRate(t *testing.T) {
	_, js := natstest.Run(t)
	recv := &arrivals{}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	// 100 ms between sends: a send that starts late by less than that
	// cannot push a second one into a window.
	const perSecond, burst, n = 10, 1, 30
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "r" + strconv.Itoa(i)
	}
	publish(t, js, ids...)

	reg := prometheus.NewRegistry()
	dl := fastDelivery()
	dl.MaxInFlight = 8
	dl.RateLimit = &consumers.RateLimit{PerSecond: perSecond, Burst: burst}
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: "limited", Delivery: dl},
		newHTTPSink(t, srv.URL), consumers.WithMetrics(consumers.NewMetrics(reg)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	eventually(t, "every event delivered", func() bool { return recv.count() >= n })
	cancel()
	<-done

	times, got := recv.snapshot()
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("delivered %d events %v, want each of %d once", len(got), got, n)
	}
	// A token bucket lets through at most burst + perSecond × w events in
	// any window w.
	if most := maxInWindow(times, time.Second); most > perSecond+burst {
		t.Errorf("%d events arrived within one second, want at most %d", most, perSecond+burst)
	}
	if waited := counterValue(t, reg, "vrelay_route_rate_limit_wait_seconds_total", "limited"); waited <= 0 {
		t.Errorf("vrelay_route_rate_limit_wait_seconds_total = %g, want > 0", waited)
	}
}

func TestRateLimitWaitEndsAtShutdown(t *testing.T) {
	_, js := natstest.Run(t)
	recv := &arrivals{}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	publish(t, js, "s1", "s2")

	dl := fastDelivery()
	dl.MaxInFlight = 1
	dl.SendTimeout = 20 * time.Second
	dl.AckWait = 40 * time.Second
	// s2 waits 10 s for its token.
	dl.RateLimit = &consumers.RateLimit{PerSecond: 0.1, Burst: 1}
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: "slow", Delivery: dl}, newHTTPSink(t, srv.URL),
		consumers.WithShutdownTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	eventually(t, "s1 delivered", func() bool { return recv.count() == 1 })
	time.Sleep(100 * time.Millisecond) // s2 waits for its token
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if _, ids := recv.snapshot(); !slices.Equal(ids, []string{"s1"}) {
		t.Fatalf("sent %v before stopping, want [s1]: s2 must not be sent once the route stops", ids)
	}
	// s2 was handed back, not left to its 40 s ack wait: the next run
	// gets it at once.
	dl.RateLimit = nil
	start(t, js, consumers.Route{Name: "slow", Delivery: dl}, newHTTPSink(t, srv.URL))
	deadline := time.Now().Add(dl.AckWait / 2)
	for recv.count() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("s2 did not come back before half its ack wait: it was not handed back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ids := recv.snapshot(); !slices.Equal(ids, []string{"s1", "s2"}) {
		t.Errorf("sent %v, want [s1 s2]", ids)
	}
}

// counterValue reads the counter name of route from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name, route string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == route {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{route=%q}", name, route)
	return 0
}

func TestRateLimitCountsEachEventOfABatch(t *testing.T) {
	_, js := natstest.Run(t)
	const perSecond, burst, n = 50, 10, 60
	publish(t, js, ids("t", n)...)
	sink := newBatchSink()
	dl := fastDelivery()
	dl.MaxBatch = 10
	dl.MaxInFlight = 4
	dl.RateLimit = &consumers.RateLimit{PerSecond: perSecond, Burst: burst}
	start(t, js, consumers.Route{Name: "batched", Delivery: dl}, sink)
	waitDelivered(t, sink.scriptSink, n)

	var times []time.Time
	for _, id := range ids("t", n) {
		times = append(times, sink.attemptsOf(id)...)
	}
	if most := maxInWindow(times, time.Second); most > perSecond+burst {
		t.Errorf("%d events went within one second, want at most %d", most, perSecond+burst)
	}
	for _, size := range sink.sizes() {
		if size > dl.MaxBatch {
			t.Errorf("a batch of %d events, want at most %d", size, dl.MaxBatch)
		}
	}
}
