package knative_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/knative"
	"github.com/vrelay/vrelay/consumers/sinktest"
)

func TestConformance(t *testing.T) {
	for _, mode := range []string{"binary", "structured"} {
		t.Run(mode, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T, url string) consumers.Sink {
				s, err := knative.New(knative.Config{URI: url, Mode: mode})
				if err != nil {
					t.Fatalf("New(): got error %v, want nil", err)
				}
				return s
			}, sinktest.Features{Retry404: true, Retry409: true, Structured: mode == "structured"})
		})
	}
}

// fakeResolver answers from a script that a test changes as it goes.
type fakeResolver struct {
	mu    sync.Mutex
	addr  string
	err   error
	calls int
}

func (f *fakeResolver) set(addr string, err error) {
	f.mu.Lock()
	f.addr, f.err = addr, err
	f.mu.Unlock()
}

func (f *fakeResolver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeResolver) Resolve(_ context.Context, ref knative.Ref) (*url.URL, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, f.err)
	}
	return url.Parse(f.addr)
}

func newEvent() event.Event {
	ev := event.New()
	ev.SetID("42")
	ev.SetSource("/vcenter/vc01")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	_ = ev.SetData(event.ApplicationJSON, map[string]int{"Key": 42})
	return ev
}

// receiver is an httptest server that records request URIs and answers
// with status.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	uris   []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{status: http.StatusAccepted}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.uris = append(r.uris, req.URL.RequestURI())
		st := r.status
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) answer(status int) { r.mu.Lock(); r.status = status; r.mu.Unlock() }
func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.uris...)
}

func TestRefResolutionAndReresolution(t *testing.T) {
	a, b := newReceiver(t), newReceiver(t)
	res := &fakeResolver{err: knative.ErrNotFound}
	s, err := knative.New(knative.Config{
		Ref: &knative.Ref{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "hello"},
		URI: "/hello?filter=test",
	}, knative.WithResolver(res), knative.WithResolveInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Ref().Namespace; got != "default" {
		t.Errorf("ref namespace: got %q, want \"default\"", got)
	}

	// Not found yet: retryable, says why, nothing sent.
	err = s.Send(t.Context(), newEvent())
	if err == nil || consumers.IsPermanent(err) || !errors.Is(err, knative.ErrNotFound) {
		t.Fatalf("Send() with an unresolvable ref: got %v, want a retryable not-found error", err)
	}

	// Resolves: the relative uri joins the address.
	res.set(a.URL+"/base/", nil)
	if err := s.Send(t.Context(), newEvent()); err != nil {
		t.Fatalf("Send(): got %v, want nil", err)
	}
	if got, want := a.got(), []string{"/hello?filter=test"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("receiver got %q, want %q", got, want)
	}

	// Cached while deliveries succeed.
	calls := res.count()
	if err := s.Send(t.Context(), newEvent()); err != nil {
		t.Fatal(err)
	}
	if res.count() != calls {
		t.Errorf("resolver called %d times after a success, want no new call", res.count()-calls)
	}

	// The address moves; the old one answers 404 (retryable for Knative),
	// so the next send resolves again and reaches the new address.
	a.answer(http.StatusNotFound)
	res.set(b.URL, nil)
	if err := s.Send(t.Context(), newEvent()); err == nil || consumers.IsPermanent(err) {
		t.Fatalf("Send() against 404: got %v, want a retryable error", err)
	}
	if err := s.Send(t.Context(), newEvent()); err != nil {
		t.Fatalf("Send() after the address moved: got %v, want nil", err)
	}
	if got := b.got(); len(got) != 1 || got[0] != "/hello?filter=test" {
		t.Errorf("new receiver got %q, want one request to /hello?filter=test", got)
	}

	// The object goes away: after a failure, the sink stops using the old
	// address and reports why.
	b.answer(http.StatusServiceUnavailable)
	res.set("", knative.ErrNotReady)
	_ = s.Send(t.Context(), newEvent())
	err = s.Send(t.Context(), newEvent())
	if !knative.IsNotResolved(err) || consumers.IsPermanent(err) {
		t.Errorf("Send() once the ref lost its address: got %v, want a retryable not-ready error", err)
	}
}

func TestReresolutionIsRateLimited(t *testing.T) {
	res := &fakeResolver{err: knative.ErrNotFound}
	s, err := knative.New(knative.Config{
		Ref: &knative.Ref{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default", Namespace: "ns"},
	}, knative.WithResolver(res), knative.WithResolveInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := s.Send(t.Context(), newEvent()); !errors.Is(err, knative.ErrNotFound) {
			t.Fatalf("Send(): got %v, want the not-found error", err)
		}
	}
	if n := res.count(); n != 1 {
		t.Errorf("resolver called %d times within the interval, want 1", n)
	}
}

func TestPermanentFailureKeepsAddress(t *testing.T) {
	r := newReceiver(t)
	r.answer(http.StatusBadRequest)
	res := &fakeResolver{addr: r.URL}
	s, err := knative.New(knative.Config{
		Ref: &knative.Ref{APIVersion: "v1", Kind: "Service", Name: "svc", Namespace: "ns"},
	}, knative.WithResolver(res), knative.WithResolveInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Send(t.Context(), newEvent()); !consumers.IsPermanent(err) {
			t.Fatalf("Send() against 400: got %v, want a permanent error", err)
		}
	}
	if n := res.count(); n != 1 {
		t.Errorf("resolver called %d times, want 1: a rejected event says nothing about the address", n)
	}
}

func TestNewWithoutClusterFailsClearly(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err := knative.New(knative.Config{
		Ref: &knative.Ref{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default"},
	})
	if err == nil {
		t.Fatal("New() with a ref, outside a cluster and without kubeconfig: got nil, want an error")
	}
	t.Log(err)
}

// TestRelativeURI checks that uri joins the ref's address as Knative joins
// them (RFC 3986 reference resolution, url.ResolveReference).
func TestRelativeURI(t *testing.T) {
	tests := []struct {
		name, base, uri, want string
	}{
		{name: "absolute path and query", base: "/ns/default", uri: "/hello?filter=test", want: "/hello?filter=test"},
		{name: "relative path under a folder", base: "/ns/default/", uri: "hello?x=1", want: "/ns/default/hello?x=1"},
		{name: "relative path beside a file", base: "/ns/default", uri: "hello", want: "/ns/hello"},
		{name: "query only", base: "/ns/default", uri: "?filter=test", want: "/ns/default?filter=test"},
		{name: "no uri", base: "/ns/default", want: "/ns/default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t)
			s, err := knative.New(knative.Config{
				Ref: &knative.Ref{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default", Namespace: "ns"},
				URI: tt.uri,
			}, knative.WithResolver(&fakeResolver{addr: r.URL + tt.base}))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(t.Context(), newEvent()); err != nil {
				t.Fatal(err)
			}
			if got := r.got(); len(got) != 1 || got[0] != tt.want {
				t.Errorf("address %s + uri %q: receiver got %q, want %q", tt.base, tt.uri, got, tt.want)
			}
		})
	}
}
