package horizon

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/vrelay/vrelay/streams"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// checkGolden compares got with testdata/golden/name byte for byte.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// sampleRecords returns the records of testdata/horizon-audit-events.json
// as Horizon sends them (compact JSON), newest first, by id.
func sampleRecords(t *testing.T) map[int64][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "horizon-audit-events.json"))
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatal(err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(compact.Bytes(), &raws); err != nil {
		t.Fatal(err)
	}
	out := make(map[int64][]byte, len(raws))
	for _, r := range raws {
		ev, err := parseRecord(r)
		if err != nil {
			t.Fatalf("sample record %s: %v", r, err)
		}
		out[ev.ID] = r
	}
	if len(out) != 10 {
		t.Fatalf("got %d sample records, want 10", len(out))
	}
	return out
}

// stored renders ev as the event stream stores it, re-indented for review:
// the attributes in the order vrelay writes them, the data as Horizon sent
// it (only its white space changed).
func stored(t *testing.T, ev event.Event) []byte {
	t.Helper()
	body, err := streams.MarshalEvent(&ev)
	if err != nil {
		t.Fatalf("marshal cloudevent: %v", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func TestConvertGolden(t *testing.T) {
	records := sampleRecords(t)
	const source = "https://horizon-01.corp.local"
	tests := []struct {
		name   string
		format Format
		id     int64
	}{
		{"tanzu-VLSI_USERLOGGEDIN", FormatTanzu, 98562},
		{"tanzu-BROKER_DAILY_MAX_CCU_USERS", FormatTanzu, 98559},
		{"tanzu-REST_AUTH_LOGIN_SUCCESS", FormatTanzu, 98563},
		{"router-VLSI_USERLOGGEDIN", FormatRouter, 98562},
		{"router-BROKER_DAILY_MAX_CCU_USERS", FormatRouter, 98559},
		{"router-REST_AUTH_LOGIN_SUCCESS", FormatRouter, 98563},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := records[tt.id]
			ev, err := Converter{Source: source, Format: tt.format}.Convert(rec)
			if err != nil {
				t.Fatal(err)
			}
			// The data is the record, byte for byte.
			if !bytes.Equal(ev.Data(), rec) {
				t.Errorf("got data %s, want the record %s", ev.Data(), rec)
			}
			checkGolden(t, tt.name+".json", stored(t, ev))
		})
	}
}

// TestTanzuSample checks the conversion against a HorizonSource event as
// Tanzu Sources for Knative emitted it. Two differences are on purpose:
// the time keeps its milliseconds (Tanzu truncated it to the second), and
// knativearrivaltime is the broker's, not the source's.
func TestTanzuSample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "tanzu-horizon-vlsi_userloggedin_rest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sample struct {
		SpecVersion     string          `json:"specversion"`
		Type            string          `json:"type"`
		Source          string          `json:"source"`
		ID              string          `json:"id"`
		Time            time.Time       `json:"time"`
		DataContentType string          `json:"datacontenttype"`
		Data            json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &sample); err != nil {
		t.Fatal(err)
	}
	var rec bytes.Buffer
	if err := json.Compact(&rec, sample.Data); err != nil {
		t.Fatal(err)
	}
	ev, err := Converter{Source: sample.Source}.Convert(rec.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got := []string{ev.SpecVersion(), ev.Type(), ev.Source(), ev.ID(), ev.DataContentType()}
	want := []string{sample.SpecVersion, sample.Type, sample.Source, sample.ID, sample.DataContentType}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attributes differ from the Tanzu sample (-want +got):\n%s", diff)
	}
	if ev.Time().Truncate(time.Second) != sample.Time || ev.Time().UnixMilli() != 1701870485733 {
		t.Errorf("got time %s, want the sample's %s with its milliseconds (.733) kept", ev.Time(), sample.Time)
	}
	var gotData, wantData any
	_ = json.Unmarshal(ev.Data(), &gotData)
	_ = json.Unmarshal(sample.Data, &wantData)
	if diff := cmp.Diff(wantData, gotData); diff != "" {
		t.Errorf("data differs from the sample (-want +got):\n%s", diff)
	}
	if ev.Subject() != "" || len(ev.Extensions()) != 0 {
		t.Errorf("got subject %q, extensions %v; the Tanzu shape has neither", ev.Subject(), ev.Extensions())
	}
	checkGolden(t, "tanzu-VLSI_USERLOGGEDIN_REST.json", stored(t, ev))
}

func TestConvertTypes(t *testing.T) {
	rec := func(typ string) []byte {
		return []byte(`{"id":7,"type":` + strconv.Quote(typ) + `,"time":1700000000001}`)
	}
	tests := []struct {
		name   string
		format Format
		rec    []byte
		want   string
	}{
		{"tanzu", FormatTanzu, rec("VLSI_USERLOGGEDIN_REST"), "com.vmware.horizon.vlsi_userloggedin_rest.v0"},
		{"default format", "", rec("BROKER_USERLOGGEDIN"), "com.vmware.horizon.broker_userloggedin.v0"},
		{"router", FormatRouter, rec("VLSI_USERLOGGEDIN_REST"), "com.vmware.event.router/horizon.vlsi_userloggedin_rest.v0"},
		{"no type", FormatTanzu, []byte(`{"id":7,"time":1700000000001}`), "com.vmware.horizon.unknown.v0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Converter{Source: "https://hz", Format: tt.format}.Convert(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type() != tt.want || ev.ID() != "7" || ev.Time().UnixMilli() != 1700000000001 {
				t.Errorf("got type %q id %q time %s, want %q, 7 and ...001", ev.Type(), ev.ID(), ev.Time(), tt.want)
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	tests := []struct {
		name string
		c    Converter
		rec  string
	}{
		{"no id", Converter{Source: "https://hz"}, `{"time":1,"type":"X"}`},
		{"null id", Converter{Source: "https://hz"}, `{"id":null,"time":1}`},
		{"id a string", Converter{Source: "https://hz"}, `{"id":"7","time":1}`},
		{"no time", Converter{Source: "https://hz"}, `{"id":7}`},
		{"time with a fraction", Converter{Source: "https://hz"}, `{"id":7,"time":1.5}`},
		{"not an object", Converter{Source: "https://hz"}, `[1,2]`},
		{"unknown format", Converter{Source: "https://hz", Format: "cloudevents"}, `{"id":7,"time":1}`},
		{"no source", Converter{}, `{"id":7,"time":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev, err := tt.c.Convert([]byte(tt.rec)); err == nil {
				t.Errorf("got %v, want an error", ev)
			}
		})
	}
}
