package webhook

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

func TestConfigYAML(t *testing.T) {
	const doc = `
listen: ":8443"
path: /events
maxBodyBytes: 2097152
maxBatchEvents: 500
auth:
  basic:
    username: vcenter
    password:
      fromFile: /var/run/secrets/webhook/password
  bearer:
    token:
      fromEnv: WEBHOOK_TOKEN
tls:
  certFile: /etc/tls/tls.crt
  keyFile: /etc/tls/tls.key
readHeaderTimeout: 5s
readTimeout: 20s
writeTimeout: 1m
idleTimeout: 90s
publishTimeout: 15s
shutdownTimeout: 25s
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var got Config
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := Config{
		Listen: ":8443", Path: "/events", MaxBodyBytes: 2 << 20, MaxBatchEvents: 500,
		Auth: AuthConfig{
			Basic:  BasicAuth{Username: "vcenter", Password: secret.Ref{FromFile: "/var/run/secrets/webhook/password"}},
			Bearer: BearerAuth{Token: secret.Ref{FromEnv: "WEBHOOK_TOKEN"}},
		},
		TLS:               TLSConfig{CertFile: "/etc/tls/tls.crt", KeyFile: "/etc/tls/tls.key"},
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 20 * time.Second, WriteTimeout: time.Minute,
		IdleTimeout: 90 * time.Second, PublishTimeout: 15 * time.Second, ShutdownTimeout: 25 * time.Second,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded config differs (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestSetDefaults(t *testing.T) {
	var got Config
	got.SetDefaults()
	want := Config{
		Listen: "127.0.0.1:8080", Path: "/", MaxBodyBytes: 1048576, MaxBatchEvents: 1000,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, PublishTimeout: 10 * time.Second, ShutdownTimeout: 10 * time.Second,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults differ (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() of the defaults = %v, want nil", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "zero config", cfg: Config{}},
		{name: "port 0", cfg: Config{Listen: "127.0.0.1:0"}},
		{name: "all interfaces", cfg: Config{Listen: ":8080"}},
		{name: "IPv6", cfg: Config{Listen: "[::1]:8080"}},
		{name: "both auth schemes", cfg: Config{Auth: AuthConfig{
			Basic:  BasicAuth{Username: "u", Password: secret.Ref{FromEnv: "P"}},
			Bearer: BearerAuth{Token: secret.Ref{FromFile: "/t"}},
		}}},
		{
			name: "every problem at once",
			cfg: Config{
				Listen:         "localhost",
				Path:           "events",
				MaxBodyBytes:   -1,
				MaxBatchEvents: -5,
				Auth: AuthConfig{
					Basic:  BasicAuth{Username: "a:b"},
					Bearer: BearerAuth{Token: secret.Ref{FromEnv: "T", FromFile: "/t"}},
				},
				TLS:             TLSConfig{CertFile: "/c"},
				ReadTimeout:     -time.Second,
				ShutdownTimeout: -time.Second,
			},
			want: []string{
				`listen: "localhost" is not host:port`,
				`path: must start with "/", got "events"`,
				"maxBodyBytes: must be positive, got -1",
				"maxBatchEvents: must be positive, got -5",
				"auth.basic.username: may not contain ':'",
				"auth.basic.password: is required when a username is set",
				"auth.bearer.token: set fromEnv or fromFile, not both",
				"tls.keyFile: is required when certFile is set",
				"readTimeout: must be positive, got -1s",
				"shutdownTimeout: must be positive, got -1s",
			},
		},
		{
			name: "bad port",
			cfg:  Config{Listen: "127.0.0.1:http"},
			want: []string{`listen: "127.0.0.1:http": port must be a number from 0 to 65535`},
		},
		{
			name: "password without username",
			cfg:  Config{Auth: AuthConfig{Basic: BasicAuth{Password: secret.Ref{FromEnv: "P"}}}},
			want: []string{"auth.basic.username: is required when a password is set"},
		},
		{
			name: "key without certificate",
			cfg:  Config{TLS: TLSConfig{KeyFile: "/k"}},
			want: []string{"tls.certFile: is required when keyFile is set"},
		},
		{
			name: "publish timeout not below write timeout",
			cfg:  Config{WriteTimeout: 5 * time.Second},
			want: []string{"publishTimeout: must be shorter than writeTimeout (5s), or the answer cannot be written, got 10s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, err := range cfgerr.Flatten(tt.cfg.Validate()) {
				got = append(got, err.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() errors differ (-want +got):\n%s", diff)
			}
		})
	}
}
