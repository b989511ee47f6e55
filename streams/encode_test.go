package streams_test

import (
	"bytes"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/streams"
)

// TestEncodeTrusted: for valid data EncodeTrusted gives what Encode gives;
// for data that is not JSON, Encode still fails and EncodeTrusted, which
// takes the data as it is, does not scan it. A base64-marked event is a
// sender's data and is checked either way.
func TestEncodeTrusted(t *testing.T) {
	ev := benchEvent()
	ev.SetSubject("s")
	want, err := streams.Encode(benchSubject, &ev, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := streams.EncodeTrusted(benchSubject, &ev, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, want.Data) || got.Subject != want.Subject {
		t.Fatalf("got %s %s\nwant %s %s", got.Subject, got.Data, want.Subject, want.Data)
	}
	for k, v := range want.Header {
		if g := got.Header[k]; len(g) != 1 || g[0] != v[0] {
			t.Errorf("header %s: got %q, want %q", k, g, v)
		}
	}

	bad := benchEvent()
	bad.DataEncoded = []byte(`{"a":`)
	if _, err := streams.Encode(benchSubject, &bad, ""); err == nil {
		t.Fatal("Encode: got no error for data that is not JSON")
	}
	m, err := streams.EncodeTrusted(benchSubject, &bad, "")
	if err != nil {
		t.Fatalf("EncodeTrusted: %v", err)
	}
	if !bytes.HasSuffix(m.Data, []byte(`"data":{"a":}`)) {
		t.Errorf("EncodeTrusted: got body %s, want the data as given", m.Data)
	}

	bad.DataBase64 = true
	m, err = streams.EncodeTrusted(benchSubject, &bad, "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m.Data, []byte(`"data_base64":`)) {
		t.Errorf("base64-marked data: got body %s, want data_base64", m.Data)
	}
}

// TestEncodeHeadersApart: the header values share one allocation, but
// adding to one header leaves the others as they were.
func TestEncodeHeadersApart(t *testing.T) {
	ev := benchEvent()
	ev.SetSubject("subj")
	for _, enc := range []func(string, *event.Event, string) (*nats.Msg, error){streams.Encode, streams.EncodeTrusted} {
		m, err := enc(benchSubject, &ev, "id-1")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for k, v := range m.Header {
			want[k] = v[0]
		}
		for k := range want {
			m.Header.Add(k, "added")
		}
		for k, v := range want {
			if got := m.Header.Values(k); len(got) != 2 || got[0] != v || got[1] != "added" {
				t.Errorf("header %s: got %q, want [%q added]", k, got, v)
			}
		}
	}
}

func BenchmarkEncodeTrusted(b *testing.B) {
	ev := benchEvent()
	msg, err := streams.EncodeTrusted(benchSubject, &ev, "")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := streams.EncodeTrusted(benchSubject, &ev, ""); err != nil {
			b.Fatal(err)
		}
	}
}
