package natssink

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/streams"
)

// The placeholders a subject template may hold. Each is replaced by the
// event's attribute made into a valid token by [streams.Token].
const (
	PlaceholderType   = "{type}"
	PlaceholderSource = "{source}"
)

// internalRoot is the first token of vrelay's own subjects (dead letters,
// replays, source health).
const internalRoot = "vrelay"

// Config is the operator's configuration of one NATS sink.
//
//	subject: republished.{type}
//	jetstream: true
//	# url, credentials and tls only for a NATS other than vrelay's own:
//	url: nats://nats.example.com:4222
//	user: vrelay
//	password: {fromFile: /var/run/secrets/nats/password}
//	tls: {caFile: /etc/vrelay/nats-ca.pem}
type Config struct {
	// Subject is where each event goes. `{type}` and `{source}` are replaced
	// by the event's type and source, with `.`, `*`, `>` and white space made
	// `_` (`republished.{type}` gives
	// `republished.com_vmware_vsphere_VmPoweredOnEvent_v0`). No wildcards. It
	// may not start with the event stream's root (`vmware`, or
	// `streams.subjectRoot`) or with `vrelay`: republishing into
	// `VMWARE_EVENTS` or vrelay's own streams would loop, and `vrelay
	// validate` says so. Required.
	Subject string `yaml:"subject"`

	// JetStream, when true, publishes through JetStream and counts the event
	// delivered only on the stream's PubAck. Create a stream that captures
	// `subject` yourself; until it exists, sends fail and are retried (`no
	// stream stores this subject`). With false, a core publish, delivered once
	// the server took it, whether or not anyone subscribes. Default `false`.
	JetStream bool `yaml:"jetstream"`

	// URL is a NATS server elsewhere, `nats://host:4222` or comma-separated
	// servers; `tls://` for TLS. Default: vrelay's own connection (embedded or
	// `nats.external`), which needs no credentials here.
	URL string `yaml:"url"`

	// User is the user name for `url`, with `password`. Default: none.
	User string `yaml:"user"`
	// Password is the password of `user`. Default: none.
	Password secret.Ref `yaml:"password"`
	// Token is the token for `url`. Default: none.
	Token secret.Ref `yaml:"token"`
	// CredsFile is a NATS credentials file (JWT and NKey seed) for `url`, for
	// example mounted from a Secret. Default: none.
	CredsFile string `yaml:"credsFile"`

	// TLS configures how a tls:// URL is verified. Default: the system roots.
	TLS TLS `yaml:"tls"`
}

// TLS configures server verification for URL.
type TLS struct {
	// CAFile is a PEM bundle of the CAs of `url`'s servers; setting it turns
	// TLS on. Default: system roots.
	CAFile string `yaml:"caFile"`
}

// SetDefaults fills unset fields with their defaults; [New] calls it.
// Every field's default is its zero value.
func (c *Config) SetDefaults() {}

// Validate reports every problem with c at once, joined with errors.Join,
// as cfgerr field errors whose paths are relative to the sink ("subject",
// "password"). It refuses a subject inside the event stream's default
// subjects; [WithSubjectRoot] makes [New] refuse a custom root as well. It
// reads no files and no secrets; [New] does.
func (c Config) Validate() error {
	var errs []error
	if err := checkTemplate(c.Subject, streams.DefaultRoot); err != nil {
		errs = append(errs, cfgerr.New("subject", err.Error()))
	}
	if c.URL == "" {
		if c.User != "" || !c.Password.IsZero() || !c.Token.IsZero() || c.CredsFile != "" || c.TLS.CAFile != "" {
			errs = append(errs, cfgerr.New("url", "is required with credentials or tls: without url the sink uses vrelay's own connection"))
		}
		return errors.Join(errs...)
	}
	for _, u := range strings.Split(c.URL, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		switch {
		case err != nil || pu.Host == "":
			errs = append(errs, cfgerr.Newf("url", "%q is not a server URL such as nats://host:4222", secret.RedactURL(strings.TrimSpace(u))))
		case pu.User != nil:
			errs = append(errs, cfgerr.New("url", "must not carry credentials: use user/password, token or credsFile"))
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
	if !c.Token.IsZero() {
		methods++
	}
	if c.CredsFile != "" {
		methods++
	}
	if methods > 1 {
		errs = append(errs, cfgerr.New("", "set one of user/password, token or credsFile"))
	}
	errs = append(errs, cfgerr.Prefix("password", c.Password.Validate()), cfgerr.Prefix("token", c.Token.Validate()))
	return errors.Join(errs...)
}

// checkTemplate checks a subject template: known placeholders only, valid
// tokens once they are filled, and outside the subjects of root and of
// vrelay itself.
func checkTemplate(tmpl, root string) error {
	if tmpl == "" {
		return errors.New("is required")
	}
	// A placeholder becomes at least one valid character.
	filled := strings.NewReplacer(PlaceholderType, "t", PlaceholderSource, "s").Replace(tmpl)
	if i := strings.IndexAny(filled, "{}"); i >= 0 {
		return fmt.Errorf("%q: unknown placeholder at %q; use %s or %s", tmpl, filled[i:], PlaceholderType, PlaceholderSource)
	}
	return checkSubject(filled, root)
}

// checkSubject checks a subject to publish to.
func checkSubject(subj, root string) error {
	toks := strings.Split(subj, ".")
	for _, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("%q has an empty token", subj)
		case strings.ContainsAny(t, "*>"):
			return fmt.Errorf("%q: wildcards cannot be published to", subj)
		case strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return fmt.Errorf("%q: white space or a control character in a token", subj)
		}
	}
	switch first := toks[0]; {
	case first == root:
		return fmt.Errorf("%q is inside the event stream's subjects (%s.>): republishing there would store every event again and loop; choose another first token", subj, root)
	case first == internalRoot:
		return fmt.Errorf("%q is inside vrelay's own subjects (%s.>), such as the dead-letter stream's", subj, internalRoot)
	case strings.HasPrefix(first, "$"):
		return fmt.Errorf("%q is a system subject", subj)
	}
	return nil
}
