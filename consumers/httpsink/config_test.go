package httpsink_test

import (
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/consumers/httpsink"
	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

// problems flattens a joined error into its messages.
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
		cfg  httpsink.Config
		want []string
	}{
		{name: "minimal", cfg: httpsink.Config{URL: "http://127.0.0.1:8080/"}},
		{
			name: "everything set",
			cfg: httpsink.Config{
				URL:     "https://receiver.example.com/events?code=x",
				Mode:    httpsink.ModeStructured,
				Headers: map[string]string{"X-Tenant": "blue"},
				Auth:    httpsink.Auth{Basic: &httpsink.BasicAuth{Username: "relay", Password: env}},
				TLS:     httpsink.TLS{CAFile: "/etc/ca.pem"},
				Timeout: 3 * time.Second,
			},
		},
		{name: "url missing", cfg: httpsink.Config{}, want: []string{"url: is required"}},
		{name: "url relative", cfg: httpsink.Config{URL: "/events"}, want: []string{"url: not an absolute URL"}},
		{name: "url without host", cfg: httpsink.Config{URL: "http:///events"}, want: []string{"url: not an absolute URL"}},
		{name: "url scheme", cfg: httpsink.Config{URL: "ftp://host/x"}, want: []string{`url: scheme "ftp" is not http or https`}},
		{name: "url unparsable", cfg: httpsink.Config{URL: "http://host:port:x/"}, want: []string{`url: not a URL: invalid port ":port:x" after host`}},
		{
			name: "url with credentials",
			cfg:  httpsink.Config{URL: "https://user:hunter2@host/"},
			want: []string{"url: must not hold credentials; use auth"},
		},
		{name: "mode", cfg: httpsink.Config{URL: "http://h/", Mode: "batched"}, want: []string{`mode: got "batched", want "binary" or "structured"`}},
		{
			name: "headers",
			cfg: httpsink.Config{URL: "http://h/", Headers: map[string]string{
				"ce-id":         "1",
				"Ce-Source":     "x",
				"content-type":  "text/plain",
				"Authorization": "Bearer inline",
				"Bad Name":      "x",
				"X-Inject":      "a\r\nEvil: 1",
				"X-Fine":        "ok",
			}},
			want: []string{
				`headers["Authorization"]: use auth, so the credential comes from a secret`,
				`headers["Bad Name"]: not a valid header name`,
				`headers["Ce-Source"]: ce-* headers belong to the CloudEvents binding`,
				`headers["X-Inject"]: value contains a control character`,
				`headers["ce-id"]: ce-* headers belong to the CloudEvents binding`,
				`headers["content-type"]: Content-Type belongs to the CloudEvents binding`,
			},
		},
		{
			name: "auth both",
			cfg: httpsink.Config{URL: "http://h/", Auth: httpsink.Auth{
				Basic:  &httpsink.BasicAuth{Username: "u", Password: env},
				Bearer: &httpsink.BearerAuth{Token: env},
			}},
			want: []string{"auth: set basic or bearer, not both"},
		},
		{
			name: "auth empty",
			cfg: httpsink.Config{URL: "http://h/", Auth: httpsink.Auth{
				Basic: &httpsink.BasicAuth{},
			}},
			want: []string{"auth.basic.username: is required", "auth.basic.password: is required"},
		},
		{
			name: "auth refs ambiguous",
			cfg: httpsink.Config{URL: "http://h/", Auth: httpsink.Auth{
				Bearer: &httpsink.BearerAuth{Token: secret.Ref{FromEnv: "X", FromFile: "/x"}},
			}},
			want: []string{"auth.bearer.token: set fromEnv or fromFile, not both"},
		},
		{
			name: "tls contradictory",
			cfg:  httpsink.Config{URL: "https://h/", TLS: httpsink.TLS{CAFile: "/ca.pem", SkipTLSVerify: true}},
			want: []string{"tls.skipTLSVerify: cannot be combined with caFile"},
		},
		{name: "timeout", cfg: httpsink.Config{URL: "http://h/", Timeout: -time.Second}, want: []string{"timeout: got -1s, want a positive duration"}},
		{
			name: "every problem at once",
			cfg: httpsink.Config{
				URL:     "ftp://h/",
				Mode:    "Binary",
				Headers: map[string]string{"CE-Type": "x"},
				Auth: httpsink.Auth{
					Basic:  &httpsink.BasicAuth{Username: "a:b"},
					Bearer: &httpsink.BearerAuth{},
				},
				TLS:     httpsink.TLS{CAFile: "/ca.pem", SkipTLSVerify: true},
				Timeout: -1,
			},
			want: []string{
				`url: scheme "ftp" is not http or https`,
				`mode: got "Binary", want "binary" or "structured"`,
				`headers["CE-Type"]: ce-* headers belong to the CloudEvents binding`,
				"auth: set basic or bearer, not both",
				"auth.basic.username: must not contain ':'",
				"auth.basic.password: is required",
				"auth.bearer.token: is required",
				"tls.skipTLSVerify: cannot be combined with caFile",
				"timeout: got -1ns, want a positive duration",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problems(tt.cfg.Validate())
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() problems mismatch (-want +got):\n%s", diff)
			}
			for _, p := range got {
				if strings.Contains(p, "hunter2") {
					t.Errorf("Validate() problem %q: got the password, want it left out", p)
				}
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, "ca.pem", "not a certificate")
	tests := []struct {
		name string
		cfg  httpsink.Config
		opts []httpsink.Option
		want []string
	}{
		{
			name: "validation comes first",
			cfg:  httpsink.Config{},
			want: []string{"url: is required"},
		},
		{
			name: "secret and CA file",
			cfg: httpsink.Config{
				URL:  "https://h/",
				Auth: httpsink.Auth{Basic: &httpsink.BasicAuth{Username: "u", Password: secret.Ref{FromEnv: "HTTPSINK_TEST_UNSET_XYZ"}}},
				TLS:  httpsink.TLS{CAFile: filepath.Join(dir, "missing.pem")},
			},
			want: []string{
				"auth.basic.password: environment variable HTTPSINK_TEST_UNSET_XYZ is not set",
				"tls.caFile: read CA file: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory",
			},
		},
		{
			name: "bearer token file missing",
			cfg: httpsink.Config{
				URL:  "https://h/",
				Auth: httpsink.Auth{Bearer: &httpsink.BearerAuth{Token: secret.Ref{FromFile: filepath.Join(dir, "token")}}},
			},
			want: []string{"auth.bearer.token: read secret file: open " + filepath.Join(dir, "token") + ": no such file or directory"},
		},
		{
			name: "CA file without certificates",
			cfg:  httpsink.Config{URL: "https://h/", TLS: httpsink.TLS{CAFile: notPEM}},
			want: []string{"tls.caFile: no PEM certificate in " + notPEM},
		},
		{
			name: "TLS with an injected client",
			cfg:  httpsink.Config{URL: "https://h/", TLS: httpsink.TLS{SkipTLSVerify: true}},
			opts: []httpsink.Option{httpsink.WithHTTPClient(&http.Client{})},
			want: []string{"tls: cannot be combined with an injected HTTP client; configure TLS on that client"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := httpsink.New(tt.cfg, tt.opts...)
			if s != nil {
				t.Errorf("New(): got a sink, want nil")
			}
			if diff := cmp.Diff(tt.want, problems(err)); diff != "" {
				t.Errorf("New() problems mismatch (-want +got):\n%s", diff)
			}
			for _, e := range cfgerr.Flatten(err) {
				var fe *cfgerr.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("New() problem %q: got %T, want a *cfgerr.FieldError", e, e)
				}
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
url: https://receiver.example.com/events
mode: structured
headers:
  X-Tenant: blue
auth:
  basic:
    username: relay
    password:
      fromFile: /var/run/secrets/receiver/password
tls:
  caFile: /etc/vrelay/ca.pem
  skipTLSVerify: false
timeout: 2500ms
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var got httpsink.Config
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("Decode(): got error %v, want nil", err)
	}
	want := httpsink.Config{
		URL:     "https://receiver.example.com/events",
		Mode:    httpsink.ModeStructured,
		Headers: map[string]string{"X-Tenant": "blue"},
		Auth: httpsink.Auth{Basic: &httpsink.BasicAuth{
			Username: "relay",
			Password: secret.Ref{FromFile: "/var/run/secrets/receiver/password"},
		}},
		TLS:     httpsink.TLS{CAFile: "/etc/vrelay/ca.pem"},
		Timeout: 2500 * time.Millisecond,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded Config mismatch (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate(): got %v, want nil", err)
	}
}
