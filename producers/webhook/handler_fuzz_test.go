package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/webhook"
	"github.com/vrelay/vrelay/streams"
)

// encodingPublisher is the fuzz target's producers.Publisher: it encodes
// every record as the JetStream publisher does (streams.Encode, an
// *producers.EventError for the first that fails, nothing kept then) and
// keeps the events of a call that succeeded. It stands in for JetStream,
// which is too slow to start per input; the target is the handler's
// parsing.
// It also reads each stored body back as a route would, and keeps the
// first error of that in unreadable.
type encodingPublisher struct {
	got        []event.Event
	unreadable error
}

func (p *encodingPublisher) Publish(_ context.Context, recs ...producers.Record) error {
	for i := range recs {
		m, err := streams.Encode("fuzz", &recs[i].Event, recs[i].MsgID)
		if err != nil {
			return &producers.EventError{Index: i, ID: recs[i].Event.ID(), Err: err}
		}
		if _, err := streams.Decode(m.Data); err != nil && p.unreadable == nil {
			p.unreadable = fmt.Errorf("stored %q, which Decode rejects: %w", m.Data, err)
		}
	}
	for i := range recs {
		p.got = append(p.got, recs[i].Event)
	}
	return nil
}

// Fuzz credentials: long enough that a response quoting them by chance is
// not a concern.
const (
	fuzzUser     = "fuzz-user"
	fuzzPassword = "pw-Kx81-not-in-any-message"
	fuzzToken    = "tok-Qz27-not-in-any-message"
)

// Content modes of FuzzHandler's mode argument.
const (
	modeBinary = iota
	modeStructured
	modeBatch
	modeRaw // Content-Type as given
)

// FuzzHandler drives the webhook handler with arbitrary headers and bodies
// in binary, structured and batch mode, with and without authentication.
// It checks that the handler answers only 200, 4xx or 503; publishes
// nothing on a 4xx; on a 200 publishes events that are valid, that the
// codec can store, and as many as the answer counts; publishes nothing
// for a request without the configured credentials; and never writes a
// credential into its answer.
func FuzzHandler(f *testing.F) {
	binary := "Ce-Specversion: 1.0\nCe-Id: 42\nCe-Source: https://vc01.example.com/sdk\nCe-Type: com.vmware.vsphere.VmPoweredOnEvent.v0"
	structured := `{"specversion":"1.0","id":"42","source":"https://vc01.example.com/sdk","type":"com.vmware.vsphere.VmPoweredOnEvent.v0","data":{"Key":42}}`
	for _, name := range []string{"tanzu-DrsVmPoweredOnEvent.json", "router-VmPoweredOffEvent.json"} {
		b, err := os.ReadFile(filepath.Join("..", "vcenter", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(modeStructured), false, "", "", b)
		f.Add(uint8(modeBatch), true, "Bearer "+fuzzToken, "", append(append([]byte("["), b...), ']'))
	}
	f.Add(uint8(modeBinary), false, "", binary, []byte(`{"Key":42}`))
	f.Add(uint8(modeBinary), false, "", binary+"\nContent-Type: text/plain", []byte("caf\xe9"))
	f.Add(uint8(modeBinary), false, "", "Ce-Specversion: 0.3\nCe-Id: 1\nCe-Source: urn:x\nCe-Type: t\nCe-Datacontentencoding: base64", []byte("aGk="))
	f.Add(uint8(modeBinary), true, "Basic ZnV6ei11c2VyOnB3LUt4ODEtbm90LWluLWFueS1tZXNzYWdl", binary, []byte(`{}`))
	f.Add(uint8(modeBinary), true, "Bearer wrong", binary, []byte(`{}`))
	f.Add(uint8(modeBinary), true, fuzzToken, binary, []byte(`{}`))
	f.Add(uint8(modeStructured), false, "", "", []byte(structured))
	f.Add(uint8(modeStructured), true, "bearer  "+fuzzToken+" ", "", []byte(structured))
	f.Add(uint8(modeStructured), false, "", "", []byte(`{"specversion":"0.3","id":"1","source":"urn:x","type":"t","datacontentencoding":"base64","data":"aGk="}`))
	f.Add(uint8(modeStructured), false, "", "", []byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","x":"\xff"}`))
	f.Add(uint8(modeStructured), false, "", "", []byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","datacontenttype":"application/x+json","data":"{"}`))
	f.Add(uint8(modeStructured), false, "", "", []byte(`{"specversion":"0.3","id":"1","source":"urn:x","type":"t","a b":"x"}`))
	f.Add(uint8(modeBatch), false, "", "", []byte("["+structured+","+structured+"]"))
	f.Add(uint8(modeBatch), false, "", "", []byte(`[]`))
	f.Add(uint8(modeBatch), false, "", "", []byte(`[1,{"specversion":"1.0"}]`))
	f.Add(uint8(modeRaw), false, "", "Content-Type: application/cloudevents+xml", []byte(`<x/>`))
	f.Add(uint8(modeRaw), false, "", "Content-Type: text/plain", []byte(`hello`))

	plain := fuzzSource(f, webhook.Config{})
	authed := fuzzSource(f, webhook.Config{Auth: webhook.AuthConfig{
		Basic:  webhook.BasicAuth{Username: fuzzUser, Password: secret.Ref{FromFile: fuzzSecretFile(f, fuzzPassword)}},
		Bearer: webhook.BearerAuth{Token: secret.Ref{FromFile: fuzzSecretFile(f, fuzzToken)}},
	}})

	f.Fuzz(func(t *testing.T, mode uint8, auth bool, authz, headers string, body []byte) {
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		switch mode % 4 {
		case modeStructured:
			req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
		case modeBatch:
			req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		case modeBinary:
			req.Header.Set("Content-Type", "application/json")
		}
		for line := range strings.Lines(headers) {
			k, v, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
			v = strings.TrimSpace(v)
			if !validHeader(k, v) {
				continue // the server rejects it before any handler
			}
			req.Header.Add(k, v)
		}
		if authz != "" && validHeader("Authorization", authz) {
			req.Header.Set("Authorization", authz)
		}

		src := plain
		if auth {
			src = authed
		}
		pub := &encodingPublisher{}
		rec := httptest.NewRecorder()
		src.Handler(pub).ServeHTTP(rec, req)
		code, resp := rec.Code, rec.Body.String()

		switch {
		case code == http.StatusOK:
		case code >= 400 && code < 500:
			if len(pub.got) > 0 {
				t.Fatalf("answered %d but published %d events: %s", code, len(pub.got), resp)
			}
		default:
			t.Fatalf("status %d, want 200, 4xx or 503: %s", code, resp)
		}
		for _, s := range []string{fuzzPassword, fuzzToken} {
			if strings.Contains(resp, s) {
				t.Fatalf("answer %d quotes a credential: %s", code, resp)
			}
		}
		if auth && len(pub.got) > 0 && !authorized(req) {
			t.Fatalf("published %d events for Authorization %q", len(pub.got), req.Header.Get("Authorization"))
		}
		if pub.unreadable != nil {
			t.Fatal(pub.unreadable)
		}
		if code != http.StatusOK {
			return
		}
		var accepted struct{ Accepted *int }
		if err := json.Unmarshal(rec.Body.Bytes(), &accepted); err != nil || accepted.Accepted == nil {
			t.Fatalf("200 answer %q is not {\"accepted\":n}: %v", resp, err)
		}
		if *accepted.Accepted != len(pub.got) || len(pub.got) == 0 {
			t.Fatalf("answer counts %d events, published %d", *accepted.Accepted, len(pub.got))
		}
		for i, ev := range pub.got {
			if err := ev.Validate(); err != nil {
				t.Fatalf("published event %d is not valid: %v", i, err)
			}
			if ev.SpecVersion() != event.CloudEventsVersionV1 {
				t.Fatalf("published event %d has specversion %q, want 1.0", i, ev.SpecVersion())
			}
		}
	})
}

func fuzzSource(f *testing.F, cfg webhook.Config) *webhook.Source {
	f.Helper()
	src, err := webhook.New(cfg)
	if err != nil {
		f.Fatalf("New() error: %v", err)
	}
	return src
}

func fuzzSecretFile(f *testing.F, value string) string {
	f.Helper()
	path := filepath.Join(f.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(value+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	return path
}

// authorized reports whether req carries the fuzz credentials, judged
// apart from the handler: Basic with the user and password, or Bearer
// with the token, the scheme in any case.
func authorized(req *http.Request) bool {
	if user, pw, ok := req.BasicAuth(); ok {
		return user == fuzzUser && pw == fuzzPassword
	}
	scheme, rest, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) == fuzzToken
}

// validHeader reports whether Go's HTTP server would pass on a header
// field: a token as name, and no control character but tab in the value.
func validHeader(name, value string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	for _, c := range []byte(value) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
