package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/internal/cfgerr"
)

// Names of the JetStream objects vrelay owns. They are a public interface
// (DESIGN.md §2): dashboards, `nats stream view` and other tools name them.
const (
	EventStream = "VMWARE_EVENTS"
	DLQStream   = "VRELAY_DLQ"
	// HealthStream holds the sources' health events, one subject per
	// source: `vrelay.health.<provider>.<source>` (see [HealthSubject]).
	HealthStream     = "VRELAY_HEALTH"
	CheckpointBucket = "vrelay_checkpoints"
	// LeaseBucket holds one key per polling source, `<provider>.<source>`,
	// whose value names the replica that runs it (DESIGN.md §2).
	LeaseBucket = "vrelay_leases"
)

// Placement pins streams and buckets to a cluster or to servers with
// tags, as JetStream's placement does. It is passed unchanged to every
// stream and bucket vrelay creates.
type Placement struct {
	// Cluster is the NATS cluster (its `cluster.name`) that holds every
	// stream and bucket of vrelay. Default: the cluster of the server vrelay
	// is connected to.
	Cluster string `yaml:"cluster"`
	// Tags are server tags (`server_tags` in the NATS configuration) every
	// server holding a replica must carry. With `placement.cluster`, this is
	// JetStream placement, passed as it is to every stream and bucket.
	// Changing it on an existing stream makes JetStream move the stream.
	Tags []string `yaml:"tags"`
}

func (p *Placement) js() *jetstream.Placement {
	if p == nil || (p.Cluster == "" && len(p.Tags) == 0) {
		return nil
	}
	return &jetstream.Placement{Cluster: p.Cluster, Tags: slices.Clone(p.Tags)}
}

// Config sizes the streams. It is the `streams` section of the YAML file.
type Config struct {
	// SubjectRoot is the first token of every event subject:
	// `vmware.vcenter.vc01.VmPoweredOnEvent`. One token: no `.`, `*`, `>`,
	// `$` or spaces. `vrelay` is reserved for the dead-letter stream.
	// Default "vmware".
	SubjectRoot string `yaml:"subjectRoot"`
	// MaxAge is how long the event stream keeps an event, whatever the
	// routes did with it. Must not be negative. Default "168h" (7 days).
	MaxAge time.Duration `yaml:"maxAge"`
	// MaxBytes is the size cap of the event stream. When it is full, the
	// oldest events are removed first. `-1` means no cap besides `maxAge`
	// and the disk. Default `-1` (no cap).
	MaxBytes int64 `yaml:"maxBytes"`
	// DuplicateWindow is how long JetStream remembers each event's
	// `Nats-Msg-Id` to drop a second copy. It must cover the longest replay
	// after a crash (a source's checkpoint period plus its restart time).
	// See [delivery.md](delivery.md#de-duplication). At least `1s`, and not
	// more than `maxAge`. Default "10m".
	DuplicateWindow time.Duration `yaml:"duplicateWindow"`
	// Replicas is the number of copies of each stream (events, dead
	// letters, replays) and of each bucket (checkpoints, leases). Use 1 on
	// the embedded server and 3 on a three-node cluster. From 1 to 5.
	// Default `1`.
	Replicas int `yaml:"replicas"`
	// DLQMaxAge is how long a dead letter is kept, and a replay that its
	// route has not taken. The dead-letter stream has no size cap. Must not
	// be negative. Default "720h" (30 days).
	DLQMaxAge time.Duration `yaml:"dlqMaxAge"`
	// LeaseTTL is the time to live of a polling source's lease: the TTL of
	// the bucket `vrelay_leases`. Used only with `nats.external`. The holder
	// renews every third of it; when the holder dies without releasing (a
	// crash, a lost node), another replica takes over about one `leaseTTL`
	// later. A replica that stops on SIGTERM releases at once. Shorter means
	// faster failover but more renewals, and a NATS outage (or a leader
	// election) longer than it makes the holder stop polling until the
	// lease is taken again. At least `1s`. Default "15s".
	LeaseTTL time.Duration `yaml:"leaseTTL"`
	// Placement, when set, places every stream and bucket on a cluster or
	// on tagged servers. Default: none (JetStream chooses).
	Placement *Placement `yaml:"placement"`
}

// SetDefaults fills unset fields with their defaults.
func (c *Config) SetDefaults() {
	if c.SubjectRoot == "" {
		c.SubjectRoot = DefaultRoot
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = -1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DLQMaxAge == 0 {
		c.DLQMaxAge = 30 * 24 * time.Hour
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
}

// DefaultLeaseTTL is the default of Config.LeaseTTL.
const DefaultLeaseTTL = 15 * time.Second

// Validate reports every problem at once, with field paths relative to the
// section.
func (c Config) Validate() error {
	var errs []error
	if c.SubjectRoot != Token(c.SubjectRoot) || strings.ContainsAny(c.SubjectRoot, "$") {
		errs = append(errs, cfgerr.Newf("subjectRoot", "%q is not one subject token (no '.', '*', '>', '$' or spaces)", c.SubjectRoot))
	}
	if c.SubjectRoot == "vrelay" {
		errs = append(errs, cfgerr.New("subjectRoot", `"vrelay" is reserved for the dead-letter stream`))
	}
	if c.MaxAge < 0 {
		errs = append(errs, cfgerr.New("maxAge", "must not be negative"))
	}
	if c.MaxBytes < -1 || c.MaxBytes == 0 {
		errs = append(errs, cfgerr.New("maxBytes", "must be positive or -1 for no cap"))
	}
	if c.DuplicateWindow < time.Second {
		errs = append(errs, cfgerr.New("duplicateWindow", "must be at least 1s"))
	}
	if c.MaxAge > 0 && c.DuplicateWindow > c.MaxAge {
		errs = append(errs, cfgerr.New("duplicateWindow", "must not exceed maxAge"))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, cfgerr.New("replicas", "must be between 1 and 5"))
	}
	if c.DLQMaxAge < 0 {
		errs = append(errs, cfgerr.New("dlqMaxAge", "must not be negative"))
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, cfgerr.New("leaseTTL", "must be at least 1s"))
	}
	if c.Placement != nil && slices.Contains(c.Placement.Tags, "") {
		errs = append(errs, cfgerr.New("placement.tags", "must not contain an empty tag"))
	}
	return errors.Join(errs...)
}

// EventStreamConfig is the event stream: every event vrelay stored, under
// limits retention so that routes never remove what another route or a
// person still wants to read.
func EventStreamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        EventStream,
		Description: "VMware events relayed by vrelay",
		Subjects:    []string{c.SubjectRoot + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		MaxMsgs:     -1,
		Duplicates:  c.DuplicateWindow,
		Replicas:    c.Replicas,
		Placement:   c.Placement.js(),
		AllowDirect: true,
	}
}

// DLQStreamConfig is the dead-letter stream: one subject per route, every
// message a copy of an event that could not be delivered plus headers that
// say why.
func DLQStreamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "Events vrelay could not deliver, one subject per route",
		Subjects:    []string{DLQPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      c.DLQMaxAge,
		MaxBytes:    -1,
		MaxMsgs:     -1,
		Duplicates:  2 * time.Minute,
		Replicas:    c.Replicas,
		Placement:   c.Placement.js(),
		AllowDirect: true,
	}
}

// Health stream limits: health events are few and only alerts read them.
const (
	HealthMaxAge  = 7 * 24 * time.Hour
	HealthMaxMsgs = 100_000
)

// HealthPrefix is the subject prefix of health events, outside every event
// stream root ("vrelay" is reserved).
const HealthPrefix = "vrelay.health."

// HealthSubject is the subject of the health events of one source:
// `vrelay.health.<provider>.<source>`.
func HealthSubject(provider, source string) string {
	return HealthPrefix + Token(provider) + "." + Token(source)
}

// HealthStreamConfig is the stream of the sources' health events
// (connection lost and restored, stalls, swept gaps, checkpoint
// conflicts), kept apart from the events themselves so that a route on
// `vmware.>` never sees them and a route on `vrelay.health.>` sees nothing
// else.
func HealthStreamConfig(c Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        HealthStream,
		Description: "Health events of vrelay sources, one subject per source",
		Subjects:    []string{HealthPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      HealthMaxAge,
		MaxBytes:    -1,
		MaxMsgs:     HealthMaxMsgs,
		Duplicates:  2 * time.Minute,
		Replicas:    c.Replicas,
		Placement:   c.Placement.js(),
		AllowDirect: true,
	}
}

// CheckpointBucketConfig is the KV bucket of source positions. History keeps
// the last few positions of each source for audit and manual rollback.
func CheckpointBucketConfig(c Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      CheckpointBucket,
		Description: "vrelay source positions, key <provider>.<source>",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Placement:   c.Placement.js(),
	}
}

// LeaseBucketConfig is the KV bucket of leases. Its TTL is the lease's
// time to live: a key that nobody renews disappears after it, which is
// what lets another replica take a dead replica's sources. The TTL is
// bucket-wide because a per-key TTL is dropped by a plain Update.
func LeaseBucketConfig(c Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "vrelay leases of polling sources, key <provider>.<source>",
		History:     1,
		TTL:         c.LeaseTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Placement:   c.Placement.js(),
	}
}

// Ensure creates the streams and buckets that are missing and updates those
// whose settings differ from c, where JetStream allows it. It is idempotent
// and safe to run from several replicas at once. A difference JetStream
// cannot apply in place (storage type, retention policy) is an error that
// names the object, the setting and the way out; nothing is deleted.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for _, want := range []jetstream.StreamConfig{EventStreamConfig(c), DLQStreamConfig(c), ReplayStreamConfig(c), HealthStreamConfig(c)} {
		if err := ensureStream(ctx, js, want, log); err != nil {
			errs = append(errs, err)
		}
	}
	for _, kv := range []jetstream.KeyValueConfig{CheckpointBucketConfig(c), LeaseBucketConfig(c)} {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kv); err != nil {
			errs = append(errs, fmt.Errorf("ensure key-value bucket %s: %w", kv.Bucket, err))
		}
	}
	return errors.Join(errs...)
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *slog.Logger) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			// Another replica may have created it in between.
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return ensureStream(ctx, js, want, log)
			}
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		log.Info("created stream", "stream", want.Name, "subjects", want.Subjects, "replicas", want.Replicas)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Storage != want.Storage {
		return fmt.Errorf("stream %s: storage is %s, want %s: JetStream cannot change it in place; move the data with `nats stream backup`/`restore` or delete the stream", want.Name, have.Storage, want.Storage)
	}
	if have.Retention != want.Retention {
		return fmt.Errorf("stream %s: retention is %s, want %s: JetStream cannot change it in place; delete and recreate the stream", want.Name, have.Retention, want.Retention)
	}
	changed := diffStream(have, want)
	if len(changed) == 0 {
		return nil
	}
	upd := have
	upd.Subjects = want.Subjects
	upd.MaxAge = want.MaxAge
	upd.MaxBytes = want.MaxBytes
	upd.MaxMsgs = want.MaxMsgs
	upd.Duplicates = want.Duplicates
	upd.Replicas = want.Replicas
	upd.Discard = want.Discard
	upd.AllowDirect = want.AllowDirect
	upd.Placement = want.Placement
	if _, err := js.UpdateStream(ctx, upd); err != nil {
		return fmt.Errorf("stream %s: update %s: %w", want.Name, strings.Join(changed, ", "), err)
	}
	log.Info("updated stream", "stream", want.Name, "changed", changed)
	return nil
}

// diffStream names the settings vrelay manages that differ.
func diffStream(have, want jetstream.StreamConfig) []string {
	var d []string
	if !slices.Equal(have.Subjects, want.Subjects) {
		d = append(d, fmt.Sprintf("subjects %v→%v", have.Subjects, want.Subjects))
	}
	if have.MaxAge != want.MaxAge {
		d = append(d, fmt.Sprintf("max age %s→%s", have.MaxAge, want.MaxAge))
	}
	if have.MaxBytes != want.MaxBytes {
		d = append(d, fmt.Sprintf("max bytes %d→%d", have.MaxBytes, want.MaxBytes))
	}
	if have.MaxMsgs != want.MaxMsgs {
		d = append(d, fmt.Sprintf("max msgs %d→%d", have.MaxMsgs, want.MaxMsgs))
	}
	if have.Duplicates != want.Duplicates {
		d = append(d, fmt.Sprintf("duplicate window %s→%s", have.Duplicates, want.Duplicates))
	}
	if have.Replicas != want.Replicas {
		d = append(d, fmt.Sprintf("replicas %d→%d", have.Replicas, want.Replicas))
	}
	if have.Discard != want.Discard {
		d = append(d, fmt.Sprintf("discard %s→%s", have.Discard, want.Discard))
	}
	if !samePlacement(have.Placement, want.Placement) {
		d = append(d, fmt.Sprintf("placement %v→%v", have.Placement, want.Placement))
	}
	if have.AllowDirect != want.AllowDirect {
		d = append(d, fmt.Sprintf("allow direct %t→%t", have.AllowDirect, want.AllowDirect))
	}
	return d
}

func samePlacement(a, b *jetstream.Placement) bool {
	if a == nil || b == nil {
		return (a == nil || (a.Cluster == "" && len(a.Tags) == 0)) && (b == nil || (b.Cluster == "" && len(b.Tags) == 0))
	}
	return a.Cluster == b.Cluster && slices.Equal(a.Tags, b.Tags)
}
