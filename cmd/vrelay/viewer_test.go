package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/streams"
)

// TestOpsIndex checks GET / on the operations listener: it lists /ui only
// when the viewer is on, and /ui is not served when it is off.
func TestOpsIndex(t *testing.T) {
	srv, ln, err := opsServer(config.HTTP{Listen: "127.0.0.1:0"}, prometheus.NewRegistry(),
		&readiness{started: make(chan struct{})}, nil, defaultOpsTimeouts)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	rec := httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `href="/metrics"`) || !strings.Contains(body, `href="/healthz"`) ||
		!strings.Contains(body, `href="/readyz"`) || strings.Contains(body, "/ui") {
		t.Errorf("GET / without the viewer: got %d %q, want links to /metrics, /healthz and /readyz only", rec.Code, body)
	}
	rec = httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /ui/ without the viewer: got %d, want 404", rec.Code)
	}
	rec = httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nothing", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /nothing: got %d, want 404", rec.Code)
	}
}

// TestViewerOnOpsListener runs vrelay with http.ui and http.auth: / points
// to /ui, the page and its event stream want the credentials, an event
// stored shows on the stream, and an open stream does not hold up the
// shutdown (its timeout here is longer than the test waits for it).
func TestViewerOnOpsListener(t *testing.T) {
	t.Setenv("VRELAY_TEST_UI_PW", "ui-s3cret")
	dir := t.TempDir()
	natsAddr, opsAddr := freePort(t), freePort(t)
	path := filepath.Join(dir, "vrelay.yaml")
	writeFile(t, path, `nats:
  embedded:
    dataDir: `+filepath.Join(dir, "data")+`
    listen: `+natsAddr+`
http:
  listen: `+opsAddr+`
  ui: true
  auth: {user: admin, password: {fromEnv: VRELAY_TEST_UI_PW}}
shutdownTimeout: 90s
routes:
  - {name: r1, sink: {type: log}}
`)
	v := startInproc(t, path, opsAddr)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.HasPrefix(v.readyz(), "ok") {
		if time.Now().After(deadline) {
			t.Fatalf("vrelay not ready after 30s: %q", v.readyz())
		}
		time.Sleep(20 * time.Millisecond)
	}
	base := "http://" + opsAddr
	get := func(path string, withAuth bool) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if withAuth {
			req.SetBasicAuth("admin", "ui-s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/", false); code != 200 || !strings.Contains(body, `href="/ui/"`) {
		t.Errorf("GET /: got %d %q, want a link to /ui/", code, body)
	}
	for _, p := range []string{"/ui/", "/ui/api/routes", "/ui/api/events"} {
		if code, _ := get(p, false); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: got %d, want 401", p, code)
		}
	}
	if code, body := get("/ui/", true); code != 200 || !strings.Contains(body, "<title>vrelay events</title>") {
		t.Errorf("GET /ui/ with credentials: got %d, want the page", code)
	}
	if code, body := get("/ui/api/routes", true); code != 200 || !strings.Contains(body, `"name":"r1"`) {
		t.Errorf("GET /ui/api/routes: got %d %q, want route r1", code, body)
	}

	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ev := event.New()
	ev.SetID("ev-1")
	ev.SetSource("https://vc01/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetSubject("VmPoweredOnEvent")
	m, err := streams.Encode(streams.Subject("vmware", "vcenter", "vc01", "VmPoweredOnEvent"), &ev, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ui/api/events?last=10&sources=vcenter.vc01", nil)
	req.SetBasicAuth("admin", "ui-s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("events: got %d %s, want an event stream", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	found := false
	for !found && sc.Scan() {
		found = strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"id":"ev-1"`)
	}
	if !found {
		t.Fatalf("the stream ended without event ev-1: %v", sc.Err())
	}
	// The stream is still open: stopping vrelay must end it rather than
	// wait out the 54s the listener gets to shut down (stop waits 30s).
	v.stop(t)
	cancel()
	for sc.Scan() {
	}
}
