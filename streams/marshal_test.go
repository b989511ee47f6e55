package streams

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cetypes "github.com/cloudevents/sdk-go/v2/types"
	"github.com/google/go-cmp/cmp"
)

func testEvent() event.Event {
	ev := event.New()
	ev.SetID("42")
	ev.SetSource("https://vc01.example.com/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))
	ev.SetExtension("eventclass", "event")
	return ev
}

// allBytes is NUL and every byte from 0x80 to 0xFF: not UTF-8.
func allBytes() []byte {
	b := []byte{0, 'a', 0}
	for c := 0x80; c <= 0xff; c++ {
		b = append(b, byte(c))
	}
	return b
}

// TestMarshalEvent checks the contract of MarshalEvent: valid JSON,
// attributes as the SDK reads them, and data carried byte-exact in the
// member its media type calls for.
func TestMarshalEvent(t *testing.T) {
	withData := func(ct string, data string) event.Event {
		ev := testEvent()
		if ct != "" {
			ev.SetDataContentType(ct)
		}
		ev.DataEncoded = []byte(data)
		return ev
	}
	html := testEvent()
	html.SetSubject("<script>&</script>")
	sep := testEvent()
	sep.SetSubject("line\u2028para\u2029end \"quoted\" back\\slash \x01\t")
	exts := testEvent()
	exts.SetExtension("count", 7)
	exts.SetExtension("flag", true)
	exts.SetExtension("blob", []byte{1, 2, 3})
	exts.SetExtension("when", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	exts.SetExtension("ref", "a\"b")
	exts.SetDataSchema("https://example.com/schema")
	sdkBinary := testEvent()
	if err := sdkBinary.SetData("application/octet-stream", allBytes()); err != nil {
		t.Fatal(err)
	}
	base64JSON := withData(event.ApplicationJSON, `{"Vm":`)
	base64JSON.DataBase64 = true
	markedJSON := withData(event.ApplicationJSON, `{"a": 1}`)
	markedJSON.DataBase64 = true

	tests := []struct {
		name    string
		ev      event.Event
		member  string // "data", "data_base64" or "" for none
		wantErr bool
	}{
		{name: "no data", ev: testEvent()},
		{name: "json data", ev: withData(event.ApplicationJSON, `{"Vm":{"Name":"prod-web-01"},"Key":7}`), member: "data"},
		{name: "json data with white space", ev: withData(event.ApplicationJSON, "{\"b\": 1,  \"a\": [1, 2]}\n"), member: "data"},
		{name: "json data, no content type", ev: withData("", " [1, 2] \n"), member: "data"},
		{name: "json data with html", ev: withData(event.ApplicationJSON, `{"m":"a<b>&c","u":"\u2028"}`), member: "data"},
		{name: "json string data", ev: withData("text/json", `"hello"`), member: "data"},
		{name: "+json data", ev: withData("application/vnd.vmware+json; charset=utf-8", `{"a": true}`), member: "data"},
		{name: "json data marked base64", ev: markedJSON, member: "data"},
		{name: "html in attributes", ev: html},
		{name: "escapes in attributes", ev: sep},
		{name: "extensions of every type", ev: exts},
		{name: "text data", ev: withData("text/plain", "hello <world> & \"quotes\"\n\x00 \u00e9\u4e16 \\"), member: "data"},
		{name: "xml data", ev: withData("application/xml", `<a x="1">&amp;</a>`+"\n"), member: "data"},
		{name: "+xml data", ev: withData("application/atom+xml", `<feed/>`), member: "data"},
		{name: "text data not utf-8", ev: withData("text/plain", "caf\xe9"), member: "data_base64"},
		{name: "binary data", ev: withData("application/octet-stream", string(allBytes())), member: "data_base64"},
		{name: "binary data set by SetData", ev: sdkBinary, member: "data_base64"},
		{name: "image data that happens to be utf-8", ev: withData("image/svg", "abc"), member: "data_base64"},
		{name: "invalid json data marked base64", ev: base64JSON, member: "data_base64"},
		{name: "invalid json data", ev: withData(event.ApplicationJSON, `{"Vm":`), wantErr: true},
		{name: "json data with trailing garbage", ev: withData(event.ApplicationJSON, `{"a":1} x`), wantErr: true},
		{name: "+json data not json", ev: withData("application/x+json", `nope`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := MarshalEvent(&tt.ev)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error: got %v, want error %t", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !json.Valid(body) {
				t.Fatalf("body is not valid JSON: %q", body)
			}
			var members map[string]json.RawMessage
			if err := json.Unmarshal(body, &members); err != nil {
				t.Fatal(err)
			}
			if got := string(members["specversion"]); got != `"1.0"` {
				t.Errorf("got specversion %s, want \"1.0\"", got)
			}
			for _, m := range []string{"data", "data_base64"} {
				if _, ok := members[m]; ok != (m == tt.member) {
					t.Errorf("body %s: got member %q %t, want %t", body, m, ok, !ok)
				}
			}
			if tt.member == "data" && tt.ev.DataContentType() != "" && dataKind(tt.ev.Context.(*event.EventContextV1).DataContentType) == dataJSON {
				// Verbatim, up to the closing brace.
				if want := `"data":` + string(tt.ev.Data()) + "}"; !bytes.HasSuffix(body, []byte(want)) {
					t.Errorf("got body %s, want it to end with %s", body, want)
				}
			}

			got, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(got.Data(), tt.ev.Data()) {
				t.Errorf("Decode(...).Data(): got %q, want %q", got.Data(), tt.ev.Data())
			}
			if got, want := got.DataBase64, tt.member == "data_base64"; got != want {
				t.Errorf("Decode(...).DataBase64: got %t, want %t", got, want)
			}
			if diff := cmp.Diff(canonical(tt.ev.Context), got.Context); diff != "" {
				t.Errorf("Decode(...).Context differs (-want +got):\n%s", diff)
			}

			// The SDK reads the same attributes and, but for +json, the same data.
			sdk := event.New()
			if err := json.Unmarshal(body, &sdk); err != nil {
				if strings.Contains(tt.ev.DataContentType(), "+json") {
					return
				}
				t.Fatalf("json.Unmarshal: %v", err)
			}
			if diff := cmp.Diff(got.Context, sdk.Context); diff != "" {
				t.Errorf("SDK's context differs (-ours +sdk):\n%s", diff)
			}
			want := tt.ev.Data()
			if tt.member == "data" && dataKind(tt.ev.Context.(*event.EventContextV1).DataContentType) == dataJSON {
				want = bytes.TrimRight(want, " \t\r\n") // the SDK leaves out the white space after the value
			}
			if !bytes.Equal(sdk.Data(), want) {
				t.Errorf("SDK's Data(): got %q, want %q", sdk.Data(), want)
			}
		})
	}
}

// canonical returns ec with the extension values JSON has no type for
// (binary, URI, time) as the strings a decoder reads back.
func canonical(ec event.EventContext) event.EventContext {
	ec = ec.Clone()
	for name, v := range ec.GetExtensions() {
		switch v.(type) {
		case string, bool, int32:
		default:
			s, err := cetypes.Format(v)
			if err != nil {
				panic(err)
			}
			_ = ec.SetExtension(name, s)
		}
	}
	return ec
}

// TestMarshalEventShape pins the member order.
func TestMarshalEventShape(t *testing.T) {
	ev := testEvent()
	ev.SetSubject("VmPoweredOnEvent")
	ev.SetExtension("vsphereapiversion", "8.0")
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte("{\"b\": 1,  \"a\": [1, 2]}\n")
	got, err := MarshalEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"specversion":"1.0","id":"42","source":"https://vc01.example.com/sdk","type":"com.vmware.vsphere.VmPoweredOnEvent.v0",` +
		`"subject":"VmPoweredOnEvent","datacontenttype":"application/json","time":"2026-01-02T03:04:05.000000006Z",` +
		`"eventclass":"event","vsphereapiversion":"8.0","data":{"b": 1,  "a": [1, 2]}` + "\n}"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("body differs (-want +got):\n%s", diff)
	}
}

// TestUpgradeV1 checks that a 0.3 event is stored as 1.0 with its data.
func TestUpgradeV1(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
	}{
		{"json", `{"specversion":"0.3","id":"1","source":"urn:x","type":"t","schemaurl":"https://x/s","data":{"a":1}}`, `{"a":1}`},
		{"base64 structured", `{"specversion":"0.3","id":"1","source":"urn:x","type":"t","datacontenttype":"application/octet-stream","datacontentencoding":"base64","data":"AAGA/w=="}`, "\x00\x01\x80\xff"},
		{"text", `{"specversion":"0.3","id":"1","source":"urn:x","type":"t","datacontenttype":"text/plain","data":"hi"}`, "hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := event.New()
			if err := json.Unmarshal([]byte(tt.body), &ev); err != nil {
				t.Fatal(err)
			}
			body, err := MarshalEvent(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if ev.SpecVersion() != event.CloudEventsVersionV03 {
				t.Errorf("MarshalEvent modified its event: got specversion %s, want 0.3", ev.SpecVersion())
			}
			got, err := Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			if got.SpecVersion() != event.CloudEventsVersionV1 {
				t.Errorf("got specversion %s, want 1.0", got.SpecVersion())
			}
			if string(got.Data()) != tt.want {
				t.Errorf("got data %q, want %q", got.Data(), tt.want)
			}
			if _, ok := got.Extensions()[event.DataContentEncodingKey]; ok {
				t.Errorf("got extension %s in %s, want none", event.DataContentEncodingKey, body)
			}
		})
	}

	// A binary-mode 0.3 event with datacontentencoding base64 carries its
	// data still encoded.
	ev := event.New(event.CloudEventsVersionV03)
	ev.SetID("1")
	ev.SetSource("urn:x")
	ev.SetType("t")
	ev.Context = ev.Context.(*event.EventContextV03)
	enc := event.Base64
	ev.Context.(*event.EventContextV03).DataContentEncoding = &enc
	ev.DataEncoded = []byte("AAGA/w==")
	up, err := UpgradeV1(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(up.Data()), "\x00\x01\x80\xff"; got != want {
		t.Errorf("UpgradeV1 of encoded data: got %q, want %q", got, want)
	}
	ev.DataEncoded = []byte("not base64!")
	if _, err := UpgradeV1(ev); err == nil {
		t.Error("UpgradeV1 of invalid base64: got nil error, want error")
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
		`{"specversion":"1.0","id":"a\\b\n\u00e9\ud83d\ude00","source":"urn:x","type":"t\ud800","subject":"\/"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","n":-12,"m":123456789012,"f":false,"x":"\u0001"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"text/xml","data":"<a x=\"1\"/>\n"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"image/png","data_base64":"AAGA\/w=="}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","data_base64":"AAGA/w==","datacontenttype":"image/png"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"application/x+json","data":{"a": 1} }`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"Application/JSON","data":"x"}`,
		`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"text/plain","data":7}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := event.New()
		wantErr := json.Unmarshal(b, &want)
		got, gotErr := Decode(b)
		if gotErr == nil && !sameDataRules(got) {
			return // +json and the like: the SDK cannot read them as JSON
		}
		if gotErr == nil && wantErr != nil && got.DataBase64 && bytes.IndexByte(b, '\\') >= 0 {
			return // the SDK does not unescape data_base64 before datacontenttype
		}
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("Decode(%q) error: got %v, want %v", b, gotErr, wantErr)
		}
		if wantErr != nil {
			return
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b event.Event) bool {
			// Decode keeps the white space after JSON data that ends the object.
			return bytes.Equal(bytes.TrimRight(a.DataEncoded, " \t\r\n"), bytes.TrimRight(b.DataEncoded, " \t\r\n")) &&
				a.DataBase64 == b.DataBase64 && cmp.Equal(a.Context, b.Context)
		})); diff != "" {
			t.Errorf("Decode(%q) differs from json.Unmarshal (-want +got):\n%s", b, diff)
		}
	})
}

// sameDataRules reports whether the SDK and MarshalEvent agree on whether
// ev's data is JSON.
func sameDataRules(ev event.Event) bool {
	if ev.Context == nil || ev.SpecVersion() != event.CloudEventsVersionV1 {
		return true
	}
	mt, _ := ev.Context.GetDataMediaType()
	sdk := false
	switch mt {
	case event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON, "":
		sdk = true
	}
	return sdk == (dataKind(ev.Context.(*event.EventContextV1).DataContentType) == dataJSON)
}

// FuzzMarshal checks MarshalEvent's contract for any data, content type
// and subject: it fails only on JSON data that is not JSON, and otherwise
// writes valid JSON that Decode and the SDK read back.
func FuzzMarshal(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s), "VmPoweredOnEvent", event.ApplicationJSON)
	}
	f.Add([]byte(`{"a":"<&>"}`), "a\u2028b<c>", "text/plain")
	f.Add(allBytes(), "\xff\"", "application/octet-stream")
	f.Add([]byte("caf\xe9"), "x", "text/xml")
	f.Fuzz(func(t *testing.T, data []byte, subject, ct string) {
		ev := event.New()
		ev.SetID("1")
		ev.SetSource("urn:x")
		ev.SetType("t")
		ev.SetSubject(subject)
		ev.SetDataContentType(ct)
		ev.DataEncoded = data
		body, err := MarshalEvent(&ev)
		wantErr := len(data) > 0 && dataKind(ev.Context.(*event.EventContextV1).DataContentType) == dataJSON && !json.Valid(data)
		if (err != nil) != wantErr {
			t.Fatalf("MarshalEvent(data %q, type %q) error: got %v, want error %t", data, ct, err, wantErr)
		}
		if err != nil {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("MarshalEvent(data %q, subject %q, type %q): invalid JSON %q", data, subject, ct, body)
		}
		got, err := Decode(body)
		if err != nil {
			t.Fatalf("Decode(%q): %v", body, err)
		}
		if !bytes.Equal(got.Data(), data) {
			t.Errorf("Decode(%q).Data(): got %q, want %q", body, got.Data(), data)
		}
		// One U+FFFD for each bad byte, as AppendString writes ([]rune does
		// the same; strings.ToValidUTF8 would write one for a run of them).
		if want := string([]rune(ev.Subject())); got.Subject() != want {
			t.Errorf("Decode(%q).Subject(): got %q, want %q", body, got.Subject(), want)
		}
		if want := string([]rune(ev.DataContentType())); got.DataContentType() != want {
			t.Errorf("Decode(%q).DataContentType(): got %q, want %q", body, got.DataContentType(), want)
		}
	})
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "prod-web-01", want: `"prod-web-01"`},
		{name: "html left alone", in: "a<b>&c", want: `"a<b>&c"`},
		{name: "escapes", in: "q\"b\\n\nr\rt\tb\bf\f\x01", want: `"q\"b\\n\nr\rt\tb\bf\f\u0001"`},
		{name: "line separators", in: "a\u2028b\u2029c", want: `"a\u2028b\u2029c"`},
		{name: "invalid utf-8", in: "a\xffb\xc3", want: `"a\ufffdb\ufffd"`},
		{name: "non-ascii kept", in: "é世", want: `"é世"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendString([]byte("x"), tt.in))
			if got != "x"+tt.want {
				t.Errorf("AppendString(%q): got %s, want x%s", tt.in, got, tt.want)
			}
			var back string
			if err := json.Unmarshal([]byte(got[1:]), &back); err != nil {
				t.Fatalf("not a JSON string: %v", err)
			}
			if want := strings.ToValidUTF8(tt.in, "\uFFFD"); back != want {
				t.Errorf("read back: got %q, want %q", back, want)
			}
		})
	}
}
