package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// natsCLIEnv names the nats CLI binary (natscli v0.5.0) the end-to-end test
// drives. `make test` builds it once, outside the clone, and sets it.
const natsCLIEnv = "VRELAY_NATS_CLI"

// TestNATSCLIEndToEnd runs the real binary and watches it with the real
// nats CLI, as README.md ("Watching with the nats CLI") tells a person to:
// live events on `nats sub`, the event stream on `nats stream info`, a
// source's position on `nats kv get`, and the events a nats sink route
// republishes on `nats sub`.
func TestNATSCLIEndToEnd(t *testing.T) {
	cli := os.Getenv(natsCLIEnv)
	if cli == "" {
		t.Skip(natsCLIEnv + " is unset: `make test` builds natscli v0.5.0 and sets it to the binary")
	}
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("%s: %v", natsCLIEnv, err)
	}
	bin := vrelayBinary(t)
	dir := t.TempDir()
	natsAddr, hookAddr, opsAddr := freePort(t), freePort(t), freePort(t)
	config := filepath.Join(dir, "vrelay.yaml")
	writeFile(t, config, fmt.Sprintf(`
nats:
  embedded: {dataDir: %q, listen: %q}
http: {listen: %q}
sources:
  - name: vcsim
    type: simulator
    simulator: {rate: 5}
  - name: hooks
    type: webhook
    webhook: {listen: %q, path: /events}
routes:
  - name: print-all
    sink: {type: log}
  - name: republish
    subjects: ["vmware.webhook.>"]
    sink:
      type: nats
      nats: {subject: "republished.{type}"}
`, filepath.Join(dir, "data"), natsAddr, opsAddr, hookAddr))
	startVrelay(t, bin, config, opsAddr, filepath.Join(dir, "vrelay.log"))

	n := &natsCLI{bin: cli, url: "nats://" + natsAddr, home: t.TempDir()}
	hook := &hookPoster{url: "http://" + hookAddr + "/events"}

	t.Run("sub sees live events", func(t *testing.T) {
		out := n.subWhile(t, "vmware.>", 3, nil)
		if got := strings.Count(out, `Received on "vmware.vcenter.vcsim.`); got != 3 {
			t.Errorf("nats sub 'vmware.>' --count 3: got %d simulated vCenter events, want 3; output:\n%s", got, out)
		}
		for _, want := range []string{"Ce-Type: com.vmware.vsphere.", "Nats-Msg-Id: ", `{"specversion":"1.0",`} {
			if !strings.Contains(out, want) {
				t.Errorf("nats sub output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("sub sees the README's webhook event", func(t *testing.T) {
		out := n.subWhile(t, "vmware.webhook.hooks.>", 2, hook.post(t))
		const subject = "vmware.webhook.hooks.com_vmware_vsphere_VmPoweredOnEvent_v0"
		if got := strings.Count(out, fmt.Sprintf("Received on %q", subject)); got != 2 {
			t.Errorf("nats sub 'vmware.webhook.hooks.>' --count 2: got %d events on %s, want 2; output:\n%s", got, subject, out)
		}
		if !regexp.MustCompile(`Nats-Msg-Id: https://vc01\.example\.com/sdk:e2e-\d+`).MatchString(out) {
			t.Errorf("nats sub output lacks the webhook's Nats-Msg-Id:\n%s", out)
		}
	})

	t.Run("sub sees republished events", func(t *testing.T) {
		out := n.subWhile(t, "republished.>", 2, hook.post(t))
		const subject = "republished.com_vmware_vsphere_VmPoweredOnEvent_v0"
		if got := strings.Count(out, fmt.Sprintf("Received on %q", subject)); got != 2 {
			t.Errorf("nats sub 'republished.>' --count 2: got %d events on %s, want 2; output:\n%s", got, subject, out)
		}
		for _, want := range []string{
			"Ce-Type: com.vmware.vsphere.VmPoweredOnEvent.v0",
			"Ce-Source: https://vc01.example.com/sdk",
			"Content-Type: application/cloudevents+json",
			`"type":"com.vmware.vsphere.VmPoweredOnEvent.v0"`,
			`"data":{"Vm":{"Name":"prod-web-01"}}`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("republished events lack %q:\n%s", want, out)
			}
		}
	})

	t.Run("stream info", func(t *testing.T) {
		out, err := n.run(t, "stream", "info", "VMWARE_EVENTS")
		if err != nil {
			t.Fatalf("nats stream info VMWARE_EVENTS: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`Subjects: vmware\.>`).MatchString(out) {
			t.Errorf("nats stream info: want the subjects vmware.>:\n%s", out)
		}
		m := regexp.MustCompile(`\n\s*Messages: ([0-9,]+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("nats stream info: no message count:\n%s", out)
		}
		// At least the 3 simulated events and the 4 posted ones seen above.
		if got, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); got < 7 {
			t.Errorf("nats stream info: got %d messages, want at least 7", got)
		}
	})

	t.Run("kv get checkpoint", func(t *testing.T) {
		// The simulator checkpoints after each stored page; wait for the first.
		var out string
		var err error
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err = n.run(t, "kv", "get", "vrelay_checkpoints", "vcenter.vcsim")
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("nats kv get vrelay_checkpoints vcenter.vcsim: %v\n%s", err, out)
		}
		if !strings.Contains(out, "vrelay_checkpoints > vcenter.vcsim revision: ") {
			t.Errorf("nats kv get: want the bucket, key and revision:\n%s", out)
		}
		raw, err := n.run(t, "kv", "get", "vrelay_checkpoints", "vcenter.vcsim", "--raw")
		if err != nil {
			t.Fatalf("nats kv get --raw: %v\n%s", err, raw)
		}
		var cp struct {
			LastEventKey int32 `json:"lastEventKey"`
		}
		if err := json.Unmarshal([]byte(raw), &cp); err != nil || cp.LastEventKey <= 0 {
			t.Errorf("nats kv get --raw: got %q (%v), want a checkpoint with lastEventKey > 0", raw, err)
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// natsCLI runs the nats CLI against one server, with a home of its own so
// that no context of the machine's user applies.
type natsCLI struct {
	bin, url, home string
}

func (n *natsCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, n.bin, append([]string{"--server", n.url}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+n.home, "XDG_CONFIG_HOME="+n.home, "NATS_CONTEXT=")
	cmd.WaitDelay = time.Second
	return cmd
}

// run runs one command to completion and returns what it printed.
func (n *natsCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := n.command(ctx, args...).CombinedOutput()
	return string(out), err
}

// subWhile runs `nats sub subject --count count` and, until it exits,
// calls post (when not nil) every 100ms: `nats sub` logs that it subscribes
// before the server has the subscription, so only events that keep coming
// are sure to be seen.
func (n *natsCLI) subWhile(t *testing.T, subject string, count int, post func(i int)) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var out lockedBuffer
	cmd := n.command(ctx, "sub", subject, "--count", strconv.Itoa(count))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("nats sub %s --count %d: %v\n%s", subject, count, err, out.String())
			}
			return out.String()
		case <-tick.C:
			if post != nil {
				post(i)
			}
		}
	}
}

// hookPoster posts events to the webhook as README.md's curl does, each
// with an id of its own.
type hookPoster struct {
	url string
	mu  sync.Mutex
	n   int
}

func (h *hookPoster) post(t *testing.T) func(int) {
	return func(int) {
		h.mu.Lock()
		h.n++
		id := fmt.Sprintf("e2e-%d", h.n)
		h.mu.Unlock()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url,
			strings.NewReader(`{"Vm":{"Name":"prod-web-01"}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Ce-Specversion", "1.0")
		req.Header.Set("Ce-Id", id)
		req.Header.Set("Ce-Source", "https://vc01.example.com/sdk")
		req.Header.Set("Ce-Type", "com.vmware.vsphere.VmPoweredOnEvent.v0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("post to the webhook: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post to the webhook: got status %d, want 200", resp.StatusCode)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
