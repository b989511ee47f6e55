package ui_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/internal/ui"
)

// startViewer serves a viewer of js on an httptest server and runs it
// until the test ends.
func startViewer(t *testing.T, js jetstream.JetStream, opts ...ui.Option) (*ui.Viewer, *httptest.Server) {
	t.Helper()
	v := ui.New(js, append([]ui.Option{ui.WithSampling(100*time.Millisecond, 50)}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = v.Run(ctx) }()
	srv := httptest.NewServer(v.Handler(nil))
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return v, srv
}

func TestEventsBacklogFilterAndSources(t *testing.T) {
	_, js := natstest.Run(t)
	_, srv := startViewer(t, js)
	for i, typ := range []string{"VmPoweredOnEvent", "VmPoweredOffEvent", "VmPoweredOnEvent", "VmCreatedEvent"} {
		publish(t, js, "vc01", typ, "prod-"+strconv.Itoa(i))
		publish(t, js, "vc02", typ, "test-"+strconv.Itoa(i))
	}
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{name: "last 3 of all", query: "last=3", want: "vc02/test-2 vc01/prod-3 vc02/test-3"},
		{name: "all of them", query: "last=100", want: "vc01/prod-0 vc02/test-0 vc01/prod-1 vc02/test-1 vc01/prod-2 vc02/test-2 vc01/prod-3 vc02/test-3"},
		{name: "filter", query: "last=100&filter=" + url.QueryEscape(`subject == "VmPoweredOnEvent" && data.Vm.Name startsWith "prod-"`),
			want: "vc01/prod-0 vc01/prod-2"},
		{name: "last 1 match of a filter", query: "last=1&filter=" + url.QueryEscape(`subject == "VmPoweredOnEvent"`),
			want: "vc02/test-2"},
		{name: "one source", query: "last=2&sources=vcenter.vc02", want: "vc02/test-2 vc02/test-3"},
		{name: "two sources", query: "last=2&sources=vcenter.vc02,vcenter.vc01", want: "vc01/prod-3 vc02/test-3"},
		{name: "a source twice", query: "last=2&sources=vcenter.vc02,vcenter.vc02", want: "vc02/test-2 vc02/test-3"},
		{name: "unknown source", query: "last=5&sources=vcenter.vc09", want: ""},
		{name: "new only", query: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ch := openStream(t, t.Context(), srv.Client(), srv.URL+"/ui/api/events?"+tt.query)
			if got := vmNames(collect(t, ch)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventsLive(t *testing.T) {
	_, js := natstest.Run(t)
	_, srv := startViewer(t, js)
	publish(t, js, "vc01", "VmPoweredOnEvent", "before")
	q := "filter=" + url.QueryEscape(`data.Vm.Name != "skip"`) + "&sources=vcenter.vc01"
	_, ch := openStream(t, t.Context(), srv.Client(), srv.URL+"/ui/api/events?"+q)
	if got := collect(t, ch); len(got) != 0 {
		t.Fatalf("got %q before any new event, want nothing", vmNames(got))
	}
	publish(t, js, "vc01", "VmPoweredOnEvent", "skip")
	publish(t, js, "vc02", "VmPoweredOnEvent", "other-source")
	seq := publish(t, js, "vc01", "VmPoweredOffEvent", "live")
	e := next(t, ch, "event")
	got := decode(t, e)
	if got.Event.Data.Vm.Name != "live" || got.Seq != seq || e.id != strconv.FormatUint(seq, 10) ||
		got.Provider != "vcenter" || got.Source != "vc01" || got.Event.Subject != "VmPoweredOffEvent" {
		t.Errorf("got %+v (id %s), want the event live at sequence %d", got, e.id, seq)
	}
}

// TestEventsResume checks after= and Last-Event-ID: a stream goes on right
// after the sequence given, so a paused page misses nothing.
func TestEventsResume(t *testing.T) {
	_, js := natstest.Run(t)
	_, srv := startViewer(t, js)
	first := publish(t, js, "vc01", "VmPoweredOnEvent", "a")
	publish(t, js, "vc01", "VmPoweredOnEvent", "b")
	publish(t, js, "vc01", "VmPoweredOnEvent", "c")

	_, ch := openStream(t, t.Context(), srv.Client(), srv.URL+"/ui/api/events?after="+strconv.FormatUint(first, 10))
	if a, b := decode(t, next(t, ch, "event")), decode(t, next(t, ch, "event")); a.Event.Data.Vm.Name != "b" || b.Event.Data.Vm.Name != "c" {
		t.Errorf("after=%d: got %s, %s, want b, c", first, a.Event.Data.Vm.Name, b.Event.Data.Vm.Name)
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/ui/api/events?last=100", nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(first+1, 10))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	var body string
	for !contains(body, `"Name":"c"`) {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatalf("read: %v; got %q", err, body)
		}
		body += string(buf[:n])
	}
	if contains(body, `"Name":"a"`) || contains(body, `"Name":"b"`) {
		t.Errorf("Last-Event-ID %d: got %q, want only c", first+1, body)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestEventsBadRequests(t *testing.T) {
	_, js := natstest.Run(t)
	_, srv := startViewer(t, js)
	type body struct {
		Error   string `json:"error"`
		Line    int    `json:"line"`
		Column  int    `json:"column"`
		Message string `json:"message"`
		Snippet string `json:"snippet"`
	}
	tests := []struct {
		name      string
		path      string
		wantLine  int
		wantCol   int
		wantError string
	}{
		{name: "syntax", path: "/ui/api/events?filter=" + url.QueryEscape(`subject == "a" &&& x`), wantLine: 1, wantCol: 18},
		{name: "second line", path: "/ui/api/events?filter=" + url.QueryEscape("subject == \"a\" &&\n  type == 1"), wantLine: 2, wantCol: 8},
		{name: "not boolean", path: "/ui/api/events?filter=type", wantLine: 1, wantCol: 1},
		{name: "check endpoint", path: "/ui/api/filter?filter=" + url.QueryEscape(`foo(type)`), wantLine: 1, wantCol: 1},
		{name: "wildcard source", path: "/ui/api/events?sources=vcenter.*", wantError: `sources: "vcenter.*" is not <provider>.<source>`},
		{name: "source without provider", path: "/ui/api/events?sources=vc01", wantError: `sources: "vc01" is not <provider>.<source>`},
		{name: "last too large", path: "/ui/api/events?last=5000", wantError: "last: want a number from 0 to 1000"},
		{name: "after not a number", path: "/ui/api/events?after=x", wantError: "after: want a stream sequence"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b body
			if code := getJSON(t, srv.Client(), srv.URL+tt.path, &b); code != http.StatusBadRequest {
				t.Fatalf("got %d, want 400", code)
			}
			if tt.wantError != "" {
				if b.Error != tt.wantError {
					t.Errorf("got error %q, want %q", b.Error, tt.wantError)
				}
				return
			}
			if b.Line != tt.wantLine || b.Column != tt.wantCol || b.Message == "" || b.Error == "" {
				t.Errorf("got %+v, want line %d column %d with a message", b, tt.wantLine, tt.wantCol)
			}
		})
	}
	var ok map[string]bool
	if code := getJSON(t, srv.Client(), srv.URL+"/ui/api/filter?filter="+url.QueryEscape(`subject == "x"`), &ok); code != 200 || !ok["ok"] {
		t.Errorf("a good filter: got %d %v, want 200 ok", code, ok)
	}
}

// TestEventsOutliveListenerTimeouts runs the stream behind a server with
// short read and write timeouts, like the operations listener's: the
// stream goes on past both.
func TestEventsOutliveListenerTimeouts(t *testing.T) {
	_, js := natstest.Run(t)
	v, _ := startViewer(t, js)
	srv := httptest.NewUnstartedServer(v.Handler(nil))
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	_, ch := openStream(t, t.Context(), srv.Client(), srv.URL+"/ui/api/events")
	next(t, ch, "ready")
	// Wait past both timeouts; a timer, not a clock assertion.
	<-time.After(600 * time.Millisecond)
	publish(t, js, "vc01", "VmPoweredOnEvent", "late")
	if got := decode(t, next(t, ch, "event")); got.Event.Data.Vm.Name != "late" {
		t.Errorf("got %q, want late", got.Event.Data.Vm.Name)
	}
}

// TestEventsEndWithRun checks that open streams end when Run returns, so
// a graceful shutdown of the listener does not wait for open pages.
func TestEventsEndWithRun(t *testing.T) {
	_, js := natstest.Run(t)
	v := ui.New(js)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	srv := httptest.NewServer(v.Handler(nil))
	t.Cleanup(srv.Close)
	_, ch := openStream(t, t.Context(), srv.Client(), srv.URL+"/ui/api/events")
	next(t, ch, "ready")
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Run: got %v, want context.Canceled", err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("stream still open 10s after Run returned")
		}
	}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	// A page's event stream stays open until the browser goes.
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv
}

// TestEventsFilterRuntimeError checks that a filter failing on an event
// counts as no match, as in a route, and that the stream says why.
func TestEventsFilterRuntimeError(t *testing.T) {
	_, js := natstest.Run(t)
	_, srv := startViewer(t, js)
	seq := publish(t, js, "vc01", "VmPoweredOnEvent", "a")
	_, ch := openStream(t, t.Context(), srv.Client(), srv.URL+"/ui/api/events?last=5&filter="+url.QueryEscape(`data.Ds.Name == "x"`))
	e := next(t, ch, "filter_error")
	if want := "event " + strconv.FormatUint(seq, 10); !strings.Contains(e.data, want) {
		t.Errorf("got %s, want an error naming %s", e.data, want)
	}
	if got := collect(t, ch); len(got) != 0 {
		t.Errorf("got %q, want no match", vmNames(got))
	}
}
