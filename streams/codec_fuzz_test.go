package streams

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// FuzzCodecRoundTrip checks that every valid event Decode accepts, Encode
// stores and Decode reads back: the stored body is a fixed point (encoding the
// event read back gives the same bytes) and the data survives byte for
// byte.
func FuzzCodecRoundTrip(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	b, err := os.ReadFile(filepath.Join("testdata", "tanzu-DrsVmPoweredOnEvent.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, s := range []string{
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","time":"9999-12-31T23:59:59.999999999+01:00"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","time":"0000-01-01T00:00:00-01:00"}`,
		`{"specversion":"0.3","id":"1","source":"urn:x","type":"t","datacontentencoding":"base64","data":"aGk="}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"text/plain","data_base64":"/w=="}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"application/json","data_base64":"eyJhIjoxfQ=="}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","ext":"2026-01-01T00:00:00Z","n":2147483648}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","dataschema":"http://x/%41","data":null}`,
		// Data the scanner must take as json.Valid does: numbers past a
		// float64, strings with escapes and bytes past ASCII beyond the
		// first eight bytes, nesting past the 64 levels of its bit stack.
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":{"n":1e400,"m":-` + strings.Repeat("9", 400) + `}}`,
		"{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"urn:x\",\"type\":\"t\",\"data\":[\"0123456789\\u00e9\\n\xff\xc3\xa9\"]}",
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":` + strings.Repeat(`[{"a":`, 40) + `1` + strings.Repeat(`}]`, 40) + `}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":` + strings.Repeat(`[{"a":`, 40) + `1` + strings.Repeat(`]}`, 40) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ev, err := Decode(in)
		if err != nil || ev.Validate() != nil {
			return // producers store valid events only
		}
		up, upErr := UpgradeV1(ev)
		m, err := Encode("fuzz", &ev, "")
		if errors.Is(err, errMemberName) {
			return // an extension "Data" read as "data": no body can hold it
		}
		if err != nil {
			if upErr == nil {
				t.Fatalf("Decode(%q) succeeded, Encode failed: %v", in, err)
			}
			return // a 0.3 event that 1.0 cannot express
		}
		if upErr != nil {
			t.Fatalf("Encode took what UpgradeV1 rejects: %v", upErr)
		}
		back, err := Decode(m.Data)
		if err != nil {
			t.Fatalf("Decode(%q), Encode gave %q, which Decode rejects: %v", in, m.Data, err)
		}
		if !bytes.Equal(back.Data(), up.Data()) {
			t.Fatalf("Decode(%q) data %q, after a round trip %q", in, up.Data(), back.Data())
		}
		again, err := Encode("fuzz", &back, "")
		if err != nil {
			t.Fatalf("Encode of %q read back: %v", m.Data, err)
		}
		if !bytes.Equal(again.Data, m.Data) {
			t.Fatalf("Decode(%q): encoding is not a fixed point:\n%s\n%s", in, m.Data, again.Data)
		}
		if back.ID() != ev.ID() || back.Type() != ev.Type() || m.Header.Get(HeaderID) != ev.ID() {
			t.Fatalf("Decode(%q): id/type %q/%q stored as %q/%q", in, ev.ID(), ev.Type(), back.ID(), back.Type())
		}
	})
}

// FuzzUpgradeV1 builds 0.3 and 1.0 events from fuzzed attributes and
// data. UpgradeV1 must return a 1.0 event that keeps the data (decoded
// once when the 0.3 event says base64 and the data is still encoded), or
// an error only for such data that is not base64.
func FuzzUpgradeV1(f *testing.F) {
	f.Add(true, "base64", []byte("aGk="), false, "text/plain", "s")
	f.Add(true, "BASE64", []byte("not base64"), false, "", "")
	f.Add(true, "base64", []byte("hi"), true, "application/octet-stream", "s")
	f.Add(true, "", []byte(`{"a":1}`), false, "application/json", "")
	f.Add(false, "", []byte(`{"a":1}`), false, "application/json", "x\xff")
	f.Fuzz(func(t *testing.T, v03 bool, enc string, data []byte, marked bool, ct, subject string) {
		ev := event.New(event.CloudEventsVersionV1)
		if v03 {
			ev = event.New(event.CloudEventsVersionV03)
			if enc != "" {
				ev.SetDataContentEncoding(enc)
			}
		}
		ev.SetID("1")
		ev.SetSource("urn:x")
		ev.SetType("t")
		ev.SetSubject(subject)
		ev.SetDataContentType(ct)
		ev.DataEncoded, ev.DataBase64 = data, marked
		up, err := UpgradeV1(ev)
		decode := v03 && strings.EqualFold(enc, event.Base64) && !marked && len(data) > 0
		if err != nil {
			if !decode {
				t.Fatalf("UpgradeV1 failed on data it need not decode: %v", err)
			}
			return
		}
		if up.SpecVersion() != event.CloudEventsVersionV1 {
			t.Fatalf("specversion %q", up.SpecVersion())
		}
		if _, ok := up.Extensions()[event.DataContentEncodingKey]; ok {
			t.Fatalf("datacontentencoding kept as an extension")
		}
		if !decode && !bytes.Equal(up.Data(), data) {
			t.Fatalf("data %q, want %q", up.Data(), data)
		}
		if up.ID() != ev.ID() || up.Subject() != ev.Subject() || up.DataContentType() != ev.DataContentType() {
			t.Fatalf("attributes changed: %v", up)
		}
		if ev.SpecVersion() != event.CloudEventsVersionV1 && !bytes.Equal(ev.DataEncoded, data) {
			t.Fatalf("UpgradeV1 modified its argument")
		}
	})
}

// FuzzParseDeadLetter reads arbitrary headers as a dead letter. A header
// set that parses must write the same dead letter again with
// DeadLetter.Msg, its reason cut to 1 KiB on a character boundary.
func FuzzParseDeadLetter(f *testing.F) {
	f.Add("vm-on", strings.Repeat("x", 2000), FailurePermanent, "3", "2026-11-27T10:01:00.000000123Z",
		"vmware.vcenter.vc01.VmPoweredOnEvent", EventStream, "42", "2026-11-27T10:00:00Z")
	f.Add("r", strings.Repeat("x", 1023)+"é", FailureExhausted, "-1", "2026-11-27T10:01:00+05:30", "s", "S", "0", "")
	f.Add("r", "", FailureDecode, "99999999999999999999", "bad", "s", "S", "18446744073709551615", "0000-01-01T00:00:00Z")
	f.Add("", "r", "", "", "", "", "", "", "")
	f.Add("r", "r", "", "", "", "s", "S", "-1", "")
	f.Fuzz(func(t *testing.T, route, reason, failure, attempts, failedAt, subj, stream, seq, storedAt string) {
		h := nats.Header{}
		for k, v := range map[string]string{
			HeaderRoute: route, HeaderReason: reason, HeaderFailure: failure, HeaderAttempts: attempts,
			HeaderFailedAt: failedAt, HeaderOriginalSubject: subj, HeaderOriginalStream: stream,
			HeaderOriginalSequence: seq, HeaderStoredAt: storedAt,
		} {
			if v != "" {
				h.Set(k, v)
			}
		}
		d, err := ParseDeadLetter(h)
		if err != nil {
			if !errors.Is(err, ErrNotDeadLetter) {
				t.Fatalf("error %v, want ErrNotDeadLetter", err)
			}
			return
		}
		if d.Route == "" || d.Origin.Subject == "" || d.Origin.Stream == "" {
			t.Fatalf("parsed a dead letter without route or origin: %+v", d)
		}
		m := d.Msg(nil, h, "S", 1)
		got, err := ParseDeadLetter(m.Header)
		if err != nil {
			t.Fatalf("ParseDeadLetter of a written dead letter: %v", err)
		}
		want := d
		if len(want.Reason) > maxReason {
			if !strings.HasSuffix(got.Reason, "…") || !strings.HasPrefix(want.Reason, strings.TrimSuffix(got.Reason, "…")) {
				t.Fatalf("reason %q is not a prefix of %q", got.Reason, want.Reason)
			}
			if utf8.ValidString(want.Reason) && !utf8.ValidString(got.Reason) {
				t.Fatalf("cutting a reason of %d bytes split a character: %q", len(want.Reason), got.Reason[len(got.Reason)-8:])
			}
			want.Reason = got.Reason
		}
		if got.Route != want.Route || got.Reason != want.Reason || got.Failure != want.Failure ||
			got.Attempts != want.Attempts || !got.FailedAt.Equal(want.FailedAt) ||
			got.Origin.Subject != want.Origin.Subject || got.Origin.Stream != want.Origin.Stream ||
			got.Origin.Sequence != want.Origin.Sequence || !got.Origin.StoredAt.Equal(want.Origin.StoredAt) {
			t.Fatalf("written and read again as %+v, want %+v", got, want)
		}
	})
}

// TestMarshalEventYearRange: Go writes a time after year 9999 with five
// digits, which no RFC 3339 parser (Decode included) reads back, so
// MarshalEvent refuses it instead of storing an event no route can read.
// FuzzConvert of producers/horizon found it (testdata/fuzz there).
func TestMarshalEventYearRange(t *testing.T) {
	for _, tt := range []struct {
		time    time.Time
		wantErr bool
	}{
		{time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), false},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC), true},
		{time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -3600)), true}, // year 10000 in UTC
	} {
		ev := event.New()
		ev.SetID("1")
		ev.SetSource("urn:x")
		ev.SetType("t")
		ev.SetTime(tt.time)
		body, err := MarshalEvent(&ev)
		if (err != nil) != tt.wantErr {
			t.Fatalf("MarshalEvent(time %v): error %v, want error %t", tt.time, err, tt.wantErr)
		}
		if err != nil {
			continue
		}
		back, err := Decode(body)
		if err != nil || !back.Time().Equal(tt.time) {
			t.Errorf("Decode(%s): time %v, error %v; want %v", body, back.Time(), err, tt.time)
		}
	}
}
