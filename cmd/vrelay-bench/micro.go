package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/vrelay/vrelay/filters"
)

// runFilter measures filters.Filter.Match on a bench event for the
// route's typical (header) filter and for the typical ones that read the
// payload.
func (b *bench) runFilter(context.Context) error {
	ev := b.events.make("filter", 16957152)
	tests := []struct {
		name, src    string
		target       string
		met          func(float64) bool
		allocsTarget string
		allocsMet    func(float64) bool
	}{
		{"filter", typicalFilter, "≤ 1000", atMost(1000), "", nil},
		{"filter_data", dataFilter, "≤ 2000", atMost(2000), "≤ 10", atMost(10)},
		// The other typical payload filters of issue #15: a number and a
		// lookup in an EventEx's arguments.
		{"filter_data_key", `data.Key > 100`, "≤ 2000", atMost(2000), "≤ 10", atMost(10)},
		{"filter_data_arguments", `any(data.Arguments, {.Key == "vm.name" && .Value startsWith "prod-"})`, "≤ 2000", atMost(2000), "≤ 10", atMost(10)},
	}
	for _, tt := range tests {
		f, err := filters.Compile(tt.src)
		if err != nil {
			return err
		}
		var matchErr error
		ns, allocs := measure(b.opt.filterFor, func() {
			ok, err := f.Match(ev)
			if err == nil && !ok {
				err = fmt.Errorf("%s does not match the bench event", tt.src)
			}
			if err != nil {
				matchErr = err
			}
		})
		if matchErr != nil {
			return matchErr
		}
		b.rep.addTarget(tt.name+"_ns_per_event", ns, "ns", tt.target, tt.met)
		b.rep.addTarget(tt.name+"_allocs_per_event", allocs, "allocs", tt.allocsTarget, tt.allocsMet)
	}
	return nil
}

// measure runs f repeatedly for at least d, as testing.Benchmark does but
// without its flags, and returns the time and the allocations per call.
func measure(d time.Duration, f func()) (nsPerOp, allocsPerOp float64) {
	f()
	n := 1
	for {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		start := time.Now()
		for range n {
			f()
		}
		el := time.Since(start)
		runtime.ReadMemStats(&m1)
		if el >= d || n >= 1<<30 {
			return float64(el.Nanoseconds()) / float64(n), float64(m1.Mallocs-m0.Mallocs) / float64(n)
		}
		next := int(float64(n) * 1.2 * float64(d) / float64(max(el, time.Microsecond)))
		n = min(max(next, n+1), 100*n)
	}
}
