package horizontest

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/rest/login":
		s.post(w, r, s.login)
	case "/rest/refresh":
		s.post(w, r, s.refreshToken)
	case "/rest/logout":
		s.post(w, r, s.logout)
	case AuditEventsPath:
		if r.Method != http.MethodGet {
			apiError(w, http.StatusMethodNotAllowed, "method.not.allowed", "only GET is supported")
			return
		}
		s.auditEvents(w, r)
	default:
		apiError(w, http.StatusNotFound, "resource.not.found", "no such resource: "+r.URL.Path)
	}
}

// post decodes a JSON request body into a map of strings and hands it on.
func (s *Server) post(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, map[string]string)) {
	if r.Method != http.MethodPost {
		apiError(w, http.StatusMethodNotAllowed, "method.not.allowed", "only POST is supported")
		return
	}
	var body map[string]string
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(b, &body)
	}
	if err != nil {
		apiError(w, http.StatusBadRequest, "request.body.invalid", "the request body is not a JSON object of strings")
		return
	}
	h(w, body)
}

func (s *Server) login(w http.ResponseWriter, body map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	domain, user, pw := body["domain"], body["username"], body["password"]
	if domain == "" || user == "" || pw == "" {
		s.counts.FailedLogins++
		apiError(w, http.StatusBadRequest, "login.fields.required", "domain, username and password are required")
		return
	}
	if !strings.EqualFold(domain, s.domain) || !strings.EqualFold(user, s.username) || pw != s.password {
		s.counts.FailedLogins++
		apiError(w, http.StatusUnauthorized, "login.invalid.credentials", "invalid user name, password or domain")
		return
	}
	s.counts.Logins++
	now := time.Now()
	refresh := newToken("refresh token", now, s.refreshTTL)
	s.refresh[refresh] = now.Add(s.refreshTTL)
	access := newToken("access token", now, s.accessTTL)
	s.access[access] = accessToken{refresh: refresh, expiry: now.Add(s.accessTTL)}
	writeJSON(w, http.StatusOK, map[string]string{"access_token": access, "refresh_token": refresh})
}

func (s *Server) refreshToken(w http.ResponseWriter, body map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refresh := body["refresh_token"]
	now := time.Now()
	if exp, ok := s.refresh[refresh]; !ok || !now.Before(exp) {
		delete(s.refresh, refresh)
		s.counts.FailedRefreshes++
		apiError(w, http.StatusBadRequest, "refresh.token.invalid", "the refresh token is invalid or expired: log in again")
		return
	}
	s.counts.Refreshes++
	access := newToken("access token", now, s.accessTTL)
	s.access[access] = accessToken{refresh: refresh, expiry: now.Add(s.accessTTL)}
	writeJSON(w, http.StatusOK, map[string]string{"access_token": access})
}

func (s *Server) logout(w http.ResponseWriter, body map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refresh := body["refresh_token"]
	if exp, ok := s.refresh[refresh]; !ok || !time.Now().Before(exp) {
		apiError(w, http.StatusBadRequest, "refresh.token.invalid", "the refresh token is invalid or expired")
		return
	}
	delete(s.refresh, refresh)
	for tok, a := range s.access {
		if a.refresh == refresh {
			delete(s.access, tok)
		}
	}
	s.counts.Logouts++
	w.WriteHeader(http.StatusOK)
}

func (s *Server) auditEvents(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts.AuditRequests++
	var delay time.Duration
	if len(s.delays) > 0 {
		delay, s.delays = s.delays[0], s.delays[1:]
		s.counts.Delayed++
	}
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// The client gave up: answer nothing, rather than the empty
			// 200 net/http would send for a handler that returns.
			t.Stop()
			panic(http.ErrAbortHandler)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		s.counts.Injected++
		for k, v := range f.header {
			w.Header()[k] = v
		}
		apiError(w, f.status, "injected.failure", fmt.Sprintf("injected failure (HTTP %d)", f.status))
		return
	}
	if !s.authorized(r) {
		s.counts.Unauthorized++
		apiError(w, http.StatusUnauthorized, "token.invalid", "the access token is missing, invalid or expired")
		return
	}
	q := r.URL.Query()
	var sel selection = timeRange{events: s.events}
	if f := q.Get("filter"); f != "" {
		var err error
		if sel, err = s.selectEvents(f); err != nil {
			apiError(w, http.StatusBadRequest, "filter.invalid", "invalid filter: "+err.Error())
			return
		}
	}
	page, size, paged, err := pageParams(q.Get("page"), q.Get("size"))
	if err != nil {
		apiError(w, http.StatusBadRequest, "pagination.invalid", err.Error())
		return
	}
	from, to := 0, sel.len()
	if paged {
		s.counts.MaxPage = max(s.counts.MaxPage, page)
		from = min((page-1)*size, to)
		to = min(from+size, to)
		w.Header().Set(HeaderHasMore, strings.ToUpper(strconv.FormatBool(to < sel.len())))
	}
	out := make([]Event, 0, to-from)
	for k := from; k < to; k++ {
		out = append(out, sel.at(k))
	}
	writeJSON(w, http.StatusOK, out)
}

// selection is the events a filter selects, in the order Horizon lists
// them: newest first, events sharing a millisecond in ascending id order,
// as the recorded sample has them.
type selection interface {
	len() int
	at(k int) Event // the k-th, from 0
}

// selectEvents compiles a filter. A plain Between on time, the filter a
// reader sends, selects a contiguous run of the stored events, which is
// paged without a scan; any other filter scans every event. s.mu is held.
func (s *Server) selectEvents(filter string) (selection, error) {
	f, err := parseFilter(filter)
	if err != nil {
		return nil, err
	}
	match, err := f.compile()
	if err != nil {
		return nil, err
	}
	if f.Type == "Between" && f.Name == "time" {
		from, _ := integer(f.FromValue)
		to, _ := integer(f.ToValue)
		lo, _ := slices.BinarySearchFunc(s.events, from, func(ev Event, t int64) int { return cmp.Compare(ev.Time, t) })
		hi, _ := slices.BinarySearchFunc(s.events, to+1, func(ev Event, t int64) int { return cmp.Compare(ev.Time, t) })
		return timeRange{events: s.events[lo:hi]}, nil
	}
	var all matched
	for i := len(s.events); i > 0; {
		g := timeRange{events: s.events}.group(i - 1)
		for _, ev := range s.events[g:i] {
			if match(ev) {
				all = append(all, ev)
			}
		}
		i = g
	}
	return all, nil
}

// timeRange is a run of stored events, ascending by (time, id).
type timeRange struct{ events []Event }

func (r timeRange) len() int { return len(r.events) }

// at finds the k-th newest: the k-th from the end in ascending order lies
// in some millisecond's group, within which the order is ascending again.
func (r timeRange) at(k int) Event {
	n := len(r.events)
	j := n - 1 - k
	lo := r.group(j)
	hi, _ := slices.BinarySearchFunc(r.events[j:], r.events[j].Time+1, func(ev Event, t int64) int { return cmp.Compare(ev.Time, t) })
	hi += j // first index after the group
	// The group holds newest-first positions n-hi .. n-lo-1.
	return r.events[lo+k-(n-hi)]
}

// group returns the first index of the millisecond that holds index j.
func (r timeRange) group(j int) int {
	lo, _ := slices.BinarySearchFunc(r.events[:j+1], r.events[j].Time, func(ev Event, t int64) int { return cmp.Compare(ev.Time, t) })
	return lo
}

// matched is the result of a scan, already in order.
type matched []Event

func (m matched) len() int       { return len(m) }
func (m matched) at(k int) Event { return m[k] }

// authorized reports whether r carries a live access token. s.mu is held.
func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, ok := s.access[tok]
	if !ok {
		return false
	}
	if !time.Now().Before(a.expiry) {
		delete(s.access, tok)
		return false
	}
	return true
}

// pageParams reads page and size. Without either, paged is false and every
// match is returned.
func pageParams(pageStr, sizeStr string) (page, size int, paged bool, err error) {
	if pageStr == "" && sizeStr == "" {
		return 0, 0, false, nil
	}
	page, size = 1, 10
	if pageStr != "" {
		if page, err = strconv.Atoi(pageStr); err != nil || page < 1 {
			return 0, 0, false, fmt.Errorf("page must be an integer > 0, got %q", pageStr)
		}
	}
	if sizeStr != "" {
		if size, err = strconv.Atoi(sizeStr); err != nil || size < 1 || size > MaxPageSize {
			return 0, 0, false, fmt.Errorf("size must be an integer from 1 to %d, got %q", MaxPageSize, sizeStr)
		}
	}
	return page, size, true, nil
}

// newToken returns a JWT-shaped token whose payload carries iat and exp, as
// Horizon's do. It is not signed in any verifiable way: the fake checks
// tokens by looking them up.
func newToken(kind string, now time.Time, ttl time.Duration) string {
	enc := base64.RawURLEncoding
	nonce := make([]byte, 18)
	_, _ = rand.Read(nonce)
	payload, _ := json.Marshal(map[string]any{
		"token type": kind,
		"iat":        float64(now.UnixMilli()) / 1000,
		"exp":        float64(now.Add(ttl).UnixMilli()) / 1000,
		"jti":        enc.EncodeToString(nonce[:9]),
	})
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(nonce)
}

// apiError answers with Horizon's APIError body.
func apiError(w http.ResponseWriter, status int, key, msg string) {
	writeJSON(w, status, map[string]string{"error_key": key, "error_message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
