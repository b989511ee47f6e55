package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestConfigSchemaCommand(t *testing.T) {
	code, out, errOut := runCLI("config", "schema")
	if code != 0 {
		t.Fatalf("config schema: code %d, stderr %q; want 0", code, errOut)
	}
	var s struct {
		Schema string         `json:"$schema"`
		Props  map[string]any `json:"properties"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("config schema printed no JSON: %v", err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema: got %q, want draft 2020-12", s.Schema)
	}
	for _, k := range []string{"nats", "streams", "http", "sources", "routes", "shutdownTimeout"} {
		if _, ok := s.Props[k]; !ok {
			t.Errorf("schema has no property %q", k)
		}
	}

	for _, args := range [][]string{{"config"}, {"config", "scheme"}, {"config", "schema", "x"}} {
		if code, _, errOut := runCLI(args...); code != 2 || !strings.Contains(errOut, "vrelay config schema") {
			t.Errorf("%v: code %d, stderr %q; want 2 and the usage", args, code, errOut)
		}
	}
}
