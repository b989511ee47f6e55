package horizon

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/horizon/horizontest"
	"github.com/vrelay/vrelay/producers/sourcetest"
)

func jwt(claims map[string]any) string {
	enc := base64.RawURLEncoding
	b, _ := json.Marshal(claims)
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString(b) + ".c2ln"
}

func TestAccessTokenExpiry(t *testing.T) {
	now := time.Now()
	sec := func(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
	tests := []struct {
		name     string
		token    string
		expiring bool
		life     time.Duration
	}{
		{"fresh, 30 minutes", jwt(map[string]any{"iat": sec(now), "exp": sec(now.Add(30 * time.Minute))}), false, 30 * time.Minute},
		{"30 minutes, 30 seconds left", jwt(map[string]any{"iat": sec(now.Add(-29*time.Minute - 30*time.Second)), "exp": sec(now.Add(30 * time.Second))}), true, 30 * time.Minute},
		{"200ms life, 100ms left", jwt(map[string]any{"iat": sec(now.Add(-100 * time.Millisecond)), "exp": sec(now.Add(100 * time.Millisecond))}), false, 200 * time.Millisecond},
		{"200ms life, 10ms left", jwt(map[string]any{"iat": sec(now.Add(-190 * time.Millisecond)), "exp": sec(now.Add(10 * time.Millisecond))}), true, 200 * time.Millisecond},
		{"no iat, 30 seconds left", jwt(map[string]any{"exp": sec(now.Add(30 * time.Second))}), true, 0},
		{"expired", jwt(map[string]any{"iat": sec(now.Add(-time.Hour)), "exp": sec(now.Add(-time.Minute))}), true, 59 * time.Minute},
		{"not a JWT", "opaque-token", false, 0},
		{"no exp", jwt(map[string]any{"iat": sec(now)}), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c client
			c.setAccess(tt.token)
			if c.access != tt.token {
				t.Error("token not kept")
			}
			if got := c.expiring(); got != tt.expiring {
				t.Errorf("expiring() = %v, want %v", got, tt.expiring)
			}
			if d := c.accessLife - tt.life; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("got life %s, want %s", c.accessLife, tt.life)
			}
		})
	}
}

func TestClockSkew(t *testing.T) {
	recv := time.Date(2024, 5, 6, 7, 8, 9, 600_000_000, time.UTC)
	tests := []struct {
		name string
		date time.Time
		want time.Duration
	}{
		{"same clock, Date rounded down", recv.Truncate(time.Second), 0},
		{"Horizon 5s ahead", recv.Add(5 * time.Second).Truncate(time.Second), 5 * time.Second},
		{"Horizon 10s behind", recv.Add(-10 * time.Second).Truncate(time.Second), -10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c client
			c.observe(http.Header{"Date": {tt.date.Format(http.TimeFormat)}}, recv)
			if d := c.skew - tt.want; d < -time.Second || d > time.Second {
				t.Errorf("got skew %s, want about %s", c.skew, tt.want)
			}
		})
	}
	var c client
	c.skew = time.Hour
	c.observe(http.Header{}, recv)
	if c.skew != time.Hour {
		t.Error("an answer without Date changed the skew")
	}
}

func TestAnswerError(t *testing.T) {
	h := http.Header{}
	h.Set(headerRetryAfter, "7")
	err := answerError(opRead, http.StatusTooManyRequests, h, []byte(`{"error_key":"rate.limit","error_message":"too many requests"}`))
	const want = "read horizon audit events: HTTP 429 Too Many Requests: too many requests (rate.limit)"
	if err.Error() != want || retryAfter(err) != 7*time.Second || errorKind(err) != kindThrottled {
		t.Errorf("got %q, retry after %s, kind %s; want %q, 7s, throttled", err, retryAfter(err), errorKind(err), want)
	}
	h = http.Header{"Retry-After": {"2"}}
	err = answerError(opRead, http.StatusServiceUnavailable, h, []byte("<html>down</html>"))
	if err.Error() != "read horizon audit events: HTTP 503 Service Unavailable" || retryAfter(err) != 2*time.Second {
		t.Errorf("got %q, retry after %s", err, retryAfter(err))
	}
	h = http.Header{"Retry-After": {"100000"}}
	if d := retryAfter(answerError(opRead, 429, h, nil)); d != maxRetryAfter {
		t.Errorf("got retry after %s, want the cap %s", d, maxRetryAfter)
	}
}

func TestErrorKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&apiError{op: opLogin, status: 401}, kindLogin},
		{&apiError{op: opLogin, status: 400}, kindLogin},
		{&apiError{op: opLogin, status: 503}, kindServer},
		{&apiError{op: opRead, status: 401}, kindDenied},
		{&apiError{op: opRead, status: 403}, kindDenied},
		{&apiError{op: opRead, status: 409}, kindConflict},
		{&apiError{op: opRead, status: 429}, kindThrottled},
		{&apiError{op: opRead, status: 500}, kindServer},
		{&apiError{op: opRead, status: 400}, kindOther},
		{fmt.Errorf("x: %w", &url.Error{Op: "Get", URL: "https://hz", Err: errors.New("connection refused")}), kindNetwork},
		{&url.Error{Op: "Get", URL: "https://hz", Err: x509.UnknownAuthorityError{}}, kindTLS},
		{errors.New("something"), kindOther},
	}
	for _, tt := range tests {
		if got := errorKind(tt.err); got != tt.want {
			t.Errorf("errorKind(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

// testSource is a Source on the fake, built in this package to reach its
// internals.
func testSource(t *testing.T, hz *horizontest.Server, cfg Config, opts ...Option) *Source {
	t.Helper()
	t.Setenv("HZ_TEST_PASSWORD", horizontest.Password)
	cfg.Address, cfg.Domain, cfg.Username = hz.URL(), horizontest.Domain, horizontest.Username
	cfg.Password = secret.Ref{FromEnv: "HZ_TEST_PASSWORD"}
	cfg.CAFile = hz.CAFile()
	s, err := New(cfg, append([]Option{WithBackoff(10*time.Millisecond, 100*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRefreshAhead: a token about to expire is refreshed before it is
// used, not after a 401.
func TestRefreshAhead(t *testing.T) {
	hz := horizontest.New(t)
	c := testSource(t, hz, Config{}).newClient()
	ctx := t.Context()
	if _, _, err := c.get(ctx, opRead, auditPath, nil); err != nil {
		t.Fatal(err)
	}
	if c.accessExpiry.IsZero() || c.expiring() {
		t.Fatalf("the fake's token gives no expiry, or a fresh one is expiring (%s)", c.accessExpiry)
	}
	// As if 30 minutes had nearly passed.
	c.accessExpiry = time.Now().Add(time.Second)
	if _, _, err := c.get(ctx, opRead, auditPath, nil); err != nil {
		t.Fatal(err)
	}
	if got := hz.Counts(); got.Logins != 1 || got.Refreshes != 1 || got.Unauthorized != 0 {
		t.Errorf("got %+v, want 1 login, 1 refresh ahead of expiry and no 401", got)
	}
	c.logout(ctx)
	if got := hz.Counts(); got.Logouts != 1 || c.loggedIn() {
		t.Errorf("got %+v, want a logout", got)
	}
}

// memCheckpointer keeps checkpoints in memory.
type memCheckpointer struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *memCheckpointer) Load(_ context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[key]
	if !ok {
		return nil, producers.ErrNoCheckpoint
	}
	return b, nil
}

func (c *memCheckpointer) Save(_ context.Context, key string, value []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = value
	return nil
}

// TestNarrowedReads: a backlog larger than a read may hold is read in
// earlier spans first, still in order and each event once.
func TestNarrowedReads(t *testing.T) {
	hz := horizontest.New(t)
	evs := hz.Backlog(1000, 2, "X")
	cp := &memCheckpointer{m: map[string][]byte{}}
	b, _ := json.Marshal(newPosition(evs[0].Time-1).checkpoint(hz.URL(), hz.Host(), time.Now()))
	cp.m["horizon.hz01"] = b
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	s := testSource(t, hz, Config{PageSize: 100, PollInterval: 10 * time.Millisecond},
		WithName("hz01"), WithCheckpointer(cp), WithLogger(log))
	s.maxRead = 250

	rec := sourcetest.NewRecorder(0)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec) }()
	deadline := time.Now().Add(time.Minute)
	for len(rec.Records()) < len(evs) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run() = %v, want context.Canceled", err)
	}
	recs := rec.Records()
	if len(recs) != len(evs) {
		t.Fatalf("got %d records, want %d", len(recs), len(evs))
	}
	for i, r := range recs {
		if want := fmt.Sprintf("%s:%d", hz.Host(), evs[i].ID); r.MsgID != want {
			t.Fatalf("record %d is %s, want %s: out of order or repeated", i, r.MsgID, want)
		}
	}
	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if !strings.Contains(out, "too many horizon events to read at once") {
		t.Errorf("no narrowed read logged:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestNoRedirects: a redirect is an error, so the password never follows
// one.
func TestNoRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
	}))
	t.Cleanup(other.Close)
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirecting.Close)
	t.Setenv("HZ_TEST_PASSWORD", "secret")
	s, err := New(Config{Address: redirecting.URL, Domain: "corp", Username: "u", Password: secret.Ref{FromEnv: "HZ_TEST_PASSWORD"}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.newClient().login(t.Context())
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusTemporaryRedirect {
		t.Errorf("login through a redirect: got %v, want the 307 as an error", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests, want none", n)
	}
}

// TestRecordWithoutID: a record Horizon returns without an id is dropped
// and reported once, however often the reads return it, and the events
// around it are published.
func TestRecordWithoutID(t *testing.T) {
	start := time.Now().UnixMilli() + 1000
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case loginPath:
			fmt.Fprint(w, `{"access_token":"a","refresh_token":"r"}`)
		case auditPath:
			reads.Add(1)
			w.Header().Set(headerHasMore, "FALSE")
			fmt.Fprintf(w, `[{"id":2,"type":"B","time":%d},{"type":"NO_ID","time":%d},{"id":1,"type":"A","time":%d}]`, start, start, start)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("HZ_TEST_PASSWORD", "secret")
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	s, err := New(Config{Address: srv.URL, Domain: "corp", Username: "u", Password: secret.Ref{FromEnv: "HZ_TEST_PASSWORD"}, PollInterval: time.Millisecond},
		WithLogger(log), WithCheckpointer(&memCheckpointer{m: map[string][]byte{"horizon.horizon": []byte(fmt.Sprintf(`{"lastEventTime":%d}`, start-1))}}))
	if err != nil {
		t.Fatal(err)
	}
	rec := sourcetest.NewRecorder(0)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec) }()
	deadline := time.Now().Add(time.Minute)
	for (len(rec.Records()) < 2 || reads.Load() < 10) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	recs := rec.Records()
	if len(recs) != 2 || recs[0].Event.ID() != "1" || recs[1].Event.ID() != "2" {
		t.Errorf("got %d records, want events 1 and 2 in that order", len(recs))
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if n := strings.Count(out, "without an id or time"); n != 1 || reads.Load() < 10 {
		t.Errorf("the record without an id was reported %d times in %d reads, want once:\n%s", n, reads.Load(), out)
	}
}
