package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/internal/config"
)

// TestListenerAuth runs vrelay with nats.embedded.auth and http.auth: a
// NATS client without the token is refused, the vrelay CLI commands with
// -config get in (they read the token from the configuration), /metrics
// wants the user and password while the probes stay open.
func TestListenerAuth(t *testing.T) {
	t.Setenv("VRELAY_TEST_NATS_TOKEN", "nats-s3cret-token")
	t.Setenv("VRELAY_TEST_WRONG_TOKEN", "not-the-token")
	t.Setenv("VRELAY_TEST_METRICS_PW", "metrics-s3cret")
	dir := t.TempDir()
	natsAddr, opsAddr := freePort(t), freePort(t)
	cfgText := func(tokenEnv string) string {
		return fmt.Sprintf(`nats:
  embedded:
    dataDir: %s
    listen: %s
    auth: {token: {fromEnv: %s}}
http:
  listen: %s
  auth: {user: prometheus, password: {fromEnv: VRELAY_TEST_METRICS_PW}}
routes:
  - {name: r1, sink: {type: log}}
`, filepath.Join(dir, "data"), natsAddr, tokenEnv, opsAddr)
	}
	path, wrong := filepath.Join(dir, "vrelay.yaml"), filepath.Join(dir, "wrong.yaml")
	writeFile(t, path, cfgText("VRELAY_TEST_NATS_TOKEN"))
	writeFile(t, wrong, cfgText("VRELAY_TEST_WRONG_TOKEN"))

	v := startInproc(t, path, opsAddr)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.HasPrefix(v.readyz(), "ok") {
		if time.Now().After(deadline) {
			t.Fatalf("vrelay not ready after 30s: %q", v.readyz())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A raw publish without credentials never reaches the stream.
	if nc, err := nats.Connect("nats://"+natsAddr, nats.Timeout(5*time.Second)); err == nil {
		nc.Close()
		t.Error("NATS client without the token connected, want it refused")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("NATS client without the token: got %v, want nats.ErrAuthorization", err)
	}
	if nc, err := nats.Connect("nats://"+natsAddr, nats.Token("nats-s3cret-token")); err != nil {
		t.Errorf("NATS client with the token: %v", err)
	} else {
		nc.Close()
	}

	if code, out, errOut := runCLI("dlq", "list", "-config", path); code != 0 || !strings.Contains(out, "0 dead letters") {
		t.Errorf("dlq list -config: code %d, out %q, stderr %q; want 0 and 0 dead letters", code, out, errOut)
	}
	if code, out, errOut := runCLI("checkpoint", "list", "-config", path); code != 0 {
		t.Errorf("checkpoint list -config: code %d, out %q, stderr %q; want 0", code, out, errOut)
	}
	// A wrong token is reported as such, not as a data directory in use.
	code, _, errOut := runCLI("dlq", "list", "-config", wrong)
	if code != 1 || !strings.Contains(strings.ToLower(errOut), "authorization violation") || strings.Contains(errOut, "not-the-token") {
		t.Errorf("dlq list with a wrong token: code %d, stderr %q; want 1 and an authorization error without the token", code, errOut)
	}

	get := func(path string, setAuth func(*http.Request)) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+opsAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if setAuth != nil {
			setAuth(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, c := range []struct {
		name    string
		setAuth func(*http.Request)
	}{
		{"no credentials", nil},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth("prometheus", "guess") }},
		{"wrong user", func(r *http.Request) { r.SetBasicAuth("admin", "metrics-s3cret") }},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer metrics-s3cret") }},
	} {
		code, h, body := get("/metrics", c.setAuth)
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("/metrics with %s: got %d, WWW-Authenticate %q; want 401 and a Basic challenge", c.name, code, h.Get("WWW-Authenticate"))
		}
		if strings.Contains(body, "s3cret") || strings.Contains(body, "go_goroutines") {
			t.Errorf("/metrics with %s: body %q says too much", c.name, body)
		}
	}
	if code, _, body := get("/metrics", func(r *http.Request) { r.SetBasicAuth("prometheus", "metrics-s3cret") }); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics with the credentials: got %d, want 200 and metrics", code)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _, body := get(p, nil); code != http.StatusOK || !strings.HasPrefix(body, "ok") {
			t.Errorf("%s without credentials: got %d %q, want 200 ok", p, code, body)
		}
	}
}

// TestOpsServerClosesIdleConnections checks that the operations endpoint
// closes a keep-alive connection that stays idle after a request.
func TestOpsServerClosesIdleConnections(t *testing.T) {
	to := defaultOpsTimeouts
	to.idle = 100 * time.Millisecond
	srv, ln, err := opsServer(config.HTTP{Listen: "127.0.0.1:0"}, prometheus.NewRegistry(),
		&readiness{started: make(chan struct{})}, nil, to)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serveUntil(ctx, srv, ln, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("got %d (close %v), want a keep-alive 200", resp.StatusCode, resp.Close)
	}
	// The deadline is the test's patience, far above the idle timeout.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := br.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read on the idle connection: got %d bytes, %v; want EOF (closed by the server)", n, err)
	}
}

// TestOpsServerAuthSecretMissing: an unreadable http.auth secret stops
// start-up with the field named.
func TestOpsServerAuthSecretMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vrelay.yaml")
	writeFile(t, path, fmt.Sprintf(`nats: {embedded: {dataDir: %s, listen: "off"}}
http: {listen: "127.0.0.1:0", auth: {token: {fromEnv: VRELAY_TEST_UNSET_OPS_TOKEN}}}
routes:
  - {name: r1, sink: {type: log}}
`, filepath.Join(filepath.Dir(path), "data")))
	err := runVrelay(t.Context(), path, roleAll, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "http.auth.token: environment variable VRELAY_TEST_UNSET_OPS_TOKEN is not set") {
		t.Fatalf("got %v, want an error naming http.auth.token", err)
	}
}
