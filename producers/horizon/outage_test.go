package horizon_test

import (
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/vrelay/vrelay/producers/horizon"
)

// TestOutageLogs: while Horizon fails, the source warns once when the
// failures begin and, at the default interval, not again for each retry;
// a shortened interval adds lines that count the failures since the last
// one; the recovery is one info line with how many attempts failed.
func TestOutageLogs(t *testing.T) {
	const failures = 5
	tests := []struct {
		name         string
		opts         []horizon.Option
		wantPeriodic bool
	}{
		{name: "default interval"},
		{name: "short interval", opts: []horizon.Option{horizon.WithOutageInterval(time.Nanosecond)}, wantPeriodic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			src := e.source(t, e.config(t), tt.opts...)
			e.hz.FailNext(failures, http.StatusInternalServerError, nil)
			start(t, src, e.publisher(src))
			eventually(t, "the recovery", func() bool { return e.logs.count("horizon answers again") >= 1 })

			errs := e.logs.matching("horizon server error")
			if len(errs) == 0 {
				t.Fatal("no log of the failures")
			}
			if got := errs[0].attrs["failed_attempts"]; got != "1" {
				t.Errorf("first failure line: got failed_attempts %v, want 1", got)
			}
			sum := 0
			for _, r := range errs[1:] {
				n, err := strconv.Atoi(r.attrs["failed_attempts"])
				if err != nil {
					t.Fatalf("failed_attempts %v: %v", r.attrs["failed_attempts"], err)
				}
				sum += n
			}
			switch {
			case !tt.wantPeriodic && len(errs) != 1:
				t.Errorf("got %d failure lines within the default interval, want 1: %v", len(errs), errs)
			case tt.wantPeriodic && (len(errs) < 2 || sum != failures-1):
				t.Errorf("got %d failure lines counting %d more attempts, want periodic lines counting %d", len(errs), sum, failures-1)
			}
			rec := e.logs.matching("horizon answers again")
			if len(rec) != 1 || rec[0].attrs["failed_attempts"] != "5" || rec[0].level != slog.LevelInfo {
				t.Errorf("got recovery lines %v, want one INFO with failed_attempts 5", rec)
			}
		})
	}
}
