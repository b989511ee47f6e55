package eventbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ebapi "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/consumers/eventbridge/pattern"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/streams"
)

// Limits of one PutEvents call.
const (
	// MaxEntries is the most entries one PutEvents call takes.
	MaxEntries = 10
	// MaxSize is the most bytes of entries one PutEvents call takes, and
	// so the largest single entry, as [EntrySize] counts them.
	MaxSize = 256 * 1024
)

// Option configures what code, not the operator, injects into a [Sink].
type Option func(*options)

type options struct {
	logger *slog.Logger
	client *http.Client
}

// WithLogger sets the logger for start-up notes. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithHTTPClient makes the SDK send through c (tests, instrumentation).
// Default: the SDK's client, keeping up to 256 idle connections.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.client = c } }

// Sink puts events on an EventBridge bus. It is safe for concurrent use.
type Sink struct {
	client    *ebapi.Client
	bus       string
	region    string
	subjectDT bool
	pattern   *pattern.Pattern
	timeout   time.Duration
}

// New checks cfg, reads the credentials it names (or sets up the SDK's
// default chain), compiles the pattern and returns a sink. It makes no
// call to AWS. Problems come back as cfgerr field errors relative to the
// sink's configuration.
func New(cfg Config, opts ...Option) (*Sink, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	pt, err := cfg.compilePattern()
	if err != nil {
		return nil, err
	}

	awsCfg := aws.Config{Region: cfg.Region}
	if cr := cfg.Credentials; cr != nil {
		prov, err := staticCredentials(*cr)
		if err != nil {
			return nil, err
		}
		awsCfg.Credentials = prov
	} else {
		// Loads no secret and calls nothing yet: the chain runs at the
		// first PutEvents and caches what it finds.
		awsCfg, err = awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRegion(cfg.Region))
		if err != nil {
			return nil, cfgerr.Newf("credentials", "load the AWS default configuration: %v", err)
		}
		o.logger.Info("eventbridge sink uses the AWS default credential chain", "region", cfg.Region)
	}
	var httpClient ebapi.HTTPClient = o.client
	if o.client == nil {
		httpClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = 256
		})
	}
	client := ebapi.NewFromConfig(awsCfg, func(eo *ebapi.Options) {
		eo.Region = cfg.Region
		// JetStream redelivery is the only retry (STYLE.md §4).
		eo.Retryer = aws.NopRetryer{}
		eo.HTTPClient = httpClient
		if cfg.Endpoint != "" {
			eo.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	return &Sink{
		client:    client,
		bus:       cfg.EventBus,
		region:    cfg.Region,
		subjectDT: cfg.DetailType == DetailTypeSubject,
		pattern:   pt,
		timeout:   cfg.Timeout,
	}, nil
}

func staticCredentials(cr Credentials) (aws.CredentialsProvider, error) {
	var errs []error
	id, err := cr.AccessKeyID.Resolve()
	errs = append(errs, cfgerr.Prefix("credentials.accessKeyId", err))
	key, err := cr.SecretAccessKey.Resolve()
	errs = append(errs, cfgerr.Prefix("credentials.secretAccessKey", err))
	var token string
	if !cr.SessionToken.IsZero() {
		token, err = cr.SessionToken.Resolve()
		errs = append(errs, cfgerr.Prefix("credentials.sessionToken", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return credentials.NewStaticCredentialsProvider(id, key, token), nil
}

// EntryError is an entry that PutEvents refused while accepting the call
// (FailedEntryCount > 0), or that vrelay refused to send.
type EntryError struct {
	Code    string // the entry's ErrorCode, such as "ThrottlingException"
	Message string
}

func (e *EntryError) Error() string {
	if e.Message == "" {
		return "eventbridge entry failed: " + e.Code
	}
	return "eventbridge entry failed: " + e.Code + ": " + e.Message
}

// Entry error codes that a retry may fix. Every other code is permanent.
var retryableEntry = map[string]bool{
	"ThrottlingException": true,
	"InternalFailure":     true,
	"InternalException":   true,
}

// Error codes of a whole call that a retry may fix, whatever its status.
var retryableCall = map[string]bool{
	"ThrottlingException":     true,
	"ThrottledException":      true,
	"TooManyRequests":         true,
	"RequestLimitExceeded":    true,
	"InternalFailure":         true,
	"InternalException":       true,
	"ServiceUnavailable":      true,
	"RequestTimeout":          true,
	"RequestTimeoutException": true,
	// Temporary credentials from the default chain are refreshed before
	// the next attempt.
	"ExpiredTokenException": true,
}

// entry is one event made ready to send.
type entry struct {
	in   ebtypes.PutEventsRequestEntry
	size int
}

// Send puts ev on the bus with one PutEvents call. It returns nil when
// EventBridge accepted it or the pattern did not match it; otherwise an
// error classified as [Sink.SendBatch] describes.
func (s *Sink) Send(ctx context.Context, ev event.Event) error {
	body, _ := consumers.EncodedFromContext(ctx)
	e, skip, err := s.prepare(ev, body)
	if err != nil || skip {
		return err
	}
	errs := make([]error, 1)
	s.put(ctx, []entry{e}, []int{0}, errs)
	return errs[0]
}

// SendBatch puts evs on the bus, in PutEvents calls of at most
// [MaxEntries] entries and [MaxSize] bytes, one attempt each (made
// concurrently), and returns one result per event:
//
//   - nil: accepted, or not matched by the pattern (not sent);
//   - retryable: the call failed in transport, timed out, was throttled or
//     got a 5xx (with [consumers.RetryAfter] when a Retry-After header
//     said when), or the entry failed with ThrottlingException,
//     InternalFailure or InternalException;
//   - [consumers.Permanent]: the call got another 4xx (bad credentials,
//     validation, missing bus), the entry failed with another code (an
//     [EntryError] with its code and message), the entry alone exceeds
//     [MaxSize], or the event cannot be encoded.
func (s *Sink) SendBatch(ctx context.Context, evs []event.Event) []error {
	errs := make([]error, len(evs))
	var (
		chunk   []entry
		idx     []int
		size    int
		chunks  [][]entry
		indexes [][]int
	)
	for i, ev := range evs {
		e, skip, err := s.prepare(ev, nil)
		if err != nil || skip {
			errs[i] = err
			continue
		}
		if len(chunk) == MaxEntries || size+e.size > MaxSize {
			chunks, indexes = append(chunks, chunk), append(indexes, idx)
			chunk, idx, size = nil, nil, 0
		}
		chunk, idx, size = append(chunk, e), append(idx, i), size+e.size
	}
	if len(chunk) > 0 {
		chunks, indexes = append(chunks, chunk), append(indexes, idx)
	}
	if len(chunks) == 1 {
		s.put(ctx, chunks[0], indexes[0], errs)
		return errs
	}
	var wg sync.WaitGroup
	for c := range chunks {
		wg.Go(func() { s.put(ctx, chunks[c], indexes[c], errs) })
	}
	wg.Wait()
	return errs
}

// prepare turns ev into an entry; skip says the pattern does not match it.
// body, when set, is ev's stored structured-mode JSON.
func (s *Sink) prepare(ev event.Event, body []byte) (e entry, skip bool, err error) {
	if body == nil {
		if body, err = streams.MarshalEvent(&ev); err != nil {
			return e, false, consumers.Permanent(fmt.Errorf("encode event %s as JSON: %w", ev.ID(), err))
		}
	}
	detailType := ev.Type()
	if s.subjectDT && ev.Subject() != "" {
		detailType = ev.Subject()
	}
	e.in = ebtypes.PutEventsRequestEntry{
		Source:       aws.String(ev.Source()),
		DetailType:   aws.String(detailType),
		Detail:       aws.String(string(body)),
		EventBusName: aws.String(s.bus),
	}
	if t := ev.Time(); !t.IsZero() {
		e.in.Time = aws.Time(t)
	}
	e.size = EntrySize(e.in)
	if s.pattern != nil {
		ok, err := s.match(e.in, body)
		if err != nil {
			return e, false, consumers.Permanent(fmt.Errorf("match event %s against the pattern: %w", ev.ID(), err))
		}
		if !ok {
			return e, true, nil
		}
	}
	if e.size > MaxSize {
		return e, false, consumers.Permanent(&EntryError{Code: "EntryTooLarge",
			Message: fmt.Sprintf("event %s makes an entry of %d bytes, over the PutEvents limit of %d", ev.ID(), e.size, MaxSize)})
	}
	return e, false, nil
}

// match builds the event as EventBridge would deliver it to a rule and
// matches the pattern against it. The account and the id that AWS assigns
// are not known before sending, so they are absent.
func (s *Sink) match(in ebtypes.PutEventsRequestEntry, body []byte) (bool, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var detail map[string]any
	if err := d.Decode(&detail); err != nil {
		return false, err
	}
	ev := map[string]any{
		"version":     "0",
		"source":      *in.Source,
		"detail-type": *in.DetailType,
		"region":      s.region,
		"resources":   []any{},
		"detail":      detail,
	}
	if in.Time != nil {
		ev["time"] = in.Time.UTC().Format(time.RFC3339)
	}
	return s.pattern.MatchValue(ev), nil
}

// EntrySize is the size of an entry as PutEvents counts it against
// [MaxSize] (AWS, "Calculating PutEvents event entry size"): the UTF-8
// bytes of Source, DetailType, Detail and each resource, plus 14 when Time
// is set. EventBusName is counted too, which errs on the safe side.
func EntrySize(e ebtypes.PutEventsRequestEntry) int {
	n := len(aws.ToString(e.Source)) + len(aws.ToString(e.DetailType)) +
		len(aws.ToString(e.Detail)) + len(aws.ToString(e.EventBusName))
	for _, r := range e.Resources {
		n += len(r)
	}
	if e.Time != nil {
		n += 14
	}
	return n
}

// put makes one PutEvents call for entries and writes each result to
// errs at the index idx gives it.
func (s *Sink) put(ctx context.Context, entries []entry, idx []int, errs []error) {
	fail := func(err error) {
		for _, i := range idx {
			errs[i] = err
		}
	}
	if err := ctx.Err(); err != nil {
		fail(fmt.Errorf("eventbridge put events: %w", err))
		return
	}
	in := &ebapi.PutEventsInput{Entries: make([]ebtypes.PutEventsRequestEntry, len(entries))}
	for i, e := range entries {
		in.Entries[i] = e.in
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	out, err := s.client.PutEvents(callCtx, in)
	if err != nil {
		fail(classify(ctx, err))
		return
	}
	if len(out.Entries) != len(entries) {
		fail(fmt.Errorf("eventbridge put events: %d results for %d entries", len(out.Entries), len(entries)))
		return
	}
	for k, r := range out.Entries {
		code := aws.ToString(r.ErrorCode)
		if code == "" {
			continue
		}
		err := error(&EntryError{Code: code, Message: aws.ToString(r.ErrorMessage)})
		if !retryableEntry[code] {
			err = consumers.Permanent(err)
		}
		errs[idx[k]] = err
	}
}

// classify turns a failed PutEvents call into a retryable or permanent
// error (STYLE.md §4).
func classify(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("eventbridge put events: %w", cerr)
	}
	wrapped := fmt.Errorf("eventbridge put events: %w", err)
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil || re.HTTPStatusCode() == 0 {
		return wrapped // transport error, timeout: retryable
	}
	status := re.HTTPStatusCode()
	var api smithy.APIError
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	if retryableCall[code] || status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests {
		if d, ok := retryAfter(re.Response.Header.Get("Retry-After")); ok {
			return consumers.RetryAfter(wrapped, d)
		}
		return wrapped
	}
	return consumers.Permanent(wrapped)
}

func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	// 0, a past date or an unreadable value is ignored, as in httpsink.
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil && time.Until(t) > 0 {
		return time.Until(t), true
	}
	return 0, false
}
