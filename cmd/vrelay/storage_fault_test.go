//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// TestDiskFullRecoversWithoutRestart runs the binary with its data dir on
// a small tmpfs, fills the disk, and posts webhook events until one is
// refused. While the disk is full, /readyz says why and every post is
// refused at once with Retry-After (the publish timeout is 5m, so a post
// that waited for an ack would outlast the client's timeout). Once the
// filler is removed, vrelay recovers by itself: /readyz is ok, posts are
// accepted, every accepted event is in the stream exactly once and
// reaches the route's sink.
func TestDiskFullRecoversWithoutRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and fills a tmpfs")
	}
	mnt := mountTmpfs(t, 4<<20)
	bin := vrelayBinary(t)
	dir := t.TempDir()
	hookAddr, opsAddr := freePort(t), freePort(t)

	var (
		mu       sync.Mutex
		received = map[string]bool{}
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		received[ev.ID()] = true
		mu.Unlock()
	}))
	defer sink.Close()

	data := filepath.Join(mnt, "data")
	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf(`
nats:
  embedded: {dataDir: %q, listen: "off"}
http: {listen: %q}
sources:
  - name: hooks
    type: webhook
    webhook: {listen: %q, path: /events, publishTimeout: 5m, writeTimeout: 6m}
routes:
  - name: to-sink
    sink:
      type: http
      http: {url: %q, timeout: 2s}
    delivery: {sendTimeout: 2s, ackWait: 3s, backoff: {initial: 100ms, max: 1s}}
`, data, opsAddr, hookAddr, sink.URL)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "vrelay.log")
	p := startVrelay(t, bin, config, opsAddr, logPath)
	logs := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	// Something else fills the disk, leaving room for a few dozen events.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, max(tmpfsFree(t, mnt)-200<<10, 0)), 0o600); err != nil {
		t.Fatalf("filler: %v", err)
	}

	// Without fail-fast a refused post waits for acks (10s each, several
	// rounds) up to the 5m publish timeout: far past this client's timeout.
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(id string) (int, http.Header) {
		t.Helper()
		body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"disk-test","type":"com.example.fill","data":{"pad":%q}}`, id, strings.Repeat("x", 4<<10))
		req, _ := http.NewRequest(http.MethodPost, "http://"+hookAddr+"/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("post %s: %v\n%s", id, err, logs())
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + opsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	var accepted []string
	refused := 0
	for i := 0; refused == 0; i++ {
		if i == 1000 {
			t.Fatalf("1000 events accepted on a full disk\n%s", logs())
		}
		id := fmt.Sprintf("before-%04d", i)
		code, hdr := post(id)
		switch code {
		case http.StatusOK:
			accepted = append(accepted, id)
		case http.StatusServiceUnavailable:
			refused++
			if hdr.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		default:
			t.Fatalf("post %s: status %d", id, code)
		}
	}
	t.Logf("disk full after %d accepted events", len(accepted))

	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: jetstream storage failing:") ||
		!strings.Contains(body, "no space left") {
		t.Errorf("/readyz on a full disk: %d %q, want 503 naming the storage failure", code, body)
	}
	if _, m := get("/metrics"); !strings.Contains(m, "\nvrelay_storage_ok 0\n") {
		t.Errorf("metrics on a full disk lack vrelay_storage_ok 0")
	}
	// Refused at once, again and again, while the disk stays full.
	for i := range 20 {
		code, hdr := post(fmt.Sprintf("refused-%02d", i))
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Fatalf("post on a full disk: %d (Retry-After %q), want 503 with Retry-After", code, hdr.Get("Retry-After"))
		}
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for {
		code, body = get("/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Since(freed) > 30*time.Second {
			t.Fatalf("/readyz %d %q 30s after space was freed\n%s", code, body, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("ready again %s after space was freed", time.Since(freed).Round(10*time.Millisecond))
	for i := range 20 {
		id := fmt.Sprintf("after-%02d", i)
		if code, _ := post(id); code != http.StatusOK {
			t.Fatalf("post %s after recovery: %d\n%s", id, code, logs())
		}
		accepted = append(accepted, id)
	}
	if _, m := get("/metrics"); !strings.Contains(m, "\nvrelay_storage_ok 1\n") ||
		!strings.Contains(m, "\nvrelay_embedded_server_restarts_total 1\n") {
		t.Errorf("metrics after recovery lack vrelay_storage_ok 1 and one restart")
	}

	// Every accepted event reaches the sink.
	sinkWait := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for _, id := range accepted {
			if !received[id] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink lacks %d of %d accepted events\n%s", missing, len(accepted), logs())
		}
		time.Sleep(50 * time.Millisecond)
	}

	t.Logf("the sink had every accepted event %s after the posts after recovery", time.Since(sinkWait).Round(10*time.Millisecond))
	stopping := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-p.done; err != nil {
		t.Fatalf("vrelay exit after SIGTERM: %v\n%s", err, logs())
	}
	t.Logf("stopped in %s", time.Since(stopping).Round(10*time.Millisecond))
	out := logs()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "jetstream storage") || strings.Contains(line, "nats-server restarted") {
			t.Log(line)
		}
	}
	for _, want := range []string{"jetstream storage failing", "embedded nats-server restarted", "jetstream storage recovered"} {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("log has %q %d times, want once", want, n)
		}
	}
	if !strings.Contains(out, `"level":"WARN","msg":"jetstream storage failing`) && !strings.Contains(out, "level=WARN msg=\"jetstream storage failing") {
		t.Errorf("the failure is not logged at warn level:\n%s", out)
	}

	// The stream holds every accepted event exactly once.
	seen := storedIDs(t, natstest.Open(t, data))
	for _, id := range accepted {
		if seen[id] != 1 {
			t.Errorf("accepted event %s is in the stream %d times, want once", id, seen[id])
		}
	}
}

// storedIDs counts the CloudEvent ids in the event stream.
func storedIDs(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	c, err := js.OrderedConsumer(t.Context(), streams.EventStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for {
		msg, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
			return seen
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[msg.Headers().Get(streams.HeaderID)]++
		if meta, _ := msg.Metadata(); meta != nil && meta.NumPending == 0 {
			return seen
		}
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory, unmounted
// at cleanup, or skips the test when this process may not mount.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("a full disk is simulated with a Linux tmpfs")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return dir
}

func tmpfsFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}
