package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers/webhook"
)

// view is what the tests check of a published event: everything a sink
// could see.
type view struct {
	SpecVersion, ID, Source, Type, Subject, Time string
	DataContentType                              string
	Extensions                                   map[string]any
	Data                                         string
}

func viewOf(e event.Event) view {
	v := view{
		SpecVersion:     e.SpecVersion(),
		ID:              e.ID(),
		Source:          e.Source(),
		Type:            e.Type(),
		Subject:         e.Subject(),
		DataContentType: e.DataContentType(),
		Extensions:      e.Extensions(),
		Data:            string(e.Data()),
	}
	if !e.Time().IsZero() {
		v.Time = e.Time().UTC().Format(time.RFC3339Nano)
	}
	if len(v.Extensions) == 0 {
		v.Extensions = nil
	}
	return v
}

func viewsOf(evs []event.Event) []view {
	out := []view{}
	for _, e := range evs {
		out = append(out, viewOf(e))
	}
	return out
}

var binaryHeaders = map[string]string{
	"Ce-Specversion": "1.0",
	"Ce-Id":          "42",
	"Ce-Source":      "https://vc01.example.com/sdk",
	"Ce-Type":        "com.vmware.vsphere.VmPoweredOnEvent.v0",
}

// with returns a copy of m with kv (key, value, key, value...) set; an
// empty value deletes the key.
func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

const (
	ctStructured = "application/cloudevents+json"
	ctBatch      = "application/cloudevents-batch+json"
)

// ev returns a minimal structured-mode event with the given id.
func ev(id string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"/test","type":"com.example.test"}`, id)
}

func TestHandlerAccepts(t *testing.T) {
	tests := []struct {
		name string
		req  request
		want []view
	}{
		{
			name: "binary with extensions and JSON data",
			req: request{
				header: with(binaryHeaders,
					"Ce-Subject", "VmPoweredOnEvent",
					"Ce-Time", "2026-01-02T03:04:05.123Z",
					"Ce-Eventclass", "event",
					"Ce-Vsphereapiversion", "8.0.3.0",
					"Content-Type", "application/json"),
				body: `{"Vm": {"Name": "prod-01"}, "Key": 7}`,
			},
			want: []view{{
				SpecVersion: "1.0", ID: "42", Source: "https://vc01.example.com/sdk",
				Type: "com.vmware.vsphere.VmPoweredOnEvent.v0", Subject: "VmPoweredOnEvent",
				Time: "2026-01-02T03:04:05.123Z", DataContentType: "application/json",
				Extensions: map[string]any{"eventclass": "event", "vsphereapiversion": "8.0.3.0"},
				Data:       `{"Vm": {"Name": "prod-01"}, "Key": 7}`,
			}},
		},
		{
			name: "binary with binary data",
			req: request{
				header: with(binaryHeaders, "Content-Type", "application/octet-stream"),
				body:   "\x00\xff\r\n raw",
			},
			want: []view{{
				SpecVersion: "1.0", ID: "42", Source: "https://vc01.example.com/sdk",
				Type: "com.vmware.vsphere.VmPoweredOnEvent.v0", DataContentType: "application/octet-stream",
				Data: "\x00\xff\r\n raw",
			}},
		},
		{
			name: "binary without data",
			req:  request{header: binaryHeaders},
			want: []view{{
				SpecVersion: "1.0", ID: "42", Source: "https://vc01.example.com/sdk",
				Type: "com.vmware.vsphere.VmPoweredOnEvent.v0",
			}},
		},
		{
			name: "binary with a body larger than 64 KiB",
			req: request{
				header: with(binaryHeaders, "Content-Type", "text/plain"),
				body:   strings.Repeat("0123456789abcdef", 8<<10),
			},
			want: []view{{
				SpecVersion: "1.0", ID: "42", Source: "https://vc01.example.com/sdk",
				Type: "com.vmware.vsphere.VmPoweredOnEvent.v0", DataContentType: "text/plain",
				Data: strings.Repeat("0123456789abcdef", 8<<10),
			}},
		},
		{
			name: "structured with JSON data",
			req: request{
				header: map[string]string{"Content-Type": ctStructured + "; charset=utf-8"},
				body: `{"specversion":"1.0","id":"h-1","source":"/horizon/hz01","type":"com.vmware.horizon.vlsi_userloggedin_rest.v0",
					"subject":"VLSI_USERLOGGEDIN_REST","time":"2026-01-02T03:04:05Z","datacontenttype":"application/json",
					"severity":"INFO","attempt":3,"data":{"UserName": "alice", "Tags": [1, 2]}}`,
			},
			want: []view{{
				SpecVersion: "1.0", ID: "h-1", Source: "/horizon/hz01",
				Type: "com.vmware.horizon.vlsi_userloggedin_rest.v0", Subject: "VLSI_USERLOGGEDIN_REST",
				Time: "2026-01-02T03:04:05Z", DataContentType: "application/json",
				Extensions: map[string]any{"severity": "INFO", "attempt": int32(3)},
				Data:       `{"UserName": "alice", "Tags": [1, 2]}`,
			}},
		},
		{
			name: "structured with base64 data",
			req: request{
				header: map[string]string{"Content-Type": ctStructured},
				body:   `{"specversion":"1.0","id":"b","source":"/s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AP8NCg=="}`,
			},
			want: []view{{
				SpecVersion: "1.0", ID: "b", Source: "/s", Type: "t",
				DataContentType: "application/octet-stream", Data: "\x00\xff\r\n",
			}},
		},
		{
			name: "structured with XML data",
			req: request{
				header: map[string]string{"Content-Type": ctStructured},
				body:   `{"specversion":"1.0","id":"x","source":"/s","type":"t","datacontenttype":"application/xml","data":"<Vm name=\"a\"/>"}`,
			},
			want: []view{{
				SpecVersion: "1.0", ID: "x", Source: "/s", Type: "t",
				DataContentType: "application/xml", Data: `<Vm name="a"/>`,
			}},
		},
		{
			name: "binary with non-ASCII attributes",
			req: request{
				header: with(binaryHeaders, "Ce-Subject", "Grüße, 世界", "Ce-Note", "café", "Content-Type", "text/plain; charset=utf-8"),
				body:   "grüße\n",
			},
			want: []view{{
				SpecVersion: "1.0", ID: "42", Source: "https://vc01.example.com/sdk",
				Type: "com.vmware.vsphere.VmPoweredOnEvent.v0", Subject: "Grüße, 世界",
				DataContentType: "text/plain; charset=utf-8", Extensions: map[string]any{"note": "café"}, Data: "grüße\n",
			}},
		},
		{
			// The white space around the value belongs to the envelope.
			name: "structured JSON data keeps inner white space",
			req: request{
				header: map[string]string{"Content-Type": ctStructured},
				body:   "{\"specversion\":\"1.0\",\"id\":\"w\",\"source\":\"/s\",\"type\":\"t\",\"data\":  {\"b\": 1,  \"a\": [1, 2]}  \n}\n",
			},
			want: []view{{
				SpecVersion: "1.0", ID: "w", Source: "/s", Type: "t", Data: `{"b": 1,  "a": [1, 2]}`,
			}},
		},
		{
			name: "structured 0.3 is upgraded to 1.0",
			req: request{
				header: map[string]string{"Content-Type": ctStructured},
				body: `{"specversion":"0.3","id":"o","source":"/s","type":"t","schemaurl":"https://example.com/s",` +
					`"datacontenttype":"application/octet-stream","datacontentencoding":"base64","data":"AP8NCg=="}`,
			},
			want: []view{{
				SpecVersion: "1.0", ID: "o", Source: "/s", Type: "t",
				DataContentType: "application/octet-stream", Data: "\x00\xff\r\n",
			}},
		},
		{
			name: "binary 0.3 is upgraded to 1.0",
			req: request{
				header: with(binaryHeaders, "Ce-Specversion", "0.3", "Content-Type", "application/json"),
				body:   "{\"a\": 1}\n",
			},
			want: []view{{
				SpecVersion: "1.0", ID: "42", Source: "https://vc01.example.com/sdk",
				Type: "com.vmware.vsphere.VmPoweredOnEvent.v0", DataContentType: "application/json",
				Data: "{\"a\": 1}\n",
			}},
		},
		{
			name: "batch",
			req: request{
				header: map[string]string{"Content-Type": ctBatch + "; charset=utf-8"},
				body: `[` + ev("1") + `,
					{"specversion":"1.0","id":"2","source":"/test","type":"com.example.test","subject":"s2","ext":"x","datacontenttype":"application/json","data":{"n":2}}]`,
			},
			want: []view{
				{SpecVersion: "1.0", ID: "1", Source: "/test", Type: "com.example.test"},
				{
					SpecVersion: "1.0", ID: "2", Source: "/test", Type: "com.example.test", Subject: "s2",
					DataContentType: "application/json", Extensions: map[string]any{"ext": "x"}, Data: `{"n":2}`,
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recorder{}
			srv := serve(t, webhook.Config{}, pub)
			resp, body := tt.req.do(t, srv.URL)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200", resp.StatusCode, body)
			}
			if want := fmt.Sprintf(`{"accepted":%d}`+"\n", len(tt.want)); body != want {
				t.Errorf("got body %q, want %q", body, want)
			}
			if got := len(pub.contexts()); got != 1 {
				t.Errorf("got %d Publish calls, want 1 per request", got)
			}
			if diff := cmp.Diff(tt.want, viewsOf(pub.published())); diff != "" {
				t.Errorf("published events differ (-want +got):\n%s", diff)
			}
		})
	}
}

// TestResponses pins the status, headers and body of each kind of request in
// testdata/responses/*.golden, and checks that only 2xx requests published.
func TestResponses(t *testing.T) {
	manyEvents := "[" + strings.Join([]string{ev("1"), ev("2"), ev("3"), ev("4")}, ",") + "]"
	tests := []struct {
		name          string
		req           request
		wantCode      int
		wantReason    string // a substring of the error in the body
		wantIndex     int    // of the bad batch event, when wantReason is set; -1 for none
		wantPublished int
	}{
		{name: "binary", req: request{header: binaryHeaders, body: `{"a":1}`}, wantCode: 200, wantPublished: 1},
		{name: "structured", req: request{header: map[string]string{"Content-Type": ctStructured}, body: ev("1")}, wantCode: 200, wantPublished: 1},
		{name: "batch", req: request{header: map[string]string{"Content-Type": ctBatch}, body: "[" + ev("1") + "," + ev("2") + "]"}, wantCode: 200, wantPublished: 2},
		{
			name:     "options handshake",
			req:      request{method: http.MethodOptions, header: map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net", "WebHook-Request-Rate": "120"}},
			wantCode: 200,
		},
		{name: "options plain", req: request{method: http.MethodOptions}, wantCode: 204},

		{
			name:       "not a cloudevent",
			req:        request{header: map[string]string{"Content-Type": "application/json"}, body: `{"a":1}`},
			wantCode:   400,
			wantReason: "not a CloudEvent: no ce-specversion header",
		},
		{
			name:       "no headers at all",
			req:        request{body: `hello`},
			wantCode:   400,
			wantReason: "not a CloudEvent",
		},
		{
			name:       "unsupported ce-specversion",
			req:        request{header: with(binaryHeaders, "Ce-Specversion", "0.1")},
			wantCode:   400,
			wantReason: `unsupported ce-specversion "0.1"`,
		},
		{
			name:       "binary missing id",
			req:        request{header: with(binaryHeaders, "Ce-Id", "")},
			wantCode:   400,
			wantReason: `missing required attribute "id"`,
		},
		{
			name:       "binary missing id source type",
			req:        request{header: map[string]string{"Ce-Specversion": "1.0"}},
			wantCode:   400,
			wantReason: `missing required attributes "id", "source", "type"`,
		},
		{
			name:       "binary invalid time",
			req:        request{header: with(binaryHeaders, "Ce-Time", "yesterday")},
			wantCode:   400,
			wantReason: "invalid binary-mode event",
		},
		{
			name:       "binary subject not UTF-8",
			req:        request{header: with(binaryHeaders, "Ce-Subject", "caf\xe9")},
			wantCode:   400,
			wantReason: `invalid attribute "subject": not valid UTF-8`,
		},
		{
			name:       "binary content type not UTF-8",
			req:        request{header: with(binaryHeaders, "Content-Type", "text/plain; name=\"\xff\""), body: "x"},
			wantCode:   400,
			wantReason: `invalid attribute "datacontenttype": not valid UTF-8`,
		},
		{
			name:       "binary extension not UTF-8",
			req:        request{header: with(binaryHeaders, "Ce-Myext", "\x80\x81")},
			wantCode:   400,
			wantReason: `invalid attribute "myext": not valid UTF-8`,
		},
		{
			name:       "binary 0.3 with datacontentencoding",
			req:        request{header: with(binaryHeaders, "Ce-Specversion", "0.3", "Ce-Datacontentencoding", "base64"), body: "AP8NCg=="},
			wantCode:   400,
			wantReason: "ce-datacontentencoding is not supported in binary mode",
		},
		{
			name: "structured 0.3 invalid base64 data",
			req: request{header: map[string]string{"Content-Type": ctStructured},
				body: `{"specversion":"0.3","id":"1","source":"/s","type":"t","datacontentencoding":"base64","data":"not base64!"}`},
			wantCode:   400,
			wantReason: "invalid structured-mode event",
		},
		{
			name:       "structured id not UTF-8",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: `{"specversion":"1.0","id":"a` + "\xff" + `","source":"/s","type":"t"}`},
			wantCode:   400,
			wantReason: `invalid attribute "id": not valid UTF-8`,
		},
		{
			name:       "structured extension not UTF-8",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: `{"specversion":"1.0","id":"1","source":"/s","type":"t","myext":"` + "\xc3" + `"}`},
			wantCode:   400,
			wantReason: `invalid extension: not valid UTF-8: extension "myext"`,
		},
		{
			name:       "batch event not UTF-8",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: `[` + ev("1") + `,{"specversion":"1.0","id":"2","source":"/s","type":"t","subject":"` + "\xfe" + `"}]`},
			wantCode:   400,
			wantReason: `batch event 1: invalid attribute "subject": not valid UTF-8`,
			wantIndex:  1,
		},
		{
			name:       "structured invalid JSON",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: `{"specversion":"1.0",`},
			wantCode:   400,
			wantReason: "invalid JSON",
		},
		{
			name:       "structured trailing garbage",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: ev("1") + " x"},
			wantCode:   400,
			wantReason: "invalid JSON at byte",
		},
		{
			name:       "structured not an object",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: `[` + ev("1") + `]`},
			wantCode:   400,
			wantReason: "must be a JSON object",
		},
		{
			name:       "structured empty body",
			req:        request{header: map[string]string{"Content-Type": ctStructured}},
			wantCode:   400,
			wantReason: "must be a JSON object",
		},
		{
			name:       "structured missing id",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: `{"specversion":"1.0","source":"/s","type":"t"}`},
			wantCode:   400,
			wantReason: `missing required attribute "id"`,
		},
		{
			name:       "structured missing specversion",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: `{"id":"1","source":"/s","type":"t"}`},
			wantCode:   400,
			wantReason: `missing required attribute "specversion"`,
		},
		{
			name:       "structured unknown specversion",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: `{"specversion":"2.0","id":"1","source":"/s","type":"t"}`},
			wantCode:   400,
			wantReason: `invalid attribute "specversion"`,
		},
		{
			name:       "structured id of wrong type",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: `{"specversion":"1.0","id":1,"source":"/s","type":"t"}`},
			wantCode:   400,
			wantReason: "invalid structured-mode event",
		},
		{
			name:       "batch empty",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: `[]`},
			wantCode:   400,
			wantReason: "empty batch",
		},
		{
			name:       "batch null",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: `null`},
			wantCode:   400,
			wantReason: "empty batch",
		},
		{
			name:       "batch not an array",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: ev("1")},
			wantCode:   400,
			wantReason: "must be a JSON array",
		},
		{
			name:       "batch invalid JSON",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: `[` + ev("1") + `,`},
			wantCode:   400,
			wantReason: "invalid JSON",
		},
		{
			name:       "batch larger than maxBatchEvents",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: manyEvents},
			wantCode:   400,
			wantReason: "batch of 4 events is larger than maxBatchEvents (3)",
		},
		{
			name:       "batch with one bad event",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: `[` + ev("1") + `,{"specversion":"1.0","source":"/s","type":"t"},` + ev("3") + `]`},
			wantCode:   400,
			wantReason: `batch event 1: missing required attribute "id"`,
			wantIndex:  1,
		},
		{
			name:       "batch with a non-object",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: `[` + ev("1") + `,"x"]`},
			wantCode:   400,
			wantReason: "batch event 1: not a JSON object",
			wantIndex:  1,
		},
		{
			name:       "batch with unknown specversion",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: `[{"specversion":"0.1","id":"1","source":"/s","type":"t"}]`},
			wantCode:   400,
			wantReason: `batch event 0: invalid attribute "specversion"`,
			wantIndex:  0,
		},
		{
			name:       "batch with no specversion",
			req:        request{header: map[string]string{"Content-Type": ctBatch}, body: `[` + ev("1") + `,{"id":"2","source":"/s","type":"t"}]`},
			wantCode:   400,
			wantReason: `batch event 1: missing required attribute "specversion"`,
			wantIndex:  1,
		},
		{
			name:       "xml format",
			req:        request{header: map[string]string{"Content-Type": "application/cloudevents+xml"}, body: `<event/>`},
			wantCode:   415,
			wantReason: `unsupported event format "application/cloudevents+xml"`,
		},
		{
			name:       "xml format with ce headers",
			req:        request{header: with(binaryHeaders, "Content-Type", "application/cloudevents+xml"), body: `<event/>`},
			wantCode:   415,
			wantReason: "unsupported event format",
		},
		{
			name:       "body too large",
			req:        request{header: map[string]string{"Content-Type": ctStructured}, body: strings.Repeat(" ", 1025) + ev("1")},
			wantCode:   413,
			wantReason: "larger than maxBodyBytes (1024)",
		},
		{
			name:       "chunked body too large",
			req:        request{header: binaryHeaders, body: strings.Repeat("x", 1025), chunked: true},
			wantCode:   413,
			wantReason: "larger than maxBodyBytes (1024)",
		},
		{
			name:       "GET",
			req:        request{method: http.MethodGet},
			wantCode:   405,
			wantReason: "method GET not allowed",
		},
		{
			name:       "PUT",
			req:        request{method: http.MethodPut, header: binaryHeaders},
			wantCode:   405,
			wantReason: "method PUT not allowed",
		},
		{
			name:       "wrong path",
			req:        request{path: "/other", header: binaryHeaders},
			wantCode:   404,
			wantReason: `no webhook at path "/other"`,
		},
		{
			name:       "options on wrong path",
			req:        request{method: http.MethodOptions, path: "/other", header: map[string]string{"WebHook-Request-Origin": "x"}},
			wantCode:   404,
			wantReason: "no webhook at path",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recorder{}
			srv := serve(t, webhook.Config{MaxBodyBytes: 1024, MaxBatchEvents: 3}, pub)
			resp, body := tt.req.do(t, srv.URL)
			if resp.StatusCode != tt.wantCode {
				t.Errorf("got status %d, want %d; body %s", resp.StatusCode, tt.wantCode, body)
			}
			if got := len(pub.published()); got != tt.wantPublished {
				t.Errorf("got %d events published, want %d", got, tt.wantPublished)
			}
			if tt.wantReason != "" {
				var got struct {
					Error string
					Index *int
				}
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatalf("body %q is not JSON: %v", body, err)
				}
				if !strings.Contains(got.Error, tt.wantReason) {
					t.Errorf("got error %q, want it to contain %q", got.Error, tt.wantReason)
				}
				isBatchEvent := strings.HasPrefix(tt.wantReason, "batch event")
				switch {
				case isBatchEvent && (got.Index == nil || *got.Index != tt.wantIndex):
					t.Errorf("got index %v, want %d", got.Index, tt.wantIndex)
				case !isBatchEvent && got.Index != nil:
					t.Errorf("got index %d, want none", *got.Index)
				}
			}
			golden(t, "responses/"+strings.ReplaceAll(tt.name, " ", "_"), dump(resp, body))
		})
	}
}

// dump renders a response for a golden file: status, headers but the
// variable ones, body.
func dump(resp *http.Response, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", resp.Status)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range resp.Header {
			if !yield(k) {
				return
			}
		}
	}) {
		if k == "Date" || k == "Content-Length" {
			continue
		}
		for _, v := range resp.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintf(&b, "\n%s", body)
	return b.String()
}

func TestAuth(t *testing.T) {
	basic := webhook.BasicAuth{Username: "vc", Password: secret.Ref{FromFile: writeSecret(t, "s3cret")}}
	bearer := webhook.BearerAuth{Token: secret.Ref{FromFile: writeSecret(t, "tok-123")}}
	basicHeader := func(user, pw string) string {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.SetBasicAuth(user, pw)
		return r.Header.Get("Authorization")
	}
	wwwBasic := `Basic realm="vrelay", charset="UTF-8"`
	wwwBearer := `Bearer realm="vrelay"`

	tests := []struct {
		name     string
		auth     webhook.AuthConfig
		authz    string // Authorization header; none when empty
		wantCode int
		wantWWW  []string // WWW-Authenticate values on 401
	}{
		{name: "basic ok", auth: webhook.AuthConfig{Basic: basic}, authz: basicHeader("vc", "s3cret"), wantCode: 200},
		{name: "basic wrong password", auth: webhook.AuthConfig{Basic: basic}, authz: basicHeader("vc", "s3cre"), wantCode: 401, wantWWW: []string{wwwBasic}},
		{name: "basic wrong user", auth: webhook.AuthConfig{Basic: basic}, authz: basicHeader("vcx", "s3cret"), wantCode: 401, wantWWW: []string{wwwBasic}},
		{name: "basic malformed", auth: webhook.AuthConfig{Basic: basic}, authz: "Basic !!!", wantCode: 401, wantWWW: []string{wwwBasic}},
		{name: "basic missing", auth: webhook.AuthConfig{Basic: basic}, wantCode: 401, wantWWW: []string{wwwBasic}},
		{name: "bearer ok", auth: webhook.AuthConfig{Bearer: bearer}, authz: "Bearer tok-123", wantCode: 200},
		{name: "bearer scheme is case-insensitive", auth: webhook.AuthConfig{Bearer: bearer}, authz: "bearer tok-123", wantCode: 200},
		{name: "bearer wrong", auth: webhook.AuthConfig{Bearer: bearer}, authz: "Bearer tok-124", wantCode: 401, wantWWW: []string{wwwBearer}},
		{name: "bearer prefix of token", auth: webhook.AuthConfig{Bearer: bearer}, authz: "Bearer tok-12", wantCode: 401, wantWWW: []string{wwwBearer}},
		{name: "bearer missing", auth: webhook.AuthConfig{Bearer: bearer}, wantCode: 401, wantWWW: []string{wwwBearer}},
		{name: "basic sent, only bearer configured", auth: webhook.AuthConfig{Bearer: bearer}, authz: basicHeader("vc", "s3cret"), wantCode: 401, wantWWW: []string{wwwBearer}},
		{name: "both configured, basic ok", auth: webhook.AuthConfig{Basic: basic, Bearer: bearer}, authz: basicHeader("vc", "s3cret"), wantCode: 200},
		{name: "both configured, bearer ok", auth: webhook.AuthConfig{Basic: basic, Bearer: bearer}, authz: "Bearer tok-123", wantCode: 200},
		{name: "both configured, wrong", auth: webhook.AuthConfig{Basic: basic, Bearer: bearer}, authz: "Bearer s3cret", wantCode: 401, wantWWW: []string{wwwBasic, wwwBearer}},
		{name: "both configured, none sent", auth: webhook.AuthConfig{Basic: basic, Bearer: bearer}, wantCode: 401, wantWWW: []string{wwwBasic, wwwBearer}},
		{name: "both configured, other scheme", auth: webhook.AuthConfig{Basic: basic, Bearer: bearer}, authz: "Digest x", wantCode: 401, wantWWW: []string{wwwBasic, wwwBearer}},
		{name: "bearer typo, token glued to scheme", auth: webhook.AuthConfig{Bearer: bearer}, authz: "Bearer:s3cret", wantCode: 401, wantWWW: []string{wwwBearer}},
		{name: "bare token, no scheme", auth: webhook.AuthConfig{Bearer: bearer}, authz: "s3cret", wantCode: 401, wantWWW: []string{wwwBearer}},
		{name: "bare password, no scheme", auth: webhook.AuthConfig{Basic: basic}, authz: "s3cret trailing", wantCode: 401, wantWWW: []string{wwwBasic}},
		{name: "none configured", authz: "Bearer anything", wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recorder{}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			srv := serve(t, webhook.Config{Auth: tt.auth}, pub, webhook.WithLogger(log))
			resp, body := request{header: with(binaryHeaders, "Authorization", tt.authz)}.do(t, srv.URL)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("got status %d (%s), want %d", resp.StatusCode, body, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantWWW, resp.Header.Values("WWW-Authenticate")); diff != "" {
				t.Errorf("WWW-Authenticate differs (-want +got):\n%s", diff)
			}
			wantPublished := 0
			if tt.wantCode == 200 {
				wantPublished = 1
			}
			if got := len(pub.published()); got != wantPublished {
				t.Errorf("got %d events published, want %d", got, wantPublished)
			}
			if tt.wantCode == 401 && strings.Contains(body, "s3cret") {
				t.Errorf("401 body %q quotes a credential", body)
			}
			if strings.Contains(logs.String(), "s3cret") {
				t.Errorf("debug log quotes a credential:\n%s", logs.String())
			}
		})
	}
}

// TestAuthBeforeBody checks that an unauthenticated request learns nothing
// about its body: a malformed body still gets 401, not 400.
func TestAuthBeforeBody(t *testing.T) {
	bearer := webhook.BearerAuth{Token: secret.Ref{FromFile: writeSecret(t, "tok")}}
	srv := serve(t, webhook.Config{Auth: webhook.AuthConfig{Bearer: bearer}}, &recorder{})
	resp, body := request{header: map[string]string{"Content-Type": ctStructured}, body: "{"}.do(t, srv.URL)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("got status %d (%s), want 401", resp.StatusCode, body)
	}
	golden(t, "responses/unauthorized", dump(resp, body))
}

func TestPublishFailure(t *testing.T) {
	tests := []struct {
		name string
		pub  *recorder
		cfg  webhook.Config
	}{
		{name: "publisher error", pub: &recorder{err: errors.New("nats: timeout")}},
		{
			name: "publisher slower than publishTimeout",
			pub:  &recorder{block: make(chan struct{})},
			cfg:  webhook.Config{PublishTimeout: 20 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.cfg, tt.pub)
			resp, body := request{header: map[string]string{"Content-Type": ctBatch}, body: "[" + ev("1") + "," + ev("2") + "]"}.do(t, srv.URL)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("got status %d (%s), want 503", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Retry-After"); got != "1" {
				t.Errorf("got Retry-After %q, want %q", got, "1")
			}
			if strings.Contains(body, "nats") {
				t.Errorf("503 body %q leaks the internal error", body)
			}
			if got := len(tt.pub.published()); got != 0 {
				t.Errorf("got %d events published, want 0", got)
			}
			ctxs := tt.pub.contexts()
			if len(ctxs) != 1 {
				t.Fatalf("got %d Publish calls, want 1", len(ctxs))
			}
			if _, ok := ctxs[0].Deadline(); !ok {
				t.Error("Publish got a context without deadline, want publishTimeout applied")
			}
			golden(t, "responses/publish_failure", dump(resp, body))
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	pub := &recorder{}
	srv := serve(t, webhook.Config{}, pub, webhook.WithRegisterer(reg), webhook.WithName("hooks"))
	// A second source on the same registry shares the counter.
	if _, err := webhook.New(webhook.Config{}, webhook.WithRegisterer(reg), webhook.WithName("other")); err != nil {
		t.Fatalf("New() with a shared registerer: %v", err)
	}
	request{header: binaryHeaders}.do(t, srv.URL)
	request{header: binaryHeaders}.do(t, srv.URL)
	request{}.do(t, srv.URL)
	request{method: http.MethodGet, path: "/x"}.do(t, srv.URL)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "vrelay_webhook_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if v := m.GetCounter().GetValue(); v > 0 || labels["code"] == "503" {
				got[labels["source"]+"/"+labels["code"]] = v
			}
		}
	}
	want := map[string]float64{"hooks/200": 2, "hooks/400": 1, "hooks/404": 1, "hooks/503": 0, "other/503": 0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("counters differ (-want +got):\n%s", diff)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     webhook.Config
		opts    []webhook.Option
		wantErr string
	}{
		{
			name:    "invalid config",
			cfg:     webhook.Config{Path: "events"},
			wantErr: `path: must start with "/", got "events"`,
		},
		{
			name:    "unset password variable",
			cfg:     webhook.Config{Auth: webhook.AuthConfig{Basic: webhook.BasicAuth{Username: "u", Password: secret.Ref{FromEnv: "VRELAY_TEST_UNSET_VARIABLE"}}}},
			wantErr: "auth.basic.password: environment variable VRELAY_TEST_UNSET_VARIABLE is not set",
		},
		{
			name:    "missing token file",
			cfg:     webhook.Config{Auth: webhook.AuthConfig{Bearer: webhook.BearerAuth{Token: secret.Ref{FromFile: "/nonexistent/token"}}}},
			wantErr: "auth.bearer.token: read secret file",
		},
		{
			name:    "missing certificate",
			cfg:     webhook.Config{TLS: webhook.TLSConfig{CertFile: "/nonexistent/tls.crt", KeyFile: "/nonexistent/tls.key"}},
			wantErr: "tls: open /nonexistent/tls.crt",
		},
		{
			name:    "empty name",
			opts:    []webhook.Option{webhook.WithName("")},
			wantErr: "webhook: empty source name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.New(tt.cfg, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestLogs checks that rejections are logged at debug level with their
// reason, and that neither bodies nor credentials reach the log.
func TestLogs(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bearer := webhook.BearerAuth{Token: secret.Ref{FromFile: writeSecret(t, "tok-SECRET")}}
	pub := &recorder{}
	srv := serve(t, webhook.Config{Auth: webhook.AuthConfig{Bearer: bearer}}, pub, webhook.WithLogger(log))

	const marker = "BODY-MARKER"
	authz := "Bearer tok-SECRET"
	request{header: map[string]string{"Authorization": "Bearer tok-WRONG"}, body: marker}.do(t, srv.URL)
	request{header: map[string]string{"Authorization": authz, "Content-Type": ctStructured}, body: `{"id":"` + marker + `",`}.do(t, srv.URL)
	request{header: map[string]string{"Authorization": authz, "Content-Type": ctStructured}, body: `{"specversion":"1.0","id":1,"x":"` + marker + `"}`}.do(t, srv.URL)
	request{header: map[string]string{"Authorization": authz, "Content-Type": ctBatch}, body: `[{"specversion":"1.0","data":"` + marker + `"}]`}.do(t, srv.URL)
	pub.fail(errors.New("nats: no responders"))
	request{header: with(binaryHeaders, "Authorization", authz), body: marker}.do(t, srv.URL)

	got := buf.String()
	for _, secretText := range []string{marker, "tok-SECRET", "tok-WRONG"} {
		if strings.Contains(got, secretText) {
			t.Errorf("log contains %q:\n%s", secretText, got)
		}
	}
	type line struct {
		Level, Msg, Reason, Source string
		Status                     int
	}
	var lines []line
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		var ln line
		if err := json.Unmarshal([]byte(l), &ln); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, ln)
	}
	want := []line{
		{Level: "DEBUG", Msg: "rejected webhook request", Reason: "invalid credentials", Source: "webhook", Status: 401},
		{Level: "DEBUG", Msg: "rejected webhook request", Reason: "invalid JSON at byte 20: unexpected end of JSON input", Source: "webhook", Status: 400},
		{Level: "DEBUG", Msg: "rejected webhook request", Reason: "invalid structured-mode event", Source: "webhook", Status: 400},
		{Level: "DEBUG", Msg: "rejected webhook request", Reason: `batch event 0: missing required attributes "id", "source", "type"`, Source: "webhook", Status: 400},
		{Level: "WARN", Msg: "publish webhook events", Source: "webhook"},
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("log lines differ (-want +got):\n%s", diff)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
