package natssink_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/consumers/natssink"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

func problems(err error) []string {
	var out []string
	for _, e := range cfgerr.Flatten(err) {
		out = append(out, e.Error())
	}
	return out
}

func TestValidate(t *testing.T) {
	env := secret.Ref{FromEnv: "X"}
	tests := []struct {
		name string
		cfg  natssink.Config
		want []string // substrings, one per problem, in order
	}{
		{name: "minimal", cfg: natssink.Config{Subject: "republished"}},
		{name: "placeholders", cfg: natssink.Config{Subject: "republished.{source}.{type}", JetStream: true}},
		{name: "placeholder inside a token", cfg: natssink.Config{Subject: "events.vm-{type}"}},
		{
			name: "external with user",
			cfg: natssink.Config{Subject: "x", URL: "nats://a:4222, tls://b:4222", User: "relay", Password: env,
				TLS: natssink.TLS{CAFile: "/etc/ca.pem"}},
		},
		{name: "external with creds", cfg: natssink.Config{Subject: "x", URL: "nats://a:4222", CredsFile: "/c"}},
		{name: "subject missing", cfg: natssink.Config{}, want: []string{"subject: is required"}},
		{name: "unknown placeholder", cfg: natssink.Config{Subject: "x.{id}"}, want: []string{`subject: "x.{id}": unknown placeholder at "{id}"; use {type} or {source}`}},
		{name: "empty token", cfg: natssink.Config{Subject: "x..y"}, want: []string{"has an empty token"}},
		{name: "trailing dot", cfg: natssink.Config{Subject: "x."}, want: []string{"has an empty token"}},
		{name: "wildcard", cfg: natssink.Config{Subject: "x.>"}, want: []string{"wildcards cannot be published to"}},
		{name: "white space", cfg: natssink.Config{Subject: "x y"}, want: []string{"white space"}},
		{
			name: "inside the event stream",
			cfg:  natssink.Config{Subject: "vmware.republished.{type}"},
			want: []string{`subject: "vmware.republished.t" is inside the event stream's subjects (vmware.>): republishing there would store every event again and loop`},
		},
		{name: "inside vrelay's subjects", cfg: natssink.Config{Subject: "vrelay.dlq.x"}, want: []string{"inside vrelay's own subjects (vrelay.>)"}},
		{name: "system subject", cfg: natssink.Config{Subject: "$JS.API.x"}, want: []string{"is a system subject"}},
		{
			name: "credentials without url",
			cfg:  natssink.Config{Subject: "x", Token: env},
			want: []string{"url: is required with credentials or tls"},
		},
		{name: "url not a url", cfg: natssink.Config{Subject: "x", URL: "a b"}, want: []string{`url: "a b" is not a server URL`}},
		{name: "url with credentials", cfg: natssink.Config{Subject: "x", URL: "nats://u:hunter2@a:4222"}, want: []string{"url: must not carry credentials"}},
		{name: "user without password", cfg: natssink.Config{Subject: "x", URL: "nats://a", User: "u"}, want: []string{"password: is required with user"}},
		{
			name: "two methods and a bad ref",
			cfg:  natssink.Config{Subject: "x", URL: "nats://a", User: "u", Password: env, Token: secret.Ref{FromEnv: "A", FromFile: "/b"}},
			want: []string{"set one of user/password, token or credsFile", "token: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.SetDefaults()
			got := problems(tt.cfg.Validate())
			if len(got) != len(tt.want) {
				t.Fatalf("Validate(): got %q, want %d problems like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d: got %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
subject: republished.{type}
jetstream: true
url: nats://nats.example.com:4222
token: {fromFile: /var/run/secrets/nats/token}
tls: {caFile: /etc/vrelay/nats-ca.pem}
`
	var got natssink.Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := natssink.Config{
		Subject: "republished.{type}", JetStream: true, URL: "nats://nats.example.com:4222",
		Token: secret.Ref{FromFile: "/var/run/secrets/nats/token"}, TLS: natssink.TLS{CAFile: "/etc/vrelay/nats-ca.pem"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded config (-want +got):\n%s", diff)
	}
}
