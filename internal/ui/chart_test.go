package ui

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestChartRates checks the rates between samples: per second, never
// negative when the stream dropped old events or the process restarted
// its counters, and at most keep samples.
func TestChartRates(t *testing.T) {
	c := newChart(2)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.add(t0, map[string]uint64{"vcenter.vc01": 10}, map[string]map[string]float64{"r": {"delivered": 4}})
	c.add(t0.Add(2*time.Second), map[string]uint64{"vcenter.vc01": 16, "vcenter.vc02": 3},
		map[string]map[string]float64{"r": {"delivered": 10, "retry": 1}})
	c.add(t0.Add(4*time.Second), map[string]uint64{"vcenter.vc01": 5, "vcenter.vc02": 7},
		map[string]map[string]float64{"r": {"delivered": 2}})
	c.add(t0.Add(6*time.Second), map[string]uint64{"vcenter.vc01": 5, "vcenter.vc02": 7},
		map[string]map[string]float64{"r": {"delivered": 2, "dead_lettered": 4}})
	got := c.snapshot()
	want := []sample{
		{T: t0.Add(4 * time.Second), Sources: map[string]float64{"vcenter.vc01": 0, "vcenter.vc02": 2},
			Routes: map[string]map[string]float64{"r": {"delivered": 0, "retry": 0, "dead_lettered": 0}}},
		{T: t0.Add(6 * time.Second), Sources: map[string]float64{"vcenter.vc01": 0, "vcenter.vc02": 0},
			Routes: map[string]map[string]float64{"r": {"delivered": 0, "retry": 0, "dead_lettered": 2}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
}
