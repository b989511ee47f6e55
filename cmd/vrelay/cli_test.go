package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/streams"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("routes:\n  - {name: a, sink: {type: log}}\n"), 0o600)
	os.WriteFile(bad, []byte("routes:\n  - {name: a, filter: 'type ==', sink: {type: http, http: {url: x}}}\n"), 0o600)

	code, out, _ := runCLI("validate", "-config", good)
	if code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("validate good: code %d, out %q; want 0 and valid", code, out)
	}
	code, _, errOut := runCLI("validate", "-config", bad)
	if code != 1 {
		t.Errorf("validate bad: code %d, want 1", code)
	}
	for _, want := range []string{bad + ": routes[0].filter: route \"a\": line 1", bad + ": routes[0].sink.http.url:"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output\n%s\nwant it to contain %q", errOut, want)
		}
	}
	if code, _, _ := runCLI("validate", "-config", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("validate missing file: code %d, want 1", code)
	}
	if code, _, _ := runCLI("frobnicate"); code != 2 {
		t.Errorf("unknown command: code %d, want 2", code)
	}
}

type rejectAll struct{}

func (rejectAll) Send(context.Context, event.Event) error {
	return consumers.Permanent(errors.New("status 400: nope"))
}

func TestDLQAndTailCommands(t *testing.T) {
	srv := natstest.Start(t, t.TempDir(), "127.0.0.1:0")
	url := srv.ClientURL()
	_, js := natstest.Connect(t, url)
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	d, err := consumers.NewDispatcher(js, consumers.Route{Name: "r1", Delivery: consumers.Delivery{StartAt: consumers.StartAtAll}}, rejectAll{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	stopRoute := sync.OnceFunc(func() { cancel(); <-done })
	defer stopRoute()

	var evs []event.Event
	for _, id := range []string{"dead-1", "dead-2"} {
		ev := event.New()
		ev.SetID(id)
		ev.SetSource("cli-test")
		ev.SetType("com.example.t")
		evs = append(evs, ev)
	}
	pub := producers.NewPublisher(js, producers.Scope{Provider: "webhook", Source: "cli"})
	if err := pub.Publish(t.Context(), producers.Records(evs...)...); err != nil {
		t.Fatal(err)
	}

	var out string
	deadline := time.Now().Add(20 * time.Second)
	for {
		var code int
		code, out, _ = runCLI("dlq", "list", "-server", url, "-route", "r1")
		if code == 0 && strings.Contains(out, "dead-1") && strings.Contains(out, "dead-2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dlq list never showed both dead letters; last output:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{"r1", "permanent", "com.example.t", "status 400: nope", "2 dead letters"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq list output\n%s\nwant %q", out, want)
		}
	}
	code, out, _ := runCLI("dlq", "show", "-server", url, "1")
	if code != 0 || !strings.Contains(out, "Vrelay-Route: r1") || !strings.Contains(out, `"id": "dead-`) {
		t.Errorf("dlq show: code %d, output\n%s", code, out)
	}
	for _, sub := range []string{"purge", "replay"} {
		if code, _, errOut := runCLI("dlq", sub, "-server", url); code != 2 || !strings.Contains(errOut, "-route") {
			t.Errorf("dlq %s without -route: code %d, stderr %q; want 2 and a hint", sub, code, errOut)
		}
	}

	// Replay dead letter 1. The route is stopped, so the replay waits in
	// the replay stream (delivering it is the dispatcher's side).
	stopRoute()
	code, out, errOut := runCLI("dlq", "replay", "-server", url, "-route", "r1", "1")
	if code != 0 || !strings.Contains(out, "replayed 1 dead letter into stream VRELAY_REPLAY") ||
		!strings.Contains(out, "route r1: 1 on vrelay.replay.r1") {
		t.Errorf("dlq replay: code %d, output %q, stderr %q; want 0 and where it went", code, out, errOut)
	}
	if n := natstest.Count(t, js, streams.EventStream); n != 2 {
		t.Errorf("event stream holds %d messages after the replay, want 2: a replay adds no copy", n)
	}
	if n := natstest.Count(t, js, streams.ReplayStream); n != 1 {
		t.Errorf("replay stream holds %d messages, want 1", n)
	}
	if code, out, _ := runCLI("dlq", "list", "-server", url); code != 0 || !strings.Contains(out, "1 dead letter\n") {
		t.Errorf("dlq list after the replay: code %d, output\n%s\nwant 1 dead letter left", code, out)
	}

	// A message vrelay did not write is refused, and nothing is replayed.
	if err := js.Conn().PublishMsg(&nats.Msg{Subject: streams.DLQSubject("r1"), Data: []byte("{}"), Header: nats.Header{"X": {"y"}}}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for natstest.Count(t, js, streams.DLQStream) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the foreign message never reached the dead-letter stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, _, errOut = runCLI("dlq", "replay", "-server", url, "-route", "r1")
	if code != 1 || !strings.Contains(errOut, "not a vrelay dead letter") || !strings.Contains(errOut, "nothing was replayed") {
		t.Errorf("dlq replay of a foreign message: code %d, stderr %q; want 1 and a refusal", code, errOut)
	}
	if n := natstest.Count(t, js, streams.ReplayStream); n != 1 {
		t.Errorf("replay stream holds %d messages after the refusal, want 1", n)
	}

	code, out, _ = runCLI("dlq", "purge", "-server", url, "-route", "r1")
	if code != 0 || !strings.Contains(out, "purged 2") {
		t.Errorf("dlq purge: code %d, output %q", code, out)
	}

	code, out, errOut = runCLI("tail", "-server", url, "-since", "1h", "-n", "2", "-json")
	if code != 0 || !strings.Contains(out, `"id":"dead-1"`) || !strings.Contains(out, `"id":"dead-2"`) {
		t.Errorf("tail: code %d, out %q, err %q; want both events", code, out, errOut)
	}
}

func TestCheckpointCommand(t *testing.T) {
	_, js := natstest.Run(t)
	url := js.Conn().ConnectedUrl()
	kv, err := js.KeyValue(t.Context(), streams.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "vcenter.vc01", []byte(`{"lastEventKey":42}`)); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI("checkpoint", "list", "-server", url); code != 0 || strings.TrimSpace(out) != "vcenter.vc01" {
		t.Errorf("checkpoint list: code %d, out %q; want vcenter.vc01", code, out)
	}
	if code, out, _ := runCLI("checkpoint", "show", "-server", url, "vcenter.vc01"); code != 0 || !strings.Contains(out, `"lastEventKey":42`) {
		t.Errorf("checkpoint show: code %d, out %q", code, out)
	}
	if code, out, _ := runCLI("checkpoint", "delete", "-server", url, "vcenter.vc01"); code != 0 || !strings.Contains(out, "deleted") {
		t.Errorf("checkpoint delete: code %d, out %q", code, out)
	}
	if _, err := kv.Get(t.Context(), "vcenter.vc01"); err == nil {
		t.Error("checkpoint still there after delete")
	}
	if code, _, _ := runCLI("checkpoint", "show", "-server", url); code != 2 {
		t.Errorf("checkpoint show without a key: code %d, want 2", code)
	}
}
