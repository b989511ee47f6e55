package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

// replayReceiver records the ce-id of each request and rejects, with a
// 400, the ids in reject and, when wantType is set, any other type.
type replayReceiver struct {
	mu       sync.Mutex
	ids      []string
	reject   map[string]bool
	wantType string
}

func (rr *replayReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("Ce-Id")
	rr.mu.Lock()
	rr.ids = append(rr.ids, id)
	rr.mu.Unlock()
	if rr.reject[id] || (rr.wantType != "" && r.Header.Get("Ce-Type") != rr.wantType) {
		http.Error(w, "rejected", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (rr *replayReceiver) take() []string {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	got := slices.Clone(rr.ids)
	rr.ids = nil
	slices.Sort(got)
	return got
}

func publishIDs(t *testing.T, js jetstream.JetStream, ids ...string) {
	t.Helper()
	var evs []event.Event
	for _, id := range ids {
		ev := event.New()
		ev.SetID(id)
		ev.SetSource("replay-test")
		ev.SetType("com.example.t")
		evs = append(evs, ev)
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "cli"})
	if err := pub.Publish(t.Context(), producers.Records(evs...)...); err != nil {
		t.Fatal(err)
	}
}

func streamConsumers(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	s, err := js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	l := s.ConsumerNames(t.Context())
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func TestRouteReplayCommand(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	natsAddr := freePort(t)
	// Route ra's transform renames the type: a replay that skipped it
	// would be rejected.
	recvA := &replayReceiver{reject: map[string]bool{"b2": true}, wantType: "com.example.replayed"}
	recvB := &replayReceiver{}
	srvA, srvB := httptest.NewServer(recvA), httptest.NewServer(recvB)
	t.Cleanup(srvA.Close)
	t.Cleanup(srvB.Close)
	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf(`
nats:
  embedded: {dataDir: %q, listen: %q}
http: {listen: "off"}
routes:
  - name: ra
    filter: 'type == "com.example.t"'
    transform:
      - set: {type: '"com.example.replayed"'}
    sink: {type: http, http: {url: %q, timeout: 1s}}
    delivery: {maxAttempts: 2, sendTimeout: 2s, ackWait: 5s, backoff: {initial: 100ms, max: 200ms}}
  - name: rb
    sink: {type: http, http: {url: %q}}
`, dataDir, natsAddr, srvA.URL, srvB.URL)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// Events in three spans, stored before vrelay first starts: its routes
	// start at new events and never deliver them.
	srv := natstest.Start(t, dataDir, "127.0.0.1:0")
	_, js := natstest.Connect(t, srv.ClientURL())
	var scfg streams.Config
	scfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, scfg, nil); err != nil {
		t.Fatal(err)
	}
	pause := func() time.Time {
		time.Sleep(200 * time.Millisecond)
		at := time.Now()
		time.Sleep(200 * time.Millisecond)
		return at
	}
	publishIDs(t, js, "a1", "a2", "a3")
	afterA := pause()
	publishIDs(t, js, "b1", "b2", "b3")
	afterB := pause()
	publishIDs(t, js, "c1", "c2")
	js.Conn().Close()
	srv.Shutdown()

	// vrelay runs: the replay goes through its NATS listener.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runVrelay(ctx, config, roleAll, slog.New(slog.DiscardHandler)) }()
	stopVrelay := sync.OnceFunc(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("vrelay stopped with %v", err)
		}
	})
	defer stopVrelay()
	deadline := time.Now().Add(20 * time.Second)
	var live jetstream.JetStream
	for {
		if live == nil {
			if nc, err := nats.Connect("nats://" + natsAddr); err == nil {
				t.Cleanup(nc.Close)
				live, _ = jetstream.New(nc)
			}
		}
		if live != nil && slices.Equal(streamConsumers(t, live), []string{"ra", "rb"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("vrelay did not create its route consumers")
		}
		time.Sleep(20 * time.Millisecond)
	}

	code, out, errOut := runCLI("route", "replay", "ra", "-config", config,
		"-since", afterA.Format(time.RFC3339Nano), "-until", afterB.Format(time.RFC3339Nano))
	if code != 0 {
		t.Fatalf("route replay: code %d, stderr %q", code, errOut)
	}
	if want := "replayed 3 events of route ra"; !strings.Contains(out, want) || !strings.Contains(out, "2 delivered, 0 filtered out, 1 dead-lettered") {
		t.Errorf("route replay output %q, want %q with 2 delivered, 1 dead-lettered", out, want)
	}
	if want := "replayed 3/3 events (0 filtered out, 1 dead-lettered)"; !strings.Contains(errOut, want) {
		t.Errorf("route replay progress %q, want %q", errOut, want)
	}
	if got, want := recvA.take(), []string{"b1", "b2", "b3"}; !slices.Equal(got, want) {
		t.Errorf("route ra's sink got %v, want %v (b2 once: a 400 is permanent)", got, want)
	}
	if got := recvB.take(); len(got) != 0 {
		t.Errorf("route rb's sink got %v, want nothing: the replay is for ra only", got)
	}
	code, out, _ = runCLI("dlq", "list", "-config", config, "-route", "ra")
	if code != 0 || !strings.Contains(out, "b2") || !strings.Contains(out, "1 dead letter\n") {
		t.Errorf("dlq list after the replay: code %d, output\n%s\nwant b2", code, out)
	}
	if c := streamConsumers(t, live); !slices.Equal(c, []string{"ra", "rb"}) {
		t.Errorf("consumers after the replay: %v, want only the routes' own", c)
	}
	stopVrelay()

	// vrelay stopped: the replay opens the data directory. -filter narrows
	// the route's filter.
	code, out, errOut = runCLI("route", "replay", "-config", config, "-since", afterB.Format(time.RFC3339Nano),
		"-filter", `id == "c2"`, "ra")
	if code != 0 {
		t.Fatalf("route replay on the data dir: code %d, stderr %q", code, errOut)
	}
	if want := "replayed 2 events of route ra"; !strings.Contains(out, want) || !strings.Contains(out, "1 delivered, 1 filtered out, 0 dead-lettered") {
		t.Errorf("route replay output %q, want %q with 1 delivered, 1 filtered out", out, want)
	}
	if got, want := recvA.take(), []string{"c2"}; !slices.Equal(got, want) {
		t.Errorf("route ra's sink got %v, want %v", got, want)
	}
	stored := natstest.Open(t, dataDir)
	if c := streamConsumers(t, stored); !slices.Equal(c, []string{"ra", "rb"}) {
		t.Errorf("consumers after the replay: %v, want only the routes' own", c)
	}
	if n := natstest.Count(t, stored, streams.EventStream); n != 8 {
		t.Errorf("event stream holds %d events, want 8: a replay copies nothing", n)
	}
}

func TestRouteReplayCommandRefuses(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf("nats: {embedded: {dataDir: %q, listen: \"off\"}}\nhttp: {listen: \"off\"}\nroutes:\n  - {name: ra, sink: {type: log}}\n",
		filepath.Join(dir, "data"))
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no since", []string{"ra", "-config", config}, "-since is required"},
		{"bad since", []string{"ra", "-config", config, "-since", "yesterday"}, `-since: "yesterday" is neither an RFC 3339 time`},
		{"until before since", []string{"ra", "-config", config, "-since", "1h", "-until", "2h"}, "-until must come after -since"},
		{"unknown route", []string{"nope", "-config", config, "-since", "1h"}, `has no route "nope" (routes: ra)`},
		{"bad filter", []string{"ra", "-config", config, "-since", "1h", "-filter", "type =="}, "-filter:"},
		{"no route", []string{"-config", config, "-since", "1h"}, "Usage:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(append([]string{"route", "replay"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("code %d, stderr %q; want 2 and %q", code, errOut, tt.want)
			}
		})
	}
}
