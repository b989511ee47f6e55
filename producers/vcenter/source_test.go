package vcenter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/vcenter"
	"github.com/vrelay/vrelay/streams"
)

const (
	sourceName = "vc01"
	cpKey      = "vcenter." + sourceName
	subjects   = "vmware.vcenter." + sourceName + ".>"
)

// env is one test's world: a simulator, a NATS server with the vrelay
// topology, the checkpoint bucket, captured logs and a watch on the
// source's subjects.
type env struct {
	sim  *sim
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	logs *logs
	w    *watch
}

func newEnv(t testing.TB, password string) *env {
	t.Helper()
	nc, js := natstest.Run(t)
	kv, err := js.KeyValue(t.Context(), streams.CheckpointBucket)
	if err != nil {
		t.Fatalf("checkpoint bucket: %v", err)
	}
	return &env{sim: newSim(t, password), nc: nc, js: js, kv: kv, logs: &logs{}, w: watchStream(t, js, subjects)}
}

// source builds a source named vc01 on the env's checkpoint bucket, with
// short backoffs, that asks the stream for its last event as vrelay's
// does.
func (e *env) source(t testing.TB, cfg vcenter.Config, opts ...vcenter.Option) *vcenter.Source {
	t.Helper()
	cp, err := producers.NewCheckpointer(t.Context(), e.js)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]vcenter.Option{
		vcenter.WithName(sourceName),
		vcenter.WithLogger(e.logs.logger()),
		vcenter.WithCheckpointer(cp),
		vcenter.WithLastStored(producers.NewPublisher(e.js, producers.Scope{Provider: vcenter.Provider, Source: sourceName})),
		vcenter.WithBackoff(10*time.Millisecond, 200*time.Millisecond),
	}, opts...)
	src, err := vcenter.New(cfg, opts...)
	if err != nil {
		t.Fatalf("New() error: %v", err)
	}
	return src
}

func (e *env) publisher(src *vcenter.Source) *producers.JetStreamPublisher {
	return producers.NewPublisher(e.js, src.Scope())
}

// checkpoint returns the saved checkpoint, decoded into its JSON fields.
func (e *env) checkpoint(t *testing.T) (map[string]any, bool) {
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
func (e *env) putCheckpoint(t *testing.T, instance string, key int32, at time.Time) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{
		"vCenter":               e.sim.url,
		"lastEventKey":          key,
		"lastEventType":         "VmPoweredOnEvent",
		"lastEventKeyTimestamp": at,
		"createdTimestamp":      at,
		"instanceUuid":          instance,
	})
	if _, err := e.kv.Put(t.Context(), cpKey, b); err != nil {
		t.Fatalf("put checkpoint: %v", err)
	}
}

// checkOrdered fails the test unless the stream holds keys in increasing
// order: one run of a source publishes in vCenter's order.
func (e *env) checkOrdered(t *testing.T) {
	t.Helper()
	prev := int64(math.MinInt64)
	for _, m := range e.w.all(t) {
		if m.key() <= prev {
			t.Errorf("stream holds key %d after %d", m.key(), prev)
		}
		prev = m.key()
	}
}

func TestEvents(t *testing.T) {
	tests := []struct {
		name     string
		format   vcenter.Format
		wantType func(name, class string) string
		checkID  func(t *testing.T, id string, key int64)
	}{
		{
			name:     "tanzu",
			format:   vcenter.FormatTanzu,
			wantType: func(name, _ string) string { return "com.vmware.vsphere." + name + ".v0" },
			checkID: func(t *testing.T, id string, key int64) {
				if want := strconv.FormatInt(key, 10); id != want {
					t.Errorf("got id %q, want the key %q", id, want)
				}
			},
		},
		{
			name:     "router",
			format:   vcenter.FormatRouter,
			wantType: func(_, class string) string { return "com.vmware.event.router/" + class },
			checkID: func(t *testing.T, id string, _ int64) {
				if _, err := uuid.Parse(id); err != nil {
					t.Errorf("got id %q, want a UUID", id)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "")
			cfg := e.sim.config(t)
			cfg.Format = tt.format
			src := e.source(t, cfg)
			cancel, done := running(t, src, e.publisher(src), e.logs)

			vm := e.sim.vm(t)
			power(t, vm, false)
			nonce := "events-" + tt.name
			e.sim.post(t, e.sim.eventEx(nonce))
			e.sim.post(t, &types.ExtendedEvent{
				EventTypeId:   "com.example.vrelay.Tested",
				ManagedObject: vm.Reference(),
				Data:          []types.ExtendedEventPair{{Key: "nonce", Value: nonce}},
			})

			isExt := func(m stored) bool { return m.data["EventTypeId"] == "com.example.vrelay.Tested" }
			checks := []struct {
				match   func(stored) bool
				name    string // vSphere type
				token   string // subject token
				class   string
				subject bool // router format sets subject = name
			}{
				{byType(vm.Name(), "VmStoppingEvent"), "VmStoppingEvent", "VmStoppingEvent", "event", true},
				{byType(vm.Name(), "VmPoweredOffEvent"), "VmPoweredOffEvent", "VmPoweredOffEvent", "event", true},
				{byMessage(nonce), "com.vmware.vc.HA.DasHostFailedEvent", "com_vmware_vc_HA_DasHostFailedEvent", "eventex", true},
				{isExt, "com.example.vrelay.Tested", "com_example_vrelay_Tested", "extendedevent", true},
			}
			for _, c := range checks {
				m := e.w.await(t, c.name, c.match)
				key := m.key()
				if want := "vmware.vcenter." + sourceName + "." + c.token; m.subject != want {
					t.Errorf("%s: got subject %q, want %q", c.name, m.subject, want)
				}
				if want := tt.wantType(c.name, c.class); m.ev.Type() != want {
					t.Errorf("%s: got type %q, want %q", c.name, m.ev.Type(), want)
				}
				if m.ev.Source() != e.sim.url {
					t.Errorf("%s: got source %q, want %q", c.name, m.ev.Source(), e.sim.url)
				}
				if want := fmt.Sprintf("%s:%d", e.sim.uuid, key); m.msgID != want {
					t.Errorf("%s: got Nats-Msg-Id %q, want %q", c.name, m.msgID, want)
				}
				tt.checkID(t, m.ev.ID(), key)
				ext := m.ev.Extensions()
				switch tt.format {
				case vcenter.FormatTanzu:
					if ext["eventclass"] != c.class || ext["vsphereapiversion"] != "6.5" {
						t.Errorf("%s: got extensions %v, want eventclass %s and vsphereapiversion 6.5", c.name, ext, c.class)
					}
				case vcenter.FormatRouter:
					if m.ev.Subject() != c.name {
						t.Errorf("%s: got CE subject %q, want %q", c.name, m.ev.Subject(), c.name)
					}
				}
			}
			ext := e.w.await(t, "ExtendedEvent", isExt)
			e.checkOrdered(t)
			e.w.checkUnique(t)

			// The checkpoint follows, with Tanzu's field names.
			var cp map[string]any
			eventually(t, "the checkpoint to cover the last event", func() bool {
				var ok bool
				cp, ok = e.checkpoint(t)
				return ok && int64(cp["lastEventKey"].(float64)) >= ext.key()
			})
			for _, f := range []string{"vCenter", "lastEventKey", "lastEventType", "lastEventKeyTimestamp", "createdTimestamp", "instanceUuid"} {
				if _, ok := cp[f]; !ok {
					t.Errorf("checkpoint %v has no field %s", cp, f)
				}
			}
			if cp["instanceUuid"] != e.sim.uuid || cp["vCenter"] != e.sim.url {
				t.Errorf("got checkpoint %v, want instanceUuid %s and vCenter %s", cp, e.sim.uuid, e.sim.url)
			}

			if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
				t.Errorf("got Run() error %v, want context.Canceled", err)
			}
		})
	}
}

func TestRestartResumes(t *testing.T) {
	e := newEnv(t, "")
	cfg := e.sim.config(t)
	cfg.Checkpoint.Period = time.Hour // only the save on shutdown

	src := e.source(t, cfg)
	first := &tee{Publisher: e.publisher(src)}
	cancel, done := running(t, src, first, e.logs)
	for i := range 5 {
		e.sim.post(t, e.sim.eventEx(fmt.Sprint("a-", i)))
	}
	last := e.w.await(t, "a-4", byMessage("a-4"))
	// Stop only once Publish returned for it: an event whose PubAck the
	// source never saw is (rightly) not checkpointed.
	eventually(t, "a-4 to be acknowledged", func() bool {
		return slices.Contains(first.published(), fmt.Sprint(last.key()))
	})
	if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("got Run() error %v, want context.Canceled", err)
	}
	cp, ok := e.checkpoint(t)
	if !ok {
		t.Fatal("no checkpoint saved on shutdown")
	}
	saved := int64(cp["lastEventKey"].(float64))
	if saved != last.key() {
		t.Errorf("got checkpoint at key %d, want the last published event %d", saved, last.key())
	}

	// Events while no source runs are read by the next one.
	for i := range 5 {
		e.sim.post(t, e.sim.eventEx(fmt.Sprint("b-", i)))
	}
	src2 := e.source(t, cfg)
	pub := &tee{Publisher: e.publisher(src2)}
	running(t, src2, pub, e.logs)
	e.w.await(t, "b-4", byMessage("b-4"))
	e.sim.post(t, e.sim.eventEx("c-0"))
	e.w.await(t, "c-0", byMessage("c-0"))

	for _, k := range pub.published() {
		if n, _ := strconv.ParseInt(k, 10, 64); n <= saved {
			t.Errorf("second run published key %d, at or before the checkpoint %d", n, saved)
		}
	}
	for _, n := range []string{"a-0", "a-4", "b-0", "b-4", "c-0"} {
		if _, ok := e.w.find(t, byMessage(n)); !ok {
			t.Errorf("stream lacks %s", n)
		}
	}
	e.w.checkUnique(t)
	if got := e.logs.count("resuming after the checkpoint"); got != 1 {
		t.Errorf("got %d resume logs, want 1", got)
	}
}

func TestReplayWindow(t *testing.T) {
	t.Run("older than maxAge", func(t *testing.T) {
		e := newEnv(t, "")
		maxAge := time.Second
		cfg := e.sim.config(t)
		cfg.Checkpoint.MaxAge = &maxAge
		e.putCheckpoint(t, e.sim.uuid, 1, time.Now().Add(-time.Hour))

		e.sim.post(t, e.sim.eventEx("too-old"))
		time.Sleep(maxAge + 300*time.Millisecond) // let too-old age out of the window
		e.sim.post(t, e.sim.eventEx("recent"))
		src := e.source(t, cfg)
		running(t, src, e.publisher(src), e.logs)
		e.w.await(t, "recent", byMessage("recent"))
		// Events are published in order, so too-old would be stored by now.
		if _, ok := e.w.find(t, byMessage("too-old")); ok {
			t.Error("event older than maxAge was replayed")
		}
		warns := e.logs.matching("older than checkpoint.maxAge")
		if len(warns) != 1 || warns[0].attrs["skipped_from"] == "" || warns[0].attrs["skipped_to"] == "" {
			t.Errorf("got logs %v, want one warning naming the skipped span", warns)
		}
	})
	t.Run("zero", func(t *testing.T) {
		e := newEnv(t, "")
		zero := time.Duration(0)
		cfg := e.sim.config(t)
		cfg.Checkpoint.MaxAge = &zero
		e.putCheckpoint(t, e.sim.uuid, 1, time.Now().Add(-time.Minute))

		e.sim.post(t, e.sim.eventEx("before-start"))
		src := e.source(t, cfg)
		running(t, src, e.publisher(src), e.logs)
		e.sim.post(t, e.sim.eventEx("after-start"))
		e.w.await(t, "after-start", byMessage("after-start"))
		if _, ok := e.w.find(t, byMessage("before-start")); ok {
			t.Error("maxAge 0s replayed an event from before the start")
		}
	})
}

func TestInstanceChanged(t *testing.T) {
	e := newEnv(t, "")
	// A checkpoint of another vCenter, at a key that would hide every
	// event of this one if it were trusted.
	e.putCheckpoint(t, uuid.NewString(), math.MaxInt32, time.Now().Add(-time.Minute))
	e.sim.post(t, e.sim.eventEx("before-start"))
	src := e.source(t, e.sim.config(t))
	running(t, src, e.publisher(src), e.logs)
	e.sim.post(t, e.sim.eventEx("after-start"))
	e.w.await(t, "after-start", byMessage("after-start"))
	if _, ok := e.w.find(t, byMessage("before-start")); ok {
		t.Error("replayed events of a vCenter instance the checkpoint does not belong to")
	}
	if got := e.logs.count("another vcenter instance"); got != 1 {
		t.Errorf("got %d warnings about another instance, want 1", got)
	}
}

func TestCorruptCheckpoint(t *testing.T) {
	_, js := natstest.Run(t)
	kv, err := js.KeyValue(t.Context(), streams.CheckpointBucket)
	if err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, value string }{
		{"garbage", "not json at all"},
		{"array", `[1,2]`},
		{"no timestamp", `{"vCenter":"https://vc/sdk","lastEventKey":5}`},
		{"wrong type", `{"lastEventKey":"five","lastEventKeyTimestamp":"2024-01-01T00:00:00Z"}`},
		{"trailing data", `{"lastEventKey":5,"lastEventKeyTimestamp":"2024-01-01T00:00:00Z"} {}`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprint("corrupt", i)
			key := "vcenter." + name
			if _, err := kv.Put(t.Context(), key, []byte(tt.value)); err != nil {
				t.Fatal(err)
			}
			cp, err := producers.NewCheckpointer(t.Context(), js)
			if err != nil {
				t.Fatal(err)
			}
			// The address is never dialled: the checkpoint is read first.
			src, err := vcenter.New(vcenter.Config{
				Address:  "https://127.0.0.1:9/sdk",
				Username: "u",
				Password: secret.Ref{FromFile: pw},
			}, vcenter.WithName(name), vcenter.WithCheckpointer(cp))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			err = src.Run(ctx, producers.NewPublisher(js, src.Scope()))
			if !errors.Is(err, vcenter.ErrCorruptCheckpoint) {
				t.Fatalf("got Run() error %v, want ErrCorruptCheckpoint", err)
			}
			if want := "nats kv del vrelay_checkpoints " + key; !strings.Contains(err.Error(), want) {
				t.Errorf("got error %q, want it to name the key and the recovery %q", err, want)
			}
		})
	}
}

func TestSessionLost(t *testing.T) {
	e := newEnv(t, "")
	src := e.source(t, e.sim.config(t))
	running(t, src, e.publisher(src), e.logs)
	e.sim.post(t, e.sim.eventEx("before"))
	e.w.await(t, "before", byMessage("before"))

	if n := e.sim.terminateOthers(t); n == 0 {
		t.Fatal("no session to terminate")
	}
	e.sim.post(t, e.sim.eventEx("after"))
	e.w.await(t, "after", byMessage("after"))
	eventually(t, "a second session", func() bool { return e.logs.count("reading vcenter events") >= 2 })
	if got := e.logs.count("session lost"); got == 0 {
		t.Errorf("got no log of the lost session; logs: %v", e.logs.records())
	}
	e.w.checkUnique(t)
	e.checkOrdered(t)
}

func TestBadPassword(t *testing.T) {
	s := newSim(t, "right-password")
	cfg := s.config(t)
	if err := os.WriteFile(cfg.Password.FromFile, []byte("wrong-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Run(t)
	l := &logs{}
	src, err := vcenter.New(cfg, vcenter.WithName(sourceName), vcenter.WithLogger(l.logger()),
		vcenter.WithBackoff(20*time.Millisecond, 40*time.Millisecond),
		vcenter.WithOutageInterval(time.Nanosecond)) // a line per attempt
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, producers.NewPublisher(js, src.Scope())) }()

	const msg = "rejected the username or password"
	eventually(t, "three failed logins", func() bool { return l.count(msg) >= 3 })
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while retrying, want it to keep running", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("got Run() error %v, want context.Canceled", err)
	}

	for i, r := range l.matching(msg)[:3] {
		if r.level != slog.LevelError || r.attrs["attempt"] != strconv.Itoa(i+1) || r.attrs["username"] != "vrelay" {
			t.Errorf("got log %v, want an error for attempt %d naming the user", r, i+1)
		}
	}
	for _, r := range l.records() {
		if strings.Contains(r.String(), "wrong-password") {
			t.Errorf("log leaks the password: %v", r)
		}
	}
}

func TestCheckpointConflict(t *testing.T) {
	e := newEnv(t, "")
	health := watchHealth(t, e.js)
	src := e.source(t, e.sim.config(t), vcenter.WithHealthEvents(e.js))
	running(t, src, e.publisher(src), e.logs)
	e.sim.post(t, e.sim.eventEx("x-0"))
	e.w.await(t, "x-0", byMessage("x-0"))
	eventually(t, "a checkpoint", func() bool { _, ok := e.checkpoint(t); return ok })

	// Another writer (a second replica) saves behind the source's back.
	e.putCheckpoint(t, e.sim.uuid, 1, time.Now())
	e.sim.post(t, e.sim.eventEx("x-1"))
	last := e.w.await(t, "x-1", byMessage("x-1"))
	eventually(t, "the conflict to be logged", func() bool { return e.logs.count("changed by another writer") > 0 })
	eventually(t, "the source to save its own position again", func() bool {
		cp, ok := e.checkpoint(t)
		return ok && int64(cp["lastEventKey"].(float64)) >= last.key()
	})
	if r := e.logs.matching("changed by another writer")[0]; r.level != slog.LevelError {
		t.Errorf("got %v, want an error", r)
	}
	eventually(t, "a checkpoint.conflict health event", func() bool {
		return health.has(healthType(producers.HealthCheckpointConflict))
	})
}

// TestKeepUp posts events faster than one ReadNextEvents page while the
// source runs. The simulator keeps about 1000 events per collector: a
// reader that fell that far behind would lose events, so all of them
// arriving proves it keeps up.
func TestKeepUp(t *testing.T) {
	const workers, perWorker = 4, 800
	e := newEnv(t, "")
	src := e.source(t, e.sim.config(t))
	running(t, src, e.publisher(src), e.logs)

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				e.sim.post(t, e.sim.eventEx(fmt.Sprintf("k-%d-%d", w, i)))
			}
		})
	}
	wg.Wait()
	want := make(map[string]bool, workers*perWorker)
	for w := range workers {
		for i := range perWorker {
			want[fmt.Sprintf("k-%d-%d", w, i)] = true
		}
	}
	eventually(t, "every posted event", func() bool {
		got := 0
		for _, m := range e.w.all(t) {
			if want[m.message()] {
				got++
			}
		}
		return got == len(want)
	})
	e.w.checkUnique(t)
	e.checkOrdered(t)
	if got := e.logs.count("lost its place") + e.logs.count("stalled collector"); got != 0 {
		t.Errorf("collector lost its place %d times", got)
	}
	if diff := cmp.Diff(0, e.logs.count("vcenter connection failed")); diff != "" {
		t.Errorf("connection failures (-want +got):\n%s", diff)
	}
}

// TestStreamWinsOverCheckpoint: the stream, not the checkpoint, says where
// to resume. A checkpoint ahead of the stream (the stream lost its last
// writes in a power failure) must not make the source skip the events in
// between; and with no checkpoint at all (a crash before the first save)
// the source resumes after the last stored event instead of at "now".
func TestStreamWinsOverCheckpoint(t *testing.T) {
	e := newEnv(t, "")
	cfg := e.sim.config(t)
	cfg.Checkpoint.Period = time.Hour

	src := e.source(t, cfg)
	first := &tee{Publisher: e.publisher(src)}
	cancel, done := running(t, src, first, e.logs)
	e.sim.post(t, e.sim.eventEx("a-0"))
	a0 := e.w.await(t, "a-0", byMessage("a-0"))
	eventually(t, "a-0 to be acknowledged", func() bool {
		return slices.Contains(first.published(), fmt.Sprint(a0.key()))
	})
	if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("got Run() error %v, want context.Canceled", err)
	}
	// As if the stream lost what came after a-0 while the bucket kept a
	// later position: the checkpoint claims 50 more events were stored.
	e.putCheckpoint(t, e.sim.uuid, int32(a0.key())+50, time.Now())

	for i := range 3 {
		e.sim.post(t, e.sim.eventEx(fmt.Sprint("b-", i)))
	}
	src2 := e.source(t, cfg)
	cancel2, done2 := running(t, src2, e.publisher(src2), e.logs)
	for i := range 3 {
		e.w.await(t, fmt.Sprint("b-", i), byMessage(fmt.Sprint("b-", i)))
	}
	if got := e.logs.count("checkpoint is ahead of the stream"); got != 1 {
		t.Errorf("got %d 'checkpoint is ahead' warnings, want 1", got)
	}
	if err := stop(t, cancel2, done2); !errors.Is(err, context.Canceled) {
		t.Fatalf("got Run() error %v, want context.Canceled", err)
	}

	// No checkpoint at all: resume after the stream's last event.
	if err := e.kv.Purge(t.Context(), cpKey); err != nil {
		t.Fatal(err)
	}
	e.sim.post(t, e.sim.eventEx("c-0"))
	src3 := e.source(t, cfg)
	running(t, src3, e.publisher(src3), e.logs)
	e.w.await(t, "c-0", byMessage("c-0"))
	if got := e.logs.count("resuming after the last event of this vcenter in the stream"); got != 1 {
		t.Errorf("got %d 'resuming after the last event' logs, want 1", got)
	}
	e.w.checkUnique(t)
}

// TestWithoutLastStored: without vcenter.WithLastStored the checkpoint
// alone says where to begin, so a source without one starts at vCenter's
// current time although the stream holds its events.
func TestWithoutLastStored(t *testing.T) {
	e := newEnv(t, "")
	cfg := e.sim.config(t)
	src := e.source(t, cfg)
	cancel, done := running(t, src, e.publisher(src), e.logs)
	e.sim.post(t, e.sim.eventEx("a-0"))
	e.w.await(t, "a-0", byMessage("a-0"))
	if err := stop(t, cancel, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("got Run() error %v, want context.Canceled", err)
	}
	if err := e.kv.Purge(t.Context(), cpKey); err != nil {
		t.Fatal(err)
	}
	src2 := e.source(t, cfg, vcenter.WithLastStored(nil))
	running(t, src2, e.publisher(src2), e.logs)
	if got := e.logs.count("no checkpoint; starting at vcenter's current time"); got != 2 {
		t.Errorf("got %d 'no checkpoint' logs, want 2 (one per run)", got)
	}
	if got := e.logs.count("resuming after the last event of this vcenter in the stream"); got != 0 {
		t.Errorf("got %d 'resuming after the last event' logs, want 0 without WithLastStored", got)
	}
}

// TestRestoredVCenterKeysGoBack: a vCenter restored from a backup keeps its
// instance uuid but hands out keys again from where the backup stood. New
// events, newer than the last stored one but with smaller keys, must be
// published, not skipped as "already stored".
func TestRestoredVCenterKeysGoBack(t *testing.T) {
	e := newEnv(t, "")
	// The position says: key 1,000,000 was stored a minute ago.
	e.putCheckpoint(t, e.sim.uuid, 1_000_000, time.Now().Add(-time.Minute))
	src := e.source(t, e.sim.config(t))
	running(t, src, e.publisher(src), e.logs)
	eventually(t, "the source to read vCenter", func() bool { return e.logs.count("reading vcenter events") > 0 })
	e.sim.post(t, e.sim.eventEx("after-restore"))
	e.w.await(t, "after-restore", byMessage("after-restore"))
	if got := e.logs.count("keys went back"); got < 1 {
		t.Errorf("got %d 'keys went back' warnings, want at least 1", got)
	}
}
