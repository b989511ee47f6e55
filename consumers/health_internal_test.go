package consumers

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestHealthFoldsShortOutages plays a sink that rejects one event now and
// then: each rejection is an outage that ends with the next delivery. Only
// one warning an interval may come of it, and no recovery line for an
// outage that was never announced.
func TestHealthFoldsShortOutages(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := newHealth(time.Minute)
	h.now = func() time.Time { return now }
	boom := errors.New("400 bad event")

	// 30 short outages in 30 seconds: one warning and one recovery.
	for range 30 {
		h.failed(log, boom)
		h.delivered(log)
		now = now.Add(time.Second)
	}
	if got := strings.Count(buf.String(), "route is failing"); got != 1 {
		t.Errorf("%d start warnings in one interval, want 1:\n%s", got, buf.String())
	}
	if got := strings.Count(buf.String(), "route recovered"); got != 1 {
		t.Errorf("%d recovery lines, want 1 (only the announced outage):\n%s", got, buf.String())
	}

	// After the interval, the next short outage is announced again, with
	// the 29 folded failures and its own in its count.
	buf.Reset()
	now = now.Add(time.Minute)
	h.failed(log, boom)
	h.delivered(log)
	out := buf.String()
	if !strings.Contains(out, "route is failing") || !strings.Contains(out, "failed_attempts=30") {
		t.Errorf("after the interval: want an announced outage counting 30 failed attempts, got:\n%s", out)
	}
	if !strings.Contains(out, "route recovered") {
		t.Errorf("the announced outage's recovery is not logged:\n%s", out)
	}
}
