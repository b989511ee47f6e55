package horizon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vrelay/vrelay/streams"
)

// ErrCorruptCheckpoint is returned, wrapped, by [Source.Run] when the saved
// position cannot be read. Run cannot guess where to resume, so it stops
// instead of replaying or skipping events; the message names the key and
// the commands that delete it, after which the source resumes after its
// last event in the stream (or, if the stream holds none, at Horizon's
// current time).
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// maxIDs bounds the ids a position keeps of one millisecond. Horizon logs
// a handful of events in the same millisecond at most; should a
// millisecond ever hold more, the source stops re-reading it (see
// position.advance) rather than carry an ever larger checkpoint.
const maxIDs = 10000

// checkpoint is the JSON value saved under `horizon.<name>` in the
// checkpoint bucket. It names the last stored event's millisecond and every
// event id stored at that millisecond: Horizon's time filter includes its
// lower bound, so the next read starts at that millisecond again and skips
// exactly those ids.
type checkpoint struct {
	// Horizon is the pod's base URL the position was read from.
	Horizon string `json:"horizon"`
	// Host is its host[:port], the first half of the Nats-Msg-Ids.
	Host string `json:"host"`
	// LastEventTime is the time of the last stored event in epoch
	// milliseconds, as Horizon gives it: where the next read begins
	// (inclusive). It is the field the source reads.
	LastEventTime int64 `json:"lastEventTime"`
	// LastEventTimestamp is the same instant in RFC 3339, for people.
	LastEventTimestamp time.Time `json:"lastEventTimestamp"`
	// LastEventIDs are the ids of every stored event of that millisecond,
	// ascending. Empty when none is stored yet.
	LastEventIDs []int64 `json:"lastEventIds"`
	// LastEventType is the type of the last stored event, for people.
	LastEventType string `json:"lastEventType,omitempty"`
	// CreatedTimestamp is when the checkpoint was saved.
	CreatedTimestamp time.Time `json:"createdTimestamp"`
}

// parseCheckpoint decodes a saved value. Unknown fields are allowed, so a
// newer vrelay may add some; a value that is not a JSON object, or that
// has neither lastEventTime nor lastEventTimestamp, is corrupt.
func parseCheckpoint(b []byte) (checkpoint, error) {
	var cp checkpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&cp); err != nil {
		return checkpoint{}, fmt.Errorf("not checkpoint JSON: %w", err)
	}
	if dec.More() {
		return checkpoint{}, errors.New("not checkpoint JSON: data after the object")
	}
	switch {
	case cp.LastEventTime > 0:
	case !cp.LastEventTimestamp.IsZero():
		cp.LastEventTime = cp.LastEventTimestamp.UnixMilli()
	default:
		return checkpoint{}, errors.New("no lastEventTime")
	}
	return cp, nil
}

func corruptCheckpoint(key string, cause error) error {
	return fmt.Errorf("horizon: checkpoint %s: %w: %v; delete it (vrelay checkpoint delete -config <file> %s, or nats kv del %s %s) and the source resumes after its last event in the stream",
		key, ErrCorruptCheckpoint, cause, key, streams.CheckpointBucket, key)
}

// position is where the source stands: reading begins at time (Horizon's
// Between filter includes it), and the events of that millisecond whose
// ids are in ids are stored already.
type position struct {
	time int64
	ids  map[int64]struct{}
	typ  string // of the last stored event, for the checkpoint
}

func newPosition(ms int64, ids ...int64) position {
	p := position{time: ms, ids: make(map[int64]struct{}, len(ids))}
	for _, id := range ids {
		p.ids[id] = struct{}{}
	}
	return p
}

// covers reports whether ev is stored already (or lies before the
// position, which the time filter should never return).
func (p position) covers(ev *auditEvent) bool {
	if ev.Time != p.time {
		return ev.Time < p.time
	}
	_, ok := p.ids[ev.ID]
	return ok
}

// advance moves the position over a stored event; events come in
// ascending (time, id) order. It reports false when the millisecond holds
// more than maxIDs events: the position then moves past the millisecond,
// so an event Horizon adds to it later is not read.
func (p *position) advance(ev *auditEvent) bool {
	if ev.Time > p.time {
		p.time = ev.Time
		clear(p.ids)
	}
	p.ids[ev.ID] = struct{}{}
	p.typ = ev.Type
	if len(p.ids) > maxIDs {
		p.time++
		clear(p.ids)
		return false
	}
	return true
}

// same reports whether p and q are the same position: ids only grow while
// the time stays.
func (p position) same(q position) bool { return p.time == q.time && len(p.ids) == len(q.ids) }

func (p position) clone() position {
	return position{time: p.time, ids: maps.Clone(p.ids), typ: p.typ}
}

func (p position) checkpoint(base, host string, now time.Time) checkpoint {
	ids := slices.Sorted(maps.Keys(p.ids))
	if ids == nil {
		ids = []int64{}
	}
	return checkpoint{
		Horizon:            base,
		Host:               host,
		LastEventTime:      p.time,
		LastEventTimestamp: time.UnixMilli(p.time).UTC(),
		LastEventIDs:       ids,
		LastEventType:      p.typ,
		CreatedTimestamp:   now.UTC(),
	}
}

// position returns where a saved checkpoint stands. Ids beyond maxIDs
// mean the millisecond is done.
func (cp *checkpoint) position() position {
	if len(cp.LastEventIDs) > maxIDs {
		return newPosition(cp.LastEventTime + 1)
	}
	p := newPosition(cp.LastEventTime, cp.LastEventIDs...)
	p.typ = cp.LastEventType
	return p
}
