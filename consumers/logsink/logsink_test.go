package logsink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/logsink"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/streams"
)

func newSink(t *testing.T, opts ...logsink.Option) *logsink.Sink {
	t.Helper()
	s, err := logsink.New(logsink.Config{}, opts...)
	if err != nil {
		t.Fatalf("New(): got error %v, want nil", err)
	}
	return s
}

func newEvent(id, contentType, data string) event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("/vcenter/vc01")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	if contentType != "" {
		ev.SetDataContentType(contentType)
		ev.DataEncoded = []byte(data)
	}
	return ev
}

func TestSend(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		data        string
		wantData    string
		stored      bool // read back from the stored body, as the dispatcher hands it over
	}{
		{name: "json", contentType: event.ApplicationJSON, data: `{"Key":1}`, wantData: `{"Key":1}`},
		// Pretty-printed data must not break the one-event-per-line promise.
		{name: "multi-line json", contentType: event.ApplicationJSON, data: "{\n  \"Key\": 1,\n  \"Msg\": \"a\\nb\"\n}", wantData: `{"Key":1,"Msg":"a\nb"}`},
		{name: "xml", contentType: event.ApplicationXML, data: "<Event>\n<Key>1</Key>\n</Event>", wantData: "<Event>\n<Key>1</Key>\n</Event>"},
		{name: "no data"},
		{name: "stored binary", contentType: "application/octet-stream", data: "\x00a\x80\xfe\xff", wantData: "\x00a\x80\xfe\xff", stored: true},
		{name: "stored text", contentType: "text/plain; charset=utf-8", data: "grüße \"<&>\"\n", wantData: "grüße \"<&>\"\n", stored: true},
		{name: "stored text not utf-8", contentType: "text/plain", data: "caf\xe9", wantData: "caf\xe9", stored: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := newSink(t, logsink.WithWriter(&buf))
			ev := newEvent("id-"+tt.name, tt.contentType, tt.data)
			if tt.stored {
				msg, err := streams.Encode("vmware.test", &ev, "")
				if err != nil {
					t.Fatal(err)
				}
				if ev, err = streams.Decode(msg.Data); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Send(t.Context(), ev); err != nil {
				t.Fatalf("Send(): got error %v, want nil", err)
			}
			out := buf.String()
			if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
				t.Fatalf("output: got %q, want exactly one newline-terminated line", out)
			}
			if !json.Valid([]byte(out)) {
				t.Fatalf("output is not valid JSON: %q", out)
			}
			var got event.Event
			if err := format.JSON.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output is not a structured CloudEvent: %v; output %q", err, out)
			}
			if got.ID() != ev.ID() || got.Type() != ev.Type() || got.Source() != ev.Source() {
				t.Errorf("id/type/source: got %q/%q/%q, want %q/%q/%q", got.ID(), got.Type(), got.Source(), ev.ID(), ev.Type(), ev.Source())
			}
			if string(got.Data()) != tt.wantData {
				t.Errorf("data: got %q, want %q", got.Data(), tt.wantData)
			}
		})
	}
}

// lineWriter records every Write and notices overlapping ones.
type lineWriter struct {
	inFlight atomic.Int32
	overlap  atomic.Bool
	mu       sync.Mutex
	writes   [][]byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if w.inFlight.Add(1) > 1 {
		w.overlap.Store(true)
	}
	defer w.inFlight.Add(-1)
	w.mu.Lock()
	w.writes = append(w.writes, bytes.Clone(p))
	w.mu.Unlock()
	return len(p), nil
}

func TestConcurrentSendsNeverInterleave(t *testing.T) {
	w := &lineWriter{}
	s := newSink(t, logsink.WithWriter(w))
	const goroutines, perGoroutine = 16, 50
	payload := `{"Msg":"` + strings.Repeat("x", 8<<10) + `"}`

	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perGoroutine)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				ev := newEvent(fmt.Sprintf("%d-%d", g, i), event.ApplicationJSON, payload)
				if err := s.Send(t.Context(), ev); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Send(): got error %v, want nil", err)
	}

	if w.overlap.Load() {
		t.Errorf("writer: got overlapping Write calls, want one at a time")
	}
	seen := map[string]bool{}
	for _, p := range w.writes {
		if bytes.IndexByte(p, '\n') != len(p)-1 {
			t.Fatalf("Write(%.60q...): got a partial or multi-line write, want exactly one line", p)
		}
		var ev event.Event
		if err := format.JSON.Unmarshal(p, &ev); err != nil {
			t.Fatalf("Write(%.60q...): got %v, want a whole CloudEvent", p, err)
		}
		seen[ev.ID()] = true
	}
	if got, want := len(seen), goroutines*perGoroutine; got != want {
		t.Errorf("distinct events written: got %d, want %d", got, want)
	}
}

var errDiskFull = errors.New("no space left on device")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestSendErrors(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name          string
		ctx           context.Context
		failing       bool
		ev            event.Event
		wantIs        error
		wantPermanent bool
	}{
		{name: "write fails", failing: true, ev: newEvent("1", event.ApplicationJSON, `{}`), wantIs: errDiskFull},
		{name: "data is not the JSON it claims", ev: newEvent("2", event.ApplicationJSON, `{not json`), wantPermanent: true},
		{name: "ctx done", ctx: cancelled, ev: newEvent("3", event.ApplicationJSON, `{}`), wantIs: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			opt := logsink.WithWriter(&buf)
			if tt.failing {
				opt = logsink.WithWriter(failingWriter{})
			}
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx
			}
			err := newSink(t, opt).Send(ctx, tt.ev)
			if err == nil {
				t.Fatalf("Send(): got nil, want an error")
			}
			if got := consumers.IsPermanent(err); got != tt.wantPermanent {
				t.Errorf("IsPermanent(%q): got %v, want %v", err, got, tt.wantPermanent)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Send(): got %q, want it to wrap %q", err, tt.wantIs)
			}
			if buf.Len() != 0 {
				t.Errorf("output after a failed send: got %q, want nothing", buf.String())
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  logsink.Config
		want []string
	}{
		{name: "default", cfg: logsink.Config{}},
		{name: "stdout", cfg: logsink.Config{Output: "stdout"}},
		{name: "stderr", cfg: logsink.Config{Output: "stderr"}},
		{name: "file path", cfg: logsink.Config{Output: "/var/log/events"}, want: []string{`output: got "/var/log/events", want "stdout" or "stderr"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range cfgerr.Flatten(tt.cfg.Validate()) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() mismatch (-want +got):\n%s", diff)
			}
			s, err := logsink.New(tt.cfg)
			if (err == nil) != (tt.want == nil) || (s == nil) != (tt.want != nil) {
				t.Errorf("New(): got %v, %v; want an error exactly when Validate reports one", s, err)
			}
		})
	}
}

// cutWriter takes the first max bytes of a write, then fails.
type cutWriter struct {
	max int
	buf bytes.Buffer
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if len(p) <= w.max {
		return w.buf.Write(p)
	}
	n, _ := w.buf.Write(p[:w.max])
	return n, errDiskFull
}

func TestSendBatch(t *testing.T) {
	line := func(ev event.Event) int {
		b, err := format.JSON.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		return len(b) + 1
	}
	evs := []event.Event{
		newEvent("b0", event.ApplicationJSON, `{"Key":0}`),
		newEvent("b1", event.ApplicationJSON, `{not json`),
		newEvent("b2", event.ApplicationJSON, `{"Key":2}`),
		newEvent("b3", event.ApplicationJSON, `{"Key":3}`),
	}
	whole := line(evs[0]) + line(evs[2]) + line(evs[3])
	tests := []struct {
		name  string
		max   int
		want  []string // per event: "ok", "permanent" or "retry"
		lines []string // ids written in full
	}{
		{name: "all written", max: whole, want: []string{"ok", "permanent", "ok", "ok"}, lines: []string{"b0", "b2", "b3"}},
		{name: "cut in the second line", max: line(evs[0]) + 10, want: []string{"ok", "permanent", "retry", "retry"}, lines: []string{"b0"}},
		{name: "cut right after a line", max: line(evs[0]) + line(evs[2]), want: []string{"ok", "permanent", "ok", "retry"}, lines: []string{"b0", "b2"}},
		{name: "nothing written", max: 0, want: []string{"retry", "permanent", "retry", "retry"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &cutWriter{max: tt.max}
			errs := newSink(t, logsink.WithWriter(w)).SendBatch(t.Context(), evs)
			if len(errs) != len(evs) {
				t.Fatalf("SendBatch(): got %d results, want %d", len(errs), len(evs))
			}
			for i, err := range errs {
				got := "retry"
				switch {
				case err == nil:
					got = "ok"
				case consumers.IsPermanent(err):
					got = "permanent"
				}
				if got != tt.want[i] {
					t.Errorf("result %d: got %s (%v), want %s", i, got, err, tt.want[i])
				}
				if got == "retry" && !errors.Is(err, errDiskFull) {
					t.Errorf("result %d: got %q, want it to wrap the write error", i, err)
				}
			}
			var lines []string
			for _, l := range strings.SplitAfter(w.buf.String(), "\n") {
				if !strings.HasSuffix(l, "\n") {
					continue // the cut line
				}
				var ev event.Event
				if err := format.JSON.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("written line %q: %v", l, err)
				}
				lines = append(lines, ev.ID())
			}
			if diff := cmp.Diff(tt.lines, lines); diff != "" {
				t.Errorf("lines written in full (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSendBatchOneWrite: a batch is one Write, so concurrent batches and
// sends never interleave their lines.
func TestSendBatchOneWrite(t *testing.T) {
	w := &lineWriter{}
	s := newSink(t, logsink.WithWriter(w))
	evs := []event.Event{newEvent("1", "", ""), newEvent("2", "", ""), newEvent("3", "", "")}
	for i, err := range s.SendBatch(t.Context(), evs) {
		if err != nil {
			t.Errorf("result %d: got %v, want nil", i, err)
		}
	}
	if len(w.writes) != 1 {
		t.Fatalf("writes: got %d, want 1 for the batch", len(w.writes))
	}
	if n := bytes.Count(w.writes[0], []byte("\n")); n != 3 {
		t.Errorf("lines in the write: got %d, want 3", n)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for i, err := range s.SendBatch(cancelled, evs) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("result %d with ctx done: got %v, want context.Canceled", i, err)
		}
	}
	if len(w.writes) != 1 {
		t.Errorf("writes after a batch with ctx done: got %d, want still 1", len(w.writes))
	}
}
