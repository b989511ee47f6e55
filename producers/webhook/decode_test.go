package webhook

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
)

// TestFastDecodeAsSDK checks that the fast decoding of structured events
// stores what the SDK's JSON format decodes (after prepare), and leaves to the SDK what it
// does not read the same way.
func TestFastDecodeAsSDK(t *testing.T) {
	bodies := []string{
		`{"specversion":"1.0","id":"1","source":"urn:a","type":"t","data":{"a":1}}`,
		`{"specversion":"1.0","id":"1","source":"urn:a","type":"t","datacontenttype":"application/json","data": {"a":[1,2]} }`,
		`{"specversion":"1.0","id":"1","source":"urn:a","type":"t","time":"2026-01-02T03:04:05.123Z","subject":"s","eventclass":"event","n":7,"b":true}`,
		`{"id":"1","specversion":"1.0","source":"urn:a","type":"t","data":"text","datacontenttype":"text/plain"}`,
		`{"specversion":"1.0","id":"1","source":"urn:a","type":"t","data_base64":"aGVsbG8="}`,
		`{"specversion":"0.3","id":"1","source":"urn:a","type":"t","data":{"a":1}}`,
		`{"specversion":"1.0","id":"\u0031","source":"urn:a","type":"t\n"}`,
		`{"specversion":"1.0","id":"1","source":"urn:a","type":"t","ext":{"x":1}}`,
	}
	for _, b := range bodies {
		var want event.Event
		wantErr := format.JSON.Unmarshal([]byte(b), &want)
		got, ok := fastDecode([]byte(b))
		if !ok {
			continue // left to the SDK
		}
		if wantErr != nil {
			t.Errorf("fastDecode(%s) decoded what the SDK refuses: %v", b, wantErr)
			continue
		}
		// The handler stores both after prepare, which trims the white
		// space around JSON data.
		want, _ = prepare(want, true)
		got, _ = prepare(got, true)
		if diff := cmp.Diff(want.String(), got.String()); diff != "" {
			t.Errorf("fastDecode(%s) differs from the SDK (-sdk +fast):\n%s", b, diff)
		}
		if string(want.Data()) != string(got.Data()) {
			t.Errorf("fastDecode(%s) data %q, SDK %q", b, got.Data(), want.Data())
		}
	}
	// Data of a +json type: Decode reads it as JSON, the SDK does not.
	if _, ok := fastDecode([]byte(`{"specversion":"1.0","id":"1","source":"urn:a","type":"t","datacontenttype":"application/x+json","data":{"a":1}}`)); ok {
		t.Error("fastDecode took +json data; want it left to the SDK")
	}
}
