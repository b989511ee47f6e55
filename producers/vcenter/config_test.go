package vcenter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/internal/cfgerr"
	"github.com/vrelay/vrelay/internal/secret"
)

func durationPtr(d time.Duration) *time.Duration { return &d }

func TestConfigYAML(t *testing.T) {
	const doc = `
address: https://vc01.example.com/sdk
username: vrelay@vsphere.local
password:
  fromFile: /var/run/secrets/vc01/password
caFile: /etc/vrelay/vc01-ca.pem
checkpoint:
  maxAge: 0s
  period: 30s
format: router
payloadEncoding: application/xml
pollInterval: 2s
pageSize: 500
stallCheckInterval: 10s
enrich:
  inventory: true
  tags: true
  tagRefresh: 1m
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var got Config
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := Config{
		Address:            "https://vc01.example.com/sdk",
		Username:           "vrelay@vsphere.local",
		Password:           secret.Ref{FromFile: "/var/run/secrets/vc01/password"},
		CAFile:             "/etc/vrelay/vc01-ca.pem",
		Checkpoint:         CheckpointConfig{MaxAge: durationPtr(0), Period: 30 * time.Second},
		Format:             FormatRouter,
		PayloadEncoding:    EncodingXML,
		PollInterval:       2 * time.Second,
		PageSize:           500,
		StallCheckInterval: 10 * time.Second,
		Enrich:             EnrichConfig{Inventory: true, Tags: true, TagRefresh: time.Minute},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded config differs (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	got.SetDefaults()
	if got.Enrich.TagRefresh != time.Minute {
		t.Errorf("got tagRefresh %s after SetDefaults, want 1m kept", got.Enrich.TagRefresh)
	}
	if *got.Checkpoint.MaxAge != 0 {
		t.Errorf("got maxAge %s after SetDefaults, want the explicit 0s kept", *got.Checkpoint.MaxAge)
	}
}

func TestSetDefaults(t *testing.T) {
	got := Config{Address: "vc", Username: "u", Password: secret.Ref{FromEnv: "X"}}
	got.SetDefaults()
	want := Config{
		Address: "vc", Username: "u", Password: secret.Ref{FromEnv: "X"},
		Checkpoint:      CheckpointConfig{MaxAge: durationPtr(5 * time.Minute), Period: 10 * time.Second},
		Format:          FormatTanzu,
		PayloadEncoding: EncodingJSON,
		PollInterval:    time.Second,
		PageSize:        1000,

		StallCheckInterval: 30 * time.Second,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults differ (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() of the defaults = %v, want nil", err)
	}
}

func TestValidate(t *testing.T) {
	valid := Config{Address: "vc01.example.com", Username: "u", Password: secret.Ref{FromEnv: "VC_PASSWORD"}}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // every FieldError, in order
	}{
		{"valid", func(*Config) {}, nil},
		{"empty", func(c *Config) { *c = Config{} }, []string{
			"address: is required",
			"username: is required",
			"password: is required: set fromEnv or fromFile",
		}},
		{"everything wrong at once", func(c *Config) {
			c.Address = "http://vc01/sdk"
			c.Password = secret.Ref{FromEnv: "A", FromFile: "/b"}
			c.SkipTLSVerify, c.CAFile = true, "/ca.pem"
			c.Checkpoint = CheckpointConfig{MaxAge: durationPtr(-time.Second), Period: -time.Second}
			c.Format = "cloudevents"
			c.PayloadEncoding = "text/plain"
			c.PollInterval = -time.Second
			c.PageSize = 1001
		}, []string{
			`address: must use https, got "http"`,
			"password: set fromEnv or fromFile, not both",
			"caFile: may not be set with skipTLSVerify, which ignores it",
			"checkpoint.maxAge: must be positive or 0s, got -1s",
			"checkpoint.period: must be positive, got -1s",
			`format: must be "tanzu" or "router", got "cloudevents"`,
			`payloadEncoding: must be "application/json" or "application/xml", got "text/plain"`,
			"pollInterval: must be positive, got -1s",
			"pageSize: must be from 1 to 1000, got 1001",
		}},
		{"credentials in the address", func(c *Config) { c.Address = "https://root:secret@vc01/sdk" },
			[]string{"address: may not hold credentials: use username and password"}},
		{"negative stall check interval", func(c *Config) { c.StallCheckInterval = -time.Second },
			[]string{"stallCheckInterval: must be positive, got -1s"}},
		{"negative page size", func(c *Config) { c.PageSize = -1 }, []string{"pageSize: must be from 1 to 1000, got -1"}},
		{"enrich", func(c *Config) { c.Enrich = EnrichConfig{Inventory: true, Tags: true, TagRefresh: time.Minute} }, nil},
		{"negative tag refresh", func(c *Config) { c.Enrich = EnrichConfig{Tags: true, TagRefresh: -time.Second} },
			[]string{"enrich.tagRefresh: must be positive, got -1s"}},
		{"tag refresh without tags", func(c *Config) { c.Enrich = EnrichConfig{Inventory: true, TagRefresh: time.Minute} },
			[]string{"enrich.tagRefresh: has no effect without enrich.tags"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.change(&c)
			var got []string
			for _, e := range cfgerr.Flatten(c.Validate()) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Validate() errors differ (-want +got):\n%s", diff)
			}
			for _, g := range got {
				if strings.Contains(g, "secret") {
					t.Errorf("error %q repeats a credential", g)
				}
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "vc01.example.com", want: "https://vc01.example.com/sdk"},
		{in: "vc01.example.com:8443", want: "https://vc01.example.com:8443/sdk"},
		{in: "https://vc01.example.com", want: "https://vc01.example.com/sdk"},
		{in: "https://vc01.example.com/", want: "https://vc01.example.com/sdk"},
		{in: "https://10.0.0.1/sdk", want: "https://10.0.0.1/sdk"},
		{in: "https://[::1]:443/custom/sdk", want: "https://[::1]:443/custom/sdk"},
		{in: "ftp://vc01", err: `must use https, got "ftp"`},
		{in: "https://", err: "has no host"},
		{in: "https://vc01:99999/sdk", err: `invalid port "99999"`},
		{in: "https://vc01/sdk?x=1", err: "may not have a query or fragment"},
		{in: "https://u@vc01/sdk", err: "may not hold credentials: use username and password"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := parseAddress(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("got error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want %s", err, tt.want)
			}
			if u.String() != tt.want {
				t.Errorf("got %s, want %s", u, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	notPEM := filepath.Join(dir, "ca.pem")
	for _, f := range []string{pw, notPEM} {
		if err := os.WriteFile(f, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	valid := Config{Address: "vc01", Username: "u", Password: secret.Ref{FromFile: pw}}
	tests := []struct {
		name   string
		change func(*Config)
		opts   []Option
		want   string
	}{
		{"bad name", nil, []Option{WithName("vc.01")}, `vcenter: invalid source name: "vc.01" contains '.': use only letters, digits, '-' and '_'`},
		{"invalid config", func(c *Config) { c.Username = "" }, nil, "username: is required"},
		{"unset variable", func(c *Config) { c.Password = secret.Ref{FromEnv: "VRELAY_TEST_UNSET_VARIABLE"} }, nil,
			"password: environment variable VRELAY_TEST_UNSET_VARIABLE is not set"},
		{"CA file not PEM", func(c *Config) { c.CAFile = notPEM }, nil, "caFile: no PEM certificate in " + notPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			if tt.change != nil {
				tt.change(&c)
			}
			_, err := New(c, tt.opts...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got New() error %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := New(valid); err != nil {
		t.Errorf("got New() error %v for a valid config", err)
	}
}
