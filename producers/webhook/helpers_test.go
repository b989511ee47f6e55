package webhook_test

import (
	"context"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/webhook"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// recorder is a producers.Publisher that keeps what it was given. With err
// set it fails every call instead; with block set it waits for block (or
// ctx) before answering, after signalling entered.
type recorder struct {
	err     error
	entered chan struct{} // optional, receives once per call
	block   chan struct{} // optional

	mu    sync.Mutex
	calls [][]event.Event
	ctxs  []context.Context
}

func (r *recorder) Publish(ctx context.Context, recs ...producers.Record) error {
	r.mu.Lock()
	r.ctxs = append(r.ctxs, ctx)
	r.mu.Unlock()
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	evs := make([]event.Event, len(recs))
	for i := range recs {
		evs[i] = recs[i].Event
	}
	r.calls = append(r.calls, evs)
	return nil
}

// fail makes every later Publish call return err.
func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// contexts returns the context of every Publish call so far.
func (r *recorder) contexts() []context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ctxs)
}

// published returns every event stored so far, in order.
func (r *recorder) published() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event.Event
	for _, c := range r.calls {
		out = append(out, c...)
	}
	return out
}

// serve starts an httptest server on 127.0.0.1:0 with the handler of a
// Source built from cfg.
func serve(t *testing.T, cfg webhook.Config, pub *recorder, opts ...webhook.Option) *httptest.Server {
	t.Helper()
	src, err := webhook.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	srv := httptest.NewServer(src.Handler(pub))
	t.Cleanup(srv.Close)
	return srv
}

// request is an HTTP request in a test table.
type request struct {
	method string // default POST
	path   string // default "/"
	header map[string]string
	body   string
	// chunked hides the length, so only http.MaxBytesReader can catch a
	// body that is too large.
	chunked bool
}

func (rq request) do(t *testing.T, baseURL string) (*http.Response, string) {
	t.Helper()
	method, path := rq.method, rq.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/"
	}
	var body io.Reader = strings.NewReader(rq.body)
	if rq.chunked {
		body = struct{ io.Reader }{body}
	}
	req, err := http.NewRequestWithContext(t.Context(), method, baseURL+path, body)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp, string(b)
}

// golden compares got with testdata/name.golden, or rewrites the file with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("response differs from %s (run with -update to accept):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// writeSecret writes value to a file in a temporary directory and returns
// its path, for secret.Ref{FromFile: ...}.
func writeSecret(t *testing.T, value string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
