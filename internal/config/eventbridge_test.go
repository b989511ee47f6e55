package config_test

import (
	"strings"
	"testing"

	"github.com/vrelay/vrelay/consumers"
	"github.com/vrelay/vrelay/internal/config"
)

func TestEventBridgeSink(t *testing.T) {
	t.Setenv("VRELAY_TEST_AWS_ID", "AKIDEXAMPLE")
	t.Setenv("VRELAY_TEST_AWS_SECRET", "eb-secret-never-shown")
	cfg, err := config.Parse([]byte(`
routes:
  - name: to-aws
    sink:
      type: eventbridge
      eventbridge:
        region: eu-west-1
        endpoint: http://127.0.0.1:1
        credentials:
          accessKeyId: {fromEnv: VRELAY_TEST_AWS_ID}
          secretAccessKey: {fromEnv: VRELAY_TEST_AWS_SECRET}
        detailType: subject
        pattern:
          detail:
            subject: [VmPoweredOnEvent, {shellstyle: "Drs*"}]
            data: {Vm: {Name: [{prefix: prod-}]}}
    delivery: {maxBatch: 10}
`))
	if err != nil {
		t.Fatalf("Parse(): %v", err)
	}
	eb := cfg.Routes[0].Sink.EventBridge
	if eb == nil || eb.EventBus != "default" || eb.DetailType != "subject" {
		t.Fatalf("eventbridge section: got %+v, want the defaults filled in", eb)
	}
	sink, err := cfg.Routes[0].Sink.New(config.SinkDeps{})
	if err != nil {
		t.Fatalf("build the sink: %v", err)
	}
	if _, ok := sink.(consumers.BatchSink); !ok {
		t.Errorf("eventbridge sink: got %T, want a consumers.BatchSink", sink)
	}

	tests := []struct{ name, yaml, want string }{
		{"bad pattern", `{region: eu-west-1, pattern: {detail: {subject: VmPoweredOnEvent}}}`,
			"routes[0].sink.eventbridge.pattern: detail.subject: must be an object or an array"},
		{"no region", `{eventBus: vmware}`, "routes[0].sink.eventbridge.region: is required"},
		{"timeout over sendTimeout", `{region: eu-west-1, timeout: 1m}`, "routes[0].sink.eventbridge.timeout: 1m0s exceeds delivery.sendTimeout"},
		{"no section", ``, "routes[0].sink.eventbridge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := "routes:\n  - name: r\n    sink:\n      type: eventbridge\n"
			if tt.yaml != "" {
				y += "      eventbridge: " + tt.yaml + "\n"
			}
			_, err := config.Parse([]byte(y))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(): got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
