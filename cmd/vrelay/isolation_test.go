package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// TestSourceIsolation runs vrelay in-process with three sources: a
// webhook, a vCenter source whose checkpoint is an empty value, and one
// whose vCenter listens on no port. Neither vCenter source stops the
// process, the webhook or the route: an event posted to the webhook
// reaches the sink. /readyz stays 200 and names the failed source and
// why; /metrics show it down and restarted, and the unreachable one not
// connected. Once `vrelay checkpoint delete` removed the empty checkpoint,
// the failed source recovers without a restart of the process and relays
// a new vCenter event.
func TestSourceIsolation(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.Start(t, filepath.Join(dir, "nats"), "127.0.0.1:0")
	natsURL := srv.ClientURL()
	_, js := natstest.Connect(t, natsURL)
	var scfg streams.Config
	scfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, scfg, nil); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), streams.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "vcenter.vc01", []byte{}); err != nil {
		t.Fatal(err)
	}
	sim := startSim(t)

	var (
		mu     sync.Mutex
		bodies []string
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		bodies = append(bodies, ev.ID()+" "+string(ev.Data()))
		mu.Unlock()
	}))
	defer sink.Close()
	sinkHas := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bodies {
			if strings.Contains(b, s) {
				return true
			}
		}
		return false
	}

	hookAddr, opsAddr, closedAddr := freePort(t), freePort(t), freePort(t)
	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf(`
nats:
  external: {url: %q}
http: {listen: %q}
sources:
  - name: hooks
    type: webhook
    webhook: {listen: %q, path: /events}
  - name: vc01
    type: vcenter
    vcenter:
      address: %q
      username: vrelay
      password: {fromFile: %q}
      caFile: %q
      checkpoint: {period: 1s}
  - name: vc02
    type: vcenter
    vcenter:
      # Nothing listens there.
      address: https://%s/sdk
      username: vrelay
      password: {fromFile: %q}
      caFile: %q
routes:
  - name: to-sink
    sink:
      type: http
      http: {url: %q, timeout: 2s}
`, natsURL, opsAddr, hookAddr, sim.sdk.String(), sim.pwFile, sim.caFile, closedAddr, sim.pwFile, sim.caFile, sink.URL)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runVrelay(ctx, config, roleAll, slog.New(slog.DiscardHandler)) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got runVrelay() = %v after cancel, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("runVrelay did not return within 30s of cancel")
		}
	}
	defer stop()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + opsAddr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// waitFor polls until ok holds, failing with what it saw last.
	waitFor := func(what string, d time.Duration, ok func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			select {
			case err := <-done:
				t.Fatalf("runVrelay returned %v while waiting for %s; want it to keep running", err, what)
			default:
			}
			good, seen := ok()
			if good {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %s; last seen:\n%s", what, d, seen)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	restarts := regexp.MustCompile(`(?m)^vrelay_source_restarts_total\{provider="vcenter",source="vc01"\} (\d+)$`)
	failures := regexp.MustCompile(`(?m)^vrelay_vcenter_connection_failures_total\{source="vc02"\} (\d+)$`)
	positive := func(re *regexp.Regexp, metrics string) bool {
		m := re.FindStringSubmatch(metrics)
		if m == nil {
			return false
		}
		n, _ := strconv.Atoi(m[1])
		return n > 0
	}

	// Both faults show, and neither makes vrelay unready.
	waitFor("failed vc01 and unreachable vc02 on /readyz", 30*time.Second, func() (bool, string) {
		code, body := get("/readyz")
		return code == http.StatusOK &&
			strings.Contains(body, "\nsource webhook/hooks: running\n") &&
			strings.Contains(body, "source vcenter/vc01: failed (restarts: ") &&
			strings.Contains(body, "corrupt checkpoint") &&
			strings.Contains(body, "vrelay checkpoint delete") &&
			strings.Contains(body, "source vcenter/vc02: running, vcenter unreachable since ") &&
			strings.Contains(body, "(failed attempts: "), fmt.Sprint(code, " ", body)
	})
	waitFor("vc01 down and restarted, vc02 not connected, on /metrics", 30*time.Second, func() (bool, string) {
		_, metrics := get("/metrics")
		return strings.Contains(metrics, `vrelay_source_up{provider="vcenter",source="vc01"} 0`) &&
			positive(restarts, metrics) &&
			strings.Contains(metrics, `vrelay_source_up{provider="webhook",source="hooks"} 1`) &&
			strings.Contains(metrics, `vrelay_vcenter_connected{source="vc02"} 0`) &&
			positive(failures, metrics), metrics
	})

	// The webhook and the route work meanwhile.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hookAddr+"/events",
		strings.NewReader(`{"specversion":"1.0","id":"while-vc-fails","source":"isolation-test","type":"com.example.t","data":{"n":1}}`))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got webhook status %d, want 200", resp.StatusCode)
	}
	waitFor("webhook event at the sink", 30*time.Second, func() (bool, string) {
		return sinkHas("while-vc-fails"), ""
	})

	// The way out that /readyz names: the source recovers in place.
	if code, out, errOut := runCLI("checkpoint", "delete", "-server", natsURL, "vcenter.vc01"); code != 0 {
		t.Fatalf("vrelay checkpoint delete: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitFor("vc01 running and connected", 45*time.Second, func() (bool, string) {
		_, body := get("/readyz")
		_, metrics := get("/metrics")
		return strings.Contains(body, "source vcenter/vc01: running (restarts: ") &&
			strings.Contains(metrics, `vrelay_source_up{provider="vcenter",source="vc01"} 1`) &&
			strings.Contains(metrics, `vrelay_vcenter_connected{source="vc01"} 1`), body + metrics
	})
	if err := sim.post(ctx, "after-recovery"); err != nil {
		t.Fatal(err)
	}
	waitFor("the vCenter event posted after recovery at the sink", 30*time.Second, func() (bool, string) {
		if sinkHas("after-recovery") {
			return true, ""
		}
		mu.Lock()
		defer mu.Unlock()
		return false, strings.Join(bodies, "\n")
	})
	stop()
}
