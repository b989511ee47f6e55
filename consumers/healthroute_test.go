package consumers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
)

// TestHealthRoute: a route whose subjects are all under vrelay.health
// reads the VRELAY_HEALTH stream and delivers a source's health events.
func TestHealthRoute(t *testing.T) {
	_, js := natstest.Run(t)
	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r.Header.Get("Ce-Type") + " " + r.Header.Get("Ce-Subject") + " " + string(b)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	sink, err := httpsink.New(httpsink.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: "alerts", Subjects: []string{"vrelay.health.>"}, Delivery: fastDelivery()}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	h := producers.NewHealthEvents(js, "vcenter", "vc02", "https://vc02.example.com/sdk", nil)
	h.Emit(t.Context(), producers.HealthStallDetected, map[string]any{"fromKey": 4020, "toKey": 5120})
	select {
	case line := <-got:
		for _, want := range []string{"com.vrelay.health.stall.detected.v0", " vc02 ", `"toKey":5120`} {
			if !strings.Contains(line, want) {
				t.Errorf("delivered %q, want it to contain %q", line, want)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("health event not delivered")
	}
}
