package streams

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
)

// TestMarshalMatchesJSON checks that Encode's body is byte for byte what
// json.Marshal gives, and fails where json.Marshal fails.
func TestMarshalMatchesJSON(t *testing.T) {
	base := func() event.Event {
		ev := event.New()
		ev.SetID("42")
		ev.SetSource("https://vc01.example.com/sdk")
		ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
		ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))
		ev.SetExtension("eventclass", "event")
		return ev
	}
	withData := func(ct string, data string) event.Event {
		ev := base()
		ev.SetDataContentType(ct)
		ev.DataEncoded = []byte(data)
		return ev
	}
	html := base()
	html.SetSubject("<script>&</script>")
	sep := base()
	sep.SetSubject("line\u2028para\u2029end")
	binary := base()
	if err := binary.SetData("application/octet-stream", []byte{0, 1, 2, 0xff}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ev   event.Event
	}{
		{"no data", base()},
		{"json data", withData(event.ApplicationJSON, `{"Vm":{"Name":"prod-web-01"},"Key":7}`)},
		{"json data with spaces", withData(event.ApplicationJSON, "{ \"a\" : [ 1 , 2 ] ,\n \"b\": \"x y\" }")},
		{"json data with html", withData(event.ApplicationJSON, `{"m":"a<b>&c","u":"\u2028"}`)},
		{"html in attributes", html},
		{"line separators", sep},
		{"text data", withData("text/plain", "hello <world> & \"quotes\"\n")},
		{"base64 data", binary},
		{"invalid json data", withData(event.ApplicationJSON, `{"Vm":`)},
		{"json data with trailing garbage", withData(event.ApplicationJSON, `{"a":1} x`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr := json.Marshal(tt.ev)
			got, gotErr := marshal(&tt.ev)
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("error: got %v, want %v", gotErr, wantErr)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("body differs from json.Marshal (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeMatchesJSON checks that Decode accepts and rejects what
// json.Unmarshal does, and decodes the same event.
func TestDecodeMatchesJSON(t *testing.T) {
	valid := `{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"application/json","data":{"a":[1,2]},"ext":"v"}`
	tests := []struct {
		name string
		in   string
	}{
		{"valid", valid},
		{"white space around", " \n" + valid + " \n"},
		{"trailing garbage", valid + " x"},
		{"trailing brace", valid + "}"},
		{"truncated", valid[:len(valid)-1]},
		{"trailing comma in data", `{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":{"a":[1,2,]}}`},
		{"null", `null`},
		{"array", `[]`},
		{"string", `"str"`},
		{"empty", ``},
		{"escapes in data", `{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":"\u00e9\ud83d\ude00"}`},
	}
	for _, tt := range tests {
		in := tt.in
		t.Run(tt.name, func(t *testing.T) {
			want := event.New()
			wantErr := json.Unmarshal([]byte(in), &want)
			got, gotErr := Decode([]byte(in))
			if (gotErr != nil) != (wantErr != nil) {
				t.Fatalf("error: got %v, want %v", gotErr, wantErr)
			}
			if wantErr != nil {
				return
			}
			if diff := cmp.Diff(want.String(), got.String()); diff != "" {
				t.Errorf("event differs from json.Unmarshal's (-want +got):\n%s", diff)
			}
		})
	}
}

var jsonSeeds = []string{
	``, ` `, `{}`, `[]`, `{"a":1}`, `[1,2,3]`, `"x"`, `0`, `-0`, `01`, `1.`, `1.5e+10`, `1E-2`, `-`, `1e`, `.5`,
	`true`, `false`, `null`, `nul`, `truex`, `[1,]`, `{,}`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{1:2}`,
	`"\u00e9"`, `"\u00G9"`, `"\x"`, `"a` + "\t" + `b"`, `"\/\b\f\n\r\t\"\\"`, "\"\xff\xfe\"", `[[[[]]]]`, `[{"a":[{"b":null}]}]`,
	" \n\t\r{ \"a\" : [ 1 , { } ] } \n", `{"a":1}}`, `{"a":1} {}`, `[1 2]`, `"unterminated`, `{"a":"\u12"}`,
	`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"application/json","data":{"a":[1,2]},"ext":"v"}`,
}

// FuzzValidJSON checks scanJSON against json.Valid and json.Compact.
func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		valid, compact := scanJSON(b)
		if want := json.Valid(b); valid != want {
			t.Fatalf("scanJSON(%q) valid: got %t, want %t (json.Valid)", b, valid, want)
		}
		if !valid {
			return
		}
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			t.Fatal(err)
		}
		if want := c.String() == string(b); compact != want {
			t.Errorf("scanJSON(%q) compact: got %t, want %t (json.Compact)", b, compact, want)
		}
	})
}

func TestValidJSONDepth(t *testing.T) {
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		b := []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Errorf("depth %d: got %t, want %t (json.Valid)", depth, got, want)
		}
	}
}

// FuzzDecode checks Decode against json.Unmarshal into an event.
func FuzzDecode(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t"}`,
		`{"specversion":"1.0","id":"1","source":"","type":"t"}`,
		`{"specversion":"1.0","id":"1","source":"%zz","type":"t"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","time":"nope"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","time":"2026-01-02T03:04:05.123Z","subject":"","dataschema":"https://x/s"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":{"a":1},"datacontenttype":"application/json"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"text/plain","data":"hello"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data": [1, 2] }`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data":"x","data":"y"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data_base64":"aGk="}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","Ext":"v"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","ext":1.5,"flag":true,"nil":null}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","":"x"}`,
		`{"specversion":"1.0","specversion":"1.0"}`,
		`{"specversion":"0.3","id":"1","source":"urn:x","type":"t"}`,
		`{"specversion":"2.0"}`,
		`{"id":"1","specversion":"1.0","source":"urn:x","type":"t"}`,
		`{"specversion":"1.0","id":"a\"b","source":"urn:x","type":"t"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"application/json; charset=utf-8","data":{"a":"<&>"}}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"","data":7}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"a","datacontenttype":"b"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","schemaurl":"x","datacontentencoding":"base64"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := event.New()
		wantErr := json.Unmarshal(b, &want)
		got, gotErr := Decode(b)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("Decode(%q) error: got %v, want %v", b, gotErr, wantErr)
		}
		if wantErr != nil {
			return
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b event.Event) bool {
			return a.String() == b.String() && string(a.DataEncoded) == string(b.DataEncoded) &&
				a.DataBase64 == b.DataBase64 && cmp.Equal(a.Context, b.Context)
		})); diff != "" {
			t.Errorf("Decode(%q) differs from json.Unmarshal (-want +got):\n%s", b, diff)
		}
	})
}

// FuzzMarshal checks marshal against json.Marshal for any data and subject.
func FuzzMarshal(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s), "VmPoweredOnEvent")
	}
	f.Add([]byte(`{"a":"<&>"}`), "a\u2028b<c>")
	f.Fuzz(func(t *testing.T, data []byte, subject string) {
		ev := event.New()
		ev.SetID("1")
		ev.SetSource("urn:x")
		ev.SetType("t")
		ev.SetSubject(subject)
		ev.SetDataContentType(event.ApplicationJSON)
		ev.DataEncoded = data
		want, wantErr := json.Marshal(ev)
		got, gotErr := marshal(&ev)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("marshal error: got %v, want %v", gotErr, wantErr)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("marshal(data %q, subject %q):\n got %s\nwant %s", data, subject, got, want)
		}
	})
}
