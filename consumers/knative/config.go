package knative

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

// Config is the operator's configuration of one Knative sink: a Knative
// Destination (ref, uri, or both) plus the HTTP settings of the http sink.
//
//	ref:
//	  apiVersion: serving.knative.dev/v1
//	  kind: Service
//	  name: hello
//	  namespace: functions
//	uri: /hello?filter=test
//	mode: binary
//	timeout: 10s
type Config struct {
	// URI is where events go: without `ref`, an absolute `http://` or
	// `https://` URL, and no Kubernetes API is used; with `ref`, a relative
	// reference (path and/or query, such as `/hello?filter=test`) resolved
	// against the object's address, as Knative resolves a Destination. Set
	// `ref`, `uri` or both. Default: none.
	URI string `yaml:"uri"`

	// Ref names an addressable Kubernetes object whose address receives the
	// events: a Broker (eventing.knative.dev/v1), a Knative Service
	// (serving.knative.dev/v1), any object with status.address.url, or a
	// plain v1 Service (http://<name>.<namespace>.svc.cluster.local/). Set
	// Ref, URI or both.
	Ref *Ref `yaml:"ref"`

	// Kubeconfig is the kubeconfig file used to resolve `ref`. Only allowed
	// with `ref`. Default: the pod's service account when vrelay runs in a
	// cluster, else `$KUBECONFIG`, else `~/.kube/config`.
	Kubeconfig string `yaml:"kubeconfig"`

	// Mode is the CloudEvents HTTP content mode, as for the http sink:
	// "binary" or "structured". See [HTTP sink](#http-sink). Default "binary".
	Mode string `yaml:"mode"`

	// Headers are added to every request, with the rules of the http sink: no
	// `ce-*`, `Content-Type` or `Authorization`. Default: none.
	Headers map[string]string `yaml:"headers"`

	// Auth authenticates each request, as for the http sink. Default none.
	Auth httpsink.Auth `yaml:"auth"`

	// TLS configures how https addresses are verified. Default: the system
	// roots.
	TLS httpsink.TLS `yaml:"tls"`

	// Timeout bounds one attempt, as for the http sink, and also one
	// resolution of `ref`. It may not exceed the route's
	// `delivery.sendTimeout`. Default "10s".
	Timeout time.Duration `yaml:"timeout"`
}

// Ref is a reference to an addressable object, Knative's KReference.
type Ref struct {
	// APIVersion is the group/version of the object: `eventing.knative.dev/v1`
	// (Broker), `serving.knative.dev/v1` (Knative Service), `v1` (plain
	// Service), or any kind with `status.address.url`. Required.
	APIVersion string `yaml:"apiVersion"`
	// Kind is the object's kind: `Broker`, `Service`, … Required.
	Kind string `yaml:"kind"`
	// Name is the object's name. Required.
	Name string `yaml:"name"`
	// Namespace is the object's namespace. Default: vrelay's namespace: in a
	// cluster, the namespace of vrelay's service account; with a kubeconfig,
	// its context's namespace; else `default`.
	Namespace string `yaml:"namespace"`
}

func (r Ref) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", r.Kind, r.Namespace, r.Name, r.APIVersion)
}

// SetDefaults fills unset fields with their defaults; [New] calls it. The
// namespace of Ref is found by [New], which knows where vrelay runs.
func (c *Config) SetDefaults() {
	if c.Mode == "" {
		c.Mode = httpsink.ModeBinary
	}
	if c.Timeout == 0 {
		c.Timeout = httpsink.DefaultTimeout
	}
}

// placeholderURL stands in for the address, still unknown, when the HTTP
// settings are checked and built: the Knative sink always sends with
// [httpsink.Sink.SendTo].
const placeholderURL = "http://knative-ref.invalid/"

// httpConfig is c's HTTP settings as an http sink's configuration.
func (c Config) httpConfig(target string) httpsink.Config {
	return httpsink.Config{URL: target, Mode: c.Mode, Headers: c.Headers, Auth: c.Auth, TLS: c.TLS, Timeout: c.Timeout}
}

// Validate reports every problem with c at once, as cfgerr field errors
// relative to the sink ("uri", "ref.name", "auth.basic.password"). It reads
// no files and makes no Kubernetes calls.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Ref == nil && c.URI == "":
		errs = append(errs, cfgerr.New("", "set ref, uri or both"))
	case c.Ref == nil:
		errs = append(errs, validateAbsolute(c.URI))
	default:
		errs = append(errs, cfgerr.Prefix("ref", c.Ref.validate()))
		if c.URI != "" {
			errs = append(errs, validateRelative(c.URI))
		}
	}
	if c.Ref == nil && c.Kubeconfig != "" {
		errs = append(errs, cfgerr.New("kubeconfig", "is only used to resolve ref"))
	}
	// The HTTP settings, checked by the http sink itself; its url is ours.
	errs = append(errs, c.httpConfig(placeholderURL).Validate())
	return errors.Join(errs...)
}

func (r Ref) validate() error {
	var errs []error
	if r.APIVersion == "" {
		errs = append(errs, cfgerr.New("apiVersion", "is required"))
	}
	if r.Kind == "" {
		errs = append(errs, cfgerr.New("kind", "is required"))
	}
	if r.Name == "" {
		errs = append(errs, cfgerr.New("name", "is required"))
	}
	return errors.Join(errs...)
}

func parseURI(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		if secret.RedactURL(raw) != raw {
			// Even the cause may quote part of the credentials (a bad escape).
			return nil, cfgerr.New("uri", "not a URI")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URI, which may hold a key
		}
		return nil, cfgerr.Newf("uri", "not a URI: %v", err)
	}
	return u, nil
}

func validateAbsolute(raw string) error {
	if err := httpsink.MissingScheme("uri", raw); err != nil {
		return err
	}
	u, err := parseURI(raw)
	switch {
	case err != nil:
		return err
	case !u.IsAbs() || u.Host == "":
		return cfgerr.New("uri", "without ref it must be an absolute URL (scheme and host)")
	case u.Scheme != "http" && u.Scheme != "https":
		return cfgerr.Newf("uri", "scheme %q is not http or https", u.Scheme)
	case u.User != nil:
		return cfgerr.New("uri", "must not hold credentials; use auth")
	}
	return nil
}

func validateRelative(raw string) error {
	u, err := parseURI(raw)
	switch {
	case err != nil:
		return err
	case u.IsAbs() || u.Host != "":
		return cfgerr.New("uri", "with ref it must be relative (a path and/or query), resolved against the ref's address")
	}
	return nil
}
