package httpsink

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/go-cmp/cmp"
)

func binaryEvents(t testing.TB) map[string]event.Event {
	t.Helper()
	full := event.New()
	full.SetID("16957152")
	full.SetSource("https://vc01.example.com/sdk")
	full.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	full.SetSubject("VmPoweredOnEvent")
	full.SetDataSchema("https://schemas.example.com/vm.json")
	full.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("CET", 3600)))
	full.SetExtension("eventclass", "event")
	full.SetExtension("vsphereapiversion", "8.0.3.0")
	full.SetExtension("count", 42)
	full.SetExtension("flag", true)
	full.SetExtension("ref", &url.URL{Scheme: "https", Host: "example.com", Path: "/a b"})
	full.SetExtension("when", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err := full.SetData(event.ApplicationJSON, map[string]any{"Vm": map[string]any{"Name": "prod-<web>-01"}}); err != nil {
		t.Fatal(err)
	}

	minimal := event.New()
	minimal.SetID("1")
	minimal.SetSource("urn:x")
	minimal.SetType("t")

	text := event.New()
	text.SetID("2")
	text.SetSource("/relative/source")
	text.SetType("t")
	if err := text.SetData("text/plain; charset=utf-8", "hello"); err != nil {
		t.Fatal(err)
	}

	v03 := full.Clone()
	v03.SetSpecVersion(event.CloudEventsVersionV03)

	return map[string]event.Event{"full": full, "minimal": minimal, "text data": text, "spec 0.3": v03}
}

// TestWriteBinaryMatchesSDK checks that writeBinary writes what the SDK's
// binary mode writes: headers, body and content length.
func TestWriteBinaryMatchesSDK(t *testing.T) {
	for name, ev := range binaryEvents(t) {
		t.Run(name, func(t *testing.T) {
			want, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := cehttp.WriteRequest(context.Background(), binding.ToMessage(&ev), want); err != nil {
				t.Fatal(err)
			}
			got, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeBinary(context.Background(), got, &ev); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want.Header, got.Header); diff != "" {
				t.Errorf("headers differ from the SDK's (-sdk +writeBinary):\n%s", diff)
			}
			if got.ContentLength != want.ContentLength {
				t.Errorf("content length: got %d, want %d", got.ContentLength, want.ContentLength)
			}
			if diff := cmp.Diff(body(t, want), body(t, got)); diff != "" {
				t.Errorf("body differs (-sdk +writeBinary):\n%s", diff)
			}
			if (want.GetBody == nil) != (got.GetBody == nil) {
				t.Errorf("GetBody set: got %t, want %t", got.GetBody != nil, want.GetBody != nil)
			}
		})
	}
}

func TestWriteBinaryBadExtension(t *testing.T) {
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("urn:x")
	ev.SetType("t")
	ev.Context.(*event.EventContextV1).Extensions = map[string]any{"bad": struct{}{}}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
	if err := writeBinary(context.Background(), req, &ev); err == nil {
		t.Error("writeBinary with an extension of no CloudEvents type: got nil, want error")
	}
}

func body(t *testing.T, r *http.Request) string {
	t.Helper()
	if r.Body == nil {
		return ""
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
