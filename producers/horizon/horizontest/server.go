package horizontest

import (
	"cmp"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Credentials the fake accepts unless [WithCredentials] says otherwise.
const (
	Domain   = "corp"
	Username = "vrelay"
	Password = "horizon-test-password"
)

// API facts the fake shares with its clients.
const (
	// MaxPageSize is the largest size the audit-events endpoint accepts.
	MaxPageSize = 1000
	// HeaderHasMore says whether more pages follow: TRUE or FALSE.
	HeaderHasMore = "HAS_MORE_RECORDS"
	// HeaderRetryAfter is the number of seconds a throttled client waits.
	HeaderRetryAfter = "X-Rate-Limit-Retry-After-Seconds"
	// AuditEventsPath is the audit-events endpoint.
	AuditEventsPath = "/rest/external/v1/audit-events"
)

// Event is one AuditEventSummary. The JSON field order is that of the
// records Horizon returns.
type Event struct {
	ID                  int64  `json:"id"`
	UserID              string `json:"user_id,omitempty"`
	Type                string `json:"type,omitempty"`
	Severity            string `json:"severity,omitempty"`
	Module              string `json:"module,omitempty"`
	MachineDNSName      string `json:"machine_dns_name,omitempty"`
	Time                int64  `json:"time"`
	Message             string `json:"message,omitempty"`
	MachineID           string `json:"machine_id,omitempty"`
	DesktopPoolName     string `json:"desktop_pool_name,omitempty"`
	ApplicationPoolName string `json:"application_pool_name,omitempty"`
}

// Counts is what the fake has seen since it started.
type Counts struct {
	Logins          int // successful logins
	FailedLogins    int // logins answered 400 or 401
	Refreshes       int // successful refreshes
	FailedRefreshes int // refreshes answered 400
	Logouts         int // successful logouts
	AuditRequests   int // requests to the audit-events endpoint, answered or not
	Unauthorized    int // audit-events requests answered 401
	Injected        int // audit-events requests answered with an injected failure
	Delayed         int // audit-events requests held back by SlowNext
	MaxPage         int // the highest page number an answered request asked for
}

// Option configures a [Server].
type Option func(*Server)

// WithPlainHTTP serves http:// instead of https://.
func WithPlainHTTP() Option { return func(s *Server) { s.plain = true } }

// WithCredentials sets the domain, user name and password that log in.
func WithCredentials(domain, username, password string) Option {
	return func(s *Server) { s.domain, s.username, s.password = domain, username, password }
}

// WithTokenTTLs sets how long access and refresh tokens live (default 30
// minutes and 8 hours, Horizon's). Zero keeps a default.
func WithTokenTTLs(access, refresh time.Duration) Option {
	return func(s *Server) {
		if access > 0 {
			s.accessTTL = access
		}
		if refresh > 0 {
			s.refreshTTL = refresh
		}
	}
}

// Server is a fake Horizon Connection Server. Its methods are safe for
// concurrent use, also while clients call it.
type Server struct {
	srv    *httptest.Server
	plain  bool
	caFile string

	mu                         sync.Mutex
	domain, username, password string
	accessTTL, refreshTTL      time.Duration
	events                     []Event // ascending by (time, id)
	nextID                     int64
	access                     map[string]accessToken
	refresh                    map[string]time.Time // expiry
	failures                   []failure
	delays                     []time.Duration
	counts                     Counts
}

type accessToken struct {
	refresh string // the refresh token it was issued under
	expiry  time.Time
}

type failure struct {
	status int
	header http.Header
}

// New starts a fake on 127.0.0.1 with a free port, closed when the test
// ends. It serves TLS with a certificate for 127.0.0.1 unless
// [WithPlainHTTP]; [Server.CAFile] and [Server.CertPool] verify it.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		domain: Domain, username: Username, password: Password,
		accessTTL:  30 * time.Minute,
		refreshTTL: 8 * time.Hour,
		nextID:     1000,
		access:     make(map[string]accessToken),
		refresh:    make(map[string]time.Time),
	}
	for _, o := range opts {
		o(s)
	}
	h := http.HandlerFunc(s.serve)
	if s.plain {
		s.srv = httptest.NewServer(h)
	} else {
		s.srv = httptest.NewTLSServer(h)
		s.caFile = filepath.Join(t.TempDir(), "horizon-ca.pem")
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
		if err := os.WriteFile(s.caFile, cert, 0o600); err != nil {
			s.srv.Close()
			t.Fatalf("horizontest: write CA file: %v", err)
		}
	}
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the server's base URL, such as https://127.0.0.1:40123: the
// address a client is configured with.
func (s *Server) URL() string { return s.srv.URL }

// Host is the host:port of URL, which a client names its events by.
func (s *Server) Host() string {
	u, _ := url.Parse(s.srv.URL)
	return u.Host
}

// CAFile is a PEM file of the certificate the server presents; "" with
// [WithPlainHTTP].
func (s *Server) CAFile() string { return s.caFile }

// CertPool holds the certificate the server presents; nil with
// [WithPlainHTTP].
func (s *Server) CertPool() *x509.CertPool {
	if s.plain {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// Close stops the server; New arranges it at the end of the test.
func (s *Server) Close() { s.srv.Close() }

// Add stores events. An event without an ID gets the next one (ids only
// grow, as the event database's do); an event without a Time gets the
// current time. It returns the events as stored.
func (s *Server) Add(evs ...Event) []Event {
	now := time.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(evs))
	for i, ev := range evs {
		if ev.ID == 0 {
			s.nextID++
			ev.ID = s.nextID
		} else {
			s.nextID = max(s.nextID, ev.ID)
		}
		if ev.Time == 0 {
			ev.Time = now
		}
		out[i] = ev
		s.insert(ev)
	}
	return out
}

// AddN stores n events of type typ as they happen: perMilli of them share
// each millisecond, on consecutive milliseconds from the current time on,
// or from just after the newest event stored when that is later. So they
// may lie a little in the future, and a reader that has begun before the
// call misses none of them. It returns them oldest first.
func (s *Server) AddN(n, perMilli int, typ string) []Event {
	return s.addRun(n, perMilli, typ, false)
}

// Backlog stores n events of type typ that happened before now: perMilli
// of them share each millisecond, on consecutive milliseconds that end a
// millisecond ago, but begin no earlier than just after the newest event
// stored. Add them before a reader starts, with a position before them.
// It returns them oldest first.
func (s *Server) Backlog(n, perMilli int, typ string) []Event {
	return s.addRun(n, perMilli, typ, true)
}

func (s *Server) addRun(n, perMilli int, typ string, past bool) []Event {
	if n <= 0 {
		return nil
	}
	perMilli = max(perMilli, 1)
	groups := int64((n + perMilli - 1) / perMilli)
	now := time.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	start := now
	if past {
		start = now - groups
	}
	if k := len(s.events); k > 0 {
		start = max(start, s.events[k-1].Time+1)
	}
	out := make([]Event, n)
	for i := range out {
		s.nextID++
		ev := Event{
			ID:             s.nextID,
			Type:           typ,
			Severity:       "AUDIT_SUCCESS",
			Module:         "Vlsi",
			MachineDNSName: "horizon-01.corp.local",
			Time:           start + int64(i/perMilli),
			Message:        "event " + strconv.FormatInt(s.nextID, 10),
		}
		out[i] = ev
		s.insert(ev)
	}
	return out
}

// insert keeps s.events sorted by (time, id); most events come last.
func (s *Server) insert(ev Event) {
	i, _ := slices.BinarySearchFunc(s.events, ev, compareEvents)
	s.events = slices.Insert(s.events, i, ev)
}

func compareEvents(a, b Event) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Events returns every stored event, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// FailNext answers the next n audit-events requests with status and the
// given headers (may be nil) and an APIError body, before looking at their
// token or parameters.
func (s *Server) FailNext(n, status int, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, header: header.Clone()})
	}
}

// Throttle answers the next n audit-events requests 429 with
// X-Rate-Limit-Retry-After-Seconds set to retryAfter, as Horizon 2406 and
// later do when a client exceeds the API's rate limit.
func (s *Server) Throttle(n, retryAfter int) {
	h := http.Header{}
	h.Set(HeaderRetryAfter, strconv.Itoa(retryAfter))
	s.FailNext(n, http.StatusTooManyRequests, h)
}

// SlowNext makes the next n audit-events requests wait d before they are
// handled (or until the client gives up).
func (s *Server) SlowNext(n int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.delays = append(s.delays, d)
	}
}

// ExpireAccessTokens makes every access token issued so far invalid, as
// if its 30 minutes had passed: the next request with one gets 401.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

// ExpireRefreshTokens makes every refresh token (and every access token)
// issued so far invalid: the next refresh gets 400.
func (s *Server) ExpireRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
	clear(s.refresh)
}

// SetPassword changes the password that logs in. Tokens already issued
// stay valid, as they do on Horizon.
func (s *Server) SetPassword(password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.password = password
}

// Counts returns what the server has seen so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}
