package sinktest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/sinktest"
)

// refSink is a minimal sink that follows the contract, with switches that
// break it one way at a time. It proves that the suite passes a correct sink
// and that each of its assertions can fail.
type refSink struct {
	url        string
	structured bool
	retry404   bool
	fault      string
}

func (s *refSink) Send(ctx context.Context, ev event.Event) error {
	switch s.fault {
	case "accept-all":
		return nil
	case "ignore-ctx":
		// Stands in for a sink that only honours its own timeout.
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ctx = c
	}
	err := s.attempt(ctx, ev)
	if s.fault == "retry-internally" && err != nil && !consumers.IsPermanent(err) {
		err = s.attempt(ctx, ev)
	}
	return err
}

func (s *refSink) attempt(ctx context.Context, ev event.Event) error {
	switch s.fault {
	case "corrupt-data":
		ev.DataEncoded = bytes.ReplaceAll(ev.Data(), []byte("prod"), []byte("PROD"))
	case "drop-extension":
		ev.SetExtension("eventclass", nil)
	}
	method := http.MethodPost
	if s.fault == "put" {
		method = http.MethodPut
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url, nil)
	if err != nil {
		return consumers.Permanent(err)
	}
	encCtx := ctx
	if s.structured {
		encCtx = binding.WithForceStructured(ctx)
	}
	if err := cehttp.WriteRequest(encCtx, binding.ToMessage(&ev), req); err != nil {
		return consumers.Permanent(err)
	}
	if s.fault == "no-id" {
		req.Header.Del("Ce-Id")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if s.fault == "refused-permanent" {
			return consumers.Permanent(err)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))

	code := resp.StatusCode
	err = fmt.Errorf("http status %d", code)
	if s.fault == "no-status-in-error" {
		err = errors.New("rejected")
	}
	retryable := code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 ||
		(code == http.StatusNotFound && s.retry404)
	switch {
	case code >= 200 && code < 300:
		return nil
	case s.fault == "all-permanent":
		return consumers.Permanent(err)
	case s.fault == "all-retryable":
		return err
	case retryable:
		if d, ok := s.retryAfter(resp.Header.Get("Retry-After")); ok {
			return consumers.RetryAfter(err, d)
		}
		return err
	default:
		return consumers.Permanent(err)
	}
}

func (s *refSink) retryAfter(v string) (time.Duration, bool) {
	if v == "" || s.fault == "no-retry-after" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, true
	}
	if s.fault == "seconds-only" {
		return 0, false
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t), true
	}
	return 0, false
}

func newRefSink(structured, retry404 bool, fault string) func(t *testing.T, url string) consumers.Sink {
	return func(t *testing.T, url string) consumers.Sink {
		return &refSink{url: url, structured: structured, retry404: retry404, fault: fault}
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		features sinktest.Features
	}{
		{name: "binary", features: sinktest.Features{}},
		{name: "structured", features: sinktest.Features{Structured: true}},
		{name: "binary retry404", features: sinktest.Features{Retry404: true}},
		{name: "structured retry404", features: sinktest.Features{Structured: true, Retry404: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sinktest.Run(t, newRefSink(tt.features.Structured, tt.features.Retry404, ""), tt.features)
		})
	}
}

// Environment variables through which TestRunCatchesFaults tells a child
// process which broken sink to run the suite against.
const (
	envFault      = "SINKTEST_FAULT"
	envSinkMode   = "SINKTEST_SINK"     // "structured", "retry404", both comma-separated, or ""
	envFeatureSet = "SINKTEST_FEATURES" // likewise, for the Features passed to Run
)

// TestFaultySink runs the suite against a broken sink. It only runs in the
// child process that TestRunCatchesFaults starts, where it is meant to fail.
func TestFaultySink(t *testing.T) {
	fault, ok := os.LookupEnv(envFault)
	if !ok {
		t.Skip("runs only as a child of TestRunCatchesFaults")
	}
	sink := os.Getenv(envSinkMode)
	features := os.Getenv(envFeatureSet)
	f := sinktest.Features{
		Structured: strings.Contains(features, "structured"),
		Retry404:   strings.Contains(features, "retry404"),
	}
	sinktest.Run(t, newRefSink(strings.Contains(sink, "structured"), strings.Contains(sink, "retry404"), fault), f)
}

func TestRunCatchesFaults(t *testing.T) {
	if _, ok := os.LookupEnv(envFault); ok {
		t.Skip("already a child process")
	}
	tests := []struct {
		name     string
		fault    string
		sink     string
		features string
		want     []string
	}{
		{
			name:  "accepts without sending",
			fault: "accept-all",
			want: []string{
				"--- FAIL: TestFaultySink/Accepted/200",
				"server got 0 requests, want 1",
				"Send() against 500: got nil, want a retryable error",
				"Send() against 400: got nil, want a permanent error",
				"Send() to a closed port: got nil, want a retryable error",
			},
		},
		{
			name:  "5xx permanent",
			fault: "all-permanent",
			want:  []string{"Send() against 503: got permanent error", "Send() against 429: got permanent error"},
		},
		{
			name:  "4xx retryable",
			fault: "all-retryable",
			want:  []string{"Send() against 422: got retryable error", "Send() against 413: got retryable error"},
		},
		{
			name: "404 retried where it should not be",
			sink: "retry404",
			want: []string{"Send() against 404: got retryable error"},
		},
		{
			name:     "404 permanent where it should be retried",
			features: "retry404",
			want:     []string{"Send() against 404: got permanent error"},
		},
		{
			name:  "status code missing from error",
			fault: "no-status-in-error",
			want:  []string{"Send() against 502: got error \"rejected\", want it to name the status code"},
		},
		{
			name:  "retries internally",
			fault: "retry-internally",
			want:  []string{"server got 2 requests, want 1 (a sink must not retry internally)"},
		},
		{
			name:  "Retry-After ignored",
			fault: "no-retry-after",
			want:  []string{"--- FAIL: TestFaultySink/RetryAfter/429_seconds", "got no delay, want 3s"},
		},
		{
			name:  "Retry-After HTTP-date ignored",
			fault: "seconds-only",
			want:  []string{"--- FAIL: TestFaultySink/RetryAfter/503_HTTP-date", "got no delay, want 2h0m0s"},
		},
		{
			name:  "connection refused permanent",
			fault: "refused-permanent",
			want:  []string{"Send() to a closed port: got permanent error"},
		},
		{
			name:  "ctx ignored",
			fault: "ignore-ctx",
			want:  []string{"want an error wrapping context.Canceled"},
		},
		{
			name:  "ce-id missing",
			fault: "no-id",
			want:  []string{"binary mode: got ce-id header \"\""},
		},
		{
			name:     "structured sent, binary expected",
			sink:     "structured",
			features: "",
			want:     []string{"binary mode: got ce-id header \"\"", "binary mode: got Content-Type \"application/cloudevents+json"},
		},
		{
			name:     "binary sent, structured expected",
			features: "structured",
			want:     []string{"structured mode: got Content-Type \"application/json\"", "structured mode: body is not a JSON object"},
		},
		{
			name:  "data altered",
			fault: "corrupt-data",
			want:  []string{"binary mode: got body", "received data: got"},
		},
		{
			name:     "data altered structured",
			fault:    "corrupt-data",
			sink:     "structured",
			features: "structured",
			want:     []string{"--- FAIL: TestFaultySink/EventArrives/xml", "received data: got"},
		},
		{
			name:     "extension dropped",
			fault:    "drop-extension",
			sink:     "structured",
			features: "structured",
			want:     []string{"received extension eventclass: got <nil>"},
		},
		{
			name:  "not a POST",
			fault: "put",
			want:  []string{"request method: got PUT, want POST"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFaultySink$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(),
				envFault+"="+tt.fault,
				envSinkMode+"="+tt.sink,
				envFeatureSet+"="+tt.features,
			)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("suite against a broken sink: got error %v, want a failing exit status; output:\n%s", err, out)
			}
			for _, w := range tt.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("suite output: got no %q, want it; output:\n%s", w, out)
				}
			}
		})
	}
}
