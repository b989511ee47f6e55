package horizon

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
address: https://horizon.example.com
domain: corp
username: svc-vrelay
password:
  fromFile: /var/run/secrets/horizon/password
caFile: /etc/vrelay/horizon-ca.pem
pollInterval: 2s
pageSize: 500
maxAge: 0s
format: router
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var got Config
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := Config{
		Address:      "https://horizon.example.com",
		Domain:       "corp",
		Username:     "svc-vrelay",
		Password:     secret.Ref{FromFile: "/var/run/secrets/horizon/password"},
		CAFile:       "/etc/vrelay/horizon-ca.pem",
		PollInterval: 2 * time.Second,
		PageSize:     500,
		MaxAge:       durationPtr(0),
		Format:       FormatRouter,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded config differs (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	got.SetDefaults()
	if *got.MaxAge != 0 {
		t.Errorf("got maxAge %s after SetDefaults, want the explicit 0s kept", *got.MaxAge)
	}
}

func TestSetDefaults(t *testing.T) {
	got := Config{Address: "hz", Domain: "corp", Username: "u", Password: secret.Ref{FromEnv: "X"}}
	got.SetDefaults()
	want := Config{
		Address: "hz", Domain: "corp", Username: "u", Password: secret.Ref{FromEnv: "X"},
		PollInterval: time.Second,
		PageSize:     1000,
		MaxAge:       durationPtr(5 * time.Minute),
		Format:       FormatTanzu,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults differ (-want +got):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate() of the defaults = %v, want nil", err)
	}
}

func TestValidate(t *testing.T) {
	valid := Config{Address: "horizon.example.com", Domain: "corp", Username: "svc-vrelay", Password: secret.Ref{FromEnv: "HZ_PASSWORD"}}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // every FieldError, in order
	}{
		{"valid", func(*Config) {}, nil},
		{"http in a lab", func(c *Config) { c.Address = "http://127.0.0.1:8080" }, nil},
		{"empty", func(c *Config) { *c = Config{} }, []string{
			"address: is required",
			"domain: is required: the Active Directory domain of the user, such as corp",
			"username: is required",
			"password: is required: set fromEnv or fromFile",
		}},
		{"UPN", func(c *Config) { c.Username = "svc-vrelay@corp.local" }, []string{
			`username: "svc-vrelay@corp.local" is a UPN (user@domain), which Horizon's REST login does not take: set domain and username (the logon name without the domain) separately`,
		}},
		{"domain in the user name", func(c *Config) { c.Username = `corp\svc-vrelay` }, []string{
			`username: "corp\\svc-vrelay" holds a domain (DOMAIN\user): set domain and username (the logon name without the domain) separately`,
		}},
		{"everything wrong at once", func(c *Config) {
			c.Address = "ftp://hz"
			c.Domain = "corp.local/x"
			c.Password = secret.Ref{FromEnv: "A", FromFile: "/b"}
			c.SkipTLSVerify, c.CAFile = true, "/ca.pem"
			c.PollInterval = -time.Second
			c.PageSize = 1001
			c.MaxAge = durationPtr(-time.Second)
			c.Format = "cloudevents"
		}, []string{
			`address: must use https (or http in a lab), got "ftp"`,
			`domain: "corp.local/x" is not a domain name`,
			"password: set fromEnv or fromFile, not both",
			"caFile: may not be set with skipTLSVerify, which ignores it",
			"pollInterval: must be positive, got -1s",
			"pageSize: must be from 1 to 1000, got 1001",
			"maxAge: must be positive or 0s, got -1s",
			`format: must be "tanzu" or "router", got "cloudevents"`,
		}},
		{"TLS settings with http", func(c *Config) {
			c.Address = "http://hz.lab"
			c.CAFile = "/ca.pem"
		}, []string{"caFile: has no effect with an http:// address"}},
		{"skipTLSVerify with http", func(c *Config) {
			c.Address = "http://hz.lab"
			c.SkipTLSVerify = true
		}, []string{"skipTLSVerify: has no effect with an http:// address"}},
		{"a path", func(c *Config) { c.Address = "https://hz/rest" },
			[]string{"address: may not have a path (/rest): write the Connection Server's address; the API under /rest is found by itself"}},
		{"credentials in the address", func(c *Config) { c.Address = "https://admin:secret@hz" },
			[]string{"address: may not hold credentials: use domain, username and password"}},
		{"negative page size", func(c *Config) { c.PageSize = -1 }, []string{"pageSize: must be from 1 to 1000, got -1"}},
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
				t.Errorf("Validate() problems differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"horizon.example.com", "https://horizon.example.com"},
		{"horizon.example.com:8443", "https://horizon.example.com:8443"},
		{"https://Horizon.Example.com/", "https://horizon.example.com"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://[::1]:443", "https://[::1]:443"},
	}
	for _, tt := range tests {
		u, err := parseAddress(tt.in)
		if err != nil || u.String() != tt.want {
			t.Errorf("parseAddress(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
	for _, bad := range []string{"https://", "https://hz:0", "https://hz:99999", "https://hz?x=1", "https://hz#f", "https://hz/api"} {
		if u, err := parseAddress(bad); err == nil {
			t.Errorf("parseAddress(%q) = %v, want an error", bad, u)
		}
	}
}

func TestNew(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Address: "hz.example.com:8443", Domain: "corp", Username: "u", Password: secret.Ref{FromFile: pw}}
	s, err := New(cfg, WithName("hz01"))
	if err != nil {
		t.Fatal(err)
	}
	if s.URL() != "https://hz.example.com:8443" || s.CheckpointKey() != "horizon.hz01" || s.Name() != "hz01" ||
		s.Scope().Provider != "horizon" || s.Scope().Source != "hz01" || s.host != "hz.example.com:8443" {
		t.Errorf("got URL %s, key %s, scope %+v, host %s", s.URL(), s.CheckpointKey(), s.Scope(), s.host)
	}
	if s.password.Reveal() != "secret" {
		t.Error("the password file's trailing newline was kept")
	}

	tests := []struct {
		name string
		cfg  Config
		opts []Option
		want string
	}{
		{"invalid name", cfg, []Option{WithName("hz.01")}, "invalid source name"},
		{"missing password file", Config{Address: "hz", Domain: "corp", Username: "u", Password: secret.Ref{FromFile: pw + ".missing"}}, nil, "password: read secret file"},
		{"missing CA file", Config{Address: "hz", Domain: "corp", Username: "u", Password: secret.Ref{FromFile: pw}, CAFile: pw + ".missing"}, nil, "caFile: read CA file"},
		{"not a CA file", Config{Address: "hz", Domain: "corp", Username: "u", Password: secret.Ref{FromFile: pw}, CAFile: pw}, nil, "caFile: no PEM certificate"},
		{"invalid config", Config{}, nil, "address: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg, tt.opts...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
