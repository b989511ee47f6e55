package httpsink_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/consumers/sinktest"
	"github.com/vrelay/vrelay/internal/secret"
)

func TestConformance(t *testing.T) {
	tests := []struct {
		name string
		mode string
	}{
		{name: "default mode", mode: ""},
		{name: "binary", mode: httpsink.ModeBinary},
		{name: "structured", mode: httpsink.ModeStructured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T, url string) consumers.Sink {
				return newSink(t, httpsink.Config{URL: url, Mode: tt.mode})
			}, sinktest.Features{Structured: tt.mode == httpsink.ModeStructured})
		})
	}
}

func newSink(t testing.TB, cfg httpsink.Config, opts ...httpsink.Option) *httpsink.Sink {
	t.Helper()
	s, err := httpsink.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New(): got error %v, want nil", err)
	}
	return s
}

func newEvent() event.Event {
	ev := event.New()
	ev.SetID("42")
	ev.SetSource("/vcenter/vc01")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte(`{"Key":42}`)
	return ev
}

// recorder is a receiver that answers 204 and keeps the headers it saw.
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rec *recorder) last(t *testing.T) http.Header {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.headers) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(rec.headers))
	}
	return rec.headers[0]
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthAndHeaders(t *testing.T) {
	pwFile := writeFile(t, "password", "s3cret\n")
	t.Setenv("HTTPSINK_TEST_TOKEN", "tok-123")

	tests := []struct {
		name      string
		auth      httpsink.Auth
		wantAuthz string
	}{
		{name: "none", wantAuthz: ""},
		{
			name:      "basic",
			auth:      httpsink.Auth{Basic: &httpsink.BasicAuth{Username: "relay", Password: secret.Ref{FromFile: pwFile}}},
			wantAuthz: "Basic cmVsYXk6czNjcmV0", // base64("relay:s3cret")
		},
		{
			name:      "bearer",
			auth:      httpsink.Auth{Bearer: &httpsink.BearerAuth{Token: secret.Ref{FromEnv: "HTTPSINK_TEST_TOKEN"}}},
			wantAuthz: "Bearer tok-123",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			srv := httptest.NewServer(rec)
			t.Cleanup(srv.Close)
			s := newSink(t, httpsink.Config{
				URL:     srv.URL,
				Auth:    tt.auth,
				Headers: map[string]string{"X-Tenant": "blue", "x-trace-route": "vc01-to-fn"},
			})
			if err := s.Send(t.Context(), newEvent()); err != nil {
				t.Fatalf("Send(): got error %v, want nil", err)
			}
			h := rec.last(t)
			if got := h.Get("Authorization"); got != tt.wantAuthz {
				t.Errorf("Authorization: got %q, want %q", got, tt.wantAuthz)
			}
			if got := h.Get("X-Tenant"); got != "blue" {
				t.Errorf("X-Tenant: got %q, want %q", got, "blue")
			}
			if got := h.Get("X-Trace-Route"); got != "vc01-to-fn" {
				t.Errorf("X-Trace-Route: got %q, want %q", got, "vc01-to-fn")
			}
			if got := h.Get("Ce-Id"); got != "42" {
				t.Errorf("Ce-Id: got %q, want %q", got, "42")
			}
		})
	}
}

func TestTLS(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewUnstartedServer(rec)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))

	tests := []struct {
		name     string
		tls      httpsink.TLS
		wantErr  bool
		wantX509 bool
	}{
		{name: "caFile", tls: httpsink.TLS{CAFile: caFile}},
		{name: "skipTLSVerify", tls: httpsink.TLS{SkipTLSVerify: true}},
		{name: "system roots reject a private CA", wantErr: true, wantX509: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, httpsink.Config{URL: srv.URL, TLS: tt.tls})
			err := s.Send(t.Context(), newEvent())
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Send() over TLS: got error %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Send() over TLS: got nil, want an error")
			}
			if consumers.IsPermanent(err) {
				t.Errorf("Send() over TLS: got permanent error %q, want retryable (a transport error)", err)
			}
			var unknown x509.UnknownAuthorityError
			if tt.wantX509 && !errors.As(err, &unknown) {
				t.Errorf("Send() over TLS: got %q, want an x509.UnknownAuthorityError", err)
			}
		})
	}
}

func TestStatusErrorMessage(t *testing.T) {
	t.Setenv("HTTPSINK_TEST_TOKEN", "tok-SECRET-123")
	long := "field \"data.Vm\" is\r\nrequired;\x00 " + strings.Repeat("é", 300) // multi-byte runes straddle the cut
	tests := []struct {
		name          string
		status        int
		body          string
		wantPermanent bool
		wantPrefix    string
	}{
		{
			name:          "400 with long multi-line body",
			status:        http.StatusBadRequest,
			body:          long,
			wantPermanent: true,
			wantPrefix:    `http status 400 Bad Request: field "data.Vm" is required; éé`,
		},
		{
			name:          "401 echoing the credential",
			status:        http.StatusUnauthorized,
			body:          "bad token tok-SECRET-123 in Bearer tok-SECRET-123",
			wantPermanent: true,
			wantPrefix:    "http status 401 Unauthorized: bad token [redacted] in Bearer [redacted]",
		},
		{
			name:       "503 with empty body",
			status:     http.StatusServiceUnavailable,
			wantPrefix: "http status 503 Service Unavailable",
		},
		{
			name:          "418 unusual 4xx",
			status:        http.StatusTeapot,
			body:          "short and stout",
			wantPermanent: true,
			wantPrefix:    "http status 418 I'm a teapot: short and stout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			s := newSink(t, httpsink.Config{
				URL:  srv.URL,
				Auth: httpsink.Auth{Bearer: &httpsink.BearerAuth{Token: secret.Ref{FromEnv: "HTTPSINK_TEST_TOKEN"}}},
			})
			err := s.Send(t.Context(), newEvent())
			if got := consumers.IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("IsPermanent(%q): got %v, want %v", err, got, tt.wantPermanent)
			}
			var serr *httpsink.StatusError
			if !errors.As(err, &serr) {
				t.Fatalf("Send(): got %v, want a *StatusError", err)
			}
			if serr.StatusCode != tt.status {
				t.Errorf("StatusCode: got %d, want %d", serr.StatusCode, tt.status)
			}
			if len(serr.Body) > 200 {
				t.Errorf("len(Body): got %d, want at most 200", len(serr.Body))
			}
			msg := serr.Error()
			if !strings.HasPrefix(msg, tt.wantPrefix) {
				t.Errorf("error: got %q, want prefix %q", msg, tt.wantPrefix)
			}
			if strings.ContainsAny(msg, "\r\n\x00") {
				t.Errorf("error: got %q, want a single printable line", msg)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error: got %q, want no credential", err)
			}
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var followed atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
	}))
	t.Cleanup(target.Close)

	tests := []struct {
		name   string
		status int
	}{
		{name: "301", status: http.StatusMovedPermanently},
		{name: "302", status: http.StatusFound},
		{name: "303", status: http.StatusSeeOther},
		{name: "307", status: http.StatusTemporaryRedirect},
		{name: "308", status: http.StatusPermanentRedirect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/new?key=SECRET", tt.status)
			}))
			t.Cleanup(srv.Close)
			s := newSink(t, httpsink.Config{URL: srv.URL})
			err := s.Send(t.Context(), newEvent())
			if !consumers.IsPermanent(err) {
				t.Fatalf("Send() against %d: got %v, want a permanent error", tt.status, err)
			}
			want := "redirects are not followed; set url to the final location (" + target.URL + "/new?redacted)"
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error: got %q, want it to contain %q", err, want)
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}

func TestTransportErrorHidesQuery(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/api/events?code=SECRET-KEY"
	srv.Close() // nothing listens any more: connection refused

	s := newSink(t, httpsink.Config{URL: url})
	err := s.Send(t.Context(), newEvent())
	if err == nil || consumers.IsPermanent(err) {
		t.Fatalf("Send() to a closed port: got %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error: got %q, want the query redacted", err)
	}
	if want := srv.URL + "/api/events?redacted"; !strings.Contains(err.Error(), want) {
		t.Errorf("error: got %q, want it to name %q", err, want)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	s := newSink(t, httpsink.Config{URL: srv.URL, Timeout: 50 * time.Millisecond})
	err := s.Send(t.Context(), newEvent())
	if err == nil || consumers.IsPermanent(err) {
		t.Fatalf("Send() to a server that never answers: got %v, want a retryable error", err)
	}
	if !strings.Contains(err.Error(), "no response within 50ms") {
		t.Errorf("error: got %q, want it to name the timeout", err)
	}
	if got := s.SendTimeout(); got != 50*time.Millisecond {
		t.Errorf("SendTimeout(): got %s, want 50ms", got)
	}

	// The dispatcher ends each send by the sink's timeout (SendTimeout),
	// and by its own send timeout when that is shorter: the error names
	// whichever bound the attempt.
	for _, bound := range []time.Duration{50 * time.Millisecond, 30 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(t.Context(), bound)
		err = s.Send(ctx, newEvent())
		cancel()
		if err == nil || consumers.IsPermanent(err) {
			t.Fatalf("Send() within %s: got %v, want a retryable error", bound, err)
		}
		_, after, ok := strings.Cut(err.Error(), "no response within ")
		named, perr := time.ParseDuration(strings.SplitN(after, ":", 2)[0])
		if !ok || perr != nil || named > bound || named < bound-10*time.Millisecond {
			t.Errorf("Send() within %s: error %q, want it to name that bound", bound, err)
		}
	}
}

// TestConnectionReuse checks that responses are drained, so that sequential
// sends share a connection instead of dialling each time.
func TestConnectionReuse(t *testing.T) {
	var conns atomic.Int32
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Alternate bodies that the sink must read past: a success with a
		// body, and a rejection longer than the quoted snippet.
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, strings.Repeat("x", 3000))
			return
		}
		_, _ = io.WriteString(w, `{"accepted":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	s := newSink(t, httpsink.Config{URL: srv.URL})
	const sends = 20
	for range sends {
		_ = s.Send(t.Context(), newEvent())
	}
	// Reuse is typically one connection; the transport may race a spare dial
	// against a connection coming back idle, so allow some slack.
	if got := conns.Load(); got > sends/4 {
		t.Errorf("connections for %d sequential sends: got %d, want them reused (at most %d)", sends, got, sends/4)
	}
}

func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)
	for _, mode := range []string{httpsink.ModeBinary, httpsink.ModeStructured} {
		b.Run(mode, func(b *testing.B) {
			s := newSink(b, httpsink.Config{URL: srv.URL, Mode: mode})
			ev := newEvent()
			ev.DataEncoded = []byte(`{"Key":4242,"ChainId":4242,"CreatedTime":"2026-01-02T03:04:05Z","UserName":"VSPHERE.LOCAL\\Administrator","Vm":{"Name":"prod-web-01","Vm":{"Type":"VirtualMachine","Value":"vm-42"}},"Host":{"Name":"esx-01.lab","Host":{"Type":"HostSystem","Value":"host-7"}},"FullFormattedMessage":"prod-web-01 on esx-01.lab in DC-01 is powered on"}`)
			b.ReportAllocs()
			b.SetParallelism(16) // GOMAXPROCS × 16 concurrent sends, like a busy route
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Send(b.Context(), ev); err != nil {
						b.Errorf("Send(): got error %v, want nil", err)
						return
					}
				}
			})
		})
	}
}

func TestSendToAndRetryableStatus(t *testing.T) {
	var paths sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.RequestURI(), true)
		switch r.URL.Path {
		case "/missing":
			http.Error(w, "no revision yet", http.StatusNotFound)
		case "/conflict":
			http.Error(w, "busy", http.StatusConflict)
		case "/gone":
			http.Error(w, "gone", http.StatusGone)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(srv.Close)
	s := newSink(t, httpsink.Config{URL: srv.URL + "/configured"},
		httpsink.WithRetryableStatus(http.StatusNotFound, http.StatusConflict))

	tests := []struct {
		name          string
		path          string
		wantErr       bool
		wantPermanent bool
	}{
		{name: "delivered to the given target", path: "/hello?filter=test"},
		{name: "404 made retryable", path: "/missing", wantErr: true},
		{name: "409 made retryable", path: "/conflict", wantErr: true},
		{name: "other 4xx stays permanent", path: "/gone", wantErr: true, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			err = s.SendTo(t.Context(), u, newEvent())
			if (err != nil) != tt.wantErr || consumers.IsPermanent(err) != tt.wantPermanent {
				t.Fatalf("SendTo(%s): got %v (permanent %v), want error %v, permanent %v",
					tt.path, err, consumers.IsPermanent(err), tt.wantErr, tt.wantPermanent)
			}
			if _, ok := paths.Load(tt.path); !ok {
				t.Errorf("server did not get a request for %s", tt.path)
			}
		})
	}
	if _, ok := paths.Load("/configured"); ok {
		t.Errorf("SendTo sent to the configured URL, want only the given targets")
	}

	err := s.SendTo(t.Context(), &url.URL{Path: "/relative"}, newEvent())
	if !consumers.IsPermanent(err) {
		t.Errorf("SendTo(a relative URL): got %v, want a permanent error", err)
	}
}

// TestConnectionReuseEmptyAnswer checks that sends answered with no body,
// which the sink does not drain, still share a connection, and that a
// chunked answer of unknown length is drained.
func TestConnectionReuseEmptyAnswer(t *testing.T) {
	var conns, n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok")
		w.(http.Flusher).Flush() // a chunked body: length unknown
		_, _ = io.WriteString(w, " and more")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	s := newSink(t, httpsink.Config{URL: srv.URL, Mode: httpsink.ModeStructured})
	const sends = 20
	for range sends {
		if err := s.Send(t.Context(), newEvent()); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if got := conns.Load(); got > sends/4 {
		t.Errorf("connections for %d sequential sends: got %d, want them reused (at most %d)", sends, got, sends/4)
	}
}
