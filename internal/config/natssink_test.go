package config_test

import (
	"strings"
	"testing"

	"github.com/vrelay/vrelay/consumers/natssink"
	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/internal/natstest"
)

func TestNATSSink(t *testing.T) {
	cfg, err := config.Parse([]byte(`
routes:
  - name: republish
    sink:
      type: nats
      nats: {subject: 'republished.{type}', jetstream: true}
`))
	if err != nil {
		t.Fatalf("Parse(): %v", err)
	}
	nc, _ := natstest.Run(t)
	s, err := cfg.Routes[0].Sink.New(config.SinkDeps{NATS: nc})
	if err != nil {
		t.Fatalf("Sink.New(): %v", err)
	}
	if _, ok := s.(*natssink.Sink); !ok {
		t.Errorf("Sink.New(): got %T, want *natssink.Sink", s)
	}
	if _, err := cfg.Routes[0].Sink.New(config.SinkDeps{NATS: nc, SubjectRoot: "republished"}); err == nil ||
		!strings.Contains(err.Error(), "loop") {
		t.Errorf("Sink.New() under a custom root equal to the subject's: got %v, want the loop refused", err)
	}
}

func TestNATSSinkErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{
			name: "section missing",
			yaml: "routes:\n  - {name: a, sink: {type: nats}}\n",
			want: "routes[0].sink.nats: is required with type nats",
		},
		{
			name: "loop",
			yaml: "routes:\n  - {name: a, sink: {type: nats, nats: {subject: 'vmware.copy.{type}'}}}\n",
			want: `routes[0].sink.nats.subject: "vmware.copy.t" is inside the event stream's subjects (vmware.>)`,
		},
		{
			name: "batches",
			yaml: "routes:\n  - {name: a, delivery: {maxBatch: 10}, sink: {type: nats, nats: {subject: x}}}\n",
			want: "routes[0].delivery.maxBatch: is 10, but a nats sink sends one event per request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(): got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
