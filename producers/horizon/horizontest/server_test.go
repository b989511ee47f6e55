package horizontest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/producers/horizon/horizontest"
)

// api is a bare client of the fake, as a test would write one.
type api struct {
	t    *testing.T
	s    *horizontest.Server
	hc   *http.Client
	base string
}

func newAPI(t *testing.T, s *horizontest.Server) *api {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return &api{t: t, s: s, hc: hc, base: s.URL()}
}

func (a *api) post(path string, body any) (int, map[string]string) {
	a.t.Helper()
	b, _ := json.Marshal(body)
	res, err := a.hc.Post(a.base+path, "application/json", bytes.NewReader(b))
	if err != nil {
		a.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	var out map[string]string
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

func (a *api) login() (access, refresh string) {
	a.t.Helper()
	code, body := a.post("/rest/login", map[string]string{
		"domain": horizontest.Domain, "username": horizontest.Username, "password": horizontest.Password,
	})
	if code != http.StatusOK || body["access_token"] == "" || body["refresh_token"] == "" {
		a.t.Fatalf("login: got %d %v, want 200 with both tokens", code, body)
	}
	return body["access_token"], body["refresh_token"]
}

// events asks for audit events with the given query; it returns the status,
// the events, the HAS_MORE_RECORDS header and the error body.
func (a *api) events(token string, q url.Values) (int, []horizontest.Event, string, map[string]string) {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.base+horizontest.AuditEventsPath+"?"+q.Encode(), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatalf("GET audit-events: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		var e map[string]string
		if err := json.Unmarshal(raw, &e); err != nil || e["error_key"] == "" || e["error_message"] == "" {
			a.t.Errorf("HTTP %d body %s: want an APIError body with error_key and error_message", res.StatusCode, raw)
		}
		return res.StatusCode, nil, res.Header.Get(horizontest.HeaderHasMore), e
	}
	var evs []horizontest.Event
	if err := json.Unmarshal(raw, &evs); err != nil {
		a.t.Fatalf("audit-events body %s: %v", raw, err)
	}
	return res.StatusCode, evs, res.Header.Get(horizontest.HeaderHasMore), nil
}

func between(from, to int64) string {
	return fmt.Sprintf(`{"type":"Between","name":"time","fromValue":%d,"toValue":%d}`, from, to)
}

func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func ids(evs []horizontest.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func TestLoginRefreshLogout(t *testing.T) {
	s := horizontest.New(t)
	a := newAPI(t, s)

	if code, body := a.post("/rest/login", map[string]string{"domain": "corp", "username": "vrelay", "password": "wrong"}); code != http.StatusUnauthorized || body["error_key"] == "" {
		t.Errorf("wrong password: got %d %v, want 401 with an APIError body", code, body)
	}
	if code, _ := a.post("/rest/login", map[string]string{"username": "vrelay", "password": "x"}); code != http.StatusBadRequest {
		t.Errorf("no domain: got %d, want 400", code)
	}
	// Domain and user name compare without regard to case.
	if code, _ := a.post("/rest/login", map[string]string{"domain": "CORP", "username": "VRelay", "password": horizontest.Password}); code != http.StatusOK {
		t.Errorf("upper-case domain and user: got %d, want 200", code)
	}
	access, refresh := a.login()
	if code, _, _, _ := a.events(access, nil); code != http.StatusOK {
		t.Fatalf("events with a fresh token: got %d, want 200", code)
	}

	code, body := a.post("/rest/refresh", map[string]string{"refresh_token": refresh})
	if code != http.StatusOK || body["access_token"] == "" || body["access_token"] == access {
		t.Fatalf("refresh: got %d %v, want 200 with a new access token", code, body)
	}
	s.ExpireAccessTokens()
	if code, _, _, _ := a.events(body["access_token"], nil); code != http.StatusUnauthorized {
		t.Errorf("events with an expired access token: got %d, want 401", code)
	}
	code, body = a.post("/rest/refresh", map[string]string{"refresh_token": refresh})
	if code != http.StatusOK {
		t.Fatalf("refresh after access expiry: got %d, want 200", code)
	}
	if code, _, _, _ := a.events(body["access_token"], nil); code != http.StatusOK {
		t.Errorf("events with the refreshed token: got %d, want 200", code)
	}

	s.ExpireRefreshTokens()
	if code, _ := a.post("/rest/refresh", map[string]string{"refresh_token": refresh}); code != http.StatusBadRequest {
		t.Errorf("refresh with an expired refresh token: got %d, want 400", code)
	}
	if code, _ := a.post("/rest/logout", map[string]string{"refresh_token": refresh}); code != http.StatusBadRequest {
		t.Errorf("logout with an expired refresh token: got %d, want 400", code)
	}
	access, refresh = a.login()
	if code, _ := a.post("/rest/logout", map[string]string{"refresh_token": refresh}); code != http.StatusOK {
		t.Errorf("logout: got %d, want 200", code)
	}
	if code, _, _, _ := a.events(access, nil); code != http.StatusUnauthorized {
		t.Errorf("events after logout: got %d, want 401", code)
	}

	want := horizontest.Counts{Logins: 3, FailedLogins: 2, Refreshes: 2, FailedRefreshes: 1, Logouts: 1, AuditRequests: 4, Unauthorized: 2}
	if got := s.Counts(); got != want {
		t.Errorf("got counts %+v, want %+v", got, want)
	}
}

func TestTokenTTLs(t *testing.T) {
	s := horizontest.New(t, horizontest.WithPlainHTTP(), horizontest.WithTokenTTLs(50*time.Millisecond, 200*time.Millisecond))
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || s.CAFile() != "" || s.CertPool() != nil {
		t.Fatalf("plain server: got URL %s, CA file %q", s.URL(), s.CAFile())
	}
	a := newAPI(t, s)
	access, refresh := a.login()

	// The token carries its expiry, as Horizon's JWTs do.
	parts := strings.Split(access, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a JWT", access)
	}
	var claims struct{ Iat, Exp float64 }
	if b, err := decodeSegment(parts[1]); err != nil || json.Unmarshal(b, &claims) != nil || claims.Exp-claims.Iat < 0.04 || claims.Exp-claims.Iat > 0.06 {
		t.Errorf("got claims %+v (%v), want exp 50ms after iat", claims, err)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, _, _ := a.events(access, nil)
		if code == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("access token never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		code, _ := a.post("/rest/refresh", map[string]string{"refresh_token": refresh})
		if code == http.StatusBadRequest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("refresh token never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAuditEventsPagingAndOrder(t *testing.T) {
	s := horizontest.New(t)
	a := newAPI(t, s)
	access, _ := a.login()

	// Three events sharing a millisecond between two single ones, and one
	// more later.
	stored := s.Add(
		horizontest.Event{Time: 1000, Type: "A"},
		horizontest.Event{Time: 2000, Type: "B"},
		horizontest.Event{Time: 2000, Type: "C"},
		horizontest.Event{Time: 2000, Type: "D"},
		horizontest.Event{Time: 3000, Type: "E"},
		horizontest.Event{Time: 9000, Type: "F"},
	)
	id := ids(stored)
	for i := 1; i < len(id); i++ {
		if id[i] <= id[i-1] {
			t.Fatalf("ids %v do not grow", id)
		}
	}

	// Newest first; a millisecond's events in ascending id order.
	code, evs, more, _ := a.events(access, query("filter", between(0, 100000)))
	if want := []int64{id[5], id[4], id[1], id[2], id[3], id[0]}; code != http.StatusOK || !slices.Equal(ids(evs), want) || more != "" {
		t.Errorf("all: got %d %v more %q, want 200 %v and no HAS_MORE_RECORDS", code, ids(evs), more, want)
	}
	// Between includes both ends.
	_, evs, _, _ = a.events(access, query("filter", between(2000, 3000)))
	if want := []int64{id[4], id[1], id[2], id[3]}; !slices.Equal(ids(evs), want) {
		t.Errorf("Between 2000 and 3000: got %v, want %v", ids(evs), want)
	}
	// Pages.
	var pages [][]int64
	var mores []string
	for page := 1; page <= 3; page++ {
		_, evs, more, _ := a.events(access, query("filter", between(1000, 3000), "page", fmt.Sprint(page), "size", "2"))
		pages = append(pages, ids(evs))
		mores = append(mores, more)
	}
	wantPages := [][]int64{{id[4], id[1]}, {id[2], id[3]}, {id[0]}}
	for i := range wantPages {
		if !slices.Equal(pages[i], wantPages[i]) {
			t.Errorf("page %d: got %v, want %v", i+1, pages[i], wantPages[i])
		}
	}
	if want := []string{"TRUE", "TRUE", "FALSE"}; !slices.Equal(mores, want) {
		t.Errorf("got HAS_MORE_RECORDS %v, want %v", mores, want)
	}
	// Other filters.
	and := `{"type":"And","filters":[` + between(0, 5000) + `,{"type":"NotEquals","name":"type","value":"C"}]}`
	_, evs, _, _ = a.events(access, query("filter", and))
	if want := []int64{id[4], id[1], id[3], id[0]}; !slices.Equal(ids(evs), want) {
		t.Errorf("And: got %v, want %v", ids(evs), want)
	}
	or := fmt.Sprintf(`{"type":"Or","filters":[{"type":"Equals","name":"id","value":%d},{"type":"Equals","name":"type","value":"F"}]}`, id[0])
	_, evs, _, _ = a.events(access, query("filter", or))
	if want := []int64{id[5], id[0]}; !slices.Equal(ids(evs), want) {
		t.Errorf("Or: got %v, want %v", ids(evs), want)
	}
}

func TestAuditEventsRejectsBadParameters(t *testing.T) {
	s := horizontest.New(t, horizontest.WithPlainHTTP())
	a := newAPI(t, s)
	access, _ := a.login()
	tests := []struct {
		name string
		q    url.Values
	}{
		{"filter not JSON", query("filter", "time>5")},
		{"filter without type", query("filter", `{"name":"time"}`)},
		{"unknown filter type", query("filter", `{"type":"GreaterThan","name":"time","value":5}`)},
		{"unknown field", query("filter", `{"type":"Equals","name":"colour","value":"red"}`)},
		{"unknown member", query("filter", `{"type":"Equals","name":"type","value":"A","extra":1}`)},
		{"Between on a string field", query("filter", `{"type":"Between","name":"type","fromValue":1,"toValue":2}`)},
		{"Between without toValue", query("filter", `{"type":"Between","name":"time","fromValue":1}`)},
		{"Between with a fraction", query("filter", `{"type":"Between","name":"time","fromValue":1.5,"toValue":2}`)},
		{"Between backwards", query("filter", between(5, 4))},
		{"And without filters", query("filter", `{"type":"And","filters":[]}`)},
		{"page 0", query("page", "0", "size", "10")},
		{"page not a number", query("page", "one")},
		{"size 0", query("size", "0")},
		{"size over 1000", query("page", "1", "size", "1001")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, _, _ := a.events(access, tt.q); code != http.StatusBadRequest {
				t.Errorf("got %d, want 400", code)
			}
		})
	}
}

func TestInjectedFailures(t *testing.T) {
	s := horizontest.New(t)
	a := newAPI(t, s)
	access, _ := a.login()
	s.FailNext(1, http.StatusConflict, nil)
	s.Throttle(1, 7)
	s.FailNext(1, http.StatusInternalServerError, http.Header{"X-Extra": {"1"}})

	if code, _, _, _ := a.events(access, nil); code != http.StatusConflict {
		t.Errorf("first: got %d, want 409", code)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL()+horizontest.AuditEventsPath, nil)
	res, err := a.hc.Do(req) // no token: the failure comes first
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get(horizontest.HeaderRetryAfter) != "7" {
		t.Errorf("second: got %d with %s %q, want 429 with 7", res.StatusCode, horizontest.HeaderRetryAfter, res.Header.Get(horizontest.HeaderRetryAfter))
	}
	if code, _, _, _ := a.events(access, nil); code != http.StatusInternalServerError {
		t.Errorf("third: got %d, want 500", code)
	}
	if code, _, _, _ := a.events(access, nil); code != http.StatusOK {
		t.Errorf("fourth: got %d, want 200", code)
	}

	// A slow answer comes late; one that the client gives up on does not
	// hold the server.
	s.SlowNext(1, 50*time.Millisecond)
	if code, _, _, _ := a.events(access, nil); code != http.StatusOK || s.Counts().Delayed != 1 {
		t.Errorf("slow answer: got %d and %d delayed, want 200 after a delay", code, s.Counts().Delayed)
	}
	s.SlowNext(1, time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+horizontest.AuditEventsPath, nil)
	req.Header.Set("Authorization", "Bearer "+access)
	errc := make(chan error, 1)
	go func() {
		res, err := a.hc.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for s.Counts().Delayed < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; err == nil {
		t.Error("the hour-long answer came")
	}
	if code, _, _, _ := a.events(access, nil); code != http.StatusOK {
		t.Errorf("after the slow ones: got %d, want 200", code)
	}
	if c := s.Counts(); c.Injected != 3 || c.AuditRequests != 7 || c.Delayed != 2 {
		t.Errorf("got counts %+v, want 3 injected and 2 delayed of 7 audit requests", c)
	}

	s.SetPassword("new-password")
	if code, _ := a.post("/rest/login", map[string]string{"domain": horizontest.Domain, "username": horizontest.Username, "password": horizontest.Password}); code != http.StatusUnauthorized {
		t.Errorf("old password after SetPassword: got %d, want 401", code)
	}
}

func TestAddNAndBacklog(t *testing.T) {
	s := horizontest.New(t, horizontest.WithPlainHTTP())
	before := time.Now().UnixMilli()
	backlog := s.Backlog(10, 3, "OLD")
	after := time.Now().UnixMilli()
	checkRun(t, backlog, "OLD", 4)
	if backlog[0].Time < before-4 || backlog[9].Time >= after {
		t.Errorf("backlog from %d to %d, want 4 milliseconds ending before %d", backlog[0].Time, backlog[9].Time, after)
	}
	before = time.Now().UnixMilli()
	live := s.AddN(10, 3, "NEW")
	checkRun(t, live, "NEW", 4)
	if live[0].Time < before || live[0].Time <= backlog[9].Time {
		t.Errorf("live events begin at %d, want from now (%d) and after the backlog (%d)", live[0].Time, before, backlog[9].Time)
	}
	// A backlog never goes before what is stored.
	more := s.Backlog(2, 1, "OLD")
	if more[0].Time <= live[9].Time {
		t.Errorf("second backlog at %d, not after %d", more[0].Time, live[9].Time)
	}
	if got := len(s.Events()); got != 22 {
		t.Errorf("got %d stored events, want 22", got)
	}
}

// checkRun checks events of one AddN or Backlog call.
func checkRun(t *testing.T, evs []horizontest.Event, typ string, millis int) {
	t.Helper()
	perMilli := map[int64]int{}
	for i, ev := range evs {
		perMilli[ev.Time]++
		if i > 0 && (ev.ID <= evs[i-1].ID || ev.Time < evs[i-1].Time) {
			t.Errorf("event %d (%d at %d) does not follow %d at %d", i, ev.ID, ev.Time, evs[i-1].ID, evs[i-1].Time)
		}
		if ev.Type != typ {
			t.Errorf("got type %q, want %q", ev.Type, typ)
		}
	}
	if len(perMilli) != millis {
		t.Errorf("got milliseconds %v, want %d", perMilli, millis)
	}
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}
