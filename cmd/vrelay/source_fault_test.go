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
	"strings"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// TestCorruptCheckpointKeepsOthersRunning runs vrelay in-process with a
// webhook and a vCenter source whose checkpoint in vrelay_checkpoints is
// corrupt. The vCenter source fails and is retried; vrelay keeps running
// (it used to exit), an event posted to the webhook reaches the route's
// sink, and /readyz stays 200 while it names the failing source and why.
func TestCorruptCheckpointKeepsOthersRunning(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.Start(t, filepath.Join(dir, "nats"), "127.0.0.1:0")
	_, js := natstest.Connect(t, srv.ClientURL())
	var scfg streams.Config
	scfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, scfg, nil); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), streams.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "vcenter.vc01", []byte("not json at all")); err != nil {
		t.Fatal(err)
	}

	received := make(chan string, 10)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		received <- ev.ID()
	}))
	defer sink.Close()

	const password = "s3cret-vc-password"
	pwFile := filepath.Join(dir, "vc-password")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	hookAddr, opsAddr := freePort(t), freePort(t)
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
      # Never dialled: the checkpoint is read first.
      address: https://127.0.0.1:9/sdk
      username: vrelay
      password: {fromFile: %q}
routes:
  - name: to-sink
    subjects: ["vmware.webhook.>"]
    sink:
      type: http
      http: {url: %q, timeout: 2s}
`, srv.ClientURL(), opsAddr, hookAddr, pwFile, sink.URL)
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
	// /readyz: 200, the webhook running, the vCenter source failed with its
	// error, and retried (the first pause is 1s).
	deadline := time.Now().Add(30 * time.Second)
	var code int
	var body string
	for {
		select {
		case err := <-done:
			t.Fatalf("runVrelay returned %v, want it to keep running with a failed source", err)
		default:
		}
		code, body = get("/readyz")
		if code == http.StatusOK && strings.Contains(body, "source vcenter/vc01: failed (") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got /readyz %d %q, want 200 naming vcenter/vc01 as failed after a restart", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("/readyz:\n%s", body)
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != 3 || lines[0] != "ok" || lines[1] != "source webhook/hooks: running" {
		t.Errorf("got /readyz body\n%s\nwant ok, then one line per source, the webhook running", body)
	}
	if want := "nats kv del vrelay_checkpoints vcenter.vc01"; !strings.Contains(body, "corrupt checkpoint") || !strings.Contains(body, want) {
		t.Errorf("got /readyz body\n%s\nwant the corrupt checkpoint and the way out (%q)", body, want)
	}
	if strings.Contains(body, password) {
		t.Errorf("/readyz shows the vCenter password:\n%s", body)
	}

	// The webhook and the route work.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hookAddr+"/events",
		strings.NewReader(`{"specversion":"1.0","id":"while-vc01-fails","source":"runner-test","type":"com.example.t","data":{"n":1}}`))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got webhook status %d, want 200", resp.StatusCode)
	}
	select {
	case id := <-received:
		if id != "while-vc01-fails" {
			t.Errorf("got event %q at the sink, want while-vc01-fails", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the event posted to the webhook did not reach the sink within 30s")
	}

	// Polled: vc01 is up for the instant each retry takes to fail again.
	wants := []string{
		`vrelay_source_up{provider="vcenter",source="vc01"} 0`,
		`vrelay_source_up{provider="webhook",source="hooks"} 1`,
		`vrelay_source_restarts_total{provider="webhook",source="hooks"} 0`,
		`vrelay_source_restarts_total{provider="vcenter",source="vc01"} `,
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, metrics := get("/metrics")
		var missing []string
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("/metrics lacks %q", missing)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
}
