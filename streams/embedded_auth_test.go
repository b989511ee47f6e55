package streams_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/auth"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/streams"
)

// TestEmbeddedAuth starts the embedded server with each kind of auth and
// checks that a network client without the credentials (or with wrong
// ones) can neither connect nor publish, that one with them can, and that
// the in-process connection of Server.Connect sends them itself.
func TestEmbeddedAuth(t *testing.T) {
	t.Setenv("VRELAY_TEST_NATS_SECRET", "s3cret-nats")
	ref := secret.Ref{FromEnv: "VRELAY_TEST_NATS_SECRET"}
	tests := []struct {
		name  string
		auth  auth.Config
		right nats.Option
		wrong nats.Option
	}{
		{name: "token", auth: auth.Config{Token: ref},
			right: nats.Token("s3cret-nats"), wrong: nats.Token("guess")},
		{name: "user and password", auth: auth.Config{User: "vrelay", Password: ref},
			right: nats.UserInfo("vrelay", "s3cret-nats"), wrong: nats.UserInfo("vrelay", "guess")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Auth: &tt.auth}, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)
			t.Cleanup(func() {
				out := logs.String()
				if strings.Contains(out, "s3cret-nats") || strings.Contains(out, "guess") {
					t.Errorf("the logs hold a secret:\n%s", out)
				}
				if !strings.Contains(out, "authentication error") {
					t.Errorf("the logs do not show the refused clients; want them to:\n%s", out)
				}
			})
			url := srv.ClientURL()

			for _, c := range []struct {
				name string
				opts []nats.Option
			}{{"no credentials", nil}, {"wrong credentials", []nats.Option{tt.wrong}}} {
				nc, err := nats.Connect(url, c.opts...)
				if err == nil {
					// Should the server ever accept the connection, the
					// publish must still not get through.
					perr := nc.Publish("vmware.vcenter.vc1.VmPoweredOnEvent", []byte("{}"))
					nc.Close()
					t.Fatalf("%s: connected (publish: %v), want an authorization error", c.name, perr)
				}
				if !errors.Is(err, nats.ErrAuthorization) {
					t.Errorf("%s: got %v, want nats.ErrAuthorization", c.name, err)
				}
			}

			// vrelay's own connection: no credentials passed by the caller.
			own, err := srv.Connect()
			if err != nil {
				t.Fatalf("in-process Connect: %v", err)
			}
			defer own.Close()
			js, err := jetstream.New(own)
			if err != nil {
				t.Fatal(err)
			}
			var cfg streams.Config
			cfg.SetDefaults()
			if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
				t.Fatal(err)
			}

			nc, err := nats.Connect(url, tt.right)
			if err != nil {
				t.Fatalf("with the credentials: %v", err)
			}
			defer nc.Close()
			njs, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := njs.Publish(t.Context(), "vmware.vcenter.vc1.VmPoweredOnEvent", []byte("{}")); err != nil {
				t.Fatalf("publish with the credentials: %v", err)
			}
			st, err := js.Stream(t.Context(), streams.EventStream)
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != 1 {
				t.Errorf("event stream holds %d messages, want 1 (only the authenticated publish)", info.State.Msgs)
			}
		})
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestEmbeddedAuthSecretMissing(t *testing.T) {
	_, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		Auth: &auth.Config{Token: secret.Ref{FromEnv: "VRELAY_TEST_NATS_UNSET_XYZ"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "nats.embedded.auth.token: environment variable VRELAY_TEST_NATS_UNSET_XYZ is not set") {
		t.Fatalf("got %v, want an error naming nats.embedded.auth.token", err)
	}
}

// TestEmbeddedPortInUse occupies a port and starts the embedded server on
// it: the start fails at once with the address in the error, instead of
// waiting a minute for a server that never becomes ready.
func TestEmbeddedPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	dir := t.TempDir()

	done := make(chan error, 1)
	go func() {
		srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: addr}, nil)
		if err == nil {
			srv.Shutdown()
		}
		done <- err
	}()
	var got error
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("StartEmbedded on a port in use has not returned after 30s")
	}
	want := "nats.embedded.listen " + addr + ": address already in use"
	if got == nil || got.Error() != want {
		t.Fatalf("got %v, want %q", got, want)
	}
	if !errors.Is(got, syscall.EADDRINUSE) {
		t.Errorf("got %v, want it to wrap syscall.EADDRINUSE", got)
	}
	// The failed start released the data directory.
	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: "off"}, nil)
	if err != nil {
		t.Fatalf("start on the same data dir after the failure: %v", err)
	}
	srv.Shutdown()
}

func TestEmbeddedConfigValidateAuth(t *testing.T) {
	pw := secret.Ref{FromEnv: "X"}
	tests := []struct {
		name string
		cfg  streams.EmbeddedConfig
		want string // "" for valid
	}{
		{name: "loopback without auth", cfg: streams.EmbeddedConfig{Listen: "127.0.0.1:4222"}},
		{name: "localhost without auth", cfg: streams.EmbeddedConfig{Listen: "localhost:4222"}},
		{name: "ipv6 loopback without auth", cfg: streams.EmbeddedConfig{Listen: "[::1]:4222"}},
		{name: "off without auth", cfg: streams.EmbeddedConfig{Listen: "off"}},
		{name: "every interface without auth", cfg: streams.EmbeddedConfig{Listen: "0.0.0.0:4222"},
			want: "listen: 0.0.0.0:4222 is not a loopback address and auth is not set"},
		{name: "empty host without auth", cfg: streams.EmbeddedConfig{Listen: ":4222"},
			want: "listen: :4222 is not a loopback address and auth is not set"},
		{name: "pod address without auth", cfg: streams.EmbeddedConfig{Listen: "10.0.0.7:4222"},
			want: "is not a loopback address"},
		{name: "every interface with token", cfg: streams.EmbeddedConfig{Listen: "0.0.0.0:4222", Auth: &auth.Config{Token: pw}}},
		{name: "every interface with user", cfg: streams.EmbeddedConfig{Listen: "0.0.0.0:4222", Auth: &auth.Config{User: "u", Password: pw}}},
		{name: "empty auth", cfg: streams.EmbeddedConfig{Auth: &auth.Config{}}, want: "auth: set token, or user and password"},
		{name: "both", cfg: streams.EmbeddedConfig{Auth: &auth.Config{Token: pw, User: "u", Password: pw}}, want: "auth: set token, or user and password, not both"},
		{name: "user without password", cfg: streams.EmbeddedConfig{Auth: &auth.Config{User: "u"}}, want: "auth.password: is required with user"},
		{name: "password without user", cfg: streams.EmbeddedConfig{Auth: &auth.Config{Password: pw}}, want: "auth.user: is required with password"},
		{name: "token from env and file", cfg: streams.EmbeddedConfig{Auth: &auth.Config{Token: secret.Ref{FromEnv: "X", FromFile: "y"}}},
			want: "auth.token: set fromEnv or fromFile, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.SetDefaults()
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
