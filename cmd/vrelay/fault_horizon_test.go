package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers/horizon/horizontest"
	"github.com/vrelay/vrelay/streams"
)

// TestHorizonSIGKILLExactlyOnce runs the real binary against a fake
// Horizon that outlives it, adds 3,000 audit events (three to a
// millisecond, in bursts) while killing the binary with SIGKILL three
// times, each time restarting it on the same data dir. Each event must be in the
// stream exactly once: a killed run leaves events in the stream beyond its
// checkpoint, and the restarted one must neither lose the events Horizon
// logged meanwhile nor store again those of the millisecond it resumes at.
func TestHorizonSIGKILLExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := vrelayBinary(t)
	dir := t.TempDir()

	hz := horizontest.New(t)
	pwFile := filepath.Join(t.TempDir(), "horizon-password")
	if err := os.WriteFile(pwFile, []byte(horizontest.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opsAddr, natsAddr := freePort(t), freePort(t)
	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf(`
nats:
  embedded: {dataDir: %q, listen: %q}
http: {listen: %q}
sources:
  - name: hz01
    type: horizon
    horizon:
      address: %q
      domain: %s
      username: %s
      password: {fromFile: %q}
      caFile: %q
      pollInterval: 50ms
      pageSize: 20
      maxAge: 5m
`, filepath.Join(dir, "data"), natsAddr, opsAddr, hz.URL(), horizontest.Domain, horizontest.Username, pwFile, hz.CAFile())
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "vrelay.log")
	cur := startVrelay(t, bin, config, opsAddr, logPath)

	// A new source begins at Horizon's current time: add events only once
	// it reads, which /metrics tells.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(metrics(opsAddr), `vrelay_horizon_connected{source="hz01"} 1`) {
		if time.Now().After(deadline) {
			t.Fatal("the Horizon source did not connect within 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Horizon logs events in bursts, whether vrelay runs or not: 750 at a
	// time, three to a millisecond. The first burst spreads over the next
	// quarter second (the source began just now); the others happened while
	// vrelay restarted, so a run reads them as fast as it can. Each run is
	// killed once it has stored part of a burst, so that it dies between a
	// publish and its checkpoint, or in the middle of a batch.
	const total, burst = 3000, 750
	_, js := natstest.Connect(t, "nats://"+natsAddr)
	subjects := "vmware.horizon.hz01.>"
	stored := func() uint64 {
		s, err := js.Stream(t.Context(), streams.EventStream)
		if err != nil {
			return 0
		}
		info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subjects))
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	var added []horizontest.Event
	for len(added) < total {
		base := len(added)
		if base == 0 {
			added = append(added, hz.AddN(burst, 3, "VLSI_USERLOGGEDIN")...)
		} else {
			added = append(added, hz.Backlog(burst, 3, "VLSI_USERLOGGEDIN")...)
		}
		if len(added) == total {
			break
		}
		deadline := time.Now().Add(60 * time.Second)
		for stored() < uint64(base+burst/3) {
			if time.Now().After(deadline) {
				t.Fatalf("vrelay stored %d of %d events within 60s", stored(), base+burst/3)
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("SIGKILL with %d of %d events stored", stored(), len(added))
		cur = cur.killAndRestart(t, bin, config, opsAddr, logPath)
	}

	// Let vrelay catch up: the stream holds (at least) every event.
	deadline = time.Now().Add(2 * time.Minute)
	for stored() < uint64(len(added)) {
		if time.Now().After(deadline) {
			t.Errorf("vrelay stored %d of %d events within 2 minutes", stored(), len(added))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	js.Conn().Close()
	if err := cur.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-cur.done; err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("vrelay exit after SIGTERM: %v\n%s", err, b)
	}

	ids := readMsgIDs(t, filepath.Join(dir, "data"), subjects)
	var missing []int
	dups := 0
	want := make(map[string]bool, len(added))
	for i, ev := range added {
		id := hz.Host() + ":" + strconv.FormatInt(ev.ID, 10)
		want[id] = true
		switch ids[id] {
		case 0:
			missing = append(missing, i)
		case 1:
		default:
			dups++
		}
	}
	extra := 0
	for id := range ids {
		if !want[id] {
			extra++
		}
	}
	if len(missing) != 0 || dups != 0 || extra != 0 {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("stream: %d of %d events missing (indexes %s), %d stored more than once, %d unknown; want 0, 0, 0\nvrelay warnings:\n%s",
			len(missing), len(added), ranges(missing), dups, extra, warnings(string(b)))
	}
	if c := hz.Counts(); c.Logins < 4 || c.Logouts < 1 {
		t.Errorf("got %+v, want a login per run (4) and a logout at SIGTERM", c)
	}
	// Where each restart resumed: after the checkpoint, or after the
	// stream's last event when the kill came between a publish and its
	// checkpoint.
	b, _ := os.ReadFile(logPath)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "resuming") {
			t.Log(l)
		}
	}
	t.Logf("stream holds all %d events once", len(added))
}

// metrics returns the /metrics page, or "" while it does not answer.
func metrics(opsAddr string) string {
	resp, err := http.Get("http://" + opsAddr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// readMsgIDs opens the stopped vrelay's data dir and counts how often the
// event stream holds each Nats-Msg-Id on subjects.
func readMsgIDs(t *testing.T, dataDir, subjects string) map[string]int {
	t.Helper()
	js := natstest.Open(t, dataDir)
	s, err := js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subjects))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	if info.State.Msgs == 0 {
		return ids
	}
	c, err := s.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects}})
	if err != nil {
		t.Fatal(err)
	}
	for seen := uint64(0); ; seen++ {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read stream message %d: %v", seen+1, err)
		}
		ids[m.Headers().Get(streams.HeaderMsgID)]++
		if meta, _ := m.Metadata(); meta != nil && meta.NumPending == 0 {
			break
		}
	}
	return ids
}
