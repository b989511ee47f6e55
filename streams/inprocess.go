package streams

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// testServerOptions, when set by a test, changes the options of every
// embedded server started after.
var testServerOptions func(*server.Options)

// inProcess hands nats.go in-process connections to whichever nats-server
// runs now, so that a client reconnects to a restarted one.
type inProcess struct{ s *Server }

func (p inProcess) InProcessConn() (net.Conn, error) {
	return p.s.ns.Load().InProcessConn()
}

// StorageErr returns nil while the embedded JetStream can store, else
// why not: JetStream was disabled (nats-server does that when it runs out
// of resources), or a stream or consumer latched a write error (a full
// disk: nats-server then stops storing on that stream and answers no
// publish until it is restarted).
func (s *Server) StorageErr() error {
	ns := s.ns.Load()
	if !ns.JetStreamEnabled() {
		return errors.New("jetstream is disabled on the embedded nats-server")
	}
	// A store at its limit answers every publish with "insufficient
	// resources". The limit is fixed when the server starts: by default
	// three quarters of the disk space then free, plus what the store held.
	if jsz, err := ns.Jsz(nil); err == nil && jsz.Config.MaxStore > 0 && jsz.Store > uint64(jsz.Config.MaxStore) {
		return fmt.Errorf("%w (%d of %d bytes used)", errStoreLimit, jsz.Store, jsz.Config.MaxStore)
	}
	// Healthz first checks that the server is ready for connections,
	// within 1 ms. On a busy machine that check fails now and then on a
	// server that has long been running (its 1 ms timer fires before the
	// goroutine runs again), and then Healthz checks nothing else. It says
	// nothing about storage: ask again, and leave it to the next check if
	// it keeps failing.
	var msgs []string
	for range 3 {
		var conn bool
		msgs, conn = healthErrors(ns.Healthz(&server.HealthzOptions{Details: true}))
		if !conn {
			break
		}
		msgs = nil
	}
	if len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}

// healthErrors returns the errors of a Healthz answer, and whether it is
// only the check that the server is ready for connections that failed.
func healthErrors(hs *server.HealthStatus) (msgs []string, connOnly bool) {
	connOnly = len(hs.Errors) > 0
	for _, e := range hs.Errors {
		msgs = append(msgs, e.Error)
		connOnly = connOnly && e.Type == server.HealthzErrorConn
	}
	if len(msgs) == 0 && hs.Status != "ok" {
		msgs = append(msgs, hs.Error)
	}
	return msgs, connOnly
}

// errStoreLimit is a store at the server's limit. It cures itself as
// events age out (the stream's maxAge, maxBytes); a restart would not.
var errStoreLimit = errors.New("jetstream store limit reached")

// CheckStorage is [Server.StorageErr] as a [StorageWatch.Check].
func (s *Server) CheckStorage(context.Context) error { return s.StorageErr() }

// probeSize is what the data directory must take before a restart is
// worth it: a few messages and the index files nats-server writes.
const probeSize = 256 << 10

// Repair restarts the embedded nats-server on the same data directory,
// which clears the write errors it latched and enables a JetStream it
// disabled, once the directory takes writes again (a probe file is written and removed first). The data
// directory stays locked throughout. Clients of [Server.Connect] with
// reconnects follow the new server; what was stored before survives, as
// it does a process restart. It returns nil once the new server runs, or
// why it did not restart (also when the store is at its limit, which a
// restart does not cure).
func (s *Server) Repair(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.StorageErr(); err == nil || errors.Is(err, errStoreLimit) {
		return fmt.Errorf("a restart would not help: %v", err)
	}
	if err := probeDir(s.cfg.DataDir); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errors.New("embedded nats-server is shut down")
	}
	old := s.ns.Load()
	old.Shutdown()
	old.WaitForShutdown()
	ns, err := s.start(s.opts.Clone())
	if err != nil {
		// Clients keep failing to reconnect to the old, stopped server
		// until a later Repair succeeds.
		return fmt.Errorf("restart embedded nats-server: %w", err)
	}
	s.ns.Store(ns)
	s.restarts.Add(1)
	return nil
}

// Restarts is how often [Server.Repair] restarted the nats-server.
func (s *Server) Restarts() int64 { return s.restarts.Load() }

// probeDir writes and removes a file of probeSize bytes in dir.
func probeDir(dir string) error {
	name := filepath.Join(dir, ".vrelay-space-probe")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("data dir not writable: %w", err)
	}
	_, werr := f.Write(make([]byte, probeSize))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := os.Remove(name)
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("data dir still refuses writes: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("remove space probe: %w", rerr)
	}
	return nil
}
