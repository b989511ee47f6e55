package natssink_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/natssink"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

func newEvent(id string) event.Event {
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("https://vc01.example.com/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetSubject("VmPoweredOnEvent")
	ev.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ev.SetExtension("eventclass", "event")
	_ = ev.SetData(event.ApplicationJSON, []byte(`{"Key":42,"Vm":{"Name":"prod-web-01"}}`))
	return ev
}

func newSink(t *testing.T, cfg natssink.Config, opts ...natssink.Option) *natssink.Sink {
	t.Helper()
	s, err := natssink.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New(): %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// subscribe returns a channel of the messages published on subject.
func subscribe(t *testing.T, nc *nats.Conn, subject string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(subject, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

func receive(t *testing.T, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return nil
	}
}

// checkMessage checks that m carries ev as streams.Encode writes it.
func checkMessage(t *testing.T, m *nats.Msg, ev event.Event) {
	t.Helper()
	wantHeaders := map[string]string{
		"Nats-Msg-Id":  ev.Source() + ":" + ev.ID(),
		"Ce-Type":      ev.Type(),
		"Ce-Source":    ev.Source(),
		"Ce-Id":        ev.ID(),
		"Ce-Subject":   ev.Subject(),
		"Content-Type": streams.ContentType,
	}
	for k, want := range wantHeaders {
		if got := m.Header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	want, err := streams.MarshalEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, want) {
		t.Errorf("body:\ngot  %s\nwant %s", m.Data, want)
	}
}

func TestCorePublish(t *testing.T) {
	nc, _ := natstest.Run(t)
	ch := subscribe(t, nc, "republished.>")
	s := newSink(t, natssink.Config{Subject: "republished.{type}"}, natssink.WithConn(nc))

	ev := newEvent("core-1")
	if err := s.Send(t.Context(), ev); err != nil {
		t.Fatalf("Send(): got %v, want nil", err)
	}
	m := receive(t, ch)
	if want := "republished.com_vmware_vsphere_VmPoweredOnEvent_v0"; m.Subject != want {
		t.Errorf("subject: got %q, want %q", m.Subject, want)
	}
	checkMessage(t, m, ev)
}

func TestSourcePlaceholder(t *testing.T) {
	nc, _ := natstest.Run(t)
	ch := subscribe(t, nc, "by-source.>")
	s := newSink(t, natssink.Config{Subject: "by-source.{source}"}, natssink.WithConn(nc))
	if err := s.Send(t.Context(), newEvent("src-1")); err != nil {
		t.Fatal(err)
	}
	if got, want := receive(t, ch).Subject, "by-source.https://vc01_example_com/sdk"; got != want {
		t.Errorf("subject: got %q, want %q", got, want)
	}
}

// The dispatcher hands over the stored body; the sink sends it as is.
func TestSendsStoredBody(t *testing.T) {
	nc, _ := natstest.Run(t)
	ch := subscribe(t, nc, "republished")
	s := newSink(t, natssink.Config{Subject: "republished"}, natssink.WithConn(nc))

	ev := newEvent("stored-1")
	stored, _ := streams.MarshalEvent(&ev)
	stored = append(stored, '\n') // not what MarshalEvent writes: proves it was not re-encoded
	if err := s.Send(consumers.ContextWithEncoded(t.Context(), stored), ev); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch)
	if !bytes.Equal(m.Data, stored) {
		t.Errorf("body: got %q, want the stored body %q", m.Data, stored)
	}
	if got, want := m.Header.Get("Nats-Msg-Id"), ev.Source()+":stored-1"; got != want {
		t.Errorf("Nats-Msg-Id: got %q, want %q", got, want)
	}
}

func TestCoreClosedConnectionIsRetryable(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), "127.0.0.1:0")
	nc, _ := natstest.Connect(t, srv.ClientURL())
	s := newSink(t, natssink.Config{Subject: "republished"}, natssink.WithConn(nc))
	nc.Close()
	err := s.Send(t.Context(), newEvent("closed"))
	if err == nil || consumers.IsPermanent(err) {
		t.Fatalf("Send() on a closed connection: got %v, want a retryable error", err)
	}
	if !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Send() on a closed connection: got %v, want it to wrap nats.ErrConnectionClosed", err)
	}
}

func TestTooLargeIsPermanent(t *testing.T) {
	nc, _ := natstest.Run(t)
	big := newEvent("big")
	_ = big.SetData("text/plain", strings.Repeat("x", int(nc.MaxPayload())+1))
	for _, js := range []bool{false, true} {
		s := newSink(t, natssink.Config{Subject: "republished", JetStream: js}, natssink.WithConn(nc))
		err := s.Send(t.Context(), big)
		if !consumers.IsPermanent(err) || !errors.Is(err, nats.ErrMaxPayload) {
			t.Errorf("Send() of an event above max payload (jetstream %v): got %v, want a permanent error wrapping nats.ErrMaxPayload", js, err)
		}
	}
}

func createStream(t *testing.T, js jetstream.JetStream, cfg jetstream.StreamConfig) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A redelivery of the same event is stored once: Nats-Msg-Id is source:id.
func TestJetStreamStoresOnce(t *testing.T) {
	nc, js := natstest.Run(t)
	st := createStream(t, js, jetstream.StreamConfig{Name: "REPUBLISHED", Subjects: []string{"republished.>"}})
	s := newSink(t, natssink.Config{Subject: "republished.{type}", JetStream: true}, natssink.WithConn(nc))

	ev := newEvent("js-1")
	for i := range 2 {
		if err := s.Send(t.Context(), ev); err != nil {
			t.Fatalf("Send() #%d: got %v, want nil", i+1, err)
		}
	}
	if err := s.Send(t.Context(), newEvent("js-2")); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2 (the redelivery of js-1 dropped as a duplicate)", info.State.Msgs)
	}
	raw, err := st.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	checkMessage(t, &nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data}, ev)
}

func TestJetStreamWithoutStreamIsRetryable(t *testing.T) {
	nc, _ := natstest.Run(t)
	s := newSink(t, natssink.Config{Subject: "nostream.x", JetStream: true}, natssink.WithConn(nc))
	start := time.Now()
	err := s.Send(t.Context(), newEvent("lost"))
	if err == nil || consumers.IsPermanent(err) {
		t.Fatalf("Send() with no stream on the subject: got %v, want a retryable error", err)
	}
	if !errors.Is(err, jetstream.ErrNoStreamResponse) || !strings.Contains(err.Error(), "no stream stores this subject") {
		t.Errorf("Send() with no stream: got %q, want jetstream.ErrNoStreamResponse and a reason", err)
	}
	// No internal retry: the client's default retries no responders twice, 250ms apart.
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("Send() took %s: it must not retry internally", d)
	}
}

func TestJetStreamRefusalIsPermanent(t *testing.T) {
	nc, js := natstest.Run(t)
	createStream(t, js, jetstream.StreamConfig{Name: "SMALL", Subjects: []string{"small"}, MaxMsgSize: 64})
	s := newSink(t, natssink.Config{Subject: "small", JetStream: true}, natssink.WithConn(nc))
	err := s.Send(t.Context(), newEvent("too-big-for-the-stream"))
	if !consumers.IsPermanent(err) {
		t.Fatalf("Send() of a message the stream refuses: got %v, want a permanent error", err)
	}
}

func TestCancelledJetStreamPublish(t *testing.T) {
	nc, _ := natstest.Run(t)
	// A responder that never answers, as a stream leader that went away.
	sub, err := nc.SubscribeSync("silent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	s := newSink(t, natssink.Config{Subject: "silent", JetStream: true}, natssink.WithConn(nc))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = s.Send(ctx, newEvent("waits"))
	if err == nil || consumers.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send() past its deadline: got %v, want a retryable error wrapping context.DeadlineExceeded", err)
	}
}

func TestLoopRefused(t *testing.T) {
	nc, _ := natstest.Run(t)
	if _, err := natssink.New(natssink.Config{Subject: "acme.copy"}, natssink.WithConn(nc), natssink.WithSubjectRoot("acme")); err == nil ||
		!strings.Contains(err.Error(), "inside the event stream's subjects (acme.>)") {
		t.Errorf("New() with a subject under a custom root: got %v, want the loop refused", err)
	}
	// A placeholder that fills the first token is checked per event.
	s := newSink(t, natssink.Config{Subject: "{type}.copy"}, natssink.WithConn(nc))
	ev := newEvent("loop")
	ev.SetType("vmware")
	if err := s.Send(t.Context(), ev); !consumers.IsPermanent(err) || !strings.Contains(err.Error(), "loop") {
		t.Errorf("Send() of an event whose subject lands in vmware.>: got %v, want a permanent error naming the loop", err)
	}
}

func TestNoConnection(t *testing.T) {
	if _, err := natssink.New(natssink.Config{Subject: "x"}); err == nil {
		t.Error("New() without url or WithConn: got nil, want an error")
	}
}

// With url the sink dials a connection of its own, and closes it.
func TestOwnConnection(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), "127.0.0.1:0")
	nc, _ := natstest.Connect(t, srv.ClientURL())
	ch := subscribe(t, nc, "elsewhere")
	s, err := natssink.New(natssink.Config{Subject: "elsewhere", URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvent("own-1")
	if err := s.Send(t.Context(), ev); err != nil {
		t.Fatalf("Send(): %v", err)
	}
	checkMessage(t, receive(t, ch), ev)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), ev); err == nil || consumers.IsPermanent(err) {
		t.Errorf("Send() after Close(): got %v, want a retryable error", err)
	}
}
