package horizon

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

// Defaults for the zero values of [Config].
const (
	DefaultPollInterval = time.Second
	DefaultPageSize     = 1000
	DefaultMaxAge       = 5 * time.Minute
	// MaxPageSize is the largest page the audit-events endpoint returns.
	MaxPageSize = 1000
)

// Format of the CloudEvents a source emits.
type Format string

const (
	// FormatTanzu is the shape Tanzu Sources for Knative (HorizonSource)
	// emits, and the default: type com.vmware.horizon.<type>.v0 with the
	// Horizon event type lower-cased, id the event id, no subject, no
	// extensions.
	FormatTanzu Format = "tanzu"
	// FormatRouter is the shape the VMware Event Router's Horizon provider
	// emits: type com.vmware.event.router/horizon.<type>.v0, otherwise the
	// same as FormatTanzu.
	FormatRouter Format = "router"
)

// Config is one Horizon pod as an operator writes it. The field names are
// those of Tanzu's HorizonSource (address, skipTLSVerify) and of the Event
// Router's Horizon provider (domain, username, password).
//
//	address: https://horizon.example.com
//	domain: corp
//	username: svc-vrelay
//	password:
//	  fromFile: /var/run/secrets/horizon/password
//	caFile: /etc/vrelay/horizon-ca.pem
//	format: tanzu
type Config struct {
	// Address is a Connection Server of the pod, or its load balancer, such
	// as `https://horizon.example.com`. A bare host or `host:port` means
	// `https://<host>`. `http://` is accepted for labs and tests, with a
	// warning at every start, since the password and tokens then cross the
	// network unencrypted. No path (the API is under `/rest`), user,
	// password, query or fragment. It is also the CloudEvent `source`, and
	// its host (with the port, if written) the first half of every
	// `Nats-Msg-Id`. Required.
	Address string `yaml:"address"`
	// Domain is the Active Directory domain of the user (the NetBIOS name),
	// as the Horizon Console's login page lists it, such as `corp`.
	// Required.
	Domain string `yaml:"domain"`
	// Username is the user's logon name within `domain`, such as
	// `svc-vrelay`. Not a UPN (`svc-vrelay@corp.local`) and not
	// `CORP\svc-vrelay`: Horizon's REST login takes the domain apart. The
	// user needs a Horizon role with the *Collect Operation Logs*
	// privilege. Required.
	Username string `yaml:"username"`
	// Password is the user's password, with `fromEnv` or `fromFile`. See
	// [Secrets](#secrets). It is read once, by New, and never logged.
	// Required.
	Password secret.Ref `yaml:"password"`
	// SkipTLSVerify accepts any certificate the Connection Server presents.
	// For a lab only. It cannot be combined with `caFile`, nor with
	// `http://`. Default `false`: the certificate must chain to the system
	// roots or to `caFile`.
	SkipTLSVerify bool `yaml:"skipTLSVerify"`
	// CAFile is a PEM file of the CA certificates that sign the Connection
	// Server's certificate. It replaces the system roots for this source.
	// Read once at start-up, by New. Not with `http://`. Default: system
	// roots.
	CAFile string `yaml:"caFile"`
	// PollInterval is how long the source waits between two reads once it
	// has caught up. Each read is one API request or more, which Horizon
	// 2406 and later count against their rate limit. Must not be negative.
	// Default "1s".
	PollInterval time.Duration `yaml:"pollInterval"`
	// PageSize is the most events one request returns, which are also
	// stored with one publish. From 1 to 1000. Default `1000`.
	PageSize int `yaml:"pageSize"`
	// MaxAge bounds the replay after a restart: resume after the last
	// stored event, but no earlier than this long before Horizon's current
	// time. Events older than that are skipped, with a warning that names
	// the gap. `0s` means no replay: start at Horizon's current time. It
	// does not apply to failures while vrelay runs, after which the source
	// always resumes after the last stored event. Must not be negative. (It
	// is a pointer so that `0s` can be told from unset.) Default "5m".
	MaxAge *time.Duration `yaml:"maxAge"`
	// Format is the CloudEvent shape: "tanzu" (Tanzu Sources for Knative:
	// `type: com.vmware.horizon.<type>.v0`) or "router" (VMware Event
	// Router: `type: com.vmware.event.router/horizon.<type>.v0`), `<type>`
	// being the Horizon event type lower-cased. See
	// [horizon.md](horizon.md#the-cloudevents). Default "tanzu".
	Format Format `yaml:"format"`
}

// SetDefaults fills unset fields with their defaults. [New] calls it.
func (c *Config) SetDefaults() {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxAge == nil {
		d := DefaultMaxAge
		c.MaxAge = &d
	}
	if c.Format == "" {
		c.Format = FormatTanzu
	}
}

// Validate reports every problem at once, each a [cfgerr.FieldError] whose
// path is relative to the Config. Zero values are valid where they have a
// default. Validate reads no files and no environment; [New] reads the
// password and the CA file.
func (c Config) Validate() error {
	var errs []error
	var addr *url.URL
	if c.Address == "" {
		errs = append(errs, cfgerr.New("address", "is required"))
	} else if u, err := parseAddress(c.Address); err != nil {
		errs = append(errs, cfgerr.New("address", err.Error()))
	} else {
		addr = u
	}
	if c.Domain == "" {
		errs = append(errs, cfgerr.New("domain", "is required: the Active Directory domain of the user, such as corp"))
	} else if strings.ContainsAny(c.Domain, `\@/ `) {
		errs = append(errs, cfgerr.Newf("domain", "%q is not a domain name", c.Domain))
	}
	switch u := c.Username; {
	case u == "":
		errs = append(errs, cfgerr.New("username", "is required"))
	case strings.Contains(u, "@"):
		errs = append(errs, cfgerr.Newf("username", "%q is a UPN (user@domain), which Horizon's REST login does not take: set domain and username (the logon name without the domain) separately", u))
	case strings.Contains(u, `\`):
		errs = append(errs, cfgerr.Newf("username", "%q holds a domain (DOMAIN\\user): set domain and username (the logon name without the domain) separately", u))
	}
	if c.Password.IsZero() {
		errs = append(errs, cfgerr.New("password", "is required: set fromEnv or fromFile"))
	}
	errs = append(errs, cfgerr.Prefix("password", c.Password.Validate()))
	if c.SkipTLSVerify && c.CAFile != "" {
		errs = append(errs, cfgerr.New("caFile", "may not be set with skipTLSVerify, which ignores it"))
	}
	if addr != nil && addr.Scheme == "http" {
		if c.CAFile != "" {
			errs = append(errs, cfgerr.New("caFile", "has no effect with an http:// address"))
		}
		if c.SkipTLSVerify {
			errs = append(errs, cfgerr.New("skipTLSVerify", "has no effect with an http:// address"))
		}
	}
	if c.PollInterval < 0 {
		errs = append(errs, cfgerr.Newf("pollInterval", "must be positive, got %s", c.PollInterval))
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		errs = append(errs, cfgerr.Newf("pageSize", "must be from 1 to %d, got %d", MaxPageSize, c.PageSize))
	}
	if m := c.MaxAge; m != nil && *m < 0 {
		errs = append(errs, cfgerr.Newf("maxAge", "must be positive or 0s, got %s", *m))
	}
	switch c.Format {
	case "", FormatTanzu, FormatRouter:
	default:
		errs = append(errs, cfgerr.Newf("format", "must be %q or %q, got %q", FormatTanzu, FormatRouter, c.Format))
	}
	return errors.Join(errs...)
}

// parseAddress turns an address into the base URL of the pod:
// scheme://host[:port], https unless http is written.
func parseAddress(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URL or host name")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("must use https (or http in a lab), got %q", u.Scheme)
	case u.User != nil:
		return nil, errors.New("may not hold credentials: use domain, username and password")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("has no host")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, errors.New("may not have a query or fragment")
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("may not have a path (%s): write the Connection Server's address; the API under /rest is found by itself", u.Path)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q", p)
		}
	}
	u.Host = strings.ToLower(u.Host)
	u.Path = ""
	return u, nil
}
