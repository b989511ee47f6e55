package producers_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

func newEvent(id int) event.Event {
	ev := event.New()
	ev.SetID(strconv.Itoa(id))
	ev.SetSource("https://vc01.example.com/sdk")
	ev.SetType("com.vmware.vsphere.VmPoweredOnEvent.v0")
	ev.SetTime(time.Unix(1700000000, 0))
	_ = ev.SetData(event.ApplicationJSON, map[string]any{"Key": id})
	return ev
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	return natstest.Count(t, js, streams.EventStream)
}

func TestPublishBatchDedupAndSubject(t *testing.T) {
	_, js := natstest.Run(t)
	reg := prometheus.NewRegistry()
	m := producers.NewMetrics(reg)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"}, producers.WithMetrics(m))

	recs := make([]producers.Record, 1000)
	for i := range recs {
		recs[i] = producers.Record{Event: newEvent(i), MsgID: "instance-1:" + strconv.Itoa(i), Token: "VmPoweredOnEvent"}
	}
	if err := pub.Publish(t.Context(), recs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// A replay of the same page after a "crash" is stored once.
	if err := pub.Publish(t.Context(), recs[:500]...); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if got := streamMsgs(t, js); got != 1000 {
		t.Errorf("stream holds %d messages, want 1000", got)
	}
	want := `
# HELP vrelay_events_duplicate_total Published events JetStream dropped as duplicates of stored ones (replays after a crash, client retries).
# TYPE vrelay_events_duplicate_total counter
vrelay_events_duplicate_total{provider="vcenter",source="vc01"} 500
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vrelay_events_duplicate_total"); err != nil {
		t.Errorf("duplicate metric: %v", err)
	}

	s, _ := js.Stream(t.Context(), streams.EventStream)
	raw, err := s.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != "vmware.vcenter.vc01.VmPoweredOnEvent" {
		t.Errorf("subject = %q, want vmware.vcenter.vc01.VmPoweredOnEvent", raw.Subject)
	}
	if got := raw.Header.Get(streams.HeaderMsgID); got != "instance-1:0" {
		t.Errorf("Nats-Msg-Id = %q, want instance-1:0", got)
	}
}

func TestPublishDefaultsFromCloudEvent(t *testing.T) {
	_, js := natstest.Run(t)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "hooks"})
	ev := newEvent(7)
	ev.SetType("com.example.order created")
	if got, want := pub.Subject(&producers.Record{Event: ev}), "vmware.webhook.hooks.com_example_order_created"; got != want {
		t.Errorf("Subject() = %q, want %q", got, want)
	}
	if err := pub.Publish(t.Context(), producers.Records(ev)...); err != nil {
		t.Fatal(err)
	}
	s, _ := js.Stream(t.Context(), streams.EventStream)
	raw, err := s.GetLastMsgForSubject(t.Context(), "vmware.webhook.hooks.>")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := raw.Header.Get(streams.HeaderMsgID), ev.Source()+":7"; got != want {
		t.Errorf("Nats-Msg-Id = %q, want %q", got, want)
	}
}

// TestRecordTokenAndMsgID: a record's own token and Nats-Msg-Id win over
// the CloudEvent's, which are only the defaults; a token is sanitised, never
// lower-cased.
func TestRecordTokenAndMsgID(t *testing.T) {
	_, js := natstest.Run(t)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "horizon", Source: "hz01"})
	ev := newEvent(9)
	ev.SetType("com.vmware.horizon.vlsi_userloggedin_rest.v0")
	tests := []struct {
		name           string
		rec            producers.Record
		subject, msgID string
	}{
		{"defaults", producers.Record{Event: ev},
			"vmware.horizon.hz01.com_vmware_horizon_vlsi_userloggedin_rest_v0", ev.Source() + ":9"},
		{"own token and id", producers.Record{Event: ev, Token: "VLSI_USERLOGGEDIN_REST", MsgID: "hz01.example.com:1001"},
			"vmware.horizon.hz01.VLSI_USERLOGGEDIN_REST", "hz01.example.com:1001"},
		{"token sanitised", producers.Record{Event: ev, Token: "com.vmware.vc.HA.DasHostFailedEvent", MsgID: "u:7"},
			"vmware.horizon.hz01.com_vmware_vc_HA_DasHostFailedEvent", "u:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pub.Subject(&tt.rec); got != tt.subject {
				t.Errorf("got subject %q, want %q", got, tt.subject)
			}
			if err := pub.Publish(t.Context(), tt.rec); err != nil {
				t.Fatal(err)
			}
			s, _ := js.Stream(t.Context(), streams.EventStream)
			raw, err := s.GetLastMsgForSubject(t.Context(), tt.subject)
			if err != nil {
				t.Fatal(err)
			}
			if got := raw.Header.Get(streams.HeaderMsgID); got != tt.msgID {
				t.Errorf("got Nats-Msg-Id %q, want %q", got, tt.msgID)
			}
		})
	}
}

// failingJS fails the first n async publishes, the way a lost connection
// does, and passes the rest to the real server.
type failingJS struct {
	jetstream.JetStream
	failures int
}

type failedFuture struct {
	jetstream.PubAckFuture
	err chan error
}

func (f failedFuture) Ok() <-chan *jetstream.PubAck { return nil }
func (f failedFuture) Err() <-chan error            { return f.err }

func (f *failingJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if f.failures > 0 {
		f.failures--
		if f.failures%2 == 0 {
			return nil, errors.New("too many pending publishes")
		}
		ch := make(chan error, 1)
		ch <- jetstream.ErrAsyncPublishTimeout
		return failedFuture{err: ch}, nil
	}
	return f.JetStream.PublishMsgAsync(m, opts...)
}

func TestPublishRetriesFailedAcks(t *testing.T) {
	_, js := natstest.Run(t)
	fj := &failingJS{JetStream: js, failures: 7}
	pub := producers.NewPublisher(fj, producers.Scope{Provider: "webhook", Source: "hooks"},
		producers.WithPublishRetry(5, time.Millisecond))
	recs := producers.Records(newEvent(1), newEvent(2), newEvent(3), newEvent(4), newEvent(5))
	if err := pub.Publish(t.Context(), recs...); err != nil {
		t.Fatalf("Publish with transient failures: %v", err)
	}
	if got := streamMsgs(t, js); got != 5 {
		t.Errorf("stream holds %d messages, want 5", got)
	}

	fj.failures = 1000
	err := pub.Publish(t.Context(), producers.Records(newEvent(9))...)
	if err == nil {
		t.Fatal("Publish with persistent failures got nil error")
	}
	if !errors.Is(err, jetstream.ErrAsyncPublishTimeout) && !strings.Contains(err.Error(), "too many pending") {
		t.Errorf("error %v does not carry the cause", err)
	}
}

func TestPublishSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.Start(t, dir, "127.0.0.1:0")
	addr := srv.ListenAddr()
	_, js := natstest.Connect(t, srv.ClientURL())
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	js2, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pub := producers.NewPublisher(js2, producers.Scope{Provider: "webhook", Source: "hooks"},
		producers.WithPublishRetry(30, 100*time.Millisecond))
	if err := pub.Publish(t.Context(), producers.Records(newEvent(1))...); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	restarted := make(chan *streams.Server, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // let the publish find the server gone
		srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: addr}, nil)
		if err != nil {
			t.Errorf("restart nats-server: %v", err)
		}
		restarted <- srv
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	recs := producers.Records(newEvent(1), newEvent(2), newEvent(3))
	if err := pub.Publish(ctx, recs...); err != nil {
		t.Fatalf("Publish across a server restart: %v", err)
	}
	if srv := <-restarted; srv != nil {
		t.Cleanup(srv.Shutdown)
	}
	if got := streamMsgs(t, js2); got != 3 {
		t.Errorf("stream holds %d messages, want 3 (event 1 once)", got)
	}
}

func TestCheckpointerCompareAndSet(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	a, err := producers.NewCheckpointer(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := producers.NewCheckpointer(ctx, js)
	const key = "vcenter.vc01"

	if _, err := a.Load(ctx, key); !errors.Is(err, producers.ErrNoCheckpoint) {
		t.Fatalf("Load(empty) error = %v, want ErrNoCheckpoint", err)
	}
	for i := range 3 {
		if err := a.Save(ctx, key, []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("Save #%d: %v", i, err)
		}
	}
	got, err := b.Load(ctx, key)
	if err != nil || string(got) != "2" {
		t.Fatalf("Load = %q, %v; want \"2\"", got, err)
	}
	if err := b.Save(ctx, key, []byte("b")); err != nil {
		t.Fatalf("Save after Load: %v", err)
	}
	// a's view is stale now: its save must not overwrite b's.
	if err := a.Save(ctx, key, []byte("a")); !errors.Is(err, producers.ErrCheckpointConflict) {
		t.Fatalf("stale Save error = %v, want ErrCheckpointConflict", err)
	}
	c, _ := producers.NewCheckpointer(ctx, js)
	if err := c.Save(ctx, key, []byte("c")); !errors.Is(err, producers.ErrCheckpointConflict) {
		t.Fatalf("blind Save over an existing key error = %v, want ErrCheckpointConflict", err)
	}
	got, _ = b.Load(ctx, key)
	if string(got) != "b" {
		t.Errorf("value = %q, want b", got)
	}
}

func TestPublishRefusesUnstorableEvents(t *testing.T) {
	_, js := natstest.Run(t)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "hooks"})
	huge := newEvent(2)
	if err := huge.SetData("text/plain", strings.Repeat("x", int(js.Conn().MaxPayload())+1)); err != nil {
		t.Fatal(err)
	}
	badJSON := newEvent(3)
	badJSON.DataEncoded = []byte(`{"Vm":`)
	tests := []struct {
		name  string
		bad   event.Event
		isMax bool
	}{
		{name: "too large", bad: huge, isMax: true},
		{name: "invalid json data", bad: badJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pub.Publish(t.Context(), producers.Records(newEvent(1), tt.bad)...)
			var evErr *producers.EventError
			if !errors.As(err, &evErr) || evErr.Index != 1 {
				t.Fatalf("Publish error = %v, want *EventError for index 1", err)
			}
			if got := errors.Is(err, nats.ErrMaxPayload); got != tt.isMax {
				t.Errorf("errors.Is(err, ErrMaxPayload) = %t, want %t", got, tt.isMax)
			}
			if n := streamMsgs(t, js); n != 0 {
				t.Errorf("stream holds %d events, want 0: nothing of the batch may be stored", n)
			}
		})
	}
}

func TestLast(t *testing.T) {
	_, js := natstest.Run(t)
	pub := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc01"})
	other := producers.NewPublisher(js, producers.Scope{Provider: "vcenter", Source: "vc02"})
	if _, err := pub.Last(t.Context()); !errors.Is(err, producers.ErrNoEvent) {
		t.Fatalf("Last on empty stream: %v, want ErrNoEvent", err)
	}
	if err := pub.Publish(t.Context(), producers.Records(newEvent(1), newEvent(2))...); err != nil {
		t.Fatal(err)
	}
	if err := other.Publish(t.Context(), producers.Records(newEvent(3))...); err != nil {
		t.Fatal(err)
	}
	st, err := pub.Last(t.Context())
	if err != nil || st.Event.ID() != "2" {
		t.Fatalf("Last = %q, %v; want event 2 (not vc02's 3)", st.Event.ID(), err)
	}
	if want := st.Event.Source() + ":2"; st.MsgID != want {
		t.Errorf("Last MsgID = %q, want %q", st.MsgID, want)
	}
}
