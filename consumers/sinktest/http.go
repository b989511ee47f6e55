package sinktest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/vrelay/vrelay/consumers"
)

// Run runs the conformance suite of HTTP sinks against the sinks that
// newSink builds: the core checks of [RunCore], against a scripted HTTP
// receiver, and the HTTP checks (status table, Retry-After, connection
// refused, wire format). newSink must return a sink that delivers to url
// with its other settings at their defaults; register any cleanup with
// t.Cleanup. Subtests run in parallel, so newSink must be safe to call
// concurrently. See the package documentation for what is checked.
func Run(t *testing.T, newSink func(t *testing.T, url string) consumers.Sink, f Features) {
	t.Helper()
	t.Run("Core", func(t *testing.T) {
		RunCore(t, func(t *testing.T) Destination { return newHTTPDestination(t, newSink) }, Features{})
	})
	t.Run("Accepted", func(t *testing.T) { t.Parallel(); testAccepted(t, newSink) })
	t.Run("Retryable", func(t *testing.T) { t.Parallel(); testRetryable(t, newSink, f) })
	t.Run("RetryAfter", func(t *testing.T) { t.Parallel(); testRetryAfter(t, newSink) })
	t.Run("Permanent", func(t *testing.T) { t.Parallel(); testPermanent(t, newSink, f) })
	t.Run("ConnectionRefused", func(t *testing.T) { t.Parallel(); testConnectionRefused(t, newSink) })
	t.Run("EventArrives", func(t *testing.T) { t.Parallel(); testEventArrives(t, newSink, f) })
}

// httpDestination is a receiver that answers each request as its script
// says: Accept 202, Reject 400, Fail 503, Hang not until the client gives
// up. A request it cannot read as a CloudEvent gets 400.
type httpDestination struct {
	newSink func(t *testing.T, url string) consumers.Sink
	srv     *server
	release chan struct{}

	mu       sync.Mutex
	answer   func(event.Event) Outcome
	received []event.Event
}

func newHTTPDestination(t *testing.T, newSink func(*testing.T, string) consumers.Sink) *httpDestination {
	d := &httpDestination{newSink: newSink, release: make(chan struct{})}
	d.srv = startServer(t, d.serve)
	// Cleanups run last-in first-out: free hanging handlers before the
	// server's Close waits for them.
	t.Cleanup(func() { close(d.release) })
	return d
}

func (d *httpDestination) Sink(t *testing.T) consumers.Sink { return d.newSink(t, d.srv.URL) }

func (d *httpDestination) Script(answer func(event.Event) Outcome) {
	d.mu.Lock()
	d.answer = answer
	d.mu.Unlock()
}

func (d *httpDestination) Received() []event.Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]event.Event(nil), d.received...)
}

func (d *httpDestination) Attempts() int { return len(d.srv.requests()) }

func (d *httpDestination) serve(w http.ResponseWriter, r *http.Request) {
	ev, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
	if err != nil {
		http.Error(w, "not a CloudEvent: "+err.Error(), http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	answer := Accept
	if d.answer != nil {
		answer = d.answer(*ev)
	}
	if answer == Accept {
		d.received = append(d.received, *ev)
	}
	d.mu.Unlock()
	switch answer {
	case Accept:
		w.WriteHeader(http.StatusAccepted)
	case Reject:
		http.Error(w, "rejected by script", http.StatusBadRequest)
	case Fail:
		http.Error(w, "failed by script", http.StatusServiceUnavailable)
	case Hang:
		select {
		case <-r.Context().Done():
		case <-d.release:
		}
	}
}

func testAccepted(t *testing.T, newSink func(*testing.T, string) consumers.Sink) {
	tests := []struct {
		name   string
		status int
	}{
		{name: "200", status: http.StatusOK},
		{name: "201", status: http.StatusCreated},
		{name: "202", status: http.StatusAccepted},
		{name: "204", status: http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, statusHandler(tt.status, nil, "ok"))
			s := newSink(t, srv.URL)
			ev := newEvent("accepted-" + tt.name)
			if err := s.Send(t.Context(), ev); err != nil {
				t.Fatalf("Send() against %d: got error %v, want nil", tt.status, err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests, want 1", len(reqs))
			}
			if reqs[0].method != http.MethodPost {
				t.Errorf("request method: got %s, want POST", reqs[0].method)
			}
		})
	}
}

func testRetryable(t *testing.T, newSink func(*testing.T, string) consumers.Sink, f Features) {
	tests := []struct {
		name   string
		status int
	}{
		{name: "500", status: http.StatusInternalServerError},
		{name: "502", status: http.StatusBadGateway},
		{name: "503", status: http.StatusServiceUnavailable},
		{name: "504", status: http.StatusGatewayTimeout},
		{name: "408", status: http.StatusRequestTimeout},
		{name: "429", status: http.StatusTooManyRequests},
	}
	if f.Retry404 {
		tests = append(tests, struct {
			name   string
			status int
		}{name: "404", status: http.StatusNotFound})
	}
	if f.Retry409 {
		tests = append(tests, struct {
			name   string
			status int
		}{name: "409", status: http.StatusConflict})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, statusHandler(tt.status, nil, "try again later"))
			s := newSink(t, srv.URL)
			err := s.Send(t.Context(), newEvent("retryable-"+tt.name))
			if err == nil {
				t.Fatalf("Send() against %d: got nil, want a retryable error", tt.status)
			}
			if consumers.IsPermanent(err) {
				t.Errorf("Send() against %d: got permanent error %q, want a retryable error", tt.status, err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tt.status)) {
				t.Errorf("Send() against %d: got error %q, want it to name the status code", tt.status, err)
			}
			if n := len(srv.requests()); n != 1 {
				t.Errorf("server got %d requests, want 1 (a sink must not retry internally)", n)
			}
		})
	}
}

func testRetryAfter(t *testing.T, newSink func(*testing.T, string) consumers.Sink) {
	// An HTTP-date has one-second resolution and the sink reads its own clock
	// after ours, so a date two hours ahead yields slightly less than two
	// hours; a minute of slack absorbs a slow machine.
	const ahead = 2 * time.Hour
	date := time.Now().Add(ahead).UTC().Format(http.TimeFormat)

	tests := []struct {
		name    string
		status  int
		header  string
		wantMin time.Duration
		wantMax time.Duration
	}{
		{name: "429 seconds", status: http.StatusTooManyRequests, header: "3", wantMin: 3 * time.Second, wantMax: 3 * time.Second},
		{name: "503 seconds", status: http.StatusServiceUnavailable, header: "3", wantMin: 3 * time.Second, wantMax: 3 * time.Second},
		{name: "429 HTTP-date", status: http.StatusTooManyRequests, header: date, wantMin: ahead - time.Minute, wantMax: ahead},
		{name: "503 HTTP-date", status: http.StatusServiceUnavailable, header: date, wantMin: ahead - time.Minute, wantMax: ahead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{"Retry-After": {tt.header}}
			srv := startServer(t, statusHandler(tt.status, h, "slow down"))
			s := newSink(t, srv.URL)
			err := s.Send(t.Context(), newEvent("retry-after"))
			if err == nil {
				t.Fatalf("Send() against %d: got nil, want a retryable error", tt.status)
			}
			if consumers.IsPermanent(err) {
				t.Errorf("Send() against %d: got permanent error %q, want a retryable error", tt.status, err)
			}
			d, ok := consumers.RetryAfterDelay(err)
			if !ok {
				t.Fatalf("RetryAfterDelay(%q) with Retry-After %q: got no delay, want %s", err, tt.header, tt.wantMax)
			}
			if d < tt.wantMin || d > tt.wantMax {
				t.Errorf("RetryAfterDelay() with Retry-After %q: got %s, want between %s and %s", tt.header, d, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func testPermanent(t *testing.T, newSink func(*testing.T, string) consumers.Sink, f Features) {
	tests := []struct {
		name   string
		status int
	}{
		{name: "400", status: http.StatusBadRequest},
		{name: "401", status: http.StatusUnauthorized},
		{name: "403", status: http.StatusForbidden},
		{name: "413", status: http.StatusRequestEntityTooLarge},
		{name: "422", status: http.StatusUnprocessableEntity},
	}
	if !f.Retry404 {
		tests = append(tests, struct {
			name   string
			status int
		}{name: "404", status: http.StatusNotFound})
	}
	if !f.Retry409 {
		tests = append(tests, struct {
			name   string
			status int
		}{name: "409", status: http.StatusConflict})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, statusHandler(tt.status, nil, "rejected"))
			s := newSink(t, srv.URL)
			err := s.Send(t.Context(), newEvent("permanent-"+tt.name))
			if err == nil {
				t.Fatalf("Send() against %d: got nil, want a permanent error", tt.status)
			}
			if !consumers.IsPermanent(err) {
				t.Errorf("Send() against %d: got retryable error %q, want a permanent error", tt.status, err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tt.status)) {
				t.Errorf("Send() against %d: got error %q, want it to name the status code", tt.status, err)
			}
			if n := len(srv.requests()); n != 1 {
				t.Errorf("server got %d requests, want 1", n)
			}
		})
	}
}

func testConnectionRefused(t *testing.T, newSink func(*testing.T, string) consumers.Sink) {
	// Take a free port and give it back: nothing listens there any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, url)
	err = s.Send(t.Context(), newEvent("refused"))
	if err == nil {
		t.Fatalf("Send() to a closed port: got nil, want a retryable error")
	}
	if consumers.IsPermanent(err) {
		t.Errorf("Send() to a closed port: got permanent error %q, want a retryable error", err)
	}
}

func testEventArrives(t *testing.T, newSink func(*testing.T, string) consumers.Sink, f Features) {
	tests := arrivalCases
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, statusHandler(http.StatusAccepted, nil, ""))
			s := newSink(t, srv.URL)
			ev := newEvent("d3b07384-d9a0-4c1e-8f2e-" + tt.name)
			ev.SetExtension("eventclass", "event")
			if err := ev.SetData(tt.contentType, tt.data); err != nil {
				t.Fatal(err)
			}
			if err := s.Send(t.Context(), ev); err != nil {
				t.Fatalf("Send(): got error %v, want nil", err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests, want 1", len(reqs))
			}
			req := reqs[0]

			ct := req.header.Get("Content-Type")
			if f.Structured {
				if !strings.HasPrefix(ct, event.ApplicationCloudEventsJSON) {
					t.Errorf("structured mode: got Content-Type %q, want %s", ct, event.ApplicationCloudEventsJSON)
				}
				var body struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(req.body, &body); err != nil {
					t.Fatalf("structured mode: body is not a JSON object: %v; body %q", err, req.body)
				}
				if body.ID != ev.ID() {
					t.Errorf("structured mode: got \"id\" %q in the body, want %q", body.ID, ev.ID())
				}
			} else {
				if got := req.header.Get("Ce-Id"); got != ev.ID() {
					t.Errorf("binary mode: got ce-id header %q, want %q", got, ev.ID())
				}
				if !strings.HasPrefix(ct, tt.contentType) {
					t.Errorf("binary mode: got Content-Type %q, want %s", ct, tt.contentType)
				}
				if !bytes.Equal(req.body, tt.data) {
					t.Errorf("binary mode: got body %q, want the data %q", req.body, tt.data)
				}
			}

			// Whatever the mode, a CloudEvents receiver must read back the
			// event that was sent.
			msg := cehttp.NewMessage(req.header.Clone(), io.NopCloser(bytes.NewReader(req.body)))
			got, err := binding.ToEvent(t.Context(), msg)
			if err != nil {
				t.Fatalf("receiver cannot decode the request as a CloudEvent: %v", err)
			}
			if got.ID() != ev.ID() || got.Source() != ev.Source() || got.Type() != ev.Type() {
				t.Errorf("received id/source/type: got %q/%q/%q, want %q/%q/%q",
					got.ID(), got.Source(), got.Type(), ev.ID(), ev.Source(), ev.Type())
			}
			if v := got.Extensions()["eventclass"]; v != "event" {
				t.Errorf("received extension eventclass: got %v, want \"event\"", v)
			}
			if !bytes.Equal(got.Data(), tt.data) {
				t.Errorf("received data: got %q, want %q", got.Data(), tt.data)
			}
		})
	}
}

// request is what a scripted server saw.
type request struct {
	method string
	header http.Header
	body   []byte
}

type server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// startServer starts an httptest server on 127.0.0.1 that records every
// request, then hands it to h.
func startServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // a truncated body shows up as a data mismatch
		s.mu.Lock()
		s.reqs = append(s.reqs, request{method: r.Method, header: r.Header.Clone(), body: body})
		s.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func statusHandler(status int, header http.Header, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		if status != http.StatusNoContent {
			_, _ = io.WriteString(w, body)
		}
	}
}
