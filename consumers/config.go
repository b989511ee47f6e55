package consumers

import (
	"errors"
	"time"

	"github.com/vrelay/vrelay/internal/cfgerr"
)

// Delivery is a route's delivery policy: the `delivery` section of a route.
type Delivery struct {
	// MaxInFlight is how many events this route sends at once, in each
	// vrelay process. From 1 to 4096. Default `16`.
	MaxInFlight int `yaml:"maxInFlight"`
	// MaxAttempts is how many times an event is sent before a retryable
	// failure sends it to the dead-letter stream. `1` means no retry. A
	// permanent failure goes to the dead-letter stream at once, whatever
	// this says. At least 1. With the default backoff the 20th attempt comes
	// 30 to 60 minutes (typically about 45) after the first. Default `20`.
	MaxAttempts int `yaml:"maxAttempts"`
	// SendTimeout bounds one attempt, whatever the sink. Must be positive
	// and shorter than `ackWait`. Default "30s".
	SendTimeout time.Duration `yaml:"sendTimeout"`
	// AckWait is how long JetStream waits for vrelay to finish an event
	// before it hands the event out again, to this or another vrelay
	// replica. vrelay reports progress on slow sends, so a send that is
	// still running is not handed out. Must be longer than `sendTimeout`.
	// Default `60s`, or twice `sendTimeout` if `sendTimeout` is 60s or more.
	AckWait time.Duration `yaml:"ackWait"`
	// Backoff spaces retries of retryable failures.
	Backoff Backoff `yaml:"backoff"`
	// MaxAckPending is how many events of this route may be unfinished at
	// once, across all vrelay replicas: being sent, waiting in a local
	// buffer, or waiting for a retry. When the limit is reached, JetStream
	// delivers no more events to the route until some are finished. This
	// keeps a broken sink from pulling the whole stream into retry. At least
	// `maxInFlight`. Default `1000`, or 4 × `maxInFlight` if that is larger.
	MaxAckPending int `yaml:"maxAckPending"`
	// MaxBatch is how many events the route hands its sink in one request.
	// `1` sends each event on its own. Above 1 the sink must send batches
	// (implement BatchSink, as EventBridge's PutEvents does; a sink that
	// sends one event per request, such as `http`, is refused by `vrelay
	// validate` and at start-up, naming the route); `log` writes a batch in
	// one write. Each event of a batch is still acked, retried or
	// dead-lettered on its own result. From 1 to 1000, and at most
	// `maxAckPending`. Default `1`.
	MaxBatch int `yaml:"maxBatch"`
	// BatchWait is how long a batch may wait to fill after its first event
	// before it is sent as it is: a short pause costs little latency and,
	// under load, batches fill long before it ends. Only used when
	// `maxBatch` is above 1; then it must be shorter than `sendTimeout`,
	// since the wait runs on the ack wait of the batch's first event. Must
	// be positive. Default "50ms".
	BatchWait time.Duration `yaml:"batchWait"`
	// StartAt is where a new route starts reading: `new` (events stored from
	// now on), `all` (everything the event stream still holds), an RFC 3339
	// time such as `2026-11-27T08:00:00Z` (events stored from then on), a
	// duration such as `90m`, `2h` or `7d` (whole days) that reaches back
	// from when the consumer is created, or `seq:N` (from stream sequence N
	// on). It applies only when the route's durable consumer is created. An
	// existing route always resumes where it stopped, whatever this says;
	// vrelay logs at info that it keeps the position. To deliver older
	// events again, use `vrelay route replay`. See
	// [delivery.md](delivery.md#start-positions). Default "new".
	StartAt string `yaml:"startAt"`
	// OrderBy, when set, delivers the events of one key one at a time, in
	// stream order, and different keys in parallel up to `maxInFlight`. It
	// is an expression in the filter language ([filters.md](filters.md)),
	// over the CloudEvent, whose value (string, number or bool) is the key,
	// such as `data.Vm.Vm.Value` or `subject`; `""` orders the whole route.
	// Events whose key is nil, of another type, or fails to evaluate share
	// one default lane. A failing event holds back only its own key: it is
	// retried in place, never overtaken. Not with `maxBatch` above 1. See
	// [delivery.md](delivery.md#ordered-delivery). Default: unset, no order.
	OrderBy *string `yaml:"orderBy"`
	// RateLimit, if set, caps the events per second the route sends, in
	// each vrelay process, shared by all its workers. Default: no limit.
	RateLimit *RateLimit `yaml:"rateLimit"`
}

// Backoff is exponential with jitter: attempt n waits a random time between
// half and all of min(Initial × 2^(n-1), Max). A sink's Retry-After is
// honoured up to Max.
type Backoff struct {
	// Initial is the pause after the first failed attempt. Must be
	// positive. Default "1s".
	Initial time.Duration `yaml:"initial"`
	// Max is the longest pause, and the cap on a receiver's `Retry-After`.
	// Must not be shorter than `backoff.initial`. Default "5m".
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
