package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/streams"
)

const (
	// MaxLast is the most events "last" may ask for.
	MaxLast = 1000
	// MaxScan is how many stored events, at most, a filtered "last N" reads
	// back to find N matches.
	MaxScan = 10000
	// MaxSources is how many sources one stream may name.
	MaxSources = 100
	// writeWindow is how long one write to an event stream may take; the
	// deadline moves with every write, so the listener's write timeout
	// does not end a stream that is still read.
	writeWindow = 30 * time.Second
	// keepAlive is how often an idle stream sends a comment, so that
	// proxies and the browser see it alive.
	keepAlive = 15 * time.Second
)

// streamRequest is what GET /ui/api/events asks for.
type streamRequest struct {
	filter   *filters.Filter
	subjects []string
	last     int
	after    uint64
}

// filterError is the body of a 400 for a filter that does not compile.
type filterError struct {
	Error   string `json:"error"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message,omitempty"`
	Snippet string `json:"snippet,omitempty"`
}

// compileFilter compiles src; "" (or blank) is no filter.
func compileFilter(src string) (*filters.Filter, *filterError) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	f, err := filters.Compile(src)
	if err == nil {
		return f, nil
	}
	fe := &filterError{Error: "filter: " + err.Error(), Message: err.Error()}
	var ce *filters.CompileError
	if errors.As(err, &ce) {
		fe.Line, fe.Column, fe.Message, fe.Snippet = ce.Line, ce.Column, ce.Message, ce.Snippet
	}
	return nil, fe
}

func (v *Viewer) checkFilter(w http.ResponseWriter, r *http.Request) {
	if _, fe := compileFilter(r.URL.Query().Get("filter")); fe != nil {
		writeJSON(w, http.StatusBadRequest, fe)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// parseStream reads the query; a non-nil error is the 400 body.
func (v *Viewer) parseStream(r *http.Request) (streamRequest, any) {
	q := r.URL.Query()
	var req streamRequest
	f, fe := compileFilter(q.Get("filter"))
	if fe != nil {
		return req, fe
	}
	req.filter = f
	seen := map[string]bool{}
	for _, s := range strings.Split(q.Get("sources"), ",") {
		if s = strings.TrimSpace(s); s == "" || seen[s] {
			continue // JetStream refuses overlapping filter subjects
		}
		seen[s] = true
		if len(seen) > MaxSources {
			return req, map[string]string{"error": fmt.Sprintf("sources: at most %d", MaxSources)}
		}
		provider, source, ok := strings.Cut(s, ".")
		if !ok || !validToken(provider) || !validToken(source) {
			return req, map[string]string{"error": fmt.Sprintf("sources: %q is not <provider>.<source>", s)}
		}
		req.subjects = append(req.subjects, v.o.root+"."+provider+"."+source+".>")
	}
	if len(req.subjects) == 0 {
		req.subjects = []string{v.o.root + ".>"}
	}
	if s := q.Get("last"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxLast {
			return req, map[string]string{"error": fmt.Sprintf("last: want a number from 0 to %d", MaxLast)}
		}
		req.last = n
	}
	after := q.Get("after")
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		after = id // an EventSource reconnecting: go on after what it had
	}
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			return req, map[string]string{"error": "after: want a stream sequence"}
		}
		req.after = n
	}
	return req, nil
}

// validToken reports whether s is one subject token: the provider and
// source names of the subject scheme, never a wildcard.
func validToken(s string) bool {
	return s != "" && streams.Token(s) == s
}

// streamEvent is the data of one "event: event".
type streamEvent struct {
	Seq      uint64          `json:"seq"`
	Subject  string          `json:"subject"`
	Provider string          `json:"provider"`
	Source   string          `json:"source"`
	Stored   time.Time       `json:"stored"`
	Event    json.RawMessage `json:"event,omitempty"`
	// Raw holds a body that is not JSON, as text.
	Raw string `json:"raw,omitempty"`
}

// events serves GET /ui/api/events: see the package documentation.
func (v *Viewer) events(w http.ResponseWriter, r *http.Request) {
	req, bad := v.parseStream(r)
	if bad != nil {
		writeJSON(w, http.StatusBadRequest, bad)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-v.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	start, backlog, scan, err := v.startAt(ctx, req)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: req.subjects, DeliverPolicy: jetstream.DeliverNewPolicy}
	if start > 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	c, err := v.js.OrderedConsumer(ctx, streams.EventStream, occ)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("read %s: %v", streams.EventStream, err))
		return
	}
	it, err := c.Messages()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("read %s: %v", streams.EventStream, err))
		return
	}
	msgs := make(chan jetstream.Msg)
	pumpDone := make(chan error, 1)
	go func() { pumpDone <- pump(ctx, it, msgs) }()
	defer func() { it.Stop(); cancel(); <-pumpDone }()

	rc := http.NewResponseController(w)
	// The request is read: the listener's read timeout no longer applies.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: rc}
	if err := s.comment("vrelay events"); err != nil {
		return
	}

	out := newSelector(req, backlog, scan)
	if backlog == 0 {
		if s.send("ready", "", []byte(`{"backlog":0}`)) != nil {
			return
		}
	}
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	var lastFilterErr time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-pumpDone:
			pumpDone <- err // for the deferred wait
			if ctx.Err() == nil {
				_ = s.send("stream_error", "", mustJSON(map[string]string{"error": err.Error()}))
			}
			return
		case <-ping.C:
			if s.comment("ping") != nil {
				return
			}
		case m := <-msgs:
			ready, ferr := out.add(m)
			if ferr != nil && time.Since(lastFilterErr) > 5*time.Second {
				lastFilterErr = time.Now()
				if s.send("filter_error", "", mustJSON(map[string]string{"error": ferr.Error()})) != nil {
					return
				}
			}
			for _, ev := range out.take() {
				if s.send("event", strconv.FormatUint(ev.Seq, 10), mustJSON(ev)) != nil {
					return
				}
			}
			if ready {
				if s.send("ready", "", mustJSON(map[string]int{"backlog": backlog})) != nil {
					return
				}
			}
		}
	}
}

// pump hands each message of it to out until ctx is done or it fails.
func pump(ctx context.Context, it jetstream.MessagesContext, out chan<- jetstream.Msg) error {
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// selector applies the filter and holds back the backlog: of its first
// `backlog` messages it looks at the last `scan` only, and sends the last
// `keep` matches among them once all are in.
type selector struct {
	filter  *filters.Filter
	backlog int
	scan    int
	keep    int
	seen    int
	ring    []streamEvent
	ready   []streamEvent
}

func newSelector(req streamRequest, backlog, scan int) *selector {
	return &selector{filter: req.filter, backlog: backlog, scan: scan, keep: req.last}
}

// add takes one message; it returns true when it ended the backlog, and
// the filter's error on it, if any.
func (s *selector) add(m jetstream.Msg) (backlogDone bool, ferr error) {
	s.seen++
	if s.seen > s.backlog {
		ev, ok, ferr := s.match(m)
		if ok {
			s.ready = append(s.ready, ev)
		}
		return false, ferr
	}
	if s.seen > s.backlog-s.scan {
		ev, ok, err := s.match(m)
		ferr = err
		if ok {
			s.ring = append(s.ring, ev)
			if len(s.ring) > s.keep {
				s.ring = s.ring[1:]
			}
		}
	}
	// The backlog ends with its count, or earlier when events of it aged
	// out of the stream while it was read: nothing else is stored yet.
	if meta, err := m.Metadata(); s.seen == s.backlog || (err == nil && meta.NumPending == 0) {
		s.ready, s.ring = s.ring, nil
		s.backlog = s.seen
		return true, ferr
	}
	return false, ferr
}

func (s *selector) take() []streamEvent {
	out := s.ready
	s.ready = nil
	return out
}

func (s *selector) match(m jetstream.Msg) (streamEvent, bool, error) {
	ev := streamEvent{Subject: m.Subject()}
	if meta, err := m.Metadata(); err == nil {
		ev.Seq, ev.Stored = meta.Sequence.Stream, meta.Timestamp.UTC()
	}
	// <root>.<provider>.<source>.<type>; the root may hold dots of its own.
	if parts := strings.Split(m.Subject(), "."); len(parts) >= 3 {
		ev.Provider, ev.Source = parts[len(parts)-3], parts[len(parts)-2]
	}
	if json.Valid(m.Data()) {
		ev.Event = m.Data()
	} else {
		ev.Raw = string(m.Data())
	}
	if s.filter == nil {
		return ev, true, nil
	}
	ce, err := streams.Decode(m.Data())
	if err != nil {
		return ev, false, fmt.Errorf("event %d: %w", ev.Seq, err)
	}
	ok, err := s.filter.Match(ce)
	if err != nil {
		return ev, false, fmt.Errorf("event %d (%s): %w", ev.Seq, ce.ID(), err)
	}
	return ev, ok, nil
}

// startAt returns where the stream of req starts (0: new events only),
// how many stored events it reads back (the backlog), and how many of
// the last of those the filter looks at.
func (v *Viewer) startAt(ctx context.Context, req streamRequest) (start uint64, backlog, scan int, err error) {
	if req.after > 0 {
		return req.after + 1, 0, 0, nil
	}
	if req.last == 0 {
		return 0, 0, 0, nil
	}
	want := req.last
	if req.filter != nil {
		want = MaxScan
	}
	s, err := v.js.Stream(ctx, streams.EventStream)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("open %s: %w", streams.EventStream, err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return 0, 0, 0, nil
	}
	// Widen a window back from the last sequence until it holds want
	// events of the chosen subjects, or the whole stream; the selector
	// drops what it holds beyond want.
	for w := uint64(want); ; w *= 4 {
		from := st.FirstSeq
		if st.LastSeq >= from+w {
			from = st.LastSeq - w + 1
		}
		n, err := v.countFrom(ctx, s, req.subjects, from)
		if err != nil {
			return 0, 0, 0, err
		}
		if n >= want || from == st.FirstSeq {
			if n == 0 {
				return 0, 0, 0, nil
			}
			return from, n, want, nil
		}
	}
}

// countFrom counts the events on subjects from sequence from on, with a
// short-lived consumer that receives nothing.
func (v *Viewer) countFrom(ctx context.Context, s jetstream.Stream, subjects []string, from uint64) (int, error) {
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubjects:    subjects,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	n := int(c.CachedInfo().NumPending)
	_ = s.DeleteConsumer(ctx, c.CachedInfo().Name)
	return n, nil
}

// sse writes Server-Sent Events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sse) write(b []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeWindow))
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// send writes one event; data must be one line (compact JSON is).
func (s *sse) send(name, id string, data []byte) error {
	var b []byte
	if id != "" {
		b = append(b, "id: "+id+"\n"...)
	}
	b = append(b, "event: "+name+"\ndata: "...)
	b = append(b, data...)
	b = append(b, "\n\n"...)
	return s.write(b)
}

func (s *sse) comment(text string) error { return s.write([]byte(": " + text + "\n\n")) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}
