package eventbridge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/eventbridge"
	"github.com/vrelay/vrelay/consumers/eventbridge/ebtest"
	"github.com/vrelay/vrelay/consumers/sinktest"
	"github.com/vrelay/vrelay/internal/secret"
)

const (
	testKeyID  = "AKIDVRELAYTEST"
	testSecret = "vrelay-test-secret-9f8e7d6c5b4a"
)

// fileCredentials writes a test access key to files and names them, so
// that parallel tests need no environment.
func fileCredentials(t testing.TB) *eventbridge.Credentials {
	t.Helper()
	dir := t.TempDir()
	id, key := filepath.Join(dir, "id"), filepath.Join(dir, "key")
	if err := os.WriteFile(id, []byte(testKeyID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &eventbridge.Credentials{AccessKeyID: secret.Ref{FromFile: id}, SecretAccessKey: secret.Ref{FromFile: key}}
}

func testConfig(t testing.TB, srv *ebtest.Server) eventbridge.Config {
	return eventbridge.Config{
		Region:      "eu-west-1",
		EventBus:    "vmware-events",
		Endpoint:    srv.URL,
		Credentials: fileCredentials(t),
	}
}

func newSink(t testing.TB, cfg eventbridge.Config, opts ...eventbridge.Option) *eventbridge.Sink {
	t.Helper()
	s, err := eventbridge.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New(): %v", err)
	}
	return s
}

func newEvent(id string, data string) event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("https://vc01.example.com/sdk")
	ev.SetType("com.vmware.event.router/event")
	ev.SetSubject("VmPoweredOnEvent")
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte(data)
	return ev
}

func events(prefix string, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = newEvent(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf(`{"Key":%d,"Vm":{"Name":"prod-%d"}}`, i, i))
	}
	return evs
}

// idOf reads the CloudEvent id back from an entry's Detail.
func idOf(t testing.TB, e ebtest.Entry) string {
	t.Helper()
	var ev event.Event
	if err := format.JSON.Unmarshal([]byte(e.Detail), &ev); err != nil {
		t.Fatalf("entry detail is not a CloudEvent: %v", err)
	}
	return ev.ID()
}

// destination is a sinktest.Destination backed by the fake endpoint.
type destination struct {
	srv *ebtest.Server
	mu  sync.Mutex
	ans func(event.Event) sinktest.Outcome
}

func newDestination(t *testing.T) sinktest.Destination {
	d := &destination{srv: ebtest.NewServer(t)}
	d.srv.Entry = func(e ebtest.Entry) ebtest.Answer {
		d.mu.Lock()
		ans := d.ans
		d.mu.Unlock()
		if ans == nil {
			return ebtest.Answer{}
		}
		var ev event.Event
		if err := format.JSON.Unmarshal([]byte(e.Detail), &ev); err != nil {
			return ebtest.Answer{ErrorCode: "MalformedDetail", ErrorMessage: err.Error()}
		}
		switch ans(ev) {
		case sinktest.Reject:
			return ebtest.Answer{ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed."}
		case sinktest.Fail:
			return ebtest.Answer{ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded"}
		case sinktest.Hang:
			return ebtest.Answer{Hang: true}
		}
		return ebtest.Answer{}
	}
	return d
}

func (d *destination) Sink(t *testing.T) consumers.Sink { return newSink(t, testConfig(t, d.srv)) }

func (d *destination) Script(answer func(event.Event) sinktest.Outcome) {
	d.mu.Lock()
	d.ans = answer
	d.mu.Unlock()
}

func (d *destination) Received() []event.Event {
	var out []event.Event
	for _, e := range d.srv.Accepted() {
		var ev event.Event
		if err := format.JSON.Unmarshal([]byte(e.Detail), &ev); err == nil {
			out = append(out, ev)
		}
	}
	return out
}

func (d *destination) Attempts() int { return d.srv.Calls() }

func TestConformance(t *testing.T) {
	sinktest.RunCore(t, newDestination, sinktest.Features{})
}

func TestEntryShape(t *testing.T) {
	tests := []struct {
		name           string
		detailType     string
		subject        string
		wantDetailType string
	}{
		{"type", "", "VmPoweredOnEvent", "com.vmware.event.router/event"},
		{"subject", eventbridge.DetailTypeSubject, "VmPoweredOnEvent", "VmPoweredOnEvent"},
		{"subject missing falls back to type", eventbridge.DetailTypeSubject, "", "com.vmware.event.router/event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ebtest.NewServer(t)
			cfg := testConfig(t, srv)
			cfg.DetailType = tt.detailType
			ev := newEvent("shape", `{"Key":1}`)
			ev.SetSubject(tt.subject)
			if err := newSink(t, cfg).Send(t.Context(), ev); err != nil {
				t.Fatalf("Send(): %v", err)
			}
			got := srv.Accepted()
			if len(got) != 1 {
				t.Fatalf("accepted entries: got %d, want 1", len(got))
			}
			e := got[0]
			if e.DetailType != tt.wantDetailType || e.Source != "https://vc01.example.com/sdk" || e.EventBusName != "vmware-events" {
				t.Errorf("entry detail-type/source/bus: got %q/%q/%q, want %q/%q/%q", e.DetailType, e.Source, e.EventBusName,
					tt.wantDetailType, "https://vc01.example.com/sdk", "vmware-events")
			}
			if e.Time == nil || int64(*e.Time) != ev.Time().Unix() {
				t.Errorf("entry time: got %v, want %d", e.Time, ev.Time().Unix())
			}
			var detail map[string]any
			if err := json.Unmarshal([]byte(e.Detail), &detail); err != nil || detail["id"] != "shape" || detail["specversion"] != "1.0" {
				t.Errorf("entry detail: got %s, want the CloudEvent JSON", e.Detail)
			}
			for _, a := range srv.Authorizations() {
				if !strings.Contains(a, "Credential="+testKeyID+"/") || !strings.Contains(a, "/eu-west-1/events/aws4_request") {
					t.Errorf("Authorization: got %q, want SigV4 with the test key for eu-west-1 events", a)
				}
			}
		})
	}
}

func TestPartialFailure(t *testing.T) {
	srv := ebtest.NewServer(t)
	// Per event, by its Key: %5==1 throttled, %5==3 internal failure,
	// %7==6 rejected for good; the rest accepted.
	srv.Entry = func(e ebtest.Entry) ebtest.Answer {
		var d struct{ Data struct{ Key int } }
		_ = json.Unmarshal([]byte(e.Detail), &d)
		switch k := d.Data.Key; {
		case k%7 == 6:
			return ebtest.Answer{ErrorCode: "InvalidArgument", ErrorMessage: "Parameter Detail is not valid. Reason: nope"}
		case k%5 == 1:
			return ebtest.Answer{ErrorCode: "ThrottlingException", ErrorMessage: "Rate exceeded"}
		case k%5 == 3:
			return ebtest.Answer{ErrorCode: "InternalFailure", ErrorMessage: "internal"}
		}
		return ebtest.Answer{}
	}
	s := newSink(t, testConfig(t, srv))
	evs := events("p", 25)
	errs := s.SendBatch(t.Context(), evs)
	if len(errs) != len(evs) {
		t.Fatalf("results: got %d, want %d", len(errs), len(evs))
	}
	var wantAccepted []string
	for k, err := range errs {
		switch {
		case k%7 == 6:
			var ee *eventbridge.EntryError
			if !consumers.IsPermanent(err) || !errors.As(err, &ee) || ee.Code != "InvalidArgument" || !strings.Contains(err.Error(), "Reason: nope") {
				t.Errorf("event %d: got %v, want a permanent EntryError with InvalidArgument and its message", k, err)
			}
		case k%5 == 1 || k%5 == 3:
			if err == nil || consumers.IsPermanent(err) {
				t.Errorf("event %d: got %v, want a retryable error", k, err)
			}
		default:
			wantAccepted = append(wantAccepted, evs[k].ID())
			if err != nil {
				t.Errorf("event %d: got %v, want nil", k, err)
			}
		}
	}
	var got []string
	for _, e := range srv.Accepted() {
		got = append(got, idOf(t, e))
	}
	slices.Sort(got)
	slices.Sort(wantAccepted)
	if !slices.Equal(got, wantAccepted) {
		t.Errorf("accepted: got %v, want %v", got, wantAccepted)
	}
	if n := srv.Calls(); n != 3 {
		t.Errorf("calls for 25 events: got %d, want 3 (10+10+5)", n)
	}
	sizes, _ := srv.Batches()
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{5, 10, 10}) {
		t.Errorf("entries per call: got %v, want [5 10 10]", sizes)
	}
}

func TestSplitsBySize(t *testing.T) {
	srv := ebtest.NewServer(t)
	s := newSink(t, testConfig(t, srv))
	// 60 KB of data each: four fit in 256 KB, a fifth does not.
	big := `{"Pad":"` + strings.Repeat("x", 60*1024) + `"}`
	evs := make([]event.Event, 9)
	for i := range evs {
		evs[i] = newEvent(fmt.Sprintf("big-%d", i), big)
	}
	for i, err := range s.SendBatch(t.Context(), evs) {
		if err != nil {
			t.Errorf("event %d: got %v, want nil", i, err)
		}
	}
	entries, sizes := srv.Batches()
	if len(entries) != 3 {
		t.Errorf("calls: got %d (entries %v), want 3", len(entries), entries)
	}
	for i, n := range sizes {
		if n > ebtest.MaxSize || entries[i] > ebtest.MaxEntries {
			t.Errorf("call %d: %d entries, %d bytes; want at most %d and %d", i, entries[i], n, ebtest.MaxEntries, ebtest.MaxSize)
		}
	}
	if got := len(srv.Accepted()); got != 9 {
		t.Errorf("accepted: got %d, want 9", got)
	}
}

func TestOversizeEntryIsPermanent(t *testing.T) {
	srv := ebtest.NewServer(t)
	s := newSink(t, testConfig(t, srv))
	huge := newEvent("huge", `{"Pad":"`+strings.Repeat("x", eventbridge.MaxSize)+`"}`)
	evs := []event.Event{newEvent("ok-1", `{}`), huge, newEvent("ok-2", `{}`)}
	errs := s.SendBatch(t.Context(), evs)
	var ee *eventbridge.EntryError
	if !consumers.IsPermanent(errs[1]) || !errors.As(errs[1], &ee) {
		t.Errorf("oversize event: got %v, want a permanent EntryError", errs[1])
	}
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("other events: got %v, %v, want nil", errs[0], errs[2])
	}
	if n := srv.Calls(); n != 1 {
		t.Errorf("calls: got %d, want 1 (the oversize entry is never sent)", n)
	}
	if err := s.Send(t.Context(), huge); !consumers.IsPermanent(err) {
		t.Errorf("Send() of the oversize event: got %v, want permanent", err)
	}
}

func TestEntrySizeMatchesFake(t *testing.T) {
	srv := ebtest.NewServer(t)
	s := newSink(t, testConfig(t, srv))
	if err := s.Send(t.Context(), newEvent("size", `{"Name":"é世"}`)); err != nil {
		t.Fatal(err)
	}
	_, sizes := srv.Batches()
	e := srv.Accepted()[0]
	want := len(e.Source) + len(e.DetailType) + len(e.Detail) + len(e.EventBusName) + 14
	if len(sizes) != 1 || sizes[0] != want {
		t.Errorf("size of the call: got %v, want [%d]", sizes, want)
	}
}

func TestCallErrors(t *testing.T) {
	tests := []struct {
		name          string
		call          *ebtest.CallError
		wantPermanent bool
		wantDelay     time.Duration
	}{
		{"throttled", ebtest.Throttle(), false, 0},
		{"internal 500", &ebtest.CallError{Status: 500, Type: "InternalException", Message: "oops"}, false, 0},
		{"503 with retry-after", &ebtest.CallError{Status: 503, Type: "ServiceUnavailable", RetryAfter: 7}, false, 7 * time.Second},
		{"access denied", &ebtest.CallError{Status: 400, Type: "AccessDeniedException", Message: "not authorized to perform events:PutEvents"}, true, 0},
		{"bad signature", &ebtest.CallError{Status: 403, Type: "InvalidSignatureException", Message: "The request signature we calculated does not match"}, true, 0},
		{"unknown bus", &ebtest.CallError{Status: 400, Type: "ResourceNotFoundException", Message: "Event bus vmware-events does not exist."}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := ebtest.NewServer(t)
			srv.Call = func(int) *ebtest.CallError { return tt.call }
			s := newSink(t, testConfig(t, srv))
			errs := s.SendBatch(t.Context(), events("c", 3))
			for i, err := range errs {
				if err == nil || consumers.IsPermanent(err) != tt.wantPermanent {
					t.Errorf("result %d: got %v, want permanent=%v", i, err, tt.wantPermanent)
				}
				if d, ok := consumers.RetryAfterDelay(err); tt.wantDelay != 0 && (!ok || d != tt.wantDelay) {
					t.Errorf("result %d: got delay %v (%v), want %v", i, d, ok, tt.wantDelay)
				}
				if !strings.Contains(fmt.Sprint(err), tt.call.Type) {
					t.Errorf("result %d: got %q, want it to name %s", i, err, tt.call.Type)
				}
			}
			if n := srv.Calls(); n != 1 {
				t.Errorf("calls: got %d, want 1 (no retries inside the sink)", n)
			}
		})
	}
}

func TestTransportErrorIsRetryable(t *testing.T) {
	srv := ebtest.NewServer(t)
	cfg := testConfig(t, srv)
	srv.Close()
	err := newSink(t, cfg).Send(t.Context(), newEvent("down", `{}`))
	if err == nil || consumers.IsPermanent(err) {
		t.Errorf("Send() to a closed endpoint: got %v, want a retryable error", err)
	}
}

func TestTimeoutIsRetryable(t *testing.T) {
	srv := ebtest.NewServer(t)
	srv.Entry = func(ebtest.Entry) ebtest.Answer { return ebtest.Answer{Hang: true} }
	cfg := testConfig(t, srv)
	cfg.Timeout = 100 * time.Millisecond
	err := newSink(t, cfg).Send(t.Context(), newEvent("slow", `{}`))
	if err == nil || consumers.IsPermanent(err) {
		t.Errorf("Send() past its timeout: got %v, want a retryable error", err)
	}
}

func TestSecretsNeverShown(t *testing.T) {
	srv := ebtest.NewServer(t)
	srv.Call = func(int) *ebtest.CallError {
		return &ebtest.CallError{Status: 403, Type: "UnrecognizedClientException", Message: "The security token included in the request is invalid."}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := testConfig(t, srv)
	s := newSink(t, cfg, eventbridge.WithLogger(log))
	err := s.Send(t.Context(), newEvent("denied", `{}`))
	if !consumers.IsPermanent(err) {
		t.Errorf("Send() with refused credentials: got %v, want permanent", err)
	}
	log.Info("config", "credentials", cfg.Credentials, "err", err)
	for _, a := range srv.Authorizations() {
		if strings.Contains(a, testSecret) {
			t.Errorf("Authorization header carries the secret key")
		}
	}
	for what, text := range map[string]string{"error": fmt.Sprint(err), "log": logs.String(), "config": fmt.Sprintf("%+v %v", cfg, *cfg.Credentials)} {
		if strings.Contains(text, testSecret) {
			t.Errorf("%s shows the secret access key: %s", what, text)
		}
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	srv := ebtest.NewServer(t)
	t.Setenv("VRELAY_TEST_AWS_KEY_ID", testKeyID)
	t.Setenv("VRELAY_TEST_AWS_SECRET", testSecret)
	cfg := testConfig(t, srv)
	cfg.Credentials = &eventbridge.Credentials{
		AccessKeyID:     secret.Ref{FromEnv: "VRELAY_TEST_AWS_KEY_ID"},
		SecretAccessKey: secret.Ref{FromEnv: "VRELAY_TEST_AWS_SECRET"},
	}
	if err := newSink(t, cfg).Send(t.Context(), newEvent("env", `{}`)); err != nil {
		t.Fatalf("Send(): %v", err)
	}
	if a := srv.Authorizations(); len(a) != 1 || !strings.Contains(a[0], "Credential="+testKeyID+"/") {
		t.Errorf("Authorization: got %v, want the key from the environment", a)
	}

	cfg.Credentials.SecretAccessKey = secret.Ref{FromEnv: "VRELAY_TEST_AWS_UNSET"}
	_, err := eventbridge.New(cfg)
	if err == nil || !strings.Contains(err.Error(), "credentials.secretAccessKey") || !strings.Contains(err.Error(), "VRELAY_TEST_AWS_UNSET") {
		t.Errorf("New() with an unset variable: got %v, want an error naming the field and the variable", err)
	}
}

func TestDefaultCredentialChain(t *testing.T) {
	srv := ebtest.NewServer(t)
	t.Setenv("AWS_ACCESS_KEY_ID", testKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	cfg := testConfig(t, srv)
	cfg.Credentials = nil
	if err := newSink(t, cfg).Send(t.Context(), newEvent("chain", `{}`)); err != nil {
		t.Fatalf("Send(): %v", err)
	}
	if a := srv.Authorizations(); len(a) != 1 || !strings.Contains(a[0], "Credential="+testKeyID+"/") {
		t.Errorf("Authorization: got %v, want the key of the default chain", a)
	}
}

func TestPatternFiltersAtTheSink(t *testing.T) {
	srv := ebtest.NewServer(t)
	cfg := testConfig(t, srv)
	cfg.DetailType = eventbridge.DetailTypeSubject
	cfg.Pattern = map[string]any{ // as YAML decodes a mapping
		"detail-type": []any{"VmPoweredOnEvent"},
		"detail":      map[string]any{"data": map[string]any{"Vm": map[string]any{"Name": []any{map[string]any{"prefix": "prod-"}}}}},
	}
	s := newSink(t, cfg)
	evs := []event.Event{
		newEvent("match", `{"Vm":{"Name":"prod-1"}}`),
		newEvent("dev", `{"Vm":{"Name":"dev-1"}}`),
		newEvent("match-2", `{"Vm":{"Name":"prod-2"}}`),
	}
	off := newEvent("off", `{"Vm":{"Name":"prod-3"}}`)
	off.SetSubject("VmPoweredOffEvent")
	evs = append(evs, off)
	for i, err := range s.SendBatch(t.Context(), evs) {
		if err != nil {
			t.Errorf("result %d: got %v, want nil (sent or filtered)", i, err)
		}
	}
	if err := s.Send(t.Context(), newEvent("dev-single", `{"Vm":{"Name":"dev-2"}}`)); err != nil {
		t.Errorf("Send() of a filtered event: got %v, want nil", err)
	}
	var got []string
	for _, e := range srv.Accepted() {
		got = append(got, idOf(t, e))
	}
	if !slices.Equal(got, []string{"match", "match-2"}) {
		t.Errorf("sent: got %v, want [match match-2]", got)
	}
	if n := srv.Calls(); n != 1 {
		t.Errorf("calls: got %d, want 1 (a filtered Send makes none)", n)
	}

	cfg.Pattern = `{"detail": {"subject": [{"shellstyle": "Vm*"}]}}` // a JSON string works too
	s = newSink(t, cfg)
	if err := s.Send(t.Context(), newEvent("json-pattern", `{}`)); err != nil || len(srv.Accepted()) != 3 {
		t.Errorf("Send() matching a JSON-string pattern: got %v and %d accepted, want nil and 3", err, len(srv.Accepted()))
	}
}

// Ensure the fake refuses what AWS refuses, so the tests above mean something.
func TestFakeValidates(t *testing.T) {
	srv := ebtest.NewServer(t)
	post := func(target, body string, authz bool) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		if authz {
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/events/aws4_request, SignedHeaders=host, Signature=00")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	entry := `{"Source":"s","DetailType":"d","Detail":"{}"}`
	eleven := `{"Entries":[` + strings.TrimSuffix(strings.Repeat(entry+",", 11), ",") + `]}`
	tests := []struct {
		name   string
		target string
		body   string
		authz  bool
		want   int
	}{
		{"ok", "AWSEvents.PutEvents", `{"Entries":[` + entry + `]}`, true, 200},
		{"unsigned", "AWSEvents.PutEvents", `{"Entries":[` + entry + `]}`, false, 400},
		{"other operation", "AWSEvents.ListRules", `{}`, true, 400},
		{"eleven entries", "AWSEvents.PutEvents", eleven, true, 400},
		{"detail not an object", "AWSEvents.PutEvents", `{"Entries":[{"Source":"s","DetailType":"d","Detail":"[1]"}]}`, true, 400},
		{"no source", "AWSEvents.PutEvents", `{"Entries":[{"DetailType":"d","Detail":"{}"}]}`, true, 400},
	}
	for _, tt := range tests {
		if got := post(tt.target, tt.body, tt.authz); got != tt.want {
			t.Errorf("%s: got status %d, want %d", tt.name, got, tt.want)
		}
	}
}
