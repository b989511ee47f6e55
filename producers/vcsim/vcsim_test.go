package vcsim_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/vcenter"
	"github.com/vrelay/vrelay/producers/vcsim"
	"github.com/vrelay/vrelay/streams"
)

const waitTimeout = 60 * time.Second

// received is a message of the event stream.
type received struct {
	subject, msgID, ceType, message string
}

// collect follows the event stream from its start.
type collect struct {
	mu   sync.Mutex
	msgs []received
}

func collectStream(t *testing.T, js jetstream.JetStream) *collect {
	t.Helper()
	c := &collect{}
	cons, err := js.OrderedConsumer(t.Context(), streams.EventStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := streams.Decode(m.Data())
		if err != nil {
			t.Errorf("decode %s: %v", m.Subject(), err)
			return
		}
		var data struct{ Message string }
		_ = ev.DataAs(&data)
		c.mu.Lock()
		c.msgs = append(c.msgs, received{m.Subject(), m.Headers().Get(streams.HeaderMsgID), ev.Type(), data.Message})
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return c
}

func (c *collect) all() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.msgs...)
}

// await waits until a message matches.
func (c *collect) await(t *testing.T, what string, match func(received) bool) received {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		for _, m := range c.all() {
			if match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stream holds %d messages", what, len(c.all()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func onSubject(s string) func(received) bool { return func(m received) bool { return m.subject == s } }

// start runs src until the returned cancel; the channel gets Run's result.
func start(t *testing.T, src *vcsim.Source, js jetstream.JetStream) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done, stopped := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(stopped)
		done <- src.Run(ctx, producers.NewPublisher(js, src.Scope()))
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	select {
	case <-src.Ready():
	case <-stopped:
		t.Fatalf("Run returned early: %v", <-done)
	case <-time.After(waitTimeout):
		t.Fatal("simulator never got ready")
	}
	return cancel, done
}

func stop(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got Run() error %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRun(t *testing.T) {
	_, js := natstest.Run(t)
	c := collectStream(t, js)
	cp, err := producers.NewCheckpointer(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	src, err := vcsim.New(vcsim.Config{Rate: 200}, vcsim.WithName("demo"), vcsim.WithCheckpointer(cp))
	if err != nil {
		t.Fatal(err)
	}
	if src.Address() != "" {
		t.Errorf("got Address() %q before Run, want empty", src.Address())
	}
	cancel, done := start(t, src, js)
	addr := src.Address()
	if !strings.HasPrefix(addr, "https://127.0.0.1:") || !strings.HasSuffix(addr, "/sdk") {
		t.Errorf("got Address() %q, want https://127.0.0.1:<port>/sdk", addr)
	}
	instance := src.InstanceUUID()
	if _, err := uuid.Parse(instance); err != nil {
		t.Errorf("got InstanceUUID() %q, want a uuid", instance)
	}

	// The workload's events arrive, named like a real vCenter's.
	for _, typ := range []string{
		"VmStoppingEvent", "VmPoweredOffEvent", "VmStartingEvent", "VmPoweredOnEvent",
		"VmReconfiguredEvent", "com_vmware_vc_HA_HostStateChangedEvent", "GeneralUserEvent",
	} {
		m := c.await(t, typ, onSubject("vmware.vcenter.demo."+typ))
		if !strings.HasPrefix(m.msgID, instance+":") {
			t.Errorf("%s: got Nats-Msg-Id %q, want %s:<key>", typ, m.msgID, instance)
		}
		if !strings.HasPrefix(m.ceType, "com.vmware.vsphere.") {
			t.Errorf("%s: got type %q, want the tanzu shape", typ, m.ceType)
		}
	}

	// Anyone with the address and credentials can drive it too.
	user, pw := src.Credentials()
	vc := login(t, addr, user, pw, src.CAFile())
	_, err = methods.PostEvent(t.Context(), vc, &types.PostEvent{
		This: *vc.ServiceContent.EventManager,
		EventToPost: &types.EventEx{
			EventTypeId: "com.example.Posted",
			Message:     "posted from outside",
			ObjectType:  vc.ServiceContent.RootFolder.Type,
			ObjectId:    vc.ServiceContent.RootFolder.Value,
		},
	})
	if err != nil {
		t.Fatalf("post event: %v", err)
	}
	c.await(t, "the event posted from outside", func(m received) bool { return m.message == "posted from outside" })

	stop(t, cancel, done)
	if src.Address() != "" {
		t.Errorf("got Address() %q after Run, want empty", src.Address())
	}
	if _, err := loginErr(addr, user, pw, ""); err == nil {
		t.Error("the simulator still answers after Run returned")
	}
	seen := make(map[string]bool)
	for _, m := range c.all() {
		if seen[m.msgID] {
			t.Errorf("stream holds %s twice", m.msgID)
		}
		seen[m.msgID] = true
	}
}

// TestRestart runs the simulator twice on one checkpoint bucket and
// stream, as `make run` twice on one data dir does. The second run is the
// same vCenter again (instance uuid, address), its event keys go on after
// the first run's, and the source resumes after its checkpoint: no warning
// about another instance or keys that went back.
func TestRestart(t *testing.T) {
	_, js := natstest.Run(t)
	c := collectStream(t, js)
	cp, err := producers.NewCheckpointer(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	l := &logs{}
	last := producers.NewPublisher(js, producers.Scope{Provider: vcenter.Provider, Source: "demo"})
	src, err := vcsim.New(vcsim.Config{Rate: 200}, vcsim.WithName("demo"), vcsim.WithCheckpointer(cp),
		vcsim.WithLastStored(last), vcsim.WithLogger(l.logger()))
	if err != nil {
		t.Fatal(err)
	}
	var instances, addrs []string
	var firstMax int64
	for run := range 2 {
		cancel, done := start(t, src, js)
		instance := src.InstanceUUID()
		instances, addrs = append(instances, instance), append(addrs, src.Address())
		c.await(t, "a VmPoweredOnEvent with a key after the first run's", func(m received) bool {
			return m.subject == "vmware.vcenter.demo.VmPoweredOnEvent" && strings.HasPrefix(m.msgID, instance+":") &&
				msgKey(t, m.msgID) > firstMax
		})
		stop(t, cancel, done)
		if run == 0 {
			for _, m := range c.all() {
				firstMax = max(firstMax, msgKey(t, m.msgID))
			}
		}
	}
	if instances[0] != instances[1] || addrs[0] != addrs[1] {
		t.Errorf("runs had instance uuids %v and addresses %v, want the same vCenter twice", instances, addrs)
	}
	for _, warn := range []string{"another vcenter instance", "keys went back", "instance changed"} {
		if n := l.count(warn); n != 0 {
			t.Errorf("got %d logs %q, want none", n, warn)
		}
	}
	if l.count("resuming after") == 0 {
		t.Error("the second run did not log that it resumed")
	}
	seen := map[string]bool{}
	for _, m := range c.all() {
		if seen[m.msgID] {
			t.Errorf("Nats-Msg-Id %s stored twice", m.msgID)
		}
		seen[m.msgID] = true
	}
}

func msgKey(t *testing.T, id string) int64 {
	t.Helper()
	_, k, _ := strings.Cut(id, ":")
	n, err := strconv.ParseInt(k, 10, 64)
	if err != nil {
		t.Fatalf("Nats-Msg-Id %q has no key", id)
	}
	return n
}

func TestRouterFormat(t *testing.T) {
	_, js := natstest.Run(t)
	c := collectStream(t, js)
	src, err := vcsim.New(vcsim.Config{Rate: 200, Format: vcenter.FormatRouter})
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := start(t, src, js)
	m := c.await(t, "an event", func(received) bool { return true })
	if m.ceType != "com.vmware.event.router/event" {
		t.Errorf("got type %q, want the router's com.vmware.event.router/event", m.ceType)
	}
	stop(t, cancel, done)
	if err := (vcsim.Config{Format: "xml"}).Validate(); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("format xml: %v, want an error naming format", err)
	}
}

func TestFixedInstanceUUID(t *testing.T) {
	_, js := natstest.Run(t)
	c := collectStream(t, js)
	const id = "0d7c9a4e-5b5a-4f52-9c4b-6f0a1d3e2b11"
	src, err := vcsim.New(vcsim.Config{Rate: 200, InstanceUUID: id})
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := start(t, src, js)
	m := c.await(t, "an event", func(received) bool { return true })
	if !strings.HasPrefix(m.msgID, id+":") || !strings.HasPrefix(m.subject, "vmware.vcenter.simulator.") {
		t.Errorf("got %s with Nats-Msg-Id %s, want vmware.vcenter.simulator.* and %s:<key>", m.subject, m.msgID, id)
	}
	stop(t, cancel, done)
}

func TestConfig(t *testing.T) {
	var c vcsim.Config
	c.SetDefaults()
	if diff := cmp.Diff(vcsim.Config{Rate: 5}, c); diff != "" {
		t.Errorf("defaults differ (-want +got):\n%s", diff)
	}
	var got []string
	for _, e := range cfgerr.Flatten(vcsim.Config{Rate: 5000, InstanceUUID: "vc01"}.Validate()) {
		got = append(got, e.Error())
	}
	want := []string{
		"rate: must be between 0 (the default, 5) and 1000 events per second, got 5000",
		`instanceUuid: not a uuid: "vc01"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() errors differ (-want +got):\n%s", diff)
	}
	if _, err := vcsim.New(vcsim.Config{}, vcsim.WithName("a.b")); err == nil {
		t.Error("New accepted the source name a.b")
	}
}

func login(t *testing.T, addr, user, pw, caFile string) *vim25.Client {
	t.Helper()
	vc, err := loginErr(addr, user, pw, caFile)
	if err != nil {
		t.Fatalf("log in to the simulator: %v", err)
	}
	t.Cleanup(func() {
		_ = session.NewManager(vc).Logout(context.Background())
		vc.CloseIdleConnections()
	})
	return vc
}

func loginErr(addr, user, pw, caFile string) (*vim25.Client, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return nil, err
	}
	sc := soap.NewClient(u, caFile == "")
	if caFile != "" {
		if err := sc.SetRootCAs(caFile); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, err
	}
	if err := session.NewManager(vc).Login(ctx, url.UserPassword(user, pw)); err != nil {
		return nil, err
	}
	return vc, nil
}

// logs is a slog.Handler that keeps record messages.
type logs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logs) logger() *slog.Logger { return slog.New(l) }

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}

func (l *logs) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}
