package producers

import (
	"testing"
	"time"
)

func TestOutage(t *testing.T) {
	now := time.Unix(1000, 0)
	o := Outage{Every: time.Minute, Now: func() time.Time { return now }}
	type step struct {
		advance   time.Duration
		fail      bool
		wantLog   bool
		wantSince int
		wantTotal int
	}
	steps := []step{
		{fail: true, wantLog: true, wantSince: 1, wantTotal: 1},
		{advance: 10 * time.Second, fail: true},
		{advance: 10 * time.Second, fail: true},
		{advance: 40 * time.Second, fail: true, wantLog: true, wantSince: 3, wantTotal: 4},
		{advance: 30 * time.Second, fail: true},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		log, since, total := o.Failed()
		if log != s.wantLog || since != s.wantSince || total != s.wantTotal {
			t.Errorf("step %d: got Failed() = %v, %d, %d, want %v, %d, %d", i, log, since, total, s.wantLog, s.wantSince, s.wantTotal)
		}
	}
	now = now.Add(5 * time.Second)
	down, n, ok := o.Restored()
	if !ok || n != 5 || down != 95*time.Second {
		t.Errorf("got Restored() = %s, %d, %v, want 1m35s, 5, true", down, n, ok)
	}
	if _, _, ok := o.Restored(); ok {
		t.Error("got a second Restored() ok, want one per outage")
	}
	if log, since, total := o.Failed(); !log || since != 1 || total != 1 {
		t.Errorf("got Failed() = %v, %d, %d after recovery, want a new outage: true, 1, 1", log, since, total)
	}
}
