package logsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/eventline"
)

// Outputs a Config may name.
const (
	OutputStdout = "stdout"
	OutputStderr = "stderr"
)

// Formats a Config may name.
const (
	FormatJSON = "json"
	FormatLine = "line"
)

// Config is the operator's configuration of a log sink.
//
//	output: stderr
//	format: line
type Config struct {
	// Output is the stream events are written to: "stdout" or "stderr".
	// vrelay writes its own log to stderr, so the default keeps events and
	// log records apart. Default "stdout".
	Output string `yaml:"output"`
	// Format is how each event is written: "json", the whole
	// structured-mode CloudEvent as one JSON line, for programs reading the
	// stream; or "line", one short readable line (time, type, source,
	// vm=/host=/user=/machine=, message) without colour, for people
	// watching. Default "json".
	Format string `yaml:"format"`
}

// SetDefaults fills unset fields with their defaults; [New] calls it.
func (c *Config) SetDefaults() {
	if c.Output == "" {
		c.Output = OutputStdout
	}
	if c.Format == "" {
		c.Format = FormatJSON
	}
}

// Validate reports every problem with c, as cfgerr field errors relative to
// the sink ("output", "format").
func (c Config) Validate() error {
	var errs []error
	switch c.Output {
	case "", OutputStdout, OutputStderr:
	default:
		errs = append(errs, cfgerr.Newf("output", "got %q, want %q or %q", c.Output, OutputStdout, OutputStderr))
	}
	switch c.Format {
	case "", FormatJSON, FormatLine:
	default:
		errs = append(errs, cfgerr.Newf("format", "got %q, want %q or %q", c.Format, FormatJSON, FormatLine))
	}
	return errors.Join(errs...)
}

// Option configures what code, not the operator, injects into a [Sink].
type Option func(*options)

type options struct {
	w io.Writer
}

// WithWriter makes the sink write to w instead of Config.Output. Each line
// reaches w in a single Write call, one call at a time.
func WithWriter(w io.Writer) Option {
	return func(o *options) { o.w = w }
}

// Sink writes one line per event: JSON or readable, as Config.Format says.
// It is safe for concurrent use.
type Sink struct {
	mu     sync.Mutex // serialises writes so lines never interleave
	w      io.Writer
	encode func(dst []byte, ev *event.Event) ([]byte, error)
}

// New checks cfg and returns a sink writing to the stream it names, or to
// the writer given by [WithWriter].
func New(cfg Config, opts ...Option) (*Sink, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.w == nil {
		o.w = os.Stdout
		if cfg.Output == OutputStderr {
			o.w = os.Stderr
		}
	}
	encode := encodeJSON
	if cfg.Format == FormatLine {
		encode = encodeLine
	}
	return &Sink{w: o.w, encode: encode}, nil
}

// encodeJSON appends the structured-mode JSON of ev and a newline to dst.
func encodeJSON(dst []byte, ev *event.Event) ([]byte, error) {
	b, err := format.JSON.Marshal(ev)
	if err != nil {
		return dst, err
	}
	return append(append(dst, b...), '\n'), nil
}

// encodeLine appends the readable line of ev and a newline to dst. The
// sink does not see the subject, so the source column is the host of the
// CloudEvent source.
func encodeLine(dst []byte, ev *event.Event) ([]byte, error) {
	return append(eventline.Style{}.Append(dst, ev, ""), '\n'), nil
}

// Send writes ev as one line. An event that cannot
// be encoded is [consumers.Permanent]; a failed write is retryable. If ctx
// is already done, Send writes nothing and returns its error.
func (s *Sink) Send(ctx context.Context, ev event.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	line, err := s.encode(nil, &ev)
	if err != nil {
		return consumers.Permanent(fmt.Errorf("encode event %s: %w", ev.ID(), err))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(line); err != nil {
		return fmt.Errorf("write event %s: %w", ev.ID(), err)
	}
	return nil
}

// SendBatch writes the events of evs as lines in one Write call, under the
// same lock as Send. An event that cannot be encoded gets a
// [consumers.Permanent] error and is left out; the others are written in
// order. If the write fails part way, the events whose lines were written
// in full are delivered (nil) and the rest get a retryable error: a retry
// writes them again, after a line the writer may have cut. If ctx is
// already done, SendBatch writes nothing and returns its error for each
// event.
func (s *Sink) SendBatch(ctx context.Context, evs []event.Event) []error {
	errs := make([]error, len(evs))
	if err := ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	// ends[i] is where the line of evs[i] ends in buf, or -1 if it has none.
	ends := make([]int, len(evs))
	var buf []byte
	for i := range evs {
		b, err := s.encode(buf, &evs[i])
		if err != nil {
			errs[i] = consumers.Permanent(fmt.Errorf("encode event %s: %w", evs[i].ID(), err))
			ends[i] = -1
			continue
		}
		buf = b
		ends[i] = len(buf)
	}
	if len(buf) == 0 {
		return errs
	}

	s.mu.Lock()
	n, err := s.w.Write(buf)
	s.mu.Unlock()
	if err == nil && n < len(buf) {
		err = io.ErrShortWrite
	}
	if err == nil {
		return errs
	}
	for i, end := range ends {
		if end > n {
			errs[i] = fmt.Errorf("write event %s: %w", evs[i].ID(), err)
		}
	}
	return errs
}
