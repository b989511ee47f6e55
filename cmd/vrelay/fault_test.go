package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// vrelayBinary builds the real binary once per test run.
func vrelayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vrelay-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "vrelay")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is one run of the vrelay binary.
type proc struct {
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

func startVrelay(t *testing.T, bin, config, opsAddr, logPath string) *proc {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-config", config, "-log-level", "info")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), log: lf}
	go func() { p.done <- cmd.Wait(); lf.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	// Ready when /readyz says so.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + opsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("vrelay exited before ready: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("vrelay not ready after 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killAndRestart kills the process with SIGKILL, waits for it to die and
// starts the binary again on the same configuration and data dir.
func (p *proc) killAndRestart(t *testing.T, bin, config, opsAddr, logPath string) *proc {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	return startVrelay(t, bin, config, opsAddr, logPath)
}

// TestSIGKILLLosesNothing posts 10,000 events to the webhook of the real
// binary while killing it with SIGKILL three times and restarting it on the
// same data dir. Every event the webhook acknowledged must be in the stream
// exactly once and must reach the sink.
func TestSIGKILLLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := vrelayBinary(t)
	dir := t.TempDir()
	hookAddr, opsAddr := freePort(t), freePort(t)

	var (
		mu       sync.Mutex
		received = map[string]int{}
	)
	gotAll := make(chan struct{})
	const total = 10000
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		received[ev.ID()]++
		if len(received) == total && received[ev.ID()] == 1 {
			close(gotAll)
		}
		mu.Unlock()
	}))
	defer sink.Close()

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
  - name: to-sink
    sink:
      type: http
      http: {url: %q, timeout: 2s}
    delivery: {sendTimeout: 2s, ackWait: 3s, maxInFlight: 32, backoff: {initial: 100ms, max: 1s}}
`, filepath.Join(dir, "data"), opsAddr, hookAddr, sink.URL)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "vrelay.log")
	cur := startVrelay(t, bin, config, opsAddr, logPath)

	// Clients post every event until it is acknowledged, as a sender that
	// retries would; ids are unique per event.
	var acked atomic.Int64
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				body := fmt.Sprintf(`{"specversion":"1.0","id":"ev-%05d","source":"fault-test","type":"com.example.fault","data":{"n":%d}}`, i, i)
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hookAddr+"/events", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/cloudevents+json")
					resp, err := client.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							acked.Add(1)
							break
						}
					}
					time.Sleep(20 * time.Millisecond) // vrelay is down or restarting
				}
			}
		})
	}

	// Kill -9 three times while events flow, restart on the same data dir.
	for _, at := range []int64{2000, 5000, 8000} {
		for acked.Load() < at && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("SIGKILL after %d acknowledged events", acked.Load())
		cur = cur.killAndRestart(t, bin, config, opsAddr, logPath)
	}
	wg.Wait()
	if got := acked.Load(); got != total {
		t.Fatalf("acknowledged %d events, want %d", got, total)
	}

	select {
	case <-gotAll:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("sink received %d of %d distinct events", len(received), total)
	}

	// Graceful stop: exit code 0.
	if err := cur.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-cur.done; err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("vrelay exit after SIGTERM: %v\n%s", err, b)
	}

	// The stream holds every event exactly once.
	js := natstest.Open(t, filepath.Join(dir, "data"))
	c, err := js.OrderedConsumer(t.Context(), streams.EventStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	inStream := map[string]int{}
	for {
		msg, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		inStream[msg.Headers().Get(streams.HeaderID)]++
		if len(inStream) == total {
			if meta, _ := msg.Metadata(); meta != nil && meta.NumPending == 0 {
				break
			}
		}
	}
	dups := 0
	for _, n := range inStream {
		if n > 1 {
			dups++
		}
	}
	if len(inStream) != total || dups != 0 {
		t.Errorf("stream holds %d distinct events (%d stored more than once), want %d each once", len(inStream), dups, total)
	}
	mu.Lock()
	redelivered := 0
	for _, n := range received {
		if n > 1 {
			redelivered++
		}
	}
	mu.Unlock()
	t.Logf("sink got all %d events; %d were delivered more than once (at-least-once after SIGKILL)", total, redelivered)
}
