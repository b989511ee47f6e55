package flowtest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// gatewayCall is one request the fake OpenFaaS gateway took.
type gatewayCall struct {
	path   string
	header http.Header
	body   string
	user   string
	pass   string
}

// fakeGateway answers as the OpenFaaS gateway does: /function/<name> runs
// the function and returns its answer (200), /async-function/<name> queues
// the call and answers 202 with an X-Call-Id.
type fakeGateway struct {
	mu    sync.Mutex
	calls []gatewayCall
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	user, pass, _ := r.BasicAuth()
	g.mu.Lock()
	g.calls = append(g.calls, gatewayCall{path: r.URL.Path, header: r.Header.Clone(), body: string(body), user: user, pass: pass})
	g.mu.Unlock()
	switch {
	case r.Method != http.MethodPost:
		w.WriteHeader(http.StatusMethodNotAllowed)
	case strings.HasPrefix(r.URL.Path, "/function/"):
		io.WriteString(w, "done\n")
	case strings.HasPrefix(r.URL.Path, "/async-function/"):
		w.Header().Set("X-Call-Id", "6f6c8b3e-0d1c-4a57-9d0e-"+strings.TrimPrefix(r.URL.Path, "/async-function/"))
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

func (g *fakeGateway) wait(t *testing.T, n int) []gatewayCall {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		calls := append([]gatewayCall(nil), g.calls...)
		g.mu.Unlock()
		if len(calls) >= n {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway calls: got %d within 10s, want %d", len(calls), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOpenFaaSRecipe runs the routes of examples/openfaas.yaml against a
// fake gateway: each function gets its events in binary mode, with the
// ce-* headers a function reads, on the sync and the async path, and the
// routes' subjects stand in for the Event Router's topic annotation.
func TestOpenFaaSRecipe(t *testing.T) {
	gw := &fakeGateway{}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	pwFile := filepath.Join(t.TempDir(), "basic-auth-password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "openfaas.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := strings.ReplaceAll(string(example), "http://gateway.openfaas:8080", srv.URL)
	y = strings.ReplaceAll(y, "/var/openfaas/secrets/basic-auth-password", pwFile)
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("examples/openfaas.yaml: %v", err)
	}

	_, js := natstest.Run(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, r := range cfg.Routes {
		sink, err := r.Sink.New(config.SinkDeps{})
		if err != nil {
			t.Fatal(err)
		}
		f, err := r.CompileFilter()
		if err != nil {
			t.Fatal(err)
		}
		d, err := consumers.NewDispatcher(js, consumers.Route{Name: r.Name, Subjects: r.Subjects, Filter: f, Delivery: r.Delivery}, sink)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _ = d.Run(ctx) })
	}

	publish := func(id, eventType, vm string) {
		ev := event.New()
		ev.SetID(id)
		ev.SetSource("https://vc01.example.com/sdk")
		ev.SetType("com.vmware.event.router/event")
		ev.SetSubject(eventType)
		ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		_ = ev.SetData(event.ApplicationJSON, []byte(`{"Key":7,"Vm":{"Name":"`+vm+`"}}`))
		msg, err := streams.Encode(streams.Subject(streams.DefaultRoot, "vcenter", "vc01", eventType), &ev, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	publish("on-test", "VmPoweredOnEvent", "test-vm-01")    // filtered out: not prod-
	publish("on-prod", "VmPoweredOnEvent", "prod-web-01")   // /function/vm-on
	publish("off-prod", "VmPoweredOffEvent", "prod-web-01") // /async-function/vm-off
	publish("reconf", "VmReconfiguredEvent", "prod-web-01") // no route

	gw.wait(t, 2)
	time.Sleep(200 * time.Millisecond) // room for a wrong third call to show
	calls := gw.wait(t, 2)
	if len(calls) != 2 {
		t.Fatalf("gateway calls: got %d, want 2: %+v", len(calls), calls)
	}
	byPath := map[string]gatewayCall{}
	for _, c := range calls {
		byPath[c.path] = c
	}
	for path, wantID := range map[string]string{"/function/vm-on": "on-prod", "/async-function/vm-off": "off-prod"} {
		c, ok := byPath[path]
		if !ok {
			t.Errorf("no call on %s; calls: %+v", path, calls)
			continue
		}
		for h, want := range map[string]string{
			"Ce-Id":          wantID,
			"Ce-Specversion": "1.0",
			"Ce-Type":        "com.vmware.event.router/event",
			"Ce-Source":      "https://vc01.example.com/sdk",
			"Ce-Subject":     map[string]string{"on-prod": "VmPoweredOnEvent", "off-prod": "VmPoweredOffEvent"}[wantID],
			"Content-Type":   "application/json",
		} {
			if got := c.header.Get(h); got != want {
				t.Errorf("%s: header %s: got %q, want %q", path, h, got, want)
			}
		}
		if want := `{"Key":7,"Vm":{"Name":"prod-web-01"}}`; c.body != want {
			t.Errorf("%s: body: got %q, want the event data %q", path, c.body, want)
		}
		if c.user != "admin" || c.pass != "s3cret" {
			t.Errorf("%s: basic auth: got %q/%q, want admin and the password file's content", path, c.user, c.pass)
		}
	}
}
