// Package deadletter reads, replays and purges the dead-letter stream
// streams.DLQStream, where each route puts the events it could not deliver,
// one subject per route (`vrelay.dlq.<route>`). It reads letters with the
// one dead-letter codec, [streams.ParseDeadLetter]; the `vrelay dlq`
// commands are built on it.
//
// Replaying a dead letter sends its event back to the route it failed on,
// and to no other: [Replay] publishes the event (body and Ce-* headers, with
// its origin) on the route's replay subject `vrelay.replay.<route>` in the
// replay stream streams.ReplayStream, which only that route's consumer
// reads, and deletes the dead letter once the replay stream stored it. The
// event stream gets no copy, so `nats stream view VMWARE_EVENTS` shows each
// event once. A replay has its own Nats-Msg-Id (`replay:<route>:<dlq
// sequence>`), so running the same replay twice within the replay stream's
// duplicate window stores it once. Should the route fail again, the event
// becomes a new dead letter that still names its first storage.
//
//	letters, err := deadletter.List(ctx, js, deadletter.Selector{Route: "vm-on"}, 100)
//	done, err := deadletter.Replay(ctx, js, deadletter.Selector{Route: "vm-on"})
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/streams"
)

// Letter is one message of the dead-letter stream.
type Letter struct {
	// DeadLetter is what the route recorded: route, reason, failure kind,
	// attempts, failure time and where the event was first stored. For a
	// message that vrelay did not write its fields are zero or partial,
	// and [Letter.Check] says why it cannot be replayed.
	streams.DeadLetter
	// Sequence is its sequence in the dead-letter stream, the handle for
	// show, replay and purge.
	Sequence uint64
	// EventID and EventType are the CloudEvent's, from its Ce-* headers.
	EventID   string
	EventType string
	// Header and Data are the stored message.
	Header nats.Header
	Data   []byte
}

// Check returns nil if the letter can be replayed, and otherwise an error
// that wraps [streams.ErrNotDeadLetter]: it lacks the route or origin
// headers a replay needs.
func (l Letter) Check() error {
	if _, err := streams.ParseDeadLetter(l.Header); err != nil {
		return fmt.Errorf("dead letter %d: %w", l.Sequence, err)
	}
	return nil
}

// Selector chooses dead letters. Zero fields select everything.
type Selector struct {
	// Route limits to one route's dead letters.
	Route string
	// Sequences limits to these dead-letter sequences.
	Sequences []uint64
}

func (s Selector) subject() string {
	if s.Route == "" {
		return streams.DLQPrefix + ">"
	}
	return streams.DLQSubject(s.Route)
}

func (s Selector) match(seq uint64) bool {
	if len(s.Sequences) == 0 {
		return true
	}
	for _, q := range s.Sequences {
		if q == seq {
			return true
		}
	}
	return false
}

// List returns the selected dead letters, oldest first, reading at most
// limit of them (0: no limit).
func List(ctx context.Context, js jetstream.JetStream, sel Selector, limit int) ([]Letter, error) {
	var out []Letter
	err := each(ctx, js, sel, func(l Letter) bool {
		out = append(out, l)
		return limit == 0 || len(out) < limit
	})
	return out, err
}

// Count returns how many dead letters sel selects, however many [List]
// would return: with sel.Sequences, those of them that exist on the
// route's subject (or any route's); without, the number the stream holds
// on that subject, from the stream's per-subject counts, so counting does
// not read the letters.
func Count(ctx context.Context, js jetstream.JetStream, sel Selector) (int, error) {
	if len(sel.Sequences) > 0 {
		n := 0
		err := each(ctx, js, sel, func(Letter) bool { n++; return true })
		return n, err
	}
	s, err := js.Stream(ctx, streams.DLQStream)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", streams.DLQStream, err)
	}
	return count(ctx, s, sel.subject())
}

// Get returns one dead letter by sequence.
func Get(ctx context.Context, js jetstream.JetStream, seq uint64) (Letter, error) {
	s, err := js.Stream(ctx, streams.DLQStream)
	if err != nil {
		return Letter{}, fmt.Errorf("open %s: %w", streams.DLQStream, err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return Letter{}, fmt.Errorf("get dead letter %d: %w", seq, err)
	}
	return letter(raw.Sequence, raw.Header, raw.Data), nil
}

// ReplayOption changes how [Replay] works.
type ReplayOption func(*replayOptions)

type replayOptions struct {
	progress func(done int)
}

// WithProgress has [Replay] call fn after each dead letter it replayed and
// deleted, with the number done so far, for a progress display.
func WithProgress(fn func(done int)) ReplayOption {
	return func(o *replayOptions) { o.progress = fn }
}

// Replayed is one dead letter that [Replay] sent back to its route.
type Replayed struct {
	// Sequence was the dead letter's sequence in the dead-letter stream.
	Sequence uint64
	// Route is the route it failed on, the only one that delivers it again.
	Route string
	// Subject is where the replay stream holds it: `vrelay.replay.<route>`.
	Subject string
	// ReplaySequence is its sequence in the replay stream.
	ReplaySequence uint64
	// Duplicate is set when an earlier replay of the same dead letter,
	// which stopped before deleting it, had stored it already: the replay
	// stream kept that one.
	Duplicate bool
}

// Replay sends the selected dead letters back to the route each failed on:
// it stores each in the replay stream (see the package documentation) and
// then deletes it from the dead-letter stream. It returns what it replayed,
// in order; on error, those are done and the rest are untouched.
//
// Before storing anything, Replay checks every selected letter: if one is
// not a vrelay dead letter (no route or origin headers, see
// [Letter.Check]), it replays and deletes nothing and returns an error
// that wraps [streams.ErrNotDeadLetter] and names the letters. If the
// replay stream does not exist (vrelay before 0.2 created none), it
// replays nothing either.
func Replay(ctx context.Context, js jetstream.JetStream, sel Selector, opts ...ReplayOption) ([]Replayed, error) {
	var o replayOptions
	for _, opt := range opts {
		opt(&o)
	}
	letters, err := List(ctx, js, sel, 0)
	if err != nil {
		return nil, err
	}
	if err := checkAll(letters); err != nil {
		return nil, err
	}
	if len(letters) == 0 {
		return nil, nil
	}
	if _, err := js.Stream(ctx, streams.ReplayStream); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("stream %s does not exist: start vrelay run once to create it, then replay again; nothing was replayed", streams.ReplayStream)
		}
		return nil, fmt.Errorf("open %s: %w", streams.ReplayStream, err)
	}
	dlq, err := js.Stream(ctx, streams.DLQStream)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", streams.DLQStream, err)
	}
	done := make([]Replayed, 0, len(letters))
	for _, l := range letters {
		m := l.ReplayMsg(l.Sequence, l.Data, l.Header)
		ack, err := js.PublishMsg(ctx, m, jetstream.WithExpectStream(streams.ReplayStream))
		if err != nil {
			return done, fmt.Errorf("replay dead letter %d: %w", l.Sequence, err)
		}
		done = append(done, Replayed{Sequence: l.Sequence, Route: l.Route, Subject: m.Subject,
			ReplaySequence: ack.Sequence, Duplicate: ack.Duplicate})
		if err := deleteLetter(ctx, dlq, l.Sequence); err != nil {
			return done, fmt.Errorf("replayed dead letter %d but could not delete it: purge it (a replay again within 2 minutes also stores it once): %w", l.Sequence, err)
		}
		if o.progress != nil {
			o.progress(len(done))
		}
	}
	return done, nil
}

// checkAll returns an error naming every letter that cannot be replayed.
func checkAll(letters []Letter) error {
	var bad []string
	for _, l := range letters {
		if l.Check() != nil {
			bad = append(bad, strconv.FormatUint(l.Sequence, 10))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	what, them := "dead letter "+bad[0], "it"
	if len(bad) > 1 {
		them = "them"
		if len(bad) > 10 {
			bad = append(bad[:10], fmt.Sprintf("and %d more", len(bad)-10))
		}
		what = "dead letters " + strings.Join(bad, ", ")
	}
	return fmt.Errorf("%s: %w; nothing was replayed: purge %s, or replay the others by sequence", what, streams.ErrNotDeadLetter, them)
}

// Purge deletes the selected dead letters without replaying them and
// returns how many it deleted.
func Purge(ctx context.Context, js jetstream.JetStream, sel Selector) (int, error) {
	s, err := js.Stream(ctx, streams.DLQStream)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", streams.DLQStream, err)
	}
	if len(sel.Sequences) == 0 {
		before, err := count(ctx, s, sel.subject())
		if err != nil {
			return 0, err
		}
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(sel.subject())); err != nil {
			return 0, fmt.Errorf("purge %s: %w", sel.subject(), err)
		}
		return before, nil
	}
	letters, err := List(ctx, js, sel, 0)
	if err != nil {
		return 0, err
	}
	for i, l := range letters {
		if err := deleteLetter(ctx, s, l.Sequence); err != nil {
			return i, fmt.Errorf("delete dead letter %d: %w", l.Sequence, err)
		}
	}
	return len(letters), nil
}

// deleteLetter deletes a dead letter. One that is gone already (a replay
// or purge running at the same time) counts as deleted: the server answers
// that with a plain "deletion unsuccessful", so ask whether it is still there.
func deleteLetter(ctx context.Context, s jetstream.Stream, seq uint64) error {
	err := s.DeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	if _, gerr := s.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}

func count(ctx context.Context, s jetstream.Stream, subject string) (int, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", subject, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}

// each walks the selected dead letters in order with an ordered consumer.
func each(ctx context.Context, js jetstream.JetStream, sel Selector, f func(Letter) bool) error {
	s, err := js.Stream(ctx, streams.DLQStream)
	if err != nil {
		return fmt.Errorf("open %s: %w", streams.DLQStream, err)
	}
	total, err := count(ctx, s, sel.subject())
	if err != nil || total == 0 {
		return err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{sel.subject()}})
	if err != nil {
		return fmt.Errorf("read %s: %w", streams.DLQStream, err)
	}
	for seen := 0; seen < total; {
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return fmt.Errorf("read %s: %w", streams.DLQStream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			seen++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("read %s: %w", streams.DLQStream, err)
			}
			if !sel.match(meta.Sequence.Stream) {
				continue
			}
			if !f(letter(meta.Sequence.Stream, m.Headers(), m.Data())) {
				return nil
			}
			if meta.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("read %s: %w", streams.DLQStream, err)
		}
		if n == 0 {
			// Letters deleted while we read: nothing more to see.
			return nil
		}
	}
	return nil
}

func letter(seq uint64, h nats.Header, data []byte) Letter {
	// A message that is not a vrelay dead letter is still listed, with what
	// it has; Check tells Replay to refuse it.
	d, _ := streams.ParseDeadLetter(h)
	return Letter{
		DeadLetter: d,
		Sequence:   seq,
		EventID:    h.Get(streams.HeaderID),
		EventType:  h.Get(streams.HeaderType),
		Header:     h,
		Data:       data,
	}
}
