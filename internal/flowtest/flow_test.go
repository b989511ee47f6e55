package flowtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/webhook"
	"github.com/vrelay/vrelay/streams"
)

// receiver is an HTTP sink endpoint that records the CloudEvents it got.
type receiver struct {
	mu     sync.Mutex
	ids    map[string]int
	bodies map[string]string
	got    chan string
	status func() int // nil: 200
}

func newReceiver() *receiver {
	return &receiver{ids: map[string]int{}, bodies: map[string]string{}, got: make(chan string, 20000)}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.status != nil {
		if code := r.status(); code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
	}
	ev, err := cehttp.NewEventFromHTTPRequest(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.ids[ev.ID()]++
	r.bodies[ev.ID()] = string(ev.Data())
	r.mu.Unlock()
	r.got <- ev.ID()
}

func (r *receiver) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-r.got:
		case <-timeout:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("receiver got %d of %d events: %v", len(r.ids), n, r.ids)
		}
	}
}

type pipeline struct {
	js      jetstream.JetStream
	hookURL string
}

// startPipeline runs a webhook source and one route delivering to sinkURL.
func startPipeline(t *testing.T, filter, sinkURL, mode string) pipeline {
	return startPipelineTB(t, filter, sinkURL, mode, 100)
}

func startPipelineB(b *testing.B, filter, sinkURL string) pipeline {
	return startPipelineTB(b, filter, sinkURL, httpsink.ModeBinary, 64)
}

func startPipelineTB(t testing.TB, filter, sinkURL, mode string, inFlight int) pipeline {
	t.Helper()
	_, js := natstest.Run(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	var f *filters.Filter
	if filter != "" {
		var err error
		if f, err = filters.Compile(filter); err != nil {
			t.Fatal(err)
		}
	}
	sink, err := httpsink.New(httpsink.Config{URL: sinkURL, Mode: mode, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d, err := consumers.NewDispatcher(js, consumers.Route{
		Name:   "flow",
		Filter: f,
		Delivery: consumers.Delivery{
			SendTimeout: 3 * time.Second,
			AckWait:     10 * time.Second,
			MaxAttempts: 100,
			MaxInFlight: inFlight,
			Backoff:     consumers.Backoff{Initial: 50 * time.Millisecond, Max: 300 * time.Millisecond},
		},
	}, sink)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = d.Run(ctx) })

	src, err := webhook.New(webhook.Config{Listen: "127.0.0.1:0", Path: "/events"}, webhook.WithName("hooks"))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Listen(); err != nil {
		t.Fatal(err)
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "hooks"})
	wg.Go(func() { _ = src.Run(ctx, pub) })
	return pipeline{js: js, hookURL: "http://" + src.Addr().String() + "/events"}
}

func post(t *testing.T, url, contentType string, headers map[string]string, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func structured(id, typ, vm string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"https://vc01.example.com/sdk","type":%q,"datacontenttype":"application/json","data":{"Vm":{"Name":%q}}}`, id, typ, vm)
}

func TestWebhookToSinkAllModes(t *testing.T) {
	for _, mode := range []string{httpsink.ModeBinary, httpsink.ModeStructured} {
		t.Run("sink "+mode, func(t *testing.T) {
			rcv := newReceiver()
			srv := httptest.NewServer(rcv)
			t.Cleanup(srv.Close)
			p := startPipeline(t, `data.Vm.Name startsWith "prod-"`, srv.URL, mode)

			const on = "com.vmware.vsphere.VmPoweredOnEvent.v0"
			// binary mode request
			code := post(t, p.hookURL, "application/json", map[string]string{
				"Ce-Specversion": "1.0", "Ce-Id": "b1", "Ce-Source": "https://vc01.example.com/sdk", "Ce-Type": on,
			}, `{"Vm":{"Name":"prod-binary"}}`)
			if code != http.StatusOK {
				t.Fatalf("binary post: status %d, want 200", code)
			}
			// structured mode request
			if code := post(t, p.hookURL, "application/cloudevents+json", nil, structured("s1", on, "prod-structured")); code != http.StatusOK {
				t.Fatalf("structured post: status %d, want 200", code)
			}
			// batch mode request: one event is filtered out
			batch := "[" + structured("m1", on, "prod-batch-1") + "," + structured("m2", on, "test-batch-2") + "," + structured("m3", on, "prod-batch-3") + "]"
			if code := post(t, p.hookURL, "application/cloudevents-batch+json", nil, batch); code != http.StatusOK {
				t.Fatalf("batch post: status %d, want 200", code)
			}
			rcv.wait(t, 4)
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			for _, id := range []string{"b1", "s1", "m1", "m3"} {
				if rcv.ids[id] != 1 {
					t.Errorf("event %s delivered %d times, want 1", id, rcv.ids[id])
				}
			}
			if rcv.ids["m2"] != 0 {
				t.Errorf("filtered-out event m2 delivered %d times, want 0", rcv.ids["m2"])
			}
			var data map[string]any
			if err := json.Unmarshal([]byte(rcv.bodies["b1"]), &data); err != nil {
				t.Fatalf("b1 data %q: %v", rcv.bodies["b1"], err)
			}
			if got := data["Vm"].(map[string]any)["Name"]; got != "prod-binary" {
				t.Errorf("b1 data Vm.Name = %v, want prod-binary", got)
			}
		})
	}
}

func TestWebhookRejectsPublishNothing(t *testing.T) {
	rcv := newReceiver()
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	p := startPipeline(t, "", srv.URL, httpsink.ModeBinary)
	tests := []struct {
		name        string
		contentType string
		headers     map[string]string
		body        string
		want        int
	}{
		{name: "not a cloudevent", contentType: "application/json", body: `{"a":1}`, want: http.StatusBadRequest},
		{name: "missing id", contentType: "application/cloudevents+json", body: `{"specversion":"1.0","source":"s","type":"t"}`, want: http.StatusBadRequest},
		{name: "bad json", contentType: "application/cloudevents+json", body: `{"specversion":`, want: http.StatusBadRequest},
		{name: "batch with one bad event", contentType: "application/cloudevents-batch+json", body: "[" + structured("ok1", "t", "x") + `,{"specversion":"1.0"}]`, want: http.StatusBadRequest},
		{name: "binary with invalid json data", contentType: "application/json", headers: map[string]string{
			"Ce-Specversion": "1.0", "Ce-Id": "j1", "Ce-Source": "s", "Ce-Type": "t"}, body: `{"Vm":`, want: http.StatusBadRequest},
		{name: "xml format", contentType: "application/cloudevents+xml", body: `<event/>`, want: http.StatusUnsupportedMediaType},
		{name: "too large", contentType: "application/cloudevents+json", body: structured("big", "t", strings.Repeat("x", 2<<20)), want: http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := post(t, p.hookURL, tt.contentType, tt.headers, tt.body); got != tt.want {
				t.Errorf("status = %d, want %d", got, tt.want)
			}
		})
	}
	s, err := p.js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Errorf("stream holds %d events after only bad requests, want 0", info.State.Msgs)
	}
}

// TestSinkOutage takes the receiver's port away (connection refused), then
// brings it back: every event arrives once the sink is up again.
func TestSinkOutage(t *testing.T) {
	rcv := newReceiver()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: nothing listens there yet

	p := startPipeline(t, "", "http://"+addr+"/", httpsink.ModeBinary)
	const n = 200
	var batch bytes.Buffer
	batch.WriteString("[")
	for i := range n {
		if i > 0 {
			batch.WriteString(",")
		}
		batch.WriteString(structured(fmt.Sprintf("o%d", i), "com.example.t", "vm"))
	}
	batch.WriteString("]")
	if code := post(t, p.hookURL, "application/cloudevents-batch+json", nil, batch.String()); code != http.StatusOK {
		t.Fatalf("post: status %d", code)
	}
	// Let the route fail a few rounds against the closed port.
	c, err := p.js.Consumer(t.Context(), streams.EventStream, "flow")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumRedelivered > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no redelivery while the sink was down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Up again, on the same address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: rcv}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	rcv.wait(t, n)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for i := range n {
		if id := fmt.Sprintf("o%d", i); rcv.ids[id] < 1 {
			t.Errorf("event %s never delivered", id)
		}
	}
	if dl, _ := p.js.Stream(t.Context(), streams.DLQStream); dl != nil {
		if info, _ := dl.Info(t.Context()); info != nil && info.State.Msgs != 0 {
			t.Errorf("dead letters = %d after an outage within the attempt budget, want 0", info.State.Msgs)
		}
	}
}

// TestSinkStatuses: 503 twice then 200 is delivered once; 400 is
// dead-lettered at once with the status in the reason.
func TestSinkStatuses(t *testing.T) {
	rcv := newReceiver()
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Ce-Id")
		mu.Lock()
		calls[id]++
		n := calls[id]
		mu.Unlock()
		switch {
		case id == "flaky" && n <= 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		case id == "rejected":
			http.Error(w, "field Vm is required", http.StatusBadRequest)
		default:
			rcv.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	p := startPipeline(t, "", srv.URL, httpsink.ModeBinary)
	for _, id := range []string{"flaky", "rejected"} {
		if code := post(t, p.hookURL, "application/cloudevents+json", nil, structured(id, "com.example.t", "vm")); code != http.StatusOK {
			t.Fatalf("post %s: %d", id, code)
		}
	}
	rcv.wait(t, 1)
	c, err := p.js.OrderedConsumer(t.Context(), streams.DLQStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.Next(jetstream.FetchMaxWait(30 * time.Second))
	if err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if got := msg.Headers().Get(streams.HeaderID); got != "rejected" {
		t.Errorf("dead letter is %q, want rejected", got)
	}
	if reason := msg.Headers().Get(streams.HeaderReason); !strings.Contains(reason, "400") || !strings.Contains(reason, "field Vm is required") {
		t.Errorf("reason %q does not carry the status and body", reason)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["flaky"] != 3 || calls["rejected"] != 1 {
		t.Errorf("calls = %v, want flaky 3 and rejected 1", calls)
	}
	if extra, err := c.Next(jetstream.FetchMaxWait(200 * time.Millisecond)); err == nil {
		t.Errorf("a second dead letter exists (%s), want only rejected", extra.Headers().Get(streams.HeaderID))
	}
}
