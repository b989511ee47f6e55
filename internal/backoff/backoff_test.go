package backoff

import (
	"context"
	"math"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		attempt int
		want    time.Duration
	}{
		{name: "first attempt", policy: Policy{Initial: time.Second, Max: time.Minute}, attempt: 1, want: time.Second},
		{name: "attempt zero counts as one", policy: Policy{Initial: time.Second, Max: time.Minute}, attempt: 0, want: time.Second},
		{name: "negative attempt", policy: Policy{Initial: time.Second, Max: time.Minute}, attempt: -3, want: time.Second},
		{name: "doubles", policy: Policy{Initial: time.Second, Max: time.Minute}, attempt: 3, want: 4 * time.Second},
		{name: "reaches the cap", policy: Policy{Initial: time.Second, Max: time.Minute}, attempt: 7, want: time.Minute},
		{name: "stays at the cap", policy: Policy{Initial: time.Second, Max: time.Minute}, attempt: 1000, want: time.Minute},
		{name: "cap not a power of two", policy: Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second}, attempt: 6, want: 10 * time.Second},
		{name: "cap below initial", policy: Policy{Initial: time.Minute, Max: time.Second}, attempt: 1, want: time.Second},
		{name: "no cap", policy: Policy{Initial: 100 * time.Millisecond}, attempt: 11, want: 102400 * time.Millisecond},
		{name: "no cap saturates", policy: Policy{Initial: time.Second}, attempt: 200, want: math.MaxInt64},
		{name: "no initial", policy: Policy{Max: time.Minute}, attempt: 5, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.Delay(tt.attempt); got != tt.want {
				t.Errorf("%+v.Delay(%d): got %s, want %s", tt.policy, tt.attempt, got, tt.want)
			}
		})
	}
}

func TestDelayJitter(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		attempt int
		base    time.Duration // the delay without jitter
	}{
		{name: "first attempt", policy: Policy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: true}, attempt: 1, base: 100 * time.Millisecond},
		{name: "at the cap", policy: Policy{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: true}, attempt: 9, base: time.Second},
		{name: "one nanosecond", policy: Policy{Initial: 1, Max: 1, Jitter: true}, attempt: 1, base: 1},
		{name: "saturated", policy: Policy{Initial: time.Second, Jitter: true}, attempt: 100, base: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				got := tt.policy.Delay(tt.attempt)
				if got < tt.base/2 || got > tt.base {
					t.Fatalf("%+v.Delay(%d): got %s, want between %s and %s", tt.policy, tt.attempt, got, tt.base/2, tt.base)
				}
				seen[got] = true
			}
			if tt.base >= 100 && len(seen) < 2 {
				t.Errorf("%+v.Delay(%d): got the same delay 200 times, want jitter", tt.policy, tt.attempt)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want bool
	}{
		{name: "elapses", ctx: context.Background(), d: time.Millisecond, want: true},
		{name: "zero", ctx: context.Background(), d: 0, want: true},
		{name: "cancelled, zero", ctx: cancelled, d: 0, want: false},
		{name: "cancelled before", ctx: cancelled, d: time.Hour, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			if got := Sleep(tt.ctx, tt.d); got != tt.want {
				t.Errorf("Sleep(%s): got %v, want %v", tt.d, got, tt.want)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("Sleep(%s) took %s", tt.d, el)
			}
		})
	}

	t.Run("cancelled during", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Millisecond, cancel)
		start := time.Now()
		if Sleep(ctx, time.Hour) {
			t.Error("Sleep(1h) cancelled after 20ms: got true, want false")
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("Sleep(1h) cancelled after 20ms returned after %s", el)
		}
	})
}
