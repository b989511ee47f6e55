// Package config reads the one YAML file that drives `vrelay run`: where
// NATS is, how big the streams are, which sources feed them and which routes
// deliver from them.
//
// The file is decoded strictly (an unknown field is an error, with its line),
// then every section is defaulted and validated; [Load] reports every problem
// at once, each prefixed with the file name and the field path:
//
//	vrelay.yaml: routes[2].sink.http.url: not an absolute URL
//
// Each component owns the Config of its own section (streams.Config,
// webhook.Config, httpsink.Config, ...); this package only composes them and
// checks what spans sections, such as unique names.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/consumers/logsink"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/producers/vcenter"
	"github.com/vrelay/vrelay/producers/vcsim"
	"github.com/vrelay/vrelay/producers/webhook"
	"github.com/vrelay/vrelay/streams"
)

// Config is the whole file.
type Config struct {
	// NATS says where JetStream runs: embedded (default) or external.
	NATS NATS `yaml:"nats"`
	// Streams sizes the event and dead-letter streams.
	Streams streams.Config `yaml:"streams"`
	// HTTP is the operations endpoint: /healthz, /readyz, /metrics.
	HTTP HTTP `yaml:"http"`
	// Sources feed the event stream.
	Sources []Source `yaml:"sources"`
	// Routes deliver from it, each on its own durable consumer.
	Routes []Route `yaml:"routes"`
	// ShutdownTimeout bounds the graceful stop after SIGTERM: routes get
	// three fifths of it to finish the sends under way, then draining the
	// NATS connection gets the rest. Keep it shorter than the pod's
	// terminationGracePeriodSeconds, and each webhook's own shutdownTimeout
	// within three fifths of it. Default "25s".
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
}

// NATS holds exactly one of Embedded or External. When both are absent the
// embedded server runs with its defaults.
type NATS struct {
	Embedded *streams.EmbeddedConfig `yaml:"embedded"`
	External *streams.ExternalConfig `yaml:"external"`
}

// HTTP is the operations listener.
type HTTP struct {
	// Listen is host:port for /healthz, /readyz and /metrics, or "off".
	// Default "127.0.0.1:8081".
	Listen string `yaml:"listen"`
}

// Source types.
const (
	SourceWebhook   = "webhook"
	SourceVCenter   = "vcenter"
	SourceSimulator = "simulator"
)

var sourceTypes = "webhook, vcenter, simulator"

// Source is one upstream system. Type selects which of the sections below
// applies; the others stay empty.
type Source struct {
	// Name names the source in subjects (`vmware.<provider>.<name>.<type>`),
	// checkpoints (`<provider>.<name>`) and metrics. Letters, digits, '-'
	// and '_'.
	Name string `yaml:"name"`
	// Type is one of: webhook, vcenter, simulator.
	Type      string          `yaml:"type"`
	Webhook   *webhook.Config `yaml:"webhook"`
	VCenter   *vcenter.Config `yaml:"vcenter"`
	Simulator *vcsim.Config   `yaml:"simulator"`
}

// Route is one independent delivery.
type Route struct {
	// Name names the route's durable consumer and dead-letter subject
	// (`vrelay.dlq.<name>`). Letters, digits, '-' and '_'.
	Name string `yaml:"name"`
	// Subjects is the server-side filter, NATS wildcards allowed.
	// Default: every event (`<subjectRoot>.>`).
	Subjects []string `yaml:"subjects"`
	// Filter is an optional expr-lang expression over the CloudEvent, such
	// as `subject == "VmPoweredOnEvent"`; see docs/filters.md.
	Filter string `yaml:"filter"`
	// Sink is where the route delivers.
	Sink Sink `yaml:"sink"`
	// Delivery is the retry and concurrency policy.
	Delivery consumers.Delivery `yaml:"delivery"`

	compiled *filters.Filter
}

// CompiledFilter is the route's filter, compiled by Load; nil when the route
// has none.
func (r Route) CompiledFilter() *filters.Filter { return r.compiled }

// Sink types.
const (
	SinkHTTP = "http"
	SinkLog  = "log"
)

// Sink selects the destination of a route.
type Sink struct {
	// Type is one of: http, log.
	Type string           `yaml:"type"`
	HTTP *httpsink.Config `yaml:"http"`
	Log  *logsink.Config  `yaml:"log"`
}

// Load reads, defaults and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, &FileError{File: path, Err: err}
	}
	return cfg, nil
}

// FileError is a problem with a configuration file. Its message lists every
// problem on its own line, each prefixed with the file name.
type FileError struct {
	File string
	Err  error
}

func (e *FileError) Error() string {
	var b strings.Builder
	for i, p := range cfgerr.Flatten(e.Err) {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File + ": " + p.Error())
	}
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// Problems returns each problem without the file name.
func (e *FileError) Problems() []string {
	var out []string
	for _, p := range cfgerr.Flatten(e.Err) {
		out = append(out, p.Error())
	}
	return out
}

// Parse decodes, defaults and validates a configuration document.
func Parse(b []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// yamlError splits yaml.v3's multi-line type errors into one error a line
// and words them for people: "line 7: field maxInflight not found in type
// consumers.Delivery" becomes "line 7: unknown field maxInflight".
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, len(te.Errors))
		for i, e := range te.Errors {
			e = unknownField.ReplaceAllString(e, "unknown field $1")
			e = goType.ReplaceAllString(e, "")
			errs[i] = errors.New(e)
		}
		return errors.Join(errs...)
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

var (
	unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)
	goType       = regexp.MustCompile(` into [a-z0-9_.*\[\]]+\.[A-Za-z0-9_]+$`)
)

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if c.NATS.Embedded == nil && c.NATS.External == nil {
		c.NATS.Embedded = &streams.EmbeddedConfig{}
	}
	if c.NATS.Embedded != nil {
		c.NATS.Embedded.SetDefaults()
	}
	if c.NATS.External != nil {
		c.NATS.External.SetDefaults()
	}
	c.Streams.SetDefaults()
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8081"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		switch {
		case s.Type == SourceWebhook && s.Webhook == nil:
			s.Webhook = &webhook.Config{}
		case s.Type == SourceSimulator && s.Simulator == nil:
			s.Simulator = &vcsim.Config{}
		}
		if s.VCenter != nil {
			s.VCenter.SetDefaults()
		}
		if s.Simulator != nil {
			s.Simulator.SetDefaults()
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		r.Delivery.SetDefaults()
		if len(r.Subjects) == 0 {
			r.Subjects = []string{c.Streams.SubjectRoot + ".>"}
		}
		if r.Sink.Type == SinkLog && r.Sink.Log == nil {
			r.Sink.Log = &logsink.Config{}
		}
	}
}

// Validate reports every problem at once, each with its field path. It
// compiles the route filters.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case c.NATS.Embedded != nil && c.NATS.External != nil:
		add(cfgerr.New("nats", "set embedded or external, not both"))
	case c.NATS.Embedded != nil:
		add(cfgerr.Prefix("nats.embedded", c.NATS.Embedded.Validate()))
	case c.NATS.External != nil:
		add(cfgerr.Prefix("nats.external", c.NATS.External.Validate()))
	}
	add(cfgerr.Prefix("streams", c.Streams.Validate()))
	if c.HTTP.Listen != "off" {
		if err := validListen(c.HTTP.Listen); err != nil {
			add(cfgerr.New("http.listen", err.Error()))
		}
	}
	if c.ShutdownTimeout < 0 {
		add(cfgerr.New("shutdownTimeout", "must not be negative"))
	}
	if len(c.Sources) == 0 && len(c.Routes) == 0 {
		add(cfgerr.New("", "no sources and no routes: nothing to do"))
	}

	// Sources of one provider share subjects and checkpoint keys, so their
	// names must differ; a simulator publishes as provider vcenter.
	sourceNames := map[string]int{}
	for i := range c.Sources {
		s := c.Sources[i]
		p := fmt.Sprintf("sources[%d]", i)
		add(cfgerr.Prefix(p, s.validate()))
		key := Provider(s.Type) + "/" + s.Name
		if prev, dup := sourceNames[key]; dup {
			add(cfgerr.Newf(p+".name", "%q is already the name of sources[%d]", s.Name, prev))
		}
		sourceNames[key] = i
	}
	listeners := map[string]string{}
	if c.HTTP.Listen != "off" {
		listeners[c.HTTP.Listen] = "http.listen"
	}
	for i, s := range c.Sources {
		if s.Type == SourceWebhook && s.Webhook != nil && s.Webhook.Listen != "" && !strings.HasSuffix(s.Webhook.Listen, ":0") {
			p := fmt.Sprintf("sources[%d].webhook.listen", i)
			if other, dup := listeners[s.Webhook.Listen]; dup {
				add(cfgerr.Newf(p, "%s is also used by %s", s.Webhook.Listen, other))
			}
			listeners[s.Webhook.Listen] = p
		}
	}

	routeNames := map[string]int{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		add(cfgerr.Prefix(p, r.validate(c.Streams.SubjectRoot)))
		if prev, dup := routeNames[r.Name]; dup && r.Name != "" {
			add(cfgerr.Newf(p+".name", "%q is already the name of routes[%d]", r.Name, prev))
		}
		routeNames[r.Name] = i
	}
	return errors.Join(errs...)
}

// Provider is the subject and checkpoint provider of a source type: a
// simulator is a vCenter.
func Provider(sourceType string) string {
	if sourceType == SourceSimulator {
		return SourceVCenter
	}
	return sourceType
}

func (s *Source) validate() error {
	var errs []error
	if !consumers.ValidRouteName(s.Name) {
		errs = append(errs, cfgerr.Newf("name", "%q: use 1 to 64 letters, digits, '-' or '_'", s.Name))
	}
	switch s.Type {
	case SourceWebhook:
		errs = append(errs, cfgerr.Prefix("webhook", s.Webhook.Validate()))
	case SourceVCenter:
		if s.VCenter == nil {
			errs = append(errs, cfgerr.New("vcenter", "is required with type vcenter"))
		} else {
			errs = append(errs, cfgerr.Prefix("vcenter", s.VCenter.Validate()))
		}
	case SourceSimulator:
		errs = append(errs, cfgerr.Prefix("simulator", s.Simulator.Validate()))
	case "":
		errs = append(errs, cfgerr.Newf("type", "is required (%s)", sourceTypes))
	default:
		errs = append(errs, cfgerr.Newf("type", "%q is not a source type (%s)", s.Type, sourceTypes))
	}
	for _, sec := range []struct {
		name string
		set  bool
	}{{SourceWebhook, s.Webhook != nil}, {SourceVCenter, s.VCenter != nil}, {SourceSimulator, s.Simulator != nil}} {
		if sec.set && s.Type != sec.name {
			errs = append(errs, cfgerr.Newf(sec.name, "is set but type is %q", s.Type))
		}
	}
	return errors.Join(errs...)
}

func (r *Route) validate(root string) error {
	var errs []error
	if !consumers.ValidRouteName(r.Name) {
		errs = append(errs, cfgerr.Newf("name", "%q: use 1 to 64 letters, digits, '-' or '_'", r.Name))
	}
	for i, s := range r.Subjects {
		if err := validSubjectFilter(s, root); err != nil {
			errs = append(errs, cfgerr.New(fmt.Sprintf("subjects[%d]", i), err.Error()))
		}
	}
	if strings.TrimSpace(r.Filter) != "" {
		f, err := filters.Compile(r.Filter)
		if err != nil {
			errs = append(errs, cfgerr.Newf("filter", "route %q: %v", r.Name, err))
		} else {
			r.compiled = f
		}
	}
	errs = append(errs, cfgerr.Prefix("sink", r.Sink.validate()))
	errs = append(errs, cfgerr.Prefix("delivery", r.Delivery.Validate()))
	if h := r.Sink.HTTP; h != nil && h.Timeout > r.Delivery.SendTimeout {
		errs = append(errs, cfgerr.Newf("sink.http.timeout", "%s exceeds delivery.sendTimeout (%s), which bounds every attempt", h.Timeout, r.Delivery.SendTimeout))
	}
	return errors.Join(errs...)
}

func (s *Sink) validate() error {
	var errs []error
	switch s.Type {
	case SinkHTTP:
		if s.HTTP == nil {
			errs = append(errs, cfgerr.New("http", "is required with type http"))
		} else {
			errs = append(errs, cfgerr.Prefix("http", s.HTTP.Validate()))
		}
	case SinkLog:
		errs = append(errs, cfgerr.Prefix("log", s.Log.Validate()))
	case "":
		errs = append(errs, cfgerr.New("type", "is required (http, log)"))
	default:
		errs = append(errs, cfgerr.Newf("type", "%q is not a sink type (http, log)", s.Type))
	}
	if s.Type != SinkHTTP && s.HTTP != nil {
		errs = append(errs, cfgerr.Newf("http", "is set but type is %q", s.Type))
	}
	if s.Type != SinkLog && s.Log != nil {
		errs = append(errs, cfgerr.Newf("log", "is set but type is %q", s.Type))
	}
	return errors.Join(errs...)
}

// validSubjectFilter checks a route subject: valid tokens, wildcards only as
// whole tokens, '>' last, and under the event stream's root.
func validSubjectFilter(s, root string) error {
	if s == "" {
		return errors.New("is empty")
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return fmt.Errorf("%q has an empty token", s)
		case t == ">" && i != len(toks)-1:
			return fmt.Errorf("%q: '>' must be the last token", s)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*> \t"):
			return fmt.Errorf("%q: wildcards must be whole tokens", s)
		}
	}
	if toks[0] != root && toks[0] != "*" && toks[0] != ">" {
		return fmt.Errorf("%q is outside the event stream (subjects start with %q)", s, root+".")
	}
	return nil
}

func validListen(addr string) error {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has no valid port", addr)
	}
	return nil
}
