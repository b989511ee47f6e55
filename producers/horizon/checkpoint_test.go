package horizon

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckpointJSON(t *testing.T) {
	pos := newPosition(1627368903620, 98560, 98558, 98559)
	pos.typ = "BROKER_DAILY_MAX_NU_USERS"
	saved := time.Date(2021, 7, 27, 7, 0, 0, 123456789, time.UTC)
	b, err := json.Marshal(pos.checkpoint("https://horizon-01.corp.local", "horizon-01.corp.local", saved))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"horizon":"https://horizon-01.corp.local","host":"horizon-01.corp.local",` +
		`"lastEventTime":1627368903620,"lastEventTimestamp":"2021-07-27T06:55:03.62Z",` +
		`"lastEventIds":[98558,98559,98560],"lastEventType":"BROKER_DAILY_MAX_NU_USERS",` +
		`"createdTimestamp":"2021-07-27T07:00:00.123456789Z"}`
	if string(b) != want {
		t.Errorf("got %s\nwant %s", b, want)
	}
	cp, err := parseCheckpoint(b)
	if err != nil {
		t.Fatalf("parse what was saved: %v", err)
	}
	back := cp.position()
	if !back.same(pos) || back.typ != pos.typ {
		t.Errorf("got position %+v back, want %+v", back, pos)
	}
	for _, id := range []int64{98558, 98559, 98560} {
		if !back.covers(&auditEvent{ID: id, Time: 1627368903620}) {
			t.Errorf("id %d is not covered after the round trip", id)
		}
	}

	// A position with no stored id yet (a fresh start) saves an empty list.
	b, _ = json.Marshal(newPosition(5).checkpoint("https://hz", "hz", saved))
	if !strings.Contains(string(b), `"lastEventIds":[]`) {
		t.Errorf("got %s, want an empty lastEventIds", b)
	}
	// lastEventTimestamp alone is enough, for a checkpoint written by hand.
	cp, err = parseCheckpoint([]byte(`{"lastEventTimestamp":"2021-07-27T06:55:03.62Z","lastEventIds":[1]}`))
	if err != nil || cp.LastEventTime != 1627368903620 {
		t.Errorf("got %+v, %v; want lastEventTime from the timestamp", cp, err)
	}
}

func TestCorruptCheckpointValues(t *testing.T) {
	for _, v := range []string{"garbage", `[1,2]`, `{}`, `{"lastEventTime":"soon"}`, `{"lastEventTime":5} {}`, `{"lastEventIds":[1]}`} {
		if cp, err := parseCheckpoint([]byte(v)); err == nil {
			t.Errorf("parseCheckpoint(%s) = %+v, want an error", v, cp)
		}
	}
	err := corruptCheckpoint("horizon.hz01", errors.New("no lastEventTime"))
	if !errors.Is(err, ErrCorruptCheckpoint) {
		t.Errorf("got %v, want ErrCorruptCheckpoint", err)
	}
	const want = "horizon: checkpoint horizon.hz01: corrupt checkpoint: no lastEventTime; delete it (vrelay checkpoint delete -config <file> horizon.hz01, or nats kv del vrelay_checkpoints horizon.hz01) and the source resumes after its last event in the stream"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err, want)
	}
}

func TestPosition(t *testing.T) {
	p := newPosition(100)
	ev := func(id, ms int64) *auditEvent { return &auditEvent{ID: id, Time: ms, Type: "T"} }
	// A fresh position covers nothing at or after its time.
	if p.covers(ev(1, 100)) || p.covers(ev(2, 101)) || !p.covers(ev(3, 99)) {
		t.Error("a fresh position at 100 must cover only what lies before 100")
	}
	for _, e := range []*auditEvent{ev(1, 100), ev(2, 105), ev(3, 105)} {
		p.advance(e)
	}
	if p.time != 105 || len(p.ids) != 2 {
		t.Fatalf("got time %d with %d ids, want 105 with 2", p.time, len(p.ids))
	}
	switch {
	case !p.covers(ev(2, 105)) || !p.covers(ev(3, 105)):
		t.Error("the ids stored at 105 are not covered")
	case p.covers(ev(4, 105)):
		t.Error("a new id at 105 is covered: an event logged later in that millisecond would be lost")
	case p.covers(ev(5, 106)):
		t.Error("a later event is covered")
	}
	before := p.clone()
	p.advance(ev(4, 105))
	if p.same(before) {
		t.Error("a new id at the same time is not a new position: it would not be saved")
	}
	if !before.same(before.clone()) {
		t.Error("a clone differs")
	}

	// A millisecond with more ids than a checkpoint keeps is moved past.
	q := newPosition(7)
	ok := true
	for id := int64(1); id <= maxIDs+1 && ok; id++ {
		ok = q.advance(ev(id, 7))
	}
	if ok || q.time != 8 || len(q.ids) != 0 {
		t.Errorf("got ok %v, time %d, %d ids; want the position moved to 8 with none", ok, q.time, len(q.ids))
	}
	if q.covers(ev(1, 8)) || !q.covers(ev(1, 7)) {
		t.Error("after moving past 7, events at 7 are covered and those at 8 are not")
	}
}
