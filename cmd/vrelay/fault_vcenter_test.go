package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

// TestVCenterSIGKILLExactlyOnce runs the real binary against a simulated
// vCenter that outlives it, posts 10,000 events, and kills the binary with
// SIGKILL three times mid-stream, each time restarting it on the same data
// dir. Each event must be in the stream exactly once: the events published
// after the last checkpoint are read again after a restart, and the
// checkpoint plus the duplicate window must keep them from being stored
// twice.
func TestVCenterSIGKILLExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := vrelayBinary(t)
	dir := t.TempDir()

	sim := startSim(t)
	sdk, caFile, pwFile := sim.sdk, sim.caFile, sim.pwFile

	opsAddr, natsAddr := freePort(t), freePort(t)
	config := filepath.Join(dir, "vrelay.yaml")
	cfg := fmt.Sprintf(`
nats:
  embedded: {dataDir: %q, listen: %q}
http: {listen: %q}
sources:
  - name: vc01
    type: vcenter
    vcenter:
      address: %q
      username: vrelay
      password: {fromFile: %q}
      caFile: %q
      checkpoint: {period: 1s, maxAge: 5m}
`, filepath.Join(dir, "data"), natsAddr, opsAddr, sdk.String(), pwFile, caFile)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "vrelay.log")
	cur := startVrelay(t, bin, config, opsAddr, logPath)

	// A new source begins at vCenter's current time: post only once it
	// reads, which /metrics tells.
	waitConnected := func() {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get("http://" + opsAddr + "/metrics")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), `vrelay_vcenter_connected{source="vc01"} 1`) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the vCenter source did not connect within 60s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitConnected()

	// Posters: each event carries a unique message. They pause while
	// vrelay is down, because the simulator itself keeps only its last
	// 1000 events: a real vCenter keeps days of them.
	var (
		posted atomic.Int64
		gate   sync.RWMutex
	)
	const total, workers = 10000, 4
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total && ctx.Err() == nil; i += workers {
				gate.RLock()
				err := sim.post(ctx, fmt.Sprintf("fault-%05d", i))
				gate.RUnlock()
				if err != nil {
					t.Errorf("post event: %v", err)
					return
				}
				posted.Add(1)
			}
		})
	}
	for _, at := range []int64{2500, 5000, 7500} {
		for posted.Load() < at && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		gate.Lock()
		t.Logf("SIGKILL after %d posted events", posted.Load())
		cur = cur.killAndRestart(t, bin, config, opsAddr, logPath)
		gate.Unlock()
	}
	wg.Wait()

	// Let vrelay catch up: the stream holds (at least) every posted event.
	_, js := natstest.Connect(t, "nats://"+natsAddr)
	subject := "vmware.vcenter.vc01.GeneralUserEvent"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s, err := js.Stream(ctx, streams.EventStream)
		if err == nil {
			info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
			if err == nil && info.State.Subjects[subject] >= total {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("vrelay did not store all %d posted events within 2 minutes", total)
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

	msgs, keys := readVCenterStream(t, filepath.Join(dir, "data"))
	var missing []int
	dupMsgs := 0
	for i := range total {
		switch msgs[fmt.Sprintf("fault-%05d", i)] {
		case 0:
			missing = append(missing, i)
		case 1:
		default:
			dupMsgs++
		}
	}
	dupKeys := 0
	for _, n := range keys {
		if n > 1 {
			dupKeys++
		}
	}
	if len(missing) != 0 || dupMsgs != 0 || dupKeys != 0 {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("stream: %d of %d posted events missing %v, %d stored twice, %d keys stored more than once; want 0, 0, 0\nvrelay warnings:\n%s",
			len(missing), total, ranges(missing), dupMsgs, dupKeys, warnings(string(b)))
	}
	t.Logf("stream holds all %d posted events once (%d vCenter events in all)", total, len(keys))
}

// simVC is a simulated vCenter served over TLS for the binary to read,
// with a session of the test's own to drive it.
type simVC struct {
	sdk            url.URL // without credentials
	caFile, pwFile string
	vc             *vim25.Client
}

func startSim(t *testing.T) *simVC {
	t.Helper()
	m := simulator.VPX()
	m.ServiceContent.About.InstanceUuid = uuid.NewString()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword("vrelay", "fault-test-pw")}
	srv := m.Service.NewServer()
	t.Cleanup(func() { srv.Close(); m.Remove() })
	caFile, err := srv.CertificateFile()
	if err != nil {
		t.Fatal(err)
	}
	sdk := *srv.URL
	sdk.User = nil
	pwFile := filepath.Join(t.TempDir(), "vc-password")
	if err := os.WriteFile(pwFile, []byte("fault-test-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &simVC{sdk: sdk, caFile: caFile, pwFile: pwFile, vc: login(t, sdk, caFile)}
}

// post posts a user event whose message is msg.
func (s *simVC) post(ctx context.Context, msg string) error {
	_, err := methods.PostEvent(ctx, s.vc, &types.PostEvent{
		This:        *s.vc.ServiceContent.EventManager,
		EventToPost: &types.GeneralUserEvent{GeneralEvent: types.GeneralEvent{Message: msg}},
	})
	return err
}

func login(t *testing.T, sdk url.URL, caFile string) *vim25.Client {
	t.Helper()
	sc := soap.NewClient(&sdk, false)
	if err := sc.SetRootCAs(caFile); err != nil {
		t.Fatal(err)
	}
	vc, err := vim25.NewClient(t.Context(), sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := session.NewManager(vc).Login(t.Context(), url.UserPassword("vrelay", "fault-test-pw")); err != nil {
		t.Fatal(err)
	}
	return vc
}

// readVCenterStream opens the stopped vrelay's data dir and counts, per
// posted message and per vCenter event key (from Nats-Msg-Id), how often the
// event stream holds it.
func readVCenterStream(t *testing.T, dataDir string) (msgs map[string]int, keys map[string]int) {
	t.Helper()
	js := natstest.Open(t, dataDir)
	s, err := js.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{"vmware.vcenter.vc01.>"}})
	if err != nil {
		t.Fatal(err)
	}
	msgs, keys = map[string]int{}, map[string]int{}
	for seen := uint64(0); seen < info.State.Msgs; seen++ {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("read stream message %d of %d: %v", seen+1, info.State.Msgs, err)
		}
		keys[m.Headers().Get(streams.HeaderMsgID)]++
		var ce struct {
			Data struct{ Message string } `json:"data"`
		}
		if err := json.Unmarshal(m.Data(), &ce); err != nil {
			t.Fatalf("stream message is not a CloudEvent: %v", err)
		}
		if ce.Data.Message != "" {
			msgs[ce.Data.Message]++
		}
		if meta, _ := m.Metadata(); meta != nil && meta.NumPending == 0 {
			break
		}
	}
	return msgs, keys
}

// ranges renders sorted numbers as "a-b c d-e".
func ranges(ns []int) string {
	var b strings.Builder
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if i == j {
			fmt.Fprintf(&b, "%d", ns[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", ns[i], ns[j])
		}
		i = j + 1
	}
	return b.String()
}

// warnings keeps the WARN and ERROR lines of a log.
func warnings(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
