package consumers

import (
	"context"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/vrelay/vrelay/filters"
)

type plainSink struct{}

func (plainSink) Send(context.Context, event.Event) error { return nil }

type storedSink struct {
	plainSink
	stored  bool
	timeout time.Duration
}

func (s storedSink) SendsStoredBody() bool      { return s.stored }
func (s storedSink) SendTimeout() time.Duration { return s.timeout }

// TestHeadersSuffice checks which routes take a message from its headers:
// only those whose sink sends the stored body, that change and key
// nothing, and whose filter reads no attribute the headers lack.
func TestHeadersSuffice(t *testing.T) {
	compile := func(src string) *filters.Filter {
		f, err := filters.Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	key := "data.Key"
	transform, err := filters.CompileTransform([]filters.Step{{Drop: `type == "x"`}})
	if err != nil {
		t.Fatal(err)
	}
	stored := storedSink{stored: true}
	for _, tt := range []struct {
		name string
		r    Route
		sink Sink
		want bool
	}{
		{"no filter", Route{}, stored, true},
		{"filter on the header attributes", Route{Filter: compile(`type endsWith "x" && source == "s" && id != "" && subject == "VmPoweredOnEvent"`)}, stored, true},
		{"filter on data", Route{Filter: compile(`data.Key > 1`)}, stored, false},
		{"filter on time", Route{Filter: compile(`time > now() - duration("1h")`)}, stored, false},
		{"filter on an extension", Route{Filter: compile(`vcenter == "vc01"`)}, stored, false},
		{"filter on $env", Route{Filter: compile(`$env.type == "x"`)}, stored, false},
		{"transform", Route{Transform: transform}, stored, false},
		{"orderBy", Route{Delivery: Delivery{OrderBy: &key}}, stored, false},
		{"batches", Route{Delivery: Delivery{MaxBatch: 10}}, stored, false},
		{"sink that does not send the stored body", Route{}, storedSink{}, false},
		{"sink without the capability", Route{}, plainSink{}, false},
	} {
		if got := headersSuffice(tt.r, tt.sink); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestSendTimeoutOfSink checks that a send's deadline is the sink's own
// timeout when that is shorter than the route's sendTimeout, and the
// route's otherwise.
func TestSendTimeoutOfSink(t *testing.T) {
	for _, tt := range []struct {
		name  string
		sink  Sink
		route time.Duration
		want  time.Duration
	}{
		{"sink shorter", storedSink{timeout: 10 * time.Second}, 30 * time.Second, 10 * time.Second},
		{"route shorter", storedSink{timeout: 10 * time.Second}, 5 * time.Second, 5 * time.Second},
		{"sink without a timeout", plainSink{}, 30 * time.Second, 30 * time.Second},
	} {
		d, err := NewDispatcher(nil, Route{Name: "r", Delivery: Delivery{SendTimeout: tt.route}}, tt.sink)
		if err != nil {
			t.Fatal(err)
		}
		if d.sendTimeout != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, d.sendTimeout, tt.want)
		}
	}
}
