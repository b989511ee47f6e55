package vcenter_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/sourcetest"
)

// TestConformance runs the source suite against the simulator. Every source
// the harness builds shares one simulated vCenter and one checkpoint
// bucket, so a new source resumes where the previous one stopped.
func TestConformance(t *testing.T) {
	e := newEnv(t, "")
	cfg := e.sim.config(t)
	var seq atomic.Int64
	sourcetest.Run(t, sourcetest.Harness{
		Features: sourcetest.Features{Resumes: true},
		Timeout:  waitTimeout,
		New: func(t *testing.T) (producers.Source, func(int)) {
			readingBefore := e.logs.count("reading vcenter events")
			src := e.source(t, cfg)
			emit := func(n int) {
				// A new source starts at vCenter's current time: post only
				// once it reads.
				eventually(t, "the source to read vCenter", func() bool {
					return e.logs.count("reading vcenter events") > readingBefore
				})
				for range n {
					e.sim.post(t, e.sim.eventEx(fmt.Sprint("conf-", seq.Add(1))))
				}
			}
			return src, emit
		},
	})
}
