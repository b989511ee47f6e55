package vcenter

import (
	"errors"
	"testing"

	"github.com/vmware/govmomi/vim25/types"
)

func keyedEvent(key int32) types.BaseEvent {
	return &types.GeneralUserEvent{GeneralEvent: types.GeneralEvent{Event: types.Event{Key: key}}}
}

func TestStaleness(t *testing.T) {
	page := func(keys ...int32) []types.BaseEvent {
		var p []types.BaseEvent
		for _, k := range keys {
			p = append(p, keyedEvent(k))
		}
		return p
	}
	t.Run("reported event read", func(t *testing.T) {
		var s staleness
		s.read(page(1, 2))
		s.reported(keyedEvent(3), position{})
		s.read(page(3))
		if err := s.check(); err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})
	t.Run("reported event already read", func(t *testing.T) {
		var s staleness
		s.read(page(1, 2, 3))
		s.reported(keyedEvent(3), position{})
		for range 3 {
			s.read(nil)
			if err := s.check(); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
		}
	})
	t.Run("reported event covered by the position", func(t *testing.T) {
		var s staleness
		s.reported(keyedEvent(3), position{key: 5, hasKey: true})
		for range 3 {
			if err := s.check(); err != nil {
				t.Fatalf("got %v, want nil", err)
			}
		}
	})
	t.Run("late but read", func(t *testing.T) {
		var s staleness
		s.read(page(1))
		s.reported(keyedEvent(2), position{})
		s.read(nil)
		if err := s.check(); err != nil {
			t.Fatalf("first miss: got %v, want nil", err)
		}
		s.read(page(2))
		if err := s.check(); err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})
	t.Run("never read", func(t *testing.T) {
		var s staleness
		s.read(page(1))
		s.reported(keyedEvent(1500), position{})
		s.read(nil)
		if err := s.check(); err != nil {
			t.Fatalf("first miss: got %v, want nil", err)
		}
		s.read(nil)
		if err := s.check(); !errors.Is(err, errCollectorStale) {
			t.Errorf("got %v, want errCollectorStale", err)
		}
	})
}
