// Package auth is the `auth` block of vrelay's own listeners, the embedded
// NATS listener (`nats.embedded.auth`) and the operations endpoint
// (`http.auth`): one shared secret, either a token or a user name with a
// password, each secret read from an environment variable or a file.
//
//	auth:
//	  token: {fromFile: /var/run/secrets/vrelay/ops-token}   # or
//	  user: prometheus
//	  password: {fromEnv: VRELAY_OPS_PASSWORD}
//
// [Config] is what the file says; [Config.Resolve] reads the secrets once at
// start-up into [Credentials], which the listener checks requests against
// ([Credentials.Require] for HTTP) and vrelay's own clients send. Neither
// type ever prints a secret: [secret.Value] redacts itself.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

// Config holds exactly one way to authenticate: Token, or User with
// Password.
type Config struct {
	// Token is the token clients send (NATS token authentication; HTTP
	// `Authorization: Bearer <token>`).
	Token secret.Ref `yaml:"token"`
	// User is the user name clients send with `password` (NATS user and
	// password; HTTP basic authentication). No `:` or white space.
	User string `yaml:"user"`
	// Password is the password of `user`.
	Password secret.Ref `yaml:"password"`
}

// IsZero reports whether nothing is configured.
func (c Config) IsZero() bool { return c.Token.IsZero() && c.User == "" && c.Password.IsZero() }

// Validate reports every problem at once. It does not read the secrets.
func (c Config) Validate() error {
	var errs []error
	userPass := c.User != "" || !c.Password.IsZero()
	switch {
	case c.IsZero():
		errs = append(errs, cfgerr.New("", "set token, or user and password"))
	case !c.Token.IsZero() && userPass:
		errs = append(errs, cfgerr.New("", "set token, or user and password, not both"))
	case userPass:
		if c.User == "" {
			errs = append(errs, cfgerr.New("user", "is required with password"))
		}
		if c.Password.IsZero() {
			errs = append(errs, cfgerr.New("password", "is required with user"))
		}
	}
	if strings.ContainsAny(c.User, ": \t\r\n") {
		errs = append(errs, cfgerr.New("user", "may not contain ':' or white space"))
	}
	errs = append(errs, cfgerr.Prefix("token", c.Token.Validate()), cfgerr.Prefix("password", c.Password.Validate()))
	return errors.Join(errs...)
}

// Credentials are resolved secrets: Token, or User and Password.
type Credentials struct {
	Token    secret.Value
	User     string
	Password secret.Value
}

// Resolve reads the secrets. Its errors name the field ("token: environment
// variable X is not set") and never hold a secret.
func (c Config) Resolve() (*Credentials, error) {
	if !c.Token.IsZero() {
		tok, err := c.Token.Resolve()
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		return &Credentials{Token: secret.Value(tok)}, nil
	}
	if c.User == "" {
		return nil, errors.New("set token, or user and password")
	}
	pw, err := c.Password.Resolve()
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	return &Credentials{User: c.User, Password: secret.Value(pw)}, nil
}

// NATSOption is the nats.go option that sends the credentials on CONNECT:
// nats.UserInfo or nats.Token. It is nil for nil Credentials.
func (c *Credentials) NATSOption() nats.Option {
	switch {
	case c == nil:
		return nil
	case c.User != "":
		return nats.UserInfo(c.User, c.Password.Reveal())
	}
	return nats.Token(c.Token.Reveal())
}

// Require wraps next so that it runs only for requests that carry the
// credentials: "Authorization: Bearer <token>" for a token, basic
// authentication for a user and password. Any other request gets 401 with a
// WWW-Authenticate challenge and a body that says nothing about what was
// expected or sent. The comparison takes the same time whatever the
// request holds.
func (c *Credentials) Require(next http.Handler) http.Handler {
	var want, wantUser [sha256.Size]byte
	challenge := `Bearer realm="vrelay"`
	if c.User != "" {
		want, wantUser = sha256.Sum256([]byte(c.Password.Reveal())), sha256.Sum256([]byte(c.User))
		challenge = `Basic realm="vrelay", charset="UTF-8"`
	} else {
		want = sha256.Sum256([]byte(c.Token.Reveal()))
	}
	basic := c.User != ""
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if authorized(r, basic, want, wantUser) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", challenge)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, "unauthorized")
	})
}

// authorized compares digests, so that neither the length nor the content
// of a secret shows in the time the comparison takes.
func authorized(r *http.Request, basic bool, want, wantUser [sha256.Size]byte) bool {
	if basic {
		user, pw, ok := r.BasicAuth()
		if !ok {
			return false
		}
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pw))
		// & rather than &&: both comparisons always run.
		return subtle.ConstantTimeCompare(u[:], wantUser[:])&subtle.ConstantTimeCompare(p[:], want[:]) == 1
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	t := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(t[:], want[:]) == 1
}
