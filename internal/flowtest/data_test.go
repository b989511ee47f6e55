package flowtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/streams"
)

// rawReceiver keeps the raw request each event arrived in, by CloudEvent id.
type rawReceiver struct {
	mu   sync.Mutex
	reqs map[string]rawRequest
	got  chan string
}

type rawRequest struct {
	header http.Header
	body   []byte
}

func newRawReceiver() *rawReceiver {
	return &rawReceiver{reqs: map[string]rawRequest{}, got: make(chan string, 100)}
}

func (r *rawReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := req.Header.Get("Ce-Id")
	if id == "" { // structured mode
		var env struct{ ID string }
		if err := json.Unmarshal(body, &env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id = env.ID
	}
	r.mu.Lock()
	r.reqs[id] = rawRequest{header: req.Header.Clone(), body: body}
	r.mu.Unlock()
	r.got <- id
}

// wait waits for n deliveries and returns the requests by event id.
func (r *rawReceiver) wait(t *testing.T, n int) map[string]rawRequest {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for range n {
		select {
		case <-r.got:
		case <-timeout:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("receiver got %d of %d events", len(r.reqs), n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reqs
}

// Where a structured-mode body carries data.
const (
	inData   = "data"        // the JSON value itself
	inString = "string"      // "data" as a JSON string
	inBase64 = "data_base64" // standard base64 in a JSON string
)

// dataCase is data of one media type that must arrive byte-exact.
type dataCase struct {
	name   string
	ct     string
	data   []byte
	member string // inData, inString or inBase64
}

func dataCases() []dataCase {
	octets := []byte{0, 'a', 0, 0}
	for c := 0x80; c <= 0xff; c++ {
		octets = append(octets, byte(c))
	}
	return []dataCase{
		{name: "json", ct: "application/json", data: []byte("{\"b\": 1,  \"a\": [1, 2]}\n"), member: inData},
		{name: "xml", ct: "application/xml", data: []byte("<VmPoweredOnEvent a=\"1\">\n  <key>7</key> &amp; \"q\"\n</VmPoweredOnEvent>\n"), member: inString},
		{name: "text", ct: "text/plain; charset=utf-8", data: []byte("Grüße aus Köln, 世界 \\ \"quoted\"\t\r\nend"), member: inString},
		{name: "octets", ct: "application/octet-stream", data: octets, member: inBase64},
	}
}

// want returns the data a sink must deliver for data received in mode in.
// In a structured-mode body JSON data is a value inside the envelope, so the
// white space around it is the envelope's: what is kept is the value's text
// exactly, with the white space inside it.
func (dc dataCase) want(in string) []byte {
	if in == httpsink.ModeStructured && dc.member == inData {
		return bytes.Trim(dc.data, " \t\r\n")
	}
	return dc.data
}

// structuredBody returns a structured-mode event carrying dc's data as a
// sender could write it, with white space around the data value.
func (dc dataCase) structuredBody(id string) string {
	var member string
	switch dc.member {
	case inData:
		member = `"data":  ` + string(dc.data)
	case inString:
		s, _ := json.Marshal(string(dc.data))
		member = `"data": ` + string(s)
	default:
		member = `"data_base64": "` + base64.StdEncoding.EncodeToString(dc.data) + `"`
	}
	return fmt.Sprintf("{\"specversion\": \"1.0\", \"id\": %q, \"source\": \"https://example.com/app\", \"type\": \"com.example.data\",\n"+
		" \"datacontenttype\": %q,\n %s \n}\n", id, dc.ct, member)
}

// TestDataByteExact sends data of each kind in both webhook modes through
// the pipeline to an HTTP sink in both modes, and checks that the receiver
// gets the data byte for byte and that the stream holds valid JSON.
func TestDataByteExact(t *testing.T) {
	modes := []string{httpsink.ModeBinary, httpsink.ModeStructured}
	for _, out := range modes {
		t.Run("sink "+out, func(t *testing.T) {
			rcv := newRawReceiver()
			srv := httptest.NewServer(rcv)
			t.Cleanup(srv.Close)
			p := startPipeline(t, "", srv.URL, out)

			sent := 0
			for _, dc := range dataCases() {
				for _, in := range modes {
					id := dc.name + "-" + in
					var code int
					if in == httpsink.ModeBinary {
						code = post(t, p.hookURL, dc.ct, map[string]string{
							"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "https://example.com/app", "Ce-Type": "com.example.data",
						}, string(dc.data))
					} else {
						code = post(t, p.hookURL, "application/cloudevents+json", nil, dc.structuredBody(id))
					}
					if code != http.StatusOK {
						t.Fatalf("post %s: got status %d, want 200", id, code)
					}
					sent++
				}
			}
			reqs := rcv.wait(t, sent)

			for _, dc := range dataCases() {
				for _, in := range modes {
					id := dc.name + "-" + in
					t.Run(dc.name+" from "+in, func(t *testing.T) {
						req, ok := reqs[id]
						if !ok {
							t.Fatalf("event %s not delivered", id)
						}
						want := dc.want(in)
						if out == httpsink.ModeBinary {
							if !bytes.Equal(req.body, want) {
								t.Errorf("got body %q, want the data %q", req.body, want)
							}
							if got := req.header.Get("Content-Type"); got != dc.ct {
								t.Errorf("got Content-Type %q, want %q", got, dc.ct)
							}
							return
						}
						if got := structuredData(t, req.body, dc.member); !bytes.Equal(got, want) {
							t.Errorf("got data %q in body %s, want %q", got, req.body, want)
						}
					})
				}
			}
			for i, body := range storedBodies(t, p.js, sent) {
				if !json.Valid(body) {
					t.Errorf("stored event %d is not valid JSON: %q", i+1, body)
				}
			}
		})
	}
}

// structuredData returns the data of a structured-mode body, read from the
// member it must be in: verbatim JSON (the data is the last member, up to
// the closing brace), a JSON string, or data_base64 decoded.
func structuredData(t *testing.T, body []byte, member string) []byte {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("structured body is not valid JSON: %q", body)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		t.Fatal(err)
	}
	if got := string(members["specversion"]); got != `"1.0"` {
		t.Errorf("got specversion %s, want \"1.0\"", got)
	}
	switch member {
	case inData:
		raw, ok := members["data"]
		if !ok {
			t.Fatalf("no member data in %s", body)
		}
		// encoding/json drops the white space after the value; the body
		// ends with the value, that white space and the closing brace.
		rest := bytes.TrimRight(body[:len(body)-1], " \t\r\n")
		if !bytes.HasSuffix(rest, raw) {
			t.Fatalf("data is not the last member of %s", body)
		}
		return body[len(rest)-len(raw) : len(body)-1]
	case inString:
		var s string
		if err := json.Unmarshal(members["data"], &s); err != nil {
			t.Fatalf("data of %s is not a JSON string: %v", body, err)
		}
		return []byte(s)
	default:
		var s string
		if err := json.Unmarshal(members["data_base64"], &s); err != nil {
			t.Fatalf("data_base64 of %s is not a JSON string: %v", body, err)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("data_base64 of %s: %v", body, err)
		}
		return b
	}
}

// storedBodies returns the bodies of the first n events in the stream.
func storedBodies(t *testing.T, js jetstream.JetStream, n int) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for seq := uint64(1); seq <= uint64(n); seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get stored event %d: %v", seq, err)
		}
		out = append(out, m.Data)
	}
	return out
}

// TestLargeBinaryStoredAsBase64 checks that 1 MiB of binary data costs about
// 4/3 of its size in the stream (data_base64), not a JSON string of escapes,
// and arrives byte for byte.
func TestLargeBinaryStoredAsBase64(t *testing.T) {
	rcv := newRawReceiver()
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	p := startPipeline(t, "", srv.URL, httpsink.ModeBinary)

	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	code := post(t, p.hookURL, "application/octet-stream", map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "big", "Ce-Source": "https://example.com/app", "Ce-Type": "com.example.data",
	}, string(data))
	if code != http.StatusOK {
		t.Fatalf("post: got status %d, want 200", code)
	}
	reqs := rcv.wait(t, 1)
	if !bytes.Equal(reqs["big"].body, data) {
		t.Errorf("got %d bytes of data, want the %d bytes sent", len(reqs["big"].body), len(data))
	}
	stored := storedBodies(t, p.js, 1)[0]
	if !json.Valid(stored) {
		t.Fatal("stored event is not valid JSON")
	}
	if !bytes.Contains(stored, []byte(`"data_base64":"`)) {
		t.Errorf("stored event starts %q, want data_base64", stored[:200])
	}
	if want := base64.StdEncoding.EncodedLen(len(data)) + 1024; len(stored) > want {
		t.Errorf("stored event is %d bytes, want at most %d (base64 and the envelope)", len(stored), want)
	}
}

// TestDataFilterOnVerbatimJSON checks that a filter reads JSON data stored
// verbatim, white space and trailing newline included.
func TestDataFilterOnVerbatimJSON(t *testing.T) {
	rcv := newRawReceiver()
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	p := startPipeline(t, `data.b == 1 && data.a[1] == 2`, srv.URL, httpsink.ModeStructured)

	for _, tt := range []struct{ id, data string }{
		{"match", "{\"b\": 1,  \"a\": [1, 2]}\n"},
		{"other", "{\"b\": 2,  \"a\": [1, 2]}\n"},
	} {
		code := post(t, p.hookURL, "application/json", map[string]string{
			"Ce-Specversion": "1.0", "Ce-Id": tt.id, "Ce-Source": "https://example.com/app", "Ce-Type": "com.example.data",
		}, tt.data)
		if code != http.StatusOK {
			t.Fatalf("post %s: got status %d, want 200", tt.id, code)
		}
	}
	reqs := rcv.wait(t, 1)
	if _, ok := reqs["match"]; !ok {
		t.Fatalf("got events %v, want match", reqs)
	}
	// The route consumes in order: once "other" is settled, it is not coming.
	c, err := p.js.Consumer(t.Context(), streams.EventStream, "flow")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ack floor %d, want 2", info.AckFloor.Stream)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if _, ok := rcv.reqs["other"]; ok {
		t.Error("event other delivered, want it filtered out")
	}
}
