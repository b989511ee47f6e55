package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/internal/config"
)

// compileSchema compiles config.Schema with a real JSON Schema validator.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	raw, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(config.SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(config.SchemaID)
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

// yamlInstance turns a YAML document into the JSON value a validator
// (or an editor's language server) checks.
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	if v == nil {
		v = map[string]any{}
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("yaml to json: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestSchemaAcceptsExamples(t *testing.T) {
	s := compileSchema(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(yamlInstance(t, src)); err != nil {
				t.Errorf("got %v, want the example valid", err)
			}
		})
	}
}

func TestSchemaRejectsBadConfigs(t *testing.T) {
	s := compileSchema(t)
	tests := []struct {
		name string
		yaml string
		want string // a substring of the validation error
	}{
		{name: "unknown top-level field", yaml: "route: []\n", want: "additional properties 'route'"},
		{name: "unknown sink field", yaml: "routes: [{name: a, sink: {type: log, log: {colour: red}}}]\n", want: "additional properties 'colour'"},
		{name: "wrong type", yaml: "streams: {replicas: three}\n", want: "want integer"},
		{name: "duration as a number", yaml: "shutdownTimeout: 30\n", want: "want string"},
		{name: "duration without unit", yaml: "shutdownTimeout: '30'\n", want: "does not match pattern"},
		{name: "duration in days", yaml: "streams: {maxAge: 7d}\n", want: "does not match pattern"},
		{name: "missing route name", yaml: "routes: [{sink: {type: log}}]\n", want: "missing property 'name'"},
		{name: "missing sink", yaml: "routes: [{name: a}]\n", want: "missing property 'sink'"},
		{name: "unknown sink type", yaml: "routes: [{name: a, sink: {type: kafka}}]\n", want: "value must be one of 'http'"},
		{name: "bad enum", yaml: "routes: [{name: a, sink: {type: log, log: {format: text}}}]\n", want: "value must be one of 'json', 'line'"},
		{name: "section of another kind", yaml: "routes: [{name: a, sink: {type: log, http: {url: 'http://x'}}}]\n", want: "oneOf"},
		{name: "required section missing", yaml: "sources: [{name: v, type: vcenter}]\n", want: "missing property 'vcenter'"},
		{name: "required field missing", yaml: "sources: [{name: v, type: vcenter, vcenter: {username: u, password: {fromEnv: P}}}]\n", want: "missing property 'address'"},
		{name: "both nats modes", yaml: "nats: {embedded: {}, external: {url: 'nats://x'}}\n", want: "maxProperties"},
		{name: "route name with a dot", yaml: "routes: [{name: a.b, sink: {type: log}}]\n", want: "does not match pattern"},
		{name: "inline secret", yaml: "routes: [{name: a, sink: {type: http, http: {url: 'http://x', auth: {bearer: {token: hunter2}}}}}]\n", want: "want object"},
		{name: "secret with both", yaml: "routes: [{name: a, sink: {type: http, http: {url: 'http://x', auth: {bearer: {token: {fromEnv: A, fromFile: /b}}}}}}]\n", want: "oneOf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(yamlInstance(t, []byte(tt.yaml)))
			if err == nil {
				t.Fatalf("got valid, want an error with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant %q in it", err, tt.want)
			}
		})
	}
}

// TestSchemaDescriptions checks that the doc comments reached the schema.
func TestSchemaDescriptions(t *testing.T) {
	raw, err := config.Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs map[string]struct {
			Description string `json:"description"`
			Properties  map[string]struct {
				Description string   `json:"description"`
				Enum        []string `json:"enum"`
				Default     any      `json:"default"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	log := s.Defs["logsink.Config"].Properties
	if d := log["format"].Description; !strings.Contains(d, "readable line") {
		t.Errorf("logsink format description: got %q, want its doc comment", d)
	}
	if got := log["format"].Enum; len(got) != 2 || got[0] != "json" || got[1] != "line" {
		t.Errorf("logsink format enum: got %v, want [json line]", got)
	}
	if got := s.Defs["config.HTTP"].Properties["listen"].Default; got != "127.0.0.1:8081" {
		t.Errorf("http.listen default: got %v, want 127.0.0.1:8081", got)
	}
	for name, def := range s.Defs {
		for field, p := range def.Properties {
			if p.Description == "" && field != "type" {
				t.Errorf("%s.%s has no description: give the Go field a doc comment", name, field)
			}
		}
	}
}
