package vcenter_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/vcenter"
	"github.com/vrelay/vrelay/streams"
)

// healthWatch follows the health events of the test source.
type healthWatch struct {
	mu    sync.Mutex
	types []string
	data  []string
}

func watchHealth(t *testing.T, js jetstream.JetStream) *healthWatch {
	t.Helper()
	h := &healthWatch{}
	cons, err := js.OrderedConsumer(t.Context(), streams.HealthStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{streams.HealthSubject(vcenter.Provider, sourceName)},
	})
	if err != nil {
		t.Fatalf("ordered consumer on %s: %v", streams.HealthStream, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		ev, err := streams.Decode(msg.Data())
		h.mu.Lock()
		defer h.mu.Unlock()
		if err != nil {
			h.types = append(h.types, "undecodable: "+err.Error())
			return
		}
		h.types = append(h.types, ev.Type())
		h.data = append(h.data, string(ev.Data()))
	})
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	t.Cleanup(cc.Stop)
	return h
}

func (h *healthWatch) has(typ string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.types {
		if t == typ {
			return true
		}
	}
	return false
}

func healthType(kind string) string {
	return producers.HealthTypePrefix + kind + producers.HealthTypeSuffix
}

// TestStallSwept plays a collector that returns nothing while vCenter has
// newer events (more than a page of them): the watchdog sees vCenter's
// latest event, sweeps the range by time, and every event is stored once.
//
// notified: the collector's latest page shows the new events (as the
// simulator's does), so the stall is checked at once. silent: it does not,
// and the stallCheckInterval finds it.
func TestStallSwept(t *testing.T) {
	for _, silent := range []bool{false, true} {
		t.Run(map[bool]string{false: "notified", true: "silent"}[silent], func(t *testing.T) { testStallSwept(t, silent) })
	}
}

func testStallSwept(t *testing.T, silent bool) {
	e := newEnv(t, "")
	health := watchHealth(t, e.js)
	cfg := e.sim.config(t)
	cfg.PageSize = 5
	cfg.StallCheckInterval = 200 * time.Millisecond
	reg := prometheus.NewRegistry()
	src := e.source(t, cfg, vcenter.WithRegisterer(reg), vcenter.WithHealthEvents(e.js))
	var stalled atomic.Bool
	vcenter.SetReadHook(src, func(page []types.BaseEvent) []types.BaseEvent {
		if stalled.Load() {
			return nil
		}
		return page
	})
	if silent {
		vcenter.SetWaitHook(src, func(be types.BaseEvent) types.BaseEvent {
			if stalled.Load() {
				return nil
			}
			return be
		})
	}
	running(t, src, e.publisher(src), e.logs)
	e.sim.post(t, e.sim.eventEx("before"))
	e.w.await(t, "before", byMessage("before"))

	stalled.Store(true)
	const n = 12
	for i := range n {
		e.sim.post(t, e.sim.eventEx(fmt.Sprint("stalled-", i)))
	}
	posted := time.Now()
	eventually(t, "the stall to be detected", func() bool { return health.has(healthType(producers.HealthStallDetected)) })
	detected := time.Since(posted)
	eventually(t, "the stall to be recovered", func() bool { return health.has(healthType(producers.HealthStallRecovered)) })
	t.Logf("stall detected %v after the last event was posted (stallCheckInterval %v, pollInterval %v)",
		detected.Round(time.Millisecond), cfg.StallCheckInterval, vcenter.DefaultPollInterval)
	for i := range n {
		e.w.await(t, fmt.Sprint("stalled-", i), byMessage(fmt.Sprint("stalled-", i)))
	}
	stalled.Store(false)
	e.sim.post(t, e.sim.eventEx("after"))
	e.w.await(t, "after", byMessage("after"))

	e.w.checkUnique(t)
	e.checkOrdered(t)
	if got := counterValue(t, reg, "vrelay_vcenter_stalls_total"); got < 1 {
		t.Errorf("vrelay_vcenter_stalls_total = %v, want at least 1", got)
	}
	if got := counterValue(t, reg, "vrelay_vcenter_swept_events_total"); got < n {
		t.Errorf("vrelay_vcenter_swept_events_total = %v, want at least %d", got, n)
	}
	if len(e.logs.matching("stalled collector")) == 0 {
		t.Errorf("no warning about the stall; logs: %v", e.logs.records())
	}
}

// TestKeyJumpSwept plays a collector that skips more than a page of
// events and then goes on: the jump is swept and the skipped events are
// stored once.
func TestKeyJumpSwept(t *testing.T) {
	e := newEnv(t, "")
	health := watchHealth(t, e.js)
	cfg := e.sim.config(t)
	cfg.PageSize = 5
	cfg.StallCheckInterval = time.Hour // the jump alone must be noticed
	reg := prometheus.NewRegistry()
	src := e.source(t, cfg, vcenter.WithRegisterer(reg), vcenter.WithHealthEvents(e.js))
	hidden := func(be types.BaseEvent) bool {
		ex, ok := be.(*types.EventEx)
		return ok && strings.HasPrefix(ex.Message, "hidden-")
	}
	vcenter.SetReadHook(src, func(page []types.BaseEvent) []types.BaseEvent {
		var out []types.BaseEvent
		for _, be := range page {
			if !hidden(be) {
				out = append(out, be)
			}
		}
		return out
	})
	// The collector's latest page does not show them either: otherwise a
	// read between two posts makes the stall check sweep the first ones
	// and start a new collector, after which the rest is a jump smaller
	// than a page, which is by design no gap.
	vcenter.SetWaitHook(src, func(be types.BaseEvent) types.BaseEvent {
		if hidden(be) {
			return nil
		}
		return be
	})
	running(t, src, e.publisher(src), e.logs)
	e.sim.post(t, e.sim.eventEx("before"))
	e.w.await(t, "before", byMessage("before"))
	const n = 8
	for i := range n {
		e.sim.post(t, e.sim.eventEx(fmt.Sprint("hidden-", i)))
	}
	e.sim.post(t, e.sim.eventEx("after"))
	e.w.await(t, "after", byMessage("after"))
	for i := range n {
		e.w.await(t, fmt.Sprint("hidden-", i), byMessage(fmt.Sprint("hidden-", i)))
	}
	eventually(t, "a gap.swept health event", func() bool { return health.has(healthType(producers.HealthGapSwept)) })
	e.w.checkUnique(t)
	if got := counterValue(t, reg, "vrelay_vcenter_gaps_total"); got < 1 {
		t.Errorf("vrelay_vcenter_gaps_total = %v, want at least 1", got)
	}
}

// TestSessionAndCollectorLostMidStream ends the source's session (and so
// its collector) while events keep coming: every event is stored once.
func TestSessionAndCollectorLostMidStream(t *testing.T) {
	e := newEnv(t, "")
	health := watchHealth(t, e.js)
	cfg := e.sim.config(t)
	cfg.PageSize = 5
	cfg.StallCheckInterval = 200 * time.Millisecond
	src := e.source(t, cfg, vcenter.WithHealthEvents(e.js))
	running(t, src, e.publisher(src), e.logs)
	const n = 30
	for i := range n {
		e.sim.post(t, e.sim.eventEx(fmt.Sprint("ev-", i)))
		if i == n/2 {
			if e.sim.terminateOthers(t) == 0 {
				t.Fatal("no session to terminate")
			}
		}
	}
	for i := range n {
		e.w.await(t, fmt.Sprint("ev-", i), byMessage(fmt.Sprint("ev-", i)))
	}
	e.w.checkUnique(t)
	e.checkOrdered(t)
	eventually(t, "connection lost and restored health events", func() bool {
		return health.has(healthType(producers.HealthConnectionLost)) && health.has(healthType(producers.HealthConnectionRestored))
	})
}

// TestUnknownEventClass serves the simulator through a proxy that renames
// an event's class to one govmomi does not know: the event is published
// under that class with its key, time and message.
func TestUnknownEventClass(t *testing.T) {
	e := newEnv(t, "")
	target, _ := url.Parse(e.sim.url)
	target.Path = ""
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // the test's own simulator
	rp.ModifyResponse = func(res *http.Response) error {
		b, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err != nil {
			return err
		}
		b = bytes.ReplaceAll(b, []byte(`"GeneralUserEvent"`), []byte(`"VrelayFutureThingEvent"`))
		res.Body = io.NopCloser(bytes.NewReader(b))
		res.ContentLength = int64(len(b))
		res.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	proxy := httptest.NewTLSServer(rp)
	t.Cleanup(proxy.Close)
	ca := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.sim.config(t)
	cfg.Address = proxy.URL + "/sdk"
	cfg.CAFile = ca
	reg := prometheus.NewRegistry()
	src := e.source(t, cfg, vcenter.WithRegisterer(reg))
	running(t, src, e.publisher(src), e.logs)

	root := e.sim.admin.ServiceContent.RootFolder
	e.sim.post(t, &types.GeneralUserEvent{GeneralEvent: types.GeneralEvent{Message: "future"}, Entity: &types.ManagedEntityEventArgument{Entity: root}})
	e.sim.post(t, e.sim.eventEx("after"))
	got := e.w.await(t, "the unknown event", func(m stored) bool { return strings.HasSuffix(m.subject, ".VrelayFutureThingEvent") })
	if want := "vmware.vcenter." + sourceName + ".VrelayFutureThingEvent"; got.subject != want {
		t.Errorf("subject = %q, want %q", got.subject, want)
	}
	if got.ev.Type() != "com.vmware.vsphere.VrelayFutureThingEvent.v0" {
		t.Errorf("type = %q", got.ev.Type())
	}
	if got.data["Class"] != "VrelayFutureThingEvent" || got.key() == 0 || got.data["CreatedTime"] == nil {
		t.Errorf("data = %v, want Class, Key and CreatedTime", got.data)
	}
	if props := fmt.Sprint(got.data["Properties"]); !strings.Contains(props, "message") || !strings.Contains(props, "future") {
		t.Errorf("Properties = %s, want the message element", props)
	}
	e.w.await(t, "after", byMessage("after"))
	if v := counterValue(t, reg, "vrelay_vcenter_unknown_class_events_total"); v < 1 {
		t.Errorf("vrelay_vcenter_unknown_class_events_total = %v, want at least 1", v)
	}
}

// TestHealthDetail: while vCenter cannot be reached, Health says since
// when and why.
func TestHealthDetail(t *testing.T) {
	e := newEnv(t, "")
	cfg := e.sim.config(t)
	cfg.Address = "https://127.0.0.1:1/sdk"
	src := e.source(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		_ = src.Run(ctx, e.publisher(src))
	}()
	var detail string
	eventually(t, "an unhealthy source", func() bool {
		var ok bool
		ok, detail = src.Health()
		return !ok
	})
	if !strings.HasPrefix(detail, "vcenter unreachable since ") || !strings.Contains(detail, "failed attempts:") {
		t.Errorf("detail = %q", detail)
	}
}
