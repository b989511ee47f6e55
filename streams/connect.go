package streams

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/internal/tlsfiles"
)

// ExternalConfig connects to a NATS server or cluster run elsewhere (the
// clustered deployment). It is the `nats.external` section of the YAML file.
// At most one way to authenticate is set.
type ExternalConfig struct {
	// URL is one or more server URLs, comma-separated. Each needs a host,
	// such as `nats://nats-0:4222` or `tls://nats.example.com:4222`. A URL may
	// not carry a user or password: use the fields below. Required.
	URL string `yaml:"url"`
	// User is the user name for user/password authentication. Needs
	// `password`.
	User string `yaml:"user"`
	// Password is the password for `user`.
	Password secret.Ref `yaml:"password"`
	// Token is the token for token authentication.
	Token secret.Ref `yaml:"token"`
	// CredsFile is a NATS credentials file (user JWT and NKey seed), for
	// example mounted from a Kubernetes Secret.
	CredsFile string `yaml:"credsFile"`
	// NKeySeedFile is a file holding an NKey user seed.
	NKeySeedFile string `yaml:"nkeySeedFile"`
	// TLS configures the client side of TLS; tls:// URLs or a CA file turn it on.
	TLS ClientTLS `yaml:"tls"`
	// ConnectTimeout bounds each connection attempt. Must not be negative.
	// Default "5s".
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
}

// ClientTLS is the client side of a TLS connection.
type ClientTLS struct {
	// CAFile is a PEM bundle of the CAs that signed the server certificates.
	// Default: system roots.
	CAFile string `yaml:"caFile"`
	// CertFile is a client certificate for mutual TLS, with `keyFile`. Set
	// both or neither.
	CertFile string `yaml:"certFile"`
	// KeyFile is the private key of `certFile`.
	KeyFile string `yaml:"keyFile"`
	// SkipTLSVerify accepts any server certificate. For tests only.
	// Default false.
	SkipTLSVerify bool `yaml:"skipTLSVerify"`
}

func (t ClientTLS) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.SkipTLSVerify
}

// SetDefaults fills unset fields with their defaults.
func (c *ExternalConfig) SetDefaults() {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
}

// Validate reports every problem at once. It does not read secret files.
func (c ExternalConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, cfgerr.New("url", "is required"))
	}
	for _, u := range strings.Split(c.URL, ",") {
		if c.URL == "" {
			break
		}
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || pu.Host == "" {
			errs = append(errs, cfgerr.Newf("url", "%q is not a server URL such as nats://host:4222", secret.RedactURL(strings.TrimSpace(u))))
			continue
		}
		if pu.User != nil {
			errs = append(errs, cfgerr.New("url", "must not carry credentials: use user/password, token, credsFile or nkeySeedFile"))
		}
	}
	methods := 0
	if c.User != "" || !c.Password.IsZero() {
		methods++
		if c.User == "" {
			errs = append(errs, cfgerr.New("user", "is required with password"))
		}
		if c.Password.IsZero() {
			errs = append(errs, cfgerr.New("password", "is required with user"))
		}
	}
	for _, m := range []bool{!c.Token.IsZero(), c.CredsFile != "", c.NKeySeedFile != ""} {
		if m {
			methods++
		}
	}
	if methods > 1 {
		errs = append(errs, cfgerr.New("", "set one of user/password, token, credsFile or nkeySeedFile"))
	}
	errs = append(errs, cfgerr.Prefix("password", c.Password.Validate()), cfgerr.Prefix("token", c.Token.Validate()))
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, cfgerr.New("tls", "certFile and keyFile go together"))
	}
	if c.ConnectTimeout < 0 {
		errs = append(errs, cfgerr.New("connectTimeout", "must not be negative"))
	}
	return errors.Join(errs...)
}

// Connect dials the servers. The connection reconnects forever; a server that
// is not up yet at start is retried in the background (RetryOnFailedConnect)
// so that vrelay and NATS may start in any order.
func (c ExternalConfig) Connect(log *slog.Logger, name string) (*nats.Conn, error) {
	c.SetDefaults()
	opts := append(ConnOptions(log, name),
		nats.Timeout(c.ConnectTimeout),
		nats.RetryOnFailedConnect(true),
	)
	switch {
	case c.User != "":
		pw, err := c.Password.Resolve()
		if err != nil {
			return nil, fmt.Errorf("nats.external.password: %w", err)
		}
		opts = append(opts, nats.UserInfo(c.User, pw))
	case !c.Token.IsZero():
		tok, err := c.Token.Resolve()
		if err != nil {
			return nil, fmt.Errorf("nats.external.token: %w", err)
		}
		opts = append(opts, nats.Token(tok))
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats.external.nkeySeedFile: %w", err)
		}
		opts = append(opts, o)
	}
	if c.TLS.enabled() {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, fmt.Errorf("nats.external.tls: %w", err)
		}
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return nc, nil
}

func (t ClientTLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.SkipTLSVerify} //nolint:gosec // opt-in, documented as test-only
	if t.CAFile != "" {
		pool, err := tlsfiles.LoadCAPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ConnOptions are the options every vrelay connection uses: a name that shows
// in `nats server report connections`, endless reconnects with a bounded
// buffer, and connection events in the log.
//
// They are tuned for a rolling restart of a NATS cluster: a server in
// lame-duck mode is logged and left by the client as the server closes it;
// the client reconnects to another server of the cluster (URLs the cluster
// gossips included) after a jittered pause of about a second, so that the
// replicas do not all reconnect at once; what is published meanwhile waits
// in a reconnect buffer of 8 MiB, and a publish whose ack is lost (a stream
// leader election) is sent again by the publisher with its Nats-Msg-Id.
func ConnOptions(log *slog.Logger, name string) []nats.Option {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(8 << 20),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			log.Info("nats server entering lame-duck mode; reconnecting elsewhere when it closes", "server", nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("nats async error", "subject", subj, "err", err)
		}),
	}
}
