package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// TestTwoVCentersOneProcess runs vrelay in-process with two vCenter
// sources: each has its own subjects and its own checkpoint, and a route
// filtered to one of them sees only that one.
func TestTwoVCentersOneProcess(t *testing.T) {
	vc1, vc2 := startSim(t), startSim(t)
	dir := t.TempDir()
	natsAddr := freePort(t)
	config := filepath.Join(dir, "vrelay.yaml")
	source := func(name string, s *simVC) string {
		return fmt.Sprintf(`
  - name: %s
    type: vcenter
    vcenter:
      address: %q
      username: vrelay
      password: {fromFile: %q}
      caFile: %q
      checkpoint: {period: 100ms}`, name, s.sdk.String(), s.pwFile, s.caFile)
	}
	cfg := fmt.Sprintf(`
nats:
  embedded: {dataDir: %q, listen: %q}
http: {listen: "off"}
sources:%s%s
routes:
  - name: only-vc02
    subjects: ["vmware.vcenter.vc02.>"]
    delivery: {startAt: all}
    sink: {type: log, log: {output: stderr}}
`, filepath.Join(dir, "data"), natsAddr, source("vc01", vc1), source("vc02", vc2))
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runVrelay(ctx, config, roleAll, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("runVrelay returned %v after cancel, want context.Canceled", err)
		}
	}()

	// Post until each source has stored its own event (the sources start
	// at vCenter's current time, so the first posts may come too early).
	var js jetstream.JetStream
	deadline := time.Now().Add(60 * time.Second)
	for js == nil {
		if _, err := os.Stat(filepath.Join(dir, "data", "jetstream")); err == nil {
			_, js = natstest.Connect(t, "nats://"+natsAddr)
		} else if time.Now().After(deadline) {
			t.Fatal("vrelay did not start")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	count := func(subject string) uint64 {
		s, err := js.Stream(ctx, streams.EventStream)
		if err != nil {
			return 0
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	for count("vmware.vcenter.vc01.GeneralUserEvent") == 0 || count("vmware.vcenter.vc02.GeneralUserEvent") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("events of both vCenters did not reach the stream")
		}
		if err := vc1.post(ctx, "from vc01"); err != nil {
			t.Fatal(err)
		}
		if err := vc2.post(ctx, "from vc02"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Each source checkpoints under its own key.
	kv, err := js.KeyValue(ctx, streams.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"vcenter.vc01", "vcenter.vc02"} {
		for {
			if _, err := kv.Get(ctx, key); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint %s", key)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The route filtered to vc02 never received a vc01 event.
	c, err := js.Consumer(ctx, streams.EventStream, "only-vc02")
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer > 0 {
			if vc02 := count("vmware.vcenter.vc02.>"); info.Delivered.Consumer != vc02 {
				t.Errorf("route only-vc02 received %d events, want the %d of vc02", info.Delivered.Consumer, vc02)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route only-vc02 still has %d pending", info.NumPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
