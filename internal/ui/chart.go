package ui

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// chart keeps the last samples of events per second per source and of
// delivery outcomes per second per route.
type chart struct {
	mu      sync.Mutex
	keep    int
	samples []sample
	// the counters of the sample before, to take differences
	prevT      time.Time
	prevSource map[string]uint64
	prevRoute  map[string]map[string]float64
}

// sample is one point of the chart: rates over the interval that ends at T.
type sample struct {
	T       time.Time                     `json:"t"`
	Sources map[string]float64            `json:"sources"`
	Routes  map[string]map[string]float64 `json:"routes"`
}

func newChart(keep int) *chart { return &chart{keep: max(keep, 2)} }

// chartOutcomes are the delivery outcomes the chart draws.
var chartOutcomes = []string{"delivered", "retry", "dead_lettered"}

// sample reads the counters once and adds a point.
func (v *Viewer) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	now := time.Now()
	sources, err := v.sourceCounts(ctx)
	if err != nil {
		v.o.log.Debug("viewer: sample sources", "err", err)
		sources = nil
	}
	v.chart.add(now, sources, v.routeCounts())
}

func (c *chart) add(now time.Time, sources map[string]uint64, routes map[string]map[string]float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.prevT.IsZero() {
		dt := now.Sub(c.prevT).Seconds()
		s := sample{T: now.UTC(), Sources: map[string]float64{}, Routes: map[string]map[string]float64{}}
		for k, n := range sources {
			// A stream that drops old events (limits) has fewer: no negative rates.
			if p, ok := c.prevSource[k]; ok && n > p && dt > 0 {
				s.Sources[k] = float64(n-p) / dt
			} else {
				s.Sources[k] = 0
			}
		}
		for route, outs := range routes {
			m := map[string]float64{}
			for _, o := range chartOutcomes {
				d := outs[o] - c.prevRoute[route][o]
				if d < 0 || dt <= 0 {
					d = 0
				}
				m[o] = d / dt
			}
			s.Routes[route] = m
		}
		c.samples = append(c.samples, s)
		if len(c.samples) > c.keep {
			c.samples = c.samples[len(c.samples)-c.keep:]
		}
	}
	c.prevT = now
	if sources != nil {
		c.prevSource = sources
	}
	c.prevRoute = routes
}

func (c *chart) snapshot() []sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sample(nil), c.samples...)
}

func (v *Viewer) chartData(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		IntervalSeconds float64  `json:"intervalSeconds"`
		Samples         []sample `json:"samples"`
	}{v.o.interval.Seconds(), v.chart.snapshot()})
}
