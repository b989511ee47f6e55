package vcenter_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/vcenter"
	"github.com/vrelay/vrelay/streams"
)

// waitTimeout bounds every wait in these tests. It is generous because the
// race detector on two cores is slow; no test asserts a duration.
const waitTimeout = 60 * time.Second

// sim is an in-process vCenter: the govmomi simulator's VPX model served
// over HTTPS on 127.0.0.1 with a fresh instance uuid, and a session of the
// test's own (admin) to drive it.
type sim struct {
	url      string // SDK URL without credentials
	caFile   string
	uuid     string
	user     string
	password string
	admin    *vim25.Client
	model    *simulator.Model
}

// newSim starts a simulator. With password set, only user "vrelay" with
// that password may log in; otherwise any non-empty credentials may.
func newSim(t testing.TB, password string) *sim {
	t.Helper()
	m := simulator.VPX()
	m.ServiceContent.About.InstanceUuid = uuid.NewString()
	if err := m.Create(); err != nil {
		t.Fatalf("create simulator model: %v", err)
	}
	m.Service.TLS = new(tls.Config)
	m.Service.RegisterEndpoints = true // the tagging API, for enrich_test.go
	m.Service.Listen = &url.URL{Host: "127.0.0.1:0"}
	s := &sim{uuid: m.ServiceContent.About.InstanceUuid, user: "vrelay", password: "vrelay-secret", model: m}
	if password != "" {
		s.password = password
		m.Service.Listen.User = url.UserPassword(s.user, password)
	}
	srv := m.Service.NewServer()
	t.Cleanup(func() {
		srv.Close()
		m.Remove()
	})
	u := *srv.URL
	u.User = nil
	s.url = u.String()
	ca, err := srv.CertificateFile()
	if err != nil {
		t.Fatalf("simulator certificate: %v", err)
	}
	s.caFile = ca
	s.admin = s.login(t)
	return s
}

// login opens a new session of the simulator's user.
func (s *sim) login(t testing.TB) *vim25.Client {
	t.Helper()
	u, _ := url.Parse(s.url)
	sc := soap.NewClient(u, false)
	if err := sc.SetRootCAs(s.caFile); err != nil {
		t.Fatalf("simulator CA: %v", err)
	}
	ctx := context.Background()
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		t.Fatalf("connect to simulator: %v", err)
	}
	if err := session.NewManager(vc).Login(ctx, url.UserPassword(s.user, s.password)); err != nil {
		t.Fatalf("log in to simulator: %v", err)
	}
	t.Cleanup(func() {
		_ = session.NewManager(vc).Logout(context.Background())
		vc.CloseIdleConnections()
	})
	return vc
}

// config is a source configuration for the simulator, its password in a
// file, its certificate verified against the simulator's CA.
func (s *sim) config(t testing.TB) vcenter.Config {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(s.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return vcenter.Config{
		Address:    s.url,
		Username:   s.user,
		Password:   secret.Ref{FromFile: pw},
		CAFile:     s.caFile,
		Checkpoint: vcenter.CheckpointConfig{Period: 50 * time.Millisecond},
	}
}

// calls counts the calls of a SOAP method the simulator serves.
type calls struct{ n atomic.Int64 }

func (c *calls) count() int64 { return c.n.Load() }

// countCalls counts the calls of method from now on. The simulator has no
// method hook: a fault rule's inclusion filter is asked about every call
// of its method and, answering false, injects nothing.
func (s *sim) countCalls(method string) *calls {
	c := &calls{}
	s.model.Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: method, ObjectType: "*", ObjectName: "*", Enabled: true, Probability: 1,
		InclusionPropertyFilter: func(mo.Reference) bool { c.n.Add(1); return false },
	})
	return c
}

// post posts an event through the EventManager, as an extension would.
func (s *sim) post(t testing.TB, ev types.BaseEvent) {
	t.Helper()
	_, err := methods.PostEvent(context.Background(), s.admin, &types.PostEvent{
		This:        *s.admin.ServiceContent.EventManager,
		EventToPost: ev,
	})
	if err != nil {
		t.Errorf("post event: %v", err)
	}
}

// eventEx returns an EventEx on the root folder whose Message is the given
// nonce, to find it again. (The simulator needs an existing object.)
func (s *sim) eventEx(nonce string) *types.EventEx {
	root := s.admin.ServiceContent.RootFolder
	return &types.EventEx{
		EventTypeId: "com.vmware.vc.HA.DasHostFailedEvent",
		Severity:    "error",
		Message:     nonce,
		ObjectType:  root.Type,
		ObjectId:    root.Value,
	}
}

// vm returns the simulator's first virtual machine.
func (s *sim) vm(t testing.TB) *object.VirtualMachine {
	t.Helper()
	vms, err := find.NewFinder(s.admin).VirtualMachineList(context.Background(), "*")
	if err != nil || len(vms) == 0 {
		t.Fatalf("find a vm: %v", err)
	}
	return vms[0]
}

// power powers vm on or off and waits for the task.
func power(t testing.TB, vm *object.VirtualMachine, on bool) {
	t.Helper()
	ctx := context.Background()
	var (
		task *object.Task
		err  error
	)
	if on {
		task, err = vm.PowerOn(ctx)
	} else {
		task, err = vm.PowerOff(ctx)
	}
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("power vm (on=%v): %v", on, err)
	}
}

// terminateOthers ends every session but the admin's own, as an operator
// would in the vSphere client.
func (s *sim) terminateOthers(t testing.TB) int {
	t.Helper()
	ctx := context.Background()
	var m mo.SessionManager
	ref := *s.admin.ServiceContent.SessionManager
	if err := s.propertyOf(ctx, ref, &m, "sessionList", "currentSession"); err != nil {
		t.Fatalf("list sessions: %v", err)
	}
	var ids []string
	for _, us := range m.SessionList {
		if m.CurrentSession == nil || us.Key != m.CurrentSession.Key {
			ids = append(ids, us.Key)
		}
	}
	if len(ids) == 0 {
		return 0
	}
	if _, err := methods.TerminateSession(ctx, s.admin, &types.TerminateSession{This: ref, SessionId: ids}); err != nil {
		t.Fatalf("terminate sessions: %v", err)
	}
	return len(ids)
}

func (s *sim) propertyOf(ctx context.Context, ref types.ManagedObjectReference, dst any, props ...string) error {
	req := types.RetrieveProperties{
		This: s.admin.ServiceContent.PropertyCollector,
		SpecSet: []types.PropertyFilterSpec{{
			ObjectSet: []types.ObjectSpec{{Obj: ref}},
			PropSet:   []types.PropertySpec{{Type: ref.Type, PathSet: props}},
		}},
	}
	res, err := methods.RetrieveProperties(ctx, s.admin, &req)
	if err != nil {
		return err
	}
	return mo.LoadObjectContent(res.Returnval, dst)
}

// stored is one message of the event stream, decoded.
type stored struct {
	subject string
	msgID   string
	ev      event.Event
	data    map[string]any
}

func (m stored) key() int64 {
	k, _ := m.data["Key"].(float64)
	return int64(k)
}

func (m stored) message() string {
	s, _ := m.data["Message"].(string)
	return s
}

// watch follows what the stream stores on the given subjects, from the
// start, with an ordered consumer.
type watch struct {
	mu   sync.Mutex
	msgs []stored
	errs []error
}

func watchStream(t testing.TB, js jetstream.JetStream, subjects string) *watch {
	t.Helper()
	w := &watch{}
	cons, err := js.OrderedConsumer(t.Context(), streams.EventStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subjects},
	})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		ev, err := streams.Decode(msg.Data())
		var data map[string]any
		if err == nil && ev.DataContentType() == vcenter.EncodingJSON {
			err = json.Unmarshal(ev.Data(), &data)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.errs = append(w.errs, fmt.Errorf("message on %s: %w", msg.Subject(), err))
			return
		}
		w.msgs = append(w.msgs, stored{subject: msg.Subject(), msgID: msg.Headers().Get(streams.HeaderMsgID), ev: ev, data: data})
	})
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	t.Cleanup(cc.Stop)
	return w
}

func (w *watch) all(t testing.TB) []stored {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, err := range w.errs {
		t.Error(err)
	}
	w.errs = nil
	return append([]stored(nil), w.msgs...)
}

// find returns the first stored message that matches.
func (w *watch) find(t testing.TB, match func(stored) bool) (stored, bool) {
	for _, m := range w.all(t) {
		if match(m) {
			return m, true
		}
	}
	return stored{}, false
}

// await waits until the message matching match is stored.
func (w *watch) await(t testing.TB, what string, match func(stored) bool) stored {
	t.Helper()
	var got stored
	eventually(t, what, func() bool {
		var ok bool
		got, ok = w.find(t, match)
		return ok
	})
	return got
}

// checkUnique fails the test if the stream holds an event key twice.
func (w *watch) checkUnique(t testing.TB) {
	t.Helper()
	seen := make(map[string]bool)
	for _, m := range w.all(t) {
		if seen[m.msgID] {
			t.Errorf("stream holds %s twice", m.msgID)
		}
		seen[m.msgID] = true
	}
}

func byMessage(nonce string) func(stored) bool {
	return func(m stored) bool { return m.message() == nonce }
}

func byType(vmName, typ string) func(stored) bool {
	return func(m stored) bool {
		if !strings.HasSuffix(m.subject, "."+typ) {
			return false
		}
		vm, _ := m.data["Vm"].(map[string]any)
		return vm != nil && vm["Name"] == vmName
	}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running runs src until the test ends; the channel gets Run's result.
// It returns once the source reads events.
func running(t testing.TB, src *vcenter.Source, pub producers.Publisher, logs *logs) (cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc, stopped := make(chan error, 1), make(chan struct{})
	n := logs.count("reading vcenter events")
	go func() {
		defer close(stopped)
		errc <- src.Run(ctx, pub)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	eventually(t, "the source to read events", func() bool {
		select {
		case <-stopped:
			t.Fatalf("Run returned early: %v", <-errc)
		default:
		}
		return logs.count("reading vcenter events") > n
	})
	return cancel, errc
}

// stop cancels a running source and returns Run's result.
func stop(t testing.TB, cancel context.CancelFunc, done <-chan error) error {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(waitTimeout):
		t.Fatalf("Run did not return after cancel")
		return nil
	}
}

// tee publishes through a real publisher and records what it stored.
type tee struct {
	producers.Publisher
	mu   sync.Mutex
	keys []string
}

func (p *tee) Publish(ctx context.Context, recs ...producers.Record) error {
	err := p.Publisher.Publish(ctx, recs...)
	if err == nil {
		p.mu.Lock()
		for i := range recs {
			var d struct{ Key int64 }
			_ = json.Unmarshal(recs[i].Event.Data(), &d)
			p.keys = append(p.keys, fmt.Sprint(d.Key))
		}
		p.mu.Unlock()
	}
	return err
}

func (p *tee) published() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.keys...)
}

// logs is a slog.Handler that keeps every record, attributes flattened to
// strings.
type logs struct {
	mu   sync.Mutex
	recs []logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r logRecord) String() string { return fmt.Sprintf("%s %q %v", r.level, r.msg, r.attrs) }

func (l *logs) logger() *slog.Logger { return slog.New(&logHandler{l: l}) }

func (l *logs) records() []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logRecord(nil), l.recs...)
}

// matching returns the records whose message contains substr.
func (l *logs) matching(substr string) []logRecord {
	var out []logRecord
	for _, r := range l.records() {
		if strings.Contains(r.msg, substr) {
			out = append(out, r)
		}
	}
	return out
}

func (l *logs) count(substr string) int { return len(l.matching(substr)) }

type logHandler struct {
	l     *logs
	attrs []slog.Attr
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: make(map[string]string)}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.Resolve().String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve().String()
		return true
	})
	h.l.mu.Lock()
	h.l.recs = append(h.l.recs, rec)
	h.l.mu.Unlock()
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logHandler{l: h.l, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
