package httpsink_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/streams"
)

// captured is one request a test server got.
type captured struct {
	contentType string
	body        []byte
}

func captureServer(t *testing.T) (string, <-chan captured) {
	t.Helper()
	got := make(chan captured, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{contentType: r.Header.Get("Content-Type"), body: b}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// TestStructuredData checks that structured mode sends the JSON of
// streams.MarshalEvent, so the data arrives as vrelay stores it.
func TestStructuredData(t *testing.T) {
	binary := []byte{0, 1, 0x80, 0xfe, 0xff}
	tests := []struct {
		name   string
		ct     string
		data   []byte
		member string
		want   func(raw json.RawMessage) []byte // the data read back from the member
	}{
		{
			name: "json kept verbatim", ct: event.ApplicationJSON, data: []byte("{\"b\": 1,  \"a\": [1, 2]}\n"), member: "data",
			want: nil, // the member's text, up to the closing brace
		},
		{
			name: "text as a string", ct: "text/plain; charset=utf-8", data: []byte("grüße <&>\n"), member: "data",
			want: func(raw json.RawMessage) []byte {
				var s string
				_ = json.Unmarshal(raw, &s)
				return []byte(s)
			},
		},
		{
			name: "binary as data_base64", ct: "application/octet-stream", data: binary, member: "data_base64",
			want: func(raw json.RawMessage) []byte {
				var s string
				_ = json.Unmarshal(raw, &s)
				b, _ := base64.StdEncoding.DecodeString(s)
				return b
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, got := captureServer(t)
			s := newSink(t, httpsink.Config{URL: url, Mode: httpsink.ModeStructured})
			ev := newEvent()
			ev.SetDataContentType(tt.ct)
			ev.DataEncoded = tt.data
			if err := s.Send(t.Context(), ev); err != nil {
				t.Fatalf("Send(): got error %v, want nil", err)
			}
			req := <-got
			if req.contentType != streams.ContentType {
				t.Errorf("got Content-Type %q, want %q", req.contentType, streams.ContentType)
			}
			want, err := streams.MarshalEvent(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(req.body, want) {
				t.Errorf("got body %s, want streams.MarshalEvent's %s", req.body, want)
			}
			if !json.Valid(req.body) {
				t.Fatalf("body is not valid JSON: %q", req.body)
			}
			var members map[string]json.RawMessage
			if err := json.Unmarshal(req.body, &members); err != nil {
				t.Fatal(err)
			}
			raw, ok := members[tt.member]
			if !ok {
				t.Fatalf("got body %s, want member %q", req.body, tt.member)
			}
			if tt.want == nil {
				// encoding/json drops the white space after a value: check the text.
				if want := `"data":` + string(tt.data) + "}"; !bytes.HasSuffix(req.body, []byte(want)) {
					t.Errorf("got body %s, want it to end with %s", req.body, want)
				}
			} else if got := tt.want(raw); !bytes.Equal(got, tt.data) {
				t.Errorf("got data %q, want %q", got, tt.data)
			}
		})
	}
}

// TestStructuredStoredBody checks that the stored body the dispatcher hands
// over is sent as is, not encoded again.
func TestStructuredStoredBody(t *testing.T) {
	url, got := captureServer(t)
	s := newSink(t, httpsink.Config{URL: url, Mode: httpsink.ModeStructured})
	ev := newEvent()
	ev.DataEncoded = []byte(`{"Key":1}`)
	// Not what MarshalEvent would write for ev, so a re-encoding shows.
	stored := []byte(`{"specversion":"1.0","id":"42","source":"/vcenter/vc01","type":"t","data":{"Key": 1}}`)
	ctx := consumers.ContextWithEncoded(t.Context(), stored)
	if err := s.Send(ctx, ev); err != nil {
		t.Fatalf("Send(): got error %v, want nil", err)
	}
	req := <-got
	if !bytes.Equal(req.body, stored) {
		t.Errorf("got body %s, want the stored body %s", req.body, stored)
	}
	if req.contentType != streams.ContentType {
		t.Errorf("got Content-Type %q, want %q", req.contentType, streams.ContentType)
	}

	// Binary mode ignores it: the data is the body.
	url, got = captureServer(t)
	s = newSink(t, httpsink.Config{URL: url, Mode: httpsink.ModeBinary})
	if err := s.Send(ctx, ev); err != nil {
		t.Fatalf("Send(): got error %v, want nil", err)
	}
	if req := <-got; string(req.body) != `{"Key":1}` {
		t.Errorf("binary mode: got body %s, want the data {\"Key\":1}", req.body)
	}
}

func TestEncodedFromContext(t *testing.T) {
	if b, ok := consumers.EncodedFromContext(t.Context()); ok {
		t.Errorf("EncodedFromContext(no body): got %q, true, want false", b)
	}
	ctx := consumers.ContextWithEncoded(t.Context(), []byte(`{}`))
	if b, ok := consumers.EncodedFromContext(ctx); !ok || string(b) != `{}` {
		t.Errorf("EncodedFromContext: got %q, %t, want {}, true", b, ok)
	}
}
