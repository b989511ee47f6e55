// Package migrate converts the configuration of the tools vrelay replaces
// into a vrelay configuration: the VMware Event Router's `RouterConfig`
// (apiVersion event-router.vmware.com/v1alpha1) and the Tanzu Sources for
// Knative `VSphereSource` and `HorizonSource` manifests
// (sources.tanzu.vmware.com), plus OpenFaaS stack files whose `topic`
// annotations said which events each function got.
//
//	out, err := migrate.Convert([]migrate.Input{{Name: "router.yaml", Data: b}})
//	os.WriteFile("vrelay.yaml", out.YAML, 0o644)
//
// The contract:
//
//   - A secret value in the input (a password, an AWS secret key) is never
//     written out, logged or returned in an error. Each becomes a fromEnv
//     reference (Event Router) or a fromFile reference into the mounted
//     Kubernetes secret (Tanzu secretRef), and the head comment of the
//     output lists every variable and file to provide.
//   - Whatever has no vrelay equivalent gets a comment where it would have
//     gone, saying so and what to do instead.
//   - The output is a valid vrelay configuration: Convert checks it with
//     config.Parse and fails rather than return one that is not.
//
// Several documents (one file with `---` separators or several inputs)
// become one configuration with one source per provider or Tanzu source,
// and one route per processor, sink, or OpenFaaS function.
package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/streams"
)

// Input is one file to convert.
type Input struct {
	// Name is the file name, used in comments and errors.
	Name string
	// Data is the file's content: one or more YAML documents.
	Data []byte
}

// Result is a converted configuration.
type Result struct {
	// YAML is the vrelay configuration, with comments.
	YAML []byte
	// Sources and Routes count what it holds.
	Sources, Routes int
	// Secrets lists what the operator must provide before `vrelay run`,
	// one line each ("environment variable X: ..."). No values.
	Secrets []string
}

// Option changes how Convert works.
type Option func(*options)

type options struct {
	progress func(done, total int)
}

// WithProgress has Convert call fn after each document it converted, with
// the number done and the total, for a progress display.
func WithProgress(fn func(done, total int)) Option {
	return func(o *options) { o.progress = fn }
}

// Kinds of documents Convert knows.
const (
	RouterAPIGroup = "event-router.vmware.com"
	TanzuAPIGroup  = "sources.tanzu.vmware.com"
)

// Convert converts the documents of the inputs into one vrelay
// configuration.
func Convert(inputs []Input, opts ...Option) (*Result, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	type doc struct {
		file string
		node *yaml.Node
		hdr  header
	}
	var docs []doc
	for _, in := range inputs {
		dec := yaml.NewDecoder(bytes.NewReader(in.Data))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", in.Name, err)
			}
			var h header
			if err := n.Decode(&h); err != nil {
				return nil, fmt.Errorf("%s: %w", in.Name, err)
			}
			docs = append(docs, doc{file: in.Name, node: &n, hdr: h})
		}
	}
	c := &converter{used: map[string]bool{}}
	// Stack files first: the OpenFaaS processors need their functions.
	for _, d := range docs {
		if d.hdr.Kind == "" && d.hdr.APIVersion == "" {
			var st stackFile
			if err := d.node.Decode(&st); err == nil && len(st.Functions) > 0 {
				c.stacks = append(c.stacks, st)
			}
		}
	}
	for i, d := range docs {
		if err := c.document(d.file, d.node, d.hdr); err != nil {
			return nil, err
		}
		if o.progress != nil {
			o.progress(i+1, len(docs))
		}
	}
	if len(c.sources) == 0 && len(c.routes) == 0 {
		return nil, errors.New("found no RouterConfig, VSphereSource or HorizonSource to convert")
	}
	out, err := c.render(inputs)
	if err != nil {
		return nil, err
	}
	if _, err := config.Parse(out); err != nil {
		return nil, fmt.Errorf("the converted configuration is not valid (a bug in vrelay migrate): %w", err)
	}
	return &Result{YAML: out, Sources: len(c.sources), Routes: len(c.routes), Secrets: c.secrets}, nil
}

type converter struct {
	sources []*yaml.Node
	routes  []*yaml.Node
	http    *yaml.Node
	secrets []string
	notes   []string
	stacks  []stackFile
	used    map[string]bool // names of sources and routes
}

func (c *converter) document(file string, n *yaml.Node, h header) error {
	group, _, _ := strings.Cut(h.APIVersion, "/")
	switch {
	case h.Kind == "RouterConfig" || group == RouterAPIGroup:
		var rc routerConfig
		if err := n.Decode(&rc); err != nil {
			return fmt.Errorf("%s: RouterConfig %s: %w", file, h.Metadata.Name, err)
		}
		return c.router(file, h, rc)
	case group == TanzuAPIGroup && (h.Kind == "VSphereSource" || h.Kind == "HorizonSource"):
		var ts tanzuSource
		if err := n.Decode(&ts); err != nil {
			return fmt.Errorf("%s: %s %s: %w", file, h.Kind, h.Metadata.Name, err)
		}
		return c.tanzu(file, h, ts)
	case group == TanzuAPIGroup:
		c.notes = append(c.notes, fmt.Sprintf("%s: %s %s has no vrelay equivalent; not converted (vrelay reads the VMware system itself: no binding or other objects needed).", file, h.Kind, h.Metadata.Name))
	case h.Kind == "" && h.APIVersion == "":
		// An OpenFaaS stack file, read above; or anything else.
		var st stackFile
		if err := n.Decode(&st); err != nil || len(st.Functions) == 0 {
			c.notes = append(c.notes, fmt.Sprintf("%s: a document with no apiVersion and kind, and no OpenFaaS functions; not converted.", file))
		}
	default:
		c.notes = append(c.notes, fmt.Sprintf("%s: %s %s (%s) is not something vrelay migrate converts; skipped.", file, h.Kind, h.Metadata.Name, h.APIVersion))
	}
	return nil
}

// from is where a source's events go: its provider and name, for the
// subjects of the routes that read it.
type from struct {
	provider, name string
}

func (f from) subjects(types ...string) []string {
	if len(types) == 0 {
		return []string{streams.DefaultRoot + "." + f.provider + "." + f.name + ".>"}
	}
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = streams.DefaultRoot + "." + f.provider + "." + f.name + "." + streams.Token(t)
	}
	return out
}

func (c *converter) router(file string, h header, rc routerConfig) error {
	where := fmt.Sprintf("%s (RouterConfig %s)", file, h.Metadata.Name)
	var src from
	if p := rc.EventProvider; p != nil {
		var ok bool
		src, ok = c.routerProvider(where, p)
		if !ok {
			src = from{provider: "*", name: "*"}
		}
	} else {
		c.notes = append(c.notes, where+": no eventProvider; its processor reads every source.")
		src = from{provider: "*", name: "*"}
	}
	if p := rc.EventProcessor; p != nil {
		c.routerProcessor(where, p, src)
	}
	if m := rc.MetricsProvider; m != nil {
		c.routerMetrics(where, m)
	}
	return nil
}

func (c *converter) routerProvider(where string, p *routerProvider) (from, bool) {
	name := c.name(p.Name, p.Type)
	s := mapping()
	add(s, "name", str(name), "")
	switch p.Type {
	case "vcenter", "vcsim":
		v := p.VCenter
		if p.Type == "vcsim" {
			v = p.VCSim
		}
		if v == nil {
			c.notes = append(c.notes, fmt.Sprintf("%s: eventProvider %s has no %s section; not converted.", where, p.Name, p.Type))
			return from{}, false
		}
		add(s, "type", str("vcenter"), ifs(p.Type == "vcsim", "the Event Router's vcsim provider was deprecated; vcsim is a vCenter to vrelay (for a built-in simulator see `type: simulator`)"))
		vc := mapping()
		add(vc, "address", str(v.Address), "")
		c.basicAuth(vc, "username", "password", v.Auth, name, fmt.Sprintf("%s: eventProvider %s", where, p.Name), v.Address)
		if v.InsecureSSL {
			add(vc, "skipTLSVerify", boolean(true), "insecureSSL: better, set caFile to the vCenter's CA (https://<vcenter>/certs/download.zip)")
		}
		cp := mapping()
		if v.Checkpoint != nil && !*v.Checkpoint {
			add(cp, "maxAge", str("0s"), "checkpoint: false: after a restart, start at the current time (at-most-once, as before)")
		}
		if v.CheckpointDir != "" {
			cp.HeadComment = "checkpointDir has no equivalent: vrelay keeps checkpoints in a NATS key-value bucket (`vrelay checkpoint list`)."
		}
		if len(cp.Content) > 0 {
			add(vc, "checkpoint", cp, "")
		} else if cp.HeadComment != "" {
			vc.Content[len(vc.Content)-2].FootComment = cp.HeadComment
		}
		add(vc, "format", str("router"), "the CloudEvents the Event Router sent: type com.vmware.event.router/event, subject <EventType>")
		add(s, "vcenter", vc, "")
		c.sources = append(c.sources, s)
		return from{provider: "vcenter", name: name}, true
	case "horizon":
		v := p.Horizon
		if v == nil {
			c.notes = append(c.notes, fmt.Sprintf("%s: eventProvider %s has no horizon section; not converted.", where, p.Name))
			return from{}, false
		}
		add(s, "type", str("horizon"), "")
		hz := mapping()
		add(hz, "address", str(v.Address), "")
		what := fmt.Sprintf("%s: eventProvider %s", where, p.Name)
		switch {
		case v.Auth != nil && v.Auth.ActiveDirectoryAuth != nil:
			ad := v.Auth.ActiveDirectoryAuth
			add(hz, "domain", str(ad.Domain), "")
			add(hz, "username", str(ad.Username), "")
			add(hz, "password", c.envSecret(envName(name, "password"), fmt.Sprintf("password of %s\\%s on %s (was %s auth.activeDirectoryAuth.password)", ad.Domain, ad.Username, v.Address, what)), "")
		default:
			add(hz, "domain", str("CHANGE-ME"), "no active_directory auth in the RouterConfig: the user's AD domain")
			add(hz, "username", str("CHANGE-ME"), "")
			add(hz, "password", c.envSecret(envName(name, "password"), "password of the Horizon user on "+v.Address), "")
		}
		if v.InsecureSSL {
			add(hz, "skipTLSVerify", boolean(true), "insecureSSL: better, set caFile to the Connection Server's CA")
		}
		add(hz, "format", str("router"), "the CloudEvents the Event Router sent")
		add(s, "horizon", hz, "")
		c.sources = append(c.sources, s)
		return from{provider: "horizon", name: name}, true
	case "webhook":
		v := p.Webhook
		add(s, "type", str("webhook"), "")
		wh := mapping()
		if v != nil {
			if v.BindAddress != "" {
				add(wh, "listen", str(v.BindAddress), "")
			}
			if v.Path != "" {
				add(wh, "path", str(v.Path), "")
			}
			if v.Auth != nil && v.Auth.BasicAuth != nil {
				b := mapping()
				c.basicAuth(b, "username", "password", v.Auth, name, fmt.Sprintf("%s: eventProvider %s", where, p.Name), "the webhook")
				a := mapping()
				add(a, "basic", b, "")
				add(wh, "auth", a, "")
			}
		}
		add(s, "webhook", wh, "")
		c.sources = append(c.sources, s)
		return from{provider: "webhook", name: name}, true
	}
	c.notes = append(c.notes, fmt.Sprintf("%s: eventProvider type %q has no vrelay equivalent; not converted (vrelay sources: vcenter, horizon, webhook, simulator).", where, p.Type))
	return from{}, false
}

func (c *converter) routerProcessor(where string, p *routerProcessor, src from) {
	what := fmt.Sprintf("%s: eventProcessor %s", where, p.Name)
	switch p.Type {
	case "knative":
		k := p.Knative
		if k == nil {
			c.notes = append(c.notes, what+": no knative section; not converted.")
			return
		}
		name := c.name(p.Name, "knative")
		sink := c.knativeSink(k.Destination, "", k.Encoding, k.InsecureSSL)
		if k.Auth != nil && k.Auth.BasicAuth != nil {
			b := mapping()
			c.basicAuth(b, "username", "password", k.Auth, name, what, "the Knative destination")
			a := mapping()
			add(a, "basic", b, "")
			add(sink, "auth", a, "")
		}
		c.route(name, src.subjects(), "knative", sink, "")
	case "aws_event_bridge":
		e := p.AWSEventBridge
		if e == nil {
			c.notes = append(c.notes, what+": no awsEventBridge section; not converted.")
			return
		}
		name := c.name(p.Name, "eventbridge")
		eb := mapping()
		add(eb, "region", str(e.Region), "")
		if e.EventBus != "" {
			add(eb, "eventBus", str(e.EventBus), "")
		}
		if a := e.Auth; a != nil && a.AWSAccessKeyAuth != nil {
			cr := mapping()
			add(cr, "accessKeyId", c.envSecret(envName(name, "aws_access_key_id"), fmt.Sprintf("AWS access key id (was %s auth.awsAccessKeyAuth.accessKey)", what)), "")
			add(cr, "secretAccessKey", c.envSecret(envName(name, "aws_secret_access_key"), fmt.Sprintf("AWS secret access key (was %s auth.awsAccessKeyAuth.secretKey)", what)), "")
			add(eb, "credentials", cr, "on AWS, better: drop credentials and use the SDK's default chain (IRSA, instance role)")
		}
		add(eb, "detailType", str("subject"), "the Event Router's shape: DetailType is the event type (the CloudEvent subject)")
		comment := ""
		if e.RuleARN != "" {
			comment = fmt.Sprintf("ruleARN %s: vrelay does not read EventBridge rules. The Event Router forwarded only the event types in the rule's detail.subject pattern: list them in subjects (vmware.%s.%s.<EventType>), or copy the rule's pattern under eventbridge.pattern.", e.RuleARN, src.provider, src.name)
		}
		c.route(name, src.subjects(), "eventbridge", eb, comment)
	case "openfaas":
		f := p.OpenFaaS
		if f == nil {
			c.notes = append(c.notes, what+": no openfaas section; not converted.")
			return
		}
		c.openfaas(what, p.Name, f, src)
	default:
		c.notes = append(c.notes, fmt.Sprintf("%s: type %q has no vrelay equivalent; not converted (vrelay sinks: http, knative, eventbridge, nats, log).", what, p.Type))
	}
}

// openfaas writes one http route per function of the stack files whose
// topic annotation names event types, as docs/openfaas.md describes.
func (c *converter) openfaas(what, procName string, f *routerOpenFaaS, src from) {
	gateway := strings.TrimSuffix(f.Address, "/")
	path := "/function/"
	if f.Async {
		path = "/async-function/"
	}
	var password *yaml.Node
	user := ""
	if f.Auth != nil && f.Auth.BasicAuth != nil {
		user = f.Auth.BasicAuth.Username
		password = c.envSecret(envName(c.safe(procName, "openfaas"), "password"), fmt.Sprintf("password of the OpenFaaS gateway user %s (was %s auth.basicAuth.password; the basic-auth secret of the openfaas namespace)", user, what))
	}
	n := 0
	for _, st := range c.stacks {
		fns := make([]string, 0, len(st.Functions))
		for fn := range st.Functions {
			fns = append(fns, fn)
		}
		slices.Sort(fns)
		for _, fn := range fns {
			topic := st.Functions[fn].Annotations["topic"]
			var types []string
			for t := range strings.SplitSeq(topic, ",") {
				if t = strings.TrimSpace(t); t != "" {
					types = append(types, t)
				}
			}
			if len(types) == 0 {
				c.notes = append(c.notes, fmt.Sprintf("OpenFaaS function %s has no topic annotation: the Event Router never called it; no route.", fn))
				continue
			}
			h := mapping()
			add(h, "url", str(gateway+path+fn), ifs(f.Async, "async: the gateway queues the call and answers 202; its queue worker retries, not vrelay"))
			add(h, "mode", str("binary"), "ce-* headers, the event as the body, as the Event Router sent it")
			if password != nil {
				b := mapping()
				add(b, "username", str(user), "")
				add(b, "password", cloneNode(password), "")
				a := mapping()
				add(a, "basic", b, "")
				add(h, "auth", a, "")
			}
			c.route(c.name(fn, "function"), src.subjects(types...), "http", h,
				fmt.Sprintf("OpenFaaS function %s, topic %q: one subject per event type (see docs/openfaas.md).", fn, topic))
			n++
		}
	}
	if n == 0 {
		c.notes = append(c.notes, fmt.Sprintf("%s: the OpenFaaS processor called each function whose topic annotation named the event's type. Give the functions' stack.yml as another -from to write one http route per function to %s%s<function>, or write them as docs/openfaas.md shows.", what, gateway, path))
	}
}

func (c *converter) routerMetrics(where string, m *routerMetrics) {
	if m.Type != "default" || m.Default == nil {
		c.notes = append(c.notes, fmt.Sprintf("%s: metricsProvider type %q has no vrelay equivalent; vrelay serves Prometheus /metrics on http.listen.", where, m.Type))
		return
	}
	if c.http != nil {
		c.notes = append(c.notes, fmt.Sprintf("%s: a second metricsProvider (%s): vrelay has one operations listener; kept the first.", where, m.Default.BindAddress))
		return
	}
	h := mapping()
	h.HeadComment = fmt.Sprintf("From %s metricsProvider %s. The Event Router served JSON at /stats;\nvrelay serves Prometheus text at /metrics, and /healthz and /readyz.", where, m.Name)
	add(h, "listen", str(m.Default.BindAddress), "")
	if a := m.Default.Auth; a != nil && a.BasicAuth != nil {
		au := mapping()
		c.basicAuth(au, "user", "password", a, "vrelay_metrics", where+": metricsProvider "+m.Name, "/metrics")
		add(h, "auth", au, "protects /metrics only; the probes stay open")
	}
	c.http = h
}

func (c *converter) tanzu(file string, h header, ts tanzuSource) error {
	sp := ts.Spec
	what := fmt.Sprintf("%s: %s %s", file, h.Kind, h.Metadata.Name)
	name := c.name(h.Metadata.Name, strings.ToLower(strings.TrimSuffix(h.Kind, "Source")))
	s := mapping()
	add(s, "name", str(name), "")
	secretDir := "/var/run/secrets/vrelay/" + sp.SecretRef.Name
	userNote := fmt.Sprintf("the username key of secret %s; vrelay reads only the password from a file", sp.SecretRef.Name)
	var src from
	if h.Kind == "VSphereSource" {
		add(s, "type", str("vcenter"), "")
		vc := mapping()
		add(vc, "address", str(sp.Address), "")
		add(vc, "username", str("CHANGE-ME"), userNote)
		add(vc, "password", c.fileSecret(secretDir+"/password", fmt.Sprintf("mount secret %s (keys username, password) at %s (was %s spec.secretRef)", sp.SecretRef.Name, secretDir, what)), "")
		if sp.SkipTLSVerify {
			add(vc, "skipTLSVerify", boolean(true), "better: caFile with the vCenter's CA")
		}
		if cc := sp.CheckpointConfig; cc != nil && (cc.MaxAgeSeconds != nil || cc.PeriodSeconds != nil) {
			cp := mapping()
			if cc.MaxAgeSeconds != nil {
				add(cp, "maxAge", str(seconds(*cc.MaxAgeSeconds)), "checkpointConfig.maxAgeSeconds")
			}
			if cc.PeriodSeconds != nil {
				add(cp, "period", str(seconds(*cc.PeriodSeconds)), "checkpointConfig.periodSeconds")
			}
			add(vc, "checkpoint", cp, "")
		}
		add(vc, "format", str("tanzu"), "the CloudEvents VSphereSource sent: com.vmware.vsphere.<EventType>.v0")
		if sp.PayloadEncoding != "" {
			add(vc, "payloadEncoding", str(sp.PayloadEncoding), "")
		}
		add(s, "vcenter", vc, "")
		src = from{provider: "vcenter", name: name}
	} else {
		add(s, "type", str("horizon"), "")
		hz := mapping()
		add(hz, "address", str(sp.Address), "")
		add(hz, "domain", str("CHANGE-ME"), fmt.Sprintf("the domain key of secret %s", sp.SecretRef.Name))
		add(hz, "username", str("CHANGE-ME"), fmt.Sprintf("the username key of secret %s", sp.SecretRef.Name))
		add(hz, "password", c.fileSecret(secretDir+"/password", fmt.Sprintf("mount secret %s (keys domain, username, password) at %s (was %s spec.secretRef)", sp.SecretRef.Name, secretDir, what)), "")
		if sp.SkipTLSVerify {
			add(hz, "skipTLSVerify", boolean(true), "better: caFile with the Connection Server's CA")
		}
		add(hz, "format", str("tanzu"), "the CloudEvents HorizonSource sent")
		add(s, "horizon", hz, "")
		src = from{provider: "horizon", name: name}
	}
	if sp.ServiceAccountName != "" {
		c.notes = append(c.notes, fmt.Sprintf("%s: serviceAccountName %s has no equivalent: vrelay runs under its own service account.", what, sp.ServiceAccountName))
	}
	c.sources = append(c.sources, s)
	if sp.Sink.Ref == nil && sp.Sink.URI.Kind == 0 {
		c.notes = append(c.notes, what+": no spec.sink; no route written.")
		return nil
	}
	sink := c.knativeSink(sp.Sink, h.Metadata.Namespace, "", false)
	c.route(c.name(name+"-sink", "sink"), src.subjects(), "knative", sink, fmt.Sprintf("spec.sink of %s %s.", h.Kind, h.Metadata.Name))
	return nil
}

// knativeSink writes a knative sink section for a Knative Destination.
func (c *converter) knativeSink(d destination, namespace, encoding string, insecure bool) *yaml.Node {
	k := mapping()
	if r := d.Ref; r != nil {
		ref := mapping()
		add(ref, "apiVersion", str(r.APIVersion), "")
		add(ref, "kind", str(r.Kind), "")
		add(ref, "name", str(r.Name), "")
		ns := r.Namespace
		if ns == "" {
			ns = namespace
		}
		if ns != "" {
			add(ref, "namespace", str(ns), ifs(r.Namespace == "", "the source's namespace, Knative's default"))
		}
		add(k, "ref", ref, "")
	}
	if u := uriOf(d.URI); u != "" {
		add(k, "uri", str(u), "")
	}
	if encoding != "" {
		add(k, "mode", str(encoding), "")
	}
	if insecure {
		t := mapping()
		add(t, "skipTLSVerify", boolean(true), "insecureSSL")
		add(k, "tls", t, "")
	}
	return k
}

// uriOf reads a destination uri: a string, or the Event Router's url.URL
// object.
func uriOf(n yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value
	case yaml.MappingNode:
		var u struct {
			Scheme   string `yaml:"scheme"`
			Host     string `yaml:"host"`
			Path     string `yaml:"path"`
			RawQuery string `yaml:"rawQuery"`
		}
		if err := n.Decode(&u); err != nil {
			return ""
		}
		return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawQuery: u.RawQuery}).String()
	}
	return ""
}

func (c *converter) route(name string, subjects []string, sinkType string, section *yaml.Node, comment string) {
	r := mapping()
	r.HeadComment = comment
	add(r, "name", str(name), "")
	subs := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range subjects {
		subs.Content = append(subs.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s, Style: yaml.DoubleQuotedStyle})
	}
	add(r, "subjects", subs, "")
	sink := mapping()
	add(sink, "type", str(sinkType), "")
	add(sink, sinkType, section, "")
	add(r, "sink", sink, "")
	c.routes = append(c.routes, r)
}

// basicAuth writes username and a fromEnv password for an Event Router
// basic_auth section. The password value is never copied.
func (c *converter) basicAuth(m *yaml.Node, userKey, passKey string, a *routerAuth, owner, what, target string) {
	if a == nil || a.BasicAuth == nil {
		add(m, userKey, str("CHANGE-ME"), "no basic_auth in the RouterConfig")
		add(m, passKey, c.envSecret(envName(owner, "password"), "password for "+target), "")
		return
	}
	add(m, userKey, str(a.BasicAuth.Username), "")
	add(m, passKey, c.envSecret(envName(owner, "password"),
		fmt.Sprintf("password of %s for %s (was %s auth.basicAuth.password)", a.BasicAuth.Username, target, what)), "")
}

func (c *converter) envSecret(env, what string) *yaml.Node {
	c.secrets = append(c.secrets, fmt.Sprintf("environment variable %s: %s", env, what))
	m := mapping()
	m.Style = yaml.FlowStyle
	add(m, "fromEnv", str(env), "")
	return m
}

func (c *converter) fileSecret(path, what string) *yaml.Node {
	c.secrets = append(c.secrets, fmt.Sprintf("file %s: %s", path, what))
	m := mapping()
	m.Style = yaml.FlowStyle
	add(m, "fromFile", str(path), "")
	return m
}

// name returns a unique valid source or route name made from want.
func (c *converter) name(want, fallback string) string {
	base := c.safe(want, fallback)
	n := base
	for i := 2; c.used[n]; i++ {
		n = fmt.Sprintf("%s-%d", base, i)
	}
	c.used[n] = true
	return n
}

// safe makes want a valid name: letters, digits, '-' and '_'.
func (c *converter) safe(want, fallback string) string {
	var b strings.Builder
	for _, r := range want {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = fallback
	}
	if len(s) > 56 {
		s = s[:56]
	}
	return s
}

// envName makes an environment variable name: VC_01_PASSWORD.
func envName(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('_')
		}
		for _, r := range strings.ToUpper(p) {
			if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

func seconds(n int64) string { return (time.Duration(n) * time.Second).String() }

func (c *converter) render(inputs []Input) ([]byte, error) {
	var files []string
	for _, in := range inputs {
		files = append(files, in.Name)
	}
	doc := mapping()
	head := []string{"vrelay configuration written by `vrelay migrate` from " + strings.Join(files, ", ") + "."}
	if len(c.secrets) > 0 {
		head = append(head, "", "Before `vrelay run`, provide these secrets (no value was copied):")
		for _, s := range c.secrets {
			head = append(head, "  "+s)
		}
	}
	if len(c.notes) > 0 {
		head = append(head, "", "Not converted, or converted with a change:")
		for _, n := range c.notes {
			head = append(head, "  - "+n)
		}
	}
	head = append(head, "", "NATS: embedded, with its defaults (see docs/configuration.md).", "")
	doc.HeadComment = strings.Join(head, "\n")
	if c.http != nil {
		add(doc, "http", c.http, "")
		// The head comment of the value would land after the key.
		doc.Content[len(doc.Content)-2].HeadComment = c.http.HeadComment
		c.http.HeadComment = ""
	}
	if len(c.sources) > 0 {
		add(doc, "sources", &yaml.Node{Kind: yaml.SequenceNode, Content: c.sources}, "")
	}
	routes := &yaml.Node{Kind: yaml.SequenceNode, Content: c.routes}
	add(doc, "routes", routes, "")
	if len(c.routes) == 0 {
		doc.Content[len(doc.Content)-2].HeadComment = "No route: see the notes above."
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{doc}}); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	return buf.Bytes(), nil
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(b)}
}

func add(m *yaml.Node, key string, v *yaml.Node, comment string) {
	k := &yaml.Node{Kind: yaml.ScalarNode, Value: key}
	if comment != "" {
		if v.Kind == yaml.ScalarNode || v.Style == yaml.FlowStyle {
			v.LineComment = comment
		} else {
			k.HeadComment = comment
		}
	}
	m.Content = append(m.Content, k, v)
}

func cloneNode(n *yaml.Node) *yaml.Node {
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = cloneNode(ch)
	}
	return &c
}

func ifs(cond bool, s string) string {
	if cond {
		return s
	}
	return ""
}
