package logsink_test

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/vrelay/vrelay/consumers/logsink"
	"github.com/vrelay/vrelay/streams"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// countingWriter records what it is given and how many Write calls.
type countingWriter struct {
	mu     sync.Mutex
	buf    strings.Builder
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

// storedEvents reads the fixed set of stored events of package eventline:
// both vCenter shapes, both Horizon shapes, webhook events.
func storedEvents(t *testing.T) []event.Event {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "internal", "eventline", "testdata", "stored.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []event.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s struct {
			Event json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		ev, err := streams.Decode(s.Event)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestLineFormatGolden(t *testing.T) {
	evs := storedEvents(t)
	w := &countingWriter{}
	s, err := logsink.New(logsink.Config{Format: logsink.FormatLine}, logsink.WithWriter(w))
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range s.SendBatch(t.Context(), evs) {
		if err != nil {
			t.Errorf("event %d: got %v, want nil", i, err)
		}
	}
	if w.writes != 1 {
		t.Errorf("writes: got %d, want 1 for the batch", w.writes)
	}
	if err := s.Send(t.Context(), evs[0]); err != nil {
		t.Fatal(err)
	}
	got := w.buf.String()
	path := filepath.Join("testdata", "line.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("line format (-want +got):\n%s", diff)
	}
	if strings.Contains(got, "\x1b") {
		t.Error("a log line has an ANSI escape, want none")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  logsink.Config
		want []string // substrings of the error; none: valid
	}{
		{name: "defaults"},
		{name: "line", cfg: logsink.Config{Format: logsink.FormatLine}},
		{name: "json", cfg: logsink.Config{Format: logsink.FormatJSON, Output: logsink.OutputStderr}},
		{name: "bad format", cfg: logsink.Config{Format: "text"}, want: []string{`format: got "text", want "json" or "line"`}},
		{name: "both bad", cfg: logsink.Config{Format: "text", Output: "file"}, want: []string{"output:", "format:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want %q in it", err, w)
				}
			}
		})
	}
}
