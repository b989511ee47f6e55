package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
)

// TestFreezeDropsNothing stops the real binary with SIGSTOP for 12s, far
// longer than the route's pull heartbeats, while events wait for it, and
// resumes it with SIGCONT. Every event must reach the sink well before the
// route's ack wait of 5 minutes: an event the client pulled and dropped
// ("slow consumer") would wait out that ack wait, and the test's deadline
// with it. With an embedded server the server freezes too; with an external
// one only vrelay does, and the server keeps sending to it meanwhile.
func TestFreezeDropsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and stops the binary")
	}
	for _, tc := range []struct {
		name              string
		external, ordered bool
	}{
		{"embedded", false, false},
		{"external", true, false},
		// An ordered route pulls through lanes of its own (delivery.orderBy).
		{"external-ordered", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) { testFreeze(t, tc.external, tc.ordered) })
	}
}

func testFreeze(t *testing.T, external, ordered bool) {
	bin := vrelayBinary(t)
	dir := t.TempDir()
	hookAddr, opsAddr := freePort(t), freePort(t)

	var (
		mu       sync.Mutex
		received = map[string]bool{}
		want     = map[string]bool{}
	)
	gotAll := make(chan struct{})
	var closeOnce sync.Once
	// A sink slower than the events come, so the route's workers are busy
	// and its pulled messages wait in the client.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		received[ev.ID()] = true
		done := len(want) > 0 && len(received) >= len(want)
		mu.Unlock()
		if done {
			closeOnce.Do(func() { close(gotAll) })
		}
	}))
	defer sink.Close()

	natsCfg := fmt.Sprintf(`embedded: {dataDir: %q, listen: "off"}`, filepath.Join(dir, "data"))
	var pub *producers.JetStreamPublisher
	if external {
		srv := natstest.Start(t, filepath.Join(dir, "nats"), "127.0.0.1:0")
		_, js := natstest.Connect(t, srv.ClientURL())
		pub = producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "hooks"})
		natsCfg = fmt.Sprintf(`external: {url: %q}`, srv.ClientURL())
	}
	orderBy := ""
	if ordered {
		orderBy = ", orderBy: id"
	}
	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf(`
nats:
  %s
http: {listen: %q}
sources:
  - name: hooks
    type: webhook
    webhook: {listen: %q, path: /events}
routes:
  - name: to-sink
    sink:
      type: http
      http: {url: %q, timeout: 5s}
    delivery: {sendTimeout: 5s, ackWait: 5m, maxInFlight: 4, backoff: {initial: 100ms, max: 1s}%s}
`, natsCfg, opsAddr, hookAddr, sink.URL, orderBy)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "vrelay.log")
	p := startVrelay(t, bin, config, opsAddr, logPath)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("vrelay log:\n%s", b)
		}
	}()

	const before, during = 20, 400
	mu.Lock()
	for i := range before + during {
		want[fmt.Sprintf("ev-%04d", i)] = true
	}
	mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 45 * time.Second}
	post := func(i int) error {
		body := fmt.Sprintf(`{"specversion":"1.0","id":"ev-%04d","source":"freeze-test","type":"com.example.freeze","data":{"n":%d}}`, i, i)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hookAddr+"/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("webhook status %d", resp.StatusCode)
		}
		return nil
	}
	// The route runs and then idles, waiting on its pull request.
	for i := range before {
		if err := post(i); err != nil {
			t.Fatal(err)
		}
	}
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n == before {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("sink received %d of the first %d events", n, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second)

	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The events arrive while vrelay is frozen: published by another
	// client of the external server, or posted to the frozen webhook,
	// whose requests are answered when it wakes.
	errs := make(chan error, during)
	var posters sync.WaitGroup
	if external {
		var evs []event.Event
		for i := before; i < before+during; i++ {
			ev := event.New()
			ev.SetID(fmt.Sprintf("ev-%04d", i))
			ev.SetSource("freeze-test")
			ev.SetType("com.example.freeze")
			evs = append(evs, ev)
		}
		if err := pub.Publish(ctx, producers.Records(evs...)...); err != nil {
			t.Fatal(err)
		}
	} else {
		const workers = 32
		for w := range workers {
			posters.Go(func() {
				for i := before + w; i < before+during; i += workers {
					if err := post(i); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	time.Sleep(12 * time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	woke := time.Now()
	posters.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("post to the webhook after the freeze: %v", err)
	}

	select {
	case <-gotAll:
		t.Logf("all %d events at the sink %s after SIGCONT", len(want), time.Since(woke).Round(time.Millisecond))
	case <-ctx.Done():
		mu.Lock()
		var missing []string
		for id := range want {
			if !received[id] {
				missing = append(missing, id)
			}
		}
		mu.Unlock()
		t.Fatalf("sink lacks %d of %d events after the freeze (ack wait 5m): %v", len(missing), len(want), missing)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-p.done
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "slow consumer") {
		t.Errorf("vrelay dropped pulled messages (slow consumer) during the freeze")
	}
}
