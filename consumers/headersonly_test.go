package consumers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// bodySink records the body and Ce-Id of each structured request.
type bodySink struct {
	mu     sync.Mutex
	bodies map[string]string // by Ce-Id of the stored message
	got    chan string
}

func (s *bodySink) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	id := r.Header.Get("X-Test-Id")
	s.mu.Lock()
	s.bodies[id] = string(b)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	s.got <- id
}

// TestHeadersOnlyRoute checks what a route that needs no more than the
// message headers and the stored body does: it sends a message that
// carries vrelay's encoding headers as it is stored, without parsing the
// body, so a body other than the one its headers describe goes to the
// sink as it is; a message without those headers is decoded as before, so
// one that does not decode is dead-lettered. A route whose filter reads
// data decodes every message.
func TestHeadersOnlyRoute(t *testing.T) {
	_, js := natstest.Run(t)
	sink := &bodySink{bodies: map[string]string{}, got: make(chan string, 10)}
	srv := httptest.NewServer(http.HandlerFunc(sink.serve))
	t.Cleanup(srv.Close)

	good := event.New()
	good.SetID("good")
	good.SetSource("/vcenter/vc01")
	good.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	_ = good.SetData(event.ApplicationJSON, map[string]any{"Key": 1})
	encoded, err := streams.Encode("vmware.vcenter.vc01.VmPoweredOnEvent", &good, "")
	if err != nil {
		t.Fatal(err)
	}
	// The same headers over a body that is not JSON: trusted, sent as is.
	trusted := &nats.Msg{Subject: encoded.Subject, Header: nats.Header{}, Data: []byte("not json")}
	for k, v := range encoded.Header {
		trusted.Header[k] = v
	}
	trusted.Header.Set(streams.HeaderID, "trusted")
	trusted.Header.Set(streams.HeaderMsgID, "trusted")
	// No encoding headers: decoded, and dead-lettered as it does not decode.
	raw := &nats.Msg{Subject: encoded.Subject, Header: nats.Header{streams.HeaderMsgID: {"raw"}}, Data: []byte("not json either")}
	for _, m := range []*nats.Msg{encoded, trusted, raw} {
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}

	letters := uint64(0) // in the dead-letter stream, of every route so far
	for _, tt := range []struct {
		route, filter string
		delivered     []string // by Ce-Id
		deadLetters   uint64
	}{
		{"headers", `type endsWith "VmPoweredOnEvent.v0" && source startsWith "/vcenter/"`, []string{"good", "trusted"}, 1},
		{"data", `data.Key == 1 || id == "trusted"`, []string{"good"}, 2},
	} {
		t.Run(tt.route, func(t *testing.T) {
			f, err := filters.Compile(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			hs := &idHeaderSink{url: srv.URL, t: t}
			start(t, js, consumers.Route{Name: tt.route, Filter: f, Delivery: fastDelivery()}, hs)
			for range tt.delivered {
				select {
				case <-sink.got:
				case <-time.After(30 * time.Second):
					t.Fatal("an event was not delivered")
				}
			}
			letters += tt.deadLetters
			deadline := time.Now().Add(30 * time.Second)
			for dlqCount(t, js) < letters && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if got := dlqCount(t, js); got != letters {
				t.Fatalf("dead letters of all routes so far: got %d, want %d", got, letters)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			for _, id := range tt.delivered {
				want := string(encoded.Data)
				if id == "trusted" {
					want = "not json"
				}
				if got := sink.bodies[id]; got != want {
					t.Errorf("body of %s: got %q, want %q", id, got, want)
				}
			}
			clear(sink.bodies)
		})
	}
}

// idHeaderSink is an httpsink in structured mode that also names the
// event's id in a request header, so the receiver can tell the requests
// apart whatever their bodies.
type idHeaderSink struct {
	url string
	t   *testing.T
}

func (s *idHeaderSink) sink(id string) *httpsink.Sink {
	h, err := httpsink.New(httpsink.Config{URL: s.url, Mode: httpsink.ModeStructured,
		Headers: map[string]string{"X-Test-Id": id}})
	if err != nil {
		s.t.Error(err)
	}
	return h
}

func (s *idHeaderSink) Send(ctx context.Context, ev event.Event) error {
	return s.sink(ev.ID()).Send(ctx, ev)
}

func (s *idHeaderSink) SendsStoredBody() bool { return true }
