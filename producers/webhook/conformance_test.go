package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/sourcetest"
	"github.com/vrelay/vrelay/producers/webhook"
)

// TestConformance runs the source suite. The webhook keeps no position, so
// Resumes does not apply: a sender whose request failed sends it again.
func TestConformance(t *testing.T) {
	var seq atomic.Int64
	sourcetest.Run(t, sourcetest.Harness{
		New: func(t *testing.T) (producers.Source, func(int)) {
			src, err := webhook.New(webhook.Config{Listen: "127.0.0.1:0", Path: "/events"})
			if err != nil {
				t.Fatal(err)
			}
			if err := src.Listen(); err != nil {
				t.Fatal(err)
			}
			url := "http://" + src.Addr().String() + "/events"
			emit := func(n int) {
				for range n {
					id := seq.Add(1)
					body := fmt.Sprintf(`{"specversion":"1.0","id":"c-%d","source":"conformance","type":"com.example.t"}`, id)
					postUntilAccepted(t, url, body)
				}
			}
			return src, emit
		},
	})
}

// postUntilAccepted posts like a sender that retries until it hears 200.
func postUntilAccepted(t *testing.T, url, body string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(url, "application/cloudevents+json", strings.NewReader(body))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				return
			case resp.StatusCode != http.StatusServiceUnavailable:
				t.Fatalf("post: status %d, want 200 or a retryable 503", resp.StatusCode)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("post not accepted within 30s (last error %v)", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
