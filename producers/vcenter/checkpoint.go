package vcenter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vrelay/vrelay/streams"
)

// ErrCorruptCheckpoint is returned, wrapped, by [Source.Run] when the saved
// position cannot be read. Run cannot guess where to resume, so it stops
// instead of replaying or skipping events; the message names the key and
// the commands that delete it, after which the source resumes after its
// last event in the stream (or, if the stream holds none, at vCenter's
// current time).
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// checkpoint is the JSON value saved under `vcenter.<name>` in the
// checkpoint bucket. The field names are those of Tanzu Sources for
// Knative, plus instanceUuid, so that a saved position means the same thing
// to a person who knows either tool.
type checkpoint struct {
	// VCenter is the SDK URL the position was read from.
	VCenter string `json:"vCenter"`
	// LastEventKey is the key of the last event stored in JetStream.
	LastEventKey int32 `json:"lastEventKey"`
	// LastEventType is its vSphere type, for people reading the bucket.
	LastEventType string `json:"lastEventType"`
	// LastEventKeyTimestamp is its CreatedTime, where reading resumes.
	LastEventKeyTimestamp time.Time `json:"lastEventKeyTimestamp"`
	// CreatedTimestamp is when the checkpoint was saved.
	CreatedTimestamp time.Time `json:"createdTimestamp"`
	// InstanceUUID identifies the vCenter (about.instanceUuid). A key means
	// nothing on another vCenter; empty in checkpoints written by Tanzu
	// Sources, which are then trusted.
	InstanceUUID string `json:"instanceUuid,omitempty"`
}

// parseCheckpoint decodes a saved value. Unknown fields are allowed, so a
// newer vrelay may add some; a value that is not a JSON object, or that
// lacks the event timestamp, is corrupt.
func parseCheckpoint(b []byte) (checkpoint, error) {
	var cp checkpoint
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&cp); err != nil {
		return checkpoint{}, fmt.Errorf("not checkpoint JSON: %w", err)
	}
	if dec.More() {
		return checkpoint{}, errors.New("not checkpoint JSON: data after the object")
	}
	if cp.LastEventKeyTimestamp.IsZero() {
		return checkpoint{}, errors.New("no lastEventKeyTimestamp")
	}
	return cp, nil
}

func corruptCheckpoint(key string, cause error) error {
	return fmt.Errorf("vcenter: checkpoint %s: %w: %v; delete it (vrelay checkpoint delete -config <file> %s, or nats kv del %s %s) and the source resumes after its last event in the stream",
		key, ErrCorruptCheckpoint, cause, key, streams.CheckpointBucket, key)
}

// keyAfter reports whether event key a is newer than b. vCenter keys are
// int32 counters that long-lived vCenters have been seen to wrap to
// negative values, so keys are compared with serial-number arithmetic
// (RFC 1982): a is newer when a-b, computed in int32 and so wrapping, is
// positive. That holds while the two keys are less than 2^31 apart.
func keyAfter(a, b int32) bool { return a-b > 0 }

// position is where the source stands: what was last stored in JetStream
// and where a new event collector begins.
type position struct {
	// instance is the uuid of the vCenter the position belongs to.
	instance string
	// begin is the CreatedTime of the last stored event, or, before the
	// first one, the time reading began. A collector begins there.
	begin time.Time
	// key and typ are the last stored event; valid when hasKey.
	key    int32
	typ    string
	hasKey bool
}

// same reports whether p and q are the same position.
func (p position) same(q position) bool {
	return p.instance == q.instance && p.hasKey == q.hasKey && p.key == q.key &&
		p.typ == q.typ && p.begin.Equal(q.begin)
}

// covers reports whether an event with key k was already stored.
func (p position) covers(k int32) bool { return p.hasKey && !keyAfter(k, p.key) }

func (p position) checkpoint(vcenter string, now time.Time) checkpoint {
	return checkpoint{
		VCenter:               vcenter,
		LastEventKey:          p.key,
		LastEventType:         p.typ,
		LastEventKeyTimestamp: p.begin.UTC(),
		CreatedTimestamp:      now.UTC(),
		InstanceUUID:          p.instance,
	}
}
