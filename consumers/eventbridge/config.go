package eventbridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/vrelay/vrelay/consumers/eventbridge/pattern"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

// What Config.DetailType may name.
const (
	// DetailTypeType sends the CloudEvent type as DetailType.
	DetailTypeType = "type"
	// DetailTypeSubject sends the CloudEvent subject (the vCenter event
	// class in the VMware Event Router shape, "VmPoweredOnEvent"), or the
	// type when the event has no subject.
	DetailTypeSubject = "subject"
)

// Defaults.
const (
	DefaultEventBus = "default"
	DefaultTimeout  = 10 * time.Second
)

// Config is the operator's configuration of one EventBridge sink.
//
//	region: eu-west-1
//	eventBus: vmware-events
//	credentials:
//	  accessKeyId: {fromEnv: AWS_ACCESS_KEY_ID}
//	  secretAccessKey: {fromFile: /var/run/secrets/aws/secret-access-key}
//	detailType: subject
//	pattern: {"detail": {"subject": ["VmPoweredOnEvent", "VmPoweredOffEvent"]}}
type Config struct {
	// Region is the AWS region of the bus, such as `eu-west-1`. It selects the
	// endpoint and scopes the request signature. Required.
	Region string `yaml:"region"`

	// EventBus is the name or ARN of the event bus every entry goes to.
	// Default "default" (the account's default bus).
	EventBus string `yaml:"eventBus"`

	// Endpoint overrides the service URL: a VPC interface endpoint
	// (`https://vpce-….events.eu-west-1.vpce.amazonaws.com`), or a test
	// endpoint. Default: the region's public endpoint.
	Endpoint string `yaml:"endpoint"`

	// Credentials, when set, are a static access key read from env or files.
	// Default unset: the SDK's default chain (AWS_* environment variables,
	// shared config and credentials files, web identity such as EKS IRSA,
	// ECS and EC2 instance roles), which is the better choice on AWS.
	Credentials *Credentials `yaml:"credentials"`

	// DetailType says which CloudEvent attribute becomes the entry's
	// DetailType. "type": the CloudEvent type. "subject": the CloudEvent
	// subject (the vCenter event class in the `router` format, whose type is
	// the same for every event), or the type for an event without a subject.
	// Default "type".
	DetailType string `yaml:"detailType"`

	// Pattern is an EventBridge event pattern applied before sending: events
	// it does not match are not sent (and are acked as handled). A YAML
	// mapping or a JSON string. Prefer the route's filter; Pattern exists so
	// that migrated EventBridge rules keep working. See
	// [delivery.md](delivery.md#eventbridge) for what it supports and the
	// fields it can address. Default: none, send everything.
	Pattern any `yaml:"pattern"`

	// Timeout bounds one `PutEvents` call. It may not exceed the route's
	// `delivery.sendTimeout`. Default "10s".
	Timeout time.Duration `yaml:"timeout"`
}

// Credentials is a static AWS access key. Both fields are required.
type Credentials struct {
	// AccessKeyID is a static access key id. With `secretAccessKey`. Required.
	AccessKeyID secret.Ref `yaml:"accessKeyId"`
	// SecretAccessKey is the static secret access key. Required.
	SecretAccessKey secret.Ref `yaml:"secretAccessKey"`
	// SessionToken is the session token of temporary credentials. Optional.
	// They expire; prefer the default chain.
	SessionToken secret.Ref `yaml:"sessionToken"`
}

// SetDefaults fills unset fields with their defaults; [New] calls it.
func (c *Config) SetDefaults() {
	if c.EventBus == "" {
		c.EventBus = DefaultEventBus
	}
	if c.DetailType == "" {
		c.DetailType = DetailTypeType
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

var (
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	busRE    = regexp.MustCompile(`^([.\-_A-Za-z0-9]{1,256}|arn:aws[\w-]*:events:[a-z0-9-]+:\d{12}:event-bus/[/.\-_A-Za-z0-9]+)$`)
)

// Validate reports every problem with c at once, as cfgerr field errors
// relative to the sink ("region", "pattern"). It reads no secrets; it
// compiles the pattern to check it and keeps nothing.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Region == "":
		errs = append(errs, cfgerr.New("region", "is required"))
	case !regionRE.MatchString(c.Region):
		errs = append(errs, cfgerr.Newf("region", "%q is not an AWS region such as eu-west-1", c.Region))
	}
	if c.EventBus != "" && !busRE.MatchString(c.EventBus) {
		errs = append(errs, cfgerr.Newf("eventBus", "%q is not an event bus name or ARN", c.EventBus))
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			errs = append(errs, cfgerr.New("endpoint", "must be an absolute http or https URL"))
		} else if u.User != nil {
			errs = append(errs, cfgerr.New("endpoint", "must not hold credentials"))
		}
	}
	if cr := c.Credentials; cr != nil {
		if cr.AccessKeyID.IsZero() {
			errs = append(errs, cfgerr.New("credentials.accessKeyId", "is required"))
		}
		if cr.SecretAccessKey.IsZero() {
			errs = append(errs, cfgerr.New("credentials.secretAccessKey", "is required"))
		}
		errs = append(errs,
			cfgerr.Prefix("credentials.accessKeyId", cr.AccessKeyID.Validate()),
			cfgerr.Prefix("credentials.secretAccessKey", cr.SecretAccessKey.Validate()),
			cfgerr.Prefix("credentials.sessionToken", cr.SessionToken.Validate()))
	}
	switch c.DetailType {
	case "", DetailTypeType, DetailTypeSubject:
	default:
		errs = append(errs, cfgerr.Newf("detailType", "got %q, want %q or %q", c.DetailType, DetailTypeType, DetailTypeSubject))
	}
	if _, err := c.compilePattern(); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout < 0 {
		errs = append(errs, cfgerr.Newf("timeout", "got %s, want a positive duration", c.Timeout))
	}
	return errors.Join(errs...)
}

// compilePattern returns the compiled Pattern, nil when unset.
func (c Config) compilePattern() (*pattern.Pattern, error) {
	var src []byte
	switch p := c.Pattern.(type) {
	case nil:
		return nil, nil
	case string:
		src = []byte(p)
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, cfgerr.Newf("pattern", "cannot be written as JSON: %v", err)
		}
		src = b
	}
	pt, err := pattern.Compile(src)
	if err != nil {
		var pe *pattern.Error
		if errors.As(err, &pe) && pe.Path != "" {
			return nil, cfgerr.Newf("pattern", "%s: %s", pe.Path, pe.Reason)
		}
		return nil, cfgerr.New("pattern", fmt.Sprint(err))
	}
	return pt, nil
}
