// Package ebtest is a fake Amazon EventBridge endpoint for tests: an
// httptest server that speaks the AWS JSON 1.1 protocol of PutEvents,
// validates requests as EventBridge does, answers each entry as a test
// scripts it, and records what it accepted.
//
//	srv := ebtest.NewServer(t)
//	srv.Entry = func(e ebtest.Entry) ebtest.Answer {
//		if e.Seq%3 == 0 {
//			return ebtest.Answer{ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded"}
//		}
//		return ebtest.Answer{}
//	}
//	cfg := eventbridge.Config{Region: "us-east-1", Endpoint: srv.URL, ...}
//
// What it checks: POST to /, X-Amz-Target AWSEvents.PutEvents, Content-Type
// application/x-amz-json-1.1, an Authorization header of the SigV4 shape
// (present, algorithm AWS4-HMAC-SHA256, a Credential scoped to the events
// service); 1 to 10 entries, at most 256 KB of entries as AWS counts them
// ([EntrySize]); Source, DetailType and Detail present and Detail a JSON
// object. What it does not model: the signature itself (it is not
// verified), rules, targets and archives, per-account quotas and their
// token buckets, TraceHeader, endpoints (global endpoints, EndpointId),
// and the service's latency.
package ebtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Limits of PutEvents.
const (
	MaxEntries = 10
	MaxSize    = 256 * 1024
)

// Entry is one PutEvents entry as the fake received it.
type Entry struct {
	Source       string
	DetailType   string
	Detail       string
	EventBusName string
	Resources    []string
	Time         *float64 // epoch seconds, as the SDK sends it
	// Seq numbers the entries the fake has seen, from 1, across requests.
	Seq int
	// Call numbers the PutEvents requests, from 1.
	Call int
}

// Answer is how the fake answers one entry: the zero value accepts it.
type Answer struct {
	ErrorCode    string
	ErrorMessage string
	// Hang holds the whole request until the client gives up.
	Hang bool
}

// CallError fails a whole request.
type CallError struct {
	Status  int
	Type    string // the __type of the body, such as "ThrottlingException"
	Message string
	// RetryAfter, when set, is sent as a Retry-After header (seconds).
	RetryAfter int
}

// Server is the fake endpoint. Set its hooks before the first request.
type Server struct {
	*httptest.Server

	// Entry decides each entry; nil accepts every one.
	Entry func(Entry) Answer
	// Call decides a whole request before its entries, given its number
	// (from 1); nil or a nil result lets it through.
	Call func(n int) *CallError

	mu       sync.Mutex
	calls    int
	seq      int
	sizes    []int // entries per request that reached the entry stage
	bytes    []int
	accepted []Entry
	authz    []string
}

// NewServer starts a fake endpoint, closed when t ends.
func NewServer(t testing.TB) *Server {
	s := &Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

type request struct {
	Entries []struct {
		Source       *string  `json:"Source"`
		DetailType   *string  `json:"DetailType"`
		Detail       *string  `json:"Detail"`
		EventBusName *string  `json:"EventBusName"`
		Resources    []string `json:"Resources"`
		Time         *float64 `json:"Time"`
	} `json:"Entries"`
}

type resultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.authz = append(s.authz, r.Header.Get("Authorization"))
	s.mu.Unlock()

	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		writeError(w, http.StatusNotFound, "UnknownOperationException", "")
		return
	case r.Header.Get("X-Amz-Target") != "AWSEvents.PutEvents":
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "")
		return
	case r.Header.Get("Content-Type") != "application/x-amz-json-1.1":
		writeError(w, http.StatusBadRequest, "SerializationException", "wrong content type")
		return
	case !sigV4(r.Header.Get("Authorization")):
		writeError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "Request is missing Authentication Token")
		return
	}
	if s.Call != nil {
		if ce := s.Call(n); ce != nil {
			if ce.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(ce.RetryAfter))
			}
			writeError(w, ce.Status, ce.Type, ce.Message)
			return
		}
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "body is not JSON")
		return
	}
	if msg := validate(req); msg != "" {
		writeError(w, http.StatusBadRequest, "ValidationException", msg)
		return
	}

	out := struct {
		FailedEntryCount int           `json:"FailedEntryCount"`
		Entries          []resultEntry `json:"Entries"`
	}{Entries: make([]resultEntry, len(req.Entries))}
	total := 0
	for i, e := range req.Entries {
		total += EntrySize(deref(e.Source), deref(e.DetailType), deref(e.Detail), deref(e.EventBusName), e.Resources, e.Time != nil)
		s.mu.Lock()
		s.seq++
		ent := Entry{
			Source: deref(e.Source), DetailType: deref(e.DetailType), Detail: deref(e.Detail),
			EventBusName: deref(e.EventBusName), Resources: e.Resources, Time: e.Time, Seq: s.seq, Call: n,
		}
		s.mu.Unlock()
		var a Answer
		if s.Entry != nil {
			a = s.Entry(ent)
		}
		if a.Hang {
			<-r.Context().Done()
			return
		}
		if a.ErrorCode != "" {
			out.FailedEntryCount++
			out.Entries[i] = resultEntry{ErrorCode: a.ErrorCode, ErrorMessage: a.ErrorMessage}
			continue
		}
		out.Entries[i] = resultEntry{EventID: fmt.Sprintf("%08d-0000-0000-0000-%012d", n, ent.Seq)}
		s.mu.Lock()
		s.accepted = append(s.accepted, ent)
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.sizes = append(s.sizes, len(req.Entries))
	s.bytes = append(s.bytes, total)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Requestid", fmt.Sprintf("req-%d", n))
	_ = json.NewEncoder(w).Encode(out)
}

// validate answers as EventBridge does for a request it refuses whole.
func validate(req request) string {
	switch {
	case len(req.Entries) == 0:
		return "1 validation error detected: Value '[]' at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1"
	case len(req.Entries) > MaxEntries:
		return fmt.Sprintf("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to %d", MaxEntries)
	}
	total := 0
	for i, e := range req.Entries {
		switch {
		case e.Source == nil || *e.Source == "":
			return fmt.Sprintf("Entries[%d]: Source is required", i)
		case e.DetailType == nil || *e.DetailType == "":
			return fmt.Sprintf("Entries[%d]: DetailType is required", i)
		case e.Detail == nil:
			return fmt.Sprintf("Entries[%d]: Detail is required", i)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(*e.Detail), &obj) != nil {
			return fmt.Sprintf("Entries[%d]: Detail is malformed", i)
		}
		total += EntrySize(*e.Source, *e.DetailType, *e.Detail, deref(e.EventBusName), e.Resources, e.Time != nil)
	}
	if total > MaxSize {
		return fmt.Sprintf("Total size of the entries in the request is over the limit (%d > %d)", total, MaxSize)
	}
	return ""
}

// EntrySize is the size of an entry as the fake counts it against the
// 256 KB limit: the UTF-8 bytes of Source, DetailType, Detail, each
// resource and EventBusName, plus 14 when Time is set. It is AWS's
// documented rule ("Calculating PutEvents event entry size") with
// EventBusName counted too, which errs on the safe side.
func EntrySize(source, detailType, detail, bus string, resources []string, hasTime bool) int {
	n := len(source) + len(detailType) + len(detail) + len(bus)
	for _, r := range resources {
		n += len(r)
	}
	if hasTime {
		n += 14
	}
	return n
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sigV4 checks the shape of a SigV4 Authorization header, not the signature.
func sigV4(h string) bool {
	return strings.HasPrefix(h, "AWS4-HMAC-SHA256 ") &&
		strings.Contains(h, "Credential=") && strings.Contains(h, "/events/aws4_request") &&
		strings.Contains(h, "SignedHeaders=") && strings.Contains(h, "Signature=")
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", typ)
	w.WriteHeader(status)
	body := map[string]string{"__type": typ}
	if msg != "" {
		body["message"] = msg
	}
	_ = json.NewEncoder(w).Encode(body)
}

// Throttle is the CallError AWS sends for a throttled request: HTTP 400 with
// __type ThrottlingException.
func Throttle() *CallError {
	return &CallError{Status: http.StatusBadRequest, Type: "ThrottlingException", Message: "Rate exceeded"}
}

// Calls returns how many requests reached the fake, refused ones included.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Accepted returns the entries the fake accepted, in order.
func (s *Server) Accepted() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.accepted...)
}

// Batches returns, per request that passed validation, its number of
// entries and their total size.
func (s *Server) Batches() (entries, sizes []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...), append([]int(nil), s.bytes...)
}

// Authorizations returns the Authorization header of every request.
func (s *Server) Authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.authz...)
}

// Wait blocks until the fake accepted at least n entries or d passed, and
// returns what it accepted.
func (s *Server) Wait(n int, d time.Duration) []Entry {
	deadline := time.Now().Add(d)
	for {
		got := s.Accepted()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}
