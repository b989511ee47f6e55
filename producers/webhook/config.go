package webhook

import (
	"errors"
	"strings"
	"time"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/netaddr"
	"github.com/vrelay/vrelay/internal/secret"
)

// Defaults for the zero values of [Config].
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultPath              = "/"
	DefaultMaxBodyBytes      = 1 << 20 // 1 MiB
	DefaultMaxBatchEvents    = 1000
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultPublishTimeout    = 10 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
)

// Config is the webhook listener as an operator writes it. A zero field
// takes its default; a negative number or duration is an error.
type Config struct {
	// Listen is where to listen. The default accepts only local
	// connections; write `0.0.0.0:8080` or `:8080` to accept them from the
	// network. Port 0 picks a free port (tests). Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// Path is the one URL path that accepts events. It must start with `/`.
	// The match is exact: any other path, including a trailing `/`, gets
	// 404. Default "/".
	Path string `yaml:"path"`
	// MaxBodyBytes is the largest request body. A larger body gets 413 and
	// nothing is stored. Keep it below what NATS accepts (8 MiB on the
	// embedded server). Default `1048576` (1 MiB).
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// MaxBatchEvents is the most events in one batch request (and so in one
	// Publish call). A larger batch gets 400. Default `1000`.
	MaxBatchEvents int `yaml:"maxBatchEvents"`
	// Auth selects how senders authenticate. With nothing configured every
	// request is accepted, so keep Listen on loopback or behind a proxy that
	// authenticates.
	Auth AuthConfig `yaml:"auth"`
	// TLS serves HTTPS when certFile and keyFile are set. Default plain HTTP.
	TLS TLSConfig `yaml:"tls"`
	// ReadHeaderTimeout is the time allowed to read the request headers,
	// which is what a slow-loris client drags out. Default "10s".
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
	// ReadTimeout is the time allowed to read the whole request, body
	// included. Default "30s".
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout is the time from the end of the headers to the end of
	// the answer. It covers reading the body and storing the events, so
	// `publishTimeout` must be shorter. Default "30s".
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// IdleTimeout is how long an idle keep-alive connection stays open.
	// Default "2m".
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// PublishTimeout is how long to wait for JetStream to store a request's
	// events. After that the sender gets 503 with `Retry-After: 1`. Must be
	// shorter than `writeTimeout`. Default "10s".
	PublishTimeout time.Duration `yaml:"publishTimeout"`
	// ShutdownTimeout is how long running requests may continue at shutdown
	// before their connections are closed. Keep it below the pod's
	// terminationGracePeriodSeconds. Default "10s".
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
}

// AuthConfig holds the accepted credentials. Either, both or neither scheme
// may be configured; with both, a request may use either one.
type AuthConfig struct {
	// Basic accepts HTTP Basic credentials (RFC 7617). Off unless set.
	Basic BasicAuth `yaml:"basic"`
	// Bearer accepts "Authorization: Bearer <token>" (RFC 6750), the scheme
	// the CloudEvents webhook spec names. Off unless set.
	Bearer BearerAuth `yaml:"bearer"`
}

// BasicAuth is one user name and password pair.
type BasicAuth struct {
	// Username accepts HTTP Basic authentication with this user name. It
	// may not contain `:`. Needs `auth.basic.password`.
	Username string `yaml:"username"`
	// Password is the password for `auth.basic.username`, which it needs.
	Password secret.Ref `yaml:"password"`
}

// BearerAuth is one bearer token.
type BearerAuth struct {
	// Token accepts `Authorization: Bearer <token>`.
	Token secret.Ref `yaml:"token"`
}

// TLSConfig names a PEM certificate and key. Both are read once, in [New];
// a rotated certificate takes effect at the next start.
type TLSConfig struct {
	// CertFile is the PEM certificate chain, leaf first. With `tls.keyFile`,
	// the listener serves HTTPS (TLS 1.2 or later). Both files are read once
	// at start-up; restart vrelay after a renewal.
	CertFile string `yaml:"certFile"`
	// KeyFile is the PEM private key of the certificate.
	KeyFile string `yaml:"keyFile"`
}

func (b BasicAuth) enabled() bool  { return b.Username != "" || !b.Password.IsZero() }
func (b BearerAuth) enabled() bool { return !b.Token.IsZero() }
func (t TLSConfig) enabled() bool  { return t.CertFile != "" || t.KeyFile != "" }

// SetDefaults fills unset fields with their defaults; [New] calls it.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxBatchEvents == 0 {
		c.MaxBatchEvents = DefaultMaxBatchEvents
	}
	setDuration(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDuration(&c.ReadTimeout, DefaultReadTimeout)
	setDuration(&c.WriteTimeout, DefaultWriteTimeout)
	setDuration(&c.IdleTimeout, DefaultIdleTimeout)
	setDuration(&c.PublishTimeout, DefaultPublishTimeout)
	setDuration(&c.ShutdownTimeout, DefaultShutdownTimeout)
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate reports every problem at once, each a [cfgerr.FieldError] whose
// path is relative to the Config. Zero values are valid: they mean the
// default. Validate reads no files and no environment; [New] resolves the
// secrets and loads the certificate.
func (c Config) Validate() error {
	var errs []error
	if c.Listen != "" {
		if err := netaddr.CheckListen(c.Listen); err != nil {
			errs = append(errs, cfgerr.New("listen", err.Error()))
		}
	}
	if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, cfgerr.Newf("path", "must start with \"/\", got %q", c.Path))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, cfgerr.Newf("maxBodyBytes", "must be positive, got %d", c.MaxBodyBytes))
	}
	if c.MaxBatchEvents < 0 {
		errs = append(errs, cfgerr.Newf("maxBatchEvents", "must be positive, got %d", c.MaxBatchEvents))
	}
	errs = append(errs, c.Auth.validate(), c.TLS.validate())
	for _, d := range []struct {
		path string
		d    time.Duration
	}{
		{"readHeaderTimeout", c.ReadHeaderTimeout},
		{"readTimeout", c.ReadTimeout},
		{"writeTimeout", c.WriteTimeout},
		{"idleTimeout", c.IdleTimeout},
		{"publishTimeout", c.PublishTimeout},
		{"shutdownTimeout", c.ShutdownTimeout},
	} {
		if d.d < 0 {
			errs = append(errs, cfgerr.Newf(d.path, "must be positive, got %s", d.d))
		}
	}
	publish, write := orDefault(c.PublishTimeout, DefaultPublishTimeout), orDefault(c.WriteTimeout, DefaultWriteTimeout)
	if publish > 0 && write > 0 && publish >= write {
		errs = append(errs, cfgerr.Newf("publishTimeout",
			"must be shorter than writeTimeout (%s), or the answer cannot be written, got %s", write, publish))
	}
	return errors.Join(errs...)
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (a AuthConfig) validate() error {
	var errs []error
	if a.Basic.enabled() {
		if a.Basic.Username == "" {
			errs = append(errs, cfgerr.New("auth.basic.username", "is required when a password is set"))
		}
		if strings.Contains(a.Basic.Username, ":") {
			errs = append(errs, cfgerr.New("auth.basic.username", "may not contain ':'"))
		}
		if a.Basic.Password.IsZero() {
			errs = append(errs, cfgerr.New("auth.basic.password", "is required when a username is set"))
		}
		errs = append(errs, cfgerr.Prefix("auth.basic.password", a.Basic.Password.Validate()))
	}
	errs = append(errs, cfgerr.Prefix("auth.bearer.token", a.Bearer.Token.Validate()))
	return errors.Join(errs...)
}

func (t TLSConfig) validate() error {
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return cfgerr.New("tls.keyFile", "is required when certFile is set")
	case t.CertFile == "" && t.KeyFile != "":
		return cfgerr.New("tls.certFile", "is required when keyFile is set")
	}
	return nil
}
