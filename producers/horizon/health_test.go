package horizon_test

import (
	"net/http"
	"testing"

	"github.com/vrelay/vrelay/producers"
	"github.com/vrelay/vrelay/producers/horizon"
	"github.com/vrelay/vrelay/streams"
)

// TestHealthEvents: an outage publishes connection.lost once and
// connection.restored once on the source's health subject.
func TestHealthEvents(t *testing.T) {
	e := newEnv(t)
	src := e.source(t, e.config(t), horizon.WithHealthEvents(e.js))
	e.hz.FailNext(3, http.StatusInternalServerError, nil)
	start(t, src, e.publisher(src))
	eventually(t, "the recovery", func() bool { return e.logs.count("horizon answers again") >= 1 })

	s, err := e.js.Stream(t.Context(), streams.HealthStream)
	if err != nil {
		t.Fatal(err)
	}
	subject := streams.HealthSubject(horizon.Provider, sourceName)
	var types []string
	eventually(t, "two health events", func() bool {
		types = types[:0]
		for seq := uint64(1); ; seq++ {
			m, err := s.GetMsg(t.Context(), seq)
			if err != nil {
				break
			}
			ev, err := streams.Decode(m.Data)
			if err != nil || m.Subject != subject {
				t.Fatalf("health message %d on %s: %v", seq, m.Subject, err)
			}
			types = append(types, ev.Type())
		}
		return len(types) >= 2
	})
	want := []string{
		producers.HealthTypePrefix + producers.HealthConnectionLost + producers.HealthTypeSuffix,
		producers.HealthTypePrefix + producers.HealthConnectionRestored + producers.HealthTypeSuffix,
	}
	if len(types) != 2 || types[0] != want[0] || types[1] != want[1] {
		t.Errorf("health events %v, want %v", types, want)
	}
}
