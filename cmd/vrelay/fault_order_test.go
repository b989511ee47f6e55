package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// TestOrderedRouteSurvivesSIGKILL posts events of 8 keys to the webhook of
// the real binary, with a route ordered by key to a receiver that fails
// some events with 503, kills the process with SIGKILL mid-stream and
// restarts it. No key may get an event after a later one of its key (a
// redelivered duplicate of the last one is allowed), and none is lost.
func TestOrderedRouteSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := vrelayBinary(t)
	dir := t.TempDir()
	hookAddr, opsAddr := freePort(t), freePort(t)

	const keys, perKey = 8, 50
	var (
		mu       sync.Mutex
		got      = map[string][]int{} // counters by key, in arrival order
		accepted = map[string]bool{}
		failed   = map[string]bool{}
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var d struct {
			Key string `json:"key"`
			N   int    `json:"n"`
		}
		if err := json.Unmarshal(ev.Data(), &d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(15 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if d.N%7 == 3 && !failed[ev.ID()] {
			failed[ev.ID()] = true
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		got[d.Key] = append(got[d.Key], d.N)
		accepted[ev.ID()] = true
	}))
	defer sink.Close()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}

	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf(`
nats:
  embedded: {dataDir: %q, listen: "off"}
http: {listen: %q}
sources:
  - name: hooks
    type: webhook
    webhook: {listen: %q, path: /events}
routes:
  - name: ordered
    sink:
      type: http
      http: {url: %q, timeout: 1s}
    delivery:
      orderBy: data.key
      sendTimeout: 1s
      ackWait: 2s
      maxInFlight: 8
      backoff: {initial: 100ms, max: 500ms}
`, filepath.Join(dir, "data"), opsAddr, hookAddr, sink.URL)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "vrelay.log")
	cur := startVrelay(t, bin, config, opsAddr, logPath)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	// One poster, so that the stream holds each key's events in counter
	// order; an event is posted again until the webhook acknowledges it.
	post := func(n int) {
		for k := range keys {
			body := fmt.Sprintf(`{"specversion":"1.0","id":"vm-%d-%03d","source":"order-fault","type":"com.example.ordered","data":{"key":"vm-%d","n":%d}}`, k, n, k, n)
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hookAddr+"/events", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/cloudevents+json")
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	for n := range perKey / 2 {
		post(n)
	}
	for count() < 60 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("SIGKILL after %d accepted events", count())
	cur = cur.killAndRestart(t, bin, config, opsAddr, logPath)
	for n := perKey / 2; n < perKey; n++ {
		post(n)
	}
	for count() < keys*perKey && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	_ = cur.cmd.Process.Kill()
	<-cur.done

	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != keys*perKey {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("receiver accepted %d of %d events\n%s", len(accepted), keys*perKey, b)
	}
	// The embedded server dies with the process and loses the acks of its
	// last ~100 ms (it writes consumer state in the background): those
	// events come once more, in order, after later ones. No event may
	// arrive for the first time after a later one of its key.
	dups := 0
	for k := range keys {
		key := fmt.Sprintf("vm-%d", k)
		seen := map[int]bool{}
		last := -1
		for _, n := range got[key] {
			switch {
			case seen[n]:
				dups++
			case n < last:
				t.Errorf("key %s: event %d arrived first after event %d: %v", key, n, last, got[key])
			}
			seen[n] = true
			last = max(last, n)
		}
	}
	t.Logf("%d events arrived twice (acked just before the kill)", dups)
}
