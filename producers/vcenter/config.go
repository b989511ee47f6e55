package vcenter

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
	"github.com/vrelay/vrelay/producers/vcenter/inventory"
)

// Defaults for the zero values of [Config].
const (
	DefaultMaxAge           = 5 * time.Minute
	DefaultCheckpointPeriod = 10 * time.Second
	DefaultPollInterval     = time.Second
	DefaultPageSize         = 1000
	// DefaultStallCheckInterval is how often, by default, the source asks
	// vCenter for its latest event to find a stalled collector.
	DefaultStallCheckInterval = 30 * time.Second
	DefaultTagRefresh         = inventory.DefaultTagRefresh
	// MaxPageSize is the most events vCenter returns from one
	// ReadNextEvents call.
	MaxPageSize = 1000
)

// Config is one vCenter as an operator writes it. Its fields map 1:1 to the
// Tanzu VSphereSource where one exists: address, skipTLSVerify,
// checkpointConfig.maxAgeSeconds (checkpoint.maxAge),
// checkpointConfig.periodSeconds (checkpoint.period) and payloadEncoding;
// VSphereSource's secretRef becomes username plus password.
//
//	address: https://vc01.example.com/sdk
//	username: vrelay@vsphere.local
//	password:
//	  fromFile: /var/run/secrets/vc01/password
//	caFile: /etc/vrelay/vc01-ca.pem
//	checkpoint:
//	  maxAge: 5m
//	  period: 10s
//	format: tanzu
//	payloadEncoding: application/json
type Config struct {
	// Address is the vCenter SDK endpoint, such as
	// `https://vc01.example.com/sdk`. A bare host or `host:port` means
	// `https://<host>/sdk`, and an empty path means `/sdk`. Only `https`. It
	// may not contain a user or password (use `username` and `password`), a
	// query or a fragment. It is also the CloudEvent `source` of every
	// event. Required.
	Address string `yaml:"address"`
	// Username is the vCenter user, such as `vrelay@vsphere.local`. Read
	// access is enough: the source creates collectors and reads events.
	// Required.
	Username string `yaml:"username"`
	// Password is the user's password, with `fromEnv` or `fromFile`. See
	// [Secrets](#secrets). It is read once, by New, and never logged.
	// Required.
	Password secret.Ref `yaml:"password"`
	// SkipTLSVerify accepts any certificate the vCenter presents. For a lab
	// vCenter only. It cannot be combined with `caFile`. Default `false`:
	// the certificate must chain to the system roots or to `caFile`.
	SkipTLSVerify bool `yaml:"skipTLSVerify"`
	// CAFile is a PEM file of the CA certificates that sign the vCenter
	// certificate, such as the VMCA root from
	// `https://<vcenter>/certs/download.zip`. It replaces the system roots
	// for this source. Read once at start-up, by New. Default: system roots.
	CAFile string `yaml:"caFile"`
	// Checkpoint says how the position is kept and replayed.
	Checkpoint CheckpointConfig `yaml:"checkpoint"`
	// Format is the CloudEvent shape: "tanzu" (Tanzu Sources for Knative:
	// `type: com.vmware.vsphere.<EventType>.v0`, extensions `eventclass` and
	// `vsphereapiversion`) or "router" (VMware Event Router:
	// `type: com.vmware.event.router/<class>`, `subject: <EventType>`). See
	// [vcenter.md](vcenter.md#the-cloudevents). Default "tanzu".
	Format Format `yaml:"format"`
	// PayloadEncoding is the encoding of the event data: "application/json"
	// (the PascalCase shape that existing functions read) or
	// "application/xml". Default "application/json".
	PayloadEncoding string `yaml:"payloadEncoding"`
	// PollInterval is the longest wait for vCenter to report a new event
	// before the source reads anyway. New events are normally seen at once,
	// so this is a fallback. vCenter counts the wait in whole seconds: it is
	// rounded up. Must not be negative. Default "1s".
	PollInterval time.Duration `yaml:"pollInterval"`
	// PageSize is the most events read with one ReadNextEvents call, which
	// are also stored with one publish. From 1 to 1000. Default `1000`.
	PageSize int `yaml:"pageSize"`
	// StallCheckInterval is how often the source compares vCenter's own
	// latest event (EventManager.latestEvent) with what it read: when
	// vCenter holds newer events that the collector does not return, the
	// source sweeps the missed range by time and makes a new collector. A
	// stall is noticed within about one interval. Default "30s".
	StallCheckInterval time.Duration `yaml:"stallCheckInterval"`
	// Enrich adds what vCenter's inventory knows about the objects an
	// event names (paths, folders, tags) as CloudEvent extensions, so that
	// filters can select on them. Off by default; see docs/vcenter.md.
	Enrich EnrichConfig `yaml:"enrich"`
}

// EnrichConfig turns on inventory enrichment, per source:
//
//	enrich:
//	  inventory: true   # vmpath, vmfolder, hostpath, clusterpath, dcpath, dspath, netpath, dvspath
//	  tags: true        # vmtags, hosttags, clustertags, dctags, dstags, nettags, dvstags
//	  tagRefresh: 5m
type EnrichConfig struct {
	// Inventory keeps a copy of the inventory (names and parents of
	// folders, datacenters, VMs, hosts, clusters, datastores, networks and
	// distributed switches), kept current by a PropertyCollector, and adds
	// the inventory path of each object an event names. The user needs
	// read access to the inventory. Default false.
	Inventory bool `yaml:"inventory"`
	// Tags reads the vSphere tags attached to objects through the tagging
	// (vAPI) endpoint of the same vCenter, with the same credentials, and
	// adds them as "category:tag" lists. Default false.
	Tags bool `yaml:"tags"`
	// TagRefresh is how often the tags are read again. vCenter emits no
	// event when a tag is attached or detached, so a tag change shows on
	// events at the latest one refresh later. Each refresh costs about two
	// calls per tag and category. Only with tags. Default "5m".
	TagRefresh time.Duration `yaml:"tagRefresh"`
}

// CheckpointConfig is how the source keeps its position in the checkpoint
// bucket and what it replays after a restart.
type CheckpointConfig struct {
	// MaxAge bounds the replay after a restart: resume after the last
	// stored event, but no earlier than this long before vCenter's current
	// time. Events older than that are skipped, with a warning that names
	// the gap. `0s` means no replay: start at vCenter's current time. It does
	// not apply to reconnects while vrelay runs, which always resume after
	// the last published event. Must not be negative. (It is a pointer so
	// that `0s` can be told from unset.) Default "5m".
	MaxAge *time.Duration `yaml:"maxAge"`
	// Period is how often the position is saved while events flow. It is
	// saved once more when vrelay stops. A crash replays at most about one
	// period of events, which JetStream drops as duplicates. Must not be
	// negative. Default "10s".
	Period time.Duration `yaml:"period"`
}

// SetDefaults fills unset fields with their defaults. [New] calls it.
func (c *Config) SetDefaults() {
	if c.Checkpoint.MaxAge == nil {
		d := DefaultMaxAge
		c.Checkpoint.MaxAge = &d
	}
	if c.Checkpoint.Period == 0 {
		c.Checkpoint.Period = DefaultCheckpointPeriod
	}
	if c.Format == "" {
		c.Format = FormatTanzu
	}
	if c.PayloadEncoding == "" {
		c.PayloadEncoding = EncodingJSON
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.StallCheckInterval == 0 {
		c.StallCheckInterval = DefaultStallCheckInterval
	}
	if c.Enrich.Tags && c.Enrich.TagRefresh == 0 {
		c.Enrich.TagRefresh = DefaultTagRefresh
	}
}

// Validate reports every problem at once, each a [cfgerr.FieldError] whose
// path is relative to the Config. Zero values are valid where they have a
// default. Validate reads no files and no environment; [New] reads the
// password and the CA file.
func (c Config) Validate() error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, cfgerr.New("address", "is required"))
	} else if _, err := parseAddress(c.Address); err != nil {
		errs = append(errs, cfgerr.New("address", err.Error()))
	}
	if c.Username == "" {
		errs = append(errs, cfgerr.New("username", "is required"))
	}
	if c.Password.IsZero() {
		errs = append(errs, cfgerr.New("password", "is required: set fromEnv or fromFile"))
	}
	errs = append(errs, cfgerr.Prefix("password", c.Password.Validate()))
	if c.SkipTLSVerify && c.CAFile != "" {
		errs = append(errs, cfgerr.New("caFile", "may not be set with skipTLSVerify, which ignores it"))
	}
	if m := c.Checkpoint.MaxAge; m != nil && *m < 0 {
		errs = append(errs, cfgerr.Newf("checkpoint.maxAge", "must be positive or 0s, got %s", *m))
	}
	if c.Checkpoint.Period < 0 {
		errs = append(errs, cfgerr.Newf("checkpoint.period", "must be positive, got %s", c.Checkpoint.Period))
	}
	switch c.Format {
	case "", FormatTanzu, FormatRouter:
	default:
		errs = append(errs, cfgerr.Newf("format", "must be %q or %q, got %q", FormatTanzu, FormatRouter, c.Format))
	}
	switch c.PayloadEncoding {
	case "", EncodingJSON, EncodingXML:
	default:
		errs = append(errs, cfgerr.Newf("payloadEncoding", "must be %q or %q, got %q",
			EncodingJSON, EncodingXML, c.PayloadEncoding))
	}
	if c.PollInterval < 0 {
		errs = append(errs, cfgerr.Newf("pollInterval", "must be positive, got %s", c.PollInterval))
	}
	if c.PageSize < 0 || c.PageSize > MaxPageSize {
		errs = append(errs, cfgerr.Newf("pageSize", "must be from 1 to %d, got %d", MaxPageSize, c.PageSize))
	}
	if c.StallCheckInterval < 0 {
		errs = append(errs, cfgerr.Newf("stallCheckInterval", "must be positive, got %s", c.StallCheckInterval))
	}
	switch r := c.Enrich.TagRefresh; {
	case r < 0:
		errs = append(errs, cfgerr.Newf("enrich.tagRefresh", "must be positive, got %s", r))
	case r > 0 && !c.Enrich.Tags:
		errs = append(errs, cfgerr.New("enrich.tagRefresh", "has no effect without enrich.tags"))
	}
	return errors.Join(errs...)
}

// parseAddress turns an address into the SDK URL: https, a host, the path
// /sdk unless another is given, and no credentials, query or fragment.
func parseAddress(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URL or host name")
	}
	switch {
	case u.Scheme != "https":
		return nil, fmt.Errorf("must use https, got %q", u.Scheme)
	case u.User != nil:
		return nil, errors.New("may not hold credentials: use username and password")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("has no host")
	case u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("may not have a query or fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q", p)
		}
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	return u, nil
}
