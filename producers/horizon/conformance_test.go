package horizon_test

import (
	"testing"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/sourcetest"
)

// TestConformance runs the source suite against the fake. Every source the
// harness builds shares one fake Horizon and one checkpoint bucket, so a
// new source resumes where the previous one stopped.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	sourcetest.Run(t, sourcetest.Harness{
		Features: sourcetest.Features{Resumes: true},
		Timeout:  waitTimeout,
		New: func(t *testing.T) (producers.Source, func(int)) {
			readingBefore := e.logs.count("reading horizon events")
			src := e.source(t, cfg)
			emit := func(n int) {
				// A new source starts at Horizon's current time: add
				// events only once it reads.
				eventually(t, "the source to read Horizon", func() bool {
					return e.logs.count("reading horizon events") > readingBefore
				})
				e.hz.AddN(n, 1, "VLSI_USERLOGGEDIN")
			}
			return src, emit
		},
	})
}
