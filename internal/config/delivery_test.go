package config_test

import (
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/config"
)

// TestDeliveryStartAtAndRateLimit reads delivery.startAt and
// delivery.rateLimit from YAML, and reports their problems with the path.
func TestDeliveryStartAtAndRateLimit(t *testing.T) {
	cfg, err := config.Parse([]byte(`routes:
  - {name: a, sink: {type: log}, delivery: {startAt: 2h, rateLimit: {perSecond: 2.5}}}
  - {name: b, sink: {type: log}, delivery: {startAt: "seq:10", rateLimit: {perSecond: 50, burst: 5}}}
  - {name: c, sink: {type: log}, delivery: {startAt: "2026-11-27T08:00:00Z"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if rl := cfg.Routes[0].Delivery.RateLimit; rl == nil || rl.PerSecond != 2.5 || rl.Burst != 3 {
		t.Errorf("routes[0].delivery.rateLimit = %+v, want perSecond 2.5 and the default burst 3", rl)
	}
	if rl := cfg.Routes[1].Delivery.RateLimit; rl == nil || rl.Burst != 5 {
		t.Errorf("routes[1].delivery.rateLimit = %+v, want burst 5", rl)
	}
	if rl := cfg.Routes[2].Delivery.RateLimit; rl != nil {
		t.Errorf("routes[2].delivery.rateLimit = %+v, want none", rl)
	}

	_, err = config.Parse([]byte(`routes:
  - {name: a, sink: {type: log}, delivery: {startAt: yesterday, rateLimit: {perSecond: 0, burst: 0}}}
  - {name: b, sink: {type: log}, delivery: {startAt: "seq:", rateLimit: {perSecond: 10, burst: -2}}}
`))
	if err == nil {
		t.Fatal("invalid startAt and rateLimit accepted")
	}
	for _, want := range []string{
		`routes[0].delivery.startAt: "yesterday" is not one of new, all, an RFC 3339 time (2026-11-27T08:00:00Z), a duration ago (90m, 2h, 7d) or seq:N`,
		"routes[0].delivery.rateLimit.perSecond: must be above 0",
		`routes[1].delivery.startAt: "seq:": the sequence after seq: must be a whole number of at least 1`,
		"routes[1].delivery.rateLimit.burst: must be at least 1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\nwant it to contain %q", err, want)
		}
	}
}
