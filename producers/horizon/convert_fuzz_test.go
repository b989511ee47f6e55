package horizon

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/streams"
)

// FuzzConvert feeds arbitrary records to both formats of the converter.
// Convert must fail or return a valid event whose data is the record byte
// for byte, whose id, type and time come from the record's id, type and
// time, and that the event codec stores and reads back unchanged.
func FuzzConvert(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "horizon-audit-events.json"))
	if err != nil {
		f.Fatal(err)
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(b, &recs); err != nil {
		f.Fatal(err)
	}
	for i, rec := range recs {
		f.Add([]byte(rec), i%2 == 0)
	}
	for _, s := range []string{
		`{"id":7,"time":1}`, `{"id":7,"time":1,"type":""}`, `{"id":-1,"time":-62135596800001,"type":"A.B"}`,
		`{"id":9223372036854775807,"time":9223372036854775807}`, `{"id":7,"time":253402300800000}`,
		`{"id":7,"time":1,"type":"caf\u00e9 \ud800"}`, "{\"id\":7,\"time\":1,\"type\":\"\xff\"}",
		`{"id":7,"time":1.5}`, `{"id":"7","time":1}`, `{"id":null,"time":1}`, `[1,2]`, `null`, ``,
		` {"id":7,"time":1} `, `{"id":7,"time":1,"id":8}`, `{"ID":7,"Time":1}`,
	} {
		f.Add([]byte(s), false)
	}
	const source = "https://horizon.example.com"
	f.Fuzz(func(t *testing.T, rec []byte, router bool) {
		c := Converter{Source: source, Format: FormatTanzu}
		prefix := tanzuTypePrefix
		if router {
			c.Format, prefix = FormatRouter, routerTypePrefix
		}
		ev, err := c.Convert(rec)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("Convert(%q) gave an invalid event: %v", rec, err)
		}
		if !bytes.Equal(ev.Data(), rec) {
			t.Fatalf("Convert(%q) data %q, want the record", rec, ev.Data())
		}
		var f struct {
			ID   int64  `json:"id"`
			Time int64  `json:"time"`
			Type string `json:"type"`
		}
		if err := json.Unmarshal(rec, &f); err != nil {
			t.Fatalf("Convert(%q) accepted what json.Unmarshal rejects: %v", rec, err)
		}
		if want := strconv.FormatInt(f.ID, 10); ev.ID() != want {
			t.Errorf("id %q, want %q", ev.ID(), want)
		}
		typ := f.Type
		if typ == "" {
			typ = unknownType
		}
		if want := prefix + strings.ToLower(typ) + typeSuffix; ev.Type() != want {
			t.Errorf("type %q, want %q", ev.Type(), want)
		}
		if want := time.UnixMilli(f.Time); !ev.Time().Equal(want) {
			t.Errorf("time %v, want %v", ev.Time(), want)
		}
		if ev.Source() != source || ev.DataContentType() != contentType {
			t.Errorf("source %q, datacontenttype %q", ev.Source(), ev.DataContentType())
		}

		m, err := streams.Encode("fuzz", &ev, "")
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := streams.Decode(m.Data)
		if err != nil {
			t.Fatalf("Decode(%q): %v", m.Data, err)
		}
		if !bytes.Equal(back.Data(), rec) || back.ID() != ev.ID() || !back.Time().Equal(ev.Time()) {
			t.Fatalf("stored and read back as %q, want the converted event", m.Data)
		}
	})
}
