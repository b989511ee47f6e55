package consumers

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// startAtMetadata is the key of the route consumer's metadata that records
// the startAt it was created with, so that a later start can tell that the
// configuration changed.
const startAtMetadata = "vrelay.startAt"

// startAtAccepted says what [Delivery.StartAt] accepts, for errors.
const startAtAccepted = `new, all, an RFC 3339 time (2026-11-27T08:00:00Z), a duration ago (90m, 2h, 7d) or seq:N`

// startPosition is a parsed [Delivery.StartAt].
type startPosition struct {
	policy jetstream.DeliverPolicy
	at     time.Time     // DeliverByStartTimePolicy from a fixed time
	ago    time.Duration // DeliverByStartTimePolicy from now minus ago
	seq    uint64        // DeliverByStartSequencePolicy
}

// parseStartAt reads a [Delivery.StartAt]: "new", "all", an RFC 3339 time,
// a positive duration (Go syntax, such as "90m" or "2h", or whole days,
// such as "7d") that reaches back from when the consumer is created, or
// "seq:N" with N ≥ 1.
func parseStartAt(s string) (startPosition, error) {
	switch s {
	case StartAtNew:
		return startPosition{policy: jetstream.DeliverNewPolicy}, nil
	case StartAtAll:
		return startPosition{policy: jetstream.DeliverAllPolicy}, nil
	}
	if n, ok := strings.CutPrefix(s, "seq:"); ok {
		seq, err := strconv.ParseUint(n, 10, 64)
		if err != nil || seq == 0 {
			return startPosition{}, fmt.Errorf("%q: the sequence after seq: must be a whole number of at least 1", s)
		}
		return startPosition{policy: jetstream.DeliverByStartSequencePolicy, seq: seq}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return startPosition{policy: jetstream.DeliverByStartTimePolicy, at: t}, nil
	}
	d, err := ParseAgo(s)
	if err != nil {
		return startPosition{}, fmt.Errorf("%q is not one of %s", s, startAtAccepted)
	}
	return startPosition{policy: jetstream.DeliverByStartTimePolicy, ago: d}, nil
}

// ParseAgo reads a positive duration that reaches back from now: Go's
// syntax ("90m", "2h30m") or a whole number of days ("7d").
func ParseAgo(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil || days == 0 {
			return 0, fmt.Errorf("%q: days must be a whole number of at least 1", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, errors.New("the duration must be positive")
	}
	return d, nil
}

// apply sets the deliver policy and start of cc, computing a duration ago
// from now.
func (p startPosition) apply(cc *jetstream.ConsumerConfig, now time.Time) {
	cc.DeliverPolicy = p.policy
	switch {
	case p.seq > 0:
		cc.OptStartSeq = p.seq
	case p.ago > 0:
		t := now.Add(-p.ago)
		cc.OptStartTime = &t
	case !p.at.IsZero():
		t := p.at
		cc.OptStartTime = &t
	}
}

// keepPosition gives cc the start position of the route's existing
// consumer, whose config is have, and logs at info when startAt no longer
// says what the consumer was created with: a route keeps its position.
func (d *Dispatcher) keepPosition(cc *jetstream.ConsumerConfig, have jetstream.ConsumerConfig) {
	want := d.route.Delivery.StartAt
	created, known := have.Metadata[startAtMetadata]
	changed := known && created != want
	if !known {
		// Created before vrelay recorded startAt: compare the policies.
		changed = have.DeliverPolicy != cc.DeliverPolicy
		created = have.DeliverPolicy.String()
	}
	if changed {
		d.log.Info("route consumer exists: it keeps its position, startAt applies only to a new route; "+
			"use vrelay route replay to deliver older events again",
			"start_at", want, "created_with", created)
	}
	cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
	if known {
		cc.Metadata[startAtMetadata] = created
	} else {
		delete(cc.Metadata, startAtMetadata)
	}
}
