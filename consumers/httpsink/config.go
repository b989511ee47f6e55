package httpsink

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

// Modes of the CloudEvents HTTP binding.
const (
	// ModeBinary puts the attributes in ce-* headers and the data, as is,
	// in the body. Most receivers (Knative, VEBA functions) expect it.
	ModeBinary = "binary"
	// ModeStructured sends the whole event as one JSON object
	// (Content-Type application/cloudevents+json), as vrelay stores it:
	// JSON data verbatim, text data as a string, any other data as
	// data_base64.
	ModeStructured = "structured"
)

// DefaultTimeout bounds one delivery attempt when Config.Timeout is unset.
const DefaultTimeout = 10 * time.Second

// Config is the operator's configuration of one HTTP sink.
//
//	url: https://receiver.example.com/events
//	mode: binary
//	headers:
//	  X-Tenant: blue
//	auth:
//	  bearer:
//	    token: {fromFile: /var/run/secrets/receiver/token}
//	tls:
//	  caFile: /etc/vrelay/ca.pem
//	timeout: 10s
type Config struct {
	// URL is the absolute `http://` or `https://` URL that each event is
	// POSTed to. It may not contain a user or password; use `auth`. Redirects
	// are not followed: a 3xx answer is a permanent failure, so name the final
	// location. A query string is allowed; it is replaced by `redacted` in
	// error messages. Required.
	URL string `yaml:"url"`

	// Mode is the CloudEvents HTTP content mode. "binary": attributes in
	// `ce-*` headers, the data as the body. Knative and VEBA functions expect
	// this mode. "structured": the whole event as one JSON object with
	// `Content-Type: application/cloudevents+json`, exactly as stored: JSON
	// data verbatim, text as a JSON string, other data as `data_base64` (see
	// [delivery.md](delivery.md#what-is-stored)). Default "binary".
	Mode string `yaml:"mode"`

	// Headers are extra headers on every request, for example for routing or
	// tenancy. Not allowed: `ce-*` headers, `Content-Type` (both belong to the
	// CloudEvents binding) and `Authorization` (use `auth`, so the credential
	// comes from a secret). Values may not contain control characters.
	Headers map[string]string `yaml:"headers"`

	// Auth authenticates each request. At most one method. Default none.
	Auth Auth `yaml:"auth"`

	// TLS configures how https URLs are verified. Default: the system roots.
	TLS TLS `yaml:"tls"`

	// Timeout bounds one attempt: connecting, sending and waiting for the
	// answer (the response headers). It may not exceed the route's
	// `delivery.sendTimeout`. Default "10s".
	Timeout time.Duration `yaml:"timeout"`
}

// Auth selects how requests authenticate. At most one field is set.
type Auth struct {
	// Basic sends HTTP basic authentication. Default unset.
	Basic *BasicAuth `yaml:"basic"`
	// Bearer sends "Authorization: Bearer <token>". Default unset.
	Bearer *BearerAuth `yaml:"bearer"`
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	// Username is the HTTP Basic user name. It may not contain `:`. It is not
	// a secret. Required.
	Username string `yaml:"username"`
	// Password is the HTTP Basic password. Required.
	Password secret.Ref `yaml:"password"`
}

// BearerAuth is a bearer token.
type BearerAuth struct {
	// Token sends `Authorization: Bearer <token>`. It is read once at
	// start-up; restart vrelay to pick up a rotated token. Required.
	Token secret.Ref `yaml:"token"`
}

// TLS configures server verification for https URLs.
type TLS struct {
	// CAFile is a PEM file of CAs to trust instead of the system roots, for a
	// receiver behind a private CA. Default: system roots.
	CAFile string `yaml:"caFile"`
	// SkipTLSVerify accepts any server certificate, which invites a man in the
	// middle: use `caFile` where possible. It cannot be combined with
	// `caFile`. vrelay logs a warning at start-up when it is set. Default
	// `false`.
	SkipTLSVerify bool `yaml:"skipTLSVerify"`
}

// SetDefaults fills unset fields with their defaults; [New] calls it.
func (c *Config) SetDefaults() {
	if c.Mode == "" {
		c.Mode = ModeBinary
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate reports every problem with c at once, joined with errors.Join, as
// cfgerr field errors whose paths are relative to the sink ("url",
// "auth.basic.password"). Unset fields that have defaults are valid. It reads
// no files and no secrets; [New] does.
func (c Config) Validate() error {
	var errs []error
	errs = append(errs, validateURL(c.URL))

	switch c.Mode {
	case "", ModeBinary, ModeStructured:
	default:
		errs = append(errs, cfgerr.Newf("mode", "got %q, want %q or %q", c.Mode, ModeBinary, ModeStructured))
	}

	names := make([]string, 0, len(c.Headers))
	for name := range c.Headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := validateHeader(name, c.Headers[name]); err != nil {
			errs = append(errs, cfgerr.Prefix(fmt.Sprintf("headers[%q]", name), err))
		}
	}

	errs = append(errs, cfgerr.Prefix("auth", c.Auth.validate()))

	if c.TLS.CAFile != "" && c.TLS.SkipTLSVerify {
		errs = append(errs, cfgerr.New("tls.skipTLSVerify", "cannot be combined with caFile"))
	}

	if c.Timeout < 0 {
		errs = append(errs, cfgerr.Newf("timeout", "got %s, want a positive duration", c.Timeout))
	}
	return errors.Join(errs...)
}

func validateURL(raw string) error {
	if raw == "" {
		return cfgerr.New("url", "is required")
	}
	if err := MissingScheme("url", raw); err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, which may hold a secret: keep only the cause.
		if secret.RedactURL(raw) != raw {
			// Even the cause may quote part of the credentials (a bad escape).
			return cfgerr.New("url", "not a URL")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return cfgerr.Newf("url", "not a URL: %v", err)
	}
	switch {
	case !u.IsAbs() || u.Host == "":
		return cfgerr.New("url", "not an absolute URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return cfgerr.Newf("url", "scheme %q is not http or https", u.Scheme)
	case u.User != nil:
		return cfgerr.New("url", "must not hold credentials; use auth")
	}
	return nil
}

func validateHeader(name, value string) error {
	lower := strings.ToLower(name)
	switch {
	case name == "":
		return cfgerr.New("", "empty header name")
	case !isToken(name):
		return cfgerr.New("", "not a valid header name")
	case strings.HasPrefix(lower, "ce-"):
		return cfgerr.New("", "ce-* headers belong to the CloudEvents binding")
	case lower == "content-type":
		return cfgerr.New("", "Content-Type belongs to the CloudEvents binding")
	case lower == "authorization":
		return cfgerr.New("", "use auth, so the credential comes from a secret")
	case strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
		return cfgerr.New("", "value contains a control character")
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of a header name.
func isToken(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

func (a Auth) validate() error {
	var errs []error
	if a.Basic != nil && a.Bearer != nil {
		errs = append(errs, cfgerr.New("", "set basic or bearer, not both"))
	}
	if b := a.Basic; b != nil {
		switch {
		case b.Username == "":
			errs = append(errs, cfgerr.New("basic.username", "is required"))
		case strings.Contains(b.Username, ":"):
			errs = append(errs, cfgerr.New("basic.username", "must not contain ':'"))
		}
		if b.Password.IsZero() {
			errs = append(errs, cfgerr.New("basic.password", "is required"))
		}
		errs = append(errs, cfgerr.Prefix("basic.password", b.Password.Validate()))
	}
	if b := a.Bearer; b != nil {
		if b.Token.IsZero() {
			errs = append(errs, cfgerr.New("bearer.token", "is required"))
		}
		errs = append(errs, cfgerr.Prefix("bearer.token", b.Token.Validate()))
	}
	return errors.Join(errs...)
}

// MissingScheme reports a URL written without its scheme, such as
// "127.0.0.1:8080/ok", which url.Parse would reject with "first path
// segment in URL cannot contain colon" or take for a relative path. It
// quotes the URL only when it cannot hold credentials.
func MissingScheme(field, raw string) error {
	if strings.Contains(raw, "://") || strings.HasPrefix(raw, "/") {
		return nil
	}
	if strings.Contains(raw, "@") || secret.RedactURL(raw) != raw {
		return cfgerr.New(field, "has no scheme: write http:// or https:// before the host")
	}
	return cfgerr.Newf(field, "%s has no scheme: write http://%s", raw, raw)
}
