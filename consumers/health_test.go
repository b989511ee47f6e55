package consumers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/internal/natstest"
)

// syncBuffer is a log destination safe for the dispatcher's workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log records written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestRouteHealthLogs runs a route against a receiver that answers 503 to
// its first attempts and then recovers, logging at info level: the route
// warns once when it starts failing, again only after the interval, and
// says once that it recovered, with the counts that add up.
func TestRouteHealthLogs(t *testing.T) {
	const failures = 4
	tests := []struct {
		name         string
		interval     time.Duration
		wantPeriodic bool
	}{
		// The default minute does not pass while the test runs.
		{name: "default interval", interval: 0, wantPeriodic: false},
		// Every later failure is past an interval of a nanosecond.
		{name: "short interval", interval: time.Nanosecond, wantPeriodic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, js := natstest.Run(t)
			var calls atomic.Int32
			delivered := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				if n <= failures {
					http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
					return
				}
				w.WriteHeader(http.StatusOK)
				if n == failures+1 {
					close(delivered)
				}
			}))
			t.Cleanup(srv.Close)
			sink, err := httpsink.New(httpsink.Config{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			dl := fastDelivery()
			dl.MaxAttempts = failures + 5
			dl.Backoff = consumers.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}
			d, err := consumers.NewDispatcher(js, consumers.Route{Name: "flaky", Delivery: dl}, sink,
				consumers.WithLogger(log), consumers.WithHealthInterval(tt.interval))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- d.Run(ctx) }()
			publish(t, js, "e1")
			select {
			case <-delivered:
			case <-time.After(30 * time.Second):
				t.Fatalf("event not delivered; %d attempts", calls.Load())
			}
			// The recovery line follows the ack of the delivered event;
			// stopping the route waits for its settling.
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v, want context.Canceled", err)
			}

			var starts, periodic, recovered []map[string]any
			for _, l := range logs.lines(t) {
				msg, _ := l["msg"].(string)
				switch {
				case strings.HasPrefix(msg, "route is failing"):
					starts = append(starts, l)
				case strings.HasPrefix(msg, "route still failing"):
					periodic = append(periodic, l)
				case strings.HasPrefix(msg, "route recovered"):
					recovered = append(recovered, l)
				}
			}
			if len(starts) != 1 {
				t.Fatalf("got %d 'route is failing' lines, want 1: %v", len(starts), starts)
			}
			if s := starts[0]; s["level"] != "WARN" || s["failed_attempts"] != 1.0 || s["route"] != "flaky" ||
				!strings.Contains(s["reason"].(string), "503") {
				t.Errorf("got start line %v, want a WARN of route flaky with failed_attempts 1 and the 503 as reason", s)
			}
			sum := 0
			for _, p := range periodic {
				if p["level"] != "WARN" || !strings.Contains(p["reason"].(string), "503") {
					t.Errorf("got periodic line %v, want a WARN with the 503 as reason", p)
				}
				sum += int(p["failed_attempts"].(float64))
			}
			switch {
			case tt.wantPeriodic && (len(periodic) == 0 || sum != failures-1):
				t.Errorf("got %d periodic lines counting %d attempts, want some counting the %d after the first", len(periodic), sum, failures-1)
			case !tt.wantPeriodic && len(periodic) != 0:
				t.Errorf("got periodic lines %v within the default interval, want none", periodic)
			}
			if len(recovered) != 1 {
				t.Fatalf("got %d 'route recovered' lines, want 1: %v", len(recovered), recovered)
			}
			if r := recovered[0]; r["level"] != "INFO" || r["failed_attempts"] != float64(failures) || r["failed_for"] == nil {
				t.Errorf("got recovery line %v, want an INFO with failed_attempts %d and failed_for", r, failures)
			}
		})
	}
}
