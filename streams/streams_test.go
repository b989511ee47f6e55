package streams_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/natstest"
	"github.com/vrelay/vrelay/streams"
)

func TestToken(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "VmPoweredOnEvent", want: "VmPoweredOnEvent"},
		{name: "eventex id", in: "com.vmware.vc.HA.DasHostFailedEvent", want: "com_vmware_vc_HA_DasHostFailedEvent"},
		{name: "wildcards", in: "a*b>c", want: "a_b_c"},
		{name: "white space", in: "two words\tand\ttab", want: "two_words_and_tab"},
		{name: "empty", in: "", want: "_"},
		{name: "unicode kept", in: "événement", want: "événement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := streams.Token(tt.in); got != tt.want {
				t.Errorf("Token(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got, want := streams.Subject("vmware", "vcenter", "vc01", "com.vmware.vc.HA.DasHostFailedEvent"), "vmware.vcenter.vc01.com_vmware_vc_HA_DasHostFailedEvent"; got != want {
		t.Errorf("Subject() = %q, want %q", got, want)
	}
	if got, want := streams.DLQSubject("vm-on"), "vrelay.dlq.vm-on"; got != want {
		t.Errorf("DLQSubject() = %q, want %q", got, want)
	}
}

func sample(t *testing.T) event.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tanzu-DrsVmPoweredOnEvent.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev := event.New()
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestCodecRoundTrip(t *testing.T) {
	ev := sample(t)
	ev.SetSubject("DrsVmPoweredOnEvent")
	msg, err := streams.Encode("vmware.vcenter.vc01.DrsVmPoweredOnEvent", &ev, "")
	if err != nil {
		t.Fatal(err)
	}
	wantHeaders := map[string]string{
		streams.HeaderMsgID:   ev.Source() + ":" + ev.ID(),
		streams.HeaderType:    ev.Type(),
		streams.HeaderSource:  ev.Source(),
		streams.HeaderID:      ev.ID(),
		streams.HeaderSubject: "DrsVmPoweredOnEvent",
	}
	for k, want := range wantHeaders {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	var body map[string]any
	if err := json.Unmarshal(msg.Data, &body); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if body["specversion"] != "1.0" {
		t.Errorf("specversion = %v, want 1.0", body["specversion"])
	}
	if _, ok := body["data"].(map[string]any); !ok {
		t.Errorf("data is %T, want inline JSON object", body["data"])
	}
	got, err := streams.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ev.String(), got.String()); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	if _, err := streams.Decode([]byte(`{"specversion":`)); err == nil {
		t.Error("Decode(truncated JSON) got nil error, want error")
	}
}

func TestEncodeExplicitMsgID(t *testing.T) {
	ev := sample(t)
	msg, err := streams.Encode("s", &ev, "uuid-1:42")
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(streams.HeaderMsgID); got != "uuid-1:42" {
		t.Errorf("Nats-Msg-Id = %q, want uuid-1:42", got)
	}
	if got := msg.Header.Get(streams.HeaderSubject); got != "" {
		t.Errorf("Ce-Subject = %q for an event without subject, want absent", got)
	}
}

func TestEnsureIdempotentAndUpdates(t *testing.T) {
	_, js := natstest.Run(t) // runs Ensure with defaults once
	ctx := t.Context()
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(ctx, js, cfg, nil); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	cfg.MaxAge = 48 * time.Hour
	cfg.DuplicateWindow = 20 * time.Minute
	if err := streams.Ensure(ctx, js, cfg, nil); err != nil {
		t.Fatalf("Ensure with new limits: %v", err)
	}
	s, err := js.Stream(ctx, streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.MaxAge != 48*time.Hour || got.Duplicates != 20*time.Minute {
		t.Errorf("stream limits = max age %s, dup window %s; want 48h, 20m", got.MaxAge, got.Duplicates)
	}
	if got.Retention != jetstream.LimitsPolicy || got.Storage != jetstream.FileStorage {
		t.Errorf("retention %s storage %s, want limits/file", got.Retention, got.Storage)
	}
	if _, err := js.Stream(ctx, streams.DLQStream); err != nil {
		t.Errorf("DLQ stream: %v", err)
	}
	if hs, err := js.Stream(ctx, streams.HealthStream); err != nil {
		t.Errorf("health stream: %v", err)
	} else if c := hs.CachedInfo().Config; c.MaxAge != streams.HealthMaxAge || c.MaxMsgs != streams.HealthMaxMsgs ||
		len(c.Subjects) != 1 || c.Subjects[0] != "vrelay.health.>" {
		t.Errorf("health stream: max age %s, max msgs %d, subjects %v", c.MaxAge, c.MaxMsgs, c.Subjects)
	}
	kv, err := js.KeyValue(ctx, streams.CheckpointBucket)
	if err != nil {
		t.Fatalf("checkpoint bucket: %v", err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() < 5 {
		t.Errorf("checkpoint history = %d, want >= 5", st.History())
	}
}

func TestEnsureRefusesStorageChange(t *testing.T) {
	_, js := natstest.Run(t)
	ctx := t.Context()
	if err := js.DeleteStream(ctx, streams.EventStream); err != nil {
		t.Fatal(err)
	}
	var cfg streams.Config
	cfg.SetDefaults()
	memory := streams.EventStreamConfig(cfg)
	memory.Storage = jetstream.MemoryStorage
	if _, err := js.CreateStream(ctx, memory); err != nil {
		t.Fatal(err)
	}
	err := streams.Ensure(ctx, js, cfg, nil)
	if err == nil {
		t.Fatal("Ensure over a memory stream got nil error, want one naming the storage")
	}
	for _, want := range []string{streams.EventStream, "storage", "Memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*streams.Config)
		want   string
	}{
		{name: "root with dot", mutate: func(c *streams.Config) { c.SubjectRoot = "a.b" }, want: "subjectRoot"},
		{name: "reserved root", mutate: func(c *streams.Config) { c.SubjectRoot = "vrelay" }, want: "reserved"},
		{name: "window above age", mutate: func(c *streams.Config) { c.MaxAge = time.Minute }, want: "duplicateWindow: must not exceed maxAge"},
		{name: "replicas", mutate: func(c *streams.Config) { c.Replicas = 7 }, want: "replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c streams.Config
			c.SetDefaults()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
	var ok streams.Config
	ok.SetDefaults()
	if err := ok.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestEmbeddedRestartKeepsDataAndLocksDir(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.Start(t, dir, "127.0.0.1:0")
	if _, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: "off"}, nil); err == nil {
		t.Fatal("second server on the same data dir started, want an in-use error")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error %q, want it to say the dir is in use", err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "vmware.test.a.b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()

	srv2, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: "off"}, nil)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(srv2.Shutdown)
	if srv2.ClientURL() != "" {
		t.Errorf("ClientURL() = %q with listen off, want empty", srv2.ClientURL())
	}
	nc2, err := srv2.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, _ := jetstream.New(nc2)
	s, err := js2.Stream(t.Context(), streams.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("messages after restart = %d, want 1", info.State.Msgs)
	}
}

func TestEmbeddedConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  streams.EmbeddedConfig
		want string
	}{
		{name: "bad listen", cfg: streams.EmbeddedConfig{Listen: "nowhere"}, want: "listen"},
		{name: "bad sync", cfg: streams.EmbeddedConfig{SyncInterval: "often"}, want: "syncInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.SetDefaults()
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want error naming %q", err, tt.want)
			}
		})
	}
	c := streams.EmbeddedConfig{SyncInterval: "always"}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf(`syncInterval "always" rejected: %v`, err)
	}
}
