package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vrelay/vrelay/internal/config"
)

const valid = `
sources:
  - name: hooks
    type: webhook
routes:
  - name: all
    sink:
      type: log
`

func TestParseValid(t *testing.T) {
	cfg, err := config.Parse([]byte(valid))
	if err != nil {
		t.Fatalf("Parse(valid) error: %v", err)
	}
	if cfg.NATS.Embedded == nil || cfg.NATS.Embedded.Listen != "127.0.0.1:4222" {
		t.Errorf("embedded NATS default not applied: %+v", cfg.NATS.Embedded)
	}
	if got := cfg.Routes[0].Subjects; len(got) != 1 || got[0] != "vmware.>" {
		t.Errorf("route subjects = %v, want [vmware.>]", got)
	}
	if cfg.Routes[0].Delivery.MaxInFlight != 16 {
		t.Errorf("maxInFlight = %d, want default 16", cfg.Routes[0].Delivery.MaxInFlight)
	}
}

// TestParseErrors checks that every bad configuration is rejected with a
// message naming the field and the reason.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in its own problem
	}{
		{
			name: "unknown field",
			yaml: "sources: []\nroutes: []\nbogus: 1\n",
			want: []string{"line 3: unknown field bogus"},
		},
		{
			name: "unknown nested field",
			yaml: "routes:\n  - name: a\n    sink: {type: log}\n    delivery: {maxInflight: 3}\n",
			want: []string{"line 4: unknown field maxInflight"},
		},
		{
			name: "wrong type",
			yaml: "routes:\n  - name: a\n    sink: {type: log}\n    delivery: {maxInFlight: many}\n",
			want: []string{"line 4", "many"},
		},
		{
			name: "bad duration",
			yaml: "routes:\n  - name: a\n    sink: {type: log}\n    delivery: {sendTimeout: soon}\n",
			want: []string{"soon"},
		},
		{
			name: "http sink url",
			yaml: "routes:\n  - name: a\n  - name: b\n  - name: c\n    sink: {type: http, http: {url: not-a-url}}\n",
			want: []string{"routes[2].sink.http.url:", "routes[0].sink.type: is required"},
		},
		{
			name: "bad expression names route and position",
			yaml: "routes:\n  - name: vm-on\n    filter: 'subject == \"x\" && nosuchfn(type)'\n    sink: {type: log}\n",
			want: []string{`routes[0].filter: route "vm-on": line 1, column 19: unknown function nosuchfn`},
		},
		{
			name: "transform errors name route, step and position",
			yaml: "routes:\n  - name: x\n    transform:\n      - drop: 'type == \"a\"'\n      - set: {type: '\"a\" +', MyExt: '1'}\n        remove: [id]\n      - {}\n    sink: {type: log}\n",
			want: []string{
				`routes[0].transform[1].set.type: route "x": line 1, column 5: unexpected token EOF`,
				`routes[0].transform[1].set.MyExt: route "x": "MyExt" is neither`,
				`routes[0].transform[1].remove[0]: route "x": id is a required attribute`,
				`routes[0].transform[2]: route "x": empty step`,
			},
		},
		{
			name: "transform step with an unknown field",
			yaml: "routes:\n  - name: x\n    transform:\n      - rename: {a: b}\n    sink: {type: log}\n",
			want: []string{"line 4: unknown field rename"},
		},
		{
			name: "non-boolean expression",
			yaml: "routes:\n  - name: r\n    filter: 'type'\n    sink: {type: log}\n",
			want: []string{"routes[0].filter:", "bool"},
		},
		{
			name: "duplicate names",
			yaml: "routes:\n  - {name: a, sink: {type: log}}\n  - {name: a, sink: {type: log}}\n",
			want: []string{`routes[1].name: "a" is already the name of routes[0]`},
		},
		{
			name: "route name with dot",
			yaml: "routes:\n  - {name: a.b, sink: {type: log}}\n",
			want: []string{"routes[0].name:"},
		},
		{
			name: "subject outside stream",
			yaml: "routes:\n  - {name: a, subjects: [other.>], sink: {type: log}}\n",
			want: []string{"routes[0].subjects[0]:", "outside the event stream"},
		},
		{
			name: "health and event subjects in one route",
			yaml: "routes:\n  - {name: a, subjects: [vrelay.health.>, vmware.>], sink: {type: log}}\n",
			want: []string{"routes[0].subjects: route \"a\" mixes vrelay.health.> subjects"},
		},
		{
			name: "dead letters are not routable",
			yaml: "routes:\n  - {name: a, subjects: [vrelay.dlq.>], sink: {type: log}}\n",
			want: []string{"routes[0].subjects[0]:", "outside the event stream"},
		},
		{
			name: "subject wildcard inside token",
			yaml: "routes:\n  - {name: a, subjects: [vmware.vc*.>], sink: {type: log}}\n",
			want: []string{"routes[0].subjects[0]:", "whole tokens"},
		},
		{
			name: "ack wait not above send timeout",
			yaml: "routes:\n  - {name: a, sink: {type: log}, delivery: {sendTimeout: 60s, ackWait: 30s}}\n",
			want: []string{"routes[0].delivery.ackWait: must be longer than sendTimeout"},
		},
		{
			name: "unknown source type",
			yaml: "sources:\n  - {name: x, type: ftp}\n",
			want: []string{`sources[0].type: "ftp" is not a source type`},
		},
		{
			name: "webhook path",
			yaml: "sources:\n  - {name: x, type: webhook, webhook: {path: events}}\n",
			want: []string{"sources[0].webhook.path:"},
		},
		{
			name: "both nats modes",
			yaml: "nats: {embedded: {}, external: {url: 'nats://a:4222'}}\nroutes:\n  - {name: a, sink: {type: log}}\n",
			want: []string{"nats: set embedded or external, not both"},
		},
		{
			name: "external without url and credentials in url",
			yaml: "nats: {external: {user: u}}\nroutes:\n  - {name: a, sink: {type: log}}\n",
			want: []string{"nats.external.url: is required", "nats.external.password: is required with user"},
		},
		{
			name: "secret from both env and file",
			yaml: "nats: {external: {url: 'nats://a:4222', token: {fromEnv: A, fromFile: /b}}}\nroutes:\n  - {name: a, sink: {type: log}}\n",
			want: []string{"nats.external.token: set fromEnv or fromFile, not both"},
		},
		{
			name: "nothing to do",
			yaml: "streams: {}\n",
			want: []string{"nothing to do"},
		},
		{
			name: "listener clash",
			yaml: "http: {listen: '127.0.0.1:9000'}\nsources:\n  - {name: x, type: webhook, webhook: {listen: '127.0.0.1:9000'}}\n",
			want: []string{"sources[0].webhook.listen: 127.0.0.1:9000 clashes with http.listen (127.0.0.1:9000)"},
		},
		{
			name: "two webhooks on the default address",
			yaml: "sources:\n  - {name: a, type: webhook}\n  - {name: b, type: webhook}\n",
			want: []string{"sources[1].webhook.listen: 127.0.0.1:8080 clashes with sources[0].webhook.listen (127.0.0.1:8080)"},
		},
		{
			name: "wildcard webhook on the operations port",
			yaml: "http: {listen: '127.0.0.1:9000'}\nsources:\n  - {name: a, type: webhook, webhook: {listen: ':9000'}}\n",
			want: []string{"sources[0].webhook.listen: :9000 clashes with http.listen (127.0.0.1:9000)"},
		},
		{
			name: "webhook on the embedded nats port",
			yaml: "sources:\n  - {name: a, type: webhook, webhook: {listen: '127.0.0.1:4222'}}\n",
			want: []string{"sources[0].webhook.listen: 127.0.0.1:4222 clashes with nats.embedded.listen"},
		},
		{
			name: "section of another type",
			yaml: "sources:\n  - {name: a, type: simulator, webhook: {}}\nroutes:\n  - {name: r, sink: {type: log, http: {url: 'http://x'}}}\n",
			want: []string{`sources[0].webhook: is set but type is "simulator"`, `routes[0].sink.http: is set but type is "log"`},
		},
		{
			name: "required sections",
			yaml: "sources:\n  - {name: a, type: vcenter}\nroutes:\n  - {name: r, sink: {type: http}}\n",
			want: []string{"sources[0].vcenter: is required with type vcenter", "routes[0].sink.http: is required with type http"},
		},
		{
			name: "horizon problems",
			yaml: "sources:\n  - {name: hz, type: horizon, horizon: {address: 'ftp://hz', username: 'svc@corp.local', password: {fromEnv: HZ}, pageSize: 2000}}\n  - {name: hz2, type: horizon}\n",
			want: []string{
				`sources[0].horizon.address: must use https (or http in a lab), got "ftp"`,
				"sources[0].horizon.domain: is required",
				`sources[0].horizon.username: "svc@corp.local" is a UPN (user@domain)`,
				"sources[0].horizon.pageSize: must be from 1 to 1000, got 2000",
				"sources[1].horizon: is required with type horizon",
			},
		},
		{
			name: "http timeout above send timeout",
			yaml: "routes:\n  - {name: r, sink: {type: http, http: {url: 'http://x', timeout: 40s}}}\n",
			want: []string{"routes[0].sink.http.timeout: 40s exceeds delivery.sendTimeout (30s)"},
		},
		{
			name: "knative destination problems",
			yaml: "routes:\n  - {name: r, sink: {type: knative, knative: {uri: 'http://x/abs', ref: {kind: Broker, name: default}}}}\n  - {name: s, sink: {type: knative, knative: {}}}\n  - {name: t, sink: {type: knative}}\n  - {name: u, sink: {type: knative, knative: {uri: 'http://x', timeout: 40s}}}\n",
			want: []string{
				"routes[0].sink.knative.ref.apiVersion: is required",
				"routes[0].sink.knative.uri: with ref it must be relative",
				"routes[1].sink.knative: set ref, uri or both",
				"routes[2].sink.knative: is required with type knative",
				"routes[3].sink.knative.timeout: 40s exceeds delivery.sendTimeout (30s)",
			},
		},
		{
			name: "batches for a sink that sends one event per request",
			yaml: "routes:\n  - {name: r, sink: {type: http, http: {url: 'http://x'}}, delivery: {maxBatch: 10}}\n  - {name: l, sink: {type: log}, delivery: {maxBatch: 10}}\n",
			want: []string{"routes[0].delivery.maxBatch: is 10, but a http sink sends one event per request"},
		},
		{
			name: "stream limits",
			yaml: "streams: {subjectRoot: 'a.b', replicas: 9}\nroutes:\n  - {name: a, sink: {type: log}}\n",
			want: []string{"streams.subjectRoot:", "streams.replicas:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse() got nil error, want problems %q", tt.want)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Parse() error\n%s\nwant it to contain %q", msg, w)
				}
			}
		})
	}
}

func TestLoadNamesFileAndListsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vrelay.yaml")
	bad := "routes:\n  - {name: a, sink: {type: http, http: {url: ftp://x}}}\n  - {name: b, sink: {type: carrier-pigeon}}\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	var fe *config.FileError
	if !errors.As(err, &fe) {
		t.Fatalf("Load() error = %v, want *config.FileError", err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d problem lines, want 2:\n%s", len(lines), err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, path+": routes[") {
			t.Errorf("line %q does not start with the file and field path", l)
		}
	}
}

// TestExamplesAreValid keeps examples/ honest: every file there must load.
func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found (%v)", err)
	}
	t.Setenv("AUTOMATION_TOKEN", "example")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := config.Load(f); err != nil {
				t.Errorf("example does not validate:\n%v", err)
			}
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Setenv("VRELAY_TEST_PW", "hunter2-very-secret")
	y := "nats: {external: {url: 'nats://a:4222', user: '', password: {fromEnv: VRELAY_TEST_PW}}}\nroutes:\n  - {name: a, sink: {type: log}}\n"
	_, err := config.Parse([]byte(y))
	if err == nil {
		t.Fatal("want an error for password without user")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the secret: %v", err)
	}
}

// TestKindsMatchSections keeps the table of kinds and the YAML sections in
// step: every kind has a section field whose YAML name is its type, and
// every section field belongs to a kind.
func TestKindsMatchSections(t *testing.T) {
	check := func(t *testing.T, typ reflect.Type, kinds []string) {
		t.Helper()
		fields := map[string]bool{}
		for i := range typ.NumField() {
			tag := strings.Split(typ.Field(i).Tag.Get("yaml"), ",")[0]
			if tag != "name" && tag != "type" {
				fields[tag] = true
			}
		}
		for _, k := range kinds {
			if !fields[k] {
				t.Errorf("%s: kind %q has no section field with yaml name %q", typ.Name(), k, k)
			}
			delete(fields, k)
		}
		for f := range fields {
			t.Errorf("%s: section %q belongs to no kind", typ.Name(), f)
		}
	}
	var src, snk []string
	for _, k := range config.SourceKinds() {
		src = append(src, k.Type)
	}
	for _, k := range config.SinkKinds() {
		snk = append(snk, k.Type)
	}
	check(t, reflect.TypeFor[config.Source](), src)
	check(t, reflect.TypeFor[config.Sink](), snk)
}

func TestHorizonSource(t *testing.T) {
	t.Setenv("HZ_PASSWORD", "example")
	cfg, err := config.Parse([]byte(`
sources:
  - name: hz01
    type: horizon
    horizon: {address: 'horizon.example.com', domain: corp, username: svc-vrelay, password: {fromEnv: HZ_PASSWORD}}
  - name: hz01
    type: vcenter
    vcenter: {address: 'vc01.example.com', username: u, password: {fromEnv: HZ_PASSWORD}}
`))
	if err != nil {
		t.Fatalf("a horizon and a vcenter source of the same name: %v", err)
	}
	s := cfg.Sources[0]
	if got := s.Provider(); got != "horizon" {
		t.Errorf("provider: got %q, want horizon", got)
	}
	h := s.Horizon
	if h.PageSize != 1000 || h.PollInterval.String() != "1s" || h.MaxAge == nil || h.MaxAge.String() != "5m0s" || h.Format != "tanzu" {
		t.Errorf("horizon section: got %+v, want the defaults", h)
	}
	src, err := s.New(config.SourceDeps{})
	if err != nil || src == nil {
		t.Fatalf("build horizon source: %v", err)
	}

	_, err = config.Parse([]byte("sources:\n  - {name: hz01, type: horizon, horizon: {address: hz, domain: corp, username: u, password: {fromEnv: X}}}\n  - {name: hz01, type: horizon, horizon: {address: hz2, domain: corp, username: u, password: {fromEnv: X}}}\n"))
	if err == nil || !strings.Contains(err.Error(), `sources[1].name: "hz01" is already the name of sources[0]`) {
		t.Errorf("two horizon sources of one name: got %v", err)
	}
}

func TestDefaultsFromTheTable(t *testing.T) {
	cfg, err := config.Parse([]byte("sources:\n  - {name: s, type: simulator}\n  - {name: h, type: webhook, webhook: {listen: '127.0.0.1:0'}}\nroutes:\n  - {name: r, sink: {type: log}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sources[0].Simulator == nil || cfg.Sources[0].Simulator.Rate != 5 {
		t.Errorf("simulator section: got %+v, want the defaults (rate 5)", cfg.Sources[0].Simulator)
	}
	if got := cfg.Sources[1].Webhook.Path; got != "/" {
		t.Errorf("webhook path: got %q, want the default /", got)
	}
	if cfg.Routes[0].Sink.Log == nil || cfg.Routes[0].Sink.Log.Output != "stdout" {
		t.Errorf("log sink section: got %+v, want output stdout", cfg.Routes[0].Sink.Log)
	}
	if got, want := cfg.Sources[0].Provider(), "vcenter"; got != want {
		t.Errorf("simulator provider: got %q, want %q", got, want)
	}
	src, err := cfg.Sources[1].New(config.SourceDeps{})
	if err != nil || src == nil {
		t.Fatalf("build webhook source: %v", err)
	}
	snk, err := cfg.Routes[0].Sink.New(config.SinkDeps{})
	if err != nil || snk == nil {
		t.Fatalf("build log sink: %v", err)
	}
}

func TestSourcePolling(t *testing.T) {
	want := map[string]bool{"webhook": false, "vcenter": true, "horizon": true, "simulator": true, "nosuch": false}
	for typ, polling := range want {
		if got := (config.Source{Type: typ}).Polling(); got != polling {
			t.Errorf("Source{Type: %q}.Polling() = %t, want %t", typ, got, polling)
		}
	}
}

func TestHealthRouteIsValid(t *testing.T) {
	cfg, err := config.Parse([]byte("routes:\n  - {name: alerts, subjects: [vrelay.health.>, vrelay.health.vcenter.*], sink: {type: log}}\n"))
	if err != nil {
		t.Fatalf("Parse() error: %v", err)
	}
	if got := cfg.Routes[0].Subjects; len(got) != 2 {
		t.Errorf("subjects = %v", got)
	}
}
