// Package natstest runs a real nats-server with JetStream for tests: one
// per test, on 127.0.0.1 with a free port and a temporary store directory,
// shut down by t.Cleanup. It starts in tens of milliseconds.
//
//	nc, js := natstest.Run(t)
//
// [StartCluster] starts a 3-node JetStream cluster instead, for the
// clustered mode (R3 streams, a node that stops, leader elections):
//
//	c := natstest.StartCluster(t)
//	c.Stop(c.StreamLeader(streams.EventStream))
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/streams"
)

// Run starts a server with the vrelay topology ensured (default sizes) and
// returns a connection and a JetStream context on it.
func Run(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv := Start(t, t.TempDir(), "127.0.0.1:0")
	nc, js := Connect(t, srv.ClientURL())
	var cfg streams.Config
	cfg.SetDefaults()
	if err := streams.Ensure(t.Context(), js, cfg, nil); err != nil {
		t.Fatalf("ensure topology: %v", err)
	}
	return nc, js
}

// Start starts an embedded server on dir, listening on listen
// ("127.0.0.1:0" for a free port). Restart it on the same dir and address to
// simulate a NATS restart. The server is shut down at cleanup if still up.
func Start(t testing.TB, dir, listen string) *streams.Server {
	t.Helper()
	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: listen}, nil)
	if err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	return srv
}

// Connect opens a network connection to url that reconnects forever, closed
// at cleanup.
func Connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	// A server that is still starting (a vrelay process whose data dir
	// exists before its listener does) is retried rather than failed.
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50e6), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("connect to nats-server: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// Open opens the data dir of a stopped vrelay with an embedded server of
// its own (no listener), to inspect what it stored. Shut down at cleanup.
func Open(t testing.TB, dataDir string) jetstream.JetStream {
	t.Helper()
	srv, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dataDir, Listen: streams.ListenOff}, nil)
	if err != nil {
		t.Fatalf("open data dir: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatalf("connect to data dir server: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

// Count returns how many messages stream holds.
func Count(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Msgs
}
