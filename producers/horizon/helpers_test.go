package horizon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/horizon"
	"github.com/vrelay/vrelay/producers/horizon/horizontest"
	"github.com/vrelay/vrelay/streams"
)

// waitTimeout bounds every wait in these tests. It is generous because the
// race detector on two cores is slow; no test asserts a duration.
const waitTimeout = 60 * time.Second

const (
	sourceName = "hz01"
	cpKey      = "horizon." + sourceName
	subjects   = "vmware.horizon." + sourceName + ".>"
)

// env is one test's world: a fake Horizon, a NATS server with the vrelay
// topology, the checkpoint bucket, captured logs and a watch on the
// source's subjects.
type env struct {
	hz   *horizontest.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	logs *logs
	w    *watch
}

func newEnv(t testing.TB, opts ...horizontest.Option) *env {
	t.Helper()
	nc, js := natstest.Run(t)
	kv, err := js.KeyValue(t.Context(), streams.CheckpointBucket)
	if err != nil {
		t.Fatalf("checkpoint bucket: %v", err)
	}
	return &env{hz: horizontest.New(t, opts...), nc: nc, js: js, kv: kv, logs: &logs{}, w: watchStream(t, js, subjects)}
}

// config is a source configuration for the fake, its password in a file,
// its certificate verified against the fake's CA, polling fast.
func (e *env) config(t testing.TB) horizon.Config {
	t.Helper()
	return configFor(t, e.hz, horizontest.Password)
}

func configFor(t testing.TB, hz *horizontest.Server, password string) horizon.Config {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return horizon.Config{
		Address:      hz.URL(),
		Domain:       horizontest.Domain,
		Username:     horizontest.Username,
		Password:     secret.Ref{FromFile: pw},
		CAFile:       hz.CAFile(),
		PollInterval: 20 * time.Millisecond,
	}
}

// source builds a source named hz01 on the env's checkpoint bucket, with
// short backoffs, that asks the stream for its last event as vrelay's
// does.
func (e *env) source(t testing.TB, cfg horizon.Config, opts ...horizon.Option) *horizon.Source {
	t.Helper()
	cp, err := producers.NewCheckpointer(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]horizon.Option{
		horizon.WithName(sourceName),
		horizon.WithLogger(e.logs.logger()),
		horizon.WithCheckpointer(cp),
		horizon.WithLastStored(producers.NewPublisher(e.js, producers.Scope{Provider: horizon.Provider, Source: sourceName})),
		horizon.WithBackoff(10*time.Millisecond, 200*time.Millisecond),
		horizon.WithTimeout(10 * time.Second),
	}, opts...)
	src, err := horizon.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	return src
}

func (e *env) publisher(src *horizon.Source) *producers.JetStreamPublisher {
	return producers.NewPublisher(e.js, src.Scope())
}

// checkpoint returns the saved checkpoint, decoded into its JSON fields.
func (e *env) checkpoint(t testing.TB) (map[string]any, bool) {
	t.Helper()
	kve, err := e.kv.Get(t.Context(), cpKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("get checkpoint: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(kve.Value(), &m); err != nil {
		t.Fatalf("checkpoint %q is not JSON: %v", kve.Value(), err)
	}
	return m, true
}

// putCheckpoint saves a checkpoint as an earlier run would have.
func (e *env) putCheckpoint(t testing.TB, ms int64, ids ...int64) {
	t.Helper()
	if ids == nil {
		ids = []int64{}
	}
	b, _ := json.Marshal(map[string]any{
		"horizon":            e.hz.URL(),
		"host":               e.hz.Host(),
		"lastEventTime":      ms,
		"lastEventTimestamp": time.UnixMilli(ms).UTC(),
		"lastEventIds":       ids,
		"createdTimestamp":   time.Now().UTC(),
	})
	if _, err := e.kv.Put(t.Context(), cpKey, b); err != nil {
		t.Fatalf("put checkpoint: %v", err)
	}
}

// msgID is the Nats-Msg-Id the source gives a fake event.
func (e *env) msgID(ev horizontest.Event) string {
	return e.hz.Host() + ":" + strconv.FormatInt(ev.ID, 10)
}

// awaitAll waits until the stream holds every event of evs.
func (e *env) awaitAll(t testing.TB, evs []horizontest.Event) {
	t.Helper()
	want := make(map[string]bool, len(evs))
	for _, ev := range evs {
		want[e.msgID(ev)] = true
	}
	eventually(t, fmt.Sprintf("the stream to hold %d events", len(evs)), func() bool {
		n := 0
		for _, m := range e.w.all(t) {
			if want[m.msgID] {
				n++
			}
		}
		return n >= len(want)
	})
}

// checkExactlyOnce fails the test unless the stream holds each of evs
// once, nothing else, in (time, id) order.
func (e *env) checkExactlyOnce(t testing.TB, evs []horizontest.Event) {
	t.Helper()
	want := make(map[string]bool, len(evs))
	for _, ev := range evs {
		want[e.msgID(ev)] = true
	}
	seen := map[string]int{}
	var prevTime, prevID int64
	for _, m := range e.w.all(t) {
		seen[m.msgID]++
		if !want[m.msgID] {
			t.Errorf("stream holds %s, which is not among the events", m.msgID)
		}
		id, _ := strconv.ParseInt(m.ev.ID(), 10, 64)
		ms := m.ev.Time().UnixMilli()
		if ms < prevTime || (ms == prevTime && id <= prevID) {
			t.Errorf("stream holds event %d at %d after %d at %d", id, ms, prevID, prevTime)
		}
		prevTime, prevID = ms, id
	}
	missing := 0
	for id := range want {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			t.Errorf("stream holds %s %d times", id, seen[id])
		}
	}
	if missing > 0 {
		t.Errorf("stream lacks %d of %d events", missing, len(want))
	}
}

// stored is one message of the event stream, decoded.
type stored struct {
	subject string
	msgID   string
	ev      event.Event
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
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.errs = append(w.errs, fmt.Errorf("message on %s: %w", msg.Subject(), err))
			return
		}
		w.msgs = append(w.msgs, stored{subject: msg.Subject(), msgID: msg.Headers().Get(streams.HeaderMsgID), ev: ev})
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

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// running runs src until the test ends; the channel gets Run's result.
// It returns once the source reads events.
func running(t testing.TB, src *horizon.Source, pub producers.Publisher, logs *logs) (cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	n := logs.count("reading horizon events")
	cancel, done = start(t, src, pub)
	eventually(t, "the source to read events", func() bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		return logs.count("reading horizon events") > n
	})
	return cancel, done
}

// start runs src until the test ends, without waiting for anything.
func start(t testing.TB, src *horizon.Source, pub producers.Publisher) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc, stopped := make(chan error, 1), make(chan struct{})
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

// counting publishes through a real publisher and counts the records it
// was handed, by Nats-Msg-Id, whatever JetStream did with them.
type counting struct {
	producers.Publisher
	mu    sync.Mutex
	calls int
	ids   map[string]int
}

func (p *counting) Publish(ctx context.Context, recs ...producers.Record) error {
	err := p.Publisher.Publish(ctx, recs...)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if err == nil {
		if p.ids == nil {
			p.ids = map[string]int{}
		}
		for i := range recs {
			p.ids[recs[i].MsgID]++
		}
	}
	return err
}

func (p *counting) callCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// handed returns how often each Nats-Msg-Id was handed to the publisher
// and acknowledged.
func (p *counting) handed() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.ids))
	for k, v := range p.ids {
		out[k] = v
	}
	return out
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

// contains reports whether any message or attribute holds s.
func (l *logs) contains(s string) bool {
	for _, r := range l.records() {
		if strings.Contains(r.String(), s) {
			return true
		}
	}
	return false
}

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
