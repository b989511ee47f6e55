package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vrelay/vrelay/filters"
	"github.com/vrelay/vrelay/internal/config"
)

// TestTransformsDocExamples compiles every route and every step that
// docs/transforms.md shows, so the page claims only what compiles.
func TestTransformsDocExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "transforms.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		dec := func(v any) error {
			d := yaml.NewDecoder(bytes.NewReader([]byte(block)))
			d.KnownFields(true)
			return d.Decode(v)
		}
		switch {
		case strings.HasPrefix(block, "  - name:"):
			var routes []config.Route
			if err := dec(&routes); err != nil {
				t.Errorf("route block\n%s: %v", block, err)
				continue
			}
			for _, r := range routes {
				if _, err := r.CompileFilter(); err != nil {
					t.Errorf("route %s: %v", r.Name, err)
				}
				if tr, err := r.CompileTransform(); err != nil || tr == nil {
					t.Errorf("route %s: transform %v, %v; want one that compiles", r.Name, tr, err)
				}
			}
		case strings.HasPrefix(block, "      - "):
			var steps []filters.Step
			if err := dec(&steps); err != nil {
				t.Errorf("step block\n%s: %v", block, err)
				continue
			}
			if _, err := filters.CompileTransform(steps); err != nil {
				t.Errorf("steps\n%s: %v", block, err)
			}
		default:
			t.Errorf("yaml block of an unknown shape:\n%s", block)
		}
		blocks++
	}
	if blocks < 8 {
		t.Errorf("found %d yaml blocks in docs/transforms.md, want at least 8", blocks)
	}
}
