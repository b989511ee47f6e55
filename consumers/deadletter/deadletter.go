// Package deadletter reads, replays and purges the dead-letter stream
// streams.DLQStream, where routes put the events they could not deliver
// (see consumers.Dispatcher).
//
// Replaying a dead letter publishes its event again on its original subject
// in the event stream, marked with streams.HeaderReplayRoute so that only
// the route it failed on delivers it again; every other route acks it
// unseen. The dead letter is deleted once the event stream stored the
// replay. A replay has its own Nats-Msg-Id (`replay:<route>:<dlq sequence>`),
// so running the same replay twice within the duplicate window stores it
// once.
//
//	letters, err := deadletter.List(ctx, js, "vm-on")
//	n, err := deadletter.Replay(ctx, js, deadletter.Selector{Route: "vm-on"})
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrelay/vrelay/streams"
)

// Letter is one dead letter.
type Letter struct {
	// Sequence is its sequence in the dead-letter stream, the handle for
	// show, replay and delete.
	Sequence uint64
	// Route, Reason, Failure, Attempts, OriginalSubject and OriginalSequence
	// come from the headers the dispatcher wrote.
	Route            string
	Reason           string
	Failure          string
	Attempts         int
	OriginalSubject  string
	OriginalSequence uint64
	FailedAt         time.Time
	// EventID and EventType are the CloudEvent's.
	EventID   string
	EventType string
	// Header and Data are the stored message.
	Header nats.Header
	Data   []byte
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

// Replay publishes the selected dead letters again for their route and
// deletes each from the dead-letter stream once the event stream stored
// it. It returns how many it replayed; on error, those before it are done.
func Replay(ctx context.Context, js jetstream.JetStream, sel Selector) (int, error) {
	letters, err := List(ctx, js, sel, 0)
	if err != nil {
		return 0, err
	}
	dlq, err := js.Stream(ctx, streams.DLQStream)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", streams.DLQStream, err)
	}
	for i, l := range letters {
		if l.OriginalSubject == "" || l.Route == "" {
			return i, fmt.Errorf("dead letter %d has no original subject or route: not written by vrelay", l.Sequence)
		}
		m := nats.NewMsg(l.OriginalSubject)
		m.Data = l.Data
		for k, v := range l.Header {
			if isCE(k) || k == streams.HeaderContentType {
				m.Header[k] = v
			}
		}
		m.Header.Set(streams.HeaderReplayRoute, l.Route)
		m.Header.Set(streams.HeaderMsgID, "replay:"+l.Route+":"+strconv.FormatUint(l.Sequence, 10))
		if _, err := js.PublishMsg(ctx, m, jetstream.WithExpectStream(streams.EventStream)); err != nil {
			return i, fmt.Errorf("replay dead letter %d: %w", l.Sequence, err)
		}
		if err := dlq.DeleteMsg(ctx, l.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return i + 1, fmt.Errorf("replayed dead letter %d but could not delete it: %w", l.Sequence, err)
		}
	}
	return len(letters), nil
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
		if err := s.DeleteMsg(ctx, l.Sequence); err != nil {
			return i, fmt.Errorf("delete dead letter %d: %w", l.Sequence, err)
		}
	}
	return len(letters), nil
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
	l := Letter{
		Sequence:        seq,
		Route:           h.Get(streams.HeaderRoute),
		Reason:          h.Get(streams.HeaderReason),
		Failure:         h.Get(streams.HeaderFailure),
		OriginalSubject: h.Get(streams.HeaderOriginalSubject),
		EventID:         h.Get(streams.HeaderID),
		EventType:       h.Get(streams.HeaderType),
		Header:          h,
		Data:            data,
	}
	l.Attempts, _ = strconv.Atoi(h.Get(streams.HeaderAttempts))
	l.OriginalSequence, _ = strconv.ParseUint(h.Get(streams.HeaderOriginalSequence), 10, 64)
	l.FailedAt, _ = time.Parse(time.RFC3339Nano, h.Get(streams.HeaderFailedAt))
	return l
}

func isCE(k string) bool { return len(k) > 3 && (k[:3] == "Ce-" || k[:3] == "ce-") }
