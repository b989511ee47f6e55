package config_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/internal/config"
)

// goTypeName matches a Go type name of this module or of a package the
// config is built from, as a decoder error could leak it
// ("*streams.EmbeddedConfig", "[]config.Route", "time.Duration").
var goTypeName = regexp.MustCompile(`[*\]]?\b(config|streams|consumers|producers|webhook|vcenter|horizon|simulator|httpsink|knative|eventbridge|natssink|logsink|secret|filters|yaml)\.[A-Z][A-Za-z0-9_]*|\btime\.Duration`)

// FuzzParse decodes arbitrary documents. Parse must fail with a message
// for people (not empty, no Go type name that the document does not
// itself contain) or return a config that validates again and whose YAML
// encoding parses again to a config with the same encoding.
func FuzzParse(f *testing.F) {
	examples, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil || len(examples) == 0 {
		f.Fatalf("examples: %v", err)
	}
	for _, path := range examples {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		valid, ``, `---`, `[]`, `null`, `~`, "sources: []\nroutes: []\nbogus: 1\n",
		"routes:\n  - name: a\n    sink: {type: log}\n    delivery: {maxInFlight: many}\n",
		"nats: {embedded: {}, external: {}}\n", "nats: {external: {urls: [\"nats://x\"]}}\n",
		"routes:\n  - name: a\n    filter: 'type =='\n    sink: {type: log}\n",
		"routes:\n  - name: a\n    sink: {type: http, http: {url: 'ftp://x'}}\n",
		"sources:\n  - {name: h, type: webhook, webhook: {auth: {bearer: {token: {fromEnv: T, fromFile: /t}}}}}\n",
		"shutdownTimeout: 1h\nstreams: {maxAge: -1s}\n", "a: &a [*a]\n", "sources: {a: 1}\n",
		"streams: !!binary aGk=\n", "http:\n  listen: [1, 2]\n", "routes:\n- name: x\n  sink:\n    type: log\n  subjects: ['vmware.>', '']\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		cfg, err := config.Parse(doc)
		if err != nil {
			msg := err.Error()
			if strings.TrimSpace(msg) == "" {
				t.Fatalf("Parse(%q): empty error", doc)
			}
			for _, name := range goTypeName.FindAllString(msg, -1) {
				if !strings.Contains(string(doc), strings.TrimLeft(name, "*]")) {
					t.Fatalf("Parse(%q) error names Go type %s: %v", doc, name, err)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted a config that Validate rejects: %v", doc, err)
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("Parse(%q): marshal the config: %v", doc, err)
		}
		again, err := config.Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q): the config's YAML does not parse: %v\n%s", doc, err, out)
		}
		out2, err := yaml.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if string(out2) != string(out) {
			t.Fatalf("Parse(%q): parsing the config's YAML changes it:\n%s\nbecomes\n%s", doc, out, out2)
		}
	})
}
