package config_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vrelay/vrelay/internal/config"
)

// TestDocsGenIsFresh fails when a doc comment of a config type changed
// after docs_gen.go was generated: the schema and the reference would
// describe the old text.
func TestDocsGenIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the generator")
	}
	out := filepath.Join(t.TempDir(), "docs_gen.go")
	cmd := exec.Command("go", "run", "./gen", "docs", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./gen docs: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("docs_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("internal/config/docs_gen.go is stale: run `go generate ./internal/config` (-fresh +checked in):\n%s", diff)
	}
}

// TestConfigReferenceIsFresh fails when the generated tables of
// docs/configuration.md differ from what the config types say.
func TestConfigReferenceIsFresh(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "configuration.md")
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := config.RenderTables(old)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(fresh), string(old)); diff != "" {
		t.Errorf("docs/configuration.md is stale: run `go generate ./internal/config` (-fresh +checked in):\n%s", diff)
	}
}

func TestRenderTablesErrors(t *testing.T) {
	tests := []struct {
		name, md, want string
	}{
		{name: "no end", md: "<!-- BEGIN GENERATED: streams -->\n| x |\n", want: "has no <!-- END GENERATED: streams -->"},
		{name: "unknown section", md: "<!-- BEGIN GENERATED: streams.nope -->\n<!-- END GENERATED: streams.nope -->\n", want: `no field "nope"`},
		{name: "not a section", md: "<!-- BEGIN GENERATED: shutdownTimeout -->\n<!-- END GENERATED: shutdownTimeout -->\n", want: "not a section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.RenderTables([]byte(tt.md))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestRenderTablesRewritesStaleTable(t *testing.T) {
	md := "text\n<!-- BEGIN GENERATED: routes.sink.log -->\n| old |\n<!-- END GENERATED: routes.sink.log -->\nmore\n"
	out, err := config.RenderTables([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{"text\n<!-- BEGIN GENERATED: routes.sink.log -->\n| Field | Type | Default | Meaning |",
		"| `format` | string | `json` | How each event is written: `json`", "<!-- END GENERATED: routes.sink.log -->\nmore\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("got\n%s\nwant %q in it", got, want)
		}
	}
	if strings.Contains(got, "| old |") {
		t.Error("the stale row survived")
	}
}
