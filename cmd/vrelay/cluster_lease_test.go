package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/internal/natstest"
)

// inprocVrelay runs vrelay in-process until stop (SIGTERM).
type inprocVrelay struct {
	opsAddr string
	cancel  context.CancelFunc
	done    chan error
}

func startInproc(t *testing.T, config string, opsAddr string) *inprocVrelay {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	v := &inprocVrelay{opsAddr: opsAddr, cancel: cancel, done: make(chan error, 1)}
	go func() { v.done <- runVrelay(ctx, config, roleAll, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { v.stop(t) })
	return v
}

func (v *inprocVrelay) stop(t *testing.T) {
	if v.cancel == nil {
		return
	}
	v.cancel()
	v.cancel = nil
	select {
	case err := <-v.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got runVrelay() = %v after cancel, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("runVrelay did not return within 30s of cancel")
	}
}

func (v *inprocVrelay) readyz() string {
	resp, err := http.Get("http://" + v.opsAddr + "/readyz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestClusteredReplicasLeaseSimulator runs two vrelay replicas in-process
// against a 3-node NATS cluster with R3 streams and one simulator source:
// one runs it, the other shows it standby with the holder on /readyz;
// when the holder stops (SIGTERM), the other takes over.
func TestClusteredReplicasLeaseSimulator(t *testing.T) {
	c := natstest.StartCluster(t)
	dir := t.TempDir()
	write := func(name, opsAddr string) string {
		cfg := fmt.Sprintf(`
nats:
  external: {url: %q}
streams: {replicas: 3, leaseTTL: 1s}
http: {listen: %q}
sources:
  - name: sim01
    type: simulator
    simulator: {rate: 50}
`, c.URL(), opsAddr)
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	opsA, opsB := freePort(t), freePort(t)
	a := startInproc(t, write("a", opsA), opsA)
	const running, standby = "source vcenter/sim01: running", "source vcenter/sim01: standby (lease held by "
	waitReadyz := func(v *inprocVrelay, want string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			body := v.readyz()
			if strings.Contains(body, want) {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz of %s: got %q, want a line %q", v.opsAddr, body, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitReadyz(a, running)
	b := startInproc(t, write("b", opsB), opsB)
	body := waitReadyz(b, standby)
	if !strings.HasPrefix(body, "ok\n") {
		t.Errorf("/readyz of the standby replica: got %q, want ok first", body)
	}
	if strings.Contains(a.readyz(), "standby") {
		t.Errorf("the holder shows standby: %q", a.readyz())
	}
	a.stop(t)
	waitReadyz(b, running)
}
