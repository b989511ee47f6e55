package eventline_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/vrelay/vrelay/internal/eventline"
	"github.com/vrelay/vrelay/streams"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// stored is one line of testdata/stored.jsonl: an event as vrelay stores
// it and its subject. The set covers both vCenter shapes (an EventEx
// too), both Horizon shapes and webhook events with and without JSON data.
type stored struct {
	Subject string          `json:"subject"`
	Event   json.RawMessage `json:"event"`
}

func readStored(t *testing.T) ([]string, []event.Event) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "stored.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var subjects []string
	var evs []event.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s stored
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		ev, err := streams.Decode(s.Event)
		if err != nil {
			t.Fatal(err)
		}
		subjects, evs = append(subjects, s.Subject), append(evs, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return subjects, evs
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestAppendGolden(t *testing.T) {
	subjects, evs := readStored(t)
	for _, tt := range []struct {
		name   string
		style  eventline.Style
		golden string
	}{
		{name: "plain", golden: "lines.golden"},
		{name: "color", style: eventline.Style{Color: true}, golden: "lines-color.golden"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out []byte
			for i := range evs {
				out = append(tt.style.Append(out, &evs[i], subjects[i]), '\n')
			}
			checkGolden(t, tt.golden, out)
		})
	}
}

func TestAppendPlainHasNoEscapes(t *testing.T) {
	subjects, evs := readStored(t)
	for i := range evs {
		line := string(eventline.Style{}.Append(nil, &evs[i], subjects[i]))
		if strings.ContainsAny(line, "\x1b\n\r") {
			t.Errorf("line of event %s: got %q, want no escape or line break", evs[i].ID(), line)
		}
	}
}

func TestAppendWithoutSubject(t *testing.T) {
	_, evs := readStored(t)
	line := eventline.Style{}.Append(nil, &evs[0], "")
	want := "2023-11-27T10:00:08Z DrsVmPoweredOnEvent vcsa.mydomain.com vm=vm1 host=esx01.mydomain.com user=mydomain.com\\Administrator DRS powered on vm1 on esx01.mydomain.com in DC1"
	if string(line) != want {
		t.Errorf("got %q, want %q", line, want)
	}
}

func TestAppendLongMessageIsCut(t *testing.T) {
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("urn:x")
	ev.SetType("t")
	if err := ev.SetData(event.ApplicationJSON, map[string]string{"message": strings.Repeat("é", 5000)}); err != nil {
		t.Fatal(err)
	}
	line := eventline.Style{}.Append(nil, &ev, "")
	if !bytes.HasSuffix(line, []byte("é…")) || len(line) > 4200 {
		t.Errorf("got a line of %d bytes ending %q, want it cut at a rune with an ellipsis", len(line), line[len(line)-8:])
	}
}
