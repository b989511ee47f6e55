package eventbridge_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vrelay/vrelay/consumers/eventbridge"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

func TestValidate(t *testing.T) {
	good := func() eventbridge.Config { return eventbridge.Config{Region: "eu-west-1"} }
	tests := []struct {
		name   string
		modify func(*eventbridge.Config)
		want   []string // "path: reason" fragments, in order
	}{
		{"minimal", func(*eventbridge.Config) {}, nil},
		{"everything", func(c *eventbridge.Config) {
			c.EventBus = "arn:aws:events:eu-west-1:123456789012:event-bus/vmware"
			c.Endpoint = "https://vpce-0123.events.eu-west-1.vpce.amazonaws.com"
			c.Credentials = &eventbridge.Credentials{AccessKeyID: secret.Ref{FromEnv: "A"}, SecretAccessKey: secret.Ref{FromFile: "/s"}}
			c.DetailType = "subject"
			c.Pattern = `{"detail": {"subject": ["VmPoweredOnEvent"]}}`
			c.Timeout = 5 * time.Second
		}, nil},
		{"no region", func(c *eventbridge.Config) { c.Region = "" }, []string{"region: is required"}},
		{"bad region", func(c *eventbridge.Config) { c.Region = "Europe" }, []string{"region: \"Europe\" is not an AWS region"}},
		{"bad bus", func(c *eventbridge.Config) { c.EventBus = "my bus" }, []string{"eventBus: "}},
		{"bad endpoint", func(c *eventbridge.Config) { c.Endpoint = "vpce.local" }, []string{"endpoint: must be an absolute"}},
		{"endpoint with user", func(c *eventbridge.Config) { c.Endpoint = "https://u:p@x.example.com" }, []string{"endpoint: must not hold credentials"}},
		{"half credentials", func(c *eventbridge.Config) {
			c.Credentials = &eventbridge.Credentials{AccessKeyID: secret.Ref{FromEnv: "A", FromFile: "/a"}}
		}, []string{"credentials.secretAccessKey: is required", "credentials.accessKeyId: set fromEnv or fromFile"}},
		{"detail type", func(c *eventbridge.Config) { c.DetailType = "class" }, []string{"detailType: got \"class\""}},
		{"pattern", func(c *eventbridge.Config) {
			c.Pattern = map[string]any{"detail": map[string]any{"subject": "VmPoweredOnEvent"}}
		}, []string{"pattern: detail.subject: must be an object or an array"}},
		{"pattern json", func(c *eventbridge.Config) { c.Pattern = `{"source": [` }, []string{"pattern: not JSON"}},
		{"negative timeout", func(c *eventbridge.Config) { c.Timeout = -time.Second }, []string{"timeout: got -1s"}},
		{"all at once", func(c *eventbridge.Config) { c.Region = ""; c.DetailType = "x" }, []string{"region:", "detailType:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.modify(&c)
			c.SetDefaults()
			errs := cfgerr.Flatten(c.Validate())
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate(): got %v, want %d errors %v", errs, len(tt.want), tt.want)
			}
			for i, err := range errs {
				var fe *cfgerr.FieldError
				if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want[i]) {
					t.Errorf("error %d: got %q, want a field error containing %q", i, err, tt.want[i])
				}
			}
		})
	}
}

func TestSetDefaults(t *testing.T) {
	var c eventbridge.Config
	c.SetDefaults()
	if c.EventBus != "default" || c.DetailType != "type" || c.Timeout != 10*time.Second {
		t.Errorf("defaults: got bus %q, detailType %q, timeout %s; want default, type, 10s", c.EventBus, c.DetailType, c.Timeout)
	}
}
