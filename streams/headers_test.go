package streams_test

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/streams"
)

// TestDecodeHeaders checks that the event read from the headers Encode
// writes has the id, type, source and subject of the body's event, and
// that headers of any other message are refused.
func TestDecodeHeaders(t *testing.T) {
	ev := event.New()
	ev.SetID("42")
	ev.SetSource("/vcenter/vc01")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetSubject("VmPoweredOnEvent")
	_ = ev.SetData(event.ApplicationJSON, map[string]any{"Key": 42})
	msg, err := streams.Encode("vmware.vcenter.vc01.VmPoweredOnEvent", &ev, "")
	if err != nil {
		t.Fatal(err)
	}
	body, err := streams.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := streams.DecodeHeaders(msg.Header)
	if !ok {
		t.Fatalf("DecodeHeaders(%v): refused", msg.Header)
	}
	for _, c := range []struct{ name, got, want string }{
		{"id", got.ID(), body.ID()},
		{"type", got.Type(), body.Type()},
		{"source", got.Source(), body.Source()},
		{"subject", got.Subject(), body.Subject()},
		{"specversion", got.SpecVersion(), body.SpecVersion()},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q (the body's)", c.name, c.got, c.want)
		}
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the event is not valid: %v", err)
	}

	noSubject := event.New()
	noSubject.SetID("43")
	noSubject.SetSource("/vcenter/vc01")
	noSubject.SetType("t")
	m2, err := streams.Encode("s", &noSubject, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := streams.DecodeHeaders(m2.Header); !ok || got.Subject() != "" {
		t.Errorf("without a subject: got (%q, %v), want (\"\", true)", got.Subject(), ok)
	}

	refused := map[string]func(h nats.Header){
		"no content type":                      func(h nats.Header) { h.Del(streams.HeaderContentType) },
		"another content type":                 func(h nats.Header) { h.Set(streams.HeaderContentType, "application/json") },
		"no id":                                func(h nats.Header) { h.Del(streams.HeaderID) },
		"two ids":                              func(h nats.Header) { h.Add(streams.HeaderID, "44") },
		"no type":                              func(h nats.Header) { h.Del(streams.HeaderType) },
		"no source":                            func(h nats.Header) { h.Del(streams.HeaderSource) },
		"a source that is not a URI reference": func(h nats.Header) { h.Set(streams.HeaderSource, "%zz") },
	}
	for name, change := range refused {
		h := nats.Header{}
		for k, v := range msg.Header {
			h[k] = append([]string(nil), v...)
		}
		change(h)
		if _, ok := streams.DecodeHeaders(h); ok {
			t.Errorf("%s: DecodeHeaders accepted %v", name, h)
		}
	}
	if _, ok := streams.DecodeHeaders(nil); ok {
		t.Error("DecodeHeaders(nil): accepted")
	}
}
