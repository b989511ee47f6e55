package config_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/config"
	"github.com/vrelay/vrelay/internal/netaddr"
)

// TestListenerAuthConfig checks nats.embedded.auth and http.auth in a whole
// file: each problem is reported with its field path.
func TestListenerAuthConfig(t *testing.T) {
	const route = "routes:\n  - {name: a, sink: {type: log}}\n"
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error; none for a valid file
	}{
		{name: "embedded token", yaml: "nats: {embedded: {listen: '0.0.0.0:4222', auth: {token: {fromEnv: T}}}}\n"},
		{name: "embedded user", yaml: "nats: {embedded: {listen: ':4222', auth: {user: cli, password: {fromFile: /run/pw}}}}\n"},
		{name: "embedded loopback, no auth", yaml: "nats: {embedded: {listen: '127.0.0.1:4222'}}\n"},
		{name: "embedded every interface, no auth", yaml: "nats: {embedded: {listen: '0.0.0.0:4222'}}\n",
			want: []string{"nats.embedded.listen: 0.0.0.0:4222 is not a loopback address and auth is not set", "set auth"}},
		{name: "embedded empty auth", yaml: "nats: {embedded: {auth: {}}}\n",
			want: []string{"nats.embedded.auth: set token, or user and password"}},
		{name: "embedded both", yaml: "nats: {embedded: {auth: {token: {fromEnv: T}, user: u, password: {fromEnv: P}}}}\n",
			want: []string{"nats.embedded.auth: set token, or user and password, not both"}},
		{name: "embedded user without password", yaml: "nats: {embedded: {auth: {user: u}}}\n",
			want: []string{"nats.embedded.auth.password: is required with user"}},
		{name: "embedded unknown field", yaml: "nats: {embedded: {auth: {username: u}}}\n",
			want: []string{"unknown field username"}},
		{name: "http token", yaml: "http: {listen: '0.0.0.0:8081', auth: {token: {fromEnv: T}}}\n"},
		{name: "http user", yaml: "http: {auth: {user: prometheus, password: {fromEnv: P}}}\n"},
		{name: "http password without user", yaml: "http: {auth: {password: {fromEnv: P}}}\n",
			want: []string{"http.auth.user: is required with password"}},
		{name: "http empty auth", yaml: "http: {auth: {}}\n",
			want: []string{"http.auth: set token, or user and password"}},
		{name: "http token from two places", yaml: "http: {auth: {token: {fromEnv: T, fromFile: f}}}\n",
			want: []string{"http.auth.token: set fromEnv or fromFile, not both"}},
		{name: "ui on loopback, no auth", yaml: "http: {ui: true}\n"},
		{name: "ui on every interface with auth", yaml: "http: {listen: ':8081', ui: true, auth: {user: admin, password: {fromEnv: P}}}\n"},
		{name: "ui on every interface, no auth", yaml: "http: {listen: '0.0.0.0:8081', ui: true}\n",
			want: []string{"http.ui: http.listen 0.0.0.0:8081 is not a loopback address and http.auth is not set"}},
		{name: "ui with the listener off", yaml: "http: {listen: 'off', ui: true}\n",
			want: []string{"http.ui: needs http.listen, which is off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml + route))
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestExamplesBindOnlyWithAuth keeps examples/ from teaching an open
// listener: every listener of every example that binds an address other
// than loopback has credentials.
func TestExamplesBindOnlyWithAuth(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range openListeners(cfg) {
				t.Errorf("%s binds a non-loopback address without auth", p)
			}
		})
	}
}

// openListeners lists the listeners of cfg that anyone on the network can
// reach without credentials.
func openListeners(cfg *config.Config) []string {
	var open []string
	check := func(path, addr string, hasAuth bool) {
		if addr != netaddr.Off && !netaddr.IsLoopback(addr) && !hasAuth {
			open = append(open, fmt.Sprintf("%s (%s)", path, addr))
		}
	}
	check("http.listen", cfg.HTTP.Listen, cfg.HTTP.Auth != nil)
	if e := cfg.NATS.Embedded; e != nil {
		check("nats.embedded.listen", e.Listen, e.Auth != nil)
	}
	for i, s := range cfg.Sources {
		if w := s.Webhook; w != nil {
			a := w.Auth
			check(fmt.Sprintf("sources[%d].webhook.listen", i), w.Listen,
				a.Basic.Username != "" || !a.Basic.Password.IsZero() || !a.Bearer.Token.IsZero())
		}
	}
	return open
}

// TestOpenListenersCatches makes sure the examples check can fail.
func TestOpenListenersCatches(t *testing.T) {
	y := "http: {listen: '0.0.0.0:8081'}\nsources:\n  - {name: h, type: webhook, webhook: {listen: ':8080'}}\n"
	cfg, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	got := openListeners(cfg)
	want := []string{"http.listen (0.0.0.0:8081)", "sources[0].webhook.listen (:8080)"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}
