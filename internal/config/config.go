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
//
// The same types describe the file to people and editors: [Schema] builds
// its JSON Schema and [RenderTables] the field tables of
// docs/configuration.md, both from the types, the table of kinds and the
// fields' doc comments, which `go generate` copies into docs_gen.go (the
// binary cannot read source). A field's doc comment is its reference
// text: a `Default X.` sentence gives its default, `Required.` makes it
// required.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/auth"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/names"
	"github.com/vrelay/vrelay/internal/netaddr"
	"github.com/vrelay/vrelay/streams"
)

// Config is the whole file.
type Config struct {
	// NATS says where JetStream runs: `embedded` or `external`, never both.
	// See [nats](#nats). Default: embedded server.
	NATS NATS `yaml:"nats"`
	// Streams is the retention and de-duplication of the JetStream objects
	// vrelay owns. Default: see [streams](#streams).
	Streams streams.Config `yaml:"streams"`
	// HTTP is the `/healthz`, `/readyz` and `/metrics` endpoint, and the
	// event viewer `/ui` when enabled. Default: `listen: 127.0.0.1:8081`.
	HTTP HTTP `yaml:"http"`
	// Sources are the upstream systems that feed the event stream. See
	// [sources](#sources).
	Sources []Source `yaml:"sources"`
	// Routes are the deliveries, each on its own durable consumer. See
	// [routes](#routes).
	Routes []Route `yaml:"routes"`
	// ShutdownTimeout bounds the whole graceful stop after SIGTERM or
	// SIGINT: routes get three fifths of it to finish the sends under way,
	// then draining the NATS connection gets the rest. Keep it shorter than
	// the pod's terminationGracePeriodSeconds, and each webhook's own
	// shutdownTimeout within three fifths of it. See
	// [shutdownTimeout](#shutdowntimeout). Must not be negative.
	// Default "25s".
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
}

// NATS holds exactly one of Embedded or External. When both are absent the
// embedded server runs with its defaults.
type NATS struct {
	// Embedded runs a NATS server with JetStream inside vrelay.
	Embedded *streams.EmbeddedConfig `yaml:"embedded"`
	// External connects to a NATS server or cluster with JetStream.
	External *streams.ExternalConfig `yaml:"external"`
}

// HTTP is the operations listener.
type HTTP struct {
	// Listen serves `GET /healthz` (the process is alive), `GET /readyz`
	// (start-up finished, NATS is connected, JetStream answers within 2 s
	// and its storage takes writes; the body adds one line per source with
	// its state and, when it failed, its error) and `GET /metrics`
	// (Prometheus). `off` disables the endpoint. Default "127.0.0.1:8081".
	Listen string `yaml:"listen"`
	// Auth is the credentials `/metrics` and the event viewer (`/ui` and
	// its API) require: `token` (sent as `Authorization: Bearer <token>`),
	// or `user` and `password` (HTTP basic authentication, which a browser
	// asks for by itself). Same fields and rules as
	// [nats.embedded.auth](#natsembeddedauth). `/healthz` and `/readyz` stay
	// open, for the kubelet's probes. Default: none.
	Auth *auth.Config `yaml:"auth"`
	// UI serves the event viewer at /ui: live events with a filter, route
	// counters and the dead letters with replay (docs/operations.md, "Event
	// viewer"). It can replay dead letters, so off a loopback listen
	// address it needs Auth. Default false.
	UI bool `yaml:"ui"`
}

// Route is one independent delivery.
type Route struct {
	// Name names the route's durable consumer on `VMWARE_EVENTS`, its
	// dead-letter subject `vrelay.dlq.<name>`, its metrics and its log
	// lines. Letters, digits, `-` and `_`. Unique among routes. Renaming a
	// route creates a new consumer; see
	// [delivery.md](delivery.md#one-durable-consumer-per-route). Required.
	Name string `yaml:"name"`
	// Subjects is the server-side filter: JetStream hands the route only
	// events whose subject matches one of these. NATS wildcards are allowed
	// (see below). Default: `["<subjectRoot>.>"]` (every event).
	Subjects []string `yaml:"subjects"`
	// Filter is an expression over the CloudEvent, such as
	// `subject == "VmPoweredOnEvent"`, compiled at start-up. See
	// [filters.md](filters.md). Default: none (every event the subjects
	// select).
	Filter string `yaml:"filter"`
	// Transform is the steps applied, in order, to each event the filter
	// let through, before the sink: `drop` it, or `set` and `remove`
	// attributes, extensions and data fields (with an optional `when`). See
	// [transforms.md](transforms.md).
	Transform []filters.Step `yaml:"transform"`
	// Sink is where the route delivers. See [sink](#sink). Required.
	Sink Sink `yaml:"sink"`
	// Delivery is the concurrency, timeouts, retries and the start
	// position. See [delivery](#delivery). Default: defaults below.
	Delivery consumers.Delivery `yaml:"delivery"`
}

// CompileFilter compiles the route's filter; nil when the route has none.
// [Load] has checked that it compiles: validation keeps nothing.
func (r Route) CompileFilter() (*filters.Filter, error) {
	if strings.TrimSpace(r.Filter) == "" {
		return nil, nil
	}
	f, err := filters.Compile(r.Filter)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", r.Name, err)
	}
	return f, nil
}

// CompileTransform compiles the route's transform; nil when the route has
// none. [Load] has checked that it compiles: validation keeps nothing.
func (r Route) CompileTransform() (*filters.Transform, error) {
	t, err := filters.CompileTransform(r.Transform)
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", r.Name, err)
	}
	return t, nil
}

// transformErrors turns the errors of compiling the route's transform into
// field errors under the route: routes[0].transform[1].set.type: route
// "x": line 1, column 5: ...
func (r *Route) transformErrors() error {
	_, err := filters.CompileTransform(r.Transform)
	var errs []error
	for _, e := range cfgerr.Flatten(err) {
		var se *filters.StepError
		if errors.As(e, &se) {
			errs = append(errs, cfgerr.Newf(se.Path(), "route %q: %v", r.Name, se.Err))
			continue
		}
		errs = append(errs, cfgerr.Newf("transform", "route %q: %v", r.Name, e))
	}
	return errors.Join(errs...)
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
	if what := foreign(b); what != "" {
		return nil, fmt.Errorf("this is %s, not a vrelay configuration: convert it with `vrelay migrate -from FILE`", what)
	}
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

// foreign names the configuration of another tool that b holds (the VMware
// Event Router's RouterConfig, a Tanzu Sources for Knative manifest), which
// `vrelay migrate` converts; "" when b holds none. Strict decoding would
// report only a list of unknown fields.
func foreign(b []byte) string {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var h struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
		}
		if err := dec.Decode(&h); err != nil {
			return ""
		}
		group, _, _ := strings.Cut(h.APIVersion, "/")
		switch {
		case h.Kind == "RouterConfig" || group == "event-router.vmware.com":
			return "a VMware Event Router RouterConfig"
		case group == "sources.tanzu.vmware.com":
			return "a Tanzu Sources for Knative " + h.Kind
		}
	}
}

// yamlError splits yaml.v3's multi-line type errors into one error a line
// and words them for people: "line 7: field maxInflight not found in type
// consumers.Delivery" becomes "line 7: unknown field maxInflight".
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, len(te.Errors))
		for i, e := range te.Errors {
			e = durationValue.ReplaceAllString(e, "got $1, want a duration string such as \"${1}s\" or \"5m\"")
			e = unknownField.ReplaceAllString(e, "unknown field $1")
			e = goType.ReplaceAllString(e, "")
			errs[i] = errors.New(e)
		}
		return errors.Join(errs...)
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

var (
	// yaml.v3 decodes a time.Duration only from a string such as "30s".
	durationValue = regexp.MustCompile("cannot unmarshal !![a-z]+ `([^`]*)` into time.Duration$")
	unknownField  = regexp.MustCompile(`(?s)field (.*) not found in type \S+$`)
	goType        = regexp.MustCompile(` into [a-z0-9_.*\[\]]+\.[A-Za-z0-9_]+$`)
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
		if k, ok := sourceKind(s.Type); ok {
			if sec := k.section(s, !k.required); sec != nil {
				sec.SetDefaults()
			}
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		r.Delivery.SetDefaults()
		if len(r.Subjects) == 0 {
			r.Subjects = []string{c.Streams.SubjectRoot + ".>"}
		}
		if k, ok := sinkKind(r.Sink.Type); ok {
			if sec := k.section(&r.Sink, !k.required); sec != nil {
				sec.SetDefaults()
			}
		}
	}
}

// Validate reports every problem at once, each with its field path. It
// compiles the route filters and transforms to check them and keeps
// nothing: validation has no side effects.
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
	if err := netaddr.CheckListenOrOff(c.HTTP.Listen); err != nil {
		add(cfgerr.New("http.listen", err.Error()))
	}
	if c.HTTP.Auth != nil {
		add(cfgerr.Prefix("http.auth", c.HTTP.Auth.Validate()))
	}
	if c.HTTP.UI {
		switch {
		case c.HTTP.Listen == netaddr.Off:
			add(cfgerr.New("http.ui", "needs http.listen, which is off"))
		case c.HTTP.Auth == nil && !netaddr.IsLoopback(c.HTTP.Listen):
			add(cfgerr.Newf("http.ui", "http.listen %s is not a loopback address and http.auth is not set: "+
				"the viewer shows every event and replays dead letters, so set http.auth (basic works in a browser)", c.HTTP.Listen))
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
		s := &c.Sources[i]
		p := fmt.Sprintf("sources[%d]", i)
		add(cfgerr.Prefix(p, s.validate()))
		key := s.Provider() + "/" + s.Name
		if prev, dup := sourceNames[key]; dup {
			add(cfgerr.Newf(p+".name", "%q is already the name of sources[%d]", s.Name, prev))
		}
		sourceNames[key] = i
	}
	add(c.validateListeners())

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

// validateListeners reports two listeners on one port of one address, after
// defaults: two webhook sources that both default to 127.0.0.1:8080 would
// pass every section's own check and then fail to bind at run time. A
// wildcard host (":8080", "0.0.0.0:8080") clashes with every address on
// that port.
func (c *Config) validateListeners() error {
	type listener struct {
		path, addr, host string
		port             int
	}
	var seen []listener
	var errs []error
	claim := func(path, addr string) {
		host, port, err := netaddr.SplitListen(addr)
		if err != nil || port == 0 {
			return // invalid (reported by its section) or a free port
		}
		for _, l := range seen {
			if l.port == port && (l.host == host || isWildcard(l.host) || isWildcard(host)) {
				errs = append(errs, cfgerr.Newf(path, "%s clashes with %s (%s): two listeners cannot share a port", addr, l.path, l.addr))
				return
			}
		}
		seen = append(seen, listener{path: path, addr: addr, host: host, port: port})
	}
	if c.HTTP.Listen != netaddr.Off {
		claim("http.listen", c.HTTP.Listen)
	}
	if e := c.NATS.Embedded; e != nil && e.Listen != streams.ListenOff {
		claim("nats.embedded.listen", e.Listen)
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		k, ok := sourceKind(s.Type)
		if !ok || k.listen == nil || k.section(s, false) == nil {
			continue
		}
		claim(fmt.Sprintf("sources[%d].%s.listen", i, k.Type), k.listen(s))
	}
	return errors.Join(errs...)
}

func isWildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

func (s *Source) validate() error {
	var errs []error
	if err := names.Check(s.Name); err != nil {
		errs = append(errs, cfgerr.New("name", err.Error()))
	}
	k, ok := sourceKind(s.Type)
	switch {
	case s.Type == "":
		errs = append(errs, cfgerr.Newf("type", "is required (%s)", sourceTypes()))
	case !ok:
		errs = append(errs, cfgerr.Newf("type", "%q is not a source type (%s)", s.Type, sourceTypes()))
	default:
		if sec := k.section(s, false); sec == nil {
			errs = append(errs, cfgerr.Newf(k.Type, "is required with type %s", k.Type))
		} else {
			errs = append(errs, cfgerr.Prefix(k.Type, sec.Validate()))
		}
	}
	for _, other := range sourceKinds {
		if other.Type != s.Type && other.section(s, false) != nil {
			errs = append(errs, cfgerr.Newf(other.Type, "is set but type is %q", s.Type))
		}
	}
	return errors.Join(errs...)
}

func (r *Route) validate(root string) error {
	var errs []error
	if err := names.Check(r.Name); err != nil {
		errs = append(errs, cfgerr.New("name", err.Error()))
	}
	for i, s := range r.Subjects {
		if err := validSubjectFilter(s, root); err != nil {
			errs = append(errs, cfgerr.New(fmt.Sprintf("subjects[%d]", i), err.Error()))
		}
	}
	health := 0
	for _, s := range r.Subjects {
		if strings.HasPrefix(s, streams.HealthPrefix) {
			health++
		}
	}
	if health > 0 && health < len(r.Subjects) {
		errs = append(errs, cfgerr.Newf("subjects", "route %q mixes %s subjects (the %s stream) with event subjects: a route reads one stream, use two routes",
			r.Name, streams.HealthPrefix+">", streams.HealthStream))
	}
	if strings.TrimSpace(r.Filter) != "" {
		if _, err := filters.Compile(r.Filter); err != nil {
			errs = append(errs, cfgerr.Newf("filter", "route %q: %v", r.Name, err))
		}
	}
	errs = append(errs, r.transformErrors())
	if ob := r.Delivery.OrderBy; ob != nil {
		if err := consumers.CheckOrderBy(*ob); err != nil {
			errs = append(errs, cfgerr.Newf("delivery.orderBy", "route %q: %v", r.Name, err))
		}
	}
	errs = append(errs, cfgerr.Prefix("delivery", r.Delivery.Validate()))
	k, ok := sinkKind(r.Sink.Type)
	switch {
	case r.Sink.Type == "":
		errs = append(errs, cfgerr.Newf("sink.type", "is required (%s)", sinkTypes()))
	case !ok:
		errs = append(errs, cfgerr.Newf("sink.type", "%q is not a sink type (%s)", r.Sink.Type, sinkTypes()))
	default:
		sec := k.section(&r.Sink, false)
		if sec == nil {
			errs = append(errs, cfgerr.Newf("sink."+k.Type, "is required with type %s", k.Type))
			break
		}
		if err := sec.Validate(); err != nil {
			errs = append(errs, cfgerr.Prefix("sink."+k.Type, err))
		} else if k.check != nil {
			errs = append(errs, cfgerr.Prefix("sink."+k.Type, k.check(r.Sink, r.Delivery)))
		}
		if !k.batches && r.Delivery.MaxBatch > 1 {
			errs = append(errs, cfgerr.Newf("delivery.maxBatch", "is %d, but a %s sink sends one event per request: leave it at 1", r.Delivery.MaxBatch, k.Type))
		}
	}
	for _, other := range sinkKinds {
		if other.Type != r.Sink.Type && other.section(&r.Sink, false) != nil {
			errs = append(errs, cfgerr.Newf("sink."+other.Type, "is set but type is %q", r.Sink.Type))
		}
	}
	return errors.Join(errs...)
}

// validSubjectFilter checks a route subject: valid tokens, wildcards only as
// whole tokens, '>' last, and under the event stream's root or the health
// stream's (vrelay.health.).
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
	if strings.HasPrefix(s, streams.HealthPrefix) {
		return nil // the health stream's subjects (see consumers.NewDispatcher)
	}
	if toks[0] != root && toks[0] != "*" && toks[0] != ">" {
		return fmt.Errorf("%q is outside the event stream (subjects start with %q)", s, root+".")
	}
	return nil
}
