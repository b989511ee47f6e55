package consumers

import (
	"errors"
	"time"

	"github.com/vrelay/vrelay/internal/cfgerr"
)

// Delivery is a route's delivery policy: the `delivery` section of a route.
type Delivery struct {
	// MaxInFlight is how many events the route sends at once. Default 16.
	MaxInFlight int `yaml:"maxInFlight"`
	// MaxAttempts is how many times an event is sent before a retryable
	// failure sends it to the dead-letter stream. Default 20: with the
	// default backoff the 20th attempt comes 30 to 60 minutes (typically
	// about 45) after the first.
	MaxAttempts int `yaml:"maxAttempts"`
	// SendTimeout bounds one delivery attempt. Default "30s"; must be shorter
	// than AckWait.
	SendTimeout time.Duration `yaml:"sendTimeout"`
	// AckWait is how long JetStream waits for an answer before it hands the
	// event to another vrelay replica. Default "60s".
	AckWait time.Duration `yaml:"ackWait"`
	// Backoff spaces retries of retryable failures.
	Backoff Backoff `yaml:"backoff"`
	// MaxAckPending caps the events that are sent, waiting to be retried or
	// being retried across all replicas; beyond it the route waits, which
	// keeps a broken sink from pulling the whole stream into retry.
	// Default 1000 (at least 4 × maxInFlight).
	MaxAckPending int `yaml:"maxAckPending"`
	// MaxBatch is how many events the route hands its sink in one request.
	// Default 1: one event per send. Above 1 the sink must send batches (a
	// [BatchSink], such as EventBridge's PutEvents); each event is still
	// acked, retried or dead-lettered on its own result. From 1 to 1000, and
	// at most maxAckPending.
	MaxBatch int `yaml:"maxBatch"`
	// BatchWait is how long a batch may wait to fill after its first event
	// before it is sent as it is. It applies only when MaxBatch is above 1.
	// Default "50ms": a short pause costs little latency and, under load,
	// batches fill long before it ends. Must be positive, and shorter than
	// sendTimeout when MaxBatch is above 1: the wait runs on the ack wait of
	// the batch's first event.
	BatchWait time.Duration `yaml:"batchWait"`
	// StartAt says where a new route starts reading: "new" (events stored
	// from now on, the default), "all" (everything the stream still holds),
	// an RFC 3339 time ("2026-11-27T08:00:00Z"), a duration that reaches back
	// from when the consumer is created ("90m", "2h", or whole days: "7d"),
	// or "seq:N" (stream sequence N on). It applies only when the route's
	// durable consumer is created; a route that exists resumes where it
	// stopped, whatever StartAt says then (`vrelay route replay` sends older
	// events again).
	StartAt string `yaml:"startAt"`
	// OrderBy, when set, delivers the events of one key one at a time, in
	// stream order, and events of different keys in parallel up to
	// maxInFlight. It is an expr-lang expression over the CloudEvent, in the
	// environment of route filters (docs/filters.md), such as
	// `data.Vm.Vm.Value` or `subject`; its value (string, number or bool)
	// is the key. The empty string orders the whole route. Events whose key
	// is nil, of another type, or fails to evaluate share one default
	// key. A failing event holds back only its own key: it is retried in
	// place, never overtaken. Unset by default: no order. Not with maxBatch
	// above 1. See docs/delivery.md, "Ordered delivery".
	OrderBy *string `yaml:"orderBy"`
	// RateLimit, if set, caps the events per second the route sends, across
	// all its workers. Default: no limit.
	RateLimit *RateLimit `yaml:"rateLimit"`
}

// Backoff is exponential with jitter: attempt n waits a random time between
// half and all of min(Initial × 2^(n-1), Max). A sink's Retry-After is
// honoured up to Max.
type Backoff struct {
	// Initial is the pause after the first failure. Default "1s".
	Initial time.Duration `yaml:"initial"`
	// Max caps the pause and a sink's Retry-After. Default "5m".
	Max time.Duration `yaml:"max"`
}

// Values of [Delivery.StartAt].
const (
	StartAtNew = "new"
	StartAtAll = "all"
)

// SetDefaults fills unset fields with their defaults.
func (d *Delivery) SetDefaults() {
	if d.MaxInFlight == 0 {
		d.MaxInFlight = 16
	}
	if d.MaxAttempts == 0 {
		d.MaxAttempts = 20
	}
	if d.SendTimeout == 0 {
		d.SendTimeout = 30 * time.Second
	}
	if d.AckWait == 0 {
		d.AckWait = 60 * time.Second
		if d.AckWait <= d.SendTimeout {
			d.AckWait = 2 * d.SendTimeout
		}
	}
	if d.Backoff.Initial == 0 {
		d.Backoff.Initial = time.Second
	}
	if d.Backoff.Max == 0 {
		d.Backoff.Max = 5 * time.Minute
	}
	if d.MaxAckPending == 0 {
		d.MaxAckPending = max(1000, 4*d.MaxInFlight)
	}
	if d.StartAt == "" {
		d.StartAt = StartAtNew
	}
	if d.MaxBatch == 0 {
		d.MaxBatch = 1
	}
	if d.BatchWait == 0 {
		d.BatchWait = DefaultBatchWait
	}
	d.RateLimit.setDefaults()
}

// DefaultBatchWait is the default of [Delivery.BatchWait].
const DefaultBatchWait = 50 * time.Millisecond

// Validate reports every problem at once, with paths relative to the section.
func (d Delivery) Validate() error {
	var errs []error
	if d.MaxInFlight < 1 || d.MaxInFlight > 4096 {
		errs = append(errs, cfgerr.New("maxInFlight", "must be between 1 and 4096"))
	}
	if d.MaxAttempts < 1 {
		errs = append(errs, cfgerr.New("maxAttempts", "must be at least 1"))
	}
	if d.SendTimeout <= 0 {
		errs = append(errs, cfgerr.New("sendTimeout", "must be positive"))
	}
	if d.AckWait <= d.SendTimeout {
		errs = append(errs, cfgerr.Newf("ackWait", "must be longer than sendTimeout (%s), or JetStream redelivers events still being sent", d.SendTimeout))
	}
	if d.Backoff.Initial <= 0 {
		errs = append(errs, cfgerr.New("backoff.initial", "must be positive"))
	}
	if d.Backoff.Max < d.Backoff.Initial {
		errs = append(errs, cfgerr.New("backoff.max", "must not be shorter than backoff.initial"))
	}
	if d.MaxAckPending < d.MaxInFlight {
		errs = append(errs, cfgerr.New("maxAckPending", "must be at least maxInFlight"))
	}
	if d.MaxBatch < 1 || d.MaxBatch > 1000 {
		errs = append(errs, cfgerr.New("maxBatch", "must be between 1 and 1000"))
	} else if d.MaxBatch > d.MaxAckPending {
		errs = append(errs, cfgerr.Newf("maxBatch", "must not exceed maxAckPending (%d), or a batch can never fill", d.MaxAckPending))
	}
	if d.BatchWait <= 0 {
		errs = append(errs, cfgerr.New("batchWait", "must be positive"))
	} else if d.MaxBatch > 1 && d.BatchWait >= d.SendTimeout {
		errs = append(errs, cfgerr.Newf("batchWait", "must be shorter than sendTimeout (%s)", d.SendTimeout))
	}
	if d.OrderBy != nil && d.MaxBatch > 1 {
		errs = append(errs, cfgerr.New("orderBy", "cannot be combined with maxBatch above 1: a batch is sent and retried as a whole, out of key order; set maxBatch to 1 or remove orderBy"))
	}
	if _, err := parseStartAt(d.StartAt); err != nil {
		errs = append(errs, cfgerr.New("startAt", err.Error()))
	}
	errs = append(errs, cfgerr.Prefix("rateLimit", d.RateLimit.validate(d)))
	return errors.Join(errs...)
}
