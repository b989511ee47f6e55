package streams_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/streams"
)

// startStorageWatch runs a StorageWatch on srv until the test ends.
func startStorageWatch(t *testing.T, srv *streams.Server) *streams.StorageHealth {
	t.Helper()
	h := streams.NewStorageHealth()
	w := &streams.StorageWatch{Health: h, Check: srv.CheckStorage, Repair: srv.Repair, Interval: 50 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func waitHealth(t *testing.T, h *streams.StorageHealth, ok bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for h.OK() != ok {
		if time.Now().After(deadline) {
			t.Fatalf("storage health OK=%v after %s, want %v (err: %v)", h.OK(), within, ok, h.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func publishEvent(ctx context.Context, js jetstream.JetStream, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := js.Publish(ctx, "vmware.test.src.fill", []byte(strings.Repeat("x", 4<<10)), jetstream.WithMsgID(id),
		jetstream.WithExpectStream(streams.EventStream))
	return err
}

// errInsufficientResources is the JetStream error code of a publish
// refused at the server's store limit.
const errInsufficientResources = 10023

// TestStorageHealthStoreLimit: a store at JetStream's limit answers every
// publish with "insufficient resources" while the account looks fine.
// The health says why, and recovers without a restart once events are
// removed.
func TestStorageHealthStoreLimit(t *testing.T) {
	streams.SetTestServerOptions(t, func(o *server.Options) { o.JetStreamMaxStore = 256 << 10 })
	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "off"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	h := startStorageWatch(t, srv)
	waitHealth(t, h, true, 5*time.Second)

	var pubErr error
	for i := 0; i < 200 && pubErr == nil; i++ {
		pubErr = publishEvent(t.Context(), js, fmt.Sprintf("ev-%d", i))
	}
	var apiErr *jetstream.APIError
	if !errors.As(pubErr, &apiErr) || apiErr.ErrorCode != errInsufficientResources {
		t.Fatalf("publishing past the store limit: %v, want insufficient resources", pubErr)
	}
	waitHealth(t, h, false, 5*time.Second)
	if err := h.Err(); !errors.Is(err, streams.ErrStorageFailing) || !strings.Contains(err.Error(), "store limit reached") {
		t.Errorf("health: %v, want jetstream storage failing: store limit reached", err)
	}
	select {
	case <-h.Failing():
	default:
		t.Error("Failing() not closed while storage fails")
	}

	s, err := js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, h, true, 5*time.Second)
	if err := publishEvent(t.Context(), js, "after"); err != nil {
		t.Errorf("publish after purge: %v", err)
	}
	if n := srv.Restarts(); n != 0 {
		t.Errorf("server restarted %d times for a store limit that events' removal cured", n)
	}
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory, or skips
// the test when this process may not mount.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("a full disk is simulated with a Linux tmpfs")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return dir
}

// fill writes a file that leaves about leave bytes free in dir.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	free := freeBytes(t, dir)
	name := filepath.Join(dir, "filler")
	if err := os.WriteFile(name, make([]byte, max(free-leave, 0)), 0o600); err != nil {
		t.Fatalf("filler: %v", err)
	}
	return name
}

// TestStorageRepairAfterDiskFull fills the disk under the embedded server
// until a write fails with ENOSPC. nats-server then latches the error on
// the stream and answers no publish. The health must say so; once space is
// freed, Repair restarts the server in-process, the same client
// connection follows it, and every acknowledged event is in the stream
// exactly once.
func TestStorageRepairAfterDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, 4<<20)
	data := filepath.Join(mnt, "data")
	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: data, Listen: "off"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	h := startStorageWatch(t, srv)
	filler := fill(t, mnt, 200<<10)

	var acked []string
	i := 0
	for ; i < 500 && h.OK(); i++ {
		id := fmt.Sprintf("ev-%d", i)
		if err := publishEvent(t.Context(), js, id); err == nil {
			acked = append(acked, id)
		}
	}
	waitHealth(t, h, false, 5*time.Second)
	t.Logf("storage failing after %d events, %d acked: %v", i, len(acked), h.Err())
	if err := h.Err(); !strings.Contains(err.Error(), "no space left") {
		t.Errorf("health: %v, want the write error naming the full disk", err)
	}
	// A while later, with the disk still full, it is still failing and
	// the server was not restarted in vain.
	time.Sleep(300 * time.Millisecond)
	if h.OK() || srv.Restarts() != 0 {
		t.Fatalf("with the disk full: OK=%v restarts=%d, want failing and no restart", h.OK(), srv.Restarts())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, h, true, 10*time.Second)
	if n := srv.Restarts(); n != 1 {
		t.Errorf("restarts = %d, want 1", n)
	}
	for j := range 5 {
		id := fmt.Sprintf("after-%d", j)
		var err error
		for range 50 { // the connection may still be reconnecting
			if err = publishEvent(t.Context(), js, id); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("publish after recovery: %v", err)
		}
		acked = append(acked, id)
	}

	seen := readIDs(t, js)
	for _, id := range acked {
		if seen[id] != 1 {
			t.Errorf("acknowledged event %s is in the stream %d times, want once", id, seen[id])
		}
	}
}

// readIDs counts the Nats-Msg-Id of every message in the event stream.
func readIDs(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	s, err := js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		seen[m.Header.Get(jetstream.MsgIDHeader)]++
	}
	return seen
}

// TestCheckJetStream: against a NATS that is not ours, a JetStream that is
// disabled counts as failing storage; a healthy one, or a connection that
// is down (reported elsewhere), does not.
func TestCheckJetStream(t *testing.T) {
	check := func(jsOn bool, closeConn bool) error {
		streams.SetTestServerOptions(t, func(o *server.Options) { o.JetStream = jsOn })
		srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "off"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if closeConn {
			nc.Close()
		}
		return streams.CheckJetStream(js)(t.Context())
	}
	if err := check(true, false); err != nil {
		t.Errorf("healthy JetStream: %v", err)
	}
	if err := check(false, false); !errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		t.Errorf("JetStream disabled: %v, want ErrJetStreamNotEnabled", err)
	}
	if err := check(true, true); err != nil {
		t.Errorf("closed connection: %v, want nil (not a storage failure)", err)
	}
}
