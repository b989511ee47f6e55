package consumers

import (
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestOrderKeyOf(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		data    any
		want    laneID
		wantErr bool
	}{
		{"string", "data.k", map[string]any{"k": "vm-81"}, laneID{key: "vm-81"}, false},
		{"integer number", "data.k", map[string]any{"k": 42}, laneID{key: "42"}, false},
		{"fraction", "data.k", map[string]any{"k": 4.5}, laneID{key: "4.5"}, false},
		{"bool", "data.k", map[string]any{"k": true}, laneID{key: "true"}, false},
		{"int from expression", "len(data.k)", map[string]any{"k": "abc"}, laneID{key: "3"}, false},
		{"nil", "data.k", map[string]any{}, laneID{unset: true}, false},
		{"map", "data", map[string]any{"k": 1}, laneID{unset: true}, true},
		{"run-time error", "data.k.x", map[string]any{}, laneID{unset: true}, true},
		{"total order", "", map[string]any{"k": 1}, laneID{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := compileOrder(&tt.src)
			if err != nil {
				t.Fatal(err)
			}
			ev := event.New()
			_ = ev.SetData(event.ApplicationJSON, tt.data)
			got, err := k.of(ev)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if k, err := compileOrder(nil); k != nil || err != nil {
		t.Errorf("compileOrder(nil) = %v, %v; want nil, nil", k, err)
	}
}

func newTestItem(seq uint64) *item {
	return &item{order: seq, dseq: seq, first: 1, touched: time.Now()}
}

// TestSchedulerLanes: a lane hands out its oldest event first, even one
// that came late, one at a time; ready lanes go oldest head first.
func TestSchedulerLanes(t *testing.T) {
	s := newScheduler(nil)
	s.held = false
	a, b := laneID{key: "a"}, laneID{key: "b"}
	s.add(newTestItem(5), a)
	s.add(newTestItem(2), b)
	s.add(newTestItem(3), a) // came late, goes before 5
	s.add(newTestItem(4), b)

	first := s.next()
	second := s.next()
	if first.order != 2 || second.order != 3 {
		t.Fatalf("handed out %d and %d, want 2 then 3 (oldest heads first)", first.order, second.order)
	}
	// Both lanes are busy: nothing else may go until one finishes.
	got := make(chan *item)
	go func() { got <- s.next() }()
	select {
	case it := <-got:
		t.Fatalf("handed out %d while its lane's head was under way", it.order)
	case <-time.After(50 * time.Millisecond):
	}
	// An event older than the head under way waits behind it.
	s.add(newTestItem(1), b)
	s.finish(first) // 2 done: lane b goes on with 1, then 4
	if it := <-got; it.order != 1 {
		t.Fatalf("after 2, handed out %d, want 1", it.order)
	}
	// A retry keeps the head: 3 again, not 5.
	s.retryLater(second, time.Millisecond)
	if it := s.next(); it != second {
		t.Fatalf("after a retry of 3, handed out %d, want 3 again", it.order)
	}
	// A redelivery of an event the scheduler holds replaces it.
	s.add(&item{order: 5, dseq: 9, touched: time.Now()}, a)
	if s.n != 4 || s.bySeq[5].dseq != 9 {
		t.Errorf("after a redelivery: %d items, dseq %d; want 4 items, dseq 9", s.n, s.bySeq[5].dseq)
	}
}

// TestSchedulerHold: while held nothing goes; the hold ends only when the
// consumer's outstanding events are all in hand.
func TestSchedulerHold(t *testing.T) {
	s := newScheduler(nil)
	s.add(newTestItem(10), laneID{key: "a"})
	s.add(newTestItem(11), laneID{key: "b"})
	if !s.holding() {
		t.Fatal("a new scheduler does not hold")
	}
	// Three outstanding, two here: hold on.
	if s.tryRelease(11, 3) {
		t.Fatal("released with an outstanding event elsewhere")
	}
	// An event delivered after the info was read does not count.
	s.add(newTestItem(12), laneID{key: "c"})
	if s.tryRelease(11, 3) {
		t.Fatal("released counting an event delivered after the consumer info")
	}
	if !s.tryRelease(12, 3) {
		t.Fatal("did not release with every outstanding event here")
	}
	if it := s.next(); it.order != 10 {
		t.Fatalf("handed out %d, want 10", it.order)
	}
	// A jump of the consumer sequence holds again.
	if !s.observe(20) {
		t.Fatal("a jump from consumer sequence 12 to 20 did not hold")
	}
	if s.observe(21) {
		t.Fatal("held again on a contiguous delivery")
	}
}
