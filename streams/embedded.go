package streams

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/internal/auth"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/netaddr"
)

// EmbeddedConfig runs nats-server with JetStream inside the vrelay process.
// It is the `nats.embedded` section of the YAML file.
type EmbeddedConfig struct {
	// DataDir is where JetStream keeps its files: events, dead letters,
	// source checkpoints and route positions. Put it on persistent storage
	// (a PersistentVolume in Kubernetes). vrelay creates it if needed and
	// locks it: a second vrelay process on the same directory fails at
	// start-up with `data dir ... is in use by another vrelay process`.
	// Default `data` (relative to the working directory).
	DataDir string `yaml:"dataDir"`
	// Listen is where NATS clients such as the `nats` CLI can connect.
	// vrelay itself always uses an in-process connection. `off` accepts no
	// network connections at all. Port `0` picks a free port. An address
	// other than loopback needs `auth`. Default "127.0.0.1:4222".
	Listen string `yaml:"listen"`
	// Auth is the credentials every NATS client must send: `token`, or
	// `user` and `password`. vrelay's own in-process connection and the
	// vrelay CLI send them too. Without it any client that reaches `listen`
	// may publish events and rewrite checkpoints; in a Kubernetes pod every
	// container shares loopback. See
	// [nats.embedded.auth](#natsembeddedauth).
	Auth *auth.Config `yaml:"auth"`
	// SyncInterval is how often JetStream flushes its files to disk with
	// fsync. `always` flushes every write. A killed process loses nothing
	// either way; a power loss can lose up to one interval of acknowledged
	// events. See [delivery.md](delivery.md#power-loss-and-syncinterval).
	// Must be positive. Default "1s".
	SyncInterval string `yaml:"syncInterval"`
	// ServerName is the server's name in `nats server ls` and in logs. No
	// spaces, `.`, `*` or `>`. Default "vrelay".
	ServerName string `yaml:"serverName"`
}

// ListenOff is the Listen value that disables the network listener.
const ListenOff = netaddr.Off

// SetDefaults fills unset fields with their defaults.
func (c *EmbeddedConfig) SetDefaults() {
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4222"
	}
	if c.SyncInterval == "" {
		c.SyncInterval = "1s"
	}
	if c.ServerName == "" {
		c.ServerName = "vrelay"
	}
}

// Validate reports every problem at once.
func (c EmbeddedConfig) Validate() error {
	var errs []error
	if err := netaddr.CheckListenOrOff(c.Listen); err != nil {
		errs = append(errs, cfgerr.New("listen", err.Error()))
	} else if c.Listen != ListenOff && c.Auth == nil && !netaddr.IsLoopback(c.Listen) {
		errs = append(errs, cfgerr.Newf("listen", "%s is not a loopback address and auth is not set: "+
			"any client that reaches it could publish events and rewrite checkpoints; set auth (token, or user and password) or listen on 127.0.0.1", c.Listen))
	}
	if c.Auth != nil {
		errs = append(errs, cfgerr.Prefix("auth", c.Auth.Validate()))
	}
	if _, _, err := c.syncInterval(); err != nil {
		errs = append(errs, cfgerr.New("syncInterval", err.Error()))
	}
	if strings.ContainsAny(c.ServerName, " \t.*>") {
		errs = append(errs, cfgerr.New("serverName", "must not contain spaces, '.', '*' or '>'"))
	}
	return errors.Join(errs...)
}

func (c EmbeddedConfig) syncInterval() (d time.Duration, always bool, err error) {
	if c.SyncInterval == "always" {
		return 0, true, nil
	}
	d, err = time.ParseDuration(c.SyncInterval)
	if err != nil {
		return 0, false, fmt.Errorf(`%q is neither a duration nor "always"`, c.SyncInterval)
	}
	if d <= 0 {
		return 0, false, errors.New("must be positive")
	}
	return d, false, nil
}

// Server is an embedded nats-server with JetStream. [Server.Repair] may
// replace the nats-server inside it; clients of [Server.Connect] follow.
type Server struct {
	ns   atomic.Pointer[server.Server]
	lock *os.File
	cfg  EmbeddedConfig
	// creds are what Connect sends; nil without auth.
	creds *auth.Credentials
	log   *slog.Logger
	// opts is a pristine copy of the options, cloned for each start.
	opts     *server.Options
	mu       sync.Mutex // serialises restarts and Shutdown
	down     bool
	restarts atomic.Int64
	once     sync.Once
}

// StartEmbedded starts nats-server with JetStream on cfg.DataDir and waits
// until it accepts connections (after recovering the streams on disk).
// The data directory is locked: a second process on the same directory
// fails instead of corrupting the store. A listen address that another
// program holds fails at once, with an error that wraps the system's
// (errors.Is(err, syscall.EADDRINUSE)). With cfg.Auth, the secrets are read
// here.
func StartEmbedded(cfg EmbeddedConfig, log *slog.Logger) (*Server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	var creds *auth.Credentials
	if cfg.Auth != nil {
		c, err := cfg.Auth.Resolve()
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.auth.%w", err)
		}
		creds = c
	}
	lock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if err := checkFree(cfg.Listen); err != nil {
		unlock(lock)
		return nil, err
	}
	d, always, _ := cfg.syncInterval()
	opts := &server.Options{
		ServerName:         cfg.ServerName,
		JetStream:          true,
		StoreDir:           cfg.DataDir,
		SyncInterval:       d,
		SyncAlways:         always,
		JetStreamMaxMemory: -1,
		JetStreamMaxStore:  -1,
		NoSigs:             true,
		MaxPayload:         8 << 20,
	}
	if cfg.Listen == ListenOff {
		opts.DontListen = true
	} else {
		host, port, _ := netaddr.SplitListen(cfg.Listen)
		if port == 0 {
			port = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, port
	}
	// nats-server checks in-process connections like network ones.
	switch {
	case creds == nil:
	case creds.User != "":
		opts.Username, opts.Password = creds.User, creds.Password.Reveal()
	default:
		opts.Authorization = creds.Token.Reveal()
	}
	if testServerOptions != nil {
		testServerOptions(opts)
	}
	s := &Server{lock: lock, cfg: cfg, creds: creds, log: log, opts: opts.Clone()}
	ns, err := s.start(opts)
	if err != nil {
		unlock(lock)
		return nil, err
	}
	s.ns.Store(ns)
	if !opts.DontListen && opts.Port == server.RANDOM_PORT {
		// A restart listens where the clients already connect.
		if a, ok := ns.Addr().(*net.TCPAddr); ok {
			s.opts.Port = a.Port
		}
	}
	log.Info("embedded nats-server ready", "data_dir", cfg.DataDir, "listen", s.ListenAddr(),
		"sync_interval", cfg.SyncInterval, "auth", authKind(creds))
	return s, nil
}

// start runs a nats-server on opts and waits until it accepts connections.
func (s *Server) start(opts *server.Options) (*server.Server, error) {
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configure embedded nats-server: %w", err)
	}
	ns.SetLoggerV2(serverLogger{s.log.With("component", "nats-server")}, false, false, false)
	ns.Start()
	// Recovering a large store can take a while; a minute covers gigabytes.
	if !ns.ReadyForConnections(time.Minute) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats-server on %s did not become ready", s.cfg.Listen)
	}
	return ns, nil
}

// ClientURL is the nats:// URL of the listener, or "" when Listen is off.
func (s *Server) ClientURL() string {
	if s.cfg.Listen == ListenOff {
		return ""
	}
	return s.ns.Load().ClientURL()
}

// ListenAddr is the address the listener is bound to, or "off".
func (s *Server) ListenAddr() string {
	if s.cfg.Listen == ListenOff {
		return ListenOff
	}
	if a := s.ns.Load().Addr(); a != nil {
		return a.String()
	}
	return s.cfg.Listen
}

// Connect opens an in-process client connection, which skips the network
// stack even when the listener is on. It sends the configured credentials
// (EmbeddedConfig.Auth) itself. Pass [ConnOptions] for logging and for
// reconnecting: a connection with reconnects reconnects to the nats-server
// that [Server.Repair] started in place of the old one.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(inProcess{s}), nats.Name("vrelay")}, opts...)
	if o := s.creds.NATSOption(); o != nil {
		opts = append(opts, o)
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to embedded nats-server: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server, waits until its files are closed and releases
// the data directory. Close client connections first.
// Shutdown is idempotent.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.down = true
		ns := s.ns.Load()
		ns.Shutdown()
		ns.WaitForShutdown()
		unlock(s.lock)
	})
}

// checkFree fails when another program listens on addr, before the
// server starts: nats-server itself would only log the failure, and the
// wait for it to become ready would time out a minute later.
func checkFree(addr string) error {
	if addr == ListenOff || strings.HasSuffix(addr, ":0") {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// "nats.embedded.listen 127.0.0.1:4222: address already in use"
		// rather than "listen tcp 127.0.0.1:4222: bind: address already in use".
		var se *os.SyscallError
		if errors.As(err, &se) {
			err = se.Err
		}
		return fmt.Errorf("nats.embedded.listen %s: %w", addr, err)
	}
	return ln.Close()
}

func authKind(c *auth.Credentials) string {
	switch {
	case c == nil:
		return "none"
	case c.User != "":
		return "user"
	}
	return "token"
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "vrelay.lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another vrelay process: %w", dir, err)
	}
	return f, nil
}

func unlock(f *os.File) {
	if f != nil {
		_ = funlock(f)
		f.Close()
	}
}

// serverLogger sends nats-server's log lines to slog.
type serverLogger struct{ log *slog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any) {
	// nats-server suggests bcrypt for a plain password; vrelay holds the
	// password anyway, to connect with it, so a hash would protect nothing.
	if strings.HasPrefix(format, "Plaintext passwords detected") {
		l.log.Debug(fmt.Sprintf(format, v...))
		return
	}
	l.log.Warn(fmt.Sprintf(format, v...))
}
func (l serverLogger) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
